//! lantern-mirror's metrics, named as MM2's JMX metrics come out of the Prometheus JMX exporter
//! with Strimzi's `kafka-mirror-maker-2-metrics.yaml` rules (lower-cased, `-` as `_`), so
//! Strimzi's MirrorMaker 2 dashboard queries them unmodified; plus lag in records and seconds.
//! Rates and min/max/avg are Kafka's sampled stats: two 30 s samples (metrics.sample.window.ms,
//! metrics.num.samples defaults).
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const WINDOW_MS: u64 = 30_000;

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    start: u64,
    count: u64,
    sum: f64,
    max: f64,
    min: f64,
}

/// Kafka's SampledStat over two windows: Value (last), Max, Min, Avg, and a Meter's rate.
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    samples: [Sample; 2],
    current: usize,
    last: f64,
    total_count: u64,
    total_sum: f64,
}

impl Sampled {
    pub fn record(&mut self, now: u64, v: f64) {
        let cur = &mut self.samples[self.current];
        if cur.count == 0 && cur.start == 0 {
            *cur = Sample { start: now, ..Sample::default() };
        } else if now.saturating_sub(cur.start) >= WINDOW_MS {
            self.current ^= 1;
            self.samples[self.current] = Sample { start: now, ..Sample::default() };
        }
        let s = &mut self.samples[self.current];
        if s.count == 0 {
            s.max = v;
            s.min = v;
        } else {
            s.max = s.max.max(v);
            s.min = s.min.min(v);
        }
        s.count += 1;
        s.sum += v;
        self.last = v;
        self.total_count += 1;
        self.total_sum += v;
    }

    fn live(&self, now: u64) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.count > 0 && now.saturating_sub(s.start) < 2 * WINDOW_MS)
    }

    pub fn max(&self, now: u64) -> f64 {
        self.live(now).map(|s| s.max).reduce(f64::max).unwrap_or(f64::NAN)
    }
    pub fn min(&self, now: u64) -> f64 {
        self.live(now).map(|s| s.min).reduce(f64::min).unwrap_or(f64::NAN)
    }
    pub fn avg(&self, now: u64) -> f64 {
        let (n, sum) = self.live(now).fold((0u64, 0.0), |(n, sum), s| (n + s.count, sum + s.sum));
        if n == 0 {
            f64::NAN
        } else {
            sum / n as f64
        }
    }
    /// Events (or, with `sum`, their total) per second over the live samples; the window counts
    /// as at least one sample's length, as Kafka's Rate does.
    pub fn rate(&self, now: u64, sum: bool) -> f64 {
        let oldest = self.live(now).map(|s| s.start).min();
        let total: f64 = self.live(now).map(|s| if sum { s.sum } else { s.count as f64 }).sum();
        match oldest {
            None => 0.0,
            Some(start) => total / (now.saturating_sub(start).max(WINDOW_MS) as f64 / 1000.0),
        }
    }
}

/// One replicated partition, keyed by (source, target, remote topic, partition).
#[derive(Debug, Default, Clone)]
pub struct PartitionMetrics {
    pub records: Sampled,
    pub bytes: Sampled,
    pub record_age: Sampled,
    pub replication_latency: Sampled,
    /// Source-side: next offset to copy (acknowledged) and the log end offset last seen.
    pub source_topic: String,
    pub acked_next_offset: i64,
    pub high_watermark: i64,
    pub last_acked_timestamp_ms: i64,
}

#[derive(Debug, Default, Clone)]
pub struct FlowMetrics {
    pub offset_commit_time: Sampled,
    pub offset_commit_failures: u64,
    pub active_records: i64,
    pub record_failures: u64,
    pub consumer_bytes: u64,
    pub producer_bytes: u64,
    pub producer_buffer_available: f64,
    pub heartbeats: u64,
    pub last_checkpoint_ms: u64,
    pub checkpoints: u64,
    pub topics: u64,
    pub resume_skipped_records: u64,
    pub exactly_once_fallbacks: u64,
}

type PartKey = (String, String, String, i32);
type CheckpointKey = (String, String, String, String, i32);

#[derive(Default)]
pub struct State {
    pub partitions: BTreeMap<PartKey, PartitionMetrics>,
    pub checkpoints: BTreeMap<CheckpointKey, Sampled>,
    pub flows: BTreeMap<(String, String), FlowMetrics>,
}

