//! The controller: the single owner of cluster metadata (topics, partitions, configs,
//! producer id blocks). Every change is validated, made durable, then published as a new
//! immutable [`MetadataImage`] that brokers apply.
//!
//! Single node today: the controller runs inside the broker and persists a snapshot file.
//! The operations are the ones a KRaft quorum controller would replicate as records.
mod image;
mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

pub use image::{MetadataImage, PartitionImage, TopicImage};
pub use store::{MetadataStore, StoreError};

use crate::cluster::topic_config::validate_topic_config;

/// Partitions one topic may have; a CreateTopics asking for more is refused rather than
/// creating millions of directories.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
/// Producer ids handed out per persisted block.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Why a metadata change was refused; each maps to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name '{name}': {reason}")]
    InvalidTopic { name: String, reason: String },
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    DeletionDisabled,
    #[error("could not persist metadata: {0}")]
    Storage(#[from] StoreError),
}

impl ControllerError {
    pub fn code(&self) -> i16 {
        match self {
            ControllerError::TopicExists(_) => 36,
            ControllerError::UnknownTopic(_) => 3,
            ControllerError::InvalidTopic { .. } => 17,
            ControllerError::InvalidPartitions(_) => 37,
            ControllerError::InvalidReplicationFactor(_) => 38,
            ControllerError::InvalidConfig(_) => 40,
            ControllerError::DeletionDisabled => 73,
            ControllerError::Storage(_) => 56,
        }
    }
}

/// An IncrementalAlterConfigs operation on one topic config.
#[derive(Debug, Clone)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
}

/// The metadata owner.
pub struct Controller {
    node_id: i32,
    live_brokers: Vec<i32>,
    store: MetadataStore,
    image: RwLock<Arc<MetadataImage>>,
    /// Serialises changes so each one validates against the image it replaces.
    change: Mutex<()>,
    /// Next producer id to hand out and the end of the persisted block it comes from.
    producer_ids: Mutex<(i64, i64)>,
}

