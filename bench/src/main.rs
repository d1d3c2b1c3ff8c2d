//! lantern-bench: starts Lantern brokers on fresh data dirs, drives them with librdkafka and
//! measures the machine's own limits in the same run. Writes a Markdown results section (and
//! the raw figures as JSON). Normally run through `bench/run`, which also writes the machine
//! description and the command into docs/benchmarks.md.
//!
//!   lantern-bench --broker target/release/lantern-broker --work target/bench-work \
//!       --out results.md [--secs 5] [--latency-secs 10] [--pairs 40] [--pair-secs 3]
//!       [--only produce,limits,recompress,...]
//!       [--quiet-cpu 15] [--wait-max 900]

mod kafka;
mod limits;
mod metrics_profile;
mod otlp_sink;
mod overhead;
mod recompress;
mod report;
mod sys;
mod tracing_cost;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

use kafka::{ConsumeResult, LatencyResult, ProduceResult, ProduceSpec};
use sys::{Broker, BrokerOpts, Fsync, Meter, Usage};

struct Args {
    broker: PathBuf,
    work: PathBuf,
    out: PathBuf,
    secs: f64,
    latency_secs: f64,
    /// At most this many metrics on/off pairs (after one warm-up pair), and seconds per run.
    pairs: usize,
    pair_secs: f64,
    only: Option<Vec<String>>,
    /// Before each run, wait while other work keeps more than this share of the CPUs busy...
    quiet: f64,
    /// ...for at most this many seconds over the whole run.
    wait_max: f64,
}

fn parse_args() -> Args {
    let mut a = Args {
        broker: PathBuf::from("target/release/lantern-broker"),
        work: PathBuf::from("target/bench-work"),
        out: PathBuf::from("target/bench-work/results.md"),
        secs: 5.0,
        latency_secs: 10.0,
        pairs: 40,
        pair_secs: 6.0,
        only: None,
        quiet: 0.15,
        wait_max: 900.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let (k, v) = match k.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
                (k, v)
            }
        };
        match k.as_str() {
            "--broker" => a.broker = v.into(),
            "--work" => a.work = v.into(),
            "--out" => a.out = v.into(),
            "--secs" => a.secs = v.parse().expect("--secs"),
            "--latency-secs" => a.latency_secs = v.parse().expect("--latency-secs"),
            "--pairs" => a.pairs = v.parse().expect("--pairs"),
            "--pair-secs" => a.pair_secs = v.parse().expect("--pair-secs"),
            "--only" => a.only = Some(v.split(',').map(str::to_string).collect()),
            "--quiet-cpu" => a.quiet = v.parse::<f64>().expect("--quiet-cpu (percent)") / 100.0,
            "--wait-max" => a.wait_max = v.parse().expect("--wait-max (seconds)"),
            _ => panic!("unknown argument {k} (see the comment at the top of bench/src/main.rs)"),
        }
    }
    a
}

const MB: f64 = 1e6;

#[derive(Clone, Debug, Default)]
struct Limits {
    tcp_bps: f64,
    tcp_tool: String,
    rtt_p50_us: f64,
    rtt_p99_us: f64,
    seq_buffered_bps: f64,
    seq_buffered_warm_bps: f64,
    seq_fsync_bps: f64,
    fsync4k_p50_us: f64,
    fsync4k_p99_us: f64,
}

impl ProduceRow {
    /// The run's limit: the smaller of loopback TCP (when measured) and its own bytes
    /// appended bare right after it ([`limits::append_limit`]).
    fn limit_bps(&self, l: Option<&Limits>) -> f64 {
        l.map_or(self.storage_limit_bps, |l| l.tcp_bps.min(self.storage_limit_bps))
    }

    /// Stored bytes per second as a fraction of [`Self::limit_bps`].
    fn of_limit(&self, l: Option<&Limits>) -> f64 {
        self.stored_bps / self.limit_bps(l)
    }
}

struct ProduceRow {
    spec: ProduceSpec,
    fsync: Fsync,
    partitions_label: String,
    r: ProduceResult,
    u: Usage,
    /// The run's bytes as stored (batches after compression) per second of the run.
    stored_bps: f64,
    /// The same bytes appended bare, right after the run, in the same page-cache state
    /// ([`limits::append_limit`]), bytes/s...
    storage_limit_bps: f64,
    /// ...the machine's busy CPU seconds meanwhile (the writers' own included)...
    limit_busy_s: f64,
    /// ...and how long after the previous step's deletion the run started (and the limit
    /// after the run's own).
    since_free_s: f64,
    consume: Option<(ConsumeResult, Usage)>,
    /// With 100 partitions: the same data consumed again with a consumer fetch.max.bytes of
    /// [`kafka::SMALL_FETCH_MAX_BYTES`].
    consume_small_fetch: Option<(ConsumeResult, Usage)>,
}

