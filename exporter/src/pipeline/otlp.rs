//! Optional OTLP logs export (`--pipeline.otlp-endpoint`): spooled events as OTLP/HTTP JSON
//! log records POSTed to `<endpoint>/v1/logs`, with their own spool cursor, so delivery is
//! at-least-once and independent of the Kafka topic. Plain `http://` only (run an
//! OpenTelemetry Collector nearby for TLS or gRPC); the HTTP client is one request per
//! connection, as the broker's span exporter does.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::spool::{Batch, SpoolReader};
use super::timefmt;

const MAX_BATCH_EVENTS: usize = 500;
const MAX_BATCH_BYTES: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where logs are POSTed: `host:port` and the request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub authority: String,
    pub path: String,
}

/// `http://host:port[/base]` -> POST to `/base/v1/logs` (OTEL_EXPORTER_OTLP_ENDPOINT's rule);
/// a URL already ending in `/v1/logs` is taken as it is.
pub fn parse_endpoint(url: &str) -> Result<Endpoint, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url:?}: only http:// endpoints are supported (put an OpenTelemetry Collector in front for https or gRPC)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    let authority = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    let path = if path.ends_with("/v1/logs") { path.to_string() } else { format!("{}/v1/logs", path.trim_end_matches('/')) };
    Ok(Endpoint { authority, path })
}

#[derive(Debug, Default)]
pub struct OtlpStats {
    pub exported: AtomicU64,
    pub errors: AtomicU64,
}

/// OpenTelemetry severity numbers for the level names logs use.
fn severity(level: &str) -> u32 {
    match level.to_ascii_uppercase().as_str() {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" | "WARNING" => 13,
        "ERROR" => 17,
        "FATAL" => 21,
        _ => 0,
    }
}

fn any_value(v: &Value) -> Value {
    match v {
        Value::String(s) => json!({"stringValue": s}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        other => json!({"stringValue": other.to_string()}),
    }
}

/// One event -> one OTLP LogRecord: timestamp, level -> severity, message -> body, every other
/// field -> an attribute (nested objects as JSON text).
pub fn log_record(event: &str, now_ms: i64) -> Value {
    let obj: Map<String, Value> = match serde_json::from_str(event) {
        Ok(Value::Object(o)) => o,
        _ => {
            let mut m = Map::new();
            m.insert("message".into(), Value::String(event.into()));
            m
        }
    };
    let ts_ms = obj.get("timestamp").and_then(Value::as_str).and_then(timefmt::parse_rfc3339_ms);
    let ns = |ms: i64| (ms as i128 * 1_000_000).to_string();
    let mut rec = Map::new();
    if let Some(ms) = ts_ms {
        rec.insert("timeUnixNano".into(), Value::String(ns(ms)));
    }
    rec.insert("observedTimeUnixNano".into(), Value::String(ns(now_ms)));
    if let Some(level) = obj.get("level").and_then(Value::as_str) {
        rec.insert("severityText".into(), Value::String(level.into()));
        rec.insert("severityNumber".into(), json!(severity(level)));
    }
    if let Some(msg) = obj.get("message") {
        rec.insert("body".into(), any_value(msg));
    }
    let attrs: Vec<Value> = obj
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "timestamp" | "level" | "message"))
        .map(|(k, v)| json!({"key": k, "value": any_value(v)}))
        .collect();
    rec.insert("attributes".into(), Value::Array(attrs));
    Value::Object(rec)
}

/// The ExportLogsServiceRequest body for a batch.
pub fn request_body(events: &[String], host: &str, broker_id: Option<&str>, now_ms: i64) -> Vec<u8> {
    let mut resource = vec![json!({"key": "service.name", "value": {"stringValue": "lantern-broker"}}), json!({"key": "host.name", "value": {"stringValue": host}})];
    if let Some(id) = broker_id {
        resource.push(json!({"key": "service.instance.id", "value": {"stringValue": id}}));
    }
    let records: Vec<Value> = events.iter().map(|e| log_record(e, now_ms)).collect();
    let body = json!({"resourceLogs": [{
        "resource": {"attributes": resource},
        "scopeLogs": [{"scope": {"name": "lantern-exporter", "version": env!("CARGO_PKG_VERSION")}, "logRecords": records}]
    }]});
    body.to_string().into_bytes()
}

