//! Tests of log compaction: `PartitionLog::clean`, the compacted-topic produce check, the
//! retention policy switch and crash recovery of an interrupted clean.

use super::*;
use crate::log::offset_map::OffsetMap;
use crate::log::record_batch::{verify_crc, BatchHeader};
use crate::log::records::{BatchRecords, DEFAULT_MAX_DECOMPRESSED};
use crate::log::cleaner_files::{load_checkpoint, CHECKPOINT_FILE};
use crate::log::partition_log::LogConfig;
use crate::error_code;
use crate::log::record_batch::{validate_produce_records, BatchError, Compression};
use crate::log::segment::file_stem;
use crate::log::test_util::{encode_batch, BatchSpec, TestRecord};
use proptest::prelude::*;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

type Rec = (Option<Vec<u8>>, Option<Vec<u8>>);

fn spec(records: &[(Option<&str>, Option<&str>)], timestamp: i64) -> BatchSpec {
    let mut spec = BatchSpec::values(&[]);
    spec.records = records
        .iter()
        .map(|(k, v)| TestRecord {
            timestamp,
            key: k.map(|k| k.as_bytes().to_vec()),
            value: v.map(|v| v.as_bytes().to_vec()),
        })
        .collect();
    spec
}

fn append(log: &mut PartitionLog, spec: &BatchSpec) -> Result<(), LogError> {
    let mut bytes = encode_batch(spec);
    let headers = validate_produce_records(&bytes, 1 << 20)?;
    log.append(&mut bytes, &headers, 0, 0).map(|_| ())
}

fn put(log: &mut PartitionLog, records: &[(Option<&str>, Option<&str>)], timestamp: i64) {
    append(log, &spec(records, timestamp)).unwrap();
}

/// (offset, key, value) of every record from `from` on, read through the fetch path.
fn records_from(log: &PartitionLog, from: i64) -> Vec<(i64, Rec)> {
    let slice = log.read(from, 64 << 20, i64::MAX).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < slice.records.len() {
        let header = BatchHeader::parse(&slice.records[at..]).unwrap();
        let batch = &slice.records[at..at + header.total_size()];
        verify_crc(&header, batch).unwrap();
        for r in BatchRecords::decode(batch, DEFAULT_MAX_DECOMPRESSED).unwrap().iter() {
            let r = r.unwrap();
            out.push((r.offset, (r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec))));
        }
        at += header.total_size();
    }
    out
}

fn compacted(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        cleanup_policy_delete: false,
        cleanup_policy_compact: true,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

const NOW: i64 = 10_000_000;

#[test]
fn ten_thousand_updates_to_100_keys_compact_to_the_last_value_of_each() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { min_cleanable_dirty_ratio: 0.5, ..compacted(2048) };
    let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    let mut latest: HashMap<String, (i64, String)> = HashMap::new();
    let mut rng = 12345u64;
    let mut offset = 0i64;
    for batch in 0..1000 {
        let owned: Vec<(String, String)> = (0..10)
            .map(|i| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (format!("key-{}", (rng >> 33) % 100), format!("value-{batch}-{i}"))
            })
            .collect();
        for (k, v) in &owned {
            latest.insert(k.clone(), (offset, v.clone()));
            offset += 1;
        }
        let records: Vec<_> = owned.iter().map(|(k, v)| (Some(k.as_str()), Some(v.as_str()))).collect();
        put(&mut log, &records, 1000 + batch);
    }
    assert!(log.num_segments() > 50, "{} segments", log.num_segments());
    log.roll(NOW).unwrap();
    let size_before = log.size_bytes();
    let stats = log.clean(NOW).unwrap();
    assert_eq!(stats.records_removed, 10_000 - latest.len() as u64);
    assert_eq!(stats.tombstones_removed, 0);
    assert!(stats.bytes_after < stats.bytes_before / 10, "{stats:?}");
    assert!(log.size_bytes() < size_before / 10);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 10_000));

    let check = |log: &PartitionLog| {
        let got = records_from(log, 0);
        assert_eq!(got.len(), 100);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
        for (offset, (key, value)) in got {
            let key = String::from_utf8(key.unwrap()).unwrap();
            let (want_offset, want_value) = &latest[&key];
            assert_eq!((offset, value.unwrap()), (*want_offset, want_value.clone().into_bytes()));
        }
    };
    check(&log);
    // Only the first segment survives empty; the others compacted to nothing are gone.
    assert!(log.num_segments() <= 101);
    assert!(!file_names(dir.path()).iter().any(|n| n.ends_with(".cleaned") || n.ends_with(".swap")));
    assert_eq!(log.cleaner_checkpoint(), Some(10_000));
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 10_000));
    assert_eq!(log.cleaner_checkpoint(), Some(10_000));
    check(&log);
}

