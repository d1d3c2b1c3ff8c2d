//! The spool: enriched events waiting for their sinks (the Kafka topic, and OTLP if set), one
//! JSON line each, in a file beside the checkpoint. The reader appends and commits (the
//! checkpoint records the committed length); each sink reads committed lines from its own
//! cursor and advances it when the receiver acknowledges. Memory stays bounded whatever the
//! receivers do: a sink holds one batch, the rest is on disk. Disk is bounded too: past
//! `max_bytes` not yet delivered to every sink, events are dropped and counted (they are still
//! counted in the derived metrics). Once every sink has everything, the file is emptied.
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read as _, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::checkpoint::{Cursor, SpoolMarks};

/// Who reads the spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Kafka,
    Otlp,
}

const SINKS: [Sink; 2] = [Sink::Kafka, Sink::Otlp];

fn cursor(m: &SpoolMarks, sink: Sink) -> Cursor {
    match sink {
        Sink::Kafka => m.shipped(),
        Sink::Otlp => m.otlp,
    }
}

fn set_cursor(m: &mut SpoolMarks, sink: Sink, c: Cursor) {
    match sink {
        Sink::Kafka => {
            m.shipped_offset = c.offset;
            m.shipped_events = c.events;
        }
        Sink::Otlp => m.otlp = c,
    }
}

#[derive(Debug, Default)]
struct Shared {
    marks: SpoolMarks,
    /// Which sinks run; an idle sink's cursor follows the committed length.
    active: [bool; 2],
    /// Bumped when the file is emptied, so a batch read before cannot be acknowledged after.
    generation: u64,
    /// Events a receiver refused for good (too large, invalid), per sink; counted as dropped.
    refused: [u64; 2],
}

impl Shared {
    fn is_active(&self, sink: Sink) -> bool {
        self.active[sink as usize]
    }

    /// The lowest cursor of the running sinks (the committed length if none runs).
    fn low(&self) -> u64 {
        SINKS.iter().filter(|s| self.is_active(**s)).map(|s| cursor(&self.marks, *s).offset).min().unwrap_or(self.marks.len)
    }

    fn idle_sinks_follow(&mut self) {
        let end = Cursor { offset: self.marks.len, events: self.marks.events };
        for s in SINKS {
            if !self.is_active(s) {
                set_cursor(&mut self.marks, s, end);
            }
        }
    }
}

/// One sink's view.
#[derive(Clone)]
pub struct SpoolReader {
    path: PathBuf,
    sink: Sink,
    shared: Arc<Mutex<Shared>>,
}

/// Events read for one delivery, and where they lie in the spool.
pub struct Batch {
    generation: u64,
    start: Cursor,
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

/// The opened spool: the writer, one reader per sink, and how many events were found lost.
pub struct Opened {
    pub writer: SpoolWriter,
    pub kafka: SpoolReader,
    pub otlp: SpoolReader,
    pub lost: u64,
}

/// Opens the spool at `path` as of `marks` (from the checkpoint) for the sinks that run
/// (`kafka`, `otlp`): bytes beyond the committed length come from a run that died before
/// checkpointing them and are cut off; they will be read from the log files again.
pub fn open(path: &Path, marks: SpoolMarks, max_bytes: u64, kafka: bool, otlp: bool) -> std::io::Result<Opened> {
    let file = OpenOptions::new().create(true).read(true).append(true).open(path)?;
    // One exporter per checkpoint: a second one would interleave spool writes and checkpoints.
    // The lock goes with the process, kill -9 included.
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("it is locked by another lantern-exporter using the same --pipeline.checkpoint ({e})")));
    }
    let on_disk = file.metadata()?.len();
    let mut shared = Shared { marks, active: [kafka, otlp], generation: 0, refused: [0; 2] };
    let mut lost = 0;
    if shared.low() >= marks.len {
        shared.marks = SpoolMarks::default();
    } else if on_disk < marks.len {
        // The spool lost committed bytes (deleted or restored from elsewhere): those are gone.
        let delivered = SINKS.iter().filter(|s| shared.is_active(**s)).map(|s| cursor(&marks, *s).events).min().unwrap_or(marks.events);
        lost = marks.events.saturating_sub(delivered);
        shared.marks = SpoolMarks::default();
    }
    shared.idle_sinks_follow();
    let marks = shared.marks;
    file.set_len(marks.len)?;
    let shared = Arc::new(Mutex::new(shared));
    let reader = |sink| SpoolReader { path: path.into(), sink, shared: shared.clone() };
    Ok(Opened {
        kafka: reader(Sink::Kafka),
        otlp: reader(Sink::Otlp),
        writer: SpoolWriter { path: path.into(), file, len: marks.len, events: marks.events, max_bytes, shared: shared.clone() },
        lost,
    })
}

