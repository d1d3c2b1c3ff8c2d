//! The export task: takes finished spans off the queue, batches them (up to
//! OTEL_BSP_MAX_EXPORT_BATCH_SIZE, or whatever arrived within OTEL_BSP_SCHEDULE_DELAY) and
//! POSTs each batch as OTLP/HTTP JSON. A failed batch is dropped, counted and logged (at most
//! once a minute); the request path never waits for any of this.
//!
//! The HTTP client is deliberately tiny: one HTTP/1.1 request per connection
//! (`Connection: close`) to a plain-http endpoint, judged by its status line.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::config::{Endpoint, TraceConfig};
use super::{otlp_json, SpanData, TraceStats};

/// Most of a response the exporter reads: the status line and headers, or an error body.
const MAX_RESPONSE_BYTES: usize = 16 * 1024;
const WARN_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot encode spans as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot connect to {0}: {1} (is the OTLP receiver running? check OTEL_EXPORTER_OTLP_ENDPOINT)")]
    Connect(String, std::io::Error),
    #[error("I/O error talking to {0}: {1}")]
    Io(String, std::io::Error),
    #[error("no answer from {0} within {1:?} (OTEL_EXPORTER_OTLP_TIMEOUT)")]
    Timeout(String, Duration),
    #[error("{endpoint} answered HTTP {status}: {body}")]
    Refused { endpoint: String, status: u16, body: String },
    #[error("{0} sent a response that is not HTTP")]
    NotHttp(String),
}

/// Owns the export task; `shutdown` exports what is queued and stops it.
pub struct Exporter {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    stats: Arc<TraceStats>,
    timeout: Duration,
}

struct Batcher {
    config: TraceConfig,
    resource: Vec<(String, String)>,
    stats: Arc<TraceStats>,
    last_warning: Option<Instant>,
    failures_since_warning: u64,
}

impl Exporter {
    pub(super) fn spawn(config: TraceConfig, extra_resource: Vec<(String, String)>, rx: mpsc::Receiver<SpanData>, stats: Arc<TraceStats>) -> Exporter {
        let mut resource = vec![("service.name".to_string(), config.service_name.clone())];
        resource.extend(config.resource.iter().cloned());
        for (k, v) in extra_resource {
            if !resource.iter().any(|(existing, _)| *existing == k) {
                resource.push((k, v));
            }
        }
        resource.push(("telemetry.sdk.name".into(), "lantern".into()));
        resource.push(("telemetry.sdk.language".into(), "rust".into()));
        resource.push(("telemetry.sdk.version".into(), env!("CARGO_PKG_VERSION").into()));
        let (stop_tx, stop_rx) = oneshot::channel();
        let timeout = config.timeout;
        let batcher = Batcher { config, resource, stats: stats.clone(), last_warning: None, failures_since_warning: 0 };
        let task = tokio::spawn(batcher.run(rx, stop_rx));
        Exporter { stop: Some(stop_tx), task, stats, timeout }
    }

    pub fn stats(&self) -> &TraceStats {
        &self.stats
    }

    /// Exports the spans still queued and ends the task, giving it at most the export
    /// timeout and never more than 5 s, so an unresponsive receiver cannot stall shutdown.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let limit = self.timeout.min(Duration::from_secs(5));
        if tokio::time::timeout(limit, &mut self.task).await.is_err() {
            self.task.abort();
            tracing::warn!("tracing: the final span export did not finish within {limit:?}; remaining spans were dropped");
        }
        let s = &self.stats;
        tracing::info!(
            exported = s.exported.load(Ordering::Relaxed),
            dropped_queue_full = s.dropped.load(Ordering::Relaxed),
            failed = s.failed.load(Ordering::Relaxed),
            "tracing: span exporter stopped"
        );
    }
}

