//! A small blocking Kafka client: one connection per broker, requests at fixed versions that
//! Lantern and Kafka 3.x both answer, responses capped in size before they are read.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::{Decodable, Encodable};
use lantern_broker::protocol::{decode_response, encode_request};

/// The largest response read (a Metadata or DescribeLogDirs of a big cluster is megabytes).
const RESPONSE_CAP: usize = 256 << 20;
pub const METADATA_VERSION: i16 = 12;

pub struct Client {
    bootstrap: Vec<String>,
    timeout: Duration,
    /// Broker id -> "host:port", from the last Metadata.
    pub brokers: BTreeMap<i32, String>,
    conns: BTreeMap<String, TcpStream>,
    correlation: i32,
}

impl Client {
    /// `bootstrap`: comma-separated host:port list; the first that answers is used.
    pub fn new(bootstrap: &str, timeout: Duration) -> Client {
        Client {
            bootstrap: bootstrap.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
            timeout,
            brokers: BTreeMap::new(),
            conns: BTreeMap::new(),
            correlation: 0,
        }
    }

    /// Sends `request` to the broker at `address` and reads its response.
    pub fn send_to<Req: Encodable, Resp: Decodable>(&mut self, address: &str, api_key: ApiKey, version: i16, request: &Req) -> Result<Resp> {
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let frame = encode_request(api_key, version, correlation, "lantern-admin", request)?;
        let result = self.round_trip(address, &frame);
        let body = match result {
            Ok(b) => b,
            Err(e) => {
                // A broken connection is not reused.
                self.conns.remove(address);
                return Err(e).with_context(|| format!("{api_key:?} to {address}"));
            }
        };
        let (response, _) = decode_response(body.freeze(), api_key, version, correlation).with_context(|| format!("{api_key:?} response from {address}"))?;
        Ok(response)
    }

    fn round_trip(&mut self, address: &str, frame: &[u8]) -> Result<BytesMut> {
        if !self.conns.contains_key(address) {
            let addr = address.to_socket_addrs()?.next().with_context(|| format!("{address} does not resolve"))?;
            let stream = TcpStream::connect_timeout(&addr, self.timeout).with_context(|| format!("connecting to {address}"))?;
            stream.set_read_timeout(Some(self.timeout))?;
            stream.set_write_timeout(Some(self.timeout))?;
            stream.set_nodelay(true)?;
            self.conns.insert(address.to_string(), stream);
        }
        let stream = self.conns.get_mut(address).expect("inserted above");
        stream.write_all(frame)?;
        let mut len = [0u8; 4];
        stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if len < 0 || len as usize > RESPONSE_CAP {
            bail!("response of {len} bytes (limit {RESPONSE_CAP})");
        }
        let mut body = BytesMut::new();
        let mut remaining = len as usize;
        // Grow with what arrives, not with what the prefix claims.
        while remaining > 0 {
            let step = remaining.min(1 << 20);
            let start = body.len();
            body.resize(start + step, 0);
            stream.read_exact(&mut body[start..])?;
            remaining -= step;
        }
        Ok(body)
    }

    /// Sends to broker `id` (its address from the last Metadata).
    pub fn send_to_broker<Req: Encodable, Resp: Decodable>(&mut self, id: i32, api_key: ApiKey, version: i16, request: &Req) -> Result<Resp> {
        let address = self.brokers.get(&id).cloned().with_context(|| format!("broker {id} is not in the cluster's metadata"))?;
        self.send_to(&address, api_key, version, request)
    }

    /// Sends to any broker that answers: a known one first, then the bootstrap list.
    pub fn send_any<Req: Encodable, Resp: Decodable>(&mut self, api_key: ApiKey, version: i16, request: &Req) -> Result<Resp> {
        let mut candidates: Vec<String> = self.brokers.values().cloned().collect();
        candidates.extend(self.bootstrap.iter().cloned());
        let mut last = None;
        for address in candidates {
            match self.send_to(&address, api_key, version, request) {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no bootstrap server given (--bootstrap-server host:port)")))
    }

    /// Metadata for all topics; remembers the brokers' addresses.
    pub fn metadata(&mut self) -> Result<MetadataResponse> {
        let request = MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(false);
        let response: MetadataResponse = self
            .send_any(ApiKey::Metadata, METADATA_VERSION, &request)
            .with_context(|| format!("no broker of {:?} answered", self.bootstrap))?;
        self.brokers = response.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port))).collect();
        Ok(response)
    }
}
