//! LeaveGroup: one member (v0-2) or a batch of members by id or instance id (v3+).
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::str_bytes;
use crate::broker::Broker;

pub async fn handle(broker: &Broker, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    if let Some(code) = broker.coordinator_error(&request.group_id.0) {
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string()))).collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let codes = broker.coordinator.leave(&broker.replicas, &request.group_id.0, &members).await;
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0));
    }
    let responses = members
        .iter()
        .zip(&codes)
        .map(|((id, instance), code)| {
            MemberResponse::default()
                .with_member_id(str_bytes(id))
                .with_group_instance_id(instance.as_deref().map(str_bytes))
                .with_error_code(*code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}