#[derive(Clone, Debug)]
pub struct OtlpConfig {
    pub endpoint: Endpoint,
    pub host: String,
    pub broker_id: Option<String>,
}

enum Outcome {
    Accepted,
    /// 4xx other than 408/429: this batch will never be accepted as it is.
    Refused(u16),
}

pub async fn run(cfg: OtlpConfig, spool: SpoolReader, stats: Arc<OtlpStats>, mut shutdown: watch::Receiver<bool>) {
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
        let body = request_body(&batch.events, &cfg.host, cfg.broker_id.as_deref(), timefmt::now_ms());
        match post(&cfg.endpoint, &body).await {
            Ok(Outcome::Accepted) => {
                ack(&spool, &batch, false, &stats);
                max_events = MAX_BATCH_EVENTS;
                backoff = Duration::from_millis(250);
                if failing {
                    tracing::info!(target: "lantern.exporter.pipeline", endpoint = %cfg.endpoint.authority, "OTLP receiver accepts logs again");
                    failing = false;
                }
            }
            Ok(Outcome::Refused(status)) if batch.events.len() > 1 => {
                tracing::warn!(target: "lantern.exporter.pipeline", status, events = batch.events.len(), "OTLP receiver refused a batch; retrying in smaller batches");
                max_events = (batch.events.len() / 2).max(1);
            }
            Ok(Outcome::Refused(status)) => {
                tracing::error!(target: "lantern.exporter.pipeline", status, "OTLP receiver refuses this event for good; dropped and counted in lantern_pipeline_events_dropped_total");
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

async fn post(endpoint: &Endpoint, body: &[u8]) -> Result<Outcome, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(&endpoint.authority).await.map_err(|e| format!("cannot connect to {}: {e}", endpoint.authority))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: lantern-exporter/{}\r\n\r\n",
            endpoint.path,
            endpoint.authority,
            body.len(),
            env!("CARGO_PKG_VERSION")
        );
        let io = |e: std::io::Error| format!("OTLP request to {} failed: {e}", endpoint.authority);
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        stream.write_all(body).await.map_err(io)?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 1024];
        while !response.windows(2).any(|w| w == b"\r\n") && response.len() < 8192 {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&response);
        let status: u16 = line
            .strip_prefix("HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("{} did not answer HTTP", endpoint.authority))?;
        match status {
            200..=299 => Ok(Outcome::Accepted),
            408 | 429 => Err(format!("OTLP receiver answered {status}; retrying")),
            400..=499 => Ok(Outcome::Refused(status)),
            _ => Err(format!("OTLP receiver answered {status}")),
        }
    };
    tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| format!("OTLP receiver did not answer within {TIMEOUT:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_logs_path() {
        assert_eq!(parse_endpoint("http://localhost:4318").unwrap(), Endpoint { authority: "localhost:4318".into(), path: "/v1/logs".into() });
        assert_eq!(parse_endpoint("http://c/otlp/").unwrap().path, "/otlp/v1/logs");
        assert_eq!(parse_endpoint("http://c:1/v1/logs").unwrap().path, "/v1/logs");
        assert!(parse_endpoint("https://c:4318").is_err());
    }

    #[test]
    fn events_become_log_records() {
        let ev = r#"{"timestamp":"1970-01-01T00:00:01.5Z","level":"WARN","message":"disk slow","target":"kafka.log.LogManager","partition":3,"host":"h"}"#;
        let r = log_record(ev, 2000);
        assert_eq!(r["timeUnixNano"], "1500000000");
        assert_eq!(r["observedTimeUnixNano"], "2000000000");
        assert_eq!((r["severityText"].as_str(), r["severityNumber"].as_u64()), (Some("WARN"), Some(13)));
        assert_eq!(r["body"]["stringValue"], "disk slow");
        let attrs = r["attributes"].as_array().unwrap();
        assert!(attrs.contains(&json!({"key": "partition", "value": {"intValue": "3"}})));
        assert!(attrs.contains(&json!({"key": "target", "value": {"stringValue": "kafka.log.LogManager"}})));
    }
}
