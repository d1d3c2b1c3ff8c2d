//! The API versions Lantern implements: the one table ApiVersions advertises and the request
//! decoder enforces.
use kafka_protocol::messages::ApiKey;

/// An implemented API and the version range the broker handles.
#[derive(Debug, Clone, Copy)]
pub struct Supported {
    pub key: ApiKey,
    /// Advertised minimum.
    pub min: i16,
    /// Oldest version actually decoded; `min` for every API today (Produce v0-2 and Fetch v0-3
    /// carry the message formats before record batch v2, converted at the edge).
    pub decode_min: i16,
    pub max: i16,
}

const fn s(key: ApiKey, min: i16, decode_min: i16, max: i16) -> Supported {
    Supported { key, min, decode_min, max }
}

/// Implemented APIs, with Kafka 3.9's ranges (the versions Kafka 4 removed included, see
/// vendor/kafka-protocol/PATCHES.md), and AlterPartitionReassignments v1 (Kafka 4.0's, which
/// changes replication factors).
pub const SUPPORTED: &[Supported] = &[
    s(ApiKey::Produce, 0, 0, 11),
    s(ApiKey::Fetch, 0, 0, 17),
    s(ApiKey::ListOffsets, 0, 0, 9),
    s(ApiKey::Metadata, 0, 0, 12),
    s(ApiKey::ApiVersions, 0, 0, 4),
    s(ApiKey::CreateTopics, 0, 0, 7),
    s(ApiKey::DeleteTopics, 0, 0, 6),
    s(ApiKey::InitProducerId, 0, 0, 5),
    s(ApiKey::OffsetForLeaderEpoch, 0, 0, 4),
    s(ApiKey::DescribeConfigs, 0, 0, 4),
    s(ApiKey::CreatePartitions, 0, 0, 3),
    s(ApiKey::ElectLeaders, 0, 0, 2),
    s(ApiKey::IncrementalAlterConfigs, 0, 0, 1),
    s(ApiKey::DescribeCluster, 0, 0, 1),
    s(ApiKey::FindCoordinator, 0, 0, 6),
    s(ApiKey::JoinGroup, 0, 0, 9),
    s(ApiKey::SyncGroup, 0, 0, 5),
    s(ApiKey::Heartbeat, 0, 0, 4),
    s(ApiKey::LeaveGroup, 0, 0, 5),
    // OffsetCommit/OffsetFetch 10 address topics by id.
    s(ApiKey::OffsetCommit, 0, 0, 9),
    s(ApiKey::OffsetFetch, 0, 0, 9),
    s(ApiKey::ListGroups, 0, 0, 5),
    s(ApiKey::DescribeGroups, 0, 0, 5),
    s(ApiKey::DeleteGroups, 0, 0, 2),
    s(ApiKey::OffsetDelete, 0, 0, 0),
    s(ApiKey::DescribeLogDirs, 0, 0, 4),
    s(ApiKey::AlterReplicaLogDirs, 0, 0, 2),
    s(ApiKey::AlterPartitionReassignments, 0, 0, 1),
    s(ApiKey::ListPartitionReassignments, 0, 0, 0),
    s(ApiKey::UnregisterBroker, 0, 0, 0),
    s(ApiKey::DeleteRecords, 0, 0, 2),
    s(ApiKey::AlterConfigs, 0, 0, 2),
    s(ApiKey::DescribeProducers, 0, 0, 0),
];

