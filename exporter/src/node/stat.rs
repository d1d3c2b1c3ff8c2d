//! `stat`: the machine-wide lines of /proc/stat: boot time, context switches, forks,
//! interrupts and runnable/blocked processes.
use super::{read_text, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct StatCollector;

#[derive(Debug, Default, PartialEq)]
pub struct Stat {
    pub intr: f64,
    pub ctxt: f64,
    pub btime: f64,
    pub processes: f64,
    pub procs_running: f64,
    pub procs_blocked: f64,
}

impl Collector for StatCollector {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let s = parse_stat(&read_text(&paths.proc("stat"))?)?;
        out.single("node_intr_total", "Total number of interrupts serviced.", MetricType::Counter, s.intr);
        out.single("node_context_switches_total", "Total number of context switches.", MetricType::Counter, s.ctxt);
        out.single("node_forks_total", "Total number of forks.", MetricType::Counter, s.processes);
        out.single("node_boot_time_seconds", "Node boot time, in unixtime.", MetricType::Gauge, s.btime);
        out.single("node_procs_running", "Number of processes in runnable state.", MetricType::Gauge, s.procs_running);
        out.single(
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            MetricType::Gauge,
            s.procs_blocked,
        );
        Ok(())
    }
}

/// The keyed lines of /proc/stat; `intr` is its first number (the total).
pub fn parse_stat(text: &str) -> Result<Stat, CollectError> {
    let mut s = Stat::default();
    let mut seen = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let key = f.next().unwrap_or("");
        let slot = match key {
            "intr" => &mut s.intr,
            "ctxt" => &mut s.ctxt,
            "btime" => &mut s.btime,
            "processes" => &mut s.processes,
            "procs_running" => &mut s.procs_running,
            "procs_blocked" => &mut s.procs_blocked,
            _ => continue,
        };
        let v = f.next().ok_or_else(|| CollectError::parse("/proc/stat", format!("{key} has no value")))?;
        *slot = v.parse::<u64>().map_err(|_| CollectError::parse("/proc/stat", format!("{key}: not a number: {v:?}")))? as f64;
        seen += 1;
    }
    if seen < 6 {
        return Err(CollectError::parse("/proc/stat", "missing intr/ctxt/btime/processes/procs_* lines"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_machine_wide_lines() {
        let text = "cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 16102987 0 0 1 1 14\nctxt 28693766\nbtime 1795305049\n\
                    processes 140173\nprocs_running 6\nprocs_blocked 1\nsoftirq 22750704 0 590416\n";
        assert_eq!(
            parse_stat(text).unwrap(),
            Stat {
                intr: 16102987.0,
                ctxt: 28693766.0,
                btime: 1795305049.0,
                processes: 140173.0,
                procs_running: 6.0,
                procs_blocked: 1.0
            }
        );
    }

    #[test]
    fn a_truncated_file_is_an_error() {
        assert!(parse_stat("intr 1\nctxt 2\n").is_err());
        assert!(parse_stat("intr x\nctxt 2\nbtime 3\nprocesses 4\nprocs_running 5\nprocs_blocked 6\n").is_err());
    }
}
