//! What a topic's configs ask of produced batches before they are appended (Kafka's
//! `LogValidator`): record timestamps within `message.timestamp.before.max.ms` /
//! `after.max.ms` of the broker's clock (CreateTime topics), the broker's clock as the batch
//! timestamp (`message.timestamp.type=LogAppendTime`), and the batch stored with the topic's
//! `compression.type` (recompressed when the producer used another codec).
//!
//! Runs on validated batches (`validate_produce_records`), outside the log's lock, before
//! offsets are assigned. Work is only done when a config asks for it: a CreateTime topic with
//! no timestamp bounds and `compression.type=producer` costs nothing here.
//!
//! As Kafka does, a LogAppendTime batch keeps its records as they are and gets the timestamp
//! type bit and maxTimestamp (readers take every record's timestamp from it); a recompressed
//! batch keeps its header fields (producer id, epoch, sequence, transactional bit) and its
//! records byte for byte, under the new codec.

use std::io::Write;

use super::record_batch::{BatchError, BatchHeader, Compression, TimestampType, ATTR_COMPRESSION_MASK, ATTR_TIMESTAMP_TYPE, CRC_START, HEADER_SIZE, NO_TIMESTAMP};
use super::records::{decompress, BatchRecords, RecordError};

const ATTRIBUTES_AT: usize = 21;
const MAX_TIMESTAMP_AT: usize = 35;

/// The codec a topic stores batches with (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicCompression {
    /// `producer`: as the producer compressed them.
    Producer,
    /// Every batch under this codec, with the level (`compression.gzip.level`,
    /// `compression.zstd.level`; -1 gzip's default) where the codec has one.
    Codec(Compression, i32),
}

impl TopicCompression {
    /// Parses `compression.type` (`uncompressed`, `gzip`, ...) with the topic's levels.
    pub fn from_config(name: &str, gzip_level: i32, zstd_level: i32) -> TopicCompression {
        match name.trim() {
            "uncompressed" => TopicCompression::Codec(Compression::None, 0),
            "gzip" => TopicCompression::Codec(Compression::Gzip, gzip_level),
            "snappy" => TopicCompression::Codec(Compression::Snappy, 0),
            "lz4" => TopicCompression::Codec(Compression::Lz4, 0),
            "zstd" => TopicCompression::Codec(Compression::Zstd, zstd_level),
            _ => TopicCompression::Producer,
        }
    }
}

/// The timestamp and compression settings of one topic, as they apply to a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendPolicy {
    pub log_append_time: bool,
    /// The resolved bounds (Kafka: `before`/`after.max.ms` unless left at Long.MAX_VALUE,
    /// then `message.timestamp.difference.max.ms`).
    pub before_max_ms: i64,
    pub after_max_ms: i64,
    pub compression: TopicCompression,
}

impl Default for AppendPolicy {
    fn default() -> AppendPolicy {
        AppendPolicy { log_append_time: false, before_max_ms: i64::MAX, after_max_ms: i64::MAX, compression: TopicCompression::Producer }
    }
}

impl AppendPolicy {
    /// Whether CreateTime records must be checked against the clock (which reads every record).
    fn checks_timestamps(&self) -> bool {
        !self.log_append_time && (self.before_max_ms != i64::MAX || self.after_max_ms != i64::MAX)
    }

    /// The codec `header`'s batch must be stored with, when it is not the batch's own.
    fn recompress_to(&self, header: &BatchHeader) -> Option<(Compression, i32)> {
        match (self.compression, header.compression()) {
            (TopicCompression::Codec(codec, level), Ok(own)) if own != codec => Some((codec, level)),
            _ => None,
        }
    }

    /// Whether [`apply`] has anything to do for these batches (cheap: headers only).
    pub fn applies_to(&self, headers: &[BatchHeader]) -> bool {
        self.log_append_time
            || self.checks_timestamps()
            || headers.iter().any(|h| h.timestamp_type() == TimestampType::LogAppendTime || self.recompress_to(h).is_some())
    }