#[test]
fn a_key_updated_in_the_active_segment_is_removed_from_closed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), compacted(1 << 20)).unwrap();
    put(&mut log, &[(Some("a"), Some("1")), (Some("b"), Some("1"))], 100);
    log.roll(NOW).unwrap();
    put(&mut log, &[(Some("a"), Some("2"))], 200);
    let stats = log.clean(NOW).unwrap();
    assert_eq!((stats.segments_cleaned, stats.records_removed), (1, 1));
    let got: Vec<i64> = records_from(&log, 0).into_iter().map(|(o, _)| o).collect();
    assert_eq!(got, vec![1, 2], "the active segment is never rewritten");
    assert_eq!(log.cleaner_checkpoint(), Some(2));
}

#[test]
fn fetching_a_compacted_away_offset_returns_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), compacted(1 << 20)).unwrap();
    put(&mut log, &[(Some("a"), Some("1")), (Some("b"), Some("1"))], 100); // 0, 1
    put(&mut log, &[(Some("a"), Some("2")), (Some("c"), Some("1"))], 100); // 2, 3
    put(&mut log, &[(Some("c"), Some("2"))], 100); // 4
    log.roll(NOW).unwrap();
    put(&mut log, &[(Some("b"), Some("2"))], 100); // 5, active
    log.clean(NOW).unwrap();
    let offsets = |from| -> Vec<i64> { records_from(&log, from).into_iter().map(|(o, _)| o).collect() };
    assert_eq!(offsets(0), vec![2, 4, 5]);
    // 0 and 1 were removed (the first batch entirely): the fetch starts at the next batch.
    let slice = log.read(0, 1, i64::MAX).unwrap();
    assert_eq!(slice.first_batch_offset, Some(2));
    assert_eq!(offsets(1), vec![2, 4, 5]);
    // 3 was removed from inside a batch that keeps 2: that batch comes back, client skips 2.
    assert_eq!(log.read(3, 1, i64::MAX).unwrap().first_batch_offset, Some(2));
    assert_eq!(offsets(4), vec![4, 5]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 6));
}

