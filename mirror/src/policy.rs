//! MM2's replication policies (remote topic names and where a topic came from) and the source
//! connector's choice of topics: filters, internal topics, heartbeats and cycle detection, as
//! `DefaultReplicationPolicy`, `IdentityReplicationPolicy` and `MirrorSourceConnector` decide.
use crate::config::FlowSettings;

pub const HEARTBEATS_TOPIC: &str = "heartbeats";

#[derive(Debug, Clone, PartialEq)]
pub enum ReplicationPolicy {
    /// `<source alias><separator><topic>`.
    Default { separator: String },
    /// Topics keep their names (heartbeats excepted, as in MM2: `<source>.heartbeats`); a cycle
    /// cannot be detected from the name.
    Identity { separator: String },
}

impl ReplicationPolicy {
    pub fn from_class(class: &str, separator: &str) -> Result<Self, String> {
        if separator.is_empty() {
            return Err("replication.policy.separator must not be empty".into());
        }
        let separator = separator.to_string();
        match class.trim().rsplit('.').next().unwrap_or_default() {
            "DefaultReplicationPolicy" => Ok(ReplicationPolicy::Default { separator }),
            "IdentityReplicationPolicy" => Ok(ReplicationPolicy::Identity { separator }),
            _ => Err(format!("{class:?}: lantern-mirror implements DefaultReplicationPolicy and IdentityReplicationPolicy")),
        }
    }

    fn separator(&self) -> &str {
        match self {
            ReplicationPolicy::Default { separator } | ReplicationPolicy::Identity { separator } => separator,
        }
    }

    fn default_topic_source(&self, topic: &str) -> Option<String> {
        let mut parts = topic.split(self.separator());
        let first = parts.next()?;
        parts.next().map(|_| first.to_string())
    }

    fn looks_like_heartbeat(topic: &str) -> bool {
        topic.ends_with(HEARTBEATS_TOPIC)
    }

    pub fn format_remote_topic(&self, source_alias: &str, topic: &str) -> String {
        match self {
            ReplicationPolicy::Identity { .. } if !Self::looks_like_heartbeat(topic) => topic.to_string(),
            _ => format!("{source_alias}{}{topic}", self.separator()),
        }
    }

    /// The cluster a remote topic came from, if its name says.
    pub fn topic_source(&self, topic: &str) -> Option<String> {
        match self {
            ReplicationPolicy::Identity { .. } if !Self::looks_like_heartbeat(topic) => None,
            _ => self.default_topic_source(topic),
        }
    }

    pub fn upstream_topic(&self, topic: &str) -> Option<String> {
        let source = self.topic_source(topic)?;
        Some(topic[source.len() + self.separator().len()..].to_string())
    }

    /// The name at the cluster where the topic was first written.
    pub fn original_topic(&self, topic: &str) -> String {
        match self.upstream_topic(topic) {
            Some(up) if up != topic => self.original_topic(&up),
            _ => topic.to_string(),
        }
    }

    pub fn offset_syncs_topic(alias: &str) -> String {
        format!("mm2-offset-syncs.{alias}.internal")
    }

    pub fn checkpoints_topic(alias: &str) -> String {
        format!("{alias}.checkpoints.internal")
    }

    pub fn is_heartbeats_topic(&self, topic: &str) -> bool {
        self.original_topic(topic) == HEARTBEATS_TOPIC
    }

    /// Kafka's, Connect's and MM2's own topics.
    pub fn is_internal_topic(&self, topic: &str) -> bool {
        topic.starts_with("__") || topic.starts_with('.') || topic.ends_with("-internal") || topic.ends_with(".internal")
    }

    /// Whether `topic` on the source already came from `target` (directly or further upstream):
    /// copying it back would loop.
    pub fn is_cycle(&self, topic: &str, target_alias: &str) -> bool {
        match self.topic_source(topic) {
            None => false,
            Some(s) if s == target_alias => true,
            Some(_) => match self.upstream_topic(topic) {
                Some(up) if up != topic => self.is_cycle(&up, target_alias),
                _ => false,
            },
        }
    }
}

