//! Confluent's v3 resources: the cluster, its brokers, topics, partitions and replicas (read
//! from this broker's metadata image, which every broker keeps current), and topic creation and
//! deletion (CreateTopics and DeleteTopics sent to this broker, which hands them to the active
//! controller). Each body has Confluent's `kind` and `metadata` (`self`, `resource_name`).
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use super::error::RestError;
use super::{body, Shared};
use crate::controller::{MetadataImage, PartitionImage, TopicImage};
use crate::error_code;

/// Confluent's code for a request Kafka refused as bad (an existing topic, a bad config).
const KAFKA_BAD_REQUEST: u32 = 40002;
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v3/clusters", get(list_clusters))
        .route("/v3/clusters/{cluster_id}", get(get_cluster))
        .route("/v3/clusters/{cluster_id}/brokers", get(list_brokers))
        .route("/v3/clusters/{cluster_id}/brokers/{broker_id}", get(get_broker))
        .route("/v3/clusters/{cluster_id}/topics", get(list_topics).post(create_topic))
        .route("/v3/clusters/{cluster_id}/topics/{topic_name}", get(get_topic).delete(delete_topic))
        .route("/v3/clusters/{cluster_id}/topics/{topic_name}/partitions", get(list_partitions))
        .route("/v3/clusters/{cluster_id}/topics/{topic_name}/partitions/{partition_id}", get(get_partition))
        .route("/v3/clusters/{cluster_id}/topics/{topic_name}/partitions/{partition_id}/replicas", get(list_replicas))
        .route("/v3/clusters/{cluster_id}/topics/{topic_name}/partitions/{partition_id}/replicas/{broker_id}", get(get_replica))
}

/// `http://<Host>` as the client addressed this broker: the base of every `metadata.self`;
/// `https://` on a TLS listener or behind a proxy that says so (`X-Forwarded-Proto: https`,
/// which `tls::mark_https` sets on the https listeners).
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()));
    let https = super::tls::came_over_https(headers);
    format!("{}://{}", if https { "https" } else { "http" }, host.unwrap_or("localhost"))
}

pub fn json_response(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

pub fn ok(v: Value) -> Response {
    json_response(StatusCode::OK, &v)
}

/// The metadata image, if `cluster_id` is this cluster's.
pub fn cluster(state: &Shared, cluster_id: &str) -> Result<std::sync::Arc<MetadataImage>, RestError> {
    let image = state.broker.image();
    if image.cluster_id != cluster_id {
        return Err(RestError::not_found(format!("Cluster {cluster_id} cannot be found.")));
    }
    Ok(image)
}

pub fn topic<'a>(image: &'a MetadataImage, name: &str) -> Result<&'a TopicImage, RestError> {
    image.topic(name).ok_or_else(|| RestError::unknown_topic(name))
}

/// 404 unless `cluster_id` is this cluster's and `topic_name` one of its topics (the check
/// before a request that needs nothing else from the image).
pub fn check_topic(state: &Shared, cluster_id: &str, topic_name: &str) -> Result<(), RestError> {
    let image = cluster(state, cluster_id)?;
    topic(&image, topic_name).map(|_| ())
}

/// A path segment that must be a number (Confluent's proxy answers 404 for one that is not).
pub fn number(segment: &str) -> Result<i32, RestError> {
    segment.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| RestError::not_found("HTTP 404 Not Found"))
}

fn partition<'a>(t: &'a TopicImage, segment: &str) -> Result<(i32, &'a PartitionImage), RestError> {
    let p = number(segment)?;
    t.partitions.get(p as usize).map(|pi| (p, pi)).ok_or_else(|| RestError::unknown_partition(&t.name, p))
}

pub fn related(url: String) -> Value {
    json!({ "related": url })
}

pub fn list(kind: &str, self_url: String, data: Vec<Value>) -> Value {
    json!({ "kind": kind, "metadata": { "self": self_url, "next": null }, "data": data })
}

