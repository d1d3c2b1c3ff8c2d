//! DescribeGroups: state, protocol and members with their metadata and assignments.
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::str_bytes;
use crate::broker::Broker;

pub fn handle(broker: &Broker, request: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            if let Some(code) = broker.coordinator_error(&id.0) {
                return DescribedGroup::default().with_group_id(id).with_error_code(code);
            }
            let d = broker.coordinator.describe_group(&id.0);
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_group_instance_id(if version >= 4 { m.instance_id.as_deref().map(str_bytes) } else { None })
                        .with_client_id(str_bytes(&m.client_id))
                        .with_client_host(str_bytes(&m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            let mut g = DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(str_bytes(d.state.name()))
                .with_protocol_type(str_bytes(&d.protocol_type))
                .with_protocol_data(str_bytes(&d.protocol))
                .with_members(members);
            if version >= 3 && request.include_authorized_operations {
                // No authorizer: every group operation (READ 3, DELETE 6, DESCRIBE 8).
                g = g.with_authorized_operations((1 << 3) | (1 << 6) | (1 << 8));
            }
            g
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
