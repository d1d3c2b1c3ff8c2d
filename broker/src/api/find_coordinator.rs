//! FindCoordinator: a group's coordinator is the leader of its `__consumer_offsets` partition,
//! which is created (through the controller) on the first request, as Kafka does. Transaction
//! coordinators are not available until transactions are implemented.
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::{str_bytes, RequestContext};
use crate::broker::Broker;
use crate::controller::ControllerError;
use crate::coordinator::offsets_topic::TOPIC as OFFSETS_TOPIC;
use crate::error_code::COORDINATOR_NOT_AVAILABLE;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// When the refusal to create the offsets topic was last logged (each group's consumer asks
/// again every few hundred milliseconds): once per 10 s.
static LAST_REFUSAL_LOGGED: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

pub async fn handle(broker: &Broker, ctx: &RequestContext, request: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let ready = if request.key_type == KEY_TYPE_GROUP { ensure_offsets_topic(broker).await } else { Ok(()) };
    let image = broker.image();
    let answer = |key: &str| -> Coordinator {
        let c = Coordinator::default().with_key(str_bytes(key)).with_node_id(BrokerId(-1));
        let unavailable = |why: String| c.clone().with_error_code(COORDINATOR_NOT_AVAILABLE).with_error_message(Some(str_bytes(&why)));
        match request.key_type {
            KEY_TYPE_GROUP => {}
            KEY_TYPE_TRANSACTION => return unavailable("transactions are not supported by this broker yet".into()),
            // v6 (KIP-932) adds share groups, which Kafka 3.9 answers only with them enabled.
            other => {
                return c
                    .clone()
                    .with_error_code(crate::error_code::INVALID_REQUEST)
                    .with_error_message(Some(str_bytes(&format!("coordinator key type {other} is not supported (0 group, 1 transaction)"))))
            }
        }
        if let Err(e) = &ready {
            return unavailable(format!("{OFFSETS_TOPIC} cannot be created yet: {e}"));
        }
        let partition = broker.coordinator.partition_for(key);
        let leader = image.partition(OFFSETS_TOPIC, partition).map_or(-1, |p| p.leader);
        match image.brokers.get(&leader).filter(|b| !b.fenced).and_then(|b| b.client_endpoint(&ctx.listener)) {
            Some(e) => c.with_node_id(BrokerId(leader)).with_host(str_bytes(&e.host)).with_port(e.port as i32),
            None => unavailable(format!("{OFFSETS_TOPIC}-{partition} has no live leader")),
        }
    };
    if version >= 4 {
        let coordinators = request.coordinator_keys.iter().map(|k| answer(k)).collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = answer(&request.key);
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(if version >= 1 { c.error_message } else { None })
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

/// Creates the compacted `__consumer_offsets` topic if it does not exist yet.
async fn ensure_offsets_topic(broker: &Broker) -> Result<(), ControllerError> {
    if broker.image().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let configs = [
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), broker.config.offsets_topic_segment_bytes.to_string()),
    ]
    .into_iter()
    .collect();
    let c = &broker.config;
    // As Kafka: not created with fewer live brokers than its replication factor (rather than
    // with fewer replicas, for good); FindCoordinator answers COORDINATOR_NOT_AVAILABLE until
    // enough brokers have registered.
    let live = broker.image().live_brokers().count();
    if live < c.offsets_topic_replication_factor.max(1) as usize {
        let why = format!(
            "number of alive brokers '{live}' does not meet the required replication factor '{}' for the offsets topic \
             (configured via 'offsets.topic.replication.factor'); this can be ignored while the cluster is starting up \
             and not all brokers are up yet",
            c.offsets_topic_replication_factor
        );
        let now = crate::api::now_ms();
        let last = LAST_REFUSAL_LOGGED.load(std::sync::atomic::Ordering::Relaxed);
        if now - last >= 10_000 && LAST_REFUSAL_LOGGED.compare_exchange(last, now, std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed).is_ok() {
            tracing::warn!(target: "kafka.coordinator.group.GroupMetadataManager", "{why}");
        }
        return Err(ControllerError::InvalidReplicationFactor(why));
    }
    match broker.create_topic(OFFSETS_TOPIC, c.offsets_topic_num_partitions, c.offsets_topic_replication_factor, configs).await {
        Ok(_) => {
            tracing::info!(target: "kafka.coordinator.group.GroupMetadataManager", partitions = c.offsets_topic_num_partitions, "created {OFFSETS_TOPIC}");
            Ok(())
        }
        Err(ControllerError::TopicExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
