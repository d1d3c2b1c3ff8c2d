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
//!
//! The map is bounded by `log.cleaner.dedupe.buffer.size` (Kafka's default 128 MiB): when it
//! is full the cleaner stops mapping and cleans only up to the last offset it mapped, as
//! Kafka's does; the rest stays dirty for the next run. Kafka's map is one preallocated array
//! at a 0.9 load factor (about 39,000 keys per MiB); this one is a hash table that grows by
//! doubling, counted with its growth peak (old and new table side by side), so it holds
//! about 14,000 keys per MiB but a small clean costs little memory.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// What one entry costs in the table: a 16-byte digest, an 8-byte offset and the hash
/// table's control byte.
const ENTRY_BYTES: usize = 25;

/// A bound on the table's size whatever the configured memory (2^40 buckets: 25 TiB).
const MAX_BUCKETS: usize = 1 << 40;

/// Latest offset per key digest.
#[derive(Debug)]
pub struct OffsetMap {
    hashers: [RandomState; 2],
    latest: HashMap<u128, i64, BuildHasherDefault<DigestHasher>>,
    /// Most distinct keys the map may hold.
    capacity: usize,
}

impl Default for OffsetMap {
    fn default() -> OffsetMap {
        OffsetMap::new()
    }
}

impl OffsetMap {
    /// A map without a memory bound (tests).
    pub fn new() -> OffsetMap {
        OffsetMap { hashers: [RandomState::new(), RandomState::new()], latest: HashMap::default(), capacity: usize::MAX }
    }

    /// A map whose table never takes more than `memory` bytes, including the moment it
    /// grows: the table has a power-of-two number of buckets, at most 7/8 of them used, and
    /// growing from B/2 to B buckets briefly holds both.
    pub fn with_memory(memory: usize) -> OffsetMap {
        // Bytes while growing to `buckets`: the new table and the old, half its size.
        let peak = |buckets: usize| buckets.saturating_mul(ENTRY_BYTES).saturating_mul(3) / 2;
        let mut buckets = 8usize;
        while buckets < MAX_BUCKETS && peak(buckets * 2) <= memory {
            buckets *= 2;
        }
        let capacity = if peak(buckets) <= memory { buckets / 8 * 7 } else { 0 };
        OffsetMap { capacity, ..OffsetMap::new() }
    }

    /// Most distinct keys the map may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether `keys` more distinct keys surely fit (callers check per batch, with its
    /// record count, before mapping it).
    pub fn has_room_for(&self, keys: usize) -> bool {
        self.latest.len().saturating_add(keys) <= self.capacity
    }

    fn digest(&self, key: &[u8]) -> u128 {
        let high = self.hashers[0].hash_one(key);
        let low = self.hashers[1].hash_one(key);
        (u128::from(high) << 64) | u128::from(low)
    }

    /// Records that `key` occurs at `offset`; the map keeps the largest offset per key.
    /// A new key is refused (false) when the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let digest = self.digest(key);
        if let Some(latest) = self.latest.get_mut(&digest) {
            *latest = (*latest).max(offset);
            return true;
        }
        if self.latest.len() >= self.capacity {
            return false;
        }
        self.latest.insert(digest, offset);
        true
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
    fn memory_bounds_the_keys() {
        // 128 MiB: 2^21 buckets (78.6 MB with the growth peak; 2^22 would be 157 MB).
        let map = OffsetMap::with_memory(128 << 20);
        assert_eq!(map.capacity(), (1 << 21) / 8 * 7);
        let mut map = OffsetMap::with_memory(1024);
        assert_eq!(map.capacity(), 14);
        assert!(map.has_room_for(14) && !map.has_room_for(15));
        for i in 0..14 {
            assert!(map.put(format!("k{i}").as_bytes(), i));
        }
        assert!(!map.put(b"one more", 99), "full: a new key is refused");
        assert!(map.put(b"k3", 50), "a known key still updates");
        assert_eq!((map.len(), map.latest(b"k3"), map.latest(b"one more")), (14, Some(50), None));
        assert_eq!(OffsetMap::with_memory(100).capacity(), 0);
        assert_eq!(OffsetMap::with_memory(usize::MAX).capacity(), MAX_BUCKETS / 8 * 7, "no overflow");
    }

    #[test]
    fn the_table_stays_within_its_memory() {
        // The largest table hashbrown allocates for `capacity` keys, and the one it grew from.
        for memory in [1024usize, 10_000, 1 << 20, 3 << 20] {
            let mut map = OffsetMap::with_memory(memory);
            for i in 0..map.capacity() as i64 {
                map.put(&i.to_le_bytes(), i);
            }
            let buckets = map.latest.capacity() / 7 * 8;
            assert!(buckets * ENTRY_BYTES * 3 / 2 <= memory, "{memory}: {buckets} buckets");
        }
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
