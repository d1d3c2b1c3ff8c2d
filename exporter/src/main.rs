//! `lantern-exporter`: serves node metrics and the log pipeline's metrics on /metrics
//! (default 127.0.0.1:9100), or with `logs` as its first argument, queries the log topic.
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use lantern_exporter::cli::{self, USAGE};
use lantern_exporter::http::{self, Exporter};
use lantern_exporter::node;
use lantern_exporter::pipeline::{query, Pipeline};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `logs` has its own flags, so it is dispatched before the exporter's flags are parsed.
    if args.first().map(String::as_str) == Some("logs") {
        return logs_command(&args[1..]);
    }
    let args = match cli::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lantern-exporter: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{USAGE}\n\n{}", lantern_exporter::pipeline::USAGE);
        return ExitCode::SUCCESS;
    }
    init_logging(args.log_format_json);

    let node_opts = match node::NodeOptions::from_flags(&args.collector_options) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("lantern-exporter: {e}");
            return ExitCode::from(2);
        }
    };
    let all = node::all_collectors(&node_opts);
    let known: Vec<&str> = all.iter().map(|(c, _)| c.name()).collect();
    if let Some(bad) = args.collector_overrides.keys().find(|k| !known.contains(&k.as_str())) {
        eprintln!("lantern-exporter: unknown collector {bad:?}; collectors are: {}", known.join(", "));
        return ExitCode::from(2);
    }
    let collectors: Vec<Box<dyn node::Collector>> = all
        .into_iter()
        .filter(|(c, default_on)| {
            args.collector_overrides.get(c.name()).copied().unwrap_or(*default_on && !args.disable_defaults)
        })
        .map(|(c, _)| c)
        .collect();

    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lantern-exporter: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!(target: "lantern.exporter", "received shutdown signal");
            let _ = tx.send(true);
        });
        let pipeline = if args.pipeline.enabled() {
            Some(Pipeline::start(&args.pipeline, rx.clone()).map_err(|e| anyhow::anyhow!("log pipeline: {e}"))?)
        } else {
            None
        };
        let exporter = Arc::new(Exporter { collectors, paths: args.paths.clone(), pipeline: pipeline.clone() });
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
        tracing::info!(target: "lantern.exporter", address = %args.listen, "listening");
        http::serve(listener, http::router(exporter, &args.telemetry_path), rx).await?;
        if let Some(p) = pipeline {
            // A last checkpoint, so a clean stop re-reads nothing.
            tokio::task::spawn_blocking(move || p.stop()).await.ok();
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lantern-exporter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `lantern-exporter logs ...`: query the log topic.
fn logs_command(args: &[String]) -> ExitCode {
    let q = match query::parse_args(args, lantern_exporter::pipeline::timefmt::now_ms()) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("lantern-exporter logs: {e}\n{}", query::USAGE);
            return ExitCode::from(2);
        }
    };
    if q.help {
        println!("{}", query::USAGE);
        return ExitCode::SUCCESS;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match query::run(&q, &mut out).and_then(|()| out.flush().map_err(|e| format!("cannot write the output: {e}"))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lantern-exporter logs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
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
