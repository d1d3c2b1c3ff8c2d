//! MM2's binary record formats for its internal topics, in Kafka's protocol types (STRING is an
//! int16 length then UTF-8; integers big-endian), so RemoteClusterUtils, MM2 itself and any tool
//! that reads `heartbeats`, `<alias>.checkpoints.internal` and `mm2-offset-syncs.<alias>.internal`
//! reads ours:
//! - Heartbeat: key (sourceClusterAlias STRING, targetClusterAlias STRING);
//!   value (version INT16 = 0, timestamp INT64).
//! - Checkpoint: key (group STRING, topic STRING, partition INT32);
//!   value (version INT16 = 0, upstreamOffset INT64, offset INT64, metadata STRING).
//! - OffsetSync: key (topic STRING, partition INT32); value (upstreamOffset INT64, offset INT64),
//!   no version header.

#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub source_cluster_alias: String,
    pub target_cluster_alias: String,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub upstream_offset: i64,
    pub downstream_offset: i64,
    pub metadata: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffsetSync<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub upstream_offset: i64,
    pub downstream_offset: i64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("record too short")]
    Truncated,
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("unknown version {0}")]
    Version(i16),
}

const VERSION: i16 = 0;

fn put_string(out: &mut Vec<u8>, s: &str) {
    // Kafka's STRING is at most i16::MAX bytes; names longer than that are not valid Kafka names.
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as i16).to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().map_err(|_| DecodeError::Truncated)?))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().map_err(|_| DecodeError::Truncated)?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().map_err(|_| DecodeError::Truncated)?))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.i16()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| DecodeError::NotUtf8)
    }
    fn version(&mut self) -> Result<(), DecodeError> {
        match self.i16()? {
            VERSION => Ok(()),
            v => Err(DecodeError::Version(v)),
        }
    }
}

impl Heartbeat {
    pub fn key(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.source_cluster_alias.len() + self.target_cluster_alias.len());
        put_string(&mut out, &self.source_cluster_alias);
        put_string(&mut out, &self.target_cluster_alias);
        out
    }
    pub fn value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(10);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, DecodeError> {
        let mut k = Reader(key);
        let mut v = Reader(value);
        v.version()?;
        Ok(Heartbeat { source_cluster_alias: k.string()?, target_cluster_alias: k.string()?, timestamp: v.i64()? })
    }
}

impl Checkpoint {
    pub fn key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_string(&mut out, &self.group);
        put_string(&mut out, &self.topic);
        out.extend_from_slice(&self.partition.to_be_bytes());
        out
    }
    pub fn value(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.upstream_offset.to_be_bytes());
        out.extend_from_slice(&self.downstream_offset.to_be_bytes());
        put_string(&mut out, &self.metadata);
        out
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, DecodeError> {
        let mut k = Reader(key);
        let mut v = Reader(value);
        v.version()?;
        Ok(Checkpoint {
            group: k.string()?,
            topic: k.string()?,
            partition: k.i32()?,
            upstream_offset: v.i64()?,
            downstream_offset: v.i64()?,
            metadata: v.string()?,
        })
    }
}

impl OffsetSync<'_> {
    pub fn key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_string(&mut out, self.topic);
        out.extend_from_slice(&self.partition.to_be_bytes());
        out
    }
    pub fn value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.upstream_offset.to_be_bytes());
        out.extend_from_slice(&self.downstream_offset.to_be_bytes());
        out
    }
    /// (topic, partition, upstream, downstream)
    pub fn decode(key: &[u8], value: &[u8]) -> Result<(String, i32, i64, i64), DecodeError> {
        let mut k = Reader(key);
        let mut v = Reader(value);
        Ok((k.string()?, k.i32()?, v.i64()?, v.i64()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_bytes_are_mm2s() {
        let h = Heartbeat { source_cluster_alias: "a".into(), target_cluster_alias: "bc".into(), timestamp: 258 };
        assert_eq!(h.key(), vec![0, 1, b'a', 0, 2, b'b', b'c']);
        assert_eq!(h.value(), vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(Heartbeat::decode(&h.key(), &h.value()).unwrap(), h);
    }

    #[test]
    fn checkpoint_bytes_are_mm2s() {
        let c = Checkpoint { group: "g".into(), topic: "a.t".into(), partition: 3, upstream_offset: 10, downstream_offset: 7, metadata: "".into() };
        assert_eq!(c.key(), vec![0, 1, b'g', 0, 3, b'a', b'.', b't', 0, 0, 0, 3]);
        let mut v = vec![0, 0];
        v.extend_from_slice(&10i64.to_be_bytes());
        v.extend_from_slice(&7i64.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        assert_eq!(c.value(), v);
        assert_eq!(Checkpoint::decode(&c.key(), &c.value()).unwrap(), c);
        assert_eq!(Checkpoint::decode(&c.key(), &c.value()[..5]).unwrap_err(), DecodeError::Truncated);
        let mut v1 = c.value();
        v1[1] = 1;
        assert_eq!(Checkpoint::decode(&c.key(), &v1).unwrap_err(), DecodeError::Version(1));
    }

    #[test]
    fn offset_sync_bytes_are_mm2s() {
        let s = OffsetSync { topic: "t", partition: 1, upstream_offset: 5, downstream_offset: 4 };
        assert_eq!(s.key(), vec![0, 1, b't', 0, 0, 0, 1]);
        assert_eq!(s.value().len(), 16, "no version header");
        assert_eq!(OffsetSync::decode(&s.key(), &s.value()).unwrap(), ("t".to_string(), 1, 5, 4));
        assert_eq!(OffsetSync::decode(&[0, 9, b'x'], &s.value()).unwrap_err(), DecodeError::Truncated);
    }
}
