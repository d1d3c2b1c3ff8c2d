//! /metrics: every exported catalogue entry rendered under the configured naming profile, in
//! Prometheus text format 0.0.4 or OpenMetrics 1.0.
use std::fmt::Write;
use std::ptr;
use std::sync::atomic::Ordering;

use super::catalogue::{self as c, MetricDef, Status, CATALOGUE};
use super::histogram::{Histogram, QUANTILES};
use super::naming::{aliases, family, PromType};
use super::process;
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::controller::Controller;
use crate::controller::stats::{QuorumView, RaftStatsReading};
use crate::coordinator::GroupState;

/// One series' value.
enum Value {
    Number(f64),
    /// Quantiles (already in the reported unit), count, sum.
    Summary([f64; 6], u64, f64),
}

type Series = Vec<(Vec<String>, Value)>;

fn counters(f: &super::Family<super::Counter>) -> Series {
    f.snapshot().into_iter().map(|(l, v)| (l, Value::Number(v.load(Ordering::Relaxed) as f64))).collect()
}

fn gauges(f: &super::Family<super::Gauge>) -> Series {
    f.snapshot().into_iter().map(|(l, v)| (l, Value::Number(v.load(Ordering::Relaxed) as f64))).collect()
}

fn one(v: f64) -> Series {
    vec![(Vec::new(), Value::Number(v))]
}

fn summary(h: &Histogram, scale: f64) -> Value {
    let q = h.quantiles();
    Value::Summary(q.map(|v| v / scale), h.count(), h.sum() as f64 / scale)
}

/// State read once per scrape.
struct Snapshot {
    partitions: Vec<(String, i32, u64, usize, i64, i64)>,
    groups: Vec<(String, GroupState, usize)>,
    offsets: Vec<(String, String, i32, i64)>,
    process: process::ProcessStats,
    quorum: QuorumView,
    raft: RaftStatsReading,
    now_ms: i64,
    /// The `-stray` directories in the broker's online log dirs (one listing per scrape).
    strays: Vec<crate::log::stray_logs::StrayLog>,
}

/// What a scrape reads: the controller part every node has, and the broker once it is up
/// (never on a controller-only node).
pub struct Scrape<'a> {
    pub config: &'a BrokerConfig,
    pub controller: &'a Controller,
    pub broker: Option<&'a Broker>,
}

fn snapshot(node: &Scrape) -> Snapshot {
    let (mut partitions, groups, offsets) = match node.broker {
        Some(broker) => {
            let partitions: Vec<_> = broker
                .replicas
                .all()
                .into_iter()
                .map(|p| {
                    let log = p.log().lock();
                    (p.topic.clone(), p.index, log.size_bytes(), log.num_segments(), log.log_start_offset(), log.log_end_offset())
                })
                .collect();
            let (groups, offsets) = broker.coordinator.metrics_snapshot();
            (partitions, groups, offsets)
        }
        None => Default::default(),
    };
    partitions.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let controller = node.controller;
    let quorum = match controller.raft() {
        Some(raft) => QuorumView::of(&raft.metrics().borrow()),
        None => {
            let image = controller.image();
            QuorumView::observer(controller.controller_id(), (!image.cluster_id.is_empty()).then_some(image.last_offset))
        }
    };
    let raft = controller.stats.raft.read(std::time::Instant::now());
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let strays = node.broker.map(|b| crate::log::stray_logs::scan(&b.replicas.online_log_dirs())).unwrap_or_default();
    Snapshot { partitions, groups, offsets, process: process::read(), quorum, raft, now_ms, strays }
}

