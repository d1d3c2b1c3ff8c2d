//! InitProducerId for idempotent producers (transactions are not supported yet).
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::error_code;
use crate::broker::Broker;

pub async fn handle(broker: &Broker, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let r = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        return r.with_error_code(error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    // KIP-360: a producer that already has an id asks for a bumped epoch; the sequence
    // numbers of the new epoch start again at 0.
    if request.producer_id.0 >= 0 && request.producer_epoch >= 0 && request.producer_epoch < i16::MAX - 1 {
        return r.with_producer_id(request.producer_id).with_producer_epoch(request.producer_epoch + 1);
    }
    match broker.controller.allocate_producer_id().await {
        Ok(id) => r.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(target: "kafka.coordinator.transaction.ProducerIdManager", error = %e, "could not allocate a producer id");
            // NOT_CONTROLLER / REQUEST_TIMED_OUT are retriable for the producer.
            r.with_error_code(e.code())
        }
    }
}
