//! `entropy`: node_entropy_available_bits and node_entropy_pool_size_bits from
//! /proc/sys/kernel/random/{entropy_avail,poolsize}.
use super::{read_text, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct EntropyCollector;

impl Collector for EntropyCollector {
    fn name(&self) -> &'static str {
        "entropy"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let avail = parse_bits(&read_text(&paths.proc("sys/kernel/random/entropy_avail"))?, "entropy_avail")?;
        out.single("node_entropy_available_bits", "Bits of available entropy.", MetricType::Gauge, avail);
        let pool = parse_bits(&read_text(&paths.proc("sys/kernel/random/poolsize"))?, "poolsize")?;
        out.single("node_entropy_pool_size_bits", "Bits of entropy pool.", MetricType::Gauge, pool);
        Ok(())
    }
}

/// One unsigned integer.
pub fn parse_bits(text: &str, what: &str) -> Result<f64, CollectError> {
    text.trim().parse::<u64>().map(|v| v as f64).map_err(|_| CollectError::parse(what, format!("not a number: {:?}", text.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_number_per_file() {
        assert_eq!(parse_bits("256\n", "entropy_avail").unwrap(), 256.0);
        assert!(parse_bits("", "poolsize").is_err());
        assert!(parse_bits("-1\n", "poolsize").is_err());
    }
}
