//! CreatePartitions: grow a topic's partition count.
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::controller::ControllerRequest;

pub async fn handle(broker: &Broker, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut changed = false;
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let assignments = t.assignments.as_ref().map(|a| a.iter().map(|p| p.broker_ids.iter().map(|b| b.0).collect()).collect());
        let asked = ControllerRequest::CreatePartitions { name: t.name.0.to_string(), count: t.count, assignments, validate_only: request.validate_only };
        results.push(match broker.controller.submit(asked).await {
            Ok(_) => {
                changed |= !request.validate_only;
                r
            }
            Err(e) => r.with_error_code(e.code()).with_error_message(Some(str_bytes(&e.to_string()))),
        });
    }
    if changed {
        broker.apply_metadata_now().await;
    }
    CreatePartitionsResponse::default().with_results(results)
}
