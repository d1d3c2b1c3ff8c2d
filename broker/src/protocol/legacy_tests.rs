//! The versions Kafka 4 removed (KIP-896) that Kafka 3.9 still accepts, as patched into the
//! vendored codec: golden bytes written by hand from Kafka 3.9's message schemas
//! (`clients/src/main/resources/common/message/*.json`), round trips, and the request
//! decoder accepting them.
use super::*;
use bytes::BytesMut;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;

/// Builds wire bytes field by field, as the schemas list them (non-flexible versions).
#[derive(Default)]
struct Wire(BytesMut);

impl Wire {
    fn i16(mut self, v: i16) -> Self {
        self.0.put_i16(v);
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.put_i32(v);
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.0.put_i64(v);
        self
    }
    fn i8(mut self, v: i8) -> Self {
        self.0.put_i8(v);
        self
    }
    fn bool(self, b: bool) -> Self {
        self.i8(b as i8)
    }
    fn str(mut self, s: &str) -> Self {
        self.0.put_i16(s.len() as i16);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn null_str(self) -> Self {
        self.i16(-1)
    }
    /// An array count; the elements follow.
    fn array(self, n: i32) -> Self {
        self.i32(n)
    }
    fn bytes(self) -> Bytes {
        self.0.freeze()
    }
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn encoded<T: Encodable>(msg: &T, version: i16) -> Bytes {
    let mut b = BytesMut::new();
    msg.encode(&mut b, version).unwrap();
    assert_eq!(b.len(), msg.compute_size(version).unwrap(), "compute_size agrees with encode");
    b.freeze()
}

fn decoded<T: Decodable>(bytes: &Bytes, version: i16) -> T {
    let mut b = bytes.clone();
    let msg = T::decode(&mut b, version).unwrap();
    assert!(b.is_empty(), "{} bytes left over", b.len());
    msg
}

/// A whole request frame (header v1, client id "c") around `body`, through the broker's decoder.
fn decode_frame(api: ApiKey, version: i16, body: &Bytes) -> Result<Request, DecodeError> {
    let mut b = BytesMut::new();
    b.put_i16(api as i16);
    b.put_i16(version);
    b.put_i32(7);
    b.put_i16(1);
    b.put_u8(b'c');
    b.extend_from_slice(body);
    decode_request(b.freeze())
}

// ------------------------------------------------------------------ ListOffsets v0

fn list_offsets_v0_request_bytes() -> Bytes {
    // ReplicaId, [Topics: Name, [Partitions: PartitionIndex, Timestamp, MaxNumOffsets]]
    Wire::default().i32(-1).array(1).str("t").array(1).i32(3).i64(-1).i32(5).bytes()
}

#[test]
fn list_offsets_v0_request_matches_the_3_9_schema() {
    let req = ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
        .with_name(topic("t"))
        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(3).with_timestamp(-1).with_max_num_offsets(5)])]);
    assert_eq!(encoded(&req, 0), list_offsets_v0_request_bytes());
    assert_eq!(decoded::<ListOffsetsRequest>(&list_offsets_v0_request_bytes(), 0), req);
    let r = decode_frame(ApiKey::ListOffsets, 0, &list_offsets_v0_request_bytes()).unwrap();
    let RequestKind::ListOffsets(r) = r.body else { panic!("{r:?}") };
    assert_eq!(r.topics[0].partitions[0].max_num_offsets, 5);
}

#[test]
fn list_offsets_v1_request_has_no_max_num_offsets() {
    let p = decoded::<ListOffsetsRequest>(&Wire::default().i32(-1).array(1).str("t").array(1).i32(0).i64(-2).bytes(), 1);
    assert_eq!(p.topics[0].partitions[0].max_num_offsets, 1, "the schema's default");
}

