//! MirrorMaker 2's properties configuration (`connect-mirror-maker.properties`): the clusters, the
//! enabled `source->target` flows and each flow's settings, with MM2's names and defaults. A flow
//! setting is looked up as `source->target.<name>`, then `<name>`, then MM2's default. Anything
//! unknown or malformed is an error naming the key, so a typo stops start-up instead of being
//! ignored.
use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

use crate::policy::ReplicationPolicy;
use crate::resume::ExactlyOnceSupport;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("unknown setting {0:?}")]
    Unknown(String),
    #[error("bad value for {key}: {message}")]
    BadValue { key: String, message: String },
    #[error("missing setting {0:?}")]
    Missing(String),
}

/// One cluster: its alias, bootstrap servers and the client settings passed through to
/// librdkafka (`<alias>.<property>` to every client of it; `<alias>.consumer.*`,
/// `<alias>.producer.*`, `<alias>.admin.*` to that kind only).
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub alias: String,
    pub bootstrap_servers: String,
    pub client: BTreeMap<String, String>,
    pub consumer: BTreeMap<String, String>,
    pub producer: BTreeMap<String, String>,
    pub admin: BTreeMap<String, String>,
}

/// The settings of one `source->target` flow.
#[derive(Debug, Clone)]
pub struct FlowSettings {
    pub topics: Regex,
    pub topics_exclude: Regex,
    pub groups: Regex,
    pub groups_exclude: Regex,
    pub replication_factor: i32,
    pub sync_topic_configs_enabled: bool,
    pub sync_topic_configs_interval: Duration,
    pub sync_group_offsets_enabled: bool,
    pub sync_group_offsets_interval: Duration,
    pub emit_checkpoints_enabled: bool,
    pub emit_checkpoints_interval: Duration,
    pub emit_heartbeats_enabled: bool,
    pub emit_heartbeats_interval: Duration,
    pub refresh_topics_enabled: bool,
    pub refresh_topics_interval: Duration,
    pub refresh_groups_interval: Duration,
    pub offset_lag_max: i64,
    pub offset_flush_interval: Duration,
    pub offset_syncs_topic_replication_factor: i32,
    pub checkpoints_topic_replication_factor: i32,
    pub heartbeats_topic_replication_factor: i32,
    pub policy: ReplicationPolicy,
    pub exactly_once_support: ExactlyOnceSupport,
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub source: String,
    pub target: String,
    pub settings: FlowSettings,
}

impl Flow {
    pub fn name(&self) -> String {
        format!("{}->{}", self.source, self.target)
    }
}

#[derive(Debug, Clone)]
pub struct MirrorConfig {
    pub clusters: BTreeMap<String, Cluster>,
    pub flows: Vec<Flow>,
}

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Seconds,
    Millis,
    Int,
    Regexes,
    Policy,
    Text,
    ExactlyOnce,
}

/// Every flow-level setting: name, kind, MM2's default (`None`: no default, ignored if absent).
const FLOW_SETTINGS: &[(&str, Kind, &str)] = &[
    ("enabled", Kind::Bool, "false"),
    ("topics", Kind::Regexes, ".*"),
    ("topics.exclude", Kind::Regexes, r".*[\-\.]internal, .*\.replica, __.*"),
    ("groups", Kind::Regexes, ".*"),
    ("groups.exclude", Kind::Regexes, "console-consumer-.*, connect-.*, __.*"),
    ("replication.factor", Kind::Int, "2"),
    ("sync.topic.configs.enabled", Kind::Bool, "true"),
    ("sync.topic.configs.interval.seconds", Kind::Seconds, "600"),
    ("sync.group.offsets.enabled", Kind::Bool, "false"),
    ("sync.group.offsets.interval.seconds", Kind::Seconds, "60"),
    ("emit.checkpoints.enabled", Kind::Bool, "true"),
    ("emit.checkpoints.interval.seconds", Kind::Seconds, "60"),
    ("emit.heartbeats.enabled", Kind::Bool, "true"),
    ("emit.heartbeats.interval.seconds", Kind::Seconds, "1"),
    ("refresh.topics.enabled", Kind::Bool, "true"),
    ("refresh.topics.interval.seconds", Kind::Seconds, "600"),
    ("refresh.groups.interval.seconds", Kind::Seconds, "600"),
    ("offset.lag.max", Kind::Int, "100"),
    ("offset.flush.interval.ms", Kind::Millis, "60000"),
    ("offset-syncs.topic.replication.factor", Kind::Int, "3"),
    ("checkpoints.topic.replication.factor", Kind::Int, "3"),
    ("heartbeats.topic.replication.factor", Kind::Int, "3"),
    ("replication.policy.class", Kind::Policy, "org.apache.kafka.connect.mirror.DefaultReplicationPolicy"),
    ("replication.policy.separator", Kind::Text, "."),
    // Accepted for MM2 configs' sake: one task per flow copies every partition.
    ("tasks.max", Kind::Int, "1"),
    // KIP-618's connector-level name and values (plus `disabled`): see resume.rs.
    ("exactly.once.support", Kind::ExactlyOnce, "requested"),
];

