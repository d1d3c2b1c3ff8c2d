//! One hosted partition: its log behind a lock, leader epoch, high watermark, the
//! group-commit flush that makes acknowledged writes durable, and the long-poll fetches
//! waiting for its next append.
//!
//! The lock is a `parking_lot` mutex taken on tokio workers, so everything slow happens
//! outside it: produce validation (CRCs, and decompression for compacted topics) before it,
//! fetch preads and timestamp scans after it (on a plan taken under it), fsyncs after it,
//! and whatever is large on a blocking thread rather than a worker.
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use uuid::Uuid;

use super::delayed_fetch::FetchWatchers;
use super::replication::{AcksAll, IsrChange, LeaderReplication};
use crate::log::log_validator::{self, AppendPolicy};
use crate::log::record_batch::NO_TIMESTAMP;
use crate::log::records::DEFAULT_MAX_DECOMPRESSED;
use crate::log::{
    validate_keys_for_compaction, validate_produce_records, AppendOutcome, BatchError, BatchHeader, Compression, LogConfig,
    LogError, PartitionLog, ReadPlan, TimestampLookup,
};

/// Produce record sets at least this large are validated on a blocking thread: checking the
/// CRCs of a few MB takes a tokio worker for milliseconds.
const BLOCKING_VALIDATION_BYTES: usize = 1 << 20;

/// Why a partition operation failed; `code()` is the Kafka error code to answer with.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// An old-format (magic 0/1) message set that cannot be converted to a record batch.
    #[error(transparent)]
    LegacyFormat(#[from] crate::log::legacy_format::LegacyFormatError),
    #[error("fsync of {0} failed: {1}")]
    Flush(String, std::io::Error),
    #[error("the flush task for {0} did not complete")]
    FlushAborted(String),
    #[error("the {what} task for {partition} did not complete")]
    TaskAborted { what: &'static str, partition: String },
    #[error("the ISR of {partition} has {isr} members, fewer than min.insync.replicas={min}: acks=all produces are refused until replicas catch up")]
    NotEnoughReplicas { partition: String, isr: usize, min: usize },
    #[error("the records were written to {0} but its ISR fell below min.insync.replicas before every member had them")]
    NotEnoughReplicasAfterAppend(String),
    #[error("this broker stopped leading {0} before the records were replicated")]
    NotLeader(String),
    #[error("the records were written to {0} but not every ISR member had them within the request's timeout")]
    ReplicationTimedOut(String),
    #[error("records of {0} cannot be deleted: its cleanup.policy is compact without delete (compaction decides what stays)")]
    DeleteOnCompactedTopic(String),
    #[error("cannot delete the records of {partition} before offset {offset}: it is past the high watermark {high_watermark}")]
    DeleteBeyondHighWatermark { partition: String, offset: i64, high_watermark: i64 },
}

impl PartitionError {
    /// The records at fault when only some of a produce's records are (KIP-467), as (index,
    /// message); empty otherwise.
    pub fn record_errors(&self, partition: &str) -> Vec<(i32, String)> {
        match self {
            PartitionError::Batch(e) | PartitionError::Log(LogError::Batch(e)) => e.record_errors(partition),
            _ => Vec::new(),
        }
    }

    pub fn code(&self) -> i16 {
        match self {
            PartitionError::Log(e) => e.kafka_error_code(),
            PartitionError::Batch(e) => e.kafka_error_code(),
            PartitionError::LegacyFormat(e) => e.kafka_error_code(),
            PartitionError::Flush(..) | PartitionError::FlushAborted(_) => crate::error_code::KAFKA_STORAGE_ERROR,
            PartitionError::TaskAborted { .. } => crate::error_code::UNKNOWN_SERVER_ERROR,
            PartitionError::NotEnoughReplicas { .. } => crate::error_code::NOT_ENOUGH_REPLICAS,
            PartitionError::NotEnoughReplicasAfterAppend(_) => crate::error_code::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            PartitionError::NotLeader(_) => crate::error_code::NOT_LEADER_OR_FOLLOWER,
            PartitionError::ReplicationTimedOut(_) => crate::error_code::REQUEST_TIMED_OUT,
            PartitionError::DeleteOnCompactedTopic(_) => crate::error_code::POLICY_VIOLATION,
            PartitionError::DeleteBeyondHighWatermark { .. } => crate::error_code::OFFSET_OUT_OF_RANGE,
        }
    }
}

/// What a successful append reports to the producer.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
    pub records: u64,
    pub duplicate: bool,
    /// How long the fsync this append waited for took, when it ran one.
    pub flushed_in: Option<std::time::Duration>,
}

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    /// Leader epoch (high 32 bits) and leader id (low 32 bits, -1: none), changed in place
    /// when the metadata moves leadership, so every holder of this partition sees the change
    /// (and the high watermark stays one value).
    leadership: AtomicU64,
    /// This broker's id.
    local: i32,
    log: Arc<Mutex<PartitionLog>>,
    high_watermark: AtomicI64,
    /// Held while an fsync runs, so concurrent producers share one (group commit).
    flush_gate: tokio::sync::Mutex<()>,
    /// Long-poll fetches to wake when an append moves the high watermark.
    fetch_watchers: FetchWatchers,
    /// The log's max.message.bytes and whether its cleanup.policy has compact, copied out
    /// of its config so produce validation needs no lock.
    max_message_bytes: AtomicUsize,
    compact: AtomicBool,
    /// The topic's timestamp and compression settings, copied out of its config likewise.
    append_policy: Mutex<AppendPolicy>,
    /// The leader's view of its followers (`None` while this broker does not lead).
    replication: Mutex<Option<LeaderReplication>>,
    /// The high watermark as published, for acks=all produces waiting on it (and changed
    /// on every leadership change, so they notice).
    hw_watch: tokio::sync::watch::Sender<i64>,
    /// The topic's min.insync.replicas.
    min_insync: AtomicUsize,
    /// See [`Partition::follower_lag`].
    follower_lag: AtomicI64,
}

