//! Heartbeat: keeps a member's session alive and tells it when to rejoin.
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;

pub fn handle(broker: &Broker, request: HeartbeatRequest) -> HeartbeatResponse {
    if let Some(code) = broker.coordinator_error(&request.group_id.0) {
        return HeartbeatResponse::default().with_error_code(code);
    }
    let code = broker.coordinator.heartbeat(
        &request.group_id.0,
        request.generation_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
    );
    HeartbeatResponse::default().with_error_code(code)
}