#[test]
fn tombstones_are_kept_for_delete_retention_ms_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { delete_retention_ms: 1000, ..compacted(1 << 20) };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    put(&mut log, &[(Some("a"), Some("1")), (Some("b"), Some("1"))], 5000);
    put(&mut log, &[(Some("a"), None)], 5000);
    log.roll(5000).unwrap();
    // Segment time 5000 > now 5500 - 1000: the tombstone stays, the value it deletes goes.
    let stats = log.clean(5500).unwrap();
    assert_eq!((stats.records_removed, stats.tombstones_removed), (1, 0));
    assert_eq!(
        records_from(&log, 0),
        vec![(1, (Some(b"b".to_vec()), Some(b"1".to_vec()))), (2, (Some(b"a".to_vec()), None))]
    );
    // New data makes the log dirty again; now the tombstone's segment is old enough.
    put(&mut log, &[(Some("c"), Some("1"))], 9000);
    log.roll(9000).unwrap();
    let stats = log.clean(9000).unwrap();
    assert_eq!((stats.records_removed, stats.tombstones_removed), (1, 1));
    let keys: Vec<Vec<u8>> = records_from(&log, 0).into_iter().filter_map(|(_, (k, _))| k).collect();
    assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn compacted_logs_refuse_records_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), compacted(1 << 20)).unwrap();
    for codec in [Compression::None, Compression::Lz4] {
        let keyless = spec(&[(Some("a"), Some("1")), (None, Some("2"))], 1).with_compression(codec);
        let err = append(&mut log, &keyless).unwrap_err();
        assert!(matches!(&err, LogError::Batch(BatchError::RecordWithoutKey { indexes }) if indexes == &[1]), "{err}");
        assert_eq!(err.kafka_error_code(), error_code::INVALID_RECORD);
        assert!(err.to_string().contains("compacted topic cannot accept a record without a key"));
    }
    assert_eq!(log.log_end_offset(), 0, "nothing of a refused request is written");
    put(&mut log, &[(Some("a"), None)], 1); // a keyed tombstone is fine
                                            // A log that does not compact accepts keyless records.
    log.set_config(LogConfig::default());
    put(&mut log, &[(None, Some("x"))], 1);
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn retention_deletes_only_when_the_policy_includes_delete() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_ms: 1, retention_bytes: 1, ..compacted(300) };
    let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    for i in 0..10 {
        let key = format!("k{i}");
        put(&mut log, &[(Some(key.as_str()), Some("value"))], 10);
    }
    let segments = log.num_segments();
    assert!(segments > 2);
    assert_eq!(log.apply_retention(NOW).unwrap(), 0, "compact alone never deletes");
    assert_eq!(log.num_segments(), segments);
    log.set_config(LogConfig { cleanup_policy_delete: true, ..config });
    assert!(log.apply_retention(NOW).unwrap() > 0, "compact,delete does both");
}

#[test]
fn the_checkpoint_makes_a_clean_without_new_data_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let config = compacted(1 << 20);
    let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    put(&mut log, &[(Some("a"), Some("1")), (Some("a"), Some("2"))], 100);
    log.roll(NOW).unwrap();
    assert_eq!(log.cleaner_checkpoint(), None);
    assert_eq!(log.dirty_ratio(NOW), 1.0);
    assert_eq!(log.clean(NOW).unwrap().records_removed, 1);
    assert_eq!(log.cleaner_checkpoint(), Some(2));
    assert_eq!(log.dirty_ratio(NOW), 0.0);
    assert_eq!(log.clean(NOW).unwrap(), CleanStats::default());
    assert!(dir.path().join(CHECKPOINT_FILE).exists());
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    assert_eq!(log.cleaner_checkpoint(), Some(2));
    assert_eq!(log.clean(NOW).unwrap(), CleanStats::default());
    // Below min.cleanable.dirty.ratio nothing runs either: 1 dirty segment of 2 is 0.5ish.
    log.set_config(LogConfig { min_cleanable_dirty_ratio: 0.9, ..config.clone() });
    put(&mut log, &[(Some("a"), Some("3")), (Some("a"), Some("4"))], 100);
    log.roll(NOW).unwrap();
    assert!(log.dirty_ratio(NOW) < 0.9);
    assert_eq!(log.clean(NOW).unwrap(), CleanStats::default());
    // A garbled checkpoint file means "everything is dirty".
    fs::write(dir.path().join(CHECKPOINT_FILE), "garbage").unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(log.cleaner_checkpoint(), None);
}

#[test]
fn min_compaction_lag_and_policy_gate_the_cleanable_range() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { min_compaction_lag_ms: 1000, ..compacted(1 << 20) };
    let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    put(&mut log, &[(Some("a"), Some("1")), (Some("a"), Some("2"))], 5000);
    log.roll(5000).unwrap();
    assert_eq!(log.clean(5500).unwrap(), CleanStats::default(), "too recent");
    log.set_config(LogConfig { cleanup_policy_compact: false, ..config.clone() });
    assert_eq!(log.clean(NOW).unwrap(), CleanStats::default(), "not a compacted log");
    log.set_config(config);
    assert_eq!(log.clean(6000).unwrap().records_removed, 1);
}