/// What became of an appended event.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    Spooled,
    /// Every sink is off: nothing to deliver it to.
    NoSink,
    /// Over `max_bytes` undelivered: dropped.
    Full,
}

impl SpoolWriter {
    pub fn append(&mut self, event: &str) -> std::io::Result<Appended> {
        let low = {
            let s = lock(&self.shared);
            if !s.active.iter().any(|a| *a) {
                return Ok(Appended::NoSink);
            }
            s.low()
        };
        if self.len.saturating_sub(low) + event.len() as u64 + 1 > self.max_bytes {
            return Ok(Appended::Full);
        }
        let mut line = Vec::with_capacity(event.len() + 1);
        line.extend_from_slice(event.as_bytes());
        line.push(b'\n');
        if let Err(e) = self.file.write_all(&line) {
            // Part of the line may be in the file (ENOSPC, EIO): cut it off so the next event
            // starts at `len` again and every committed offset stays on a line boundary.
            if let Err(cut) = self.file.set_len(self.len) {
                tracing::error!(target: "lantern.exporter.pipeline", error = %cut, len = self.len,
                    "cannot cut a failed spool write back; events after it may be unreadable until restart");
            }
            return Err(e);
        }
        self.len += line.len() as u64;
        self.events += 1;
        Ok(Appended::Spooled)
    }

    /// Makes what was appended durable and visible to the sinks; returns the marks to store
    /// in the checkpoint.
    pub fn commit(&mut self) -> std::io::Result<SpoolMarks> {
        let mut s = lock(&self.shared);
        if s.marks.len != self.len {
            drop(s);
            self.file.sync_data()?;
            s = lock(&self.shared);
            s.marks.len = self.len;
            s.marks.events = self.events;
            s.idle_sinks_follow();
        }
        Ok(s.marks)
    }

