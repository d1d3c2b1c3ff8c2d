//! The API versions Lantern implements: the one table ApiVersions advertises and the request
//! decoder enforces.
use kafka_protocol::messages::ApiKey;

/// An implemented API and the version range the broker handles.
#[derive(Debug, Clone, Copy)]
pub struct Supported {
    pub key: ApiKey,
    /// Advertised minimum. Produce advertises 0 because librdkafka disables compression when a
    /// broker's Produce minimum is above 0; versions below `decode_min` are still refused.
    pub min: i16,
    /// Oldest version actually decoded (record batch format v2 needs Produce v3).
    pub decode_min: i16,
    pub max: i16,
}

const fn s(key: ApiKey, min: i16, decode_min: i16, max: i16) -> Supported {
    Supported { key, min, decode_min, max }
}

/// Implemented APIs. Maxima stop before versions that change semantics Lantern does not have
/// yet: Produce 12+/Fetch 13+ address topics by id only, Metadata 13 and ListOffsets 9+ add
/// fields for tiered storage.
pub const SUPPORTED: &[Supported] = &[
    s(ApiKey::Produce, 0, 3, 11),
    s(ApiKey::Fetch, 4, 4, 12),
    s(ApiKey::ListOffsets, 1, 1, 8),
    s(ApiKey::Metadata, 0, 0, 12),
    s(ApiKey::ApiVersions, 0, 0, 4),
    s(ApiKey::CreateTopics, 2, 2, 7),
    s(ApiKey::DeleteTopics, 1, 1, 6),
    s(ApiKey::InitProducerId, 0, 0, 5),
    s(ApiKey::OffsetForLeaderEpoch, 2, 2, 4),
    s(ApiKey::DescribeConfigs, 1, 1, 4),
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
    s(ApiKey::OffsetCommit, 2, 2, 9),
    s(ApiKey::OffsetFetch, 1, 1, 9),
    s(ApiKey::ListGroups, 0, 0, 5),
    s(ApiKey::DescribeGroups, 0, 0, 5),
    s(ApiKey::DeleteGroups, 0, 0, 2),
    s(ApiKey::OffsetDelete, 0, 0, 0),
    s(ApiKey::DescribeLogDirs, 1, 1, 4),
    s(ApiKey::AlterReplicaLogDirs, 1, 1, 2),
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

    #[test]
    fn every_advertised_version_is_one_the_codec_knows() {
        for s in SUPPORTED {
            let codec = s.key.valid_versions();
            assert!(s.decode_min >= codec.min && s.max <= codec.max, "{:?}", s.key);
            assert!(s.min <= s.decode_min && s.decode_min <= s.max, "{:?}", s.key);
        }
    }
}
