//! Confluent's v2 consumer instances (`/consumers/...`): create and delete an instance,
//! subscribe (topics or a pattern) or assign, read records, seek, commit and read committed
//! offsets, with Confluent's bodies and codes (40403 unknown instance, 40902 instance exists,
//! 40903 illegal state, 40601 format mismatch, 42204 bad configuration, 42206 bad payload).
//! Each instance is a member of its Kafka consumer group, kept by a background task
//! (`v2_consumer_group::drive`) around its state machine (`v2_consumer_state`). An instance
//! lives on the broker that created it (its id, `rest-consumer-<broker id>-<uuid>`, says which);
//! any other broker forwards the instance's requests there (`forward`), so an instance is
//! usable through every broker.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::error::RestError;
use super::forward::{forward, FORWARDED};
use super::v2_consumer_group::{commit, committed};
use super::v2_consumer_records::{read, MAX_BYTES_CAP};
use super::v2_consumer_state::{Format, Instance, InstanceConfig, MutuallyExclusive, Seek, Tp};
use super::{body, RestConfig, RestState, Shared, REST_ENDPOINT};

const V2_JSON: &str = "application/vnd.kafka.v2+json";
/// Confluent's codes.
const INSTANCE_NOT_FOUND: u32 = 40403;
const INSTANCE_EXISTS: u32 = 40902;
pub(super) const ILLEGAL_STATE: u32 = 40903;
const FORMAT_MISMATCH: u32 = 40601;
const INVALID_PAYLOAD: u32 = 42206;
/// Partitions one assign, seek or offsets body may name.
const MAX_PARTITIONS: usize = 10_000;

pub fn routes() -> Router<Shared> {
    // Literal paths: tests/test_rest_proxy.py reads them from here to check the OpenAPI document.
    Router::new()
        .route("/consumers/{group_name}", post(create))
        .route("/consumers/{group_name}/instances/{instance}", axum::routing::delete(delete))
        .route("/consumers/{group_name}/instances/{instance}/subscription", post(subscribe).get(subscription).delete(unsubscribe))
        .route("/consumers/{group_name}/instances/{instance}/assignments", post(assign).get(assignments))
        .route("/consumers/{group_name}/instances/{instance}/positions", post(seek))
        .route("/consumers/{group_name}/instances/{instance}/positions/beginning", post(seek_beginning))
        .route("/consumers/{group_name}/instances/{instance}/positions/end", post(seek_end))
        .route("/consumers/{group_name}/instances/{instance}/records", get(records))
        .route("/consumers/{group_name}/instances/{instance}/offsets", post(commit_offsets).get(committed_offsets))
}

/// One instance owned by this broker and what its background task waits on.
pub struct Entry {
    pub instance: Mutex<Instance>,
    /// The subscription changed: the background task looks again now.
    pub wake: Notify,
    pub deleted: Notify,
    deleted_flag: AtomicBool,
    /// One records read at a time per instance, as one Java consumer polls from one thread.
    reading: tokio::sync::Mutex<()>,
    group: String,
    id: String,
    clock: tokio::time::Instant,
}

impl Entry {
    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_flag.load(Ordering::Acquire)
    }

    fn mark_deleted(&self) {
        self.deleted_flag.store(true, Ordering::Release);
        self.deleted.notify_waiters();
        self.wake.notify_one();
    }

    /// Removes the expired instance from the registry (the background task then leaves).
    pub fn expire(&self, state: &RestState) {
        state.consumers.map.lock().remove(&(self.group.clone(), self.id.clone()));
        self.deleted_flag.store(true, Ordering::Release);
    }
}

/// The instances this broker owns.
pub struct Consumers {
    map: Mutex<HashMap<(String, String), Arc<Entry>>>,
    clock: tokio::time::Instant,
    max: usize,
    idle_timeout: Duration,
}