/// Where an acks=all produce ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicated {
    Done,
    NotEnoughReplicasAfterAppend,
    /// This broker stopped leading the partition while the produce waited.
    NotLeader,
    TimedOut,
}

/// A partition's assignment as the metadata gives it.
#[derive(Debug, Clone)]
pub struct PartitionState<'a> {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: &'a [i32],
    pub isr: &'a [i32],
    /// Brokers that may not join an ISR now (fenced or in controlled shutdown).
    pub isr_ineligible: &'a [i32],
}

impl Partition {
    pub fn new(topic: &str, topic_id: Uuid, index: i32, leader_epoch: i32, log: Arc<Mutex<PartitionLog>>) -> Self {
        Self::with_leader(topic, topic_id, index, leader_epoch, -1, -1, log)
    }

    /// A partition hosted by broker `local` whose leader is `leader`.
    pub fn with_leader(topic: &str, topic_id: Uuid, index: i32, leader_epoch: i32, leader: i32, local: i32, log: Arc<Mutex<PartitionLog>>) -> Self {
        let (leo, max_message_bytes, compact, append_policy) = {
            let log = log.lock();
            (log.log_end_offset(), log.config().max_message_bytes, log.config().cleanup_policy_compact, log.config().append)
        };
        Self {
            topic: topic.to_string(),
            topic_id,
            index,
            leadership: AtomicU64::new(pack(leader_epoch, leader)),
            local,
            log,
            high_watermark: AtomicI64::new(leo),
            flush_gate: tokio::sync::Mutex::new(()),
            fetch_watchers: FetchWatchers::default(),
            max_message_bytes: AtomicUsize::new(max_message_bytes),
            compact: AtomicBool::new(compact),
            append_policy: Mutex::new(append_policy),
            replication: Mutex::new(
                (leader >= 0 && leader == local).then(|| LeaderReplication::new(local, vec![local], vec![local], 0, leo, leo, 0)),
            ),
            hw_watch: tokio::sync::watch::channel(leo).0,
            min_insync: AtomicUsize::new(1),
            follower_lag: AtomicI64::new(0),
        }
    }

