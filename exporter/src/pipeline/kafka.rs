//! A minimal Kafka client over the vendored `kafka-protocol` codecs: one connection, one request
//! at a time, versions negotiated with ApiVersions. Enough for the shipper (Metadata,
//! CreateTopics, Produce) and the `logs` command (ListOffsets, Fetch).
use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const CLIENT_ID: &str = "lantern-exporter";
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("cannot reach the broker at {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connection to the broker failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot encode or decode a {api:?} message: {detail}")]
    Codec { api: ApiKey, detail: String },
    #[error("the broker supports no version of {0:?} this client speaks")]
    NoVersion(ApiKey),
    #[error("the broker answered {api:?} with error code {code}")]
    Broker { api: ApiKey, code: i16 },
}

/// One broker connection with negotiated versions.
pub struct Connection {
    stream: TcpStream,
    correlation: i32,
    versions: HashMap<i16, (i16, i16)>,
}

/// Highest versions this client uses (topic names rather than topic ids on the wire).
fn our_max(api: ApiKey) -> i16 {
    match api {
        ApiKey::Produce => 9,
        ApiKey::Fetch => 12,
        ApiKey::ListOffsets => 7,
        ApiKey::Metadata => 12,
        ApiKey::CreateTopics => 7,
        ApiKey::ApiVersions => 3,
        _ => 0,
    }
}

impl Connection {
    pub async fn connect(addr: &str) -> Result<Connection, KafkaError> {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| KafkaError::Timeout(REQUEST_TIMEOUT))?
            .map_err(|source| KafkaError::Connect { addr: addr.into(), source })?;
        let _ = stream.set_nodelay(true);
        let mut c = Connection { stream, correlation: 0, versions: HashMap::new() };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse = c.send_versioned(ApiKey::ApiVersions, 3, &req).await?;
        if resp.error_code != 0 {
            return Err(KafkaError::Broker { api: ApiKey::ApiVersions, code: resp.error_code });
        }
        c.versions = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(c)
    }

    fn version<R: Message>(&self, api: ApiKey) -> Result<i16, KafkaError> {
        let (min, max) = self.versions.get(&(api as i16)).copied().ok_or(KafkaError::NoVersion(api))?;
        let v = max.min(our_max(api)).min(R::VERSIONS.max);
        if v < min.max(R::VERSIONS.min) {
            return Err(KafkaError::NoVersion(api));
        }
        Ok(v)
    }

    /// Sends a request at the highest version both sides speak and decodes the response.
    pub async fn send<Req, Resp>(&mut self, api: ApiKey, req: &Req) -> Result<Resp, KafkaError>
    where
        Req: Encodable + Message,
        Resp: Decodable,
    {
        let v = self.version::<Req>(api)?;
        self.send_versioned(api, v, req).await
    }

    async fn send_versioned<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, version: i16, req: &Req) -> Result<Resp, KafkaError> {
        let codec = |e: anyhow::Error| KafkaError::Codec { api, detail: format!("{e:#}") };
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut body = BytesMut::new();
        header.encode(&mut body, api.request_header_version(version)).map_err(codec)?;
        req.encode(&mut body, version).map_err(codec)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let len = self.stream.read_i32().await?;
            if len < 0 || len as usize > MAX_RESPONSE_BYTES {
                return Err(std::io::Error::other(format!("response length {len} out of bounds")));
            }
            let mut buf = vec![0u8; len as usize];
            self.stream.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(Bytes::from(buf))
        };
        let mut buf = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| KafkaError::Timeout(REQUEST_TIMEOUT))??;
        let rh = ResponseHeader::decode(&mut buf, api.response_header_version(version)).map_err(codec)?;
        if rh.correlation_id != self.correlation {
            return Err(KafkaError::Codec { api, detail: format!("correlation id {} answered {}", self.correlation, rh.correlation_id) });
        }
        Resp::decode(&mut buf, version).map_err(codec)
    }
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Encodes values (with an optional key each and a timestamp) as one uncompressed v2 batch.
pub fn encode_batch(records: &[(Option<Bytes>, Bytes, i64)]) -> Result<Bytes, String> {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value, ts))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: *ts,
            key: key.clone(),
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: Compression::None }).map_err(|e| format!("{e:#}"))?;
    Ok(buf.freeze())
}

/// Decodes the complete record batches of a fetch response's records (a trailing partial batch,
/// which a broker may send when it hits max bytes, is left out).
pub fn decode_batches(mut records: Bytes) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    while records.remaining() >= 12 {
        let batch_len = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
        let total = 12 + batch_len.max(0) as usize;
        if batch_len <= 0 || records.remaining() < total {
            break;
        }
        let mut one = records.split_to(total);
        let set = RecordBatchDecoder::decode(&mut one).map_err(|e| format!("{e:#}"))?;
        out.extend(set.records.into_iter().filter(|r| !r.control));
    }
    Ok(out)
}

/// Kafka's default partitioner hash (murmur2), so keyed events land where Java's would.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1e995;
    let seed: u32 = 0x9747b28c;
    let len = data.len();
    let mut h: u32 = seed ^ len as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 1 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn batches_round_trip_and_partial_tails_are_left_out() {
        let b = encode_batch(&[(Some(Bytes::from_static(b"h")), Bytes::from_static(b"{\"a\":1}"), 5)]).unwrap();
        let mut two = BytesMut::new();
        two.extend_from_slice(&b);
        two.extend_from_slice(&b[..b.len() - 3]);
        let recs = decode_batches(two.freeze()).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].value.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(recs[0].timestamp, 5);
    }
}
