//! OffsetDelete: removes a group's committed offsets for partitions it no longer consumes.
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::broker::Broker;

pub async fn handle(broker: &Broker, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if let Some(code) = broker.coordinator_error(&request.group_id.0) {
        return OffsetDeleteResponse::default().with_error_code(code);
    }
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    let (code, codes) = broker.coordinator.delete_offsets(&broker.replicas, &request.group_id.0, &partitions).await;
    if code != 0 {
        return OffsetDeleteResponse::default().with_error_code(code);
    }
    let mut codes = codes.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| OffsetDeleteResponsePartition::default().with_partition_index(p.partition_index).with_error_code(codes.next().unwrap_or(0)))
                .collect();
            OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
