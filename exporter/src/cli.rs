//! Command-line flags, spelled as node_exporter spells them (`--web.listen-address`,
//! `--path.procfs`, `--collector.<name>` / `--no-collector.<name>`), plus the log pipeline's
//! own `--pipeline.*` flags, which [`crate::pipeline::PipelineArgs`] owns.
//!
//! Both `--flag=value` and `--flag value` are accepted, as kingpin (node_exporter's parser)
//! accepts them. Unknown flags stop start-up with a message naming them.
use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::node::options::{option_kind, OptionKind};
use crate::node::Paths;
use crate::pipeline::PipelineArgs;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9100";

#[derive(Debug)]
pub struct ExporterArgs {
    pub listen: SocketAddr,
    pub telemetry_path: String,
    pub paths: Paths,
    /// `--collector.<name>` (true) and `--no-collector.<name>` (false), as given.
    pub collector_overrides: BTreeMap<String, bool>,
    /// `--collector.<name>.<option>` flags, by full flag name; switches carry "true"/"false".
    /// Checked and parsed by [`crate::node::NodeOptions::from_flags`].
    pub collector_options: BTreeMap<String, String>,
    /// `--collector.disable-defaults`: only collectors named with `--collector.<name>` run.
    pub disable_defaults: bool,
    pub log_format_json: bool,
    pub pipeline: PipelineArgs,
    pub help: bool,
}

