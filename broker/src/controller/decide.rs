//! The active controller's decisions: a request checked against the current image becomes the
//! records to write, or a refusal. Pure: the image, the random seed and the new ids come in,
//! records go out; nothing here does I/O.
use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::image::MetadataImage;
use super::placement::{self, Candidate, Seed};
use super::records::{ConfigResource, MetadataRecord};
use super::requests::{ConfigOp, ControllerError};
use crate::cluster::topic_config::{validate_topic_config, validate_topic_configs};
use crate::error_code;

/// Partitions one topic may have; a CreateTopics asking for more is refused rather than
/// creating millions of directories.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// The brokers new replicas may go to: unfenced and not shutting down (Kafka's usable
/// brokers, KIP-841).
fn candidates(image: &MetadataImage) -> Vec<Candidate> {
    image.live_brokers().filter(|b| !b.in_controlled_shutdown).map(|b| Candidate { id: b.id, rack: b.rack.clone() }).collect()
}

/// Checks explicit replica assignments: every list the same length, distinct, registered
/// brokers.
fn check_assignments(image: &MetadataImage, lists: &[Vec<i32>]) -> Result<usize, ControllerError> {
    let bad = |m: String| Err(ControllerError::InvalidReplicaAssignment(m));
    let Some(first) = lists.first() else { return bad("the replica assignment lists no partitions".into()) };
    let rf = first.len();
    for (i, l) in lists.iter().enumerate() {
        if l.is_empty() || l.len() != rf {
            return bad(format!("partition {i} lists {} replicas; every partition needs the same number (at least 1)", l.len()));
        }
        if l.iter().collect::<BTreeSet<_>>().len() != l.len() {
            return bad(format!("partition {i} lists a broker twice: {l:?}"));
        }
        if let Some(b) = l.iter().find(|b| !image.brokers.contains_key(b)) {
            return bad(format!("partition {i} names broker {b}, which is not registered"));
        }
    }
    Ok(rf)
}

fn partition_records(topic_id: Uuid, first: usize, lists: Vec<Vec<i32>>, image: &MetadataImage) -> impl Iterator<Item = MetadataRecord> + '_ {
    lists.into_iter().enumerate().map(move |(i, replicas)| {
        // The first live replica leads; the ISR starts as every live replica, as in Kafka
        // (an empty log is in sync by definition; a follower that then falls behind leaves it).
        // A broker shutting down neither leads nor joins the ISR, unless it is all there is
        // (an explicit assignment to it alone).
        let eligible: Vec<i32> = replicas.iter().copied().filter(|r| image.is_isr_eligible(*r)).collect();
        let live: Vec<i32> = replicas.iter().copied().filter(|r| image.is_live(*r)).collect();
        let chosen = if eligible.is_empty() { live } else { eligible };
        let leader = chosen.first().copied().unwrap_or(-1);
        let isr = if chosen.is_empty() { vec![replicas[0]] } else { chosen };
        MetadataRecord::Partition { topic_id, partition: (first + i) as i32, replicas, isr, leader }
    })
}

