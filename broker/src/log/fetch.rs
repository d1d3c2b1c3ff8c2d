//! Reading a `PartitionLog`: Fetch (whole batches from an offset, bounded by bytes and the
//! high watermark) and ListOffsets lookups by timestamp.

use super::partition_log::PartitionLog;
use super::record_batch::{BatchHeader, HEADER_SIZE};
use super::records::{BatchRecords, DEFAULT_MAX_DECOMPRESSED};
use super::segment::Segment;
use super::LogError;
use bytes::Bytes;

/// Record data returned by [`PartitionLog::read`].
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

impl PartitionLog {
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }

    fn empty_slice(&self) -> FetchSlice {
        FetchSlice {
            records: Bytes::new(),
            first_batch_offset: None,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset(),
        }
    }

    /// Reads whole batches starting with the one that contains `fetch_offset`, up to
    /// `max_bytes` (but always the first batch, KIP-74), never including a batch whose base
    /// offset is >= `max_offset_exclusive` (the high watermark for consumers). An offset
    /// outside `[log_start_offset, log_end_offset]` is [`LogError::OffsetOutOfRange`]; the
    /// log end offset gives an empty slice. One buffer is allocated per read, and not zeroed.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize, max_offset_exclusive: i64) -> Result<FetchSlice, LogError> {
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
            return Ok(self.empty_slice());
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
            return Ok(self.empty_slice());
        };
        if first_header.base_offset >= max_offset_exclusive {
            return Ok(self.empty_slice());
        }
        let budget = max_bytes.max(first_header.total_size()) as u64;
        let ranges = || {
            self.segments[first_segment..].iter().enumerate().map(move |(k, s)| {
                let start = if k == 0 { first_pos } else { 0 };
                (s, start, s.size() - start)
            })
        };
        let mut total = 0u64;
        for (_, _, available) in ranges() {
            total += available.min(budget - total);
            if total == budget {
                break;
            }
        }
        // Read straight into uninitialised capacity: zero-filling megabytes per partition
        // showed up in the 100-partition consume profile (docs/benchmarks.md).
        let total = total as usize;
        let mut buf = Vec::with_capacity(total);
        for (segment, start, available) in ranges() {
            let n = available.min((total - buf.len()) as u64) as usize;
            segment.append_exact_at(start, n, &mut buf)?;
            if buf.len() == total {
                break;
            }
        }
        let keep = whole_batches_below(&buf, max_offset_exclusive);
        if keep == 0 {
            let segment = &self.segments[first_segment];
            return Err(LogError::CorruptSegment {
                path: segment.path().to_path_buf(),
                position: first_pos,
                reason: "batch changed between header scan and read".to_string(),
            });
        }
        buf.truncate(keep);
        Ok(FetchSlice {
            records: Bytes::from(buf),
            first_batch_offset: Some(first_header.base_offset),
            log_start_offset: self.log_start_offset,
            log_end_offset: end,
        })
    }

    /// ListOffsets by timestamp: the earliest offset whose record timestamp is >= `timestamp`,
    /// with that record's timestamp; `None` if no record is that recent.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        self.ensure_live()?;
        for segment in &self.segments {
            if segment.max_timestamp() < timestamp {
                continue;
            }
            let start = u64::from(segment.index().lookup_timestamp(timestamp));
            for item in segment.headers_from(start) {
                let (pos, header) = item?;
                if header.max_timestamp < timestamp || header.last_offset() < self.log_start_offset {
                    continue;
                }
                if let Some(found) = self.record_at_or_after(segment, pos, &header, timestamp)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (-3): the offset and timestamp of the first record carrying
    /// the largest timestamp in the log; `None` for a log without timestamps.
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        let max = self.segments.iter().map(Segment::max_timestamp).max().unwrap_or(-1);
        if max < 0 {
            return Ok(None);
        }
        self.offset_for_timestamp(max)
    }

    /// The first record of the batch at `pos` with timestamp >= `timestamp`. Falls back to
    /// the batch's base offset and max timestamp if its records cannot be decoded.
    fn record_at_or_after(
        &self,
        segment: &Segment,
        pos: u64,
        header: &BatchHeader,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let mut batch = vec![0u8; header.total_size()];
        segment.read_exact_at(pos, &mut batch)?;
        let decoded = BatchRecords::decode(&batch, DEFAULT_MAX_DECOMPRESSED).and_then(|records| {
            for record in records.iter() {
                let record = record?;
                if record.timestamp >= timestamp && record.offset >= self.log_start_offset {
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
                Ok(Some((
                    header.base_offset.max(self.log_start_offset),
                    header.max_timestamp,
                )))
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
