//! Reading a `PartitionLog`: Fetch (whole batches from an offset, bounded by bytes and the
//! high watermark) and ListOffsets lookups by timestamp.
//!
//! Both are split in two so the log's lock is held only for the cheap part: under the lock,
//! `plan_read` / `plan_timestamp_lookup` find where the data is (index lookups and a few
//! 61-byte header reads) and take `SegmentFile` handles; after releasing it, `ReadPlan::read`
//! and `TimestampLookup::find` do the preads, scans and decompression, on a blocking thread
//! when they are large (see `segment_file` for why the files may be read unlocked).

use super::partition_log::PartitionLog;
use super::record_batch::{BatchHeader, HEADER_SIZE};
use super::records::{BatchRecords, DEFAULT_MAX_DECOMPRESSED};
use super::segment::{Segment, SegmentFile};
use super::LogError;
use bytes::Bytes;

/// Record data returned by [`ReadPlan::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSlice {
    /// Whole v2 batches, ready to send as a Fetch response's `records`.
    pub records: Bytes,
    /// Base offset of the first batch (may be below the fetch offset when it starts
    /// inside a batch: the client skips the records before its position).
    pub first_batch_offset: Option<i64>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// Where a fetch's bytes are, taken under the log's lock; [`ReadPlan::read`] reads them
/// without it.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    /// (file, position, length) in log order; empty when there is nothing to read.
    ranges: Vec<(SegmentFile, u64, usize)>,
    total: usize,
    first_batch_offset: Option<i64>,
    max_offset_exclusive: i64,
    log_start_offset: i64,
    log_end_offset: i64,
}

impl ReadPlan {
    fn empty(log: &PartitionLog) -> ReadPlan {
        ReadPlan {
            ranges: Vec::new(),
            total: 0,
            first_batch_offset: None,
            max_offset_exclusive: 0,
            log_start_offset: log.log_start_offset,
            log_end_offset: log.log_end_offset(),
        }
    }

    /// Bytes the read will pread (the slice may be shorter: a batch cut by the byte limit
    /// is dropped).
    pub fn bytes(&self) -> usize {
        self.total
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Preads the planned ranges into one buffer (allocated once, not zeroed) and keeps the
    /// whole batches below the plan's offset bound. Blocking I/O: large plans belong on a
    /// blocking thread.
    pub fn read(self) -> Result<FetchSlice, LogError> {
        let mut buf = Vec::with_capacity(self.total);
        for (file, start, len) in &self.ranges {
            file.append_exact_at(*start, *len, &mut buf)?;
        }
        let keep = whole_batches_below(&buf, self.max_offset_exclusive);
        if keep == 0 && !buf.is_empty() {
            let (file, start, _) = &self.ranges[0];
            return Err(LogError::CorruptSegment {
                path: file.path().to_path_buf(),
                position: *start,
                reason: "batch changed between header scan and read".to_string(),
            });
        }
        buf.truncate(keep);
        Ok(FetchSlice {
            records: Bytes::from(buf),
            first_batch_offset: self.first_batch_offset.filter(|_| keep > 0),
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
        })
    }
}

impl PartitionLog {
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }

    /// The base offset of the segment holding `offset` and of the one after it (i64::MAX for
    /// the active segment): a copy of this log keeps the same segment boundaries.
    pub fn segment_bounds(&self, offset: i64) -> (i64, i64) {
        let i = self.segment_index_for(offset);
        (self.segments[i].base_offset(), self.segments.get(i + 1).map_or(i64::MAX, |s| s.base_offset()))
    }