#[test]
fn max_compaction_lag_cleans_a_log_whose_dirty_ratio_is_below_the_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { min_cleanable_dirty_ratio: 0.9, ..compacted(1 << 20) };
    let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    let keys: Vec<String> = (0..50).map(|i| format!("key-{i}")).collect();
    let first: Vec<(Option<&str>, Option<&str>)> = keys.iter().map(|k| (Some(k.as_str()), Some("old"))).collect();
    put(&mut log, &first, 5000);
    log.roll(5000).unwrap();
    log.clean(NOW).unwrap();
    put(&mut log, &[(Some("key-0"), Some("new"))], 6000);
    log.roll(6000).unwrap();
    assert!(log.dirty_ratio(NOW) < 0.9);
    assert_eq!(log.clean(NOW).unwrap().records_removed, 0, "below min.cleanable.dirty.ratio");
    log.set_config(LogConfig { max_compaction_lag_ms: NOW, ..config.clone() });
    assert_eq!(log.clean(NOW).unwrap().records_removed, 0, "its dirty records are younger than max.compaction.lag.ms");
    log.set_config(LogConfig { max_compaction_lag_ms: 1000, ..config });
    assert_eq!(log.clean(NOW).unwrap().records_removed, 1, "overdue: cleaned whatever the ratio");
    assert_eq!(records_from(&log, 0).iter().filter(|(_, (k, _))| k.as_deref() == Some(b"key-0".as_slice())).count(), 1);
}

#[test]
fn an_idempotent_producers_last_batch_survives_as_an_empty_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = compacted(1 << 20);
    let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    append(&mut log, &spec(&[(Some("a"), Some("1"))], 100).idempotent(7, 0, 0)).unwrap();
    append(&mut log, &spec(&[(Some("b"), Some("1"))], 100).idempotent(7, 0, 1)).unwrap();
    log.roll(NOW).unwrap();
    put(&mut log, &[(Some("a"), Some("2")), (Some("b"), Some("2"))], 100);
    let stats = log.clean(NOW).unwrap();
    assert_eq!(stats.records_removed, 2);
    let headers: Vec<BatchHeader> = log.segments[0].headers_from(0).map(|h| h.unwrap().1).collect();
    assert_eq!(headers.len(), 1, "the first batch goes, the producer's last one stays");
    assert_eq!((headers[0].base_offset, headers[0].records_count, headers[0].base_sequence), (1, 0, 1));
    drop(log);
    // After a restart the producer's sequence is still known: a retry is a duplicate.
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    let mut retry = encode_batch(&spec(&[(Some("b"), Some("1"))], 100).idempotent(7, 0, 1));
    let headers = validate_produce_records(&retry, 1 << 20).unwrap();
    assert!(log.append(&mut retry, &headers, 0, 0).unwrap().is_duplicate());
    append(&mut log, &spec(&[(Some("c"), Some("1"))], 100).idempotent(7, 0, 2)).unwrap();
}

/// A log in `dir` with two closed segments [0..3) and [3..4) and an active one.
fn log_with_duplicates(dir: &Path) -> PartitionLog {
    let mut log = PartitionLog::open(dir, compacted(1 << 20)).unwrap();
    put(&mut log, &[(Some("a"), Some("1")), (Some("b"), Some("1")), (Some("a"), Some("2"))], 100);
    log.roll(NOW).unwrap();
    put(&mut log, &[(Some("b"), Some("2"))], 100);
    log.roll(NOW).unwrap();
    log
}