#[test]
fn list_offsets_v0_response_matches_the_3_9_schema() {
    // [Topics: Name, [Partitions: PartitionIndex, ErrorCode, [OldStyleOffsets]]], no throttle time.
    let golden = Wire::default().array(1).str("t").array(2)
        .i32(3).i16(0).array(2).i64(300).i64(250)
        .i32(4).i16(6).array(0)
        .bytes();
    let resp = ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
        .with_name(topic("t"))
        .with_partitions(vec![
            ListOffsetsPartitionResponse::default().with_partition_index(3).with_old_style_offsets(vec![300, 250]),
            ListOffsetsPartitionResponse::default().with_partition_index(4).with_error_code(6),
        ])]);
    assert_eq!(encoded(&resp, 0), golden);
    assert_eq!(decoded::<ListOffsetsResponse>(&golden, 0), resp);
}

#[test]
fn list_offsets_fields_of_the_other_layout_are_refused_not_dropped() {
    let v1_only = ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
        .with_partitions(vec![ListOffsetsPartitionResponse::default().with_offset(7)])]);
    assert!(v1_only.encode(&mut BytesMut::new(), 0).is_err());
    let v0_only = ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
        .with_partitions(vec![ListOffsetsPartitionResponse::default().with_old_style_offsets(vec![1])])]);
    assert!(v0_only.encode(&mut BytesMut::new(), 1).is_err());
}

#[test]
fn list_offsets_v0_huge_offsets_count_is_malformed() {
    let body = Wire::default().i32(-1).array(1).str("t").array(0x7fff_ffff).bytes();
    assert!(matches!(decode_frame(ApiKey::ListOffsets, 0, &body), Err(DecodeError::Malformed { .. })));
    let resp = Wire::default().array(1).str("t").array(1).i32(0).i16(0).array(0x7fff_ffff).bytes();
    assert!(ListOffsetsResponse::decode(&mut resp.clone(), 0).is_err());
}

proptest! {
    #[test]
    fn list_offsets_v0_round_trips(
        parts in proptest::collection::vec((any::<i32>(), any::<i64>(), any::<i32>()), 0..8),
        offsets in proptest::collection::vec(proptest::collection::vec(any::<i64>(), 0..6), 0..8),
        errors in proptest::collection::vec(any::<i16>(), 8),
    ) {
        let req = ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic("x"))
            .with_partitions(parts.iter().map(|&(p, ts, n)| ListOffsetsPartition::default()
                .with_partition_index(p).with_timestamp(ts).with_max_num_offsets(n)).collect())]);
        prop_assert_eq!(decoded::<ListOffsetsRequest>(&encoded(&req, 0), 0), req);
        let resp = ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
            .with_name(topic("x"))
            .with_partitions(offsets.iter().enumerate().map(|(i, o)| ListOffsetsPartitionResponse::default()
                .with_partition_index(i as i32).with_error_code(errors[i]).with_old_style_offsets(o.clone())).collect())]);
        prop_assert_eq!(decoded::<ListOffsetsResponse>(&encoded(&resp, 0), 0), resp);
    }
}

// ------------------------------------------- versions that differ from the next only in fields

/// Decodes `golden` at `version`, encodes the result again and gets the same bytes.
fn same_bytes_both_ways<T: Decodable + Encodable + std::fmt::Debug>(golden: Bytes, version: i16) -> T {
    let msg: T = decoded(&golden, version);
    assert_eq!(encoded(&msg, version), golden, "{msg:?}");
    msg
}

#[test]
fn create_topics_v0_and_v1() {
    // [Topics: Name, NumPartitions, ReplicationFactor, [Assignments], [Configs]], TimeoutMs (+ ValidateOnly v1)
    let v0 = Wire::default().array(1).str("t").i32(3).i16(1).array(0).array(1).str("retention.ms").str("1000").i32(5000);
    let r: CreateTopicsRequest = same_bytes_both_ways(v0.bytes(), 0);
    assert_eq!((r.topics[0].num_partitions, r.timeout_ms, r.validate_only), (3, 5000, false));
    let v1 = Wire::default().array(1).str("t").i32(3).i16(1).array(0).array(0).i32(5000).bool(true);
    let r: CreateTopicsRequest = same_bytes_both_ways(v1.bytes(), 1);
    assert!(r.validate_only);
    assert!(r.encode(&mut BytesMut::new(), 0).is_err(), "validate_only is not ignorable: v0 cannot carry it");
    // v0: [Topics: Name, ErrorCode]; v1 adds ErrorMessage; v2 adds ThrottleTimeMs first.
    let r: CreateTopicsResponse = same_bytes_both_ways(Wire::default().array(1).str("t").i16(36).bytes(), 0);
    assert_eq!(r.topics[0].error_code, 36);
    same_bytes_both_ways::<CreateTopicsResponse>(Wire::default().array(1).str("t").i16(36).str("exists").bytes(), 1);
    same_bytes_both_ways::<CreateTopicsResponse>(Wire::default().i32(0).array(1).str("t").i16(0).null_str().bytes(), 2);
}

