//! The broker's spans, built from its own types so each hook is one call:
//!
//! - `kafka.<Api>` (SERVER), one per request, from read-complete to response-sent;
//! - `log.append` (INTERNAL), one per produced partition, linked to the producer contexts
//!   found in its batches' `traceparent` headers;
//! - `log.flush` (INTERNAL, child of `log.append`), the fsync that append ran, if any.
//!
//! Producer contexts are links, not parents: as in OpenTelemetry's messaging conventions, the
//! broker's work is its own trace, and a producer's trace shows where its records went
//! through the link (most backends show links both ways).
//!
//! Attribute names follow OpenTelemetry's messaging and network conventions where one fits
//! (`messaging.destination.name`, `messaging.destination.partition.id`,
//! `messaging.kafka.offset`, `network.peer.address`, `error.type`) and use `kafka.*` for
//! protocol fields the conventions do not name.
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Instant;

use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

use super::{traceparent, Span, TraceParent, Tracer, MAX_LINKS};
use crate::cluster::partition::Appended;
use crate::cluster::PartitionError;

/// What the request span records about a request.
pub struct RequestInfo<'a> {
    /// Kafka's request name (`Produce`, `FetchConsumer`, ...).
    pub api_name: &'static str,
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: &'a str,
    pub peer: SocketAddr,
    pub listener: &'a str,
    pub request_bytes: u64,
}

