//! `loadavg`: node_load1, node_load5, node_load15 from /proc/loadavg.
use super::{read_text, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct LoadavgCollector;

impl Collector for LoadavgCollector {
    fn name(&self) -> &'static str {
        "loadavg"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let loads = parse_loadavg(&read_text(&paths.proc("loadavg"))?)?;
        for (name, minutes, value) in [("node_load1", 1, loads[0]), ("node_load5", 5, loads[1]), ("node_load15", 15, loads[2])] {
            out.single(name, &format!("{minutes}m load average."), MetricType::Gauge, value);
        }
        Ok(())
    }
}

/// The first three fields of /proc/loadavg.
pub fn parse_loadavg(text: &str) -> Result<[f64; 3], CollectError> {
    let mut fields = text.split_whitespace();
    let mut loads = [0.0; 3];
    for slot in &mut loads {
        let f = fields.next().ok_or_else(|| CollectError::parse("/proc/loadavg", "fewer than 3 fields"))?;
        *slot = f.parse().map_err(|_| CollectError::parse("/proc/loadavg", format!("not a number: {f:?}")))?;
    }
    Ok(loads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_load_averages() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/1066 41234\n").unwrap(), [0.52, 0.58, 0.59]);
    }

    #[test]
    fn refuses_a_short_file() {
        assert!(parse_loadavg("0.52 0.58").is_err());
    }
}