struct LatencyRow {
    label: String,
    partitions: i32,
    fsync: Fsync,
    r: LatencyResult,
    u: Usage,
}

struct Profile {
    label: String,
    by_comm: String,
    top: String,
}

struct Bench {
    a: Args,
    profiles: Vec<Profile>,
    broker_args: Option<String>,
    load: Vec<(String, String)>,
    limits: Option<Limits>,
    produce: Vec<ProduceRow>,
    latency: Vec<LatencyRow>,
    metrics: Vec<overhead::MetricsRun>,
    /// Tracing on/off pairs (`metrics` in each run says whether tracing was on) and the
    /// broker's span counters of each run.
    tracing: Vec<overhead::MetricsRun>,
    tracing_spans: Vec<tracing_cost::SpanCounts>,
    /// The profiled runs ([`metrics_profile`]).
    metrics_profiles: Vec<metrics_profile::Profiled>,
    recompress: Vec<recompress::RecompressRow>,
    failures: Vec<String>,
    topic_seq: usize,
    /// Seconds waited for other work to finish before runs, and runs started busy anyway.
    waited_s: f64,
    busy_starts: Vec<String>,
    /// When the last step ended (each ends by deleting what it wrote): a produce run's limit
    /// waits as long after its own deletion as the run started after this.
    last_step_end: Instant,
}

fn want(a: &Args, section: &str) -> bool {
    a.only
        .as_ref()
        .is_none_or(|o| o.iter().any(|s| s == section))
}

fn fsync_label(f: Fsync) -> &'static str {
    match f {
        Fsync::Off => "off",
        Fsync::PerBatch => "per batch",
    }
}

impl Bench {
    fn note_load(&mut self, when: &str) {
        let l = sys::loadavg();
        eprintln!("[bench] load average {when}: {l}");
        self.load.push((when.to_string(), l));
    }

    fn start_broker(&mut self, name: &str, o: &BrokerOpts) -> Broker {
        self.topic_seq += 1;
        let b = Broker::start(
            &self.a.broker,
            &self.a.work,
            &format!("{:02}-{name}", self.topic_seq),
            o,
        );
        if self.broker_args.is_none() {
            self.broker_args = Some(format!("{} {}", self.a.broker.display(), b.args.join(" ")));
        }
        b
    }

    /// Other sessions' builds and tests share this machine: before each run, wait (within the
    /// run's overall budget) until they leave the CPUs nearly idle.
    fn wait_quiet(&mut self, what: &str) {
        loop {
            let busy = sys::machine_busy_frac(0.5);
            if busy <= self.a.quiet {
                return;
            }
            if self.waited_s >= self.a.wait_max {
                self.busy_starts
                    .push(format!("{what} ({:.0}% busy)", busy * 100.0));
                return;
            }
            eprintln!(
                "[bench] machine {:.0}% busy before {what}; waiting (load {})",
                busy * 100.0,
                sys::loadavg()
            );
            std::thread::sleep(std::time::Duration::from_secs(5));
            self.waited_s += 5.5;
        }
    }

    fn guarded(&mut self, what: &str, f: impl FnOnce(&mut Bench)) {
        self.wait_quiet(what);
        let t0 = Instant::now();
        eprintln!("[bench] {what} ...");
        let outcome = catch_unwind(AssertUnwindSafe(|| f(self)));
        self.last_step_end = Instant::now();
        if let Err(e) = outcome {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            eprintln!("[bench] {what} FAILED: {msg}");
            self.failures.push(format!("{what}: {msg}"));
        } else {
            eprintln!("[bench] {what} done in {:.1}s", t0.elapsed().as_secs_f64());
        }
    }

