//! The machine's own limits, measured in the same run as the broker: loopback TCP, sequential
//! writes with and without fsync, write+fdatasync latency.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::sys::free_port;

pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

/// Single-stream loopback TCP throughput in bytes/s, and the tool that measured it.
pub fn loopback_tcp(secs: u32) -> (f64, String) {
    if let Some(bps) = iperf3(secs) {
        return (bps, "iperf3 (1 stream)".into());
    }
    (
        tcp_blaster(secs as f64),
        "built-in TCP blaster (iperf3 unavailable)".into(),
    )
}

fn iperf3(secs: u32) -> Option<f64> {
    let port = free_port().to_string();
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", "127.0.0.1", "-p", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    thread::sleep(Duration::from_millis(500));
    let out = Command::new("iperf3")
        .args([
            "-c",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            &secs.to_string(),
            "-J",
        ])
        .output()
        .ok();
    let _ = server.kill();
    let _ = server.wait();
    let v: serde_json::Value = serde_json::from_slice(&out?.stdout).ok()?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 8.0)
}

fn tcp_blaster(secs: f64) -> f64 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let rx = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 128 * 1024];
        let mut n = 0u64;
        let t0 = Instant::now();
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        n as f64 / t0.elapsed().as_secs_f64()
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let buf = noise(128 * 1024, 7);
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        s.write_all(&buf).unwrap();
    }
    drop(s);
    rx.join().unwrap()
}

/// Round trip of a 1 KiB message over loopback TCP (ping-pong): (p50, p99) in microseconds.
pub fn tcp_rtt_us(secs: f64) -> (f64, f64) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let echo = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 1024];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = [7u8; 1024];
    let mut lat = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        s.write_all(&buf).unwrap();
        s.read_exact(&mut buf).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(s);
    let _ = echo.join();
    lat.sort_by(f64::total_cmp);
    (percentile(&lat, 50.0), percentile(&lat, 99.0))
}

/// Sequential 1 MiB writes to a new file `name` in `dir` (up to `max_bytes` or `max_secs` of
/// writing); with `fsync` the time includes an fdatasync at the end. Returns bytes/s. The file
/// is left in place (its pages stay in the page cache, so the next pass gets fresh ones):
/// the caller deletes it.
pub fn seq_write(dir: &Path, name: &str, fsync: bool, max_bytes: u64, max_secs: f64) -> f64 {
    let path = dir.join(name);
    let buf = noise(1 << 20, 11);
    let mut f = File::create(&path).unwrap();
    let mut n = 0u64;
    let t0 = Instant::now();
    while n < max_bytes && t0.elapsed().as_secs_f64() < max_secs {
        f.write_all(&buf).unwrap();
        n += buf.len() as u64;
    }
    if fsync {
        f.sync_data().unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    if !fsync {
        // Untimed: write it back now so it does not compete with what is measured next.
        f.sync_data().unwrap();
    }
    n as f64 / secs
}

/// Appends of `size` bytes, each followed by fdatasync (what the broker does per flushed
/// batch), for `secs`: (p50, p99) latency in microseconds.
pub fn write_fsync_us(dir: &Path, size: usize, secs: f64) -> (f64, f64) {
    let path = dir.join(format!("fsync-{size}.bin"));
    let buf = noise(size.max(1), 13);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut lat = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs || lat.len() < 20 {
        let t = Instant::now();
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        if lat.len() >= 100_000 {
            break;
        }
    }
    drop(f);
    let _ = fs::remove_file(&path);
    lat.sort_by(f64::total_cmp);
    (percentile(&lat, 50.0), percentile(&lat, 99.0))
}

/// The storage limit of one produce run, measured right after it in the same conditions as
/// far as the harness can make them: the same bytes (`total`), in chunks of the run's mean
/// batch (`chunk`), appended to `files` new files that grow (one per partition), into the page
/// cache the run's data dir freed (the caller deletes it first and waits as long as the run
/// waited after the step before it freed its data); with `fsync`, each append is followed by
/// fdatasync, timed, and every file has its own writer thread (the broker's appends to
/// different partitions fsync concurrently); without, min(files, cores) writers take the
/// files round-robin (the broker's page-cache writes run on its worker threads). Gives bytes/s
/// over all writers. Stops after `max_secs`.
pub fn append_limit(dir: &Path, files: usize, chunk: usize, total: u64, fsync: bool, max_secs: f64) -> f64 {
    let files = files.max(1);
    let chunk = chunk.max(1);
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let writers = if fsync { files } else { files.min(cores) };
    let per_file = total.div_ceil(files as u64);
    // Opened here, so that a failure panics before any writer waits at the barrier.
    let paths: Vec<_> = (0..files).map(|i| dir.join(format!("append-limit-{i}.bin"))).collect();
    let mut opened: Vec<Option<File>> = paths
        .iter()
        .map(|p| Some(OpenOptions::new().create(true).truncate(true).write(true).open(p).unwrap()))
        .collect();
    let start = std::sync::Arc::new(std::sync::Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let mine: Vec<File> = (w..files).step_by(writers).filter_map(|i| opened[i].take()).collect();
            let start = start.clone();
            thread::spawn(move || {
                let buf = noise(chunk, 19 + w as u64);
                let mut mine: Vec<(File, u64)> = mine.into_iter().map(|f| (f, 0)).collect();
                start.wait();
                let t0 = Instant::now();
                let mut n = 0u64;
                while mine.iter().any(|(_, k)| *k < per_file) && t0.elapsed().as_secs_f64() < max_secs {
                    for (f, k) in mine.iter_mut().filter(|(_, k)| *k < per_file) {
                        f.write_all(&buf).unwrap();
                        if fsync {
                            f.sync_data().unwrap();
                        }
                        *k += chunk as u64;
                        n += chunk as u64;
                    }
                }
                (n, mine)
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let done: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    let secs = t0.elapsed().as_secs_f64();
    let mut bytes = 0u64;
    for (n, mine) in done.into_iter().flatten() {
        bytes += n;
        for (f, _) in mine {
            // Untimed: write back now so it does not compete with what is measured next.
            let _ = f.sync_data();
        }
    }
    for p in &paths {
        let _ = fs::remove_file(p);
    }
    bytes as f64 / secs
}
