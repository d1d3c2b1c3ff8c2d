//! `arp`: node_arp_entries{device}, the neighbour entries of /proc/net/arp counted per
//! interface, filtered by `--collector.arp.device-include` / `device-exclude`.
use std::collections::BTreeMap;

use super::options::DeviceFilter;
use super::{read_text, write_family, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct ArpCollector {
    devices: DeviceFilter,
}

impl ArpCollector {
    pub fn new(devices: DeviceFilter) -> Self {
        ArpCollector { devices }
    }
}

impl Collector for ArpCollector {
    fn name(&self) -> &'static str {
        "arp"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let entries = parse_arp(&read_text(&paths.proc("net/arp"))?)?;
        let samples: Vec<(Vec<&str>, f64)> = entries
            .iter()
            .filter(|(device, _)| !self.devices.ignored(device))
            .map(|(device, n)| (vec![device.as_str()], *n as f64))
            .collect();
        write_family(out, "node_arp_entries", "ARP entries by device", MetricType::Gauge, &["device"], &samples);
        Ok(())
    }
}

/// Entries per device (the last column); the header line starts with `IP`.
pub fn parse_arp(text: &str) -> Result<BTreeMap<String, u32>, CollectError> {
    let mut entries = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 6 {
            return Err(CollectError::parse("/proc/net/arp", "unexpected ARP table format"));
        }
        if cols[0] != "IP" {
            *entries.entry(cols[cols.len() - 1].to_string()).or_insert(0) += 1;
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_counted_per_device() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device\n\
                    192.168.1.1      0x1         0x2         cc:aa:dd:ee:aa:bb     *        eth0\n\
                    192.168.1.2      0x1         0x2         bb:cc:dd:ee:ff:aa     *        eth0\n\
                    10.0.0.1         0x1         0x2         bb:cc:dd:ee:ff:ab     *        eth1\n";
        let e = parse_arp(text).unwrap();
        assert_eq!(e.into_iter().collect::<Vec<_>>(), vec![("eth0".to_string(), 2), ("eth1".to_string(), 1)]);
        assert!(parse_arp("garbage\n").is_err());
        assert!(parse_arp("IP address       HW type     Flags       HW address            Mask     Device\n").unwrap().is_empty());
    }
}