#[test]
fn a_leftover_cleaned_file_is_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_duplicates(dir.path());
    log.close().unwrap();
    drop(log);
    let cleaned = dir.path().join(format!("{}.log.cleaned", file_stem(0)));
    fs::write(&cleaned, b"half-written garbage").unwrap();
    let log = PartitionLog::open(dir.path(), compacted(1 << 20)).unwrap();
    assert!(!cleaned.exists());
    assert_eq!(records_from(&log, 0).len(), 4);
}

#[test]
fn a_leftover_swap_file_completes_the_swap_on_open() {
    // The cleaned form of segment 0, produced by a real clean in another directory.
    let done = tempfile::tempdir().unwrap();
    let mut log = log_with_duplicates(done.path());
    let inode = |base: i64| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(done.path().join(format!("{}.log", file_stem(base)))).unwrap().ino()
    };
    let before = (inode(0), inode(3));
    assert_eq!(log.clean(NOW).unwrap().segments_cleaned, 2);
    assert_ne!(inode(0), before.0, "segment 0 lost records: replaced");
    assert_eq!(inode(3), before.1, "segment 3 kept everything: not rewritten");
    let want = records_from(&log, 0);
    assert_eq!(want.iter().map(|(o, _)| *o).collect::<Vec<_>>(), vec![2, 3]);
    let cleaned_segment = fs::read(done.path().join(format!("{}.log", file_stem(0)))).unwrap();

    // Crash after `.cleaned` -> `.swap`: the old segment and its index files are still there.
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_duplicates(dir.path());
    log.close().unwrap();
    drop(log);
    assert!(dir.path().join(format!("{}.index", file_stem(0))).exists());
    fs::write(dir.path().join(format!("{}.log.swap", file_stem(0))), &cleaned_segment).unwrap();
    let log = PartitionLog::open(dir.path(), compacted(1 << 20)).unwrap();
    assert_eq!(records_from(&log, 0), want);
    assert_eq!(log.log_end_offset(), 4);
    let names = file_names(dir.path());
    assert!(!names.iter().any(|n| n.ends_with(".swap")), "{names:?}");
    // The stale index was dropped and rebuilt: lookups inside the rewritten segment work.
    assert_eq!(log.read(1, 1, i64::MAX).unwrap().first_batch_offset, Some(0));
}

#[test]
fn truncation_below_the_checkpoint_makes_those_offsets_dirty_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_duplicates(dir.path());
    log.clean(NOW).unwrap();
    assert_eq!(log.cleaner_checkpoint(), Some(4));
    log.truncate_to(3, NOW).unwrap();
    assert_eq!(log.cleaner_checkpoint(), Some(3));
    assert_eq!(load_checkpoint(dir.path()).unwrap(), Some(3));
}

#[test]
fn a_full_offset_map_cleans_only_up_to_the_last_offset_it_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), compacted(1 << 20)).unwrap();
    // Three closed segments, each writing k0..k19 once (two batches of 10 keys).
    for round in 0..3 {
        let value = format!("v{round}");
        for half in 0..2 {
            let keys: Vec<String> = (0..10).map(|i| format!("k{}", half * 10 + i)).collect();
            let records: Vec<_> = keys.iter().map(|k| (Some(k.as_str()), Some(value.as_str()))).collect();
            put(&mut log, &records, 100);
        }
        log.roll(NOW).unwrap();
    }
    // 2000 bytes: room for 28 keys. The map takes segment 0 (20 keys) and stops before the
    // next batch, which might bring 10 more.
    let memory = 2000;
    // Later than any file's mtime: the emptied first segment's largest timestamp is its mtime.
    let now = 1i64 << 50;
    assert_eq!(OffsetMap::with_memory(memory).capacity(), 28);
    let offsets = |log: &PartitionLog| records_from(log, 0).iter().map(|(o, _)| *o).collect::<Vec<_>>();
    let stats = log.clean_with_map_memory(now, memory).unwrap();
    assert!(stats.map_full && stats.keys_mapped == 20, "{stats:?}");
    assert_eq!((stats.segments_cleaned, stats.records_removed), (1, 0), "only segment 0, whose keys are its own latest");
    assert_eq!(log.cleaner_checkpoint(), Some(20), "the checkpoint stops where the map did");
    assert_eq!(offsets(&log), (0..60).collect::<Vec<_>>());

    let stats = log.clean_with_map_memory(now, memory).unwrap();
    assert_eq!((stats.segments_cleaned, stats.records_removed), (2, 20), "{stats:?}");
    assert_eq!(log.cleaner_checkpoint(), Some(40));
    assert_eq!(offsets(&log), (20..60).collect::<Vec<_>>());

    let stats = log.clean_with_map_memory(now, memory).unwrap();
    assert!(!stats.map_full, "{stats:?}");
    assert_eq!(log.cleaner_checkpoint(), Some(60));
    assert_eq!(offsets(&log), (40..60).collect::<Vec<_>>());
    let clean = log.clean_with_map_memory(now, memory).unwrap();
    assert_eq!(clean, CleanStats::default(), "nothing dirty is left");
}

