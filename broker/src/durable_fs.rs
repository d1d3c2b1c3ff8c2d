//! Directories that survive a power cut. A new name (a file created, a directory made, a
//! rename) is durable only once its parent directory is fsynced (fsync(2): "an explicit
//! fsync() on a file descriptor for the directory is also needed"); ext4 and XFS usually
//! persist it with the first fsync of the new file, but promise nothing. A partition's
//! directory made without that can vanish in a power cut with every record fsynced into it
//! (tests/test_power_loss.py, on a file system that models exactly this, found it so).
use std::fs::{self, File};
use std::io;
use std::path::Path;

/// fsyncs a directory: the names created, renamed or removed in it become durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `fs::create_dir_all`, then the parent of every directory it made is fsynced, so the new
/// directories are still there after a power cut. Returns how many it made (0: `dir` existed).
pub fn create_dir_all(dir: &Path) -> io::Result<usize> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.try_exists()? {
        missing.push(at);
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => break,
        }
    }
    if missing.is_empty() {
        return Ok(0);
    }
    fs::create_dir_all(dir)?;
    for made in &missing {
        let parent = made.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        sync_dir(parent)?;
    }
    Ok(missing.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_missing_directories_and_counts_them() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a").join("b").join("c");
        assert_eq!(create_dir_all(&deep).unwrap(), 3);
        assert!(deep.is_dir());
        assert_eq!(create_dir_all(&deep).unwrap(), 0, "an existing directory is left alone");
        assert_eq!(create_dir_all(&root.path().join("a").join("d")).unwrap(), 1);
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("f"), b"").unwrap();
        assert!(create_dir_all(&root.path().join("f").join("g")).is_err());
    }
}
