//! `netclass`: the per-NIC properties in /sys/class/net/<iface>/ (`node_network_up`,
//! `node_network_info{address,broadcast,device,duplex,ifalias,operstate}`, mtu, speed,
//! carrier changes, ...), named as node_exporter 1.5 names them.
//!
//! sysfs answers EINVAL for a property a device does not have (`speed` of lo, `carrier` of a
//! NIC that is down); such a property is left out for that device, as node_exporter does.
use std::collections::BTreeMap;

use regex::Regex;

use super::options::NodeOptions;
use super::{read_attr, write_family, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

/// (sysfs file, metric suffix, type), in node_exporter's order. The help of each is
/// "Network device property: <suffix>".
const PROPERTIES: [(&str, &str, MetricType); 16] = [
    ("addr_assign_type", "address_assign_type", MetricType::Gauge),
    ("carrier", "carrier", MetricType::Gauge),
    ("carrier_changes", "carrier_changes_total", MetricType::Counter),
    ("carrier_up_count", "carrier_up_changes_total", MetricType::Counter),
    ("carrier_down_count", "carrier_down_changes_total", MetricType::Counter),
    ("dev_id", "device_id", MetricType::Gauge),
    ("dormant", "dormant", MetricType::Gauge),
    ("flags", "flags", MetricType::Gauge),
    ("ifindex", "iface_id", MetricType::Gauge),
    ("iflink", "iface_link", MetricType::Gauge),
    ("link_mode", "iface_link_mode", MetricType::Gauge),
    ("mtu", "mtu_bytes", MetricType::Gauge),
    ("name_assign_type", "name_assign_type", MetricType::Gauge),
    ("netdev_group", "net_dev_group", MetricType::Gauge),
    ("tx_queue_len", "transmit_queue_length", MetricType::Gauge),
    ("type", "protocol_type", MetricType::Gauge),
];

/// The string properties behind `node_network_info` and `node_network_up`.
const TEXT: [&str; 5] = ["address", "broadcast", "duplex", "ifalias", "operstate"];

/// One interface's readable attributes: file name → trimmed content.
pub type Iface = BTreeMap<String, String>;

pub struct NetclassCollector {
    ignored: Regex,
    ignore_invalid_speed: bool,
}

impl NetclassCollector {
    pub fn new(opts: &NodeOptions) -> Self {
        NetclassCollector {
            ignored: opts.netclass_ignored_devices.clone(),
            ignore_invalid_speed: opts.netclass_ignore_invalid_speed,
        }
    }
}

impl Collector for NetclassCollector {
    fn name(&self) -> &'static str {
        "netclass"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let dir = paths.sys("class/net");
        let entries = std::fs::read_dir(&dir).map_err(|e| CollectError::read(&dir, e))?;
        let mut ifaces: BTreeMap<String, Iface> = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| CollectError::read(&dir, e))?;
            // Devices are symlinks (directories in a fixture); `bonding_masters` is a file.
            if entry.file_type().map(|t| t.is_file()).unwrap_or(true) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            if self.ignored.is_match(&name) {
                continue;
            }
            ifaces.insert(name, read_iface(&entry.path())?);
        }
        render(&ifaces, self.ignore_invalid_speed, out);
        Ok(())
    }
}

