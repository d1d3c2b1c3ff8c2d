//! OffsetCommit: durable in __consumer_offsets before it is acknowledged. Version 0 stored
//! offsets in ZooKeeper: a Kafka 3.9 broker without ZooKeeper (KRaft) answers it with
//! UNSUPPORTED_VERSION, and so does Lantern.
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::broker::Broker;
use crate::coordinator::CommitRequest;
use crate::error_code;

pub async fn handle(broker: &Broker, request: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    if version == 0 {
        return zookeeper_commit(broker, request);
    }
    let offsets = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata.as_ref().map(|m| m.to_string()),
                    p.commit_timestamp,
                )
            })
        })
        .collect();
    let req = CommitRequest {
        group_id: request.group_id.0.to_string(),
        generation: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        offsets,
    };
    let image = broker.image();
    let exists = |t: &str, p: i32| image.topic(t).is_some_and(|t| p >= 0 && (p as usize) < t.partitions.len());
    let codes = match broker.coordinator_error(&req.group_id) {
        Some(code) => vec![code; req.offsets.len()],
        None => broker.coordinator.commit_offsets(&broker.replicas, req, exists).await,
    };
    let mut codes = codes.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| OffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(codes.next().unwrap_or(0)))
                .collect();
            OffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Kafka 3.9 in KRaft mode: partitions of unknown topics are UNKNOWN_TOPIC_OR_PARTITION; if
/// any partition is left for ZooKeeper, the whole request fails and every partition gets
/// UNSUPPORTED_VERSION.
fn zookeeper_commit(broker: &Broker, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let image = broker.image();
    let exists = |t: &str, p: i32| image.topic(t).is_some_and(|t| p >= 0 && (p as usize) < t.partitions.len());
    let any_known = request.topics.iter().any(|t| t.partitions.iter().any(|p| exists(&t.name.0, p.partition_index)));
    let code = if any_known { error_code::UNSUPPORTED_VERSION } else { error_code::UNKNOWN_TOPIC_OR_PARTITION };
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions =
                t.partitions.iter().map(|p| OffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(code)).collect();
            OffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
