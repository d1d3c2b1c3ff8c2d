//! Confluent's v3 consumer-group resources: groups, their consumers and each consumer's
//! assignments, the lag of each committed partition and the group's lag summary. Gathered as
//! Kafka's AdminClient gathers them: ListGroups from every live broker, FindCoordinator, then
//! DescribeGroups and OffsetFetch at the group's coordinator, and ListOffsets (latest,
//! read_committed) at each partition's leader. Lag is log end offset minus committed offset,
//! never below 0 (Confluent's and kafka_consumergroup_lag's definition); a committed partition
//! whose end offset cannot be read is left out, as Confluent leaves it out. Confluent's proxy
//! pages none of these lists, so neither does this one.
use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Buf;
use kafka_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, ListGroupsRequest,
    ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde_json::{json, Value};

use super::error::RestError;
use super::v3::{base_url, cluster, list, number, ok, related};
use super::{admin, Shared};
use crate::error_code;

pub fn routes() -> Router<Shared> {
    // Literal paths: tests/test_rest_proxy.py reads them from here to check the OpenAPI document.
    Router::new()
        .route("/v3/clusters/{cluster_id}/consumer-groups", get(list_groups))
        .route("/v3/clusters/{cluster_id}/consumer-groups/{consumer_group_id}", get(get_group))
        .route("/v3/clusters/{cluster_id}/consumer-groups/{consumer_group_id}/consumers", get(list_consumers))
        .route("/v3/clusters/{cluster_id}/consumer-groups/{consumer_group_id}/consumers/{consumer_id}", get(get_consumer))
        .route("/v3/clusters/{cluster_id}/consumer-groups/{consumer_group_id}/consumers/{consumer_id}/assignments", get(list_assignments))
        .route(
            "/v3/clusters/{cluster_id}/consumer-groups/{consumer_group_id}/consumers/{consumer_id}/assignments/{topic_name}/partitions/{partition_id}",
            get(get_assignment),
        )
        .route("/v3/clusters/{cluster_id}/consumer-groups/{consumer_group_id}/lag-summary", get(get_lag_summary))
        .route("/v3/clusters/{cluster_id}/consumer-groups/{consumer_group_id}/lags", get(list_lags))
        .route("/v3/clusters/{cluster_id}/consumer-groups/{consumer_group_id}/lags/{topic_name}/partitions/{partition_id}", get(get_lag))
}

/// One member as DescribeGroups describes it, its assignment decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    consumer_id: String,
    instance_id: Option<String>,
    client_id: String,
    assignments: Vec<(String, i32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    id: String,
    coordinator: i32,
    state: String,
    protocol_type: String,
    assignor: String,
    members: Vec<Member>,
}

/// One committed partition with its end offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lag {
    topic: String,
    partition: i32,
    current_offset: i64,
    log_end_offset: i64,
    /// The member the partition is assigned to, if any.
    member: Option<Member>,
}

impl Lag {
    fn lag(&self) -> i64 {
        (self.log_end_offset - self.current_offset).max(0)
    }
}

/// Kafka's state names ("PreparingRebalance") as Confluent writes them ("PREPARING_REBALANCE").
fn state_name(kafka: &str) -> String {
    let mut out = String::with_capacity(kafka.len() + 4);
    for (i, ch) in kafka.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// A consumer-protocol assignment (`member_assignment`): its version, then the partitions.
/// Anything else (another protocol, bytes that do not decode) assigns nothing.
fn decode_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    let mut buf = bytes;
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut buf, version) {
        Ok(a) => a.assigned_partitions.into_iter().flat_map(|tp| tp.partitions.into_iter().map(move |p| (tp.topic.0.to_string(), p))).collect(),
        Err(_) => Vec::new(),
    }
}

/// A Kafka error about `what` (a group, its coordinator), with Confluent's status and code.
fn kafka_error(code: i16, what: &str) -> RestError {
    let mut e = RestError::from_kafka(code, what, -1, None);
    e.message = format!("Kafka error {} for {what}", crate::metrics::requests::error_name(code));
    e
}

/// How often, and how far apart, a group's coordinator is asked again while it is not ready
/// (the offsets topic just created, its partition loading, the coordinator moving), as Kafka's
/// AdminClient retries these.
const COORDINATOR_ATTEMPTS: u32 = 50;
const COORDINATOR_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

fn coordinator_retriable(code: i16) -> bool {
    matches!(code, error_code::COORDINATOR_NOT_AVAILABLE | error_code::COORDINATOR_LOAD_IN_PROGRESS | error_code::NOT_COORDINATOR)
}