impl Consumers {
    pub fn new(config: &RestConfig) -> Self {
        Self { map: Mutex::new(HashMap::new()), clock: tokio::time::Instant::now(), max: config.consumer_max_instances, idle_timeout: config.consumer_instance_timeout }
    }

    /// The instance, its idle time restarted.
    fn get(&self, group: &str, id: &str) -> Option<Arc<Entry>> {
        let entry = self.map.lock().get(&(group.to_string(), id.to_string())).cloned()?;
        let now = entry.now_ms();
        entry.instance.lock().touch(now);
        Some(entry)
    }
}

fn v2_response(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, V2_JSON)], v.to_string()).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn instance_not_found() -> RestError {
    RestError::new(StatusCode::NOT_FOUND, INSTANCE_NOT_FOUND, "Consumer instance not found.")
}

fn illegal_state(why: &str) -> RestError {
    RestError::new(StatusCode::CONFLICT, ILLEGAL_STATE, format!("Illegal state: {why}"))
}

fn exclusive(_: MutuallyExclusive) -> RestError {
    illegal_state("Subscription to topics, partitions and pattern are mutually exclusive.")
}

fn payload(field: &str, why: impl std::fmt::Display) -> RestError {
    RestError::new(StatusCode::UNPROCESSABLE_ENTITY, INVALID_PAYLOAD, format!("Payload error. {field}: {why}"))
}

/// The request's content type must be one of v2's (Confluent refuses others with 415), or v1's
/// (`confluent_v1`); a request without a body may have none.
fn check_content_type(headers: &HeaderMap, body_expected: bool) -> Result<(), RestError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let ok = matches!(
        essence.as_str(),
        "application/vnd.kafka.v2+json"
            | "application/vnd.kafka.binary.v2+json"
            | "application/vnd.kafka.json.v2+json"
            | "application/vnd.kafka.avro.v2+json"
            | "application/vnd.kafka.jsonschema.v2+json"
            | "application/vnd.kafka.protobuf.v2+json"
    ) || super::confluent_v1::is_v1(headers)
        || (essence.is_empty() && !body_expected);
    if ok {
        Ok(())
    } else {
        Err(RestError::status(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("HTTP 415 Unsupported Media Type: {ct:?}; expected application/vnd.kafka.v2+json")))
    }
}

/// The body as JSON; an empty body is `None`.
async fn json_body(headers: &HeaderMap, request: Body, state: &RestState) -> Result<Option<Value>, RestError> {
    let bytes = body::read_all(headers, request, &state.config).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    check_content_type(headers, true)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| RestError::bad_request(format!("Unexpected body: not JSON ({e})")))
}

/// The broker that owns an instance, when its id says (`rest-consumer-<broker>-...`).
pub fn owner_of(instance: &str) -> Option<i32> {
    let rest = instance.strip_prefix("rest-consumer-")?;
    let (id, _) = rest.split_once('-')?;
    id.parse().ok()
}

/// Topics of the metadata image whose names the pattern matches whole (as Java's
/// `Pattern.matcher(name).matches()`), internal topics excepted.
pub fn matching_topics(state: &RestState, pattern: &str) -> Vec<String> {
    let Ok(re) = compile(pattern) else { return Vec::new() };
    topics_matching(state, &re)
}

/// The topics (not internal ones) a compiled subscription pattern matches.
pub fn topics_matching(state: &RestState, re: &regex::Regex) -> Vec<String> {
    let image = state.broker.image();
    image.topics.keys().filter(|t| !t.starts_with("__") && re.is_match(t)).cloned().collect()
}

pub fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(1 << 20).build()
}

