//! The log-analytics pipeline: tails the broker's JSON logs and request log, derives
//! metrics, and ships every event to a topic on the broker. (Being built: issue 5.)
use crate::exposition::MetricWriter;

/// The `--pipeline.*` flags.
#[derive(Debug, Default, Clone)]
pub struct PipelineArgs {}

impl PipelineArgs {
    /// Takes one `--pipeline.<name>=<value>` flag; an error names what is wrong with it.
    pub fn set(&mut self, name: &str, _value: &str) -> Result<(), String> {
        Err(format!("unknown pipeline flag {name:?}"))
    }

    /// Whether any log file was named, i.e. whether the pipeline runs at all.
    pub fn enabled(&self) -> bool {
        false
    }
}

/// A running pipeline. Its metrics are appended to every /metrics scrape.
pub struct Pipeline {}

impl Pipeline {
    pub fn render(&self, _out: &mut MetricWriter) {}
}
