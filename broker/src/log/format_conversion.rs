//! Conversion between the stored record format (batch v2) and the message formats of old
//! clients (magic 0/1, see `legacy_format.rs`), as Kafka's LogValidator (up-conversion on
//! Produce v0-2) and RecordsUtil.downConvert (Fetch v0-3) do.
//!
//! Up-conversion turns a whole message set into one v2 batch: no producer id, no headers,
//! magic 0 timestamps `NO_TIMESTAMP`, and the codec of the set's last compressed wrapper (the
//! topic's compression.type may still recompress it on append). Down-conversion turns each
//! stored batch into one wrapper of the same codec (or one message per record when the batch
//! is uncompressed), drops headers and control batches, and keeps offsets and timestamps.
use super::legacy_format::{self, LegacyFormatError, LegacyRecord, LegacyWriter};
use super::log_validator::{codec_bits, compress};
use super::record_batch::{encode_batch, put_varint, BatchHeader, Compression, TimestampType, ATTR_TIMESTAMP_TYPE, MAGIC_V2, NO_PRODUCER_ID};
use super::records::BatchRecords;

/// Most records one converted batch may hold (offset deltas are i32; far above what any old
/// client puts in one request).
pub const MAX_CONVERTED_RECORDS: usize = 1 << 20;

/// The magic a consumer fetching with `version` reads (Kafka's FetchRequest: v0-1 magic 0,
/// v2-3 magic 1, v4+ record batches).
pub fn fetch_magic(version: i16) -> Option<i8> {
    match version {
        ..=1 => Some(0),
        2..=3 => Some(1),
        _ => None,
    }
}

/// One v2 batch (base offset 0, for the log to assign) holding every record of the old-format
/// message set `set`. `max_decompressed` bounds the records of the whole set, not of each
/// wrapper: a small request of many highly compressed wrappers must not grow the batch (and
/// the memory behind it) without limit.
pub fn up_convert(set: &[u8], max_decompressed: usize) -> Result<Vec<u8>, LegacyFormatError> {
    let messages = legacy_format::messages(set)?;
    let mut builder = V2Builder::default();
    let mut codec = Compression::None;
    let mut inner_buf = Vec::new();
    let too_large = LegacyFormatError::DecompressedTooLarge { max: max_decompressed };
    for m in &messages {
        if m.codec == Compression::None {
            builder.push(&m.record)?;
        } else {
            codec = m.codec;
            let budget = max_decompressed.saturating_sub(builder.section.len());
            let inner = legacy_format::inner_records(m, &mut inner_buf, budget).map_err(|e| match e {
                LegacyFormatError::DecompressedTooLarge { .. } => too_large.clone(),
                other => other,
            })?;
            for r in inner {
                builder.push(&r)?;
            }
        }
        if builder.section.len() > max_decompressed {
            return Err(too_large);
        }
    }
    builder.finish(codec)
}

