//! Filtering the records of one v2 batch for the cleaner (Kafka's `MemoryRecords.filterTo`):
//! decide per record, then keep the batch as it is, drop it, or write a new batch holding
//! only the retained records.
//!
//! A rewritten batch keeps what consumers and producers rely on, as Kafka's does: the
//! original base offset and lastOffsetDelta (so records keep their absolute offsets, the
//! producer's sequence range is unchanged and a batch never moves), the leader epoch,
//! producer id/epoch, base sequence and the timestamp type / transactional / control bits.
//! Its base timestamp is the first retained record's, its max timestamp is recomputed
//! (CreateTime) or kept (LogAppendTime), and the CRC is recomputed. Simplification: the
//! retained records are written uncompressed (the payload bytes of each record are copied as
//! they are); an unchanged batch keeps its original, possibly compressed, bytes.

use super::record_batch::{put_varint, verify_crc, BatchHeader, TimestampType, ATTR_COMPRESSION_MASK};
use super::records::{BatchRecords, Record, RecordError};

/// What to do with a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilteredBatch {
    /// Every record is retained: keep the original bytes.
    Unchanged,
    /// No record is retained and the batch is not needed: leave it out.
    Dropped,
    /// The bytes of the replacement batch (the retained records, or an empty header when the
    /// batch had to be kept for its producer).
    Rewritten(Vec<u8>),
}

/// Records removed from one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemovedRecords {
    pub records: u64,
    /// Removed records that were tombstones (null value); included in `records`.
    pub tombstones: u64,
}