impl Default for ExporterArgs {
    fn default() -> Self {
        ExporterArgs {
            listen: DEFAULT_LISTEN.parse().expect("default listen address parses"),
            telemetry_path: "/metrics".into(),
            paths: Paths::default(),
            collector_overrides: BTreeMap::new(),
            collector_options: BTreeMap::new(),
            disable_defaults: false,
            log_format_json: false,
            pipeline: PipelineArgs::default(),
            help: false,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CliError {
    #[error("unknown flag --{0} (see --help)")]
    Unknown(String),
    #[error("flag --{0} needs a value")]
    MissingValue(String),
    #[error("flag --{flag}: {detail}")]
    BadValue { flag: String, detail: String },
    #[error("unexpected argument {0:?}: flags start with --")]
    Positional(String),
}

/// Flags that take no value: `--help`, `--collector.disable-defaults`, a collector
/// (`--[no-]collector.<name>`) or a collector's switch option (`--[no-]collector.cpu.guest`).
/// A collector's value option (`--collector.<name>.<option>=v`) is not a switch.
fn is_switch(name: &str) -> bool {
    if name == "help" || name == "collector.disable-defaults" {
        return true;
    }
    let positive = name.strip_prefix("no-").unwrap_or(name);
    match positive.strip_prefix("collector.") {
        Some(rest) if !rest.contains('.') => true,
        Some(_) => option_kind(positive) == Some(OptionKind::Switch),
        None => false,
    }
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<ExporterArgs, CliError> {
    let mut out = ExporterArgs::default();
    let mut it = args.into_iter().peekable();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(CliError::Positional(arg));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        // Pipeline flags first: they own their whole `pipeline.` namespace.
        if name.starts_with("pipeline.") {
            let value = match inline {
                Some(v) => v,
                None => it.next().ok_or_else(|| CliError::MissingValue(name.clone()))?,
            };
            out.pipeline.set(&name, &value).map_err(|detail| CliError::BadValue { flag: name.clone(), detail })?;
            continue;
        }
        if is_switch(&name) {
            let on = match inline.as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(v) => return Err(CliError::BadValue { flag: name, detail: format!("expected true or false, got {v:?}") }),
            };
            if name == "help" {
                out.help = on;
            } else if name == "collector.disable-defaults" {
                out.disable_defaults = on;
            } else if let Some(opt) = Some(name.strip_prefix("no-").unwrap_or(&name)).filter(|o| option_kind(o).is_some()) {
                let value = if name.starts_with("no-") { !on } else { on };
                out.collector_options.insert(opt.to_string(), value.to_string());
            } else if let Some(c) = name.strip_prefix("no-collector.") {
                out.collector_overrides.insert(c.to_string(), !on);
            } else if let Some(c) = name.strip_prefix("collector.") {
                out.collector_overrides.insert(c.to_string(), on);
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it.next().ok_or_else(|| CliError::MissingValue(name.clone()))?,
        };
        match name.as_str() {
            "web.listen-address" => {
                out.listen = value
                    .parse()
                    .map_err(|e| CliError::BadValue { flag: name.clone(), detail: format!("{value:?} is not host:port ({e})") })?
            }
            "web.telemetry-path" => out.telemetry_path = value,
            "path.procfs" => out.paths.procfs = value.into(),
            "path.sysfs" => out.paths.sysfs = value.into(),
            "path.rootfs" => out.paths.rootfs = value.into(),
            "path.udev.data" => out.paths.udev_data = value.into(),
            n if option_kind(n) == Some(OptionKind::Value) => {
                out.collector_options.insert(name, value);
            }
            "log.format" => {
                out.log_format_json = match value.as_str() {
                    "json" => true,
                    "logfmt" | "text" => false,
                    _ => return Err(CliError::BadValue { flag: name, detail: format!("expected json or logfmt, got {value:?}") }),
                }
            }
            _ => return Err(CliError::Unknown(name)),
        }
    }
    Ok(out)
}

pub const USAGE: &str = "usage: lantern-exporter [flags]           serve /metrics (node + log pipeline)
       lantern-exporter logs [query flags]   query the shipped log topic (see `lantern-exporter logs --help`)

Node flags (as node_exporter):
  --web.listen-address=127.0.0.1:9100   where /metrics is served
  --web.telemetry-path=/metrics
  --path.procfs=/proc  --path.sysfs=/sys  --path.rootfs=/  --path.udev.data=/run/udev/data
  --collector.<name> / --no-collector.<name>   switch one collector on or off
  --collector.disable-defaults          run only collectors named with --collector.<name>
  --collector.<name>.<option>=value     a collector's option (as node_exporter 1.5), e.g.
        --collector.diskstats.device-exclude=REGEX   --collector.netdev.device-include=REGEX
        --collector.filesystem.mount-points-exclude=REGEX  --collector.filesystem.fs-types-exclude=REGEX
        --collector.filesystem.mount-timeout=5s     --collector.netclass.ignored-devices=REGEX
        --[no-]collector.netclass.ignore-invalid-speed   --[no-]collector.cpu.guest
        --collector.vmstat.fields=REGEX   --collector.netstat.fields=REGEX
        --collector.arp.device-include=REGEX   --collector.arp.device-exclude=REGEX
        --collector.textfile.directory=DIR   (*.prom files; a glob of directories works)
  --log.format=logfmt|json";

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<ExporterArgs, CliError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn node_exporter_flags_parse_in_both_spellings() {
        let a = p(&["--web.listen-address=127.0.0.1:9999", "--path.procfs", "/tmp/proc", "--no-collector.loadavg"]).unwrap();
        assert_eq!(a.listen.port(), 9999);
        assert_eq!(a.paths.procfs, std::path::PathBuf::from("/tmp/proc"));
        assert_eq!(a.collector_overrides.get("loadavg"), Some(&false));
    }

    #[test]
    fn collector_options_take_values_and_switches_take_none() {
        let a = p(&[
            "--collector.diskstats.device-exclude=^loop",
            "--collector.netdev.device-include",
            "^eth",
            "--no-collector.cpu.guest",
            "--collector.netclass.ignore-invalid-speed",
            "--collector.meminfo",
            "--path.udev.data=/tmp/udev",
        ])
        .unwrap();
        assert_eq!(a.collector_options.get("collector.diskstats.device-exclude").map(String::as_str), Some("^loop"));
        assert_eq!(a.collector_options.get("collector.netdev.device-include").map(String::as_str), Some("^eth"));
        assert_eq!(a.collector_options.get("collector.cpu.guest").map(String::as_str), Some("false"));
        assert_eq!(a.collector_options.get("collector.netclass.ignore-invalid-speed").map(String::as_str), Some("true"));
        assert_eq!(a.collector_overrides.get("meminfo"), Some(&true));
        assert!(!a.collector_overrides.contains_key("diskstats.device-exclude"));
        assert_eq!(a.paths.udev_data, std::path::PathBuf::from("/tmp/udev"));
        assert_eq!(p(&["--collector.diskstats.nope=1"]).unwrap_err(), CliError::Unknown("collector.diskstats.nope".into()));
    }

    #[test]
    fn unknown_flags_are_refused_by_name() {
        assert_eq!(p(&["--web.listen"]).unwrap_err(), CliError::MissingValue("web.listen".into()));
        assert_eq!(p(&["--bogus=1"]).unwrap_err(), CliError::Unknown("bogus".into()));
    }
}
