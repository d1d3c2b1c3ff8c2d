//! The group coordinator: consumer groups under the classic rebalance protocol and their
//! committed offsets, made durable in `__consumer_offsets` and rebuilt from it at start-up.
//!
//! `membership.rs` handles JoinGroup/SyncGroup/Heartbeat/LeaveGroup, `offsets.rs` commits,
//! fetches and expires offsets, `group.rs` is the per-group state machine, `schema.rs` the
//! record formats and `offsets_topic.rs` the reads and writes of the topic.
pub mod group;
mod membership;
mod offsets;
pub mod offsets_topic;
pub mod schema;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

pub use group::{Committed, Group, GroupState, GroupTimers, JoinResult, SyncResult};
pub use membership::JoinRequest;
pub use offsets::{CommitRequest, FetchedOffset};

use crate::api::now_ms;
use crate::cluster::ReplicaManager;
use crate::error_code::{GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP};
use schema::{decode_group_value, decode_key, decode_offset_value, group_key, group_value, OffsetsKey};

/// Coordinator settings, from the broker properties of the same names.
#[derive(Debug, Clone, Copy)]
pub struct CoordinatorConfig {
    /// offsets.topic.num.partitions
    pub offsets_partitions: i32,
    /// group.initial.rebalance.delay.ms
    pub initial_rebalance_delay: Duration,
    /// group.min.session.timeout.ms / group.max.session.timeout.ms
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// offsets.retention.minutes
    pub offsets_retention: Duration,
    /// offset.metadata.max.bytes
    pub offset_metadata_max_bytes: usize,
}

/// A summary row for ListGroups.
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// A member row for DescribeGroups.
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// What DescribeGroups reports for one group.
pub struct DescribedGroup {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

pub struct GroupCoordinator {
    config: CoordinatorConfig,
    groups: Mutex<HashMap<String, Group>>,
    /// The `__consumer_offsets` partitions whose groups are loaded: those this broker leads.
    loaded: Mutex<std::collections::BTreeSet<i32>>,
    /// Writes of group metadata or offsets to `__consumer_offsets` that failed
    /// (FailedGroupMetadataWritesPerSec).
    pub failed_writes: std::sync::atomic::AtomicU64,
}

impl GroupCoordinator {
    pub fn new(config: CoordinatorConfig) -> Self {
        Self { config, groups: Mutex::new(HashMap::new()), loaded: Mutex::new(Default::default()), failed_writes: Default::default() }
    }

    /// Loads the groups of the `__consumer_offsets` partitions this broker has come to lead
    /// and drops those of the ones it no longer leads (Kafka's onElection/onResignation), so
    /// a coordinator that takes over serves the commits its replica of the log holds.
    /// Blocking (reads the logs). Returns (partitions loaded, partitions unloaded).
    pub fn sync_with_leadership(&self, replicas: &ReplicaManager) -> (usize, usize) {
        let (mut loaded_n, mut unloaded_n) = (0, 0);
        for index in 0..self.config.offsets_partitions {
            let leads = replicas.partition(offsets_topic::TOPIC, index).filter(|p| p.is_leader());
            let loaded = self.loaded.lock().contains(&index);
            match (leads, loaded) {
                (Some(p), false) => {
                    let started = Instant::now();
                    match self.load_partition(index, &p) {
                        Ok((groups, offsets)) => {
                            self.loaded.lock().insert(index);
                            loaded_n += 1;
                            tracing::info!(target: "kafka.coordinator.group.GroupMetadataManager", partition = index, groups, offsets,
                                elapsed_ms = started.elapsed().as_millis() as u64, "loaded the groups of a __consumer_offsets partition this broker now leads");
                        }
                        Err(e) => tracing::error!(target: "kafka.coordinator.group.GroupMetadataManager", partition = index, error = %e, "could not load groups"),
                    }
                }
                (None, true) => {
                    let groups = self.unload_partition(index);
                    self.loaded.lock().remove(&index);
                    unloaded_n += 1;
                    tracing::info!(target: "kafka.coordinator.group.GroupMetadataManager", partition = index, groups, "unloaded the groups of a __consumer_offsets partition led elsewhere now");
                }
                _ => {}
            }
        }
        (loaded_n, unloaded_n)
    }

    /// Whether the groups of `__consumer_offsets` partition `index` are loaded here.
    pub fn is_loaded(&self, index: i32) -> bool {
        self.loaded.lock().contains(&index)
    }