/// Filters the complete batch `batch` (CRC checked, records decompressed under
/// `max_decompressed`), keeping the records for which `retain` is true. When nothing is
/// retained and `keep_empty` is set (the last batch of a live idempotent producer), an
/// empty batch with the original header fields replaces it, as Kafka does, so the producer's
/// last sequence survives. An error means the batch cannot be read; the caller keeps it.
pub fn filter_batch(
    batch: &[u8],
    max_decompressed: usize,
    keep_empty: bool,
    mut retain: impl FnMut(&Record<'_>) -> bool,
) -> Result<(FilteredBatch, RemovedRecords), RecordError> {
    let header = BatchHeader::parse(batch)?;
    verify_crc(&header, batch.get(..header.total_size()).unwrap_or(batch))?;
    let decoded = BatchRecords::decode(batch, max_decompressed)?;
    let mut retained = Vec::new();
    let mut removed = RemovedRecords::default();
    for record in decoded.iter() {
        let record = record?;
        if retain(&record) {
            retained.push(record);
        } else {
            removed.records += 1;
            removed.tombstones += u64::from(record.value.is_none());
        }
    }
    let outcome = if removed.records == 0 {
        FilteredBatch::Unchanged
    } else if !retained.is_empty() {
        FilteredBatch::Rewritten(encode_retained(&header, &retained)?)
    } else if keep_empty {
        FilteredBatch::Rewritten(encode_batch(&header, header.max_timestamp, header.max_timestamp, 0, &[])?)
    } else {
        FilteredBatch::Dropped
    };
    Ok((outcome, removed))
}

/// A new uncompressed batch with `records` (non-empty, in order) under `original`'s header.
fn encode_retained(original: &BatchHeader, records: &[Record<'_>]) -> Result<Vec<u8>, RecordError> {
    let stored_timestamp = |r: &Record<'_>| original.base_timestamp.wrapping_add(r.timestamp_delta);
    let base_timestamp = records.first().map_or(original.base_timestamp, stored_timestamp);
    let mut max_timestamp = i64::MIN;
    let mut section = Vec::new();
    let mut body = Vec::new();
    for record in records {
        let timestamp = stored_timestamp(record);
        max_timestamp = max_timestamp.max(timestamp);
        body.clear();
        body.push(0); // record attributes: unused in v2
        put_varint(&mut body, timestamp.wrapping_sub(base_timestamp));
        // Offsets come from `base_offset + delta`, so this recovers the stored delta exactly.
        put_varint(&mut body, record.offset.wrapping_sub(original.base_offset));
        body.extend_from_slice(record.encoded_fields);
        put_varint(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
    }
    if original.timestamp_type() == TimestampType::LogAppendTime {
        max_timestamp = original.max_timestamp;
    }
    let count = i32::try_from(records.len())
        .map_err(|_| RecordError::Malformed { what: "more retained records than a batch can count", at: 0 })?;
    encode_batch(original, base_timestamp, max_timestamp, count, &section)
}

/// Header fields from `original` (compression cleared) around an uncompressed `section`.
fn encode_batch(
    original: &BatchHeader,
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    section: &[u8],
) -> Result<Vec<u8>, RecordError> {
    let header = BatchHeader {
        attributes: original.attributes & !ATTR_COMPRESSION_MASK,
        base_timestamp,
        max_timestamp,
        records_count: count,
        ..*original
    };
    super::record_batch::encode_batch(&header, section).map_err(|_| RecordError::TooLarge { limit: i32::MAX as usize })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::{Compression, CRC_START, HEADER_SIZE};
    use crate::log::records::DEFAULT_MAX_DECOMPRESSED;
    use crate::log::test_util::{encode_batch as encode_spec, BatchSpec, TestRecord};
    use proptest::prelude::*;

    fn spec(records: &[(i64, Option<&str>, Option<&str>)]) -> BatchSpec {
        let mut spec = BatchSpec::values(&[]);
        spec.records = records
            .iter()
            .map(|(ts, k, v)| TestRecord {
                timestamp: *ts,
                key: k.map(|k| k.as_bytes().to_vec()),
                value: v.map(|v| v.as_bytes().to_vec()),
            })
            .collect();
        spec
    }

    /// (offset, timestamp, key, value) of every record.
    fn contents(batch: &[u8]) -> Vec<(i64, i64, Option<Vec<u8>>, Option<Vec<u8>>)> {
        let decoded = BatchRecords::decode(batch, DEFAULT_MAX_DECOMPRESSED).unwrap();
        decoded
            .iter()
            .map(|r| {
                let r = r.unwrap();
                (r.offset, r.timestamp, r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec))
            })
            .collect()
    }

    #[test]
    fn rewrites_retained_records_with_their_offsets_and_timestamps() {
        for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut s = spec(&[(50, Some("a"), Some("1")), (90, Some("b"), None), (70, Some("c"), Some("3"))])
                .with_compression(codec)
                .idempotent(4, 1, 10);
            s.base_offset = 100;
            let bytes = encode_spec(&s);
            let (out, removed) = filter_batch(&bytes, DEFAULT_MAX_DECOMPRESSED, false, |r| r.offset != 100).unwrap();
            assert_eq!(removed, RemovedRecords { records: 1, tombstones: 0 });
            let FilteredBatch::Rewritten(new) = out else { panic!("expected a rewrite") };
            // A valid batch as a producer would send it, apart from the count/delta gap.
            let h = BatchHeader::parse(&new).unwrap();
            verify_crc(&h, &new).unwrap();
            assert_eq!((h.base_offset, h.last_offset_delta, h.records_count), (100, 2, 2));
            assert_eq!((h.base_timestamp, h.max_timestamp), (90, 90));
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (4, 1, 10));
            assert_eq!(h.compression().unwrap(), Compression::None);
            assert_eq!(
                contents(&new),
                vec![(101, 90, Some(b"b".to_vec()), None), (102, 70, Some(b"c".to_vec()), Some(b"3".to_vec()))]
            );
            let (_, removed) = filter_batch(&bytes, DEFAULT_MAX_DECOMPRESSED, false, |r| r.value.is_some()).unwrap();
            assert_eq!(removed, RemovedRecords { records: 1, tombstones: 1 });
        }
    }

    #[test]
    fn unchanged_dropped_and_kept_empty() {
        let bytes = encode_spec(&spec(&[(5, Some("a"), Some("1")), (6, Some("b"), Some("2"))]).idempotent(9, 0, 0));
        let (out, removed) = filter_batch(&bytes, DEFAULT_MAX_DECOMPRESSED, false, |_| true).unwrap();
        assert_eq!((out, removed.records), (FilteredBatch::Unchanged, 0));
        let (out, removed) = filter_batch(&bytes, DEFAULT_MAX_DECOMPRESSED, false, |_| false).unwrap();
        assert_eq!((out, removed.records), (FilteredBatch::Dropped, 2));
        let (out, _) = filter_batch(&bytes, DEFAULT_MAX_DECOMPRESSED, true, |_| false).unwrap();
        let FilteredBatch::Rewritten(empty) = out else { panic!("expected an empty batch") };
        let h = BatchHeader::parse(&empty).unwrap();
        verify_crc(&h, &empty).unwrap();
        assert_eq!((h.records_count, h.last_offset_delta, h.base_sequence, h.producer_id), (0, 1, 0, 9));
        assert_eq!(empty.len(), HEADER_SIZE);
        assert!(contents(&empty).is_empty());
    }

    #[test]
    fn corrupt_batches_are_errors() {
        let mut bytes = encode_spec(&spec(&[(5, Some("a"), Some("1"))]));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(filter_batch(&bytes, DEFAULT_MAX_DECOMPRESSED, false, |_| false).is_err());
        assert!(filter_batch(&bytes[..30], DEFAULT_MAX_DECOMPRESSED, false, |_| false).is_err());
    }

    proptest! {
        #[test]
        fn random_and_mutated_batches_never_panic(
            n in 1usize..20,
            keep in proptest::collection::vec(any::<bool>(), 20),
            codec in 0usize..5,
            mutate in proptest::option::of((61usize..1000, any::<u8>())),
        ) {
            let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
            let records: Vec<(i64, Option<&str>, Option<&str>)> = (0..n)
                .map(|i| (i as i64 * 7 % 5, if i % 4 == 3 { None } else { Some("k") }, if i % 3 == 2 { None } else { Some("value") }))
                .collect();
            let mut bytes = encode_spec(&spec(&records).with_compression(codecs[codec]));
            if let Some((at, v)) = mutate {
                let i = at % bytes.len();
                bytes[i] = v;
                let crc = crc32c::crc32c(&bytes[CRC_START..]);
                bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            }
            let mut i = 0;
            if let Ok((FilteredBatch::Rewritten(new), _)) = filter_batch(&bytes, 1 << 16, true, |_| { i += 1; keep[(i - 1) % 20] }) {
                // Whatever was kept is a readable batch again.
                let h = BatchHeader::parse(&new).unwrap();
                verify_crc(&h, &new).unwrap();
                let decoded = BatchRecords::decode(&new, 1 << 16).unwrap();
                prop_assert_eq!(decoded.iter().filter(|r| r.is_ok()).count(), h.records_count as usize);
            }
        }
    }
}