/// The instance's entry when this broker owns it; otherwise the owner's answer to the same
/// request (forwarded once), or 40403.
pub(super) async fn locate(state: &Shared, group: &str, instance: &str, request: Request) -> Result<(Arc<Entry>, HeaderMap, Body), Response> {
    if let Some(entry) = state.consumers.get(group, instance) {
        let (parts, body) = request.into_parts();
        return Ok((entry, parts.headers, body));
    }
    if request.headers().contains_key(FORWARDED) {
        return Err(instance_not_found().into_response());
    }
    let me = state.broker.node_id();
    let peers: Vec<(String, u16)> = {
        let image = state.broker.image();
        let endpoint = |b: &crate::controller::BrokerRegistration| b.endpoint(REST_ENDPOINT).map(|e| (e.host.clone(), e.port));
        match owner_of(instance) {
            Some(owner) if owner == me => Vec::new(),
            Some(owner) => image.brokers.get(&owner).filter(|b| !b.fenced).and_then(endpoint).into_iter().collect(),
            // A named instance: whichever broker has it.
            None => image.live_brokers().filter(|b| b.id != me).filter_map(endpoint).collect(),
        }
    };
    if peers.is_empty() {
        return Err(instance_not_found().into_response());
    }
    // Forwarding speaks plain HTTP: a request that came over https (with its credentials) is
    // not sent on in clear; the client uses the instance's base_uri, on its owner.
    if super::tls::came_over_https(request.headers()) {
        return Err(RestError::new(
            StatusCode::NOT_FOUND,
            40403,
            "Consumer instance not found on this broker: it is owned by another broker, and requests that came over https are not forwarded (use the base_uri its creation answered)".to_string(),
        )
        .into_response());
    }
    let (parts, body) = request.into_parts();
    let bytes = match body::read_all(&parts.headers, body, &state.config).await {
        Ok(b) => b,
        Err(e) => return Err(e.into_response()),
    };
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str()).to_string();
    let timeout = state.config.request_timeout + Duration::from_secs(15);
    let single = peers.len() == 1 && owner_of(instance).is_some();
    for (host, port) in peers {
        match forward(&host, port, &parts.method, &path, &parts.headers, &bytes, timeout).await {
            Ok(a) if a.status == StatusCode::NOT_FOUND && !single => continue,
            Ok(a) => return Err(a.into_response()),
            Err(e) if single => return Err(e.into_response()),
            Err(_) => continue,
        }
    }
    Err(instance_not_found().into_response())
}

macro_rules! located {
    ($state:expr, $g:expr, $i:expr, $req:expr) => {
        match locate(&$state, &$g, &$i, $req).await {
            Ok(found) => found,
            Err(answer) => return Ok(answer),
        }
    };
}

async fn create(State(state): State<Shared>, Path(group): Path<String>, headers: HeaderMap, request: Body) -> Result<Response, RestError> {
    check_content_type(&headers, false)?;
    let mut body = json_body(&headers, request, &state).await?.unwrap_or_else(|| json!({}));
    if super::confluent_v1::is_v1(&headers) {
        body = super::confluent_v1::translate_create(body);
    }
    if group.is_empty() || group.len() > 255 {
        return Err(RestError::new(StatusCode::UNPROCESSABLE_ENTITY, 42204, "Invalid consumer configuration: the group name must have 1 to 255 characters"));
    }
    let (name, config) = InstanceConfig::parse(&body).map_err(|(code, message)| RestError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message))?;
    let me = state.broker.node_id();
    let id = name.unwrap_or_else(|| format!("rest-consumer-{me}-{}", uuid::Uuid::new_v4()));
    let entry = {
        let mut map = state.consumers.map.lock();
        let key = (group.clone(), id.clone());
        if map.contains_key(&key) {
            return Err(RestError::new(StatusCode::CONFLICT, INSTANCE_EXISTS, "Consumer with specified consumer ID already exists in the specified consumer group."));
        }
        if map.len() >= state.consumers.max {
            return Err(RestError::status(
                StatusCode::TOO_MANY_REQUESTS,
                format!("This broker already has {} consumer instances (rest.consumer.max.instances); delete unused ones", state.consumers.max),
            ));
        }
        let clock = state.consumers.clock;
        let now = clock.elapsed().as_millis() as u64;
        let entry = Arc::new(Entry {
            instance: Mutex::new(Instance::new(group.clone(), config, state.consumers.idle_timeout, now)),
            wake: Notify::new(),
            deleted: Notify::new(),
            deleted_flag: AtomicBool::new(false),
            reading: tokio::sync::Mutex::new(()),
            group: group.clone(),
            id: id.clone(),
            clock,
        });
        map.insert(key, entry.clone());
        entry
    };
    tokio::spawn(super::v2_consumer_group::drive(state.clone(), entry));
    // base_uri names this broker's own REST address, as registered, so it reaches the owner;
    // a client that came over https keeps the https address it used (the registered one is
    // plain http, and its credentials must not go in clear).
    let base = if super::tls::came_over_https(&headers) {
        super::v3::base_url(&headers)
    } else {
        let image = state.broker.image();
        image.brokers.get(&me).and_then(|b| b.endpoint(REST_ENDPOINT)).map(|e| format!("http://{}:{}", e.host, e.port)).unwrap_or_else(|| super::v3::base_url(&headers))
    };
    let base_uri = format!("{base}/consumers/{}/instances/{}", encode_segment(&group), encode_segment(&id));
    Ok(v2_response(StatusCode::OK, &json!({ "instance_id": id, "base_uri": base_uri })))
}

