//! The log-analytics pipeline: tails the broker's JSON logs and request log, derives metrics,
//! and ships every event to a topic on the broker (and optionally to an OTLP receiver).
//!
//! tail (files by inode, rotation) -> event (parse, enrich) -> derived (metrics) -> spool
//! (disk queue) -> ship (librdkafka, acks=all) and otlp (OTLP logs), each with its own
//! spool cursor; reader runs the first four on one thread and writes the checkpoint; kafka holds
//! the librdkafka settings both Kafka clients share; query is the `lantern-exporter logs`
//! command reading the topic back; otel_env (the broker's source file) checks the OTEL_*
//! variables opentelemetry-otlp reads.
pub mod checkpoint;
pub mod derived;
pub mod event;
pub mod kafka;
pub mod otlp;
// The OTEL_* checks and service-name rule the broker's tracing uses: one source, two crates.
#[path = "../../../broker/src/telemetry/otel_env.rs"]
pub mod otel_env;
pub mod query;
pub mod reader;
pub mod ship;
pub mod slowest;
pub mod spool;
pub mod tail;
pub mod timefmt;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::exposition::{MetricType, MetricWriter};
use checkpoint::Checkpoint;
use derived::Derived;
use event::{Origin, SourceKind};
use reader::{Reader, Source};
use ship::{ShipConfig, ShipStats};
use otlp::{OtlpConfig, OtlpStats};
use spool::SpoolReader;

pub const DEFAULT_TOPIC: &str = "__lantern_logs";
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";
pub const DEFAULT_CHECKPOINT: &str = "lantern-exporter.checkpoint";
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The `--pipeline.*` flags.
#[derive(Debug, Clone)]
pub struct PipelineArgs {
    pub log_files: Vec<PathBuf>,
    pub request_logs: Vec<PathBuf>,
    pub checkpoint: PathBuf,
    pub host: Option<String>,
    pub broker_id: Option<String>,
    pub bootstrap: String,
    pub topic: String,
    /// `--pipeline.ship=false`: derive metrics only.
    pub ship: bool,
    pub spool_max_bytes: u64,
    pub poll_interval: Duration,
    pub linger: Duration,
    /// `--pipeline.otlp-endpoint`: also export events as OTLP logs.
    pub otlp_endpoint: Option<String>,
    /// `--pipeline.otlp-protocol` (default http/protobuf, the OTLP default).
    pub otlp_protocol: otlp::Protocol,
    /// `--pipeline.otlp-certificate`: CAs trusted for https besides the system's.
    pub otlp_certificate: Option<PathBuf>,
}

impl Default for PipelineArgs {
    fn default() -> Self {
        PipelineArgs {
            log_files: Vec::new(),
            request_logs: Vec::new(),
            checkpoint: PathBuf::from(DEFAULT_CHECKPOINT),
            host: None,
            broker_id: None,
            bootstrap: DEFAULT_BOOTSTRAP.into(),
            topic: DEFAULT_TOPIC.into(),
            ship: true,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            poll_interval: Duration::from_millis(250),
            linger: Duration::from_millis(1000),
            otlp_endpoint: None,
            otlp_protocol: otlp::Protocol::HttpProtobuf,
            otlp_certificate: None,
        }
    }
}

