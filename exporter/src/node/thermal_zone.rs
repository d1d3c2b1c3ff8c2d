//! `thermal_zone`: ACPI/SoC thermal zones and cooling devices from /sys/class/thermal:
//! `node_thermal_zone_temp{type,zone}` (Celsius) and `node_cooling_device_{cur,max}_state
//! {name,type}`. A zone whose sensor answers ENODATA is skipped; any other unreadable zone
//! or cooling device fails the collector, as in node_exporter 1.5. No zones, no families.
use std::path::Path;

use super::{write_family, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct ThermalZoneCollector;

#[derive(Debug, PartialEq)]
pub struct Zone {
    pub name: String,
    pub kind: String,
    pub temp_millicelsius: i64,
}

#[derive(Debug, PartialEq)]
pub struct CoolingDevice {
    pub name: String,
    pub kind: String,
    pub cur_state: i64,
    pub max_state: i64,
}

impl Collector for ThermalZoneCollector {
    fn name(&self) -> &'static str {
        "thermal_zone"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let dir = paths.sys("class/thermal");
        let mut zones = Vec::new();
        for (name, path) in numbered(&dir, "thermal_zone") {
            match read_zone(&path) {
                Ok(z) => zones.push(Zone { name, ..z }),
                Err(CollectError::Read { source, .. }) if source.raw_os_error() == Some(libc::ENODATA) => continue,
                Err(e) => return Err(e),
            }
        }
        let mut devices = Vec::new();
        for (name, path) in numbered(&dir, "cooling_device") {
            devices.push(CoolingDevice { name, ..read_cooling_device(&path)? });
        }
        render(&zones, &devices, out);
        Ok(())
    }
}

/// `<prefix><digits...>` entries of `dir` as (the part after the prefix, path), sorted.
fn numbered(dir: &Path, prefix: &str) -> Vec<(String, std::path::PathBuf)> {
    let mut found: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let rest = n.strip_prefix(prefix)?;
            rest.starts_with(|c: char| c.is_ascii_digit()).then(|| (rest.to_string(), e.path()))
        })
        .collect();
    found.sort();
    found
}

fn read_trimmed(path: &Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|e| CollectError::read(path, e))
}

fn parse_i64(path: &Path, text: &str) -> Result<i64, CollectError> {
    text.parse().map_err(|_| CollectError::parse(path.display().to_string(), format!("not an integer: {text:?}")))
}

/// `type`, `policy` (required, though not exported) and `temp` of one zone.
fn read_zone(dir: &Path) -> Result<Zone, CollectError> {
    let kind = read_trimmed(&dir.join("type"))?;
    read_trimmed(&dir.join("policy"))?;
    let temp = read_trimmed(&dir.join("temp"))?;
    Ok(Zone { name: String::new(), kind, temp_millicelsius: parse_i64(&dir.join("temp"), &temp)? })
}

fn read_cooling_device(dir: &Path) -> Result<CoolingDevice, CollectError> {
    let kind = read_trimmed(&dir.join("type"))?;
    let max = parse_i64(&dir.join("max_state"), &read_trimmed(&dir.join("max_state"))?)?;
    // cur_state can be -1 (intel_powerclamp).
    let cur = parse_i64(&dir.join("cur_state"), &read_trimmed(&dir.join("cur_state"))?)?;
    Ok(CoolingDevice { name: String::new(), kind, cur_state: cur, max_state: max })
}

pub fn render(zones: &[Zone], devices: &[CoolingDevice], out: &mut MetricWriter) {
    let mut temps: Vec<(Vec<&str>, f64)> =
        zones.iter().map(|z| (vec![z.kind.as_str(), z.name.as_str()], z.temp_millicelsius as f64 / 1000.0)).collect();
    temps.sort_by(|a, b| a.0.cmp(&b.0));
    write_family(out, "node_thermal_zone_temp", "Zone temperature in Celsius", MetricType::Gauge, &["type", "zone"], &temps);
    let state = |f: fn(&CoolingDevice) -> i64| -> Vec<(Vec<&str>, f64)> {
        let mut s: Vec<(Vec<&str>, f64)> = devices.iter().map(|d| (vec![d.name.as_str(), d.kind.as_str()], f(d) as f64)).collect();
        s.sort_by(|a, b| a.0.cmp(&b.0));
        s
    };
    write_family(
        out,
        "node_cooling_device_cur_state",
        "Current throttle state of the cooling device",
        MetricType::Gauge,
        &["name", "type"],
        &state(|d| d.cur_state),
    );
    write_family(
        out,
        "node_cooling_device_max_state",
        "Maximum throttle state of the cooling device",
        MetricType::Gauge,
        &["name", "type"],
        &state(|d| d.max_state),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_cooling_devices_render_in_celsius_and_states() {
        let zones = [Zone { name: "0".into(), kind: "x86_pkg_temp".into(), temp_millicelsius: 47000 }];
        let devices = [CoolingDevice { name: "0".into(), kind: "intel_powerclamp".into(), cur_state: -1, max_state: 50 }];
        let mut w = MetricWriter::new();
        render(&zones, &devices, &mut w);
        let text = w.into_string();
        assert!(text.contains("node_thermal_zone_temp{type=\"x86_pkg_temp\",zone=\"0\"} 47\n"), "{text}");
        assert!(text.contains("node_cooling_device_cur_state{name=\"0\",type=\"intel_powerclamp\"} -1\n"), "{text}");
        assert!(text.contains("node_cooling_device_max_state{name=\"0\",type=\"intel_powerclamp\"} 50\n"), "{text}");
        let mut w = MetricWriter::new();
        render(&[], &[], &mut w);
        assert!(w.is_empty());
    }

    #[test]
    fn a_zone_directory_is_read_and_a_broken_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let z = dir.path().join("thermal_zone0");
        std::fs::create_dir(&z).unwrap();
        std::fs::write(z.join("type"), "acpitz\n").unwrap();
        std::fs::write(z.join("policy"), "step_wise\n").unwrap();
        std::fs::write(z.join("temp"), "27800\n").unwrap();
        assert_eq!(read_zone(&z).unwrap(), Zone { name: String::new(), kind: "acpitz".into(), temp_millicelsius: 27800 });
        std::fs::write(z.join("temp"), "warm\n").unwrap();
        assert!(read_zone(&z).is_err());
        std::fs::remove_file(z.join("policy")).unwrap();
        assert!(read_zone(&z).is_err());
        assert_eq!(numbered(dir.path(), "thermal_zone").len(), 1);
        assert!(numbered(dir.path(), "cooling_device").is_empty());
    }
}
