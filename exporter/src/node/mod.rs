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

pub mod arp;
pub mod conntrack;
pub mod cpu;
pub mod diskstats;
pub mod entropy;
pub mod filefd;
pub mod filesystem;
pub mod hwmon;
pub mod loadavg;
pub mod meminfo;
pub mod netclass;
pub mod netdev;
pub mod netstat;
pub mod options;
pub mod pressure;
pub mod sockstat;
pub mod softnet;
pub mod stat;
pub mod textfile;
pub mod textformat;
pub mod thermal_zone;
pub mod time;
pub mod timex;
pub mod udp_queues;
pub mod uname;
pub mod vmstat;

pub use options::NodeOptions;

/// Where the collectors look for the kernel's files.
#[derive(Clone, Debug)]
pub struct Paths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    /// udev's device database (`--path.udev.data`), read by diskstats for `node_disk_info`.
    pub udev_data: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths { procfs: "/proc".into(), sysfs: "/sys".into(), rootfs: "/".into(), udev_data: "/run/udev/data".into() }
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
    /// The kernel has no such facility here (conntrack not loaded, PSI off): node_exporter's
    /// `ErrNoData`. Reported as success 0 like a failure, but logged at debug, not error.
    #[error("no data: {0}")]
    NoData(String),
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

/// Reads a whole kernel file as text, `Ok(None)` if it does not exist (a facility this
/// kernel lacks: IPv6 off, a module not loaded).
pub fn read_text_if_exists(path: &Path) -> Result<Option<String>, CollectError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CollectError::read(path, e)),
    }
}

/// One node_exporter collector: a name (as in `--collector.<name>`) and an update that
/// writes its families.
pub trait Collector: Send + Sync {
    fn name(&self) -> &'static str;
    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError>;
}

/// Every collector Lantern has, with whether node_exporter enables it by default (all of
/// these are on by default there). `main` filters this list with the
/// `--[no-]collector.<name>` flags.
pub fn all_collectors(opts: &NodeOptions) -> Vec<(Box<dyn Collector>, bool)> {
    vec![
        (Box::new(arp::ArpCollector::new(opts.arp_devices.clone())), true),
        (Box::new(conntrack::ConntrackCollector), true),
        (Box::new(cpu::CpuCollector::new(opts.cpu_guest)), true),
        (Box::new(diskstats::DiskstatsCollector::new(opts.diskstats_devices.clone())), true),
        (Box::new(entropy::EntropyCollector), true),
        (Box::new(filefd::FilefdCollector), true),
        (Box::new(filesystem::FilesystemCollector::new(opts)), true),
        (Box::new(hwmon::HwmonCollector), true),
        (Box::new(loadavg::LoadavgCollector), true),
        (Box::new(meminfo::MeminfoCollector), true),
        (Box::new(netclass::NetclassCollector::new(opts)), true),
        (Box::new(netdev::NetdevCollector::new(opts.netdev_devices.clone())), true),
        (Box::new(netstat::NetstatCollector::new(opts.netstat_fields.clone())), true),
        (Box::new(pressure::PressureCollector), true),
        (Box::new(sockstat::SockstatCollector), true),
        (Box::new(softnet::SoftnetCollector), true),
        (Box::new(stat::StatCollector), true),
        (Box::new(textfile::TextfileCollector::new(opts.textfile_directory.clone())), true),
        (Box::new(thermal_zone::ThermalZoneCollector), true),
        (Box::new(time::TimeCollector), true),
        (Box::new(timex::TimexCollector), true),
        (Box::new(udp_queues::UdpQueuesCollector), true),
        (Box::new(uname::UnameCollector), true),
        (Box::new(vmstat::VmstatCollector::new(opts.vmstat_fields.clone())), true),
    ]
}

/// Reads a small sysfs/procfs attribute, trimmed. `Ok(None)` when the kernel refuses it the
/// way node_exporter (procfs' `SysReadFile`) tolerates: missing, not permitted, or
/// EINVAL/EOPNOTSUPP, which is how sysfs says "this device has no such value" (e.g. `speed`
/// of a virtual NIC, `carrier` of a NIC that is down).
pub fn read_attr(path: &Path) -> Result<Option<String>, CollectError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_string())),
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied)
                || matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)) =>
        {
            Ok(None)
        }
        Err(e) => Err(CollectError::read(path, e)),
    }
}

/// Writes one family only if it has samples (as the Go client does: a family without
/// samples is not exposed). `samples` are (label values in `label_names` order, value).
pub fn write_family(
    out: &mut MetricWriter,
    name: &str,
    help: &str,
    kind: MetricType,
    label_names: &[&str],
    samples: &[(Vec<&str>, f64)],
) {
    if samples.is_empty() {
        return;
    }
    out.family(name, help, kind);
    for (values, v) in samples {
        let labels: Vec<(&str, &str)> = label_names.iter().copied().zip(values.iter().copied()).collect();
        out.sample(name, &labels, *v);
    }
}

/// Runs each collector into its own writer and appends the successful ones, then the
/// per-collector duration and success families.
pub fn scrape(collectors: &[Box<dyn Collector>], paths: &Paths, out: &mut MetricWriter) {
    let mut results: Vec<(&'static str, f64, bool)> = Vec::with_capacity(collectors.len());
    for c in collectors {
        let start = Instant::now();
        let mut w = MetricWriter::new();
        // A panic in one collector (a parse bug on some kernel's file) costs that collector,
        // not the scrape: it is reported like any other failure.
        let updated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.update(paths, &mut w)));
        let ok = match updated {
            Ok(Ok(())) => {
                out.append(w);
                true
            }
            Ok(Err(e @ CollectError::NoData(_))) => {
                tracing::debug!(target: "lantern.exporter.node", collector = c.name(), reason = %e, "collector returned no data");
                false
            }
            Ok(Err(e)) => {
                tracing::error!(target: "lantern.exporter.node", collector = c.name(), error = %e, "collector failed");
                false
            }
            Err(_) => {
                tracing::error!(target: "lantern.exporter.node", collector = c.name(), "collector panicked; reported as failed");
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
