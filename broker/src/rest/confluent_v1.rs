//! Confluent REST Proxy's v1 API, as far as it differs from v2 (which it mostly shares paths and
//! bodies with): the `application/vnd.kafka.*.v1+json` content types, the old consumer's
//! `auto.offset.reset` values (`smallest`, `largest`), the v1 read route
//! `GET /consumers/{g}/instances/{i}/topics/{topic}` (the first read subscribes the instance to
//! the topic; an instance reads one topic, another is 409 with 40901) and a commit answered
//! with a bare list, and the instance-less read of one partition
//! `GET /topics/{t}/partitions/{p}/messages?offset=&count=` (the old simple consumer, through
//! `fetch`). Confluent's own Node.js client (npm `kafka-rest`) speaks only v1.
//! Not to be confused with `v1.rs`, the managed service's stateless `/v1/...` API.
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::error::RestError;
use super::v2_consumer_records::record_json;
use super::v2_consumer_state::Format;
use super::v2_consumers::{locate, query_param, read_records, ILLEGAL_STATE};
use super::Shared;

/// Confluent's `CONSUMER_ALREADY_SUBSCRIBED_ERROR_CODE`.
const ALREADY_SUBSCRIBED: u32 = 40901;
pub const V1_JSON: &str = "application/vnd.kafka.v1+json";

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/consumers/{group_name}/instances/{instance}/topics/{topic_name}", get(read_topic))
        .route("/topics/{topic_name}/partitions/{partition_id}/messages", get(read_partition))
}

fn essence(headers: &HeaderMap, name: header::HeaderName) -> String {
    let v = headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    v.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether the request's content type is one of v1's (`application/vnd.kafka[.format].v1+json`).
pub fn is_v1(headers: &HeaderMap) -> bool {
    let ct = essence(headers, header::CONTENT_TYPE);
    ct.starts_with("application/vnd.kafka.") && ct.ends_with(".v1+json")
}

/// A v1 create body with the old consumer's reset values translated to the new consumer's, as
/// Confluent's proxy passed them to a consumer that took both.
pub fn translate_create(mut body: Value) -> Value {
    if let Some(reset) = body.get_mut("auto.offset.reset") {
        match reset.as_str() {
            Some("smallest") => *reset = Value::from("earliest"),
            Some("largest") => *reset = Value::from("latest"),
            _ => {}
        }
    }
    body
}

/// The format a v1 read's `Accept` asks for: `None` for any (absent, `*/*`, the generic v1 or
/// JSON types, as the Node.js client sends); an error for a schema format.
fn accepted(headers: &HeaderMap) -> Result<Option<Format>, ()> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let mut any = accept.trim().is_empty();
    for item in accept.split(',') {
        match item.split(';').next().unwrap_or("").trim() {
            "application/vnd.kafka.binary.v1+json" => return Ok(Some(Format::Binary)),
            "application/vnd.kafka.json.v1+json" => return Ok(Some(Format::Json)),
            "*/*" | "application/*" | "application/vnd.kafka.v1+json" | "application/vnd.kafka+json" | "application/json" => any = true,
            _ => {}
        }
    }
    if any {
        Ok(None)
    } else {
        Err(())
    }
}

fn content_type(format: Format) -> &'static str {
    match format {
        Format::Binary => "application/vnd.kafka.binary.v1+json",
        Format::Json => "application/vnd.kafka.json.v1+json",
    }
}

async fn read_topic(State(state): State<Shared>, Path((group, instance, topic)): Path<(String, String, String)>, request: Request) -> Result<Response, RestError> {
    let query = request.uri().query().map(str::to_string);
    let max_bytes = query_param(query.as_deref(), "max_bytes");
    let (entry, headers, _) = match locate(&state, &group, &instance, request).await {
        Ok(found) => found,
        Err(answer) => return Ok(answer),
    };
    let format = entry.instance.lock().config.format;
    match accepted(&headers) {
        Ok(None) => {}
        Ok(Some(f)) if f == format => {}
        _ => {
            return Err(RestError::new(
                StatusCode::NOT_ACCEPTABLE,
                40601,
                "The requested embedded data format does not match the deserializer for this consumer instance",
            ))
        }
    }
    if state.broker.image().topic(&topic).is_none() {
        return Err(super::v2::topic_not_found(&topic));
    }
    {
        let mut i = entry.instance.lock();
        let subscribed = i.subscribed_topics();
        if subscribed.is_empty() {
            i.subscribe(vec![topic.clone()])
                .map_err(|_| RestError::new(StatusCode::CONFLICT, ILLEGAL_STATE, "Illegal state: the instance has assigned partitions; a v1 read subscribes to a topic"))?;
            drop(i);
            entry.wake.notify_one();
        } else if subscribed != [topic.as_str()] {
            return Err(RestError::new(
                StatusCode::CONFLICT,
                ALREADY_SUBSCRIBED,
                "Consumer cannot subscribe the the specified target because it has already subscribed to other topics.",
            ));
        }
    }
    let out = read_records(&state, &entry, None, max_bytes.as_deref()).await?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type(format))], Value::Array(out).to_string()).into_response())
}

