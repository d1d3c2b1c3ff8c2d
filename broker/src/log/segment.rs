//! One log segment: `<base offset, 20 digits>.log` plus its `.index` and `.timeindex`.
//!
//! A segment appends whole batches at its end, serves positional reads (pread on a shared
//! `Arc<File>`: see `segment_file` for why reads and flushes may run without the log's lock),
//! scans batch headers, and recovers after a crash by validating every batch and truncating
//! at the first bad byte.

use super::index::SegmentIndex;
use super::record_batch::{BatchHeader, CRC_START, HEADER_SIZE};
pub use super::segment_file::{HeaderScan, SegmentFile};
use super::LogError;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// Largest segment size: index positions are 32-bit and Kafka keeps them non-negative.
pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

pub const LOG_SUFFIX: &str = ".log";
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
pub const DELETED_SUFFIX: &str = ".deleted";

/// File name stem of a segment: the base offset, zero-padded to 20 digits.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// What `recover` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub valid_bytes: u64,
    pub truncated_bytes: u64,
    pub batches: usize,
    /// Why the tail was cut, when it was.
    pub reason: Option<String>,
}

#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    /// The file, its path and its size (the size grows with appends).
    data: SegmentFile,
    index: SegmentIndex,
    next_offset: i64,
    rolling_base_ms: i64,
}