    fn run_limits(&mut self) {
        let work = self.a.work.clone();
        self.guarded("machine limits", |b| {
            let (tcp_bps, tcp_tool) = limits::loopback_tcp(5);
            let (rtt_p50_us, rtt_p99_us) = limits::tcp_rtt_us(2.0);
            // One long pass, as a produce run writes: on this VM the first touch of a page the
            // guest has not used lately costs a host fault, and freed memory goes back to the
            // host within seconds, so short or repeated trials measure recycled, "warm" pages.
            // The files stay until all three are measured, so each pass gets never-used pages.
            let seq_buffered_bps = limits::seq_write(&work, "seq-1.bin", false, 4 << 30, 5.0);
            let seq_fsync_bps = limits::seq_write(&work, "seq-2.bin", true, 2 << 30, 4.0);
            let (fsync4k_p50_us, fsync4k_p99_us) = limits::write_fsync_us(&work, 4096, 3.0);
            let _ = std::fs::remove_file(work.join("seq-1.bin"));
            let _ = std::fs::remove_file(work.join("seq-2.bin"));
            // Straight after deleting them: the pages just freed, still backed by the host.
            let seq_buffered_warm_bps = limits::seq_write(&work, "seq-3.bin", false, 1 << 30, 2.0);
            let _ = std::fs::remove_file(work.join("seq-3.bin"));

            let l = Limits {
                tcp_bps,
                tcp_tool,
                rtt_p50_us,
                rtt_p99_us,
                seq_buffered_bps,
                seq_buffered_warm_bps,
                seq_fsync_bps,
                fsync4k_p50_us,
                fsync4k_p99_us,
            };
            eprintln!("[bench] {l:?}");
            b.limits = Some(l);
        });
    }

    fn run_produce(&mut self, spec: ProduceSpec, fsync: Fsync, consume: bool) {
        let what = format!(
            "produce {} B x {} partitions acks={} {} fsync {}",
            spec.size,
            spec.partitions,
            spec.acks,
            spec.compression,
            fsync_label(fsync)
        );
        self.guarded(&what, |b| {
            let mut broker = b.start_broker(
                "produce",
                &BrokerOpts {
                    partitions: spec.partitions,
                    fsync,
                    metrics: true,
                    extra: vec![],
                    env: vec![],
                },
            );
            let topic = "bench";
            let since_free = b.last_step_end.elapsed();
            let m = Meter::start(broker.pid);
            let r = kafka::produce(&broker.bootstrap, topic, &spec);
            let u = m.stop();
            eprintln!(
                "[bench]   {:.1} MB/s {:.0} msg/s, batch {:.0} B, {u:?}",
                r.mb_s(),
                r.msg_s(),
                r.avg_batch_bytes
            );
            assert!(
                r.failed == 0,
                "{} deliveries failed: {:?}",
                r.failed,
                r.first_error
            );
            let consume = consume.then(|| {
                let m = Meter::start(broker.pid);
                let c = kafka::consume_all(&broker.bootstrap, topic, spec.partitions);
                let u = m.stop();
                eprintln!(
                    "[bench]   consume {:.1} MB/s {:.0} msg/s, {u:?}",
                    c.mb_s(),
                    c.msg_s()
                );
                (c, u)
            });
            let consume_small_fetch = (consume.is_some() && spec.partitions >= 100).then(|| {
                let m = Meter::start(broker.pid);
                let settings = [("fetch.max.bytes", kafka::SMALL_FETCH_MAX_BYTES)];
                let c = kafka::consume_all_with(&broker.bootstrap, topic, spec.partitions, &settings);
                let u = m.stop();
                eprintln!(
                    "[bench]   consume (fetch.max.bytes={}) {:.1} MB/s {:.0} msg/s, {u:?}",
                    kafka::SMALL_FETCH_MAX_BYTES,
                    c.mb_s(),
                    c.msg_s()
                );
                (c, u)
            });
            broker.stop(); // deletes the data dir: the limit below gets the pages it freed...
            std::thread::sleep(since_free); // ...as long after that as the run started after the last deletion
            let busy0 = sys::machine_busy_secs();
            let stored = r.stored_bytes();
            let chunk = if r.avg_batch_bytes >= 1.0 { r.avg_batch_bytes.round() as usize } else { 1 << 20 };
            let storage_limit_bps = limits::append_limit(
                &b.a.work,
                spec.partitions as usize,
                chunk,
                stored as u64,
                fsync == Fsync::PerBatch,
                4.0 * spec.secs,
            );
            let limit_busy_s = sys::machine_busy_secs() - busy0;
            let stored_bps = stored / r.secs;
            eprintln!(
                "[bench]   stored {:.1} MB/s; the same bytes appended bare: {:.1} MB/s ({:.2} CPU s busy meanwhile)",
                stored_bps / MB,
                storage_limit_bps / MB,
                limit_busy_s
            );
            b.produce.push(ProduceRow {
                partitions_label: spec.partitions.to_string(),
                spec,
                fsync,
                r,
                u,
                stored_bps,
                storage_limit_bps,
                limit_busy_s,
                since_free_s: since_free.as_secs_f64(),
                consume,
                consume_small_fetch,
            });
        });
    }