/// Legacy MM2 names still accepted.
const ALIASES: &[(&str, &str)] = &[("topics.blacklist", "topics.exclude"), ("groups.blacklist", "groups.exclude")];

/// Parses Java properties text: `key=value`, `key: value` or `key value`; `#`/`!` comments;
/// a trailing backslash continues the line. Later keys win, as in Java.
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    let mut start_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = if logical.is_empty() { raw.trim_start() } else { raw.trim() };
        if logical.is_empty() {
            start_line = i + 1;
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            logical.push_str(stripped);
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        let sep = entry.find(['=', ':', ' ', '\t']).ok_or_else(|| ConfigError::Syntax {
            line: start_line,
            message: format!("{entry:?} has no value (key=value)"),
        })?;
        let key = entry[..sep].trim().to_string();
        let mut value = entry[sep..].trim_start();
        if value.starts_with(['=', ':']) {
            value = value[1..].trim_start();
        }
        if key.is_empty() {
            return Err(ConfigError::Syntax { line: start_line, message: "empty key".into() });
        }
        out.insert(key, value.trim_end().to_string());
    }
    Ok(out)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::BadValue { key: key.into(), message: format!("{v:?} is not true or false") }),
    }
}

fn parse_int(key: &str, v: &str) -> Result<i64, ConfigError> {
    v.parse::<i64>().map_err(|_| ConfigError::BadValue { key: key.into(), message: format!("{v:?} is not an integer") })
}

