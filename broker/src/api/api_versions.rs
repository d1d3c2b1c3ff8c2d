//! ApiVersions: advertises exactly the APIs and versions in `protocol::SUPPORTED`.
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::error_code;
use crate::protocol::SUPPORTED;

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|s| ApiVersion::default().with_api_key(s.key as i16).with_min_version(s.min).with_max_version(s.max))
        .collect()
}

pub fn handle(_request: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(error_code::NONE).with_api_keys(api_keys())
}

/// The answer to an ApiVersions request of a version this broker does not know: Kafka replies
/// with error UNSUPPORTED_VERSION and its version list, encoded as v0 so any client can read it.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(error_code::UNSUPPORTED_VERSION).with_api_keys(api_keys())
}