    fn run_latency(&mut self, label: &str, partitions: i32, fsync: Fsync) {
        let secs = self.a.latency_secs;
        self.guarded(&format!("latency {label}"), |b| {
            let mut broker = b.start_broker(
                "latency",
                &BrokerOpts {
                    partitions,
                    fsync,
                    metrics: true,
                    extra: vec![],
                    env: vec![],
                },
            );
            let m = Meter::start(broker.pid);
            let r = kafka::e2e_latency(
                &broker.bootstrap,
                "latency",
                partitions,
                1024,
                10_000.0,
                secs,
            );
            let u = m.stop();
            broker.stop();
            eprintln!("[bench]   {r:?} {u:?}");
            b.latency.push(LatencyRow {
                label: label.to_string(),
                partitions,
                fsync,
                r,
                u,
            });
        });
    }

    /// On/off pairs for [`overhead`]'s estimate: one warm-up pair, then pairs until
    /// [`overhead::enough_pairs`] over the runs `runs` picks (at most `max_pairs`), the order
    /// alternating (on/off, off/on, ...) so that a steady drift cancels out. `run` makes one run
    /// (on or off, of a pair) and records it.
    fn run_pairs(
        &mut self,
        name: &str,
        max_pairs: usize,
        runs: fn(&Bench) -> &[overhead::MetricsRun],
        mut run: impl FnMut(&mut Bench, bool, usize),
    ) {
        for pair in 0..=max_pairs {
            if pair > 0 && overhead::enough_pairs(runs(self), max_pairs) {
                break;
            }
            let order = if pair % 2 == 0 { [true, false] } else { [false, true] };
            for on in order {
                let what = format!(
                    "{name} {} {}",
                    if on { "on" } else { "off" },
                    if pair == 0 { "warm-up".to_string() } else { format!("pair {pair}") }
                );
                self.guarded(&what, |b| run(b, on, pair));
            }
        }
    }

    /// Metrics on/off pairs (at most `--pairs`).
    fn run_metrics(&mut self, spec: &ProduceSpec) {
        let max_pairs = self.a.pairs;
        self.run_pairs("metrics", max_pairs, |b| &b.metrics, |b, metrics, pair| {
            let mut broker = b.start_broker(
                if metrics { "metrics-on" } else { "metrics-off" },
                &BrokerOpts { partitions: spec.partitions, fsync: Fsync::Off, metrics, extra: vec![], env: vec![] },
            );
            let m = Meter::start(broker.pid);
            let r = kafka::produce(&broker.bootstrap, "bench", spec);
            let u = m.stop();
            broker.stop();
            eprintln!("[bench]   {:.1} MB/s, broker {:.2} CPU s ({:.2} user)", r.mb_s(), u.broker_cpu_s, u.broker_user_cpu_s);
            b.metrics.push(overhead::MetricsRun { metrics, pair, r, u });
        });
    }
}

impl Bench {
    /// Long runs with metrics on under `perf record --call-graph dwarf`, scraped as Prometheus
    /// would, for [`metrics_profile`]: the pairs' paced load (few large requests), then many
    /// small requests (10,000 records/s produced and consumed one partition at a time).
    fn run_metrics_profiles(&mut self, paced: &ProduceSpec) {
        let secs = metrics_profile::PROFILE_SECS;
        let spec = ProduceSpec { secs, ..paced.clone() };
        self.run_metrics_profile(
            "produce 1 KiB x 8 partitions paced at 300 MB/s, acks=1, none, fsync off (the pairs' load)",
            paced.partitions,
            |bootstrap| {
                let r = kafka::produce(bootstrap, "bench", &spec);
                (r.mb_s(), r.msgs)
            },
        );
        self.run_metrics_profile(
            "10,000 msg/s x 1 KiB to 1 partition, acks=all, fsync off, read back by a consumer (the latency runs' load: many small requests)",
            1,
            move |bootstrap| {
                let r = kafka::e2e_latency(bootstrap, "profile", 1, 1024, 10_000.0, secs);
                (r.rate * 1024.0 / MB, r.received)
            },
        );
    }

