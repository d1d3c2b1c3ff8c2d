//! Optional OTLP logs export (`--pipeline.otlp-endpoint`): spooled events become the
//! OpenTelemetry SDK's log records, sent by opentelemetry-otlp's log exporter over the
//! protocol asked for (`--pipeline.otlp-protocol`: grpc, http/protobuf or http/json; https
//! with rustls and `--pipeline.otlp-certificate`). Headers, compression and the timeout come
//! from the standard `OTEL_EXPORTER_OTLP_[LOGS_]*` variables, which the crate reads (checked at
//! start-up by `otel_env`, the same checks as the broker's tracing).
//!
//! The exporter is called directly, batch by batch from the spool with its own cursor, rather
//! than through the SDK's batch processor: an event leaves the spool only once the receiver
//! has accepted it, so delivery is at-least-once and survives restarts and receiver outages.
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _, SdkLogRecord, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::Resource;
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::spool::{Batch, SpoolReader};
use super::timefmt;

const MAX_BATCH_EVENTS: usize = 500;
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// The service of the log records when the environment names none: the broker's, whose logs
/// these are (its traces use the same default, so logs and traces correlate).
pub const DEFAULT_SERVICE_NAME: &str = "lantern-broker";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Protocol {
    pub fn parse(value: &str) -> Result<Protocol, String> {
        match value {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Ok(Protocol::HttpJson),
            _ => Err(format!("{value:?}: expected grpc, http/protobuf or http/json")),
        }
    }
}

/// Checks an `http://` or `https://` URL (the crates parse it in full when the export starts).
pub fn check_endpoint(url: &str) -> Result<String, String> {
    if super::otel_env::is_http_url(url) {
        Ok(url.to_string())
    } else {
        Err(format!("{url:?}: expected an http:// or https:// URL, e.g. http://127.0.0.1:4318"))
    }
}

/// The URL logs are sent to: over HTTP, `<url>/v1/logs` (OTEL_EXPORTER_OTLP_ENDPOINT's rule)
/// unless the URL already ends so; over gRPC the URL itself.
pub fn logs_url(url: &str, protocol: Protocol) -> String {
    if protocol == Protocol::Grpc || url.ends_with("/v1/logs") {
        url.to_string()
    } else {
        format!("{}/v1/logs", url.trim_end_matches('/'))
    }
}

#[derive(Debug, Default)]
pub struct OtlpStats {
    pub exported: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Clone, Debug)]
pub struct OtlpConfig {
    pub endpoint: String,
    pub protocol: Protocol,
    /// A PEM file of CAs trusted for https besides the system's.
    pub certificate: Option<PathBuf>,
    pub host: String,
    pub broker_id: Option<String>,
    /// Per export (OTEL_EXPORTER_OTLP_LOGS_TIMEOUT, else OTEL_EXPORTER_OTLP_TIMEOUT, in ms).
    pub timeout: Duration,
    /// OTEL_SERVICE_NAME, else `service.name` in OTEL_RESOURCE_ATTRIBUTES, else
    /// [`DEFAULT_SERVICE_NAME`] (otel_env::service_name).
    pub service_name: String,
}

/// The OTLP log exporter `cfg` asks for, its resource set. Needs a tokio runtime.
pub fn build_exporter(cfg: &OtlpConfig) -> Result<opentelemetry_otlp::LogExporter, String> {
    let ca_pem = match &cfg.certificate {
        Some(path) => Some(std::fs::read(path).map_err(|e| format!("cannot read the CA certificate {}: {e}", path.display()))?),
        None => None,
    };
    let url = logs_url(&cfg.endpoint, cfg.protocol);
    let builder = opentelemetry_otlp::LogExporter::builder();
    let built = match cfg.protocol {
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
            builder.with_tonic().with_protocol(opentelemetry_otlp::Protocol::Grpc).with_endpoint(url).with_timeout(cfg.timeout).with_tls_config(tls).build()
        }
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            let protocol = if cfg.protocol == Protocol::HttpJson { opentelemetry_otlp::Protocol::HttpJson } else { opentelemetry_otlp::Protocol::HttpBinary };
            let client = https_client(ca_pem.as_deref(), cfg.timeout)?;
            builder.with_http().with_protocol(protocol).with_endpoint(url).with_timeout(cfg.timeout).with_http_client(client).build()
        }
    };
    let mut exporter = built.map_err(|e| e.to_string())?;
    exporter.set_resource(&resource(cfg));
    Ok(exporter)
}

/// The resource of the log records: the SDK's (OTEL_RESOURCE_ATTRIBUTES, telemetry.sdk.*), the
/// service name by the spec's precedence, the host and the broker id unless the environment's
/// resource attributes set them.
fn resource(cfg: &OtlpConfig) -> Resource {
    let mut defaults = vec![KeyValue::new("host.name", cfg.host.clone())];
    defaults.extend(cfg.broker_id.clone().map(|id| KeyValue::new("service.instance.id", id)));
    super::otel_env::resource(cfg.service_name.clone(), defaults)
}