    /// Reads whole batches starting with the one that contains `fetch_offset`: see
    /// [`PartitionLog::plan_read`]. Blocking; holds `&self` for the whole read.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize, max_offset_exclusive: i64) -> Result<FetchSlice, LogError> {
        self.plan_read(fetch_offset, max_bytes, max_offset_exclusive)?.read()
    }

    /// Plans a read of whole batches starting with the one that contains `fetch_offset`, up
    /// to `max_bytes` (but always the first batch, KIP-74), never including a batch whose
    /// base offset is >= `max_offset_exclusive` (the high watermark for consumers). An offset
    /// outside `[log_start_offset, log_end_offset]` is [`LogError::OffsetOutOfRange`]; the
    /// log end offset plans an empty read.
    pub fn plan_read(&self, fetch_offset: i64, max_bytes: usize, max_offset_exclusive: i64) -> Result<ReadPlan, LogError> {
        self.ensure_live()?;
        let end = self.log_end_offset();
        if fetch_offset < self.log_start_offset || fetch_offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: end,
            });
        }
        if fetch_offset == end || fetch_offset >= max_offset_exclusive {
            return Ok(ReadPlan::empty(self));
        }
        // The first batch that ends at or after the fetch offset, in this or a later segment.
        let mut first = None;
        for (i, segment) in self
            .segments
            .iter()
            .enumerate()
            .skip(self.segment_index_for(fetch_offset))
        {
            if let Some((pos, header)) = segment.find_batch(fetch_offset)? {
                first = Some((i, pos, header));
                break;
            }
        }
        let Some((first_segment, first_pos, first_header)) = first else {
            return Ok(ReadPlan::empty(self));
        };
        if first_header.base_offset >= max_offset_exclusive {
            return Ok(ReadPlan::empty(self));
        }
        let budget = max_bytes.max(first_header.total_size()) as u64;
        let mut ranges = Vec::with_capacity(1);
        let mut total = 0u64;
        for (k, segment) in self.segments[first_segment..].iter().enumerate() {
            let start = if k == 0 { first_pos } else { 0 };
            let n = (segment.size() - start).min(budget - total);
            if n > 0 {
                ranges.push((segment.snapshot(), start, n as usize));
                total += n;
            }
            if total == budget {
                break;
            }
        }
        Ok(ReadPlan {
            ranges,
            total: total as usize,
            first_batch_offset: Some(first_header.base_offset),
            max_offset_exclusive,
            log_start_offset: self.log_start_offset,
            log_end_offset: end,
        })
    }

    /// ListOffsets by timestamp: the earliest offset whose record timestamp is >= `timestamp`,
    /// with that record's timestamp; `None` if no record is that recent. Blocking.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        self.plan_timestamp_lookup(timestamp)?.find()
    }

    /// ListOffsets MAX_TIMESTAMP (-3): the offset and timestamp of the first record carrying
    /// the largest timestamp in the log; `None` for a log without timestamps. Blocking.
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        self.plan_max_timestamp_lookup()?.find()
    }

    /// The segments a lookup of `timestamp` must scan, each from its time index's position.
    pub fn plan_timestamp_lookup(&self, timestamp: i64) -> Result<TimestampLookup, LogError> {
        self.ensure_live()?;
        let segments = self
            .segments
            .iter()
            .filter(|s| s.max_timestamp() >= timestamp)
            .map(|s| (s.snapshot(), u64::from(s.index().lookup_timestamp(timestamp))))
            .collect();
        Ok(TimestampLookup { segments, timestamp, log_start_offset: self.log_start_offset })
    }

    /// The lookup for ListOffsets MAX_TIMESTAMP: the largest timestamp in the log (nothing
    /// to scan when no batch carries a timestamp).
    pub fn plan_max_timestamp_lookup(&self) -> Result<TimestampLookup, LogError> {
        let max = self.segments.iter().map(Segment::max_timestamp).max().unwrap_or(-1);
        if max < 0 {
            self.ensure_live()?;
            return Ok(TimestampLookup { segments: Vec::new(), timestamp: max, log_start_offset: self.log_start_offset });
        }
        self.plan_timestamp_lookup(max)
    }
}

/// A ListOffsets lookup by timestamp, taken under the log's lock; [`TimestampLookup::find`]
/// scans (and decompresses) without it.
#[derive(Debug, Clone)]
pub struct TimestampLookup {
    /// Segments whose largest timestamp reaches the target, with the scan start position.
    segments: Vec<(SegmentFile, u64)>,
    timestamp: i64,
    log_start_offset: i64,
}

impl TimestampLookup {
    /// Scans batch headers and decodes the first batch that reaches the timestamp. Blocking
    /// I/O and decompression: run it on a blocking thread.
    pub fn find(&self) -> Result<Option<(i64, i64)>, LogError> {
        for (segment, start) in &self.segments {
            for item in segment.headers_from(*start) {
                let (pos, header) = item?;
                if header.max_timestamp < self.timestamp || header.last_offset() < self.log_start_offset {
                    continue;
                }
                if let Some(found) = self.record_at_or_after(segment, pos, &header)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// The first record of the batch at `pos` with timestamp >= the target. Falls back to
    /// the batch's base offset and max timestamp if its records cannot be decoded.
    fn record_at_or_after(&self, segment: &SegmentFile, pos: u64, header: &BatchHeader) -> Result<Option<(i64, i64)>, LogError> {
        let mut batch = vec![0u8; header.total_size()];
        segment.read_exact_at(pos, &mut batch)?;
        let decoded = BatchRecords::decode(&batch, DEFAULT_MAX_DECOMPRESSED).and_then(|records| {
            for record in records.iter() {
                let record = record?;
                if record.timestamp >= self.timestamp && record.offset >= self.log_start_offset {
                    return Ok(Some((record.offset, record.timestamp)));
                }
            }
            Ok(None)
        });
        match decoded {
            Ok(found) => Ok(found),
            Err(e) => {
                tracing::warn!(target: "kafka.log.UnifiedLog",
                    segment = %segment.path().display(),
                    base_offset = header.base_offset,
                    error = %e,
                    "cannot decode records for a timestamp lookup; answering with the batch's base offset"
                );
                Ok(Some((header.base_offset.max(self.log_start_offset), header.max_timestamp)))
            }
        }
    }
}

/// Length of the prefix of `buf` made of complete batches whose base offset is below
/// `max_offset_exclusive`.
fn whole_batches_below(buf: &[u8], max_offset_exclusive: i64) -> usize {
    let mut at = 0;
    while buf.len() - at >= HEADER_SIZE {
        let Ok(header) = BatchHeader::parse(&buf[at..]) else {
            break;
        };
        if header.base_offset >= max_offset_exclusive || header.total_size() > buf.len() - at {
            break;
        }
        at += header.total_size();
    }
    at
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