/// A path segment, percent-encoded where it is not unreserved.
fn encode_segment(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn delete(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    let (entry, _, _) = located!(state, group, instance, request);
    state.consumers.map.lock().remove(&(group.clone(), instance.clone()));
    // As the Java consumer's close(): commit what was consumed when auto-commit is on.
    let (auto, member, generation, consumed) = {
        let i = entry.instance.lock();
        (i.config.auto_commit, i.member_id.clone(), i.generation, i.consumed())
    };
    if auto {
        let _ = commit(&state, &group, &member, generation, &consumed).await;
    }
    entry.mark_deleted();
    Ok(no_content())
}

/// `[{"topic", "partition"}, ...]` under `field`.
fn partitions_field(v: &Value, field: &str) -> Result<Vec<Tp>, RestError> {
    let list = v.get(field).and_then(Value::as_array).ok_or_else(|| payload(field, "expected an array of {\"topic\", \"partition\"}"))?;
    if list.len() > MAX_PARTITIONS {
        return Err(payload(field, format!("at most {MAX_PARTITIONS} partitions")));
    }
    list.iter().enumerate().map(|(n, p)| topic_partition(p, &format!("{field}[{n}]"))).collect()
}

fn topic_partition(p: &Value, at: &str) -> Result<Tp, RestError> {
    let topic = p.get("topic").and_then(Value::as_str).filter(|t| !t.is_empty() && t.len() <= 249).ok_or_else(|| payload(&format!("{at}.topic"), "expected a topic name"))?;
    let partition = p.get("partition").and_then(Value::as_i64).filter(|n| (0..=i64::from(i32::MAX)).contains(n)).ok_or_else(|| payload(&format!("{at}.partition"), "expected a partition number"))?;
    Ok((topic.to_string(), partition as i32))
}

fn tp_json(tps: &[Tp]) -> Vec<Value> {
    tps.iter().map(|(t, p)| json!({ "topic": t, "partition": p })).collect()
}

async fn subscribe(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    let (entry, headers, body) = located!(state, group, instance, request);
    let v = json_body(&headers, body, &state).await?.ok_or_else(|| payload("body", "Request body is empty. Data is required."))?;
    let topics = v.get("topics").filter(|t| !t.is_null());
    let pattern = v.get("topic_pattern").filter(|t| !t.is_null());
    match (topics, pattern) {
        (Some(topics), None) => {
            let list = topics.as_array().ok_or_else(|| payload("topics", "expected an array of topic names"))?;
            if list.is_empty() || list.len() > MAX_PARTITIONS {
                return Err(payload("topics", format!("expected 1 to {MAX_PARTITIONS} topic names")));
            }
            let names = list
                .iter()
                .enumerate()
                .map(|(n, t)| t.as_str().filter(|t| !t.is_empty() && t.len() <= 249).map(str::to_string).ok_or_else(|| payload(&format!("topics[{n}]"), "expected a topic name")))
                .collect::<Result<Vec<_>, _>>()?;
            entry.instance.lock().subscribe(names).map_err(exclusive)?;
        }
        (None, Some(pattern)) => {
            let p = pattern.as_str().filter(|p| !p.is_empty() && p.len() <= 1000).ok_or_else(|| payload("topic_pattern", "expected a regular expression"))?;
            compile(p).map_err(|e| payload("topic_pattern", format!("not a regular expression ({e})")))?;
            let matched = matching_topics(&state, p);
            entry.instance.lock().subscribe_pattern(p.to_string(), matched).map_err(exclusive)?;
        }
        _ => return Err(payload("body", "expected exactly one of topics and topic_pattern")),
    }
    entry.wake.notify_one();
    Ok(no_content())
}

async fn subscription(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    let (entry, _, _) = located!(state, group, instance, request);
    let topics = entry.instance.lock().subscribed_topics();
    Ok(v2_response(StatusCode::OK, &json!({ "topics": topics })))
}

async fn unsubscribe(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    let (entry, _, _) = located!(state, group, instance, request);
    entry.instance.lock().unsubscribe();
    entry.wake.notify_one();
    Ok(no_content())
}

async fn assign(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    let (entry, headers, body) = located!(state, group, instance, request);
    let v = json_body(&headers, body, &state).await?.ok_or_else(|| payload("body", "Request body is empty. Data is required."))?;
    let partitions = partitions_field(&v, "partitions")?;
    entry.instance.lock().assign(partitions).map_err(exclusive)?;
    entry.wake.notify_one();
    Ok(no_content())
}

async fn assignments(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    let (entry, _, _) = located!(state, group, instance, request);
    let partitions = entry.instance.lock().assignment.clone();
    Ok(v2_response(StatusCode::OK, &json!({ "partitions": tp_json(&partitions) })))
}

fn not_assigned(tp: &Tp) -> RestError {
    illegal_state(&format!("No current assignment for partition {}-{}", tp.0, tp.1))
}

/// A body's `offsets`: `[{"topic", "partition", "offset"}]`, at most MAX_PARTITIONS of them.
fn offsets_list(list: &Value) -> Result<Vec<(Tp, i64)>, RestError> {
    let list = list.as_array().ok_or_else(|| payload("offsets", "expected an array of {\"topic\", \"partition\", \"offset\"}"))?;
    if list.len() > MAX_PARTITIONS {
        return Err(payload("offsets", format!("at most {MAX_PARTITIONS} partitions")));
    }
    let mut out = Vec::with_capacity(list.len());
    for (n, o) in list.iter().enumerate() {
        let tp = topic_partition(o, &format!("offsets[{n}]"))?;
        let offset = o.get("offset").and_then(Value::as_i64).filter(|x| *x >= 0).ok_or_else(|| payload(&format!("offsets[{n}].offset"), "expected an offset of 0 or more"))?;
        out.push((tp, offset));
    }
    Ok(out)
}

async fn seek(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    let (entry, headers, body) = located!(state, group, instance, request);
    let v = json_body(&headers, body, &state).await?.ok_or_else(|| payload("body", "Request body is empty. Data is required."))?;
    let wanted = offsets_list(v.get("offsets").unwrap_or(&Value::Null))?;
    let mut i = entry.instance.lock();
    if let Some((tp, _)) = wanted.iter().find(|(tp, _)| !i.is_assigned(tp)) {
        return Err(not_assigned(tp));
    }
    for (tp, o) in &wanted {
        i.set_position(tp, *o);
    }
    Ok(no_content())
}

async fn seek_to(state: Shared, group: String, instance: String, request: Request, to: Seek) -> Result<Response, RestError> {
    let (entry, headers, body) = located!(state, group, instance, request);
    let v = json_body(&headers, body, &state).await?.ok_or_else(|| payload("body", "Request body is empty. Data is required."))?;
    let partitions = partitions_field(&v, "partitions")?;
    let mut i = entry.instance.lock();
    if let Some(tp) = partitions.iter().find(|tp| !i.is_assigned(tp)) {
        return Err(not_assigned(tp));
    }
    for tp in &partitions {
        i.seek_to(tp, to);
    }
    Ok(no_content())
}

async fn seek_beginning(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    seek_to(state, group, instance, request, Seek::Beginning).await
}

async fn seek_end(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    seek_to(state, group, instance, request, Seek::End).await
}

/// The format an `Accept` header asks for: `None` when it takes any (absent, `*/*`, v2's
/// generic type); an error for a schema format.
fn accepted(headers: &HeaderMap) -> Result<Option<Format>, ()> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let mut any = accept.trim().is_empty();
    for item in accept.split(',') {
        match item.split(';').next().unwrap_or("").trim() {
            "application/vnd.kafka.binary.v2+json" => return Ok(Some(Format::Binary)),
            "application/vnd.kafka.json.v2+json" => return Ok(Some(Format::Json)),
            "*/*" | "application/*" | "application/vnd.kafka.v2+json" | "application/json" => any = true,
            _ => {}
        }
    }
    if any {
        Ok(None)
    } else {
        Err(())
    }
}

