//! v3 streaming produce: a `records` request with a chunked body. Records are produced as they
//! arrive and each report is written back as soon as its record is acknowledged, while the
//! client keeps sending. The body is read and parsed all the time; one round of records is
//! produced at a time (everything parsed while the previous round was out goes into the next,
//! one batch per partition), so rounds grow with the load and per-partition order holds. A
//! round's reports go back as one piece of the response. A record over
//! `rest.max.request.bytes`, a body that stops arriving for `rest.request.timeout.ms` or that
//! stops being JSON ends the stream with one last report saying why.
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinError, JoinHandle};

use super::error::RestError;
use super::records::ProducerRecord;
use super::v3_records::{parse_available, produce_parsed, ReportWriter};
use super::Shared;

/// Delivery reports kept for a streaming client that has not read them yet.
const REPORT_BUFFER: usize = 32 << 20;
/// Parsed records (by their JSON size) waiting for the round in flight; beyond this the body
/// is not read until that round is done.
const READ_AHEAD: usize = 4 << 20;
/// What a parsed record counts against READ_AHEAD at least: a record costs a few hundred bytes
/// of memory (the record, its result, its report) however short its JSON (`{}` is a record),
/// so 4 MiB of tiny records must not make a round of millions.
const RECORD_CHARGE: usize = 300;

