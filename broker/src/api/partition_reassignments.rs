//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455): move partitions'
//! replicas between brokers (kafka-reassign-partitions.sh, the Admin client's
//! alterPartitionReassignments). The active controller decides (see
//! `controller::reassignment`); listing reads the metadata image.
use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
use kafka_protocol::messages::list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName,
};

use super::str_bytes;
use crate::broker::Broker;
use crate::controller::{ControllerReply, ControllerRequest};

pub async fn alter(broker: &Broker, request: AlterPartitionReassignmentsRequest, version: i16) -> AlterPartitionReassignmentsResponse {
    let partitions: Vec<(String, i32, Option<Vec<i32>>)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect())))
        })
        .collect();
    // Version 0 has no flag: a reassignment may change the replication factor, as before KIP-1101.
    let allow_replication_factor_change = version < 1 || request.allow_replication_factor_change;
    let response = AlterPartitionReassignmentsResponse::default().with_allow_replication_factor_change(allow_replication_factor_change);
    let asked = ControllerRequest::AlterReassignments { partitions: partitions.clone(), allow_replication_factor_change };
    let results = match broker.controller.submit(asked).await {
        Ok(ControllerReply::Reassigned(results)) => results,
        Ok(other) => {
            tracing::error!(target: "kafka.server.KafkaApis", reply = ?other, "unexpected controller answer to AlterPartitionReassignments");
            return response.with_error_code(crate::error_code::UNKNOWN_SERVER_ERROR);
        }
        // The whole request failed (no controller, a timeout): Kafka answers at the top level.
        Err(e) => return response.with_error_code(e.code()).with_error_message(Some(str_bytes(&e.to_string()))),
    };
    if results.iter().any(|r| r.2 == 0) {
        broker.apply_metadata_now().await;
    }
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for (topic, partition, code, message) in results {
        by_topic.entry(topic).or_default().push(
            ReassignablePartitionResponse::default()
                .with_partition_index(partition)
                .with_error_code(code)
                .with_error_message(message.map(|m| str_bytes(&m))),
        );
    }
    response.with_responses(
        by_topic
            .into_iter()
            .map(|(t, ps)| ReassignableTopicResponse::default().with_name(TopicName(str_bytes(&t))).with_partitions(ps))
            .collect(),
    )
}

/// Partitions with a reassignment in progress: all of them, or those of the named topics and
/// partitions (names that do not exist or are not moving are left out, as Kafka does).
pub fn list(broker: &Broker, request: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let image = broker.image();
    let wanted: Option<BTreeMap<String, Vec<i32>>> =
        request.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let mut topics = Vec::new();
    for t in image.topics.values() {
        let only = match &wanted {
            Some(w) => match w.get(&t.name) {
                Some(ps) => Some(ps),
                None => continue,
            },
            None => None,
        };
        let partitions: Vec<OngoingPartitionReassignment> = t
            .partitions
            .iter()
            .enumerate()
            .filter(|(i, p)| p.is_reassigning() && only.is_none_or(|ps| ps.contains(&(*i as i32))))
            .map(|(i, p)| {
                OngoingPartitionReassignment::default()
                    .with_partition_index(i as i32)
                    .with_replicas(ids(&p.replicas))
                    .with_adding_replicas(ids(&p.adding_replicas))
                    .with_removing_replicas(ids(&p.removing_replicas))
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(OngoingTopicReassignment::default().with_name(TopicName(str_bytes(&t.name))).with_partitions(partitions));
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
