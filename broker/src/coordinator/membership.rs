//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup against the group state machine, including
//! static membership (group.instance.id) and KIP-394's MEMBER_ID_REQUIRED first join.
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::group::{Group, GroupState, JoinResult, Member, SyncResult};
use super::{offsets_topic, schema, GroupCoordinator};
use crate::error_code::{
    COORDINATOR_NOT_AVAILABLE, FENCED_INSTANCE_ID, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID,
    INVALID_SESSION_TIMEOUT, MEMBER_ID_REQUIRED, NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
};
use crate::api::now_ms;
use crate::cluster::ReplicaManager;

/// A JoinGroup request, version differences already resolved.
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
    /// v9+: the response can carry SkipAssignment (KIP-814).
    pub supports_skip_assignment: bool,
}

fn fail(error: i16, member_id: &str) -> JoinResult {
    JoinResult { error, member_id: member_id.to_string(), generation: -1, ..Default::default() }
}

/// The answer for a member that rejoins a group that need not rebalance for it; the leader
/// gets the member list again so it can (re)compute the assignment.
fn current(group: &Group, member_id: &str) -> JoinResult {
    let is_leader = group.leader.as_deref() == Some(member_id);
    let protocol = group.protocol.clone().unwrap_or_default();
    let members = if is_leader {
        group
            .members
            .values()
            .map(|m| {
                let meta = m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, b)| b.clone()).unwrap_or_default();
                (m.id.clone(), m.instance_id.clone(), meta)
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinResult {
        error: NONE,
        generation: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol: group.protocol.clone(),
        leader: group.leader.clone().unwrap_or_default(),
        member_id: member_id.to_string(),
        members,
        skip_assignment: false,
    }
}

fn new_member_id(client_id: &str) -> String {
    format!("{}-{}", if client_id.is_empty() { "member" } else { client_id }, uuid::Uuid::new_v4())
}

/// Checks a member's identity against the group: Ok, or the error to answer with.
fn check_member(group: &Group, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
    if let Some(i) = instance_id {
        match group.static_members.get(i) {
            Some(known) if known != member_id => return Err(FENCED_INSTANCE_ID),
            _ => {}
        }
    }
    if !group.members.contains_key(member_id) {
        return Err(UNKNOWN_MEMBER_ID);
    }
    Ok(())
}

impl GroupCoordinator {
    pub async fn join(&self, replicas: &ReplicaManager, req: JoinRequest) -> JoinResult {
        let group_id = req.group_id.clone();
        let rx = match self.join_locked(req) {
            Ok(rx) => rx,
            Err(mut result) => {
                // A join answered at once that changed what is stored (a static member taking
                // over its old identity without a rebalance): stored before the member hears
                // success, as Kafka's GroupCoordinator does, else the member gets the error.
                if result.error == NONE {
                    if let Err(e) = self.persist_group(replicas, &group_id).await {
                        let code = e.group_store_code();
                        self.write_failed(&group_id, "group metadata (JoinGroup)", &e, code);
                        result = fail(code, "");
                    }
                }
                self.persist_dirty(replicas).await;
                return result;
            }
        };
        let result = rx.await.unwrap_or_else(|_| fail(COORDINATOR_NOT_AVAILABLE, ""));
        self.persist_dirty(replicas).await;
        result
    }

    /// Registers the join; Err carries an immediate answer, Ok a receiver for the deferred one.
    fn join_locked(&self, req: JoinRequest) -> Result<oneshot::Receiver<JoinResult>, JoinResult> {
        if req.group_id.is_empty() {
            return Err(fail(INVALID_GROUP_ID, &req.member_id));
        }
        let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        if session < self.config.min_session_timeout || session > self.config.max_session_timeout {
            return Err(fail(INVALID_SESSION_TIMEOUT, &req.member_id));
        }
        let rebalance = Duration::from_millis(req.rebalance_timeout_ms.max(req.session_timeout_ms).max(0) as u64);
        let (now, now_ms) = (Instant::now(), now_ms());
        let timers = self.timers();
        let mut groups = self.groups.lock();
        let group = groups.entry(req.group_id.clone()).or_insert_with(|| Group::new(&req.group_id, now_ms));
        if group.is(GroupState::Dead) {
            return Err(fail(COORDINATOR_NOT_AVAILABLE, &req.member_id));
        }
        let known = !req.member_id.is_empty();
        if !(known && group.members.contains_key(&req.member_id)) && !group.supports(&req.protocol_type, &req.protocols) {
            return Err(fail(INCONSISTENT_GROUP_PROTOCOL, &req.member_id));
        }
        let (tx, rx) = oneshot::channel();
        let make_member = |group: &mut Group, id: String, assignment: Bytes, tx| Member {
            id,
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout: session,
            rebalance_timeout: rebalance,
            protocols: req.protocols.clone(),
            assignment,
            join_waiter: Some(tx),
            sync_waiter: None,
            heartbeat_deadline: now + session,
            joined_seq: group.next_join_seq(),
        };

        if !known {
            if let Some(instance) = &req.instance_id {
                if let Some(old_id) = group.static_members.get(instance).cloned() {
                    // A static member restarted: it takes over its old identity without a
                    // rebalance when nothing about its subscription changed.
                    let new_id = new_member_id(&req.client_id);
                    let Some(mut old) = group.members.remove(&old_id) else {
                        return Err(fail(UNKNOWN_MEMBER_ID, ""));
                    };
                    if let Some(w) = old.join_waiter.take() {
                        let _ = w.send(fail(FENCED_INSTANCE_ID, &old_id));
                    }
                    if let Some(w) = old.sync_waiter.take() {
                        let _ = w.send(SyncResult { error: FENCED_INSTANCE_ID, ..Default::default() });
                    }
                    let unchanged = old.protocols == req.protocols;
                    let was_leader = group.leader.as_deref() == Some(old_id.as_str());
                    if group.is(GroupState::Stable) && unchanged {
                        // KIP-814: the leader too keeps the current generation; it gets the
                        // member list with SkipAssignment, so it does not reassign, and its
                        // SyncGroup (Stable) returns the assignment it had. Nobody else sees
                        // a rebalance.
                        let mut m = make_member(group, new_id.clone(), old.assignment.clone(), tx);
                        m.join_waiter = None;
                        group.static_members.insert(instance.clone(), new_id.clone());
                        group.members.insert(new_id.clone(), m);
                        if was_leader {
                            group.leader = Some(new_id.clone());
                        }
                        group.dirty = true;
                        tracing::info!(target: "kafka.coordinator.group.GroupCoordinator", group = %req.group_id, instance = %instance, member = %new_id, leader = was_leader,
                            "static member rejoined with unchanged metadata; no rebalance");
                        if was_leader && !req.supports_skip_assignment {
                            // Before v9 (Kafka's GroupCoordinator): the old leader id and no
                            // members, so the restarted leader acts as a follower and computes
                            // no assignment that a Stable group would not hand out anyway.
                            return Err(JoinResult { leader: old_id, members: Vec::new(), ..current(group, &new_id) });
                        }
                        return Err(JoinResult { skip_assignment: was_leader, ..current(group, &new_id) });
                    }
                    if was_leader {
                        group.leader = Some(new_id.clone());
                    }
                    let m = make_member(group, new_id, old.assignment, tx);
                    group.add_member(m, &req.protocol_type, timers, now, now_ms);
                    return Ok(rx);
                }
                let m = make_member(group, new_member_id(&req.client_id), Bytes::new(), tx);
                group.add_member(m, &req.protocol_type, timers, now, now_ms);
                group.extend_initial_delay(timers, now);
                return Ok(rx);
            }
            let id = new_member_id(&req.client_id);
            if req.require_known_member_id {
                group.pending.insert(id.clone(), now + session);
                return Err(fail(MEMBER_ID_REQUIRED, &id));
            }
            let m = make_member(group, id, Bytes::new(), tx);
            group.add_member(m, &req.protocol_type, timers, now, now_ms);
            group.extend_initial_delay(timers, now);
            return Ok(rx);
        }

        if group.pending.contains_key(&req.member_id) {
            let m = make_member(group, req.member_id.clone(), Bytes::new(), tx);
            group.add_member(m, &req.protocol_type, timers, now, now_ms);
            group.extend_initial_delay(timers, now);
            return Ok(rx);
        }
        if let Err(code) = check_member(group, &req.member_id, req.instance_id.as_deref()) {
            return Err(fail(code, &req.member_id));
        }
        let is_leader = group.leader.as_deref() == Some(req.member_id.as_str());
        let stable = group.is(GroupState::Stable);
        let Some(member) = group.members.get_mut(&req.member_id) else {
            return Err(fail(UNKNOWN_MEMBER_ID, &req.member_id));
        };
        let unchanged = member.protocols == req.protocols;
        member.heartbeat_deadline = now + session;
        match group.state {
            GroupState::Empty | GroupState::Dead => Err(fail(UNKNOWN_MEMBER_ID, &req.member_id)),
            GroupState::CompletingRebalance | GroupState::Stable if unchanged && !(is_leader && stable) => {
                Err(current(group, &req.member_id))
            }
            _ => {
                member.protocols = req.protocols.clone();
                member.session_timeout = session;
                member.rebalance_timeout = rebalance;
                if let Some(old) = member.join_waiter.replace(tx) {
                    let _ = old.send(fail(REBALANCE_IN_PROGRESS, &req.member_id));
                }
                group.prepare_rebalance(timers, now, now_ms);
                group.try_complete_join(now, now_ms);
                Ok(rx)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        replicas: &ReplicaManager,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let err = |error| SyncResult { error, ..Default::default() };
        let mut store = None;
        let rx = {
            let now = Instant::now();
            let mut groups = self.groups.lock();
            let Some(group) = groups.get_mut(group_id) else { return err(UNKNOWN_MEMBER_ID) };
            if let Err(code) = check_member(group, member_id, instance_id) {
                return err(code);
            }
            if generation != group.generation {
                return err(ILLEGAL_GENERATION);
            }
            if protocol_type.is_some_and(|p| Some(p) != group.protocol_type.as_deref())
                || protocol_name.is_some_and(|p| Some(p) != group.protocol.as_deref())
            {
                return err(INCONSISTENT_GROUP_PROTOCOL);
            }
            let is_leader = group.leader.as_deref() == Some(member_id);
            let (pt, p) = (group.protocol_type.clone(), group.protocol.clone());
            let Some(member) = group.members.get_mut(member_id) else { return err(UNKNOWN_MEMBER_ID) };
            member.heartbeat_deadline = now + member.session_timeout;
            match group.state {
                GroupState::Empty | GroupState::Dead => return err(UNKNOWN_MEMBER_ID),
                GroupState::PreparingRebalance => return err(REBALANCE_IN_PROGRESS),
                GroupState::Stable => {
                    return SyncResult { error: NONE, protocol_type: pt, protocol: p, assignment: member.assignment.clone() }
                }
                GroupState::CompletingRebalance => {
                    let (tx, rx) = oneshot::channel();
                    member.sync_waiter = Some(tx);
                    if is_leader {
                        // Stable only once the assignments are stored: a coordinator that
                        // fails over must not lose what every member was told.
                        let value = schema::group_value(&group.value_with_assignments(&assignments));
                        store = Some((group.generation, assignments, value));
                    }
                    rx
                }
            }
        };
        if let Some((generation, assignments, value)) = store {
            let written = offsets_topic::append(replicas, self.partition_for(group_id), &[(schema::group_key(group_id), Some(value))], now_ms()).await;
            let now = Instant::now();
            let mut groups = self.groups.lock();
            // Unless the group moved on meanwhile (a member left, the rebalance timed out).
            if let Some(group) = groups.get_mut(group_id).filter(|g| g.is(GroupState::CompletingRebalance) && g.generation == generation) {
                match written {
                    Ok(()) => {
                        group.complete_sync(assignments, now_ms());
                        group.dirty = false;
                    }
                    Err(e) => {
                        let code = e.group_store_code();
                        self.write_failed(group_id, "group assignment (SyncGroup)", &e, code);
                        group.fail_sync(code, self.timers(), now, now_ms());
                    }
                }
            }
        }
        let result = rx.await.unwrap_or_else(|_| err(REBALANCE_IN_PROGRESS));
        self.persist_dirty(replicas).await;
        result
    }

    pub fn heartbeat(&self, group_id: &str, generation: i32, member_id: &str, instance_id: Option<&str>) -> i16 {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else { return UNKNOWN_MEMBER_ID };
        if let Err(code) = check_member(group, member_id, instance_id) {
            return code;
        }
        if group.is(GroupState::Empty) || group.is(GroupState::Dead) {
            return UNKNOWN_MEMBER_ID;
        }
        if generation != group.generation && !group.is(GroupState::PreparingRebalance) {
            return ILLEGAL_GENERATION;
        }
        let state = group.state;
        if let Some(m) = group.members.get_mut(member_id) {
            m.heartbeat_deadline = now + m.session_timeout;
        }
        match state {
            GroupState::PreparingRebalance => REBALANCE_IN_PROGRESS,
            _ => NONE,
        }
    }

    /// LeaveGroup for each (member id, instance id); returns a code per member.
    pub async fn leave(&self, replicas: &ReplicaManager, group_id: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        let codes = {
            let (now, now_ms) = (Instant::now(), now_ms());
            let timers = self.timers();
            let mut groups = self.groups.lock();
            let Some(group) = groups.get_mut(group_id) else {
                return vec![UNKNOWN_MEMBER_ID; members.len()];
            };
            members
                .iter()
                .map(|(member_id, instance_id)| {
                    // v3+: a static member may leave by instance id alone.
                    let id = match (member_id.is_empty(), instance_id) {
                        (true, Some(i)) => match group.static_members.get(i) {
                            Some(id) => id.clone(),
                            None => return UNKNOWN_MEMBER_ID,
                        },
                        _ => member_id.clone(),
                    };
                    if let Err(code) = check_member(group, &id, instance_id.as_deref()) {
                        return code;
                    }
                    tracing::info!(target: "kafka.coordinator.group.GroupCoordinator", group = group_id, member = %id, "member left the group");
                    group.remove_member(&id, timers, now, now_ms);
                    NONE
                })
                .collect()
        };
        self.persist_dirty(replicas).await;
        codes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::CoordinatorConfig;
    use crate::error_code::COORDINATOR_NOT_AVAILABLE as NOT_AVAILABLE;

    fn coordinator() -> GroupCoordinator {
        GroupCoordinator::new(CoordinatorConfig {
            offsets_partitions: 1,
            initial_rebalance_delay: Duration::ZERO,
            min_session_timeout: Duration::from_millis(1),
            max_session_timeout: Duration::from_secs(60),
            offsets_retention: Duration::from_secs(60),
            offset_metadata_max_bytes: 4096,
        })
    }

    /// A broker whose `__consumer_offsets` partition is not hosted here: every write fails.
    fn replicas(dir: &std::path::Path) -> ReplicaManager {
        let raw = [("log.dirs".to_string(), (dir.display().to_string(), crate::config::Origin::Flag))].into_iter().collect();
        ReplicaManager::open(&crate::config::BrokerConfig::from_properties(raw).unwrap()).unwrap().0
    }

    /// Kafka's GroupCoordinator: the group becomes Stable only once the leader's assignment is
    /// stored; when the write fails, the members get the mapped error (here the partition is
    /// not hosted: COORDINATOR_NOT_AVAILABLE) and the group rebalances. Before, the failure was
    /// logged and every member was told NONE with an assignment a failover would lose.
    #[tokio::test]
    async fn a_sync_group_whose_assignment_cannot_be_stored_answers_the_error_and_rebalances() {
        let dir = tempfile::tempdir().unwrap();
        let (c, rm) = (coordinator(), replicas(dir.path()));
        let join = c
            .join(&rm, JoinRequest {
                group_id: "g".into(),
                member_id: String::new(),
                instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 10_000,
                protocol_type: "consumer".into(),
                protocols: vec![("range".into(), Bytes::from_static(b"m"))],
                require_known_member_id: false,
                supports_skip_assignment: false,
            })
            .await;
        assert_eq!(join.error, NONE, "the new generation's write is not waited on (Kafka only warns)");
        let failed_before = c.failed_writes.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(failed_before, 1, "but it is counted");
        let sync = c.sync(&rm, "g", join.generation, &join.member_id, None, None, None, vec![(join.member_id.clone(), Bytes::from_static(b"A"))]).await;
        assert_eq!(sync.error, NOT_AVAILABLE);
        assert!(sync.assignment.is_empty());
        assert_eq!(c.failed_writes.load(std::sync::atomic::Ordering::Relaxed), failed_before + 1);
        let g = c.describe_group("g");
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert!(g.members.iter().all(|m| m.assignment.is_empty()));
    }
}
