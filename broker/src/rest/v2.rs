//! Confluent's v2 API, stateless part: produce (`POST /topics/{t}`,
//! `POST /topics/{t}/partitions/{p}`, bodies `{"records": [{"key", "value", "partition"}]}` in
//! `application/vnd.kafka.binary.v2+json` (base64) or `application/vnd.kafka.json.v2+json` (any
//! JSON, written as compact JSON text)) through the shared produce path, and the metadata
//! endpoints (topics, partitions, brokers) read from the metadata image. Errors carry v2's
//! codes: 40401 topic not found, 40402 partition not found, 422 for a body that is not what
//! the content type says, 415 for a content type v2 does not take here.
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::error::RestError;
use super::produce::{self, Report};
use super::records::{base64_decode, partition_field, ProducerRecord};
use super::{body, Shared};
use crate::controller::{MetadataImage, PartitionImage, TopicImage};

/// v2's own codes (Confluent's `Errors`).
pub const TOPIC_NOT_FOUND: u32 = 40401;
pub const PARTITION_NOT_FOUND: u32 = 40402;
/// What every v2 answer is.
const V2_JSON: &str = "application/vnd.kafka.v2+json";

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/topics", get(list_topics))
        .route("/topics/{topic_name}", get(get_topic).post(produce_to_topic))
        .route("/topics/{topic_name}/partitions", get(list_partitions))
        .route("/topics/{topic_name}/partitions/{partition_id}", get(get_partition).post(produce_to_partition))
        .route("/brokers", get(list_brokers))
}

/// How a v2 produce body carries keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedded {
    /// Base64 strings.
    Binary,
    /// Any JSON value.
    Json,
}

pub fn topic_not_found(topic: &str) -> RestError {
    RestError::new(StatusCode::NOT_FOUND, TOPIC_NOT_FOUND, format!("Topic {topic} not found."))
}

pub fn partition_not_found(topic: &str, partition: i32) -> RestError {
    RestError::new(StatusCode::NOT_FOUND, PARTITION_NOT_FOUND, format!("Partition {partition} of topic {topic} not found."))
}

fn v2_response(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, V2_JSON)], v.to_string()).into_response()
}

/// The content type of a v2 produce: the embedded format, or 415.
pub fn embedded_format(headers: &HeaderMap) -> Result<Embedded, RestError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        // v1's types (Confluent's v1 API, `confluent_v1`) take the same bodies; v1's generic
        // type is binary, as Confluent's v1 took it (its Node.js client sends it).
        "application/vnd.kafka.binary.v2+json" | "application/vnd.kafka.binary.v1+json" | "application/vnd.kafka.v1+json" => Ok(Embedded::Binary),
        "application/vnd.kafka.json.v2+json" | "application/vnd.kafka.json.v1+json" => Ok(Embedded::Json),
        "application/vnd.kafka.avro.v2+json" | "application/vnd.kafka.jsonschema.v2+json" | "application/vnd.kafka.protobuf.v2+json" => Err(RestError::status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("HTTP 415 Unsupported Media Type: {essence} needs a schema registry, which Lantern does not have"),
        )),
        _ => Err(RestError::status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("HTTP 415 Unsupported Media Type: {ct:?}; expected application/vnd.kafka.binary.v2+json or application/vnd.kafka.json.v2+json"),
        )),
    }
}

/// A key or value as the embedded format gives it (`None`: null or absent).
pub fn embedded_bytes(format: Embedded, field: &str, v: Option<&Value>) -> Result<Option<Vec<u8>>, RestError> {
    match (format, v) {
        (_, None | Some(Value::Null)) => Ok(None),
        (Embedded::Binary, Some(Value::String(s))) => base64_decode(field, s).map(Some).map_err(|e| RestError::invalid(&e.field, e.why)),
        (Embedded::Binary, Some(_)) => Err(RestError::invalid(field, "expected a base64 string")),
        (Embedded::Json, Some(v)) => Ok(Some(v.to_string().into_bytes())),
    }
}

