//! The admin requests the v3 config and consumer-group resources send, as Kafka's AdminClient
//! sends them: to the broker concerned (a broker's own configs, a group's coordinator, a
//! partition's leader) or to this broker (topic configs, which any broker answers from the
//! metadata image and whose changes it hands to the active controller). A broker that cannot be
//! reached answers 500 with Confluent's retriable code.
use axum::http::StatusCode;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::error::{RestError, KAFKA_RETRIABLE};
use super::v3::ADMIN_TIMEOUT;
use super::Shared;

pub async fn call<Req: Encodable, Resp: Decodable>(state: &Shared, node: i32, api_key: ApiKey, version: i16, request: &Req) -> Result<Resp, RestError> {
    state
        .client
        .call(node, api_key, version, request, ADMIN_TIMEOUT + std::time::Duration::from_secs(5))
        .await
        .map_err(|e| RestError::new(StatusCode::INTERNAL_SERVER_ERROR, KAFKA_RETRIABLE, e.to_string()))
}
