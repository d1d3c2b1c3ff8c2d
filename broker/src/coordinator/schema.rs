//! The record formats of `__consumer_offsets`, byte for byte as Kafka writes them, so tools
//! that read that topic (kafka-console-consumer's OffsetsMessageFormatter, kafka_exporter,
//! Burrow) understand Lantern's too.
//!
//! Keys: OffsetCommitKey (version 0/1: group, topic, partition) and GroupMetadataKey
//! (version 2: group). Values: OffsetCommitValue v3 and GroupMetadataValue v3 are written;
//! versions 0..=3 are read. A null value is a tombstone.
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A decoded `__consumer_offsets` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsKey {
    Offset { group: String, topic: String, partition: i32 },
    Group { group: String },
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One member in a stored group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A stored group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// Why stored bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("record ends early while reading {0}")]
    Truncated(&'static str),
    #[error("{what} is not valid UTF-8")]
    Utf8 { what: &'static str },
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len().min(i16::MAX as usize) as i16);
    b.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + group.len() + topic.len());
    b.put_i16(1);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + group.len());
    b.put_i16(2);
    put_str(&mut b, group);
    b.freeze()
}

pub fn offset_value(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::with_capacity(24 + v.metadata.len());
    b.put_i16(3);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp);
    b.freeze()
}

pub fn group_value(v: &GroupValue) -> Bytes {
    let mut b = BytesMut::with_capacity(256);
    b.put_i16(3);
    put_str(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable_str(&mut b, v.protocol.as_deref());
    put_nullable_str(&mut b, v.leader.as_deref());
    b.put_i64(v.current_state_timestamp);
    b.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.group_instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout);
        b.put_i32(m.session_timeout);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// A bounds-checked reader over stored bytes.
struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize, what: &'static str) -> Result<(), SchemaError> {
        if self.0.remaining() < n {
            Err(SchemaError::Truncated(what))
        } else {
            Ok(())
        }
    }
    fn i16(&mut self, what: &'static str) -> Result<i16, SchemaError> {
        self.need(2, what)?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, SchemaError> {
        self.need(4, what)?;
        Ok(self.0.get_i32())
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, SchemaError> {
        self.need(8, what)?;
        Ok(self.0.get_i64())
    }
    fn nullable_str(&mut self, what: &'static str) -> Result<Option<String>, SchemaError> {
        let n = self.i16(what)?;
        if n < 0 {
            return Ok(None);
        }
        self.need(n as usize, what)?;
        let raw = self.0.split_to(n as usize);
        String::from_utf8(raw.to_vec()).map(Some).map_err(|_| SchemaError::Utf8 { what })
    }
    fn str(&mut self, what: &'static str) -> Result<String, SchemaError> {
        Ok(self.nullable_str(what)?.unwrap_or_default())
    }
    fn bytes(&mut self, what: &'static str) -> Result<Bytes, SchemaError> {
        let n = self.i32(what)?;
        if n < 0 {
            return Ok(Bytes::new());
        }
        self.need(n as usize, what)?;
        Ok(self.0.split_to(n as usize))
    }
}

pub fn decode_key(key: Bytes) -> Result<OffsetsKey, SchemaError> {
    let mut r = Reader(key);
    match r.i16("key version")? {
        0 | 1 => Ok(OffsetsKey::Offset {
            group: r.str("group")?,
            topic: r.str("topic")?,
            partition: r.i32("partition")?,
        }),
        2 => Ok(OffsetsKey::Group { group: r.str("group")? }),
        version => Err(SchemaError::UnknownVersion { what: "key", version }),
    }
}

pub fn decode_offset_value(value: Bytes) -> Result<OffsetValue, SchemaError> {
    let mut r = Reader(value);
    let version = r.i16("offset value version")?;
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 { r.i32("leader epoch")? } else { -1 };
    let metadata = r.str("metadata")?;
    let commit_timestamp = r.i64("commit timestamp")?;
    match version {
        0 | 2 | 3 => {}
        1 => {
            r.i64("expire timestamp")?;
        }
        version => return Err(SchemaError::UnknownVersion { what: "offset value", version }),
    }
    Ok(OffsetValue { offset, leader_epoch, metadata, commit_timestamp })
}

pub fn decode_group_value(value: Bytes) -> Result<GroupValue, SchemaError> {
    let mut r = Reader(value);
    let version = r.i16("group value version")?;
    if !(0..=3).contains(&version) {
        return Err(SchemaError::UnknownVersion { what: "group value", version });
    }
    let protocol_type = r.str("protocol type")?;
    let generation = r.i32("generation")?;
    let protocol = r.nullable_str("protocol")?;
    let leader = r.nullable_str("leader")?;
    let current_state_timestamp = if version >= 2 { r.i64("state timestamp")? } else { -1 };
    let count = r.i32("member count")?;
    // Each member takes at least 20 bytes: never trust the count for allocation.
    let mut members = Vec::with_capacity((count.max(0) as usize).min(r.0.remaining() / 20));
    for _ in 0..count.max(0) {
        let member_id = r.str("member id")?;
        let group_instance_id = if version >= 3 { r.nullable_str("group instance id")? } else { None };
        let client_id = r.str("client id")?;
        let client_host = r.str("client host")?;
        let session_timeout_first = r.i32("timeout")?;
        let (rebalance_timeout, session_timeout) =
            if version >= 1 { (session_timeout_first, r.i32("session timeout")?) } else { (session_timeout_first, session_timeout_first) };
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription: r.bytes("subscription")?,
            assignment: r.bytes("assignment")?,
        });
    }
    Ok(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp, members })
}

/// Kafka's partition for a group: `abs(groupId.hashCode) % partitions`, with Java's String
/// hash over UTF-16 code units, so the group lands where Kafka tools expect it.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    // Kafka's Utils.abs maps Integer.MIN_VALUE to 0.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let k = offset_key("g", "t", 3);
        assert_eq!(decode_key(k).unwrap(), OffsetsKey::Offset { group: "g".into(), topic: "t".into(), partition: 3 });
        assert_eq!(decode_key(group_key("g")).unwrap(), OffsetsKey::Group { group: "g".into() });
        let v = OffsetValue { offset: 42, leader_epoch: 0, metadata: "m".into(), commit_timestamp: 7 };
        assert_eq!(decode_offset_value(offset_value(&v)).unwrap(), v);
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("a".into()),
            current_state_timestamp: 9,
            members: vec![MemberValue {
                member_id: "a".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300000,
                session_timeout: 10000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_group_value(group_value(&g)).unwrap(), g);
    }

    #[test]
    fn offset_key_matches_kafkas_bytes() {
        // OffsetCommitKey v1 for ("g", "t", 0) as Kafka 3.x serialises it.
        assert_eq!(&offset_key("g", "t", 0)[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 0]);
    }

    #[test]
    fn partition_matches_java_string_hash() {
        // "my-group".hashCode() == -1_906_497_762 in Java; 1906497762 % 50 == 12.
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
    }

    #[test]
    fn truncated_and_hostile_values_are_errors() {
        assert!(decode_key(Bytes::from_static(&[0, 1, 0, 9, b'g'])).is_err());
        let mut b = BytesMut::new();
        b.put_i16(3);
        put_str(&mut b, "consumer");
        b.put_i32(1);
        b.put_i16(-1);
        b.put_i16(-1);
        b.put_i64(0);
        b.put_i32(i32::MAX);
        assert!(decode_group_value(b.freeze()).is_err());
    }
}
