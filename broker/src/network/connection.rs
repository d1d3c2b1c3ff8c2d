//! One client connection: read a frame, decode, handle, write the response, repeat; each
//! request's timings and outcome are recorded in RequestMetrics (and in a span when tracing
//! is on). A connection on which nothing arrives for `connections.max.idle.ms` is closed.
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::api;
use crate::broker::Broker;
use crate::metrics::requests::RequestTimings;
use crate::metrics::{self, BrokerMetrics, Gauge};
use super::handler_pool::RequestSlot;
use crate::protocol::{decode_request, encode_response, DecodeError, ResponseFrame};
use crate::telemetry::kafka::{self as spans, RequestInfo};
use super::request_log::{now_rfc3339, ClientInformation, CompletedRequest, RequestHeaderFields};

/// Frames are read in steps of at most this much, so a large length prefix costs memory only
/// as its bytes actually arrive.
const READ_CHUNK: usize = 256 * 1024;
/// Kafka's network processor label; Lantern has one accept loop per listener.
const NETWORK_PROCESSOR: &str = "0";

/// Why a connection ends.
#[derive(Debug)]
enum Close {
    Eof,
    /// Nothing read for connections.max.idle.ms (Kafka's idle expiry).
    Idle,
    Io(std::io::Error),
    Oversized(i32),
    Refused(DecodeError),
    Encode(String),
    Shutdown,
}

/// Per-connection state the request path needs.
struct Conn {
    peer: SocketAddr,
    listener: String,
    /// Kafka's connection id: `local-remote-index`.
    id: String,
    /// The open-connections gauge of the client software this connection announced.
    software: Option<Arc<Gauge>>,
    software_name: String,
    software_version: String,
    /// Whether the client has named its software yet.
    named: bool,
}

const UNKNOWN: &str = "unknown";

pub async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, listener: String, broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let m = &broker.metrics;
    m.connections_created.with(&[&listener, NETWORK_PROCESSOR]).fetch_add(1, Ordering::Relaxed);
    m.connection_rates.created(&[&listener, NETWORK_PROCESSOR]);
    let open = m.connections_open.with(&[&listener, NETWORK_PROCESSOR]);
    open.fetch_add(1, Ordering::Relaxed);
    let max = broker.config.socket_request_max_bytes;
    let idle = broker.config.connections_max_idle;
    let mut buf = BytesMut::new();
    let local = stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let id = format!("{local}-{peer}-0");
    // Until a client names itself (ApiVersions v3+) it counts as "unknown", as in Kafka.
    let unknown = m.connections_by_software.with(&[UNKNOWN, UNKNOWN, &listener, NETWORK_PROCESSOR]);
    unknown.fetch_add(1, Ordering::Relaxed);
    let mut conn = Conn { peer, listener, id, software: Some(unknown), software_name: UNKNOWN.into(), software_version: UNKNOWN.into(), named: false };
    let close = loop {
        let mut reading = Duration::ZERO;
        let mut timed = Timed { stream: &mut stream, busy: &mut reading };
        let frame = tokio::select! {
            f = read_frame(&mut timed, &mut buf, max, idle) => f,
            _ = shutdown.changed() => Err(Close::Shutdown),
        };
        drop(timed);
        metrics::add(&m.network_busy_ns, reading.as_nanos() as u64);
        let (frame, read_done) = match frame {
            Ok(f) => (f, Instant::now()),
            Err(c) => break c,
        };
        if let Err(c) = serve_request(&broker, &mut conn, &mut stream, frame, read_done).await {
            break c;
        }
    };
    open.fetch_sub(1, Ordering::Relaxed);
    if let Some(g) = &conn.software {
        g.fetch_sub(1, Ordering::Relaxed);
    }
    m.connections_closed.with(&[&conn.listener, NETWORK_PROCESSOR]).fetch_add(1, Ordering::Relaxed);
    m.connection_rates.closed(&[&conn.listener, NETWORK_PROCESSOR]);
    match close {
        Close::Eof | Close::Shutdown => tracing::debug!(target: "kafka.network.Processor", %peer, "connection closed"),
        Close::Idle => {
            metrics::inc(&m.idle_closed.with(&[&conn.listener]));
            tracing::debug!(target: "kafka.network.Processor", %peer, idle_ms = idle.map_or(0, |d| d.as_millis() as u64), "closing a connection idle for connections.max.idle.ms");
        }
        Close::Io(e) => tracing::debug!(target: "kafka.network.Processor", %peer, error = %e, "connection closed on I/O error"),
        Close::Oversized(n) => {
            metrics::inc(&m.oversized_requests);
            tracing::warn!(target: "kafka.network.Processor", %peer, size = n, max, "closing connection: request size {n} is outside 0..={max} (socket.request.max.bytes)");
        }
        Close::Refused(e) => {
            match e {
                DecodeError::Malformed { .. } | DecodeError::TooShort(_) => metrics::inc(&m.malformed_requests),
                _ => metrics::inc(&m.unsupported_requests),
            }
            tracing::warn!(target: "kafka.network.Processor", %peer, error = %e, "closing connection after a request that cannot be served");
        }
        Close::Encode(e) => tracing::error!(target: "kafka.network.Processor", %peer, error = %e, "closing connection: could not encode a response"),
    }
}