/// A failed attempt: worth another (a coordinator not ready) or final.
enum Attempt {
    Again(RestError),
    Fail(RestError),
}

impl From<RestError> for Attempt {
    fn from(e: RestError) -> Self {
        Attempt::Fail(e)
    }
}

fn answer(code: i16, what: String) -> Attempt {
    let e = kafka_error(code, &what);
    if coordinator_retriable(code) {
        Attempt::Again(e)
    } else {
        Attempt::Fail(e)
    }
}

/// The groups that exist among `ids` (Kafka describes an unknown group as Dead with no
/// protocol type, which Confluent treats as not found).
async fn describe(state: &Shared, ids: &[String]) -> Result<Vec<Group>, RestError> {
    let mut attempt = 1;
    loop {
        match describe_once(state, ids).await {
            Ok(groups) => return Ok(groups),
            Err(Attempt::Again(_)) if attempt < COORDINATOR_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(COORDINATOR_BACKOFF).await;
            }
            Err(Attempt::Again(e) | Attempt::Fail(e)) => return Err(e),
        }
    }
}

async fn describe_once(state: &Shared, ids: &[String]) -> Result<Vec<Group>, Attempt> {
    // FindCoordinator v4 asks for every group's coordinator at once.
    let request = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(ids.iter().map(|g| StrBytes::from_string(g.clone())).collect());
    let response: FindCoordinatorResponse = admin::call(state, state.broker.node_id(), ApiKey::FindCoordinator, 4, &request).await?;
    let mut by_node: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for c in response.coordinators {
        if c.error_code != 0 {
            return Err(answer(c.error_code, format!("the coordinator of group {}", c.key)));
        }
        by_node.entry(c.node_id.0).or_default().push(c.key.to_string());
    }
    let mut groups = Vec::new();
    for (node, ids) in by_node {
        let request = DescribeGroupsRequest::default().with_groups(ids.into_iter().map(|g| GroupId(StrBytes::from_string(g))).collect());
        let response: DescribeGroupsResponse = admin::call(state, node, ApiKey::DescribeGroups, 5, &request).await?;
        for g in response.groups {
            if g.error_code == error_code::GROUP_ID_NOT_FOUND {
                continue;
            }
            if g.error_code != 0 {
                return Err(answer(g.error_code, format!("group {}", g.group_id.0)));
            }
            if g.group_state.as_str() == "Dead" && g.protocol_type.is_empty() {
                continue;
            }
            let members = g
                .members
                .iter()
                .map(|m| Member {
                    consumer_id: m.member_id.to_string(),
                    instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    assignments: decode_assignment(&m.member_assignment),
                })
                .collect();
            groups.push(Group {
                id: g.group_id.0.to_string(),
                coordinator: node,
                state: state_name(&g.group_state),
                protocol_type: g.protocol_type.to_string(),
                assignor: g.protocol_data.to_string(),
                members,
            });
        }
    }
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(groups)
}

async fn group(state: &Shared, cluster_id: &str, id: &str) -> Result<Group, RestError> {
    cluster(state, cluster_id)?;
    describe(state, &[id.to_string()])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| RestError::not_found(format!("Consumer Group {id} could not be found.")))
}

