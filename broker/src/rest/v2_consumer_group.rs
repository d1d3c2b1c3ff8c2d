//! The Kafka requests a v2 consumer instance sends, as Kafka's Java consumer sends them, through
//! the proxy's client: FindCoordinator, then JoinGroup, SyncGroup (with a RangeAssignor
//! assignment when the coordinator makes the instance the leader), Heartbeat and LeaveGroup at
//! the group's coordinator; OffsetCommit and OffsetFetch there too; ListOffsets at each
//! partition's leader. The background task of each instance (`drive`) asks the instance's state
//! machine what to do next and does it; it decides nothing itself.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::{ConsumerProtocolAssignment, TopicPartition as AssignedPartition};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, BrokerId, ConsumerProtocolSubscription, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::error::{RestError, KAFKA_ERROR, KAFKA_RETRIABLE};
use super::v2_consumer_state::{range_assign, Action, Tp, SESSION_TIMEOUT_MS};
use super::v2_consumers::Entry;
use super::RestState;
use crate::error_code;

/// How long the coordinator waits for this member to rejoin in a rebalance: its background
/// task rejoins within a heartbeat interval, so this only bounds a stuck proxy.
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
/// A JoinGroup waits for every member of the group (up to the largest rebalance timeout among
/// them); after this it is sent again.
const JOIN_WAIT: Duration = Duration::from_secs(60);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const COORDINATOR_ATTEMPTS: u32 = 30;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn unreachable(e: impl std::fmt::Display) -> RestError {
    RestError::new(StatusCode::INTERNAL_SERVER_ERROR, KAFKA_RETRIABLE, e.to_string())
}

fn kafka_error(code: i16, what: &str) -> RestError {
    let name = crate::metrics::requests::error_name(code);
    let (status, ec) = if super::error::is_retriable(code) || coordinator_moving(code) {
        (StatusCode::INTERNAL_SERVER_ERROR, KAFKA_RETRIABLE)
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, KAFKA_ERROR)
    };
    RestError::new(status, ec, format!("Kafka error {name} for {what}"))
}

fn coordinator_moving(code: i16) -> bool {
    matches!(code, error_code::COORDINATOR_NOT_AVAILABLE | error_code::COORDINATOR_LOAD_IN_PROGRESS | error_code::NOT_COORDINATOR)
}

/// The broker coordinating `group` (asked again while the coordinator is not ready).
pub async fn coordinator(state: &RestState, group: &str) -> Result<i32, RestError> {
    let request = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![s(group)]);
    let mut last = kafka_error(error_code::COORDINATOR_NOT_AVAILABLE, group);
    for _ in 0..COORDINATOR_ATTEMPTS {
        let r: Result<FindCoordinatorResponse, _> = state.client.call(state.broker.node_id(), ApiKey::FindCoordinator, 4, &request, CALL_TIMEOUT).await;
        match r {
            Ok(r) => match r.coordinators.first() {
                Some(c) if c.error_code == 0 => return Ok(c.node_id.0),
                Some(c) if coordinator_moving(c.error_code) => last = kafka_error(c.error_code, &format!("the coordinator of group {group}")),
                Some(c) => return Err(kafka_error(c.error_code, &format!("the coordinator of group {group}"))),
                None => last = kafka_error(error_code::COORDINATOR_NOT_AVAILABLE, group),
            },
            Err(e) => last = unreachable(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

/// A ConsumerProtocolSubscription (version 0) of `topics`.
pub fn subscription_bytes(topics: &[String]) -> bytes::Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    let sub = ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    // Encoding strings and an array into memory cannot fail.
    let _ = sub.encode(&mut buf, 0);
    buf.freeze()
}

/// The topics of a member's subscription (any version); nothing for bytes that do not decode.
pub fn subscribed_topics(mut bytes: &[u8]) -> Vec<String> {
    if bytes.remaining() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16().clamp(0, 3);
    ConsumerProtocolSubscription::decode(&mut bytes, version).map(|s| s.topics.iter().map(|t| t.to_string()).collect()).unwrap_or_default()
}

/// A ConsumerProtocolAssignment (version 0) of `partitions`.
pub fn assignment_bytes(partitions: &[Tp]) -> bytes::Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic.into_iter().map(|(t, ps)| AssignedPartition::default().with_topic(TopicName(s(t))).with_partitions(ps)).collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    let _ = a.encode(&mut buf, 0);
    buf.freeze()
}

/// The partitions of an assignment (any version); nothing for bytes that do not decode.
pub fn assigned_partitions(mut bytes: &[u8]) -> Vec<Tp> {
    if bytes.remaining() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut bytes, version) {
        Ok(a) => a.assigned_partitions.into_iter().flat_map(|tp| tp.partitions.into_iter().map(move |p| (tp.topic.0.to_string(), p))).collect(),
        Err(_) => Vec::new(),
    }
}

