//! Broker configuration: Kafka property names from flags, environment and a properties file.
//!
//! Precedence: `--<property>=<value>` flags win over `LANTERN_<PROPERTY>` environment variables
//! (dots as underscores), which win over the file given by `--config`. An unknown property or
//! a value that does not parse stops start-up with an error naming it.
pub mod cluster;
mod properties;
mod sources;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use cluster::{ClusterConfig, Roles, Voter};
pub use properties::{lookup, Kind, PropertyDef, PROPERTIES};
pub use sources::{load as load_config, parse_command_line, CommandLine, LogFormat};

/// A configuration problem found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown property '{name}' (from {source_name}); see the README for accepted properties")]
    Unknown { name: String, source_name: String },
    #[error("bad value '{value}' for property '{name}' (from {source_name}): {reason}")]
    BadValue { name: String, value: String, source_name: String, reason: String },
    #[error("cannot read config file {path}: {err}")]
    File { path: String, err: std::io::Error },
    #[error("bad command-line argument '{0}': expected --<property>=<value>, --config <file> or --log-format json|text")]
    BadArgument(String),
}

/// One listener (all PLAINTEXT; the name says what it is for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// The broker's typed configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub rack: Option<String>,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub http_listener: SocketAddr,
    pub log_dirs: Vec<PathBuf>,
    pub metadata_log_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: usize,
    /// `num.io.threads`: request handler slots (network::handler_pool).
    pub num_io_threads: usize,
    pub message_max_bytes: usize,
    pub fetch_max_bytes: usize,
    pub segment_bytes: u64,
    pub roll_ms: i64,
    /// `log.roll.jitter.ms` (or `.hours`): default segment.jitter.ms.
    pub roll_jitter_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub retention_check_interval_ms: u64,
    pub index_interval_bytes: usize,
    pub flush_interval_messages: u64,
    pub flush_interval_ms: u64,
    pub cluster_id: Option<String>,
    pub cleanup_policy: String,
    pub group_initial_rebalance_delay_ms: u64,
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_segment_bytes: u64,
    pub offsets_topic_replication_factor: i16,
    /// `auto.leader.rebalance.enable`, `leader.imbalance.check.interval.seconds`,
    /// `leader.imbalance.per.broker.percentage`.
    pub auto_leader_rebalance_enable: bool,
    pub auto_rebalance_on_broker_join: bool,
    pub unclean_leader_election_enable: bool,
    pub leader_imbalance_check_interval_seconds: u64,
    pub leader_imbalance_per_broker_percentage: u32,
    /// `controlled.shutdown.enable`.
    pub controlled_shutdown_enable: bool,
    /// `min.insync.replicas`, the default of the topic config.
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: u64,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub hw_checkpoint_interval_ms: u64,
    /// `replica.fetch.wait.max.ms`, `replica.fetch.max.bytes`, `replica.fetch.response.max.bytes`.
    pub replica_fetch_wait_max_ms: u64,
    /// How long a follower leaves a partition out of its fetches after failing it (a local
    /// storage error, or an error from the leader for that partition).
    pub replica_fetch_backoff_ms: u64,
    pub log_dir_failure_probe_interval_ms: u64,
    pub replica_fetch_max_bytes: usize,
    pub replica_fetch_response_max_bytes: usize,
    pub offsets_retention_minutes: u64,
    pub offsets_retention_check_interval_ms: u64,
    /// producer.id.expiration.ms / .check.interval.ms: idle idempotent producers are forgotten.
    pub producer_id_expiration_ms: i64,
    pub producer_id_expiration_check_interval_ms: u64,
    pub offset_metadata_max_bytes: usize,
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff_ms: u64,
    pub log_cleaner_dedupe_buffer_size: usize,
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    /// `connections.max.idle.ms`; `None` (-1) never closes idle connections.
    pub connections_max_idle: Option<std::time::Duration>,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub metrics_naming: crate::metrics::Profile,
    pub metrics_enabled: bool,
    pub request_log_path: Option<PathBuf>,
    /// `rest.*`: the REST proxy's listeners and limits.
    pub rest: crate::rest::RestConfig,
    /// Roles, quorum and listener purposes.
    pub cluster: ClusterConfig,
    /// Every property with its effective value and where it came from (for DescribeConfigs).
    pub effective: BTreeMap<String, (String, Origin)>,
}

/// Where a property's effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Default,
    File,
    Env,
    Flag,
}

