//! From finished spans to the receiver: the OTLP exporter of opentelemetry-otlp for the
//! configured protocol (gRPC through tonic, HTTP through hyper, https with rustls), fed by a
//! span processor that never waits.
//!
//! Why not the SDK's BatchSpanProcessor: it exports from a thread of its own, outside the
//! tokio runtime the tonic and hyper clients need, and keeps its count of dropped spans to
//! itself. `QueueProcessor` hands each finished span to a bounded queue (`try_send`: a full
//! queue drops the span and counts it) and one task on the runtime batches them
//! (OTEL_BSP_MAX_EXPORT_BATCH_SIZE, or what arrived within OTEL_BSP_SCHEDULE_DELAY) and
//! awaits the exporter. A failed batch is dropped, counted and logged at most once a minute.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::config::{Protocol, TraceConfig};
use super::TraceStats;

const WARN_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("cannot read the CA certificate {path} (OTEL_EXPORTER_OTLP_CERTIFICATE): {reason}")]
    Certificate { path: String, reason: String },
    #[error("{0}")]
    Build(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("cannot use the CA certificate: {0}")]
    Tls(#[from] rustls::Error),
}

/// The OTLP span exporter `config` asks for. Needs a tokio runtime (tonic's channel starts
/// its worker there).
pub fn build_exporter(config: &TraceConfig) -> Result<opentelemetry_otlp::SpanExporter, ExporterError> {
    let ca_pem = match &config.certificate {
        Some(path) => Some(std::fs::read(path).map_err(|e| ExporterError::Certificate { path: path.display().to_string(), reason: e.to_string() })?),
        None => None,
    };
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match config.protocol {
        Protocol::Grpc => {
            // The system's CAs only when it has some: tonic refuses to build the channel over an
            // empty native store (a distroless image), even for an http:// endpoint.
            let mut tls = opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new();
            if !rustls_native_certs::load_native_certs().certs.is_empty() {
                tls = tls.with_native_roots();
            }
            if let Some(pem) = &ca_pem {
                tls = tls.ca_certificate(opentelemetry_otlp::tonic_types::transport::Certificate::from_pem(pem));
            }
            builder.with_tonic().with_protocol(opentelemetry_otlp::Protocol::Grpc).with_timeout(config.timeout).with_tls_config(tls).build()?
        }
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            let protocol = if config.protocol == Protocol::HttpJson { opentelemetry_otlp::Protocol::HttpJson } else { opentelemetry_otlp::Protocol::HttpBinary };
            let client = https_client(ca_pem.as_deref(), config)?;
            builder.with_http().with_protocol(protocol).with_timeout(config.timeout).with_http_client(client).build()?
        }
    };
    Ok(exporter)
}

/// An HTTP/1.1 client for http:// and https:// endpoints: rustls (ring) trusting the
/// system's CAs and the configured certificate.
fn https_client(ca_pem: Option<&[u8]>, config: &TraceConfig) -> Result<impl opentelemetry_http::HttpClient, ExporterError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are not fatal: a private CA may be all that is needed.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(pem) = ca_pem {
        let path = || config.certificate.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|e| ExporterError::Certificate { path: path(), reason: e.to_string() })?;
        if certs.is_empty() {
            return Err(ExporterError::Certificate { path: path(), reason: "no PEM certificate in the file".into() });
        }
        for cert in certs {
            roots.add(cert)?;
        }
    }
    // ring is the only rustls provider built in, so it is the default one.
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    Ok(opentelemetry_http::hyper::HyperClient::new(connector, config.timeout, None))
}