/// The committed partitions of `g` with their end offsets, sorted as Confluent sorts them
/// (largest lag first, then topic and partition). 404 when the group has committed nothing.
async fn lags(state: &Shared, g: &Group) -> Result<Vec<Lag>, RestError> {
    let request = OffsetFetchRequest::default().with_group_id(GroupId(StrBytes::from_string(g.id.clone()))).with_topics(None).with_require_stable(true);
    let response: OffsetFetchResponse = admin::call(state, g.coordinator, ApiKey::OffsetFetch, 7, &request).await?;
    if response.error_code != 0 {
        return Err(kafka_error(response.error_code, &format!("the offsets of group {}", g.id)));
    }
    let committed: Vec<(String, i32, i64)> = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().filter(|p| p.error_code == 0 && p.committed_offset >= 0).map(move |p| (t.name.0.to_string(), p.partition_index, p.committed_offset)))
        .collect();
    if committed.is_empty() {
        return Err(RestError::not_found("Consumer group offsets could not be found."));
    }
    // Each leader is asked for its partitions' end offsets.
    let image = state.broker.image();
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for (t, p, _) in &committed {
        if let Some(leader) = image.partition(t, *p).map(|pi| pi.leader).filter(|l| *l >= 0) {
            by_leader.entry(leader).or_default().entry(t.clone()).or_default().push(*p);
        }
    }
    drop(image);
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (leader, topics) in by_leader {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t)))
                            .with_partitions(ps.into_iter().map(|p| ListOffsetsPartition::default().with_partition_index(p).with_current_leader_epoch(-1).with_timestamp(-1)).collect())
                    })
                    .collect(),
            );
        // A leader that cannot answer leaves its partitions out, as a failed end offset does.
        let Ok(response) = admin::call::<_, ListOffsetsResponse>(state, leader, ApiKey::ListOffsets, 7, &request).await else { continue };
        for t in response.topics {
            for p in t.partitions.into_iter().filter(|p| p.error_code == 0 && p.offset >= 0) {
                ends.insert((t.name.0.to_string(), p.partition_index), p.offset);
            }
        }
    }
    let owner = |t: &str, p: i32| g.members.iter().find(|m| m.assignments.iter().any(|(at, ap)| at == t && *ap == p)).cloned();
    let mut out: Vec<Lag> = committed
        .into_iter()
        .filter_map(|(t, p, current)| {
            let end = *ends.get(&(t.clone(), p))?;
            Some(Lag { member: owner(&t, p), topic: t, partition: p, current_offset: current, log_end_offset: end })
        })
        .collect();
    out.sort_by(|a, b| b.lag().cmp(&a.lag()).then_with(|| a.topic.cmp(&b.topic)).then(a.partition.cmp(&b.partition)));
    Ok(out)
}

fn group_url(base: &str, c: &str, g: &str) -> String {
    format!("{base}/v3/clusters/{c}/consumer-groups/{g}")
}

fn group_json(base: &str, c: &str, g: &Group) -> Value {
    let url = group_url(base, c, &g.id);
    json!({
        "kind": "KafkaConsumerGroup",
        "metadata": { "self": url, "resource_name": format!("crn:///kafka={c}/consumer-group={}", g.id) },
        "cluster_id": c,
        "consumer_group_id": g.id,
        "is_simple": g.protocol_type.is_empty(),
        "partition_assignor": g.assignor,
        "state": g.state,
        "type": "CLASSIC",
        "is_mixed_consumer_group": false,
        "coordinator": related(format!("{base}/v3/clusters/{c}/brokers/{}", g.coordinator)),
        "consumers": related(format!("{url}/consumers")),
        "lag_summary": related(format!("{url}/lag-summary")),
    })
}

fn consumer_json(base: &str, c: &str, g: &str, m: &Member) -> Value {
    let url = format!("{}/consumers/{}", group_url(base, c, g), m.consumer_id);
    json!({
        "kind": "KafkaConsumer",
        "metadata": { "self": url, "resource_name": format!("crn:///kafka={c}/consumer-group={g}/consumer={}", m.consumer_id) },
        "cluster_id": c,
        "consumer_group_id": g,
        "consumer_id": m.consumer_id,
        "instance_id": m.instance_id,
        "client_id": m.client_id,
        "assignments": related(format!("{url}/assignments")),
    })
}

fn assignment_json(base: &str, c: &str, g: &str, m: &Member, t: &str, p: i32) -> Value {
    let group = group_url(base, c, g);
    json!({
        "kind": "KafkaConsumerAssignment",
        "metadata": {
            "self": format!("{group}/consumers/{}/assignments/{t}/partitions/{p}", m.consumer_id),
            "resource_name": format!("crn:///kafka={c}/consumer-group={g}/consumer={}/assignment={t}/partition={p}", m.consumer_id),
        },
        "cluster_id": c,
        "consumer_group_id": g,
        "consumer_id": m.consumer_id,
        "topic_name": t,
        "partition_id": p,
        "partition": related(format!("{base}/v3/clusters/{c}/topics/{t}/partitions/{p}")),
        "lag": related(format!("{group}/lags/{t}/partitions/{p}")),
    })
}

fn lag_json(base: &str, c: &str, g: &str, l: &Lag) -> Value {
    json!({
        "kind": "KafkaConsumerLag",
        "metadata": {
            "self": format!("{}/lags/{}/partitions/{}", group_url(base, c, g), l.topic, l.partition),
            "resource_name": format!("crn:///kafka={c}/consumer-group={g}/lag={}/partition={}", l.topic, l.partition),
        },
        "cluster_id": c,
        "consumer_group_id": g,
        "topic_name": l.topic,
        "partition_id": l.partition,
        "consumer_id": l.member.as_ref().map_or("", |m| m.consumer_id.as_str()),
        "instance_id": l.member.as_ref().and_then(|m| m.instance_id.clone()),
        "client_id": l.member.as_ref().map_or("", |m| m.client_id.as_str()),
        "current_offset": l.current_offset,
        "log_end_offset": l.log_end_offset,
        "lag": l.lag(),
    })
}

