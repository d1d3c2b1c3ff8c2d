//! The checkpoint file: per configured path the file identity and offset read up to, the
//! derived counters as of exactly that offset, and the spool's marks (how much is spooled, how
//! much the broker acknowledged). One JSON document replaced atomically (write a temporary
//! file, fsync it, rename it over the old one, fsync the directory), so a kill -9 leaves either
//! the old or the new checkpoint, never a mix; offsets and counters always agree.
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::derived::Derived;
use super::tail::FilePosition;

/// How far one sink has had the spool: byte offset, and events before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub offset: u64,
    pub events: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolMarks {
    /// Bytes of the spool file that belong to this checkpoint (beyond: from a run that died).
    pub len: u64,
    pub events: u64,
    /// Spool offset up to which the broker acknowledged (acks=all).
    pub shipped_offset: u64,
    pub shipped_events: u64,
    /// Up to where the OTLP receiver acknowledged.
    #[serde(default)]
    pub otlp: Cursor,
}

impl SpoolMarks {
    pub fn shipped(&self) -> Cursor {
        Cursor { offset: self.shipped_offset, events: self.shipped_events }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub files: BTreeMap<String, FilePosition>,
    pub derived: Derived,
    pub spool: SpoolMarks,
}

pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read the checkpoint {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the checkpoint {path} is not a valid checkpoint ({source}); move it away to start over (logs are then read again from the start)")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("cannot write the checkpoint {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

impl Checkpoint {
    /// The checkpoint at `path`, or None if there is none yet.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        let text = match fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Read { path: path.into(), source }),
        };
        serde_json::from_slice(&text).map(Some).map_err(|source| CheckpointError::Parse { path: path.into(), source })
    }

    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let err = |source| CheckpointError::Write { path: path.into(), source };
        let body = serde_json::to_vec(self).map_err(|e| err(std::io::Error::other(e)))?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        fs::rename(&tmp, path).map_err(err)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // The rename is durable only once the directory is; a failure here is not fatal for
        // kill -9 (the page cache survives), so it is not reported.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::event::Facts;

    #[test]
    fn round_trip_replaces_atomically() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ck");
        assert!(Checkpoint::load(&p).unwrap().is_none());
        let mut c = Checkpoint { version: VERSION, ..Default::default() };
        c.files.insert("/var/log/b.log".into(), FilePosition { dev: 1, ino: 2, offset: 3 });
        c.derived.event(&Facts::Log { level: "ERROR".into(), logger: "kafka.server.KafkaServer".into() }, None, 0);
        c.spool = SpoolMarks { len: 10, events: 2, shipped_offset: 5, shipped_events: 1, otlp: Cursor { offset: 10, events: 2 } };
        c.save(&p).unwrap();
        c.spool.len = 20;
        c.save(&p).unwrap();
        assert_eq!(Checkpoint::load(&p).unwrap(), Some(c));
        assert!(!d.path().join("ck.tmp").exists());
    }

    #[test]
    fn garbage_is_an_error_that_says_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ck");
        fs::write(&p, "{").unwrap();
        let e = Checkpoint::load(&p).unwrap_err().to_string();
        assert!(e.contains("move it away"), "{e}");
    }
}
