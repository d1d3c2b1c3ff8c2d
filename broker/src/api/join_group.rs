//! JoinGroup: the first phase of the classic rebalance protocol.
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::{str_bytes, RequestContext};
use crate::broker::Broker;
use crate::coordinator::JoinRequest;

pub async fn handle(broker: &Broker, ctx: &RequestContext, request: JoinGroupRequest, version: i16) -> JoinGroupResponse {
    if let Some(code) = broker.coordinator_error(&request.group_id.0) {
        return JoinGroupResponse::default().with_error_code(code).with_generation_id(-1);
    }
    let req = JoinRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 { request.rebalance_timeout_ms } else { request.session_timeout_ms },
        protocol_type: request.protocol_type.to_string(),
        protocols: request.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    broker.metrics.purgatory_rebalance.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Waiting for the group's other members, without the handler slot (RemoteTimeMs).
    let r = crate::network::handler_pool::remote(broker.coordinator.join(&broker.replicas, req)).await;
    broker.metrics.purgatory_rebalance.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    let members = r
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&id))
                .with_group_instance_id(if version >= 5 { instance.as_deref().map(str_bytes) } else { None })
                .with_metadata(metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_protocol_type(if version >= 7 { r.protocol_type.as_deref().map(str_bytes) } else { None })
        .with_protocol_name(r.protocol.as_deref().map(str_bytes).or(if version >= 7 { None } else { Some(str_bytes("")) }))
        .with_leader(str_bytes(&r.leader))
        .with_member_id(str_bytes(&r.member_id))
        .with_members(members)
        .with_skip_assignment(version >= 9 && r.skip_assignment)
}