#[derive(Default)]
pub struct Metrics {
    pub state: Mutex<State>,
    pub started_ms: u64,
}

impl Metrics {
    pub fn new() -> Self {
        Metrics { state: Mutex::new(State::default()), started_ms: now_ms() }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub fn render(&self) -> String {
        let now = now_ms();
        self.with(|s| render(s, now, self.started_ms))
    }
}

/// Prometheus text format 0.0.4.
struct Writer(String);

impl Writer {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let escaped = val.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{escaped}\"");
            }
            self.0.push('}');
        }
        let _ = if v.is_nan() {
            writeln!(self.0, " NaN")
        } else if v.is_infinite() {
            writeln!(self.0, " {}", if v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            writeln!(self.0, " {v}")
        };
    }
}

const SRC: &str = "kafka_connect_mirror_mirrorsourceconnector_";
const CKP: &str = "kafka_connect_mirror_mirrorcheckpointconnector_";
/// Connect quotes these names in its MBean names; Strimzi's dashboard matches the quotes.
const SOURCE_CONNECTOR: &str = "\"MirrorSourceConnector\"";

pub fn consumer_client_id(source: &str, target: &str) -> String {
    format!("\"connector-consumer-MirrorSourceConnector-{source}->{target}-0\"")
}
pub fn producer_client_id(source: &str, target: &str) -> String {
    format!("\"connector-producer-MirrorSourceConnector-{source}->{target}-0\"")
}