    fn run_metrics_profile(&mut self, load: &str, partitions: i32, drive: impl FnOnce(&str) -> (f64, u64)) {
        self.guarded(&format!("metrics profile: {load}"), |b| {
            let mut broker = b.start_broker(
                "metrics-profile",
                &BrokerOpts { partitions, fsync: Fsync::Off, metrics: true, extra: vec![], env: vec![] },
            );
            let data = b.a.work.join("metrics-profile.perf");
            let perf = std::process::Command::new("perf")
                .args(["record", "-q", "-e", "cpu-clock", "-F", &metrics_profile::FREQUENCY.to_string(), "--call-graph", "dwarf,16384", "-p"])
                .arg(broker.pid.to_string())
                .arg("-o")
                .arg(&data)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("perf record (Debian linux-perf)");
            std::thread::sleep(std::time::Duration::from_millis(500));
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let scraper = {
                let (stop, port) = (stop.clone(), broker.http);
                std::thread::spawn(move || {
                    let mut scrapes = 0u32;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if sys::http_get(port, "/metrics").is_ok() {
                            scrapes += 1;
                        }
                        let until = Instant::now() + std::time::Duration::from_secs_f64(metrics_profile::SCRAPE_EVERY_S);
                        while Instant::now() < until && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                    }
                    scrapes
                })
            };
            let requests_before = broker.requests_total();
            let m = Meter::start(broker.pid);
            let (mb_s, records) = drive(&broker.bootstrap);
            let u = m.stop();
            let requests = broker.requests_total() - requests_before;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let scrapes = scraper.join().unwrap_or(0);
            perf_stop(perf);
            broker.stop();
            let script = std::process::Command::new("perf")
                .args(["script", "-F", "comm,tid,time,event,ip,sym,dso", "--no-inline", "-i"])
                .arg(&data)
                .output()
                .expect("perf script");
            let a = metrics_profile::attribute(&String::from_utf8_lossy(&script.stdout));
            let _ = std::fs::remove_file(&data);
            eprintln!(
                "[bench]   {mb_s:.1} MB/s, {records} records, {requests:.0} requests, broker {:.2} CPU s, {scrapes} scrapes; {} of {} samples in the metrics path",
                u.broker_cpu_s, a.metrics, a.samples
            );
            assert!(a.samples > 0, "perf recorded no broker samples");
            assert!(scrapes >= 2, "the broker was scraped {scrapes} times");
            b.metrics_profiles.push(metrics_profile::Profiled { load: load.to_string(), a, mb_s, requests, broker_cpu_s: u.broker_cpu_s });
        });
    }
}