/// The stored batches `records` as an old-format message set of `magic`, for a consumer that
/// asked from `fetch_offset`, and how many records it holds. Uncompressed batches lose the
/// records before `fetch_offset` (a compressed wrapper is kept whole: its consumer skips them,
/// as with Kafka). The set is at most `records.len()` bytes, or its first message when that is
/// larger, as Kafka's LazyDownConversionRecords sends: small records grow as old messages, and
/// the read was sized to the consumer's limits.
pub fn down_convert(records: &[u8], magic: i8, fetch_offset: i64, max_decompressed: usize) -> Result<(Vec<u8>, u64), String> {
    let mut out = LegacyWriter::new(magic);
    let mut converted = 0u64;
    let mut at = 0usize;
    let fits = |out: &LegacyWriter, entry: usize| out.is_empty() || out.len() + entry <= records.len();
    while at < records.len() {
        let header = BatchHeader::parse(&records[at..]).map_err(|e| e.to_string())?;
        let size = header.total_size();
        let Some(batch) = records.get(at..at + size) else { break };
        at += size;
        if header.is_control() {
            continue;
        }
        let codec = header.compression().map_err(|e| e.to_string())?;
        if codec == Compression::Zstd {
            return Err("a zstd batch cannot be given to a consumer of magic 0/1".into());
        }
        let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
        let stamp = |t: i64| if log_append_time { header.max_timestamp } else { t };
        let decoded = BatchRecords::decode(batch, max_decompressed).map_err(|e| e.to_string())?;
        if codec == Compression::None {
            for r in decoded.iter() {
                let r = r.map_err(|e| e.to_string())?;
                if r.offset >= fetch_offset {
                    if !fits(&out, out.entry_size(r.key, r.value)) {
                        return Ok((out.finish(), converted));
                    }
                    out.push(r.offset, stamp(r.timestamp), log_append_time, Compression::None, r.key, r.value);
                    converted += 1;
                }
            }
            continue;
        }
        let mut inner = LegacyWriter::new(magic);
        let (mut last_offset, mut max_timestamp, mut inner_count) = (None, i64::MIN, 0u64);
        for r in decoded.iter() {
            let r = r.map_err(|e| e.to_string())?;
            let inner_offset = if magic >= 1 { r.offset - header.base_offset } else { r.offset };
            inner.push(inner_offset, stamp(r.timestamp), log_append_time, Compression::None, r.key, r.value);
            last_offset = Some(r.offset);
            converted += 1;
            inner_count += 1;
            max_timestamp = max_timestamp.max(stamp(r.timestamp));
        }
        // Inner offsets relative to the batch base and the wrapper at the last record there
        // is: the consumer's (wrapper - last inner + inner) gives each record its offset, also
        // in a compacted batch with gaps.
        let Some(last_offset) = last_offset else { continue };
        let value = legacy_format::compress_inner(codec, magic, &inner.finish()).map_err(|e| e.to_string())?;
        if !fits(&out, out.entry_size(None, Some(&value))) {
            return Ok((out.finish(), converted - inner_count));
        }
        out.push(last_offset, max_timestamp, log_append_time, codec, None, Some(&value));
    }
    Ok((out.finish(), converted))
}

/// Whether every batch of `records` is uncompressed: only then is down-converting them cheap
/// enough for an async worker. A few KiB of compressed batches can decompress to the
/// decompression cap and be compressed again, CPU that belongs on a blocking thread.
pub fn is_uncompressed(records: &[u8]) -> bool {
    let mut at = 0usize;
    while at < records.len() {
        let Ok(header) = BatchHeader::parse(&records[at..]) else { return false };
        if header.compression() != Ok(Compression::None) {
            return false;
        }
        at += header.total_size();
    }
    true
}

/// Accumulates up-converted records into one v2 batch.
#[derive(Default)]
struct V2Builder {
    section: Vec<u8>,
    count: usize,
    base_timestamp: i64,
    max_timestamp: i64,
    log_append_time: bool,
}

impl V2Builder {
    fn push(&mut self, r: &LegacyRecord<'_>) -> Result<(), LegacyFormatError> {
        if self.count >= MAX_CONVERTED_RECORDS {
            return Err(LegacyFormatError::TooManyRecords { max: MAX_CONVERTED_RECORDS });
        }
        if self.count == 0 {
            self.base_timestamp = r.timestamp;
            self.max_timestamp = r.timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(r.timestamp);
        self.log_append_time |= r.log_append_time;
        let mut body = Vec::with_capacity(16 + r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len));
        body.push(0); // record attributes
        put_varint(&mut body, r.timestamp.wrapping_sub(self.base_timestamp));
        put_varint(&mut body, self.count as i64);
        for field in [r.key, r.value] {
            match field {
                Some(b) => {
                    put_varint(&mut body, b.len() as i64);
                    body.extend_from_slice(b);
                }
                None => put_varint(&mut body, -1),
            }
        }
        put_varint(&mut body, 0); // no headers
        put_varint(&mut self.section, body.len() as i64);
        self.section.extend_from_slice(&body);
        self.count += 1;
        Ok(())
    }

    fn finish(self, codec: Compression) -> Result<Vec<u8>, LegacyFormatError> {
        let encode_failed = |reason: String| LegacyFormatError::Encode { reason };
        let section = compress(codec, -1, &self.section).map_err(|e| encode_failed(e.to_string()))?;
        let count = i32::try_from(self.count).map_err(|e| encode_failed(e.to_string()))?;
        let header = BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: MAGIC_V2,
            crc: 0,
            attributes: codec_bits(codec) | if self.log_append_time { ATTR_TIMESTAMP_TYPE } else { 0 },
            last_offset_delta: count - 1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: count,
        };
        encode_batch(&header, &section).map_err(|e| encode_failed(e.to_string()))
    }
}

#[cfg(test)]
#[path = "format_conversion_tests.rs"]
mod tests;
