//! Sparse per-segment indexes, in Kafka's on-disk formats:
//! `.index` (relative offset u32, file position u32; 8 bytes per entry) and
//! `.timeindex` (timestamp i64, relative offset u32; 12 bytes per entry), big-endian.
//!
//! An offset entry `(o, p)` says "the batch whose base offset is `base + o` starts at byte
//! `p`". A time entry `(t, o)` says "no record at offset <= `base + o` has a timestamp above
//! `t`" (t is the running maximum); the last time entry of a sealed segment carries the
//! segment's largest timestamp. Entries live in memory; the files are written when a segment
//! is sealed (rolled) or the log is closed, and are rebuilt from the log when missing or
//! inconsistent.

use super::record_batch::HEADER_SIZE;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

pub const OFFSET_ENTRY_SIZE: usize = 8;
pub const TIME_ENTRY_SIZE: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// Offset and time index of one segment.
#[derive(Debug, Clone)]
pub struct SegmentIndex {
    base_offset: i64,
    interval_bytes: usize,
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    bytes_since_last_entry: usize,
    max_timestamp: i64,
    last_offset: Option<i64>,
}

impl SegmentIndex {
    pub fn new(base_offset: i64, interval_bytes: usize) -> SegmentIndex {
        SegmentIndex {
            base_offset,
            interval_bytes,
            offsets: Vec::new(),
            times: Vec::new(),
            bytes_since_last_entry: 0,
            max_timestamp: -1,
            last_offset: None,
        }
    }

    pub fn interval_bytes(&self) -> usize {
        self.interval_bytes
    }

    pub fn set_interval_bytes(&mut self, interval_bytes: usize) {
        self.interval_bytes = interval_bytes;
    }

