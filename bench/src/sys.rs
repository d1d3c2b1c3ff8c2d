//! The broker process the harness starts, and what /proc says about it and the machine.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (user, system) CPU seconds of a process (all its threads), from /proc/<pid>/stat.
pub fn cpu_split_secs(pid: &str) -> (f64, f64) {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let stime: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (utime / clk_tck(), stime / clk_tck())
}

/// User + system CPU seconds of a process (all its threads).
pub fn cpu_secs(pid: &str) -> f64 {
    let (u, s) = cpu_split_secs(pid);
    u + s
}

/// Busy CPU seconds of the whole machine (all but idle and iowait), from /proc/stat.
pub fn machine_busy_secs() -> f64 {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = s.lines().next().unwrap_or("");
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    let busy: f64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, x)| x)
        .sum();
    busy / clk_tck()
}

/// (busy, total) jiffies of the whole machine from /proc/stat (busy excludes idle and iowait).
fn machine_jiffies() -> (f64, f64) {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let busy: f64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, x)| x)
        .sum();
    (busy, total)
}

/// Share of all the machine's CPUs busy over the next `secs`.
pub fn machine_busy_frac(secs: f64) -> f64 {
    let (b0, t0) = machine_jiffies();
    sleep(Duration::from_secs_f64(secs));
    let (b1, t1) = machine_jiffies();
    if t1 > t0 {
        (b1 - b0) / (t1 - t0)
    } else {
        0.0
    }
}

/// A field in kB of /proc/<pid>/status (VmHWM, VmRSS).
pub fn status_kib(pid: &str, field: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux >= 4.0), so each phase has its own peak.
pub fn reset_peak_rss(pid: &str) {
    let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU and peak-RSS bookkeeping for one measured phase.
pub struct Meter {
    pid: String,
    t0: Instant,
    broker0: f64,
    broker_user0: f64,
    client0: f64,
    machine0: f64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub wall_s: f64,
    pub broker_cpu_s: f64,
    /// The user-space part of `broker_cpu_s`.
    pub broker_user_cpu_s: f64,
    pub client_cpu_s: f64,
    /// Busy CPU seconds of everything else on the machine during the phase (noise indicator).
    pub other_cpu_s: f64,
    pub broker_peak_rss_mib: f64,
}

impl Meter {
    pub fn start(pid: u32) -> Meter {
        let pid = pid.to_string();
        reset_peak_rss(&pid);
        Meter {
            t0: Instant::now(),
            broker0: cpu_secs(&pid),
            broker_user0: cpu_split_secs(&pid).0,
            client0: cpu_secs("self"),
            machine0: machine_busy_secs(),
            pid,
        }
    }

    pub fn stop(&self) -> Usage {
        let broker = cpu_secs(&self.pid) - self.broker0;
        let client = cpu_secs("self") - self.client0;
        let machine = machine_busy_secs() - self.machine0;
        Usage {
            wall_s: self.t0.elapsed().as_secs_f64(),
            broker_cpu_s: broker,
            broker_user_cpu_s: cpu_split_secs(&self.pid).0 - self.broker_user0,
            client_cpu_s: client,
            other_cpu_s: (machine - broker - client).max(0.0),
            broker_peak_rss_mib: status_kib(&self.pid, "VmHWM:") as f64 / 1024.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fsync {
    /// No fsync while the run lasts (log.flush.interval.ms = Long.MAX): the page cache only.
    Off,
    /// log.flush.interval.messages=1: every batch fsynced before it is acknowledged.
    PerBatch,
}

pub struct BrokerOpts {
    pub partitions: i32,
    pub fsync: Fsync,
    pub metrics: bool,
    /// More broker flags (`--<property>=<value>`).
    pub extra: Vec<String>,
    /// Environment variables for the broker (the OTEL_* of the tracing runs).
    pub env: Vec<(String, String)>,
}

pub struct Broker {
    child: Child,
    pub pid: u32,
    pub bootstrap: String,
    /// The port of /metrics and /health.
    pub http: u16,
    pub dir: PathBuf,
    pub args: Vec<String>,
}

impl Broker {
    /// Starts the broker on a fresh data dir under `work` and waits for /health/ready.
    pub fn start(bin: &Path, work: &Path, name: &str, o: &BrokerOpts) -> Broker {
        let dir = work.join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("data")).expect("create data dir");
        let kafka = free_port();
        let http = loop {
            let p = free_port();
            if p != kafka {
                break p;
            }
        };
        let mut args = vec![
            format!("--log.dirs={}", dir.join("data").display()),
            format!("--listeners=PLAINTEXT://127.0.0.1:{kafka}"),
            format!("--http.listener=127.0.0.1:{http}"),
            format!("--num.partitions={}", o.partitions),
            "--offsets.topic.num.partitions=1".to_string(),
        ];
        match o.fsync {
            Fsync::Off => args.push("--log.flush.interval.ms=9223372036854775807".into()),
            Fsync::PerBatch => args.push("--log.flush.interval.messages=1".into()),
        }
        if !o.metrics {
            args.push("--metrics.enabled=false".into());
        }
        args.extend(o.extra.iter().cloned());
        let log = fs::File::create(dir.join("broker.log")).expect("broker log");
        let mut command = Command::new(bin);
        // no OTEL_* from the harness's shell: tracing is on only where a run asks for it
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("OTEL_")) {
            command.env_remove(k);
        }
        let child = command
            .args(&args)
            .envs(o.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut b = Broker {
            pid: child.id(),
            child,
            bootstrap: format!("127.0.0.1:{kafka}"),
            http,
            dir,
            args,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http_get(http, "/health/ready")
                .map(|r| r.starts_with("HTTP/1.1 200"))
                .unwrap_or(false)
            {
                break;
            }
            if let Ok(Some(st)) = b.child.try_wait() {
                panic!(
                    "broker exited during start-up ({st}); see {}",
                    b.dir.join("broker.log").display()
                );
            }
            if Instant::now() > deadline {
                b.stop();
                panic!(
                    "broker not ready after 30 s; see {}",
                    b.dir.join("broker.log").display()
                );
            }
            sleep(Duration::from_millis(50));
        }
        b
    }

    /// The value of an unlabelled series on the broker's /metrics, if it has one.
    /// Every request the broker counted (`kafka_network_requestmetrics_requests_total`, all
    /// APIs and versions).
    pub fn requests_total(&self) -> f64 {
        let text = http_get(self.http, "/metrics").unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("kafka_network_requestmetrics_requests_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
            .sum()
    }

    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = http_get(self.http, "/metrics").ok()?;
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// SIGTERM, wait (SIGKILL after 20 s), then delete the data dir.
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            sleep(Duration::from_millis(20));
        }
        let _ = fs::remove_dir_all(self.dir.join("data"));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