/// `{"records": [{"key", "value", "partition"}]}` as records, with `bytes` making each key and
/// value (the field name is passed for its errors).
pub fn parse_records(
    v: &Value,
    bytes: &dyn Fn(&str, Option<&Value>) -> Result<Option<Vec<u8>>, RestError>,
) -> Result<Vec<ProducerRecord>, RestError> {
    let records = v.get("records").and_then(Value::as_array).ok_or_else(|| RestError::invalid("records", "expected an array of records"))?;
    if records.is_empty() {
        return Err(RestError::invalid("records", "Request body is empty. Data is required."));
    }
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let at = |f: &str| format!("records[{i}].{f}");
        if !r.is_object() {
            return Err(RestError::invalid(&format!("records[{i}]"), "expected a JSON object"));
        }
        let partition = partition_field(&at("partition"), r.get("partition")).map_err(|e| RestError::invalid(&e.field, e.why))?;
        out.push(ProducerRecord {
            partition,
            key: bytes(&at("key"), r.get("key"))?,
            value: bytes(&at("value"), r.get("value"))?,
            key_type: None,
            value_type: None,
            headers: Vec::new(),
            timestamp: None,
        });
    }
    Ok(out)
}

/// The body as JSON: a body that is not JSON is 400 as Confluent's proxy answers it.
pub async fn read_body(headers: &HeaderMap, request: Body, state: &Shared) -> Result<Value, RestError> {
    let bytes = body::read_all(headers, request, &state.config).await?;
    serde_json::from_slice(&bytes).map_err(|e| RestError::bad_request(format!("Unexpected body: not JSON ({e})")))
}

/// v2's produce answer: one `{partition, offset, error_code, error}` per record, in order
/// (`error_code`/`error` null for a record that was written).
pub fn offsets_json(reports: &[Report]) -> Vec<Value> {
    reports
        .iter()
        .map(|r| match r {
            Ok(d) => json!({ "partition": d.partition, "offset": d.offset, "error_code": null, "error": null }),
            Err(e) => json!({ "partition": null, "offset": null, "error_code": e.error_code, "error": e.message }),
        })
        .collect()
}

/// v2's and v1's partition: leader and replicas with leadership and in-sync state.
pub fn partition_json(p: i32, pi: &PartitionImage) -> Value {
    json!({
        "partition": p,
        "leader": pi.leader,
        "replicas": pi.replicas.iter().map(|b| json!({ "broker": b, "leader": *b == pi.leader, "in_sync": pi.isr.contains(b) })).collect::<Vec<_>>(),
    })
}

fn topic_json(t: &TopicImage) -> Value {
    json!({
        "name": t.name,
        "configs": t.configs,
        "partitions": t.partitions.iter().enumerate().map(|(p, pi)| partition_json(p as i32, pi)).collect::<Vec<_>>(),
    })
}

fn find_topic<'a>(image: &'a MetadataImage, name: &str) -> Result<&'a TopicImage, RestError> {
    image.topic(name).ok_or_else(|| topic_not_found(name))
}

/// A partition path segment: not a number is 404 like any unknown path; a number past the
/// topic's partitions is 40402.
fn find_partition<'a>(t: &'a TopicImage, segment: &str) -> Result<(i32, &'a PartitionImage), RestError> {
    let p = segment.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| RestError::not_found("HTTP 404 Not Found"))?;
    t.partitions.get(p as usize).map(|pi| (p, pi)).ok_or_else(|| partition_not_found(&t.name, p))
}

async fn list_topics(State(state): State<Shared>) -> Response {
    let image = state.broker.image();
    v2_response(StatusCode::OK, &json!(image.topics.keys().collect::<Vec<_>>()))
}

async fn get_topic(State(state): State<Shared>, Path(t): Path<String>) -> Result<Response, RestError> {
    let image = state.broker.image();
    Ok(v2_response(StatusCode::OK, &topic_json(find_topic(&image, &t)?)))
}

async fn list_partitions(State(state): State<Shared>, Path(t): Path<String>) -> Result<Response, RestError> {
    let image = state.broker.image();
    let ti = find_topic(&image, &t)?;
    let ps: Vec<Value> = ti.partitions.iter().enumerate().map(|(p, pi)| partition_json(p as i32, pi)).collect();
    Ok(v2_response(StatusCode::OK, &json!(ps)))
}

async fn get_partition(State(state): State<Shared>, Path((t, p)): Path<(String, String)>) -> Result<Response, RestError> {
    let image = state.broker.image();
    let (p, pi) = find_partition(find_topic(&image, &t)?, &p)?;
    Ok(v2_response(StatusCode::OK, &partition_json(p, pi)))
}

async fn list_brokers(State(state): State<Shared>) -> Response {
    let image = state.broker.image();
    let ids: Vec<i32> = image.live_brokers().map(|b| b.id).collect();
    v2_response(StatusCode::OK, &json!({ "brokers": ids }))
}

