//! `netdev`: node_network_{receive,transmit}_*_total{device} from /proc/net/dev, the
//! counter set node_exporter 1.5 exposes by default, plus `receive_nohandler` from
//! `/sys/class/net/<dev>/statistics/rx_nohandler` (node_exporter gets it over netlink; it is
//! not a /proc/net/dev column).
use super::options::DeviceFilter;
use super::{read_attr, read_text, write_family, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

/// The /proc/net/dev columns in order, as node_exporter names them.
pub const COLUMNS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

pub struct NetdevCollector {
    filter: DeviceFilter,
}

impl NetdevCollector {
    pub fn new(filter: DeviceFilter) -> Self {
        NetdevCollector { filter }
    }
}

impl Collector for NetdevCollector {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let mut devices = parse_net_dev(&read_text(&paths.proc("net/dev"))?)?;
        devices.retain(|(name, _)| !self.filter.ignored(name));
        devices.sort_by(|a, b| a.0.cmp(&b.0));
        let mut nohandler = Vec::new();
        for (name, _) in &devices {
            let path = paths.sys(&format!("class/net/{name}/statistics/rx_nohandler"));
            if let Some(v) = read_attr(&path)?.and_then(|s| s.parse::<u64>().ok()) {
                nohandler.push((vec![name.as_str()], v as f64));
            }
        }
        let mut families: Vec<(String, Vec<(Vec<&str>, f64)>)> = COLUMNS
            .iter()
            .enumerate()
            .map(|(i, col)| (col.to_string(), devices.iter().map(|(d, v)| (vec![d.as_str()], v[i] as f64)).collect()))
            .collect();
        families.push(("receive_nohandler".to_string(), nohandler));
        families.sort_by(|a, b| a.0.cmp(&b.0));
        for (stat, samples) in &families {
            write_family(
                out,
                &format!("node_network_{stat}_total"),
                &format!("Network device statistic {stat}."),
                MetricType::Counter,
                &["device"],
                samples,
            );
        }
        Ok(())
    }
}

/// (device, the 16 counters) per line of /proc/net/dev, after its two header lines.
pub fn parse_net_dev(text: &str) -> Result<Vec<(String, [u64; 16])>, CollectError> {
    let mut devices = Vec::new();
    for line in text.lines().skip(2) {
        if line.trim().is_empty() {
            continue;
        }
        let (name, rest) = line
            .split_once(':')
            .ok_or_else(|| CollectError::parse("/proc/net/dev", format!("no device name in {line:?}")))?;
        let mut counters = [0u64; 16];
        let mut n = 0;
        for (slot, f) in counters.iter_mut().zip(rest.split_whitespace()) {
            *slot = f.parse().map_err(|_| CollectError::parse("/proc/net/dev", format!("not a number: {f:?}")))?;
            n += 1;
        }
        if n != 16 {
            return Err(CollectError::parse("/proc/net/dev", format!("{n} columns instead of 16 in {line:?}")));
        }
        devices.push((name.trim().to_string(), counters));
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 663423615673 18192295    0    0    0     0          0         0 663423615673 18192295    0    0    0     0       0          0
  eth0: 2481464359   55196    3    7    1     2          0        12  2482277   33252    1    4    0     5       6          0
";

    #[test]
    fn parses_every_column() {
        let d = parse_net_dev(NET_DEV).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].0, "lo");
        assert_eq!(d[0].1[0], 663423615673);
        assert_eq!(d[1].0, "eth0");
        assert_eq!(d[1].1, [2481464359, 55196, 3, 7, 1, 2, 0, 12, 2482277, 33252, 1, 4, 0, 5, 6, 0]);
    }

    #[test]
    fn a_short_line_is_an_error() {
        assert!(parse_net_dev("h1\nh2\n  eth0: 1 2 3\n").is_err());
        assert!(parse_net_dev("h1\nh2\n  eth0 1 2 3\n").is_err());
    }
}