/// A query parameter's value (the last one given; numbers need no percent-decoding).
pub(super) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').filter_map(|kv| kv.split_once('=')).filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()).last()
}

async fn records(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    let query = request.uri().query().map(str::to_string);
    let q_timeout = query_param(query.as_deref(), "timeout");
    let q_max_bytes = query_param(query.as_deref(), "max_bytes");
    let (entry, headers, _) = located!(state, group, instance, request);
    let format = entry.instance.lock().config.format;
    match accepted(&headers) {
        Ok(None) => {}
        Ok(Some(f)) if f == format => {}
        _ => {
            return Err(RestError::new(
                StatusCode::NOT_ACCEPTABLE,
                FORMAT_MISMATCH,
                "The requested embedded data format does not match the deserializer for this consumer instance",
            ))
        }
    }
    let out = read_records(&state, &entry, q_timeout.as_deref(), q_max_bytes.as_deref()).await?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, format.content_type())], Value::Array(out).to_string()).into_response())
}

/// One read of the instance's records, with the `timeout` and `max_bytes` query parameters
/// (absent: the instance's `consumer.request.timeout.ms` and the cap), one at a time.
pub(super) async fn read_records(state: &Shared, entry: &Entry, q_timeout: Option<&str>, q_max_bytes: Option<&str>) -> Result<Vec<Value>, RestError> {
    let number = |name: &str, v: Option<&str>| -> Result<i64, RestError> {
        match v {
            None => Ok(-1),
            Some(s) => s.trim().parse::<i64>().map_err(|_| RestError::bad_request(format!("{name} must be a number, not {s:?}"))),
        }
    };
    let timeout = match number("timeout", q_timeout)? {
        t if t < 0 => entry.instance.lock().config.request_timeout,
        t => Duration::from_millis(t as u64),
    }
    .min(state.config.request_timeout);
    let max_bytes = match number("max_bytes", q_max_bytes)? {
        b if b <= 0 => MAX_BYTES_CAP,
        b => (b as usize).min(MAX_BYTES_CAP),
    };
    let _one_at_a_time = entry.reading.lock().await;
    let out = read(state, entry, timeout, max_bytes).await?;
    entry.instance.lock().touch(entry.now_ms());
    Ok(out)
}