/// The outcome of one join attempt.
enum Joined {
    Member { generation: i32, assignment: Vec<Tp> },
    /// The coordinator handed out a member id to join with (MEMBER_ID_REQUIRED).
    MemberId,
    Rebalance,
    Lost,
    Failed,
}

async fn join_once(state: &RestState, group: &str, instance: &str, member_id: &str, topics: &[String]) -> (String, Joined) {
    let Ok(node) = coordinator(state, group).await else { return (member_id.to_string(), Joined::Failed) };
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(SESSION_TIMEOUT_MS as i32)
        .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(subscription_bytes(topics))])
        .with_reason(Some(s(&format!("REST consumer instance {instance}"))));
    let r: JoinGroupResponse = match state.client.call(node, ApiKey::JoinGroup, 8, &join, JOIN_WAIT).await {
        Ok(r) => r,
        Err(_) => return (member_id.to_string(), Joined::Failed),
    };
    let me = r.member_id.to_string();
    match r.error_code {
        0 => {}
        error_code::MEMBER_ID_REQUIRED => return (me, Joined::MemberId),
        error_code::UNKNOWN_MEMBER_ID | error_code::ILLEGAL_GENERATION | error_code::FENCED_INSTANCE_ID => return (String::new(), Joined::Lost),
        error_code::REBALANCE_IN_PROGRESS => return (me, Joined::Rebalance),
        _ => return (member_id.to_string(), Joined::Failed),
    }
    let assignments = if r.leader == r.member_id {
        let members: Vec<(String, Vec<String>)> = r.members.iter().map(|m| (m.member_id.to_string(), subscribed_topics(&m.metadata))).collect();
        let image = state.broker.image();
        let counts: BTreeMap<String, i32> =
            members.iter().flat_map(|(_, ts)| ts).filter_map(|t| Some((t.clone(), image.topic(t)?.partitions.len() as i32))).collect();
        drop(image);
        range_assign(&members, &counts).into_iter().map(|(m, ps)| SyncGroupRequestAssignment::default().with_member_id(s(&m)).with_assignment(assignment_bytes(&ps))).collect()
    } else {
        Vec::new()
    };
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(r.generation_id)
        .with_member_id(r.member_id.clone())
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(r.protocol_name.clone())
        .with_assignments(assignments);
    let sr: SyncGroupResponse = match state.client.call(node, ApiKey::SyncGroup, 5, &sync, JOIN_WAIT).await {
        Ok(r) => r,
        Err(_) => return (me, Joined::Failed),
    };
    match sr.error_code {
        0 => (me, Joined::Member { generation: r.generation_id, assignment: assigned_partitions(&sr.assignment) }),
        error_code::REBALANCE_IN_PROGRESS => (me, Joined::Rebalance),
        error_code::UNKNOWN_MEMBER_ID | error_code::ILLEGAL_GENERATION | error_code::FENCED_INSTANCE_ID => (String::new(), Joined::Lost),
        _ => (me, Joined::Failed),
    }
}

/// Sends LeaveGroup for `member_id` (best effort: a member not heard from leaves anyway after
/// the session timeout).
async fn leave(state: &RestState, group: &str, member_id: &str) {
    if member_id.is_empty() {
        return;
    }
    let Ok(node) = coordinator(state, group).await else { return };
    let request = LeaveGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_members(vec![MemberIdentity::default().with_member_id(s(member_id)).with_reason(Some(s("REST consumer instance deleted or expired")))]);
    let _: Result<LeaveGroupResponse, _> = state.client.call(node, ApiKey::LeaveGroup, 5, &request, CALL_TIMEOUT).await;
}

