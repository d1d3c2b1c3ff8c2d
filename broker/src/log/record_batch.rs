//! Kafka record batch format v2: the 61-byte batch header, validation of a Produce request's
//! record set, and stamping of the broker-assigned fields (base offset, leader epoch).
//!
//! Only the header is interpreted here; the records inside a batch are `records.rs`'s job.
//! Layout (all big-endian):
//!
//! | field                | offset | type |
//! |----------------------|--------|------|
//! | baseOffset           | 0      | i64  |
//! | batchLength          | 8      | i32  |
//! | partitionLeaderEpoch | 12     | i32  |
//! | magic                | 16     | i8   |
//! | crc (CRC-32C of 21..)| 17     | u32  |
//! | attributes           | 21     | i16  |
//! | lastOffsetDelta      | 23     | i32  |
//! | baseTimestamp        | 27     | i64  |
//! | maxTimestamp         | 35     | i64  |
//! | producerId           | 43     | i64  |
//! | producerEpoch        | 51     | i16  |
//! | baseSequence         | 53     | i32  |
//! | recordsCount         | 57     | i32  |

use thiserror::Error;

/// Size of the fixed v2 batch header; the records follow it.
pub const HEADER_SIZE: usize = 61;
/// Bytes before the part counted by `batchLength` (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength`: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;
/// The only record format this broker stores.
pub const MAGIC_V2: i8 = 2;
/// Start of the CRC-covered region (the attributes field).
pub const CRC_START: usize = 21;
/// Producer id of batches written without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// Timestamp of a batch or record that carries none.
pub const NO_TIMESTAMP: i64 = -1;

const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;

pub(crate) const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub(crate) const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;


/// Why a record batch (from a client or from disk) is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("record batch truncated: need {needed} bytes but only {available} remain; the sender wrote a partial batch or the data is corrupt")]
    Truncated { needed: usize, available: usize },
    #[error("record batch length {length} is below the v2 minimum of {MIN_BATCH_LENGTH}; the data is corrupt")]
    InvalidLength { length: i32 },
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes (max.message.bytes); send smaller batches or raise the topic's max.message.bytes")]
    MessageTooLarge { size: usize, max: usize },
    #[error("record batch has magic {magic} but only format v2 (magic 2) is supported; upgrade the client to Kafka 0.11+ record format")]
    UnsupportedMagic { magic: i8 },
    #[error("record batch CRC mismatch: header says {stored:#010x}, data hashes to {computed:#010x}; the batch was corrupted in transit or on disk")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch declares {count} records but lastOffsetDelta {last_offset_delta}; a producer must send count = lastOffsetDelta + 1 >= 1")]
    InvalidRecordCount { count: i32, last_offset_delta: i32 },
    #[error("record batch uses unknown compression codec {codec}; supported are none, gzip, snappy, lz4 and zstd")]
    UnknownCompression { codec: i16 },
    #[error("clients may not write control batches; transaction markers are written by the broker")]
    ControlBatchFromClient,
    #[error("idempotent batch of producer {producer_id} has negative base sequence {base_sequence}; the producer is misbehaving")]
    InvalidSequence { producer_id: i64, base_sequence: i32 },
    #[error("produce request carries no record batch for this partition; send at least one batch")]
    EmptyRecordSet,
    /// `indexes`: the positions of the keyless records in the partition's record set (for a
    /// single batch, Kafka's batch_index), reported per record from ProduceResponse v8.
    #[error("compacted topic cannot accept a record without a key ({} of them, the first at index {}); give every record a key, or produce to a topic with cleanup.policy=delete", indexes.len(), indexes.first().copied().unwrap_or(0))]
    RecordWithoutKey { indexes: Vec<i32> },
    #[error("the records of a batch cannot be read (to check their keys, timestamps or recompress them): {reason}")]
    UnreadableRecords { reason: String },
    /// Records whose timestamps the topic's message.timestamp.* configs refuse: (position in
    /// the partition's record set, Kafka's message), reported per record from ProduceResponse
    /// v8 (KIP-467).
    #[error("{}", records.first().map_or("invalid timestamp", |r| r.1.as_str()))]
    InvalidTimestamp { records: Vec<(i32, String)> },
}

/// At most this many records are listed per refused partition (KIP-467's record_errors): a
/// compressed batch of a few KB can hold millions of tiny records, and the batch is refused
/// as a whole anyway (clients fail the unlisted ones with their generic error).
pub const MAX_RECORD_ERRORS: usize = 1000;

