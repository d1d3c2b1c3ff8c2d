//! OpenTelemetry tracing, opt-in through the standard `OTEL_*` environment variables: one
//! SERVER span per Kafka request, INTERNAL child spans for each partition append
//! (`log.append`) and the fsync it runs (`log.flush`), and span links to the producer
//! contexts found in `traceparent` record headers.
//!
//! Spans are finished on the request path into a bounded queue (`try_send`: when it is full
//! the span is dropped and counted, never waited for) and exported in batches by one
//! background task as OTLP/HTTP with JSON bodies (`POST <endpoint>/v1/traces`). When tracing
//! is off, `Broker::tracer` is `None` and the request path pays one branch.
//!
//! Layout: `config` reads the environment, `ids` makes trace and span ids, `otlp_json`
//! encodes spans, `export` batches and posts them, `traceparent` reads W3C contexts from
//! produced records, `kafka` builds the broker's spans from its domain types.
pub mod config;
mod export;
mod ids;
pub mod kafka;
pub mod otlp_json;
pub mod traceparent;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

pub use config::{Sampler, TraceConfig, TraceConfigError};
pub use export::Exporter;

/// Spans a span may link to; further links are counted in `droppedLinksCount`.
pub const MAX_LINKS: usize = 32;

/// A span's identity as W3C Trace Context carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
}

/// OTLP span kinds the broker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
}

/// An attribute value (OTLP `AnyValue`, the variants the broker needs).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<i16> for Value {
    fn from(v: i16) -> Self {
        Value::Int(v.into())
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

/// A link to another trace's span (here: the producer's context from `traceparent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub context: SpanContext,
    /// The record's `tracestate` header, when it had a valid one.
    pub trace_state: Option<String>,
}

/// A finished span, as queued for export.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanData {
    pub context: SpanContext,
    pub parent_span_id: Option<[u8; 8]>,
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub links: Vec<Link>,
    pub dropped_links: u32,
    /// `Some(message)` marks the span's status ERROR.
    pub error: Option<String>,
}

/// Counters the exporter logs at shutdown (and tests read).
#[derive(Debug, Default)]
pub struct TraceStats {
    pub queued: AtomicU64,
    /// Spans dropped because the queue was full (the exporter is behind or the receiver down).
    pub dropped: AtomicU64,
    pub exported: AtomicU64,
    /// Spans in batches the receiver refused or that could not be delivered.
    pub failed: AtomicU64,
}

struct Shared {
    queue: mpsc::Sender<SpanData>,
    sampler: Sampler,
    ids: ids::IdGenerator,
    stats: Arc<TraceStats>,
}

/// The broker's handle for starting spans; cheap to clone.
#[derive(Clone)]
pub struct Tracer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer").field("sampler", &self.shared.sampler).finish()
    }
}

impl Tracer {
    /// Starts the export task on the current tokio runtime. `resource` is the resource's
    /// attributes beyond those `config` names (e.g. the broker's node id).
    pub fn start(config: TraceConfig, resource: Vec<(String, String)>) -> (Tracer, Exporter) {
        let (tx, rx) = mpsc::channel(config.max_queue_size.max(1));
        let stats = Arc::new(TraceStats::default());
        let tracer = Tracer {
            shared: Arc::new(Shared { queue: tx, sampler: config.sampler, ids: ids::IdGenerator::new(), stats: stats.clone() }),
        };
        let exporter = Exporter::spawn(config, resource, rx, stats);
        (tracer, exporter)
    }

    /// A tracer whose spans land in the returned receiver (for tests of span producers).
    pub fn for_tests(sampler: Sampler, capacity: usize) -> (Tracer, mpsc::Receiver<SpanData>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Shared { queue: tx, sampler, ids: ids::IdGenerator::new(), stats: Default::default() };
        (Tracer { shared: Arc::new(shared) }, rx)
    }

    pub fn stats(&self) -> &TraceStats {
        &self.shared.stats
    }

    /// Starts a root span (a new trace) at `start`, or `None` when the sampler drops it.
    pub fn root_span(&self, name: Cow<'static, str>, kind: SpanKind, start: Instant) -> Option<Span> {
        let trace_id = self.shared.ids.trace_id();
        if !self.shared.sampler.samples(&trace_id) {
            return None;
        }
        let context = SpanContext { trace_id, span_id: self.shared.ids.span_id(), flags: 1 };
        Some(Span::new(self.clone(), context, None, name, kind, start))
    }

