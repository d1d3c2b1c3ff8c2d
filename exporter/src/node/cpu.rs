//! `cpu`: node_cpu_seconds_total{cpu,mode} and node_cpu_guest_seconds_total{cpu,mode} from
//! the per-CPU lines of /proc/stat; node_cpu_isolated{cpu} from
//! /sys/devices/system/cpu/isolated; node_cpu_{core,package}_throttles_total from each CPU's
//! thermal_throttle/ counters in sysfs (x86 only; absent on most VMs).
//!
//! The kernel counts in USER_HZ ticks, which is 100 on every Linux ABI (it is fixed for
//! userspace, unlike HZ), so a tick is 0.01 s, as node_exporter assumes.
//!
//! Like node_exporter 1.5 the collector keeps counters monotonic: iowait (and, on some
//! kernels, idle) can step backwards, and a counter that decreases would look like a reset to
//! `rate()`. A value lower than last scrape's is replaced by last scrape's; an idle drop of
//! 3 s or more is taken as a CPU hot-plug and resets that CPU's memory.
use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{read_attr, read_text, write_family, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

const USER_HZ: f64 = 100.0;
const JUMP_BACK_SECONDS: f64 = 3.0;

/// The /proc/stat column order.
pub const MODES: [&str; 10] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"];

/// One CPU's counters in seconds, in [`MODES`] order.
pub type CpuSeconds = [f64; 10];

pub struct CpuCollector {
    guest: bool,
    last: Mutex<BTreeMap<u32, CpuSeconds>>,
}

impl CpuCollector {
    pub fn new(guest: bool) -> Self {
        CpuCollector { guest, last: Mutex::new(BTreeMap::new()) }
    }

    /// Applies the monotonicity rule above against the previous scrape and remembers `now`.
    fn monotonic(&self, now: BTreeMap<u32, CpuSeconds>) -> BTreeMap<u32, CpuSeconds> {
        let mut last = match self.last.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = BTreeMap::new();
        for (cpu, new) in now {
            let mut kept = last.get(&cpu).copied().unwrap_or([0.0; 10]);
            if kept[3] - new[3] >= JUMP_BACK_SECONDS {
                kept = [0.0; 10];
            }
            for (k, n) in kept.iter_mut().zip(new) {
                if n >= *k {
                    *k = n;
                }
            }
            out.insert(cpu, kept);
        }
        *last = out.clone();
        out
    }
}

impl Collector for CpuCollector {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let cpus = self.monotonic(parse_cpu_lines(&read_text(&paths.proc("stat"))?)?);
        // node_exporter's per-CPU mode order, which is also the alphabetical one.
        const EXPOSED: [(&str, usize); 8] =
            [("idle", 3), ("iowait", 4), ("irq", 5), ("nice", 1), ("softirq", 6), ("steal", 7), ("system", 2), ("user", 0)];
        out.family("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", MetricType::Counter);
        for (cpu, secs) in &cpus {
            let cpu = cpu.to_string();
            for (mode, i) in EXPOSED {
                out.sample("node_cpu_seconds_total", &[("cpu", &cpu), ("mode", mode)], secs[i]);
            }
        }
        if self.guest {
            out.family(
                "node_cpu_guest_seconds_total",
                "Seconds the CPUs spent in guests (VMs) for each mode.",
                MetricType::Counter,
            );
            for (cpu, secs) in &cpus {
                let cpu = cpu.to_string();
                out.sample("node_cpu_guest_seconds_total", &[("cpu", &cpu), ("mode", "nice")], secs[9]);
                out.sample("node_cpu_guest_seconds_total", &[("cpu", &cpu), ("mode", "user")], secs[8]);
            }
        }

        if let Some(list) = read_attr(&paths.sys("devices/system/cpu/isolated"))? {
            let isolated: Vec<String> = parse_cpu_list(&list)?.iter().map(u32::to_string).collect();
            let samples: Vec<(Vec<&str>, f64)> = isolated.iter().map(|c| (vec![c.as_str()], 1.0)).collect();
            write_family(
                out,
                "node_cpu_isolated",
                "Whether each core is isolated, information from /sys/devices/system/cpu/isolated.",
                MetricType::Gauge,
                &["cpu"],
                &samples,
            );
        }
        thermal_throttles(paths, out)
    }
}

