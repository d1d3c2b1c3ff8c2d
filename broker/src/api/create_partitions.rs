//! CreatePartitions: grow a topic's partition count.
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::str_bytes;
use crate::broker::Broker;

pub fn handle(broker: &Broker, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut changed = false;
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match broker.controller.create_partitions(&t.name.0, t.count, request.validate_only) {
                Ok(_) => {
                    changed |= !request.validate_only;
                    r
                }
                Err(e) => r.with_error_code(e.code()).with_error_message(Some(str_bytes(&e.to_string()))),
            }
        })
        .collect();
    if changed {
        if let Err(e) = broker.apply_metadata() {
            tracing::error!(target: "state.change.logger", error = %e, "could not create logs for new partitions");
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}
