//! Durable storage of the metadata image: a JSON snapshot replaced atomically (write to a
//! temporary file, fsync, rename, fsync the directory) on every change.
//!
//! This is the single-node stand-in for KRaft's `__cluster_metadata` log; the image it holds is
//! what a Raft state machine would apply.
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::image::MetadataImage;

const FILE_NAME: &str = "lantern-metadata.json";

/// Errors reading or writing the metadata snapshot.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} metadata snapshot {path}: {err}")]
    Io { action: &'static str, path: PathBuf, err: std::io::Error },
    #[error("metadata snapshot {path} is corrupt ({err}); restore it from a backup or remove it to start with no topics")]
    Corrupt { path: PathBuf, err: serde_json::Error },
}

/// The snapshot file in `metadata.log.dir`.
pub struct MetadataStore {
    path: PathBuf,
}

impl MetadataStore {
    pub fn new(dir: &Path) -> Self {
        Self { path: dir.join(FILE_NAME) }
    }

    /// Loads the image, or `None` when the broker has never stored one.
    pub fn load(&self) -> Result<Option<MetadataImage>, StoreError> {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(StoreError::Io { action: "read", path: self.path.clone(), err }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|err| StoreError::Corrupt { path: self.path.clone(), err })
    }

    /// Replaces the stored image atomically and durably.
    pub fn save(&self, image: &MetadataImage) -> Result<(), StoreError> {
        let io = |action, err| StoreError::Io { action, path: self.path.clone(), err };
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(image).map_err(|e| io("encode", std::io::Error::other(e)))?;
        let mut f = File::create(&tmp).map_err(|e| io("create", e))?;
        f.write_all(&bytes).map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("fsync", e))?;
        fs::rename(&tmp, &self.path).map_err(|e| io("rename", e))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("fsync directory of", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::new(dir.path());
        assert!(store.load().unwrap().is_none());
        let image = MetadataImage { cluster_id: "c".into(), next_producer_id: 1000, ..Default::default() };
        store.save(&image).unwrap();
        assert_eq!(store.load().unwrap(), Some(image));
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
    }
}