/// An HTTP/1.1 client for http:// and https://: rustls (ring) trusting the system's CAs and
/// the configured certificate.
fn https_client(ca_pem: Option<&[u8]>, timeout: Duration) -> Result<impl opentelemetry_http::HttpClient, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(pem) = ca_pem {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|e| format!("the CA certificate: {e}"))?;
        if certs.is_empty() {
            return Err("the CA certificate file holds no PEM certificate".into());
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("the CA certificate: {e}"))?;
        }
    }
    // ring is the only rustls provider built in, so it is the default one.
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    Ok(opentelemetry_http::hyper::HyperClient::new(connector, timeout, None))
}

/// OpenTelemetry severities for the level names logs use (static: the SDK keeps the text).
fn severity(level: &str) -> Option<(&'static str, Severity)> {
    Some(match level.to_ascii_uppercase().as_str() {
        "TRACE" => ("TRACE", Severity::Trace),
        "DEBUG" => ("DEBUG", Severity::Debug),
        "INFO" => ("INFO", Severity::Info),
        "WARN" | "WARNING" => ("WARN", Severity::Warn),
        "ERROR" => ("ERROR", Severity::Error),
        "FATAL" => ("FATAL", Severity::Fatal),
        _ => return None,
    })
}

fn any_value(v: &Value) -> AnyValue {
    match v {
        Value::String(s) => AnyValue::from(s.clone()),
        Value::Bool(b) => AnyValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AnyValue::Int(i),
            None => AnyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        other => AnyValue::from(other.to_string()),
    }
}

fn at_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// One event -> one log record: timestamp, level -> severity, message -> body, every other
/// field -> an attribute (nested objects as JSON text); a line that is not a JSON object is
/// the body.
pub fn log_record(logger: &SdkLogger, event: &str, now_ms: i64) -> SdkLogRecord {
    let obj: Map<String, Value> = match serde_json::from_str(event) {
        Ok(Value::Object(o)) => o,
        _ => Map::from_iter([("message".to_string(), Value::String(event.into()))]),
    };
    let mut rec = logger.create_log_record();
    if let Some(ms) = obj.get("timestamp").and_then(Value::as_str).and_then(timefmt::parse_rfc3339_ms) {
        rec.set_timestamp(at_ms(ms));
    }
    rec.set_observed_timestamp(at_ms(now_ms));
    if let Some((text, number)) = obj.get("level").and_then(Value::as_str).and_then(severity) {
        rec.set_severity_text(text);
        rec.set_severity_number(number);
    }
    if let Some(msg) = obj.get("message") {
        rec.set_body(any_value(msg));
    }
    for (k, v) in obj.iter().filter(|(k, _)| !matches!(k.as_str(), "timestamp" | "level" | "message")) {
        rec.add_attribute(k.clone(), any_value(v));
    }
    rec
}

enum Outcome {
    Accepted,
    /// The receiver refuses this batch for good (HTTP 4xx other than 408/429, or a gRPC
    /// code that says the request itself is wrong): it will never be accepted as it is.
    Refused(String),
}

/// Whether an export error of opentelemetry-otlp is a refusal of the batch (its messages are
/// the only place the HTTP status or gRPC code appears).
fn refused(message: &str) -> bool {
    if let Some(code) = message.split("status code: ").nth(1).and_then(|rest| rest.get(..3)).and_then(|c| c.parse::<u16>().ok()) {
        return (400..500).contains(&code) && code != 408 && code != 429;
    }
    ["gRPC code: InvalidArgument", "gRPC code: FailedPrecondition", "gRPC code: Unimplemented", "gRPC code: PermissionDenied", "gRPC code: Unauthenticated", "gRPC code: NotFound"]
        .iter()
        .any(|c| message.contains(c))
}

