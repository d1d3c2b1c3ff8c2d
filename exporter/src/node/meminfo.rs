//! `meminfo`: one gauge per /proc/meminfo line, named as node_exporter names them:
//! `Active(anon):  1552 kB` becomes `node_memory_Active_anon_bytes` (parentheses turn into an
//! underscore, kB lines are multiplied by 1024 and get `_bytes`), and a line without a unit
//! keeps its name: `HugePages_Total:  0` becomes `node_memory_HugePages_Total`.
use std::collections::BTreeMap;

use super::{read_text, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct MeminfoCollector;

impl Collector for MeminfoCollector {
    fn name(&self) -> &'static str {
        "meminfo"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        for (key, value) in parse_meminfo(&read_text(&paths.proc("meminfo"))?)? {
            let name = format!("node_memory_{key}");
            // node_exporter types a field ending in `_total` as a counter; none does today.
            let kind = if key.ends_with("_total") { MetricType::Counter } else { MetricType::Gauge };
            out.single(&name, &format!("Memory information field {key}."), kind, value);
        }
        Ok(())
    }
}

/// Maps each field's metric suffix (`Active_anon_bytes`, `HugePages_Total`) to its value in
/// bytes (or as given, without a unit). Sorted, so the output order is stable.
pub fn parse_meminfo(text: &str) -> Result<BTreeMap<String, f64>, CollectError> {
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.is_empty() {
            continue; // some old kernels print blank lines
        }
        if parts.len() < 2 {
            return Err(CollectError::parse("/proc/meminfo", format!("invalid line {line:?}")));
        }
        let mut value: f64 = parts[1]
            .parse()
            .map_err(|_| CollectError::parse("/proc/meminfo", format!("invalid value in {line:?}")))?;
        let mut key = mangle(parts[0].strip_suffix(':').unwrap_or(parts[0]));
        match parts.len() {
            2 => {}
            3 => {
                value *= 1024.0;
                key.push_str("_bytes");
            }
            _ => return Err(CollectError::parse("/proc/meminfo", format!("invalid line {line:?}"))),
        }
        fields.insert(key, value);
    }
    if fields.is_empty() {
        return Err(CollectError::parse("/proc/meminfo", "empty"));
    }
    Ok(fields)
}

/// node_exporter's `\((.*)\)` → `_$1`: `Active(anon)` → `Active_anon`.
fn mangle(key: &str) -> String {
    match (key.find('('), key.rfind(')')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}_{}{}", &key[..open], &key[open + 1..close], &key[close + 1..])
        }
        _ => key.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_units_follow_node_exporter() {
        let text = "MemTotal:       24684084 kB\nActive(anon):       1552 kB\nHugePages_Total:       0\n\
                    Hugepagesize:       2048 kB\n\nNFS_Unstable:          0 kB\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            vec![
                ("Active_anon_bytes".to_string(), 1552.0 * 1024.0),
                ("HugePages_Total".to_string(), 0.0),
                ("Hugepagesize_bytes".to_string(), 2048.0 * 1024.0),
                ("MemTotal_bytes".to_string(), 24684084.0 * 1024.0),
                ("NFS_Unstable_bytes".to_string(), 0.0),
            ]
        );
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_meminfo("MemTotal: lots kB\n").is_err());
        assert!(parse_meminfo("MemTotal: 1 kB extra\n").is_err());
        assert!(parse_meminfo("MemTotal:\n").is_err());
    }
}