pub const USAGE: &str = "Log pipeline flags:
  --pipeline.log-file=PATH          broker JSON log (--log-format json) to tail; repeatable
  --pipeline.request-log=PATH       broker request log (--request-log) to tail; repeatable
  --pipeline.checkpoint=PATH        offsets + derived counters (default ./lantern-exporter.checkpoint;
                                    the spool of unshipped events is PATH.spool)
  --pipeline.host=NAME              host added to every event (default: this machine's hostname)
  --pipeline.broker-id=ID           broker id added to every event
  --pipeline.bootstrap-server=H:P[,H:P...]
                                    brokers of the cluster the events are shipped to; the
                                    partition leaders are found from them (default 127.0.0.1:9092)
  --pipeline.topic=NAME             topic the events go to (default __lantern_logs)
  --pipeline.ship=false             derive metrics only, ship nothing
  --pipeline.spool-max-bytes=N      unshipped events kept on disk before dropping (default 256 MiB)
  --pipeline.poll-interval-ms=N     how often files are checked for new lines (default 250)
  --pipeline.linger-ms=N            pause after a produce that was not a full batch (default 1000)
  --pipeline.otlp-endpoint=URL      also export events as OTLP logs, e.g. http://127.0.0.1:4318
                                    (HTTP: to URL/v1/logs); http:// or https://
  --pipeline.otlp-protocol=P        grpc, http/protobuf (default) or http/json
  --pipeline.otlp-certificate=PATH  PEM CAs trusted for https besides the system's
                                    (else OTEL_EXPORTER_OTLP_[LOGS_]CERTIFICATE; headers,
                                    compression, timeout: OTEL_EXPORTER_OTLP_[LOGS_]*)";

impl PipelineArgs {
    /// Takes one `--pipeline.<name>=<value>` flag; an error names what is wrong with it.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let name = name.strip_prefix("pipeline.").unwrap_or(name);
        let nonempty = |v: &str| if v.is_empty() { Err("needs a non-empty value".to_string()) } else { Ok(v.to_string()) };
        match name {
            "log-file" => self.log_files.push(nonempty(value)?.into()),
            "request-log" => self.request_logs.push(nonempty(value)?.into()),
            "checkpoint" => self.checkpoint = nonempty(value)?.into(),
            "host" => self.host = Some(nonempty(value)?),
            "broker-id" => self.broker_id = Some(nonempty(value)?),
            "bootstrap-server" => self.bootstrap = nonempty(value)?,
            "topic" => self.topic = nonempty(value)?,
            "ship" => {
                self.ship = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("expected true or false, got {value:?}")),
                }
            }
            "spool-max-bytes" => self.spool_max_bytes = value.parse().map_err(|_| format!("expected a number of bytes, got {value:?}"))?,
            "otlp-endpoint" => self.otlp_endpoint = Some(otlp::check_endpoint(value)?),
            "otlp-protocol" => self.otlp_protocol = otlp::Protocol::parse(value)?,
            "otlp-certificate" => self.otlp_certificate = Some(nonempty(value)?.into()),
            "linger-ms" => {
                let ms: u64 = value.parse().map_err(|_| format!("expected milliseconds, got {value:?}"))?;
                self.linger = Duration::from_millis(ms);
            }
            "poll-interval-ms" => {
                let ms: u64 = value.parse().map_err(|_| format!("expected milliseconds, got {value:?}"))?;
                self.poll_interval = Duration::from_millis(ms.max(1));
            }
            _ => return Err(format!("unknown pipeline flag --pipeline.{name}\n{USAGE}")),
        }
        Ok(())
    }

    /// Whether any log file was named, i.e. whether the pipeline runs at all.
    pub fn enabled(&self) -> bool {
        !self.log_files.is_empty() || !self.request_logs.is_empty()
    }

    fn spool_path(&self) -> PathBuf {
        let mut p = self.checkpoint.as_os_str().to_owned();
        p.push(".spool");
        PathBuf::from(p)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("cannot open the spool {path} (kept beside --pipeline.checkpoint): {source}")]
    Spool { path: PathBuf, source: std::io::Error },
    #[error("cannot start the pipeline reader thread: {0}")]
    Thread(std::io::Error),
    #[error("the OTLP log exporter (--pipeline.otlp-*, OTEL_EXPORTER_OTLP_*): {0}")]
    Otlp(String),
}

