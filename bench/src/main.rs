//! lantern-bench: starts Lantern brokers on fresh data dirs, drives them with librdkafka and
//! measures the machine's own limits in the same run. Writes a Markdown results section (and
//! the raw figures as JSON). Normally run through `bench/run`, which also writes the machine
//! description and the command into docs/benchmarks.md.
//!
//!   lantern-bench --broker target/release/lantern-broker --work target/bench-work \
//!       --out results.md [--secs 5] [--latency-secs 10] [--rounds 4] [--only produce,limits,recompress,...]
//!       [--quiet-cpu 15] [--wait-max 900]

mod kafka;
mod limits;
mod recompress;
mod sys;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use kafka::{ConsumeResult, LatencyResult, ProduceResult, ProduceSpec};
use sys::{Broker, BrokerOpts, Fsync, Meter, Usage};

struct Args {
    broker: PathBuf,
    work: PathBuf,
    out: PathBuf,
    secs: f64,
    latency_secs: f64,
    rounds: usize,
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
        rounds: 4,
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
            "--rounds" => a.rounds = v.parse().expect("--rounds"),
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

impl Limits {
    /// The limit for produce with fsync off: the smaller of loopback TCP and buffered writes.
    fn produce_bps(&self) -> f64 {
        self.tcp_bps.min(self.seq_buffered_bps)
    }
}

struct ProduceRow {
    spec: ProduceSpec,
    fsync: Fsync,
    partitions_label: String,
    r: ProduceResult,
    u: Usage,
    /// For fsync per batch: rewriting one mean-size batch in cached pages + fdatasync, and the
    /// fdatasync alone, p50 us.
    batch_fsync_us: Option<(f64, f64)>,
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

struct MetricsRow {
    metrics: bool,
    r: ProduceResult,
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
    metrics: Vec<MetricsRow>,
    recompress: Vec<recompress::RecompressRow>,
    failures: Vec<String>,
    topic_seq: usize,
    /// Seconds waited for other work to finish before runs, and runs started busy anyway.
    waited_s: f64,
    busy_starts: Vec<String>,
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
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(self))) {
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
                },
            );
            let topic = "bench";
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
            // The write+fdatasync limit for this run's mean batch size.
            let batch_fsync_us =
                (fsync == Fsync::PerBatch && r.avg_batch_bytes.is_finite()).then(|| {
                    let size = r.avg_batch_bytes.round().max(1.0) as usize;
                    limits::rewrite_fsync_us(&b.a.work, size, 2.0)
                });
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
            broker.stop();
            b.produce.push(ProduceRow {
                partitions_label: spec.partitions.to_string(),
                spec,
                fsync,
                r,
                u,
                batch_fsync_us,
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

    fn run_metrics(&mut self, spec: &ProduceSpec) {
        for round in 0..self.a.rounds {
            // on, off, off, on, on, off, ...: alternating, and a steady drift cancels out.
            let order = if round % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for metrics in order {
                let spec = spec.clone();
                self.guarded(
                    &format!(
                        "metrics {} round {}",
                        if metrics { "on" } else { "off" },
                        round + 1
                    ),
                    |b| {
                        let mut broker = b.start_broker(
                            if metrics { "metrics-on" } else { "metrics-off" },
                            &BrokerOpts {
                                partitions: spec.partitions,
                                fsync: Fsync::Off,
                                metrics,
                                extra: vec![],
                            },
                        );
                        let m = Meter::start(broker.pid);
                        let r = kafka::produce(&broker.bootstrap, "bench", &spec);
                        let u = m.stop();
                        broker.stop();
                        eprintln!(
                            "[bench]   {:.1} MB/s, broker {:.2} CPU s",
                            r.mb_s(),
                            u.broker_cpu_s
                        );
                        b.metrics.push(MetricsRow { metrics, r, u });
                    },
                );
            }
        }
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

/// Write+fdatasync limits for batches of `bytes`, bytes/s: (into fresh page cache, at the
/// one-pass buffered rate, then the sync; into already-cached pages).
fn batch_limits(bytes: f64, us: (f64, f64), l: Option<&Limits>) -> (f64, f64) {
    let cached = bytes / (us.0 / 1e6);
    let fresh = l.map_or(f64::NAN, |l| {
        bytes / (bytes / l.seq_buffered_bps + us.1 / 1e6)
    });
    (fresh, cached)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0}%", x * 100.0)
    } else {
        "n/a".into()
    }
}

fn usage_json(u: &Usage) -> serde_json::Value {
    json!({"wall_s": u.wall_s, "broker_cpu_s": u.broker_cpu_s, "client_cpu_s": u.client_cpu_s,
           "other_cpu_s": u.other_cpu_s, "broker_peak_rss_mib": u.broker_peak_rss_mib})
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
        recompress: vec![],
        failures: vec![],
        topic_seq: 0,
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
        };
        b.run_produce(spec, Fsync::Off, true);
        b.run_latency("100 partitions, fsync off", 100, Fsync::Off);
    }
    if want(&b.a, "metrics") {
        let spec = ProduceSpec {
            size: 1024,
            partitions: 8,
            acks: "1",
            compression: "none",
            secs,
        };
        b.run_metrics(&spec);
    }
    if want(&b.a, "recompress") {
        let spec = ProduceSpec {
            size: 1024,
            partitions: 1,
            acks: "1",
            compression: "lz4",
            secs,
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
        };
        b.run_profile(spec, true, true);
        let spec = ProduceSpec {
            size: 1024,
            partitions: 100,
            acks: "all",
            compression: "none",
            secs,
        };
        b.run_profile(spec, false, true);
    }
    b.note_load("at end");
    let total = t0.elapsed().as_secs_f64();
    let (md, js) = report(&b, total);
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

