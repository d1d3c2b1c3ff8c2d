//! The table of topic configs: every name Kafka 3.9 defines (its `TopicConfig` and
//! `LogConfig`), with Kafka's type, default, validator, broker-level synonym, and whether
//! Lantern's log acts on it. A name not in this table is refused, as Kafka refuses it.
//!
//! Values are checked as Kafka's `ConfigDef` checks them (numbers trimmed and parsed as the
//! declared Java type, then the range or word list), and errors read as Kafka's
//! `ConfigException` does: "Invalid value X for configuration Y: why".

/// Kafka's `ConfigDef.Type`, numbered as DescribeConfigs (v3+) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Whether a config changes what Lantern does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Honoured,
    /// Accepted, stored and reported, with no effect here; the reason is for the docs.
    StoredOnly(&'static str),
}

/// One topic config.
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// Kafka 3.9's default (the broker synonym's default where there is one).
    pub default: &'static str,
    /// The broker property that supplies the default (Kafka's `ServerTopicConfigSynonyms`);
    /// `None` for configs Kafka has no server default for.
    pub broker_synonym: Option<&'static str>,
    pub effect: Effect,
    check: Check,
}

/// The validator Kafka declares for a config, beyond its type.
#[derive(Debug, Clone, Copy)]
enum Check {
    Any,
    AtLeast(i64),
    Between(i64, i64),
    /// Kafka's gzip level: 1..=9 or -1 (Deflater.DEFAULT_COMPRESSION).
    GzipLevel,
    Ratio,
    OneOf(&'static [&'static str]),
    ListOf(&'static [&'static str]),
    ThrottledReplicas,
    /// A metadata version such as `3.0-IV1` or `2.8` (Kafka's MetadataVersionValidator).
    Version,
}

const I64_MAX: &str = "9223372036854775807";

const fn def(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    broker_synonym: Option<&'static str>,
    check: Check,
    effect: Effect,
) -> TopicConfigDef {
    TopicConfigDef { name, kind, default, broker_synonym, effect, check }
}

use Check::*;
use ConfigType::{Boolean, Double, Int, List, Long};
use Effect::*;

const NO_TIERED: Effect =
    StoredOnly("Lantern has no tiered storage: every segment stays on local disk, governed by retention.ms and retention.bytes.");

