//! `hwmon`: hardware sensors from /sys/class/hwmon/hwmon<N>/ (and its `device/`): temperatures,
//! fans, voltages, currents, power, energy, humidity, alarms, as node_exporter 1.5 names them
//! (`node_hwmon_temp_celsius{chip,sensor}`, `node_hwmon_fan_rpm`, `node_hwmon_in_volts`, ...),
//! plus `node_hwmon_chip_names{chip,chip_name}` and `node_hwmon_sensor_label{chip,label,sensor}`.
//!
//! A sensor file is `<type><n>_<property>` (`temp1_input`, `fan2_min`, `in0_alarm`). The chip
//! label is the parent device's bus and name (`platform_coretemp_0`), else the `name` file,
//! else `hwmon<N>`. Machines without /sys/class/hwmon (VMs) have no data, as in node_exporter.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;

use super::{CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

const SENSOR_TYPES: [&str; 13] =
    ["vrm", "beep_enable", "update_interval", "in", "cpu", "fan", "pwm", "temp", "curr", "power", "energy", "humidity", "intrusion"];

/// sensor (`temp1`) -> property (`input`, `crit`, `label`; "" for a bare `pwm1`) -> raw text.
pub type SensorData = BTreeMap<String, BTreeMap<String, String>>;

/// name -> (help, type, [(label values, value)]): families gathered over all chips.
type Families = BTreeMap<String, (String, MetricType, Vec<(Vec<String>, f64)>)>;

pub struct HwmonCollector;

impl Collector for HwmonCollector {
    fn name(&self) -> &'static str {
        "hwmon"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let root = paths.sys("class/hwmon");
        let entries = match std::fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CollectError::NoData("no /sys/class/hwmon on this system".into()))
            }
            Err(e) => return Err(CollectError::read(&root, e)),
        };
        let mut dirs: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        let mut families = Families::new();
        let mut last_err = None;
        for dir in dirs {
            if let Err(e) = update_chip(&dir, &mut families) {
                last_err = Some(e);
            }
        }
        if let Some(e) = last_err {
            return Err(e);
        }
        for (name, (help, kind, mut samples)) in families {
            samples.sort_by(|a, b| a.0.cmp(&b.0));
            out.family(&name, &help, kind);
            let label_names: &[&str] = match name.as_str() {
                "node_hwmon_chip_names" => &["chip", "chip_name"],
                "node_hwmon_sensor_label" => &["chip", "label", "sensor"],
                _ => &["chip", "sensor"],
            };
            for (values, v) in samples {
                let labels: Vec<(&str, &str)> = label_names.iter().copied().zip(values.iter().map(String::as_str)).collect();
                out.sample(&name, &labels, v);
            }
        }
        Ok(())
    }
}

fn update_chip(dir: &Path, families: &mut Families) -> Result<(), CollectError> {
    let chip = chip_label(dir)?;
    let mut data = SensorData::new();
    collect_sensor_data(dir, &mut data)?;
    if dir.join("device").exists() {
        collect_sensor_data(&dir.join("device"), &mut data)?;
    }
    if let Some(chip_name) = std::fs::read_to_string(dir.join("name")).ok().map(|n| clean_metric_name(&n)).filter(|n| !n.is_empty()) {
        push(families, "node_hwmon_chip_names", "Annotation metric for human-readable chip names", MetricType::Gauge, vec![chip.clone(), chip_name], 1.0);
    }
    for (name, help, kind, sensor, v) in render_chip(&data) {
        let labels = match &sensor {
            SensorLabels::Sensor(s) => vec![chip.clone(), s.clone()],
            SensorLabels::Label(s, label) => vec![chip.clone(), label.clone(), s.clone()],
        };
        push(families, &name, &help, kind, labels, v);
    }
    Ok(())
}