/// Every regular file of one interface's directory that the kernel lets us read.
fn read_iface(dir: &std::path::Path) -> Result<Iface, CollectError> {
    let mut iface = Iface::new();
    let entries = std::fs::read_dir(dir).map_err(|e| CollectError::read(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CollectError::read(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let wanted = PROPERTIES.iter().any(|p| p.0 == name) || TEXT.contains(&name.as_str()) || name == "speed";
        if !wanted || !entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            continue;
        }
        if let Some(v) = read_attr(&entry.path())? {
            iface.insert(name, v);
        }
    }
    Ok(iface)
}

/// The families for a set of interfaces (sorted by name).
pub fn render(ifaces: &BTreeMap<String, Iface>, ignore_invalid_speed: bool, out: &mut MetricWriter) {
    let text = |i: &Iface, k: &str| i.get(k).cloned().unwrap_or_default();
    let up: Vec<(Vec<&str>, f64)> = ifaces
        .iter()
        .map(|(n, i)| (vec![n.as_str()], if i.get("operstate").map(String::as_str) == Some("up") { 1.0 } else { 0.0 }))
        .collect();
    write_family(out, "node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.", MetricType::Gauge, &["device"], &up);

    let info_values: Vec<(String, [String; 5])> =
        ifaces.iter().map(|(n, i)| (n.clone(), TEXT.map(|k| text(i, k)))).collect();
    let info: Vec<(Vec<&str>, f64)> = info_values
        .iter()
        .map(|(n, [address, broadcast, duplex, ifalias, operstate])| {
            (vec![address.as_str(), broadcast.as_str(), n.as_str(), duplex.as_str(), ifalias.as_str(), operstate.as_str()], 1.0)
        })
        .collect();
    write_family(
        out,
        "node_network_info",
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
        MetricType::Gauge,
        &["address", "broadcast", "device", "duplex", "ifalias", "operstate"],
        &info,
    );

    for (file, suffix, kind) in PROPERTIES {
        let samples: Vec<(Vec<&str>, f64)> = ifaces
            .iter()
            .filter_map(|(n, i)| i.get(file).and_then(|v| parse_int(v)).map(|v| (vec![n.as_str()], v as f64)))
            .collect();
        let name = format!("node_network_{suffix}");
        write_family(out, &name, &format!("Network device property: {suffix}"), kind, &["device"], &samples);
    }

    // Mbit/s to bytes/s; virtual NICs say -1 ("unknown"), which node_exporter 1.5 still
    // exports (as -125000) unless --collector.netclass.ignore-invalid-speed.
    let speed: Vec<(Vec<&str>, f64)> = ifaces
        .iter()
        .filter_map(|(n, i)| i.get("speed").and_then(|v| parse_int(v)).map(|s| (n, s)))
        .filter(|(_, s)| *s >= 0 || !ignore_invalid_speed)
        .map(|(n, s)| (vec![n.as_str()], (s.saturating_mul(1000 * 1000) / 8) as f64))
        .collect();
    write_family(out, "node_network_speed_bytes", "Network device property: speed_bytes", MetricType::Gauge, &["device"], &speed);
}

/// Go's `strconv.ParseInt(s, 0, 64)`: decimal, `0x` hex (sysfs writes `flags` and `dev_id`
/// that way), `0o`/leading-0 octal, `0b` binary.
pub fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(h) = lower.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (8, o)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let v = i64::from_str_radix(body, radix).ok()?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(kv: &[(&str, &str)]) -> Iface {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn integers_parse_as_go_parses_them() {
        assert_eq!(parse_int("0x1003"), Some(4099));
        assert_eq!(parse_int("0x0"), Some(0));
        assert_eq!(parse_int("0"), Some(0));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("65536"), Some(65536));
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("up"), None);
        assert_eq!(parse_int(""), None);
    }

    #[test]
    fn renders_properties_info_and_speed() {
        let ifaces = BTreeMap::from([
            (
                "eth0".to_string(),
                iface(&[("operstate", "up"), ("address", "52:54:00:12:34:56"), ("duplex", "full"), ("flags", "0x1003"), ("speed", "10000"), ("mtu", "9000")]),
            ),
            ("veth1".to_string(), iface(&[("operstate", "down"), ("speed", "-1")])),
        ]);
        let mut w = MetricWriter::new();
        render(&ifaces, false, &mut w);
        let text = w.into_string();
        assert!(text.contains("node_network_up{device=\"eth0\"} 1\nnode_network_up{device=\"veth1\"} 0\n"), "{text}");
        assert!(text.contains("node_network_info{address=\"52:54:00:12:34:56\",broadcast=\"\",device=\"eth0\",duplex=\"full\",ifalias=\"\",operstate=\"up\"} 1\n"), "{text}");
        assert!(text.contains("node_network_flags{device=\"eth0\"} 4099\n"), "{text}");
        assert!(text.contains("node_network_speed_bytes{device=\"eth0\"} 1250000000\n"), "{text}");
        assert!(text.contains("node_network_speed_bytes{device=\"veth1\"} -125000\n"), "{text}");
        assert!(text.contains("# TYPE node_network_carrier_changes_total counter\n") == false, "no device has it: {text}");

        let mut w = MetricWriter::new();
        render(&ifaces, true, &mut w);
        assert!(!w.as_str().contains("veth1\"} -125000"));
    }
}