impl BrokerConfig {
    /// Builds the configuration from raw `name -> (value, origin)` pairs, already merged by
    /// precedence; unknown names and bad values are errors.
    pub fn from_properties(raw: BTreeMap<String, (String, Origin)>) -> Result<Self, ConfigError> {
        let mut effective = BTreeMap::new();
        for def in PROPERTIES {
            if let Some(d) = def.default {
                effective.insert(def.name.to_string(), (d.to_string(), Origin::Default));
            }
        }
        for (name, (value, origin)) in raw {
            let def = lookup(&name).ok_or_else(|| ConfigError::Unknown {
                name: name.clone(),
                source_name: origin_name(origin).into(),
            })?;
            validate(def, &value).map_err(|reason| ConfigError::BadValue {
                name: name.clone(),
                value: value.clone(),
                source_name: origin_name(origin).into(),
                reason,
            })?;
            effective.insert(name, (value, origin));
        }
        let get = |n: &str| effective.get(n).map(|(v, _)| v.as_str());
        let int = |n: &str| get(n).and_then(|v| v.trim().parse::<i64>().ok());
        let bad = |n: &str, v: &str, reason: &str| ConfigError::BadValue {
            name: n.into(),
            value: v.into(),
            source_name: effective.get(n).map(|(_, o)| origin_name(*o)).unwrap_or("default").into(),
            reason: reason.into(),
        };

        let listeners = parse_listeners("listeners", get("listeners").unwrap_or_default())
            .map_err(|r| bad("listeners", get("listeners").unwrap_or_default(), &r))?;
        let advertised_listeners = match get("advertised.listeners") {
            Some(v) => parse_listeners("advertised.listeners", v)
                .map_err(|r| bad("advertised.listeners", v, &r))?,
            None => listeners
                .iter()
                .map(|l| Listener {
                    host: if l.host == "0.0.0.0" || l.host.is_empty() { "localhost".into() } else { l.host.clone() },
                    ..l.clone()
                })
                .collect(),
        };
        let http = get("http.listener").unwrap_or_default();
        let http_listener: SocketAddr =
            http.parse().map_err(|_| bad("http.listener", http, "expected host:port, e.g. 0.0.0.0:9404"))?;
        let log_dirs: Vec<PathBuf> = match get("log.dirs") {
            Some(v) => split_list(v).map(PathBuf::from).collect(),
            None => vec![PathBuf::from(get("log.dir").unwrap_or("./data"))],
        };
        if log_dirs.is_empty() {
            return Err(bad("log.dirs", get("log.dirs").unwrap_or_default(), "at least one directory is needed"));
        }
        // Absolute, as Kafka makes them: DescribeLogDirs reports them and AlterReplicaLogDirs
        // names them so.
        let log_dirs: Vec<PathBuf> = log_dirs.into_iter().map(|d| std::path::absolute(&d).unwrap_or(d)).collect();
        let metadata_log_dir = get("metadata.log.dir")
            .map(|d| std::path::absolute(d).unwrap_or_else(|_| PathBuf::from(d)))
            .unwrap_or_else(|| log_dirs[0].clone());
        let retention_ms = int("log.retention.ms")
            .or_else(|| int("log.retention.minutes").map(|m| if m < 0 { -1 } else { m * 60_000 }))
            .or_else(|| int("log.retention.hours").map(|h| if h < 0 { -1 } else { h * 3_600_000 }))
            .unwrap_or(7 * 24 * 3_600_000);
        let roll_ms = int("log.roll.ms")
            .or_else(|| int("log.roll.hours").map(|h| h * 3_600_000))
            .unwrap_or(7 * 24 * 3_600_000);
        let roll_jitter_ms = int("log.roll.jitter.ms").or_else(|| int("log.roll.jitter.hours").map(|h| h * 3_600_000)).unwrap_or(0);
        let num = |n: &str| int(n).unwrap_or(0);
        let node_id = num("node.id") as i32;
        let cluster = cluster::parse(&|n: &str| get(n).map(str::to_string), node_id, &listeners)
            .map_err(|(name, value, reason)| ConfigError::BadValue {
                source_name: effective.get(&name).map(|(_, o)| origin_name(*o)).unwrap_or("default").into(),
                name,
                value,
                reason,
            })?;
        let rest = crate::rest::RestConfig::parse(&|n: &str| effective.get(n).map(|(v, o)| (v.as_str(), *o)))
            .map_err(|(name, value, reason)| bad(name, &value, &reason))?;
        Ok(BrokerConfig {
            rest,
            cluster,
            node_id,
            rack: get("broker.rack").map(str::to_string),
            listeners,
            advertised_listeners,
            http_listener,
            log_dirs,
            metadata_log_dir,
            num_partitions: num("num.partitions") as i32,
            default_replication_factor: num("default.replication.factor") as i16,
            auto_create_topics: get("auto.create.topics.enable") == Some("true"),
            delete_topic_enable: get("delete.topic.enable") == Some("true"),
            socket_request_max_bytes: num("socket.request.max.bytes") as usize,
            num_io_threads: num("num.io.threads").max(1) as usize,
            message_max_bytes: num("message.max.bytes") as usize,
            fetch_max_bytes: num("fetch.max.bytes") as usize,
            segment_bytes: num("log.segment.bytes") as u64,
            roll_ms,
            roll_jitter_ms,
            retention_ms,
            retention_bytes: num("log.retention.bytes"),
            retention_check_interval_ms: num("log.retention.check.interval.ms") as u64,
            index_interval_bytes: num("log.index.interval.bytes") as usize,
            flush_interval_messages: num("log.flush.interval.messages") as u64,
            flush_interval_ms: num("log.flush.interval.ms") as u64,
            cluster_id: get("cluster.id").map(str::to_string),
            cleanup_policy: get("log.cleanup.policy").unwrap_or("delete").to_string(),
            group_initial_rebalance_delay_ms: num("group.initial.rebalance.delay.ms") as u64,
            group_min_session_timeout_ms: num("group.min.session.timeout.ms") as u64,
            group_max_session_timeout_ms: num("group.max.session.timeout.ms") as u64,
            offsets_topic_num_partitions: num("offsets.topic.num.partitions") as i32,
            offsets_topic_segment_bytes: num("offsets.topic.segment.bytes") as u64,
            offsets_topic_replication_factor: num("offsets.topic.replication.factor") as i16,
            controlled_shutdown_enable: get("controlled.shutdown.enable") != Some("false"),
            auto_leader_rebalance_enable: get("auto.leader.rebalance.enable") != Some("false"),
            auto_rebalance_on_broker_join: get("auto.rebalance.on.broker.join") == Some("true"),
            unclean_leader_election_enable: get("unclean.leader.election.enable") == Some("true"),
            leader_imbalance_check_interval_seconds: num("leader.imbalance.check.interval.seconds").max(1) as u64,
            leader_imbalance_per_broker_percentage: num("leader.imbalance.per.broker.percentage").clamp(0, 100) as u32,
            min_insync_replicas: num("min.insync.replicas").max(1) as usize,
            replica_lag_time_max_ms: num("replica.lag.time.max.ms").max(1) as u64,
            hw_checkpoint_interval_ms: num("replica.high.watermark.checkpoint.interval.ms").max(1) as u64,
            replica_fetch_wait_max_ms: num("replica.fetch.wait.max.ms").max(0) as u64,
            replica_fetch_backoff_ms: num("replica.fetch.backoff.ms").max(0) as u64,
            log_dir_failure_probe_interval_ms: num("log.dir.failure.probe.interval.ms").max(100) as u64,
            replica_fetch_max_bytes: num("replica.fetch.max.bytes").max(1) as usize,
            replica_fetch_response_max_bytes: num("replica.fetch.response.max.bytes").max(1) as usize,
            offsets_retention_minutes: num("offsets.retention.minutes") as u64,
            offsets_retention_check_interval_ms: num("offsets.retention.check.interval.ms") as u64,
            producer_id_expiration_ms: num("producer.id.expiration.ms") as i64,
            producer_id_expiration_check_interval_ms: num("producer.id.expiration.check.interval.ms") as u64,
            offset_metadata_max_bytes: num("offset.metadata.max.bytes") as usize,
            log_cleaner_enable: get("log.cleaner.enable") == Some("true"),
            log_cleaner_backoff_ms: num("log.cleaner.backoff.ms") as u64,
            log_cleaner_dedupe_buffer_size: usize::try_from(num("log.cleaner.dedupe.buffer.size")).unwrap_or(usize::MAX),
            delete_retention_ms: num("log.cleaner.delete.retention.ms"),
            min_compaction_lag_ms: num("log.cleaner.min.compaction.lag.ms"),
            connections_max_idle: u64::try_from(num("connections.max.idle.ms")).ok().map(std::time::Duration::from_millis),
            max_connections: num("max.connections") as usize,
            max_connections_per_ip: num("max.connections.per.ip") as usize,
            metrics_naming: crate::metrics::Profile::parse(get("metrics.naming").unwrap_or("strimzi")).unwrap_or_default(),
            metrics_enabled: get("metrics.enabled") != Some("false"),
            request_log_path: get("request.log.path").filter(|p| !p.is_empty()).map(PathBuf::from),
            effective,
        })
    }
}

