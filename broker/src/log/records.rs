//! The records inside one v2 batch: decompression (gzip, snappy, lz4, zstd) under a hard
//! size cap, and iteration yielding each record's absolute offset, timestamp, key and value.
//!
//! Used where the broker must look inside a batch (ListOffsets by timestamp). Everything
//! here reads untrusted bytes: lengths and counts are checked against the bytes actually
//! present before use, and decompressors stream into a buffer that may never exceed the cap.

use super::record_batch::{BatchError, BatchHeader, Compression, TimestampType, HEADER_SIZE};
use std::borrow::Cow;
use std::io::Read;
use thiserror::Error;

/// Default ceiling for a batch's decompressed records section.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 64 << 20;

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
const SNAPPY_FRAMED_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Why the records of a batch could not be read.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("malformed record: {what} at byte {at} of the records section; the batch is corrupt")]
    Malformed { what: &'static str, at: usize },
    #[error("could not decompress {codec} records: {reason}; the batch is corrupt or uses an unsupported variant of the codec")]
    Decompress { codec: &'static str, reason: String },
    #[error("decompressed records exceed the {limit}-byte limit; refusing a possible decompression bomb")]
    TooLarge { limit: usize },
}

impl RecordError {
    /// Kafka error code: every variant means the batch is unreadable (CORRUPT_MESSAGE).
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            RecordError::Batch(e) => e.kafka_error_code(),
            _ => crate::error_code::CORRUPT_MESSAGE,
        }
    }
}

/// One record, borrowed from the (decompressed) records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub header_count: usize,
    /// The stored timestamp delta (relative to the batch's base timestamp), whatever the
    /// batch's timestamp type; the cleaner re-bases it when it rewrites a batch.
    pub timestamp_delta: i64,
    /// Key, value and headers exactly as encoded (everything after the offset delta), so a
    /// record can be copied into a new batch without re-encoding its payload.
    pub encoded_fields: &'a [u8],
}

/// A batch with its records section ready to iterate (decompressed if needed).
#[derive(Debug)]
pub struct BatchRecords<'a> {
    header: BatchHeader,
    data: Cow<'a, [u8]>,
}

impl<'a> BatchRecords<'a> {
    /// Parses the header of the complete batch `batch` and decompresses its records,
    /// failing with [`RecordError::TooLarge`] rather than producing more than
    /// `max_decompressed` bytes.
    pub fn decode(batch: &'a [u8], max_decompressed: usize) -> Result<BatchRecords<'a>, RecordError> {
        let header = BatchHeader::parse(batch)?;
        let size = header.total_size();
        if batch.len() < size {
            return Err(BatchError::Truncated {
                needed: size,
                available: batch.len(),
            }
            .into());
        }
        let section = &batch[HEADER_SIZE..size];
        let data = match header.compression()? {
            Compression::None => Cow::Borrowed(section),
            codec => Cow::Owned(decompress(codec, section, max_decompressed)?),
        };
        Ok(BatchRecords { header, data })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Iterates the records; stops after the first error.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            header: self.header,
            data: &self.data,
            pos: 0,
            remaining: self.header.records_count.max(0),
            done: false,
        }
    }
}

/// Produce-time check for compacted topics (Kafka refuses keyless records there, since
/// compaction keeps one record per key): every record of every batch must have a non-null
/// key. `headers` are `validate_produce_records`'s output for `records`; compressed batches
/// are decompressed under `max_decompressed`.
pub fn validate_keys_for_compaction(
    records: &[u8],
    headers: &[BatchHeader],
    max_decompressed: usize,
) -> Result<(), BatchError> {
    let unreadable = |e: RecordError| match e {
        RecordError::Batch(e) => e,
        other => BatchError::UnreadableRecords {
            reason: other.to_string(),
        },
    };
    let mut at = 0usize;
    // Every keyless record is reported (KIP-467), so the client fails only those.
    let mut keyless = Vec::new();
    let mut index = 0i32;
    for header in headers {
        let end = at.saturating_add(header.total_size());
        let batch = records.get(at..end).ok_or(BatchError::Truncated {
            needed: end,
            available: records.len(),
        })?;
        let decoded = BatchRecords::decode(batch, max_decompressed).map_err(unreadable)?;
        for record in decoded.iter() {
            if record.map_err(unreadable)?.key.is_none() {
                keyless.push(index);
                if keyless.len() >= super::record_batch::MAX_RECORD_ERRORS {
                    return Err(BatchError::RecordWithoutKey { indexes: keyless });
                }
            }
            index = index.saturating_add(1);
        }
        at = end;
    }
    if keyless.is_empty() { Ok(()) } else { Err(BatchError::RecordWithoutKey { indexes: keyless }) }
}