fn cluster_data(base: &str, image: &MetadataImage, controller: i32) -> Value {
    let c = &image.cluster_id;
    let url = format!("{base}/v3/clusters/{c}");
    json!({
        "kind": "KafkaCluster",
        "metadata": { "self": url, "resource_name": format!("crn:///kafka={c}") },
        "cluster_id": c,
        "controller": if controller >= 0 { related(format!("{url}/brokers/{controller}")) } else { Value::Null },
        "acls": related(format!("{url}/acls")),
        "brokers": related(format!("{url}/brokers")),
        "broker_configs": related(format!("{url}/broker-configs")),
        "consumer_groups": related(format!("{url}/consumer-groups")),
        "topics": related(format!("{url}/topics")),
        "partition_reassignments": related(format!("{url}/topics/-/partitions/-/reassignment")),
    })
}

fn broker_data(base: &str, image: &MetadataImage, id: i32, listener: &str) -> Option<Value> {
    let b = image.brokers.get(&id)?;
    let c = &image.cluster_id;
    let url = format!("{base}/v3/clusters/{c}/brokers/{id}");
    let endpoint = b.client_endpoint(listener).or(b.endpoints.first());
    Some(json!({
        "kind": "KafkaBroker",
        "metadata": { "self": url, "resource_name": format!("crn:///kafka={c}/broker={id}") },
        "cluster_id": c,
        "broker_id": id,
        "host": endpoint.map(|e| e.host.clone()),
        "port": endpoint.map(|e| e.port),
        "rack": b.rack,
        "configs": related(format!("{url}/configs")),
        "partition_replicas": related(format!("{url}/partition-replicas")),
    }))
}

fn topic_data(base: &str, image: &MetadataImage, t: &TopicImage) -> Value {
    let c = &image.cluster_id;
    let url = format!("{base}/v3/clusters/{c}/topics/{}", t.name);
    json!({
        "kind": "KafkaTopic",
        "metadata": { "self": url, "resource_name": format!("crn:///kafka={c}/topic={}", t.name) },
        "cluster_id": c,
        "topic_name": t.name,
        "is_internal": t.name.starts_with("__"),
        "replication_factor": t.partitions.first().map_or(0, |p| p.replication_factor()),
        "partitions_count": t.partitions.len(),
        "partitions": related(format!("{url}/partitions")),
        "configs": related(format!("{url}/configs")),
        "partition_reassignments": related(format!("{url}/partitions/-/reassignment")),
    })
}

fn partition_data(base: &str, image: &MetadataImage, t: &str, p: i32, pi: &PartitionImage) -> Value {
    let c = &image.cluster_id;
    let url = format!("{base}/v3/clusters/{c}/topics/{t}/partitions/{p}");
    json!({
        "kind": "KafkaPartition",
        "metadata": { "self": url, "resource_name": format!("crn:///kafka={c}/topic={t}/partition={p}") },
        "cluster_id": c,
        "topic_name": t,
        "partition_id": p,
        "leader": if pi.leader >= 0 { related(format!("{url}/replicas/{}", pi.leader)) } else { Value::Null },
        "replicas": related(format!("{url}/replicas")),
        "reassignment": related(format!("{url}/reassignment")),
    })
}

fn replica_data(base: &str, image: &MetadataImage, t: &str, p: i32, pi: &PartitionImage, broker: i32) -> Value {
    let c = &image.cluster_id;
    json!({
        "kind": "KafkaReplica",
        "metadata": {
            "self": format!("{base}/v3/clusters/{c}/topics/{t}/partitions/{p}/replicas/{broker}"),
            "resource_name": format!("crn:///kafka={c}/topic={t}/partition={p}/replica={broker}"),
        },
        "cluster_id": c,
        "topic_name": t,
        "partition_id": p,
        "broker_id": broker,
        "is_leader": pi.leader == broker,
        "is_in_sync": pi.isr.contains(&broker),
        "broker": related(format!("{base}/v3/clusters/{c}/brokers/{broker}")),
    })
}

