//! v3 produce: `POST .../topics/{t}/records` and `POST .../topics/{t}/records:batch`.
//!
//! `records` takes concatenated JSON records. A body with a Content-Length holding one record
//! is answered with its delivery report, or its error with the error's status; several records
//! get one report each, in order, with 200. A chunked body is a stream (`v3_stream`).
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use super::error::RestError;
use super::produce::{self, Report};
use super::records::{self, ProducerRecord};
use super::v3::{check_topic, json_response};
use super::{body, v3_stream, Shared};

/// Confluent's limit and code for `records:batch`.
const MAX_BATCH_ENTRIES: usize = 10;
const BATCH_ERROR: u32 = 42208;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v3/clusters/{cluster_id}/topics/{topic_name}/records", post(produce_records))
        .route("/v3/clusters/{cluster_id}/topics/{topic_name}/records:batch", post(produce_batch))
}

fn data_report(r: &ProducerRecord, key: bool) -> Value {
    let (bytes, t) = if key { (&r.key, r.key_type) } else { (&r.value, r.value_type) };
    match (bytes, t) {
        (Some(b), Some(t)) => json!({ "type": t.name(), "size": b.len() }),
        (None, Some(t)) => json!({ "type": t.name(), "size": 0 }),
        _ => Value::Null,
    }
}

/// Confluent's delivery report (`ProduceResponse`) for one record.
fn report_json(cluster_id: &str, topic: &str, record: Option<&ProducerRecord>, report: &Report) -> Value {
    match (report, record) {
        (Ok(d), Some(r)) => json!({
            "error_code": 200,
            "cluster_id": cluster_id,
            "topic_name": topic,
            "partition_id": d.partition,
            "offset": d.offset,
            "timestamp": super::time::format_ms(d.timestamp),
            "key": data_report(r, true),
            "value": data_report(r, false),
        }),
        (Err(e), _) => json!({ "error_code": e.error_code, "message": e.message }),
        (Ok(_), None) => json!({ "error_code": 500, "message": "no record" }),
    }
}

/// Delivery reports as JSON lines, written straight into text (the text `report_json` makes,
/// without building a JSON tree per record); the cluster and topic are quoted once.
pub(super) struct ReportWriter {
    cluster_id: String,
    topic: String,
    last_time: Option<(i64, String)>,
}

impl ReportWriter {
    pub fn new(cluster_id: &str, topic: &str) -> Self {
        Self { cluster_id: quoted(cluster_id), topic: quoted(topic), last_time: None }
    }

    /// One line per report, in order.
    pub fn write_all(&mut self, out: &mut String, results: &[(Option<ProducerRecord>, Report)]) {
        for (record, report) in results {
            self.write(out, record.as_ref(), report);
        }
    }

    fn write(&mut self, out: &mut String, record: Option<&ProducerRecord>, report: &Report) {
        use std::fmt::Write;
        match (report, record) {
            (Ok(d), Some(r)) => {
                // Records of one round mostly share their millisecond.
                if self.last_time.as_ref().is_none_or(|(ms, _)| *ms != d.timestamp) {
                    self.last_time = Some((d.timestamp, super::time::format_ms(d.timestamp)));
                }
                let time = self.last_time.as_ref().map_or("", |(_, t)| t.as_str());
                let _ = write!(out, "{{\"cluster_id\":{},\"error_code\":200,\"key\":", self.cluster_id);
                data_text(out, r.key.as_deref(), r.key_type);
                let _ = write!(out, ",\"offset\":{},\"partition_id\":{},\"timestamp\":\"{time}\",\"topic_name\":{},\"value\":", d.offset, d.partition, self.topic);
                data_text(out, r.value.as_deref(), r.value_type);
                out.push_str("}\n");
            }
            (Err(e), _) => {
                let _ = writeln!(out, "{{\"error_code\":{},\"message\":{}}}", e.error_code, quoted(&e.message));
            }
            (Ok(_), None) => out.push_str("{\"error_code\":500,\"message\":\"no record\"}\n"),
        }
    }
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn data_text(out: &mut String, bytes: Option<&[u8]>, t: Option<records::DataType>) {
    use std::fmt::Write;
    match t {
        Some(t) => {
            let _ = write!(out, "{{\"size\":{},\"type\":\"{}\"}}", bytes.map_or(0, <[u8]>::len), t.name());
        }
        None => out.push_str("null"),
    }
}

/// Parses what of `buf` is complete: the records (or an error each: a bad field, a record of
/// more than `limit` bytes), how many bytes they took, and a syntax error that ends the stream.
pub(super) fn parse_available(buf: &[u8], limit: usize) -> (Vec<Result<ProducerRecord, RestError>>, usize, Option<RestError>) {
    let mut out = Vec::new();
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
    loop {
        let start = values.byte_offset();
        match values.next() {
            None => return (out, values.byte_offset(), None),
            Some(Ok(_)) if values.byte_offset() - start > limit => out.push(Err(RestError::too_large(limit))),
            Some(Ok(v)) => out.push(records::parse_v3("", &v).map_err(|e| RestError::invalid(&e.field, e.why))),
            Some(Err(e)) if e.is_eof() => return (out, values.byte_offset(), None),
            Some(Err(e)) => return (out, values.byte_offset(), Some(RestError::invalid("body", format!("invalid JSON ({e})")))),
        }
    }
}

/// Produces the good records of `parsed` and merges their reports with the bad ones', in order.
pub(super) async fn produce_parsed(state: &Shared, topic: &str, parsed: Vec<Result<ProducerRecord, RestError>>) -> Vec<(Option<ProducerRecord>, Report)> {
    let mut good = Vec::with_capacity(parsed.len());
    let slots: Vec<Option<RestError>> = parsed
        .into_iter()
        .map(|r| match r {
            Ok(record) => {
                good.push(record);
                None
            }
            Err(e) => Some(e),
        })
        .collect();
    let mut reports = produce::produce(state, topic, &good).await.into_iter();
    let mut good = good.into_iter();
    slots
        .into_iter()
        .map(|slot| match slot {
            None => (good.next(), reports.next().unwrap_or_else(|| Err(RestError::bad_request("no report")))),
            Some(e) => (None, Err(e)),
        })
        .collect()
}

async fn produce_records(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((c, t)): Path<(String, String)>,
    request: Body,
) -> Result<Response, RestError> {
    check_topic(&state, &c, &t)?;
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        if !ct.starts_with("application/json") {
            return Err(RestError::status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "HTTP 415 Unsupported Media Type: expected application/json"));
        }
    }
    if body::declared_length(&headers).is_none() {
        return Ok(v3_stream::stream(state, c, t, request));
    }
    let bytes = body::read_all(&headers, request, &state.config).await?;
    let (parsed, _, syntax) = parse_available(&bytes, state.config.max_request_bytes);
    if let Some(e) = syntax {
        return Err(e);
    }
    if parsed.is_empty() {
        return Err(RestError::invalid("body", "Request body is empty. Data is required."));
    }
    let single = parsed.len() == 1;
    let results = produce_parsed(&state, &t, parsed).await;
    if single {
        let (record, report) = &results[0];
        return match report {
            Ok(_) => Ok(json_response(StatusCode::OK, &report_json(&c, &t, record.as_ref(), report))),
            Err(e) => Err(e.clone()),
        };
    }
    let mut out = String::new();
    ReportWriter::new(&c, &t).write_all(&mut out, &results);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], out).into_response())
}

