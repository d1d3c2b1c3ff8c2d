//! The high-watermark checkpoint of a log directory (Kafka's `replication-offset-checkpoint`):
//! each partition's high watermark, written every
//! `replica.high.watermark.checkpoint.interval.ms` and at shutdown, read at start-up. A
//! restarted broker starts each partition's high watermark there (at most its log end), not
//! at its log end: records past it were never known to be committed, and consumers must not
//! see them before the ISR has them again.
//!
//! Kafka's text format: a version line (0), a count line, then `topic partition offset`
//! lines (topic names cannot contain spaces).
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

pub const FILE: &str = "replication-offset-checkpoint";

/// Reads `dir`'s checkpoint: (topic, partition) -> high watermark. A missing file is empty;
/// a malformed one is an error naming what is wrong.
pub fn read(dir: &Path) -> std::io::Result<HashMap<(String, i32), i64>> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    parse(&text).map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {why}", path.display())))
}

fn parse(text: &str) -> Result<HashMap<(String, i32), i64>, String> {
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some("0") => {}
        other => return Err(format!("unsupported version line {other:?} (expected 0)")),
    }
    let count: usize = lines.next().and_then(|l| l.trim().parse().ok()).ok_or("no entry count on the second line")?;
    let mut out = HashMap::with_capacity(count.min(100_000));
    for (i, line) in lines.enumerate() {
        let mut parts = line.split(' ');
        let (Some(topic), Some(partition), Some(offset), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(format!("line {} is not `topic partition offset`: {line:?}", i + 3));
        };
        let partition = partition.parse().map_err(|_| format!("line {}: bad partition {partition:?}", i + 3))?;
        let offset = offset.parse().map_err(|_| format!("line {}: bad offset {offset:?}", i + 3))?;
        out.insert((topic.to_string(), partition), offset);
    }
    if out.len() != count {
        return Err(format!("{count} entries announced, {} found", out.len()));
    }
    Ok(out)
}

/// Replaces `dir`'s checkpoint with `entries`, atomically (a temporary file fsynced, renamed
/// over it, the directory fsynced).
pub fn write(dir: &Path, entries: &[(String, i32, i64)]) -> std::io::Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
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
            let err = parse(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
