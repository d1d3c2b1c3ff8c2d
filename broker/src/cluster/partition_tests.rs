//! Tests of `Partition`: what needs the log's lock and what does not, and which appends
//! wake which long-poll fetches.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use super::*;
use crate::cluster::DelayedFetch;
use crate::error_code;
use crate::log::test_util::{encode_batch, BatchSpec, TestRecord};
use crate::log::{Compression, LogConfig, PartitionLog};

fn partition(dir: &std::path::Path, topic: &str, config: LogConfig) -> Arc<Partition> {
    let log = PartitionLog::open(&dir.join(format!("{topic}-0")), config).unwrap();
    // Broker 1 leading partition 0 alone.
    Arc::new(Partition::with_leader(topic, Uuid::nil(), 0, 0, 1, 1, Arc::new(Mutex::new(log))))
}

fn batch(spec: &BatchSpec) -> Bytes {
    Bytes::from(encode_batch(spec))
}

#[tokio::test(start_paused = true)]
async fn an_append_wakes_only_the_fetches_waiting_on_its_partition() {
    let dir = tempfile::tempdir().unwrap();
    let a = partition(dir.path(), "a", LogConfig::default());
    let b = partition(dir.path(), "b", LogConfig::default());
    let on_a = DelayedFetch::watch(vec![a.clone()]);
    let on_both = DelayedFetch::watch(vec![a.clone(), b.clone()]);
    assert_eq!((a.fetch_watchers().len(), b.fetch_watchers().len()), (2, 1));
    let soon = || tokio::time::Instant::now() + Duration::from_millis(500);

    let mut woken = 0;
    for _ in 0..20 {
        b.append(&batch(&BatchSpec::values(&[b"to b"])), 0).await.unwrap();
        woken += usize::from(on_a.wait_until(soon()).await);
    }
    assert_eq!(woken, 0, "appends to b never wake a fetch waiting only on a");
    assert!(on_both.wait_until(soon()).await, "a fetch on a and b is woken by b");

    a.append(&batch(&BatchSpec::values(&[b"to a"])), 0).await.unwrap();
    assert!(on_a.wait_until(soon()).await, "an append to a before the wait is not lost");
    assert!(on_both.wait_until(soon()).await);
    assert!(!on_a.wait_until(soon()).await, "one append, one wake-up");

    drop(on_a);
    drop(on_both);
    assert!(a.fetch_watchers().is_empty() && b.fetch_watchers().is_empty());
}

#[test]
fn produce_validation_does_not_wait_for_the_log_lock() {
    let dir = tempfile::tempdir().unwrap();
    let compacted = LogConfig { cleanup_policy_compact: true, cleanup_policy_delete: false, ..LogConfig::default() };
    let p = partition(dir.path(), "c", compacted);
    let mut corrupt = encode_batch(&BatchSpec::values(&[b"x"]).with_compression(Compression::Zstd));
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xFF;
    // A keyless record hidden in a compressed batch: only decompressing it finds it.
    let keyless = batch(&BatchSpec::values(&[&b"no key"[..]; 100]).with_compression(Compression::Zstd));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Someone holds the lock (a long fetch or compaction did, before): invalid produce
    // requests are still refused, because checking them takes no lock.
    let held = p.log().lock();
    for (records, code) in [(Bytes::from(corrupt), error_code::CORRUPT_MESSAGE), (keyless, error_code::INVALID_RECORD)] {
        let p = p.clone();
        let refused = runtime.block_on(async move {
            let append = tokio::spawn(async move { p.append(&records, 0).await.map(|_| ()).map_err(|e| e.code()) });
            tokio::time::timeout(Duration::from_secs(10), append).await
        });
        assert_eq!(refused.expect("validation waited for the lock").unwrap(), Err(code));
    }
    drop(held);
    let mut keyed = BatchSpec::values(&[]);
    keyed.records = vec![TestRecord { timestamp: 1, key: Some(b"k".to_vec()), value: Some(b"v".to_vec()) }];
    let appended = runtime.block_on(p.append(&batch(&keyed.with_compression(Compression::Zstd)), 0)).unwrap();
    assert_eq!((appended.base_offset, p.high_watermark()), (0, 1));
}

#[test]
fn an_append_does_not_wait_for_a_large_read_of_the_same_partition() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), "big", LogConfig { max_message_bytes: 2 << 20, ..LogConfig::default() });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let value = vec![b'v'; 1 << 20];
    for _ in 0..96 {
        runtime.block_on(p.append(&batch(&BatchSpec::values(&[&value[..]])), 0)).unwrap();
    }
    // A reader reads the whole 96 MiB, again and again, while appends go on.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (p, stop) = (p.clone(), stop.clone());
        move || {
            let mut reads = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = std::time::Instant::now();
                let (records, _, _) = p.read(0, 96 << 20).unwrap();
                assert!(records.len() >= 95 << 20);
                reads.push(started.elapsed());
            }
            reads
        }
    });
    let mut appends = Vec::new();
    while appends.len() < 200 && !reader.is_finished() {
        let started = std::time::Instant::now();
        runtime.block_on(p.append(&batch(&BatchSpec::values(&[b"small"])), 0)).unwrap();
        appends.push(started.elapsed());
        std::thread::sleep(Duration::from_micros(500));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = reader.join().unwrap();
    reads.sort();
    appends.sort();
    let read = reads[reads.len() / 2];
    let worst_append = appends[appends.len() - 1];
    // Holding the lock for the pread made some appends wait most of a read.
    assert!(read >= Duration::from_millis(4), "a 96 MiB read took only {read:?}: too quick to tell");
    assert!(worst_append < read / 3, "an append waited {worst_append:?}; a read takes {read:?} ({} reads)", reads.len());
}

