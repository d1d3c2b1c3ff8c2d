//! `SegmentFile`: a segment's `.log` file as a reader sees it, a shared handle plus the size
//! the segment had when the handle was taken, so reads can run after the log's lock is
//! released (and on a blocking thread).
//!
//! Why that is safe: the bytes below a segment's size never change while the file is in
//! use. Appends only add after the end; the cleaner writes a new file and renames it over
//! the old name; retention and deletion unlink the file, and an open handle keeps an unlinked
//! file readable. The one exception is truncation (recovery at open, and a replication
//! follower's truncation once there is one): a reader racing it sees a short read (an I/O
//! error) or, if new batches were appended meanwhile, batches the log no longer holds at that
//! position; fetch checks batch boundaries but a follower truncation must fence readers first.

use super::record_batch::{BatchHeader, HEADER_SIZE};
use super::LogError;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// A shared, size-bounded read handle on one segment's log file. Cloning it is two
/// reference-count increments.
#[derive(Debug, Clone)]
pub struct SegmentFile {
    pub(super) file: Arc<File>,
    pub(super) path: Arc<Path>,
    /// Bytes readers may read: the segment's size when this handle was taken.
    pub(super) size: u64,
}

impl SegmentFile {
    pub fn new(file: Arc<File>, path: Arc<Path>, size: u64) -> SegmentFile {
        SegmentFile { file, path, size }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether both handles are the same open file (the cleaner checks that the segment it
    /// copied is still the one in the log before swapping its copy in).
    pub fn same_file(&self, other: &SegmentFile) -> bool {
        Arc::ptr_eq(&self.file, &other.file)
    }

    /// Reads exactly `buf.len()` bytes at `position`.
    pub fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> Result<(), LogError> {
        self.file
            .read_exact_at(buf, position)
            .map_err(LogError::io("reading", &self.path))
    }

    /// Appends exactly `len` bytes read at `position` to `buf`, reading into its spare
    /// capacity so the bytes are never zero-filled first (the fetch path's buffers are large).
    pub fn append_exact_at(&self, position: u64, len: usize, buf: &mut Vec<u8>) -> Result<(), LogError> {
        use std::os::fd::AsRawFd;
        buf.reserve(len);
        let mut done = 0usize;
        while done < len {
            let spare = buf.spare_capacity_mut();
            let want = len - done;
            // SAFETY: `spare` has at least `want` bytes of writable (uninitialised) capacity
            // (reserved above, and `done` of it is already counted in `buf.len()`); pread
            // only writes into it, and only the bytes it reports are marked initialised.
            let n = unsafe {
                libc::pread(
                    self.file.as_raw_fd(),
                    spare.as_mut_ptr().cast::<libc::c_void>(),
                    want,
                    (position + done as u64) as libc::off_t,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(LogError::io("reading", &self.path)(e));
            }
            if n == 0 {
                let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "segment shorter than its index says");
                return Err(LogError::io("reading", &self.path)(e));
            }
            // SAFETY: pread initialised `n` (<= want <= spare.len()) bytes after the old length.
            unsafe { buf.set_len(buf.len() + n as usize) };
            done += n as usize;
        }
        Ok(())
    }

    /// Iterates batch headers from `position` (a batch boundary) up to `size`.
    pub fn headers_from(&self, position: u64) -> HeaderScan<'_> {
        HeaderScan { file: self, position, failed: false }
    }
}

/// Iterator over batch headers, one pread of 61 bytes per batch.
pub struct HeaderScan<'a> {
    file: &'a SegmentFile,
    position: u64,
    failed: bool,
}

impl Iterator for HeaderScan<'_> {
    type Item = Result<(u64, BatchHeader), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        let seg = self.file;
        if self.failed || self.position >= seg.size {
            return None;
        }
        let corrupt = |position: u64, reason: String| LogError::CorruptSegment {
            path: seg.path.to_path_buf(),
            position,
            reason,
        };
        let result = (|| {
            if seg.size - self.position < HEADER_SIZE as u64 {
                return Err(corrupt(self.position, "partial batch header".to_string()));
            }
            let mut head = [0u8; HEADER_SIZE];
            seg.read_exact_at(self.position, &mut head)?;
            let header = BatchHeader::parse(&head).map_err(|e| corrupt(self.position, e.to_string()))?;
            let size = header.total_size() as u64;
            if size > seg.size - self.position {
                return Err(corrupt(self.position, "batch extends past the segment end".to_string()));
            }
            Ok((self.position, header))
        })();
        match &result {
            Ok((pos, header)) => self.position = pos + header.total_size() as u64,
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}
