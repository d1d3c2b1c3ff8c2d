//! Kafka's error codes, the ones Lantern answers with, named as Kafka names them
//! (`org.apache.kafka.common.protocol.Errors`). The one table every layer uses: storage
//! errors map to these, API handlers and the group coordinator answer with them, and a test
//! checks each name against kafka-protocol's own list.

/// Declares each code once, as a constant and as a row of [`ALL`].
macro_rules! error_codes {
    ($($name:ident = $code:expr,)*) => {
        $(pub const $name: i16 = $code;)*

        /// Every code above with its name, in the same order.
        pub const ALL: &[(&str, i16)] = &[$((stringify!($name), $name),)*];
    };
}

error_codes! {
    UNKNOWN_SERVER_ERROR = -1,
    NONE = 0,
    OFFSET_OUT_OF_RANGE = 1,
    CORRUPT_MESSAGE = 2,
    UNKNOWN_TOPIC_OR_PARTITION = 3,
    INVALID_FETCH_SIZE = 4,
    LEADER_NOT_AVAILABLE = 5,
    NOT_LEADER_OR_FOLLOWER = 6,
    REQUEST_TIMED_OUT = 7,
    REPLICA_NOT_AVAILABLE = 9,
    MESSAGE_TOO_LARGE = 10,
    COORDINATOR_LOAD_IN_PROGRESS = 14,
    COORDINATOR_NOT_AVAILABLE = 15,
    NOT_COORDINATOR = 16,
    INVALID_TOPIC_EXCEPTION = 17,
    RECORD_LIST_TOO_LARGE = 18,
    NOT_ENOUGH_REPLICAS = 19,
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20,
    INVALID_REQUIRED_ACKS = 21,
    ILLEGAL_GENERATION = 22,
    INCONSISTENT_GROUP_PROTOCOL = 23,
    INVALID_GROUP_ID = 24,
    UNKNOWN_MEMBER_ID = 25,
    INVALID_SESSION_TIMEOUT = 26,
    REBALANCE_IN_PROGRESS = 27,
    INVALID_COMMIT_OFFSET_SIZE = 28,
    INVALID_TIMESTAMP = 32,
    UNSUPPORTED_VERSION = 35,
    TOPIC_ALREADY_EXISTS = 36,
    INVALID_PARTITIONS = 37,
    INVALID_REPLICATION_FACTOR = 38,
    INVALID_REPLICA_ASSIGNMENT = 39,
    INVALID_CONFIG = 40,
    NOT_CONTROLLER = 41,
    INVALID_REQUEST = 42,
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43,
    POLICY_VIOLATION = 44,
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45,
    DUPLICATE_SEQUENCE_NUMBER = 46,
    INVALID_PRODUCER_EPOCH = 47,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53,
    KAFKA_STORAGE_ERROR = 56,
    LOG_DIR_NOT_FOUND = 57,
    NON_EMPTY_GROUP = 68,
    GROUP_ID_NOT_FOUND = 69,
    TOPIC_DELETION_DISABLED = 73,
    FENCED_LEADER_EPOCH = 74,
    UNKNOWN_LEADER_EPOCH = 75,
    UNSUPPORTED_COMPRESSION_TYPE = 76,
    STALE_BROKER_EPOCH = 77,
    PREFERRED_LEADER_NOT_AVAILABLE = 80,
    ELIGIBLE_LEADERS_NOT_AVAILABLE = 83,
    ELECTION_NOT_NEEDED = 84,
    NO_REASSIGNMENT_IN_PROGRESS = 85,
    MEMBER_ID_REQUIRED = 79,
    FENCED_INSTANCE_ID = 82,
    GROUP_SUBSCRIBED_TO_TOPIC = 86,
    INVALID_RECORD = 87,
    UNKNOWN_TOPIC_ID = 100,
    DUPLICATE_BROKER_REGISTRATION = 101,
    BROKER_ID_NOT_REGISTERED = 102,
    INELIGIBLE_REPLICA = 107,
    INVALID_UPDATE_VERSION = 95,
}

#[cfg(test)]
mod tests {
    use kafka_protocol::error::ParseResponseErrorCode;

    #[test]
    fn every_code_has_kafkas_name_for_it() {
        for (name, code) in super::ALL.iter().filter(|(_, code)| *code != super::NONE) {
            let kafka = code.err().map(|e| format!("{e:?}")).unwrap_or_default();
            // kafka-protocol spells the names in CamelCase: compare without underscores.
            assert_eq!(kafka.to_lowercase(), name.replace('_', "").to_lowercase(), "code {code}");
        }
    }
}
