//! Committed offsets: OffsetCommit (durable in `__consumer_offsets` before it is
//! acknowledged), OffsetFetch, OffsetDelete and expiry of an empty group's offsets after
//! offsets.retention.minutes.
use bytes::{Buf, Bytes};

use super::group::{Committed, GroupState};
use super::schema::{group_key, offset_key, offset_value, OffsetValue};
use super::{offsets_topic, Group, GroupCoordinator};
use crate::error_code::{
    FENCED_INSTANCE_ID, GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC, ILLEGAL_GENERATION, INVALID_GROUP_ID, NONE,
    REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
};
use crate::api::now_ms;
use crate::cluster::ReplicaManager;

const OFFSET_METADATA_TOO_LARGE: i16 = 12;
use crate::error_code::UNKNOWN_TOPIC_OR_PARTITION;

/// An OffsetCommit request, version differences resolved.
pub struct CommitRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// (topic, partition, offset, leader epoch, metadata, commit timestamp). The timestamp is
    /// -1 (the time of the commit) except from OffsetCommit v1, whose clients may set it.
    pub offsets: Vec<(String, i32, i64, i32, Option<String>, i64)>,
}

/// One row of an OffsetFetch answer.
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Checks that a commit comes from the current generation of a live member (or is a
/// "simple" commit, generation -1 with no member, to a group without members).
fn check_commit(group: &Group, req: &CommitRequest) -> i16 {
    if req.generation < 0 && req.member_id.is_empty() {
        return if group.members.is_empty() { NONE } else { UNKNOWN_MEMBER_ID };
    }
    if let Some(i) = &req.instance_id {
        if group.static_members.get(i).is_some_and(|m| *m != req.member_id) {
            return FENCED_INSTANCE_ID;
        }
    }
    if !group.members.contains_key(&req.member_id) {
        return UNKNOWN_MEMBER_ID;
    }
    if req.generation != group.generation {
        return ILLEGAL_GENERATION;
    }
    match group.state {
        // Kafka refuses commits only between the join and the sync: a member of the current
        // generation may commit while a rebalance is being prepared (eager clients commit in
        // their revoke callback, exactly then).
        GroupState::CompletingRebalance => REBALANCE_IN_PROGRESS,
        GroupState::PreparingRebalance | GroupState::Stable => NONE,
        GroupState::Empty | GroupState::Dead => UNKNOWN_MEMBER_ID,
    }
}

impl GroupCoordinator {
    /// Commits offsets; returns one code per requested offset, in request order.
    /// `partition_exists` tells whether a topic partition exists in the cluster.
    pub async fn commit_offsets(
        &self,
        replicas: &ReplicaManager,
        req: CommitRequest,
        partition_exists: impl Fn(&str, i32) -> bool,
    ) -> Vec<i16> {
        if req.group_id.is_empty() {
            return vec![INVALID_GROUP_ID; req.offsets.len()];
        }
        let now_ms = now_ms();
        let (mut codes, entries, to_store) = {
            let mut groups = self.groups.lock();
            let group = groups.entry(req.group_id.clone()).or_insert_with(|| Group::new(&req.group_id, now_ms));
            let code = check_commit(group, &req);
            if code != NONE {
                return vec![code; req.offsets.len()];
            }
            let mut codes = Vec::with_capacity(req.offsets.len());
            let mut entries = Vec::new();
            let mut to_store = Vec::new();
            for (topic, partition, offset, leader_epoch, metadata, commit_timestamp) in &req.offsets {
                let metadata = metadata.clone().unwrap_or_default();
                if !partition_exists(topic, *partition) {
                    codes.push(UNKNOWN_TOPIC_OR_PARTITION);
                } else if metadata.len() > self.config.offset_metadata_max_bytes {
                    codes.push(OFFSET_METADATA_TOO_LARGE);
                } else {
                    let value = OffsetValue { offset: *offset, leader_epoch: *leader_epoch, metadata, commit_timestamp: if *commit_timestamp == -1 { now_ms } else { *commit_timestamp } };
                    entries.push((offset_key(&req.group_id, topic, *partition), Some(offset_value(&value))));
                    to_store.push((codes.len(), topic.clone(), *partition, value));
                    codes.push(NONE);
                }
            }
            (codes, entries, to_store)
        };
        if let Err(e) = offsets_topic::append(replicas, self.partition_for(&req.group_id), &entries, now_ms).await {
            self.write_failed(&req.group_id, "committed offsets", &e, e.code());
            for (i, ..) in &to_store {
                codes[*i] = e.code();
            }
            return codes;
        }
        let mut groups = self.groups.lock();
        if let Some(group) = groups.get_mut(&req.group_id) {
            for (_, topic, partition, v) in to_store {
                group.offsets.insert(
                    (topic, partition),
                    Committed { offset: v.offset, leader_epoch: v.leader_epoch, metadata: v.metadata, commit_timestamp: v.commit_timestamp },
                );
            }
        }
        codes
    }

    /// Committed offsets of a group: for the requested partitions (-1 where none), or all.
    pub fn fetch_offsets(&self, group_id: &str, wanted: Option<Vec<(String, Vec<i32>)>>) -> Vec<FetchedOffset> {
        let groups = self.groups.lock();
        let group = groups.get(group_id);
        let row = |t: &str, p: i32| match group.and_then(|g| g.offsets.get(&(t.to_string(), p))) {
            Some(c) => FetchedOffset { topic: t.to_string(), partition: p, offset: c.offset, leader_epoch: c.leader_epoch, metadata: Some(c.metadata.clone()) },
            None => FetchedOffset { topic: t.to_string(), partition: p, offset: -1, leader_epoch: -1, metadata: Some(String::new()) },
        };
        match wanted {
            Some(topics) => topics.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t, *p))).map(|(t, p)| row(t, p)).collect(),
            None => group
                .map(|g| g.offsets.keys().map(|(t, p)| row(t, *p)).collect())
                .unwrap_or_default(),
        }
    }

    /// OffsetDelete: refused while the group is subscribed to the topic. Returns the
    /// group-level error and a code per requested partition.
    pub async fn delete_offsets(&self, replicas: &ReplicaManager, group_id: &str, partitions: &[(String, i32)]) -> (i16, Vec<i16>) {
        let (codes, entries) = {
            let groups = self.groups.lock();
            let Some(group) = groups.get(group_id) else { return (GROUP_ID_NOT_FOUND, Vec::new()) };
            let subscribed: Vec<String> = group
                .members
                .values()
                .flat_map(|m| m.protocols.iter().flat_map(|(_, meta)| subscription_topics(meta)))
                .collect();
            let mut codes = Vec::with_capacity(partitions.len());
            let mut entries = Vec::new();
            for (t, p) in partitions {
                if !group.is(GroupState::Empty) && subscribed.iter().any(|s| s == t) {
                    codes.push(GROUP_SUBSCRIBED_TO_TOPIC);
                } else {
                    entries.push((offset_key(group_id, t, *p), None));
                    codes.push(NONE);
                }
            }
            (codes, entries)
        };
        if let Err(e) = offsets_topic::append(replicas, self.partition_for(group_id), &entries, now_ms()).await {
            self.write_failed(group_id, "offset deletions", &e, e.code());
            return (e.code(), Vec::new());
        }
        let mut groups = self.groups.lock();
        if let Some(group) = groups.get_mut(group_id) {
            for ((t, p), code) in partitions.iter().zip(&codes) {
                if *code == NONE {
                    group.offsets.remove(&(t.clone(), *p));
                }
            }
        }
        (NONE, codes)
    }

    /// Expires the offsets of groups that have been empty for offsets.retention.minutes, and
    /// removes empty groups left with no offsets (tombstones for both).
    pub async fn expire_offsets(&self, replicas: &ReplicaManager) {
        let now = now_ms();
        let retention = self.config.offsets_retention.as_millis() as i64;
        let mut writes: Vec<(String, Vec<(Bytes, Option<Bytes>)>)> = Vec::new();
        {
            let mut groups = self.groups.lock();
            let mut gone = Vec::new();
            for g in groups.values_mut() {
                let (expired, group_gone) = expire_in_group(g, now, retention);
                let mut entries: Vec<(Bytes, Option<Bytes>)> = expired.iter().map(|(t, p)| (offset_key(&g.id, t, *p), None)).collect();
                if group_gone {
                    entries.push((group_key(&g.id), None));
                    gone.push(g.id.clone());
                }
                if !entries.is_empty() {
                    tracing::info!(target: "kafka.coordinator.group.GroupMetadataManager", group = %g.id, offsets = expired.len(), "expired offsets of an empty group");
                    writes.push((g.id.clone(), entries));
                }
            }
            for id in gone {
                groups.remove(&id);
            }
        }
        for (id, entries) in writes {
            if let Err(e) = offsets_topic::append(replicas, self.partition_for(&id), &entries, now).await {
                self.write_failed(&id, "offset expiry tombstones", &e, crate::error_code::NONE);
            }
        }
    }
}

