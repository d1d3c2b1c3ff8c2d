//! Runs the real `lantern-exporter` binary on the fixture /proc, /sys, rootfs and udev trees
//! under tests/fixtures/, scrapes /metrics over HTTP and diffs the text against
//! tests/golden/metrics.txt. `UPDATE_GOLDEN=1 cargo test -p lantern-exporter --test
//! node_golden` rewrites the golden file after a deliberate change (review the diff).
//!
//! Only what the fixtures cannot pin is normalised: collector durations, the clock, the
//! adjtimex(2) values (timex reads the running kernel), the textfile fixtures' mtimes and
//! path, and the statfs(2) numbers of the two fixture mount points that exist (they are
//! directories on the machine running the test). Those series stay in the golden with their labels; their
//! values are checked by the filesystem unit tests (fake statfs) and against node_exporter in
//! tests/test_exporter_node.py.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A running exporter, killed on drop.
struct Exporter {
    child: Child,
    port: u16,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn start(args: &[String]) -> Exporter {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_lantern-exporter"))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(args)
        .env("TZ", "UTC")
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("lantern-exporter starts");
    let mut e = Exporter { child, port };
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = e.child.try_wait() {
            panic!("lantern-exporter exited at start-up: {status}");
        }
        assert!(Instant::now() < deadline, "lantern-exporter did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    e
}

fn fixture_args() -> Vec<String> {
    let f = fixtures();
    vec![
        format!("--path.procfs={}", f.join("proc").display()),
        format!("--path.sysfs={}", f.join("sys").display()),
        format!("--path.rootfs={}", f.join("rootfs").display()),
        format!("--path.udev.data={}", f.join("udev/data").display()),
        format!("--collector.textfile.directory={}", f.join("textfile").display()),
    ]
}

/// GET /metrics over plain HTTP/1.1: (status, body).
fn scrape(port: u16) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status code");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size line");
        let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
}

/// Drops or masks the series the fixtures cannot make deterministic (see the module docs).
fn normalise(text: &str) -> String {
    // The textfile collector names its files by path: the checkout's, not the golden's.
    let text = text.replace(&fixtures().display().to_string(), "<fixtures>");
    const STATFS: [&str; 5] = [
        "node_filesystem_avail_bytes{",
        "node_filesystem_files{",
        "node_filesystem_files_free{",
        "node_filesystem_free_bytes{",
        "node_filesystem_size_bytes{",
    ];
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("node_scrape_collector_duration_seconds{") || line.starts_with("node_time_seconds ") {
            continue;
        }
        // adjtimex(2) answers for the running kernel, and a checkout sets the files' mtimes.
        if line.starts_with("node_timex_") || line.starts_with("node_textfile_mtime_seconds{") {
            let (series, _) = line.rsplit_once(' ').expect("sample line");
            out.push_str(series);
            out.push_str(" <live>\n");
            continue;
        }
        if STATFS.iter().any(|p| line.starts_with(p)) {
            let (series, _) = line.rsplit_once(' ').expect("sample line");
            out.push_str(series);
            out.push_str(" <statfs>\n");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn fixture_scrape_matches_the_golden_file_and_passes_promtool() {
    let exporter = start(&fixture_args());
    let (status, body) = scrape(exporter.port);
    assert_eq!(status, 200);

    let golden_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/metrics.txt");
    let got = normalise(&body);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_path.parent().unwrap()).unwrap();
        std::fs::write(&golden_path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden_path).expect("tests/golden/metrics.txt (UPDATE_GOLDEN=1 creates it)");
    if got != want {
        let diff: Vec<String> = diff_lines(&want, &got);
        panic!(
            "scrape differs from {} ({} lines differ; UPDATE_GOLDEN=1 rewrites it):\n{}",
            golden_path.display(),
            diff.len(),
            diff.iter().take(60).cloned().collect::<Vec<_>>().join("\n")
        );
    }
    // Every collector succeeded on the fixtures.
    let failed: Vec<&str> = body.lines().filter(|l| l.starts_with("node_scrape_collector_success{") && l.ends_with(" 0")).collect();
    assert!(failed.is_empty(), "collectors failed on the fixtures: {failed:?}");

    promtool_check(&body);
}

/// Lints `promtool check metrics` draws on node_exporter's own output too, on names kept for
/// compatibility: (name prefix, end of the lint line). Nothing else may be reported.
const ACCEPTED_LINTS: [(&str, &str); 3] = [
    // /proc/meminfo's and /proc/net/{netstat,snmp}'s field names, as node_exporter keeps them
    ("node_memory_", "metric names should be written in 'snake_case' not 'camelCase'"),
    ("node_netstat_", "metric names should be written in 'snake_case' not 'camelCase'"),
    // node_entropy_available_bits / node_entropy_pool_size_bits
    ("node_entropy_", "use base unit \"bytes\" instead of \"bits\""),
];

/// `promtool check metrics` must find nothing but [`ACCEPTED_LINTS`].
fn promtool_check(body: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool is needed for this test and could not be run ({e}): install Debian's `prometheus` \
             package (tests/run installs it)"
        ),
    };
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !ACCEPTED_LINTS.iter().any(|(prefix, lint)| l.starts_with(prefix) && l.ends_with(lint)))
        .collect();
    assert!(problems.is_empty(), "promtool check metrics reports:\n{}", problems.join("\n"));
    assert!(report.contains("node_memory_MemTotal_bytes"), "promtool did not lint the output at all: {report:?}");
}

/// The lines only in `want` (-) or only in `got` (+), in order; enough to see what moved.
fn diff_lines(want: &str, got: &str) -> Vec<String> {
    let w: std::collections::HashSet<&str> = want.lines().collect();
    let g: std::collections::HashSet<&str> = got.lines().collect();
    want.lines()
        .filter(|l| !g.contains(l))
        .map(|l| format!("- {l}"))
        .chain(got.lines().filter(|l| !w.contains(l)).map(|l| format!("+ {l}")))
        .collect()
}

#[test]
fn a_collector_on_a_broken_root_fails_alone() {
    let f = fixtures();
    let exporter = start(&[
        "--path.procfs=/nonexistent-lantern-proc".to_string(),
        format!("--path.sysfs={}", f.join("sys").display()),
        format!("--path.rootfs={}", f.join("rootfs").display()),
    ]);
    let (status, body) = scrape(exporter.port);
    assert_eq!(status, 200, "a failing collector must not fail the scrape");
    for c in [
        "cpu", "meminfo", "diskstats", "netdev", "stat", "loadavg", "filesystem", "uname", "arp", "conntrack", "entropy",
        "netstat", "pressure", "softnet", "udp_queues",
    ] {
        assert!(body.contains(&format!("node_scrape_collector_success{{collector=\"{c}\"}} 0\n")), "{c} should fail:\n{body}");
    }
    for c in ["netclass", "time", "timex", "textfile", "hwmon", "thermal_zone"] {
        assert!(body.contains(&format!("node_scrape_collector_success{{collector=\"{c}\"}} 1\n")), "{c} should work:\n{body}");
    }
    assert!(body.contains("node_network_mtu_bytes{device=\"eth0\"} 9000\n"));
    assert!(!body.contains("node_cpu_seconds_total{"), "a failed collector's partial output is dropped");
}

#[test]
fn a_bad_collector_option_stops_start_up_naming_the_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_lantern-exporter"))
        .args(["--web.listen-address=127.0.0.1:1", "--collector.diskstats.device-exclude=("])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("collector.diskstats.device-exclude"), "{err}");
}