/// CreateTopics for one topic (partitions and replication factor already defaulted).
#[allow(clippy::too_many_arguments)]
pub fn create_topic(
    image: &MetadataImage,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    assignments: Option<&[Vec<i32>]>,
    configs: &BTreeMap<String, String>,
    topic_id: Uuid,
    seed: Seed,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    validate_topic_name(name)?;
    if image.topics.contains_key(name) {
        return Err(ControllerError::TopicExists(name.to_string()));
    }
    if let Some(other) = image.topics.keys().find(|t| collides(t, name)) {
        return Err(ControllerError::InvalidTopic {
            name: name.to_string(),
            reason: format!("it collides with existing topic '{other}' ('.' and '_' are treated alike in metric names)"),
        });
    }
    for (k, v) in configs {
        validate_topic_config(k, v).map_err(ControllerError::InvalidConfig)?;
    }
    validate_topic_configs(configs).map_err(ControllerError::InvalidConfig)?;
    let lists = match assignments {
        Some(lists) => {
            check_assignments(image, lists)?;
            if lists.len() > MAX_PARTITIONS_PER_TOPIC as usize {
                return Err(ControllerError::InvalidPartitions(format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic")));
            }
            lists.to_vec()
        }
        None => {
            if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
                return Err(ControllerError::InvalidPartitions(format!(
                    "number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}, got {partitions}"
                )));
            }
            let brokers = candidates(image);
            let live = brokers.len();
            if replication_factor < 1 || replication_factor as usize > live {
                return Err(ControllerError::InvalidReplicationFactor(format!(
                    "replication factor {replication_factor} is larger than the {live} available broker(s); use at most {live} or add brokers"
                )));
            }
            placement::assign(&brokers, partitions as usize, replication_factor as usize, 0, seed)
        }
    };
    let mut records = vec![MetadataRecord::Topic { name: name.to_string(), topic_id }];
    records.extend(partition_records(topic_id, 0, lists, image));
    for (k, v) in configs {
        records.push(MetadataRecord::Config { resource: ConfigResource::Topic, name: name.to_string(), key: k.clone(), value: Some(v.clone()) });
    }
    Ok(records)
}

pub fn delete_topic(image: &MetadataImage, name: &str) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image.topic(name).ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
    Ok(vec![MetadataRecord::RemoveTopic { topic_id: topic.id }])
}

/// CreatePartitions: grows `name` to `count` partitions with the replication factor it has.
pub fn create_partitions(
    image: &MetadataImage,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    seed: Seed,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image.topic(name).ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
    let current = topic.partitions.len() as i32;
    if count <= current {
        return Err(ControllerError::InvalidPartitions(format!(
            "topic '{name}' has {current} partitions; the new count {count} must be larger (partitions cannot be removed)"
        )));
    }
    if count > MAX_PARTITIONS_PER_TOPIC {
        return Err(ControllerError::InvalidPartitions(format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic, asked for {count}")));
    }
    let rf = topic.partitions.first().map_or(1, |p| p.replicas.len());
    let added = (count - current) as usize;
    let lists = match assignments {
        Some(lists) => {
            if lists.len() != added {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "{} assignments given for {added} new partitions",
                    lists.len()
                )));
            }
            if check_assignments(image, lists)? != rf {
                return Err(ControllerError::InvalidReplicaAssignment(format!("the topic's replication factor is {rf}")));
            }
            lists.to_vec()
        }
        None => {
            let brokers = candidates(image);
            if rf > brokers.len() {
                return Err(ControllerError::InvalidReplicationFactor(format!(
                    "the topic's replication factor {rf} is larger than the {} available broker(s)",
                    brokers.len()
                )));
            }
            placement::assign(&brokers, added, rf, current as usize, seed)
        }
    };
    Ok(partition_records(topic.id, current as usize, lists, image).collect())
}

pub fn alter_topic_configs(image: &MetadataImage, name: &str, ops: &[ConfigOp]) -> Result<Vec<MetadataRecord>, ControllerError> {
    let Some(topic) = image.topic(name) else {
        return Err(ControllerError::UnknownTopic(name.to_string()));
    };
    let mut records = Vec::with_capacity(ops.len());
    let expanded = expand_delete_unlisted(ops, topic.configs.keys());
    for op in &expanded {
        let (key, value) = match op {
            ConfigOp::Set(k, v) => {
                validate_topic_config(k, v).map_err(ControllerError::InvalidConfig)?;
                (k.clone(), Some(v.clone()))
            }
            ConfigOp::Delete(k) => (k.clone(), None),
            ConfigOp::DeleteUnlisted => continue,
            ConfigOp::Append(k, items) | ConfigOp::Subtract(k, items) => {
                use crate::cluster::topic_config::{list_after, LIST_TOPIC_CONFIGS};
                let Some((_, default)) = LIST_TOPIC_CONFIGS.iter().find(|(n, _)| n == k) else {
                    return Err(ControllerError::InvalidConfig(format!(
                        "{k}: APPEND and SUBTRACT apply only to list-valued configs ({}); use SET",
                        LIST_TOPIC_CONFIGS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    )));
                };
                let current = topic.configs.get(k.as_str()).map_or(*default, String::as_str);
                let v = list_after(current, items, matches!(op, ConfigOp::Append(..)));
                validate_topic_config(k, &v).map_err(ControllerError::InvalidConfig)?;
                (k.clone(), Some(v))
            }
        };
        records.push(MetadataRecord::Config { resource: ConfigResource::Topic, name: name.to_string(), key, value });
    }
    // The topic's configs as they would be after these changes, checked together.
    let mut after = topic.configs.clone();
    for r in &records {
        if let MetadataRecord::Config { key, value, .. } = r {
            match value {
                Some(v) => after.insert(key.clone(), v.clone()),
                None => after.remove(key),
            };
        }
    }
    validate_topic_configs(&after).map_err(ControllerError::InvalidConfig)?;
    Ok(records)
}