impl BatchError {
    /// The records at fault, when only some of the batch is (KIP-467): their indexes and why,
    /// for ProduceResponse's record_errors. Empty when the batch as a whole is refused.
    pub fn record_errors(&self, partition: &str) -> Vec<(i32, String)> {
        match self {
            BatchError::RecordWithoutKey { indexes } => indexes
                .iter()
                .map(|i| (*i, format!("Compacted topic cannot accept message without key in topic partition {partition}.")))
                .collect(),
            BatchError::InvalidTimestamp { records } => records.clone(),
            _ => Vec::new(),
        }
    }

    /// The Kafka protocol error code a broker returns for this failure.
    pub fn kafka_error_code(&self) -> i16 {
        use crate::error_code::*;
        match self {
            BatchError::Truncated { .. }
            | BatchError::InvalidLength { .. }
            | BatchError::CrcMismatch { .. }
            | BatchError::UnreadableRecords { .. } => CORRUPT_MESSAGE,
            BatchError::MessageTooLarge { .. } => MESSAGE_TOO_LARGE,
            BatchError::UnsupportedMagic { .. } => UNSUPPORTED_FOR_MESSAGE_FORMAT,
            BatchError::InvalidRecordCount { .. }
            | BatchError::UnknownCompression { .. }
            | BatchError::ControlBatchFromClient
            | BatchError::InvalidSequence { .. }
            | BatchError::EmptyRecordSet
            | BatchError::RecordWithoutKey { .. } => INVALID_RECORD,
            BatchError::InvalidTimestamp { .. } => INVALID_TIMESTAMP,
        }
    }
}

/// Compression codec of a batch's records section (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn from_attributes(attributes: i16) -> Result<Compression, BatchError> {
        match attributes & ATTR_COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            codec => Err(BatchError::UnknownCompression { codec }),
        }
    }
}

/// Whether record timestamps were set by the producer or by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The decoded fixed header of one v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Decodes the header at the start of `buf`. Checks that the header is complete, the
    /// magic is 2 and `batchLength` is at least the header size; it does not need (or check)
    /// the records, so the CRC is verified separately by [`verify_crc`].
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() <= MAGIC_AT {
            return Err(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { magic });
        }
        if buf.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: buf.len(),
            });
        }
        let batch_length = be_i32(buf, BATCH_LENGTH_AT);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::InvalidLength { length: batch_length });
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length,
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_AT),
            magic,
            crc: u32::from_be_bytes([buf[CRC_AT], buf[CRC_AT + 1], buf[CRC_AT + 2], buf[CRC_AT + 3]]),
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        })
    }

    /// Size of the whole batch in bytes, including baseOffset and batchLength.
    pub fn total_size(&self) -> usize {
        // batch_length >= MIN_BATCH_LENGTH > 0 is guaranteed by parse.
        self.batch_length.max(0) as usize + LOG_OVERHEAD
    }

    /// Offset of the last record the batch covers (saturating on absurd deltas from disk).
    pub fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offset that follows this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Compression codec; an error for codec ids 5-7.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_attributes(self.attributes)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether the batch was written by an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// Checks the CRC-32C of a complete batch (`batch.len()` must be the batch's total size).
