//! The managed service's stateless v1 API (the HDInsight Kafka REST proxy's paths): topic and
//! partition metadata, topic creation, produce, and consume by offset, which reads one
//! partition from its leader with no consumer state at all (`NextOffset` says where to go on).
//! Keys and values are text by default (a JSON string is written as its UTF-8 bytes, any other
//! JSON value as compact JSON text; read back as strings) or base64 with `?encoding=base64`,
//! which is how binary data goes through byte-exact. Shapes the managed service does not
//! document are listed in docs/rest-proxy.md with what Lantern chose.
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use base64::Engine;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Map, Value};

use super::error::RestError;
use super::fetch::{self, FetchedRecord};
use super::produce::{self, Report};
use super::records::base64_decode;
use super::v2::{offsets_json, parse_records, partition_json, partition_not_found, read_body, topic_not_found};
use super::v3::{admin_error, json_response};
use super::Shared;
use crate::log::record_batch::TimestampType;

/// Largest `count` of one consume (the managed service's default is 1).
pub const MAX_COUNT: usize = 10_000;
/// Most key and value bytes one consume returns (the managed service's 6 MB).
pub const MAX_CONSUME_BYTES: usize = 6 << 20;
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/metadata/topics", get(list_topics))
        .route("/v1/metadata/topics/{topic_name}/partitions", get(list_partitions))
        .route("/v1/metadata/topics/{topic_name}/partitions/{partition_id}", get(get_partition))
        .route("/v1/topics/{topic_name}", put(create_topic))
        .route("/v1/producer/topics/{topic_name}", post(produce_records))
        .route("/v1/consumer/topics/{topic_name}/partitions/{partition_id}/offsets/{offset}", get(consume))
}

/// How keys and values are written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Strings are UTF-8 text (other JSON values, their compact JSON text).
    Text,
    /// Strings are base64.
    Base64,
}

/// The query parameters: `name=value` pairs (no percent-escapes are needed by any of them).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').filter_map(|kv| kv.split_once('=').or(Some((kv, "")))).find(|(k, _)| *k == name).map(|(_, v)| v)
}

pub fn encoding(query: Option<&str>) -> Result<Encoding, RestError> {
    match query_param(query, "encoding") {
        None | Some("" | "utf8" | "text") => Ok(Encoding::Text),
        Some("base64") => Ok(Encoding::Base64),
        Some(other) => Err(RestError::bad_request(format!("encoding={other}: expected utf8 or base64"))),
    }
}

/// `count`: 1 when absent, else 1 to [`MAX_COUNT`].
pub fn count(query: Option<&str>) -> Result<usize, RestError> {
    match query_param(query, "count") {
        None => Ok(1),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_COUNT).contains(n))
            .ok_or_else(|| RestError::bad_request(format!("count={s}: expected a number from 1 to {MAX_COUNT}"))),
    }
}

fn key_or_value(encoding: Encoding, field: &str, v: Option<&Value>) -> Result<Option<Vec<u8>>, RestError> {
    match (encoding, v) {
        (_, None | Some(Value::Null)) => Ok(None),
        (Encoding::Text, Some(Value::String(s))) => Ok(Some(s.as_bytes().to_vec())),
        (Encoding::Text, Some(v)) => Ok(Some(v.to_string().into_bytes())),
        (Encoding::Base64, Some(Value::String(s))) => base64_decode(field, s).map(Some).map_err(|e| RestError::invalid(&e.field, e.why)),
        (Encoding::Base64, Some(_)) => Err(RestError::invalid(field, "expected a base64 string (encoding=base64)")),
    }
}

