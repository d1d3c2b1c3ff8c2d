//! The controller listener's wire format: `[u32 length][JSON]` frames, one request and one
//! response at a time per connection. It carries openraft's RPCs between voters and the
//! requests brokers send the active controller (registration, heartbeats, forwarded metadata
//! changes). Clients never speak it; the length is capped before anything is allocated and a
//! frame that does not decode closes the connection with a log line and a metric.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::TypeConfig;
use crate::controller::requests::{ControllerError, ControllerReply, ControllerRequest};

/// Largest frame accepted (a snapshot chunk or a batch of metadata entries is far smaller).
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A request for the active controller, from a broker or a controller that is not active.
    Controller(ControllerRequest),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// The answer and the metadata offset it reflects, so the asking node can wait until it
    /// has applied that far before answering its own client.
    Controller(Result<(ControllerReply, i64), ControllerError>),
}

/// Serves requests arriving on the controller listener.
pub trait RpcHandler: Send + Sync + 'static {
    fn handle(&self, request: RpcRequest) -> impl std::future::Future<Output = RpcResponse> + Send;

    /// A connection closed (by the peer, an error or the idle timeout) after carrying the
    /// heartbeats of these brokers.
    fn connection_closed(&self, _heartbeated: &[i32]) {}
}

/// Calls [`RpcHandler::connection_closed`] when a served connection ends, however it ends,
/// except at this node's own shutdown.
struct ConnectionEnd<H: RpcHandler> {
    handler: Arc<H>,
    heartbeated: Vec<i32>,
    shutting_down: bool,
}

impl<H: RpcHandler> ConnectionEnd<H> {
    fn saw(&mut self, request: &RpcRequest) {
        if let RpcRequest::Controller(ControllerRequest::BrokerHeartbeat { broker_id, .. }) = request {
            // A handful at most: a broker's pool, or a hostile peer naming many ids (bounded).
            if !self.heartbeated.contains(broker_id) && self.heartbeated.len() < 64 {
                self.heartbeated.push(*broker_id);
            }
        }
    }
}

impl<H: RpcHandler> Drop for ConnectionEnd<H> {
    fn drop(&mut self) {
        if !self.shutting_down && !self.heartbeated.is_empty() {
            self.handler.connection_closed(&self.heartbeated);
        }
    }
}

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("frame of {len} bytes is over the {MAX_FRAME} limit")));
    }
    let mut buf = Vec::new();
    // Grow with the bytes that arrive, not with what the prefix claims.
    let mut remaining = len;
    while remaining > 0 {
        let step = remaining.min(256 * 1024);
        let start = buf.len();
        buf.resize(start + step, 0);
        stream.read_exact(&mut buf[start..]).await?;
        remaining -= step;
    }
    Ok(Some(buf))
}

async fn write_frame(stream: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    stream.write_all(&out).await
}

/// Counters of the controller listener.
#[derive(Default)]
pub struct RpcStats {
    pub malformed: AtomicU64,
    pub connections: AtomicU64,
}

/// Counters of the requests this node sends to other voters over the quorum's own channel
/// (Kafka's `raft-channel-metrics`, the raft client's NetworkClient): frames written and read,
/// with their bytes, length prefixes included.
#[derive(Default)]
pub struct ChannelStats {
    pub requests: AtomicU64,
    pub responses: AtomicU64,
    pub outgoing_bytes: AtomicU64,
    pub incoming_bytes: AtomicU64,
    /// Voters whose controller listener refused a connection since the active controller
    /// last looked, and when: nothing listens there, so that node's process is not running
    /// (in combined mode, its broker neither). Taken by [`ChannelStats::take_refusals`].
    refusals: parking_lot::Mutex<Vec<(u64, std::time::Instant)>>,
}

impl ChannelStats {
    pub fn refused(&self, voter: u64, at: std::time::Instant) {
        let mut refusals = self.refusals.lock();
        if !refusals.iter().any(|(v, _)| *v == voter) {
            refusals.push((voter, at));
        }
    }

    pub fn take_refusals(&self) -> Vec<(u64, std::time::Instant)> {
        std::mem::take(&mut *self.refusals.lock())
    }
}

