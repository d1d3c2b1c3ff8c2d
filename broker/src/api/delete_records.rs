//! DeleteRecords (kafka-delete-records.sh, AdminClient.deleteRecords, Kafka Streams purging
//! its repartition topics): moves each partition's log start offset up to the given offset
//! (-1: the high watermark) and answers with the low watermark, the smallest log start
//! offset of the leader and its in-sync followers, once that has reached it or the request's
//! timeout has passed (REQUEST_TIMED_OUT, as Kafka's DelayedDeleteRecords).
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::now_ms;
use crate::broker::Broker;
use crate::cluster::Partition;
use crate::error_code;

pub async fn handle(broker: &Broker, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    // Every partition's start moves first, then one wait covers them all.
    let mut moved: Vec<(usize, usize, Arc<Partition>, i64)> = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for (t, topic) in request.topics.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (i, p) in topic.partitions.into_iter().enumerate() {
            let base = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
            let partition = match broker.leader_partition(&name, p.partition_index) {
                Ok(partition) => partition,
                Err(code) => {
                    partitions.push(base.with_error_code(code));
                    continue;
                }
            };
            match partition.delete_records_before(p.offset, now_ms()).await {
                Ok(target) => {
                    tracing::info!(target: "kafka.server.ReplicaManager", partition = %partition.name(), requested = p.offset, log_start_offset = target,
                        "deleted records before the requested offset (DeleteRecords)");
                    partitions.push(base.with_low_watermark(partition.low_watermark()));
                    moved.push((t, i, partition, target));
                }
                Err(e) => {
                    tracing::info!(target: "kafka.server.ReplicaManager", partition = %partition.name(), requested = p.offset, error = %e, "DeleteRecords refused");
                    partitions.push(base.with_error_code(e.code()));
                }
            }
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions));
    }
    // One deadline for the whole request: the waits run one after another, each for what
    // is left of it.
    let deadline = tokio::time::Instant::now() + timeout;
    for (t, i, partition, target) in moved {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let reached = partition.wait_low_watermark(target, left).await;
        let result = &mut topics[t].partitions[i];
        if reached {
            result.low_watermark = partition.low_watermark();
        } else if !partition.is_leader() {
            result.error_code = error_code::NOT_LEADER_OR_FOLLOWER;
        } else {
            result.error_code = error_code::REQUEST_TIMED_OUT;
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
