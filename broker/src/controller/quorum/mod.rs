//! The metadata quorum: openraft replicating the metadata log among the voters in
//! `controller.quorum.voters`. This module only adapts openraft to Lantern: the log and vote on
//! disk (`log_store`), the image built from applied records (`state_machine`), and the RPCs
//! between voters (`rpc`, `network`). Decisions about brokers and partitions live in the
//! controller, not here.
pub mod log_store;
pub mod network;
pub mod rpc;
pub mod state_machine;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use super::records::MetadataRecord;
use crate::config::BrokerConfig;

/// One entry of the metadata log: records applied together (Kafka's record batch), stamped
/// by the active controller so every node applies the same time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<MetadataRecord>,
    pub timestamp_ms: i64,
}

/// What applying an entry returns to the writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The entry's offset (Raft log index).
    pub offset: u64,
}

openraft::declare_raft_types!(
    /// openraft's types for the metadata log.
    pub TypeConfig:
        D = MetadataBatch,
        R = Applied,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type MetadataRaft = Raft<TypeConfig>;

/// Metadata records in a log entry (none in openraft's blank and membership entries).
pub fn records_in(entry: &openraft::Entry<TypeConfig>) -> usize {
    match &entry.payload {
        openraft::EntryPayload::Normal(batch) => batch.records.len(),
        _ => 0,
    }
}

/// Starts this node's Raft instance on the metadata log in `dir`, initialising the quorum on
/// first start (every voter initialises with the same member list, which openraft allows).
/// The RPCs it sends other voters count in `channel`.
pub async fn start(
    config: &BrokerConfig,
    dir: &Path,
    channel: Arc<rpc::ChannelStats>,
) -> anyhow::Result<(MetadataRaft, state_machine::StateMachine, log_store::LogStore)> {
    use anyhow::Context;
    let cluster = &config.cluster;
    let election = cluster.election_timeout_ms.max(50);
    let raft_config = Config {
        cluster_name: "lantern-metadata".into(),
        heartbeat_interval: (election / 10).max(10),
        election_timeout_min: election,
        election_timeout_max: election + election / 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cluster.snapshot_interval_records),
        max_in_snapshot_log_to_keep: 100,
        install_snapshot_timeout: cluster.request_timeout_ms.max(1000),
        ..Default::default()
    };
    let raft_config = Arc::new(raft_config.validate().context("invalid quorum timing settings")?);
    let log = log_store::LogStore::open(dir).with_context(|| format!("cannot open the metadata log in {}", dir.display()))?;
    let sm = state_machine::StateMachine::open(dir)
        .with_context(|| format!("cannot open the metadata snapshot in {}", dir.display()))?;
    let network = network::Network::new(std::time::Duration::from_millis(cluster.request_timeout_ms), channel);
    let raft = Raft::new(config.node_id as u64, raft_config, network, log.clone(), sm.clone())
        .await
        .context("cannot start the metadata quorum")?;
    let members = voters(config);
    if !raft.is_initialized().await.context("metadata quorum stopped")? {
        tracing::info!(target: "org.apache.kafka.raft.KafkaRaftClient", voters = ?members.keys().collect::<Vec<_>>(), "initialising a new metadata quorum");
        if let Err(e) = raft.initialize(members).await {
            // Another voter initialised first and already replicated its membership here.
            tracing::info!(target: "org.apache.kafka.raft.KafkaRaftClient", error = %e, "quorum already initialised");
        }
    }
    Ok((raft, sm, log))
}

/// Voter id -> address of its controller listener; a standalone node is its own single voter
/// and needs no address.
pub fn voters(config: &BrokerConfig) -> BTreeMap<u64, BasicNode> {
    if config.cluster.voters.is_empty() {
        return [(config.node_id as u64, BasicNode { addr: String::new() })].into();
    }
    config.cluster.voters.iter().map(|v| (v.id as u64, BasicNode { addr: v.address() })).collect()
}