/// MM2's topic and group lists: comma-separated regexes, each matching the whole name.
pub fn parse_regexes(key: &str, v: &str) -> Result<Regex, ConfigError> {
    let parts: Vec<&str> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    for p in &parts {
        Regex::new(p).map_err(|e| ConfigError::BadValue { key: key.into(), message: format!("{p:?}: {e}") })?;
    }
    // An empty list matches nothing, as in MM2.
    let joined = if parts.is_empty() { "[^\\s\\S]".to_string() } else { parts.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|") };
    Regex::new(&format!("^(?:{joined})$")).map_err(|e| ConfigError::BadValue { key: key.into(), message: e.to_string() })
}

fn known_flow_setting(name: &str) -> Option<Kind> {
    let name = ALIASES.iter().find(|(old, _)| *old == name).map(|(_, new)| *new).unwrap_or(name);
    FLOW_SETTINGS.iter().find(|(n, _, _)| *n == name).map(|(_, k, _)| *k)
}

fn validate(key: &str, kind: Kind, v: &str) -> Result<(), ConfigError> {
    match kind {
        Kind::Bool => parse_bool(key, v).map(|_| ()),
        Kind::Seconds | Kind::Millis => match parse_int(key, v)? {
            n if n >= 0 => Ok(()),
            _ => Err(ConfigError::BadValue { key: key.into(), message: "must not be negative".into() }),
        },
        Kind::Int => parse_int(key, v).map(|_| ()),
        Kind::Regexes => parse_regexes(key, v).map(|_| ()),
        Kind::Policy => ReplicationPolicy::from_class(v, ".").map(|_| ()).map_err(|message| ConfigError::BadValue { key: key.into(), message }),
        Kind::Text => Ok(()),
        Kind::ExactlyOnce => ExactlyOnceSupport::parse(v).map(|_| ()).map_err(|message| ConfigError::BadValue { key: key.into(), message }),
    }
}

impl MirrorConfig {
    pub fn from_text(text: &str) -> Result<Self, ConfigError> {
        Self::from_properties(&parse_properties(text)?)
    }

    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let aliases: Vec<String> = props
            .get("clusters")
            .ok_or_else(|| ConfigError::Missing("clusters".into()))?
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if aliases.is_empty() {
            return Err(ConfigError::BadValue { key: "clusters".into(), message: "names no cluster".into() });
        }
        for a in &aliases {
            if a.contains("->") || a.contains(char::is_whitespace) {
                return Err(ConfigError::BadValue { key: "clusters".into(), message: format!("bad alias {a:?}") });
            }
        }
        // Every key must be known: top-level flow settings, `a->b.<setting>`, or cluster settings.
        let mut clusters: BTreeMap<String, Cluster> = aliases
            .iter()
            .map(|a| {
                let c = Cluster { alias: a.clone(), bootstrap_servers: String::new(), client: BTreeMap::new(), consumer: BTreeMap::new(), producer: BTreeMap::new(), admin: BTreeMap::new() };
                (a.clone(), c)
            })
            .collect();
        for (key, value) in props {
            if key == "clusters" {
                continue;
            }
            if let Some(kind) = known_flow_setting(key) {
                validate(key, kind, value)?;
                continue;
            }
            if let Some((pair, setting)) = key.split_once("->").and_then(|(s, rest)| rest.split_once('.').map(|(t, name)| ((s, t), name))) {
                let (s, t) = pair;
                if !clusters.contains_key(s) || !clusters.contains_key(t) {
                    return Err(ConfigError::Unknown(format!("{key} (clusters are {})", aliases.join(", "))));
                }
                let kind = known_flow_setting(setting).ok_or_else(|| ConfigError::Unknown(key.clone()))?;
                validate(key, kind, value)?;
                continue;
            }
            let (alias, rest) = key.split_once('.').ok_or_else(|| ConfigError::Unknown(key.clone()))?;
            let cluster = clusters.get_mut(alias).ok_or_else(|| ConfigError::Unknown(key.clone()))?;
            if rest == "bootstrap.servers" {
                cluster.bootstrap_servers = value.clone();
            } else if let Some(p) = rest.strip_prefix("consumer.") {
                cluster.consumer.insert(p.to_string(), value.clone());
            } else if let Some(p) = rest.strip_prefix("producer.") {
                cluster.producer.insert(p.to_string(), value.clone());
            } else if let Some(p) = rest.strip_prefix("admin.") {
                cluster.admin.insert(p.to_string(), value.clone());
            } else {
                cluster.client.insert(rest.to_string(), value.clone());
            }
        }
        let mut flows = Vec::new();
        for s in &aliases {
            for t in &aliases {
                if s == t {
                    continue;
                }
                let get = |name: &str| -> String {
                    let legacy = ALIASES.iter().find(|(_, new)| *new == name).map(|(old, _)| *old);
                    let keys = [Some(format!("{s}->{t}.{name}")), legacy.map(|l| format!("{s}->{t}.{l}")), Some(name.to_string()), legacy.map(str::to_string)];
                    keys.iter()
                        .flatten()
                        .find_map(|k| props.get(k).cloned())
                        .unwrap_or_else(|| FLOW_SETTINGS.iter().find(|(n, _, _)| *n == name).map(|(_, _, d)| d.to_string()).unwrap_or_default())
                };
                if !parse_bool("enabled", &get("enabled"))? {
                    continue;
                }
                let settings = flow_settings(&get, &format!("{s}->{t}"))?;
                flows.push(Flow { source: s.clone(), target: t.clone(), settings });
            }
        }
        if flows.is_empty() {
            return Err(ConfigError::BadValue { key: "<source>-><target>.enabled".into(), message: "no flow is enabled".into() });
        }
        for f in &flows {
            for alias in [&f.source, &f.target] {
                if clusters[alias].bootstrap_servers.is_empty() {
                    return Err(ConfigError::Missing(format!("{alias}.bootstrap.servers")));
                }
            }
        }
        Ok(MirrorConfig { clusters, flows })
    }
}

