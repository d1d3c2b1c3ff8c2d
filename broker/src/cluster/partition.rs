//! One hosted partition: its log behind a lock, leader epoch, high watermark and the
//! group-commit flush that makes acknowledged writes durable.
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::log::{validate_produce_records, AppendOutcome, BatchError, LogConfig, LogError, PartitionLog};

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
}

impl PartitionError {
    pub fn code(&self) -> i16 {
        match self {
            PartitionError::Log(e) => e.kafka_error_code(),
            PartitionError::Batch(e) => e.kafka_error_code(),
            PartitionError::Flush(..) | PartitionError::FlushAborted(_) => 56, // KAFKA_STORAGE_ERROR
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
}

impl Partition {
    pub fn new(topic: &str, topic_id: Uuid, index: i32, leader_epoch: i32, log: Arc<Mutex<PartitionLog>>) -> Self {
        Self::with_leader(topic, topic_id, index, leader_epoch, -1, -1, log)
    }

    /// A partition hosted by broker `local` whose leader is `leader`.
    pub fn with_leader(topic: &str, topic_id: Uuid, index: i32, leader_epoch: i32, leader: i32, local: i32, log: Arc<Mutex<PartitionLog>>) -> Self {
        let leo = log.lock().log_end_offset();
        Self {
            topic: topic.to_string(),
            topic_id,
            index,
            leadership: AtomicU64::new(pack(leader_epoch, leader)),
            local,
            log,
            high_watermark: AtomicI64::new(leo),
            flush_gate: tokio::sync::Mutex::new(()),
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
        self.log.lock().set_config(config);
    }

    /// Validates and appends one produce partition's records, then fsyncs when the flush
    /// policy says so, before the caller acknowledges.
    pub async fn append(&self, records: &Bytes, now_ms: i64) -> Result<Appended, PartitionError> {
        let mut owned = BytesMut::from(&records[..]);
        let (outcome, flush_due) = {
            let mut log = self.log.lock();
            let headers = validate_produce_records(&owned, log.config().max_message_bytes)?;
            let outcome = log.append(&mut owned, &headers, self.leader_epoch(), now_ms)?;
            let due = log.flush_due();
            (outcome, due)
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
        self.high_watermark.fetch_max(appended.last_offset + 1, Ordering::AcqRel);
        Ok(appended)
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

    /// Flushes if data older than the flush interval is waiting; returns the fsync's duration.
    pub async fn flush_if_due_by_time(&self, now_ms: i64) -> Result<Option<std::time::Duration>, PartitionError> {
        let due = self.log.lock().flush_due_by_time(now_ms);
        if !due {
            return Ok(None);
        }
        let leo = self.log.lock().log_end_offset();
        self.flush_upto(leo).await
    }

    /// Reads whole batches from `offset`, at most up to the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<(Bytes, i64, i64), PartitionError> {
        let hw = self.high_watermark();
        let log = self.log.lock();
        let slice = log.read(offset, max_bytes, hw)?;
        Ok((slice.records, hw, log.log_start_offset()))
    }
}

fn pack(leader_epoch: i32, leader: i32) -> u64 {
    ((leader_epoch as u32 as u64) << 32) | (leader as u32 as u64)
}
