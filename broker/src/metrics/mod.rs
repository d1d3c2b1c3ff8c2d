//! Broker metrics: event counters and histograms recorded on hot paths through cached
//! handles, plus state gauges computed at scrape time. Names, types and help come from the
//! [`catalogue`]; [`naming`] renders them under Strimzi's or Confluent's JMX exporter rules.
pub mod catalogue;
pub mod docs;
pub mod histogram;
pub mod naming;
mod process;
pub mod rates;
pub mod render;
pub mod requests;
pub mod windowed;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

pub use histogram::Histogram;
pub use naming::Profile;

/// Series of one labelled metric, created on first use and then reused.
pub struct Family<T> {
    series: RwLock<BTreeMap<Vec<String>, Arc<T>>>,
}

impl<T: Default> Default for Family<T> {
    fn default() -> Self {
        Self { series: RwLock::new(BTreeMap::new()) }
    }
}

impl<T: Default> Family<T> {
    /// The series for these label values (get-or-create; callers cache the handle).
    pub fn with(&self, labels: &[&str]) -> Arc<T> {
        if let Some(s) = self.series.read().get(&labels.iter().map(|s| s.to_string()).collect::<Vec<_>>()) {
            return s.clone();
        }
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        self.series.write().entry(key).or_default().clone()
    }

