//! Tests of `PartitionLog` open/append/roll/flush/recovery (reads are in `fetch_tests.rs`).

use super::*;
use crate::log::record_batch::validate_produce_records;
use crate::log::test_util::{encode_batch, BatchSpec};
use crate::log::SequenceError;
use std::io::Write;

pub(crate) fn append_spec(log: &mut PartitionLog, spec: &BatchSpec) -> Result<AppendOutcome, LogError> {
    let mut bytes = encode_batch(spec);
    let headers = validate_produce_records(&bytes, 1 << 20)?;
    log.append(&mut bytes, &headers, 3, 0)
}

fn batch_offsets(log: &PartitionLog) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for segment in &log.segments {
        for item in segment.headers_from(0) {
            let (_, h) = item.unwrap();
            out.push((h.base_offset, h.last_offset()));
        }
    }
    out
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

#[test]
fn new_log_has_one_empty_segment_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let log = PartitionLog::open(&path, LogConfig::default()).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset(), log.num_segments()),
        (0, 0, 1)
    );
    assert!(path.join("00000000000000000000.log").exists());
    assert!(log.flush_job().is_none());
}

#[test]
fn appends_assign_consecutive_offsets_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small()).unwrap();
    for i in 0..10i64 {
        let outcome = append_spec(&mut log, &BatchSpec::timestamps(&[i, i + 1])).unwrap();
        let AppendOutcome::Appended(info) = outcome else {
            panic!("expected an append")
        };
        assert_eq!(
            (info.base_offset, info.last_offset, info.record_count),
            (2 * i, 2 * i + 1, 2)
        );
        assert_eq!(
            (info.log_append_time, info.log_start_offset, info.flush_due),
            (-1, 0, false)
        );
    }
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(log.segment_base_offsets(), vec![0, 6, 12, 18]);
    assert_eq!(
        batch_offsets(&log),
        (0..10).map(|i| (2 * i, 2 * i + 1)).collect::<Vec<_>>()
    );
    // Rolled segments were sealed: fsynced and their index files written.
    assert!(log.flushed_offset() >= 18);
    assert!(dir.path().join("00000000000000000006.timeindex").exists());
    // Leader epoch is stamped.
    let first = log.read(0, 1, i64::MAX).unwrap();
    assert_eq!(BatchHeader::parse(&first.records).unwrap().partition_leader_epoch, 3);
}

#[test]
fn multi_batch_append_is_one_write_with_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let mut bytes = encode_batch(&BatchSpec::values(&[b"a", b"b", b"c"]));
    bytes.extend(encode_batch(&BatchSpec::values(&[b"d"])));
    let headers = validate_produce_records(&bytes, 1 << 20).unwrap();
    let outcome = log.append(&mut bytes, &headers, 0, 0).unwrap();
    assert!(matches!(
        outcome,
        AppendOutcome::Appended(AppendInfo {
            base_offset: 0,
            last_offset: 3,
            record_count: 4,
            ..
        })
    ));
    assert_eq!(batch_offsets(&log), vec![(0, 2), (3, 3)]);
    // Headers that do not describe the bytes are refused.
    let mut other = encode_batch(&BatchSpec::values(&[b"x"]));
    assert!(matches!(
        log.append(&mut other, &headers, 0, 0),
        Err(LogError::InvalidAppend { .. })
    ));
    assert!(matches!(
        log.append(&mut other, &[], 0, 0),
        Err(LogError::Batch(BatchError::EmptyRecordSet))
    ));
}