/// With [`ConfigOp::DeleteUnlisted`] among `ops`: the ops plus a Delete of every `current`
/// config that no op sets (the legacy AlterConfigs replaces the whole set).
fn expand_delete_unlisted<'a>(ops: &[ConfigOp], current: impl Iterator<Item = &'a String>) -> Vec<ConfigOp> {
    let mut out = ops.to_vec();
    if ops.iter().any(|op| matches!(op, ConfigOp::DeleteUnlisted)) {
        let set = |k: &String| ops.iter().any(|op| matches!(op, ConfigOp::Set(n, _) if n == k));
        out.extend(current.filter(|k| !set(k)).map(|k| ConfigOp::Delete(k.clone())));
    }
    out
}

/// Broker configs that may change at run time (IncrementalAlterConfigs on a broker resource);
/// the rest are static (flags, environment, config file).
pub const DYNAMIC_BROKER_CONFIGS: &[&str] = &["leader.replication.throttled.rate", "follower.replication.throttled.rate"];

/// IncrementalAlterConfigs on a broker (`name` its id) or on the cluster-wide default (`name`
/// ""): only the dynamic configs, as byte rates of 0 or more.
pub fn alter_broker_configs(image: &MetadataImage, name: &str, ops: &[ConfigOp]) -> Result<Vec<MetadataRecord>, ControllerError> {
    if !name.is_empty() {
        let id: i32 = name.parse().map_err(|_| ControllerError::InvalidRequest(format!("'{name}' is not a broker id")))?;
        if !image.brokers.contains_key(&id) {
            return Err(ControllerError::BrokerNotRegistered(id));
        }
    }
    let mut records = Vec::with_capacity(ops.len());
    let current = image.broker_configs.get(name).into_iter().flat_map(|c| c.keys());
    let expanded = expand_delete_unlisted(ops, current);
    for op in &expanded {
        let (key, value) = match op {
            ConfigOp::Set(k, v) => (k, Some(v.clone())),
            ConfigOp::Delete(k) => (k, None),
            ConfigOp::DeleteUnlisted => continue,
            ConfigOp::Append(k, _) | ConfigOp::Subtract(k, _) => {
                return Err(ControllerError::InvalidConfig(format!("{k}: APPEND and SUBTRACT apply only to list-valued configs; use SET")));
            }
        };
        if !DYNAMIC_BROKER_CONFIGS.contains(&key.as_str()) {
            // Kafka's answer for a config that cannot change at run time: INVALID_REQUEST.
            return Err(ControllerError::InvalidRequest(format!(
                "{key} cannot be changed at run time (dynamic broker configs: {}); set it with a flag, a LANTERN_* variable or the config file and restart",
                DYNAMIC_BROKER_CONFIGS.join(", ")
            )));
        }
        if let Some(v) = &value {
            if !v.trim().parse::<i64>().is_ok_and(|n| n >= 0) {
                return Err(ControllerError::InvalidConfig(format!("{key}={v}: a rate in bytes a second, 0 or more")));
            }
        }
        records.push(MetadataRecord::Config { resource: ConfigResource::Broker, name: name.to_string(), key: key.clone(), value });
    }
    Ok(records)
}