/// Exports the spool's events with `exporter` (built at start-up by [`build_exporter`], so a
/// bad setting stops the process instead of leaving events in the spool) until `shutdown`.
pub async fn run(
    exporter: opentelemetry_otlp::LogExporter,
    cfg: OtlpConfig,
    spool: SpoolReader,
    stats: Arc<OtlpStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    // A logger only to make records: it has no processor, records go to the exporter by hand.
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger_with_scope(InstrumentationScope::builder("lantern-exporter").with_version(env!("CARGO_PKG_VERSION")).build());
    let scope = InstrumentationScope::builder("lantern-exporter").with_version(env!("CARGO_PKG_VERSION")).build();
    let mut backoff = Duration::from_millis(250);
    let mut max_events = MAX_BATCH_EVENTS;
    let mut failing = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let batch = match spool.read_batch(max_events, MAX_BATCH_BYTES) {
            Ok(Some(b)) => b,
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
            Err(e) => {
                tracing::error!(target: "lantern.exporter.pipeline", error = %e, "cannot read the spool for OTLP; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let now = timefmt::now_ms();
        let records: Vec<SdkLogRecord> = batch.events.iter().map(|e| log_record(&logger, e, now)).collect();
        let pairs: Vec<(&SdkLogRecord, &InstrumentationScope)> = records.iter().map(|r| (r, &scope)).collect();
        // the crate retries until its timeout, and an attempt begun just before it may run a
        // whole timeout more: twice the timeout and a second before giving up on it
        let limit = cfg.timeout * 2 + Duration::from_secs(1);
        let result = match tokio::time::timeout(limit, exporter.export(LogBatch::new(&pairs))).await {
            Ok(Ok(())) => Ok(Outcome::Accepted),
            Ok(Err(e)) if refused(&e.to_string()) => Ok(Outcome::Refused(e.to_string())),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        match result {
            Ok(Outcome::Accepted) => {
                ack(&spool, &batch, false, &stats);
                max_events = MAX_BATCH_EVENTS;
                backoff = Duration::from_millis(250);
                if failing {
                    tracing::info!(target: "lantern.exporter.pipeline", endpoint = %cfg.endpoint, "OTLP receiver accepts logs again");
                    failing = false;
                }
            }
            Ok(Outcome::Refused(error)) if batch.events.len() > 1 => {
                tracing::warn!(target: "lantern.exporter.pipeline", %error, events = batch.events.len(), "OTLP receiver refused a batch; retrying in smaller batches");
                max_events = (batch.events.len() / 2).max(1);
            }
            Ok(Outcome::Refused(error)) => {
                tracing::error!(target: "lantern.exporter.pipeline", %error, "OTLP receiver refuses this event for good; dropped and counted in lantern_pipeline_events_dropped_total");
                ack(&spool, &batch, true, &stats);
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    tracing::warn!(target: "lantern.exporter.pipeline", error = %e, "cannot export logs over OTLP; retrying with backoff, events wait in the spool");
                    failing = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn ack(spool: &SpoolReader, batch: &Batch, refused: bool, stats: &OtlpStats) {
    spool.ack(batch, refused);
    if !refused {
        stats.exported.fetch_add(batch.events.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_logs_path_over_http_only() {
        assert_eq!(logs_url("http://localhost:4318", Protocol::HttpProtobuf), "http://localhost:4318/v1/logs");
        assert_eq!(logs_url("https://c/otlp/", Protocol::HttpJson), "https://c/otlp/v1/logs");
        assert_eq!(logs_url("http://c:1/v1/logs", Protocol::HttpProtobuf), "http://c:1/v1/logs");
        assert_eq!(logs_url("http://c:4317", Protocol::Grpc), "http://c:4317");
        assert!(check_endpoint("https://c:4318").is_ok());
        for bad in ["c:4318", "ftp://c", "http://"] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
        assert!(Protocol::parse("thrift").is_err());
    }

    #[test]
    fn events_become_log_records() {
        let provider = SdkLoggerProvider::builder().build();
        let logger = provider.logger("test");
        let ev = r#"{"timestamp":"1970-01-01T00:00:01.5Z","level":"WARN","message":"disk slow","target":"kafka.log.LogManager","partition":3,"ratio":0.5}"#;
        let r = log_record(&logger, ev, 2000);
        assert_eq!(r.timestamp(), Some(at_ms(1500)));
        assert_eq!(r.observed_timestamp(), Some(at_ms(2000)));
        assert_eq!((r.severity_text(), r.severity_number()), (Some("WARN"), Some(Severity::Warn)));
        assert_eq!(r.body(), Some(&AnyValue::from("disk slow".to_string())));
        let attrs: Vec<(String, AnyValue)> = r.attributes_iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        assert!(attrs.contains(&("partition".into(), AnyValue::Int(3))), "{attrs:?}");
        assert!(attrs.contains(&("ratio".into(), AnyValue::Double(0.5))), "{attrs:?}");
        assert!(attrs.contains(&("target".into(), AnyValue::from("kafka.log.LogManager".to_string()))), "{attrs:?}");
        let plain = log_record(&logger, "not json", 2000);
        assert_eq!((plain.body(), plain.severity_number()), (Some(&AnyValue::from("not json".to_string())), None));
    }

    #[test]
    fn refusals_are_told_from_outages() {
        assert!(refused("HTTP export failed with status code: 400"));
        assert!(!refused("HTTP export failed with status code: 429"));
        assert!(!refused("HTTP export failed with status code: 503"));
        assert!(refused("TonicLogsClient export failed with gRPC code: InvalidArgument"));
        assert!(!refused("TonicLogsClient export failed with gRPC code: Unavailable: connection refused"));
        assert!(!refused("connection refused"));
    }
}
