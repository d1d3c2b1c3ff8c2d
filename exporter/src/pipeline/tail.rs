//! Follows one log file by path, as Filebeat's log input does: the file is known by its
//! (device, inode) identity, only complete `\n`-terminated lines are returned, and rotation is
//! survived both ways logrotate does it:
//! - rename + create: the old inode is read to its end, then the new file from offset 0;
//! - copytruncate: the same inode shrinking below our offset restarts it at 0.
//!
//! A missing file is waited for. The position is a [`FilePosition`] the checkpoint stores.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where reading of one configured path stands: which inode, and the byte offset just after
/// the last complete line handed out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

/// One complete line and the offset just after it (its newline included).
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    pub text: Vec<u8>,
    pub end_offset: u64,
}

/// What one poll found, besides lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Rename+create rotations and truncations seen.
    pub rotations: u64,
}

pub struct Tailer {
    path: PathBuf,
    open: Option<OpenFile>,
    /// Bytes read after the last newline: a partial line, completed by a later read.
    partial: Vec<u8>,
}

struct OpenFile {
    file: File,
    dev: u64,
    ino: u64,
    /// Offset just after the last complete line handed out.
    offset: u64,
}

/// Lines longer than this are cut into pieces rather than held in memory whole.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

impl Tailer {
    /// A tailer for `path`, resuming at `resume` if given. When the file at `path` is no longer
    /// that inode (rotated while we were not running), the rotated file is looked for in the same
    /// directory and finished first, as Filebeat's registry does.
    pub fn new(path: PathBuf, resume: Option<&FilePosition>) -> Self {
        let mut t = Tailer { path, open: None, partial: Vec::new() };
        if let Some(pos) = resume {
            let found = match std::fs::metadata(&t.path) {
                Ok(m) if (m.dev(), m.ino()) == (pos.dev, pos.ino) => Some(t.path.clone()),
                _ => find_inode_in_dir(&t.path, pos.dev, pos.ino),
            };
            if let Some(p) = found {
                if let Ok(file) = File::open(&p) {
                    if let Ok(m) = file.metadata() {
                        if (m.dev(), m.ino()) == (pos.dev, pos.ino) {
                            // A file truncated while we were away restarts at 0.
                            let offset = if m.len() < pos.offset { 0 } else { pos.offset };
                            t.open = Some(OpenFile { file, dev: pos.dev, ino: pos.ino, offset });
                        }
                    }
                }
            }
        }
        t
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a restart should resume (None until the file was first seen).
    pub fn position(&self) -> Option<FilePosition> {
        self.open.as_ref().map(|o| FilePosition { dev: o.dev, ino: o.ino, offset: o.offset })
    }

    /// Reads what is new, up to about `max_bytes`, and returns the complete lines.
    pub fn poll(&mut self, max_bytes: usize, lines: &mut Vec<Line>) -> std::io::Result<PollReport> {
        let mut report = PollReport::default();
        let on_disk = match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino(), m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let Some(open) = &self.open else {
            if on_disk.is_some() {
                self.open_current(0)?;
                return self.read_available(max_bytes, lines).map(|_| report);
            }
            return Ok(report);
        };
        match on_disk {
            Some((dev, ino, len)) if (dev, ino) == (open.dev, open.ino) => {
                if len < open.offset {
                    // copytruncate (or any truncation): the content we had is gone; start over.
                    report.rotations += 1;
                    self.partial.clear();
                    if let Some(o) = self.open.as_mut() {
                        o.offset = 0;
                    }
                }
                self.read_available(max_bytes, lines)?;
            }
            Some(_) => {
                // Renamed away and a new file created: finish the old inode first.
                let before = lines.len();
                if self.read_available(max_bytes, lines)? {
                    report.rotations += 1;
                    // A partial line at the end of the old file is never completed; it is not an event.
                    self.partial.clear();
                    self.open_current(0)?;
                    self.read_available(max_bytes.saturating_sub(bytes_in(&lines[before..])), lines)?;
                }
            }
            // Renamed away and nothing created yet: keep reading the old inode.
            None => {
                self.read_available(max_bytes, lines)?;
            }
        }
        Ok(report)
    }

    fn open_current(&mut self, offset: u64) -> std::io::Result<()> {
        let file = File::open(&self.path)?;
        let m = file.metadata()?;
        self.partial.clear();
        self.open = Some(OpenFile { file, dev: m.dev(), ino: m.ino(), offset });
        Ok(())
    }

    /// Reads from the open file up to about `max_bytes`; returns whether it reached EOF.
    fn read_available(&mut self, max_bytes: usize, lines: &mut Vec<Line>) -> std::io::Result<bool> {
        let Some(open) = self.open.as_mut() else { return Ok(true) };
        let start = open.offset + self.partial.len() as u64;
        open.file.seek(SeekFrom::Start(start))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut read_total = 0usize;
        loop {
            if read_total >= max_bytes {
                return Ok(false);
            }
            let n = open.file.read(&mut buf)?;
            if n == 0 {
                return Ok(true);
            }
            read_total += n;
            let mut rest = &buf[..n];
            while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                self.partial.extend_from_slice(&rest[..i]);
                open.offset += self.partial.len() as u64 + 1;
                lines.push(Line { text: std::mem::take(&mut self.partial), end_offset: open.offset });
                rest = &rest[i + 1..];
            }
            self.partial.extend_from_slice(rest);
            if self.partial.len() >= MAX_LINE_BYTES {
                open.offset += self.partial.len() as u64;
                lines.push(Line { text: std::mem::take(&mut self.partial), end_offset: open.offset });
            }
        }
    }
}

