//! UnregisterBroker (KIP-631): removes a broker's registration, the last step of a scale-down
//! (`lantern-admin broker remove`). The controller refuses while the broker holds replicas.
use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::controller::{ControllerReply, ControllerRequest};

pub async fn handle(broker: &Broker, request: UnregisterBrokerRequest) -> UnregisterBrokerResponse {
    match broker.controller.submit(ControllerRequest::UnregisterBroker { broker_id: request.broker_id.0 }).await {
        Ok(ControllerReply::Unregistered) => {
            broker.apply_metadata_now().await;
            UnregisterBrokerResponse::default()
        }
        Ok(other) => {
            tracing::error!(target: "kafka.server.KafkaApis", reply = ?other, "unexpected controller answer to UnregisterBroker");
            UnregisterBrokerResponse::default().with_error_code(crate::error_code::UNKNOWN_SERVER_ERROR)
        }
        Err(e) => UnregisterBrokerResponse::default().with_error_code(e.code()).with_error_message(Some(str_bytes(&e.to_string()))),
    }
}
