//! Tests of moving a log between directories: the copy follows appends, truncations and
//! retention of the log it copies; the swap keeps every handle working; start-up settles a
//! move a crash cut short.

use super::*;
use crate::log::log_manager::{LogManager, MoveRefused, MoveStart};
use crate::log::partition_log::LogConfig;
use crate::log::record_batch::validate_produce_records;
use crate::log::test_util::{encode_batch, BatchSpec};
use parking_lot::Mutex;
use std::sync::Arc;

fn small() -> LogConfig {
    LogConfig { segment_bytes: 400, index_interval_bytes: 100, ..LogConfig::default() }
}

fn append(log: &SharedLog, epoch: i32, spec: BatchSpec) {
    let mut bytes = encode_batch(&spec);
    let headers = validate_produce_records(&bytes, 1 << 20).unwrap();
    log.lock().append(&mut bytes, &headers, epoch, 0).unwrap();
}

fn values(n: usize, tag: &str) -> BatchSpec {
    let owned: Vec<Vec<u8>> = (0..n).map(|i| format!("{tag}-{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = owned.iter().map(|v| v.as_slice()).collect();
    BatchSpec::values(&refs)
}

/// Every byte of the log's batches, from its start.
fn contents(log: &PartitionLog) -> Vec<u8> {
    log.read(log.log_start_offset(), 1 << 24, i64::MAX).unwrap().records.to_vec()
}

fn future_in(dir: &Path, current: &SharedLog) -> PartitionLog {
    let (config, start) = {
        let log = current.lock();
        (log.config().clone(), log.log_start_offset())
    };
    let mut future = PartitionLog::open(&dir.join(future_dir_name("t", 0).unwrap()), future_config(&config)).unwrap();
    if start > 0 {
        future.truncate_fully_and_start_at(start, 0).unwrap();
    }
    future
}

#[test]
fn the_moved_log_has_the_same_batches_epochs_and_producers_and_every_handle_follows_it() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let current: SharedLog = Arc::new(Mutex::new(PartitionLog::open(&a.path().join("t-0"), small()).unwrap()));
    for i in 0..10 {
        append(&current, 1, values(3, &format!("a{i}")).idempotent(7, 0, i * 3));
    }
    std::fs::write(a.path().join("t-0").join("partition.metadata"), b"version: 0\ntopic_id: x\n").unwrap();
    let mut future = future_in(b.path(), &current);
    // Rounds of ~one batch, with appends (a new leader epoch too) between them.
    let mut rounds = 0;
    loop {
        let round = copy_round(&current, &mut future, 64, 0).unwrap();
        rounds += 1;
        if rounds == 5 {
            for i in 10..14 {
                append(&current, 2, values(2, &format!("b{i}")).idempotent(7, 0, 30 + (i - 10) * 2));
            }
        }
        if round.caught_up && rounds > 5 {
            break;
        }
        assert!(rounds < 1000);
    }
    append(&current, 2, values(1, "tail").idempotent(7, 0, 38));
    let handle = Arc::clone(&current);
    let left = complete(&current, future, &["partition.metadata"], || false, || {}, 0).unwrap();
    assert!(left.marker.is_none());
    let doomed = left.dir;

    let log = handle.lock();
    assert_eq!(log.dir(), b.path().join("t-0"), "the shared handle holds the moved log");
    assert!(!a.path().join("t-0").exists() && doomed.starts_with(a.path()) && doomed.exists());
    assert_eq!(log.log_end_offset(), 30 + 8 + 1);
    assert_eq!(log.epoch_history().entries(), &[(1, 0), (2, 30)]);
    assert!(log.num_segments() > 1, "small segments rolled in the copy too");
    let original_bases = PartitionLog::open(&doomed, small()).unwrap().segment_base_offsets();
    assert_eq!(log.segment_base_offsets()[..original_bases.len() - 1], original_bases[..original_bases.len() - 1], "the copy's segments start where the log's do");
    assert!(b.path().join("t-0").join("partition.metadata").exists());
    assert!(!b.path().join("t-0").join(COMMITTED_MARKER).exists(), "the commit marker is gone after the swap");
    let copy = contents(&log);
    let original = PartitionLog::open(&doomed, small()).unwrap();
    assert_eq!(copy, contents(&original), "identical batches");
    // The idempotent producer's next sequence is known to the moved log: its retry of the
    // last batch is a duplicate, not a gap.
    let retry = encode_batch(&values(1, "tail").idempotent(7, 0, 38));
    let headers = validate_produce_records(&retry, 1 << 20).unwrap();
    assert!(matches!(log.producer_state().check_all(&headers), Ok(crate::log::SequenceCheck::Duplicate { .. })));
    drop(log);
    // Appends go on in the new directory, and a reopen finds the same log there.
    append(&handle, 2, values(2, "after"));
    let end = handle.lock().log_end_offset();
    handle.lock().close().unwrap();
    let reopened = PartitionLog::open(&b.path().join("t-0"), small()).unwrap();
    assert_eq!((reopened.log_end_offset(), reopened.epoch_history().entries()), (end, &[(1, 0), (2, 30)][..]));
}

#[test]
fn a_truncation_of_the_log_during_the_copy_is_truncated_in_the_copy_too() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let current: SharedLog = Arc::new(Mutex::new(PartitionLog::open(&a.path().join("t-0"), small()).unwrap()));
    for i in 0..6 {
        append(&current, 3, values(2, &format!("x{i}")));
    }
    let mut future = future_in(b.path(), &current);
    while !copy_round(&current, &mut future, 1 << 20, 0).unwrap().caught_up {}
    assert_eq!(future.log_end_offset(), 12);
    // A follower's truncation (a new leader lacked offsets 6..12), then the new leader's
    // batches under epoch 4 at the same offsets.
    current.lock().truncate_to(6, 0).unwrap();
    for i in 0..4 {
        append(&current, 4, values(2, &format!("y{i}")));
    }
    let mut rounds = 0;
    while !copy_round(&current, &mut future, 1 << 20, 0).unwrap().caught_up {
        rounds += 1;
        assert!(rounds < 100);
    }
    assert_eq!(contents(&future), contents(&current.lock()), "the copy holds the new leader's batches, not the old ones");
    assert_eq!(future.epoch_history().entries(), &[(3, 0), (4, 6)]);
}