    /// Empties the file when every sink has every committed event and nothing is pending. The
    /// emptied state is made durable by `save` (the checkpoint) before the file is cut, so a
    /// kill -9 in between leaves either the old checkpoint with the old file (events delivered
    /// again) or the new checkpoint with bytes that the next start cuts off.
    pub fn compact_if_shipped(&mut self, save: impl FnOnce(SpoolMarks) -> Result<(), String>) -> Result<bool, String> {
        let mut s = lock(&self.shared);
        if self.len == 0 || s.marks.len != self.len || s.low() != s.marks.len {
            return Ok(false);
        }
        // Under the lock: no sink can read between the reset and the truncation.
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
    /// Up to `max_events` / about `max_bytes` committed events this sink has not had yet.
    pub fn read_batch(&self, max_events: usize, max_bytes: usize) -> std::io::Result<Option<Batch>> {
        let (generation, start, committed) = {
            let s = lock(&self.shared);
            (s.generation, cursor(&s.marks, self.sink), s.marks.len)
        };
        if start.offset >= committed {
            return Ok(None);
        }
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(start.offset))?;
        let mut r = BufReader::new(f).take(committed - start.offset);
        let mut events = Vec::new();
        let (mut bytes, mut end) = (0usize, start.offset);
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

    /// The receiver acknowledged `batch` (or, with `refused`, refused it for good).
    pub fn ack(&self, batch: &Batch, refused: bool) {
        let mut s = lock(&self.shared);
        if s.generation == batch.generation && cursor(&s.marks, self.sink) == batch.start {
            let n = batch.events.len() as u64;
            set_cursor(&mut s.marks, self.sink, Cursor { offset: batch.end, events: batch.start.events + n });
            if refused {
                s.refused[self.sink as usize] += n;
            }
        }
    }

    /// Events committed but not yet acknowledged to this sink.
    pub fn queued_events(&self) -> u64 {
        let s = lock(&self.shared);
        s.marks.events.saturating_sub(cursor(&s.marks, self.sink).events)
    }

    pub fn refused(&self) -> u64 {
        lock(&self.shared).refused[self.sink as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ship_compact_and_restart_cut_uncommitted_bytes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("spool");
        let Opened { mut writer, kafka: r, lost, .. } = open(&p, SpoolMarks::default(), 1 << 20, true, false).unwrap();
        assert_eq!(lost, 0);
        assert_eq!(writer.append("a").unwrap(), Appended::Spooled);
        assert_eq!(writer.append("b").unwrap(), Appended::Spooled);
        assert!(r.read_batch(10, 1000).unwrap().is_none(), "uncommitted events are not shipped");
        let marks = writer.commit().unwrap();
        assert_eq!((marks.len, marks.events), (4, 2));
        let b = r.read_batch(1, 1000).unwrap().unwrap();
        assert_eq!(b.events, vec!["a"]);
        r.ack(&b, false);
        assert_eq!(r.queued_events(), 1);
        // written after the checkpoint, then the process dies
        writer.append("c").unwrap();
        drop((writer, r));
        let Opened { mut writer, kafka: r, .. } = open(&p, marks, 1 << 20, true, false).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 4);
        let b = r.read_batch(10, 1000).unwrap().unwrap();
        assert_eq!(b.events, vec!["a", "b"], "not acked in the checkpoint: shipped again");
        r.ack(&b, false);
        let mut saved = None;
        assert!(writer.compact_if_shipped(|m| { saved = Some(m); Ok(()) }).unwrap());
        assert_eq!(saved, Some(SpoolMarks::default()));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        assert_eq!(writer.commit().unwrap(), SpoolMarks::default());
    }

    #[test]
    fn two_sinks_each_get_everything_and_the_slower_one_holds_the_file() {
        let d = tempfile::tempdir().unwrap();
        let Opened { mut writer, kafka, otlp, .. } = open(&d.path().join("s"), SpoolMarks::default(), 1 << 20, true, true).unwrap();
        writer.append("x").unwrap();
        writer.commit().unwrap();
        let b = kafka.read_batch(10, 100).unwrap().unwrap();
        kafka.ack(&b, false);
        assert!(!writer.compact_if_shipped(|_| Ok(())).unwrap(), "otlp has not had it");
        let b = otlp.read_batch(10, 100).unwrap().unwrap();
        assert_eq!(b.events, vec!["x"]);
        otlp.ack(&b, false);
        assert!(writer.compact_if_shipped(|_| Ok(())).unwrap());
    }

    #[test]
    fn a_second_opener_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let _first = open(&d.path().join("s"), SpoolMarks::default(), 10, true, false).unwrap();
        let e = open(&d.path().join("s"), SpoolMarks::default(), 10, true, false).err().unwrap();
        assert!(e.to_string().contains("another lantern-exporter"), "{e}");
    }

    #[test]
    fn a_full_spool_refuses_events_and_no_sink_means_no_spool() {
        let d = tempfile::tempdir().unwrap();
        let mut o = open(&d.path().join("s"), SpoolMarks::default(), 10, true, false).unwrap();
        assert_eq!(o.writer.append("12345").unwrap(), Appended::Spooled);
        assert_eq!(o.writer.append("12345").unwrap(), Appended::Full);
        let mut o = open(&d.path().join("t"), SpoolMarks::default(), 10, false, false).unwrap();
        assert_eq!(o.writer.append("12345").unwrap(), Appended::NoSink);
        assert_eq!(o.writer.commit().unwrap().len, 0);
    }
}