/// Commits `offsets` for `group` as member `member_id` of `generation` (-1 and "": outside a
/// membership, as a manually assigned consumer commits). The first failed partition's error
/// is the answer.
pub async fn commit(state: &RestState, group: &str, member_id: &str, generation: i32, offsets: &[(Tp, i64)]) -> Result<(), RestError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let node = coordinator(state, group).await?;
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        by_topic.entry(t).or_default().push(OffsetCommitRequestPartition::default().with_partition_index(*p).with_committed_offset(*o).with_committed_leader_epoch(-1));
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_retention_time_ms(-1)
        .with_topics(by_topic.into_iter().map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(TopicName(s(t))).with_partitions(ps)).collect());
    let r: OffsetCommitResponse = state.client.call(node, ApiKey::OffsetCommit, 7, &request, CALL_TIMEOUT).await.map_err(unreachable)?;
    for t in &r.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                return Err(match p.error_code {
                    error_code::UNKNOWN_TOPIC_OR_PARTITION => RestError::unknown_partition(&t.name.0, p.partition_index),
                    // The group rebalanced since the offsets were read (Kafka's CommitFailedException).
                    error_code::REBALANCE_IN_PROGRESS | error_code::ILLEGAL_GENERATION | error_code::UNKNOWN_MEMBER_ID => RestError::new(
                        StatusCode::CONFLICT,
                        40903,
                        "Illegal state: the commit failed because the group rebalanced; read records again, then commit",
                    ),
                    c => kafka_error(c, &format!("the commit of {}-{}", t.name.0, p.partition_index)),
                });
            }
        }
    }
    Ok(())
}

/// The committed offsets (and metadata) of `partitions` in `group`; -1 where none.
pub async fn committed(state: &RestState, group: &str, partitions: &[Tp]) -> Result<Vec<(Tp, i64, String)>, RestError> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let node = coordinator(state, group).await?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(by_topic.into_iter().map(|(t, ps)| OffsetFetchRequestTopic::default().with_name(TopicName(s(t))).with_partition_indexes(ps)).collect()))
        .with_require_stable(false);
    let r: OffsetFetchResponse = state.client.call(node, ApiKey::OffsetFetch, 7, &request, CALL_TIMEOUT).await.map_err(unreachable)?;
    if r.error_code != 0 {
        return Err(kafka_error(r.error_code, &format!("the offsets of group {group}")));
    }
    let mut found: BTreeMap<Tp, (i64, String)> = BTreeMap::new();
    for t in &r.topics {
        for p in &t.partitions {
            if p.error_code == 0 {
                found.insert((t.name.0.to_string(), p.partition_index), (p.committed_offset, p.metadata.as_deref().unwrap_or("").to_string()));
            }
        }
    }
    Ok(partitions.iter().map(|tp| {
        let (o, m) = found.get(tp).cloned().unwrap_or((-1, String::new()));
        (tp.clone(), o, m)
    }).collect())
}

/// The earliest (`timestamp` -2) or latest (-1) offset of each of `partitions`, from their
/// leaders; partitions whose leader cannot answer are left out.
pub async fn list_offsets(state: &RestState, partitions: &[Tp], timestamp: i64) -> BTreeMap<Tp, i64> {
    let image = state.broker.image();
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for (t, p) in partitions {
        if let Some(leader) = image.partition(t, *p).map(|pi| pi.leader).filter(|l| *l >= 0) {
            by_leader.entry(leader).or_default().entry(t.clone()).or_default().push(*p);
        }
    }
    drop(image);
    let mut out = BTreeMap::new();
    for (leader, topics) in by_leader {
        let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(0).with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(s(&t)))
                        .with_partitions(ps.into_iter().map(|p| ListOffsetsPartition::default().with_partition_index(p).with_current_leader_epoch(-1).with_timestamp(timestamp)).collect())
                })
                .collect(),
        );
        let Ok(r) = state.client.call::<_, ListOffsetsResponse>(leader, ApiKey::ListOffsets, 7, &request, CALL_TIMEOUT).await else { continue };
        for t in r.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.offset >= 0 {
                    out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
    }
    out
}

