//! The high-watermark checkpoint of a log directory (Kafka's `replication-offset-checkpoint`):
//! each partition's high watermark, written every
//! `replica.high.watermark.checkpoint.interval.ms` and at shutdown, read at start-up. A
//! restarted broker starts each partition's high watermark there (at most its log end), not
//! at its log end: records past it were never known to be committed, and consumers must not
//! see them before the ISR has them again.
//!
//! Kafka's checkpoint format (see log::checkpoint_file) with `topic partition offset` lines
//! (topic names cannot contain spaces).
use std::collections::HashMap;
use std::path::Path;

use crate::log::checkpoint_file;

pub const FILE: &str = "replication-offset-checkpoint";

/// Reads `dir`'s checkpoint: (topic, partition) -> high watermark. A missing file is empty;
/// a malformed one is an error naming what is wrong.
pub fn read(dir: &Path) -> std::io::Result<HashMap<(String, i32), i64>> {
    let Some(lines) = checkpoint_file::read(dir, FILE)? else { return Ok(HashMap::new()) };
    parse(&lines).map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {why}", dir.join(FILE).display())))
}

fn parse(lines: &[String]) -> Result<HashMap<(String, i32), i64>, String> {
    let mut out = HashMap::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let mut parts = line.split(' ');
        let (Some(topic), Some(partition), Some(offset), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(format!("line {} is not `topic partition offset`: {line:?}", i + 3));
        };
        let partition = partition.parse().map_err(|_| format!("line {}: bad partition {partition:?}", i + 3))?;
        let offset = offset.parse().map_err(|_| format!("line {}: bad offset {offset:?}", i + 3))?;
        out.insert((topic.to_string(), partition), offset);
    }
    Ok(out)
}

/// Replaces `dir`'s checkpoint with `entries`, atomically.
pub fn write(dir: &Path, entries: &[(String, i32, i64)]) -> std::io::Result<()> {
    let lines: Vec<String> = entries.iter().map(|(t, p, o)| format!("{t} {p} {o}")).collect();
    checkpoint_file::write(dir, FILE, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_checkpoints_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty(), "no file: nothing checkpointed");
        write(dir.path(), &[("orders".into(), 0, 42), ("__consumer_offsets".into(), 17, 0)]).unwrap();
        let got = read(dir.path()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[&("orders".to_string(), 0)], 42);
        assert_eq!(got[&("__consumer_offsets".to_string(), 17)], 0);
        assert_eq!(std::fs::read_to_string(dir.path().join(FILE)).unwrap(), "0\n2\norders 0 42\n__consumer_offsets 17 0\n");
    }

    #[test]
    fn malformed_checkpoints_are_errors_that_say_what_is_wrong() {
        for (text, why) in [
            ("1\n0\n", "version"),
            ("0\nx\n", "count"),
            ("0\n1\norders 0\n", "line 3"),
            ("0\n1\norders zero 5\n", "bad partition"),
            ("0\n2\norders 0 5\n", "2 entries announced"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(FILE), text).unwrap();
            let err = read(dir.path()).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(FILE), "{text:?}: {err}");
        }
    }
}
