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

/// Implemented APIs. Minima are Kafka 3.9's (the versions Kafka 4 removed included, see
/// vendor/kafka-protocol/PATCHES.md). Maxima stop before
/// versions that change semantics Lantern does not have yet: Produce 12+/Fetch 13+ address
/// topics by id only, Metadata 13 and ListOffsets 9+ add fields for tiered storage.
pub const SUPPORTED: &[Supported] = &[
    s(ApiKey::Produce, 0, 0, 11),
    s(ApiKey::Fetch, 0, 0, 12),
    s(ApiKey::ListOffsets, 0, 0, 8),
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
    s(ApiKey::FindCoordinator, 0, 0, 4),
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

    #[test]
    fn every_advertised_version_is_one_the_codec_knows() {
        for s in SUPPORTED {
            let codec = s.key.valid_versions();
            assert!(s.decode_min >= codec.min && s.max <= codec.max, "{:?}", s.key);
            assert!(s.min <= s.decode_min && s.decode_min <= s.max, "{:?}", s.key);
        }
    }
}
