//! The spool: enriched events waiting for the broker, one JSON line each, in a file beside the
//! checkpoint. The reader appends and commits (the checkpoint records the committed length);
//! the shipper reads committed lines from its own offset and advances it on acks=all. Memory
//! stays bounded whatever the broker does: the shipper holds one batch, the rest is on disk.
//! Disk is bounded too: past `max_bytes` unshipped, events are dropped and counted (they are
//! still counted in the derived metrics). Once everything is shipped the file is emptied.
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::checkpoint::SpoolMarks;

#[derive(Debug, Default)]
struct Shared {
    marks: SpoolMarks,
    /// Bumped when the file is emptied, so a batch read before cannot be acknowledged after.
    generation: u64,
    /// Events the broker refused for good (too large); counted as dropped.
    refused: u64,
}

/// The shipper's view.
#[derive(Clone)]
pub struct SpoolReader {
    path: PathBuf,
    shared: Arc<Mutex<Shared>>,
}

/// Events read for one produce, and where they lie in the spool.
pub struct Batch {
    generation: u64,
    start: u64,
    end: u64,
    pub events: Vec<String>,
}

/// The reader loop's view (the only writer).
pub struct SpoolWriter {
    path: PathBuf,
    file: File,
    /// Written but not yet committed.
    len: u64,
    events: u64,
    max_bytes: u64,
    shared: Arc<Mutex<Shared>>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic elsewhere while holding the lock leaves plain numbers behind: still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens the spool at `path` as of `marks` (from the checkpoint): bytes beyond the committed
/// length come from a run that died before checkpointing them and are cut off; they will be
/// read from the log files again.
pub fn open(path: &Path, marks: SpoolMarks, max_bytes: u64) -> std::io::Result<(SpoolWriter, SpoolReader, u64)> {
    let file = OpenOptions::new().create(true).read(true).append(true).open(path)?;
    let on_disk = file.metadata()?.len();
    let mut lost = 0;
    let marks = if marks.shipped_offset >= marks.len {
        SpoolMarks::default()
    } else if on_disk < marks.len {
        // The spool lost committed bytes (restored from elsewhere?): those events are gone.
        lost = marks.events - marks.shipped_events;
        SpoolMarks::default()
    } else {
        marks
    };
    file.set_len(marks.len)?;
    let shared = Arc::new(Mutex::new(Shared { marks, generation: 0, refused: 0 }));
    Ok((
        SpoolWriter { path: path.into(), file, len: marks.len, events: marks.events, max_bytes, shared: shared.clone() },
        SpoolReader { path: path.into(), shared },
        lost,
    ))
}

impl SpoolWriter {
    /// Appends one event; false (and nothing written) when the spool is full.
    pub fn append(&mut self, event: &str) -> std::io::Result<bool> {
        let shipped = lock(&self.shared).marks.shipped_offset;
        if self.len.saturating_sub(shipped) + event.len() as u64 + 1 > self.max_bytes {
            return Ok(false);
        }
        let mut line = Vec::with_capacity(event.len() + 1);
        line.extend_from_slice(event.as_bytes());
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.len += line.len() as u64;
        self.events += 1;
        Ok(true)
    }

    /// Makes what was appended durable and visible to the shipper; returns the marks to store
    /// in the checkpoint.
    pub fn commit(&mut self) -> std::io::Result<SpoolMarks> {
        let mut s = lock(&self.shared);
        if s.marks.len != self.len {
            drop(s);
            self.file.sync_data()?;
            s = lock(&self.shared);
            s.marks.len = self.len;
            s.marks.events = self.events;
        }
        Ok(s.marks)
    }