/// Streaming mode: a task reads and produces, the response body carries its reports.
pub fn stream(state: Shared, cluster_id: String, topic: String, request: Body) -> Response {
    // Reports wait here until the client reads them; many HTTP clients send the whole body
    // before reading any of the answer, so up to REPORT_BUFFER bytes of reports are kept rather
    // than stop reading the body (beyond that the stream waits for the client to read).
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let room = Arc::new(Semaphore::new(REPORT_BUFFER));
    let out = Reports { tx, room: room.clone() };
    tokio::spawn(run(state, cluster_id, topic, request.into_data_stream(), out));
    let body = Body::from_stream(report_stream(rx, room));
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The response side: report text, held back while the client has REPORT_BUFFER unread.
struct Reports {
    tx: mpsc::UnboundedSender<Bytes>,
    room: Arc<Semaphore>,
}

impl Reports {
    /// False once the client is gone (also while waiting for it to read: a client that
    /// stopped reading and then disconnected must not hold the task forever).
    async fn send(&self, text: String) -> bool {
        if text.is_empty() {
            return true;
        }
        tokio::select! {
            permit = self.room.acquire_many(text.len().min(REPORT_BUFFER) as u32) => match permit {
                Ok(p) => p.forget(),
                Err(_) => return false,
            },
            () = self.tx.closed() => return false,
        }
        self.tx.send(Bytes::from(text)).is_ok()
    }
}

/// The records read and not yet produced, and what ends the stream.
struct Intake {
    limit: usize,
    buf: Vec<u8>,
    parsed: Vec<Result<ProducerRecord, RestError>>,
    parsed_bytes: usize,
    /// `Some(None)`: the body ended cleanly; `Some(Some(e))`: the stream ends with `e`.
    end: Option<Option<RestError>>,
}

impl Intake {
    fn new(limit: usize) -> Self {
        Self { limit, buf: Vec::new(), parsed: Vec::new(), parsed_bytes: 0, end: None }
    }

    /// Whether to read more of the body. With nothing parsed it always is (else, with no round
    /// in flight, nothing would ever wake the stream).
    fn reading(&self) -> bool {
        self.end.is_none() && (self.parsed.is_empty() || self.parsed_bytes < READ_AHEAD)
    }

    /// Takes a chunk (or the end of the body, or a failure to read it).
    fn take(&mut self, chunk: Option<Result<Bytes, axum::Error>>) {
        match chunk {
            Some(Ok(b)) => self.buf.extend_from_slice(&b),
            Some(Err(e)) => {
                self.parse();
                self.fail(RestError::bad_request(format!("could not read the request body: {e}")));
            }
            None if self.buf.iter().all(u8::is_ascii_whitespace) => self.end = Some(None),
            None => {
                self.parse();
                if self.end.is_some() {
                    // The last bytes were not JSON or too large: that is what ends the stream.
                    return;
                }
                if !self.buf.iter().all(u8::is_ascii_whitespace) {
                    self.fail(RestError::invalid("body", "the stream ended inside a record"));
                } else {
                    self.end = Some(None);
                }
            }
        }
    }

    fn fail(&mut self, e: RestError) {
        if self.end.is_none() {
            self.end = Some(Some(e));
        }
        self.buf.clear();
    }

    /// Moves the complete records of the buffer to `parsed`.
    fn parse(&mut self) {
        let (records, used, syntax) = parse_available(&self.buf, self.limit);
        self.buf.drain(..used);
        if !records.is_empty() {
            self.parsed_bytes += used.max(records.len() * RECORD_CHARGE);
        }
        self.parsed.extend(records);
        if let Some(e) = syntax {
            self.fail(e);
        } else if self.buf.len() > self.limit {
            self.fail(RestError::too_large(self.limit));
        }
    }

    fn round(&mut self) -> Vec<Result<ProducerRecord, RestError>> {
        self.parsed_bytes = 0;
        std::mem::take(&mut self.parsed)
    }
}

async fn run(state: Shared, cluster_id: String, topic: String, mut body: impl Stream<Item = Result<Bytes, axum::Error>> + Unpin, out: Reports) {
    let timeout = state.config.request_timeout;
    let mut intake = Intake::new(state.config.max_request_bytes);
    let mut inflight: Option<JoinHandle<String>> = None;
    // Records in the round in flight: a round that fails as a whole still owes each a report.
    let mut inflight_records = 0;
    loop {
        if inflight.is_none() && !intake.parsed.is_empty() {
            let (round, state, c, t) = (intake.round(), state.clone(), cluster_id.clone(), topic.clone());
            inflight_records = round.len();
            inflight = Some(tokio::spawn(async move {
                let results = produce_parsed(&state, &t, round).await;
                let mut text = String::with_capacity(results.len() * 200);
                ReportWriter::new(&c, &t).write_all(&mut text, &results);
                text
            }));
        }
        if inflight.is_none() && intake.end.is_some() {
            break;
        }
        let reading = intake.reading();
        debug_assert!(reading || inflight.is_some(), "a stream waiting on nothing never ends");
        tokio::select! {
            done = join(&mut inflight) => {
                inflight = None;
                let text = done.unwrap_or_else(|e| round_failed(inflight_records, &e));
                if !out.send(text).await {
                    return;
                }
            }
            chunk = tokio::time::timeout(timeout, body.next()), if reading => {
                match chunk {
                    Err(_) => intake.fail(RestError::timed_out("The next record")),
                    Ok(chunk) => {
                        let more = chunk.is_some();
                        intake.take(chunk);
                        // Whatever else has already arrived is parsed with it.
                        while more && intake.end.is_none() && intake.buf.len() <= intake.limit.min(READ_AHEAD) {
                            match body.next().now_or_never() {
                                Some(chunk @ Some(_)) => intake.take(chunk),
                                Some(None) => intake.take(None),
                                None => break,
                            }
                        }
                        if intake.end.is_none() {
                            intake.parse();
                        }
                    }
                }
            }
        }
    }
    if let Some(Some(e)) = intake.end {
        let _ = out.send(format!("{}\n", serde_json::json!({ "error_code": e.error_code, "message": e.message }))).await;
    }
}

/// The reports of a round whose task failed (a panic): one error per record, so the client
/// still gets a report for every record it sent.
fn round_failed(records: usize, e: &JoinError) -> String {
    tracing::error!(target: "kafka.rest", error = %e, records, "a REST streaming produce round failed");
    let line = format!("{}\n", serde_json::json!({ "error_code": 500, "message": "The broker failed while producing this record; it may or may not have been written." }));
    line.repeat(records)
}

/// The round in flight's answer; never ready when there is none.
async fn join(inflight: &mut Option<JoinHandle<String>>) -> Result<String, JoinError> {
    match inflight {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

fn report_stream(mut rx: mpsc::UnboundedReceiver<Bytes>, room: Arc<Semaphore>) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|text| {
            text.map(|t| {
                room.add_permits(t.len().min(REPORT_BUFFER));
                Ok(t)
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(s: &str) -> Option<Result<Bytes, axum::Error>> {
        Some(Ok(Bytes::copy_from_slice(s.as_bytes())))
    }

    fn codes(records: &[Result<ProducerRecord, RestError>]) -> Vec<Option<u32>> {
        records.iter().map(|r| r.as_ref().err().map(|e| e.error_code)).collect()
    }

    #[test]
    fn records_split_across_chunks_are_parsed_once_whole() {
        let mut intake = Intake::new(1 << 20);
        intake.take(chunk(r#"{"value": {"type": "STRING", "data": "a"}} {"value": {"type": "STR"#));
        intake.parse();
        assert_eq!(intake.parsed.len(), 1);
        intake.take(chunk(r#"ING", "data": "b"}}{"partition_id": -1}"#));
        intake.parse();
        intake.take(None);
        assert_eq!(codes(&intake.round()), vec![None, None, Some(422)]);
        assert_eq!(intake.end, Some(None));
        assert!(!intake.reading());
    }

    #[test]
    fn a_broken_stream_keeps_the_records_before_the_break() {
        let mut intake = Intake::new(1 << 20);
        intake.take(chunk(r#"{"value": null} ]{"value": null}"#));
        intake.parse();
        assert_eq!(codes(&intake.parsed), vec![None]);
        assert!(matches!(&intake.end, Some(Some(e)) if e.error_code == 422 && e.message.contains("invalid JSON")));
        let mut cut = Intake::new(1 << 20);
        cut.take(chunk(r#"{"value": null} {"val"#));
        cut.parse();
        cut.take(None);
        assert_eq!(cut.parsed.len(), 1);
        assert!(matches!(&cut.end, Some(Some(e)) if e.message.contains("ended inside a record")));
    }

    #[test]
    fn an_unfinished_record_over_the_limit_ends_the_stream() {
        let mut intake = Intake::new(64);
        intake.take(chunk(&format!(r#"{{"value": {{"type": "STRING", "data": "{}"#, "x".repeat(100))));
        intake.parse();
        assert!(matches!(&intake.end, Some(Some(e)) if e.error_code == 413));
        assert!(intake.buf.is_empty());
    }

    #[test]
    fn whitespace_alone_never_stops_the_reading() {
        // 4 MiB of whitespace parses to no record: reading must go on (it stopped, and with no
        // round in flight the stream waited on nothing forever).
        let mut intake = Intake::new(16 << 20);
        intake.take(chunk(&" ".repeat(READ_AHEAD + 10)));
        intake.parse();
        assert!(intake.parsed.is_empty() && intake.reading());
    }

    #[test]
    fn tiny_records_are_charged_what_they_cost() {
        let mut intake = Intake::new(16 << 20);
        while intake.reading() {
            intake.take(chunk(&"{}".repeat(4096)));
            intake.parse();
        }
        let round = intake.round().len();
        assert!(round <= READ_AHEAD / RECORD_CHARGE + 4096, "a round of {round} records of 2 bytes");
    }

    #[test]
    fn a_bad_last_chunk_ending_the_body_keeps_its_error() {
        let mut intake = Intake::new(1 << 20);
        intake.take(chunk(r#"{"value":null} ] {"value":null}"#));
        intake.take(None);
        assert_eq!(intake.parsed.len(), 1);
        assert!(matches!(&intake.end, Some(Some(e)) if e.error_code == 422), "{:?}", intake.end.as_ref().map(|e| e.as_ref().map(|e| &e.message)));
    }

    #[test]
    fn a_failed_round_reports_every_record() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let e = rt.block_on(async { tokio::spawn(async { panic!("planted") }).await.unwrap_err() });
        let text = round_failed(3, &e);
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["error_code"] == 500));
    }

    #[tokio::test]
    async fn a_client_gone_while_reports_wait_frees_the_stream() {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let out = Reports { tx, room: Arc::new(Semaphore::new(4)) };
        assert!(out.send("abcd".into()).await);
        drop(rx);
        // No room left and nobody reading: send must give up rather than wait forever.
        let sent = tokio::time::timeout(std::time::Duration::from_secs(5), out.send("more".into())).await;
        assert_eq!(sent, Ok(false));
    }

    #[test]
    fn reading_pauses_while_a_round_waits() {
        let mut intake = Intake::new(16 << 20);
        let line = format!("{{\"value\": {{\"type\": \"STRING\", \"data\": \"{}\"}}}}\n", "x".repeat(1000));
        while intake.reading() {
            intake.take(chunk(&line));
            intake.parse();
        }
        assert!(intake.parsed_bytes >= READ_AHEAD);
        assert_eq!(intake.round().len(), READ_AHEAD.div_ceil(line.len()));
        assert!(intake.reading());
    }
}
