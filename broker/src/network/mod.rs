//! Accepting Kafka connections and framing requests: 4-byte length prefix, capped at
//! `socket.request.max.bytes` before any allocation, one request at a time per connection so
//! responses go out in request order; connection limits (`quotas`) and idle expiry
//! (`connections.max.idle.ms`, in `connection`).
mod connection;
pub mod handler_pool;
pub mod quotas;
pub mod request_log;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

pub use connection::serve_connection;
pub use quotas::ConnectionQuotas;

/// Accepts connections until `shutdown` turns true. At `max.connections` it stops accepting
/// (new connections wait in the listen backlog, as with Kafka's acceptor) until one closes.
pub async fn run_listener(listener: TcpListener, name: String, broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let metrics = &broker.metrics;
    // Every series of the listener from the start, at 0.
    let blocked = metrics.acceptor_blocked.with(&[&name]);
    let rejected = metrics.rejected_connections.with(&[&name]);
    metrics.idle_closed.with(&[&name]);
    loop {
        let slot = match broker.connection_quotas.try_slot() {
            Some(slot) => slot,
            None => {
                let started = Instant::now();
                let slot = tokio::select! {
                    slot = broker.connection_quotas.slot() => slot,
                    _ = shutdown.changed() => return,
                };
                blocked.add(started.elapsed());
                let Some(slot) = slot else { return };
                slot
            }
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match broker.connection_quotas.admit(peer.ip(), slot) {
                    Ok(guard) => {
                        let _ = stream.set_nodelay(true);
                        let (broker, name, shutdown) = (broker.clone(), name.clone(), shutdown.clone());
                        tokio::spawn(async move {
                            serve_connection(stream, peer, name, broker, shutdown).await;
                            drop(guard);
                        });
                    }
                    Err(too_many) => {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(target: "kafka.network.ConnectionQuotas", ip = %peer.ip(), max = too_many.max_per_ip,
                            "Rejected connection from {}, address already has the configured maximum of {} connections (max.connections.per.ip)", peer.ip(), too_many.max_per_ip);
                    }
                },
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(target: "kafka.network.SocketServer", error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Binds a listener, with a message that names the address when it fails.
pub async fn bind(addr: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e} (is another broker running? change 'listeners')"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