fn flow_settings(get: &dyn Fn(&str) -> String, flow: &str) -> Result<FlowSettings, ConfigError> {
    let key = |n: &str| format!("{flow}.{n}");
    let b = |n: &str| parse_bool(&key(n), &get(n));
    let secs = |n: &str| parse_int(&key(n), &get(n)).map(|v| Duration::from_secs(v.max(0) as u64));
    let int = |n: &str| parse_int(&key(n), &get(n));
    let rf = |n: &str| -> Result<i32, ConfigError> {
        let v = int(n)?;
        if v == -1 || (1..=i16::MAX as i64).contains(&v) {
            Ok(v as i32)
        } else {
            Err(ConfigError::BadValue { key: key(n), message: format!("{v} is not a replication factor (-1 for the broker default)") })
        }
    };
    let policy = ReplicationPolicy::from_class(&get("replication.policy.class"), &get("replication.policy.separator"))
        .map_err(|message| ConfigError::BadValue { key: key("replication.policy.class"), message })?;
    Ok(FlowSettings {
        topics: parse_regexes(&key("topics"), &get("topics"))?,
        topics_exclude: parse_regexes(&key("topics.exclude"), &get("topics.exclude"))?,
        groups: parse_regexes(&key("groups"), &get("groups"))?,
        groups_exclude: parse_regexes(&key("groups.exclude"), &get("groups.exclude"))?,
        replication_factor: rf("replication.factor")?,
        sync_topic_configs_enabled: b("sync.topic.configs.enabled")?,
        sync_topic_configs_interval: secs("sync.topic.configs.interval.seconds")?,
        sync_group_offsets_enabled: b("sync.group.offsets.enabled")?,
        sync_group_offsets_interval: secs("sync.group.offsets.interval.seconds")?,
        emit_checkpoints_enabled: b("emit.checkpoints.enabled")?,
        emit_checkpoints_interval: secs("emit.checkpoints.interval.seconds")?,
        emit_heartbeats_enabled: b("emit.heartbeats.enabled")?,
        emit_heartbeats_interval: secs("emit.heartbeats.interval.seconds")?,
        refresh_topics_enabled: b("refresh.topics.enabled")?,
        refresh_topics_interval: secs("refresh.topics.interval.seconds")?,
        refresh_groups_interval: secs("refresh.groups.interval.seconds")?,
        offset_lag_max: int("offset.lag.max")?.max(0),
        offset_flush_interval: Duration::from_millis(int("offset.flush.interval.ms")?.max(1) as u64),
        offset_syncs_topic_replication_factor: rf("offset-syncs.topic.replication.factor")?,
        checkpoints_topic_replication_factor: rf("checkpoints.topic.replication.factor")?,
        heartbeats_topic_replication_factor: rf("heartbeats.topic.replication.factor")?,
        policy,
        exactly_once_support: ExactlyOnceSupport::parse(&get("exactly.once.support")).map_err(|message| ConfigError::BadValue { key: key("exactly.once.support"), message })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str = "
# two clusters
clusters = primary, backup
primary.bootstrap.servers = p1:9092,p2:9092
backup.bootstrap.servers: b1:9092
primary->backup.enabled = true
primary->backup.topics = orders.*, payments
topics.exclude = .*\\.tmp
replication.factor = 1
primary->backup.emit.checkpoints.interval.seconds = 5
primary.consumer.fetch.min.bytes = 1
backup.producer.linger.ms = 5
primary.admin.request.timeout.ms = 1000
primary.security.protocol = PLAINTEXT
";

    #[test]
    fn reads_mm2_properties() {
        let c = MirrorConfig::from_text(BASIC).unwrap();
        assert_eq!(c.flows.len(), 1, "only primary->backup is enabled");
        let f = &c.flows[0];
        assert_eq!((f.source.as_str(), f.target.as_str()), ("primary", "backup"));
        let s = &f.settings;
        assert!(s.topics.is_match("orders-eu") && s.topics.is_match("payments"));
        assert!(!s.topics.is_match("payments2"), "a regex must match the whole name");
        assert!(s.topics_exclude.is_match("x.tmp"));
        assert_eq!(s.replication_factor, 1);
        assert_eq!(s.emit_checkpoints_interval, Duration::from_secs(5), "the flow-level value wins");
        assert_eq!(s.emit_heartbeats_interval, Duration::from_secs(1), "MM2's default");
        assert!(s.sync_topic_configs_enabled && !s.sync_group_offsets_enabled);
        assert_eq!(s.offset_lag_max, 100);
        assert_eq!(s.exactly_once_support, ExactlyOnceSupport::Requested, "exact resume by default");
        let p = &c.clusters["primary"];
        assert_eq!(p.bootstrap_servers, "p1:9092,p2:9092");
        assert_eq!(p.consumer["fetch.min.bytes"], "1");
        assert_eq!(p.admin["request.timeout.ms"], "1000");
        assert_eq!(p.client["security.protocol"], "PLAINTEXT");
        assert_eq!(c.clusters["backup"].producer["linger.ms"], "5");
        assert_eq!(s.policy.format_remote_topic("primary", "orders"), "primary.orders");
    }

    #[test]
    fn default_excludes_are_mm2s() {
        let c = MirrorConfig::from_text("clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1\na->b.enabled=true").unwrap();
        let s = &c.flows[0].settings;
        for t in ["__consumer_offsets", "mm2-offset-syncs.b.internal", "x.replica", "connect-internal"] {
            assert!(s.topics_exclude.is_match(t), "{t}");
        }
        assert!(!s.topics_exclude.is_match("orders"));
        assert!(s.groups_exclude.is_match("console-consumer-123"));
        assert_eq!(s.replication_factor, 2);
    }

    #[test]
    fn unknown_and_bad_settings_are_named() {
        let base = "clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1\na->b.enabled=true\n";
        let err = |extra: &str| MirrorConfig::from_text(&format!("{base}{extra}")).unwrap_err().to_string();
        assert!(err("emit.heartbeat.enabled=true").contains("emit.heartbeat.enabled"));
        assert!(err("a->b.topix=x").contains("a->b.topix"));
        assert!(err("a->c.enabled=true").contains("a->c.enabled"));
        assert!(err("c.bootstrap.servers=z:1").contains("c.bootstrap.servers"));
        assert!(err("sync.group.offsets.enabled=yes").contains("sync.group.offsets.enabled"));
        assert!(err("replication.factor=two").contains("replication.factor"));
        assert!(err("a->b.replication.factor=0").contains("a->b.replication.factor"));
        assert!(err("topics=orders[").contains("topics"));
        assert!(err("replication.policy.class=com.example.Mine").contains("replication.policy.class"));
        assert!(err("emit.checkpoints.interval.seconds=-1").contains("emit.checkpoints.interval.seconds"));
        assert!(err("exactly.once.support=enabled").contains("exactly.once.support"));
        assert!(err("a->b.exactly.once.support=yes").contains("a->b.exactly.once.support"));
        let missing = MirrorConfig::from_text("clusters=a,b\na.bootstrap.servers=x:1\na->b.enabled=true").unwrap_err();
        assert_eq!(missing, ConfigError::Missing("b.bootstrap.servers".into()));
        assert!(MirrorConfig::from_text("clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1").unwrap_err().to_string().contains("no flow"));
    }

    #[test]
    fn identity_policy_and_both_directions() {
        let c = MirrorConfig::from_text(
            "clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1\na->b.enabled=true\nb->a.enabled=true\n\
             replication.policy.class=org.apache.kafka.connect.mirror.IdentityReplicationPolicy\ntopics.blacklist=secret.*",
        )
        .unwrap();
        assert_eq!(c.flows.len(), 2);
        assert_eq!(c.flows[0].settings.policy.format_remote_topic("a", "orders"), "orders");
        assert!(c.flows[1].settings.topics_exclude.is_match("secret1"), "the legacy name still works");
    }

    #[test]
    fn properties_syntax() {
        let p = parse_properties("a=1\n  b : 2\nc 3\n! note\nd=long \\\n   value\ne=\n").unwrap();
        assert_eq!(p["a"], "1");
        assert_eq!(p["b"], "2");
        assert_eq!(p["c"], "3");
        assert_eq!(p["d"], "long value");
        assert_eq!(p["e"], "");
        assert!(matches!(parse_properties("lonely").unwrap_err(), ConfigError::Syntax { line: 1, .. }));
    }
}
