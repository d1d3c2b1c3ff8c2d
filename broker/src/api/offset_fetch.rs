//! OffsetFetch: one group (v0-7) or several (v8+); all committed offsets when no topics are
//! named. Version 0 read offsets from ZooKeeper: a Kafka 3.9 broker without ZooKeeper (KRaft)
//! answers it with UNSUPPORTED_VERSION on every partition asked, and so does Lantern.
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::str_bytes;
use crate::broker::Broker;
use crate::coordinator::FetchedOffset;

/// Groups rows by topic, keeping first-seen order.
fn by_topic(rows: Vec<FetchedOffset>) -> Vec<(String, Vec<FetchedOffset>)> {
    let mut out: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|(t, _)| *t == r.topic) {
            Some((_, v)) => v.push(r),
            None => out.push((r.topic.clone(), vec![r])),
        }
    }
    out
}

pub fn handle(broker: &Broker, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let epoch = |e: i32| if version >= 5 { e } else { -1 };
    if version == 0 {
        return partition_errors(request, crate::error_code::UNSUPPORTED_VERSION);
    }
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                if let Some(code) = broker.coordinator_error(&g.group_id.0) {
                    return OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_error_code(code);
                }
                let wanted = g.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
                let topics = by_topic(broker.coordinator.fetch_offsets(&g.group_id.0, wanted))
                    .into_iter()
                    .map(|(t, rows)| {
                        let partitions = rows
                            .into_iter()
                            .map(|r| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(r.partition)
                                    .with_committed_offset(r.offset)
                                    .with_committed_leader_epoch(epoch(r.leader_epoch))
                                    .with_metadata(r.metadata.as_deref().map(str_bytes))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default().with_name(TopicName(str_bytes(&t))).with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if let Some(code) = broker.coordinator_error(&request.group_id.0) {
        return partition_errors(request, code);
    }
    let wanted = request.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let topics = by_topic(broker.coordinator.fetch_offsets(&request.group_id.0, wanted))
        .into_iter()
        .map(|(t, rows)| {
            let partitions = rows
                .into_iter()
                .map(|r| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(r.partition)
                        .with_committed_offset(r.offset)
                        .with_committed_leader_epoch(epoch(r.leader_epoch))
                        .with_metadata(r.metadata.as_deref().map(str_bytes))
                })
                .collect();
            OffsetFetchResponseTopic::default().with_name(TopicName(str_bytes(&t))).with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// An error for the whole request of v0-7. v0/v1 have no top-level error code: Kafka answers
/// with it on every partition asked (offset -1, empty metadata).
fn partition_errors(request: OffsetFetchRequest, code: i16) -> OffsetFetchResponse {
    let topics = request
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|p| OffsetFetchResponsePartition::default().with_partition_index(*p).with_committed_offset(-1).with_error_code(code))
                .collect();
            OffsetFetchResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_error_code(code).with_topics(topics)
}
