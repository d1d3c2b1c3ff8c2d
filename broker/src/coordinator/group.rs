//! One consumer group under the classic rebalance protocol: its members, generation, state
//! (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead) and committed offsets.
//!
//! Everything here is synchronous and time is passed in, so the state machine is testable
//! without a clock. Responses owed to members waiting in JoinGroup or SyncGroup are sent
//! through the oneshot senders the members hold.
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::schema::{GroupValue, MemberValue};
use crate::error_code::{NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID};

/// Kafka's group states, named as DescribeGroups and ListGroups report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a member waiting in JoinGroup receives.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, group instance id, metadata): only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// KIP-814 (JoinGroup v9+): a restarted static leader gets the members but must not
    /// compute a new assignment; its SyncGroup returns the assignment it had.
    pub skip_assignment: bool,
}

/// What a member waiting in SyncGroup receives.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub join_waiter: Option<oneshot::Sender<JoinResult>>,
    pub sync_waiter: Option<oneshot::Sender<SyncResult>>,
    pub heartbeat_deadline: Instant,
    /// Join order, for choosing a leader deterministically.
    pub joined_seq: u64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
    fn awaiting(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }
}

/// A committed offset held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the deadline.
    pub pending: HashMap<String, Instant>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// When the running rebalance gives up waiting for members.
    rebalance_deadline: Option<Instant>,
    /// Initial rebalance delay of a group coming out of Empty.
    join_not_before: Option<Instant>,
    join_delay_cap: Option<Instant>,
    /// Milliseconds since the epoch when the state last changed (for offset expiry).
    pub state_since_ms: i64,
    /// Set when the stored form changed (new generation, assignments): persist it.
    pub dirty: bool,
    next_seq: u64,
}

/// Timing settings shared by every group.
#[derive(Debug, Clone, Copy)]
pub struct GroupTimers {
    pub initial_rebalance_delay: Duration,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Self {
        Self {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            offsets: BTreeMap::new(),
            rebalance_deadline: None,
            join_not_before: None,
            join_delay_cap: None,
            state_since_ms: now_ms,
            dirty: false,
            next_seq: 0,
        }
    }

    pub fn is(&self, s: GroupState) -> bool {
        self.state == s
    }

    fn set_state(&mut self, s: GroupState, now_ms: i64) {
        if self.state != s {
            tracing::debug!(target: "kafka.coordinator.group.GroupCoordinator", group = %self.id, from = self.state.name(), to = s.name(), "group state change");
        }
        self.state = s;
        self.state_since_ms = now_ms;
    }