/// Every topic config of Kafka 3.9, in Kafka's `LogConfig` order.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("segment.bytes", Int, "1073741824", Some("log.segment.bytes"), AtLeast(14), Honoured),
    def("segment.ms", Long, "604800000", Some("log.roll.ms"), AtLeast(1), Honoured),
    def("segment.jitter.ms", Long, "0", Some("log.roll.jitter.ms"), AtLeast(0), Honoured),
    def("segment.index.bytes", Int, "10485760", Some("log.index.size.max.bytes"), AtLeast(4), Honoured),
    def("flush.messages", Long, I64_MAX, Some("log.flush.interval.messages"), AtLeast(1), Honoured),
    def("flush.ms", Long, I64_MAX, Some("log.flush.interval.ms"), AtLeast(0), Honoured),
    def("retention.bytes", Long, "-1", Some("log.retention.bytes"), Any, Honoured),
    def("retention.ms", Long, "604800000", Some("log.retention.ms"), AtLeast(-1), Honoured),
    def("max.message.bytes", Int, "1048588", Some("message.max.bytes"), AtLeast(0), Honoured),
    def("index.interval.bytes", Int, "4096", Some("log.index.interval.bytes"), AtLeast(0), Honoured),
    def("delete.retention.ms", Long, "86400000", Some("log.cleaner.delete.retention.ms"), AtLeast(0), Honoured),
    def("min.compaction.lag.ms", Long, "0", Some("log.cleaner.min.compaction.lag.ms"), AtLeast(0), Honoured),
    def("max.compaction.lag.ms", Long, I64_MAX, Some("log.cleaner.max.compaction.lag.ms"), AtLeast(1), Honoured),
    def(
        "file.delete.delay.ms",
        Long,
        "60000",
        Some("log.segment.delete.delay.ms"),
        AtLeast(0),
        StoredOnly("Kafka waits before removing a deleted segment's files so that reads still using them finish; Lantern's reads hold the segment's open file, which stays readable after it is removed, so the files go at once (renamed .deleted first, as Kafka does)."),
    ),
    def("min.cleanable.dirty.ratio", Double, "0.5", Some("log.cleaner.min.cleanable.ratio"), Ratio, Honoured),
    def("cleanup.policy", List, "delete", Some("log.cleanup.policy"), ListOf(&["compact", "delete"]), Honoured),
    def("unclean.leader.election.enable", Boolean, "false", Some("unclean.leader.election.enable"), Any, Honoured),
    def("min.insync.replicas", Int, "1", Some("min.insync.replicas"), AtLeast(1), Honoured),
    def(
        "compression.type",
        ConfigType::String,
        "producer",
        Some("compression.type"),
        OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        Honoured,
    ),
    def("compression.gzip.level", Int, "-1", Some("compression.gzip.level"), GzipLevel, Honoured),
    def(
        "compression.lz4.level",
        Int,
        "9",
        Some("compression.lz4.level"),
        Between(1, 17),
        StoredOnly("Lantern's lz4 encoder (lz4_flex) has one speed; recompressed lz4 batches are written at it whatever the level."),
    ),
    def("compression.zstd.level", Int, "3", Some("compression.zstd.level"), Between(-131072, 22), Honoured),
    def(
        "preallocate",
        Boolean,
        "false",
        Some("log.preallocate"),
        Any,
        StoredOnly("Lantern's segments are append-only files whose length is their data (recovery and retention read it so); a file preallocated to segment.bytes would need a separate end marker. Kafka recommends it only on Windows; on Linux file systems an append allocates cheaply."),
    ),
    def(
        "message.format.version",
        ConfigType::String,
        "3.0-IV1",
        Some("log.message.format.version"),
        Version,
        StoredOnly("deprecated in Kafka 3 and ignored by it from 3.0-IV1 on; Lantern stores only record format v2."),
    ),
    def("message.timestamp.type", ConfigType::String, "CreateTime", Some("log.message.timestamp.type"), OneOf(&["CreateTime", "LogAppendTime"]), Honoured),
    def("message.timestamp.difference.max.ms", Long, I64_MAX, Some("log.message.timestamp.difference.max.ms"), AtLeast(0), Honoured),
    def("message.timestamp.before.max.ms", Long, I64_MAX, Some("log.message.timestamp.before.max.ms"), AtLeast(0), Honoured),
    def("message.timestamp.after.max.ms", Long, I64_MAX, Some("log.message.timestamp.after.max.ms"), AtLeast(0), Honoured),
    def("leader.replication.throttled.replicas", List, "", None, ThrottledReplicas, Honoured),
    def("follower.replication.throttled.replicas", List, "", None, ThrottledReplicas, Honoured),
    def(
        "message.downconversion.enable",
        Boolean,
        "true",
        Some("log.message.downconversion.enable"),
        Any,
        StoredOnly("Lantern never down-converts: it serves record format v2 only, to Fetch v4 and later."),
    ),
    def("remote.storage.enable", Boolean, "false", None, Any, NO_TIERED),
    def("local.retention.ms", Long, "-2", Some("log.local.retention.ms"), AtLeast(-2), NO_TIERED),
    def("local.retention.bytes", Long, "-2", Some("log.local.retention.bytes"), AtLeast(-2), NO_TIERED),
    def("remote.log.copy.disable", Boolean, "false", None, Any, NO_TIERED),
    def("remote.log.delete.on.disable", Boolean, "false", None, Any, NO_TIERED),
];

/// The definition of a topic config, if Kafka has one by that name.
pub fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

impl TopicConfigDef {
    /// Checks a value as Kafka's ConfigDef would; the error is Kafka's message.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        let invalid = |why: &str| Err(format!("Invalid value {value} for configuration {}: {why}", self.name));
        let v = value.trim();
        let number: Option<i64> = match self.kind {
            Int => match v.parse::<i32>() {
                Ok(n) => Some(n.into()),
                Err(_) => return invalid("Not a number of type INT"),
            },
            Long => match v.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => return invalid("Not a number of type LONG"),
            },
            Double => match v.parse::<f64>() {
                Ok(r) if r.is_finite() => None,
                _ => return invalid("Not a number of type DOUBLE"),
            },
            Boolean => {
                if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
                    None
                } else {
                    return invalid("Expected value to be either true or false");
                }
            }
            ConfigType::String | List => None,
        };
        match (self.check, number) {
            (AtLeast(min), Some(n)) if n < min => invalid(&format!("Value must be at least {min}")),
            (Between(lo, hi), Some(n)) if n < lo || n > hi => invalid(&format!("Value must be no less than {lo} and no more than {hi}")),
            (GzipLevel, Some(n)) if n != -1 && !(1..=9).contains(&n) => invalid("Value must be between 1 and 9 or equal to -1"),
            (Ratio, _) => match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
                _ => invalid("Value must be no less than 0 and no more than 1"),
            },
            (OneOf(words), _) if !words.contains(&v) => invalid(&format!("String must be one of: {}", words.join(", "))),
            // An empty list is valid, as Kafka parses "" as []: cleanup.policy= means neither
            // deletion nor compaction (the log is kept whole).
            (ListOf(_), _) if v.trim().is_empty() => Ok(()),
            (ListOf(words), _) => {
                let items: Vec<&str> = v.split(',').map(str::trim).collect();
                match items.iter().find(|w| !words.contains(w)) {
                    Some(w) => invalid(&format!("'{w}' is not one of: {}", words.join(", "))),
                    None => Ok(()),
                }
            }
            (ThrottledReplicas, _) => super::replication_quota::validate_list(v).or_else(|why| invalid(&why)),
            (Version, _) if !is_version(v) => invalid(&format!("{v} is not a valid version; use one like 3.0-IV1 or 2.8")),
            _ => Ok(()),
        }
    }
}