/// The series every node has: the controller's (on controllers), the quorum's and the
/// process's. `None` when `def` is a broker metric.
fn collect_node(def: &'static MetricDef, node: &Scrape, s: &Snapshot) -> Option<Series> {
    let is = |d: &MetricDef| ptr::eq(def, d);
    let controller = node.controller;
    let image = controller.image();
    let ctr = |v: &std::sync::atomic::AtomicU64| one(v.load(Ordering::Relaxed) as f64);
    // Cluster-wide counts come from every controller's applied image, as Kafka's KRaft
    // controllers report them (ControllerMetadataMetricsPublisher): aggregate them with max,
    // not sum. Only ActiveControllerCount is 1 on the active controller alone. As in Kafka, a
    // broker that is not a controller has no kafka.controller beans.
    let controller_only = [
        &c::ACTIVE_CONTROLLER_COUNT, &c::OFFLINE_PARTITIONS, &c::GLOBAL_TOPIC_COUNT, &c::GLOBAL_PARTITION_COUNT,
        &c::ACTIVE_BROKER_COUNT, &c::FENCED_BROKER_COUNT, &c::PREFERRED_REPLICA_IMBALANCE, &c::METADATA_ERROR_COUNT,
        &c::LAST_APPLIED_RECORD_OFFSET, &c::LAST_APPLIED_RECORD_TIMESTAMP, &c::LAST_APPLIED_RECORD_LAG_MS,
        &c::EVENT_QUEUE_TIME, &c::EVENT_QUEUE_PROCESSING_TIME, &c::UNCLEAN_LEADER_ELECTIONS, &c::LEADER_ELECTION_TIME,
    ];
    if controller_only.iter().any(|d| is(d)) && !node.config.cluster.roles.controller {
        return Some(Vec::new());
    }
    let series = if is(&c::ACTIVE_CONTROLLER_COUNT) { one(controller.is_active() as u8 as f64) }
    else if is(&c::OFFLINE_PARTITIONS) { one(image.offline_partitions() as f64) }
    else if is(&c::GLOBAL_TOPIC_COUNT) { one(image.topics.len() as f64) }
    else if is(&c::GLOBAL_PARTITION_COUNT) { one(image.partition_count() as f64) }
    else if is(&c::ACTIVE_BROKER_COUNT) { one(image.live_brokers().count() as f64) }
    else if is(&c::FENCED_BROKER_COUNT) { one(image.brokers.values().filter(|b| b.fenced).count() as f64) }
    else if is(&c::PREFERRED_REPLICA_IMBALANCE) {
        one(image.topics.values().flat_map(|t| &t.partitions).filter(|p| p.replicas.first() != Some(&p.leader)).count() as f64)
    }
    else if is(&c::METADATA_ERROR_COUNT) { one(controller.apply_errors() as f64) }
    else if is(&c::UNCLEAN_LEADER_ELECTIONS) { ctr(&controller.stats.unclean_elections) }
    else if is(&c::LAST_APPLIED_RECORD_OFFSET) { one(image.last_offset as f64) }
    else if is(&c::LAST_APPLIED_RECORD_TIMESTAMP) { one(image.last_timestamp_ms as f64) }
    else if is(&c::LAST_APPLIED_RECORD_LAG_MS) { lag_ms(&image, s) }
    else if is(&c::LEADER_ELECTION_TIME) { vec![(Vec::new(), summary(&controller.stats.leader_election_us, 1000.0))] }
    else if is(&c::EVENT_QUEUE_TIME) { vec![(Vec::new(), summary(&controller.stats.events.queue_time_us, 1000.0))] }
    else if is(&c::EVENT_QUEUE_PROCESSING_TIME) { vec![(Vec::new(), summary(&controller.stats.events.processing_time_us, 1000.0))] }
    else if is(&c::RAFT_CURRENT_LEADER) { one(s.quorum.current_leader as f64) }
    else if is(&c::RAFT_CURRENT_VOTE) { one(s.quorum.current_vote as f64) }
    else if is(&c::RAFT_CURRENT_EPOCH) { s.quorum.current_epoch.map_or_else(Vec::new, |e| one(e as f64)) }
    else if is(&c::RAFT_CURRENT_STATE) { vec![(vec![s.quorum.current_state.to_string()], Value::Number(1.0))] }
    else if is(&c::RAFT_HIGH_WATERMARK) { one(s.quorum.high_watermark as f64) }
    else if is(&c::RAFT_LOG_END_OFFSET) { one(s.quorum.log_end_offset as f64) }
    else if is(&c::RAFT_COMMIT_LATENCY_AVG) { one(s.raft.commit_latency_avg) }
    else if is(&c::RAFT_COMMIT_LATENCY_MAX) { one(s.raft.commit_latency_max) }
    else if is(&c::RAFT_ELECTION_LATENCY_AVG) { one(s.raft.election_latency_avg) }
    else if is(&c::RAFT_ELECTION_LATENCY_MAX) { one(s.raft.election_latency_max) }
    else if is(&c::RAFT_APPEND_RECORDS_RATE) { one(s.raft.append_records_rate) }
    else if is(&c::RAFT_FETCH_RECORDS_RATE) { one(s.raft.fetch_records_rate) }
    else if is(&c::RAFT_CHANNEL_REQUESTS) { ctr(&controller.stats.channel.requests) }
    else if is(&c::RAFT_CHANNEL_RESPONSES) { ctr(&controller.stats.channel.responses) }
    else if is(&c::RAFT_CHANNEL_OUTGOING_BYTES) { ctr(&controller.stats.channel.outgoing_bytes) }
    else if is(&c::RAFT_CHANNEL_INCOMING_BYTES) { ctr(&controller.stats.channel.incoming_bytes) }
    else if is(&c::CONTROLLER_MALFORMED_REQUESTS) {
        if node.config.cluster.roles.controller { ctr(&controller.stats.rpc.malformed) } else { Vec::new() }
    }
    else if is(&c::PROCESS_CPU) { one(s.process.cpu_seconds) }
    else if is(&c::PROCESS_RSS) { one(s.process.rss_bytes) }
    else if is(&c::PROCESS_VMS) { one(s.process.vms_bytes) }
    else if is(&c::PROCESS_OPEN_FDS) { one(s.process.open_fds) }
    else if is(&c::PROCESS_MAX_FDS) { one(s.process.max_fds) }
    else if is(&c::PROCESS_START_TIME) { one(s.process.start_time_seconds) }
    else { return None };
    Some(series)
}

