//! DeleteTopics, by name (all versions) or by topic id (v6).
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::{str_bytes};
use crate::error_code;
use crate::broker::Broker;

pub fn handle(broker: &Broker, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    // v6 names topics in `topics` (by name or id); older versions in `topic_names`.
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)).collect()
    } else {
        request.topic_names.iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect()
    };
    let mut deleted = false;
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let image = broker.image();
            let name = match name {
                Some(n) => n,
                None => match image.topic_by_id(id) {
                    Some(t) => t.name.clone(),
                    None => {
                        return DeletableTopicResult::default().with_topic_id(id).with_error_code(error_code::UNKNOWN_TOPIC_ID)
                    }
                },
            };
            let result = DeletableTopicResult::default().with_name(Some(TopicName(str_bytes(&name))));
            match broker.controller.delete_topic(&name, broker.config.delete_topic_enable) {
                Ok(t) => {
                    deleted = true;
                    tracing::info!(target: "state.change.logger", topic = %name, "deleted topic");
                    result.with_topic_id(t.id)
                }
                Err(e) => result.with_topic_id(id).with_error_code(e.code()).with_error_message(Some(str_bytes(&e.to_string()))),
            }
        })
        .collect();
    if deleted {
        if let Err(e) = broker.apply_metadata() {
            tracing::error!(target: "state.change.logger", error = %e, "could not delete logs of deleted topics");
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