/// `major.minor[.patch][-IVn]`, the shape of Kafka's metadata (formerly inter-broker
/// protocol) versions.
fn is_version(v: &str) -> bool {
    let (numbers, iv) = match v.split_once("-IV") {
        Some((n, iv)) => (n, Some(iv)),
        None => (v, None),
    };
    let parts: Vec<&str> = numbers.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && iv.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, value: &str) -> Result<(), String> {
        lookup(name).ok_or("unknown")?.validate(value)
    }

    #[test]
    fn every_kafka_3_9_topic_config_is_known_with_a_valid_default() {
        // The names of Kafka 3.9's LogConfig.configNames().
        let kafka = [
            "cleanup.policy", "compression.gzip.level", "compression.lz4.level", "compression.type", "compression.zstd.level",
            "delete.retention.ms", "file.delete.delay.ms", "flush.messages", "flush.ms", "follower.replication.throttled.replicas",
            "index.interval.bytes", "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
            "max.compaction.lag.ms", "max.message.bytes", "message.downconversion.enable", "message.format.version",
            "message.timestamp.after.max.ms", "message.timestamp.before.max.ms", "message.timestamp.difference.max.ms",
            "message.timestamp.type", "min.cleanable.dirty.ratio", "min.compaction.lag.ms", "min.insync.replicas", "preallocate",
            "remote.log.copy.disable", "remote.log.delete.on.disable", "remote.storage.enable", "retention.bytes", "retention.ms",
            "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms", "unclean.leader.election.enable",
        ];
        let mut ours: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        ours.sort();
        assert_eq!(ours, kafka);
        for d in TOPIC_CONFIGS {
            assert_eq!(d.validate(d.default), Ok(()), "{}: its default", d.name);
        }
    }

    #[test]
    fn the_configuration_page_lists_every_config_with_its_default_and_effect() {
        let page = include_str!("../../../docs/configuration.md");
        for d in TOPIC_CONFIGS {
            let default = if d.default.is_empty() { "(empty)".to_string() } else { format!("`{}`", d.default) };
            let row = page
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` | ", d.name)))
                .unwrap_or_else(|| panic!("docs/configuration.md has no row for {}", d.name));
            assert!(row.contains(&format!(" | {default} | ")), "{}: the row does not give the default {default}", d.name);
            let effect = match d.effect {
                Honoured => "| honoured",
                StoredOnly(_) => "| stored only",
            };
            assert!(row.contains(effect), "{}: the row should say '{effect}'", d.name);
        }
    }

    #[test]
    fn values_are_checked_as_kafka_checks_them() {
        for (name, good) in [
            ("compression.type", "zstd"),
            ("compression.type", "uncompressed"),
            ("message.timestamp.type", "LogAppendTime"),
            ("preallocate", "TRUE"),
            ("segment.index.bytes", " 4 "),
            ("compression.gzip.level", "-1"),
            ("compression.zstd.level", "-5"),
            ("local.retention.ms", "-2"),
            ("message.format.version", "3.0-IV1"),
            ("message.format.version", "2.8"),
            ("retention.bytes", "-7"),
            ("cleanup.policy", "compact,delete"),
            ("cleanup.policy", ""),
        ] {
            assert_eq!(check(name, good), Ok(()), "{name}={good}");
        }
        for (name, bad, why) in [
            ("compression.type", "brotli", "String must be one of"),
            ("message.timestamp.type", "createtime", "String must be one of"),
            ("segment.index.bytes", "3", "at least 4"),
            ("segment.bytes", "2147483648", "type INT"),
            ("segment.jitter.ms", "-1", "at least 0"),
            ("max.compaction.lag.ms", "0", "at least 1"),
            ("compression.gzip.level", "0", "between 1 and 9"),
            ("compression.lz4.level", "18", "no more than 17"),
            ("preallocate", "yes", "true or false"),
            ("min.cleanable.dirty.ratio", "1.5", "no more than 1"),
            ("message.format.version", "banana", "not a valid version"),
            ("cleanup.policy", "delete,shred", "'shred'"),
            ("flush.ms", "1e3", "type LONG"),
        ] {
            let e = check(name, bad).unwrap_err();
            assert!(e.starts_with(&format!("Invalid value {bad} for configuration {name}: ")), "{e}");
            assert!(e.contains(why), "{name}={bad}: {e}");
        }
    }
}
