//! Command-line flags: `--config FILE` (MM2 properties), `--metrics.listener ADDR` (default
//! 0.0.0.0:9405), `--log-format text|json`. `--flag=value` and `--flag value` both work;
//! unknown flags stop start-up naming them.
use std::net::SocketAddr;
use std::path::PathBuf;

pub const USAGE: &str = "usage: lantern-mirror --config <mm2.properties> [--metrics.listener <addr:port>] [--log-format text|json]

  --config FILE              MirrorMaker 2 properties (clusters, <alias>.bootstrap.servers,
                             <source>-><target>.enabled, topics, groups, ...): docs/mirroring.md
  --metrics.listener ADDR    /metrics and /health/live (default 0.0.0.0:9405)
  --log-format text|json     log lines on stderr (default text); RUST_LOG sets the filter";

#[derive(Debug, PartialEq)]
pub struct Args {
    pub config: PathBuf,
    pub metrics_listener: SocketAddr,
    pub log_json: bool,
    pub help: bool,
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut config = None;
    let mut listener: SocketAddr = "0.0.0.0:9405".parse().map_err(|e| format!("{e}"))?;
    let mut log_json = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Args { config: PathBuf::new(), metrics_listener: listener, log_json, help: true });
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next()).ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--metrics.listener" => {
                let v = value()?;
                listener = v.parse().map_err(|_| format!("--metrics.listener: {v:?} is not an address:port"))?;
            }
            "--log-format" => match value()?.as_str() {
                "json" => log_json = true,
                "text" => log_json = false,
                other => return Err(format!("--log-format: {other:?} is not text or json")),
            },
            _ => return Err(format!("unknown flag {arg:?}")),
        }
    }
    let config = config.ok_or("--config is required")?;
    Ok(Args { config, metrics_listener: listener, log_json, help: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Args, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags() {
        let a = p(&["--config", "mm2.properties", "--metrics.listener=127.0.0.1:1", "--log-format", "json"]).unwrap();
        assert_eq!(a.config, PathBuf::from("mm2.properties"));
        assert_eq!(a.metrics_listener.port(), 1);
        assert!(a.log_json);
        assert_eq!(p(&["--config=x"]).unwrap().metrics_listener.port(), 9405);
        assert!(p(&[]).unwrap_err().contains("--config"));
        assert!(p(&["--config=x", "--bogus"]).unwrap_err().contains("--bogus"));
        assert!(p(&["--config=x", "--metrics.listener=nope"]).unwrap_err().contains("nope"));
    }
}
