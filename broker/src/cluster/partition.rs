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
    #[error("fsync of {0} failed: {1}")]
    Flush(String, std::io::Error),
    #[error("the flush task for {0} did not complete")]
    FlushAborted(String),
    #[error("the {what} task for {partition} did not complete")]
    TaskAborted { what: &'static str, partition: String },
}

impl PartitionError {
    pub fn code(&self) -> i16 {
        match self {
            PartitionError::Log(e) => e.kafka_error_code(),
            PartitionError::Batch(e) => e.kafka_error_code(),
            PartitionError::Flush(..) | PartitionError::FlushAborted(_) => crate::error_code::KAFKA_STORAGE_ERROR,
            PartitionError::TaskAborted { .. } => crate::error_code::UNKNOWN_SERVER_ERROR,
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
}

impl Partition {
    pub fn new(topic: &str, topic_id: Uuid, index: i32, leader_epoch: i32, log: Arc<Mutex<PartitionLog>>) -> Self {
        Self::with_leader(topic, topic_id, index, leader_epoch, -1, -1, log)
    }

    /// A partition hosted by broker `local` whose leader is `leader`.
    pub fn with_leader(topic: &str, topic_id: Uuid, index: i32, leader_epoch: i32, leader: i32, local: i32, log: Arc<Mutex<PartitionLog>>) -> Self {
        let (leo, max_message_bytes, compact) = {
            let log = log.lock();
            (log.log_end_offset(), log.config().max_message_bytes, log.config().cleanup_policy_compact)
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
        }
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
        let (mut owned, headers) = if owned.len() >= BLOCKING_VALIDATION_BYTES {
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
            let outcome = log.append_checked(&mut owned, &headers, compact, self.leader_epoch(), now_ms)?;
            (outcome, log.flush_due())
        };
        let mut appended = match outcome {
            AppendOutcome::Appended(info) => Appended {
                base_offset: info.base_offset,
                last_offset: info.last_offset,
                log_append_time: info.log_append_time,
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
        let before = self.high_watermark.fetch_max(appended.last_offset + 1, Ordering::AcqRel);
        if before <= appended.last_offset {
            self.fetch_watchers.wake_all();
        }
        Ok(appended)
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

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