async fn list_clusters(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let image = state.broker.image();
    let data = vec![cluster_data(&base, &image, state.broker.controller.controller_id())];
    ok(list("KafkaClusterList", format!("{base}/v3/clusters"), data))
}

async fn get_cluster(State(state): State<Shared>, headers: HeaderMap, Path(c): Path<String>) -> Result<Response, RestError> {
    let image = cluster(&state, &c)?;
    Ok(ok(cluster_data(&base_url(&headers), &image, state.broker.controller.controller_id())))
}

async fn list_brokers(State(state): State<Shared>, headers: HeaderMap, Path(c): Path<String>) -> Result<Response, RestError> {
    let image = cluster(&state, &c)?;
    let base = base_url(&headers);
    let listener = &state.broker.config.cluster.inter_broker_listener_name;
    let data = image.live_brokers().filter_map(|b| broker_data(&base, &image, b.id, listener)).collect();
    Ok(ok(list("KafkaBrokerList", format!("{base}/v3/clusters/{c}/brokers"), data)))
}

async fn get_broker(State(state): State<Shared>, headers: HeaderMap, Path((c, b)): Path<(String, String)>) -> Result<Response, RestError> {
    let image = cluster(&state, &c)?;
    let id = number(&b)?;
    let listener = &state.broker.config.cluster.inter_broker_listener_name;
    broker_data(&base_url(&headers), &image, id, listener).map(ok).ok_or_else(|| RestError::not_found(format!("Broker {id} cannot be found.")))
}

async fn list_topics(State(state): State<Shared>, headers: HeaderMap, Path(c): Path<String>) -> Result<Response, RestError> {
    let image = cluster(&state, &c)?;
    let base = base_url(&headers);
    let data = image.topics.values().map(|t| topic_data(&base, &image, t)).collect();
    Ok(ok(list("KafkaTopicList", format!("{base}/v3/clusters/{c}/topics"), data)))
}

async fn get_topic(State(state): State<Shared>, headers: HeaderMap, Path((c, t)): Path<(String, String)>) -> Result<Response, RestError> {
    let image = cluster(&state, &c)?;
    Ok(ok(topic_data(&base_url(&headers), &image, topic(&image, &t)?)))
}

async fn list_partitions(State(state): State<Shared>, headers: HeaderMap, Path((c, t)): Path<(String, String)>) -> Result<Response, RestError> {
    let image = cluster(&state, &c)?;
    let base = base_url(&headers);
    let ti = topic(&image, &t)?;
    let data = ti.partitions.iter().enumerate().map(|(p, pi)| partition_data(&base, &image, &t, p as i32, pi)).collect();
    Ok(ok(list("KafkaPartitionList", format!("{base}/v3/clusters/{c}/topics/{t}/partitions"), data)))
}

async fn get_partition(State(state): State<Shared>, headers: HeaderMap, Path((c, t, p)): Path<(String, String, String)>) -> Result<Response, RestError> {
    let image = cluster(&state, &c)?;
    let (p, pi) = partition(topic(&image, &t)?, &p)?;
    Ok(ok(partition_data(&base_url(&headers), &image, &t, p, pi)))
}

async fn list_replicas(State(state): State<Shared>, headers: HeaderMap, Path((c, t, p)): Path<(String, String, String)>) -> Result<Response, RestError> {
    let image = cluster(&state, &c)?;
    let base = base_url(&headers);
    let (p, pi) = partition(topic(&image, &t)?, &p)?;
    let data = pi.replicas.iter().map(|b| replica_data(&base, &image, &t, p, pi, *b)).collect();
    Ok(ok(list("KafkaReplicaList", format!("{base}/v3/clusters/{c}/topics/{t}/partitions/{p}/replicas"), data)))
}

async fn get_replica(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((c, t, p, b)): Path<(String, String, String, String)>,
) -> Result<Response, RestError> {
    let image = cluster(&state, &c)?;
    let (p, pi) = partition(topic(&image, &t)?, &p)?;
    let b = number(&b)?;
    if !pi.replicas.contains(&b) {
        return Err(RestError::not_found(format!("Replica {b} of {t}-{p} cannot be found.")));
    }
    Ok(ok(replica_data(&base_url(&headers), &image, &t, p, pi, b)))
}

