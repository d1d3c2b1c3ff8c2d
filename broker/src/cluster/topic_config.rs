//! Topic-level configuration: the properties a topic may override, their broker-wide
//! defaults, and how they turn into a log's settings.
use std::collections::BTreeMap;

use crate::config::BrokerConfig;
use crate::log::LogConfig;

/// A topic config Lantern honours, with the broker property that supplies its default.
pub struct TopicConfigDef {
    pub name: &'static str,
    pub broker_synonym: &'static str,
    validate: fn(&str) -> Result<(), String>,
}

fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |v: &str| match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(_) => Err(format!("must be at least {min}")),
        Err(_) => Err(format!("'{v}' is not an integer")),
    }
}

fn v_retention(v: &str) -> Result<(), String> {
    long_at_least(-1)(v)
}
fn v_positive(v: &str) -> Result<(), String> {
    long_at_least(1)(v)
}
fn v_segment_bytes(v: &str) -> Result<(), String> {
    long_at_least(1024)(v).and_then(|_| if v.trim().parse::<i64>().unwrap_or(0) > i32::MAX as i64 { Err("must fit in 32 bits".into()) } else { Ok(()) })
}
fn v_bool(v: &str) -> Result<(), String> {
    match v.trim() {
        "true" | "false" => Ok(()),
        _ => Err("must be true or false".into()),
    }
}
fn v_non_negative(v: &str) -> Result<(), String> {
    long_at_least(0)(v)
}
fn v_cleanup(v: &str) -> Result<(), String> {
    let words: Vec<&str> = v.split(',').map(str::trim).collect();
    if !words.is_empty() && words.iter().all(|w| *w == "delete" || *w == "compact") {
        Ok(())
    } else {
        Err(format!("cleanup.policy '{v}' must be delete, compact or compact,delete"))
    }
}
fn v_ratio(v: &str) -> Result<(), String> {
    match v.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
        _ => Err(format!("'{v}' is not a ratio between 0 and 1")),
    }
}
fn v_compression(v: &str) -> Result<(), String> {
    if v.trim() == "producer" {
        Ok(())
    } else {
        Err("only compression.type=producer is supported: batches are stored as the producer compressed them".into())
    }
}
fn v_timestamp_type(v: &str) -> Result<(), String> {
    if v.trim() == "CreateTime" {
        Ok(())
    } else {
        Err("only message.timestamp.type=CreateTime is supported".into())
    }
}

/// Topic configs Lantern accepts and honours.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef { name: "retention.ms", broker_synonym: "log.retention.ms", validate: v_retention },
    TopicConfigDef { name: "retention.bytes", broker_synonym: "log.retention.bytes", validate: v_retention },
    TopicConfigDef { name: "segment.bytes", broker_synonym: "log.segment.bytes", validate: v_segment_bytes },
    TopicConfigDef { name: "segment.ms", broker_synonym: "log.roll.ms", validate: v_positive },
    TopicConfigDef { name: "segment.index.bytes", broker_synonym: "log.index.size.max.bytes", validate: v_non_negative },
    TopicConfigDef { name: "index.interval.bytes", broker_synonym: "log.index.interval.bytes", validate: v_non_negative },
    TopicConfigDef { name: "max.message.bytes", broker_synonym: "message.max.bytes", validate: v_non_negative },
    TopicConfigDef { name: "flush.messages", broker_synonym: "log.flush.interval.messages", validate: v_positive },
    TopicConfigDef { name: "flush.ms", broker_synonym: "log.flush.interval.ms", validate: v_positive },
    TopicConfigDef { name: "cleanup.policy", broker_synonym: "log.cleanup.policy", validate: v_cleanup },
    TopicConfigDef { name: "delete.retention.ms", broker_synonym: "log.cleaner.delete.retention.ms", validate: v_non_negative },
    TopicConfigDef { name: "min.compaction.lag.ms", broker_synonym: "log.cleaner.min.compaction.lag.ms", validate: v_non_negative },
    TopicConfigDef { name: "min.cleanable.dirty.ratio", broker_synonym: "log.cleaner.min.cleanable.ratio", validate: v_ratio },
    TopicConfigDef { name: "compression.type", broker_synonym: "compression.type", validate: v_compression },
    TopicConfigDef { name: "message.timestamp.type", broker_synonym: "log.message.timestamp.type", validate: v_timestamp_type },
    TopicConfigDef { name: "min.insync.replicas", broker_synonym: "min.insync.replicas", validate: v_positive },
    TopicConfigDef { name: "unclean.leader.election.enable", broker_synonym: "unclean.leader.election.enable", validate: v_bool },
    // Replication throttles (see cluster::replication_quota): topic-only, no broker synonym.
    TopicConfigDef { name: "leader.replication.throttled.replicas", broker_synonym: "leader.replication.throttled.replicas", validate: v_throttled },
    TopicConfigDef { name: "follower.replication.throttled.replicas", broker_synonym: "follower.replication.throttled.replicas", validate: v_throttled },
];

