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
    // (index in `responses`, topic id) of each topic deleted.
    let mut deleted = Vec::new();
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
                deleted.push((responses.len(), t.id));
                tracing::info!(target: "state.change.logger", topic = %name, "deleted topic");
                result.with_topic_id(t.id)
            }
            Ok(other) => result.with_topic_id(id).with_error_code(error_code::UNKNOWN_SERVER_ERROR).with_error_message(Some(str_bytes(&format!("unexpected controller answer {other:?}")))),
            Err(e) => result.with_topic_id(id).with_error_code(e.code()).with_error_message(Some(str_bytes(&e.to_string()))),
        });
    }
    if !deleted.is_empty() {
        // An error, not success, when this broker could not remove its logs of the topic: it is
        // gone from the metadata (a retry gets UNKNOWN_TOPIC_OR_PARTITION) and no longer served,
        // but its files are still on disk here.
        broker.apply_metadata_now().await;
        for (i, id) in deleted {
            let failed = broker.replicas.failed_deletions(id);
            if let Some(why) = broker.describe_failures(&failed, "its files stay on disk until the broker restarts or a topic of that name is created") {
                let r = &mut responses[i];
                *r = r.clone().with_error_code(error_code::KAFKA_STORAGE_ERROR).with_error_message(Some(str_bytes(&why)));
            }
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
