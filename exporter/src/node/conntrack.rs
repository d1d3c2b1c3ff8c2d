//! `conntrack`: netfilter connection tracking, from /proc/sys/net/netfilter/nf_conntrack_{count,max}
//! and the per-CPU counters of /proc/net/stat/nf_conntrack summed over CPUs. Exported as
//! gauges, as node_exporter 1.5 does. Without the nf_conntrack module loaded there are no such
//! files: no data.
use super::{read_text_if_exists, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct ConntrackCollector;

/// The per-CPU counters node_exporter sums: (column in nf_conntrack, metric, help).
const STATS: [(usize, &str, &str); 8] = [
    (2, "node_nf_conntrack_stat_found", "Number of searched entries which were successful."),
    (4, "node_nf_conntrack_stat_invalid", "Number of packets seen which can not be tracked."),
    (5, "node_nf_conntrack_stat_ignore", "Number of packets seen which are already connected to a conntrack entry."),
    (8, "node_nf_conntrack_stat_insert", "Number of entries inserted into the list."),
    (9, "node_nf_conntrack_stat_insert_failed", "Number of entries for which list insertion was attempted but failed."),
    (10, "node_nf_conntrack_stat_drop", "Number of packets dropped due to conntrack failure."),
    (11, "node_nf_conntrack_stat_early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."),
    (16, "node_nf_conntrack_stat_search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."),
];

impl Collector for ConntrackCollector {
    fn name(&self) -> &'static str {
        "conntrack"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let read = |rel: &str| {
            read_text_if_exists(&paths.proc(rel))?.ok_or_else(|| CollectError::NoData("conntrack probably not loaded".into()))
        };
        let count = parse_uint(&read("sys/net/netfilter/nf_conntrack_count")?)?;
        out.single("node_nf_conntrack_entries", "Number of currently allocated flow entries for connection tracking.", MetricType::Gauge, count);
        let max = parse_uint(&read("sys/net/netfilter/nf_conntrack_max")?)?;
        out.single("node_nf_conntrack_entries_limit", "Maximum size of connection tracking table.", MetricType::Gauge, max);
        let sums = parse_stat(&read("net/stat/nf_conntrack")?)?;
        for ((_, name, help), v) in STATS.iter().zip(sums) {
            out.single(name, help, MetricType::Gauge, v as f64);
        }
        Ok(())
    }
}

fn parse_uint(text: &str) -> Result<f64, CollectError> {
    text.trim().parse::<u64>().map(|v| v as f64).map_err(|_| CollectError::parse("nf_conntrack", format!("not a number: {:?}", text.trim())))
}

/// A header line, then one line of 17 hex columns per CPU; returns the [`STATS`] columns
/// summed over CPUs (wrapping, as Go's uint64 does).
pub fn parse_stat(text: &str) -> Result<[u64; 8], CollectError> {
    let mut sums = [0u64; 8];
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != 17 {
            return Err(CollectError::parse("/proc/net/stat/nf_conntrack", "invalid conntrackstat entry, missing fields"));
        }
        for (sum, (col, _, _)) in sums.iter_mut().zip(STATS) {
            let v = u64::from_str_radix(cols[col], 16)
                .map_err(|_| CollectError::parse("/proc/net/stat/nf_conntrack", format!("not hex: {:?}", cols[col])))?;
            *sum = sum.wrapping_add(v);
        }
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_columns_are_summed() {
        let text = "entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
                    00000021  00000000 00000000 00000000 00000003 0000588a 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000\n\
                    00000021  00000000 00000000 00000000 00000002 000056a4 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000002\n";
        let s = parse_stat(text).unwrap();
        assert_eq!(s, [0, 5, 0x588a + 0x56a4, 0, 0, 0, 0, 2]);
        assert!(parse_stat("header\n1 2 3\n").is_err());
    }
}
