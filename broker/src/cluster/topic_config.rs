//! Topic-level configuration: the properties a topic may override, their broker-wide
//! defaults, and how they turn into a log's settings.
use std::collections::BTreeMap;

pub use super::topic_config_defs::{lookup, ConfigType, Effect, TopicConfigDef, TOPIC_CONFIGS};
use crate::config::BrokerConfig;
use crate::log::log_validator::{AppendPolicy, TopicCompression};
use crate::log::LogConfig;

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

/// Checks one topic config override as Kafka does; the error is Kafka's message (unknown
/// names: "Unknown topic config name: x").
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    lookup(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?.validate(value)
}

/// Checks that relate several configs of one topic (Kafka's `LogConfig.validateValues`):
/// `overrides` is the topic's whole set after a change; a config it leaves out counts at
/// Kafka's default.
pub fn validate_topic_configs(overrides: &BTreeMap<String, String>) -> Result<(), String> {
    let long = |name: &str| -> i64 {
        let value = overrides.get(name).map(String::as_str).or_else(|| lookup(name).map(|d| d.default));
        value.and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    };
    let (min, max) = (long("min.compaction.lag.ms"), long("max.compaction.lag.ms"));
    if min > max {
        return Err(format!("conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"));
    }
    Ok(())
}

/// The broker-wide default of a topic config, as a string: the broker property that is its
/// synonym (as set, or that property's default), else Kafka's default.
pub fn broker_default(config: &BrokerConfig, name: &str) -> String {
    match name {
        // Derived from several properties (ms, minutes, hours).
        "retention.ms" => config.retention_ms.to_string(),
        "segment.ms" => config.roll_ms.to_string(),
        "segment.jitter.ms" => config.roll_jitter_ms.to_string(),
        _ => match lookup(name) {
            Some(def) => def
                .broker_synonym
                .and_then(|s| config.effective.get(s))
                .map_or_else(|| def.default.to_string(), |(v, _)| v.trim().to_string()),
            None => String::new(),
        },
    }
}

/// A topic's min.insync.replicas: its override, else the broker default.
pub fn min_insync_replicas(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> usize {
    overrides.get("min.insync.replicas").and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(config.min_insync_replicas).max(1)
}

/// A topic's unclean.leader.election.enable: its override, else the broker default.
pub fn unclean_leader_election(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> bool {
    overrides.get("unclean.leader.election.enable").map_or(config.unclean_leader_election_enable, |v| v.trim().eq_ignore_ascii_case("true"))
}

/// A topic's message.timestamp.* and compression.type settings, resolved as Kafka's
/// LogConfig does (before/after.max.ms left at Long.MAX_VALUE fall back to the deprecated
/// difference.max.ms).
fn append_policy(value: &dyn Fn(&str) -> String) -> AppendPolicy {
    let long = |name: &str| value(name).trim().parse::<i64>().unwrap_or(i64::MAX);
    let int = |name: &str, default: i32| value(name).trim().parse::<i32>().unwrap_or(default);
    let difference = long("message.timestamp.difference.max.ms");
    let bound = |v: i64| if v != i64::MAX { v } else { difference };
    AppendPolicy {
        log_append_time: value("message.timestamp.type").trim() == "LogAppendTime",
        before_max_ms: bound(long("message.timestamp.before.max.ms")),
        after_max_ms: bound(long("message.timestamp.after.max.ms")),
        compression: TopicCompression::from_config(&value("compression.type"), int("compression.gzip.level", -1), int("compression.zstd.level", 3)),
    }
}

/// The log settings of a topic: broker defaults with the topic's overrides applied.
pub fn log_config(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let num = |name: &str, default: i64| -> i64 {
        overrides.get(name).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
    };
    // A topic's value of any config: its override, else the broker's default.
    let value = |name: &str| -> String { overrides.get(name).cloned().unwrap_or_else(|| broker_default(config, name)) };
    let policy = overrides.get("cleanup.policy").cloned().unwrap_or_else(|| config.cleanup_policy.clone());
    LogConfig {
        segment_bytes: num("segment.bytes", config.segment_bytes as i64) as u64,
        segment_ms: num("segment.ms", config.roll_ms) as u64,
        segment_jitter_ms: value("segment.jitter.ms").trim().parse().unwrap_or(0),
        segment_index_bytes: value("segment.index.bytes").trim().parse().unwrap_or(10 << 20),
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
        max_compaction_lag_ms: value("max.compaction.lag.ms").trim().parse().unwrap_or(i64::MAX),
        min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio").trim().parse().unwrap_or(0.5),
        append: append_policy(&value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_cleanup_policy_neither_deletes_nor_compacts() {
        let config = BrokerConfig::from_properties(BTreeMap::new()).expect("the defaults are a valid configuration");
        let with = |policy: &str| log_config(&config, &BTreeMap::from([("cleanup.policy".to_string(), policy.to_string())]));
        let empty = with("");
        assert!(!empty.cleanup_policy_delete && !empty.cleanup_policy_compact);
        let both = with("compact, delete");
        assert!(both.cleanup_policy_delete && both.cleanup_policy_compact);
    }
}