/// `auto.rebalance.on.broker.join`: when `broker` has just joined holding no replica, the
/// reassignments that spread existing partitions onto it (the rebalance plan over the usable
/// brokers; sizes unknown to the controller count as equal). Nothing while another
/// reassignment is in progress: an operator's moves are not overridden.
pub fn rebalance_on_broker_join(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    use super::rebalance;
    let partitions: Vec<(&super::TopicImage, usize, &super::PartitionImage)> =
        image.topics.values().flat_map(|t| t.partitions.iter().enumerate().map(move |(i, p)| (t, i, p))).collect();
    if partitions.iter().any(|(_, _, p)| p.replicas.contains(&broker) || p.is_reassigning()) {
        return Vec::new();
    }
    let brokers: Vec<rebalance::Broker> = candidates(image).into_iter().map(|c| rebalance::Broker { id: c.id, rack: c.rack }).collect();
    if !brokers.iter().any(|b| b.id == broker) {
        return Vec::new();
    }
    let loads: Vec<rebalance::PartitionLoad> = partitions
        .iter()
        .map(|(t, i, p)| rebalance::PartitionLoad { topic: t.name.clone(), partition: *i as i32, replicas: p.replicas.clone(), bytes: 0 })
        .collect();
    let plan = rebalance::plan(&brokers, &BTreeSet::new(), &loads);
    let asks: Vec<(String, i32, Option<Vec<i32>>)> = plan.moves.into_iter().map(|m| (m.topic, m.partition, Some(m.to))).collect();
    alter_reassignments(image, &asks, true, &|_| false).0
}

/// One partition's answer to AlterPartitionReassignments: (topic, partition, error code,
/// message).
pub type ReassignmentResult = (String, i32, i16, Option<String>);

/// AlterPartitionReassignments (KIP-455): for each partition a target replica list, or `None`
/// to cancel. Each partition succeeds or fails on its own; the records of those that succeed
/// are written together. `unclean` says whether a topic allows unclean leader election (a
/// cancel may need it). Partitions are decided in order on a working copy of the image, so a
/// partition named twice gets the second request on top of the first.
pub fn alter_reassignments(
    image: &MetadataImage,
    partitions: &[(String, i32, Option<Vec<i32>>)],
    allow_replication_factor_change: bool,
    unclean: &dyn Fn(&super::TopicImage) -> bool,
) -> (Vec<MetadataRecord>, Vec<ReassignmentResult>) {
    use super::reassignment::{self, Refusal};
    let mut work = image.clone();
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(partitions.len());
    for (topic, index, target) in partitions {
        let Some(t) = work.topic(topic) else {
            results.push((topic.clone(), *index, error_code::UNKNOWN_TOPIC_OR_PARTITION, Some(format!("topic '{topic}' does not exist"))));
            continue;
        };
        let Some(p) = usize::try_from(*index).ok().and_then(|i| t.partitions.get(i)) else {
            results.push((topic.clone(), *index, error_code::UNKNOWN_TOPIC_OR_PARTITION, Some(format!("topic '{topic}' has no partition {index}"))));
            continue;
        };
        let can_lead = |b: i32| work.is_isr_eligible(b);
        let decided = match target {
            Some(target) => reassignment::check_target(target, &|b| work.brokers.contains_key(&b))
                .and_then(|()| reassignment::alter(p, target, allow_replication_factor_change, &can_lead)),
            None => reassignment::cancel(p, unclean(t), &can_lead),
        };
        match decided {
            Ok(next) => {
                if let Some(record) = next.record(p, t.id, *index) {
                    let offset = work.last_offset;
                    let _ = work.apply(&record, offset, 0);
                    records.push(record);
                }
                results.push((topic.clone(), *index, 0, None));
            }
            Err(refusal) => {
                let (code, message) = match refusal {
                    Refusal::NoReassignmentInProgress => {
                        (error_code::NO_REASSIGNMENT_IN_PROGRESS, format!("no reassignment of {topic}-{index} is in progress"))
                    }
                    Refusal::InvalidAssignment(m) => (error_code::INVALID_REPLICA_ASSIGNMENT, m),
                    Refusal::ReplicationFactorChange { current, target } => (
                        error_code::INVALID_REPLICATION_FACTOR,
                        format!("the target has {target} replicas, the partition {current}; the request does not allow a replication factor change"),
                    ),
                };
                results.push((topic.clone(), *index, code, Some(message)));
            }
        }
    }
    (records, results)
}