#[test]
fn delete_topics_v0() {
    same_bytes_both_ways::<DeleteTopicsRequest>(Wire::default().array(2).str("a").str("b").i32(3000).bytes(), 0);
    // v0 has no ThrottleTimeMs: [Responses: Name, ErrorCode]
    let r: DeleteTopicsResponse = same_bytes_both_ways(Wire::default().array(1).str("a").i16(3).bytes(), 0);
    assert_eq!(r.responses.len(), 1);
    same_bytes_both_ways::<DeleteTopicsResponse>(Wire::default().i32(0).array(1).str("a").i16(3).bytes(), 1);
}

#[test]
fn offset_for_leader_epoch_v0_and_v1() {
    // v0/v1 request: [Topics: Topic, [Partitions: Partition, LeaderEpoch]] (no ReplicaId, no CurrentLeaderEpoch)
    let req = Wire::default().array(1).str("t").array(1).i32(2).i32(7).bytes();
    for v in [0, 1] {
        let r: OffsetForLeaderEpochRequest = same_bytes_both_ways(req.clone(), v);
        assert_eq!((r.topics[0].partitions[0].leader_epoch, r.topics[0].partitions[0].current_leader_epoch), (7, -1));
    }
    // v0 response: [Topics: Topic, [Partitions: ErrorCode, Partition, EndOffset]]; v1 adds LeaderEpoch.
    same_bytes_both_ways::<OffsetForLeaderEpochResponse>(Wire::default().array(1).str("t").array(1).i16(0).i32(2).i64(40).bytes(), 0);
    let r: OffsetForLeaderEpochResponse =
        same_bytes_both_ways(Wire::default().array(1).str("t").array(1).i16(0).i32(2).i32(7).i64(40).bytes(), 1);
    assert_eq!(r.topics[0].partitions[0].leader_epoch, 7);
}

#[test]
fn describe_configs_v0() {
    // [Resources: ResourceType, ResourceName, [ConfigurationKeys] (nullable)]; no IncludeSynonyms
    let r: DescribeConfigsRequest = same_bytes_both_ways(Wire::default().array(1).i8(2).str("t").i32(-1).bytes(), 0);
    assert!(r.resources[0].configuration_keys.is_none() && !r.include_synonyms);
    // ThrottleTimeMs, [Results: ErrorCode, ErrorMessage, ResourceType, ResourceName,
    //   [Configs: Name, Value, ReadOnly, IsDefault, IsSensitive]]
    let golden = Wire::default().i32(0).array(1).i16(0).null_str().i8(2).str("t")
        .array(2).str("retention.ms").str("1000").bool(false).bool(false).bool(false)
        .str("cleanup.policy").str("delete").bool(false).bool(true).bool(false)
        .bytes();
    let r: DescribeConfigsResponse = same_bytes_both_ways(golden, 0);
    assert_eq!(r.results[0].configs.iter().map(|c| c.is_default).collect::<Vec<_>>(), [false, true]);
}

#[test]
fn describe_log_dirs_and_alter_replica_log_dirs_v0_are_v1() {
    let req = Wire::default().array(1).str("t").array(2).i32(0).i32(1).bytes();
    same_bytes_both_ways::<DescribeLogDirsRequest>(req, 0);
    same_bytes_both_ways::<DescribeLogDirsRequest>(Wire::default().i32(-1).bytes(), 0);
    let resp = Wire::default().i32(0).array(1).i16(0).str("/d").array(1).str("t").array(1).i32(0).i64(100).i64(0).bool(false).bytes();
    same_bytes_both_ways::<DescribeLogDirsResponse>(resp, 0);
    // [Dirs: Path, [Topics: Name, [Partitions]]] / ThrottleTimeMs, [Results: TopicName, [Partitions: PartitionIndex, ErrorCode]]
    same_bytes_both_ways::<AlterReplicaLogDirsRequest>(Wire::default().array(1).str("/d").array(1).str("t").array(1).i32(0).bytes(), 0);
    same_bytes_both_ways::<AlterReplicaLogDirsResponse>(Wire::default().i32(0).array(1).str("t").array(1).i32(0).i16(0).bytes(), 0);
}