    /// Drops the groups that live in `__consumer_offsets` partition `index`.
    fn unload_partition(&self, index: i32) -> usize {
        let mut groups = self.groups.lock();
        let before = groups.len();
        groups.retain(|id, _| self.partition_for(id) != index);
        before - groups.len()
    }

    /// Replaces the groups of partition `index` with what its log holds.
    fn load_partition(&self, index: i32, partition: &crate::cluster::Partition) -> Result<(usize, usize), crate::cluster::PartitionError> {
        let mut offsets: BTreeMap<(String, String, i32), Option<Bytes>> = BTreeMap::new();
        let mut stored_groups: BTreeMap<String, Option<Bytes>> = BTreeMap::new();
        offsets_topic::replay(partition, |key, value| match decode_key(key) {
            Ok(OffsetsKey::Offset { group, topic, partition }) => {
                offsets.insert((group, topic, partition), value);
            }
            Ok(OffsetsKey::Group { group }) => {
                stored_groups.insert(group, value);
            }
            Err(e) => tracing::warn!(target: "kafka.coordinator.group.GroupCoordinator", error = %e, "skipping unreadable __consumer_offsets key"),
        })?;
        let (now, now_ms) = (Instant::now(), now_ms());
        let mut groups = self.groups.lock();
        groups.retain(|id, _| self.partition_for(id) != index);
        let before = groups.len();
        for (id, value) in stored_groups {
            let Some(value) = value else { continue };
            match decode_group_value(value) {
                Ok(v) => {
                    let mut g = Group::new(&id, now_ms);
                    g.restore(v, now, now_ms);
                    groups.insert(id, g);
                }
                Err(e) => tracing::warn!(target: "kafka.coordinator.group.GroupCoordinator", group = %id, error = %e, "skipping unreadable group metadata"),
            }
        }
        let mut n_offsets = 0;
        for ((group, topic, partition), value) in offsets {
            let Some(value) = value else { continue };
            match decode_offset_value(value) {
                Ok(v) => {
                    let g = groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now_ms));
                    g.offsets.insert(
                        (topic, partition),
                        Committed { offset: v.offset, leader_epoch: v.leader_epoch, metadata: v.metadata, commit_timestamp: v.commit_timestamp },
                    );
                    n_offsets += 1;
                }
                Err(e) => tracing::warn!(target: "kafka.coordinator.group.GroupCoordinator", group = %group, error = %e, "skipping unreadable committed offset"),
            }
        }
        Ok((groups.len() - before, n_offsets))
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    fn timers(&self) -> GroupTimers {
        GroupTimers { initial_rebalance_delay: self.config.initial_rebalance_delay }
    }

    pub fn partition_for(&self, group: &str) -> i32 {
        schema::partition_for(group, self.config.offsets_partitions)
    }

    /// Loads the groups and committed offsets of the `__consumer_offsets` partitions this
    /// broker leads (start-up). Returns (groups, offsets) loaded.
    pub fn load(&self, replicas: &ReplicaManager) -> Result<(usize, usize), crate::cluster::PartitionError> {
        self.groups.lock().clear();
        self.loaded.lock().clear();
        self.sync_with_leadership(replicas);
        let groups = self.groups.lock();
        Ok((groups.len(), groups.values().map(|g| g.offsets.len()).sum()))
    }

    /// Session expiry and rebalance deadlines for every group; persists what changed.
    pub async fn tick(&self, replicas: &ReplicaManager) {
        let (now, now_ms) = (Instant::now(), now_ms());
        let timers = self.timers();
        {
            let mut groups = self.groups.lock();
            for g in groups.values_mut() {
                g.tick(timers, now, now_ms);
            }
        }
        self.persist_dirty(replicas).await;
    }

    /// A write to `__consumer_offsets` failed: logged and counted, in one place. `what` is
    /// what was being written; `answered` the error code the member gets (NONE when no request
    /// waits on the write).
    fn write_failed(&self, group: &str, what: &str, error: &offsets_topic::OffsetsTopicError, answered: i16) {
        self.failed_writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(target: "kafka.coordinator.group.GroupMetadataManager", group, what, error = %error, answered,
            "could not write to __consumer_offsets");
    }

