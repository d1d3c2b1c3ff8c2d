//! `diskstats`: every node_disk_* counter node_exporter 1.5 derives from /proc/diskstats,
//! plus the info families it builds from udev's database (`--path.udev.data`,
//! `/run/udev/data/b<major>:<minor>`): `node_disk_info`, `node_disk_filesystem_info`,
//! `node_disk_device_mapper_info` and the `node_disk_ata_*` gauges.
//!
//! /proc/diskstats grew over time: 14 fields before Linux 4.18, 18 with the discard
//! counters, 20 with the flush counters (5.5). A device exposes only the counters its line
//! has, as node_exporter does. Sectors are always 512 bytes there; times are milliseconds.
use std::collections::BTreeMap;

use super::options::DeviceFilter;
use super::{read_text, write_family, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

const SECTOR_BYTES: f64 = 512.0;
const SECONDS_PER_TICK: f64 = 0.001;

/// The counters after major, minor and name, in /proc/diskstats order:
/// (metric suffix, help, type, scale).
const COUNTERS: [(&str, &str, MetricType, f64); 17] = [
    ("reads_completed_total", "The total number of reads completed successfully.", MetricType::Counter, 1.0),
    ("reads_merged_total", "The total number of reads merged.", MetricType::Counter, 1.0),
    ("read_bytes_total", "The total number of bytes read successfully.", MetricType::Counter, SECTOR_BYTES),
    ("read_time_seconds_total", "The total number of seconds spent by all reads.", MetricType::Counter, SECONDS_PER_TICK),
    ("writes_completed_total", "The total number of writes completed successfully.", MetricType::Counter, 1.0),
    ("writes_merged_total", "The number of writes merged.", MetricType::Counter, 1.0),
    ("written_bytes_total", "The total number of bytes written successfully.", MetricType::Counter, SECTOR_BYTES),
    ("write_time_seconds_total", "This is the total number of seconds spent by all writes.", MetricType::Counter, SECONDS_PER_TICK),
    ("io_now", "The number of I/Os currently in progress.", MetricType::Gauge, 1.0),
    ("io_time_seconds_total", "Total seconds spent doing I/Os.", MetricType::Counter, SECONDS_PER_TICK),
    ("io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.", MetricType::Counter, SECONDS_PER_TICK),
    ("discards_completed_total", "The total number of discards completed successfully.", MetricType::Counter, 1.0),
    ("discards_merged_total", "The total number of discards merged.", MetricType::Counter, 1.0),
    // node_exporter keeps this one in sectors.
    ("discarded_sectors_total", "The total number of sectors discarded successfully.", MetricType::Counter, 1.0),
    ("discard_time_seconds_total", "This is the total number of seconds spent by all discards.", MetricType::Counter, SECONDS_PER_TICK),
    ("flush_requests_total", "The total number of flush requests completed successfully", MetricType::Counter, 1.0),
    ("flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests.", MetricType::Counter, SECONDS_PER_TICK),
];

/// The udev properties behind `node_disk_ata_*`: (property, metric suffix, help).
const ATA: [(&str, &str, &str); 3] = [
    ("ID_ATA_ROTATION_RATE_RPM", "ata_rotation_rate_rpm", "ATA disk rotation rate in RPMs (0 for SSDs)."),
    ("ID_ATA_WRITE_CACHE", "ata_write_cache", "ATA disk has a write cache."),
    ("ID_ATA_WRITE_CACHE_ENABLED", "ata_write_cache_enabled", "ATA disk has its write cache enabled."),
];

#[derive(Debug, PartialEq)]
pub struct DiskStats {
    pub major: u32,
    pub minor: u32,
    pub device: String,
    /// As many of the 17 counters as the kernel printed (11, 15 or 17).
    pub counters: Vec<u64>,
}

pub struct DiskstatsCollector {
    filter: DeviceFilter,
}

impl DiskstatsCollector {
    pub fn new(filter: DeviceFilter) -> Self {
        DiskstatsCollector { filter }
    }
}

impl Collector for DiskstatsCollector {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let mut disks = parse_diskstats(&read_text(&paths.proc("diskstats"))?)?;
        disks.retain(|d| !self.filter.ignored(&d.device));
        disks.sort_by(|a, b| a.device.cmp(&b.device));
        // A device without udev data (no udevd, a container) still gets node_disk_info with
        // empty labels, as node_exporter gives it.
        let udev: Vec<BTreeMap<String, String>> = disks
            .iter()
            .map(|d| {
                let file = paths.udev_data.join(format!("b{}:{}", d.major, d.minor));
                std::fs::read_to_string(file).map(|t| parse_udev_properties(&t)).unwrap_or_default()
            })
            .collect();

        let majors: Vec<(String, String)> = disks.iter().map(|d| (d.major.to_string(), d.minor.to_string())).collect();
        let prop = |i: usize, k: &str| udev[i].get(k).map(String::as_str).unwrap_or("");
        let info: Vec<(Vec<&str>, f64)> = disks
            .iter()
            .enumerate()
            .map(|(i, d)| {
                // This is usually the serial printed on the disk label.
                let serial = Some(prop(i, "SCSI_IDENT_SERIAL")).filter(|s| !s.is_empty()).unwrap_or(prop(i, "ID_SERIAL_SHORT"));
                let labels = vec![
                    d.device.as_str(),
                    majors[i].0.as_str(),
                    majors[i].1.as_str(),
                    prop(i, "ID_PATH"),
                    prop(i, "ID_WWN"),
                    prop(i, "ID_MODEL"),
                    serial,
                    prop(i, "ID_REVISION"),
                ];
                (labels, 1.0)
            })
            .collect();
        write_family(
            out,
            "node_disk_info",
            "Info of /sys/block/<block_device>.",
            MetricType::Gauge,
            &["device", "major", "minor", "path", "wwn", "model", "serial", "revision"],
            &info,
        );

        for (i, (suffix, help, kind, scale)) in COUNTERS.iter().enumerate() {
            let samples: Vec<(Vec<&str>, f64)> = disks
                .iter()
                .filter_map(|d| d.counters.get(i).map(|v| (vec![d.device.as_str()], *v as f64 * scale)))
                .collect();
            write_family(out, &format!("node_disk_{suffix}"), help, *kind, &["device"], &samples);
        }

        let fs: Vec<(Vec<&str>, f64)> = disks
            .iter()
            .enumerate()
            .filter(|(i, _)| udev[*i].contains_key("ID_FS_TYPE"))
            .map(|(i, d)| {
                let labels = vec![d.device.as_str(), prop(i, "ID_FS_TYPE"), prop(i, "ID_FS_USAGE"), prop(i, "ID_FS_UUID"), prop(i, "ID_FS_VERSION")];
                (labels, 1.0)
            })
            .collect();
        write_family(
            out,
            "node_disk_filesystem_info",
            "Info about disk filesystem.",
            MetricType::Gauge,
            &["device", "type", "usage", "uuid", "version"],
            &fs,
        );

        let dm: Vec<(Vec<&str>, f64)> = disks
            .iter()
            .enumerate()
            .filter(|(i, _)| udev[*i].contains_key("DM_NAME"))
            .map(|(i, d)| {
                let labels = vec![
                    d.device.as_str(),
                    prop(i, "DM_NAME"),
                    prop(i, "DM_UUID"),
                    prop(i, "DM_VG_NAME"),
                    prop(i, "DM_LV_NAME"),
                    prop(i, "DM_LV_LAYER"),
                ];
                (labels, 1.0)
            })
            .collect();
        write_family(
            out,
            "node_disk_device_mapper_info",
            "Info about disk device mapper.",
            MetricType::Gauge,
            &["device", "name", "uuid", "vg_name", "lv_name", "lv_layer"],
            &dm,
        );

        for (property, suffix, help) in ATA {
            let samples: Vec<(Vec<&str>, f64)> = disks
                .iter()
                .enumerate()
                .filter(|(i, _)| !prop(*i, "ID_ATA").is_empty())
                .filter_map(|(i, d)| prop(i, property).parse::<f64>().ok().map(|v| (vec![d.device.as_str()], v)))
                .collect();
            write_family(out, &format!("node_disk_{suffix}"), help, MetricType::Gauge, &["device"], &samples);
        }
        Ok(())
    }
}