/// Time since the last applied record's timestamp; nothing before the first (a node still
/// joining has no lag to report rather than 56 years).
fn lag_ms(image: &crate::controller::MetadataImage, s: &Snapshot) -> Series {
    if image.last_timestamp_ms > 0 { one((s.now_ms - image.last_timestamp_ms).max(0) as f64) } else { Vec::new() }
}

fn collect(def: &'static MetricDef, node: &Scrape, s: &Snapshot) -> Series {
    if let Some(series) = collect_node(def, node, s) {
        return series;
    }
    let Some(broker) = node.broker else { return Vec::new() };
    let m = &broker.metrics;
    let image = broker.image();
    let is = |d: &MetricDef| ptr::eq(def, d);
    let topic_meters = [
        &c::MESSAGES_IN, &c::BYTES_IN, &c::BYTES_OUT, &c::BYTES_REJECTED, &c::TOTAL_PRODUCE_REQUESTS,
        &c::TOTAL_FETCH_REQUESTS, &c::FAILED_PRODUCE_REQUESTS, &c::FAILED_FETCH_REQUESTS, &c::INVALID_CRC,
        &c::INVALID_OFFSET_OR_SEQUENCE, &c::REPLICATION_BYTES_IN, &c::REPLICATION_BYTES_OUT, &c::REASSIGNMENT_BYTES_IN,
        &c::REASSIGNMENT_BYTES_OUT, &c::PRODUCE_MESSAGE_CONVERSIONS, &c::FETCH_MESSAGE_CONVERSIONS, &c::INVALID_MAGIC_NUMBER,
        &c::NO_KEY_COMPACTED,
    ];
    if let Some(i) = topic_meters.iter().position(|d| is(d)) {
        return counters(&m.topic_meters[i]);
    }
    let hist = |pick: fn(&super::RequestTimes) -> &Histogram, scale: f64| -> Series {
        m.request_times.snapshot().into_iter().map(|(l, t)| (l, summary(pick(&t), scale))).collect()
    };
    let per_partition = |f: fn(&(String, i32, u64, usize, i64, i64)) -> f64| -> Series {
        s.partitions.iter().map(|p| (vec![p.0.clone(), p.1.to_string()], Value::Number(f(p)))).collect()
    };
    // The partitions assigned to this broker (Kafka registers partition metrics where they
    // are hosted).
    let node = broker.node_id();
    let partitions_of_image =
        || image.topics.values().flat_map(|t| t.partitions.iter().enumerate().map(move |(i, p)| (t, i, p))).filter(move |(_, _, p)| p.replicas.contains(&node));
    let ctr = |v: &std::sync::atomic::AtomicU64| one(v.load(Ordering::Relaxed) as f64);
    let min_isr = |t: &crate::controller::TopicImage| crate::cluster::topic_config::min_insync_replicas(&broker.config, &t.configs);
    let count_groups = |st: GroupState| one(s.groups.iter().filter(|g| g.1 == st).count() as f64);
    // kafka_exporter's lag is the partition's newest offset (its high watermark) minus the
    // committed offset; the coordinator knows it for the partitions it hosts.
    let newest = |topic: &str, p: i32| broker.replicas.partition(topic, p).map(|x| x.high_watermark());
    // kafka_exporter's families, shared out so a cluster-wide sum counts each thing once.
    let reports_cluster = image.live_brokers().map(|b| b.id).min() == Some(node);
    let led = || partitions_of_image().filter(move |(_, _, p)| p.leader == node);
    let per_led = |f: &dyn Fn(&crate::controller::TopicImage, i32, &crate::controller::PartitionImage) -> Option<f64>| -> Series {
        led().filter_map(|(t, i, p)| f(t, i as i32, p).map(|v| (vec![t.name.clone(), i.to_string()], Value::Number(v)))).collect()
    };

    if is(&c::REQUESTS) { counters(&m.requests) }
    else if is(&c::ERRORS) { counters(&m.errors) }
    else if is(&c::TOTAL_TIME) { hist(|t| &t.total, 1000.0) }
    else if is(&c::REQUEST_QUEUE_TIME) { hist(|t| &t.request_queue, 1000.0) }
    else if is(&c::LOCAL_TIME) { hist(|t| &t.local, 1000.0) }
    else if is(&c::REMOTE_TIME) { hist(|t| &t.remote, 1000.0) }
    else if is(&c::RESPONSE_QUEUE_TIME) { hist(|t| &t.response_queue, 1000.0) }
    else if is(&c::RESPONSE_SEND_TIME) { hist(|t| &t.response_send, 1000.0) }
    else if is(&c::REQUEST_BYTES) { hist(|t| &t.request_bytes, 1.0) }
    else if is(&c::REQUEST_QUEUE_SIZE) { one(broker.handlers.queued() as f64) }
    else if is(&c::RESPONSE_QUEUE_SIZE) { one(m.responses_queued.load(Ordering::Relaxed) as f64) }
    else if is(&c::NETWORK_IDLE) { one(m.network_idle_ratio()) }
    else if is(&c::HANDLER_IDLE) { one(broker.handlers.idle_ratio()) }
    else if is(&c::CONNECTION_COUNT) { gauges(&m.connections_open) }
    else if is(&c::CONNECTION_CREATION_TOTAL) { counters(&m.connections_created) }
    else if is(&c::CONNECTION_CLOSE_TOTAL) { counters(&m.connections_closed) }
    else if is(&c::CONNECTION_CREATION_RATE) || is(&c::CONNECTION_CLOSE_RATE) {
        let created = is(&c::CONNECTION_CREATION_RATE);
        m.connection_rates.read(std::time::Instant::now()).into_iter().map(|(l, c, x)| (l, Value::Number(if created { c } else { x }))).collect()
    }
    else if is(&c::CONNECTIONS_BY_SOFTWARE) { gauges(&m.connections_by_software) }
    else if is(&c::ACCEPTOR_BLOCKED) { m.acceptor_blocked.snapshot().into_iter().map(|(l, b)| (l, Value::Number(b.ratio()))).collect() }
    else if is(&c::PARTITION_COUNT) { one(s.partitions.len() as f64) }
    else if is(&c::LEADER_COUNT) { one(partitions_of_image().filter(|(_, _, p)| p.leader == broker.node_id()).count() as f64) }
    else if is(&c::UNDER_REPLICATED) { one(partitions_of_image().filter(|(_, _, p)| p.leader == broker.node_id() && p.is_under_replicated()).count() as f64) }
    else if is(&c::LEADER_REPLICATION_BYTE_RATE) { one(broker.leader_quota.byte_rate(std::time::Instant::now())) }
    else if is(&c::FOLLOWER_REPLICATION_BYTE_RATE) { one(broker.follower_quota.byte_rate(std::time::Instant::now())) }
    else if is(&c::LEADER_REPLICATION_THROTTLE) { broker.refresh_replication_quotas(); one(broker.leader_quota.rate() as f64) }
    else if is(&c::FOLLOWER_REPLICATION_THROTTLE) { broker.refresh_replication_quotas(); one(broker.follower_quota.rate() as f64) }
    else if is(&c::SHARED_DOMAIN_PARTITIONS) {
        let spread = crate::controller::racks::Spread::of_live(&image);
        one(partitions_of_image().filter(|(_, _, p)| p.leader == broker.node_id() && spread.shares_domain(&p.target_replicas())).count() as f64)
    }
    else if is(&c::REASSIGNING_PARTITIONS) { one(partitions_of_image().filter(|(_, _, p)| p.leader == broker.node_id() && p.is_reassigning()).count() as f64) }
    else if is(&c::UNDER_MIN_ISR_COUNT) { one(partitions_of_image().filter(|(t, _, p)| p.leader == broker.node_id() && p.isr.len() < min_isr(t)).count() as f64) }
    else if is(&c::AT_MIN_ISR_COUNT) { one(partitions_of_image().filter(|(t, _, p)| p.leader == broker.node_id() && p.isr.len() == min_isr(t)).count() as f64) }
    else if is(&c::OFFLINE_REPLICA_COUNT) { one(partitions_of_image().filter(|(t, i, _)| broker.replicas.partition(&t.name, *i as i32).is_none()).count() as f64) }
    else if is(&c::PARTITION_UNDER_MIN_ISR) || is(&c::PARTITION_AT_MIN_ISR) || is(&c::PARTITION_REPLICAS_COUNT)
        || is(&c::PARTITION_IN_SYNC_COUNT) || is(&c::PARTITION_UNDER_REPLICATED) || is(&c::PARTITION_LSO_LAG) {
        partitions_of_image()
            .map(|(t, i, p)| {
                let v = if p.leader != node { 0.0 }
                    else if is(&c::PARTITION_UNDER_MIN_ISR) { (p.isr.len() < min_isr(t)) as u8 as f64 }
                    else if is(&c::PARTITION_AT_MIN_ISR) { (p.isr.len() == min_isr(t)) as u8 as f64 }
                    else if is(&c::PARTITION_REPLICAS_COUNT) { p.replicas.len() as f64 }
                    else if is(&c::PARTITION_IN_SYNC_COUNT) { p.isr.len() as f64 }
                    else if is(&c::PARTITION_LSO_LAG) { 0.0 }
                    else { p.is_under_replicated() as u8 as f64 };
                (vec![t.name.clone(), i.to_string()], Value::Number(v))
            })
            .collect()
    }
    else if is(&c::FETCHER_MAX_LAG) {
        let max = broker.replicas.all().iter().map(|p| p.follower_lag()).max().unwrap_or(0);
        vec![(vec!["Replica".to_string()], Value::Number(max as f64))]
    }
    else if is(&c::FETCHER_MIN_FETCH_RATE) {
        vec![(vec!["Replica".to_string()], Value::Number(m.fetcher_rates.min_rate(std::time::Instant::now())))]
    }
    else if is(&c::FETCH_SESSIONS) || is(&c::FETCH_SESSION_EVICTIONS) { one(0.0) }
    else if is(&c::STRAY_PARTITIONS) || is(&c::STRAY_PARTITIONS_SIZE) || is(&c::STRAY_PARTITIONS_MISCLASSIFIED) {
        let strays = &s.strays;
        if is(&c::STRAY_PARTITIONS) { one(strays.len() as f64) }
        else if is(&c::STRAY_PARTITIONS_SIZE) { one(strays.iter().map(|x| x.bytes).sum::<u64>() as f64) }
        else {
            let assigned_here = |x: &crate::log::stray_logs::StrayLog| {
                let (Some((t, p)), Some(id)) = (&x.topic_partition, x.topic_id) else { return false };
                image.topic(t).is_some_and(|t| t.id == id && t.partitions.get(*p as usize).is_some_and(|pi| pi.replicas.contains(&node)))
            };
            one(strays.iter().filter(|x| assigned_here(x)).count() as f64)
        }
    }
    else if is(&c::ALTER_LOG_DIRS_MAX_LAG) {
        let max = broker.replicas.log_dir_moves().into_iter().map(|m| m.3).max().unwrap_or(0);
        vec![(vec!["ReplicaAlterLogDirs".to_string()], Value::Number(max as f64))]
    }
    else if is(&c::ISR_SHRINKS) { ctr(&broker.replicas.isr_shrinks) }
    else if is(&c::ISR_EXPANDS) { ctr(&broker.replicas.isr_expands) }
    else if is(&c::BROKER_METADATA_LOAD_ERRORS) { one(broker.controller.apply_errors() as f64) }
    else if is(&c::BROKER_LAST_APPLIED_OFFSET) { one(image.last_offset as f64) }
    else if is(&c::BROKER_LAST_APPLIED_TIMESTAMP) { one(image.last_timestamp_ms as f64) }
    else if is(&c::BROKER_LAST_APPLIED_LAG_MS) { lag_ms(&image, s) }
    else if is(&c::BROKER_METADATA_APPLY_ERRORS) { ctr(&m.metadata_apply_errors) }
    else if is(&c::LOG_SIZE) { per_partition(|p| p.2 as f64) }
    else if is(&c::LOG_SEGMENTS) { per_partition(|p| p.3 as f64) }
    else if is(&c::LOG_START_OFFSET) { per_partition(|p| p.4 as f64) }
    else if is(&c::LOG_END_OFFSET) { per_partition(|p| p.5 as f64) }
    else if is(&c::OFFLINE_LOG_DIRS) { one(broker.replicas.offline_log_dirs().len() as f64) }
    else if is(&c::LOG_FLUSH) { vec![(Vec::new(), summary(&m.log_flush, 1000.0))] }
    else if is(&c::PURGATORY_SIZE) {
        [("Fetch", &m.purgatory_fetch), ("Produce", &m.purgatory_produce), ("Rebalance", &m.purgatory_rebalance)]
            .into_iter()
            .map(|(n, g)| (vec![n.to_string()], Value::Number(g.load(Ordering::Relaxed) as f64)))
            .collect()
    }
    else if is(&c::NUM_GROUPS) { one(s.groups.len() as f64) }
    else if is(&c::NUM_GROUPS_STABLE) { count_groups(GroupState::Stable) }
    else if is(&c::NUM_GROUPS_PREPARING) { count_groups(GroupState::PreparingRebalance) }
    else if is(&c::NUM_GROUPS_COMPLETING) { count_groups(GroupState::CompletingRebalance) }
    else if is(&c::NUM_GROUPS_EMPTY) { count_groups(GroupState::Empty) }
    else if is(&c::NUM_GROUPS_DEAD) { count_groups(GroupState::Dead) }
    else if is(&c::NUM_OFFSETS) { one(s.offsets.len() as f64) }
    else if is(&c::FAILED_GROUP_METADATA_WRITES) { ctr(&broker.coordinator.failed_writes) }
    else if is(&c::BROKER_STATE) { one(f64::from(broker.state_code())) }
    else if is(&c::DISK_READ_BYTES) { one(s.process.read_bytes) }
    else if is(&c::DISK_WRITE_BYTES) { one(s.process.write_bytes) }
    else if is(&c::MALFORMED_REQUESTS) { one(m.malformed_requests.load(Ordering::Relaxed) as f64) }
    else if is(&c::OVERSIZED_REQUESTS) { one(m.oversized_requests.load(Ordering::Relaxed) as f64) }
    else if is(&c::UNSUPPORTED_REQUESTS) { one(m.unsupported_requests.load(Ordering::Relaxed) as f64) }
    else if is(&c::IDLE_CONNECTIONS_CLOSED) { counters(&m.idle_closed) }
    else if is(&c::SPANS_QUEUED) { broker.tracer.as_ref().map_or_else(|| one(0.0), |t| ctr(&t.stats().queued)) }
    else if is(&c::SPANS_DROPPED) { broker.tracer.as_ref().map_or_else(|| one(0.0), |t| ctr(&t.stats().dropped)) }
    else if is(&c::SPANS_EXPORTED) { broker.tracer.as_ref().map_or_else(|| one(0.0), |t| ctr(&t.stats().exported)) }
    else if is(&c::SPANS_EXPORT_FAILED) { broker.tracer.as_ref().map_or_else(|| one(0.0), |t| ctr(&t.stats().failed)) }
    else if is(&c::REST_REQUESTS) { counters(&m.rest_requests) }
    else if is(&c::REST_ERRORS) { counters(&m.rest_errors) }
    else if is(&c::REST_AUTH_FAILURES) { counters(&m.rest_auth_failures) }
    else if is(&c::REST_LATENCY) { m.rest_latency.snapshot().into_iter().map(|(l, h)| (l, summary(&h, 1000.0))).collect() }
    else if is(&c::REST_RECORDS_IN) { one(m.rest_records_in.load(Ordering::Relaxed) as f64) }
    else if is(&c::REST_BYTES_IN) { one(m.rest_bytes_in.load(Ordering::Relaxed) as f64) }
    else if is(&c::REST_RECORDS_OUT) { one(m.rest_records_out.load(Ordering::Relaxed) as f64) }
    else if is(&c::REST_BYTES_OUT) { one(m.rest_bytes_out.load(Ordering::Relaxed) as f64) }
    else if is(&c::REJECTED_CONNECTIONS) { counters(&m.rejected_connections) }
    else if is(&c::KE_BROKERS) { if reports_cluster { one(image.live_brokers().count() as f64) } else { Vec::new() } }
    else if is(&c::KE_BROKER_INFO) {
        if !reports_cluster { return Vec::new(); }
        image.live_brokers()
            .map(|b| {
                let address = b.endpoints.first().map(|e| format!("{}:{}", e.host, e.port)).unwrap_or_default();
                (vec![address, b.id.to_string()], Value::Number(1.0))
            })
            .collect()
    }
    else if is(&c::KE_TOPIC_PARTITIONS) {
        if !reports_cluster { return Vec::new(); }
        image.topics.values().map(|t| (vec![t.name.clone()], Value::Number(t.partitions.len() as f64))).collect()
    }
    else if is(&c::KE_PARTITION_CURRENT_OFFSET) { per_led(&|t, i, _| newest(&t.name, i).map(|hw| hw as f64)) }
    else if is(&c::KE_PARTITION_OLDEST_OFFSET) { per_led(&|t, i, _| broker.replicas.partition(&t.name, i).map(|x| x.log_start_offset() as f64)) }
    else if is(&c::KE_PARTITION_LEADER) { per_led(&|_, _, p| Some(p.leader as f64)) }
    else if is(&c::KE_PARTITION_REPLICAS) { per_led(&|_, _, p| Some(p.replicas.len() as f64)) }
    else if is(&c::KE_PARTITION_IN_SYNC) { per_led(&|_, _, p| Some(p.isr.len() as f64)) }
    else if is(&c::KE_PARTITION_LEADER_PREFERRED) { per_led(&|_, _, p| Some((p.replicas.first() == Some(&p.leader)) as u8 as f64)) }
    else if is(&c::KE_PARTITION_UNDER_REPLICATED) { per_led(&|_, _, p| Some(p.is_under_replicated() as u8 as f64)) }
    else if is(&c::KE_GROUP_CURRENT_OFFSET) {
        s.offsets.iter().map(|(g, t, p, o)| (vec![g.clone(), t.clone(), p.to_string()], Value::Number(*o as f64))).collect()
    }
    else if is(&c::KE_GROUP_CURRENT_OFFSET_SUM) {
        let mut sums: std::collections::BTreeMap<(String, String), i64> = Default::default();
        for (g, t, _, o) in &s.offsets {
            *sums.entry((g.clone(), t.clone())).or_default() += o;
        }
        sums.into_iter().map(|((g, t), v)| (vec![g, t], Value::Number(v as f64))).collect()
    }
    else if is(&c::KE_GROUP_LAG) {
        s.offsets.iter().filter_map(|(g, t, p, o)| newest(t, *p).map(|end| (vec![g.clone(), t.clone(), p.to_string()], Value::Number((end - o).max(0) as f64)))).collect()
    }
    else if is(&c::KE_GROUP_LAG_SUM) {
        let mut sums: std::collections::BTreeMap<(String, String), i64> = Default::default();
        for (g, t, p, o) in &s.offsets {
            if let Some(end) = newest(t, *p) {
                *sums.entry((g.clone(), t.clone())).or_default() += (end - o).max(0);
            }
        }
        sums.into_iter().map(|((g, t), v)| (vec![g, t], Value::Number(v as f64))).collect()
    }
    else if is(&c::KE_GROUP_MEMBERS) { s.groups.iter().map(|(g, _, n)| (vec![g.clone()], Value::Number(*n as f64))).collect() }
    else { Vec::new() }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(names: &[String], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = names.iter().zip(values).map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{v}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

/// Renders every exported metric. `openmetrics` selects OpenMetrics 1.0 text.
/// What /metrics serves while a broker recovers its logs (no `Broker` exists yet): a valid
/// exposition with BrokerState 2 (Kafka's RECOVERY), so a scrape shows why nothing else is
/// there, instead of an empty body (invalid OpenMetrics).
pub fn render_recovering(config: &crate::config::BrokerConfig, openmetrics: bool) -> String {
    let def = &c::BROKER_STATE;
    let fam = family(def, config.metrics_naming);
    let type_name = if openmetrics && fam.prom_type == PromType::Untyped { "unknown" } else { fam.prom_type.as_str() };
    let mut out = format!("# HELP {} {}\n# TYPE {} {}\n{} 2\n", fam.name, def.help, fam.name, type_name, fam.name);
    if openmetrics {
        out.push_str("# EOF\n");
    }
    out
}

pub fn render(node: &Scrape, openmetrics: bool) -> String {
    let snap = snapshot(node);
    let mut out = String::with_capacity(32 * 1024);
    for def in CATALOGUE.iter().copied().filter(|d| d.status == Status::Exported) {
        let series = collect(def, node, &snap);
        if series.is_empty() {
            continue;
        }
        let fam = family(def, node.config.metrics_naming);
        let names = std::iter::once(fam.name.clone()).chain(aliases(def, node.config.metrics_naming).iter().map(|a| a.to_string()));
        for name in names {
            let (type_name, family_name) = match (openmetrics, fam.prom_type) {
                (true, PromType::Counter) => ("counter", name.strip_suffix("_total").unwrap_or(&name).to_string()),
                (true, PromType::Untyped) => ("unknown", name.clone()),
                (_, t) => (t.as_str(), name.clone()),
            };
            let _ = writeln!(out, "# HELP {family_name} {}", def.help);
            let _ = writeln!(out, "# TYPE {family_name} {type_name}");
            for (values, value) in &series {
                match value {
                    Value::Number(v) => {
                        let _ = writeln!(out, "{name}{} {}", labels(&fam.labels, values, None), number(*v));
                    }
                    Value::Summary(q, count, sum) => {
                        for ((_, label), v) in QUANTILES.iter().zip(q) {
                            let _ = writeln!(out, "{name}{} {}", labels(&fam.labels, values, Some(("quantile", label))), number(*v));
                        }
                        let _ = writeln!(out, "{name}_count{} {count}", labels(&fam.labels, values, None));
                        let _ = writeln!(out, "{name}_sum{} {}", labels(&fam.labels, values, None), number(*sum));
                    }
                }
            }
        }
    }
    if openmetrics {
        out.push_str("# EOF\n");
    }
    out
}
