//! Kafka's error codes, the ones Lantern answers with, named as Kafka names them
//! (`org.apache.kafka.common.protocol.Errors`). The one table every layer uses: storage
//! errors map to these, API handlers and the group coordinator answer with them, and a test
//! checks each name against kafka-protocol's own list.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
pub const INVALID_RECORD: i16 = 87;
pub const UNKNOWN_TOPIC_ID: i16 = 100;

#[cfg(test)]
mod tests {
    use kafka_protocol::error::ParseResponseErrorCode;

    /// Every constant above, with the name it is declared under.
    const ALL: &[(&str, i16)] = &[
        ("UNKNOWN_SERVER_ERROR", super::UNKNOWN_SERVER_ERROR),
        ("OFFSET_OUT_OF_RANGE", super::OFFSET_OUT_OF_RANGE),
        ("CORRUPT_MESSAGE", super::CORRUPT_MESSAGE),
        ("UNKNOWN_TOPIC_OR_PARTITION", super::UNKNOWN_TOPIC_OR_PARTITION),
        ("LEADER_NOT_AVAILABLE", super::LEADER_NOT_AVAILABLE),
        ("NOT_LEADER_OR_FOLLOWER", super::NOT_LEADER_OR_FOLLOWER),
        ("MESSAGE_TOO_LARGE", super::MESSAGE_TOO_LARGE),
        ("COORDINATOR_NOT_AVAILABLE", super::COORDINATOR_NOT_AVAILABLE),
        ("INVALID_TOPIC_EXCEPTION", super::INVALID_TOPIC_EXCEPTION),
        ("INVALID_REQUIRED_ACKS", super::INVALID_REQUIRED_ACKS),
        ("ILLEGAL_GENERATION", super::ILLEGAL_GENERATION),
        ("INCONSISTENT_GROUP_PROTOCOL", super::INCONSISTENT_GROUP_PROTOCOL),
        ("INVALID_GROUP_ID", super::INVALID_GROUP_ID),
        ("UNKNOWN_MEMBER_ID", super::UNKNOWN_MEMBER_ID),
        ("INVALID_SESSION_TIMEOUT", super::INVALID_SESSION_TIMEOUT),
        ("REBALANCE_IN_PROGRESS", super::REBALANCE_IN_PROGRESS),
        ("UNSUPPORTED_VERSION", super::UNSUPPORTED_VERSION),
        ("TOPIC_ALREADY_EXISTS", super::TOPIC_ALREADY_EXISTS),
        ("INVALID_CONFIG", super::INVALID_CONFIG),
        ("INVALID_REQUEST", super::INVALID_REQUEST),
        ("UNSUPPORTED_FOR_MESSAGE_FORMAT", super::UNSUPPORTED_FOR_MESSAGE_FORMAT),
        ("OUT_OF_ORDER_SEQUENCE_NUMBER", super::OUT_OF_ORDER_SEQUENCE_NUMBER),
        ("DUPLICATE_SEQUENCE_NUMBER", super::DUPLICATE_SEQUENCE_NUMBER),
        ("INVALID_PRODUCER_EPOCH", super::INVALID_PRODUCER_EPOCH),
        ("TRANSACTIONAL_ID_AUTHORIZATION_FAILED", super::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        ("KAFKA_STORAGE_ERROR", super::KAFKA_STORAGE_ERROR),
        ("NON_EMPTY_GROUP", super::NON_EMPTY_GROUP),
        ("GROUP_ID_NOT_FOUND", super::GROUP_ID_NOT_FOUND),
        ("FENCED_LEADER_EPOCH", super::FENCED_LEADER_EPOCH),
        ("UNKNOWN_LEADER_EPOCH", super::UNKNOWN_LEADER_EPOCH),
        ("MEMBER_ID_REQUIRED", super::MEMBER_ID_REQUIRED),
        ("FENCED_INSTANCE_ID", super::FENCED_INSTANCE_ID),
        ("GROUP_SUBSCRIBED_TO_TOPIC", super::GROUP_SUBSCRIBED_TO_TOPIC),
        ("INVALID_RECORD", super::INVALID_RECORD),
        ("UNKNOWN_TOPIC_ID", super::UNKNOWN_TOPIC_ID),
    ];

    #[test]
    fn every_code_has_kafkas_name_for_it() {
        for (name, code) in ALL {
            let kafka = code.err().map(|e| format!("{e:?}")).unwrap_or_default();
            // kafka-protocol spells the names in CamelCase: compare without underscores.
            assert_eq!(kafka.to_lowercase(), name.replace('_', "").to_lowercase(), "code {code}");
        }
    }
}