    /// Applies the metadata's view of the partition: leader and epoch (in place, see
    /// `leadership`), and on the leader the replicas and ISR its replication state works
    /// with. Returns whether the leadership changed.
    pub fn apply_state(&self, state: &PartitionState<'_>, now_ms: i64) -> bool {
        // Under the log's lock: an append checks leadership and takes the epoch under it, so
        // no append lands between a leadership change and the first append after it.
        let changed = {
            let _log = self.log.lock();
            self.set_leadership(state.leader_epoch, state.leader)
        };
        let leo = self.log_end_offset();
        let mut isr_changed = false;
        let hw = {
            let mut repl = self.replication.lock();
            if state.leader < 0 || state.leader != self.local {
                *repl = None;
                None
            } else {
                match repl.as_mut() {
                    Some(r) if !changed && r.replicas() == state.replicas => {
                        r.set_ineligible(state.isr_ineligible);
                        isr_changed = r.isr() != state.isr;
                        r.on_isr_committed(state.isr.to_vec(), state.partition_epoch, leo)
                    }
                    _ => {
                        // A rebuilt leader state (new leadership or replica set): waiters re-check.
                        isr_changed = true;
                        let mut r = LeaderReplication::new(
                            self.local,
                            state.replicas.to_vec(),
                            state.isr.to_vec(),
                            state.partition_epoch,
                            leo,
                            self.high_watermark(),
                            now_ms,
                        );
                        r.set_ineligible(state.isr_ineligible);
                        let hw = r.on_leader_append(leo);
                        *repl = Some(r);
                        hw
                    }
                }
            }
        };
        if let Some(hw) = hw {
            self.publish_high_watermark(hw);
        }
        if changed || isr_changed {
            // acks=all produces waiting here re-check whether this broker still leads, and
            // DeleteRecords its low watermark (a follower that left the ISR no longer counts).
            self.hw_watch.send_modify(|_| {});
        }
        changed
    }

    pub fn set_min_insync_replicas(&self, n: usize) {
        self.min_insync.store(n.max(1), Ordering::Release);
    }

    pub fn min_insync_replicas(&self) -> usize {
        self.min_insync.load(Ordering::Acquire)
    }

    /// The ISR as the leader knows it (empty when this broker does not lead).
    pub fn isr(&self) -> Vec<i32> {
        self.replication.lock().as_ref().map(|r| r.isr().to_vec()).unwrap_or_default()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.lock().log_end_offset()
    }

    /// At start-up: the high watermark from the checkpoint, within the log (as Kafka: at
    /// least the log start, at most the log end).
    pub fn restore_high_watermark(&self, hw: i64) {
        let (start, end) = {
            let log = self.log.lock();
            (log.log_start_offset(), log.log_end_offset())
        };
        let hw = hw.clamp(start, end.max(start));
        self.high_watermark.store(hw, Ordering::Release);
        self.hw_watch.send_replace(hw);
    }

    /// Raises the high watermark to `hw` and wakes whoever waits on it.
    fn publish_high_watermark(&self, hw: i64) {
        let before = self.high_watermark.fetch_max(hw, Ordering::AcqRel);
        if before < hw {
            self.hw_watch.send_replace(hw);
            self.fetch_watchers.wake_all();
        }
    }

    /// On the leader: follower `replica` fetched at `fetch_offset`. Returns an ISR expansion
    /// to send to the controller when the follower has just caught up.
    /// `log_start_offset` is the follower's (DeleteRecords waits for it, see
    /// [`Partition::low_watermark`]).
    pub fn on_follower_fetch(&self, replica: i32, fetch_offset: i64, log_start_offset: i64, now_ms: i64) -> Option<IsrChange> {
        let leo = self.log_end_offset();
        let (hw, change, start_moved) = match self.replication.lock().as_mut() {
            Some(r) => {
                let start_moved = r.on_follower_log_start(replica, log_start_offset);
                let (hw, change) = r.on_follower_fetch(replica, fetch_offset, leo, now_ms);
                (hw, change, start_moved)
            }
            None => (None, None, false),
        };
        if start_moved {
            // DeleteRecords waiting for the low watermark re-check it.
            self.hw_watch.send_modify(|_| {});
        }
        if let Some(hw) = hw {
            self.publish_high_watermark(hw);
        }
        change
    }

