//! v3 produce: `POST .../topics/{t}/records` and `POST .../topics/{t}/records:batch`.
//!
//! `records` takes concatenated JSON records. A body with a Content-Length holding one record
//! is answered with its delivery report, or its error with the error's status; several records
//! get one report each, in order, with 200. A chunked body is a stream: records are produced as
//! they arrive (all those that have arrived go out together, one batch per partition) and each
//! report is written back as soon as its record is acknowledged, while the client keeps sending.
//! A record over `rest.max.request.bytes`, a body that stops arriving for
//! `rest.request.timeout.ms` or that stops being JSON ends the stream with one last report
//! saying why.
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};

use super::error::RestError;
use super::produce::{self, Report};
use super::records::{self, ProducerRecord};
use super::v3::{check_topic, json_response};
use super::{body, Shared};

/// Confluent's limit and code for `records:batch`.
const MAX_BATCH_ENTRIES: usize = 10;
const BATCH_ERROR: u32 = 42208;
/// Delivery reports kept for a streaming client that has not read them yet.
const REPORT_BUFFER: usize = 32 << 20;

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

/// Parses what of `buf` is complete: the records (or an error each: a bad field, a record of
/// more than `limit` bytes), how many bytes they took, and a syntax error that ends the stream.
fn parse_available(buf: &[u8], limit: usize) -> (Vec<Result<ProducerRecord, RestError>>, usize, Option<RestError>) {
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
async fn produce_parsed(state: &Shared, topic: &str, parsed: Vec<Result<ProducerRecord, RestError>>) -> Vec<(Option<ProducerRecord>, Report)> {
    let good: Vec<ProducerRecord> = parsed.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let mut reports = produce::produce(state, topic, &good).await.into_iter();
    let mut good = good.into_iter();
    parsed
        .into_iter()
        .map(|r| match r {
            Ok(_) => (good.next(), reports.next().unwrap_or_else(|| Err(RestError::bad_request("no report")))),
            Err(e) => (None, Err(e)),
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
        return Ok(stream(state, c, t, request));
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
    for (record, report) in &results {
        out.push_str(&report_json(&c, &t, record.as_ref(), report).to_string());
        out.push('\n');
    }
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// Streaming mode: a task reads and produces, the response body carries its reports.
fn stream(state: Shared, cluster_id: String, topic: String, request: Body) -> Response {
    // Reports wait here until the client reads them; many HTTP clients send the whole body
    // before reading any of the answer, so up to REPORT_BUFFER bytes of reports are kept rather
    // than stop reading the body (beyond that the stream waits for the client to read).
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let room = std::sync::Arc::new(tokio::sync::Semaphore::new(REPORT_BUFFER));
    let reader_room = room.clone();
    tokio::spawn(async move {
        let send = |v: Value| {
            let tx = tx.clone();
            let room = room.clone();
            async move {
                let mut line = v.to_string();
                line.push('\n');
                match room.acquire_many(line.len().min(REPORT_BUFFER) as u32).await {
                    Ok(p) => p.forget(),
                    Err(_) => return false,
                }
                tx.send(Bytes::from(line)).is_ok()
            }
        };
        let limit = state.config.max_request_bytes;
        let mut body = request.into_data_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut inflight: Option<tokio::task::JoinHandle<Vec<(Option<ProducerRecord>, Report)>>> = None;
        loop {
            let first = tokio::time::timeout(state.config.request_timeout, body.next()).await;
            let mut got = match first {
                Err(_) => Got::Fatal(RestError::timed_out("The next record")),
                Ok(chunk) => take(chunk, &mut buf),
            };
            // Whatever else has already arrived goes into the same round.
            while matches!(got, Got::More) && buf.len() < limit {
                match body.next().now_or_never() {
                    Some(chunk) => got = take(chunk, &mut buf),
                    None => break,
                }
            }
            let (ended, fatal) = match got {
                Got::More => (false, None),
                Got::Ended => (true, None),
                Got::Fatal(e) => (false, Some(e)),
            };
            let (parsed, used, syntax) = parse_available(&buf, limit);
            buf.drain(..used);
            let fatal = fatal.or(syntax).or_else(|| (buf.len() > limit).then(|| RestError::too_large(limit)));
            // One round is produced while the next is read: the previous round's reports are
            // written (in order) before the next round starts, and what arrived meanwhile all
            // goes into that next round.
            let done = fatal.is_some() || ended;
            if !parsed.is_empty() || done {
                if let Some(previous) = inflight.take() {
                    let Ok(results) = previous.await else { return };
                    for (record, report) in results {
                        if !send(report_json(&cluster_id, &topic, record.as_ref(), &report)).await {
                            return;
                        }
                    }
                }
            }
            if !parsed.is_empty() {
                let (round_state, round_topic) = (state.clone(), topic.clone());
                let round = tokio::spawn(async move { produce_parsed(&round_state, &round_topic, parsed).await });
                if done {
                    let Ok(results) = round.await else { return };
                    for (record, report) in results {
                        if !send(report_json(&cluster_id, &topic, record.as_ref(), &report)).await {
                            return;
                        }
                    }
                } else {
                    inflight = Some(round);
                }
            }
            if let Some(e) = fatal {
                send(json!({ "error_code": e.error_code, "message": e.message })).await;
                return;
            }
            if ended {
                if !buf.iter().all(u8::is_ascii_whitespace) {
                    send(json!({ "error_code": 422, "message": "Payload error. body: the stream ended inside a record" })).await;
                }
                return;
            }
        }
    });
    let body = Body::from_stream(report_stream(rx, reader_room));
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// What reading the body came to.
enum Got {
    More,
    Ended,
    Fatal(RestError),
}

fn take(chunk: Option<Result<Bytes, axum::Error>>, buf: &mut Vec<u8>) -> Got {
    match chunk {
        None => Got::Ended,
        Some(Ok(b)) => {
            buf.extend_from_slice(&b);
            Got::More
        }
        Some(Err(e)) => Got::Fatal(RestError::bad_request(format!("could not read the request body: {e}"))),
    }
}

fn report_stream(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    room: std::sync::Arc<tokio::sync::Semaphore>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|line| {
            line.map(|l| {
                room.add_permits(l.len().min(REPORT_BUFFER));
                Ok(l)
            })
        })
    })
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