#[test]
fn reopen_after_clean_close_gives_identical_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small()).unwrap();
    for i in 0..8i64 {
        append_spec(
            &mut log,
            &BatchSpec::timestamps(&[100 * i, 100 * i + 50]).idempotent(7, 0, 2 * i as i32),
        )
        .unwrap();
    }
    log.close().unwrap();
    let before = (
        log.log_start_offset(),
        log.log_end_offset(),
        log.size_bytes(),
        log.segment_base_offsets(),
        batch_offsets(&log),
        log.read(0, 10_000, i64::MAX).unwrap().records,
        log.offset_for_timestamp(420).unwrap(),
        log.producer_state().producer(7),
    );
    drop(log);
    let log = PartitionLog::open(dir.path(), small()).unwrap();
    let after = (
        log.log_start_offset(),
        log.log_end_offset(),
        log.size_bytes(),
        log.segment_base_offsets(),
        batch_offsets(&log),
        log.read(0, 10_000, i64::MAX).unwrap().records,
        log.offset_for_timestamp(420).unwrap(),
        log.producer_state().producer(7),
    );
    assert_eq!(before, after);
    assert_eq!(after.6, Some((9, 450)));
    assert_eq!(log.flushed_offset(), log.log_end_offset());
}

#[test]
fn recovery_truncates_garbage_and_torn_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small()).unwrap();
    for i in 0..4i64 {
        append_spec(&mut log, &BatchSpec::timestamps(&[i, i])).unwrap();
    }
    let active = log.active().path().to_path_buf();
    let good_len = std::fs::metadata(&active).unwrap().len();
    drop(log); // crash: no close

    // Garbage appended to the tail.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap()
        .write_all(&[0x5A; 77])
        .unwrap();
    let mut log = PartitionLog::open(dir.path(), small()).unwrap();
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(std::fs::metadata(&active).unwrap().len(), good_len);

    // A torn last batch: the file is cut in the middle of it.
    append_spec(&mut log, &BatchSpec::timestamps(&[9, 9])).unwrap();
    drop(log);
    let len = std::fs::metadata(&active).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 20)
        .unwrap();
    let mut log = PartitionLog::open(dir.path(), small()).unwrap();
    assert_eq!(log.log_end_offset(), 8, "last valid batch ends at 7");
    assert_eq!(batch_offsets(&log).last(), Some(&(6, 7)));
    // The log keeps working after recovery.
    let outcome = append_spec(&mut log, &BatchSpec::timestamps(&[10])).unwrap();
    assert_eq!(outcome.base_offset(), 8);
}

#[test]
fn sealed_segment_without_index_files_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small()).unwrap();
    for i in 0..7i64 {
        append_spec(&mut log, &BatchSpec::timestamps(&[i, i])).unwrap();
    }
    drop(log);
    std::fs::remove_file(dir.path().join("00000000000000000000.index")).unwrap();
    std::fs::write(dir.path().join("00000000000000000006.timeindex"), b"junk").unwrap();
    std::fs::write(dir.path().join("00000000000000000099.index.deleted"), b"").unwrap();
    let log = PartitionLog::open(dir.path(), small()).unwrap();
    assert_eq!(log.log_end_offset(), 14);
    assert_eq!(log.offset_for_timestamp(4).unwrap(), Some((8, 4)));
    assert!(!dir.path().join("00000000000000000099.index.deleted").exists());
}

#[test]
fn idempotent_retry_returns_original_offsets_without_storing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    append_spec(&mut log, &BatchSpec::values(&[b"other"])).unwrap();
    let batch = BatchSpec::values(&[b"a", b"b"]).idempotent(42, 1, 0);
    let first = append_spec(&mut log, &batch).unwrap();
    assert!(matches!(
        first,
        AppendOutcome::Appended(AppendInfo {
            base_offset: 1,
            last_offset: 2,
            ..
        })
    ));
    let size = log.size_bytes();
    let retry = append_spec(&mut log, &batch).unwrap();
    let expected = AppendInfo {
        base_offset: 1,
        last_offset: 2,
        log_append_time: -1,
        log_start_offset: 0,
        record_count: 2,
        flush_due: false,
    };
    assert_eq!(retry, AppendOutcome::Duplicate(expected));
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.log_end_offset(), 3);
    // Duplicate detection survives a restart (state rebuilt from the headers).
    drop(log);
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert!(matches!(
        append_spec(&mut log, &batch).unwrap(),
        AppendOutcome::Duplicate(AppendInfo { base_offset: 1, .. })
    ));
}

