//! Kafka's checkpoint text files (`replication-offset-checkpoint`, `leader-epoch-checkpoint`):
//! a version line (0), a count line, then one entry per line. Written atomically: a temporary
//! file fsynced, renamed over the old one, the directory fsynced.
use std::io::Write;
use std::path::Path;

/// The entry lines of `dir/name`; `None` when there is no such file. A malformed header or a
/// count that does not match is an error naming the file and what is wrong.
pub fn read(dir: &Path, name: &str) -> std::io::Result<Option<Vec<String>>> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {why}", path.display()));
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some("0") => {}
        other => return Err(bad(format!("unsupported version line {other:?} (expected 0)"))),
    }
    let count: usize = lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| bad("no entry count on the second line".into()))?;
    let entries: Vec<String> = lines.map(str::to_string).collect();
    if entries.len() != count {
        return Err(bad(format!("{count} entries announced, {} found", entries.len())));
    }
    Ok(Some(entries))
}

/// Replaces `dir/name` with `entries`, atomically.
pub fn write(dir: &Path, name: &str, entries: &[String]) -> std::io::Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    for e in entries {
        text.push_str(e);
        text.push('\n');
    }
    // A name of its own per write: two writers (a truncation under the log's lock, the
    // periodic writer without it) never share a temporary file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{name}.{n}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}