    /// Whether every member supports at least one protocol in common with `protocols`.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(p, _)| self.members.values().all(|m| m.protocols.iter().any(|(q, _)| q == p)))
    }

    pub fn next_join_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Adds or updates a member and makes sure a rebalance runs that includes it.
    pub fn add_member(&mut self, member: Member, protocol_type: &str, timers: GroupTimers, now: Instant, now_ms: i64) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_string());
        }
        if let Some(i) = &member.instance_id {
            self.static_members.insert(i.clone(), member.id.clone());
        }
        self.pending.remove(&member.id);
        self.members.insert(member.id.clone(), member);
        self.prepare_rebalance(timers, now, now_ms);
        self.try_complete_join(now, now_ms);
    }

    /// Removes a member (left, expired, fenced); returns whether it was there.
    pub fn remove_member(&mut self, member_id: &str, timers: GroupTimers, now: Instant, now_ms: i64) -> bool {
        let Some(m) = self.members.remove(member_id) else { return false };
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(member_id) {
                self.static_members.remove(i);
            }
        }
        if let Some(w) = m.join_waiter {
            let _ = w.send(JoinResult { error: UNKNOWN_MEMBER_ID, member_id: member_id.to_string(), ..Default::default() });
        }
        if let Some(w) = m.sync_waiter {
            let _ = w.send(SyncResult { error: UNKNOWN_MEMBER_ID, ..Default::default() });
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.values().min_by_key(|m| m.joined_seq).map(|m| m.id.clone());
        }
        if matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance) {
            self.prepare_rebalance(timers, now, now_ms);
        }
        // The remaining members may all have rejoined already (or none remain).
        self.try_complete_join(now, now_ms);
        true
    }

    /// Moves to PreparingRebalance (no-op if already there).
    pub fn prepare_rebalance(&mut self, timers: GroupTimers, now: Instant, now_ms: i64) {
        match self.state {
            GroupState::PreparingRebalance | GroupState::Dead => return,
            GroupState::CompletingRebalance => {
                for m in self.members.values_mut() {
                    if let Some(w) = m.sync_waiter.take() {
                        let _ = w.send(SyncResult { error: REBALANCE_IN_PROGRESS, ..Default::default() });
                    }
                }
            }
            GroupState::Empty => {
                self.join_not_before = Some(now + timers.initial_rebalance_delay);
                let max_rebalance = self.max_rebalance_timeout();
                self.join_delay_cap = Some(now + max_rebalance.max(timers.initial_rebalance_delay));
            }
            GroupState::Stable => {}
        }
        let timeout = self.max_rebalance_timeout();
        self.rebalance_deadline = Some(now + timeout);
        self.set_state(GroupState::PreparingRebalance, now_ms);
    }

    /// A new member arriving during the initial delay pushes the delay out (Kafka's
    /// InitialDelayedJoin), never beyond the rebalance timeout.
    pub fn extend_initial_delay(&mut self, timers: GroupTimers, now: Instant) {
        if let (Some(_), Some(cap)) = (self.join_not_before, self.join_delay_cap) {
            self.join_not_before = Some((now + timers.initial_rebalance_delay).min(cap));
        }
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or(Duration::from_secs(60))
    }

    /// Completes the join phase when every member has rejoined (or the deadline passed).
    /// Returns true when the group changed generation (its metadata should be persisted).
    pub fn try_complete_join(&mut self, now: Instant, now_ms: i64) -> bool {
        if !self.is(GroupState::PreparingRebalance) {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some()) && self.pending.is_empty();
        let delay_over = self.join_not_before.is_none_or(|t| now >= t);
        let timed_out = self.rebalance_deadline.is_some_and(|t| now >= t);
        if !((all_joined && delay_over) || timed_out) {
            return false;
        }
        if timed_out {
            let laggards: Vec<String> = self.members.values().filter(|m| m.join_waiter.is_none()).map(|m| m.id.clone()).collect();
            for id in laggards {
                tracing::info!(target: "kafka.coordinator.group.GroupCoordinator", group = %self.id, member = %id, "removing member that did not rejoin within the rebalance timeout");
                if let Some(m) = self.members.remove(&id) {
                    if let Some(i) = m.instance_id {
                        self.static_members.remove(&i);
                    }
                }
            }
            self.pending.clear();
        }
        self.join_not_before = None;
        self.join_delay_cap = None;
        self.rebalance_deadline = None;
        self.generation += 1;
        self.dirty = true;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            return true;
        }
        self.protocol = self.select_protocol();
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.members.values().min_by_key(|m| m.joined_seq).map(|m| m.id.clone());
        }
        self.set_state(GroupState::CompletingRebalance, now_ms);
        self.rebalance_deadline = Some(now + self.max_rebalance_timeout());
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let roster: Vec<(String, Option<String>, Bytes)> =
            self.members.values().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata_for(&protocol))).collect();
        for m in self.members.values_mut() {
            m.heartbeat_deadline = now + m.session_timeout;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error: NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: Some(protocol.clone()),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader { roster.clone() } else { Vec::new() },
                    skip_assignment: false,
                });
            }
        }
        true
    }

    /// Kafka's vote: each member votes for its most preferred protocol that all support.
    fn select_protocol(&self) -> Option<String> {
        let candidates: Vec<&String> = self
            .members
            .values()
            .next()?
            .protocols
            .iter()
            .map(|(p, _)| p)
            .filter(|p| self.members.values().all(|m| m.protocols.iter().any(|(q, _)| q == *p)))
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((p, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p)) {
                *votes.entry(p).or_default() += 1;
            }
        }
        candidates.into_iter().max_by_key(|p| votes.get(p).copied().unwrap_or(0)).cloned()
    }

    /// The leader's SyncGroup: store every assignment, move to Stable, answer waiters.
    pub fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>, now_ms: i64) {
        let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
        for m in self.members.values_mut() {
            m.assignment = given.remove(&m.id).unwrap_or_default();
        }
        self.rebalance_deadline = None;
        self.dirty = true;
        self.set_state(GroupState::Stable, now_ms);
        let (pt, p) = (self.protocol_type.clone(), self.protocol.clone());
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult { error: NONE, protocol_type: pt.clone(), protocol: p.clone(), assignment: m.assignment.clone() });
            }
        }
    }

    /// The stored form the group will have once the leader's `assignments` are in force
    /// (Kafka's storeGroup(group, assignment)): written before the group becomes Stable.
    pub fn value_with_assignments(&self, assignments: &[(String, Bytes)]) -> GroupValue {
        let mut v = self.to_value();
        for m in &mut v.members {
            m.assignment = assignments.iter().find(|(id, _)| *id == m.member_id).map(|(_, a)| a.clone()).unwrap_or_default();
        }
        v
    }

    /// The leader's assignments could not be stored: every member waiting in SyncGroup gets
    /// `error`, no assignment is kept, and the group rebalances again (Kafka's
    /// resetAndPropagateAssignmentError, then maybePrepareRebalance).
    pub fn fail_sync(&mut self, error: i16, timers: GroupTimers, now: Instant, now_ms: i64) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult { error, ..Default::default() });
            }
        }
        self.prepare_rebalance(timers, now, now_ms);
    }

    /// Periodic housekeeping: expired sessions, expired pending ids, rebalance deadlines.
    /// Returns true when the group's metadata changed in a way worth persisting.
    pub fn tick(&mut self, timers: GroupTimers, now: Instant, now_ms: i64) -> bool {
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting() && m.heartbeat_deadline <= now)
            .map(|m| m.id.clone())
            .collect();
        let mut changed = false;
        for id in expired {
            tracing::info!(target: "kafka.coordinator.group.GroupCoordinator", group = %self.id, member = %id, "member session expired; removing it");
            self.remove_member(&id, timers, now, now_ms);
            changed = true;
        }
        if self.is(GroupState::CompletingRebalance) && self.rebalance_deadline.is_some_and(|t| now >= t) {
            tracing::info!(target: "kafka.coordinator.group.GroupCoordinator", group = %self.id, "leader did not send SyncGroup in time; rebalancing again");
            self.prepare_rebalance(timers, now, now_ms);
        }
        changed |= self.try_complete_join(now, now_ms);
        changed
    }

    /// The stored form of the group.
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout.as_millis() as i32,
                    session_timeout: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its stored form (at start-up); members must heartbeat within
    /// their session timeout or are removed.
    pub fn restore(&mut self, v: GroupValue, now: Instant, now_ms: i64) {
        self.generation = v.generation;
        self.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        self.protocol = v.protocol.clone();
        self.leader = v.leader;
        self.members.clear();
        self.static_members.clear();
        for mv in v.members {
            let seq = self.next_join_seq();
            if let Some(i) = &mv.group_instance_id {
                self.static_members.insert(i.clone(), mv.member_id.clone());
            }
            let session = Duration::from_millis(mv.session_timeout.max(0) as u64);
            self.members.insert(
                mv.member_id.clone(),
                Member {
                    id: mv.member_id,
                    instance_id: mv.group_instance_id,
                    client_id: mv.client_id,
                    client_host: mv.client_host,
                    session_timeout: session,
                    rebalance_timeout: Duration::from_millis(mv.rebalance_timeout.max(0) as u64),
                    protocols: vec![(v.protocol.clone().unwrap_or_default(), mv.subscription)],
                    assignment: mv.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    heartbeat_deadline: now + session,
                    joined_seq: seq,
                },
            );
        }
        let state = if self.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        self.set_state(state, if v.current_state_timestamp > 0 { v.current_state_timestamp } else { now_ms });
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