pub(crate) fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::Default => "default",
        Origin::File => "config file",
        Origin::Env => "environment",
        Origin::Flag => "command line",
    }
}

fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Checks a raw value against its property definition.
fn validate(def: &PropertyDef, value: &str) -> Result<(), String> {
    let v = value.trim();
    match def.kind {
        Kind::Int | Kind::Long => {
            let n: i64 = v.parse().map_err(|_| format!("expected an integer, got '{v}'"))?;
            if def.kind == Kind::Int && (n < i32::MIN as i64 || n > i32::MAX as i64) {
                return Err(format!("{n} does not fit in a 32-bit integer"));
            }
            if let Some(min) = def.min {
                if n < min {
                    return Err(format!("must be at least {min}"));
                }
            }
        }
        Kind::Bool => {
            if v != "true" && v != "false" {
                return Err("expected true or false".into());
            }
        }
        Kind::Choice(words) => {
            if !words.contains(&v) {
                return Err(format!("expected one of {}", words.join(", ")));
            }
        }
        Kind::IntBetween(lo, hi) => match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => {}
            _ => return Err(format!("expected an integer from {lo} to {hi}")),
        },
        Kind::GzipLevel => match v.parse::<i64>() {
            Ok(n) if n == -1 || (1..=9).contains(&n) => {}
            _ => return Err("expected 1 to 9, or -1 (the codec's default)".into()),
        },
        Kind::Ratio => match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => {}
            _ => return Err("expected a number from 0 to 1".into()),
        },
        Kind::Str | Kind::List => {}
    }
    Ok(())
}