pub fn verify_crc(header: &BatchHeader, batch: &[u8]) -> Result<(), BatchError> {
    if batch.len() < HEADER_SIZE {
        return Err(BatchError::Truncated {
            needed: HEADER_SIZE,
            available: batch.len(),
        });
    }
    let computed = crc32c::crc32c(&batch[CRC_START..]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Splits the record set of one Produce partition into batches and checks each as Kafka's
/// broker does for client writes: complete, v2, within `max_batch_bytes`, CRC intact, a
/// consistent record count, a known codec, no control batches and no negative sequence for
/// idempotent producers. The records inside are not decompressed here (the CRC, computed by
/// the producer, already covers them); readers tolerate malformed records with errors.
///
/// Kafka >= 3 only accepts exactly one batch per partition; several are accepted here.
pub fn validate_produce_records(records: &[u8], max_batch_bytes: usize) -> Result<Vec<BatchHeader>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::EmptyRecordSet);
    }
    let mut headers = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest)?;
        let size = header.total_size();
        if size > max_batch_bytes {
            return Err(BatchError::MessageTooLarge {
                size,
                max: max_batch_bytes,
            });
        }
        if size > rest.len() {
            return Err(BatchError::Truncated {
                needed: size,
                available: rest.len(),
            });
        }
        let (batch, tail) = rest.split_at(size);
        verify_crc(&header, batch)?;
        header.compression()?;
        if header.records_count < 1 || i64::from(header.last_offset_delta) != i64::from(header.records_count) - 1 {
            return Err(BatchError::InvalidRecordCount {
                count: header.records_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        if header.is_control() {
            return Err(BatchError::ControlBatchFromClient);
        }
        if header.has_producer_id() && header.base_sequence < 0 {
            return Err(BatchError::InvalidSequence {
                producer_id: header.producer_id,
                base_sequence: header.base_sequence,
            });
        }
        headers.push(header);
        rest = tail;
    }
    Ok(headers)
}

/// Checks batches a follower fetched from its leader: v2, CRC intact, a consistent record
/// count. A trailing partial batch (a fetch cut at its byte limit) is left out of the
/// returned headers, not an error; control batches are fine (the leader wrote them).
pub fn validate_fetched_records(records: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    let mut headers = Vec::new();
    let mut rest = records;
    while rest.len() >= HEADER_SIZE {
        let header = BatchHeader::parse(rest)?;
        let size = header.total_size();
        if size > rest.len() {
            break;
        }
        let (batch, tail) = rest.split_at(size);
        verify_crc(&header, batch)?;
        if header.records_count < 0 || i64::from(header.last_offset_delta) < i64::from(header.records_count) - 1 {
            return Err(BatchError::InvalidRecordCount { count: header.records_count, last_offset_delta: header.last_offset_delta });
        }
        headers.push(header);
        rest = tail;
    }
    Ok(headers)
}

/// A batch of `header`'s fields (its `batch_length` and `crc` computed here, not read) around
/// the records `section` (already compressed as the attributes say).
pub fn encode_batch(header: &BatchHeader, section: &[u8]) -> Result<Vec<u8>, BatchError> {
    let batch_length = i32::try_from(HEADER_SIZE - LOG_OVERHEAD + section.len())
        .map_err(|_| BatchError::MessageTooLarge { size: section.len(), max: i32::MAX as usize })?;
    let mut out = Vec::with_capacity(HEADER_SIZE + section.len());
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(header.magic as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // CRC, set below
    out.extend_from_slice(&header.attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&header.base_timestamp.to_be_bytes());
    out.extend_from_slice(&header.max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&header.records_count.to_be_bytes());
    out.extend_from_slice(section);
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Zig-zag LEB128, the record format's varint/varlong.
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Writes the broker-assigned base offset and partition leader epoch into a batch. Both lie
/// before the CRC-covered region, so the CRC stays valid and compressed data is untouched.
/// Does nothing to a slice shorter than the two fields (callers pass validated batches).
pub fn stamp_batch(batch: &mut [u8], base_offset: i64, partition_leader_epoch: i32) {
    if batch.len() < MAGIC_AT {
        return;
    }
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&partition_leader_epoch.to_be_bytes());
}

/// The byte position of the first zstd-compressed batch in a record set, if any (scanning
/// the v2 headers; a truncated tail ends the scan). Kafka refuses zstd to clients that
/// predate it: Produce below v7 and Fetch below v10 (KIP-110).
pub fn first_zstd_batch(records: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    while at + HEADER_SIZE <= records.len() {
        let length = i32::from_be_bytes(records[at + BATCH_LENGTH_AT..at + BATCH_LENGTH_AT + 4].try_into().ok()?);
        let attributes = i16::from_be_bytes([records[at + CRC_START], records[at + CRC_START + 1]]);
        if attributes & ATTR_COMPRESSION_MASK == 4 {
            return Some(at);
        }
        if length < MIN_BATCH_LENGTH {
            return None;
        }
        at = at.saturating_add(length as usize + LOG_OVERHEAD);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_code;
    use crate::log::test_util::{encode_batch, BatchSpec};
    use proptest::prelude::*;

    fn one_batch() -> Vec<u8> {
        encode_batch(&BatchSpec::values(&[b"a", b"bb", b"ccc"]))
    }

    #[test]
    fn parses_header_fields() {
        let spec = BatchSpec {
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: 10,
            ..BatchSpec::values(&[b"x", b"y"])
        };
        let bytes = encode_batch(&spec);
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(h.total_size(), bytes.len());
        assert_eq!(h.magic, 2);
        assert_eq!(h.records_count, 2);
        assert_eq!(h.last_offset(), 1);
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (7, 2, 10));
        assert_eq!(h.compression().unwrap(), Compression::None);
        assert!(!h.is_transactional() && !h.is_control());
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        verify_crc(&h, &bytes).unwrap();
    }

    #[test]
    fn validates_multiple_batches() {
        let mut set = one_batch();
        set.extend(one_batch());
        let headers = validate_produce_records(&set, 1 << 20).unwrap();
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn rejections_map_to_kafka_codes() {
        let good = one_batch();
        let too_large = validate_produce_records(&good, good.len() - 1).unwrap_err();
        assert_eq!(too_large.kafka_error_code(), error_code::MESSAGE_TOO_LARGE);

        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        let e = validate_produce_records(&bad_crc, 1 << 20).unwrap_err();
        assert!(matches!(e, BatchError::CrcMismatch { .. }));
        assert_eq!(e.kafka_error_code(), error_code::CORRUPT_MESSAGE);

        let mut old_magic = good.clone();
        old_magic[16] = 1;
        let e = validate_produce_records(&old_magic, 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error_code(), error_code::UNSUPPORTED_FOR_MESSAGE_FORMAT);

        let mut trailing = good.clone();
        trailing.extend_from_slice(&good[..30]);
        let e = validate_produce_records(&trailing, 1 << 20).unwrap_err();
        assert!(matches!(e, BatchError::Truncated { .. }));

        let e = validate_produce_records(&[], 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error_code(), error_code::INVALID_RECORD);

        let mut short_len = good.clone();
        short_len[8..12].copy_from_slice(&10i32.to_be_bytes());
        let e = validate_produce_records(&short_len, 1 << 20).unwrap_err();
        assert!(matches!(e, BatchError::InvalidLength { length: 10 }));
    }

    #[test]
    fn rejects_inconsistent_count() {
        let spec = BatchSpec {
            last_offset_delta: Some(5),
            ..BatchSpec::values(&[b"a", b"b"])
        };
        let e = validate_produce_records(&encode_batch(&spec), 1 << 20).unwrap_err();
        assert!(matches!(
            e,
            BatchError::InvalidRecordCount {
                count: 2,
                last_offset_delta: 5
            }
        ));
        assert_eq!(e.kafka_error_code(), error_code::INVALID_RECORD);
    }

    #[test]
    fn rejects_control_batches_and_negative_sequences() {
        let control = BatchSpec {
            attributes_extra: 0x20,
            ..BatchSpec::values(&[b"a"])
        };
        let e = validate_produce_records(&encode_batch(&control), 1 << 20).unwrap_err();
        assert_eq!(e, BatchError::ControlBatchFromClient);
        let seq = BatchSpec {
            producer_id: 3,
            base_sequence: -5,
            ..BatchSpec::values(&[b"a"])
        };
        let e = validate_produce_records(&encode_batch(&seq), 1 << 20).unwrap_err();
        assert!(matches!(e, BatchError::InvalidSequence { .. }));
    }

    #[test]
    fn stamping_keeps_crc_valid() {
        let mut bytes = one_batch();
        stamp_batch(&mut bytes, 1234, 9);
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (1234, 9));
        assert_eq!(h.last_offset(), 1236);
        verify_crc(&h, &bytes).unwrap();
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = BatchHeader::parse(&bytes);
            let _ = validate_produce_records(&bytes, 1 << 20);
        }

        #[test]
        fn mutated_batches_never_panic(idx in 0usize..200, val in any::<u8>()) {
            let mut bytes = one_batch();
            let i = idx % bytes.len();
            bytes[i] = val;
            let _ = validate_produce_records(&bytes, 1 << 20);
        }
    }

    #[test]
    fn the_first_zstd_batch_is_found_by_its_header() {
        use crate::log::test_util::{encode_batch, BatchSpec};
        let lz4 = encode_batch(&BatchSpec::timestamps(&[1, 2]).with_compression(Compression::Lz4));
        let zstd = encode_batch(&BatchSpec::timestamps(&[3]).with_compression(Compression::Zstd));
        assert_eq!(first_zstd_batch(&lz4), None);
        let mut set = lz4.clone();
        set.extend_from_slice(&zstd);
        assert_eq!(first_zstd_batch(&set), Some(lz4.len()));
        assert_eq!(first_zstd_batch(&zstd), Some(0));
        assert_eq!(first_zstd_batch(&set[..lz4.len() + 10]), None, "a truncated tail ends the scan");
        assert_eq!(first_zstd_batch(&[]), None);
    }
}