/// The supported range of an API, if it is implemented.
pub fn supported(key: ApiKey) -> Option<&'static Supported> {
    SUPPORTED.iter().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oldest version of each API Kafka 3.9 accepts (`validVersions` of its
    /// `clients/src/main/resources/common/message/*Request.json`).
    const KAFKA_3_9_MIN: &[(ApiKey, i16)] = &[
        (ApiKey::Produce, 0), (ApiKey::Fetch, 0), (ApiKey::ListOffsets, 0), (ApiKey::Metadata, 0),
        (ApiKey::ApiVersions, 0), (ApiKey::CreateTopics, 0), (ApiKey::DeleteTopics, 0),
        (ApiKey::InitProducerId, 0), (ApiKey::OffsetForLeaderEpoch, 0), (ApiKey::DescribeConfigs, 0),
        (ApiKey::CreatePartitions, 0), (ApiKey::ElectLeaders, 0), (ApiKey::IncrementalAlterConfigs, 0),
        (ApiKey::DescribeCluster, 0), (ApiKey::FindCoordinator, 0), (ApiKey::JoinGroup, 0), (ApiKey::SyncGroup, 0),
        (ApiKey::Heartbeat, 0), (ApiKey::LeaveGroup, 0), (ApiKey::OffsetCommit, 0), (ApiKey::OffsetFetch, 0),
        (ApiKey::ListGroups, 0), (ApiKey::DescribeGroups, 0), (ApiKey::DeleteGroups, 0), (ApiKey::OffsetDelete, 0),
        (ApiKey::DescribeLogDirs, 0), (ApiKey::AlterReplicaLogDirs, 0), (ApiKey::AlterPartitionReassignments, 0),
        (ApiKey::ListPartitionReassignments, 0), (ApiKey::UnregisterBroker, 0), (ApiKey::DeleteRecords, 0),
        (ApiKey::AlterConfigs, 0), (ApiKey::DescribeProducers, 0),
    ];

    #[test]
    fn every_version_kafka_3_9_accepts_is_decoded() {
        for s in SUPPORTED {
            let (_, min) = KAFKA_3_9_MIN.iter().find(|(k, _)| *k == s.key).unwrap_or_else(|| panic!("{:?} missing", s.key));
            assert_eq!((s.min, s.decode_min), (*min, *min), "{:?}", s.key);
        }
    }

    /// The newest version of each API Kafka 3.9 accepts.
    const KAFKA_3_9_MAX: &[(ApiKey, i16)] = &[
        (ApiKey::Produce, 11), (ApiKey::Fetch, 17), (ApiKey::ListOffsets, 9), (ApiKey::Metadata, 12),
        (ApiKey::ApiVersions, 4), (ApiKey::CreateTopics, 7), (ApiKey::DeleteTopics, 6), (ApiKey::InitProducerId, 5),
        (ApiKey::OffsetForLeaderEpoch, 4), (ApiKey::DescribeConfigs, 4), (ApiKey::CreatePartitions, 3),
        (ApiKey::ElectLeaders, 2), (ApiKey::IncrementalAlterConfigs, 1), (ApiKey::DescribeCluster, 1),
        (ApiKey::FindCoordinator, 6), (ApiKey::JoinGroup, 9), (ApiKey::SyncGroup, 5), (ApiKey::Heartbeat, 4),
        (ApiKey::LeaveGroup, 5), (ApiKey::OffsetCommit, 9), (ApiKey::OffsetFetch, 9), (ApiKey::ListGroups, 5),
        (ApiKey::DescribeGroups, 5), (ApiKey::DeleteGroups, 2), (ApiKey::OffsetDelete, 0), (ApiKey::DescribeLogDirs, 4),
        (ApiKey::AlterReplicaLogDirs, 2), (ApiKey::AlterPartitionReassignments, 0), (ApiKey::ListPartitionReassignments, 0),
        (ApiKey::UnregisterBroker, 0), (ApiKey::DeleteRecords, 2), (ApiKey::AlterConfigs, 2), (ApiKey::DescribeProducers, 0),
    ];

    #[test]
    fn every_version_kafka_3_9_accepts_up_to_its_newest_is_advertised() {
        for s in SUPPORTED {
            let (_, max) = KAFKA_3_9_MAX.iter().find(|(k, _)| *k == s.key).unwrap_or_else(|| panic!("{:?} missing", s.key));
            let want = if s.key == ApiKey::AlterPartitionReassignments { 1 } else { *max };
            assert_eq!(s.max, want, "{:?}", s.key);
        }
    }

    #[test]
    fn every_advertised_version_is_one_the_codec_knows() {
        for s in SUPPORTED {
            let codec = s.key.valid_versions();
            assert!(s.decode_min >= codec.min && s.max <= codec.max, "{:?}", s.key);
            assert!(s.min <= s.decode_min && s.decode_min <= s.max, "{:?}", s.key);
        }
    }
}
