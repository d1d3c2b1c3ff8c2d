//! `lantern-broker`: runs one Lantern broker. With no arguments it serves Kafka on
//! 0.0.0.0:9092, HTTP (/metrics, /health/*) on 0.0.0.0:9404 and keeps data in ./data.
use std::process::ExitCode;

use lantern_broker::config::{self, LogFormat};
use lantern_broker::telemetry::{TraceConfig, Tracer};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// mimalloc keeps freed memory for reuse instead of handing it back to the kernel at once:
/// with glibc's malloc, every large fetch buffer was mapped, zero-paged and unmapped again
/// (see docs/benchmarks.md, the 100-partition consume profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: lantern-broker [--config <file>] [--log-format text|json] [--<kafka.property>=<value> ...]
Properties may also be set as LANTERN_<PROPERTY> environment variables (dots as underscores).
Precedence: flags > environment > config file > defaults. See README.md for the list.
Tracing: OpenTelemetry's OTEL_* variables (e.g. OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318).";

fn main() -> ExitCode {
    let cmd = match config::parse_command_line(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lantern-broker: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if cmd.help {
        println!("{USAGE}\n\nProperties:");
        for p in config::PROPERTIES {
            println!("  {:<36} {}{}", p.name, p.doc, p.default.map(|d| format!(" (default {d})")).unwrap_or_default());
        }
        return ExitCode::SUCCESS;
    }
    let cfg = match config::load_config(&cmd, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lantern-broker: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    // Non-UTF-8 variables cannot be OTEL_* settings; they are skipped rather than fatal.
    let utf8_vars = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let tracing_config = match TraceConfig::from_env(utf8_vars) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("lantern-broker: tracing configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(cmd.log_format);
    if std::env::var("OTEL_METRICS_EXPORTER").is_ok_and(|v| !["", "none", "prometheus"].contains(&v.trim().to_ascii_lowercase().as_str())) {
        tracing::warn!("OTEL_METRICS_EXPORTER is set, but the broker does not push metrics over OTLP: scrape /metrics (docs/tracing.md)");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lantern-broker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The exporter is built on the runtime (tonic's channel starts its worker there).
    let telemetry = match tracing_config {
        Some(t) => match runtime.block_on(async { Tracer::start(&t, cfg.node_id) }) {
            Ok(telemetry) => {
                tracing::info!(target: "kafka.server.KafkaServer", protocol = ?t.protocol, sampler = ?t.sampler, "tracing: exporting spans over OTLP");
                Some(telemetry)
            }
            Err(e) => {
                eprintln!("lantern-broker: tracing configuration error: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let result = runtime.block_on(async {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!(target: "kafka.server.KafkaServer", "received shutdown signal");
            let _ = tx.send(true);
        });
        lantern_broker::server::run(cfg, telemetry, rx).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "kafka.server.KafkaServer", "fatal: {e:#}");
            eprintln!("lantern-broker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
