//! Command-line flags, spelled as node_exporter spells them (`--web.listen-address`,
//! `--path.procfs`, `--collector.<name>` / `--no-collector.<name>`), plus the log pipeline's
//! own `--pipeline.*` flags, which [`crate::pipeline::PipelineArgs`] owns.
//!
//! Both `--flag=value` and `--flag value` are accepted, as kingpin (node_exporter's parser)
//! accepts them. Unknown flags stop start-up with a message naming them.
use std::collections::BTreeMap;
use std::net::SocketAddr;

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

/// Flags that take no value.
fn is_switch(name: &str) -> bool {
    name == "help"
        || name == "collector.disable-defaults"
        || (name.starts_with("collector.") && !name.contains('='))
        || name.starts_with("no-collector.")
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
  --path.procfs=/proc  --path.sysfs=/sys  --path.rootfs=/
  --collector.<name> / --no-collector.<name>   switch one collector on or off
  --collector.disable-defaults          run only collectors named with --collector.<name>
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
    fn unknown_flags_are_refused_by_name() {
        assert_eq!(p(&["--web.listen"]).unwrap_err(), CliError::MissingValue("web.listen".into()));
        assert_eq!(p(&["--bogus=1"]).unwrap_err(), CliError::Unknown("bogus".into()));
    }
}
