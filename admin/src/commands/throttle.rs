//! Replication throttles around a rebalance, as kafka-reassign-partitions.sh --throttle sets
//! them: each moving partition's current replicas listed in the topic's
//! `leader.replication.throttled.replicas`, its new replicas in
//! `follower.replication.throttled.replicas`, and `leader.replication.throttled.rate` /
//! `follower.replication.throttled.rate` on every broker involved. Only replicas that are not
//! in sync are held back, so producers and in-sync followers are not.
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use lantern_broker::controller::rebalance::Move;

use crate::client::Client;
use crate::view::error_name;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
pub const TOPIC_KEYS: [&str; 2] = ["leader.replication.throttled.replicas", "follower.replication.throttled.replicas"];
pub const BROKER_KEYS: [&str; 2] = ["leader.replication.throttled.rate", "follower.replication.throttled.rate"];

fn config(name: &str, op: i8, value: Option<String>) -> AlterableConfig {
    AlterableConfig::default().with_name(StrBytes::from_string(name.to_string())).with_config_operation(op).with_value(value.map(StrBytes::from_string))
}

fn resource(kind: i8, name: String, configs: Vec<AlterableConfig>) -> AlterConfigsResource {
    AlterConfigsResource::default().with_resource_type(kind).with_resource_name(StrBytes::from_string(name)).with_configs(configs)
}

fn send(client: &mut Client, resources: Vec<AlterConfigsResource>) -> Result<()> {
    if resources.is_empty() {
        return Ok(());
    }
    let request = IncrementalAlterConfigsRequest::default().with_resources(resources);
    let response: IncrementalAlterConfigsResponse = client.send_any(ApiKey::IncrementalAlterConfigs, 1, &request)?;
    let failed: Vec<String> = response
        .responses
        .iter()
        .filter(|r| r.error_code != 0)
        .map(|r| format!("{}: {} {}", r.resource_name.as_str(), error_name(r.error_code), r.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default()))
        .collect();
    if !failed.is_empty() {
        bail!("setting replication throttles failed: {}", failed.join("; "));
    }
    Ok(())
}

/// Sets the throttle for `moves` at `rate` bytes a second.
pub fn set(client: &mut Client, moves: &[Move], rate: u64) -> Result<()> {
    let mut leader: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut follower: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut brokers: BTreeSet<i32> = BTreeSet::new();
    for m in moves {
        for r in &m.from {
            leader.entry(&m.topic).or_default().push(format!("{}:{r}", m.partition));
            brokers.insert(*r);
        }
        for r in m.to.iter().filter(|r| !m.from.contains(r)) {
            follower.entry(&m.topic).or_default().push(format!("{}:{r}", m.partition));
            brokers.insert(*r);
        }
    }
    let topics: BTreeSet<&str> = leader.keys().chain(follower.keys()).copied().collect();
    let mut resources = Vec::new();
    for t in topics {
        let mut configs = Vec::new();
        for (key, lists) in [(TOPIC_KEYS[0], &leader), (TOPIC_KEYS[1], &follower)] {
            match lists.get(t) {
                Some(l) => configs.push(config(key, SET, Some(l.join(",")))),
                None => configs.push(config(key, DELETE, None)),
            }
        }
        resources.push(resource(RESOURCE_TOPIC, t.to_string(), configs));
    }
    for b in brokers {
        resources.push(resource(RESOURCE_BROKER, b.to_string(), BROKER_KEYS.iter().map(|k| config(k, SET, Some(rate.to_string()))).collect()));
    }
    send(client, resources)
}

/// Removes the throttle lists from `topics` and the rates from `brokers`.
pub fn clear(client: &mut Client, topics: &BTreeSet<String>, brokers: &BTreeSet<i32>) -> Result<()> {
    let mut resources: Vec<AlterConfigsResource> =
        topics.iter().map(|t| resource(RESOURCE_TOPIC, t.clone(), TOPIC_KEYS.iter().map(|k| config(k, DELETE, None)).collect())).collect();
    resources.extend(brokers.iter().map(|b| resource(RESOURCE_BROKER, b.to_string(), BROKER_KEYS.iter().map(|k| config(k, DELETE, None)).collect())));
    send(client, resources)
}