/// A running pipeline. Its metrics are appended to every /metrics scrape.
pub struct Pipeline {
    derived: Arc<Mutex<Derived>>,
    spool: SpoolReader,
    ship: Arc<ShipStats>,
    shipping: bool,
    otlp: Option<(SpoolReader, Arc<OtlpStats>)>,
    stop: Arc<AtomicBool>,
    reader: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Pipeline {
    /// Loads the checkpoint, starts the reader thread and (inside the current tokio runtime)
    /// the shipper.
    pub fn start(args: &PipelineArgs, shutdown: watch::Receiver<bool>) -> Result<Arc<Pipeline>, PipelineError> {
        // The OTLP exporter first: a setting it cannot use stops start-up, before any event
        // waits in the spool for an exporter that will never run.
        let host = args.host.clone().unwrap_or_else(hostname);
        let otlp = match &args.otlp_endpoint {
            Some(endpoint) => {
                let env: otel_env::Env = &otel_env::process_env;
                let bad_env = |e: otel_env::EnvError| PipelineError::Otlp(e.to_string());
                otel_env::check_compression(env, &otel_env::LOGS).map_err(bad_env)?;
                otel_env::check_headers(env, &otel_env::LOGS).map_err(bad_env)?;
                let cfg = OtlpConfig {
                    endpoint: endpoint.clone(),
                    protocol: args.otlp_protocol,
                    // the flag, else OTEL_EXPORTER_OTLP_[LOGS_]CERTIFICATE
                    certificate: args.otlp_certificate.clone().or_else(|| otel_env::first(env, otel_env::LOGS.certificate).map(|(_, p)| p.into())),
                    host: host.clone(),
                    broker_id: args.broker_id.clone(),
                    timeout: otel_env::export_timeout(env, &otel_env::LOGS).map_err(bad_env)?,
                    service_name: otel_env::service_name(env, otlp::DEFAULT_SERVICE_NAME),
                };
                Some((otlp::build_exporter(&cfg).map_err(PipelineError::Otlp)?, cfg))
            }
            None => None,
        };
        let ck = Checkpoint::load(&args.checkpoint)?.unwrap_or_default();
        let spool_path = args.spool_path();
        let spool::Opened { writer, kafka: spool_reader, otlp: otlp_reader, lost } =
            spool::open(&spool_path, ck.spool, args.spool_max_bytes, args.ship, args.otlp_endpoint.is_some())
                .map_err(|source| PipelineError::Spool { path: spool_path.clone(), source })?;
        let mut derived = ck.derived.clone();
        derived.events_dropped += lost;
        let named = |p: &Path| p.display().to_string();
        let sources: Vec<Source> = args
            .log_files
            .iter()
            .map(|p| (p, SourceKind::BrokerLog))
            .chain(args.request_logs.iter().map(|p| (p, SourceKind::RequestLog)))
            .map(|(p, kind)| Source { tailer: tail::Tailer::new(p.clone(), ck.files.get(&named(p))), kind, name: named(p), failing: false })
            .collect();
        for s in &sources {
            // Every configured file has its series from the start, at 0.
            derived.watch_file(&s.name);
        }
        let derived = Arc::new(Mutex::new(derived));
        let origin = Origin { host, broker_id: args.broker_id.clone() };
        tracing::info!(target: "lantern.exporter.pipeline", files = sources.len(), checkpoint = %args.checkpoint.display(),
            resumed = !ck.files.is_empty(), topic = %args.topic, bootstrap = %args.bootstrap, shipping = args.ship, "log pipeline starting");
        let reader = Reader {
            sources,
            origin: origin.clone(),
            spool: writer,
            derived: derived.clone(),
            checkpoint_path: args.checkpoint.clone(),
            poll_interval: args.poll_interval,
            last_saved: None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("pipeline-reader".into())
            .spawn(move || reader.run(stop2))
            .map_err(PipelineError::Thread)?;
        let stats = Arc::new(ShipStats::default());
        if args.ship {
            let cfg = ShipConfig { bootstrap: args.bootstrap.clone(), topic: args.topic.clone(), key: Some(origin.host.clone()), linger: args.linger };
            tokio::spawn(ship::run(cfg, spool_reader.clone(), stats.clone(), shutdown.clone()));
        }
        let otlp_stats = Arc::new(OtlpStats::default());
        if let Some((exporter, cfg)) = otlp {
            tokio::spawn(otlp::run(exporter, cfg, otlp_reader.clone(), otlp_stats.clone(), shutdown));
        }
        Ok(Arc::new(Pipeline {
            derived,
            spool: spool_reader,
            ship: stats,
            shipping: args.ship,
            otlp: args.otlp_endpoint.as_ref().map(|_| (otlp_reader, otlp_stats)),
            stop,
            reader: Mutex::new(Some(handle)),
        }))
    }

    /// Stops reading and writes a last checkpoint.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }

    pub fn render(&self, out: &mut MetricWriter) {
        let derived = self.derived.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut d = derived;
        d.events_dropped += self.spool.refused() + self.otlp.as_ref().map_or(0, |(r, _)| r.refused());
        d.render(out, timefmt::now_ms());
        let ship = &self.ship;
        out.single("lantern_pipeline_events_shipped_total", "Events the broker acknowledged (acks=all) since this process started.", MetricType::Counter, ship.shipped.load(Ordering::Relaxed) as f64);
        out.single("lantern_pipeline_ship_errors_total", "Failed connection attempts and produce requests since this process started.", MetricType::Counter, ship.errors.load(Ordering::Relaxed) as f64);
        out.single("lantern_pipeline_queue_events", "Events read and spooled but not yet acknowledged by the broker.", MetricType::Gauge, self.spool.queued_events() as f64);
        let up = self.shipping && ship.broker_up.load(Ordering::Relaxed);
        out.single("lantern_pipeline_broker_up", "1 if the last attempt to reach the broker for shipping succeeded.", MetricType::Gauge, if up { 1.0 } else { 0.0 });
        if let Some((reader, stats)) = &self.otlp {
            out.single("lantern_pipeline_otlp_exported_total", "Events the OTLP receiver accepted since this process started.", MetricType::Counter, stats.exported.load(Ordering::Relaxed) as f64);
            out.single("lantern_pipeline_otlp_errors_total", "Failed OTLP exports since this process started.", MetricType::Counter, stats.errors.load(Ordering::Relaxed) as f64);
            out.single("lantern_pipeline_otlp_queue_events", "Events spooled but not yet accepted by the OTLP receiver.", MetricType::Gauge, reader.queued_events() as f64);
        }
    }
}

/// This machine's host name, or "localhost" if it cannot be read.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its full length, which is what we pass.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_set_fields_and_unknown_ones_are_refused() {
        let mut a = PipelineArgs::default();
        assert!(!a.enabled());
        a.set("pipeline.log-file", "/var/log/b.json").unwrap();
        a.set("pipeline.request-log", "/var/log/r.json").unwrap();
        a.set("pipeline.topic", "logs").unwrap();
        a.set("pipeline.ship", "false").unwrap();
        assert!(a.enabled() && !a.ship);
        assert_eq!(a.topic, "logs");
        assert!(a.set("pipeline.bogus", "1").unwrap_err().contains("unknown pipeline flag"));
        assert!(a.set("pipeline.spool-max-bytes", "lots").is_err());
    }
}