#[test]
fn offset_commit_v0_and_v1() {
    // v0: GroupId, [Topics: Name, [Partitions: PartitionIndex, CommittedOffset, CommittedMetadata]]
    let r: OffsetCommitRequest =
        same_bytes_both_ways(Wire::default().str("g").array(1).str("t").array(1).i32(0).i64(42).str("m").bytes(), 0);
    assert_eq!((r.generation_id_or_member_epoch, r.topics[0].partitions[0].commit_timestamp), (-1, -1));
    // v1: GroupId, GenerationId, MemberId, [Topics: Name, [Partitions: .., CommittedOffset, CommitTimestamp, CommittedMetadata]]
    let golden = Wire::default().str("g").i32(4).str("m-1").array(1).str("t").array(1).i32(0).i64(42).i64(1_700_000_000_000).null_str();
    let r: OffsetCommitRequest = same_bytes_both_ways(golden.bytes(), 1);
    assert_eq!((r.generation_id_or_member_epoch, r.topics[0].partitions[0].commit_timestamp), (4, 1_700_000_000_000));
    assert!(r.encode(&mut BytesMut::new(), 2).is_err(), "commit_timestamp is v1 only and not ignorable");
    // v2 has RetentionTimeMs after MemberId and no CommitTimestamp.
    let v2 = Wire::default().str("g").i32(4).str("m-1").i64(-1).array(1).str("t").array(1).i32(0).i64(42).null_str();
    same_bytes_both_ways::<OffsetCommitRequest>(v2.bytes(), 2);
    // v0 response: [Topics: Name, [Partitions: PartitionIndex, ErrorCode]]
    same_bytes_both_ways::<OffsetCommitResponse>(Wire::default().array(1).str("t").array(1).i32(0).i16(35).bytes(), 0);
}

#[test]
fn offset_fetch_v0() {
    let r: OffsetFetchRequest = same_bytes_both_ways(Wire::default().str("g").array(1).str("t").array(1).i32(0).bytes(), 0);
    assert_eq!(r.topics.as_ref().map(|t| t.len()), Some(1));
    // [Topics: Name, [Partitions: PartitionIndex, CommittedOffset, Metadata, ErrorCode]]
    same_bytes_both_ways::<OffsetFetchResponse>(Wire::default().array(1).str("t").array(1).i32(0).i64(-1).str("").i16(35).bytes(), 0);
}

#[test]
fn produce_v0_to_v2() {
    // Request v0-2: Acks, TimeoutMs, [TopicData: Name, [PartitionData: Index, Records]] (no
    // TransactionalId before v3).
    let v0 = Wire::default().i16(1).i32(1500).array(1).str("t").array(1).i32(0).i32(3).i8(1).i8(2).i8(3);
    for version in 0..=2 {
        let r: ProduceRequest = same_bytes_both_ways(v0.0.clone().freeze(), version);
        assert_eq!((r.acks, r.timeout_ms, r.transactional_id.is_none()), (1, 1500, true));
        assert_eq!(r.topic_data[0].partition_data[0].records.as_deref(), Some(&[1u8, 2, 3][..]));
    }
    let with_txn = ProduceRequest::default().with_transactional_id(Some(StrBytes::from_static_str("x").into()));
    assert!(with_txn.encode(&mut BytesMut::new(), 2).is_err(), "v2 cannot carry a transactional id");
    // Response v0: [Responses: Name, [Index, ErrorCode, BaseOffset]]; v1 adds ThrottleTimeMs at
    // the end; v2 adds LogAppendTimeMs after BaseOffset.
    same_bytes_both_ways::<ProduceResponse>(Wire::default().array(1).str("t").array(1).i32(0).i16(0).i64(42).bytes(), 0);
    same_bytes_both_ways::<ProduceResponse>(Wire::default().array(1).str("t").array(1).i32(0).i16(0).i64(42).i32(0).bytes(), 1);
    let r: ProduceResponse = same_bytes_both_ways(Wire::default().array(1).str("t").array(1).i32(0).i16(0).i64(42).i64(777).i32(0).bytes(), 2);
    assert_eq!(r.responses[0].partition_responses[0].log_append_time_ms, 777);
}