/// node_exporter's thermal-throttle rule: CPUs without topology are skipped; the core count is
/// read once per (package, core) and the package count once per package, from the first CPU
/// that has them.
fn thermal_throttles(paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
    let dir = paths.sys("devices/system/cpu");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
    let mut cpus: Vec<(u32, std::path::PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n: u32 = name.strip_prefix("cpu")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    cpus.sort();
    let read_u64 = |p: std::path::PathBuf| -> Result<Option<u64>, CollectError> { Ok(read_attr(&p)?.and_then(|v| v.parse().ok())) };
    let mut cores: BTreeMap<(u64, u64), Option<u64>> = BTreeMap::new();
    let mut packages: BTreeMap<u64, Option<u64>> = BTreeMap::new();
    for (_, cpu) in cpus {
        let (Some(package), Some(core)) =
            (read_u64(cpu.join("topology/physical_package_id"))?, read_u64(cpu.join("topology/core_id"))?)
        else {
            continue;
        };
        if cores.get(&(package, core)).map_or(true, Option::is_none) {
            cores.insert((package, core), read_u64(cpu.join("thermal_throttle/core_throttle_count"))?);
        }
        if packages.get(&package).map_or(true, Option::is_none) {
            packages.insert(package, read_u64(cpu.join("thermal_throttle/package_throttle_count"))?);
        }
    }
    let labels: Vec<((String, String), f64)> =
        cores.iter().filter_map(|((p, c), v)| v.map(|v| ((c.to_string(), p.to_string()), v as f64))).collect();
    let samples: Vec<(Vec<&str>, f64)> = labels.iter().map(|((c, p), v)| (vec![c.as_str(), p.as_str()], *v)).collect();
    write_family(
        out,
        "node_cpu_core_throttles_total",
        "Number of times this CPU core has been throttled.",
        MetricType::Counter,
        &["core", "package"],
        &samples,
    );
    let labels: Vec<(String, f64)> = packages.iter().filter_map(|(p, v)| v.map(|v| (p.to_string(), v as f64))).collect();
    let samples: Vec<(Vec<&str>, f64)> = labels.iter().map(|(p, v)| (vec![p.as_str()], *v)).collect();
    write_family(
        out,
        "node_cpu_package_throttles_total",
        "Number of times this CPU package has been throttled.",
        MetricType::Counter,
        &["package"],
        &samples,
    );
    Ok(())
}

/// A kernel CPU list such as `0-2,5` (empty when no CPU is listed).
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, CollectError> {
    let bad = || CollectError::parse("cpu list", format!("{text:?}"));
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if b < a || b - a > 65536 {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(cpus)
}

/// The `cpuN` lines of /proc/stat (not the `cpu` total), in seconds. Older kernels have
/// fewer columns; missing ones are 0.
pub fn parse_cpu_lines(text: &str) -> Result<BTreeMap<u32, CpuSeconds>, CollectError> {
    let mut cpus = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(id) = fields.next().and_then(|f| f.strip_prefix("cpu")) else { continue };
        if id.is_empty() {
            continue; // the all-CPU total
        }
        let cpu: u32 = id.parse().map_err(|_| CollectError::parse("/proc/stat", format!("bad cpu line {line:?}")))?;
        let mut secs = [0.0; 10];
        let mut n = 0;
        for (slot, f) in secs.iter_mut().zip(fields) {
            let ticks: u64 = f.parse().map_err(|_| CollectError::parse("/proc/stat", format!("bad cpu line {line:?}")))?;
            *slot = ticks as f64 / USER_HZ;
            n += 1;
        }
        if n < 4 {
            return Err(CollectError::parse("/proc/stat", format!("too few columns in {line:?}")));
        }
        cpus.insert(cpu, secs);
    }
    if cpus.is_empty() {
        return Err(CollectError::parse("/proc/stat", "no cpuN lines"));
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  673654 20234 159263 1125667 30532 0 14845 3498 1200 30
cpu0 319661 10969 69530 600362 5271 0 6497 1775 700 10
cpu1 353993 9265 89733 525305 25261 0 8348 1723 500 20
intr 16102987 0 0
ctxt 28693766
";

    #[test]
    fn per_cpu_lines_become_seconds() {
        let cpus = parse_cpu_lines(STAT).unwrap();
        assert_eq!(cpus.len(), 2);
        assert_eq!(cpus[&0], [3196.61, 109.69, 695.3, 6003.62, 52.71, 0.0, 64.97, 17.75, 7.0, 0.1]);
        assert_eq!(cpus[&1][4], 252.61);
    }

    #[test]
    fn old_kernels_with_fewer_columns_parse() {
        let cpus = parse_cpu_lines("cpu0 10 20 30 40 50 60 70\n").unwrap();
        assert_eq!(cpus[&0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn cpu_lists_expand_ranges() {
        assert_eq!(parse_cpu_list("0-1,3\n").unwrap(), vec![0, 1, 3]);
        assert_eq!(parse_cpu_list("\n").unwrap(), Vec::<u32>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_cpu_lines("cpu0 x y z\n").is_err());
        assert!(parse_cpu_lines("intr 1\n").is_err());
    }

    #[test]
    fn counters_never_go_backwards_but_a_hotplug_resets() {
        let c = CpuCollector::new(true);
        let mut a = [0.0; 10];
        a[3] = 100.0;
        a[4] = 5.0;
        c.monotonic(BTreeMap::from([(0, a)]));
        let mut b = a;
        b[4] = 4.5; // iowait stepped back
        b[3] = 100.5;
        assert_eq!(c.monotonic(BTreeMap::from([(0, b)]))[&0][4], 5.0);
        let mut hotplugged = [0.0; 10];
        hotplugged[3] = 1.0;
        hotplugged[4] = 0.2;
        assert_eq!(c.monotonic(BTreeMap::from([(0, hotplugged)]))[&0], hotplugged);
    }
}