    /// On the leader: the ISR without the members that have lagged for `lag_max_ms`.
    pub fn maybe_shrink_isr(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrChange> {
        self.replication.lock().as_mut().and_then(|r| r.maybe_shrink_isr(now_ms, lag_max_ms))
    }

    /// The controller refused the ISR change this leader asked for.
    pub fn isr_change_failed(&self) {
        if let Some(r) = self.replication.lock().as_mut() {
            r.on_isr_change_failed();
        }
    }

    /// acks=all: whether the ISR is large enough to accept the produce at all.
    pub fn enough_replicas_for_acks_all(&self) -> bool {
        let min = self.min_insync_replicas();
        self.replication.lock().as_ref().is_some_and(|r| r.enough_replicas_for_acks_all(min))
    }

    /// acks=all (-1): refuses before appending when the ISR is below min.insync.replicas,
    /// then appends and waits until every ISR member has the records (or `timeout`).
    pub async fn append_replicated(&self, records: &Bytes, now_ms: i64, timeout: std::time::Duration) -> Result<Appended, PartitionError> {
        let appended = self.append_for_acks_all(records, now_ms).await?;
        self.replicated(appended, timeout).await
    }

    /// The local part of an acks=all append: refused below min.insync.replicas, else appended.
    pub async fn append_for_acks_all(&self, records: &Bytes, now_ms: i64) -> Result<Appended, PartitionError> {
        if !self.enough_replicas_for_acks_all() {
            let isr = self.isr().len();
            return Err(PartitionError::NotEnoughReplicas { partition: self.name(), isr, min: self.min_insync_replicas() });
        }
        self.append(records, now_ms).await
    }

    /// The remote part of an acks=all append: `appended` once the ISR has it.
    pub async fn replicated(&self, appended: Appended, timeout: std::time::Duration) -> Result<Appended, PartitionError> {
        self.replication_result(appended, self.wait_replicated(appended.last_offset + 1, timeout).await)
    }

    /// The outcome of an acks=all append if it is already decided (no follower to wait for, as
    /// with a single replica), without waiting.
    pub fn replicated_now(&self, appended: Appended) -> Option<Result<Appended, PartitionError>> {
        self.acks_all_now(appended.last_offset + 1).map(|r| self.replication_result(appended, r))
    }

    fn replication_result(&self, appended: Appended, replicated: Replicated) -> Result<Appended, PartitionError> {
        match replicated {
            Replicated::Done => Ok(appended),
            Replicated::NotEnoughReplicasAfterAppend => Err(PartitionError::NotEnoughReplicasAfterAppend(self.name())),
            Replicated::NotLeader => Err(PartitionError::NotLeader(self.name())),
            Replicated::TimedOut => Err(PartitionError::ReplicationTimedOut(self.name())),
        }
    }

    /// acks=all's state for `required_offset` now: `None` while the followers are still due.
    fn acks_all_now(&self, required_offset: i64) -> Option<Replicated> {
        match self.replication.lock().as_ref().map(|r| r.acks_all(required_offset, self.min_insync_replicas())) {
            None => Some(Replicated::NotLeader),
            Some(AcksAll::Done) => Some(Replicated::Done),
            Some(AcksAll::NotEnoughReplicasAfterAppend) => Some(Replicated::NotEnoughReplicasAfterAppend),
            Some(AcksAll::Waiting) => None,
        }
    }

    /// acks=all: waits until every ISR member has everything before `required_offset`; when it
    /// has to wait, without the request's handler slot (the followers' fetches may need one;
    /// RemoteTimeMs).
    pub async fn wait_replicated(&self, required_offset: i64, timeout: std::time::Duration) -> Replicated {
        match self.acks_all_now(required_offset) {
            Some(decided) => decided,
            None => crate::network::handler_pool::remote(self.wait_replicated_inner(required_offset, timeout)).await,
        }
    }

    async fn wait_replicated_inner(&self, required_offset: i64, timeout: std::time::Duration) -> Replicated {
        let mut rx = self.hw_watch.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(decided) = self.acks_all_now(required_offset) {
                return decided;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Replicated::NotLeader },
                _ = tokio::time::sleep_until(deadline) => return Replicated::TimedOut,
            }
        }
    }

    /// On a follower: appends batches fetched from the leader (checked first: the leader is
    /// a peer, and peers can be broken) and moves the high watermark to the leader's, as far
    /// as this log reaches. Fsyncs as the flush policy says, as for produced records.
    /// `leader` and `leader_epoch` are the leadership the fetch was sent under: the records
    /// are dropped (NotLeader) if it has changed since, checked under the log's lock.
    pub async fn append_as_follower(&self, records: Bytes, leader_high_watermark: i64, leader: i32, leader_epoch: i32, now_ms: i64) -> Result<(), PartitionError> {
        if !records.is_empty() {
            let headers = if records.len() >= BLOCKING_VALIDATION_BYTES {
                let r = records.clone();
                self.validate_blocking(move || crate::log::validate_fetched_records(&r)).await?
            } else {
                crate::log::validate_fetched_records(&records)?
            };
            let complete: usize = headers.iter().map(BatchHeader::total_size).sum();
            // As for produced records: a roll fsyncs the active segment under the lock, so
            // flush first and leave the roll nothing (or little) to write.
            let last = headers.last().map_or(0, |h| h.base_offset + i64::from(h.last_offset_delta));
            let roll_due = {
                let log = self.log.lock();
                let count = (last + 1 - log.log_end_offset()).max(0);
                log.roll_due(complete, count, now_ms)
            };
            if roll_due {
                let leo = self.log.lock().log_end_offset();
                self.flush_upto(leo).await?;
            }
            let flush_due = {
                let mut log = self.log.lock();
                if self.is_leader() || self.leader() != leader || self.leader_epoch() != leader_epoch {
                    return Err(PartitionError::NotLeader(self.name()));
                }
                log.append_as_follower(&records[..complete], &headers, now_ms)?;
                log.flush_due()
            };
            if flush_due {
                let leo = self.log_end_offset();
                self.flush_upto(leo).await?;
            }
        }
        if self.is_leader() {
            return Ok(());
        }
        let leo = self.log_end_offset();
        // Kafka's fetcher lag: how far this replica's log end is behind the leader's high
        // watermark (ReplicaFetcherManager MaxLag is the largest).
        self.follower_lag.store((leader_high_watermark - leo).max(0), Ordering::Relaxed);
        self.publish_high_watermark(leader_high_watermark.min(leo));
        Ok(())
    }

    /// Messages this follower was behind the leader's high watermark at its last fetch (0
    /// on the leader).
    pub fn follower_lag(&self) -> i64 {
        if self.is_leader() { 0 } else { self.follower_lag.load(Ordering::Relaxed) }
    }

    /// On a follower: truncation before following the leader of `leader_epoch`, on a blocking
    /// thread (it deletes segments and rescans the log's batch headers). Refused if this
    /// broker leads the partition or its epoch has moved on since.
    pub async fn truncate_as_follower(self: &Arc<Self>, offset: i64, leader_epoch: i32, now_ms: i64) -> Result<(), PartitionError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut log = me.log.lock();
            if me.is_leader() || me.leader_epoch() != leader_epoch {
                return Err(PartitionError::NotLeader(me.name()));
            }
            log.truncate_to(offset, now_ms)?;
            let leo = log.log_end_offset();
            me.high_watermark.fetch_min(leo, Ordering::AcqRel);
            Ok(())
        })
        .await
        .map_err(|_| PartitionError::TaskAborted { what: "truncation", partition: self.name() })?
    }

    /// On a follower whose log ends before the leader's log start (`leader_log_start`):
    /// empties the log and restarts it there, on a blocking thread, under the same checks as
    /// [`Partition::truncate_as_follower`].
    pub async fn restart_as_follower_at(self: &Arc<Self>, leader_log_start: i64, leader_epoch: i32, now_ms: i64) -> Result<(), PartitionError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut log = me.log.lock();
            if me.is_leader() || me.leader_epoch() != leader_epoch || log.log_end_offset() >= leader_log_start {
                return Err(PartitionError::NotLeader(me.name()));
            }
            log.truncate_fully_and_start_at(leader_log_start, now_ms)?;
            me.high_watermark.fetch_max(leader_log_start, Ordering::AcqRel);
            Ok(())
        })
        .await
        .map_err(|_| PartitionError::TaskAborted { what: "log restart", partition: self.name() })?
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        let leader = self.leader();
        leader >= 0 && leader == self.local
    }

    pub fn leader_epoch(&self) -> i32 {
        (self.leadership.load(Ordering::Acquire) >> 32) as i32
    }

    /// The leader as of `leader_epoch()`; -1 while the partition has none.
    pub fn leader(&self) -> i32 {
        self.leadership.load(Ordering::Acquire) as u32 as i32
    }

    /// Applies a leadership change from the metadata; returns whether anything changed.
    pub fn set_leadership(&self, leader_epoch: i32, leader: i32) -> bool {
        self.leadership.swap(pack(leader_epoch, leader), Ordering::AcqRel) != pack(leader_epoch, leader)
    }

    pub fn fetch_watchers(&self) -> &FetchWatchers {
        &self.fetch_watchers
    }

    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.index)
    }

    pub fn log(&self) -> &Arc<Mutex<PartitionLog>> {
        &self.log
    }

    /// The offset after the last record consumers may read. With a single replica it is the
    /// log end offset once the append is done.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.lock().log_start_offset()
    }

    pub fn set_config(&self, config: LogConfig) {
        self.max_message_bytes.store(config.max_message_bytes, Ordering::Release);
        self.compact.store(config.cleanup_policy_compact, Ordering::Release);
        *self.append_policy.lock() = config.append;
        self.log.lock().set_config(config);
    }

    /// Validates and appends one produce partition's records, then fsyncs when the flush
    /// policy says so, before the caller acknowledges; wakes the fetches waiting on the
    /// partition once the high watermark has moved.
    pub async fn append(&self, records: &Bytes, now_ms: i64) -> Result<Appended, PartitionError> {
        let max_message_bytes = self.max_message_bytes.load(Ordering::Acquire);
        let compact = self.compact.load(Ordering::Acquire);
        let owned = BytesMut::from(&records[..]);
        // Small uncompressed record sets are checked on the worker (CRCs of under 1 MiB take
        // microseconds; a hop to a blocking thread costs more, and much more when the CPUs are
        // busy); a compressed batch for a compacted topic may inflate to 64 MiB.
        let (owned, headers) = if owned.len() >= BLOCKING_VALIDATION_BYTES {
            self.validate_blocking(move || validate(owned, max_message_bytes, compact)).await?
        } else {
            let headers = validate_produce_records(&owned, max_message_bytes)?;
            if !compact {
                (owned, headers)
            } else if headers.iter().all(|h| h.compression() == Ok(Compression::None)) {
                validate_keys_for_compaction(&owned, &headers, DEFAULT_MAX_DECOMPRESSED)?;
                (owned, headers)
            } else {
                self.validate_blocking(move || {
                    validate_keys_for_compaction(&owned, &headers, DEFAULT_MAX_DECOMPRESSED)?;
                    Ok((owned, headers))
                })
                .await?
            }
        };
        let (mut owned, headers, log_append_time) = self.apply_append_policy(owned, headers, now_ms, max_message_bytes).await?;
        let count: i64 = headers.iter().map(|h| i64::from(h.last_offset_delta) + 1).sum();
        // A roll fsyncs the active segment under the lock; flushing first leaves it nothing
        // (or only what arrived since) to write.
        let roll_due = self.log.lock().roll_due(owned.len(), count, now_ms);
        if roll_due {
            let leo = self.log.lock().log_end_offset();
            self.flush_upto(leo).await?;
        }
        let (outcome, flush_due) = {
            let mut log = self.log.lock();
            // Keys checked for a compacted topic count only if the log is still compacted;
            // a config change since then makes append_checked check them under the lock.
            // Leadership is checked, and the epoch taken, under the log's lock, which
            // `apply_state` holds to change them: a broker that has just stopped leading
            // never appends (and stamps another leader's epoch on) a produce it accepted.
            if !self.is_leader() {
                return Err(PartitionError::NotLeader(self.name()));
            }
            let outcome = log.append_checked(&mut owned, &headers, compact, self.leader_epoch(), now_ms)?;
            (outcome, log.flush_due())
        };
        let mut appended = match outcome {
            AppendOutcome::Appended(info) => Appended {
                base_offset: info.base_offset,
                last_offset: info.last_offset,
                log_append_time,
                log_start_offset: info.log_start_offset,
                records: info.record_count as u64,
                duplicate: false,
                flushed_in: None,
            },
            AppendOutcome::Duplicate(info) => Appended {
                base_offset: info.base_offset,
                last_offset: info.last_offset,
                log_append_time: -1,
                log_start_offset: self.log_start_offset(),
                records: 0,
                duplicate: true,
                flushed_in: None,
            },
        };
        if flush_due {
            appended.flushed_in = self.flush_upto(appended.last_offset + 1).await?;
        }
        // The leader's replication state moves the high watermark (at once when it is the only
        // ISR member); a partition with no such state (not leading) keeps the old rule.
        let leo = appended.last_offset + 1;
        let advanced = self.replication.lock().as_mut().map(|r| r.on_leader_append(leo));
        match advanced {
            Some(Some(hw)) => self.publish_high_watermark(hw),
            // Followers long-poll for records beyond the high watermark: wake them.
            Some(None) => self.fetch_watchers.wake_all(),
            // Not leading any more (checked under the lock above, so only after the append).
            None => {}
        }
        Ok(appended)
    }

    /// The topic's message.timestamp.* and compression.type applied to validated batches
    /// (`log_validator`): on a blocking thread when that decompresses or the set is large.
    /// Returns the batches to append and the LogAppendTime to report (-1 for CreateTime).
    async fn apply_append_policy(
        &self,
        records: BytesMut,
        headers: Vec<BatchHeader>,
        now_ms: i64,
        max_message_bytes: usize,
    ) -> Result<(BytesMut, Vec<BatchHeader>, i64), PartitionError> {
        let policy = *self.append_policy.lock();
        if !policy.applies_to(&headers) {
            return Ok((records, headers, NO_TIMESTAMP));
        }
        let blocking = policy.decompresses(&headers) || records.len() >= BLOCKING_VALIDATION_BYTES;
        let run = move || -> Result<(BytesMut, Vec<BatchHeader>, i64), BatchError> {
            let (out, headers, log_append_time) = log_validator::apply(&policy, Vec::from(records), headers, now_ms, DEFAULT_MAX_DECOMPRESSED)?;
            // Kafka checks a recompressed batch against max.message.bytes again.
            if let Some(h) = headers.iter().find(|h| h.total_size() > max_message_bytes) {
                return Err(BatchError::MessageTooLarge { size: h.total_size(), max: max_message_bytes });
            }
            Ok((BytesMut::from(&out[..]), headers, log_append_time))
        };
        if blocking {
            self.validate_blocking(run).await
        } else {
            run().map_err(PartitionError::from)
        }
    }

    async fn validate_blocking<T: Send + 'static>(
        &self,
        validate: impl FnOnce() -> Result<T, BatchError> + Send + 'static,
    ) -> Result<T, PartitionError> {
        tokio::task::spawn_blocking(validate)
            .await
            .map_err(|_| PartitionError::TaskAborted { what: "produce validation", partition: self.name() })?
            .map_err(PartitionError::from)
    }

    /// Makes everything below `upto` durable. Whoever holds the gate fsyncs for everyone who
    /// appended meanwhile; later arrivals find their data already flushed.
    /// Returns the duration of the fsync it ran, if it ran one.
    pub async fn flush_upto(&self, upto: i64) -> Result<Option<std::time::Duration>, PartitionError> {
        let _gate = self.flush_gate.lock().await;
        let job = {
            let log = self.log.lock();
            if log.flushed_offset() >= upto {
                return Ok(None);
            }
            log.flush_job()
        };
        let Some(job) = job else { return Ok(None) };
        let started = std::time::Instant::now();
        let name = self.name();
        let covered = job.upto_offset();
        let result = tokio::task::spawn_blocking(move || job.sync())
            .await
            .map_err(|_| PartitionError::FlushAborted(name.clone()))?;
        result.map_err(|e| PartitionError::Flush(name, e))?;
        self.log.lock().mark_flushed(covered);
        Ok(Some(started.elapsed()))
    }

    /// Flushes everything appended so far from a blocking thread, with the fsync outside the
    /// log's lock (the background loops, before work that would otherwise fsync under it).
    pub fn flush_blocking(&self) -> Result<(), PartitionError> {
        let Some(job) = self.log.lock().flush_job() else { return Ok(()) };
        job.sync().map_err(|e| PartitionError::Flush(self.name(), e))?;
        self.log.lock().mark_flushed(job.upto_offset());
        Ok(())
    }

    /// Flushes if data older than the flush interval is waiting; returns the fsync's duration.
    pub async fn flush_if_due_by_time(&self, now_ms: i64) -> Result<Option<std::time::Duration>, PartitionError> {
        let due = self.log.lock().flush_due_by_time(now_ms);
        if !due {
            return Ok(None);
        }
        let leo = self.log.lock().log_end_offset();
        self.flush_upto(leo).await
    }

    /// A follower's read on the leader: whole batches from `offset` up to the log end (not the
    /// high watermark: followers replicate what consumers cannot see yet). Returns the plan
    /// and the high watermark to tell the follower.
    pub fn plan_follower_read(&self, offset: i64, max_bytes: usize) -> Result<(ReadPlan, i64), PartitionError> {
        let hw = self.high_watermark();
        let log = self.log.lock();
        let leo = log.log_end_offset();
        Ok((log.plan_read(offset, max_bytes, leo)?, hw))
    }

    /// Plans a read of whole batches from `offset`, at most up to the high watermark, under
    /// a short hold of the log's lock; returns the plan and the high watermark it is bounded
    /// by. [`ReadPlan::read`] then preads without the lock.
    pub fn plan_read(&self, offset: i64, max_bytes: usize) -> Result<(ReadPlan, i64), PartitionError> {
        let hw = self.high_watermark();
        let plan = self.log.lock().plan_read(offset, max_bytes, hw)?;
        Ok((plan, hw))
    }

    /// Reads whole batches from `offset`, at most up to the high watermark: (records, high
    /// watermark, log start offset). Blocking (the pread runs on the calling thread, without
    /// the log's lock): for start-up and blocking threads.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<(Bytes, i64, i64), PartitionError> {
        let (plan, hw) = self.plan_read(offset, max_bytes)?;
        let log_start = plan.log_start_offset();
        Ok((plan.read()?.records, hw, log_start))
    }

    /// ListOffsets by timestamp (`None`: the largest timestamp, MAX_TIMESTAMP): the first
    /// offset below the high watermark whose record timestamp is at or after it, with that
    /// timestamp. The scan, and the decompression of the batch it stops at, run on a
    /// blocking thread without the log's lock.
    pub async fn offset_for_timestamp(&self, timestamp: Option<i64>) -> Result<Option<(i64, i64)>, PartitionError> {
        let lookup: TimestampLookup = {
            let log = self.log.lock();
            match timestamp {
                Some(ts) => log.plan_timestamp_lookup(ts)?,
                None => log.plan_max_timestamp_lookup()?,
            }
        };
        let found = tokio::task::spawn_blocking(move || lookup.find())
            .await
            .map_err(|_| PartitionError::TaskAborted { what: "timestamp lookup", partition: self.name() })??;
        Ok(found.filter(|(offset, _)| *offset < self.high_watermark()))
    }
}

fn pack(leader_epoch: i32, leader: i32) -> u64 {
    ((leader_epoch as u32 as u64) << 32) | (leader as u32 as u64)
}

/// Produce validation, run before the log's lock is taken: batch headers, CRCs and, for a
/// compacted topic, that every record has a key (which decompresses each batch).
fn validate(records: BytesMut, max_message_bytes: usize, compact: bool) -> Result<(BytesMut, Vec<BatchHeader>), BatchError> {
    let headers = validate_produce_records(&records, max_message_bytes)?;
    if compact {
        validate_keys_for_compaction(&records, &headers, DEFAULT_MAX_DECOMPRESSED)?;
    }
    Ok((records, headers))
}

#[path = "partition_log_start.rs"]
mod log_start;

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
