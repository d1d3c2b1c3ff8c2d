//! The cluster metadata image: brokers, topics, their partitions and configs, built by applying
//! the metadata log's records (see `records`). Brokers read immutable snapshots
//! (`Arc<MetadataImage>`) and never mutate them.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One partition's placement and leadership. `leader` is -1 while the partition has no live
/// leader (offline).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Bumped by every change of this partition (Kafka's partition epoch), so a change based on
    /// an older state can be refused.
    #[serde(default)]
    pub partition_epoch: i32,
    /// A reassignment in progress (KIP-455): replicas joining (in `replicas`, catching up) and
    /// replicas leaving once every target replica is in the ISR. Both empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// Kafka's replication factor of a partition: its replicas less those being removed (a
    /// partition moving from [1,2,3] to [4,5,6] lists six replicas but keeps three).
    pub fn replication_factor(&self) -> usize {
        self.replicas.len() - self.replicas.iter().filter(|r| self.removing_replicas.contains(r)).count()
    }

    /// Under-replicated as Kafka counts it: fewer ISR members than the replication factor.
    pub fn is_under_replicated(&self) -> bool {
        self.isr.len() < self.replication_factor()
    }

    /// The replicas the partition is moving to: all of them unless a reassignment is in
    /// progress, then every replica not being removed.
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| !self.removing_replicas.contains(r)).collect()
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionImage>,
    /// Topic-level overrides only; defaults come from the broker configuration.
    pub configs: BTreeMap<String, String>,
}

/// One listener a broker registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A registered broker (Kafka's BrokerRegistration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    /// The metadata offset of the registration: a restarted broker gets a larger one, so
    /// requests from its previous incarnation are recognised as stale.
    pub epoch: i64,
    /// Random per process start.
    pub incarnation_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// Fenced brokers are not in Metadata and lead nothing.
    pub fenced: bool,
    /// Asked for a controlled shutdown (Kafka's `InControlledShutdown`, KIP-841): it is moving
    /// its leaderships away and may not join any ISR until it registers again. In the log, so
    /// that a new active controller knows it too.
    #[serde(default)]
    pub in_controlled_shutdown: bool,
}

impl BrokerRegistration {
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == listener)
    }

    /// Where clients reach this broker when they came in on `listener`: its endpoint on that
    /// listener, else its first one.
    pub fn client_endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoint(listener).or_else(|| self.endpoints.first())
    }
}

/// The whole cluster state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicImage>,
    /// Topic id -> name.
    #[serde(default)]
    pub topic_names: BTreeMap<Uuid, String>,
    #[serde(default)]
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Dynamic broker configs (replication throttles): by broker id, "" for the cluster-wide
    /// default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Next producer id block start: ids below it may be in logs already.
    pub next_producer_id: i64,
    /// Offset (Raft log index) and time of the last record applied.
    #[serde(default)]
    pub last_offset: i64,
    #[serde(default)]
    pub last_timestamp_ms: i64,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicImage> {
        self.topic_names.get(&id).and_then(|n| self.topics.get(n))
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionImage> {
        self.topics.get(topic).and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
    }

    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }

    /// Registered brokers that are not fenced: the ones clients see and placement uses.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// The live brokers with the endpoint clients that came in on `listener` should use.
    pub fn live_endpoints<'a>(&'a self, listener: &'a str) -> impl Iterator<Item = (&'a BrokerRegistration, &'a Endpoint)> {
        self.live_brokers().filter_map(move |b| Some((b, b.client_endpoint(listener)?)))
    }

    pub fn is_live(&self, broker: i32) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }

    /// May `broker` join an ISR? Only when registered, unfenced and not shutting down
    /// (Kafka's `isReplicaIsrEligible`): a replica about to stop must not hold up acks=all.
    pub fn is_isr_eligible(&self, broker: i32) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
    }

    /// The brokers that may not join an ISR now: fenced or in controlled shutdown.
    pub fn isr_ineligible_brokers(&self) -> Vec<i32> {
        self.brokers.values().filter(|b| b.fenced || b.in_controlled_shutdown).map(|b| b.id).collect()
    }

    /// A dynamic broker config: the broker's own value, else the cluster-wide default.
    pub fn dynamic_broker_config(&self, broker: i32, key: &str) -> Option<&str> {
        let own = self.broker_configs.get(&broker.to_string()).and_then(|c| c.get(key));
        own.or_else(|| self.broker_configs.get("").and_then(|c| c.get(key))).map(String::as_str)
    }

    /// Partitions with no leader.
    pub fn offline_partitions(&self) -> usize {
        self.topics.values().flat_map(|t| &t.partitions).filter(|p| p.leader < 0).count()
    }
}
