//! FindCoordinator: this broker coordinates every group (single node). Transaction
//! coordinators are not available until transactions are implemented.
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::error_code::COORDINATOR_NOT_AVAILABLE;

const KEY_TYPE_GROUP: i8 = 0;

pub fn handle(broker: &Broker, request: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let l = &broker.config.advertised_listeners[0];
    let answer = |key: &str| -> Coordinator {
        let c = Coordinator::default().with_key(str_bytes(key));
        if request.key_type != KEY_TYPE_GROUP {
            return c
                .with_node_id(BrokerId(-1))
                .with_error_code(COORDINATOR_NOT_AVAILABLE)
                .with_error_message(Some(str_bytes("transactions are not supported by this broker yet")));
        }
        c.with_node_id(BrokerId(broker.node_id())).with_host(str_bytes(&l.host)).with_port(l.port as i32)
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