    fn relative(&self, offset: i64) -> u32 {
        // The segment rolls before a relative offset could exceed i32::MAX.
        u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX)
    }

    /// Records a batch appended at `position`; adds entries once `interval_bytes` of log
    /// have accumulated since the last entry.
    pub fn on_batch(&mut self, base_offset: i64, last_offset: i64, max_timestamp: i64, position: u32, size: usize) {
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
        self.last_offset = Some(last_offset);
        if self.bytes_since_last_entry >= self.interval_bytes {
            self.offsets.push(OffsetEntry {
                relative_offset: self.relative(base_offset),
                position,
            });
            self.push_time_entry(last_offset);
            self.bytes_since_last_entry = 0;
        }
        self.bytes_since_last_entry = self.bytes_since_last_entry.saturating_add(size);
    }

    fn push_time_entry(&mut self, last_offset: i64) {
        let newer = self.times.last().is_none_or(|t| self.max_timestamp > t.timestamp);
        if self.max_timestamp >= 0 && newer {
            let relative_offset = self.relative(last_offset);
            self.times.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset,
            });
        }
    }

    /// Adds the final time entry so the files carry the segment's largest timestamp.
    pub fn seal(&mut self) {
        if let Some(last) = self.last_offset {
            self.push_time_entry(last);
        }
    }

    /// Largest timestamp seen (or loaded from the time index); -1 if none.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Position to start scanning from to find `target`: the start of the last indexed
    /// batch whose base offset is <= target (0 if none).
    pub fn lookup_offset(&self, target: i64) -> u32 {
        let n = self
            .offsets
            .partition_point(|e| self.base_offset.saturating_add(i64::from(e.relative_offset)) <= target);
        n.checked_sub(1).map_or(0, |i| self.offsets[i].position)
    }

    /// Position to start scanning from to find the first record with timestamp >= `target`:
    /// every record before the returned position's batch has a smaller timestamp.
    pub fn lookup_timestamp(&self, target: i64) -> u32 {
        let n = self.times.partition_point(|e| e.timestamp < target);
        match n.checked_sub(1) {
            None => 0,
            Some(i) => {
                let after = self
                    .base_offset
                    .saturating_add(i64::from(self.times[i].relative_offset))
                    .saturating_add(1);
                self.lookup_offset(after)
            }
        }
    }

    /// Position of the last offset entry (0 if none): the place to resume a scan for the tail.
    pub fn last_position(&self) -> u32 {
        self.offsets.last().map_or(0, |e| e.position)
    }

    pub fn offset_entries(&self) -> &[OffsetEntry] {
        &self.offsets
    }

    pub fn time_entries(&self) -> &[TimeEntry] {
        &self.times
    }

    /// Writes both files atomically (temp file, fsync, rename).
    pub fn write_files(&self, offset_path: &Path, time_path: &Path) -> io::Result<()> {
        let mut buf = Vec::with_capacity(self.offsets.len() * OFFSET_ENTRY_SIZE);
        for e in &self.offsets {
            buf.extend_from_slice(&e.relative_offset.to_be_bytes());
            buf.extend_from_slice(&e.position.to_be_bytes());
        }
        write_atomically(offset_path, &buf)?;
        buf.clear();
        for e in &self.times {
            buf.extend_from_slice(&e.timestamp.to_be_bytes());
            buf.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        write_atomically(time_path, &buf)
    }

    /// Loads both files for a segment whose log holds `log_size` bytes. Returns `None` if a
    /// file is missing or the entries are inconsistent (not increasing, beyond the log, too
    /// many for its size), in which case the caller rebuilds the index from the log.
    pub fn load(
        offset_path: &Path,
        time_path: &Path,
        base_offset: i64,
        interval_bytes: usize,
        log_size: u64,
    ) -> io::Result<Option<SegmentIndex>> {
        // No more entries than batches could fit in the log.
        let max_entries = log_size / HEADER_SIZE as u64 + 1;
        let Some(offset_bytes) = read_bounded(offset_path, max_entries * OFFSET_ENTRY_SIZE as u64)? else {
            return Ok(None);
        };
        let Some(time_bytes) = read_bounded(time_path, max_entries * TIME_ENTRY_SIZE as u64)? else {
            return Ok(None);
        };
        if offset_bytes.len() % OFFSET_ENTRY_SIZE != 0 || time_bytes.len() % TIME_ENTRY_SIZE != 0 {
            return Ok(None);
        }
        let offsets: Vec<OffsetEntry> = offset_bytes
            .chunks_exact(OFFSET_ENTRY_SIZE)
            .map(|c| OffsetEntry {
                relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let times: Vec<TimeEntry> = time_bytes
            .chunks_exact(TIME_ENTRY_SIZE)
            .map(|c| TimeEntry {
                timestamp: i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            })
            .collect();
        let offsets_ok = offsets
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
            && offsets.iter().all(|e| u64::from(e.position) < log_size);
        let times_ok = times
            .windows(2)
            .all(|w| w[0].timestamp < w[1].timestamp && w[0].relative_offset <= w[1].relative_offset)
            && times.iter().all(|t| t.timestamp >= 0);
        if !offsets_ok || !times_ok {
            return Ok(None);
        }
        let last_position = offsets.last().map_or(0, |e| u64::from(e.position));
        let max_timestamp = times.last().map_or(-1, |t| t.timestamp);
        Ok(Some(SegmentIndex {
            base_offset,
            interval_bytes,
            offsets,
            times,
            bytes_since_last_entry: usize::try_from(log_size - last_position).unwrap_or(usize::MAX),
            max_timestamp,
            last_offset: None,
        }))
    }

    /// Notes the segment's last offset found by scanning after a load.
    pub fn set_last_offset(&mut self, last_offset: Option<i64>) {
        self.last_offset = last_offset;
    }
}

fn read_bounded(path: &Path, max_len: u64) -> io::Result<Option<Vec<u8>>> {
    match fs::metadata(path) {
        Ok(meta) if meta.len() > max_len => Ok(None),
        Ok(_) => fs::read(path).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(interval: usize) -> SegmentIndex {
        let mut idx = SegmentIndex::new(100, interval);
        // 10 batches of 3 records, 100 bytes each, timestamps rising by 10.
        for i in 0..10i64 {
            idx.on_batch(100 + 3 * i, 102 + 3 * i, 1000 + 10 * i, (i * 100) as u32, 100);
        }
        idx
    }

    #[test]
    fn entries_every_interval_bytes() {
        let idx = filled(250);
        let positions: Vec<u32> = idx.offset_entries().iter().map(|e| e.position).collect();
        assert_eq!(positions, vec![300, 600, 900]);
        assert_eq!(idx.offset_entries()[0].relative_offset, 9);
        assert_eq!(
            idx.time_entries()[0],
            TimeEntry {
                timestamp: 1030,
                relative_offset: 11
            }
        );
    }

    #[test]
    fn lookups() {
        let idx = filled(250);
        assert_eq!(idx.lookup_offset(50), 0);
        assert_eq!(idx.lookup_offset(108), 0);
        assert_eq!(idx.lookup_offset(109), 300);
        assert_eq!(idx.lookup_offset(125), 600);
        assert_eq!(idx.lookup_offset(10_000), 900);
        assert_eq!(idx.lookup_timestamp(0), 0);
        assert_eq!(idx.lookup_timestamp(1030), 0);
        // 1031: entry (1030, off 111) is below it, so scanning starts at the batch of 112.
        assert_eq!(idx.lookup_timestamp(1031), 300);
    }

    #[test]
    fn write_load_round_trip_and_inconsistency_detection() {
        let dir = tempfile::tempdir().unwrap();
        let (o, t) = (dir.path().join("a.index"), dir.path().join("a.timeindex"));
        let mut idx = filled(250);
        idx.seal();
        assert_eq!(idx.time_entries().last().unwrap().timestamp, 1090);
        idx.write_files(&o, &t).unwrap();
        let loaded = SegmentIndex::load(&o, &t, 100, 250, 1000).unwrap().unwrap();
        assert_eq!(loaded.offset_entries(), idx.offset_entries());
        assert_eq!(loaded.time_entries(), idx.time_entries());
        assert_eq!(loaded.max_timestamp(), 1090);
        // Positions beyond the log: inconsistent.
        assert!(SegmentIndex::load(&o, &t, 100, 250, 800).unwrap().is_none());
        // Torn file: inconsistent.
        let bytes = fs::read(&o).unwrap();
        fs::write(&o, &bytes[..5]).unwrap();
        assert!(SegmentIndex::load(&o, &t, 100, 250, 1000).unwrap().is_none());
        // Missing file.
        fs::remove_file(&t).unwrap();
        assert!(SegmentIndex::load(&o, &t, 100, 250, 1000).unwrap().is_none());
    }
}
