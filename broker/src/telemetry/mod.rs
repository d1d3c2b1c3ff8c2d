//! OpenTelemetry tracing, opt-in through the standard `OTEL_*` environment variables: one
//! SERVER span per Kafka request, INTERNAL child spans for each partition append
//! (`log.append`) and the fsync it runs (`log.flush`), and span links to the producer
//! contexts found in `traceparent` record headers.
//!
//! Spans are the OpenTelemetry SDK's (`opentelemetry_sdk`: ids, sampler, resource, limits);
//! opentelemetry-otlp sends them over the protocol asked for. A finished span goes into a
//! bounded queue without waiting (a full queue drops and counts it) and one background task
//! exports batches. When tracing is off, `Broker::tracer` is `None` and the request path
//! pays one branch.
//!
//! Layout: `config` reads the environment, `export` builds the OTLP exporter and the queue
//! in front of it, `traceparent` extracts W3C contexts from produced records through the
//! SDK's propagator, `kafka` builds the broker's spans from its domain types.
pub mod config;
mod export;
pub mod kafka;
pub mod otel_env;
pub mod traceparent;

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{Link, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

pub use config::{Protocol, Sampler, TraceConfig, TraceConfigError};
pub use export::{Exporter, ExporterError};

/// Spans a span may link to; the SDK counts further links as dropped.
pub const MAX_LINKS: u32 = 32;

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

/// The broker's handle for starting spans; cheap to clone.
#[derive(Clone, Debug)]
pub struct Tracer {
    tracer: SdkTracer,
    // Keeps the provider (and so its processor) alive as long as spans can be started.
    _provider: Arc<SdkTracerProvider>,
    stats: Arc<TraceStats>,
}

impl Tracer {
    /// Builds the OTLP exporter `config` asks for and starts its export task on the current
    /// tokio runtime. `node_id` becomes `service.instance.id` unless the environment's
    /// resource attributes name one.
    pub fn start(config: &TraceConfig, node_id: i32) -> Result<(Tracer, Exporter), ExporterError> {
        let exporter = export::build_exporter(config)?;
        let resource = resource(config, node_id);
        let stats = Arc::new(TraceStats::default());
        let (processor, exporter) = Exporter::spawn(exporter, &resource, config, stats.clone());
        Ok((Tracer::with_processor(config.sampler, resource, processor, stats), exporter))
    }

    fn with_processor(sampler: Sampler, resource: Resource, processor: impl opentelemetry_sdk::trace::SpanProcessor + 'static, stats: Arc<TraceStats>) -> Tracer {
        let root = match sampler {
            Sampler::AlwaysOn => opentelemetry_sdk::trace::Sampler::AlwaysOn,
            Sampler::AlwaysOff => opentelemetry_sdk::trace::Sampler::AlwaysOff,
            Sampler::TraceIdRatio(r) => opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(r),
        };
        let provider = SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(root)))
            .with_max_links_per_span(MAX_LINKS)
            .with_resource(resource)
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer_with_scope(opentelemetry::InstrumentationScope::builder("lantern-broker").with_version(env!("CARGO_PKG_VERSION")).build());
        Tracer { tracer, _provider: Arc::new(provider), stats }
    }

    /// A tracer whose spans land in `processor` (for tests of span producers).
    #[cfg(test)]
    pub fn for_tests(sampler: Sampler, processor: impl opentelemetry_sdk::trace::SpanProcessor + 'static) -> Tracer {
        Tracer::with_processor(sampler, Resource::builder_empty().build(), processor, Default::default())
    }

    pub fn stats(&self) -> &TraceStats {
        &self.stats
    }

    /// Starts a root span (a new trace) at `start`, or `None` when the sampler leaves it out.
    pub fn root_span(&self, name: Cow<'static, str>, kind: SpanKind, start: Instant, attributes: Vec<KeyValue>) -> Option<Span> {
        let builder = self.tracer.span_builder(name).with_kind(kind).with_start_time(system_time_at(start)).with_attributes(attributes);
        let span = self.tracer.build_with_context(builder, &Context::new());
        use opentelemetry::trace::Span as _;
        span.is_recording().then(|| Span { tracer: self.clone(), cx: Context::new().with_span(span) })
    }
}

/// The resource: the SDK's (OTEL_RESOURCE_ATTRIBUTES, telemetry.sdk.*), the service name by
/// the spec's precedence (OTEL_SERVICE_NAME first), and the node id as `service.instance.id`
/// unless the environment's resource attributes give one.
fn resource(config: &TraceConfig, node_id: i32) -> Resource {
    otel_env::resource(config.service_name.clone(), vec![KeyValue::new("service.instance.id", node_id.to_string())])
}

/// What a child span needs from its parent: handed explicitly to spawned tasks.
#[derive(Clone, Debug)]
pub struct TraceParent {
    tracer: Tracer,
    cx: Context,
}

impl TraceParent {
    pub fn span_context(&self) -> opentelemetry::trace::SpanContext {
        self.cx.span().span_context().clone()
    }