/// `{"topic_name", "partitions_count", "replication_factor", "configs": [{"name", "value"}],
/// "validate_only"}` as a CreateTopics topic (-1: the broker's default).
fn creatable_topic(v: &Value) -> Result<(CreatableTopic, bool), RestError> {
    let obj = v.as_object().ok_or_else(|| RestError::invalid("body", "expected a JSON object"))?;
    let name = obj.get("topic_name").and_then(Value::as_str).ok_or_else(|| RestError::invalid("topic_name", "expected a string"))?;
    let int = |field: &str, max: i64| -> Result<i64, RestError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(-1),
            Some(Value::Number(n)) => n.as_i64().filter(|n| (1..=max).contains(n)).ok_or_else(|| RestError::invalid(field, format!("{n} is not from 1 to {max}"))),
            Some(_) => Err(RestError::invalid(field, "expected an integer")),
        }
    };
    let partitions = int("partitions_count", i64::from(i32::MAX))? as i32;
    let replication = int("replication_factor", i64::from(i16::MAX))? as i16;
    let mut configs = Vec::new();
    match obj.get("configs") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cs)) => {
            for (i, c) in cs.iter().enumerate() {
                let n = c.get("name").and_then(Value::as_str).ok_or_else(|| RestError::invalid(&format!("configs[{i}].name"), "expected a string"))?;
                let value = match c.get("value") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(StrBytes::from_string(s.clone())),
                    Some(_) => return Err(RestError::invalid(&format!("configs[{i}].value"), "expected a string or null")),
                };
                configs.push(CreatableTopicConfig::default().with_name(StrBytes::from_string(n.to_string())).with_value(value));
            }
        }
        Some(_) => return Err(RestError::invalid("configs", "expected an array")),
    }
    let assignments = replicas_assignments(obj.get("replicas_assignments"))?;
    let validate_only = match obj.get("validate_only") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(RestError::invalid("validate_only", "expected true or false")),
    };
    // With explicit assignments the counts come from them, as Kafka's NewTopic has it.
    let (partitions, replication) = if assignments.is_empty() { (partitions, replication) } else { (-1, -1) };
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(partitions)
        .with_replication_factor(replication)
        .with_assignments(assignments)
        .with_configs(configs);
    Ok((topic, validate_only))
}

/// Confluent's `replicas_assignments`: `{"<partition>": [<broker id>, ...]}`. The broker checks
/// that the partitions are 0..n and the lists alike in length and made of live brokers.
fn replicas_assignments(v: Option<&Value>) -> Result<Vec<CreatableReplicaAssignment>, RestError> {
    let map = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(RestError::invalid("replicas_assignments", "expected an object of partition id to broker ids")),
    };
    let mut out = Vec::with_capacity(map.len());
    for (partition, brokers) in map {
        let field = format!("replicas_assignments.{partition}");
        let index = partition.parse::<i32>().ok().filter(|p| *p >= 0).ok_or_else(|| RestError::invalid(&field, "the key is not a partition id"))?;
        let ids = brokers.as_array().ok_or_else(|| RestError::invalid(&field, "expected an array of broker ids"))?;
        let ids = ids
            .iter()
            .map(|b| b.as_i64().and_then(|b| i32::try_from(b).ok()).map(BrokerId).ok_or_else(|| RestError::invalid(&field, "expected broker ids")))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(CreatableReplicaAssignment::default().with_partition_index(index).with_broker_ids(ids));
    }
    out.sort_by_key(|a| a.partition_index);
    Ok(out)
}

