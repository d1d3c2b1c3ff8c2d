//! Topic administration on both clusters through librdkafka's admin client: listing source
//! topics, creating target topics with the source's partition count, adding partitions, and
//! syncing topic configs as MM2's DefaultConfigPropertyFilter does (the source topic's own
//! settings, not its defaults, minus the ones a target must decide for itself).
use std::collections::BTreeMap;
use std::time::Duration;

use futures_executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::RDKafkaErrorCode;

pub const TIMEOUT: Duration = Duration::from_secs(15);

/// MM2's DefaultConfigPropertyFilter exclusions.
const NOT_SYNCED: &[&str] = &[
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "unclean.leader.election.enable",
    "min.insync.replicas",
];

pub fn config_is_synced(name: &str) -> bool {
    !NOT_SYNCED.contains(&name)
}

/// Topic name -> partition count, from a metadata request.
pub fn list_topics<C: ClientContext>(client: &Client<C>) -> Result<BTreeMap<String, i32>, String> {
    let md = client.fetch_metadata(None, TIMEOUT).map_err(|e| format!("metadata: {e}"))?;
    Ok(md.topics().iter().filter(|t| t.error().is_none()).map(|t| (t.name().to_string(), t.partitions().len() as i32)).collect())
}

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(TIMEOUT)).request_timeout(Some(TIMEOUT))
}

/// Creates `name` unless it exists. `configs` are set at creation.
pub fn create_topic<C: ClientContext + 'static>(admin: &AdminClient<C>, name: &str, partitions: i32, rf: i32, configs: &[(String, String)]) -> Result<bool, String> {
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = block_on(admin.create_topics(&[t], &opts())).map_err(|e| format!("create topic {name}: {e}"))?;
    match res.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((_, code))) => Err(format!("create topic {name} ({partitions} partitions, replication factor {rf}): {code}")),
        None => Err(format!("create topic {name}: no result")),
    }
}

pub fn add_partitions<C: ClientContext + 'static>(admin: &AdminClient<C>, name: &str, total: i32) -> Result<(), String> {
    let p = NewPartitions::new(name, total.max(1) as usize);
    let res = block_on(admin.create_partitions(&[p], &opts())).map_err(|e| format!("create partitions {name}: {e}"))?;
    match res.into_iter().next() {
        Some(Ok(_)) | None => Ok(()),
        Some(Err((_, code))) => Err(format!("create partitions {name} -> {total}: {code}")),
    }
}

/// The topic's settings that were set on it (not defaults), minus MM2's exclusions.
pub fn synced_configs<C: ClientContext + 'static>(admin: &AdminClient<C>, name: &str) -> Result<Vec<(String, String)>, String> {
    let res = block_on(admin.describe_configs(&[ResourceSpecifier::Topic(name)], &opts())).map_err(|e| format!("describe configs {name}: {e}"))?;
    let resource = match res.into_iter().next() {
        Some(Ok(r)) => r,
        Some(Err(code)) => return Err(format!("describe configs {name}: {code}")),
        None => return Ok(Vec::new()),
    };
    Ok(resource
        .entries
        .into_iter()
        .filter(|e| matches!(e.source, ConfigSource::DynamicTopic) && !e.is_sensitive && config_is_synced(&e.name))
        .filter_map(|e| e.value.map(|v| (e.name, v)))
        .collect())
}

/// Sets `configs` on the target topic (AlterConfigs: the topic's dynamic settings become
/// exactly these), when they differ from what it has.
pub fn sync_configs<C: ClientContext + 'static>(admin: &AdminClient<C>, name: &str, configs: &[(String, String)]) -> Result<bool, String> {
    let current = synced_configs(admin, name)?;
    let mut want = configs.to_vec();
    want.sort();
    let mut have = current;
    have.sort();
    if want == have {
        return Ok(false);
    }
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(name));
    for (k, v) in &want {
        alter = alter.set(k, v);
    }
    let res = block_on(admin.alter_configs(&[alter], &opts())).map_err(|e| format!("alter configs {name}: {e}"))?;
    match res.into_iter().next() {
        Some(Err((_, code))) => Err(format!("alter configs {name}: {code}")),
        _ => Ok(true),
    }
}

/// MM2's internal topics: one partition, compacted.
pub fn create_internal_topic<C: ClientContext + 'static>(admin: &AdminClient<C>, name: &str, rf: i32) -> Result<(), String> {
    create_topic(admin, name, 1, rf, &[("cleanup.policy".into(), "compact".into())]).map(|_| ())
}

#[cfg(test)]
mod tests {
    #[test]
    fn mm2_exclusions() {
        assert!(!super::config_is_synced("min.insync.replicas"));
        assert!(!super::config_is_synced("message.timestamp.type"));
        assert!(super::config_is_synced("retention.ms"));
        assert!(super::config_is_synced("cleanup.policy"));
    }
}
