//! process_* metrics from /proc/self, as the Prometheus client libraries report them.
use std::fs;

pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub rss_bytes: f64,
    pub vms_bytes: f64,
    pub open_fds: f64,
    pub max_fds: f64,
    pub start_time_seconds: f64,
    pub read_bytes: f64,
    pub write_bytes: f64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn page_size() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as f64 } else { 4096.0 }
}

/// Parses /proc/self/stat fields after the command name: (utime, stime, starttime ticks,
/// vsize bytes, rss pages).
pub fn parse_stat(stat: &str) -> Option<(f64, f64, f64, f64, f64)> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field numbers from proc(5), minus the 3 before `rest` (pid, comm, and state is f[0]).
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((num(11)?, num(12)?, num(19)?, num(20)?, num(21)?))
}

fn boot_time() -> Option<f64> {
    fs::read_to_string("/proc/stat").ok()?.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))
}

pub fn read() -> ProcessStats {
    let ticks = clock_ticks();
    let (utime, stime, start, vsize, rss) = fs::read_to_string("/proc/self/stat").ok().and_then(|s| parse_stat(&s)).unwrap_or_default();
    let open_fds = fs::read_dir("/proc/self/fd").map(|d| d.count() as f64).unwrap_or(0.0);
    let max_fds = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Max open files")).and_then(|l| l.split_whitespace().nth(3)).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0);
    let io = fs::read_to_string("/proc/self/io").unwrap_or_default();
    let io_field = |name: &str| io.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok())).unwrap_or(0.0);
    ProcessStats {
        cpu_seconds: (utime + stime) / ticks,
        rss_bytes: rss * page_size(),
        vms_bytes: vsize,
        open_fds,
        max_fds,
        start_time_seconds: boot_time().unwrap_or(0.0) + start / ticks,
        read_bytes: io_field("read_bytes:"),
        write_bytes: io_field("write_bytes:"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_a_stat_line_with_spaces_in_the_name() {
        let line = "123 (lantern broker) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 4000 123456789 2500 18446744073709551615";
        let (u, s, start, vsize, rss) = super::parse_stat(line).unwrap();
        assert_eq!((u, s, start, vsize, rss), (250.0, 50.0, 4000.0, 123456789.0, 2500.0));
    }
}