/// Waits for `read`, or fails with [`Close::Idle`] once `idle` passes without it finishing.
async fn unless_idle<T>(idle: Option<Duration>, read: impl std::future::Future<Output = T>) -> Result<T, Close> {
    match idle {
        Some(idle) => tokio::time::timeout(idle, read).await.map_err(|_| Close::Idle),
        None => Ok(read.await),
    }
}

/// A connection's socket for reading, adding the time spent inside its reads (the system
/// calls, not the waits between them) to `busy`: the network layer's busy time, as Kafka's
/// network processors are busy outside their select().
struct Timed<'a> {
    stream: &'a mut TcpStream,
    busy: &'a mut Duration,
}

impl AsyncRead for Timed<'_> {
    fn poll_read(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
        let polled = Instant::now();
        let this = &mut *self;
        let r = std::pin::Pin::new(&mut *this.stream).poll_read(cx, buf);
        *this.busy += polled.elapsed();
        r
    }
}

/// Reads one length-prefixed frame. The prefix is checked before any buffer grows for it.
/// The connection is idle when the prefix, or any later chunk, takes `idle` to arrive.
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut, max: usize, idle: Option<Duration>) -> Result<Bytes, Close> {
    let mut len = [0u8; 4];
    match unless_idle(idle, stream.read_exact(&mut len)).await? {
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
        let n = unless_idle(idle, (&mut *stream).take(want as u64).read_buf(buf)).await?.map_err(Close::Io)?;
        if n == 0 {
            return Err(Close::Eof);
        }
    }
    Ok(buf.split().freeze())
}

/// Bytes per write call. A local client's socket can take tens of MB in one writev (the
/// receive buffer autotunes up to net.ipv4.tcp_rmem's maximum, 32 MB here), which kept a
/// worker in one system call for up to 55 ms while other connections' requests waited.
const WRITE_CHUNK: usize = 1 << 20;

/// Writes a whole response frame with vectored writes (record sets are separate chunks),
/// at most [`WRITE_CHUNK`] per call, letting the worker run other connections' tasks between
/// chunks (as Kafka's network processor moves on to other channels after each write).
/// Returns the time spent inside the writes themselves: like Kafka's network processor idle
/// measure, waiting for a slow client's socket to drain is not busy time.
async fn write_frame(stream: &mut TcpStream, frame: &ResponseFrame) -> std::io::Result<std::time::Duration> {
    const MAX_SLICES: usize = 64;
    let total = frame.len();
    let mut written = 0;
    let mut busy = std::time::Duration::ZERO;
    let mut slices = [std::io::IoSlice::new(&[]); MAX_SLICES];
    while written < total {
        if written > 0 {
            tokio::task::yield_now().await;
        }
        let n = frame.io_slices(written, WRITE_CHUNK, &mut slices);
        let wrote = std::future::poll_fn(|cx| {
            let polled = Instant::now();
            let r = std::pin::Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..n]);
            busy += polled.elapsed();
            r
        })
        .await?;
        match wrote {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            w => written += w,
        }
    }
    Ok(busy)
}