/// Kafka's rule for an Empty group: each offset expires `retention` after the later of its
/// commit and the group becoming empty; the group itself goes once it has no offsets left.
/// Removes the expired offsets and returns them, and whether the group is gone.
fn expire_in_group(g: &mut Group, now: i64, retention: i64) -> (Vec<(String, i32)>, bool) {
    if !g.is(GroupState::Empty) {
        return (Vec::new(), false);
    }
    let since = g.state_since_ms;
    let expired: Vec<(String, i32)> =
        g.offsets.iter().filter(|(_, c)| since.max(c.commit_timestamp) + retention <= now).map(|(k, _)| k.clone()).collect();
    for k in &expired {
        g.offsets.remove(k);
    }
    (expired, g.offsets.is_empty() && since + retention <= now)
}

/// Topics of a ConsumerProtocolSubscription (version i16, topics [string], ...); empty when
/// the metadata is not a consumer subscription.
fn subscription_topics(meta: &Bytes) -> Vec<String> {
    let mut b = meta.clone();
    if b.remaining() < 6 {
        return Vec::new();
    }
    let _version = b.get_i16();
    let n = b.get_i32();
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        if b.remaining() < 2 {
            break;
        }
        let len = b.get_i16();
        if len < 0 || b.remaining() < len as usize {
            break;
        }
        out.push(String::from_utf8_lossy(&b.split_to(len as usize)).into_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(member: &str, generation: i32) -> CommitRequest {
        CommitRequest { group_id: "g".into(), generation, member_id: member.into(), instance_id: None, offsets: vec![] }
    }

    #[test]
    fn offsets_of_empty_groups_expire_after_retention() {
        let mut g = Group::new("g", 1_000);
        let c = |ts| Committed { offset: 5, leader_epoch: -1, metadata: String::new(), commit_timestamp: ts };
        g.offsets.insert(("t".into(), 0), c(500));
        g.offsets.insert(("t".into(), 1), c(5_000));
        // Empty since 1_000, retention 10_000: p0 expires at 11_000, p1 at 15_000.
        assert_eq!(expire_in_group(&mut g, 10_999, 10_000), (vec![], false));
        assert_eq!(expire_in_group(&mut g, 11_000, 10_000), (vec![("t".to_string(), 0)], false));
        assert_eq!(expire_in_group(&mut g, 15_000, 10_000), (vec![("t".to_string(), 1)], true));
        let mut live = Group::new("h", 0);
        live.state = GroupState::Stable;
        live.offsets.insert(("t".into(), 0), c(0));
        assert_eq!(expire_in_group(&mut live, i64::MAX / 2, 1), (vec![], false), "groups with members keep their offsets");
    }

    #[test]
    fn commits_are_refused_only_between_join_and_sync() {
        let mut g = Group::new("g", 0);
        assert_eq!(check_commit(&g, &commit("", -1)), NONE, "simple commit to an empty group");
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let now = std::time::Instant::now();
        let seq = g.next_join_seq();
        g.members.insert(
            "a".into(),
            super::super::group::Member {
                id: "a".into(),
                instance_id: None,
                client_id: String::new(),
                client_host: String::new(),
                session_timeout: std::time::Duration::from_secs(10),
                rebalance_timeout: std::time::Duration::from_secs(10),
                protocols: vec![],
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                heartbeat_deadline: now,
                joined_seq: seq,
            },
        );
        g.generation = 2;
        for (state, want) in [
            (GroupState::Stable, NONE),
            (GroupState::PreparingRebalance, NONE),
            (GroupState::CompletingRebalance, REBALANCE_IN_PROGRESS),
        ] {
            g.state = state;
            assert_eq!(check_commit(&g, &commit("a", 2)), want, "{state:?}");
        }
        g.state = GroupState::Stable;
        assert_eq!(check_commit(&g, &commit("a", 1)), ILLEGAL_GENERATION);
        assert_eq!(check_commit(&g, &commit("b", 2)), UNKNOWN_MEMBER_ID);
        assert_eq!(check_commit(&g, &commit("", -1)), UNKNOWN_MEMBER_ID, "simple commit to a live group");
    }
}
