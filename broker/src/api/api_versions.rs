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

pub fn handle(request: ApiVersionsRequest, version: i16) -> ApiVersionsResponse {
    if version >= 3 && !valid_client_software(&request) {
        // Kafka's ApiVersionsRequest.isValid: INVALID_REQUEST, and the connection's client
        // software is not recorded (see network::connection).
        return ApiVersionsResponse::default().with_error_code(error_code::INVALID_REQUEST).with_api_keys(api_keys());
    }
    ApiVersionsResponse::default().with_error_code(error_code::NONE).with_api_keys(api_keys())
}

/// Kafka's pattern for client_software_name and client_software_version (v3+):
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`. The two become metric labels, so this also
/// keeps what a client can put into them small and printable. At most 128 characters each
/// (Kafka has no length limit; librdkafka, Java and Go clients send well under 64).
pub fn valid_client_software(request: &ApiVersionsRequest) -> bool {
    valid_software_field(&request.client_software_name) && valid_software_field(&request.client_software_version)
}

fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.';
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_software_follows_kafkas_pattern() {
        for ok in ["librdkafka", "apache-kafka-java", "3.9.0", "2.6.1-RC3", "a"] {
            assert!(valid_software_field(ok), "{ok}");
        }
        for bad in ["", "-x", "x-", "a b", "a_b", "é", ".1", "a\n"] {
            assert!(!valid_software_field(bad), "{bad:?}");
        }
        assert!(!valid_software_field(&"a".repeat(129)));
    }
}

/// The answer to an ApiVersions request of a version this broker does not know: Kafka replies
/// with error UNSUPPORTED_VERSION and its version list, encoded as v0 so any client can read it.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(error_code::UNSUPPORTED_VERSION).with_api_keys(api_keys())
}