#[test]
fn fetch_v0_to_v3() {
    // Request: ReplicaId, MaxWaitMs, MinBytes (+ MaxBytes v3), [Topics: Topic, [Partition,
    // FetchOffset, PartitionMaxBytes]].
    let v0 = Wire::default().i32(-1).i32(500).i32(1).array(1).str("t").array(1).i32(0).i64(9).i32(1 << 20);
    for version in 0..=2 {
        let r: FetchRequest = same_bytes_both_ways(v0.0.clone().freeze(), version);
        assert_eq!((r.max_bytes, r.isolation_level, r.topics[0].partitions[0].fetch_offset), (0x7fffffff, 0, 9));
    }
    let v3 = Wire::default().i32(-1).i32(500).i32(1).i32(4096).array(1).str("t").array(1).i32(0).i64(9).i32(1 << 20);
    let r: FetchRequest = same_bytes_both_ways(v3.bytes(), 3);
    assert_eq!(r.max_bytes, 4096);
    // Response v0: [Responses: Topic, [PartitionIndex, ErrorCode, HighWatermark, Records]];
    // v1-3 put ThrottleTimeMs first.
    let records = |w: Wire| w.i32(2).i8(7).i8(8);
    let r: FetchResponse = same_bytes_both_ways(records(Wire::default().array(1).str("t").array(1).i32(0).i16(0).i64(100)).bytes(), 0);
    assert_eq!(r.responses[0].partitions[0].records.as_deref(), Some(&[7u8, 8][..]));
    for version in 1..=3 {
        same_bytes_both_ways::<FetchResponse>(records(Wire::default().i32(0).array(1).str("t").array(1).i32(0).i16(0).i64(100)).bytes(), version);
    }
}

#[test]
fn every_version_below_the_old_minimum_reaches_the_handlers() {
    let cases: &[(ApiKey, i16, Bytes)] = &[
        (ApiKey::CreateTopics, 0, Wire::default().array(0).i32(1000).bytes()),
        (ApiKey::CreateTopics, 1, Wire::default().array(0).i32(1000).bool(false).bytes()),
        (ApiKey::DeleteTopics, 0, Wire::default().array(0).i32(1000).bytes()),
        (ApiKey::OffsetForLeaderEpoch, 0, Wire::default().array(0).bytes()),
        (ApiKey::OffsetForLeaderEpoch, 1, Wire::default().array(0).bytes()),
        (ApiKey::DescribeConfigs, 0, Wire::default().array(0).bytes()),
        (ApiKey::DescribeLogDirs, 0, Wire::default().i32(-1).bytes()),
        (ApiKey::AlterReplicaLogDirs, 0, Wire::default().array(0).bytes()),
        (ApiKey::OffsetCommit, 0, Wire::default().str("g").array(0).bytes()),
        (ApiKey::OffsetCommit, 1, Wire::default().str("g").i32(-1).str("").array(0).bytes()),
        (ApiKey::OffsetFetch, 0, Wire::default().str("g").array(0).bytes()),
        (ApiKey::ListOffsets, 0, Wire::default().i32(-1).array(0).bytes()),
        (ApiKey::Produce, 0, Wire::default().i16(1).i32(1000).array(0).bytes()),
        (ApiKey::Fetch, 0, Wire::default().i32(-1).i32(100).i32(1).array(0).bytes()),
    ];
    for (api, version, body) in cases {
        let r = decode_frame(*api, *version, body);
        assert!(r.is_ok(), "{api:?} v{version}: {r:?}");
        let range = supported(*api).unwrap();
        assert!(range.min <= *version && range.decode_min <= *version, "{api:?} v{version} is advertised");
    }
}