async fn produce_batch(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((c, t)): Path<(String, String)>,
    request: Body,
) -> Result<Response, RestError> {
    check_topic(&state, &c, &t)?;
    let v = body::read_json(&headers, request, &state.config).await?;
    let entries = v.get("entries").and_then(Value::as_array).ok_or_else(|| RestError::invalid("entries", "expected an array"))?;
    let batch_error = |m: &str| RestError::new(StatusCode::BAD_REQUEST, BATCH_ERROR, m);
    if entries.is_empty() {
        return Err(batch_error("Empty batch."));
    }
    if entries.len() > MAX_BATCH_ENTRIES {
        return Err(batch_error("Too many entries in batch."));
    }
    let mut ids = Vec::new();
    let mut parsed = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let id = match e.get("id") {
            Some(Value::String(s)) if (1..=80).contains(&s.len()) => s.clone(),
            _ => return Err(batch_error("Batch entry identifier is not a valid string.")),
        };
        if ids.contains(&id) {
            return Err(batch_error("Batch entry IDs are not distinct."));
        }
        ids.push(id);
        parsed.push(records::parse_v3(&format!("entries[{i}]"), e).map_err(|e| RestError::invalid(&e.field, e.why)));
    }
    let results = produce_parsed(&state, &t, parsed).await;
    let (mut successes, mut failures) = (Vec::new(), Vec::new());
    for (id, (record, report)) in ids.into_iter().zip(&results) {
        let mut v = report_json(&c, &t, record.as_ref(), report);
        if let Some(o) = v.as_object_mut() {
            o.insert("id".into(), Value::String(id));
            if report.is_ok() {
                o.remove("error_code");
                successes.push(v);
            } else {
                failures.push(v);
            }
        }
    }
    Ok(json_response(StatusCode::MULTI_STATUS, &json!({ "successes": successes, "failures": failures })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::produce::Delivery;
    use crate::rest::records::DataType;

    #[test]
    fn written_reports_are_the_json_reports_text() {
        let keyed = ProducerRecord { partition: None, key: Some(vec![1, 2]), value: Some(b"{}".to_vec()), key_type: Some(DataType::Binary), value_type: Some(DataType::Json), headers: vec![], timestamp: None };
        let bare = ProducerRecord { key: None, key_type: None, value: None, value_type: Some(DataType::String), ..keyed.clone() };
        let cases: Vec<(Option<ProducerRecord>, Report)> = vec![
            (Some(keyed.clone()), Ok(Delivery { partition: 3, offset: 41, timestamp: 1_612_552_482_123 })),
            (Some(bare), Ok(Delivery { partition: 0, offset: 0, timestamp: 1_612_552_482_000 })),
            (None, Err(RestError::invalid("value.data", "a \"quoted\" reason"))),
            (None, Ok(Delivery { partition: 0, offset: 0, timestamp: 0 })),
        ];
        let (cluster, topic) = ("c\"1", "t\\x");
        let mut text = String::new();
        ReportWriter::new(cluster, topic).write_all(&mut text, &cases);
        let want: String = cases.iter().map(|(r, rep)| format!("{}\n", report_json(cluster, topic, r.as_ref(), rep))).collect();
        assert_eq!(text, want);
    }
}
