//! The reader loop (one thread, the only writer of files, counters and checkpoint): tail every
//! file -> parse -> derive metrics -> enrich -> spool, then commit the spool and write the
//! checkpoint holding the offsets and the counters as of those offsets. A restart resumes at
//! the checkpoint, so each line is counted exactly once; lines read after the last checkpoint
//! are read and counted again, and their events shipped again (at-least-once).
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::checkpoint::{Checkpoint, SpoolMarks, VERSION};
use super::derived::Derived;
use super::event::{self, Origin, Parsed, SourceKind};
use super::spool::{Appended, SpoolWriter};
use super::tail::{Line, Tailer};
use super::timefmt;

/// Bytes read from one file per round before the others get their turn and a checkpoint is taken.
const MAX_READ_PER_ROUND: usize = 4 * 1024 * 1024;

pub struct Source {
    pub tailer: Tailer,
    pub kind: SourceKind,
    /// The configured path as given: the `file` label and the checkpoint key.
    pub name: String,
    /// Whether the last read failed (its error is logged once, not every round).
    pub failing: bool,
}

pub struct Reader {
    pub sources: Vec<Source>,
    pub origin: Origin,
    pub spool: SpoolWriter,
    pub derived: Arc<Mutex<Derived>>,
    pub checkpoint_path: PathBuf,
    pub poll_interval: Duration,
    pub last_saved: Option<SpoolMarks>,
}

impl Reader {
    /// Runs until `stop` is set, then writes a last checkpoint.
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        let mut checkpoint_failing = false;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let (read_any, more) = self.round();
            match self.checkpoint(read_any) {
                Ok(()) if checkpoint_failing => {
                    tracing::info!(target: "lantern.exporter.pipeline", "checkpoint written again");
                    checkpoint_failing = false;
                }
                Ok(()) => {}
                Err(e) if !checkpoint_failing => {
                    tracing::error!(target: "lantern.exporter.pipeline", error = %e, "cannot checkpoint; reading goes on, a restart would re-read from the last good checkpoint");
                    checkpoint_failing = true;
                }
                Err(_) => {}
            }
            if stopping {
                return;
            }
            if !more {
                std::thread::sleep(self.poll_interval);
            }
        }
    }

    /// One pass over every file; returns (anything read, some file has more right away).
    fn round(&mut self) -> (bool, bool) {
        let save = |marks| save_checkpoint(&self.checkpoint_path, &self.sources, &self.derived, marks);
        match self.spool.compact_if_shipped(save) {
            Ok(true) => self.last_saved = Some(SpoolMarks::default()),
            Ok(false) => {}
            Err(e) => tracing::warn!(target: "lantern.exporter.pipeline", error = %e, "cannot empty the shipped spool; it is retried"),
        }
        let (mut any, mut more) = (false, false);
        let mut lines: Vec<Line> = Vec::new();
        for i in 0..self.sources.len() {
            lines.clear();
            // Lines read before an error are past the tailer's offset: they are ingested too.
            let rotations = match self.sources[i].tailer.poll(MAX_READ_PER_ROUND, &mut lines) {
                Ok(r) => {
                    if self.sources[i].failing {
                        tracing::info!(target: "lantern.exporter.pipeline", file = %self.sources[i].name, "log file readable again");
                        self.sources[i].failing = false;
                    }
                    r.rotations
                }
                Err(e) => {
                    if !self.sources[i].failing {
                        tracing::warn!(target: "lantern.exporter.pipeline", file = %self.sources[i].name, error = %e, "cannot read log file; retrying every round");
                        self.sources[i].failing = true;
                    }
                    0
                }
            };
            let bytes: usize = lines.iter().map(|l| l.text.len() + 1).sum();
            more |= bytes >= MAX_READ_PER_ROUND;
            any |= !lines.is_empty() || rotations > 0;
            self.ingest(i, &lines, rotations);
        }
        (any, more)
    }

    fn ingest(&mut self, i: usize, lines: &[Line], rotations: u64) {
        let now = timefmt::now_ms();
        let src = &self.sources[i];
        let mut derived = self.derived.lock().unwrap_or_else(|p| p.into_inner());
        derived.rotated(&src.name, rotations);
        for line in lines {
            derived.line_read(&src.name);
            let parsed = event::parse_line(src.kind, &line.text);
            match &parsed {
                Parsed::Blank => continue,
                Parsed::Invalid { .. } => derived.line_invalid(&src.name),
                Parsed::Event { facts, timestamp_ms, .. } => derived.event(facts, *timestamp_ms, now),
            }
            let Some(json) = event::enrich(parsed, src.kind, &self.origin, &src.name) else { continue };
            match self.spool.append(&json) {
                Ok(Appended::Spooled | Appended::NoSink) => {}
                Ok(Appended::Full) => derived.events_dropped += 1,
                Err(e) => {
                    derived.events_dropped += 1;
                    tracing::error!(target: "lantern.exporter.pipeline", error = %e, path = %self.spool.path().display(), "cannot write the spool; event dropped (counted)");
                }
            }
        }
    }

    fn checkpoint(&mut self, read_any: bool) -> Result<(), String> {
        let marks = self.spool.commit().map_err(|e| format!("cannot sync the spool {}: {e}", self.spool.path().display()))?;
        if !read_any && self.last_saved == Some(marks) {
            return Ok(());
        }
        save_checkpoint(&self.checkpoint_path, &self.sources, &self.derived, marks)?;
        self.last_saved = Some(marks);
        Ok(())
    }
}

/// Writes the checkpoint: positions and counters as of now (the reader is between rounds, so
/// they agree), with the given spool marks.
fn save_checkpoint(path: &std::path::Path, sources: &[Source], derived: &Mutex<Derived>, marks: SpoolMarks) -> Result<(), String> {
    let derived = derived.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let files = sources.iter().filter_map(|s| Some((s.name.clone(), s.tailer.position()?))).collect();
    let c = Checkpoint { version: VERSION, files, derived, spool: marks };
    c.save(path).map_err(|e| e.to_string())
}
