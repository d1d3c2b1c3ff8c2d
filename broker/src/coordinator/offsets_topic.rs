//! Writing to and replaying `__consumer_offsets`: the durable home of committed offsets and
//! group metadata. Each group lives in one partition (Kafka's hash), written as ordinary
//! record batches with Kafka's key and value schemas; the topic is compacted.
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use crate::cluster::{Partition, ReplicaManager};
use crate::log::records::{BatchRecords, DEFAULT_MAX_DECOMPRESSED};
use crate::error_code;
use crate::log::BatchHeader;

pub const TOPIC: &str = "__consumer_offsets";

/// Why a write to `__consumer_offsets` failed; `code()` is the Kafka error to answer with.
#[derive(Debug, thiserror::Error)]
pub enum OffsetsTopicError {
    #[error("partition {0} of __consumer_offsets is not hosted here")]
    NotHosted(i32),
    #[error("could not encode offsets records: {0}")]
    Encode(String),
    #[error("could not append to __consumer_offsets: {0}")]
    Append(#[from] crate::cluster::PartitionError),
}

impl OffsetsTopicError {
    /// The error of the append itself, as the log answered it (Kafka's `status.error`).
    fn append_code(&self) -> i16 {
        match self {
            OffsetsTopicError::NotHosted(_) => error_code::UNKNOWN_TOPIC_OR_PARTITION,
            OffsetsTopicError::Encode(_) => error_code::UNKNOWN_SERVER_ERROR,
            OffsetsTopicError::Append(e) => e.code(),
        }
    }

    /// What OffsetCommit answers for each offset of a failed write (Kafka's
    /// GroupMetadataManager.storeOffsets callback): the client retries, or finds the
    /// coordinator again, rather than see a storage error it does not expect from a commit.
    pub fn code(&self) -> i16 {
        use error_code::*;
        match self.append_code() {
            UNKNOWN_TOPIC_OR_PARTITION | NOT_ENOUGH_REPLICAS | NOT_ENOUGH_REPLICAS_AFTER_APPEND => COORDINATOR_NOT_AVAILABLE,
            NOT_LEADER_OR_FOLLOWER | KAFKA_STORAGE_ERROR => NOT_COORDINATOR,
            MESSAGE_TOO_LARGE | RECORD_LIST_TOO_LARGE | INVALID_FETCH_SIZE => INVALID_COMMIT_OFFSET_SIZE,
            other => other,
        }
    }

