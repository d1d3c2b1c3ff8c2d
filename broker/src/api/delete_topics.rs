//! DeleteTopics, by name (all versions) or by topic id (v6).
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::{str_bytes};
use crate::error_code;
use crate::broker::Broker;
use crate::controller::{ControllerError, ControllerReply, ControllerRequest};

pub async fn handle(broker: &Broker, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    // v6 names topics in `topics` (by name or id); older versions in `topic_names`.
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)).collect()
    } else {
        request.topic_names.iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect()
    };
    let mut deleted = false;
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let image = broker.image();
        let name = match name {
            Some(n) => n,
            None => match image.topic_by_id(id) {
                Some(t) => t.name.clone(),
                None => {
                    responses.push(DeletableTopicResult::default().with_topic_id(id).with_error_code(error_code::UNKNOWN_TOPIC_ID));
                    continue;
                }
            },
        };
        let result = DeletableTopicResult::default().with_name(Some(TopicName(str_bytes(&name))));
        let outcome = if broker.config.delete_topic_enable {
            broker.controller.submit(ControllerRequest::DeleteTopic { name: name.clone() }).await
        } else {
            Err(ControllerError::DeletionDisabled)
        };
        responses.push(match outcome {
            Ok(ControllerReply::TopicDeleted(t)) => {
                deleted = true;
                tracing::info!(target: "state.change.logger", topic = %name, "deleted topic");
                result.with_topic_id(t.id)
            }
            Ok(other) => result.with_topic_id(id).with_error_code(error_code::UNKNOWN_SERVER_ERROR).with_error_message(Some(str_bytes(&format!("unexpected controller answer {other:?}")))),
            Err(e) => result.with_topic_id(id).with_error_code(e.code()).with_error_message(Some(str_bytes(&e.to_string()))),
        });
    }
    if deleted {
        broker.apply_metadata_now().await;
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