#[test]
fn appends_during_the_unlocked_phase_are_kept_and_cleaned_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_duplicates(dir.path());
    let job = log.prepare_clean(NOW, DEFAULT_DEDUPE_BUFFER_BYTES).unwrap().unwrap();
    // While the job runs without the lock, "a" is written again (offset 4, active segment).
    put(&mut log, &[(Some("a"), Some("3"))], 100);
    let (stats, _) = log.finish_clean(job.run().unwrap()).unwrap();
    assert_eq!(stats.records_removed, 2);
    let offsets = |log: &PartitionLog| records_from(log, 0).iter().map(|(o, _)| *o).collect::<Vec<_>>();
    assert_eq!(offsets(&log), vec![2, 3, 4], "the map was taken before offset 4 existed");
    assert_eq!(log.log_end_offset(), 5);
    log.roll(NOW).unwrap();
    log.clean(NOW).unwrap();
    assert_eq!(offsets(&log), vec![3, 4]);
    assert!(!file_names(dir.path()).iter().any(|n| n.ends_with(".cleaned") || n.ends_with(".swap")));
}

#[test]
fn a_segment_deleted_while_its_copy_was_written_is_not_swapped_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_duplicates(dir.path());
    let job = log.prepare_clean(NOW, DEFAULT_DEDUPE_BUFFER_BYTES).unwrap().unwrap();
    let cleaned = job.run().unwrap();
    // Retention (cleanup.policy=compact,delete) removes both closed segments meanwhile.
    log.set_config(LogConfig { cleanup_policy_delete: true, retention_ms: 1000, ..compacted(1 << 20) });
    assert_eq!(log.apply_retention(NOW).unwrap(), 2);
    let (_, retired) = log.finish_clean(cleaned).unwrap();
    drop(retired);
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.num_segments()), (4, 4, 1));
    let names = file_names(dir.path());
    assert!(!names.iter().any(|n| n.contains(".log.") || n.starts_with(&file_stem(0))), "{names:?}");
    drop(log);
    let log = PartitionLog::open(dir.path(), compacted(1 << 20)).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (4, 4));
}

#[test]
fn segments_cleaned_away_are_removed_when_the_caller_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), compacted(1 << 20)).unwrap();
    put(&mut log, &[(Some("a"), Some("1"))], 100);
    log.roll(NOW).unwrap();
    put(&mut log, &[(Some("b"), Some("1"))], 100);
    log.roll(NOW).unwrap();
    put(&mut log, &[(Some("b"), Some("2"))], 100);
    log.roll(NOW).unwrap();
    let job = log.prepare_clean(NOW, DEFAULT_DEDUPE_BUFFER_BYTES).unwrap().unwrap();
    let (stats, retired) = log.finish_clean(job.run().unwrap()).unwrap();
    assert_eq!((stats.records_removed, log.segment_base_offsets()), (1, vec![0, 2, 3]));
    let deleted = |dir: &Path| file_names(dir).into_iter().filter(|n| n.ends_with(".deleted")).count();
    assert_eq!(deleted(dir.path()), 3, "segment 1 renamed (log and indexes) while the lock is held");
    drop(retired);
    assert_eq!(deleted(dir.path()), 0);
    assert!(!dir.path().join(format!("{}.log", file_stem(1))).exists());
}

