//! `udp_queues`: node_udp_queues{ip,queue}, the bytes queued for sending (tx) and receiving
//! (rx) summed over all UDP sockets of /proc/net/udp (v4) and /proc/net/udp6 (v6). Either file
//! may be missing (no IPv6); with neither there is no data.
use super::{read_text_if_exists, write_family, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct UdpQueuesCollector;

impl Collector for UdpQueuesCollector {
    fn name(&self) -> &'static str {
        "udp_queues"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let mut sums: Vec<(&str, (u64, u64))> = Vec::new();
        for (file, ip) in [("net/udp", "v4"), ("net/udp6", "v6")] {
            if let Some(text) = read_text_if_exists(&paths.proc(file))? {
                sums.push((ip, parse_queues(&text)?));
            }
        }
        if sums.is_empty() {
            return Err(CollectError::NoData("neither /proc/net/udp nor /proc/net/udp6 exists".into()));
        }
        let samples: Vec<(Vec<&str>, f64)> = sums
            .iter()
            .flat_map(|(ip, (tx, rx))| [(vec![*ip, "rx"], *rx as f64), (vec![*ip, "tx"], *tx as f64)])
            .collect();
        write_family(
            out,
            "node_udp_queues",
            "Number of allocated memory in the kernel for UDP datagrams in bytes.",
            MetricType::Gauge,
            &["ip", "queue"],
            &samples,
        );
        Ok(())
    }
}

/// The `tx_queue:rx_queue` column (hex) of every socket line, summed: (tx, rx).
pub fn parse_queues(text: &str) -> Result<(u64, u64), CollectError> {
    let (mut tx, mut rx) = (0u64, 0u64);
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 10 {
            return Err(CollectError::parse("/proc/net/udp", format!("fewer than 10 columns in {line:?}")));
        }
        let bad = || CollectError::parse("/proc/net/udp", format!("bad tx_queue:rx_queue {:?}", cols[4]));
        let (t, r) = cols[4].split_once(':').ok_or_else(bad)?;
        tx = tx.wrapping_add(u64::from_str_radix(t, 16).map_err(|_| bad())?);
        rx = rx.wrapping_add(u64::from_str_radix(r, 16).map_err(|_| bad())?);
    }
    Ok((tx, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_summed_over_sockets() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                    \x20  0: 00000000:0044 00000000:0000 07 00000000:00000100 00:00000000 00000000     0        0 17143 2 0000000000000000 0\n\
                    \x20  1: 0100007F:0035 00000000:0000 07 00000010:00000001 00:00000000 00000000   101        0 18543 2 0000000000000000 0\n";
        assert_eq!(parse_queues(text).unwrap(), (0x10, 0x101));
        assert_eq!(parse_queues("header only\n").unwrap(), (0, 0));
        assert!(parse_queues("h\n 0: a b 07 zz:00 00:0 0 0 0 1\n").is_err());
    }
}
