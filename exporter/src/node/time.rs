//! `time`: node_time_seconds, node_time_zone_offset_seconds{time_zone} and the clocksource
//! info families from /sys/devices/system/clocksource/clocksource<N>/.
use std::time::{SystemTime, UNIX_EPOCH};

use super::{read_attr, write_family, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct TimeCollector;

impl Collector for TimeCollector {
    fn name(&self) -> &'static str {
        "time"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        out.single("node_time_seconds", "System time in seconds since epoch (1970).", MetricType::Gauge, now);
        if let Some((zone, offset)) = local_zone(now as i64) {
            out.family("node_time_zone_offset_seconds", "System time zone offset in seconds.", MetricType::Gauge);
            out.sample("node_time_zone_offset_seconds", &[("time_zone", &zone)], offset as f64);
        }

        // clocksource<N> directories; a missing tree (containers) just means no families.
        let dir = paths.sys("devices/system/clocksource");
        let mut sources: Vec<(String, Vec<String>, Option<String>)> = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let Some(n) = name.strip_prefix("clocksource") else { continue };
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let available = read_attr(&entry.path().join("available_clocksource"))?.unwrap_or_default();
                let current = read_attr(&entry.path().join("current_clocksource"))?;
                sources.push((n.to_string(), parse_available(&available), current));
            }
        }
        sources.sort();
        let mut available: Vec<(Vec<&str>, f64)> = sources
            .iter()
            .flat_map(|(dev, avail, _)| avail.iter().map(move |c| (vec![c.as_str(), dev.as_str()], 1.0)))
            .collect();
        available.sort_by(|a, b| a.0.cmp(&b.0));
        write_family(
            out,
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
            &["clocksource", "device"],
            &available,
        );
        let current: Vec<(Vec<&str>, f64)> = sources
            .iter()
            .filter_map(|(dev, _, cur)| cur.as_ref().map(|c| (vec![c.as_str(), dev.as_str()], 1.0)))
            .collect();
        write_family(
            out,
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
            &["clocksource", "device"],
            &current,
        );
        Ok(())
    }
}

/// `available_clocksource` is a space-separated list.
pub fn parse_available(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

extern "C" {
    // POSIX; the libc crate does not declare it.
    fn tzset();
}

/// The local time zone's abbreviation and UTC offset at `unix_secs` (honours `TZ`).
fn local_zone(unix_secs: i64) -> Option<(String, i64)> {
    let t: libc::time_t = unix_secs as libc::time_t;
    // SAFETY: tzset reads TZ; localtime_r fills the caller's tm and returns NULL on error;
    // tm_zone then points at a static NUL-terminated string owned by libc.
    unsafe {
        tzset();
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() || tm.tm_zone.is_null() {
            return None;
        }
        let zone = std::ffi::CStr::from_ptr(tm.tm_zone).to_string_lossy().into_owned();
        Some((zone, tm.tm_gmtoff as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_clocksources_split_on_spaces() {
        assert_eq!(parse_available("tsc kvm-clock acpi_pm \n"), vec!["tsc", "kvm-clock", "acpi_pm"]);
    }

    #[test]
    fn the_local_zone_has_a_name() {
        let (zone, offset) = local_zone(1_795_305_049).unwrap();
        assert!(!zone.is_empty());
        assert!(offset.abs() <= 14 * 3600);
    }
}