fn push(families: &mut Families, name: &str, help: &str, kind: MetricType, labels: Vec<String>, v: f64) {
    families.entry(name.to_string()).or_insert_with(|| (help.to_string(), kind, Vec::new())).2.push((labels, v));
}

/// Reads every sensor file of a known type in `dir` (unreadable ones are skipped).
fn collect_sensor_data(dir: &Path, data: &mut SensorData) -> Result<(), CollectError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CollectError::read(dir, e))?;
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some((kind, num, property)) = explode_sensor_filename(&file) else { continue };
        if !SENSOR_TYPES.contains(&kind.as_str()) {
            continue;
        }
        if let Some(value) = read_value(&entry.path()) {
            data.entry(format!("{kind}{num}")).or_default().insert(property, value);
        }
    }
    Ok(())
}

/// One read(2) of at most 128 bytes: some broken drivers answer EAGAIN forever, and a
/// sensor is worth one try per scrape. Trailing newlines are trimmed.
fn read_value(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = [0u8; 128];
    let n = f.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).trim_matches('\n').to_string())
}

/// The chip label: `<bus>_<device>` of the resolved `device` link, else the cleaned `name`
/// file, else the directory's own name (`hwmon0`).
fn chip_label(dir: &Path) -> Result<String, CollectError> {
    if let Ok(device) = std::fs::canonicalize(dir.join("device")) {
        let name = device.file_name().map(|n| clean_metric_name(&n.to_string_lossy())).unwrap_or_default();
        let bus = device.parent().and_then(|p| p.file_name()).map(|n| clean_metric_name(&n.to_string_lossy())).unwrap_or_default();
        match (bus.is_empty(), name.is_empty()) {
            (false, false) => return Ok(format!("{bus}_{name}")),
            (true, false) => return Ok(name),
            _ => {}
        }
    }
    if let Ok(raw) = std::fs::read_to_string(dir.join("name")) {
        let name = clean_metric_name(&raw);
        if !name.is_empty() {
            return Ok(name);
        }
    }
    let real = std::fs::canonicalize(dir).map_err(|e| CollectError::read(dir, e))?;
    let name = real.file_name().map(|n| clean_metric_name(&n.to_string_lossy())).unwrap_or_default();
    if name.is_empty() {
        return Err(CollectError::parse("hwmon", format!("could not derive a monitoring name for {}", dir.display())));
    }
    Ok(name)
}

/// Lower case, anything but `[a-z0-9:_]` to `_`, underscores trimmed.
pub fn clean_metric_name(name: &str) -> String {
    let lower = name.to_lowercase();
    let replaced: String = lower.chars().map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' { c } else { '_' }).collect();
    replaced.trim_matches('_').to_string()
}

/// `temp1_crit_alarm` -> (`temp`, 1, `crit_alarm`); a missing number is 0, a missing
/// property "".
pub fn explode_sensor_filename(file: &str) -> Option<(String, u64, String)> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$").expect("valid regex"));
    let c = re.captures(file)?;
    let id = c.name("id").map(|m| m.as_str()).unwrap_or("");
    let num = if id.is_empty() { 0 } else { id.parse().ok()? };
    Some((c["type"].to_string(), num, c.name("property").map(|m| m.as_str().to_string()).unwrap_or_default()))
}

#[derive(Debug, PartialEq)]
pub enum SensorLabels {
    /// `{chip, sensor}`
    Sensor(String),
    /// `{chip, label, sensor}` of node_hwmon_sensor_label
    Label(String, String),
}