fn encode_bytes(encoding: Encoding, b: Option<&[u8]>) -> Value {
    match (encoding, b) {
        (_, None) => Value::Null,
        (Encoding::Text, Some(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        (Encoding::Base64, Some(b)) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

/// One record of a consume answer (the managed service's `ConsumeRecord`).
pub fn consume_record_json(encoding: Encoding, partition: i32, r: &FetchedRecord) -> Value {
    json!({
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "timestampType": match r.timestamp_type { TimestampType::CreateTime => "CreateTime", TimestampType::LogAppendTime => "LogAppendTime" },
        "key": encode_bytes(encoding, r.key.as_deref()),
        "value": encode_bytes(encoding, r.value.as_deref()),
    })
}

/// A partition path segment: not a number is 404 like any unknown path.
fn partition_number(segment: &str) -> Result<i32, RestError> {
    segment.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| RestError::not_found("HTTP 404 Not Found"))
}

async fn list_topics(State(state): State<Shared>) -> Response {
    let image = state.broker.image();
    json_response(StatusCode::OK, &json!({ "topics": image.topics.keys().collect::<Vec<_>>() }))
}

async fn list_partitions(State(state): State<Shared>, Path(t): Path<String>) -> Result<Response, RestError> {
    let image = state.broker.image();
    let ti = image.topic(&t).ok_or_else(|| topic_not_found(&t))?;
    let ps: Vec<Value> = ti.partitions.iter().enumerate().map(|(p, pi)| partition_json(p as i32, pi)).collect();
    Ok(json_response(StatusCode::OK, &json!(ps)))
}

async fn get_partition(State(state): State<Shared>, Path((t, p)): Path<(String, String)>) -> Result<Response, RestError> {
    let image = state.broker.image();
    let ti = image.topic(&t).ok_or_else(|| topic_not_found(&t))?;
    let p = partition_number(&p)?;
    let pi = ti.partitions.get(p as usize).ok_or_else(|| partition_not_found(&t, p))?;
    Ok(json_response(StatusCode::OK, &partition_json(p, pi)))
}

/// `{"partition_count", "replication_factor", "topic_properties": {name: value}}`, each
/// optional (the broker's defaults), as a CreateTopics topic.
fn creatable_topic(name: &str, v: &Value) -> Result<CreatableTopic, RestError> {
    let obj = v.as_object().ok_or_else(|| RestError::invalid("body", "expected a JSON object"))?;
    let int = |field: &str, max: i64| -> Result<i64, RestError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(-1),
            Some(Value::Number(n)) => n.as_i64().filter(|n| (1..=max).contains(n)).ok_or_else(|| RestError::invalid(field, format!("{n} is not from 1 to {max}"))),
            Some(_) => Err(RestError::invalid(field, "expected an integer")),
        }
    };
    let partitions = int("partition_count", i64::from(i32::MAX))? as i32;
    let replication = int("replication_factor", i64::from(i16::MAX))? as i16;
    let empty = Map::new();
    let properties = match obj.get("topic_properties") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(RestError::invalid("topic_properties", "expected an object of config names to values")),
    };
    let mut configs = Vec::new();
    for (k, v) in properties {
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(RestError::invalid(&format!("topic_properties.{k}"), "expected a string, number or boolean")),
        };
        configs.push(CreatableTopicConfig::default().with_name(StrBytes::from_string(k.clone())).with_value(Some(StrBytes::from_string(value))));
    }
    Ok(CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(partitions)
        .with_replication_factor(replication)
        .with_configs(configs))
}

async fn create_topic(State(state): State<Shared>, headers: HeaderMap, Path(t): Path<String>, request: Body) -> Result<Response, RestError> {
    let v = read_body(&headers, request, &state).await?;
    let topic = creatable_topic(&t, &v)?;
    let properties = v.get("topic_properties").cloned().filter(|p| !p.is_null()).unwrap_or_else(|| json!({}));
    let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(ADMIN_TIMEOUT.as_millis() as i32);
    let response: CreateTopicsResponse = state
        .client
        .call(state.broker.node_id(), ApiKey::CreateTopics, 5, &request, ADMIN_TIMEOUT + Duration::from_secs(5))
        .await
        .map_err(|e| RestError::new(StatusCode::INTERNAL_SERVER_ERROR, super::error::KAFKA_RETRIABLE, e.to_string()))?;
    let Some(result) = response.topics.into_iter().next() else {
        return Err(RestError::from_kafka(crate::error_code::UNKNOWN_SERVER_ERROR, &t, -1, Some("no result")));
    };
    if result.error_code != 0 {
        return Err(admin_error(result.error_code, result.error_message.map(|m| m.to_string()), &t));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "topic": t, "partition_count": result.num_partitions, "replication_factor": result.replication_factor, "topic_properties": properties }),
    ))
}