/// Every line of /proc/diskstats: major, minor, name and 11 to 17 counters.
pub fn parse_diskstats(text: &str) -> Result<Vec<DiskStats>, CollectError> {
    let mut disks = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 14 {
            return Err(CollectError::parse("/proc/diskstats", format!("{} fields in {line:?}", f.len())));
        }
        let num = |s: &str| s.parse::<u64>().map_err(|_| CollectError::parse("/proc/diskstats", format!("not a number: {s:?}")));
        let counters = f[3..f.len().min(20)].iter().map(|s| num(s)).collect::<Result<Vec<_>, _>>()?;
        disks.push(DiskStats { major: num(f[0])? as u32, minor: num(f[1])? as u32, device: f[2].to_string(), counters });
    }
    Ok(disks)
}

/// The `E:KEY=value` lines of a udev database file (`S:` symlinks, `W:`, `I:`, `G:` are not
/// device properties).
pub fn parse_udev_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_three_kernel_formats_parse() {
        let text = "   8       0 sda 100 2 800 30 40 5 600 70 0 90 100\n\
                    \x20 254       0 vda 1046302 82478 94262962 1836615 2072372 289428 1072940816 2873362 2 495080 4846080 211870 85 964301296 108618\n\
                    \x20 259       0 nvme0n1 47114 4 4643973 21650 1235 73 8576 1232 0 38200 22882 128 0 1048576 12 102 45\n";
        let d = parse_diskstats(text).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!((d[0].major, d[0].minor, d[0].device.as_str(), d[0].counters.len()), (8, 0, "sda", 11));
        assert_eq!(d[1].counters.len(), 15);
        assert_eq!(d[2].counters.len(), 17);
        assert_eq!(d[2].counters[16], 45);
    }

    #[test]
    fn a_short_or_garbled_line_is_an_error() {
        assert!(parse_diskstats("8 0 sda 1 2 3\n").is_err());
        assert!(parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 x\n").is_err());
    }

    #[test]
    fn udev_properties_are_the_e_lines() {
        let p = parse_udev_properties("S:disk/by-path/x\nE:ID_PATH=pci-0000:00:05.0\nE:ID_MODEL=A=B\nG:systemd\n");
        assert_eq!(p.len(), 2);
        assert_eq!(p["ID_PATH"], "pci-0000:00:05.0");
        assert_eq!(p["ID_MODEL"], "A=B");
    }

    #[test]
    fn counters_are_scaled_to_bytes_and_seconds_as_node_exporter_scales_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("diskstats"), "254 0 vda 1 2 3 1836615 5 6 7 8 9 10 108618\n").unwrap();
        let paths = Paths { procfs: dir.path().into(), udev_data: dir.path().join("none"), ..Paths::default() };
        let mut w = MetricWriter::new();
        DiskstatsCollector::new(DeviceFilter::default()).update(&paths, &mut w).unwrap();
        let text = w.into_string();
        assert!(text.contains("node_disk_read_bytes_total{device=\"vda\"} 1536\n"), "{text}");
        // ticks * 0.001, as node_exporter computes it (not ticks / 1000), so values match.
        assert!(text.contains("node_disk_read_time_seconds_total{device=\"vda\"} 1836.615\n"), "{text}");
        assert!(text.contains("node_disk_io_time_weighted_seconds_total{device=\"vda\"} 108.61800000000001\n"), "{text}");
        assert!(text.contains("node_disk_info{device=\"vda\",major=\"254\",minor=\"0\",path=\"\",wwn=\"\",model=\"\",serial=\"\",revision=\"\"} 1\n"), "{text}");
        assert!(!text.contains("discard"), "an 11-counter line has no discard counters: {text}");
    }
}
