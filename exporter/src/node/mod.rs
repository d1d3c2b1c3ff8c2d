//! Node metrics with node_exporter's names, labels and units. One collector per file; each
//! reads through the configurable roots in [`Paths`] and hands the text to a pure parse
//! function, so the parse is unit-tested on literal text and the whole binary can run on a
//! fixture tree (`--path.procfs`, `--path.sysfs`, `--path.rootfs`).
//!
//! A failing collector never fails the scrape: its partial output is dropped and
//! `node_scrape_collector_success{collector}` says 0.
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::exposition::{MetricType, MetricWriter};

pub mod loadavg;

/// Where the collectors look for the kernel's files.
#[derive(Clone, Debug)]
pub struct Paths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths { procfs: "/proc".into(), sysfs: "/sys".into(), rootfs: "/".into() }
    }
}

impl Paths {
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }
}

/// Why a collector produced nothing this scrape.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
}

impl CollectError {
    pub fn read(path: &Path, source: std::io::Error) -> Self {
        CollectError::Read { path: path.to_path_buf(), source }
    }
    pub fn parse(what: impl Into<String>, detail: impl Into<String>) -> Self {
        CollectError::Parse { what: what.into(), detail: detail.into() }
    }
}

/// Reads a whole kernel file as text.
pub fn read_text(path: &Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|e| CollectError::read(path, e))
}

/// One node_exporter collector: a name (as in `--collector.<name>`) and an update that
/// writes its families.
pub trait Collector: Send + Sync {
    fn name(&self) -> &'static str;
    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError>;
}

/// Every collector Lantern has, with whether node_exporter enables it by default. `main`
/// filters this list with the `--[no-]collector.<name>` flags.
pub fn all_collectors() -> Vec<(Box<dyn Collector>, bool)> {
    vec![(Box::new(loadavg::LoadavgCollector), true)]
}

/// Runs each collector into its own writer and appends the successful ones, then the
/// per-collector duration and success families.
pub fn scrape(collectors: &[Box<dyn Collector>], paths: &Paths, out: &mut MetricWriter) {
    let mut results: Vec<(&'static str, f64, bool)> = Vec::with_capacity(collectors.len());
    for c in collectors {
        let start = Instant::now();
        let mut w = MetricWriter::new();
        let ok = match c.update(paths, &mut w) {
            Ok(()) => {
                out.append(w);
                true
            }
            Err(e) => {
                tracing::error!(target: "lantern.exporter.node", collector = c.name(), error = %e, "collector failed");
                false
            }
        };
        results.push((c.name(), start.elapsed().as_secs_f64(), ok));
    }
    out.family(
        "node_scrape_collector_duration_seconds",
        "node_exporter: Duration of a collector scrape.",
        MetricType::Gauge,
    );
    for (name, secs, _) in &results {
        out.sample("node_scrape_collector_duration_seconds", &[("collector", name)], *secs);
    }
    out.family(
        "node_scrape_collector_success",
        "node_exporter: Whether a collector succeeded.",
        MetricType::Gauge,
    );
    for (name, _, ok) in &results {
        out.sample("node_scrape_collector_success", &[("collector", name)], if *ok { 1.0 } else { 0.0 });
    }
}
