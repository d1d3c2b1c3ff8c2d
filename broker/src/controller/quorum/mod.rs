//! The metadata quorum: openraft replicating the metadata log among the voters in
//! `controller.quorum.voters`. This module only adapts openraft to Lantern: the log and vote on
//! disk (`log_store`), the image built from applied records (`state_machine`), and the RPCs
//! between voters (`rpc`, `network`). Decisions about brokers and partitions live in the
//! controller, not here.
pub mod log_store;
pub mod network;
pub mod rpc;
pub mod state_machine;

/// The largest snapshot a voter accepts from its leader (a chunk reaching past it is refused).
/// A 10,000-partition image is a few MB; this leaves room for a hundred times that.
pub const MAX_SNAPSHOT_BYTES: u64 = 256 * 1024 * 1024;

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
        // openraft's leader lease is election_timeout_max: a follower that heard from a leader
        // within it refuses to vote, and starts an election of its own only after the lease
        // plus a random election_timeout. With max = the setting, a dead controller is
        // replaced after 1.5 to 2 x controller.quorum.election.timeout.ms (Kafka: fetch
        // timeout 2 s + up to 1 s of random backoff).
        heartbeat_interval: (election / 10).max(10),
        election_timeout_min: election / 2,
        election_timeout_max: election,
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
    // Before this node votes or answers anyone: a metadata log made by another quorum (another
    // cluster's directory) must not be joined to this one, where it would be overwritten.
    let recorded = raft
        .with_raft_state(|st| st.membership_state.effective().membership().clone())
        .await
        .context("metadata quorum stopped")?;
    let recorded: BTreeMap<u64, BasicNode> =
        recorded.voter_ids().filter_map(|id| recorded.get_node(&id).map(|n| (id, n.clone()))).collect();
    if let Err(why) = check_recorded_voters(&recorded, &members) {
        let _ = raft.shutdown().await;
        anyhow::bail!("the metadata log in {} {why}", dir.display());
    }
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

/// A metadata log is joined only by the quorum that made it: the voters it records (ids and
/// controller addresses) must be `controller.quorum.voters`. A directory of another cluster, or
/// of this node from before it joined a cluster, records other voters; joining would have the
/// active controller overwrite that log (and Lantern does not change voters yet). An empty
/// record is a new log.
pub fn check_recorded_voters(recorded: &BTreeMap<u64, BasicNode>, configured: &BTreeMap<u64, BasicNode>) -> Result<(), String> {
    if recorded.is_empty() || recorded == configured {
        return Ok(());
    }
    let show = |m: &BTreeMap<u64, BasicNode>| {
        m.iter()
            .map(|(id, n)| if n.addr.is_empty() { format!("{id} (itself alone)") } else { format!("{id}@{}", n.addr) })
            .collect::<Vec<_>>()
            .join(",")
    };
    Err(format!(
        "was made by a quorum of voters {}, but controller.quorum.voters is {}: the directory belongs to another cluster \
         (or to this node before it joined this one); start the node with empty log.dirs to join this cluster",
        show(recorded),
        if configured.values().all(|n| n.addr.is_empty()) { "unset (a single-node quorum)".to_string() } else { show(configured) }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, Origin};

    fn nodes(spec: &[(u64, &str)]) -> BTreeMap<u64, BasicNode> {
        spec.iter().map(|(id, a)| (*id, BasicNode { addr: a.to_string() })).collect()
    }

    #[test]
    fn only_the_quorum_that_made_a_log_may_join_it() {
        let three = nodes(&[(1, "h:1"), (2, "h:2"), (3, "h:3")]);
        assert!(check_recorded_voters(&BTreeMap::new(), &three).is_ok());
        assert!(check_recorded_voters(&three, &three).is_ok());
        let standalone = nodes(&[(3, "")]);
        assert!(check_recorded_voters(&standalone, &standalone).is_ok());
        let e = check_recorded_voters(&standalone, &three).unwrap_err();
        assert!(e.contains("3 (itself alone)") && e.contains("controller.quorum.voters is 1@h:1,2@h:2,3@h:3"), "{e}");
        assert!(check_recorded_voters(&nodes(&[(1, "h:1"), (2, "h:2"), (3, "other:3")]), &three).is_err());
        assert!(check_recorded_voters(&three, &nodes(&[(1, "")])).unwrap_err().contains("unset"));
    }

    fn config(dir: &Path, props: &[(&str, &str)]) -> BrokerConfig {
        let mut raw: BTreeMap<String, (String, Origin)> =
            props.iter().map(|(k, v)| (k.to_string(), (v.to_string(), Origin::Flag))).collect();
        raw.insert("log.dirs".into(), (dir.display().to_string(), Origin::Flag));
        BrokerConfig::from_properties(raw).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_nodes_metadata_log_is_not_joined_to_a_cluster_and_is_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("__cluster_metadata-0");
        let alone = config(dir.path(), &[("node.id", "3")]);
        let (raft, _sm, _log) = start(&alone, &log_dir, Default::default()).await.unwrap();
        raft.trigger().elect().await.unwrap();
        raft.wait(Some(std::time::Duration::from_secs(5))).current_leader(3, "elected").await.unwrap();
        raft.shutdown().await.unwrap();
        let before: Vec<(std::path::PathBuf, Vec<u8>)> = files(&log_dir);

        let in_cluster = config(
            dir.path(),
            &[
                ("node.id", "3"),
                ("listeners", "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"),
                ("controller.quorum.voters", "1@127.0.0.1:19193,2@127.0.0.1:19293,3@127.0.0.1:19093"),
            ],
        );
        let e = start(&in_cluster, &log_dir, Default::default()).await.err().expect("a single node's log must not join a cluster").to_string();
        assert!(e.contains("controller.quorum.voters") && e.contains("3 (itself alone)"), "{e}");
        assert_eq!(files(&log_dir), before, "the refused metadata log was changed");
        // The single node itself still starts from it.
        let (raft, _sm, _log) = start(&alone, &log_dir, Default::default()).await.unwrap();
        raft.shutdown().await.unwrap();
    }

    fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        }).collect();
        out.sort();
        out
    }
}