#[test]
fn retention_past_the_copy_restarts_it_at_the_log_start() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let current: SharedLog = Arc::new(Mutex::new(PartitionLog::open(&a.path().join("t-0"), small()).unwrap()));
    append(&current, 1, values(2, "old"));
    let mut future = future_in(b.path(), &current);
    current.lock().truncate_fully_and_start_at(100, 0).unwrap();
    append(&current, 1, values(3, "new"));
    copy_round(&current, &mut future, 1 << 20, 0).unwrap();
    assert_eq!((future.log_start_offset(), future.log_end_offset()), (100, 103));
    let handle = Arc::clone(&current);
    complete(&current, future, &[], || false, || {}, 0).unwrap();
    assert_eq!(handle.lock().log_start_offset(), 100);
}

#[test]
fn retention_during_the_copy_leaves_the_copy_with_the_same_log_start() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let current: SharedLog = Arc::new(Mutex::new(PartitionLog::open(&a.path().join("t-0"), small()).unwrap()));
    for i in 0..30 {
        append(&current, 1, values(2, &format!("r{i}")));
    }
    let mut future = future_in(b.path(), &current);
    while !copy_round(&current, &mut future, 1 << 20, 0).unwrap().caught_up {}
    // Retention takes the oldest segments of the log (as by retention.bytes).
    {
        let mut log = current.lock();
        let bases = log.segment_base_offsets();
        assert!(bases.len() > 3, "{bases:?}");
        log.delete_segments_below(bases[2], 0).unwrap();
    }
    let start = current.lock().log_start_offset();
    append(&current, 1, values(2, "after"));
    let handle = Arc::clone(&current);
    complete(&current, future, &[], || false, || {}, 0).unwrap();
    let log = handle.lock();
    assert_eq!(log.log_start_offset(), start, "the moved log starts where the log did, not earlier");
}

#[test]
fn a_log_deleted_during_the_move_is_not_swapped_in() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let current: SharedLog = Arc::new(Mutex::new(PartitionLog::open(&a.path().join("t-0"), small()).unwrap()));
    append(&current, 1, values(2, "v"));
    let future = future_in(b.path(), &current);
    current.lock().mark_deleted();
    assert!(matches!(complete(&current, future, &[], || false, || {}, 0), Err(LogError::LogDeleted { .. })));
    assert!(a.path().join("t-0").exists());
}

fn closed_log_with(dir: &Path, records: usize) {
    let shared: SharedLog = Arc::new(Mutex::new(PartitionLog::open(dir, small()).unwrap()));
    if records > 0 {
        append(&shared, 5, values(records, "kept"));
    }
    shared.lock().close().unwrap();
}

#[test]
fn start_up_removes_unfinished_copies_and_lets_a_committed_copy_win() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // t-0: a copy under way (the log is still in a): the copy goes.
    closed_log_with(&a.path().join("t-0"), 2);
    let unfinished = b.path().join(future_dir_name("t", 0).unwrap());
    closed_log_with(&unfinished, 1);
    // t-1: a crash after the copy was renamed into place, before the old directory was
    // renamed for deletion: both are named t-1, the marked one wins.
    closed_log_with(&a.path().join("t-1"), 3);
    closed_log_with(&b.path().join("t-1"), 4);
    std::fs::write(b.path().join("t-1").join(COMMITTED_MARKER), b"").unwrap();
    // t-2: a crash after the old directory was renamed for deletion but with the copy still
    // under its future name (not this code's order, but what an older one or a rename that
    // failed back leaves): the marked copy takes the name.
    let cut_short = b.path().join(future_dir_name("t", 2).unwrap());
    closed_log_with(&cut_short, 4);
    std::fs::write(cut_short.join(COMMITTED_MARKER), b"").unwrap();
    std::fs::create_dir_all(a.path().join("t-2.0123456789abcdef0123456789abcdef-delete")).unwrap();
    // t-3: a deleted partition's queued copy, never marked, with no other directory: it goes
    // (it must not come back as the partition).
    closed_log_with(&b.path().join(future_dir_name("t", 3).unwrap()), 1);

    let (manager, loaded) = LogManager::open(&[a.path().to_path_buf(), b.path().to_path_buf()], small()).unwrap();
    let mut names: Vec<(String, i32, PathBuf, i64)> = loaded
        .iter()
        .map(|(t, p, l)| {
            let log = l.lock();
            (t.clone(), *p, log.dir().to_path_buf(), log.log_end_offset())
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("t".into(), 0, a.path().join("t-0"), 2),
            ("t".into(), 1, b.path().join("t-1"), 4),
            ("t".into(), 2, b.path().join("t-2"), 4),
        ]
    );
    for d in [a.path(), b.path()] {
        let left: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(left.iter().all(|n| !n.ends_with("-future") && !n.ends_with("-delete")), "{left:?}");
    }
    assert!(!b.path().join("t-1").join(COMMITTED_MARKER).exists() && !b.path().join("t-2").join(COMMITTED_MARKER).exists());
    drop(manager);
}