#[test]
fn an_abandoned_clean_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_duplicates(dir.path());
    let cleaned = log.prepare_clean(NOW, DEFAULT_DEDUPE_BUFFER_BYTES).unwrap().unwrap().run().unwrap();
    assert!(file_names(dir.path()).iter().any(|n| n.ends_with(".cleaned")));
    drop(cleaned);
    assert!(!file_names(dir.path()).iter().any(|n| n.ends_with(".cleaned")));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random batches (random keys incl. null keys written before compaction was enabled,
    /// tombstones, codecs, idempotent producers) and an optional corrupted byte: cleaning
    /// never panics, never moves the log's bounds, and a clean log keeps exactly the latest
    /// record of every key (tombstones included, as they are recent).
    #[test]
    fn random_batches_through_the_cleaner(
        batches in proptest::collection::vec(
            (proptest::collection::vec((proptest::option::weighted(0.9, 0u8..8), any::<bool>()), 1..6), 0usize..5, any::<bool>()),
            1..30,
        ),
        corrupt in proptest::option::weighted(0.3, any::<(usize, u8)>()),
    ) {
        let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
        let dir = tempfile::tempdir().unwrap();
        let plain = LogConfig { segment_bytes: 400, index_interval_bytes: 100, ..LogConfig::default() };
        let mut log = PartitionLog::open(dir.path(), plain).unwrap();
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut sequence = 0;
        for (records, codec, idempotent) in &batches {
            let owned: Vec<(Option<String>, Option<String>)> = records
                .iter()
                .map(|(k, tombstone)| (k.map(|k| format!("k{k}")), (!tombstone).then(|| "v".repeat(20))))
                .collect();
            let refs: Vec<_> = owned.iter().map(|(k, v)| (k.as_deref(), v.as_deref())).collect();
            let mut s = spec(&refs, 100).with_compression(codecs[*codec]);
            if *idempotent {
                s = s.idempotent(3, 0, sequence);
                sequence += refs.len() as i32;
            }
            let base = log.log_end_offset();
            append(&mut log, &s).unwrap();
            for (i, (k, _)) in owned.iter().enumerate() {
                if let Some(k) = k {
                    latest.insert(k.clone().into_bytes(), base + i as i64);
                }
            }
        }
        log.roll(NOW).unwrap();
        let end = log.log_end_offset();
        let corrupted = corrupt.is_some_and(|(at, byte)| {
            let path = log.segments[0].path().to_path_buf();
            let mut bytes = fs::read(&path).unwrap();
            let i = 61 + at % (bytes.len() - 61);
            let changed = bytes[i] != byte;
            bytes[i] = byte;
            fs::write(&path, bytes).unwrap();
            changed
        });
        log.set_config(compacted(400));
        let result = log.clean(NOW);
        if corrupted {
            // A corrupt segment may be refused or kept as it is, but nothing panics.
            let _ = result;
            let _ = log.read(0, 1 << 20, i64::MAX);
            return Ok(());
        }
        result.unwrap();
        prop_assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, end));
        let got = records_from(&log, 0);
        let mut want: Vec<i64> = latest.values().copied().collect();
        want.sort_unstable();
        prop_assert_eq!(got.iter().map(|(o, _)| *o).collect::<Vec<_>>(), want);
        drop(log);
        let log = PartitionLog::open(dir.path(), compacted(400)).unwrap();
        prop_assert_eq!(records_from(&log, 0).len(), latest.len());
    }
}