    pub fn snapshot(&self) -> Vec<(Vec<String>, Arc<T>)> {
        self.series.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn remove(&self, labels: &[&str]) {
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        self.series.write().remove(&key);
    }
}

pub type Counter = AtomicU64;
pub type Gauge = AtomicI64;

pub fn inc(c: &Counter) {
    c.fetch_add(1, Ordering::Relaxed);
}
pub fn add(c: &Counter, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The BrokerTopicMetrics meters of one topic, each paired with its all-topics twin, so a
/// single call updates both (as Kafka's BrokerTopicStats does).
#[derive(Default)]
pub struct TopicStats {
    pub messages_in: [Arc<Counter>; 2],
    pub bytes_in: [Arc<Counter>; 2],
    pub bytes_out: [Arc<Counter>; 2],
    pub bytes_rejected: [Arc<Counter>; 2],
    pub produce_requests: [Arc<Counter>; 2],
    pub fetch_requests: [Arc<Counter>; 2],
    pub failed_produce: [Arc<Counter>; 2],
    pub failed_fetch: [Arc<Counter>; 2],
    pub invalid_crc: [Arc<Counter>; 2],
    pub invalid_sequence: [Arc<Counter>; 2],
    pub replication_bytes_in: [Arc<Counter>; 2],
    pub replication_bytes_out: [Arc<Counter>; 2],
    /// The part of replication bytes that copies a replica being added by a reassignment.
    pub reassignment_bytes_in: [Arc<Counter>; 2],
    pub reassignment_bytes_out: [Arc<Counter>; 2],
    /// Records converted from or to the message formats before v2 (Produce v0-2, Fetch v0-3).
    pub produce_conversions: [Arc<Counter>; 2],
    pub fetch_conversions: [Arc<Counter>; 2],
    pub invalid_magic: [Arc<Counter>; 2],
    pub no_key_compacted: [Arc<Counter>; 2],
}

impl TopicStats {
    pub fn add(pair: &[Arc<Counter>; 2], n: u64) {
        pair[0].fetch_add(n, Ordering::Relaxed);
        pair[1].fetch_add(n, Ordering::Relaxed);
    }
}

/// Time an acceptor waited for a connection slot (`max.connections`), for
/// AcceptorBlockedPercent.
pub struct BlockedTime {
    ns: Counter,
    /// (window start, ns at that start, share of the last complete window)
    window: Mutex<(Instant, u64, f64)>,
}

impl Default for BlockedTime {
    fn default() -> Self {
        Self { ns: Counter::new(0), window: Mutex::new((Instant::now(), 0, 0.0)) }
    }
}

impl BlockedTime {
    pub fn add(&self, d: std::time::Duration) {
        add(&self.ns, d.as_nanos().min(u128::from(u64::MAX)) as u64);
    }

    /// Share of wall time spent blocked since the previous call, 0..1 (at most once a second,
    /// like the idle ratios; scrapes in between reuse the last value).
    pub fn ratio(&self) -> f64 {
        let mut w = self.window.lock();
        let elapsed = w.0.elapsed();
        if elapsed.as_millis() >= 1000 {
            let ns = self.ns.load(Ordering::Relaxed);
            let share = (ns.saturating_sub(w.1) as f64 / elapsed.as_nanos() as f64).clamp(0.0, 1.0);
            *w = (Instant::now(), ns, share);
        }
        w.2
    }
}

/// The per-request-type histograms of RequestMetrics.
#[derive(Default)]
pub struct RequestTimes {
    pub total: Histogram,
    pub request_queue: Histogram,
    pub local: Histogram,
    pub remote: Histogram,
    pub response_queue: Histogram,
    pub response_send: Histogram,
    pub request_bytes: Histogram,
}

/// Everything recorded as it happens.
pub struct BrokerMetrics {
    /// `metrics.enabled`: when false, request and topic metrics are not recorded (used to
    /// measure what recording costs); state gauges are still served.
    pub enabled: bool,
    pub profile: Profile,
    /// One family per BrokerTopicMetrics meter, labelled by topic; "" is all topics.
    pub topic_meters: [Family<Counter>; 18],
    topics: RwLock<BTreeMap<String, Arc<TopicStats>>>,
    pub requests: Family<Counter>,
    pub errors: Family<Counter>,
    pub request_times: Family<RequestTimes>,
    pub connections_created: Family<Counter>,
    pub connections_closed: Family<Counter>,
    pub connections_open: Family<Gauge>,
    pub connections_by_software: Family<Gauge>,
    /// Per listener: the acceptor's wait at max.connections, idle connections closed,
    /// connections refused at max.connections.per.ip.
    pub acceptor_blocked: Family<BlockedTime>,
    pub idle_closed: Family<Counter>,
    pub rejected_connections: Family<Counter>,
    pub connection_rates: rates::ConnectionRates,
    /// Per leader followed: the replica fetcher's fetch requests, for MinFetchRate.
    pub fetcher_rates: rates::FetcherRates,
    /// Responses handled and not yet being written (ResponseQueueSize).
    pub responses_queued: Gauge,
    pub malformed_requests: Counter,
    pub oversized_requests: Counter,
    pub unsupported_requests: Counter,
    /// Failures to bring the local logs in line with a new metadata image.
    pub metadata_apply_errors: Counter,
    pub log_flush: Histogram,
    pub purgatory_fetch: Gauge,
    pub purgatory_produce: Gauge,
    pub purgatory_rebalance: Gauge,
    /// Nanoseconds worker threads spent in the network layer's work: socket reads and writes
    /// (inside the system calls) and decoding requests, for NetworkProcessorAvgIdlePercent.
    pub network_busy_ns: Counter,
    /// (window start, network busy ns at that start, idle share of the last complete window)
    network_window: Mutex<(Instant, u64, f64)>,
    /// The runtime's worker threads: every connection's reads and writes run on them.
    pub worker_threads: usize,
    pub request_handles: requests::RequestMetrics,
    /// The REST proxy's requests by endpoint (`METHOD /route`), its errors by endpoint and
    /// status, its latency (µs) by endpoint, and the records and key+value bytes it produced.
    pub rest_requests: Family<Counter>,
    pub rest_errors: Family<Counter>,
    /// Requests refused by `rest.authentication`, by mode and reason.
    pub rest_auth_failures: Family<Counter>,
    pub rest_latency: Family<Histogram>,
    pub rest_records_in: Counter,
    pub rest_bytes_in: Counter,
    pub rest_records_out: Counter,
    pub rest_bytes_out: Counter,
}

impl BrokerMetrics {
    pub fn new(enabled: bool, profile: Profile, worker_threads: usize) -> Self {
        Self {
            enabled,
            profile,
            topic_meters: Default::default(),
            topics: RwLock::new(BTreeMap::new()),
            requests: Family::default(),
            errors: Family::default(),
            request_times: Family::default(),
            connections_created: Family::default(),
            connections_closed: Family::default(),
            connections_open: Family::default(),
            connections_by_software: Family::default(),
            acceptor_blocked: Family::default(),
            idle_closed: Family::default(),
            rejected_connections: Family::default(),
            connection_rates: Default::default(),
            fetcher_rates: Default::default(),
            responses_queued: Gauge::new(0),
            malformed_requests: Counter::new(0),
            oversized_requests: Counter::new(0),
            unsupported_requests: Counter::new(0),
            metadata_apply_errors: Counter::new(0),
            log_flush: Histogram::default(),
            purgatory_fetch: Gauge::new(0),
            purgatory_produce: Gauge::new(0),
            purgatory_rebalance: Gauge::new(0),
            network_busy_ns: Counter::new(0),
            network_window: Mutex::new((Instant::now(), 0, 1.0)),
            worker_threads: worker_threads.max(1),
            request_handles: requests::RequestMetrics::default(),
            rest_requests: Family::default(),
            rest_errors: Family::default(),
            rest_auth_failures: Family::default(),
            rest_latency: Family::default(),
            rest_records_in: Counter::new(0),
            rest_bytes_in: Counter::new(0),
            rest_records_out: Counter::new(0),
            rest_bytes_out: Counter::new(0),
        }
    }

    /// The cached meters of a topic (created on first use).
    pub fn topic(&self, topic: &str) -> Arc<TopicStats> {
        if let Some(t) = self.topics.read().get(topic) {
            return t.clone();
        }
        let pair = |i: usize| [self.topic_meters[i].with(&[topic]), self.topic_meters[i].with(&[])];
        let stats = Arc::new(TopicStats {
            messages_in: pair(0),
            bytes_in: pair(1),
            bytes_out: pair(2),
            bytes_rejected: pair(3),
            produce_requests: pair(4),
            fetch_requests: pair(5),
            failed_produce: pair(6),
            failed_fetch: pair(7),
            invalid_crc: pair(8),
            invalid_sequence: pair(9),
            replication_bytes_in: pair(10),
            replication_bytes_out: pair(11),
            reassignment_bytes_in: pair(12),
            reassignment_bytes_out: pair(13),
            produce_conversions: pair(14),
            fetch_conversions: pair(15),
            invalid_magic: pair(16),
            no_key_compacted: pair(17),
        });
        self.topics.write().entry(topic.to_string()).or_insert(stats).clone()
    }

    /// Drops a deleted topic's series, as Kafka removes its per-topic MBeans.
    pub fn remove_topic(&self, topic: &str) {
        self.topics.write().remove(topic);
        for f in &self.topic_meters {
            f.remove(&[topic]);
        }
    }

    /// Drops the series of every topic `keep` refuses (the topics the metadata no longer has).
    pub fn retain_topics(&self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self.topics.read().keys().filter(|t| !keep(t)).cloned().collect();
        for t in gone {
            self.remove_topic(&t);
        }
    }

    /// NetworkProcessorAvgIdlePercent: 1 − network busy time / (elapsed × worker threads) since
    /// the previous call (at most once a second; scrapes in between reuse the last value). The
    /// busy time is spent on the worker threads themselves (system calls and decoding run on
    /// them), so it cannot exceed that capacity but for timer granularity.
    pub fn network_idle_ratio(&self) -> f64 {
        let mut w = self.network_window.lock();
        let elapsed = w.0.elapsed();
        if elapsed.as_millis() < 1000 {
            return w.2;
        }
        let busy = self.network_busy_ns.load(Ordering::Relaxed);
        let capacity = elapsed.as_nanos() as f64 * self.worker_threads as f64;
        *w = (Instant::now(), busy, (1.0 - busy.saturating_sub(w.1) as f64 / capacity).clamp(0.0, 1.0));
        w.2
    }
}