/// Accepts connections until shutdown; each is served by its own task and closed after
/// `idle` without a request (`connections.max.idle.ms`; voters and observers talk several
/// times a second).
pub async fn serve<H: RpcHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    stats: Arc<RpcStats>,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (mut stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(target: "org.apache.kafka.raft.KafkaNetworkChannel", error = %e, "accept failed on the controller listener");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let handler = handler.clone();
        let stats = stats.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut end = ConnectionEnd { handler: handler.clone(), heartbeated: Vec::new(), shutting_down: false };
            loop {
                let frame = tokio::select! {
                    f = read_frame(&mut stream) => f,
                    _ = tokio::time::sleep(idle) => {
                        tracing::info!(target: "org.apache.kafka.raft.KafkaNetworkChannel", %peer, idle_ms = idle.as_millis() as u64, "closing an idle controller connection");
                        return;
                    }
                    _ = shutdown.changed() => {
                        end.shutting_down = true;
                        return;
                    }
                };
                let body = match frame {
                    Ok(Some(b)) => b,
                    Ok(None) => return,
                    Err(e) => {
                        if e.kind() == std::io::ErrorKind::InvalidData {
                            stats.malformed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(target: "org.apache.kafka.raft.KafkaNetworkChannel", %peer, error = %e, "closing controller connection");
                        }
                        return;
                    }
                };
                let request: RpcRequest = match serde_json::from_slice(&body) {
                    Ok(r) => r,
                    Err(e) => {
                        stats.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(target: "org.apache.kafka.raft.KafkaNetworkChannel", %peer, error = %e, "closing controller connection after a request that does not decode");
                        return;
                    }
                };
                end.saw(&request);
                let response = handler.handle(request).await;
                let Ok(bytes) = serde_json::to_vec(&response) else { return };
                if write_frame(&mut stream, &bytes).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A connection to one controller, opened on first use and again after any error.
pub struct RpcClient {
    addr: String,
    conn: Option<TcpStream>,
    timeout: Duration,
    stats: Option<Arc<ChannelStats>>,
}

impl RpcClient {
    pub fn new(addr: String, timeout: Duration) -> Self {
        Self { addr, conn: None, timeout, stats: None }
    }

    /// A client whose traffic counts in `stats` (the quorum's channel between voters).
    pub fn counted(addr: String, timeout: Duration, stats: Arc<ChannelStats>) -> Self {
        Self { addr, conn: None, timeout, stats: Some(stats) }
    }

    pub fn address(&self) -> &str {
        &self.addr
    }

    /// Sends one request and waits for its response, at most `timeout` overall.
    pub async fn call(&mut self, request: &RpcRequest, timeout: Option<Duration>) -> std::io::Result<RpcResponse> {
        let timeout = timeout.unwrap_or(self.timeout);
        let result = tokio::time::timeout(timeout, self.call_inner(request)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer from {} within {timeout:?}", self.addr))),
        };
        if result.is_err() {
            // The stream may hold half a frame: never reuse it.
            self.conn = None;
        }
        result
    }

    async fn call_inner(&mut self, request: &RpcRequest) -> std::io::Result<RpcResponse> {
        let body = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        if body.len() > MAX_FRAME {
            // The peer would refuse it and close the connection; the caller sends less instead.
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("a request of {} bytes is over the {MAX_FRAME}-byte frame limit", body.len()),
            ));
        }
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.addr).await?;
            let _ = s.set_nodelay(true);
            self.conn = Some(s);
        }
        let Some(stream) = self.conn.as_mut() else { return Err(std::io::ErrorKind::NotConnected.into()) };
        write_frame(stream, &body).await?;
        if let Some(s) = &self.stats {
            s.requests.fetch_add(1, Ordering::Relaxed);
            s.outgoing_bytes.fetch_add(4 + body.len() as u64, Ordering::Relaxed);
        }
        let frame = read_frame(stream).await?.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        if let Some(s) = &self.stats {
            s.responses.fetch_add(1, Ordering::Relaxed);
            s.incoming_bytes.fetch_add(4 + frame.len() as u64, Ordering::Relaxed);
        }
        serde_json::from_slice(&frame).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}