impl Batcher {
    async fn run(mut self, mut rx: mpsc::Receiver<SpanData>, mut stop: oneshot::Receiver<()>) {
        let max = self.config.max_export_batch_size.max(1);
        let mut batch: Vec<SpanData> = Vec::with_capacity(max);
        let mut deadline = None;
        loop {
            let flush_at = deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = &mut stop => break,
                received = rx.recv() => match received {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() == 1 {
                            deadline = Some(tokio::time::Instant::now() + self.config.schedule_delay);
                        }
                        if batch.len() >= max {
                            self.export(&mut batch).await;
                            deadline = None;
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(flush_at), if deadline.is_some() => {
                    self.export(&mut batch).await;
                    deadline = None;
                }
            }
        }
        // Shutdown: what is queued now goes out, in full batches.
        rx.close();
        while let Ok(span) = rx.try_recv() {
            batch.push(span);
            if batch.len() >= max {
                self.export(&mut batch).await;
            }
        }
        self.export(&mut batch).await;
    }

    async fn export(&mut self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let result = match otlp_json::encode(&self.resource, batch) {
            Ok(body) => post(&self.config.endpoint, &self.config.headers, &body, self.config.timeout).await,
            Err(e) => Err(e.into()),
        };
        batch.clear();
        match result {
            Ok(()) => {
                self.stats.exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.failed.fetch_add(n, Ordering::Relaxed);
                self.failures_since_warning += 1;
                if self.last_warning.is_none_or(|t| t.elapsed() >= WARN_INTERVAL) {
                    tracing::warn!(
                        error = %e,
                        failed_exports = self.failures_since_warning,
                        spans_lost = self.stats.failed.load(Ordering::Relaxed),
                        "tracing: could not export spans (further failures are reported at most once a minute)"
                    );
                    self.last_warning = Some(Instant::now());
                    self.failures_since_warning = 0;
                }
            }
        }
    }
}

/// POSTs one OTLP/HTTP JSON body; any 2xx answer is success.
pub async fn post(endpoint: &Endpoint, headers: &[(String, String)], body: &[u8], timeout: Duration) -> Result<(), ExportError> {
    let target = endpoint.to_string();
    match tokio::time::timeout(timeout, exchange(endpoint, headers, body, &target)).await {
        Ok(result) => result,
        Err(_) => Err(ExportError::Timeout(target, timeout)),
    }
}

async fn exchange(endpoint: &Endpoint, headers: &[(String, String)], body: &[u8], target: &str) -> Result<(), ExportError> {
    let mut stream = TcpStream::connect(&endpoint.authority).await.map_err(|e| ExportError::Connect(target.to_string(), e))?;
    let _ = stream.set_nodelay(true);
    let io = |e| ExportError::Io(target.to_string(), e);
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: lantern-broker/{}\r\n",
        endpoint.path,
        endpoint.authority,
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    stream.write_all(body).await.map_err(io)?;
    stream.flush().await.map_err(io)?;

    let mut response = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(i) = find(&response, b"\r\n\r\n") {
            break i + 4;
        }
        if response.len() >= MAX_RESPONSE_BYTES {
            return Err(ExportError::NotHttp(target.to_string()));
        }
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            break response.len(); // closed early: judge by what arrived
        }
        response.extend_from_slice(&chunk[..n]);
    };
    let status = parse_status(&response).ok_or_else(|| ExportError::NotHttp(target.to_string()))?;
    if (200..300).contains(&status) {
        return Ok(());
    }
    // An error: read a little of the body for the log line.
    while response.len() < header_end + 512 && response.len() < MAX_RESPONSE_BYTES {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
        }
    }
    let body: String = String::from_utf8_lossy(&response[header_end.min(response.len())..])
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    Err(ExportError::Refused { endpoint: target.to_string(), status, body })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The status code of an `HTTP/1.x NNN reason` status line.
fn parse_status(response: &[u8]) -> Option<u16> {
    let line_end = find(response, b"\r\n").unwrap_or(response.len());
    let line = std::str::from_utf8(&response[..line_end]).ok()?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::{Sampler, SpanKind, Tracer};
    use super::*;
    use tokio::net::TcpListener;

    /// A one-connection-at-a-time HTTP receiver recording (request head, body) and
    /// answering each with `status`.
    async fn receiver(status: u16) -> (String, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break (String::new(), Vec::new());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = find(&buf, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_string();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap_or(0)))
                            .unwrap_or(0);
                        while buf.len() < i + 4 + len {
                            let n = s.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                break;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        break (head, buf[i + 4..].to_vec());
                    }
                };
                let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 7\r\n\r\nnope {status}");
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = tx.send((head, body));
            }
        });
        (addr, rx)
    }

    fn config(addr: &str, delay_ms: u64, batch: usize) -> TraceConfig {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), format!("http://{addr}")),
            ("OTEL_SERVICE_NAME".to_string(), "test-broker".to_string()),
            ("OTEL_EXPORTER_OTLP_HEADERS".to_string(), "x-token=s3cret".to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY".to_string(), delay_ms.to_string()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE".to_string(), batch.to_string()),
        ];
        TraceConfig::from_env(vars).expect("valid").expect("enabled")
    }

    #[tokio::test]
    async fn spans_reach_the_receiver_as_otlp_json() {
        let (addr, mut got) = receiver(200).await;
        let (tracer, exporter) = Tracer::start(config(&addr, 20, 512), vec![("service.instance.id".into(), "1".into())]);
        let mut span = tracer.root_span("kafka.Produce".into(), SpanKind::Server, Instant::now()).expect("sampled");
        span.set("kafka.api.name", "Produce");
        span.end();
        let (head, body) = tokio::time::timeout(Duration::from_secs(5), got.recv()).await.expect("exported in time").expect("request");
        assert!(head.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Content-Type: application/json") && head.contains("x-token: s3cret"), "{head}");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
        let attrs = &v["resourceSpans"][0]["resource"]["attributes"];
        assert_eq!(attrs[0], serde_json::json!({"key": "service.name", "value": {"stringValue": "test-broker"}}));
        assert!(attrs.as_array().expect("array").iter().any(|a| a["key"] == "service.instance.id"));
        assert_eq!(v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"], "kafka.Produce");
        exporter.shutdown().await;
        assert_eq!(tracer.stats().exported.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn full_batches_go_out_without_waiting_and_shutdown_flushes_the_rest() {
        let (addr, mut got) = receiver(200).await;
        let (tracer, exporter) = Tracer::start(config(&addr, 3_600_000, 2), vec![]);
        for _ in 0..3 {
            tracer.root_span("x".into(), SpanKind::Server, Instant::now()).expect("sampled").end();
        }
        let (_, body) = tokio::time::timeout(Duration::from_secs(5), got.recv()).await.expect("full batch sent").expect("request");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(v["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().map(Vec::len), Some(2));
        exporter.shutdown().await;
        let (_, body) = got.recv().await.expect("the rest at shutdown");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(v["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().map(Vec::len), Some(1));
        assert_eq!(tracer.stats().exported.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn refusals_and_unreachable_receivers_count_failures() {
        let (addr, _got) = receiver(503).await;
        let endpoint = Endpoint { authority: addr.clone(), path: "/v1/traces".into() };
        let err = post(&endpoint, &[], b"{}", Duration::from_secs(5)).await.expect_err("503 is a failure");
        assert!(matches!(err, ExportError::Refused { status: 503, .. }), "{err}");
        assert!(err.to_string().contains("nope 503"), "{err}");

        let (_, exporter) = {
            let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let dead = closed.local_addr().expect("addr").to_string();
            drop(closed);
            let (tracer, exporter) = Tracer::start(config(&dead, 10, 512), vec![]);
            tracer.root_span("x".into(), SpanKind::Server, Instant::now()).expect("sampled").end();
            (tracer, exporter)
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(exporter.stats().failed.load(Ordering::Relaxed), 1);
        exporter.shutdown().await;
    }

    #[tokio::test]
    async fn a_silent_receiver_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = Endpoint { authority: listener.local_addr().expect("addr").to_string(), path: "/".into() };
        let err = post(&endpoint, &[], b"{}", Duration::from_millis(100)).await.expect_err("no answer");
        assert!(matches!(err, ExportError::Timeout(..)), "{err}");
        drop(listener);
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status(b"HTTP/1.1 400\r\n"), Some(400));
        for bad in [&b""[..], b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 2000 OK\r\n", b"HTTP/2 200\r\n", b"\xff\xfe"] {
            assert_eq!(parse_status(bad), None);
        }
    }

    #[test]
    fn sampler_is_consulted_per_root() {
        let (tracer, _rx) = Tracer::for_tests(Sampler::TraceIdRatio(0.0), 4);
        assert!(tracer.root_span("x".into(), SpanKind::Server, Instant::now()).is_none());
    }
}
