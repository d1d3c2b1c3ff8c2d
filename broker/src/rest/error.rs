//! The proxy's errors, in Confluent's form: an HTTP status and a body
//! `{"error_code": N, "message": "..."}`, where N is the status itself or Confluent's
//! five-digit refinement of it (40403: the topic-partition is not hosted; 50003: a retriable
//! Kafka error).
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error_code as kafka;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error_code: u32,
    pub message: String,
}

/// Confluent's code for an unknown topic or partition (Kafka's UNKNOWN_TOPIC_OR_PARTITION).
pub const UNKNOWN_TOPIC_OR_PARTITION: u32 = 40403;
/// A retriable Kafka error (the client may try again).
pub const KAFKA_RETRIABLE: u32 = 50003;
/// Any other Kafka error.
pub const KAFKA_ERROR: u32 = 50002;

impl RestError {
    pub fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        Self { status, error_code, message: message.into() }
    }

    /// The status as the code.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, u32::from(status.as_u16()), message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::status(StatusCode::NOT_FOUND, message)
    }

    pub fn unknown_topic(topic: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, UNKNOWN_TOPIC_OR_PARTITION, format!("This server does not host this topic-partition: topic {topic} does not exist."))
    }

    pub fn unknown_partition(topic: &str, partition: i32) -> Self {
        Self::new(StatusCode::NOT_FOUND, UNKNOWN_TOPIC_OR_PARTITION, format!("This server does not host this topic-partition: {topic}-{partition}."))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::status(StatusCode::BAD_REQUEST, message)
    }

    /// A request whose body does not say what it must; `field` names the offending part.
    pub fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        Self::status(StatusCode::UNPROCESSABLE_ENTITY, format!("Payload error. {field}: {why}"))
    }

    pub fn too_large(limit: usize) -> Self {
        Self::status(StatusCode::PAYLOAD_TOO_LARGE, format!("The request included a message larger than the maximum message size the server can accept (rest.max.request.bytes={limit})."))
    }

    pub fn timed_out(what: &str) -> Self {
        Self::status(StatusCode::REQUEST_TIMEOUT, format!("{what} did not arrive within rest.request.timeout.ms"))
    }

    /// A Kafka error code from a broker's answer, as Confluent's KafkaExceptionMapper maps it.
    pub fn from_kafka(code: i16, topic: &str, partition: i32, detail: Option<&str>) -> Self {
        let name = crate::metrics::requests::error_name(code);
        let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
        match code {
            kafka::UNKNOWN_TOPIC_OR_PARTITION => Self::unknown_partition(topic, partition),
            kafka::MESSAGE_TOO_LARGE | kafka::RECORD_LIST_TOO_LARGE => {
                Self::status(StatusCode::PAYLOAD_TOO_LARGE, format!("Kafka error {name} on {topic}-{partition}{detail}"))
            }
            kafka::INVALID_RECORD | kafka::CORRUPT_MESSAGE | kafka::INVALID_TIMESTAMP => {
                Self::status(StatusCode::BAD_REQUEST, format!("Kafka error {name} on {topic}-{partition}{detail}"))
            }
            c if is_retriable(c) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, KAFKA_RETRIABLE, format!("Retriable Kafka error {name} on {topic}-{partition}{detail}"))
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, KAFKA_ERROR, format!("Kafka error {name} on {topic}-{partition}{detail}")),
        }
    }

    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"error_code\":{},\"message\":\"\"}}", self.error_code))
    }
}

/// Kafka's RetriableException subclasses among the codes a broker answers Produce with.
pub fn is_retriable(code: i16) -> bool {
    matches!(
        code,
        kafka::LEADER_NOT_AVAILABLE
            | kafka::NOT_LEADER_OR_FOLLOWER
            | kafka::REQUEST_TIMED_OUT
            | kafka::REPLICA_NOT_AVAILABLE
            | kafka::NOT_ENOUGH_REPLICAS
            | kafka::NOT_ENOUGH_REPLICAS_AFTER_APPEND
            | kafka::KAFKA_STORAGE_ERROR
            | kafka::FENCED_LEADER_EPOCH
            | kafka::UNKNOWN_LEADER_EPOCH
    )
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, "application/json")], self.body()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_confluents_error_shape() {
        let e = RestError::unknown_topic("t");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error_code"], 40403);
        assert!(v["message"].as_str().unwrap().contains("topic t"));
        assert_eq!(v.as_object().unwrap().len(), 2);
    }

    #[test]
    fn kafka_errors_map_to_confluents_codes() {
        assert_eq!(RestError::from_kafka(kafka::UNKNOWN_TOPIC_OR_PARTITION, "t", 3, None).error_code, 40403);
        assert_eq!(RestError::from_kafka(kafka::NOT_LEADER_OR_FOLLOWER, "t", 0, None).error_code, KAFKA_RETRIABLE);
        assert_eq!(RestError::from_kafka(kafka::MESSAGE_TOO_LARGE, "t", 0, None).status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(RestError::from_kafka(kafka::INVALID_REPLICATION_FACTOR, "t", 0, None).error_code, KAFKA_ERROR);
    }
}
