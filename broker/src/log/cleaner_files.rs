//! The cleaner's files in a partition directory: the `.cleaned` -> `.swap` -> `.log`
//! replacement of a segment, its crash recovery, and the `cleaner-offset-checkpoint` file.
//!
//! Replacing segment `<base>`: the filtered copy is written to `<base>.log.cleaned` and
//! fsynced; it is renamed to `<base>.log.swap` (the commit point: from here on the copy
//! wins) and the directory fsynced; the segment's index files are removed (they describe the
//! old bytes); `.swap` is renamed over `.log` and the directory fsynced again. After a crash,
//! [`finish_interrupted_swaps`] deletes a `.cleaned` file (incomplete) and finishes a `.swap`
//! (complete), so the segment is either the old one or the cleaned one, never a mix; missing
//! index files are rebuilt by the normal recovery of `PartitionLog::open`.

use super::partition_log::sync_dir;
use super::segment::{SegmentFile, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use super::LogError;
use std::fs::{self, File};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};

/// File (in the partition directory) holding the cleaner's first dirty offset.
pub const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Suffix added to `<base>.log` while a cleaned copy is being written.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix added to `<base>.log` once a cleaned copy is complete and must replace it.
pub const SWAP_SUFFIX: &str = ".swap";
/// Format version on the checkpoint file's first line; the offset is on the second.
const CHECKPOINT_VERSION: &str = "0";
/// Buffer and chunk size for writing a cleaned copy.
const COPY_CHUNK: usize = 1 << 20;

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(LogError::io("removing", path)(e)),
        _ => Ok(()),
    }
}

/// Removes a segment's index files so they are rebuilt from its (replaced) log.
fn remove_index_files(dir: &Path, stem: &str) -> Result<(), LogError> {
    remove_if_present(&dir.join(format!("{stem}{INDEX_SUFFIX}")))?;
    remove_if_present(&dir.join(format!("{stem}{TIME_INDEX_SUFFIX}")))
}

