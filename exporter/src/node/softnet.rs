//! `softnet`: per-CPU packet processing from /proc/net/softnet_stat (one line per CPU, hex
//! columns): packets processed, dropped (backlog full) and times the NAPI budget ran out.
//! The `cpu` label is the line's index, as in node_exporter 1.5.
use super::{read_text, write_family, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct SoftnetCollector;

#[derive(Debug, PartialEq)]
pub struct SoftnetStat {
    pub processed: u32,
    pub dropped: u32,
    pub time_squeezed: u32,
}

impl Collector for SoftnetCollector {
    fn name(&self) -> &'static str {
        "softnet"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let stats = parse_softnet(&read_text(&paths.proc("net/softnet_stat"))?)?;
        let cpus: Vec<String> = (0..stats.len()).map(|i| i.to_string()).collect();
        let family = |f: fn(&SoftnetStat) -> u32| -> Vec<(Vec<&str>, f64)> {
            stats.iter().zip(&cpus).map(|(s, cpu)| (vec![cpu.as_str()], f(s) as f64)).collect()
        };
        write_family(out, "node_softnet_processed_total", "Number of processed packets", MetricType::Counter, &["cpu"], &family(|s| s.processed));
        write_family(out, "node_softnet_dropped_total", "Number of dropped packets", MetricType::Counter, &["cpu"], &family(|s| s.dropped));
        write_family(
            out,
            "node_softnet_times_squeezed_total",
            "Number of times processing packets ran out of quota",
            MetricType::Counter,
            &["cpu"],
            &family(|s| s.time_squeezed),
        );
        Ok(())
    }
}

/// One line per CPU of at least 9 hex columns; the first three are processed, dropped and
/// time_squeezed.
pub fn parse_softnet(text: &str) -> Result<Vec<SoftnetStat>, CollectError> {
    let mut stats = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 9 {
            return Err(CollectError::parse("/proc/net/softnet_stat", format!("{} columns, at least 9 expected", cols.len())));
        }
        let hex = |s: &str| u32::from_str_radix(s, 16).map_err(|_| CollectError::parse("/proc/net/softnet_stat", format!("not hex: {s:?}")));
        stats.push(SoftnetStat { processed: hex(cols[0])?, dropped: hex(cols[1])?, time_squeezed: hex(cols[2])? });
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_columns_per_cpu() {
        let text = "00049279 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n\
                    000dfb82 00000029 0000000a 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001\n";
        let s = parse_softnet(text).unwrap();
        assert_eq!(s[0], SoftnetStat { processed: 299641, dropped: 0, time_squeezed: 1 });
        assert_eq!(s[1], SoftnetStat { processed: 916354, dropped: 41, time_squeezed: 10 });
        assert!(parse_softnet("0001 0002\n").is_err());
        assert!(parse_softnet("zz 0 0 0 0 0 0 0 0\n").is_err());
    }
}
