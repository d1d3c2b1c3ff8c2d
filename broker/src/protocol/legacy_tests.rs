//! The versions Kafka 4 removed (KIP-896) that Kafka 3.9 still accepts, as patched into the
//! vendored codec: golden bytes written by hand from Kafka 3.9's message schemas
//! (`clients/src/main/resources/common/message/*.json`), round trips, and the request
//! decoder accepting them.
use super::*;
use bytes::BytesMut;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, TopicName};
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
    fn str(mut self, s: &str) -> Self {
        self.0.put_i16(s.len() as i16);
        self.0.extend_from_slice(s.as_bytes());
        self
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