/// MirrorSourceConnector's rule: topics the filter admits, and heartbeats always; never internal
/// topics, never a topic that would loop.
pub fn should_replicate_topic(s: &FlowSettings, topic: &str, target_alias: &str) -> bool {
    let admitted = s.topics.is_match(topic) && !s.topics_exclude.is_match(topic);
    (admitted || s.policy.is_heartbeats_topic(topic)) && !s.policy.is_internal_topic(topic) && !s.policy.is_cycle(topic, target_alias)
}

pub fn should_checkpoint_group(s: &FlowSettings, group: &str) -> bool {
    s.groups.is_match(group) && !s.groups_exclude.is_match(group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MirrorConfig;

    fn default() -> ReplicationPolicy {
        ReplicationPolicy::Default { separator: ".".into() }
    }

    #[test]
    fn default_policy_names() {
        let p = default();
        assert_eq!(p.format_remote_topic("us-west", "orders"), "us-west.orders");
        assert_eq!(p.topic_source("us-west.orders").as_deref(), Some("us-west"));
        assert_eq!(p.upstream_topic("us-west.orders").as_deref(), Some("orders"));
        assert_eq!(p.topic_source("orders"), None);
        assert_eq!(p.original_topic("b.a.heartbeats"), "heartbeats");
        assert!(p.is_heartbeats_topic("a.heartbeats") && p.is_heartbeats_topic("heartbeats"));
        assert_eq!(ReplicationPolicy::offset_syncs_topic("backup"), "mm2-offset-syncs.backup.internal");
        assert_eq!(ReplicationPolicy::checkpoints_topic("primary"), "primary.checkpoints.internal");
        let dash = ReplicationPolicy::Default { separator: "_".into() };
        assert_eq!(dash.format_remote_topic("a", "t.x"), "a_t.x");
        assert_eq!(dash.upstream_topic("a_t.x").as_deref(), Some("t.x"));
    }

    #[test]
    fn cycles_are_detected() {
        let p = default();
        // replicating a -> b: a topic on a that came from b must not go back
        assert!(p.is_cycle("b.orders", "b"));
        assert!(p.is_cycle("c.b.orders", "b"), "further upstream");
        assert!(!p.is_cycle("c.orders", "b"));
        assert!(!p.is_cycle("orders", "b"));
    }

    #[test]
    fn identity_policy() {
        let p = ReplicationPolicy::Identity { separator: ".".into() };
        assert_eq!(p.format_remote_topic("a", "orders"), "orders");
        assert_eq!(p.format_remote_topic("a", "heartbeats"), "a.heartbeats");
        assert_eq!(p.topic_source("b.orders"), None, "identity names say nothing of their source");
        assert!(p.is_cycle("b.heartbeats", "b"));
    }

    #[test]
    fn source_connector_topic_choice() {
        let c = MirrorConfig::from_text("clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1\na->b.enabled=true\nb->a.enabled=true\ntopics=orders.*").unwrap();
        let ab = &c.flows[0].settings;
        assert!(should_replicate_topic(ab, "orders", "b"));
        assert!(!should_replicate_topic(ab, "payments", "b"), "not admitted by topics");
        assert!(should_replicate_topic(ab, "heartbeats", "b"), "heartbeats always");
        assert!(!should_replicate_topic(ab, "b.heartbeats", "b"), "b's own heartbeats would loop");
        assert!(!should_replicate_topic(ab, "b.orders", "b"), "cycle");
        assert!(!should_replicate_topic(ab, "mm2-offset-syncs.b.internal", "b"));
        assert!(!should_replicate_topic(ab, "__consumer_offsets", "b"));
        assert!(should_checkpoint_group(ab, "billing"));
        assert!(!should_checkpoint_group(ab, "console-consumer-1"));
    }
}