struct Target {
    name: String,
    measured: String,
    goal: String,
    met: Option<bool>,
    margin: String,
}

fn report(b: &Bench, total_s: f64) -> (String, serde_json::Value) {
    let mut md = String::new();
    let mut js = BTreeMap::new();
    let l = b.limits.clone();
    let w = &mut md;

    let _ = writeln!(
        w,
        "Run took {total_s:.0} s. Load average (1/5/15 min) {}.\n",
        b.load
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let _ = writeln!(
        w,
        "Before every run the harness waits until other work uses at most {:.0}% of the CPUs (0.5 s sample): it waited {:.0} s in all{}.\n",
        b.a.quiet * 100.0,
        b.waited_s,
        if b.busy_starts.is_empty() {
            String::from("; every run started on a quiet machine")
        } else {
            format!(", and gave up waiting before: {}", b.busy_starts.join(", "))
        }
    );

    // Machine limits.
    if let Some(l) = &l {
        let _ = writeln!(w, "### Machine limits (same run)\n");
        let _ = writeln!(w, "| limit | value | how |\n|---|---|---|");
        let _ = writeln!(
            w,
            "| loopback TCP, 1 stream | {:.0} MB/s | {} , 5 s |",
            l.tcp_bps / MB,
            l.tcp_tool
        );
        let _ = writeln!(w, "| loopback TCP round trip, 1 KiB ping-pong | p50 {:.0} us, p99 {:.0} us | built-in, 2 s |", l.rtt_p50_us, l.rtt_p99_us);
        let _ = writeln!(w, "| sequential write, buffered (no fsync) | {:.0} MB/s | 1 MiB writes to a new file on the data-dir filesystem, up to 4 GiB or 5 s, one pass |", l.seq_buffered_bps / MB);
        let _ = writeln!(w, "| (the same, straight after, into the pages just freed) | {:.0} MB/s | up to 1 GiB or 2 s: not a limit, shows the VM's first-touch cost |", l.seq_buffered_warm_bps / MB);
        let _ = writeln!(w, "| sequential write + fdatasync at end | {:.0} MB/s | 1 MiB writes, up to 2 GiB or 4 s, then fdatasync (timed) |", l.seq_fsync_bps / MB);
        let _ = writeln!(w, "| 4 KiB append + fdatasync | p50 {:.2} ms, p99 {:.2} ms | 3 s of appends, each synced |", l.fsync4k_p50_us / 1e3, l.fsync4k_p99_us / 1e3);
        let _ = writeln!(w, "\nProduce limit with fsync off = min(loopback TCP, buffered write) = **{:.0} MB/s**.\n", l.produce_bps() / MB);
        js.insert("limits", json!({"tcp_bytes_s": l.tcp_bps, "tcp_tool": l.tcp_tool, "rtt_p50_us": l.rtt_p50_us,
            "rtt_p99_us": l.rtt_p99_us, "seq_buffered_bytes_s": l.seq_buffered_bps, "seq_buffered_warm_bytes_s": l.seq_buffered_warm_bps, "seq_fsync_bytes_s": l.seq_fsync_bps,
            "fsync4k_p50_us": l.fsync4k_p50_us, "fsync4k_p99_us": l.fsync4k_p99_us}));
    }

    // Produce.
    let mut pj = vec![];
    if !b.produce.is_empty() {
        let _ = writeln!(w, "### Produce throughput\n");
        let _ = writeln!(w, "MB = 10^6 bytes of record values (keys are null). \"of limit\": fsync off, of min(loopback TCP, buffered write); fsync per batch, of the write+fsync limit for the mean batch: mean batch bytes / (copying them into fresh page cache at the one-pass buffered-write rate + p50 fdatasync of that many bytes rewritten in cached pages). CPU columns are seconds over the whole phase (broker: and per GB of values); \"other\" is CPU used by everything else on the machine meanwhile (noise).\n");
        let _ = writeln!(w, "| record | partitions | acks | compression | fsync | msg/s | MB/s | of limit | mean batch | broker CPU s (per GB) | broker peak RSS | client CPU s | other CPU s |");
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for p in &b.produce {
            let limit = match (p.fsync, &l) {
                (Fsync::Off, Some(l)) => l.produce_bps(),
                (Fsync::PerBatch, _) => p.batch_fsync_us.map_or(f64::NAN, |us| {
                    batch_limits(p.r.avg_batch_bytes, us, l.as_ref()).0
                }),
                _ => f64::NAN,
            };
            let of = p.r.mb_s() * MB / limit;
            let batch = match p.batch_fsync_us {
                Some(us) => format!(
                    "{:.0} B / {:.0} msgs (fdatasync {:.2} ms)",
                    p.r.avg_batch_bytes,
                    p.r.avg_batch_msgs,
                    us.1 / 1e3
                ),
                None => format!(
                    "{:.0} B / {:.0} msgs",
                    p.r.avg_batch_bytes, p.r.avg_batch_msgs
                ),
            };
            let _ = writeln!(
                w,
                "| {} B | {} | {} | {} | {} | {:.0} | {:.1} | {} | {} | {:.2} ({:.2}) | {:.0} MiB | {:.2} | {:.2} |",
                p.spec.size, p.partitions_label, p.spec.acks, p.spec.compression, fsync_label(p.fsync), p.r.msg_s(), p.r.mb_s(),
                pct(of), batch, p.u.broker_cpu_s, p.u.broker_cpu_s / (p.r.bytes as f64 / 1e9), p.u.broker_peak_rss_mib,
                p.u.client_cpu_s, p.u.other_cpu_s
            );
            pj.push(json!({"size": p.spec.size, "partitions": p.spec.partitions, "acks": p.spec.acks,
                "compression": p.spec.compression, "fsync": fsync_label(p.fsync), "msgs": p.r.msgs, "bytes": p.r.bytes,
                "secs": p.r.secs, "mb_s": p.r.mb_s(), "msg_s": p.r.msg_s(), "limit_bytes_s": limit, "fraction_of_limit": of,
                "avg_batch_bytes": p.r.avg_batch_bytes, "avg_batch_msgs": p.r.avg_batch_msgs,
                "batch_rewrite_fsync_p50_us": p.batch_fsync_us.map(|u| u.0), "batch_fdatasync_p50_us": p.batch_fsync_us.map(|u| u.1), "usage": usage_json(&p.u),
                "consume": p.consume.as_ref().map(|(c, u)| json!({"msgs": c.msgs, "bytes": c.bytes, "secs": c.secs,
                    "mb_s": c.mb_s(), "msg_s": c.msg_s(), "usage": usage_json(u)})),
                "consume_small_fetch": p.consume_small_fetch.as_ref().map(|(c, u)| json!({"fetch_max_bytes": kafka::SMALL_FETCH_MAX_BYTES,
                    "msgs": c.msgs, "bytes": c.bytes, "secs": c.secs, "mb_s": c.mb_s(), "msg_s": c.msg_s(), "usage": usage_json(u)}))}));
        }
        let _ = writeln!(w);
    }
    js.insert("produce", json!(pj));

    // Consume.
    if b.produce.iter().any(|p| p.consume.is_some()) {
        let _ = writeln!(
            w,
            "### Consume throughput (page cache, right after the produce run of the same row)\n"
        );
        let _ = writeln!(w, "| data set | msg/s | MB/s | x produce | of loopback TCP | broker CPU s (per GB) | broker peak RSS | client CPU s | other CPU s |");
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|");
        for p in &b.produce {
            let small = p.consume_small_fetch.iter().map(|c| (format!(", consumer fetch.max.bytes={}", kafka::SMALL_FETCH_MAX_BYTES), c));
            for (setting, (c, u)) in p.consume.iter().map(|c| (String::new(), c)).chain(small) {
                let tcp = l.as_ref().map_or(f64::NAN, |l| l.tcp_bps);
                let _ = writeln!(
                    w,
                    "| {} B x {} partitions, acks={}, {}{setting} ({:.2} GB) | {:.0} | {:.1} | {:.2}x | {} | {:.2} ({:.2}) | {:.0} MiB | {:.2} | {:.2} |",
                    p.spec.size, p.partitions_label, p.spec.acks, p.spec.compression, c.bytes as f64 / 1e9, c.msg_s(), c.mb_s(),
                    c.mb_s() / p.r.mb_s(), pct(c.mb_s() * MB / tcp), u.broker_cpu_s, u.broker_cpu_s / (c.bytes as f64 / 1e9),
                    u.broker_peak_rss_mib, u.client_cpu_s, u.other_cpu_s
                );
            }
        }
        let _ = writeln!(w);
    }

    // Latency.
    let mut lj = vec![];
    if !b.latency.is_empty() {
        let _ = writeln!(
            w,
            "### End-to-end latency, 10,000 msg/s of 1 KiB, acks=all, linger.ms=0\n"
        );
        let _ = writeln!(w, "Producer send call to consumer receive, timestamps in the payload (one process, one monotonic clock); the first second is warm-up and not counted. Floor: loopback 1 KiB round trip p50 {}.\n",
            l.as_ref().map_or("n/a".into(), |l| format!("{:.0} us", l.rtt_p50_us)));
        let _ = writeln!(w, "| setup | rate achieved | measured msgs | p50 | p99 | p99.9 | max | broker CPU s | broker peak RSS | other CPU s |");
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|");
        for r in &b.latency {
            let _ = writeln!(
                w,
                "| {} | {:.0} msg/s | {} of {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} | {:.0} MiB | {:.2} |",
                r.label, r.r.rate, r.r.measured, r.r.sent, r.r.p50_ms, r.r.p99_ms, r.r.p999_ms, r.r.max_ms, r.u.broker_cpu_s,
                r.u.broker_peak_rss_mib, r.u.other_cpu_s
            );
            lj.push(json!({"label": r.label, "partitions": r.partitions, "fsync": fsync_label(r.fsync), "sent": r.r.sent,
                "received": r.r.received, "measured": r.r.measured, "rate": r.r.rate, "p50_ms": r.r.p50_ms, "p99_ms": r.r.p99_ms,
                "p999_ms": r.r.p999_ms, "max_ms": r.r.max_ms, "usage": usage_json(&r.u)}));
        }
        let _ = writeln!(w);
    }
    js.insert("latency", json!(lj));

    // Metrics on/off.
    let mut overhead = f64::NAN;
    let mut cpu_overhead = f64::NAN;
    if !b.metrics.is_empty() {
        let _ = writeln!(w, "### Metrics on vs off (produce 1 KiB x 8 partitions, acks=1, none, fsync off; alternate runs, on/off/off/on/...)\n");
        let _ = writeln!(w, "| run | metrics | MB/s | broker CPU s | broker CPU ms per 100 MB | other CPU s |\n|---|---|---|---|---|---|");
        for (i, m) in b.metrics.iter().enumerate() {
            let _ = writeln!(
                w,
                "| {} | {} | {:.1} | {:.2} | {:.1} | {:.2} |",
                i + 1,
                if m.metrics { "on" } else { "off" },
                m.r.mb_s(),
                m.u.broker_cpu_s,
                m.u.broker_cpu_s * 1e3 / (m.r.bytes as f64 / 1e8),
                m.u.other_cpu_s
            );
        }
        let med = |on: bool, f: &dyn Fn(&MetricsRow) -> f64| {
            median(
                b.metrics
                    .iter()
                    .filter(|m| m.metrics == on)
                    .map(f)
                    .collect(),
            )
        };
        let thr = |m: &MetricsRow| m.r.mb_s();
        let cpu = |m: &MetricsRow| m.u.broker_cpu_s * 1e3 / (m.r.bytes as f64 / 1e8);
        let (on, off) = (med(true, &thr), med(false, &thr));
        let (con, coff) = (med(true, &cpu), med(false, &cpu));
        // Throughput drifts through the series (the page cache warms up), so medians over all
        // runs compare different points of the drift. Each round is one adjacent on/off pair,
        // in alternating order: the mean of the per-round differences cancels a linear drift.
        let rounds: Vec<(f64, f64)> = b
            .metrics
            .chunks(2)
            .filter_map(|pair| match pair {
                [a, b2] if a.metrics != b2.metrics => {
                    let (m_on, m_off) = if a.metrics { (a, b2) } else { (b2, a) };
                    Some(((thr(m_off) - thr(m_on)) / thr(m_off), (cpu(m_on) - cpu(m_off)) / cpu(m_off)))
                }
                _ => None,
            })
            .collect();
        let n = rounds.len().max(1) as f64;
        overhead = rounds.iter().map(|r| r.0).sum::<f64>() / n;
        cpu_overhead = rounds.iter().map(|r| r.1).sum::<f64>() / n;
        let per_round: Vec<String> = rounds.iter().map(|r| format!("{:+.1}%", r.0 * 100.0)).collect();
        let _ = writeln!(w, "\nPer round (adjacent on/off pair), throughput overhead: {}. Mean over rounds: throughput overhead **{:.1}%** (positive = slower with metrics), broker CPU per byte **{:+.1}%**. For reference, medians over all runs: on {on:.1} MB/s, off {off:.1} MB/s; CPU per 100 MB on {con:.1} ms, off {coff:.1} ms.\n", per_round.join(", "), overhead * 100.0, cpu_overhead * 100.0);
        js.insert("metrics", json!({"runs": b.metrics.iter().map(|m| json!({"metrics": m.metrics, "mb_s": m.r.mb_s(), "usage": usage_json(&m.u)})).collect::<Vec<_>>(),
            "median_on_mb_s": on, "median_off_mb_s": off, "per_round_throughput_overhead": rounds.iter().map(|r| r.0).collect::<Vec<_>>(), "throughput_overhead": overhead, "cpu_per_byte_overhead": cpu_overhead}));
    }

    if !b.recompress.is_empty() {
        let rj = recompress::report(&b.recompress, w);
        js.insert("recompress", rj);
    }

    if !b.profiles.is_empty() {
        let _ = writeln!(w, "### Profiles (perf record -e cpu-clock -a, whole machine; separate runs, not in the tables above)\n");
        let _ = writeln!(w, "Thread names: `tokio-rt-worker` (and other non-`rdk:` threads but `lantern-bench`) are the broker, `rdk:*` librdkafka's threads and `lantern-bench` the harness's own (client) thread; `swapper` is idle.\n");
        for p in &b.profiles {
            let _ = writeln!(
                w,
                "**{}**\n\n```\n{}\n\n{}\n```\n",
                p.label, p.by_comm, p.top
            );
        }
    }
    if let Some(a) = &b.broker_args {
        let _ = writeln!(w, "First broker's command line (others differ in ports, dir, partitions, flush and metrics flags):\n\n```\n{a}\n```\n");
    }

    // Targets.
    let mut t: Vec<Target> = vec![];
    if let Some(l) = &l {
        for p in b.produce.iter().filter(|p| {
            p.fsync == Fsync::Off
                && p.spec.size == 1024
                && p.spec.acks == "1"
                && p.spec.compression == "none"
                && p.spec.partitions <= 8
        }) {
            let f = p.r.mb_s() * MB / l.produce_bps();
            t.push(Target {
                name: format!(
                    "produce 1 KiB, acks=1, none, fsync off, {} partition(s)",
                    p.spec.partitions
                ),
                measured: format!(
                    "{:.0} MB/s = {} of {:.0} MB/s",
                    p.r.mb_s(),
                    pct(f),
                    l.produce_bps() / MB
                ),
                goal: ">= 60% of min(TCP, buffered write)".into(),
                met: Some(f >= 0.6),
                margin: format!("{:+.0} points", (f - 0.6) * 100.0),
            });
        }
    }
    for p in b.produce.iter().filter(|p| p.fsync == Fsync::PerBatch) {
        if let Some(us) = p.batch_fsync_us {
            let (limit, cached) = batch_limits(p.r.avg_batch_bytes, us, l.as_ref());
            let f = p.r.mb_s() * MB / limit;
            let off = b
                .produce
                .iter()
                .find(|o| {
                    o.fsync == Fsync::Off
                        && o.spec.size == p.spec.size
                        && o.spec.partitions == p.spec.partitions
                        && o.spec.acks == p.spec.acks
                        && o.spec.compression == p.spec.compression
                })
                .map_or(String::new(), |o| {
                    format!(
                        "; {:.2}x the same run with fsync off",
                        p.r.mb_s() / o.r.mb_s()
                    )
                });
            t.push(Target {
                name: format!("produce {} B, acks=all, fsync per batch, {} partition(s)", p.spec.size, p.spec.partitions),
                measured: format!(
                    "{:.0} MB/s = {} of {:.0} MB/s ({:.0} kB batches: filling fresh page cache at the buffered-write rate + {:.2} ms fdatasync); {} of {:.0} MB/s if the pages were already cached{off}",
                    p.r.mb_s(), pct(f), limit / MB, p.r.avg_batch_bytes / 1e3, us.1 / 1e3, pct(p.r.mb_s() * MB / cached), cached / MB
                ),
                goal: "within 2x of write+fsync limit (>= 50%)".into(),
                met: Some(f >= 0.5),
                margin: format!("{:.2}x of the 0.5 floor", f / 0.5),
            });
        }
    }
    for r in b
        .latency
        .iter()
        .filter(|r| r.fsync == Fsync::Off && r.partitions == 1)
    {
        t.push(Target {
            name: "end-to-end p99, 10k msg/s x 1 KiB, acks=all, fsync off".into(),
            measured: format!("{:.2} ms", r.r.p99_ms),
            goal: "< 10 ms".into(),
            met: Some(r.r.p99_ms < 10.0),
            margin: format!(
                "{:.1} ms {}",
                (10.0 - r.r.p99_ms).abs(),
                if r.r.p99_ms < 10.0 { "under" } else { "over" }
            ),
        });
    }
    for p in b.produce.iter().filter(|p| p.spec.compression == "none") {
        let small = p.consume_small_fetch.iter().map(|c| (format!(", consumer fetch.max.bytes={}", kafka::SMALL_FETCH_MAX_BYTES), c));
        for (setting, (c, _)) in p.consume.iter().map(|c| (String::new(), c)).chain(small) {
            let x = c.mb_s() / p.r.mb_s();
            t.push(Target {
                name: format!(
                    "consume vs produce, {} B x {} partition(s){setting}",
                    p.spec.size, p.spec.partitions
                ),
                measured: format!("{:.0} vs {:.0} MB/s = {:.2}x", c.mb_s(), p.r.mb_s(), x),
                goal: ">= 1.5x".into(),
                met: Some(x >= 1.5),
                margin: format!("{:+.2}x", x - 1.5),
            });
        }
    }
    let rss100 = b
        .produce
        .iter()
        .filter(|p| p.spec.partitions == 100)
        .flat_map(|p| {
            std::iter::once(p.u.broker_peak_rss_mib)
                .chain(p.consume.as_ref().map(|c| c.1.broker_peak_rss_mib))
                .chain(p.consume_small_fetch.as_ref().map(|c| c.1.broker_peak_rss_mib))
        })
        .chain(
            b.latency
                .iter()
                .filter(|r| r.partitions == 100)
                .map(|r| r.u.broker_peak_rss_mib),
        )
        .fold(f64::NAN, f64::max);
    if rss100.is_finite() {
        t.push(Target {
            name: "broker peak RSS, 100 partitions (produce, consume, latency runs)".into(),
            measured: format!("{rss100:.0} MiB"),
            goal: "< 256 MiB".into(),
            met: Some(rss100 < 256.0),
            margin: format!(
                "{:.0} MiB {}",
                (256.0 - rss100).abs(),
                if rss100 < 256.0 { "under" } else { "over" }
            ),
        });
    }
    if overhead.is_finite() {
        t.push(Target {
            name: "metrics on vs off, throughput (issue 4)".into(),
            measured: format!(
                "{:.1}% (broker CPU per byte {:+.1}%)",
                overhead * 100.0,
                cpu_overhead * 100.0
            ),
            goal: "< 3%".into(),
            met: Some(overhead < 0.03),
            margin: format!(
                "{:.1} points {}",
                (3.0 - overhead * 100.0).abs(),
                if overhead < 0.03 { "under" } else { "over" }
            ),
        });
    }
    let mut tw = String::new();
    let _ = writeln!(
        tw,
        "### Targets (issue 7, and issue 4's metrics overhead)\n"
    );
    let _ = writeln!(
        tw,
        "| target | measured | goal | met | margin |\n|---|---|---|---|---|"
    );
    for x in &t {
        let met = match x.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "n/a",
        };
        let _ = writeln!(
            tw,
            "| {} | {} | {} | {} | {} |",
            x.name, x.measured, x.goal, met, x.margin
        );
    }
    let _ = writeln!(tw);
    js.insert(
        "targets",
        json!(t
            .iter()
            .map(|x| json!({"name": x.name, "measured": x.measured, "goal": x.goal, "met": x.met}))
            .collect::<Vec<_>>()),
    );
    if !b.failures.is_empty() {
        let _ = writeln!(tw, "**Runs that failed:**\n");
        for f in &b.failures {
            let _ = writeln!(tw, "- {f}");
        }
        let _ = writeln!(tw);
    }
    js.insert("failures", json!(b.failures));
    js.insert("load", json!(b.load));
    js.insert("waited_s", json!(b.waited_s));
    js.insert("busy_starts", json!(b.busy_starts));
    js.insert("total_s", json!(total_s));
    // Targets first, then the detail.
    (tw + &md, json!(js))
}
