//! ElectLeaders: preferred-leader or unclean elections for the listed partitions (all of
//! them when none are listed), made by the active controller (kafka-leader-election.sh).
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::str_bytes;
use crate::broker::Broker;
use crate::controller::{ControllerReply, ControllerRequest};

pub async fn handle(broker: &Broker, request: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    // Version 0 has no election type: preferred.
    let unclean = version >= 1 && request.election_type == 1;
    let partitions: Option<Vec<(String, i32)>> = request
        .topic_partitions
        .as_ref()
        .map(|ts| ts.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.to_string(), *p))).collect());
    let reply = broker.controller.submit(ControllerRequest::ElectLeaders { unclean, partitions: partitions.clone() }).await;
    let results: Vec<(String, i32, i16, Option<String>)> = match reply {
        Ok(ControllerReply::Elected(r)) => r.into_iter().map(|(t, p, c)| (t, p, c, None)).collect(),
        Ok(other) => {
            tracing::error!(target: "kafka.server.KafkaApis", reply = ?other, "unexpected controller answer to ElectLeaders");
            return ElectLeadersResponse::default().with_error_code(crate::error_code::UNKNOWN_SERVER_ERROR);
        }
        Err(e) => match partitions {
            Some(list) => list.into_iter().map(|(t, p)| (t, p, e.code(), Some(e.to_string()))).collect(),
            None => return ElectLeadersResponse::default().with_error_code(e.code()),
        },
    };
    if results.iter().any(|r| r.2 == 0) {
        broker.apply_metadata_now().await;
    }
    let mut by_topic: std::collections::BTreeMap<String, Vec<PartitionResult>> = Default::default();
    for (t, p, code, message) in results {
        by_topic.entry(t).or_default().push(
            PartitionResult::default().with_partition_id(p).with_error_code(code).with_error_message(message.map(|m| str_bytes(&m))),
        );
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(t, ps)| ReplicaElectionResult::default().with_topic(TopicName(str_bytes(&t))).with_partition_result(ps))
            .collect(),
    )
}