/// `GET /topics/{t}/partitions/{p}/messages?offset=o&count=n` (count 1 by default, at most
/// v1.rs's cap, and 6 MiB of keys and values): binary unless `Accept` asks for json.
async fn read_partition(State(state): State<Shared>, Path((t, p)): Path<(String, String)>, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response, RestError> {
    let format = accepted(&headers)
        .map_err(|_| RestError::new(StatusCode::NOT_ACCEPTABLE, 40601, "Only the binary and json embedded formats can be read here"))?
        .unwrap_or(Format::Binary);
    let partition = p.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| RestError::not_found("HTTP 404 Not Found"))?;
    let offset = query_param(query.as_deref(), "offset")
        .and_then(|o| o.parse::<i64>().ok())
        .filter(|o| *o >= 0)
        .ok_or_else(|| RestError::bad_request("offset: expected a number from 0"))?;
    let count = super::v1::count(query.as_deref())?;
    {
        let image = state.broker.image();
        let ti = image.topic(&t).ok_or_else(|| super::v2::topic_not_found(&t))?;
        if ti.partitions.get(partition as usize).is_none() {
            return Err(super::v2::partition_not_found(&t, partition));
        }
    }
    let fetched = super::fetch::fetch(&state, &t, partition, offset, count, super::v1::MAX_CONSUME_BYTES).await?;
    let m = &state.broker.metrics;
    let bytes: usize = fetched.records.iter().map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)).sum();
    crate::metrics::add(&m.rest_records_out, fetched.records.len() as u64);
    crate::metrics::add(&m.rest_bytes_out, bytes as u64);
    let tp = (t, partition);
    let mut out = Vec::with_capacity(fetched.records.len());
    for r in &fetched.records {
        let mut v = record_json(format, &tp, r).ok_or_else(|| {
            RestError::new(StatusCode::UNPROCESSABLE_ENTITY, 42203, format!("Conversion of JSON to Object failed: the record at offset {} is not JSON (read it as binary)", r.offset))
        })?;
        if let Some(o) = v.as_object_mut() {
            o.remove("topic");
        }
        out.push(v);
    }
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type(format))], Value::Array(out).to_string()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, v.parse().unwrap());
        h
    }

    #[test]
    fn v1_content_types_and_accepts() {
        assert!(is_v1(&headers(header::CONTENT_TYPE, "application/vnd.kafka.v1+json")));
        assert!(is_v1(&headers(header::CONTENT_TYPE, "application/vnd.kafka.binary.v1+json; charset=utf-8")));
        assert!(!is_v1(&headers(header::CONTENT_TYPE, "application/vnd.kafka.v2+json")));
        assert!(!is_v1(&HeaderMap::new()));
        // What the Node.js client sends by default.
        let node = "application/vnd.kafka.v1+json, application/vnd.kafka+json; q=0.9, application/json; q=0.8";
        assert_eq!(accepted(&headers(header::ACCEPT, node)), Ok(None));
        assert_eq!(accepted(&headers(header::ACCEPT, "application/vnd.kafka.binary.v1+json")), Ok(Some(Format::Binary)));
        assert_eq!(accepted(&headers(header::ACCEPT, "application/vnd.kafka.json.v1+json")), Ok(Some(Format::Json)));
        assert_eq!(accepted(&headers(header::ACCEPT, "application/vnd.kafka.avro.v1+json")), Err(()));
    }

    #[test]
    fn old_reset_values_become_new_ones() {
        assert_eq!(translate_create(json!({"auto.offset.reset": "smallest"})), json!({"auto.offset.reset": "earliest"}));
        assert_eq!(translate_create(json!({"auto.offset.reset": "largest", "format": "binary"})), json!({"auto.offset.reset": "latest", "format": "binary"}));
        assert_eq!(translate_create(json!({"auto.offset.reset": "none"})), json!({"auto.offset.reset": "none"}));
        assert_eq!(translate_create(json!([1])), json!([1]));
    }
}