/// Crash recovery of an interrupted clean, run before a log's segments are loaded.
pub fn finish_interrupted_swaps(dir: &Path) -> Result<(), LogError> {
    let cleaned_suffix = format!("{LOG_SUFFIX}{CLEANED_SUFFIX}");
    let swap_suffix = format!("{LOG_SUFFIX}{SWAP_SUFFIX}");
    let mut changed = false;
    for entry in fs::read_dir(dir).map_err(LogError::io("listing log directory", dir))? {
        let entry = entry.map_err(LogError::io("listing log directory", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.ends_with(&cleaned_suffix) {
            tracing::info!(target: "kafka.log.LogCleaner", file = %path.display(), "removing the output of an interrupted log clean");
            remove_if_present(&path)?;
            changed = true;
        } else if let Some(stem) = name.strip_suffix(&swap_suffix) {
            tracing::info!(target: "kafka.log.LogCleaner", file = %path.display(), "completing the segment swap of an interrupted log clean");
            remove_index_files(dir, stem)?;
            let log = dir.join(format!("{stem}{LOG_SUFFIX}"));
            fs::rename(&path, &log).map_err(LogError::io("renaming cleaned segment", &path))?;
            changed = true;
        }
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Reads the cleaner checkpoint in `dir`; `None` if there is none (everything is dirty) or
/// it is unreadable (warned about, and treated the same way).
pub fn load_checkpoint(dir: &Path) -> Result<Option<i64>, LogError> {
    let path = dir.join(CHECKPOINT_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io("reading", &path)(e)),
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    let parsed = match (lines.next(), lines.next()) {
        (Some(CHECKPOINT_VERSION), Some(offset)) => offset.trim().parse::<i64>().ok().filter(|o| *o >= 0),
        _ => None,
    };
    if parsed.is_none() {
        tracing::warn!(target: "kafka.log.LogCleaner", file = %path.display(), "ignoring an unreadable cleaner checkpoint; the whole log counts as dirty");
    }
    Ok(parsed)
}

/// Persists the checkpoint `offset` in `dir` (temp file, fsync, rename, directory fsync).
pub fn store_checkpoint(dir: &Path, offset: i64) -> Result<(), LogError> {
    let path = dir.join(CHECKPOINT_FILE);
    let tmp = with_suffix(&path, ".tmp");
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(format!("{CHECKPOINT_VERSION}\n{offset}\n").as_bytes())?;
        file.sync_all()
    };
    write().map_err(LogError::io("writing", &tmp))?;
    fs::rename(&tmp, &path).map_err(LogError::io("renaming", &tmp))?;
    sync_dir(dir)
}

/// The cleaned copy of one segment, fed batch by batch in order. The `.cleaned` file is
/// only created at the first change (the bytes before it are copied then), so a segment
/// with nothing to remove costs no writes.
pub struct CleanedOutput<'a> {
    segment: &'a SegmentFile,
    path: PathBuf,
    file: Option<BufWriter<File>>,
    size: u64,
}

impl<'a> CleanedOutput<'a> {
    pub fn new(segment: &'a SegmentFile) -> CleanedOutput<'a> {
        CleanedOutput { segment, path: with_suffix(segment.path(), CLEANED_SUFFIX), file: None, size: 0 }
    }

    /// Bytes of output so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The batch of `len` bytes at `position` stays as it is (`bytes`, if already read).
    pub fn keep(&mut self, position: u64, len: u64, bytes: Option<&[u8]>) -> Result<(), LogError> {
        if let Some(out) = self.file.as_mut() {
            match bytes {
                Some(bytes) => out.write_all(bytes).map_err(LogError::io("writing", &self.path))?,
                None => copy_range(self.segment, position, len, out, &self.path)?,
            }
        }
        self.size += len;
        Ok(())
    }

    /// The batch at `position` is replaced by `bytes` (empty: dropped).
    pub fn replace(&mut self, position: u64, bytes: &[u8]) -> Result<(), LogError> {
        if self.file.is_none() {
            let file = File::create(&self.path).map_err(LogError::io("creating", &self.path))?;
            let mut out = BufWriter::with_capacity(COPY_CHUNK, file);
            copy_range(self.segment, 0, position, &mut out, &self.path)?;
            self.file = Some(out);
        }
        if let Some(out) = self.file.as_mut() {
            out.write_all(bytes).map_err(LogError::io("writing", &self.path))?;
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs the copy; `None` if nothing changed (no file was written).
    pub fn finish(mut self) -> Result<Option<PathBuf>, LogError> {
        let Some(out) = self.file.take() else {
            return Ok(None);
        };
        let synced = out
            .into_inner()
            .map_err(|e| LogError::io("writing", &self.path)(e.into_error()))
            .and_then(|file| file.sync_all().map_err(LogError::io("syncing", &self.path)));
        if let Err(e) = synced {
            let _ = fs::remove_file(&self.path);
            return Err(e);
        }
        Ok(Some(std::mem::take(&mut self.path)))
    }
}

impl Drop for CleanedOutput<'_> {
    /// An abandoned copy (error part-way) is removed; a finished one has moved its path out.
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Deletes a finished copy that is not going to be installed.
pub fn discard(cleaned: &Path) -> Result<(), LogError> {
    remove_if_present(cleaned)
}

/// Replaces segments with their finished copies, given as (segment `.log` path, copy):
/// every copy is renamed to `<segment>.swap` (the commit point: from here on a restart
/// finishes the swap), the directory fsynced once, then each segment's index files are
/// removed (they describe the old bytes) and its `.swap` renamed over the `.log`, and the
/// directory fsynced again.
pub fn swap_in(dir: &Path, swaps: &[(PathBuf, PathBuf)]) -> Result<(), LogError> {
    crate::crash_point::reached("cleaner.before_swap");
    for (log_path, cleaned) in swaps {
        let swap = with_suffix(log_path, SWAP_SUFFIX);
        fs::rename(cleaned, &swap).map_err(LogError::io("renaming", cleaned))?;
    }
    sync_dir(dir)?;
    for (log_path, _) in swaps {
        if let Some(stem) = log_path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(LOG_SUFFIX)) {
            remove_index_files(dir, stem)?;
        }
        crate::crash_point::reached("cleaner.mid_swap");
        let swap = with_suffix(log_path, SWAP_SUFFIX);
        fs::rename(&swap, log_path).map_err(LogError::io("renaming", &swap))?;
    }
    sync_dir(dir)
}

/// Copies `len` bytes at `position` of `segment` to `out` in bounded chunks.
fn copy_range(
    segment: &SegmentFile,
    position: u64,
    len: u64,
    out: &mut impl Write,
    out_path: &Path,
) -> Result<(), LogError> {
    let mut chunk = vec![0u8; usize::try_from(len).map_or(COPY_CHUNK, |l| l.min(COPY_CHUNK))];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        segment.read_exact_at(position + done, &mut chunk[..n])?;
        out.write_all(&chunk[..n]).map_err(LogError::io("writing", out_path))?;
        done += n as u64;
    }
    Ok(())
}