fn v_throttled(v: &str) -> Result<(), String> {
    super::replication_quota::validate_list(v)
}

/// The list-valued topic configs (IncrementalAlterConfigs APPEND/SUBTRACT apply to these
/// only) with Kafka's default for each, the value an APPEND starts from without an override.
pub const LIST_TOPIC_CONFIGS: &[(&str, &str)] =
    &[("cleanup.policy", "delete"), ("leader.replication.throttled.replicas", ""), ("follower.replication.throttled.replicas", "")];

/// A list config's value after APPEND (`add`) or SUBTRACT of `items` (comma-separated), as
/// Kafka computes it: appended items not already present go at the end, in order.
pub fn list_after(current: &str, items: &str, add: bool) -> String {
    let split = |v: &str| -> Vec<String> { v.split(',').map(str::trim).filter(|w| !w.is_empty()).map(String::from).collect() };
    let mut list = split(current);
    let given = split(items);
    if add {
        for item in given {
            if !list.contains(&item) {
                list.push(item);
            }
        }
    } else {
        list.retain(|item| !given.contains(item));
    }
    list.join(",")
}

/// Checks one topic config override; the error says what is wrong.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    let def = TOPIC_CONFIGS
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| format!("unknown topic config '{name}'"))?;
    (def.validate)(value)
}

/// The broker-wide default of a topic config, as a string.
pub fn broker_default(config: &BrokerConfig, name: &str) -> String {
    match name {
        "retention.ms" => config.retention_ms.to_string(),
        "retention.bytes" => config.retention_bytes.to_string(),
        "segment.bytes" => config.segment_bytes.to_string(),
        "segment.ms" => config.roll_ms.to_string(),
        "segment.index.bytes" => "10485760".into(),
        "index.interval.bytes" => config.index_interval_bytes.to_string(),
        "max.message.bytes" => config.message_max_bytes.to_string(),
        "flush.messages" => config.flush_interval_messages.to_string(),
        "flush.ms" => config.flush_interval_ms.to_string(),
        "cleanup.policy" => config.cleanup_policy.clone(),
        "delete.retention.ms" => config.delete_retention_ms.to_string(),
        "min.compaction.lag.ms" => config.min_compaction_lag_ms.to_string(),
        "min.cleanable.dirty.ratio" => "0.5".into(),
        "compression.type" => "producer".into(),
        "message.timestamp.type" => "CreateTime".into(),
        "min.insync.replicas" => config.min_insync_replicas.to_string(),
        "unclean.leader.election.enable" => config.unclean_leader_election_enable.to_string(),
        _ => String::new(),
    }
}

/// A topic's min.insync.replicas: its override, else the broker default.
pub fn min_insync_replicas(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> usize {
    overrides.get("min.insync.replicas").and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(config.min_insync_replicas).max(1)
}

/// A topic's unclean.leader.election.enable: its override, else the broker default.
pub fn unclean_leader_election(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> bool {
    overrides.get("unclean.leader.election.enable").map_or(config.unclean_leader_election_enable, |v| v.trim() == "true")
}

/// The log settings of a topic: broker defaults with the topic's overrides applied.
pub fn log_config(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let num = |name: &str, default: i64| -> i64 {
        overrides.get(name).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
    };
    let policy = overrides.get("cleanup.policy").cloned().unwrap_or_else(|| config.cleanup_policy.clone());
    LogConfig {
        segment_bytes: num("segment.bytes", config.segment_bytes as i64) as u64,
        segment_ms: num("segment.ms", config.roll_ms) as u64,
        retention_ms: num("retention.ms", config.retention_ms),
        retention_bytes: num("retention.bytes", config.retention_bytes),
        max_message_bytes: num("max.message.bytes", config.message_max_bytes as i64) as usize,
        index_interval_bytes: num("index.interval.bytes", config.index_interval_bytes as i64) as usize,
        flush_interval_messages: num("flush.messages", config.flush_interval_messages as i64) as u64,
        flush_interval_ms: num("flush.ms", config.flush_interval_ms as i64) as u64,
        cleanup_policy_delete: policy.split(',').any(|w| w.trim() == "delete"),
        cleanup_policy_compact: policy.split(',').any(|w| w.trim() == "compact"),
        delete_retention_ms: num("delete.retention.ms", config.delete_retention_ms),
        min_compaction_lag_ms: num("min.compaction.lag.ms", config.min_compaction_lag_ms),
        min_cleanable_dirty_ratio: overrides
            .get("min.cleanable.dirty.ratio")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.5),
    }
}
