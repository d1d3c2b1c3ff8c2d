//! Accepting Kafka connections and framing requests: 4-byte length prefix, capped at
//! `socket.request.max.bytes` before any allocation, one request at a time per connection so
//! responses go out in request order.
mod connection;
pub mod request_log;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

pub use connection::serve_connection;

/// Accepts connections until `shutdown` turns true.
pub async fn run_listener(listener: TcpListener, name: String, broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, peer, name.clone(), broker.clone(), shutdown.clone()));
                }
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