impl Bench {
    /// Tracing on/off pairs for [`tracing_cost`], run and stopped as the metrics pairs are
    /// (at most `--pairs`, and 20).
    fn run_tracing(&mut self, spec: &ProduceSpec) {
        let sink = match otlp_sink::OtlpSink::start() {
            Ok(s) => s,
            Err(e) => {
                self.failures.push(format!("tracing: cannot start the OTLP sink: {e}"));
                return;
            }
        };
        let max_pairs = self.a.pairs.min(20);
        self.run_pairs("tracing", max_pairs, |b| &b.tracing, |b, tracing, pair| {
            let env: Vec<(String, String)> = if tracing {
                [
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.endpoint.as_str()),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                    ("OTEL_TRACES_SAMPLER", "always_on"),
                    ("OTEL_SERVICE_NAME", "lantern-bench"),
                    // export within the run, so the meter sees the cost of the last spans
                    ("OTEL_BSP_SCHEDULE_DELAY", "200"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
            } else {
                vec![]
            };
            let mut broker = b.start_broker(
                if tracing { "tracing-on" } else { "tracing-off" },
                &BrokerOpts { partitions: spec.partitions, fsync: Fsync::Off, metrics: true, extra: vec![], env },
            );
            let requests0 = sink.stats.requests.load(std::sync::atomic::Ordering::Relaxed);
            let m = Meter::start(broker.pid);
            let r = kafka::produce(&broker.bootstrap, "bench", spec);
            let counter = |n: &str| {
                broker.metric(&format!("lantern_tracing_spans_{n}_total")).unwrap_or_else(|| panic!("no lantern_tracing_spans_{n}_total on /metrics"))
            };
            // the meter keeps running until every queued span has been exported
            let settle = Instant::now() + std::time::Duration::from_secs(5);
            while tracing && counter("exported") + counter("export_failed") < counter("queued") && Instant::now() < settle {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let u = m.stop();
            let spans = tracing_cost::SpanCounts {
                queued: counter("queued"),
                exported: counter("exported"),
                dropped: counter("dropped"),
                sink_requests: sink.stats.requests.load(std::sync::atomic::Ordering::Relaxed) - requests0,
            };
            broker.stop();
            if tracing {
                assert!(spans.exported > 0.0 && spans.sink_requests > 0, "tracing on, yet nothing was exported: {spans:?}");
            } else {
                assert!(spans.queued == 0.0 && spans.sink_requests == 0, "tracing off, yet spans were made: {spans:?}");
            }
            eprintln!(
                "[bench]   {:.1} MB/s, broker {:.2} CPU s; spans queued {:.0}, exported {:.0}, dropped {:.0}",
                r.mb_s(),
                u.broker_cpu_s,
                spans.queued,
                spans.exported,
                spans.dropped
            );
            b.tracing.push(overhead::MetricsRun { metrics: tracing, pair, r, u });
            b.tracing_spans.push(spans);
        });
    }
}

/// `perf record` of the whole machine (cpu-clock: this VM has no hardware counters).
fn perf_start(out: &std::path::Path) -> Option<std::process::Child> {
    let c = std::process::Command::new("perf")
        .args(["record", "-q", "-e", "cpu-clock", "-F", "499", "-a", "-o"])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    Some(c)
}

fn perf_stop(mut c: std::process::Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
    let _ = c.wait();
}

fn perf_report(data: &std::path::Path, sort: &str, limit: &str, lines: usize) -> String {
    let out = std::process::Command::new("perf")
        .args([
            "report",
            "--stdio",
            "-q",
            "--no-children",
            "--sort",
            sort,
            "--percent-limit",
            limit,
            "-i",
        ])
        .arg(data)
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(lines)
        .map(|l| {
            let l = l.split_whitespace().collect::<Vec<_>>().join(" ");
            let l = l.trim_end_matches(['-', ' ']);
            if l.chars().count() > 150 {
                format!("{}...", l.chars().take(150).collect::<String>())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Bench {
    /// Where the time goes (whole machine: broker, client, kernel) while producing `spec` and
    /// consuming it back. perf slows things down a little: these runs are not in the tables.
    fn run_profile(&mut self, spec: ProduceSpec, produce: bool, consume: bool) {
        let has_perf = std::process::Command::new("perf")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_perf {
            self.failures
                .push("profiles: perf not available (Debian linux-perf)".into());
            return;
        }
        let label = format!(
            "{} B x {} partitions, acks={}, {}, fsync off",
            spec.size, spec.partitions, spec.acks, spec.compression
        );
        self.guarded(&format!("profile {label}"), |b| {
            let mut broker = b.start_broker(
                "profile",
                &BrokerOpts {
                    partitions: spec.partitions,
                    fsync: Fsync::Off,
                    metrics: true,
                    extra: vec![],
                    env: vec![],
                },
            );
            let data = b.a.work.join("perf.data");
            let phase = |b: &mut Bench, name: &str, f: &mut dyn FnMut() -> String| {
                let p = perf_start(&data);
                let what = f();
                if let Some(p) = p {
                    perf_stop(p);
                }
                b.profiles.push(Profile {
                    label: format!("{name} {label}: {what}"),
                    by_comm: perf_report(&data, "comm", "2", 12),
                    top: perf_report(&data, "comm,dso,symbol", "1", 25),
                });
                let _ = std::fs::remove_file(&data);
            };
            let bs = broker.bootstrap.clone();
            if produce {
                phase(b, "produce", &mut || {
                    format!("{:.0} MB/s", kafka::produce(&bs, "bench", &spec).mb_s())
                });
            } else {
                kafka::produce(&bs, "bench", &spec);
            }
            if consume {
                phase(b, "consume", &mut || {
                    format!(
                        "{:.0} MB/s",
                        kafka::consume_all(&bs, "bench", spec.partitions).mb_s()
                    )
                });
            }
            broker.stop();
        });
    }
}

fn main() {
    let a = parse_args();
    std::fs::create_dir_all(&a.work).expect("work dir");
    let a = Args {
        work: a.work.canonicalize().expect("work dir"),
        ..a
    };
    assert!(
        a.broker.exists(),
        "no broker binary at {}",
        a.broker.display()
    );
    let secs = a.secs;
    let mut b = Bench {
        a,
        profiles: vec![],
        broker_args: None,
        load: vec![],
        limits: None,
        produce: vec![],
        latency: vec![],
        metrics: vec![],
        tracing: vec![],
        tracing_spans: vec![],
        metrics_profiles: vec![],
        recompress: vec![],
        failures: vec![],
        topic_seq: 0,
        last_step_end: Instant::now(),
        waited_s: 0.0,
        busy_starts: vec![],
    };
    let t0 = Instant::now();
    b.note_load("at start");
    if want(&b.a, "limits") {
        b.run_limits();
    }
    // Not in the default run: the headline configuration alone, for iterating on the broker.
    if b.a
        .only
        .as_ref()
        .is_some_and(|o| o.iter().any(|s| s == "headline"))
    {
        let spec = ProduceSpec {
            size: 1024,
            partitions: 1,
            acks: "1",
            compression: "none",
            secs,
            rate: None,
        };
        b.run_produce(spec, Fsync::Off, true);
    }
    if want(&b.a, "produce") {
        for size in [100usize, 1024] {
            for partitions in [1, 8] {
                for acks in ["1", "all"] {
                    for compression in ["none", "lz4"] {
                        let spec = ProduceSpec {
                            size,
                            partitions,
                            acks,
                            compression,
                            secs,
                            rate: None,
                        };
                        b.run_produce(spec, Fsync::Off, acks == "1");
                    }
                }
            }
        }
    }
    if want(&b.a, "fsync") {
        for size in [100usize, 1024] {
            for partitions in [1, 8] {
                let spec = ProduceSpec {
                    size,
                    partitions,
                    acks: "all",
                    compression: "none",
                    secs,
                    rate: None,
                };
                b.run_produce(spec, Fsync::PerBatch, false);
            }
        }
    }
    if want(&b.a, "latency") {
        b.run_latency("1 partition, fsync off", 1, Fsync::Off);
        b.run_latency("1 partition, fsync per batch", 1, Fsync::PerBatch);
    }
    if want(&b.a, "p100") {
        let spec = ProduceSpec {
            size: 1024,
            partitions: 100,
            acks: "all",
            compression: "none",
            secs,
            rate: None,
        };
        b.run_produce(spec, Fsync::Off, true);
        b.run_latency("100 partitions, fsync off", 100, Fsync::Off);
    }
    // The metrics and tracing pairs run the same paced load (the reports say so).
    let paced = ProduceSpec {
        size: 1024,
        partitions: 8,
        acks: "1",
        compression: "none",
        secs: b.a.pair_secs,
        rate: Some(overhead::PACED_BYTES_PER_S),
    };
    if want(&b.a, "metrics") {
        b.run_metrics(&paced);
    }
    if want(&b.a, "tracing") {
        b.run_tracing(&paced);
    }
    if want(&b.a, "metrics-profile") {
        b.run_metrics_profiles(&paced);
    }
    if want(&b.a, "recompress") {
        let spec = ProduceSpec {
            size: 1024,
            partitions: 1,
            acks: "1",
            compression: "lz4",
            secs,
            rate: None,
        };
        for codec in recompress::TOPIC_CODECS {
            b.run_recompress(spec.clone(), codec);
        }
    }
    if want(&b.a, "profile") {
        let spec = ProduceSpec {
            size: 1024,
            partitions: 1,
            acks: "1",
            compression: "none",
            secs,
            rate: None,
        };
        b.run_profile(spec, true, true);
        let spec = ProduceSpec {
            size: 1024,
            partitions: 100,
            acks: "all",
            compression: "none",
            secs,
            rate: None,
        };
        b.run_profile(spec, false, true);
    }
    b.note_load("at end");
    let total = t0.elapsed().as_secs_f64();
    let (md, js) = report::report(&b, total);
    std::fs::write(&b.a.out, md).expect("write results");
    let json_path = b.a.out.with_extension("json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&js).unwrap()).expect("write json");
    eprintln!(
        "[bench] wrote {} and {} ({total:.0} s)",
        b.a.out.display(),
        json_path.display()
    );
    if !b.failures.is_empty() {
        eprintln!("[bench] {} run(s) failed", b.failures.len());
        std::process::exit(1);
    }
}
