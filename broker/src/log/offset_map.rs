//! The cleaner's offset map: for every key in the dirty part of a log, the offset of its
//! latest record (Kafka's `SkimpyOffsetMap`).
//!
//! Keys are stored as 128-bit digests, not as bytes, so a distinct key costs ~32 bytes
//! whatever its size. The digest is two SipHash-1-3 hashes (std's `RandomState`) under
//! random keys chosen per map. Two keys with the same digest would share an entry, and the
//! newer could then remove the other key's latest record: with n distinct keys the chance is
//! about n²/2¹²⁹ (≈ 2e-27 for ten million keys), and because the hash keys are random and
//! live only for one cleaning run, a producer cannot craft colliding keys. Kafka makes the
//! same trade with MD5 digests.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Latest offset per key digest.
#[derive(Debug)]
pub struct OffsetMap {
    hashers: [RandomState; 2],
    latest: HashMap<u128, i64, BuildHasherDefault<DigestHasher>>,
}

impl Default for OffsetMap {
    fn default() -> OffsetMap {
        OffsetMap::new()
    }
}

impl OffsetMap {
    pub fn new() -> OffsetMap {
        OffsetMap { hashers: [RandomState::new(), RandomState::new()], latest: HashMap::default() }
    }

    fn digest(&self, key: &[u8]) -> u128 {
        let high = self.hashers[0].hash_one(key);
        let low = self.hashers[1].hash_one(key);
        (u128::from(high) << 64) | u128::from(low)
    }

    /// Records that `key` occurs at `offset`; the map keeps the largest offset per key.
    pub fn put(&mut self, key: &[u8], offset: i64) {
        let digest = self.digest(key);
        let latest = self.latest.entry(digest).or_insert(offset);
        *latest = (*latest).max(offset);
    }

    /// The latest offset recorded for `key`, if any.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(&self.digest(key)).copied()
    }

    /// Distinct keys (digests) in the map.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

/// The map's keys are already uniformly distributed hashes: use their low bits directly
/// instead of hashing them a second time.
#[derive(Debug, Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if something other than a u128 is hashed; stay correct, if slower.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, digest: u128) {
        self.0 = digest as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_per_key() {
        let mut map = OffsetMap::new();
        map.put(b"a", 5);
        map.put(b"b", 6);
        map.put(b"a", 9);
        map.put(b"a", 7);
        assert_eq!(map.latest(b"a"), Some(9));
        assert_eq!(map.latest(b"b"), Some(6));
        assert_eq!(map.latest(b"c"), None);
        assert_eq!(map.latest(b""), None);
        map.put(b"", 1);
        assert_eq!(map.latest(b""), Some(1));
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn many_keys_do_not_collide() {
        let mut map = OffsetMap::new();
        for i in 0..100_000i64 {
            map.put(format!("key-{i}").as_bytes(), i);
        }
        assert_eq!(map.len(), 100_000);
        assert_eq!(map.latest(b"key-4242"), Some(4242));
    }
}