fn render(s: &State, now: u64, started: u64) -> String {
    let mut w = Writer(String::new());
    let part_labels = |k: &PartKey, p: &str| -> [(String, String); 4] {
        [("source".into(), k.0.clone()), ("target".into(), k.1.clone()), ("topic".into(), k.2.clone()), ("partition".into(), p.to_string())]
    };
    type Getter = fn(&PartitionMetrics, u64) -> f64;
    let per_partition: &[(&str, &str, &str, Getter)] = &[
        ("record_count", "Number of source records replicated to the target cluster.", "counter", |m, _| m.records.total_count as f64),
        ("record_rate", "Average number of source records replicated to the target cluster per second.", "gauge", |m, n| m.records.rate(n, false)),
        ("byte_count", "Number of bytes replicated to the target cluster.", "counter", |m, _| m.bytes.total_sum),
        ("byte_rate", "Average number of bytes replicated per second.", "gauge", |m, n| m.bytes.rate(n, true)),
        ("record_age_ms", "The age of incoming source records when replicated to the target cluster.", "gauge", |m, _| if m.record_age.total_count == 0 { f64::NAN } else { m.record_age.last }),
        ("record_age_ms_max", "The max age of incoming source records when replicated to the target cluster.", "gauge", |m, n| m.record_age.max(n)),
        ("record_age_ms_min", "The min age of incoming source records when replicated to the target cluster.", "gauge", |m, n| m.record_age.min(n)),
        ("record_age_ms_avg", "The average age of incoming source records when replicated to the target cluster.", "gauge", |m, n| m.record_age.avg(n)),
        ("replication_latency_ms", "Time it takes records to replicate from source to target cluster.", "gauge", |m, _| if m.replication_latency.total_count == 0 { f64::NAN } else { m.replication_latency.last }),
        ("replication_latency_ms_max", "Max time it takes records to replicate from source to target cluster.", "gauge", |m, n| m.replication_latency.max(n)),
        ("replication_latency_ms_min", "Min time it takes records to replicate from source to target cluster.", "gauge", |m, n| m.replication_latency.min(n)),
        ("replication_latency_ms_avg", "Average time it takes records to replicate from source to target cluster.", "gauge", |m, n| m.replication_latency.avg(n)),
    ];
    for (suffix, help, _kind, get) in per_partition {
        // The JMX exporter rule types every MM2 metric as a gauge.
        let name = format!("{SRC}{suffix}");
        w.family(&name, &format!("Kafka Mirror Maker 2 Source Connector metrics: {help}"), "gauge");
        for (k, m) in &s.partitions {
            let p = k.3.to_string();
            let l = part_labels(k, &p);
            let labels: Vec<(&str, &str)> = l.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            w.sample(&name, &labels, get(m, now));
        }
    }
    let ckp: &[(&str, fn(&Sampled, u64) -> f64)] = &[
        ("checkpoint_latency_ms", |m, _| m.last),
        ("checkpoint_latency_ms_max", |m, n| m.max(n)),
        ("checkpoint_latency_ms_min", |m, n| m.min(n)),
        ("checkpoint_latency_ms_avg", |m, n| m.avg(n)),
    ];
    for (suffix, get) in ckp {
        let name = format!("{CKP}{suffix}");
        w.family(&name, "Kafka Mirror Maker 2 Checkpoint Connector metrics: time from a group's commit being read to its checkpoint being acknowledged.", "gauge");
        for ((src, tgt, group, topic, part), m) in &s.checkpoints {
            let p = part.to_string();
            w.sample(&name, &[("source", src), ("target", tgt), ("group", group), ("topic", topic), ("partition", &p)], get(m, now));
        }
    }
    // Connect worker and task metrics, where lantern-mirror has the same quantity: each enabled
    // flow runs MM2's three connectors (source, checkpoint, heartbeat), one task each.
    let flows = s.flows.len() as f64;
    w.family("kafka_connect_worker_connector_count", "Kafka Connect JMX metric worker: connectors (three per enabled flow).", "gauge");
    w.sample("kafka_connect_worker_connector_count", &[], 3.0 * flows);
    w.family("kafka_connect_worker_task_count", "Kafka Connect JMX metric worker: tasks (three per enabled flow).", "gauge");
    w.sample("kafka_connect_worker_task_count", &[], 3.0 * flows);
    type FlowGetter = fn(&FlowMetrics, u64) -> f64;
    let task: &[(&str, &str, FlowGetter)] = &[
        ("kafka_connect_connector_task_offset_commit_avg_time_ms", "Average time to commit the source task's progress, ms.", |f, n| f.offset_commit_time.avg(n)),
        ("kafka_connect_connector_task_offset_commit_max_time_ms", "Max time to commit the source task's progress, ms.", |f, n| f.offset_commit_time.max(n)),
        ("kafka_connect_source_task_source_record_active_count", "Records sent to the target and not yet acknowledged.", |f, _| f.active_records as f64),
        ("kafka_connect_task_error_total_record_failures", "Records the target refused for good (the flow stops at the first).", |f, _| f.record_failures as f64),
    ];
    for (name, help, get) in task {
        w.family(name, help, "gauge");
        for ((src, tgt), f) in &s.flows {
            w.sample(name, &[("connector", SOURCE_CONNECTOR), ("task", "0"), ("source", src), ("target", tgt)], get(f, now));
        }
    }
    w.family("kafka_consumer_incoming_byte_total", "Bytes the source consumer received.", "gauge");
    for ((src, tgt), f) in &s.flows {
        w.sample("kafka_consumer_incoming_byte_total", &[("clientid", &consumer_client_id(src, tgt))], f.consumer_bytes as f64);
    }
    w.family("kafka_producer_outgoing_byte_total", "Bytes the target producer sent.", "gauge");
    for ((src, tgt), f) in &s.flows {
        w.sample("kafka_producer_outgoing_byte_total", &[("clientid", &producer_client_id(src, tgt))], f.producer_bytes as f64);
    }
    w.family("kafka_producer_buffer_available_bytes", "Room left in the target producer's queue, bytes.", "gauge");
    for ((src, tgt), f) in &s.flows {
        w.sample("kafka_producer_buffer_available_bytes", &[("clientid", &producer_client_id(src, tgt))], f.producer_buffer_available);
    }
    w.family("kafka_consumer_fetch_manager_records_lag", "Records in the source partition not yet copied.", "gauge");
    for (k, m) in &s.partitions {
        let p = k.3.to_string();
        w.sample("kafka_consumer_fetch_manager_records_lag", &[("clientid", &consumer_client_id(&k.0, &k.1)), ("topic", &m.source_topic), ("partition", &p)], lag_records(m) as f64);
    }
    w.family("lantern_mirror_lag_records", "Records in the source partition not yet acknowledged by the target.", "gauge");
    for (k, m) in &s.partitions {
        let p = k.3.to_string();
        w.sample("lantern_mirror_lag_records", &[("source", &k.0), ("target", &k.1), ("topic", &m.source_topic), ("partition", &p)], lag_records(m) as f64);
    }
    w.family("lantern_mirror_lag_seconds", "While records wait to be copied: seconds since the newest record copied was written to the source (or since start); 0 when caught up.", "gauge");
    for (k, m) in &s.partitions {
        let p = k.3.to_string();
        let secs = if lag_records(m) == 0 {
            0.0
        } else {
            let since = if m.last_acked_timestamp_ms > 0 { m.last_acked_timestamp_ms as u64 } else { started };
            now.saturating_sub(since) as f64 / 1000.0
        };
        w.sample("lantern_mirror_lag_seconds", &[("source", &k.0), ("target", &k.1), ("topic", &m.source_topic), ("partition", &p)], secs);
    }
    type Counter = (&'static str, &'static str, fn(&FlowMetrics) -> f64);
    let counters: &[Counter] = &[
        ("lantern_mirror_offset_commit_failures_total", "Progress commits to the source cluster that failed.", |f| f.offset_commit_failures as f64),
        ("lantern_mirror_heartbeats_total", "Heartbeats acknowledged by the target.", |f| f.heartbeats as f64),
        ("lantern_mirror_checkpoints_total", "Checkpoints acknowledged by the target.", |f| f.checkpoints as f64),
        ("lantern_mirror_last_checkpoint_timestamp_seconds", "When the last checkpoint round finished (0: none yet).", |f| f.last_checkpoint_ms as f64 / 1000.0),
        ("lantern_mirror_topics", "Source topics this flow copies.", |f| f.topics as f64),
        ("lantern_mirror_resume_skipped_records_total", "Records read again after a restart and not copied, because the target held them already (duplicates avoided).", |f| f.resume_skipped_records as f64),
        ("lantern_mirror_exactly_once_fallbacks_total", "Partitions assigned that resume at least once (exactly.once.support disabled, or a precondition not met; the reason is logged).", |f| f.exactly_once_fallbacks as f64),
    ];
    for (name, help, get) in counters {
        w.family(name, help, if name.ends_with("_total") { "counter" } else { "gauge" });
        for ((src, tgt), f) in &s.flows {
            w.sample(name, &[("source", src), ("target", tgt)], get(f));
        }
    }
    w.0
}

