//! `filefd`: node_filefd_allocated and node_filefd_maximum from /proc/sys/fs/file-nr.
use super::{read_text, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct FilefdCollector;

impl Collector for FilefdCollector {
    fn name(&self) -> &'static str {
        "filefd"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let (allocated, maximum) = parse_file_nr(&read_text(&paths.proc("sys/fs/file-nr"))?)?;
        out.single("node_filefd_allocated", "File descriptor statistics: allocated.", MetricType::Gauge, allocated);
        out.single("node_filefd_maximum", "File descriptor statistics: maximum.", MetricType::Gauge, maximum);
        Ok(())
    }
}

/// file-nr is "allocated  unused(always 0)  maximum".
pub fn parse_file_nr(text: &str) -> Result<(f64, f64), CollectError> {
    let f: Vec<&str> = text.split_whitespace().collect();
    if f.len() != 3 {
        return Err(CollectError::parse("/proc/sys/fs/file-nr", format!("expected 3 fields, got {text:?}")));
    }
    let num = |s: &str| s.parse::<u64>().map(|v| v as f64).map_err(|_| CollectError::parse("/proc/sys/fs/file-nr", format!("not a number: {s:?}")));
    Ok((num(f[0])?, num(f[2])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_and_maximum() {
        assert_eq!(parse_file_nr("752\t0\t2466170\n").unwrap(), (752.0, 2466170.0));
        assert!(parse_file_nr("752 0\n").is_err());
    }
}