/// A Kafka admin error as Confluent answers it.
pub fn admin_error(code: i16, message: Option<String>, topic: &str) -> RestError {
    let detail = message.unwrap_or_else(|| crate::metrics::requests::error_name(code));
    match code {
        error_code::UNKNOWN_TOPIC_OR_PARTITION => RestError::unknown_topic(topic),
        error_code::TOPIC_ALREADY_EXISTS => RestError::new(StatusCode::BAD_REQUEST, KAFKA_BAD_REQUEST, format!("Topic '{topic}' already exists.")),
        error_code::INVALID_TOPIC_EXCEPTION
        | error_code::INVALID_PARTITIONS
        | error_code::INVALID_REPLICATION_FACTOR
        | error_code::INVALID_REPLICA_ASSIGNMENT
        | error_code::INVALID_CONFIG
        | error_code::INVALID_REQUEST
        | error_code::POLICY_VIOLATION
        | error_code::TOPIC_DELETION_DISABLED => RestError::new(StatusCode::BAD_REQUEST, KAFKA_BAD_REQUEST, detail),
        c => RestError::from_kafka(c, topic, -1, Some(&detail)),
    }
}

async fn create_topic(State(state): State<Shared>, headers: HeaderMap, Path(c): Path<String>, body: Body) -> Result<Response, RestError> {
    cluster(&state, &c)?;
    let v = body::read_json(&headers, body, &state.config).await?;
    let (topic, validate_only) = creatable_topic(&v)?;
    let name = topic.name.0.to_string();
    let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(ADMIN_TIMEOUT.as_millis() as i32).with_validate_only(validate_only);
    let node = state.broker.node_id();
    let response: CreateTopicsResponse = state
        .client
        .call(node, ApiKey::CreateTopics, 5, &request, ADMIN_TIMEOUT + Duration::from_secs(5))
        .await
        .map_err(|e| RestError::new(StatusCode::INTERNAL_SERVER_ERROR, super::error::KAFKA_RETRIABLE, e.to_string()))?;
    let result = response.topics.into_iter().next().ok_or_else(|| RestError::from_kafka(error_code::UNKNOWN_SERVER_ERROR, &name, -1, Some("no result")))?;
    if result.error_code != 0 {
        return Err(admin_error(result.error_code, result.error_message.map(|m| m.to_string()), &name));
    }
    let base = base_url(&headers);
    let image = state.broker.image();
    let body = match image.topic(&name).filter(|_| !validate_only) {
        Some(t) => topic_data(&base, &image, t),
        // Validated only: described from the answer, as it would be.
        None => json!({
            "kind": "KafkaTopic",
            "metadata": { "self": format!("{base}/v3/clusters/{c}/topics/{name}"), "resource_name": format!("crn:///kafka={c}/topic={name}") },
            "cluster_id": c, "topic_name": name, "is_internal": false,
            "replication_factor": result.replication_factor, "partitions_count": result.num_partitions,
            "partitions": related(format!("{base}/v3/clusters/{c}/topics/{name}/partitions")),
            "configs": related(format!("{base}/v3/clusters/{c}/topics/{name}/configs")),
            "partition_reassignments": related(format!("{base}/v3/clusters/{c}/topics/{name}/partitions/-/reassignment")),
        }),
    };
    // As Confluent: 201 for a topic created, 200 for one only validated.
    Ok(json_response(if validate_only { StatusCode::OK } else { StatusCode::CREATED }, &body))
}

async fn delete_topic(State(state): State<Shared>, Path((c, t)): Path<(String, String)>) -> Result<Response, RestError> {
    check_topic(&state, &c, &t)?;
    let request = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default().with_name(Some(TopicName(StrBytes::from_string(t.clone()))))])
        .with_timeout_ms(ADMIN_TIMEOUT.as_millis() as i32);
    let response: DeleteTopicsResponse = state
        .client
        .call(state.broker.node_id(), ApiKey::DeleteTopics, 6, &request, ADMIN_TIMEOUT + Duration::from_secs(5))
        .await
        .map_err(|e| RestError::new(StatusCode::INTERNAL_SERVER_ERROR, super::error::KAFKA_RETRIABLE, e.to_string()))?;
    match response.responses.first() {
        Some(r) if r.error_code != 0 => Err(admin_error(r.error_code, r.error_message.as_ref().map(|m| m.to_string()), &t)),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}
