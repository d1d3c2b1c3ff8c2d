//! The request log (`request.log.path`, off by default): one JSON line per completed request
//! with the fields of Kafka's kafka.request.logger "Completed request" line, written by a
//! background thread so the request path never waits on the disk.
use std::fs::{self, OpenOptions};
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

use serde::Serialize;

/// Lines waiting to be written; beyond this the request path drops lines (and counts them).
const QUEUE: usize = 16 * 1024;

pub struct RequestLog {
    tx: SyncSender<String>,
    pub dropped: AtomicU64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestHeaderFields<'a> {
    pub request_api_key: i16,
    pub request_api_version: i16,
    pub correlation_id: i32,
    pub client_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInformation<'a> {
    pub software_name: &'a str,
    pub software_version: &'a str,
}

/// One completed request, in Kafka's field names (times in milliseconds).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedRequest<'a> {
    pub timestamp: String,
    pub message: &'static str,
    pub request_header: RequestHeaderFields<'a>,
    pub api_name: &'a str,
    pub connection: &'a str,
    pub listener: &'a str,
    pub security_protocol: &'static str,
    pub principal: &'static str,
    pub client_information: ClientInformation<'a>,
    pub total_time_ms: f64,
    pub request_queue_time_ms: f64,
    pub local_time_ms: f64,
    pub remote_time_ms: f64,
    pub throttle_time_ms: f64,
    pub response_queue_time_ms: f64,
    pub send_time_ms: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Error name -> how many times it appears in the response (NONE included).
    pub error_codes: std::collections::BTreeMap<String, u64>,
}

impl RequestLog {
    /// Opens (appending) the file and starts the writer thread.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = sync_channel::<String>(QUEUE);
        let shown = path.display().to_string();
        std::thread::Builder::new().name("request-log".into()).spawn(move || {
            let mut w = LineWriter::new(file);
            for line in rx {
                if let Err(e) = w.write_all(line.as_bytes()).and_then(|_| w.write_all(b"\n")) {
                    tracing::error!(target: "kafka.request.logger", path = %shown, error = %e, "cannot write the request log; lines are lost until it recovers");
                }
            }
            let _ = w.flush();
        })?;
        Ok(Self { tx, dropped: AtomicU64::new(0) })
    }

    /// Queues one line; never blocks.
    /// Queues one line: a [`CompletedRequest`], or the REST proxy's [`CompletedHttpRequest`].
    pub fn write<T: Serialize>(&self, entry: &T) {
        let Ok(line) = serde_json::to_string(entry) else { return };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One completed REST proxy request: the HTTP route (the template, e.g.
/// `/v3/clusters/{cluster_id}/topics/{topic_name}/records`) beside the path itself. The Kafka
/// requests the proxy sent for it have their own lines (client id `lantern-rest-proxy`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedHttpRequest<'a> {
    pub timestamp: String,
    pub message: &'static str,
    pub listener: &'static str,
    pub method: &'a str,
    pub route: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub principal: &'a str,
    pub client_address: Option<String>,
    /// Until the response head was ready (a streamed body goes on after it).
    pub total_time_ms: f64,
    /// Content-Length when the client sent one.
    pub request_bytes: Option<u64>,
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, now.subsec_millis())
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T", "{t}");
    }
}
