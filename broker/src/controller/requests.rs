//! What brokers ask the active controller, what it answers, and why it refuses. These travel
//! between nodes (a broker forwards to the active controller), so they are plain data.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::image::{Endpoint, TopicImage};
use crate::error_code;

/// An IncrementalAlterConfigs operation on one topic config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
    /// Adds the comma-separated items not already in a list-valued config.
    Append(String, String),
    /// Removes the comma-separated items from a list-valued config.
    Subtract(String, String),
    /// The legacy AlterConfigs: every config the resource has that this request does not
    /// set goes back to its default (decided against the controller's image, so atomic).
    DeleteUnlisted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i16,
        /// Explicit replica lists per partition (CreateTopics `assignments`); overrides the counts.
        assignments: Option<Vec<Vec<i32>>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    DeleteTopic { name: String },
    CreatePartitions { name: String, count: i32, assignments: Option<Vec<Vec<i32>>>, validate_only: bool },
    AlterTopicConfigs { name: String, ops: Vec<ConfigOp>, validate_only: bool },
    /// Dynamic broker configs of broker `name` (its id), or the cluster default (`name` "").
    AlterBrokerConfigs { name: String, ops: Vec<ConfigOp>, validate_only: bool },
    AllocateProducerIds { broker_id: i32, count: i64 },
    RegisterBroker { broker_id: i32, incarnation_id: Uuid, endpoints: Vec<Endpoint>, rack: Option<String> },
    /// `metadata_offset`: how far the broker has applied the metadata log; a fenced broker is
    /// unfenced only once it has caught up to its own registration.
    BrokerHeartbeat { broker_id: i32, broker_epoch: i64, metadata_offset: i64, want_shutdown: bool },
    /// An observer (a broker that is not a controller) asks for the metadata after the
    /// offset it has applied; -1 for the whole image.
    FetchMetadata { after_offset: i64 },
    /// A partition leader asks to change the ISR (Kafka's AlterPartition).
    AlterPartition { broker_id: i32, broker_epoch: i64, topic_id: Uuid, partition: i32, leader_epoch: i32, partition_epoch: i32, new_isr: Vec<i32> },
    /// ElectLeaders: `unclean` false for preferred-leader elections; `partitions` None for
    /// every partition.
    ElectLeaders { unclean: bool, partitions: Option<Vec<(String, i32)>> },
    /// AlterPartitionReassignments (KIP-455): per partition a target replica list, or None to
    /// cancel the reassignment in progress.
    AlterReassignments { partitions: Vec<(String, i32, Option<Vec<i32>>)>, allow_replication_factor_change: bool },
    /// A broker's replicas of these partitions are offline (a failed log directory): their
    /// leadership and ISR membership move to the other replicas.
    ReplicasOffline { broker_id: i32, broker_epoch: i64, partitions: Vec<(String, i32)> },
    /// UnregisterBroker (scale down): refused while the broker holds a replica.
    UnregisterBroker { broker_id: i32 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerReply {
    Topic(TopicImage),
    TopicDeleted(TopicImage),
    ProducerIds { start: i64, count: i64 },
    Registered { broker_epoch: i64 },
    Heartbeat { fenced: bool, should_shut_down: bool },
    Metadata(super::observer::MetadataDelta),
    IsrChanged,
    /// Per partition: (topic, partition, error code; 0 when a leader was elected).
    Elected(Vec<(String, i32, i16)>),
    /// Per partition: (topic, partition, error code, message).
    Reassigned(Vec<(String, i32, i16, Option<String>)>),
    Unregistered,
    ConfigsChanged,
}

/// Why the controller refused; each maps to a Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name '{name}': {reason}")]
    InvalidTopic { name: String, reason: String },
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    DeletionDisabled,
    #[error("no active controller: {0}; retry shortly")]
    NotController(String),
    #[error("the metadata change was not committed in time: {0}")]
    Timeout(String),
    #[error("broker {broker_id} with epoch {broker_epoch} is not registered (a newer or no registration exists); register again")]
    StaleBrokerEpoch { broker_id: i32, broker_epoch: i64 },
    #[error("node id {0} is already registered by a live broker (incarnation {1}); give every node a unique node.id")]
    DuplicateBrokerRegistration(i32, Uuid),
    #[error("could not store metadata: {0}")]
    Storage(String),
    /// Committed, but this broker could not apply it to its logs (the message says what).
    #[error("{0}")]
    NotAppliedLocally(String),
    #[error("ISR change refused: {0}")]
    AlterPartition(String, i16),
    #[error("broker {0} is not registered")]
    BrokerNotRegistered(i32),
}

impl ControllerError {
    pub fn code(&self) -> i16 {
        match self {
            ControllerError::TopicExists(_) => error_code::TOPIC_ALREADY_EXISTS,
            ControllerError::UnknownTopic(_) => error_code::UNKNOWN_TOPIC_OR_PARTITION,
            ControllerError::InvalidTopic { .. } => error_code::INVALID_TOPIC_EXCEPTION,
            ControllerError::InvalidPartitions(_) => error_code::INVALID_PARTITIONS,
            ControllerError::InvalidReplicationFactor(_) => error_code::INVALID_REPLICATION_FACTOR,
            ControllerError::InvalidReplicaAssignment(_) => error_code::INVALID_REPLICA_ASSIGNMENT,
            ControllerError::InvalidConfig(_) => error_code::INVALID_CONFIG,
            ControllerError::InvalidRequest(_) => error_code::INVALID_REQUEST,
            ControllerError::DeletionDisabled => error_code::TOPIC_DELETION_DISABLED,
            ControllerError::NotController(_) => error_code::NOT_CONTROLLER,
            ControllerError::Timeout(_) => error_code::REQUEST_TIMED_OUT,
            ControllerError::StaleBrokerEpoch { .. } => error_code::STALE_BROKER_EPOCH,
            ControllerError::DuplicateBrokerRegistration(..) => error_code::DUPLICATE_BROKER_REGISTRATION,
            ControllerError::Storage(_) | ControllerError::NotAppliedLocally(_) => error_code::KAFKA_STORAGE_ERROR,
            ControllerError::AlterPartition(_, code) => *code,
            ControllerError::BrokerNotRegistered(_) => error_code::BROKER_ID_NOT_REGISTERED,
        }
    }
}