    /// Whether [`apply`] may have to decompress these batches (so should run on a blocking
    /// thread when they are large).
    pub fn decompresses(&self, headers: &[BatchHeader]) -> bool {
        headers.iter().any(|h| self.recompress_to(h).is_some() || (self.checks_timestamps() && h.compression() != Ok(Compression::None)))
    }
}

/// Applies `policy` to the validated batches `records` (`headers` theirs) at broker time
/// `now_ms`. Returns the batches to append (rewritten only where needed), their headers, and
/// the LogAppendTime to report to the producer (-1 for CreateTime topics).
pub fn apply(
    policy: &AppendPolicy,
    records: Vec<u8>,
    headers: Vec<BatchHeader>,
    now_ms: i64,
    max_decompressed: usize,
) -> Result<(Vec<u8>, Vec<BatchHeader>, i64), BatchError> {
    if !policy.applies_to(&headers) {
        return Ok((records, headers, NO_TIMESTAMP));
    }
    let mut out = Vec::with_capacity(records.len());
    let mut at = 0usize;
    // Each refused record as (its position in the record set, Kafka's message); Kafka reports
    // them all, so the checks go on after the first.
    let mut refused: Vec<(i32, String)> = Vec::new();
    let mut first_index = 0i32;
    for header in &headers {
        let size = header.total_size();
        let batch = records.get(at..at + size).ok_or(BatchError::Truncated { needed: at + size, available: records.len() })?;
        if claims_log_append_time(policy, header) {
            refused.push((first_index, "Invalid timestamp type in message: Producer should not set timestamp type to LogAppendTime.".into()));
        }
        let recompress = policy.recompress_to(header);
        if policy.checks_timestamps() || recompress.is_some() {
            check_records(policy, batch, now_ms, max_decompressed, first_index, &mut refused)?;
        }
        if refused.is_empty() {
            let start = out.len();
            match recompress {
                Some((codec, level)) => out.extend(recompressed(batch, header, codec, level, max_decompressed)?),
                None => out.extend_from_slice(batch),
            }
            if policy.log_append_time {
                stamp_log_append_time(&mut out[start..], now_ms);
            }
        }
        first_index = first_index.saturating_add(header.records_count);
        at += size;
    }
    if !refused.is_empty() {
        return Err(BatchError::InvalidTimestamp { records: refused });
    }
    let headers = super::record_batch::validate_fetched_records(&out)?;
    Ok((out, headers, if policy.log_append_time { now_ms } else { NO_TIMESTAMP }))
}

/// A producer may not claim LogAppendTime (Kafka: "Producer should not set timestamp type to
/// LogAppendTime"), except that on a CreateTime topic such a batch stands for records whose
/// timestamp is its maxTimestamp, checked like any other. Kafka reports each record of such a
/// batch; this reports its first (the count in a hostile header could be anything).
fn claims_log_append_time(policy: &AppendPolicy, header: &BatchHeader) -> bool {
    header.timestamp_type() == TimestampType::LogAppendTime && (policy.log_append_time || header.max_timestamp == NO_TIMESTAMP)
}

