//! Tests of `PartitionLog::read` and the ListOffsets lookups.

use crate::log::partition_log::{LogConfig, PartitionLog};
use crate::log::record_batch::{validate_produce_records, BatchHeader, Compression};
use crate::log::test_util::{encode_batch, BatchSpec};
use crate::log::LogError;

fn append(log: &mut PartitionLog, spec: &BatchSpec) {
    let mut bytes = encode_batch(spec);
    let headers = validate_produce_records(&bytes, 1 << 20).unwrap();
    log.append(&mut bytes, &headers, 0, 0).unwrap();
}

/// (base, last) offsets of the batches in a fetched buffer; asserts they are whole.
fn batches(bytes: &[u8]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let h = BatchHeader::parse(&bytes[at..]).unwrap();
        at += h.total_size();
        out.push((h.base_offset, h.last_offset()));
    }
    assert_eq!(at, bytes.len(), "no partial batches");
    out
}

/// 10 batches of 3 records (offsets 3i..3i+2), ~120 bytes each, 3 per segment.
fn filled() -> (tempfile::TempDir, PartitionLog) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 150,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    for i in 0..10i64 {
        append(
            &mut log,
            &BatchSpec::timestamps(&[1000 + 10 * i, 1001 + 10 * i, 1002 + 10 * i]),
        );
    }
    assert!(log.num_segments() >= 3);
    (dir, log)
}

#[test]
fn reads_everything_across_segments() {
    let (_dir, log) = filled();
    let slice = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(
        batches(&slice.records),
        (0..10).map(|i| (3 * i, 3 * i + 2)).collect::<Vec<_>>()
    );
    assert_eq!(
        (slice.log_start_offset, slice.log_end_offset, slice.first_batch_offset),
        (0, 30, Some(0))
    );
}

#[test]
fn read_from_the_middle_of_a_batch_returns_that_batch() {
    let (_dir, log) = filled();
    for offset in [13, 14, 12] {
        let slice = log.read(offset, 1 << 20, i64::MAX).unwrap();
        assert_eq!(batches(&slice.records)[0], (12, 14));
        assert_eq!(slice.first_batch_offset, Some(12));
    }
}

#[test]
fn max_bytes_is_respected_but_one_batch_is_always_returned() {
    let (_dir, log) = filled();
    let one = log.read(3, 1, i64::MAX).unwrap();
    assert_eq!(batches(&one.records), vec![(3, 5)]);
    let size = one.records.len();
    let two = log.read(3, 2 * size + size / 2, i64::MAX).unwrap();
    assert_eq!(batches(&two.records), vec![(3, 5), (6, 8)]);
    // Crossing a segment boundary (segments hold 3 batches) inside the budget.
    let four = log.read(3, 4 * size, i64::MAX).unwrap();
    assert_eq!(batches(&four.records).len(), 4);
}

#[test]
fn high_watermark_bounds_the_read() {
    let (_dir, log) = filled();
    let slice = log.read(0, 1 << 20, 7).unwrap();
    assert_eq!(batches(&slice.records), vec![(0, 2), (3, 5), (6, 8)]);
    assert!(log.read(7, 1 << 20, 7).unwrap().records.is_empty());
    assert!(log.read(9, 1 << 20, 9).unwrap().records.is_empty());
}

#[test]
fn offsets_out_of_range() {
    let (_dir, log) = filled();
    let end = log.read(30, 100, i64::MAX).unwrap();
    assert!(end.records.is_empty() && end.first_batch_offset.is_none());
    let err = log.read(31, 100, i64::MAX).unwrap_err();
    assert!(matches!(
        err,
        LogError::OffsetOutOfRange {
            offset: 31,
            log_start_offset: 0,
            log_end_offset: 30
        }
    ));
    assert_eq!(err.kafka_error_code(), 1);
    assert!(matches!(
        log.read(-1, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn empty_log_reads_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert!(log.read(0, 100, i64::MAX).unwrap().records.is_empty());
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp_offset().unwrap(), None);
}

#[test]
fn offset_for_timestamp_is_exact_for_every_codec() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 500,
            index_interval_bytes: 100,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        // Non-monotonic timestamps inside batches: 10 batches of [b+5, b+1, b+9, b+3], b = 100*i.
        for i in 0..10i64 {
            let b = 100 * i;
            append(
                &mut log,
                &BatchSpec::timestamps(&[b + 5, b + 1, b + 9, b + 3]).with_compression(codec),
            );
        }
        assert!(log.num_segments() > 1, "{codec:?}");
        let find = |ts| log.offset_for_timestamp(ts).unwrap();
        assert_eq!(find(0), Some((0, 5)), "{codec:?}");
        assert_eq!(find(6), Some((2, 9)), "{codec:?}");
        assert_eq!(find(10), Some((4, 105)), "{codec:?}");
        assert_eq!(find(502), Some((20, 505)), "{codec:?}");
        assert_eq!(find(506), Some((22, 509)), "{codec:?}");
        assert_eq!(find(909), Some((38, 909)), "{codec:?}");
        assert_eq!(find(910), None, "{codec:?}");
        assert_eq!(log.max_timestamp_offset().unwrap(), Some((38, 909)), "{codec:?}");
    }
}

#[test]
fn offset_for_timestamp_after_reopen_uses_loaded_time_indexes() {
    let (dir, mut log) = filled();
    log.close().unwrap();
    let config = log.config().clone();
    drop(log);
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(log.offset_for_timestamp(1041).unwrap(), Some((13, 1041)));
    assert_eq!(log.offset_for_timestamp(1043).unwrap(), Some((15, 1050)));
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((29, 1092)));
}

#[test]
fn a_planned_read_outlives_retention_and_appends_after_the_lock_is_released() {
    let (_dir, mut log) = filled();
    let plan = log.plan_read(0, 1 << 20, 12).unwrap();
    let lookup = log.plan_timestamp_lookup(1041).unwrap();
    // While the caller holds no lock: more appends, and retention deletes the planned files.
    for i in 10..14i64 {
        append(&mut log, &BatchSpec::timestamps(&[1000 + 10 * i]));
    }
    log.set_config(LogConfig { retention_bytes: 0, ..log.config().clone() });
    assert!(log.apply_retention(0).unwrap() > 0);
    assert!(log.log_start_offset() > 12);
    let slice = plan.read().unwrap();
    assert_eq!(batches(&slice.records), vec![(0, 2), (3, 5), (6, 8), (9, 11)], "bounded by the plan's offset");
    assert_eq!((slice.log_start_offset, slice.log_end_offset), (0, 30), "the log as planned");
    assert_eq!(lookup.find().unwrap(), Some((13, 1041)));
}

#[test]
fn a_read_plan_counts_the_bytes_it_will_read() {
    let (_dir, log) = filled();
    let plan = log.plan_read(4, 1 << 20, i64::MAX).unwrap();
    assert_eq!(plan.bytes() as u64, log.size_bytes() - log.segments[0].find_batch(4).unwrap().unwrap().0);
    assert_eq!(plan.log_start_offset(), 0);
    let empty = log.plan_read(30, 1 << 20, i64::MAX).unwrap();
    assert_eq!(empty.bytes(), 0);
    assert_eq!(empty.read().unwrap().records.len(), 0);
}
