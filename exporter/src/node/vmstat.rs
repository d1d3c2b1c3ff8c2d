//! `vmstat`: node_vmstat_<field> for the /proc/vmstat fields matching
//! `--collector.vmstat.fields` (node_exporter's default: `^(oom_kill|pgpg|pswp|pg.*fault).*`).
//! Untyped, as node_exporter exposes them.
use regex::Regex;

use super::{read_text, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct VmstatCollector {
    fields: Regex,
}

impl VmstatCollector {
    pub fn new(fields: Regex) -> Self {
        VmstatCollector { fields }
    }
}

impl Collector for VmstatCollector {
    fn name(&self) -> &'static str {
        "vmstat"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let mut fields = parse_vmstat(&read_text(&paths.proc("vmstat"))?, &self.fields)?;
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, value) in fields {
            out.single(&format!("node_vmstat_{name}"), &format!("/proc/vmstat information field {name}."), MetricType::Untyped, value);
        }
        Ok(())
    }
}

/// The `name value` lines whose name matches `fields`.
pub fn parse_vmstat(text: &str, fields: &Regex) -> Result<Vec<(String, f64)>, CollectError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(name), Some(value)) = (f.next(), f.next()) else { continue };
        if !fields.is_match(name) {
            continue;
        }
        let v: f64 = value.parse().map_err(|_| CollectError::parse("/proc/vmstat", format!("not a number in {line:?}")))?;
        out.push((name.to_string(), v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fields_are_selected() {
        let re = Regex::new(crate::node::options::VMSTAT_FIELDS_DEFAULT).unwrap();
        let text = "nr_free_pages 5170176\npgpgin 48593413\npswpout 9\npgalloc_normal 1\npgmajfault 50807\noom_kill 1\n";
        let names: Vec<String> = parse_vmstat(text, &re).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["pgpgin", "pswpout", "pgmajfault", "oom_kill"]);
        assert!(parse_vmstat("pgpgin lots\n", &re).is_err());
    }
}
