//! `partition.metadata` in each partition directory: the id of the topic the log belongs to,
//! in Kafka's format (`version: 0`, `topic_id: <base64url id>`). A log left on a broker's
//! disk by a topic deleted while the broker was down is then never taken for a new topic of
//! the same name (without it, the name and partition index are all a log says about itself).
use std::path::Path;

use uuid::Uuid;

pub const FILE: &str = "partition.metadata";

/// The topic id recorded in `dir`, `None` when there is no file (a log written before
/// Lantern recorded ids). A file that does not parse is an error naming it.
pub fn read(dir: &Path) -> std::io::Result<Option<Uuid>> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    parse(&text).map(Some).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is not a partition.metadata file (version 0 with a topic_id)", path.display()))
    })
}

/// Records `topic_id` in `dir` (written to a temporary file, fsynced, renamed).
pub fn write(dir: &Path, topic_id: Uuid) -> std::io::Result<()> {
    let text = format!("version: 0\ntopic_id: {}\n", kafka_uuid(topic_id));
    crate::controller::quorum::log_store::write_atomic(&dir.join(FILE), text.as_bytes())
}

fn parse(text: &str) -> Option<Uuid> {
    let mut version = None;
    let mut id = None;
    for line in text.lines() {
        let (k, v) = line.split_once(':')?;
        match k.trim() {
            "version" => version = Some(v.trim().to_string()),
            "topic_id" => id = parse_kafka_uuid(v.trim()),
            _ => return None,
        }
    }
    (version.as_deref() == Some("0")).then_some(id).flatten()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Kafka's `Uuid.toString()`: the 16 bytes in URL-safe base64 without padding (22 chars).
pub fn kafka_uuid(id: Uuid) -> String {
    let n = id.as_u128();
    // 128 bits = 21 groups of 6 bits and 2 bits left, which base64 pads with 4 zero bits.
    let mut out = String::with_capacity(22);
    for i in 0..21 {
        out.push(ALPHABET[((n >> (122 - 6 * i)) & 63) as usize] as char);
    }
    out.push(ALPHABET[((n & 3) << 4) as usize] as char);
    out
}

fn parse_kafka_uuid(s: &str) -> Option<Uuid> {
    let bytes = s.as_bytes();
    if bytes.len() != 22 {
        return None;
    }
    let mut n: u128 = 0;
    for (i, b) in bytes.iter().enumerate() {
        let v = ALPHABET.iter().position(|a| a == b)? as u128;
        if i < 21 {
            n = (n << 6) | v;
        } else {
            if v & 15 != 0 {
                return None;
            }
            n = (n << 2) | (v >> 4);
        }
    }
    Some(Uuid::from_u128(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_in_kafkas_format() {
        // Kafka's Uuid.toString() of (mostSignificantBits=0, leastSignificantBits=1).
        assert_eq!(kafka_uuid(Uuid::from_u128(1)), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(kafka_uuid(Uuid::from_u128(u128::MAX)), "_____________________w");
        for _ in 0..1000 {
            let id = Uuid::new_v4();
            assert_eq!(parse_kafka_uuid(&kafka_uuid(id)), Some(id));
        }
    }

    #[test]
    fn a_written_file_reads_back_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let id = Uuid::new_v4();
        write(dir.path(), id).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(id));
        std::fs::write(dir.path().join(FILE), "version: 1\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ\n").unwrap();
        assert!(read(dir.path()).is_err());
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(read(dir.path()).is_err());
    }
}