    /// Queues a finished span without waiting: a full queue drops it and counts the drop.
    fn record(&self, span: SpanData) {
        match self.shared.queue.try_send(span) {
            Ok(()) => {
                self.shared.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What a child span needs from its parent: handed explicitly to spawned tasks.
#[derive(Clone, Debug)]
pub struct TraceParent {
    tracer: Tracer,
    context: SpanContext,
}

impl TraceParent {
    pub fn context(&self) -> SpanContext {
        self.context
    }

    /// Starts an INTERNAL child span at `start` (children of sampled spans are sampled).
    pub fn child(&self, name: &'static str, start: Instant) -> Span {
        let context = SpanContext { trace_id: self.context.trace_id, span_id: self.tracer.shared.ids.span_id(), flags: self.context.flags };
        Span::new(self.tracer.clone(), context, Some(self.context.span_id), Cow::Borrowed(name), SpanKind::Internal, start)
    }
}

/// A span being recorded. It is queued by `end`/`end_at`, or on drop (ending then), so a
/// request cut short by a closed connection still reports its span.
#[derive(Debug)]
pub struct Span {
    tracer: Tracer,
    data: Option<SpanData>,
}

impl Span {
    fn new(tracer: Tracer, context: SpanContext, parent: Option<[u8; 8]>, name: Cow<'static, str>, kind: SpanKind, start: Instant) -> Span {
        let data = SpanData {
            context,
            parent_span_id: parent,
            name,
            kind,
            start_unix_nanos: unix_nanos_at(start),
            end_unix_nanos: 0,
            attributes: Vec::with_capacity(8),
            links: Vec::new(),
            dropped_links: 0,
            error: None,
        };
        Span { tracer, data: Some(data) }
    }

    pub fn context(&self) -> Option<SpanContext> {
        self.data.as_ref().map(|d| d.context)
    }

    /// The handle children of this span are started from.
    pub fn parent(&self) -> Option<TraceParent> {
        self.context().map(|context| TraceParent { tracer: self.tracer.clone(), context })
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(d) = &mut self.data {
            d.attributes.push((key, value.into()));
        }
    }

    /// Adds a link unless it is already there; beyond [`MAX_LINKS`] links are only counted.
    pub fn link(&mut self, link: Link) {
        if let Some(d) = &mut self.data {
            if d.links.contains(&link) {
                return;
            }
            if d.links.len() >= MAX_LINKS {
                d.dropped_links = d.dropped_links.saturating_add(1);
                return;
            }
            d.links.push(link);
        }
    }

    pub fn set_error(&mut self, message: impl Into<String>) {
        if let Some(d) = &mut self.data {
            d.error = Some(message.into());
        }
    }

    pub fn end(self) {
        self.end_at(Instant::now())
    }

    pub fn end_at(mut self, end: Instant) {
        self.finish(end)
    }

    fn finish(&mut self, end: Instant) {
        if let Some(mut d) = self.data.take() {
            d.end_unix_nanos = unix_nanos_at(end).max(d.start_unix_nanos);
            self.tracer.record(d);
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        self.finish(Instant::now())
    }
}

/// Wall-clock nanoseconds since the Unix epoch at monotonic instant `at`.
pub fn unix_nanos_at(at: Instant) -> u64 {
    let (now_wall, now) = (SystemTime::now(), Instant::now());
    let wall = match now.checked_duration_since(at) {
        Some(ago) => now_wall.checked_sub(ago),
        None => now_wall.checked_add(at.duration_since(now)),
    };
    wall.and_then(|w| w.duration_since(UNIX_EPOCH).ok())
        .unwrap_or(Duration::ZERO)
        .as_nanos()
        .min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn children_share_the_trace_and_name_their_parent() {
        let (tracer, mut rx) = Tracer::for_tests(Sampler::AlwaysOn, 16);
        let t0 = Instant::now();
        let mut root = tracer.root_span("kafka.Produce".into(), SpanKind::Server, t0).expect("always_on samples");
        root.set("kafka.api.name", "Produce");
        let parent = root.parent().expect("a live span has a context");
        let child = parent.child("log.append", Instant::now());
        child.end();
        root.end();
        let child = rx.recv().await.expect("child queued");
        let root = rx.recv().await.expect("root queued");
        assert_eq!(child.context.trace_id, root.context.trace_id);
        assert_eq!(child.parent_span_id, Some(root.context.span_id));
        assert_ne!(child.context.span_id, root.context.span_id);
        assert_eq!((root.kind, child.kind), (SpanKind::Server, SpanKind::Internal));
        assert!(root.parent_span_id.is_none());
        assert!(root.end_unix_nanos >= root.start_unix_nanos && root.start_unix_nanos > 1_600_000_000_000_000_000);
        assert_eq!(root.attributes, vec![("kafka.api.name", Value::Str("Produce".into()))]);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tracer, mut rx) = Tracer::for_tests(Sampler::AlwaysOn, 2);
        for _ in 0..5 {
            tracer.root_span("x".into(), SpanKind::Server, Instant::now()).expect("sampled").end();
        }
        assert_eq!(tracer.stats().queued.load(Ordering::Relaxed), 2);
        assert_eq!(tracer.stats().dropped.load(Ordering::Relaxed), 3);
        assert!(rx.recv().await.is_some());
    }

    #[tokio::test]
    async fn a_dropped_span_is_still_reported_and_always_off_records_nothing() {
        let (tracer, mut rx) = Tracer::for_tests(Sampler::AlwaysOn, 4);
        drop(tracer.root_span("cut.short".into(), SpanKind::Server, Instant::now()));
        assert_eq!(rx.recv().await.map(|s| s.name), Some(Cow::Borrowed("cut.short")));
        let (off, _rx) = Tracer::for_tests(Sampler::AlwaysOff, 4);
        assert!(off.root_span("x".into(), SpanKind::Server, Instant::now()).is_none());
    }

    #[test]
    fn links_are_deduplicated_and_capped() {
        let (tracer, _rx) = Tracer::for_tests(Sampler::AlwaysOn, 4);
        let mut span = tracer.root_span("x".into(), SpanKind::Server, Instant::now()).expect("sampled");
        let link = |i: usize| {
            let mut trace_id = [1u8; 16];
            trace_id[0] = i as u8;
            Link { context: SpanContext { trace_id, span_id: [2; 8], flags: 1 }, trace_state: None }
        };
        span.link(link(0));
        span.link(link(0));
        for i in 1..(MAX_LINKS + 3) {
            span.link(link(i));
        }
        let d = span.data.take().expect("live");
        assert_eq!((d.links.len(), d.dropped_links), (MAX_LINKS, 3));
    }

    #[test]
    fn instants_map_to_wall_clock_in_order() {
        let a = Instant::now();
        let b = a + Duration::from_millis(5);
        let (na, nb) = (unix_nanos_at(a), unix_nanos_at(b));
        assert!(nb > na && nb - na >= 4_000_000 && nb - na <= 6_000_000, "{na} {nb}");
    }
}