async fn commit_offsets(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    let (entry, headers, body) = located!(state, group, instance, request);
    let v = json_body(&headers, body, &state).await?;
    let given = match v.as_ref().and_then(|v| v.get("offsets")).filter(|o| !o.is_null()) {
        None => None,
        Some(list) => Some(offsets_list(list)?),
    };
    let (member, generation, consumed) = {
        let i = entry.instance.lock();
        (i.member_id.clone(), i.generation, i.consumed())
    };
    let offsets = given.unwrap_or_else(|| consumed.clone());
    commit(&state, &group, &member, generation, &offsets).await?;
    entry.instance.lock().on_committed(&offsets);
    let body: Vec<Value> = offsets
        .iter()
        .map(|(tp, o)| json!({ "topic": tp.0, "partition": tp.1, "consumed": consumed.iter().find(|(c, _)| c == tp).map(|(_, c)| *c), "committed": o }))
        .collect();
    if super::confluent_v1::is_v1(&headers) {
        // v1 answers the list itself.
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, super::confluent_v1::V1_JSON)], Value::Array(body).to_string()).into_response());
    }
    Ok(v2_response(StatusCode::OK, &json!({ "offsets": body })))
}

async fn committed_offsets(State(state): State<Shared>, Path((group, instance)): Path<(String, String)>, request: Request) -> Result<Response, RestError> {
    let (_entry, headers, body) = located!(state, group, instance, request);
    // As Confluent: a request naming no partitions is 404 40402.
    let v = json_body(&headers, body, &state).await?.ok_or_else(|| super::v2::partition_not_found("(none named)", -1))?;
    let partitions = partitions_field(&v, "partitions")?;
    let found = committed(&state, &group, &partitions).await?;
    let offsets: Vec<Value> = found
        .into_iter()
        .filter(|(_, o, _)| *o >= 0)
        .map(|((t, p), o, m)| json!({ "topic": t, "partition": p, "offset": o, "metadata": m }))
        .collect();
    Ok(v2_response(StatusCode::OK, &json!({ "offsets": offsets })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().unwrap());
        h
    }

    #[test]
    fn instance_ids_name_their_broker() {
        assert_eq!(owner_of("rest-consumer-3-6f1c0e36-0b8e-4c7a-9d1e-2a1f5c3b4d5e"), Some(3));
        assert_eq!(owner_of("my_consumer"), None);
        assert_eq!(owner_of("rest-consumer-x-1"), None);
    }

    #[test]
    fn accept_headers_choose_the_format() {
        assert_eq!(accepted(&HeaderMap::new()), Ok(None));
        assert_eq!(accepted(&accept("application/vnd.kafka.binary.v2+json")), Ok(Some(Format::Binary)));
        assert_eq!(accepted(&accept("text/html, application/vnd.kafka.json.v2+json;q=0.9")), Ok(Some(Format::Json)));
        assert_eq!(accepted(&accept("*/*")), Ok(None));
        assert_eq!(accepted(&accept("application/vnd.kafka.avro.v2+json")), Err(()));
    }

    #[test]
    fn patterns_match_whole_names_and_huge_ones_are_refused() {
        let re = compile("test.*").unwrap();
        assert!(re.is_match("test-1") && !re.is_match("a-test-1"));
        assert!(compile("a|b").unwrap().is_match("b"));
        assert!(!compile("a|b").unwrap().is_match("ab"));
        assert!(compile("(").is_err());
        assert!(compile("(a{1000}){1000}").is_err());
        assert_eq!(encode_segment("g 1/é"), "g%201%2F%C3%A9");
        assert_eq!(query_param(Some("timeout=5&max_bytes=9&timeout=7"), "timeout").as_deref(), Some("7"));
        assert_eq!(query_param(Some("x"), "timeout"), None);
    }
}