/// The span processor of the broker's tracer provider: queues without waiting.
#[derive(Debug)]
pub struct QueueProcessor {
    queue: mpsc::Sender<SpanData>,
    stats: Arc<TraceStats>,
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let counter = match self.queue.try_send(span) {
            Ok(()) => &self.stats.queued,
            Err(mpsc::error::TrySendError::Full(_)) => &self.stats.dropped,
            // the export task has stopped (shutdown): never exported
            Err(mpsc::error::TrySendError::Closed(_)) => &self.stats.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Owns the export task; `shutdown` exports what is queued and stops it.
pub struct Exporter {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    stats: Arc<TraceStats>,
    timeout: Duration,
}

struct Batcher<E> {
    exporter: E,
    max_batch: usize,
    schedule_delay: Duration,
    timeout: Duration,
    stats: Arc<TraceStats>,
    last_warning: Option<Instant>,
    failures_since_warning: u64,
}

impl Exporter {
    /// Starts the export task on the current runtime; returns the processor that feeds it.
    pub fn spawn<E>(mut exporter: E, resource: &Resource, config: &TraceConfig, stats: Arc<TraceStats>) -> (QueueProcessor, Exporter)
    where
        E: opentelemetry_sdk::trace::SpanExporter + 'static,
    {
        exporter.set_resource(resource);
        let (tx, rx) = mpsc::channel(config.max_queue_size.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let batcher = Batcher {
            exporter,
            max_batch: config.max_export_batch_size.max(1),
            schedule_delay: config.schedule_delay,
            timeout: config.timeout,
            stats: stats.clone(),
            last_warning: None,
            failures_since_warning: 0,
        };
        let task = tokio::spawn(batcher.run(rx, stop_rx));
        (QueueProcessor { queue: tx, stats: stats.clone() }, Exporter { stop: Some(stop_tx), task, stats, timeout: config.timeout })
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

impl<E: opentelemetry_sdk::trace::SpanExporter> Batcher<E> {
    async fn run(mut self, mut rx: mpsc::Receiver<SpanData>, mut stop: oneshot::Receiver<()>) {
        let mut batch: Vec<SpanData> = Vec::with_capacity(self.max_batch);
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
                            deadline = Some(tokio::time::Instant::now() + self.schedule_delay);
                        }
                        if batch.len() >= self.max_batch {
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
            if batch.len() >= self.max_batch {
                self.export(&mut batch).await;
            }
        }
        self.export(&mut batch).await;
        let _ = self.exporter.shutdown();
    }

    async fn export(&mut self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let spans = std::mem::replace(batch, Vec::with_capacity(self.max_batch));
        // The exporters apply the timeout themselves; this one also covers a stuck connect.
        let result = match tokio::time::timeout(self.timeout + Duration::from_secs(1), self.exporter.export(spans)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {:?} (OTEL_EXPORTER_OTLP_TIMEOUT)", self.timeout)),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanKind, TraceContextExt};
    use std::sync::Mutex;

    /// An exporter that records each batch's span names, optionally failing.
    #[derive(Debug, Clone, Default)]
    struct Batches {
        seen: Arc<Mutex<Vec<Vec<String>>>>,
        fail: bool,
    }

    impl opentelemetry_sdk::trace::SpanExporter for Batches {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.seen.lock().expect("not poisoned").push(batch.into_iter().map(|s| s.name.into_owned()).collect());
            if self.fail {
                Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure("refused".into()))
            } else {
                Ok(())
            }
        }
    }

    fn config(queue: usize, batch: usize, delay_ms: u64) -> TraceConfig {
        let vars = [
            ("OTEL_TRACES_EXPORTER".to_string(), "otlp".to_string()),
            ("OTEL_BSP_MAX_QUEUE_SIZE".to_string(), queue.to_string()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE".to_string(), batch.to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY".to_string(), delay_ms.to_string()),
        ];
        TraceConfig::from_env(vars).expect("valid").expect("enabled")
    }

    fn span(tracer: &super::super::Tracer, name: &'static str) {
        tracer.root_span(name.into(), SpanKind::Server, Instant::now(), vec![]).expect("sampled").end();
    }

    fn tracer(exporter: Batches, config: &TraceConfig) -> (super::super::Tracer, Exporter) {
        let stats = Arc::new(TraceStats::default());
        let (processor, task) = Exporter::spawn(exporter, &Resource::builder_empty().build(), config, stats.clone());
        (super::super::Tracer::with_processor(config.sampler, Resource::builder_empty().build(), processor, stats), task)
    }

    #[tokio::test]
    async fn full_batches_go_out_without_waiting_and_shutdown_flushes_the_rest() {
        let exporter = Batches::default();
        let (tracer, task) = tracer(exporter.clone(), &config(16, 2, 3_600_000));
        for name in ["a", "b", "c"] {
            span(&tracer, name);
        }
        for _ in 0..100 {
            if !exporter.seen.lock().expect("not poisoned").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*exporter.seen.lock().expect("not poisoned"), vec![vec!["a".to_string(), "b".to_string()]]);
        task.shutdown().await;
        assert_eq!(exporter.seen.lock().expect("not poisoned")[1], vec!["c".to_string()]);
        assert_eq!(tracer.stats().exported.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let exporter = Batches::default();
        // On a current-thread runtime the export task cannot run until this test yields.
        let (tracer, task) = tracer(exporter.clone(), &config(2, 2, 3_600_000));
        for _ in 0..5 {
            span(&tracer, "x");
        }
        assert_eq!(tracer.stats().queued.load(Ordering::Relaxed), 2);
        assert_eq!(tracer.stats().dropped.load(Ordering::Relaxed), 3);
        task.shutdown().await;
        assert_eq!(tracer.stats().exported.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_refused_batch_is_counted_as_failed_and_unsampled_spans_never_queue() {
        let exporter = Batches { fail: true, ..Default::default() };
        let (tracer, task) = tracer(exporter.clone(), &config(16, 16, 5));
        span(&tracer, "x");
        // A child of an unsampled remote parent is not sampled (parentbased) and never queued.
        let remote = opentelemetry::trace::SpanContext::new(
            opentelemetry::trace::TraceId::from(7),
            opentelemetry::trace::SpanId::from(9),
            opentelemetry::trace::TraceFlags::default(),
            true,
            Default::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(remote);
        let builder = opentelemetry::trace::Tracer::span_builder(&tracer.tracer, "unsampled");
        drop(opentelemetry::trace::Tracer::build_with_context(&tracer.tracer, builder, &cx));
        task.shutdown().await;
        assert_eq!(tracer.stats().queued.load(Ordering::Relaxed), 1);
        assert_eq!(tracer.stats().failed.load(Ordering::Relaxed), 1);
        assert_eq!(tracer.stats().exported.load(Ordering::Relaxed), 0);
    }
}
