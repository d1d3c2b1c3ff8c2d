//! The proxy's Kafka client. It sends Kafka requests to a broker of this cluster (a
//! partition's leader for Produce, this broker for the admin APIs) on the inter-broker
//! listener, as any client would: the request goes through that broker's own request path,
//! its handler slots, quotas, metrics and request log. Framing and the response size cap are
//! the follower fetcher's (`replica_fetcher::call`); connections are pooled per broker.
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::broker::Broker;
use crate::cluster::replica_fetcher;

/// The client id the proxy's requests carry (the brokers' request logs and metrics show it).
pub const CLIENT_ID: &str = "lantern-rest-proxy";
/// Idle connections kept per broker; more are opened under load and closed after use.
const POOL_PER_BROKER: usize = 16;
/// Largest response the proxy reads (Produce answers and admin answers are small).
const RESPONSE_CAP: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("broker {0} did not answer within {1:?}")]
    Timeout(i32, Duration),
    #[error("broker {0}: {1}")]
    Io(i32, std::io::Error),
}

pub struct KafkaClient {
    broker: Arc<Broker>,
    idle: Mutex<HashMap<i32, Vec<TcpStream>>>,
    correlation: AtomicI32,
}

impl KafkaClient {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker, idle: Mutex::new(HashMap::new()), correlation: AtomicI32::new(0) }
    }

    /// Sends `request` to broker `node` and waits at most `timeout` for its answer. A
    /// connection that failed or timed out is dropped, never reused.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        node: i32,
        api_key: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError> {
        let pooled = self.idle.lock().get_mut(&node).and_then(Vec::pop);
        let correlation = self.correlation.fetch_add(1, Ordering::Relaxed);
        let exchange = async {
            let mut stream = match pooled {
                Some(s) => s,
                None => replica_fetcher::connect(&self.broker, node).await?,
            };
            let response = replica_fetcher::call(&mut stream, CLIENT_ID, api_key, version, request, correlation, RESPONSE_CAP).await?;
            Ok::<_, std::io::Error>((stream, response))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((stream, response))) => {
                let mut idle = self.idle.lock();
                let pool = idle.entry(node).or_default();
                if pool.len() < POOL_PER_BROKER {
                    pool.push(stream);
                }
                Ok(response)
            }
            Ok(Err(e)) => Err(ClientError::Io(node, e)),
            Err(_) => Err(ClientError::Timeout(node, timeout)),
        }
    }
}