#[test]
fn future_dir_names_parse_back_and_other_names_do_not() {
    let name = future_dir_name("my.topic-x", 12).unwrap();
    assert!(future_dir_name(&"x".repeat(249), 0).is_none(), "longer than a file name may be");
    assert_eq!(deleted_dir_name(&format!("{}-0", "y".repeat(249))).len(), 255);
    assert_eq!(parse_future_dir_name(&name), Some(("my.topic-x".to_string(), 12)));
    assert_eq!(parse_future_dir_name("t-0"), None);
    assert_eq!(parse_future_dir_name("t-0.0123-future"), None);
    assert_eq!(parse_future_dir_name("t-0.0123456789abcdef0123456789abcdef-delete"), None);
}

#[test]
fn the_manager_starts_one_move_per_partition_and_refuses_what_kafka_refuses() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
    let (manager, _) = LogManager::open(&dirs, small()).unwrap();
    let log = manager.create_partition("t", 0, small()).unwrap();
    assert_eq!(log.lock().dir(), a.path().join("t-0"));
    append(&log, 1, values(3, "v"));

    assert_eq!(manager.begin_move("t", 0, Path::new("/nowhere")).unwrap_err(), MoveRefused::UnknownDir);
    assert!(matches!(manager.begin_move("t", 0, a.path()), Ok(MoveStart::AlreadyThere)));
    // Not hosted yet: remembered, and the replica is created there.
    assert_eq!(manager.begin_move("t", 1, b.path()).unwrap_err(), MoveRefused::NotHosted);
    let placed = manager.create_partition("t", 1, small()).unwrap();
    assert_eq!(placed.lock().dir(), b.path().join("t-1"));

    let Ok(MoveStart::Started(log_move)) = manager.begin_move("t", 0, b.path()) else { panic!("no move") };
    assert!(matches!(manager.begin_move("t", 0, b.path()), Ok(MoveStart::AlreadyMoving)));
    assert_eq!(manager.moves().len(), 1);
    let mut future = PartitionLog::open(&b.path().join(future_dir_name("t", 0).unwrap()), future_config(&small())).unwrap();
    while !copy_round(&log_move.current, &mut future, 1 << 20, 0).unwrap().caught_up {}
    complete(&log_move.current, future, &[], || log_move.is_cancelled(), || log_move.swapped(), 0).unwrap();
    manager.end_move(&log_move);
    assert!(manager.moves().is_empty());
    assert_eq!(manager.get("t", 0).unwrap().lock().dir(), b.path().join("t-0"));
    // Back again: the manager knows the log is in b now.
    assert!(matches!(manager.begin_move("t", 0, b.path()), Ok(MoveStart::AlreadyThere)));
    let Ok(MoveStart::Started(log_move)) = manager.begin_move("t", 0, a.path()) else { panic!("no move back") };
    // A move that is cancelled does not swap, even once it has caught up.
    let mut future = PartitionLog::open(&a.path().join(future_dir_name("t", 0).unwrap()), future_config(&small())).unwrap();
    while !copy_round(&log_move.current, &mut future, 1 << 20, 0).unwrap().caught_up {}
    log_move.cancel();
    assert!(complete(&log_move.current, future, &[], || log_move.is_cancelled(), || log_move.swapped(), 0).is_err());
    assert_eq!(manager.get("t", 0).unwrap().lock().dir(), b.path().join("t-0"));
    manager.end_move(&log_move);
    let Ok(MoveStart::Started(log_move)) = manager.begin_move("t", 0, a.path()) else { panic!("no move back") };
    // A deleted partition cancels its move; its directory is renamed where it is (b).
    let doomed = manager.delete_partition("t", 0).unwrap();
    assert!(doomed.starts_with(b.path()));
    assert!(log_move.is_cancelled() && manager.moves().is_empty());
    // An offline directory refuses moves into it.
    manager.take_offline(0, "test".into());
    assert_eq!(manager.begin_move("t", 1, a.path()).unwrap_err(), MoveRefused::Offline);
}