/// One chip's samples: (metric, help, type, labels besides chip, value), with node_exporter's
/// naming and unit rules. Values that are not numbers are skipped.
pub fn render_chip(data: &SensorData) -> Vec<(String, String, MetricType, SensorLabels, f64)> {
    let mut out = Vec::new();
    let g = MetricType::Gauge;
    for (sensor, props) in data {
        let Some((kind, _, _)) = explode_sensor_filename(sensor) else { continue };
        if let Some(label) = props.get("label") {
            let labels = SensorLabels::Label(sensor.clone(), label.clone());
            out.push(("node_hwmon_sensor_label".into(), "Label for given chip and sensor".into(), g, labels, 1.0));
        }
        let mut emit = |name: String, help: String, t: MetricType, v: f64| out.push((name, help, t, SensorLabels::Sensor(sensor.clone()), v));
        let bare = props.get("").map(String::as_str);
        match kind.as_str() {
            "beep_enable" => {
                emit("node_hwmon_beep_enabled".into(), "Hardware beep enabled".into(), g, if bare == Some("1") { 1.0 } else { 0.0 });
                continue;
            }
            "vrm" => {
                if let Some(v) = bare.and_then(|b| b.parse::<f64>().ok()) {
                    emit("node_hwmon_voltage_regulator_version".into(), "Hardware voltage regulator".into(), g, v);
                }
                continue;
            }
            "update_interval" => {
                if let Some(v) = bare.and_then(|b| b.parse::<f64>().ok()) {
                    emit("node_hwmon_update_interval_seconds".into(), "Hardware monitor update interval".into(), g, v * 0.001);
                }
                continue;
            }
            _ => {}
        }
        let prefix = format!("node_hwmon_{kind}");
        for (element, raw) in props {
            if element == "label" {
                continue;
            }
            let mut name = prefix.clone();
            if element == "input" {
                if bare.is_some() {
                    name.push_str("_input");
                }
            } else if !element.is_empty() {
                name = format!("{name}_{}", clean_metric_name(element));
            }
            let Ok(v) = raw.parse::<f64>() else { continue };
            let e = element.as_str();
            let (name, help, t, v) = match (kind.as_str(), e) {
                (_, "fault" | "alarm") => (name, format!("Hardware sensor {e} status ({kind})"), g, v),
                (_, "beep") => (format!("{name}_enabled"), "Hardware monitor sensor has beeping enabled".into(), g, v),
                ("in" | "cpu", _) => (format!("{name}_volts"), format!("Hardware monitor for voltage ({e})"), g, v * 0.001),
                ("temp", el) if el != "type" => {
                    let el = if el.is_empty() { "input" } else { el };
                    (format!("{name}_celsius"), format!("Hardware monitor for temperature ({el})"), g, v * 0.001)
                }
                ("curr", _) => (format!("{name}_amps"), format!("Hardware monitor for current ({e})"), g, v * 0.001),
                ("energy", _) => (format!("{name}_joule_total"), format!("Hardware monitor for joules used so far ({e})"), MetricType::Counter, v / 1e6),
                ("power", "accuracy") => (name, "Hardware monitor power meter accuracy, as a ratio".into(), g, v / 1e6),
                ("power", "average_interval" | "average_interval_min" | "average_interval_max") => {
                    (format!("{name}_seconds"), format!("Hardware monitor power usage update interval ({e})"), g, v * 0.001)
                }
                ("power", _) => (format!("{name}_watt"), format!("Hardware monitor for power usage in watts ({e})"), g, v / 1e6),
                ("humidity", _) => (
                    name,
                    format!("Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a percentage) ({e})"),
                    g,
                    v / 1e6,
                ),
                ("fan", "input" | "min" | "max" | "target") => (format!("{name}_rpm"), format!("Hardware monitor for fan revolutions per minute ({e})"), g, v),
                _ => (name, format!("Hardware monitor {kind} element {e}"), g, v),
            };
            emit(name, help, t, v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_split_into_type_number_and_property() {
        assert_eq!(explode_sensor_filename("temp1_crit_alarm"), Some(("temp".into(), 1, "crit_alarm".into())));
        assert_eq!(explode_sensor_filename("pwm2"), Some(("pwm".into(), 2, "".into())));
        assert_eq!(explode_sensor_filename("beep_enable"), Some(("beep_enable".into(), 0, "".into())));
        assert_eq!(explode_sensor_filename("in10_input"), Some(("in".into(), 10, "input".into())));
        assert_eq!(explode_sensor_filename("1abc"), None);
        assert_eq!(clean_metric_name("Core 0\n"), "core_0");
        assert_eq!(clean_metric_name("coretemp.0"), "coretemp_0");
    }

    fn sensors(kv: &[(&str, &str, &str)]) -> SensorData {
        let mut d = SensorData::new();
        for (s, p, v) in kv {
            d.entry(s.to_string()).or_default().insert(p.to_string(), v.to_string());
        }
        d
    }

    #[test]
    fn names_units_and_help_follow_node_exporter() {
        let data = sensors(&[
            ("temp1", "input", "42500"),
            ("temp1", "crit", "100000"),
            ("temp1", "crit_alarm", "0"),
            ("temp1", "label", "Package id 0"),
            ("temp1", "type", "4"),
            ("fan1", "input", "1200"),
            ("fan1", "min", "600"),
            ("fan1", "alarm", "1"),
            ("fan1", "pulses", "2"),
            ("in0", "input", "1104"),
            ("power1", "average", "12500000"),
            ("energy1", "input", "3000000"),
            ("pwm1", "", "128"),
            ("pwm1", "enable", "2"),
            ("beep_enable0", "", "1"),
            ("update_interval0", "", "500"),
            ("curr1", "input", "bogus"),
        ]);
        let got: Vec<String> = render_chip(&data)
            .into_iter()
            .map(|(n, h, t, l, v)| format!("{n}|{h}|{t:?}|{l:?}|{v}"))
            .collect();
        let want = [
            "node_hwmon_beep_enabled|Hardware beep enabled|Gauge|Sensor(\"beep_enable0\")|1",
            "node_hwmon_energy_joule_total|Hardware monitor for joules used so far (input)|Counter|Sensor(\"energy1\")|3",
            "node_hwmon_fan_alarm|Hardware sensor alarm status (fan)|Gauge|Sensor(\"fan1\")|1",
            "node_hwmon_fan_rpm|Hardware monitor for fan revolutions per minute (input)|Gauge|Sensor(\"fan1\")|1200",
            "node_hwmon_fan_min_rpm|Hardware monitor for fan revolutions per minute (min)|Gauge|Sensor(\"fan1\")|600",
            "node_hwmon_fan_pulses|Hardware monitor fan element pulses|Gauge|Sensor(\"fan1\")|2",
            "node_hwmon_in_volts|Hardware monitor for voltage (input)|Gauge|Sensor(\"in0\")|1.104",
            "node_hwmon_power_average_watt|Hardware monitor for power usage in watts (average)|Gauge|Sensor(\"power1\")|12.5",
            "node_hwmon_pwm|Hardware monitor pwm element |Gauge|Sensor(\"pwm1\")|128",
            "node_hwmon_pwm_enable|Hardware monitor pwm element enable|Gauge|Sensor(\"pwm1\")|2",
            "node_hwmon_sensor_label|Label for given chip and sensor|Gauge|Label(\"temp1\", \"Package id 0\")|1",
            "node_hwmon_temp_crit_celsius|Hardware monitor for temperature (crit)|Gauge|Sensor(\"temp1\")|100",
            "node_hwmon_temp_crit_alarm_celsius|Hardware monitor for temperature (crit_alarm)|Gauge|Sensor(\"temp1\")|0",
            "node_hwmon_temp_celsius|Hardware monitor for temperature (input)|Gauge|Sensor(\"temp1\")|42.5",
            "node_hwmon_temp_type|Hardware monitor temp element type|Gauge|Sensor(\"temp1\")|4",
            "node_hwmon_update_interval_seconds|Hardware monitor update interval|Gauge|Sensor(\"update_interval0\")|0.5",
        ];
        assert_eq!(got, want);
    }
}