/// The summary of `lags` (sorted largest first): the total, and the partition with the largest
/// lag (the first in topic and partition order among equals, so a group with no lag names its
/// first committed partition).
fn lag_summary_json(base: &str, c: &str, g: &str, lags: &[Lag]) -> Value {
    let url = group_url(base, c, g);
    let max = lags.first();
    let member = max.and_then(|l| l.member.as_ref());
    let consumer_id = member.map_or("", |m| m.consumer_id.as_str());
    json!({
        "kind": "KafkaConsumerGroupLagSummary",
        "metadata": { "self": format!("{url}/lag-summary"), "resource_name": format!("crn:///kafka={c}/consumer-group={g}/lag-summary") },
        "cluster_id": c,
        "consumer_group_id": g,
        "max_lag": max.map_or(0, Lag::lag),
        "total_lag": lags.iter().map(Lag::lag).sum::<i64>(),
        "max_lag_consumer_id": consumer_id,
        "max_lag_consumer": related(format!("{url}/consumers/{consumer_id}")),
        "max_lag_client_id": member.map_or("", |m| m.client_id.as_str()),
        "max_lag_instance_id": member.and_then(|m| m.instance_id.clone()),
        "max_lag_topic_name": max.map_or("", |l| l.topic.as_str()),
        "max_lag_partition_id": max.map_or(0, |l| l.partition),
        "max_lag_partition": related(format!("{base}/v3/clusters/{c}/topics/{}/partitions/{}", max.map_or("", |l| l.topic.as_str()), max.map_or(0, |l| l.partition))),
    })
}

async fn list_groups(State(state): State<Shared>, headers: HeaderMap, Path(c): Path<String>) -> Result<Response, RestError> {
    let image = cluster(&state, &c)?;
    let nodes: Vec<i32> = image.live_brokers().map(|b| b.id).collect();
    drop(image);
    // Every broker lists the groups it coordinates; consumer groups have the protocol type
    // "consumer", or none when they only commit offsets.
    let mut ids = Vec::new();
    for node in nodes {
        let response: ListGroupsResponse = admin::call(&state, node, ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await?;
        if response.error_code != 0 {
            return Err(kafka_error(response.error_code, &format!("the groups of broker {node}")));
        }
        ids.extend(response.groups.into_iter().filter(|g| matches!(g.protocol_type.as_str(), "consumer" | "")).map(|g| g.group_id.0.to_string()));
    }
    ids.sort();
    ids.dedup();
    let base = base_url(&headers);
    let groups = if ids.is_empty() { Vec::new() } else { describe(&state, &ids).await? };
    let data = groups.iter().map(|g| group_json(&base, &c, g)).collect();
    Ok(ok(list("KafkaConsumerGroupList", format!("{base}/v3/clusters/{c}/consumer-groups"), data)))
}

async fn get_group(State(state): State<Shared>, headers: HeaderMap, Path((c, g)): Path<(String, String)>) -> Result<Response, RestError> {
    let group = group(&state, &c, &g).await?;
    Ok(ok(group_json(&base_url(&headers), &c, &group)))
}

async fn list_consumers(State(state): State<Shared>, headers: HeaderMap, Path((c, g)): Path<(String, String)>) -> Result<Response, RestError> {
    let group = group(&state, &c, &g).await?;
    let base = base_url(&headers);
    let mut members = group.members;
    members.sort_by(|a, b| a.consumer_id.cmp(&b.consumer_id));
    let data = members.iter().map(|m| consumer_json(&base, &c, &g, m)).collect();
    Ok(ok(list("KafkaConsumerList", format!("{}/consumers", group_url(&base, &c, &g)), data)))
}

fn member(group: Group, consumer_id: &str) -> Result<Member, RestError> {
    let g = group.id;
    group
        .members
        .into_iter()
        .find(|m| m.consumer_id == consumer_id)
        .ok_or_else(|| RestError::not_found(format!("Consumer {consumer_id} cannot be found in consumer group {g}.")))
}

async fn get_consumer(State(state): State<Shared>, headers: HeaderMap, Path((c, g, m)): Path<(String, String, String)>) -> Result<Response, RestError> {
    let m = member(group(&state, &c, &g).await?, &m)?;
    Ok(ok(consumer_json(&base_url(&headers), &c, &g, &m)))
}

async fn list_assignments(State(state): State<Shared>, headers: HeaderMap, Path((c, g, m)): Path<(String, String, String)>) -> Result<Response, RestError> {
    let m = member(group(&state, &c, &g).await?, &m)?;
    let base = base_url(&headers);
    let data = m.assignments.iter().map(|(t, p)| assignment_json(&base, &c, &g, &m, t, *p)).collect();
    Ok(ok(list("KafkaConsumerAssignmentList", format!("{}/consumers/{}/assignments", group_url(&base, &c, &g), m.consumer_id), data)))
}

/// One partition of the member's assignment (404 when it is not assigned that partition).
async fn get_assignment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((c, g, m, t, p)): Path<(String, String, String, String, String)>,
) -> Result<Response, RestError> {
    let m = member(group(&state, &c, &g).await?, &m)?;
    let p = p.parse::<i32>().ok().filter(|p| m.assignments.iter().any(|(at, ap)| *at == t && ap == p));
    let p = p.ok_or_else(|| RestError::not_found(format!("Consumer assignment cannot be found: {} is not assigned that partition of {t}.", m.consumer_id)))?;
    Ok(ok(assignment_json(&base_url(&headers), &c, &g, &m, &t, p)))
}

