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

use super::{traceparent, Span, SpanKind, TraceParent, Tracer, MAX_LINKS};
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
    let mut span = tracer.root_span(Cow::Owned(format!("kafka.{}", info.api_name)), SpanKind::Server, read_done)?;
    span.set("messaging.system", "kafka");
    span.set("kafka.api.name", info.api_name);
    span.set("kafka.api.key", info.api_key);
    span.set("kafka.api.version", info.api_version);
    span.set("kafka.correlation_id", info.correlation_id);
    span.set("messaging.client.id", info.client_id);
    span.set("network.peer.address", info.peer.ip().to_string());
    span.set("network.peer.port", i64::from(info.peer.port()));
    span.set("kafka.listener", info.listener);
    span.set("kafka.request.bytes", info.request_bytes);
    Some(span)
}

/// Ends a request span now. `first_error` is the first non-zero error code in the response;
/// it marks the span as failed (Kafka answers errors per partition, so a request with one
/// refused partition counts).
pub fn finish_request(mut span: Span, response_bytes: u64, first_error: Option<i16>) {
    span.set("kafka.response.bytes", response_bytes);
    if let Some(code) = first_error {
        let name = crate::metrics::requests::error_name(code);
        span.set("kafka.error_code", code);
        span.set("error.type", name.clone());
        span.set_error(name);
    }
    span.end()
}

/// Starts the `log.append` span of one produced partition, linked to the producer contexts
/// in `records` (decoded only here, i.e. only when tracing is on and the request sampled).
pub fn log_append_span(parent: &TraceParent, topic: &str, partition: i32, records: &[u8]) -> Span {
    let mut span = parent.child("log.append", Instant::now());
    set_destination(&mut span, topic, partition);
    span.set("messaging.message.body.size", records.len() as u64);
    for link in traceparent::producer_links(records, MAX_LINKS) {
        span.link(link);
    }
    span
}

/// Ends a `log.append` span with the append's outcome, adding its `log.flush` child when the
/// append ran an fsync.
pub fn finish_log_append(mut span: Span, topic: &str, partition: i32, result: Result<&Appended, &PartitionError>) {
    let end = Instant::now();
    match result {
        Ok(a) => {
            span.set("messaging.kafka.offset", a.base_offset);
            span.set("messaging.batch.message_count", a.records);
            if a.duplicate {
                span.set("lantern.append.duplicate", true);
            }
            // The fsync is the last step of the append (only the flushed-offset update
            // follows), so it is placed at the end of the append.
            if let (Some(took), Some(parent)) = (a.flushed_in, span.parent()) {
                let mut flush = parent.child("log.flush", end.checked_sub(took).unwrap_or(end));
                set_destination(&mut flush, topic, partition);
                flush.set("lantern.flush.upto_offset", a.last_offset.saturating_add(1));
                flush.end_at(end);
            }
        }
        Err(e) => {
            span.set("kafka.error_code", e.code());
            span.set("error.type", crate::metrics::requests::error_name(e.code()));
            span.set_error(e.to_string());
        }
    }
    span.end_at(end)
}

fn set_destination(span: &mut Span, topic: &str, partition: i32) {
    span.set("messaging.system", "kafka");
    span.set("messaging.destination.name", topic);
    span.set("messaging.destination.partition.id", partition.to_string());
}

#[cfg(test)]
mod tests {
    use super::super::{Sampler, SpanData, Value};
    use super::*;

    fn attr<'a>(s: &'a SpanData, key: &str) -> Option<&'a Value> {
        s.attributes.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn appended(flushed: Option<std::time::Duration>) -> Appended {
        Appended { base_offset: 42, last_offset: 44, log_append_time: -1, log_start_offset: 0, records: 3, duplicate: false, flushed_in: flushed }
    }

    #[tokio::test]
    async fn a_produce_request_yields_request_append_and_flush_spans() {
        let (tracer, mut rx) = Tracer::for_tests(Sampler::AlwaysOn, 16);
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

        let flush = rx.recv().await.expect("flush");
        let append = rx.recv().await.expect("append");
        let request = rx.recv().await.expect("request");
        assert_eq!((flush.name.as_ref(), append.name.as_ref(), request.name.as_ref()), ("log.flush", "log.append", "kafka.Produce"));
        assert_eq!(append.parent_span_id, Some(request.context.span_id));
        assert_eq!(flush.parent_span_id, Some(append.context.span_id));
        assert_eq!(attr(&append, "messaging.destination.name"), Some(&Value::Str("orders".into())));
        assert_eq!(attr(&append, "messaging.destination.partition.id"), Some(&Value::Str("3".into())));
        assert_eq!(attr(&append, "messaging.kafka.offset"), Some(&Value::Int(42)));
        assert_eq!(attr(&append, "messaging.batch.message_count"), Some(&Value::Int(3)));
        // Both end at the same instant (wall-clock conversion may differ by a few ns).
        assert!(flush.end_unix_nanos.abs_diff(append.end_unix_nanos) < 1_000_000);
        assert!(flush.end_unix_nanos - flush.start_unix_nanos >= 1_900_000);
        assert_eq!(attr(&request, "kafka.correlation_id"), Some(&Value::Int(7)));
        assert_eq!(attr(&request, "error.type"), Some(&Value::Str("NOT_LEADER_OR_FOLLOWER".into())));
        assert_eq!(request.error.as_deref(), Some("NOT_LEADER_OR_FOLLOWER"));
        assert!(append.links.is_empty());
    }

    #[tokio::test]
    async fn no_fsync_no_flush_span() {
        let (tracer, mut rx) = Tracer::for_tests(Sampler::AlwaysOn, 16);
        let request = tracer.root_span("kafka.Produce".into(), SpanKind::Server, Instant::now()).expect("sampled");
        let append = log_append_span(&request.parent().expect("live"), "t", 0, &[]);
        finish_log_append(append, "t", 0, Ok(&appended(None)));
        drop(request);
        assert_eq!(rx.recv().await.map(|s| s.name), Some(Cow::Borrowed("log.append")));
        assert_eq!(rx.recv().await.map(|s| s.name), Some(Cow::Borrowed("kafka.Produce")));
    }
}