    /// Empties the file when every committed event was shipped and nothing is pending. The
    /// emptied state is made durable by `save` (the checkpoint) before the file is cut, so a
    /// kill -9 in between leaves either the old checkpoint with the old file (events shipped
    /// again) or the new checkpoint with bytes that the next start cuts off.
    pub fn compact_if_shipped(&mut self, save: impl FnOnce(SpoolMarks) -> Result<(), String>) -> Result<bool, String> {
        let mut s = lock(&self.shared);
        if self.len == 0 || s.marks.len != self.len || s.marks.shipped_offset != s.marks.len {
            return Ok(false);
        }
        // Under the lock: the shipper cannot read between the reset and the truncation.
        save(SpoolMarks::default())?;
        s.marks = SpoolMarks::default();
        s.generation += 1;
        self.len = 0;
        self.events = 0;
        self.file.set_len(0).map_err(|e| format!("cannot empty the spool {}: {e}", self.path.display()))?;
        Ok(true)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SpoolReader {
    /// Up to `max_events` / about `max_bytes` committed, unshipped events.
    pub fn read_batch(&self, max_events: usize, max_bytes: usize) -> std::io::Result<Option<Batch>> {
        let (generation, start, committed) = {
            let s = lock(&self.shared);
            (s.generation, s.marks.shipped_offset, s.marks.len)
        };
        if start >= committed {
            return Ok(None);
        }
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(start))?;
        let mut r = BufReader::new(f).take(committed - start);
        let mut events = Vec::new();
        let (mut bytes, mut end) = (0usize, start);
        let mut line = String::new();
        while events.len() < max_events && (bytes < max_bytes || events.is_empty()) {
            line.clear();
            let n = r.read_line(&mut line)?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            end += n as u64;
            bytes += n;
            line.pop();
            events.push(std::mem::take(&mut line));
        }
        // Re-check: the file may have been emptied while we read.
        if lock(&self.shared).generation != generation || events.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch { generation, start, end, events }))
    }

    /// The broker acknowledged `batch` (or, with `refused`, refused it for good).
    pub fn ack(&self, batch: &Batch, refused: bool) {
        let mut s = lock(&self.shared);
        if s.generation == batch.generation && s.marks.shipped_offset == batch.start {
            s.marks.shipped_offset = batch.end;
            s.marks.shipped_events += batch.events.len() as u64;
            if refused {
                s.refused += batch.events.len() as u64;
            }
        }
    }

    /// Events committed but not yet acknowledged.
    pub fn queued_events(&self) -> u64 {
        let s = lock(&self.shared);
        s.marks.events.saturating_sub(s.marks.shipped_events)
    }

    pub fn refused(&self) -> u64 {
        lock(&self.shared).refused
    }
}

use std::io::Read as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ship_compact_and_restart_cut_uncommitted_bytes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("spool");
        let (mut w, r, lost) = open(&p, SpoolMarks::default(), 1 << 20).unwrap();
        assert_eq!(lost, 0);
        assert!(w.append("a").unwrap() && w.append("b").unwrap());
        assert!(r.read_batch(10, 1000).unwrap().is_none(), "uncommitted events are not shipped");
        let marks = w.commit().unwrap();
        assert_eq!((marks.len, marks.events), (4, 2));
        let b = r.read_batch(1, 1000).unwrap().unwrap();
        assert_eq!(b.events, vec!["a"]);
        r.ack(&b, false);
        assert_eq!(r.queued_events(), 1);
        // written after the checkpoint, then the process dies
        w.append("c").unwrap();
        drop((w, r));
        let (mut w, r, _) = open(&p, marks, 1 << 20).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 4);
        let b = r.read_batch(10, 1000).unwrap().unwrap();
        assert_eq!(b.events, vec!["a", "b"], "not acked in the checkpoint: shipped again");
        r.ack(&b, false);
        let mut saved = None;
        assert!(w.compact_if_shipped(|m| { saved = Some(m); Ok(()) }).unwrap());
        assert_eq!(saved, Some(SpoolMarks::default()));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        assert_eq!(w.commit().unwrap(), SpoolMarks::default());
    }

    #[test]
    fn a_full_spool_refuses_events() {
        let d = tempfile::tempdir().unwrap();
        let (mut w, _r, _) = open(&d.path().join("s"), SpoolMarks::default(), 10).unwrap();
        assert!(w.append("12345").unwrap());
        assert!(!w.append("12345").unwrap());
    }
}