pub fn lag_records(m: &PartitionMetrics) -> i64 {
    (m.high_watermark - m.acked_next_offset).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_stats_follow_kafkas_windows() {
        let mut s = Sampled::default();
        assert!(s.avg(1000).is_nan() && s.max(1000).is_nan());
        s.record(1_000, 10.0);
        s.record(2_000, 30.0);
        assert_eq!(s.avg(3_000), 20.0);
        assert_eq!((s.min(3_000), s.max(3_000)), (10.0, 30.0));
        assert_eq!(s.rate(3_000, false), 2.0 / 30.0, "a window counts as at least 30 s");
        s.record(40_000, 5.0);
        assert_eq!(s.min(41_000), 5.0);
        assert_eq!(s.max(41_000), 30.0, "the previous sample is still live");
        assert_eq!(s.max(95_000), 5.0, "the first sample is older than two windows: gone");
        assert!(s.max(200_000).is_nan());
        assert_eq!(s.total_count, 3);
    }

    #[test]
    fn renders_strimzi_names() {
        let m = Metrics::new();
        m.with(|s| {
            let p = s.partitions.entry(("a".into(), "b".into(), "a.orders".into(), 0)).or_default();
            p.records.record(now_ms(), 1.0);
            p.source_topic = "orders".into();
            p.high_watermark = 10;
            p.acked_next_offset = 4;
            s.flows.insert(("a".into(), "b".into()), FlowMetrics::default());
        });
        let text = m.render();
        assert!(text.contains("kafka_connect_mirror_mirrorsourceconnector_record_count{source=\"a\",target=\"b\",topic=\"a.orders\",partition=\"0\"} 1\n"), "{text}");
        assert!(text.contains("lantern_mirror_lag_records{source=\"a\",target=\"b\",topic=\"orders\",partition=\"0\"} 6\n"));
        assert!(text.contains("kafka_connect_worker_task_count 3\n"));
        assert!(text.contains("kafka_connect_connector_task_offset_commit_avg_time_ms{connector=\"\\\"MirrorSourceConnector\\\"\",task=\"0\""));
    }
}