#[test]
fn out_of_order_sequence_and_stale_epoch_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    append_spec(&mut log, &BatchSpec::values(&[b"a"]).idempotent(5, 2, 0)).unwrap();
    let gap = append_spec(&mut log, &BatchSpec::values(&[b"b"]).idempotent(5, 2, 3)).unwrap_err();
    assert!(matches!(
        gap,
        LogError::Sequence(SequenceError::OutOfOrder {
            expected: 1,
            received: 3,
            ..
        })
    ));
    assert_eq!(gap.kafka_error_code(), 45);
    let stale = append_spec(&mut log, &BatchSpec::values(&[b"b"]).idempotent(5, 1, 1)).unwrap_err();
    assert_eq!(stale.kafka_error_code(), 47);
    assert_eq!(log.log_end_offset(), 1, "nothing was written");
}

#[test]
fn group_commit_flush_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_interval_messages: 3,
        flush_interval_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    let append_at = |log: &mut PartitionLog, values: &[&[u8]], now_ms| {
        let mut bytes = encode_batch(&BatchSpec::values(values));
        let headers = validate_produce_records(&bytes, 1 << 20).unwrap();
        log.append(&mut bytes, &headers, 0, now_ms).unwrap().info().flush_due
    };
    assert!(!append_at(&mut log, &[b"a"], 5_000));
    assert!(!log.flush_due());
    assert!(append_at(&mut log, &[b"b", b"c"], 5_100));
    assert!(log.flush_due());
    assert!(!log.flush_due_by_time(5_999));
    assert!(
        log.flush_due_by_time(6_000),
        "the oldest unflushed append is 1000 ms old"
    );
    let job = log.flush_job().unwrap();
    assert_eq!(job.upto_offset(), 3);
    // More data arrives while the fsync runs without the lock.
    assert!(append_at(&mut log, &[b"d"], 6_200), "4 unflushed messages");
    job.sync().unwrap();
    log.mark_flushed(job.upto_offset());
    assert_eq!(log.flushed_offset(), 3);
    assert!(!log.flush_due());
    assert!(!log.flush_due_by_time(7_199));
    assert!(log.flush_due_by_time(7_200));
    log.flush().unwrap();
    assert_eq!(log.flushed_offset(), 4);
    assert!(log.flush_job().is_none());
    assert!(!log.flush_due_by_time(i64::MAX));
}

#[test]
fn deleted_log_refuses_operations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-1");
    let mut log = PartitionLog::open(&path, LogConfig::default()).unwrap();
    append_spec(&mut log, &BatchSpec::values(&[b"a"])).unwrap();
    log.mark_deleted();
    assert!(matches!(log.read(0, 100, i64::MAX), Err(LogError::LogDeleted { .. })));
    assert!(matches!(
        append_spec(&mut log, &BatchSpec::values(&[b"a"])),
        Err(LogError::LogDeleted { .. })
    ));
    log.delete().unwrap();
    assert!(!path.exists());
}

#[test]
fn segment_offset_times_are_the_boundaries_list_offsets_v0_searches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small()).unwrap();
    let now = 4_000_000_000_000;
    // An empty log: its one empty segment, no log-end entry.
    let empty = log.segment_offset_times(now);
    assert_eq!(empty.iter().map(|&(o, _)| o).collect::<Vec<_>>(), [0]);
    for i in 0..10i64 {
        append_spec(&mut log, &BatchSpec::timestamps(&[i, i + 1])).unwrap();
    }
    let table = log.segment_offset_times(now);
    // Segments at 0, 6, 12, 18 (the active one holds data), then the log end at `now`.
    assert_eq!(table.iter().map(|&(o, _)| o).collect::<Vec<_>>(), [0, 6, 12, 18, 20]);
    assert_eq!(table[4].1, now);
    let file_time = std::fs::metadata(dir.path().join("00000000000000000006.log")).unwrap().modified().unwrap();
    let file_ms = file_time.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert_eq!(table[1].1, file_ms, "a segment's time is its file's modification time");
}
