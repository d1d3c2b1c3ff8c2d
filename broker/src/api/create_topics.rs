//! CreateTopics: validated by the controller, then the logs are created locally.
use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::describe_configs::topic_entries;
use super::{str_bytes};
use crate::error_code;
use crate::broker::Broker;

const INVALID_REPLICA_ASSIGNMENT: i16 = 39;

pub fn handle(broker: &Broker, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut created = false;
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let fail = |code: i16, msg: String| result.clone().with_error_code(code).with_error_message(Some(str_bytes(&msg)));
        if duplicates.contains(&name) {
            results.push(fail(error_code::INVALID_REQUEST, format!("topic '{name}' appears more than once in the request")));
            continue;
        }
        let mut partitions = if topic.num_partitions == -1 { broker.config.num_partitions } else { topic.num_partitions };
        let replication =
            if topic.replication_factor == -1 { broker.config.default_replication_factor } else { topic.replication_factor };
        if !topic.assignments.is_empty() {
            let ours = topic.assignments.iter().all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == broker.node_id());
            if !ours || topic.num_partitions != -1 || topic.replication_factor != -1 {
                results.push(fail(
                    INVALID_REPLICA_ASSIGNMENT,
                    format!("manual assignments must name only broker {} once per partition, with num_partitions and replication_factor -1", broker.node_id()),
                ));
                continue;
            }
            partitions = topic.assignments.len() as i32;
        }
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
            .collect();
        match broker.controller.create_topic(&name, partitions, replication, configs, request.validate_only) {
            Ok(t) => {
                created |= !request.validate_only;
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
                tracing::info!(target: "state.change.logger", topic = %name, partitions, "created topic");
                results.push(r);
            }
            Err(e) => results.push(fail(e.code(), e.to_string())),
        }
    }
    if created {
        if let Err(e) = broker.apply_metadata() {
            tracing::error!(target: "state.change.logger", error = %e, "could not create logs for new topics");
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
