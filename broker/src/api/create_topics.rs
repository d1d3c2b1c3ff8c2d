//! CreateTopics: validated by the controller, then the logs are created locally.
use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::describe_configs::topic_entries;
use super::{str_bytes};
use crate::error_code;
use crate::broker::Broker;
use crate::controller::{ControllerReply, ControllerRequest};

pub async fn handle(broker: &Broker, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    // (index in `results`, name, id, partitions) of each topic created, to check once applied.
    let mut created = Vec::new();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let fail = |code: i16, msg: String| result.clone().with_error_code(code).with_error_message(Some(str_bytes(&msg)));
        if duplicates.contains(&name) {
            results.push(fail(error_code::INVALID_REQUEST, format!("topic '{name}' appears more than once in the request")));
            continue;
        }
        let assignments: Option<Vec<Vec<i32>>> = if topic.assignments.is_empty() {
            None
        } else {
            if topic.num_partitions != -1 || topic.replication_factor != -1 {
                results.push(fail(
                    error_code::INVALID_REQUEST,
                    "with replica assignments, num_partitions and replication_factor must both be -1".into(),
                ));
                continue;
            }
            let mut lists: Vec<(i32, Vec<i32>)> =
                topic.assignments.iter().map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect())).collect();
            lists.sort_by_key(|(i, _)| *i);
            if lists.iter().enumerate().any(|(n, (i, _))| *i != n as i32) {
                results.push(fail(
                    error_code::INVALID_REPLICA_ASSIGNMENT,
                    "replica assignments must cover partitions 0..n exactly once".into(),
                ));
                continue;
            }
            Some(lists.into_iter().map(|(_, l)| l).collect())
        };
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
            .collect();
        let asked = ControllerRequest::CreateTopic {
            name: name.clone(),
            partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments,
            configs,
            validate_only: request.validate_only,
        };
        match broker.controller.submit(asked).await {
            Ok(ControllerReply::Topic(t)) => {
                let partitions = t.partitions.len() as i32;
                if !request.validate_only {
                    created.push((results.len(), name.clone(), t.id, partitions));
                }
                let replication = t.partitions.first().map_or(0, |p| p.replicas.len() as i16);
                let mut r = result.with_topic_id(t.id).with_num_partitions(partitions).with_replication_factor(replication);
                if version >= 5 {
                    let entries = topic_entries(broker, &t.configs)
                        .into_iter()
                        .map(|e| {
                            CreatableTopicConfigs::default()
                                .with_name(str_bytes(e.name))
                                .with_value(Some(str_bytes(&e.value)))
                                .with_config_source(e.source)
                        })
                        .collect();
                    r = r.with_configs(Some(entries));
                }
                if !request.validate_only {
                    tracing::info!(target: "state.change.logger", topic = %name, partitions, replication_factor = replication, "created topic");
                }
                results.push(r);
            }
            Ok(other) => results.push(fail(error_code::UNKNOWN_SERVER_ERROR, format!("unexpected controller answer {other:?}"))),
            Err(e) => results.push(fail(e.code(), e.to_string())),
        }
    }
    if !created.is_empty() {
        // Answered once this broker has applied the change to its own logs: a replica whose
        // log could not be created here is not reported as a success. The topic stays in the
        // metadata (a retry gets TOPIC_ALREADY_EXISTS, as in Kafka); its replica here is
        // offline until the broker restarts.
        broker.apply_metadata_now().await;
        for (i, name, id, partitions) in created {
            if let Some(why) = broker.local_apply_failure(&name, id, 0..partitions) {
                let r = &mut results[i];
                *r = CreatableTopicResult::default()
                    .with_name(r.name.clone())
                    .with_error_code(error_code::KAFKA_STORAGE_ERROR)
                    .with_error_message(Some(str_bytes(&why)));
            }
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
