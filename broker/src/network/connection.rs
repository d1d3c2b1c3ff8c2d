//! One client connection: read a frame, decode, handle, write the response, repeat.
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::api;
use crate::broker::Broker;
use crate::metrics::BrokerMetrics;
use crate::protocol::{decode_request, encode_response, DecodeError};

/// Frames are read in steps of at most this much, so a large length prefix costs memory only
/// as its bytes actually arrive.
const READ_CHUNK: usize = 256 * 1024;

/// Why a connection ends.
#[derive(Debug)]
enum Close {
    Eof,
    Io(std::io::Error),
    Oversized(i32),
    Refused(DecodeError),
    Encode(String),
    Shutdown,
}

pub async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let max = broker.config.socket_request_max_bytes;
    let mut buf = BytesMut::new();
    let close = loop {
        let frame = tokio::select! {
            f = read_frame(&mut stream, &mut buf, max) => f,
            _ = shutdown.changed() => Err(Close::Shutdown),
        };
        let frame = match frame {
            Ok(f) => f,
            Err(c) => break c,
        };
        match respond(&broker, peer, frame).await {
            Ok(Some(bytes)) => {
                if let Err(e) = stream.write_all(&bytes).await {
                    break Close::Io(e);
                }
            }
            Ok(None) => {}
            Err(c) => break c,
        }
    };
    match close {
        Close::Eof | Close::Shutdown => tracing::debug!(%peer, "connection closed"),
        Close::Io(e) => tracing::debug!(%peer, error = %e, "connection closed on I/O error"),
        Close::Oversized(n) => {
            BrokerMetrics::inc(&broker.metrics.oversized_requests);
            tracing::warn!(target: "kafka.network.Processor", %peer, size = n, max, "closing connection: request size {n} is outside 0..={max} (socket.request.max.bytes)");
        }
        Close::Refused(e) => {
            match e {
                DecodeError::Malformed { .. } | DecodeError::TooShort(_) => BrokerMetrics::inc(&broker.metrics.malformed_requests),
                _ => BrokerMetrics::inc(&broker.metrics.unsupported_requests),
            }
            tracing::warn!(target: "kafka.network.Processor", %peer, error = %e, "closing connection after a request that cannot be served");
        }
        Close::Encode(e) => tracing::error!(%peer, error = %e, "closing connection: could not encode a response"),
    }
}

/// Reads one length-prefixed frame. The prefix is checked before any buffer grows for it.
async fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut, max: usize) -> Result<Bytes, Close> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Close::Eof),
        Err(e) => return Err(Close::Io(e)),
    }
    let size = i32::from_be_bytes(len);
    if size < 0 || size as usize > max {
        return Err(Close::Oversized(size));
    }
    let size = size as usize;
    buf.clear();
    while buf.len() < size {
        buf.reserve((size - buf.len()).min(READ_CHUNK));
        let want = size - buf.len();
        let n = (&mut *stream).take(want as u64).read_buf(buf).await.map_err(Close::Io)?;
        if n == 0 {
            return Err(Close::Eof);
        }
    }
    Ok(buf.split().freeze())
}

/// Decodes and handles one frame; `Ok(None)` when no response is owed.
async fn respond(broker: &Arc<Broker>, peer: SocketAddr, frame: Bytes) -> Result<Option<BytesMut>, Close> {
    let request = match decode_request(frame) {
        Ok(r) => r,
        // The protocol's answer to an ApiVersions version we do not know: error 35 in v0 form.
        Err(DecodeError::UnsupportedVersion { api: ApiKey::ApiVersions, correlation_id, version, .. }) => {
            BrokerMetrics::inc(&broker.metrics.unsupported_requests);
            tracing::info!(target: "kafka.request.logger", version, "answering ApiVersions of unknown version with UNSUPPORTED_VERSION");
            let body = ResponseKind::ApiVersions(api::unsupported_version_response());
            return encode_response(ApiKey::ApiVersions, 0, correlation_id, &body).map(Some).map_err(|e| Close::Encode(e.to_string()));
        }
        Err(e) => return Err(Close::Refused(e)),
    };
    BrokerMetrics::inc(&broker.metrics.requests);
    let (api_key, version, correlation_id) = (request.api_key, request.version(), request.correlation_id());
    let Some(response) = api::handle(broker, peer, request).await else { return Ok(None) };
    encode_response(api_key, version, correlation_id, &response)
        .map(Some)
        .map_err(|e| Close::Encode(format!("{api_key:?} v{version}: {e:#}")))
}
