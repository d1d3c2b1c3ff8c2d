//! Metadata: brokers, controller and topic/partition leadership, with topic auto-creation.
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::{str_bytes, RequestContext};
use crate::error_code;
use crate::broker::Broker;
use crate::controller::{validate_topic_name, ControllerError, MetadataImage, TopicImage};

/// With no authorizer every operation is allowed; these are the bit sets Kafka reports then
/// (bit n set = ACL operation n: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
/// CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12), as Kafka's
/// AclEntry.supportedOperations lists them per resource type.
const TOPIC_OPERATIONS: i32 = (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
const CLUSTER_OPERATIONS: i32 = (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
/// Kafka's value when authorized operations were not asked for.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub async fn handle(broker: &Broker, ctx: &RequestContext, request: MetadataRequest, version: i16) -> MetadataResponse {
    let mut response = topics_and_brokers(broker, ctx, &request, version).await;
    let cluster_ops = if request.include_cluster_authorized_operations && (8..=10).contains(&version) {
        CLUSTER_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let topic_ops = if request.include_topic_authorized_operations && version >= 8 {
        TOPIC_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    for t in response.topics.iter_mut().filter(|t| t.error_code == error_code::NONE) {
        t.topic_authorized_operations = topic_ops;
    }
    response.with_cluster_authorized_operations(cluster_ops)
}

async fn topics_and_brokers(broker: &Broker, ctx: &RequestContext, request: &MetadataRequest, version: i16) -> MetadataResponse {
    let mut image = broker.image();
    let mut topics: Vec<MetadataResponseTopic> = Vec::new();
    match request.topics.clone() {
        // v0: an empty list means every topic; v1+: null means every topic.
        None => topics.extend(image.topics.values().map(|t| topic_response(&image, t))),
        Some(list) if list.is_empty() && version == 0 => topics.extend(image.topics.values().map(|t| topic_response(&image, t))),
        Some(list) => {
            for wanted in list {
                topics.push(match wanted.name {
                    Some(name) => {
                        let name = name.0.to_string();
                        match image.topic(&name) {
                            Some(t) => topic_response(&image, t),
                            None => {
                                let r = missing_topic(broker, &name, request.allow_auto_topic_creation).await;
                                image = broker.image();
                                r
                            }
                        }
                    }
                    None => match image.topic_by_id(wanted.topic_id) {
                        Some(t) => topic_response(&image, t),
                        None => MetadataResponseTopic::default()
                            .with_topic_id(wanted.topic_id)
                            .with_error_code(error_code::UNKNOWN_TOPIC_ID),
                    },
                });
            }
        }
    };
    MetadataResponse::default()
        .with_brokers(brokers(&image, &ctx.listener))
        .with_cluster_id(Some(str_bytes(&image.cluster_id)))
        .with_controller_id(BrokerId(broker.controller.client_controller_id()))
        .with_topics(topics)
}

/// The live (unfenced) brokers, with their endpoints on `listener`.
pub(crate) fn brokers(image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .live_endpoints(listener)
        .map(|(b, e)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(&e.host))
                .with_port(e.port as i32)
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect()
}

async fn missing_topic(broker: &Broker, name: &str, allow_auto_create: bool) -> MetadataResponseTopic {
    let named = MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(name))));
    match validate_topic_name(name) {
        Err(ControllerError::InvalidTopic { .. }) => return named.with_error_code(error_code::INVALID_TOPIC_EXCEPTION),
        Err(e) => return named.with_error_code(e.code()),
        Ok(()) => {}
    }
    if !(allow_auto_create && broker.config.auto_create_topics) {
        return named.with_error_code(error_code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    match broker.auto_create_topic(name).await {
        Ok(t) => topic_response(&broker.image(), &t),
        // Another request created it meanwhile.
        Err(ControllerError::TopicExists(_)) => match broker.image().topic(name) {
            Some(t) => topic_response(&broker.image(), t),
            None => named.with_error_code(error_code::LEADER_NOT_AVAILABLE),
        },
        Err(e) => {
            tracing::warn!(target: "state.change.logger", topic = name, error = %e, "auto-creation failed");
            // Kafka answers LEADER_NOT_AVAILABLE while a topic cannot be created yet (no
            // controller, not enough brokers): clients retry.
            let code = match e {
                ControllerError::NotController(_) | ControllerError::Timeout(_) => error_code::LEADER_NOT_AVAILABLE,
                other => other.code(),
            };
            named.with_error_code(code)
        }
    }
}

fn topic_response(image: &MetadataImage, t: &TopicImage) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let offline: Vec<BrokerId> = p.replicas.iter().filter(|r| !image.is_live(**r)).map(|&r| BrokerId(r)).collect();
            let code = if p.leader < 0 { error_code::LEADER_NOT_AVAILABLE } else { error_code::NONE };
            MetadataResponsePartition::default()
                .with_error_code(code)
                .with_partition_index(i as i32)
                .with_offline_replicas(offline)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|&r| BrokerId(r)).collect())
                .with_isr_nodes(p.isr.iter().map(|&r| BrokerId(r)).collect())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_topic_id(t.id)
        .with_is_internal(t.name.starts_with("__"))
        .with_partitions(partitions)
}