/// Reads every record of the batch (so a recompressed batch holds only well-formed records,
/// as many as its header counts) and checks CreateTime timestamps against the bounds, adding
/// those out of them to `refused` (numbered from `first_index`).
fn check_records(
    policy: &AppendPolicy,
    batch: &[u8],
    now_ms: i64,
    max_decompressed: usize,
    first_index: i32,
    refused: &mut Vec<(i32, String)>,
) -> Result<(), BatchError> {
    let unreadable = |e: RecordError| match e {
        RecordError::Batch(e) => e,
        other => BatchError::UnreadableRecords { reason: other.to_string() },
    };
    let decoded = BatchRecords::decode(batch, max_decompressed).map_err(unreadable)?;
    let mut count = 0i64;
    for record in decoded.iter() {
        let record = record.map_err(unreadable)?;
        if policy.checks_timestamps() && record.timestamp != NO_TIMESTAMP {
            let diff = now_ms.saturating_sub(record.timestamp);
            if (diff > policy.before_max_ms || diff.saturating_neg() > policy.after_max_ms) && refused.len() < super::record_batch::MAX_RECORD_ERRORS {
                let index = first_index.saturating_add(i32::try_from(count).unwrap_or(i32::MAX));
                refused.push((
                    index,
                    format!(
                        "Timestamp {} of message with offset {} is out of range. The timestamp should be within [{}, {}]",
                        record.timestamp,
                        record.offset,
                        now_ms.saturating_sub(policy.before_max_ms),
                        now_ms.saturating_add(policy.after_max_ms)
                    ),
                ));
            }
        }
        count += 1;
    }
    if count != i64::from(decoded.header().records_count) {
        return Err(BatchError::UnreadableRecords { reason: format!("the batch counts {} records but holds {count}", decoded.header().records_count) });
    }
    Ok(())
}

/// Sets the LogAppendTime type bit and maxTimestamp of one batch and recomputes its CRC.
fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    if batch.len() < HEADER_SIZE {
        return;
    }
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]) | ATTR_TIMESTAMP_TYPE;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The batch with its records section under `codec`: the same header but for the codec bits,
/// batchLength and CRC.
fn recompressed(batch: &[u8], header: &BatchHeader, codec: Compression, level: i32, max_decompressed: usize) -> Result<Vec<u8>, BatchError> {
    let own = header.compression()?;
    let plain = decompress(own, &batch[HEADER_SIZE..], max_decompressed).map_err(|e| BatchError::UnreadableRecords { reason: e.to_string() })?;
    let section = compress(codec, level, &plain).map_err(|e| BatchError::UnreadableRecords { reason: format!("recompressing: {e}") })?;
    let batch_length = i32::try_from(HEADER_SIZE - 12 + section.len()).map_err(|_| BatchError::MessageTooLarge { size: section.len(), max: i32::MAX as usize })?;
    let mut out = Vec::with_capacity(HEADER_SIZE + section.len());
    out.extend_from_slice(&batch[..HEADER_SIZE]);
    out.extend_from_slice(&section);
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = (header.attributes & !ATTR_COMPRESSION_MASK) | codec_bits(codec);
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// The attribute bits (0-2) of a codec.
pub(crate) fn codec_bits(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Compresses a records section as Kafka's Java client does, so every client reads it:
/// gzip, xerial-framed snappy (32 KiB blocks), an LZ4 frame of independent 64 KiB blocks
/// without content checksum (what Kafka's Lz4BlockInputStream accepts), zstd.
pub fn compress(codec: Compression, level: i32, data: &[u8]) -> std::io::Result<Vec<u8>> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let level = if (1..=9).contains(&level) { flate2::Compression::new(level as u32) } else { flate2::Compression::default() };
            let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 2), level);
            e.write_all(data)?;
            e.finish()
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(data.len() / 2 + 16);
            out.extend_from_slice(b"\x82SNAPPY\x00");
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(32 * 1024) {
                let block = encoder.compress_vec(chunk).map_err(std::io::Error::other)?;
                let len = u32::try_from(block.len()).map_err(std::io::Error::other)?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend(block);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
            let info = FrameInfo::new().block_mode(BlockMode::Independent).block_size(BlockSize::Max64KB).content_checksum(false);
            let mut e = FrameEncoder::with_frame_info(info, Vec::with_capacity(data.len() / 2));
            e.write_all(data)?;
            e.finish().map_err(std::io::Error::other)
        }
        Compression::Zstd => zstd::encode_all(data, level),
    }
}

#[cfg(test)]
#[path = "log_validator_tests.rs"]
mod tests;