async fn produce_records(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(t): Path<String>,
    RawQuery(query): RawQuery,
    request: Body,
) -> Result<Response, RestError> {
    let encoding = encoding(query.as_deref())?;
    if state.broker.image().topic(&t).is_none() {
        return Err(topic_not_found(&t));
    }
    let v = read_body(&headers, request, &state).await?;
    let records = parse_records(&v, &|field, v| key_or_value(encoding, field, v))?;
    let reports: Vec<Report> = produce::produce(&state, &t, &records)
        .await
        .into_iter()
        .zip(&records)
        .map(|(r, rec)| match (r, rec.partition) {
            (Err(e), Some(p)) if e.error_code == super::error::UNKNOWN_TOPIC_OR_PARTITION => Err(partition_not_found(&t, p)),
            (r, _) => r,
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "offsets": offsets_json(&reports) })))
}

async fn consume(
    State(state): State<Shared>,
    Path((t, p, o)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, RestError> {
    let partition = partition_number(&p)?;
    let offset = o.parse::<i64>().ok().filter(|o| *o >= 0).ok_or_else(|| RestError::bad_request(format!("offset {o}: expected a number from 0")))?;
    let count = count(query.as_deref())?;
    let encoding = encoding(query.as_deref())?;
    {
        let image = state.broker.image();
        let ti = image.topic(&t).ok_or_else(|| topic_not_found(&t))?;
        if ti.partitions.get(partition as usize).is_none() {
            return Err(partition_not_found(&t, partition));
        }
    }
    let fetched = fetch::fetch(&state, &t, partition, offset, count, MAX_CONSUME_BYTES).await?;
    let m = &state.broker.metrics;
    let bytes: usize = fetched.records.iter().map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)).sum();
    crate::metrics::add(&m.rest_records_out, fetched.records.len() as u64);
    crate::metrics::add(&m.rest_bytes_out, bytes as u64);
    let body: Vec<Value> = fetched.records.iter().map(|r| consume_record_json(encoding, partition, r)).collect();
    let mut response = json_response(StatusCode::OK, &json!(body));
    response.headers_mut().insert("NextOffset", HeaderValue::from(fetched.next_offset));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_checked() {
        assert_eq!(count(None).unwrap(), 1);
        assert_eq!(count(Some("encoding=base64&count=250")).unwrap(), 250);
        for bad in ["count=0", "count=10001", "count=-1", "count=x", "count="] {
            assert_eq!(count(Some(bad)).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert_eq!(encoding(Some("count=2")).unwrap(), Encoding::Text);
        assert_eq!(encoding(Some("encoding=base64")).unwrap(), Encoding::Base64);
        assert!(encoding(Some("encoding=hex")).is_err());
    }

    #[test]
    fn keys_and_values_round_trip_in_both_encodings() {
        let text = key_or_value(Encoding::Text, "v", Some(&json!("héllo"))).unwrap().unwrap();
        assert_eq!(text, "héllo".as_bytes());
        assert_eq!(encode_bytes(Encoding::Text, Some(&text)), json!("héllo"));
        assert_eq!(key_or_value(Encoding::Text, "v", Some(&json!({"a": 1}))).unwrap().unwrap(), br#"{"a":1}"#);
        let bin = key_or_value(Encoding::Base64, "v", Some(&json!("AP8="))).unwrap().unwrap();
        assert_eq!(bin, [0, 255]);
        assert_eq!(encode_bytes(Encoding::Base64, Some(&bin)), json!("AP8="));
        assert!(key_or_value(Encoding::Base64, "records[0].value", Some(&json!(5))).unwrap_err().message.contains("records[0].value"));
        assert_eq!(key_or_value(Encoding::Base64, "v", None).unwrap(), None);
    }

    #[test]
    fn topic_creation_takes_the_v1_fields() {
        let t = creatable_topic("t", &json!({"partition_count": 3, "replication_factor": 1, "topic_properties": {"retention.ms": 1000, "cleanup.policy": "compact"}})).unwrap();
        assert_eq!((t.num_partitions, t.replication_factor, t.configs.len()), (3, 1, 2));
        assert_eq!(creatable_topic("t", &json!({})).unwrap().num_partitions, -1);
        assert!(creatable_topic("t", &json!({"partition_count": 0})).unwrap_err().message.contains("partition_count"));
        assert!(creatable_topic("t", &json!({"topic_properties": {"x": [1]}})).unwrap_err().message.contains("topic_properties.x"));
    }
}
