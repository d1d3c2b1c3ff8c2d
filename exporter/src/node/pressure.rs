//! `pressure`: pressure stall information (PSI) from /proc/pressure/{cpu,io,memory}: the total
//! time tasks waited (`some`) or no task could progress (`full`) for each resource, as
//! node_exporter 1.5 exports it (cpu `some` only). Kernels before 4.20 or booted without PSI
//! have no such files (or refuse to read them): no data, as in node_exporter.
use super::{CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct PressureCollector;

/// The `total=` microseconds of a resource's `some` and `full` lines.
#[derive(Debug, Default, PartialEq)]
pub struct Psi {
    pub some_us: Option<f64>,
    pub full_us: Option<f64>,
}

/// (resource, line, metric, help), in node_exporter's order.
const FAMILIES: [(&str, Line, &str, &str); 5] = [
    ("cpu", Line::Some, "node_pressure_cpu_waiting_seconds_total", "Total time in seconds that processes have waited for CPU time"),
    ("io", Line::Some, "node_pressure_io_waiting_seconds_total", "Total time in seconds that processes have waited due to IO congestion"),
    ("io", Line::Full, "node_pressure_io_stalled_seconds_total", "Total time in seconds no process could make progress due to IO congestion"),
    ("memory", Line::Some, "node_pressure_memory_waiting_seconds_total", "Total time in seconds that processes have waited for memory"),
    ("memory", Line::Full, "node_pressure_memory_stalled_seconds_total", "Total time in seconds no process could make progress due to memory congestion"),
];

#[derive(Clone, Copy)]
enum Line {
    Some,
    Full,
}

impl Collector for PressureCollector {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let mut read = Vec::new();
        for resource in ["cpu", "io", "memory"] {
            let path = paths.proc(&format!("pressure/{resource}"));
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(CollectError::NoData("no /proc/pressure: PSI needs Linux >= 4.20 with CONFIG_PSI".into()))
                }
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    return Err(CollectError::NoData("PSI is disabled: boot with psi=1".into()))
                }
                Err(e) => return Err(CollectError::read(&path, e)),
            };
            read.push((resource, parse_psi(&text)?));
        }
        for (resource, line, name, help) in FAMILIES {
            let Some((_, psi)) = read.iter().find(|(r, _)| *r == resource) else { continue };
            let us = match line {
                Line::Some => psi.some_us,
                Line::Full => psi.full_us,
            };
            // procfs reports a missing line as 0, so the family is there either way; divided
            // twice as node_exporter does, so the float is the same to the last bit.
            out.single(name, help, MetricType::Counter, us.unwrap_or(0.0) / 1000.0 / 1000.0);
        }
        Ok(())
    }
}

/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=123` and the same for `full`.
pub fn parse_psi(text: &str) -> Result<Psi, CollectError> {
    let mut psi = Psi::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let kind = f.next();
        let total = f.find_map(|kv| kv.strip_prefix("total="));
        let Some(total) = total else { continue };
        let v: u64 = total.parse().map_err(|_| CollectError::parse("pressure", format!("bad total in {line:?}")))?;
        match kind {
            Some("some") => psi.some_us = Some(v as f64),
            Some("full") => psi.full_us = Some(v as f64),
            _ => {}
        }
    }
    Ok(psi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_of_some_and_full() {
        let psi = parse_psi(
            "some avg10=9.28 avg60=4.54 avg300=3.43 total=33495598\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=12\n",
        )
        .unwrap();
        assert_eq!(psi, Psi { some_us: Some(33495598.0), full_us: Some(12.0) });
        // Before 5.13 the cpu file had no `full` line.
        assert_eq!(parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n").unwrap().full_us, None);
        assert!(parse_psi("some total=x\n").is_err());
    }
}