/// Parses `NAME://host:port,...`; names are checked against listener.security.protocol.map
/// (only PLAINTEXT is supported) in [`cluster::parse`].
pub fn parse_listeners(_prop: &str, value: &str) -> Result<Vec<Listener>, String> {
    let mut out: Vec<Listener> = Vec::new();
    for item in split_list(value) {
        let (name, rest) = item.split_once("://").ok_or_else(|| format!("'{item}' is not NAME://host:port"))?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("'{name}' is not a listener name (letters, digits and _)"));
        }
        if out.iter().any(|l| l.name == name) {
            return Err(format!("listener name {name} is used twice"));
        }
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("'{item}' has no port"))?;
        let port: u16 = port.parse().map_err(|_| format!("'{port}' is not a port number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        out.push(Listener { name: name.to_string(), host, port });
    }
    if out.is_empty() {
        return Err("at least one listener is needed".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, (String, Origin)> {
        pairs.iter().map(|(k, v)| (k.to_string(), (v.to_string(), Origin::Flag))).collect()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = BrokerConfig::from_properties(BTreeMap::new()).unwrap();
        assert_eq!(c.listeners[0].port, 9092);
        assert_eq!(c.advertised_listeners[0].host, "localhost");
        assert_eq!(c.log_dirs, vec![std::env::current_dir().unwrap().join("data")]);
        assert_eq!(c.retention_ms, 168 * 3_600_000);
        assert_eq!(c.socket_request_max_bytes, 100 * 1024 * 1024);
        assert!(c.auto_create_topics);
    }

    #[test]
    fn unknown_property_is_named() {
        let e = BrokerConfig::from_properties(raw(&[("no.such.thing", "1")])).unwrap_err();
        assert!(e.to_string().contains("no.such.thing"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        for (k, v) in [("num.partitions", "abc"), ("num.partitions", "0"), ("auto.create.topics.enable", "yes"),
            ("listeners", "SSL://x:1"), ("listeners", "A://x:1,A://x:2"), ("http.listener", "nope"), ("node.id", "99999999999")] {
            let e = BrokerConfig::from_properties(raw(&[(k, v)])).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
    }

    #[test]
    fn retention_ms_overrides_hours() {
        let c = BrokerConfig::from_properties(raw(&[("log.retention.hours", "1"), ("log.retention.ms", "5")])).unwrap();
        assert_eq!(c.retention_ms, 5);
        let c = BrokerConfig::from_properties(raw(&[("log.retention.hours", "2")])).unwrap();
        assert_eq!(c.retention_ms, 7_200_000);
    }
}