fn micros(d: std::time::Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// Decodes, handles and answers one frame, recording its metrics.
async fn serve_request(broker: &Arc<Broker>, conn: &mut Conn, stream: &mut TcpStream, frame: Bytes, read_done: Instant) -> Result<(), Close> {
    let m: &BrokerMetrics = &broker.metrics;
    let request_bytes = frame.len() as u64;
    // Decoding is the network layer's work (Kafka's processors parse the request).
    let decoding = Instant::now();
    let decoded = decode_request(frame);
    metrics::add(&m.network_busy_ns, decoding.elapsed().as_nanos() as u64);
    let request = match decoded {
        Ok(r) => r,
        // The protocol's answer to an ApiVersions version we do not know: error 35 in v0 form.
        Err(DecodeError::UnsupportedVersion { api: ApiKey::ApiVersions, correlation_id, version, .. }) => {
            metrics::inc(&m.unsupported_requests);
            tracing::info!(target: "kafka.request.logger", version, "answering ApiVersions of unknown version with UNSUPPORTED_VERSION");
            let body = ResponseKind::ApiVersions(api::unsupported_version_response());
            let bytes = encode_response(ApiKey::ApiVersions, 0, correlation_id, &body).map_err(|e| Close::Encode(e.to_string()))?;
            return write_frame(stream, &bytes).await.map(|_| ()).map_err(Close::Io);
        }
        Err(e) => return Err(Close::Refused(e)),
    };
    let (api_key, version, correlation_id) = (request.api_key, request.version(), request.correlation_id());
    if let RequestKind::ApiVersions(r) = &request.body {
        if version >= 3 && !conn.named && api::valid_client_software(r) {
            let g = m.connections_by_software.with(&[&r.client_software_name, &r.client_software_version, &conn.listener, NETWORK_PROCESSOR]);
            g.fetch_add(1, Ordering::Relaxed);
            if let Some(old) = conn.software.replace(g) {
                old.fetch_sub(1, Ordering::Relaxed);
            }
            conn.named = true;
            conn.software_name = r.client_software_name.to_string();
            conn.software_version = r.client_software_version.to_string();
        }
    }
    let follower = matches!(&request.body, RequestKind::Fetch(f) if f.replica_id.0 >= 0 || f.replica_state.replica_id.0 >= 0);
    let handles = m.request_handles.api(m, api_key, follower);
    // A handler slot (num.io.threads): the wait for one is the request queue time.
    let current = RequestSlot::new(broker.handlers.acquire().await);
    let started = Instant::now();
    let mut ctx = api::RequestContext::new(conn.peer, &conn.listener, &request.header);
    // Tracing off: `tracer` is None and this is the only cost.
    let mut span = broker.tracer.as_ref().and_then(|tracer| {
        let info = RequestInfo {
            api_name: handles.name,
            api_key: api_key as i16,
            api_version: version,
            correlation_id,
            client_id: &ctx.client_id,
            peer: conn.peer,
            listener: &conn.listener,
            request_bytes,
        };
        spans::request_span(tracer, info, read_done)
    });
    if let Some(s) = &span {
        ctx.trace = s.parent();
    }
    let response = current.scope(api::handle(broker, &ctx, request)).await;
    current.release();
    let handled = Instant::now();
    let handling = handled - started;
    let remote = current.remote();
    let mut error_counts: Vec<(i16, u64)> = Vec::new();
    let mut first_error = None;
    let (response_bytes, queued, sent) = match response {
        None => (0, std::time::Duration::ZERO, std::time::Duration::ZERO),
        Some(response) => {
            api::error_codes(&response, |code, n| {
                error_counts.push((code, n));
                if code != 0 && first_error.is_none() && span.is_some() {
                    first_error = Some(code);
                }
            });
            // Between handling and the start of the write the response is queued (Kafka's
            // RequestChannel response queue): here that is its encoding.
            m.responses_queued.fetch_add(1, Ordering::Relaxed);
            let encoded = encode_response(api_key, version, correlation_id, &response);
            m.responses_queued.fetch_sub(1, Ordering::Relaxed);
            let bytes = encoded.map_err(|e| Close::Encode(format!("{api_key:?} v{version}: {e:#}")))?;
            let send_start = Instant::now();
            let network_busy = write_frame(stream, &bytes).await.map_err(Close::Io)?;
            let sent = send_start.elapsed();
            metrics::add(&m.network_busy_ns, network_busy.as_nanos() as u64);
            (bytes.len() as u64, send_start - handled, sent)
        }
    };
    // Like Kafka, a request counts once its response is sent (or none was owed).
    let total = read_done.elapsed();
    let mut errors = std::collections::BTreeMap::new();
    if m.enabled {
        let timings = RequestTimings {
            request_bytes,
            request_queue: micros(started - read_done),
            remote: micros(remote),
            local: micros(handling.saturating_sub(remote)),
            response_queue: micros(queued),
            response_send: micros(sent),
            total: micros(total),
        };
        m.request_handles.record_completed(m, api_key, handles, version, &timings, &error_counts);
    }
    if broker.request_log.is_some() {
        for (code, n) in error_counts {
            *errors.entry(metrics::requests::error_name(code)).or_insert(0) += n;
        }
    }
    if let Some(span) = span.take() {
        spans::finish_request(span, response_bytes, first_error);
    }
    if let Some(log) = &broker.request_log {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        log.write(&CompletedRequest {
            timestamp: now_rfc3339(),
            message: "Completed request",
            request_header: RequestHeaderFields { request_api_key: api_key as i16, request_api_version: version, correlation_id, client_id: &ctx.client_id },
            api_name: handles.name,
            connection: &conn.id,
            listener: &conn.listener,
            security_protocol: "PLAINTEXT",
            principal: "User:ANONYMOUS",
            client_information: ClientInformation { software_name: &conn.software_name, software_version: &conn.software_version },
            total_time_ms: ms(total),
            request_queue_time_ms: ms(started - read_done),
            local_time_ms: ms(handling.saturating_sub(remote)),
            remote_time_ms: ms(remote),
            throttle_time_ms: 0.0,
            response_queue_time_ms: ms(queued),
            send_time_ms: ms(sent),
            request_bytes,
            response_bytes,
            error_codes: errors,
        });
    }
    Ok(())
}