impl Controller {
    /// Loads the stored image or starts a new cluster with `cluster_id` (generated if `None`).
    pub fn open(dir: &Path, node_id: i32, cluster_id: Option<String>) -> Result<Self, ControllerError> {
        let store = MetadataStore::new(dir);
        let image = match store.load()? {
            Some(image) => image,
            None => {
                let image = MetadataImage {
                    cluster_id: cluster_id.unwrap_or_else(new_cluster_id),
                    ..Default::default()
                };
                store.save(&image)?;
                image
            }
        };
        let next = image.next_producer_id;
        Ok(Self {
            node_id,
            live_brokers: vec![node_id],
            store,
            image: RwLock::new(Arc::new(image)),
            change: Mutex::new(()),
            producer_ids: Mutex::new((next, next)),
        })
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    pub fn controller_id(&self) -> i32 {
        self.node_id
    }

    /// Applies `f` to a copy of the image; persists and publishes the result if `f` succeeds
    /// and `commit` is true.
    fn change<T>(
        &self,
        commit: bool,
        f: impl FnOnce(&mut MetadataImage) -> Result<T, ControllerError>,
    ) -> Result<(T, Arc<MetadataImage>), ControllerError> {
        let _guard = self.change.lock();
        let mut next = (**self.image.read()).clone();
        let out = f(&mut next)?;
        if !commit {
            return Ok((out, self.image()));
        }
        self.store.save(&next)?;
        let next = Arc::new(next);
        *self.image.write() = next.clone();
        Ok((out, next))
    }

    /// Creates a topic. `partitions`/`replication_factor` of -1 mean the broker defaults.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicImage, ControllerError> {
        validate_topic_name(name)?;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
            return Err(ControllerError::InvalidPartitions(format!(
                "number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}, got {partitions}"
            )));
        }
        let live = self.live_brokers.len() as i16;
        if replication_factor < 1 || replication_factor > live {
            return Err(ControllerError::InvalidReplicationFactor(format!(
                "replication factor {replication_factor} is larger than the {live} available broker(s); \
                 use at most {live} or add brokers"
            )));
        }
        for (k, v) in &configs {
            validate_topic_config(k, v).map_err(|r| ControllerError::InvalidConfig(format!("{k}={v}: {r}")))?;
        }
        let node = self.node_id;
        let (topic, _) = self.change(!validate_only, |image| {
            if image.topics.contains_key(name) {
                return Err(ControllerError::TopicExists(name.to_string()));
            }
            if let Some(other) = image.topics.keys().find(|t| collides(t, name)) {
                return Err(ControllerError::InvalidTopic {
                    name: name.to_string(),
                    reason: format!("it collides with existing topic '{other}' ('.' and '_' are treated alike in metric names)"),
                });
            }
            let topic = TopicImage {
                name: name.to_string(),
                id: Uuid::new_v4(),
                partitions: (0..partitions).map(|_| new_partition(node)).collect(),
                configs,
            };
            image.topics.insert(name.to_string(), topic.clone());
            Ok(topic)
        })?;
        Ok(topic)
    }

    /// Deletes a topic, returning what it was.
    pub fn delete_topic(&self, name: &str, allowed: bool) -> Result<TopicImage, ControllerError> {
        if !allowed {
            return Err(ControllerError::DeletionDisabled);
        }
        let (topic, _) = self.change(true, |image| {
            image.topics.remove(name).ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))
        })?;
        Ok(topic)
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<TopicImage, ControllerError> {
        let node = self.node_id;
        let (topic, _) = self.change(!validate_only, |image| {
            let topic = image.topics.get_mut(name).ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
            let current = topic.partitions.len() as i32;
            if count <= current {
                return Err(ControllerError::InvalidPartitions(format!(
                    "topic '{name}' has {current} partitions; the new count {count} must be larger (partitions cannot be removed)"
                )));
            }
            if count > MAX_PARTITIONS_PER_TOPIC {
                return Err(ControllerError::InvalidPartitions(format!(
                    "at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic, asked for {count}"
                )));
            }
            topic.partitions.extend((current..count).map(|_| new_partition(node)));
            Ok(topic.clone())
        })?;
        Ok(topic)
    }

    /// Applies config operations to a topic atomically.
    pub fn alter_topic_configs(&self, name: &str, ops: &[ConfigOp], validate_only: bool) -> Result<TopicImage, ControllerError> {
        for op in ops {
            if let ConfigOp::Set(k, v) = op {
                validate_topic_config(k, v).map_err(|r| ControllerError::InvalidConfig(format!("{k}={v}: {r}")))?;
            }
        }
        let (topic, _) = self.change(!validate_only, |image| {
            let topic = image.topics.get_mut(name).ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
            for op in ops {
                match op {
                    ConfigOp::Set(k, v) => {
                        topic.configs.insert(k.clone(), v.clone());
                    }
                    ConfigOp::Delete(k) => {
                        topic.configs.remove(k);
                    }
                }
            }
            Ok(topic.clone())
        })?;
        Ok(topic)
    }

    /// Hands out a new producer id; ids come from durably reserved blocks so a restart never
    /// reuses one that may already be in a log.
    pub fn allocate_producer_id(&self) -> Result<i64, ControllerError> {
        let mut ids = self.producer_ids.lock();
        if ids.0 >= ids.1 {
            let (block_start, _) = self.change(true, |image| {
                let start = image.next_producer_id;
                image.next_producer_id = start + PRODUCER_ID_BLOCK;
                Ok(start)
            })?;
            *ids = (block_start, block_start + PRODUCER_ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }
}

fn new_partition(node: i32) -> PartitionImage {
    PartitionImage { leader: node, leader_epoch: 0, replicas: vec![node], isr: vec![node] }
}

fn new_cluster_id() -> String {
    // Kafka's cluster ids are URL-safe base64 of a UUID (22 characters).
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let n = Uuid::new_v4().as_u128();
    (0..22).map(|i| ALPHABET[((n >> (i * 6)) & 63) as usize] as char).collect()
}

fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let bad = |reason: &str| Err(ControllerError::InvalidTopic { name: name.to_string(), reason: reason.to_string() });
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

    #[test]
    fn topics_and_producer_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c = Controller::open(dir.path(), 1, None).unwrap();
        c.create_topic("orders", 6, 1, BTreeMap::new(), false).unwrap();
        assert!(matches!(c.create_topic("orders", 1, 1, BTreeMap::new(), false), Err(ControllerError::TopicExists(_))));
        assert!(matches!(c.create_topic("x", 1, 3, BTreeMap::new(), false), Err(ControllerError::InvalidReplicationFactor(_))));
        assert!(matches!(c.create_topic("a/b", 1, 1, BTreeMap::new(), false), Err(ControllerError::InvalidTopic { .. })));
        assert!(matches!(c.create_topic("big", i32::MAX, 1, BTreeMap::new(), false), Err(ControllerError::InvalidPartitions(_))));
        c.create_topic("dry", 1, 1, BTreeMap::new(), true).unwrap();
        assert!(c.image().topic("dry").is_none());
        let first = c.allocate_producer_id().unwrap();
        c.create_partitions("orders", 8, false).unwrap();
        let cluster = c.image().cluster_id.clone();
        drop(c);
        let c = Controller::open(dir.path(), 1, None).unwrap();
        assert_eq!(c.image().cluster_id, cluster);
        assert_eq!(c.image().topic("orders").unwrap().partitions.len(), 8);
        assert!(c.allocate_producer_id().unwrap() > first);
    }
}