/// Iterator over the records of a [`BatchRecords`].
pub struct RecordIter<'a> {
    header: BatchHeader,
    data: &'a [u8],
    pos: usize,
    remaining: i32,
    done: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.remaining == 0 {
            self.done = true;
            if self.pos < self.data.len() {
                return Some(Err(RecordError::Malformed {
                    what: "bytes left after the declared record count",
                    at: self.pos,
                }));
            }
            return None;
        }
        self.remaining -= 1;
        let result = self.parse_one();
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
}

impl<'a> RecordIter<'a> {
    fn parse_one(&mut self) -> Result<Record<'a>, RecordError> {
        let mut cur = Cursor {
            data: self.data,
            pos: self.pos,
        };
        let length = cur.varint("record length")?;
        let length = usize::try_from(length).map_err(|_| RecordError::Malformed {
            what: "negative record length",
            at: self.pos,
        })?;
        let start = cur.pos;
        let end = start
            .checked_add(length)
            .filter(|end| *end <= self.data.len())
            .ok_or(RecordError::Malformed {
                what: "record length past the end",
                at: self.pos,
            })?;
        let mut body = Cursor {
            data: &self.data[..end],
            pos: start,
        };
        body.take(1, "attributes")?;
        let timestamp_delta = body.varlong("timestamp delta")?;
        let offset_delta = body.varint("offset delta")?;
        let fields_start = body.pos;
        let key = body.nullable_bytes("key")?;
        let value = body.nullable_bytes("value")?;
        let header_count = body.varint("header count")?;
        let header_count = usize::try_from(header_count).map_err(|_| RecordError::Malformed {
            what: "negative header count",
            at: body.pos,
        })?;
        for _ in 0..header_count {
            let key_len = body.varint("header key length")?;
            let key_len = usize::try_from(key_len).map_err(|_| RecordError::Malformed {
                what: "negative header key length",
                at: body.pos,
            })?;
            body.take(key_len, "header key")?;
            body.nullable_bytes("header value")?;
        }
        if body.pos != end {
            return Err(RecordError::Malformed {
                what: "record length disagrees with its fields",
                at: start,
            });
        }
        self.pos = end;
        let timestamp = match self.header.timestamp_type() {
            TimestampType::LogAppendTime => self.header.max_timestamp,
            TimestampType::CreateTime => self.header.base_timestamp.wrapping_add(timestamp_delta),
        };
        Ok(Record {
            offset: self.header.base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp,
            key,
            value,
            header_count,
            timestamp_delta,
            encoded_fields: &self.data[fields_start..end],
        })
    }
}

/// Bounds-checked reader over a records section.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or(RecordError::Malformed { what, at: self.pos })?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// Zig-zag LEB128 of at most `max_bytes` bytes.
    fn zigzag(&mut self, max_bytes: usize, what: &'static str) -> Result<i64, RecordError> {
        let mut raw: u64 = 0;
        for i in 0..max_bytes {
            let byte = *self
                .data
                .get(self.pos)
                .ok_or(RecordError::Malformed { what, at: self.pos })?;
            self.pos += 1;
            raw |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(RecordError::Malformed { what, at: self.pos })
    }

    fn varint(&mut self, what: &'static str) -> Result<i32, RecordError> {
        let v = self.zigzag(5, what)?;
        i32::try_from(v).map_err(|_| RecordError::Malformed { what, at: self.pos })
    }

    fn varlong(&mut self, what: &'static str) -> Result<i64, RecordError> {
        self.zigzag(10, what)
    }

    fn nullable_bytes(&mut self, what: &'static str) -> Result<Option<&'a [u8]>, RecordError> {
        let len = self.varint(what)?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize, what).map(Some)
    }
}

/// Decompresses a records section into a new buffer of at most `cap` bytes.
pub fn decompress(codec: Compression, input: &[u8], cap: usize) -> Result<Vec<u8>, RecordError> {
    match codec {
        Compression::None => {
            if input.len() > cap {
                return Err(RecordError::TooLarge { limit: cap });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_capped(flate2::read::MultiGzDecoder::new(input), cap, "gzip"),
        Compression::Snappy => decompress_snappy(input, cap),
        Compression::Lz4 => read_capped(lz4_flex::frame::FrameDecoder::new(input), cap, "lz4"),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(|e| RecordError::Decompress {
                codec: "zstd",
                reason: e.to_string(),
            })?;
            // Bound the window the decoder may allocate by the output cap.
            let window_log = (usize::BITS - cap.max(1).leading_zeros()).clamp(10, 27);
            decoder
                .window_log_max(window_log)
                .map_err(|e| RecordError::Decompress {
                    codec: "zstd",
                    reason: e.to_string(),
                })?;
            read_capped(decoder, cap, "zstd")
        }
    }
}

/// Reads a decoder to its end, growing the output only as data arrives.
fn read_capped<R: Read>(reader: R, cap: usize, codec: &'static str) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| RecordError::Decompress {
            codec,
            reason: e.to_string(),
        })?;
    if out.len() > cap {
        return Err(RecordError::TooLarge { limit: cap });
    }
    Ok(out)
}