fn bytes_in(lines: &[Line]) -> usize {
    lines.iter().map(|l| l.text.len() + 1).sum()
}

/// A file in `path`'s directory with that identity (the rotated-away old file), if any.
fn find_inode_in_dir(path: &Path, dev: u64, ino: u64) -> Option<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
        std::fs::metadata(p).map(|m| m.is_file() && m.dev() == dev && m.ino() == ino).unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(p: &Path, s: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    fn poll(t: &mut Tailer) -> (Vec<String>, u64) {
        let mut lines = Vec::new();
        let r = t.poll(1 << 20, &mut lines).unwrap();
        (lines.into_iter().map(|l| String::from_utf8(l.text).unwrap()).collect(), r.rotations)
    }

    #[test]
    fn waits_for_a_missing_file_and_returns_only_complete_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let mut t = Tailer::new(p.clone(), None);
        assert_eq!(poll(&mut t), (vec![], 0));
        append(&p, "one\ntw");
        assert_eq!(poll(&mut t), (vec!["one".to_string()], 0));
        assert_eq!(t.position().unwrap().offset, 4);
        append(&p, "o\nthree\n");
        assert_eq!(poll(&mut t), (vec!["two".to_string(), "three".to_string()], 0));
    }

    #[test]
    fn rename_and_create_finishes_the_old_inode_then_reads_the_new_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        append(&p, "1\n");
        let mut t = Tailer::new(p.clone(), None);
        assert_eq!(poll(&mut t).0, vec!["1"]);
        append(&p, "2\n");
        std::fs::rename(&p, d.path().join("a.log.1")).unwrap();
        append(&d.path().join("a.log.1"), "3\n");
        append(&p, "4\n");
        assert_eq!(poll(&mut t), (vec!["2".into(), "3".into(), "4".into()], 1));
        assert_eq!(t.position().unwrap().offset, 2);
    }

    #[test]
    fn truncation_restarts_at_zero() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        append(&p, "aaaa\nbbbb\n");
        let mut t = Tailer::new(p.clone(), None);
        assert_eq!(poll(&mut t).0.len(), 2);
        std::fs::OpenOptions::new().write(true).truncate(true).open(&p).unwrap();
        append(&p, "c\n");
        assert_eq!(poll(&mut t), (vec!["c".to_string()], 1));
    }

    #[test]
    fn resume_finds_a_file_rotated_while_stopped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        append(&p, "1\n2\n");
        let mut t = Tailer::new(p.clone(), None);
        let mut lines = Vec::new();
        t.poll(1 << 20, &mut lines).unwrap();
        let pos = FilePosition { offset: 2, ..t.position().unwrap() };
        std::fs::rename(&p, d.path().join("a.log.1")).unwrap();
        append(&p, "3\n");
        let mut t = Tailer::new(p.clone(), Some(&pos));
        assert_eq!(poll(&mut t), (vec!["2".into(), "3".into()], 1));
    }
}