/// The background task of one instance: keeps its group membership (join, heartbeat, leave),
/// auto-commits, and removes it once idle past `rest.consumer.instance.timeout.ms`.
pub async fn drive(state: Arc<RestState>, entry: Arc<Entry>) {
    // The subscription pattern, compiled once per pattern rather than once a round.
    let mut compiled: Option<(String, regex::Regex)> = None;
    loop {
        if entry.is_deleted() {
            let (group, member) = {
                let i = entry.instance.lock();
                (i.group.clone(), i.member_id.clone())
            };
            leave(&state, &group, &member).await;
            return;
        }
        let now = entry.now_ms();
        let (action, group, member_id, generation, expires_at, pattern) = {
            let mut i = entry.instance.lock();
            let pattern = i.pattern().map(str::to_string);
            (i.next_action(now), i.group.clone(), i.member_id.clone(), i.generation, i.expires_at(), pattern)
        };
        if let Some(p) = pattern {
            if compiled.as_ref().is_none_or(|(was, _)| *was != p) {
                compiled = super::v2_consumers::compile(&p).ok().map(|re| (p, re));
            }
            let matched = compiled.as_ref().map(|(_, re)| super::v2_consumers::topics_matching(&state, re)).unwrap_or_default();
            entry.instance.lock().pattern_matches(matched);
        }
        match action {
            Action::Wait(until) => {
                let wait = Duration::from_millis(until.saturating_sub(now).min(1000));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = entry.wake.notified() => {}
                }
            }
            Action::Expire { commit: offsets } => {
                if !offsets.is_empty() {
                    let _ = commit(&state, &group, &member_id, generation, &offsets).await;
                }
                tracing::info!(target: "kafka.rest", group = %group, instance = %entry.id(), "REST consumer instance expired (rest.consumer.instance.timeout.ms)");
                entry.expire(&state);
                leave(&state, &group, &member_id).await;
                return;
            }
            Action::Leave => {
                leave(&state, &group, &member_id).await;
                entry.instance.lock().on_left();
            }
            Action::Heartbeat => {
                let code = match coordinator(&state, &group).await {
                    Ok(node) => {
                        let request = HeartbeatRequest::default().with_group_id(GroupId(s(&group))).with_generation_id(generation).with_member_id(s(&member_id));
                        match state.client.call::<_, HeartbeatResponse>(node, ApiKey::Heartbeat, 3, &request, CALL_TIMEOUT).await {
                            Ok(r) => r.error_code,
                            Err(_) => error_code::COORDINATOR_NOT_AVAILABLE,
                        }
                    }
                    Err(_) => error_code::COORDINATOR_NOT_AVAILABLE,
                };
                let mut i = entry.instance.lock();
                match code {
                    0 => {}
                    error_code::REBALANCE_IN_PROGRESS => i.on_rebalance(),
                    error_code::UNKNOWN_MEMBER_ID | error_code::ILLEGAL_GENERATION | error_code::FENCED_INSTANCE_ID => i.on_membership_lost(),
                    _ => i.on_failure(entry.now_ms()),
                }
            }
            Action::AutoCommit(offsets) => {
                if commit(&state, &group, &member_id, generation, &offsets).await.is_ok() {
                    entry.instance.lock().on_committed(&offsets);
                }
            }
            Action::Join { topics, commit: offsets } => {
                if !offsets.is_empty() && commit(&state, &group, &member_id, generation, &offsets).await.is_ok() {
                    entry.instance.lock().on_committed(&offsets);
                }
                let until = tokio::time::Instant::now() + Duration::from_millis(expires_at.saturating_sub(now));
                let outcome = tokio::select! {
                    r = join_once(&state, &group, entry.id(), &member_id, &topics) => Some(r),
                    _ = tokio::time::sleep_until(until) => None,
                    _ = entry.deleted.notified() => None,
                };
                let now = entry.now_ms();
                let mut i = entry.instance.lock();
                match outcome {
                    None => {}
                    Some((member, result)) => {
                        i.on_member_id(member);
                        match result {
                            Joined::Member { generation, assignment } => {
                                i.on_joined(generation, assignment, now);
                                // The subscription changed during the join: the next round rejoins.
                                if i.subscribed_topics() != topics {
                                    i.on_rebalance();
                                }
                            }
                            Joined::MemberId => {}
                            Joined::Rebalance => i.on_rebalance(),
                            Joined::Lost => i.on_membership_lost(),
                            Joined::Failed => i.on_failure(now),
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_and_assignments_round_trip_in_the_consumer_protocol() {
        let topics = vec!["a".to_string(), "b".to_string()];
        assert_eq!(subscribed_topics(&subscription_bytes(&topics)), topics);
        let parts = vec![("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)];
        assert_eq!(assigned_partitions(&assignment_bytes(&parts)), parts);
        // librdkafka's and Java's subscriptions of later versions decode too; junk is nothing.
        let mut v1 = BytesMut::new();
        v1.put_i16(1);
        ConsumerProtocolSubscription::default().with_topics(vec![s("x")]).encode(&mut v1, 1).unwrap();
        assert_eq!(subscribed_topics(&v1), vec!["x".to_string()]);
        assert!(subscribed_topics(&[0, 0, 0xff, 0xff, 0xff]).is_empty());
        assert!(assigned_partitions(&[1]).is_empty());
    }
}