/// Starts a request's SERVER span at `read_done` (when its last byte was read); `None` when
/// the sampler leaves this request out.
pub fn request_span(tracer: &Tracer, info: RequestInfo<'_>, read_done: Instant) -> Option<Span> {
    let attributes = vec![
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("kafka.api.name", info.api_name),
        KeyValue::new("kafka.api.key", i64::from(info.api_key)),
        KeyValue::new("kafka.api.version", i64::from(info.api_version)),
        KeyValue::new("kafka.correlation_id", i64::from(info.correlation_id)),
        KeyValue::new("messaging.client.id", info.client_id.to_string()),
        KeyValue::new("network.peer.address", info.peer.ip().to_string()),
        KeyValue::new("network.peer.port", i64::from(info.peer.port())),
        KeyValue::new("kafka.listener", info.listener.to_string()),
        KeyValue::new("kafka.request.bytes", int(info.request_bytes)),
    ];
    tracer.root_span(Cow::Owned(format!("kafka.{}", info.api_name)), SpanKind::Server, read_done, attributes)
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Ends a request span now. `first_error` is the first non-zero error code in the response;
/// it marks the span as failed (Kafka answers errors per partition, so a request with one
/// refused partition counts).
pub fn finish_request(mut span: Span, response_bytes: u64, first_error: Option<i16>) {
    span.set("kafka.response.bytes", int(response_bytes));
    if let Some(code) = first_error {
        let name = crate::metrics::requests::error_name(code);
        span.set("kafka.error_code", i64::from(code));
        span.set("error.type", name.clone());
        span.set_error(name);
    }
    span.end()
}

/// Starts the `log.append` span of one produced partition, linked to the producer contexts
/// in `records` (decoded only here, i.e. only when tracing is on and the request sampled).
pub fn log_append_span(parent: &TraceParent, topic: &str, partition: i32, records: &[u8]) -> Span {
    let mut attributes = destination(topic, partition);
    attributes.push(KeyValue::new("messaging.message.body.size", int(records.len() as u64)));
    // One more than the limit, so the SDK counts the links it leaves out.
    let links = traceparent::producer_links(records, MAX_LINKS as usize + 1);
    parent.child("log.append", Instant::now(), attributes, links)
}

/// Ends a `log.append` span with the append's outcome, adding its `log.flush` child when the
/// append ran an fsync.
pub fn finish_log_append(mut span: Span, topic: &str, partition: i32, result: Result<&Appended, &PartitionError>) {
    let end = Instant::now();
    match result {
        Ok(a) => {
            span.set("messaging.kafka.offset", a.base_offset);
            span.set("messaging.batch.message_count", int(a.records));
            if a.duplicate {
                span.set("lantern.append.duplicate", true);
            }
            // The fsync is the last step of the append (only the flushed-offset update
            // follows), so it is placed at the end of the append.
            if let (Some(took), Some(parent)) = (a.flushed_in, span.parent()) {
                let mut attributes = destination(topic, partition);
                attributes.push(KeyValue::new("lantern.flush.upto_offset", a.last_offset.saturating_add(1)));
                parent.child("log.flush", end.checked_sub(took).unwrap_or(end), attributes, Vec::new()).end_at(end);
            }
        }
        Err(e) => {
            span.set("kafka.error_code", i64::from(e.code()));
            span.set("error.type", crate::metrics::requests::error_name(e.code()));
            span.set_error(e.to_string());
        }
    }
    span.end_at(end)
}

fn destination(topic: &str, partition: i32) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.destination.name", topic.to_string()),
        KeyValue::new("messaging.destination.partition.id", partition.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testing::Recorded;
    use super::super::Sampler;
    use super::*;
    use opentelemetry::trace::Status;
    use opentelemetry::Value;
    use opentelemetry_sdk::trace::SpanData;

    fn attr<'a>(s: &'a SpanData, key: &str) -> Option<&'a Value> {
        s.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
    }

    fn appended(flushed: Option<std::time::Duration>) -> Appended {
        Appended { base_offset: 42, last_offset: 44, log_append_time: -1, log_start_offset: 0, records: 3, duplicate: false, flushed_in: flushed }
    }

    #[test]
    fn a_produce_request_yields_request_append_and_flush_spans() {
        let rec = Recorded::default();
        let tracer = Tracer::for_tests(Sampler::AlwaysOn, rec.clone());
        let info = RequestInfo {
            api_name: "Produce",
            api_key: 0,
            api_version: 9,
            correlation_id: 7,
            client_id: "rdkafka",
            peer: "127.0.0.1:5555".parse().expect("addr"),
            listener: "PLAINTEXT",
            request_bytes: 100,
        };
        let request = request_span(&tracer, info, Instant::now()).expect("sampled");
        let parent = request.parent().expect("live");
        let append = log_append_span(&parent, "orders", 3, b"not a batch");
        finish_log_append(append, "orders", 3, Ok(&appended(Some(std::time::Duration::from_millis(2)))));
        finish_request(request, 50, Some(6));

        let spans = rec.take();
        let [flush, append, request] = &spans[..] else { panic!("three spans: {spans:?}") };
        assert_eq!((flush.name.as_ref(), append.name.as_ref(), request.name.as_ref()), ("log.flush", "log.append", "kafka.Produce"));
        assert_eq!(append.parent_span_id, request.span_context.span_id());
        assert_eq!(flush.parent_span_id, append.span_context.span_id());
        assert_eq!(attr(append, "messaging.destination.name"), Some(&Value::from("orders")));
        assert_eq!(attr(append, "messaging.destination.partition.id"), Some(&Value::from("3")));
        assert_eq!(attr(append, "messaging.kafka.offset"), Some(&Value::I64(42)));
        assert_eq!(attr(append, "messaging.batch.message_count"), Some(&Value::I64(3)));
        assert_eq!(attr(flush, "lantern.flush.upto_offset"), Some(&Value::I64(45)));
        // Both end at the same instant (wall-clock conversion may differ by a few ns).
        let apart = |a: std::time::SystemTime, b: std::time::SystemTime| a.duration_since(b).or_else(|_| b.duration_since(a)).expect("comparable");
        assert!(apart(flush.end_time, append.end_time) < std::time::Duration::from_millis(1));
        assert!(apart(flush.end_time, flush.start_time) >= std::time::Duration::from_micros(1900));
        assert_eq!(attr(request, "kafka.correlation_id"), Some(&Value::I64(7)));
        assert_eq!(attr(request, "error.type"), Some(&Value::from("NOT_LEADER_OR_FOLLOWER")));
        assert_eq!(request.status, Status::error("NOT_LEADER_OR_FOLLOWER"));
        assert!(append.links.is_empty());
    }

    #[test]
    fn no_fsync_no_flush_span() {
        let rec = Recorded::default();
        let tracer = Tracer::for_tests(Sampler::AlwaysOn, rec.clone());
        let request = tracer.root_span("kafka.Produce".into(), SpanKind::Server, Instant::now(), vec![]).expect("sampled");
        let append = log_append_span(&request.parent().expect("live"), "t", 0, &[]);
        finish_log_append(append, "t", 0, Ok(&appended(None)));
        drop(request);
        let names: Vec<_> = rec.take().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["log.append", "kafka.Produce"]);
    }
}
