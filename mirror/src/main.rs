//! `lantern-mirror --config mm2.properties`: runs every enabled flow (a copy loop and a
//! heartbeat/checkpoint loop each) and serves /metrics until SIGTERM or SIGINT.
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lantern_mirror::checkpoint::CheckpointLoop;
use lantern_mirror::cli::{self, USAGE};
use lantern_mirror::config::MirrorConfig;
use lantern_mirror::flow::{CopyLoop, Shared};
use lantern_mirror::http;
use lantern_mirror::metrics::Metrics;
use tracing_subscriber::EnvFilter;

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lantern-mirror: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    init_logging(args.log_json);
    let text = match std::fs::read_to_string(&args.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("lantern-mirror: cannot read {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let config = match MirrorConfig::from_text(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lantern-mirror: {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let metrics = Arc::new(Metrics::new());
    // Every client is created before anything runs: a bad passthrough setting stops start-up.
    let mut loops = Vec::new();
    for flow in &config.flows {
        let (s, t) = (config.clusters[&flow.source].clone(), config.clusters[&flow.target].clone());
        let shared = Arc::new(Shared::default());
        let built = CopyLoop::new(flow.clone(), s.clone(), t.clone(), metrics.clone(), shared.clone())
            .and_then(|c| CheckpointLoop::new(flow.clone(), s, t, metrics.clone(), shared).map(|k| (c, k)));
        match built {
            Ok(pair) => loops.push((flow.name(), pair)),
            Err(e) => {
                eprintln!("lantern-mirror: {}: {e:#}", flow.name());
                return ExitCode::from(2);
            }
        }
    }
    let listener = match std::net::TcpListener::bind(args.metrics_listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("lantern-mirror: cannot listen on {}: {e}", args.metrics_listener);
            return ExitCode::FAILURE;
        }
    };
    let m = metrics.clone();
    std::thread::spawn(move || http::serve(listener, m));
    tracing::info!(target: "lantern.mirror", address = %args.metrics_listener, flows = loops.len(), "listening");
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<(String, anyhow::Result<()>)>();
    let mut running = 0;
    for (name, (copy, checkpoints)) in loops {
        for (what, job) in [("copy", Box::new(move |s| copy.run(s)) as Box<dyn FnOnce(Arc<AtomicBool>) -> anyhow::Result<()> + Send>), ("checkpoint", Box::new(move |s| checkpoints.run(s)))] {
            let (tx, stop, label) = (tx.clone(), stop.clone(), format!("{name} {what}"));
            running += 1;
            std::thread::spawn(move || {
                let r = job(stop);
                let _ = tx.send((label, r));
            });
        }
    }
    let mut failed = false;
    while running > 0 {
        if SIGNALLED.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
            tracing::info!(target: "lantern.mirror", "received shutdown signal");
            stop.store(true, Ordering::SeqCst);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((label, r)) => {
                running -= 1;
                if let Err(e) = r {
                    // One loop failing stops the process: a supervisor restarts it, and it
                    // resumes from the last committed progress.
                    tracing::error!(target: "lantern.mirror", what = %label, error = %format!("{e:#}"), "stopped with an error");
                    failed = true;
                    stop.store(true, Ordering::SeqCst);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.init();
    }
}