    /// Writes one group's metadata now if it changed.
    async fn persist_group(&self, replicas: &ReplicaManager, id: &str) -> Result<(), offsets_topic::OffsetsTopicError> {
        let value = {
            let mut groups = self.groups.lock();
            match groups.get_mut(id).filter(|g| g.dirty) {
                Some(g) => {
                    g.dirty = false;
                    group_value(&g.to_value())
                }
                None => return Ok(()),
            }
        };
        offsets_topic::append(replicas, self.partition_for(id), &[(group_key(id), Some(value))], now_ms()).await
    }

    /// Writes the metadata of every group marked dirty (changes no request waits on: a
    /// member removed by session expiry, a group emptied). One that fails is logged and
    /// counted, as Kafka only warns then; the next change writes the whole group again.
    async fn persist_dirty(&self, replicas: &ReplicaManager) {
        let writes: Vec<(String, Bytes)> = {
            let mut groups = self.groups.lock();
            groups
                .values_mut()
                .filter(|g| g.dirty)
                .map(|g| {
                    g.dirty = false;
                    (g.id.clone(), group_value(&g.to_value()))
                })
                .collect()
        };
        for (id, value) in writes {
            let partition = self.partition_for(&id);
            if let Err(e) = offsets_topic::append(replicas, partition, &[(group_key(&id), Some(value))], now_ms()).await {
                self.write_failed(&id, "group metadata", &e, crate::error_code::NONE);
            }
        }
    }

    /// For /metrics: (group, state, members) and (group, topic, partition, committed offset).
    #[allow(clippy::type_complexity)]
    pub fn metrics_snapshot(&self) -> (Vec<(String, GroupState, usize)>, Vec<(String, String, i32, i64)>) {
        let groups = self.groups.lock();
        let mut g: Vec<_> = groups.values().map(|g| (g.id.clone(), g.state, g.members.len())).collect();
        let mut o: Vec<_> = groups
            .values()
            .flat_map(|g| g.offsets.iter().map(move |((t, p), c)| (g.id.clone(), t.clone(), *p, c.offset)))
            .collect();
        g.sort_by(|a, b| a.0.cmp(&b.0));
        o.sort();
        (g, o)
    }

    pub fn list_groups(&self, states: &[String], types: &[String]) -> Vec<ListedGroup> {
        let groups = self.groups.lock();
        let mut out: Vec<ListedGroup> = groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .filter(|l| states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(l.state.name())))
            .filter(|_| types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case("classic")))
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub fn describe_group(&self, id: &str) -> DescribedGroup {
        let groups = self.groups.lock();
        match groups.get(id) {
            None => DescribedGroup { state: GroupState::Dead, protocol_type: String::new(), protocol: String::new(), members: Vec::new() },
            Some(g) => {
                let protocol = g.protocol.clone().unwrap_or_default();
                let stable = g.is(GroupState::Stable);
                DescribedGroup {
                    state: g.state,
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    // Kafka reports the protocol only once the group is Stable.
                    protocol: if stable { protocol.clone() } else { String::new() },
                    members: g
                        .members
                        .values()
                        .map(|m| DescribedMember {
                            member_id: m.id.clone(),
                            instance_id: m.instance_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            metadata: if stable {
                                m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, b)| b.clone()).unwrap_or_default()
                            } else {
                                Bytes::new()
                            },
                            assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                        })
                        .collect(),
                }
            }
        }
    }

    /// DeleteGroups: only groups without members; writes tombstones for the group and its
    /// offsets. Returns the Kafka error code.
    pub async fn delete_group(&self, replicas: &ReplicaManager, id: &str) -> i16 {
        let entries = {
            let groups = self.groups.lock();
            let Some(g) = groups.get(id) else { return GROUP_ID_NOT_FOUND };
            if !g.is(GroupState::Empty) {
                return NON_EMPTY_GROUP;
            }
            let mut entries: Vec<(Bytes, Option<Bytes>)> =
                g.offsets.keys().map(|(t, p)| (schema::offset_key(id, t, *p), None)).collect();
            entries.push((group_key(id), None));
            entries
        };
        if let Err(e) = offsets_topic::append(replicas, self.partition_for(id), &entries, now_ms()).await {
            self.write_failed(id, "tombstones of a deleted group", &e, e.code());
            return e.code();
        }
        let mut groups = self.groups.lock();
        if groups.get(id).is_some_and(|g| g.is(GroupState::Empty)) {
            groups.remove(id);
        }
        tracing::info!(target: "kafka.coordinator.group.GroupCoordinator", group = id, "deleted group");
        0
    }
}