/// A produce accepted while this broker led, appended after the metadata moved leadership
/// away, must not land: it would carry the new leader's epoch and never be truncated.
#[tokio::test]
async fn a_broker_that_stopped_leading_refuses_appends_and_stale_follower_data() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), "t", LogConfig::default());
    p.append(&batch(&BatchSpec::values(&[b"a"])), 0).await.unwrap();
    let moved = PartitionState { leader: 2, leader_epoch: 1, partition_epoch: 1, replicas: &[1, 2], isr: &[1, 2], isr_ineligible: &[] };
    assert!(p.apply_state(&moved, 0));
    let e = p.append(&batch(&BatchSpec::values(&[b"late"])), 0).await.unwrap_err();
    assert_eq!(e.code(), error_code::NOT_LEADER_OR_FOLLOWER);
    assert_eq!((p.log_end_offset(), p.high_watermark()), (1, 1), "nothing appended, the high watermark unmoved");

    // Records fetched under an older leadership are dropped; under the current one, appended.
    let mut leader_batch = encode_batch(&BatchSpec::values(&[b"b"]));
    crate::log::stamp_batch(&mut leader_batch, 1, 1);
    let e = p.append_as_follower(Bytes::from(leader_batch.clone()), 2, 2, 0, 0).await.unwrap_err();
    assert_eq!(e.code(), error_code::NOT_LEADER_OR_FOLLOWER, "fetched under epoch 0, now 1");
    p.append_as_follower(Bytes::from(leader_batch), 2, 2, 1, 0).await.unwrap();
    assert_eq!((p.log_end_offset(), p.high_watermark()), (2, 2));
    // A truncation meant for another epoch is refused too.
    assert!(p.truncate_as_follower(0, 0, 0).await.is_err());
    assert_eq!(p.log_end_offset(), 2);
}

/// Found by the fault suite (a crash in a compaction, then the follower caught up from a
/// compacted leader): the leader's next batch after the follower's log end started later
/// (the records between were compacted away), and the follower refused it forever.
#[tokio::test]
async fn a_follower_appends_a_compacted_leaders_batches_across_offset_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), "t", LogConfig::default());
    let moved = PartitionState { leader: 2, leader_epoch: 1, partition_epoch: 1, replicas: &[1, 2], isr: &[1, 2], isr_ineligible: &[] };
    p.apply_state(&moved, 0);
    let at = |offset: i64, values: &[&[u8]]| {
        let mut b = encode_batch(&BatchSpec::values(values));
        crate::log::stamp_batch(&mut b, offset, 1);
        b
    };
    // Offsets 0-1, then (3-4 compacted away at the leader) 5, then 9-10 in one fetch.
    p.append_as_follower(Bytes::from(at(0, &[b"a", b"b"])), 2, 2, 1, 0).await.unwrap();
    p.append_as_follower(Bytes::from(at(5, &[b"f"])), 6, 2, 1, 0).await.unwrap();
    assert_eq!(p.log_end_offset(), 6);
    let mut two = at(7, &[b"h"]);
    two.extend(at(9, &[b"j", b"k"]));
    p.append_as_follower(Bytes::from(two), 11, 2, 1, 0).await.unwrap();
    assert_eq!((p.log_end_offset(), p.high_watermark()), (11, 11));
    // A batch starting before the log end is still refused (it would rewrite offsets).
    let e = p.append_as_follower(Bytes::from(at(10, &[b"x"])), 11, 2, 1, 0).await.unwrap_err();
    assert!(e.to_string().contains("before this replica's log end offset"), "{e}");
    assert_eq!(p.log_end_offset(), 11);
}

/// A gap wider than a segment's relative offsets (i32) starts a new segment at the batch,
/// whether the active segment is empty or not, and the log reopens at the same end.
#[tokio::test]
async fn a_follower_gap_wider_than_a_segments_offsets_starts_a_segment_at_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), "t", LogConfig::default());
    let moved = PartitionState { leader: 2, leader_epoch: 1, partition_epoch: 1, replicas: &[1, 2], isr: &[1, 2], isr_ineligible: &[] };
    p.apply_state(&moved, 0);
    let at = |offset: i64| {
        let mut b = encode_batch(&BatchSpec::values(&[b"v"]));
        crate::log::stamp_batch(&mut b, offset, 1);
        Bytes::from(b)
    };
    let far = 3_000_000_000i64;
    // Empty log: the empty segment at 0 is replaced by one at the batch.
    p.append_as_follower(at(far), far + 1, 2, 1, 0).await.unwrap();
    assert_eq!((p.log_start_offset(), p.log_end_offset()), (far, far + 1));
    // Non-empty active segment: sealed, a new one starts at the next far batch.
    p.append_as_follower(at(far + 1), far + 2, 2, 1, 0).await.unwrap();
    let farther = far + 5_000_000_000;
    p.append_as_follower(at(farther), farther + 1, 2, 1, 0).await.unwrap();
    assert_eq!(p.log_end_offset(), farther + 1);
    let part_dir = p.log().lock().dir().to_path_buf();
    let segments: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(&part_dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".log")).collect();
        v.sort();
        v
    };
    assert_eq!(segments, vec![format!("{far:020}.log"), format!("{farther:020}.log")]);
    p.log().lock().flush().unwrap();
    drop(p);
    let reopened = PartitionLog::open(&part_dir, LogConfig::default()).unwrap();
    assert_eq!((reopened.log_start_offset(), reopened.log_end_offset()), (far, farther + 1));
}