impl Segment {
    fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
        let stem = file_stem(base_offset);
        (
            dir.join(format!("{stem}{LOG_SUFFIX}")),
            dir.join(format!("{stem}{INDEX_SUFFIX}")),
            dir.join(format!("{stem}{TIME_INDEX_SUFFIX}")),
        )
    }

    /// Creates an empty segment (replacing any leftover file of that name, which can only
    /// hold data beyond the log end).
    pub fn create(dir: &Path, base_offset: i64, index_interval: usize, now_ms: i64) -> Result<Segment, LogError> {
        let (log_path, _, _) = Self::paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(LogError::io("creating segment", &log_path))?;
        Ok(Segment {
            base_offset,
            data: SegmentFile::new(Arc::new(file), log_path.into(), 0),
            index: SegmentIndex::new(base_offset, index_interval),
            next_offset: base_offset,
            rolling_base_ms: now_ms,
        })
    }

    /// Opens an existing segment. When its index files load and agree with the log, the
    /// tail after the last index entry is scanned to find the last offset and the segment is
    /// ready; otherwise the returned flag is true and the caller must run [`Segment::recover`].
    pub fn open(dir: &Path, base_offset: i64, index_interval: usize, now_ms: i64) -> Result<(Segment, bool), LogError> {
        let (log_path, index_path, time_path) = Self::paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(LogError::io("opening segment", &log_path))?;
        let size = file
            .metadata()
            .map_err(LogError::io("reading size of", &log_path))?
            .len();
        let loaded = SegmentIndex::load(&index_path, &time_path, base_offset, index_interval, size)
            .map_err(LogError::io("loading index of", &log_path))?;
        let mut segment = Segment {
            base_offset,
            data: SegmentFile::new(Arc::new(file), log_path.into(), size),
            index: SegmentIndex::new(base_offset, index_interval),
            next_offset: base_offset,
            rolling_base_ms: now_ms,
        };
        let needs_recovery = match loaded {
            Some(index) => !segment.adopt_index(index),
            None => true,
        };
        if !needs_recovery {
            segment.set_rolling_base(now_ms)?;
        }
        Ok((segment, needs_recovery))
    }

    /// Opens the cleaner's finished copy of segment `base_offset` (the file at `copy`) under
    /// the name it will have once swapped in, and rebuilds its index by a full scan, so
    /// that the swap itself, under the log's lock, only renames and writes index files.
    pub fn open_copy(copy: &Path, dir: &Path, base_offset: i64, index_interval: usize, now_ms: i64) -> Result<Segment, LogError> {
        let (log_path, _, _) = Self::paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(copy)
            .map_err(LogError::io("opening cleaned segment", copy))?;
        let mut segment = Segment {
            base_offset,
            data: SegmentFile::new(Arc::new(file), log_path.into(), 0),
            index: SegmentIndex::new(base_offset, index_interval),
            next_offset: base_offset,
            rolling_base_ms: now_ms,
        };
        segment.recover(now_ms)?;
        Ok(segment)
    }

    /// Accepts a loaded index if the batches after its last entry parse, start where the
    /// entry says, and end exactly at the end of the file.
    fn adopt_index(&mut self, index: SegmentIndex) -> bool {
        let expected = index
            .offset_entries()
            .last()
            .map(|e| self.base_offset.saturating_add(i64::from(e.relative_offset)));
        let mut last = None;
        let mut end = u64::from(index.last_position());
        for item in self.headers_from(end) {
            let Ok((pos, header)) = item else { return false };
            if last.is_none() && expected.is_some_and(|o| o != header.base_offset) {
                return false;
            }
            if header.base_offset < self.base_offset || last.is_some_and(|l| header.base_offset <= l) {
                return false;
            }
            last = Some(header.last_offset());
            end = pos + header.total_size() as u64;
        }
        if end != self.data.size || (self.data.size > 0 && last.is_none()) {
            return false;
        }
        self.next_offset = last.map_or(self.base_offset, |l| l.saturating_add(1));
        self.index = index;
        self.index.set_last_offset(last);
        true
    }

    /// Kafka-style roll clock for a reopened segment: its first batch's timestamp (not in
    /// the future), or now when the segment is empty or carries no timestamps.
    fn set_rolling_base(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.rolling_base_ms = now_ms;
        if let Some(first) = self.headers_from(0).next() {
            let (_, header) = first?;
            if header.max_timestamp >= 0 {
                self.rolling_base_ms = header.max_timestamp.min(now_ms);
            }
        }
        Ok(())
    }

    /// Validates every batch from the start (header, length within the file, magic 2, CRC,
    /// strictly increasing offsets), rebuilds the index, and truncates the file at the first
    /// invalid byte.
    pub fn recover(&mut self, now_ms: i64) -> Result<RecoveryReport, LogError> {
        let file_len = self
            .data
            .file
            .metadata()
            .map_err(LogError::io("reading size of", &self.data.path))?
            .len();
        let mut index = SegmentIndex::new(self.base_offset, self.index_interval());
        let mut reader = BufReader::with_capacity(64 * 1024, &*self.data.file);
        reader
            .seek(SeekFrom::Start(0))
            .map_err(LogError::io("seeking in", &self.data.path))?;
        let mut pos = 0u64;
        let mut last: Option<i64> = None;
        let mut batches = 0usize;
        let mut chunk = vec![0u8; 64 * 1024];
        let reason = loop {
            if pos == file_len {
                break None;
            }
            let mut head = [0u8; HEADER_SIZE];
            if file_len - pos < HEADER_SIZE as u64 {
                break Some(format!("partial batch header ({} bytes)", file_len - pos));
            }
            reader
                .read_exact(&mut head)
                .map_err(LogError::io("reading", &self.data.path))?;
            let header = match BatchHeader::parse(&head) {
                Ok(h) => h,
                Err(e) => break Some(e.to_string()),
            };
            let size = header.total_size() as u64;
            if size > file_len - pos {
                break Some(format!("batch of {size} bytes extends past the end of the file"));
            }
            if pos + size > MAX_SEGMENT_BYTES {
                break Some("batch extends past the 2 GiB segment limit".to_string());
            }
            let offsets_ok = header.base_offset >= self.base_offset
                && header.last_offset_delta >= 0
                && last.is_none_or(|l| header.base_offset > l)
                && header.last_offset() - self.base_offset <= i64::from(i32::MAX);
            if !offsets_ok {
                break Some(format!(
                    "batch offsets {}..={} do not follow {:?} in segment {}",
                    header.base_offset,
                    header.last_offset(),
                    last,
                    self.base_offset
                ));
            }
            let mut crc = crc32c::crc32c(&head[CRC_START..]);
            let mut left = size - HEADER_SIZE as u64;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                reader
                    .read_exact(&mut chunk[..n])
                    .map_err(LogError::io("reading", &self.data.path))?;
                crc = crc32c::crc32c_append(crc, &chunk[..n]);
                left -= n as u64;
            }
            if crc != header.crc {
                break Some(format!("CRC mismatch in batch at offset {}", header.base_offset));
            }
            index.on_batch(
                header.base_offset,
                header.last_offset(),
                header.max_timestamp,
                pos as u32,
                size as usize,
            );
            last = Some(header.last_offset());
            batches += 1;
            pos += size;
        };
        let truncated = file_len - pos;
        if truncated > 0 {
            tracing::warn!(target: "kafka.log.LogSegment", 
                segment = %self.data.path.display(),
                truncated_bytes = truncated,
                valid_bytes = pos,
                reason = reason.as_deref().unwrap_or("unknown"),
                "log recovery truncated an invalid segment tail (torn write or garbage)"
            );
            self.data.file
                .set_len(pos)
                .map_err(LogError::io("truncating", &self.data.path))?;
            self.data.file.sync_all().map_err(LogError::io("syncing", &self.data.path))?;
        }
        self.data.size = pos;
        self.index = index;
        self.next_offset = last.map_or(self.base_offset, |l| l.saturating_add(1));
        self.set_rolling_base(now_ms)?;
        Ok(RecoveryReport {
            valid_bytes: pos,
            truncated_bytes: truncated,
            batches,
            reason: reason.filter(|_| truncated > 0),
        })
    }

    fn index_interval(&self) -> usize {
        self.index.interval_bytes()
    }

    pub fn set_index_interval(&mut self, interval: usize) {
        self.index.set_interval_bytes(interval);
    }

    /// Appends validated, offset-stamped batches with one positional write.
    pub fn append(&mut self, data: &[u8]) -> Result<(), LogError> {
        if self.data.size + data.len() as u64 > MAX_SEGMENT_BYTES {
            return Err(LogError::InvalidAppend {
                reason: "segment would exceed 2 GiB; it must roll first",
            });
        }
        let mut at = 0;
        let mut next = self.next_offset;
        while at < data.len() {
            let header = BatchHeader::parse(&data[at..])?;
            if at + header.total_size() > data.len() {
                return Err(LogError::InvalidAppend {
                    reason: "batch length runs past the record set",
                });
            }
            if header.base_offset < next {
                return Err(LogError::InvalidAppend {
                    reason: "batch offsets must follow the log end offset",
                });
            }
            next = header.next_offset();
            at += header.total_size();
        }
        if let Err(e) = self.data.file.write_all_at(data, self.data.size) {
            // Best effort: drop a partial write so the file matches `size` again.
            let _ = self.data.file.set_len(self.data.size);
            return Err(LogError::io("appending to", &self.data.path)(e));
        }
        let mut at = 0;
        while at < data.len() {
            let header = BatchHeader::parse(&data[at..])?;
            let size = header.total_size();
            let position = (self.data.size + at as u64) as u32;
            self.index.on_batch(
                header.base_offset,
                header.last_offset(),
                header.max_timestamp,
                position,
                size,
            );
            at += size;
        }
        self.data.size += data.len() as u64;
        self.next_offset = next;
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes at `position`.
    pub fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> Result<(), LogError> {
        self.data.read_exact_at(position, buf)
    }

    /// Iterates batch headers from `position` (a batch boundary) to the end of the segment.
    pub fn headers_from(&self, position: u64) -> HeaderScan<'_> {
        self.data.headers_from(position)
    }

    /// A read handle bounded by the current size, usable after the log's lock is released.
    pub fn snapshot(&self) -> SegmentFile {
        self.data.clone()
    }

    /// The first batch whose last offset is >= `offset`, with its position.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let start = u64::from(self.index.lookup_offset(offset));
        for item in self.headers_from(start) {
            let (pos, header) = item?;
            if header.last_offset() >= offset {
                return Ok(Some((pos, header)));
            }
        }
        Ok(None)
    }

    /// fsyncs the log data (not metadata), making all appended batches durable.
    pub fn sync(&self) -> Result<(), LogError> {
        self.data.file.sync_data().map_err(LogError::io("syncing", &self.data.path))
    }

    /// Makes the segment read-only in spirit: fsync, final time index entry, index files.
    pub fn seal(&mut self) -> Result<(), LogError> {
        self.sync()?;
        self.index.seal();
        self.write_index_files()
    }

    pub fn write_index_files(&self) -> Result<(), LogError> {
        let dir = self.data.path.parent().unwrap_or(Path::new("."));
        let (_, index_path, time_path) = Self::paths(dir, self.base_offset);
        self.index
            .write_files(&index_path, &time_path)
            .map_err(LogError::io("writing index files of", &self.data.path))
    }

    /// Cuts the segment at `position` (a batch boundary) and rebuilds its state.
    pub fn truncate_to_position(&mut self, position: u64, now_ms: i64) -> Result<(), LogError> {
        self.data.file
            .set_len(position)
            .map_err(LogError::io("truncating", &self.data.path))?;
        self.recover(now_ms).map(|_| ())
    }

    /// Removes the segment's files: renamed to `*.deleted` first, so a crash mid-way leaves
    /// files that the next open recognises and removes rather than loads.
    pub fn delete(self) -> Result<(), LogError> {
        self.retire()?.remove()
    }

    /// The first half of [`Segment::delete`]: the renames, quick enough for under the log's
    /// lock. Removing the files (the file system frees a large file's blocks then) and
    /// closing the segment are left to the returned value, for after the lock is released.
    pub fn retire(self) -> Result<RetiredSegment, LogError> {
        let dir = self.data.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let (log, index, time) = Self::paths(&dir, self.base_offset);
        let mut renamed = Vec::with_capacity(3);
        for path in [log, index, time] {
            let mut deleted = path.clone().into_os_string();
            deleted.push(DELETED_SUFFIX);
            match fs::rename(&path, &deleted) {
                Ok(()) => renamed.push(PathBuf::from(deleted)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("renaming for deletion", &path)(e)),
            }
        }
        Ok(RetiredSegment { renamed, segment: Some(self) })
    }

    /// The segment's files now live in `dir` (its log directory was renamed).
    pub fn set_dir(&mut self, dir: &Path) {
        let (log_path, _, _) = Self::paths(dir, self.base_offset);
        self.data.path = log_path.into();
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.data.size
    }
    pub fn is_empty(&self) -> bool {
        self.data.size == 0
    }
    /// Offset after the last batch (the base offset when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn file(&self) -> Arc<File> {
        Arc::clone(&self.data.file)
    }
    pub fn path(&self) -> &Path {
        &self.data.path
    }
    pub fn index(&self) -> &SegmentIndex {
        &self.index
    }
    /// When the segment's roll clock started (creation time, or first batch timestamp).
    pub fn rolling_base_ms(&self) -> i64 {
        self.rolling_base_ms
    }
    /// Largest record timestamp, or -1.
    pub fn max_timestamp(&self) -> i64 {
        self.index.max_timestamp()
    }
    /// The data file's modification time in ms since the epoch (Kafka's segment
    /// `lastModified`, which ListOffsets v0 searches by), or -1 if it cannot be read.
    pub fn last_modified_ms(&self) -> i64 {
        self.data.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
    /// Kafka's `largestTimestamp` for time retention: the max timestamp, or the file's
    /// modification time when no batch carries a timestamp.
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp() >= 0 {
            return self.max_timestamp();
        }
        self.last_modified_ms()
    }
}

/// A segment whose files are renamed to `*.deleted` and not yet removed. Dropping it
/// removes them (errors are logged); [`RetiredSegment::remove`] reports them instead.
#[derive(Debug)]
pub struct RetiredSegment {
    renamed: Vec<PathBuf>,
    segment: Option<Segment>,
}

impl RetiredSegment {
    pub fn remove(mut self) -> Result<(), LogError> {
        self.segment.take();
        for path in std::mem::take(&mut self.renamed) {
            fs::remove_file(&path).map_err(LogError::io("removing", &path))?;
        }
        Ok(())
    }
}

impl Drop for RetiredSegment {
    fn drop(&mut self) {
        self.segment.take();
        for path in self.renamed.drain(..) {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(target: "kafka.log.LogSegment", file = %path.display(), error = %e, "could not remove a deleted segment's file; the next start removes it");
            }
        }
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
