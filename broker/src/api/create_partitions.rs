//! CreatePartitions: grow a topic's partition count.
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::controller::{ControllerReply, ControllerRequest};

pub async fn handle(broker: &Broker, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    // (index in `results`, name, id, the partitions added) of each topic grown.
    let mut grown = Vec::new();
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let name = t.name.0.to_string();
        let before = broker.image().topic(&name).map_or(0, |t| t.partitions.len() as i32);
        let assignments = t.assignments.as_ref().map(|a| a.iter().map(|p| p.broker_ids.iter().map(|b| b.0).collect()).collect());
        let asked = ControllerRequest::CreatePartitions { name: name.clone(), count: t.count, assignments, validate_only: request.validate_only };
        results.push(match broker.controller.submit(asked).await {
            Ok(reply) => {
                if let (false, ControllerReply::Topic(topic)) = (request.validate_only, reply) {
                    grown.push((results.len(), name, topic.id, before..topic.partitions.len() as i32));
                }
                r
            }
            Err(e) => r.with_error_code(e.code()).with_error_message(Some(str_bytes(&e.to_string()))),
        });
    }
    if !grown.is_empty() {
        // As CreateTopics: an error, not success, when this broker could not create its logs
        // of the new partitions (they exist in the metadata; offline here until a restart).
        broker.apply_metadata_now().await;
        for (i, name, id, added) in grown {
            if let Some(why) = broker.local_apply_failure(&name, id, added) {
                let r = &mut results[i];
                *r = r.clone().with_error_code(crate::error_code::KAFKA_STORAGE_ERROR).with_error_message(Some(str_bytes(&why)));
            }
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}
