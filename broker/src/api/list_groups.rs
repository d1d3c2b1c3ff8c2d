//! ListGroups, with the v4 state filter and v5 type filter.
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::broker::Broker;

pub fn handle(broker: &Broker, request: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_string()).collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_string()).collect();
    let groups = broker
        .coordinator
        .list_groups(&states, &types)
        .into_iter()
        .map(|g| {
            let mut l = ListedGroup::default().with_group_id(GroupId(str_bytes(&g.group_id))).with_protocol_type(str_bytes(&g.protocol_type));
            if version >= 4 {
                l = l.with_group_state(str_bytes(g.state.name()));
            }
            if version >= 5 {
                l = l.with_group_type(str_bytes("classic"));
            }
            l
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
