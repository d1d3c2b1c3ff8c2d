//! SyncGroup: the leader hands out assignments; every member receives its own.
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::str_bytes;
use crate::broker::Broker;

pub async fn handle(broker: &Broker, request: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    if let Some(code) = broker.coordinator_error(&request.group_id.0) {
        return SyncGroupResponse::default().with_error_code(code);
    }
    broker.metrics.purgatory_rebalance.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let assignments = request.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
    // Waiting for the leader's assignments, without the handler slot (RemoteTimeMs).
    let r = crate::network::handler_pool::remote(broker.coordinator.sync(
            &broker.replicas,
            &request.group_id.0,
            request.generation_id,
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.protocol_type.as_deref(),
            request.protocol_name.as_deref(),
            assignments,
        ))
        .await;
    broker.metrics.purgatory_rebalance.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    let mut response = SyncGroupResponse::default().with_error_code(r.error).with_assignment(r.assignment);
    if version >= 5 {
        response = response.with_protocol_type(r.protocol_type.as_deref().map(str_bytes)).with_protocol_name(r.protocol.as_deref().map(str_bytes));
    }
    response
}