/// Snappy as Kafka clients write it: xerial framing (Java client), the official framing
/// format, or a single raw block.
fn decompress_snappy(input: &[u8], cap: usize) -> Result<Vec<u8>, RecordError> {
    if input.starts_with(SNAPPY_FRAMED_MAGIC) {
        return read_capped(snap::read::FrameDecoder::new(input), cap, "snappy");
    }
    let mut out = Vec::new();
    if !input.starts_with(XERIAL_MAGIC) {
        append_snappy_block(input, &mut out, cap)?;
        return Ok(out);
    }
    let mut rest = input.get(XERIAL_HEADER_LEN..).ok_or(RecordError::Decompress {
        codec: "snappy",
        reason: "xerial header truncated".to_string(),
    })?;
    while !rest.is_empty() {
        let truncated = || RecordError::Decompress {
            codec: "snappy",
            reason: "xerial block truncated".to_string(),
        };
        let len_bytes: [u8; 4] = rest.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(truncated)?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let block = rest.get(4..4 + len).ok_or_else(truncated)?;
        append_snappy_block(block, &mut out, cap)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

fn append_snappy_block(block: &[u8], out: &mut Vec<u8>, cap: usize) -> Result<(), RecordError> {
    let snappy_err = |e: snap::Error| RecordError::Decompress {
        codec: "snappy",
        reason: e.to_string(),
    };
    let n = snap::raw::decompress_len(block).map_err(snappy_err)?;
    let start = out.len();
    if n > cap.saturating_sub(start) {
        return Err(RecordError::TooLarge { limit: cap });
    }
    out.resize(start + n, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(snappy_err)?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::{compress, encode_batch, encode_batch_with_payload, BatchSpec};
    use proptest::prelude::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn iterates_records_for_every_codec() {
        for codec in ALL {
            let mut spec = BatchSpec::timestamps(&[50, 10, 70, 30]).with_compression(codec);
            spec.base_offset = 100;
            let bytes = encode_batch(&spec);
            let batch = BatchRecords::decode(&bytes, DEFAULT_MAX_DECOMPRESSED).unwrap();
            let recs: Vec<_> = batch.iter().collect::<Result<_, _>>().unwrap();
            let got: Vec<_> = recs.iter().map(|r| (r.offset, r.timestamp)).collect();
            assert_eq!(got, vec![(100, 50), (101, 10), (102, 70), (103, 30)], "{codec:?}");
            assert_eq!(recs[1].key, Some(&b"k1"[..]));
            assert_eq!(recs[2].value, Some(&b"v2"[..]));
            assert_eq!(recs[0].header_count, 1);
        }
    }

    #[test]
    fn raw_and_framed_snappy_are_accepted() {
        let spec = BatchSpec::timestamps(&[5, 6]).with_compression(Compression::Snappy);
        let raw = crate::log::test_util::encode_records(&spec.records, 5);
        let raw_block = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let mut framed = Vec::new();
        {
            use std::io::Write;
            let mut w = snap::write::FrameEncoder::new(&mut framed);
            w.write_all(&raw).unwrap();
        }
        for payload in [raw_block, framed] {
            let bytes = encode_batch_with_payload(&spec, &payload);
            let batch = BatchRecords::decode(&bytes, DEFAULT_MAX_DECOMPRESSED).unwrap();
            let ts: Vec<_> = batch.iter().map(|r| r.unwrap().timestamp).collect();
            assert_eq!(ts, vec![5, 6]);
        }
    }

    #[test]
    fn log_append_time_overrides_record_timestamps() {
        let mut spec = BatchSpec::timestamps(&[1, 2]);
        spec.attributes_extra = 0x08;
        let bytes = encode_batch(&spec);
        let batch = BatchRecords::decode(&bytes, DEFAULT_MAX_DECOMPRESSED).unwrap();
        let ts: Vec<_> = batch.iter().map(|r| r.unwrap().timestamp).collect();
        assert_eq!(ts, vec![2, 2]);
    }

    #[test]
    fn decompression_bombs_are_capped() {
        let zeros = vec![0u8; 4 << 20];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let compressed = compress(codec, &zeros);
            assert!(compressed.len() < 1 << 20, "{codec:?} should compress zeros well");
            let err = decompress(codec, &compressed, 1 << 20).unwrap_err();
            assert!(
                matches!(err, RecordError::TooLarge { limit } if limit == 1 << 20),
                "{codec:?}: {err}"
            );
            assert_eq!(decompress(codec, &compressed, 8 << 20).unwrap().len(), zeros.len());
        }
        // A raw snappy block that claims a huge length is refused before allocating.
        let mut claim = Vec::new();
        let mut n: u64 = 1 << 31;
        while n >= 0x80 {
            claim.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        claim.push(n as u8);
        assert!(matches!(
            decompress(Compression::Snappy, &claim, 1 << 20),
            Err(RecordError::TooLarge { .. })
        ));
    }

    #[test]
    fn trailing_and_short_records_are_errors() {
        let spec = BatchSpec::timestamps(&[1, 2, 3]);
        let mut bytes = encode_batch(&spec);
        bytes[57..61].copy_from_slice(&2i32.to_be_bytes()); // count says 2, data has 3
        let batch = BatchRecords::decode(&bytes, DEFAULT_MAX_DECOMPRESSED).unwrap();
        let results: Vec<_> = batch.iter().collect();
        assert_eq!(results.len(), 3);
        assert!(results[2].is_err());

        bytes[57..61].copy_from_slice(&9i32.to_be_bytes()); // count says 9
        let batch = BatchRecords::decode(&bytes, DEFAULT_MAX_DECOMPRESSED).unwrap();
        let results: Vec<_> = batch.iter().collect();
        assert_eq!(results.len(), 4);
        assert!(results[3].is_err());
    }

    #[test]
    fn keyless_records_listed_are_capped() {
        let values: Vec<&[u8]> = vec![b"v".as_slice(); 5000];
        let set = encode_batch(&BatchSpec::values(&values).with_compression(Compression::Zstd));
        let headers = crate::log::validate_produce_records(&set, 1 << 20).unwrap();
        match validate_keys_for_compaction(&set, &headers, 1 << 24).unwrap_err() {
            BatchError::RecordWithoutKey { indexes } => {
                assert_eq!(indexes.len(), crate::log::record_batch::MAX_RECORD_ERRORS);
                assert_eq!(indexes[..3], [0, 1, 2]);
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn compaction_key_check() {
        let keyed = encode_batch(&BatchSpec::timestamps(&[1, 2]).with_compression(Compression::Gzip));
        let mut set = keyed.clone();
        set.extend(encode_batch(&BatchSpec::values(&[b"no key"])));
        let headers = crate::log::validate_produce_records(&set, 1 << 20).unwrap();
        validate_keys_for_compaction(&keyed, &headers[..1], 1 << 20).unwrap();
        let err = validate_keys_for_compaction(&set, &headers, 1 << 20).unwrap_err();
        assert_eq!(err, BatchError::RecordWithoutKey { indexes: vec![2] }, "the third record of the set, after the two keyed ones");
        assert_eq!(err.record_errors("t-0").len(), 1);
        assert_eq!(err.kafka_error_code(), crate::error_code::INVALID_RECORD);
        // Records that cannot be decompressed are corrupt, not keyless.
        let mut garbled = keyed.clone();
        garbled[HEADER_SIZE + 2] ^= 0xff;
        let err = validate_keys_for_compaction(&garbled, &headers[..1], 1 << 20).unwrap_err();
        assert_eq!(err.kafka_error_code(), crate::error_code::CORRUPT_MESSAGE, "{err}");
    }

    proptest! {
        #[test]
        fn random_records_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..200), codec in 0usize..5, count in -2i32..50) {
            let mut spec = BatchSpec::timestamps(&[1]).with_compression(ALL[codec]);
            spec.last_offset_delta = Some(count - 1);
            let mut bytes = encode_batch_with_payload(&spec, &payload);
            bytes[57..61].copy_from_slice(&count.to_be_bytes());
            if let Ok(batch) = BatchRecords::decode(&bytes, 1 << 16) {
                for r in batch.iter().take(100) { let _ = r; }
            }
        }

        #[test]
        fn mutated_compressed_batches_never_panic(idx in 61usize..400, val in any::<u8>(), codec in 0usize..5) {
            let spec = BatchSpec::timestamps(&[1, 5, 9, 12]).with_compression(ALL[codec]);
            let mut bytes = encode_batch(&spec);
            let i = 61 + idx % (bytes.len() - 61);
            bytes[i] = val;
            if let Ok(batch) = BatchRecords::decode(&bytes, 1 << 16) {
                for r in batch.iter() { let _ = r; }
            }
        }
    }
}