    /// What SyncGroup (and a static member's rejoin) answers when the group's metadata could not
    /// be written (Kafka's GroupMetadataManager.storeGroup callback).
    pub fn group_store_code(&self) -> i16 {
        use error_code::*;
        match self.append_code() {
            UNKNOWN_TOPIC_OR_PARTITION | NOT_ENOUGH_REPLICAS | NOT_ENOUGH_REPLICAS_AFTER_APPEND => COORDINATOR_NOT_AVAILABLE,
            NOT_LEADER_OR_FOLLOWER | KAFKA_STORAGE_ERROR => NOT_COORDINATOR,
            REQUEST_TIMED_OUT => REBALANCE_IN_PROGRESS,
            MESSAGE_TOO_LARGE | RECORD_LIST_TOO_LARGE | INVALID_FETCH_SIZE => UNKNOWN_SERVER_ERROR,
            other => other,
        }
    }
}

/// Encodes `(key, value)` pairs (None = tombstone) as one uncompressed record batch.
pub fn encode_batch(entries: &[(Bytes, Option<Bytes>)], now_ms: i64) -> Result<Bytes, OffsetsTopicError> {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now_ms,
            key: Some(k.clone()),
            value: v.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .map_err(|e| OffsetsTopicError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

/// Appends entries to one partition, durably per the flush policy, before returning.
pub async fn append(
    replicas: &ReplicaManager,
    partition: i32,
    entries: &[(Bytes, Option<Bytes>)],
    now_ms: i64,
) -> Result<(), OffsetsTopicError> {
    if entries.is_empty() {
        return Ok(());
    }
    let p = replicas.partition(TOPIC, partition).ok_or(OffsetsTopicError::NotHosted(partition))?;
    let batch = encode_batch(entries, now_ms)?;
    // Acknowledged once every in-sync replica has it (Kafka's offsets.commit.required.acks=-1
    // and offsets.commit.timeout.ms=5000), so a commit survives the coordinator's failover.
    p.append_replicated(&batch, now_ms, std::time::Duration::from_millis(5000)).await?;
    Ok(())
}

/// Every record of a partition from its log start to its log end (as Kafka loads groups: a
/// new leader's high watermark may still lag commits its log already has), in offset order.
pub fn replay(partition: &Partition, mut apply: impl FnMut(Bytes, Option<Bytes>)) -> Result<u64, crate::cluster::PartitionError> {
    let mut offset = partition.log_start_offset();
    let end = partition.log_end_offset();
    let mut count = 0u64;
    while offset < end {
        let data = partition.plan_follower_read(offset, 1 << 20)?.0.read()?.records;
        if data.is_empty() {
            break;
        }
        let mut pos = 0usize;
        let mut next = offset;
        while pos < data.len() {
            let Ok(header) = BatchHeader::parse(&data[pos..]) else { break };
            let size = header.total_size();
            if pos + size > data.len() {
                break;
            }
            let batch = &data[pos..pos + size];
            match BatchRecords::decode(batch, DEFAULT_MAX_DECOMPRESSED) {
                Ok(records) => {
                    for r in records.iter().flatten() {
                        if r.offset < offset {
                            continue;
                        }
                        if let Some(k) = r.key {
                            apply(Bytes::copy_from_slice(k), r.value.map(Bytes::copy_from_slice));
                            count += 1;
                        }
                    }
                }
                Err(e) => tracing::warn!(target: "kafka.coordinator.group.GroupMetadataManager", partition = %partition.name(), base_offset = header.base_offset, error = %e, "skipping unreadable batch while loading groups"),
            }
            next = header.last_offset() + 1;
            pos += size;
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PartitionError;
    use crate::log::LogError;
    use error_code::*;

    /// The append errors a member sees, mapped as Kafka's GroupMetadataManager maps them:
    /// storeOffsets for OffsetCommit, storeGroup for SyncGroup.
    #[test]
    fn write_errors_map_as_kafkas_group_metadata_manager() {
        let storage = || OffsetsTopicError::Append(PartitionError::Flush("p".into(), std::io::Error::from_raw_os_error(libc::EIO)));
        let io = || OffsetsTopicError::Append(PartitionError::Log(LogError::Io { action: "appending to", path: "/d/s".into(), source: std::io::Error::from_raw_os_error(libc::ENOSPC) }));
        let cases: Vec<(OffsetsTopicError, i16, i16)> = vec![
            (OffsetsTopicError::NotHosted(3), COORDINATOR_NOT_AVAILABLE, COORDINATOR_NOT_AVAILABLE),
            (OffsetsTopicError::Append(PartitionError::NotEnoughReplicas { partition: "p".into(), isr: 1, min: 2 }), COORDINATOR_NOT_AVAILABLE, COORDINATOR_NOT_AVAILABLE),
            (OffsetsTopicError::Append(PartitionError::NotEnoughReplicasAfterAppend("p".into())), COORDINATOR_NOT_AVAILABLE, COORDINATOR_NOT_AVAILABLE),
            (OffsetsTopicError::Append(PartitionError::NotLeader("p".into())), NOT_COORDINATOR, NOT_COORDINATOR),
            (storage(), NOT_COORDINATOR, NOT_COORDINATOR),
            (io(), NOT_COORDINATOR, NOT_COORDINATOR),
            (OffsetsTopicError::Append(PartitionError::ReplicationTimedOut("p".into())), REQUEST_TIMED_OUT, REBALANCE_IN_PROGRESS),
            (OffsetsTopicError::Encode("x".into()), UNKNOWN_SERVER_ERROR, UNKNOWN_SERVER_ERROR),
        ];
        for (e, commit, store) in cases {
            assert_eq!((e.code(), e.group_store_code()), (commit, store), "{e}");
        }
    }
}