/// UnregisterBroker: the broker's registration goes (its leaderships move first, as when it is
/// fenced). Refused while it holds a replica: its data would be lost to the cluster; drain it
/// first (a reassignment moves its replicas away).
pub fn unregister_broker(image: &MetadataImage, broker_id: i32) -> Result<Vec<MetadataRecord>, ControllerError> {
    let Some(reg) = image.brokers.get(&broker_id) else { return Err(ControllerError::BrokerNotRegistered(broker_id)) };
    let held: Vec<String> = image
        .topics
        .values()
        .flat_map(|t| t.partitions.iter().enumerate().filter(|(_, p)| p.replicas.contains(&broker_id)).map(move |(i, _)| format!("{}-{i}", t.name)))
        .collect();
    if !held.is_empty() {
        let shown: Vec<&str> = held.iter().take(10).map(String::as_str).collect();
        return Err(ControllerError::InvalidRequest(format!(
            "broker {broker_id} still holds {} replicas ({}{}); move them away first (lantern-admin broker drain {broker_id})",
            held.len(),
            shown.join(", "),
            if held.len() > shown.len() { ", ..." } else { "" }
        )));
    }
    let mut records = super::election::on_broker_fenced(image, broker_id);
    records.push(MetadataRecord::UnregisterBroker { broker_id, broker_epoch: reg.epoch });
    Ok(records)
}

fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let bad = |reason: &str| Err(ControllerError::InvalidTopic { name: name.to_string(), reason: reason.to_string() });
    if name == crate::log::log_manager::METADATA_TOPIC {
        // Kafka refuses it too: it is the metadata quorum's own log.
        return Err(ControllerError::InvalidRequest(format!("creation of the internal topic {name} is prohibited")));
    }
    if name.is_empty() {
        return bad("it is empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > 249 {
        return bad("it is longer than 249 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::image::BrokerRegistration;

    const SEED: Seed = Seed { start_index: 0, replica_shift: 0 };

    fn cluster(n: i32) -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in 1..=n {
            img.brokers.insert(id, BrokerRegistration { id, epoch: 1, incarnation_id: Uuid::nil(), endpoints: vec![], rack: None, fenced: false, in_controlled_shutdown: false });
        }
        img
    }

    fn apply(img: &mut MetadataImage, recs: Vec<MetadataRecord>) {
        for r in recs {
            img.apply(&r, 1, 0).unwrap();
        }
    }

    #[test]
    fn a_broker_in_controlled_shutdown_gets_no_new_replicas_and_leads_nothing_new() {
        let mut img = cluster(3);
        img.brokers.get_mut(&2).unwrap().in_controlled_shutdown = true;
        let recs = create_topic(&img, "t", 6, 2, None, &BTreeMap::new(), Uuid::new_v4(), SEED).unwrap();
        apply(&mut img, recs);
        for p in &img.topic("t").unwrap().partitions {
            assert!(!p.replicas.contains(&2), "{p:?}");
        }
        assert_eq!(create_topic(&img, "three", 1, 3, None, &BTreeMap::new(), Uuid::new_v4(), SEED).unwrap_err().code(), 38);
        // Assigned to it explicitly: it is a replica, but another leads and it is not in the ISR.
        let recs = create_topic(&img, "x", 1, 2, Some(&[vec![2, 3]]), &BTreeMap::new(), Uuid::new_v4(), SEED).unwrap();
        apply(&mut img, recs);
        let p = &img.topic("x").unwrap().partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (3, vec![3]));
    }

    #[test]
    fn create_spreads_leaders_and_refuses_what_kafka_refuses() {
        let mut img = cluster(3);
        let recs = create_topic(&img, "orders", 12, 1, None, &BTreeMap::new(), Uuid::new_v4(), SEED).unwrap();
        apply(&mut img, recs);
        let leaders: BTreeSet<i32> = img.topic("orders").unwrap().partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders, [1, 2, 3].into());
        let e = |r: Result<Vec<MetadataRecord>, ControllerError>| r.unwrap_err().code();
        let none = BTreeMap::new();
        assert_eq!(e(create_topic(&img, "orders", 1, 1, None, &none, Uuid::new_v4(), SEED)), 36);
        assert_eq!(e(create_topic(&img, "x", 1, 4, None, &none, Uuid::new_v4(), SEED)), 38);
        assert_eq!(e(create_topic(&img, "a/b", 1, 1, None, &none, Uuid::new_v4(), SEED)), 17);
        assert_eq!(e(create_topic(&img, "__cluster_metadata", 1, 1, None, &none, Uuid::new_v4(), SEED)), 42);
        assert_eq!(e(create_topic(&img, "big", i32::MAX, 1, None, &none, Uuid::new_v4(), SEED)), 37);
        assert_eq!(e(create_topic(&img, "x", 1, 1, Some(&[vec![1, 1]]), &none, Uuid::new_v4(), SEED)), 39);
        assert_eq!(e(create_topic(&img, "x", 1, 1, Some(&[vec![9]]), &none, Uuid::new_v4(), SEED)), 39);
        assert_eq!(e(create_partitions(&img, "orders", 12, None, SEED)), 37);
        let recs = create_partitions(&img, "orders", 14, None, SEED).unwrap();
        apply(&mut img, recs);
        assert_eq!(img.topic("orders").unwrap().partitions.len(), 14);
    }

    #[test]
    fn reassignments_are_decided_per_partition() {
        let mut img = cluster(4);
        let recs = create_topic(&img, "t", 2, 2, Some(&[vec![1, 2], vec![2, 3]]), &BTreeMap::new(), Uuid::new_v4(), SEED).unwrap();
        apply(&mut img, recs);
        let asks = vec![
            ("t".to_string(), 0, Some(vec![3, 4])),
            ("t".to_string(), 1, None),
            ("t".to_string(), 7, Some(vec![1])),
            ("nope".to_string(), 0, None),
            ("t".to_string(), 1, Some(vec![1, 9])),
        ];
        let (recs, results) = alter_reassignments(&img, &asks, true, &|_| false);
        let codes: Vec<i16> = results.iter().map(|r| r.2).collect();
        assert_eq!(codes, vec![0, error_code::NO_REASSIGNMENT_IN_PROGRESS, 3, 3, error_code::INVALID_REPLICA_ASSIGNMENT]);
        assert_eq!(recs.len(), 1);
        apply(&mut img, recs);
        let p = img.partition("t", 0).unwrap();
        assert_eq!((p.replicas.clone(), p.adding_replicas.clone(), p.removing_replicas.clone()), (vec![3, 4, 1, 2], vec![3, 4], vec![1, 2]));
        // Cancel now works; the same partition twice in one request builds on the first.
        let (recs, results) = alter_reassignments(&img, &[("t".into(), 0, None), ("t".into(), 0, Some(vec![2, 1]))], true, &|_| false);
        assert!(results.iter().all(|r| r.2 == 0), "{results:?}");
        apply(&mut img, recs);
        let p = img.partition("t", 0).unwrap();
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.is_reassigning()), (vec![2, 1], vec![2, 1], false));
    }

    #[test]
    fn legacy_alter_configs_replaces_the_whole_set() {
        let mut img = cluster(1);
        let recs = create_topic(&img, "t", 1, 1, None, &BTreeMap::new(), Uuid::new_v4(), SEED).unwrap();
        apply(&mut img, recs);
        let set = |k: &str, v: &str| ConfigOp::Set(k.into(), v.into());
        let recs = alter_topic_configs(&img, "t", &[set("retention.ms", "1000"), set("cleanup.policy", "compact")]).unwrap();
        apply(&mut img, recs);
        let recs = alter_topic_configs(&img, "t", &[set("retention.bytes", "5"), ConfigOp::DeleteUnlisted]).unwrap();
        apply(&mut img, recs);
        let configs: Vec<(String, String)> = img.topic("t").unwrap().configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(configs, vec![("retention.bytes".to_string(), "5".to_string())], "what the request does not set goes back to its default");
        let recs = alter_broker_configs(&img, "1", &[set("leader.replication.throttled.rate", "10")]).unwrap();
        apply(&mut img, recs);
        let recs = alter_broker_configs(&img, "1", &[ConfigOp::DeleteUnlisted]).unwrap();
        apply(&mut img, recs);
        assert!(img.broker_configs.get("1").is_none_or(|c| c.is_empty()));
    }

    #[test]
    fn append_and_subtract_change_list_configs_from_their_current_value_or_kafkas_default() {
        let mut img = cluster(1);
        let recs = create_topic(&img, "t", 1, 1, None, &BTreeMap::new(), Uuid::new_v4(), SEED).unwrap();
        apply(&mut img, recs);
        let policy = |img: &MetadataImage| img.topic("t").unwrap().configs.get("cleanup.policy").cloned();
        let append = |k: &str, v: &str| vec![ConfigOp::Append(k.into(), v.into())];
        let subtract = |k: &str, v: &str| vec![ConfigOp::Subtract(k.into(), v.into())];
        // No override yet: APPEND starts from Kafka's default, delete.
        let recs = alter_topic_configs(&img, "t", &append("cleanup.policy", "compact")).unwrap();
        apply(&mut img, recs);
        assert_eq!(policy(&img).as_deref(), Some("delete,compact"));
        let recs = alter_topic_configs(&img, "t", &append("cleanup.policy", "compact,delete")).unwrap();
        apply(&mut img, recs);
        assert_eq!(policy(&img).as_deref(), Some("delete,compact"), "nothing added twice");
        let recs = alter_topic_configs(&img, "t", &subtract("cleanup.policy", "delete")).unwrap();
        apply(&mut img, recs);
        assert_eq!(policy(&img).as_deref(), Some("compact"));
        // Emptied, cleanup.policy is "" (neither delete nor compact), as Kafka 3.9 accepts it;
        // a config that is not a list refuses both.
        let recs = alter_topic_configs(&img, "t", &subtract("cleanup.policy", "compact")).unwrap();
        apply(&mut img, recs);
        assert_eq!(policy(&img).as_deref(), Some(""));
        assert_eq!(alter_topic_configs(&img, "t", &append("retention.ms", "1")).unwrap_err().code(), error_code::INVALID_CONFIG);
        assert_eq!(alter_broker_configs(&img, "1", &append("leader.replication.throttled.rate", "1")).unwrap_err().code(), error_code::INVALID_CONFIG);
        let recs = alter_topic_configs(&img, "t", &append("leader.replication.throttled.replicas", "0:1,1:1")).unwrap();
        apply(&mut img, recs);
        let recs = alter_topic_configs(&img, "t", &subtract("leader.replication.throttled.replicas", "0:1")).unwrap();
        apply(&mut img, recs);
        assert_eq!(img.topic("t").unwrap().configs.get("leader.replication.throttled.replicas").map(String::as_str), Some("1:1"));
    }

    #[test]
    fn only_the_throttle_rates_are_dynamic_broker_configs() {
        let mut img = cluster(2);
        let set = |k: &str, v: &str| vec![ConfigOp::Set(k.into(), v.into())];
        let recs = alter_broker_configs(&img, "1", &set("leader.replication.throttled.rate", "1000")).unwrap();
        apply(&mut img, recs);
        let recs = alter_broker_configs(&img, "", &set("leader.replication.throttled.rate", "5000")).unwrap();
        apply(&mut img, recs);
        assert_eq!(img.dynamic_broker_config(1, "leader.replication.throttled.rate"), Some("1000"));
        assert_eq!(img.dynamic_broker_config(2, "leader.replication.throttled.rate"), Some("5000"), "the cluster default");
        assert_eq!(alter_broker_configs(&img, "1", &set("num.partitions", "3")).unwrap_err().code(), error_code::INVALID_REQUEST);
        assert_eq!(alter_broker_configs(&img, "1", &set("leader.replication.throttled.rate", "-1")).unwrap_err().code(), error_code::INVALID_CONFIG);
        assert_eq!(alter_broker_configs(&img, "9", &set("leader.replication.throttled.rate", "1")).unwrap_err().code(), error_code::BROKER_ID_NOT_REGISTERED);
        let recs = alter_broker_configs(&img, "1", &[ConfigOp::Delete("leader.replication.throttled.rate".into())]).unwrap();
        apply(&mut img, recs);
        assert_eq!(img.dynamic_broker_config(1, "leader.replication.throttled.rate"), Some("5000"));
        assert!(!img.broker_configs.contains_key("1"), "an emptied broker entry goes");
    }

    #[test]
    fn a_new_empty_broker_gets_its_share_when_auto_rebalance_is_on() {
        let mut img = cluster(3);
        let recs = create_topic(&img, "t", 6, 2, None, &BTreeMap::new(), Uuid::new_v4(), SEED).unwrap();
        apply(&mut img, recs);
        assert!(rebalance_on_broker_join(&img, 9).is_empty(), "not a live broker");
        img.brokers.insert(4, BrokerRegistration { id: 4, epoch: 2, incarnation_id: Uuid::nil(), endpoints: vec![], rack: None, fenced: false, in_controlled_shutdown: false });
        let recs = rebalance_on_broker_join(&img, 4);
        assert_eq!(recs.len(), 3, "12 replicas over 4 brokers: 3 move to broker 4");
        apply(&mut img, recs);
        let adding: usize = img.topic("t").unwrap().partitions.iter().filter(|p| p.adding_replicas.contains(&4)).count();
        assert_eq!(adding, 3);
        assert!(rebalance_on_broker_join(&img, 4).is_empty(), "it holds replicas now (and moves are in progress)");
    }

    #[test]
    fn a_broker_is_unregistered_only_once_it_holds_nothing() {
        let mut img = cluster(3);
        let recs = create_topic(&img, "t", 1, 2, Some(&[vec![1, 2]]), &BTreeMap::new(), Uuid::new_v4(), SEED).unwrap();
        apply(&mut img, recs);
        let e = unregister_broker(&img, 2).unwrap_err();
        assert!(e.to_string().contains("t-0"), "{e}");
        assert_eq!(e.code(), error_code::INVALID_REQUEST);
        assert_eq!(unregister_broker(&img, 9).unwrap_err().code(), error_code::BROKER_ID_NOT_REGISTERED);
        let recs = unregister_broker(&img, 3).unwrap();
        apply(&mut img, recs);
        assert!(!img.brokers.contains_key(&3));
    }

    #[test]
    fn explicit_assignments_are_honoured_and_fenced_brokers_are_not_placed_on() {
        let mut img = cluster(3);
        img.brokers.get_mut(&3).unwrap().fenced = true;
        let recs = create_topic(&img, "t", 0, 0, Some(&[vec![3, 1], vec![2, 3]]), &BTreeMap::new(), Uuid::new_v4(), SEED).unwrap();
        apply(&mut img, recs);
        let p0 = img.partition("t", 0).unwrap();
        assert_eq!((p0.replicas.clone(), p0.leader), (vec![3, 1], 1));
        let recs = create_topic(&img, "u", 6, 2, None, &BTreeMap::new(), Uuid::new_v4(), SEED).unwrap();
        apply(&mut img, recs);
        assert!(img.topic("u").unwrap().partitions.iter().all(|p| !p.replicas.contains(&3)));
    }
}