    /// Starts an INTERNAL child span at `start` (children of sampled spans are sampled).
    pub fn child(&self, name: &'static str, start: Instant, attributes: Vec<KeyValue>, links: Vec<Link>) -> Span {
        let builder = self.tracer.tracer.span_builder(name).with_kind(SpanKind::Internal).with_start_time(system_time_at(start)).with_attributes(attributes).with_links(links);
        let span = self.tracer.tracer.build_with_context(builder, &self.cx);
        Span { tracer: self.tracer.clone(), cx: self.cx.with_span(span) }
    }
}

/// A span being recorded. It ends with `end`/`end_at`, or on drop (ending then), so a
/// request cut short by a closed connection still reports its span.
#[derive(Debug)]
pub struct Span {
    tracer: Tracer,
    cx: Context,
}

impl Span {
    /// The handle children of this span are started from.
    pub fn parent(&self) -> Option<TraceParent> {
        Some(TraceParent { tracer: self.tracer.clone(), cx: self.cx.clone() })
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        self.cx.span().set_attribute(KeyValue::new(key, value));
    }

    pub fn set_error(&mut self, message: impl Into<Cow<'static, str>>) {
        self.cx.span().set_status(Status::error(message));
    }

    pub fn end(self) {
        self.end_at(Instant::now())
    }

    pub fn end_at(self, end: Instant) {
        self.cx.span().end_with_timestamp(system_time_at(end));
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        // A no-op for a span already ended.
        self.cx.span().end();
    }
}

/// The wall-clock time at monotonic instant `at`.
pub fn system_time_at(at: Instant) -> SystemTime {
    let (now_wall, now) = (SystemTime::now(), Instant::now());
    match now.checked_duration_since(at) {
        Some(ago) => now_wall.checked_sub(ago),
        None => now_wall.checked_add(at.duration_since(now)),
    }
    .unwrap_or(now_wall)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A span processor that keeps what it is given, for the span producers' tests.
    use std::sync::{Arc, Mutex};

    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanProcessor};

    #[derive(Debug, Clone, Default)]
    pub struct Recorded(pub Arc<Mutex<Vec<SpanData>>>);

    impl Recorded {
        pub fn take(&self) -> Vec<SpanData> {
            std::mem::take(&mut *self.0.lock().expect("not poisoned"))
        }
    }

    impl SpanProcessor for Recorded {
        fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}
        fn on_end(&self, span: SpanData) {
            self.0.lock().expect("not poisoned").push(span);
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Recorded;
    use super::*;
    use std::time::Duration;

    #[test]
    fn children_share_the_trace_and_name_their_parent() {
        let rec = Recorded::default();
        let tracer = Tracer::for_tests(Sampler::AlwaysOn, rec.clone());
        let t0 = Instant::now();
        let root = tracer.root_span("kafka.Produce".into(), SpanKind::Server, t0, vec![KeyValue::new("kafka.api.name", "Produce")]).expect("always_on samples");
        let parent = root.parent().expect("a live span has a context");
        parent.child("log.append", Instant::now(), vec![], vec![]).end();
        root.end();
        let spans = rec.take();
        let (child, root) = (&spans[0], &spans[1]);
        assert_eq!(child.span_context.trace_id(), root.span_context.trace_id());
        assert_eq!(child.parent_span_id, root.span_context.span_id());
        assert!(!child.parent_span_is_remote);
        assert_ne!(child.span_context.span_id(), root.span_context.span_id());
        assert_eq!((root.span_kind.clone(), child.span_kind.clone()), (SpanKind::Server, SpanKind::Internal));
        assert_eq!(root.parent_span_id, opentelemetry::trace::SpanId::INVALID);
        assert!(root.end_time >= root.start_time && root.start_time > SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000));
        assert_eq!(root.attributes, vec![KeyValue::new("kafka.api.name", "Produce")]);
    }

    #[test]
    fn a_dropped_span_is_still_reported_and_always_off_records_nothing() {
        let rec = Recorded::default();
        let tracer = Tracer::for_tests(Sampler::AlwaysOn, rec.clone());
        drop(tracer.root_span("cut.short".into(), SpanKind::Server, Instant::now(), vec![]));
        assert_eq!(rec.take().iter().map(|s| s.name.clone()).collect::<Vec<_>>(), ["cut.short"]);
        let off = Tracer::for_tests(Sampler::AlwaysOff, rec.clone());
        assert!(off.root_span("x".into(), SpanKind::Server, Instant::now(), vec![]).is_none());
        let none = Tracer::for_tests(Sampler::TraceIdRatio(0.0), rec.clone());
        assert!(none.root_span("x".into(), SpanKind::Server, Instant::now(), vec![]).is_none());
        assert!(rec.take().is_empty());
    }

    #[test]
    fn instants_map_to_wall_clock_in_order() {
        let a = Instant::now();
        let b = a + Duration::from_millis(5);
        let d = system_time_at(b).duration_since(system_time_at(a)).expect("in order");
        assert!(d >= Duration::from_millis(4) && d <= Duration::from_millis(6), "{d:?}");
    }
}
