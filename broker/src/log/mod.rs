//! Durable partitioned log storage: Kafka's on-disk model (segments of v2 record batches
//! with sparse offset and time indexes), one directory per partition.
//!
//! Files, bottom-up:
//! - `record_batch`: the 61-byte v2 batch header; Produce validation; offset stamping.
//! - `records`: records inside a batch (varint format), decompression under a size cap.
//! - `index`: sparse `.index` / `.timeindex` entries, in memory and on disk.
//! - `segment`: one `<base offset>.log` file: append, header scans, crash recovery.
//! - `segment_file`: a shared read handle on a segment, for reads outside the log's lock.
//! - `producer_state`: idempotent-producer sequence/epoch checks and duplicate detection.
//! - `partition_log`: `PartitionLog`, a partition's segments: open, append, roll, flush.
//! - `fetch`: `PartitionLog` reads and ListOffsets lookups.
//! - `retention`: `PartitionLog` retention by time/size and truncation.
//! - `offset_map`: the cleaner's key digest -> latest offset map.
//! - `batch_filter`: rewriting one batch with only the records compaction keeps.
//! - `cleaner`: `PartitionLog` compaction (cleanup.policy=compact): plan and swap-in.
//! - `cleaner_job`: compaction's slow middle phase, run without the log's lock.
//! - `cleaner_files`: the cleaner's segment swap, its crash recovery, its checkpoint file.
//! - `log_manager`: the `log.dirs`: directory locks, discovery, placement, deletion.
//! - `log_start`: the log start offset DeleteRecords moves, and its checkpoint file.
//! - `log_mover`: moving a partition's log to another of the `log.dirs` while in use.
//! - `stray_logs`: the `-stray` directories left in the `log.dirs`, for the stray partition metrics.

pub mod batch_filter;
pub mod checkpoint_file;
pub mod cleaner;
pub mod cleaner_files;
pub mod cleaner_job;
pub mod fetch;
pub mod format_conversion;
pub mod index;
pub mod legacy_format;
pub mod log_manager;
pub mod log_start;
pub mod log_validator;
pub mod log_mover;
pub mod offset_map;
pub mod partition_log;
pub mod producer_state;
pub mod record_batch;
pub mod records;
pub mod retention;
pub mod segment;
pub mod stray_logs;
pub mod segment_file;

#[cfg(test)]
pub(crate) mod test_util;

pub use cleaner::{CleanJob, CleanStats, CleanedLog, Retired, DEFAULT_DEDUPE_BUFFER_BYTES};
pub use fetch::{FetchSlice, ReadPlan, TimestampLookup};
pub use log_manager::{LoadedPartition, LogManager, SharedLog};
pub use partition_log::{AppendInfo, AppendOutcome, FlushJob, LogConfig, PartitionLog};
pub use producer_state::{ProducerStateManager, SequenceCheck, SequenceError};
pub use record_batch::{stamp_batch, validate_fetched_records, validate_produce_records, BatchError, BatchHeader, Compression, TimestampType};
pub use records::{validate_keys_for_compaction, BatchRecords, Record, RecordError};

use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Kafka error codes produced by the storage layer.

/// Everything that can go wrong in the storage layer.
#[derive(Debug, Error)]
pub enum LogError {
    #[error(
        "I/O error while {action} {path}: {source}; check the disk, free space and permissions of the log directory"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Records(#[from] RecordError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("offset {offset} is out of range: the log holds [{log_start_offset}, {log_end_offset}]; the consumer should reset its position (auto.offset.reset)")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error(
        "segment {path} is corrupt at byte {position}: {reason}; restart the broker so log recovery can truncate it"
    )]
    CorruptSegment {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("log directory {dir} is locked by another process; another broker is using it, so stop that broker or give this one a different log.dirs entry")]
    DirLocked { dir: PathBuf },
    #[error("partition {name} exists in both {first} and {second}; remove the stale copy before starting the broker")]
    DuplicatePartition {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("partition {name} cannot be created: its log directory ({dir} or every one) is offline after an I/O failure; replace the disk and restart the broker")]
    OfflineDir { name: String, dir: PathBuf },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic { name: String, reason: &'static str },
    #[error("partition {name} already exists on this broker")]
    PartitionExists { name: String },
    #[error("partition {name} is not hosted on this broker")]
    UnknownPartition { name: String },
    #[error("the log in {dir} has been deleted; the partition no longer exists on this broker")]
    LogDeleted { dir: PathBuf },
    #[error("append rejected: {reason}; this is a broker bug (records must be validated first)")]
    InvalidAppend { reason: &'static str },
    #[error("no log directories configured; set log.dirs to at least one directory")]
    NoLogDirs,
    #[error("moving the log in {dir} to another log directory did not complete: {reason}; it stays where it was (send AlterReplicaLogDirs again)")]
    MoveIncomplete { dir: PathBuf, reason: String },
}

impl LogError {
    /// The Kafka protocol error code to answer a client with.
    pub fn kafka_error_code(&self) -> i16 {
        use crate::error_code::*;
        match self {
            LogError::Batch(e) => e.kafka_error_code(),
            LogError::Records(e) => e.kafka_error_code(),
            LogError::Sequence(e) => e.kafka_error_code(),
            LogError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
            LogError::Io { .. }
            | LogError::CorruptSegment { .. }
            | LogError::DirLocked { .. }
            | LogError::DuplicatePartition { .. }
            | LogError::OfflineDir { .. }
            | LogError::MoveIncomplete { .. } => KAFKA_STORAGE_ERROR,
            LogError::InvalidTopic { .. } => INVALID_TOPIC_EXCEPTION,
            LogError::PartitionExists { .. } => TOPIC_ALREADY_EXISTS,
            LogError::UnknownPartition { .. } | LogError::LogDeleted { .. } => UNKNOWN_TOPIC_OR_PARTITION,
            LogError::InvalidAppend { .. } | LogError::NoLogDirs => UNKNOWN_SERVER_ERROR,
        }
    }

    /// Builds a mapper for `map_err` that records what was being done to which path.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LogError {
        let path = path.to_path_buf();
        move |source| LogError::Io { action, path, source }
    }
}
