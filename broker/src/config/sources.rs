//! Where properties come from: the command line, `LANTERN_*` environment variables and a Java
//! properties file, merged by precedence (flag > environment > file).
use std::collections::BTreeMap;

use super::{lookup, BrokerConfig, ConfigError, Origin, PROPERTIES};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The parsed command line.
#[derive(Debug, Default)]
pub struct CommandLine {
    pub config_file: Option<String>,
    pub log_format: LogFormat,
    pub help: bool,
    /// `--<property>=<value>` pairs in order.
    pub properties: Vec<(String, String)>,
}

/// Parses the arguments after the program name.
/// Command-line flags that are not properties: `--config`, `--log-format`, `--request-log`,
/// `--help`.
pub fn parse_command_line<I: IntoIterator<Item = String>>(args: I) -> Result<CommandLine, ConfigError> {
    let mut out = CommandLine::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(ConfigError::BadArgument(arg));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        match name.as_str() {
            "help" => out.help = true,
            // Shorthand for request.log.path, with a default file.
            "request-log" => out
                .properties
                .push(("request.log.path".into(), inline.unwrap_or_else(|| "./logs/kafka-request.log".into()))),
            "config" | "log-format" => {
                let value = match inline {
                    Some(v) => v,
                    None => args.next().ok_or_else(|| ConfigError::BadArgument(arg.clone()))?,
                };
                if name == "config" {
                    out.config_file = Some(value);
                } else {
                    out.log_format = match value.as_str() {
                        "json" => LogFormat::Json,
                        "text" => LogFormat::Text,
                        _ => return Err(ConfigError::BadArgument(arg)),
                    };
                }
            }
            _ => match inline {
                Some(v) => out.properties.push((name, v)),
                None => return Err(ConfigError::BadArgument(arg)),
            },
        }
    }
    Ok(out)
}

/// Parses a Java properties file (`key=value` or `key: value`, `#`/`!` comments).
pub fn parse_properties_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| {
            let idx = l.find(['=', ':']).unwrap_or(l.len());
            let (k, v) = l.split_at(idx);
            (k.trim().to_string(), v.get(1..).unwrap_or("").trim().to_string())
        })
        .collect()
}

/// Maps `LANTERN_LOG_DIRS` to `log.dirs`. The `LANTERN_` prefix belongs to the broker's
/// properties: a variable under it that names no property is refused, to catch typos.
fn env_properties(vars: impl Iterator<Item = (String, String)>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (key, value) in vars {
        let Some(rest) = key.strip_prefix("LANTERN_") else { continue };
        let wanted = rest.to_ascii_lowercase().replace('_', ".");
        match PROPERTIES.iter().find(|d| d.name == wanted) {
            Some(def) => out.push((def.name.to_string(), value)),
            None => {
                return Err(ConfigError::Unknown { name: key, source_name: "environment".into() });
            }
        }
    }
    Ok(out)
}

/// Loads the configuration from the command line, the environment and the optional file.
pub fn load(
    cmd: &CommandLine,
    env: impl Iterator<Item = (String, String)>,
) -> Result<BrokerConfig, ConfigError> {
    let mut merged: BTreeMap<String, (String, Origin)> = BTreeMap::new();
    if let Some(path) = &cmd.config_file {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::File { path: path.clone(), err })?;
        for (k, v) in parse_properties_file(&text) {
            if lookup(&k).is_none() {
                return Err(ConfigError::Unknown { name: k, source_name: format!("config file {path}") });
            }
            merged.insert(k, (v, Origin::File));
        }
    }
    for (k, v) in env_properties(env)? {
        merged.insert(k, (v, Origin::Env));
    }
    for (k, v) in &cmd.properties {
        merged.insert(k.clone(), (v.clone(), Origin::Flag));
    }
    BrokerConfig::from_properties(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> CommandLine {
        parse_command_line(a.iter().map(|s| s.to_string())).unwrap()
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.properties");
        std::fs::write(&file, "# comment\nnum.partitions=2\nlog.retention.bytes = 10\nnode.id: 7\n").unwrap();
        let cmd = args(&["--config", file.to_str().unwrap(), "--num.partitions=5"]);
        let env = vec![
            ("LANTERN_NUM_PARTITIONS".to_string(), "3".to_string()),
            ("LANTERN_LOG_RETENTION_BYTES".to_string(), "20".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let c = load(&cmd, env.into_iter()).unwrap();
        assert_eq!(c.num_partitions, 5);
        assert_eq!(c.retention_bytes, 20);
        assert_eq!(c.node_id, 7);
    }

    #[test]
    fn unknown_env_property_is_refused() {
        let env = vec![("LANTERN_NO_SUCH".to_string(), "1".to_string())];
        let e = load(&CommandLine::default(), env.into_iter()).unwrap_err();
        assert!(e.to_string().contains("LANTERN_NO_SUCH"), "{e}");
    }

    #[test]
    fn bare_words_and_flags_without_values_are_refused() {
        assert!(parse_command_line(["serve".to_string()]).is_err());
        assert!(parse_command_line(["--num.partitions".to_string()]).is_err());
        assert_eq!(args(&["--log-format=json"]).log_format, LogFormat::Json);
    }
}