async fn get_lag_summary(State(state): State<Shared>, headers: HeaderMap, Path((c, g)): Path<(String, String)>) -> Result<Response, RestError> {
    let group = group(&state, &c, &g).await?;
    let lags = lags(&state, &group).await?;
    Ok(ok(lag_summary_json(&base_url(&headers), &c, &g, &lags)))
}

async fn list_lags(State(state): State<Shared>, headers: HeaderMap, Path((c, g)): Path<(String, String)>) -> Result<Response, RestError> {
    let group = group(&state, &c, &g).await?;
    let lags = lags(&state, &group).await?;
    let base = base_url(&headers);
    let data = lags.iter().map(|l| lag_json(&base, &c, &g, l)).collect();
    Ok(ok(list("KafkaConsumerLagList", format!("{}/lags", group_url(&base, &c, &g)), data)))
}

async fn get_lag(State(state): State<Shared>, headers: HeaderMap, Path((c, g, t, p)): Path<(String, String, String, String)>) -> Result<Response, RestError> {
    let p = number(&p)?;
    let group = group(&state, &c, &g).await?;
    let lag = lags(&state, &group)
        .await?
        .into_iter()
        .find(|l| l.topic == t && l.partition == p)
        .ok_or_else(|| RestError::not_found(format!("Consumer group {g} has no committed offset for {t}-{p}.")))?;
    Ok(ok(lag_json(&base_url(&headers), &c, &g, &lag)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn states_are_written_as_confluent_writes_them() {
        assert_eq!(state_name("PreparingRebalance"), "PREPARING_REBALANCE");
        assert_eq!(state_name("Stable"), "STABLE");
        assert_eq!(state_name("CompletingRebalance"), "COMPLETING_REBALANCE");
    }

    #[test]
    fn assignments_decode_and_garbage_assigns_nothing() {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![TopicPartition::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![0, 2])]);
        let mut bytes = bytes::BytesMut::new();
        bytes.extend_from_slice(&1i16.to_be_bytes());
        a.encode(&mut bytes, 1).unwrap();
        assert_eq!(decode_assignment(&bytes), vec![("t".to_string(), 0), ("t".to_string(), 2)]);
        assert!(decode_assignment(&[]).is_empty());
        assert!(decode_assignment(&[0, 1, 0xff, 0xff, 0xff]).is_empty());
    }

    fn lag(t: &str, p: i32, current: i64, end: i64) -> Lag {
        Lag { topic: t.into(), partition: p, current_offset: current, log_end_offset: end, member: None }
    }

    #[test]
    fn the_summary_totals_and_names_the_largest_lag() {
        let lags = vec![lag("b", 1, 2, 9), lag("a", 0, 5, 8), lag("a", 1, 10, 7)];
        let v = lag_summary_json("http://h", "c", "g", &lags);
        assert_eq!((v["max_lag"].as_i64(), v["total_lag"].as_i64()), (Some(7), Some(10)));
        assert_eq!((v["max_lag_topic_name"].as_str(), v["max_lag_partition_id"].as_i64()), (Some("b"), Some(1)));
        assert_eq!(v["max_lag_partition"]["related"], "http://h/v3/clusters/c/topics/b/partitions/1");
        // An end offset behind the committed one is no lag, never a negative one.
        assert_eq!(lags[2].lag(), 0);
    }
}