/// Produces `records` to `topic` (each to `partition` when given) and answers v2's way. A
/// record asking for a partition the topic lacks gets 40402 in its own entry.
async fn produce_v2(state: &Shared, headers: HeaderMap, topic: &str, partition: Option<&str>, request: Body) -> Result<Response, RestError> {
    let format = embedded_format(&headers)?;
    let fixed = {
        let image = state.broker.image();
        let t = find_topic(&image, topic)?;
        match partition {
            Some(segment) => Some(find_partition(t, segment)?.0),
            None => None,
        }
    };
    let v = read_body(&headers, request, state).await?;
    let mut records = parse_records(&v, &|field, v| embedded_bytes(format, field, v))?;
    if let Some(p) = fixed {
        for r in &mut records {
            r.partition = Some(p);
        }
    }
    let reports: Vec<Report> = produce::produce(state, topic, &records)
        .await
        .into_iter()
        .zip(&records)
        .map(|(r, rec)| match r {
            Err(e) if e.error_code == super::error::UNKNOWN_TOPIC_OR_PARTITION => match rec.partition {
                Some(p) => Err(partition_not_found(topic, p)),
                None => Err(topic_not_found(topic)),
            },
            other => other,
        })
        .collect();
    let answer = json!({ "key_schema_id": null, "value_schema_id": null, "offsets": offsets_json(&reports) });
    if super::confluent_v1::is_v1(&headers) {
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, super::confluent_v1::V1_JSON)], answer.to_string()).into_response());
    }
    Ok(v2_response(StatusCode::OK, &answer))
}

async fn produce_to_topic(State(state): State<Shared>, headers: HeaderMap, Path(t): Path<String>, request: Body) -> Result<Response, RestError> {
    produce_v2(&state, headers, &t, None, request).await
}

async fn produce_to_partition(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((t, p)): Path<(String, String)>,
    request: Body,
) -> Result<Response, RestError> {
    produce_v2(&state, headers, &t, Some(&p), request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, v.parse().unwrap());
        h
    }

    #[test]
    fn content_types_choose_the_embedded_format_or_415() {
        assert_eq!(embedded_format(&ct("application/vnd.kafka.binary.v2+json")), Ok(Embedded::Binary));
        assert_eq!(embedded_format(&ct("application/vnd.kafka.json.v2+json; charset=utf-8")), Ok(Embedded::Json));
        assert_eq!(embedded_format(&ct("application/vnd.kafka.binary.v1+json")), Ok(Embedded::Binary));
        assert_eq!(embedded_format(&ct("application/vnd.kafka.v1+json")), Ok(Embedded::Binary));
        assert_eq!(embedded_format(&ct("application/vnd.kafka.json.v1+json")), Ok(Embedded::Json));
        for bad in ["application/json", "application/vnd.kafka.avro.v2+json", "text/plain", "application/vnd.kafka.avro.v1+json", "application/vnd.kafka.v2+json"] {
            assert_eq!(embedded_format(&ct(bad)).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad}");
        }
        assert_eq!(embedded_format(&HeaderMap::new()).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn records_parse_in_both_formats_and_errors_name_the_field() {
        let body = json!({"records": [{"key": "AAE=", "value": "/w==", "partition": 1}, {"value": null}]});
        let rs = parse_records(&body, &|f, v| embedded_bytes(Embedded::Binary, f, v)).unwrap();
        assert_eq!((rs[0].key.as_deref(), rs[0].value.as_deref(), rs[0].partition), (Some(&[0u8, 1][..]), Some(&[255u8][..]), Some(1)));
        assert_eq!((rs[1].key.as_ref(), rs[1].value.as_ref()), (None, None));
        let body = json!({"records": [{"key": {"a": [1, 2]}, "value": "s"}]});
        let rs = parse_records(&body, &|f, v| embedded_bytes(Embedded::Json, f, v)).unwrap();
        assert_eq!((rs[0].key.as_deref(), rs[0].value.as_deref()), (Some(&br#"{"a":[1,2]}"#[..]), Some(&br#""s""#[..])));
        let cases = [
            (json!({}), "records"),
            (json!({"records": []}), "records"),
            (json!({"records": [1]}), "records[0]"),
            (json!({"records": [{"value": "!!"}]}), "records[0].value"),
            (json!({"records": [{"value": "aGk=", "key": 5}]}), "records[0].key"),
            (json!({"records": [{"value": "aGk="}, {"partition": -1}]}), "records[1].partition"),
        ];
        for (body, field) in cases {
            let e = parse_records(&body, &|f, v| embedded_bytes(Embedded::Binary, f, v)).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(e.message.contains(&format!("{field}:")), "{body}: {}", e.message);
        }
    }
}
