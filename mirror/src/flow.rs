//! One `source->target` flow's copy loop (MM2's MirrorSourceConnector and its task): picks the
//! source topics to copy (at start and every refresh.topics.interval), creates their target
//! topics, reads every partition from its committed progress and writes each record to the same
//! partition of the remote topic with its key, value, headers and timestamp. Progress is
//! committed to the source cluster (group `lantern-mirror.<source>-><target>`) only for records
//! the target acknowledged; each commit also names the target offset of the record at the
//! committed source offset, so that a restart skips what was copied after it (resume.rs decides
//! where each partition resumes and which records are already on the target; where its
//! preconditions do not hold, a crash re-copies what was in flight: at least once).
//! Each acknowledgement feeds the offset syncs the checkpoint loop translates groups with.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use rdkafka::admin::AdminClient;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};

use crate::clients::{client_config, Context, Kind, StatsRole};
use crate::config::{Cluster, Flow};
use crate::formats::OffsetSync;
use crate::metrics::{self, now_ms, Metrics};
use crate::offset_sync::{OffsetSyncStore, PartitionState};
use crate::policy::{should_replicate_topic, ReplicationPolicy};
use crate::resume::{self, Action, ExactlyOnceSupport, Observed, PartitionProgress, Resume};
use crate::topics;

pub fn progress_group(flow: &Flow) -> String {
    format!("lantern-mirror.{}->{}", flow.source, flow.target)
}

/// A partition being copied.
#[derive(Debug, Clone)]
pub struct Copied {
    pub source_topic: String,
    pub remote_topic: String,
    pub partition: i32,
}

/// What the checkpoint loop needs from the copy loop.
#[derive(Default)]
pub struct Shared {
    pub partitions: Mutex<Vec<Copied>>,
    pub syncs: Mutex<OffsetSyncStore>,
}

struct Ack {
    slot: usize,
    result: Result<i64, KafkaError>,
    source_offset: i64,
    source_timestamp: i64,
    bytes: usize,
    sent_ms: u64,
}

struct Pending {
    slot: usize,
    source_offset: i64,
    source_timestamp: i64,
    bytes: usize,
    sent_ms: u64,
}

/// The target producer's context: acknowledgements are queued for the copy loop (they arrive
/// inside `poll`, on its thread).
struct TargetContext {
    inner: Context,
    acks: Mutex<Vec<Ack>>,
    refused: AtomicBool,
}

impl ClientContext for TargetContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.inner.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.inner.error(error, reason)
    }
    fn stats(&self, stats: Statistics) {
        self.inner.stats(stats)
    }
}

impl ProducerContext for TargetContext {
    type DeliveryOpaque = Box<Pending>;
    fn delivery(&self, result: &DeliveryResult<'_>, p: Box<Pending>) {
        let result = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => {
                self.refused.store(true, Ordering::Relaxed);
                Err(e.clone())
            }
        };
        let ack = Ack { slot: p.slot, result, source_offset: p.source_offset, source_timestamp: p.source_timestamp, bytes: p.bytes, sent_ms: p.sent_ms };
        self.acks.lock().unwrap_or_else(|e| e.into_inner()).push(ack);
    }
}

/// Writes one source record to the same partition of its remote topic. Ok(false): not sent
/// (stopping, or the target already refused a record).
fn send_record(producer: &BaseProducer<TargetContext>, slots: &mut [Slot], slot: usize, m: &rdkafka::message::BorrowedMessage<'_>, stop: &AtomicBool) -> Result<bool, String> {
    let headers = m.headers().map(|hs| {
        let mut out = OwnedHeaders::new_with_capacity(hs.count());
        for h in hs.iter() {
            out = out.insert(Header { key: h.key, value: h.value });
        }
        out
    });
    let ts = m.timestamp().to_millis();
    let bytes = m.payload_len() + m.key().map_or(0, <[u8]>::len);
    let pending = Pending { slot, source_offset: m.offset(), source_timestamp: ts.unwrap_or(-1), bytes, sent_ms: now_ms() };
    let remote = &slots[slot].copied.remote_topic;
    let mut record: BaseRecord<'_, [u8], [u8], Box<Pending>> = BaseRecord::with_opaque_to(remote, Box::new(pending)).partition(m.partition());
    record.key = m.key();
    record.payload = m.payload();
    record.headers = headers;
    record.timestamp = ts;
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                // The target is slow or away: wait for room (acknowledgements drain the queue).
                record = r;
                producer.poll(Duration::from_millis(100));
                if stop.load(Ordering::Relaxed) || producer.context().refused.load(Ordering::Relaxed) {
                    return Ok(false);
                }
            }
            Err((e, _)) => return Err(format!("cannot send offset {} of {}-{}: {e}", m.offset(), m.topic(), m.partition())),
        }
    }
    slots[slot].progress.sent(m.offset());
    Ok(true)
}

struct Slot {
    copied: Copied,
    /// Records skipped, sent and acknowledged, and the progress to commit.
    progress: PartitionProgress,
    sync_state: PartitionState,
    delayed_sync: Option<(i64, i64)>,
    /// Whether records of another writer were seen among this run's (logged once).
    interleaving_logged: bool,
}

fn message_fingerprint(m: &rdkafka::message::BorrowedMessage<'_>) -> u64 {
    let headers = m.headers();
    let pairs = headers.into_iter().flat_map(|hs| hs.iter().map(|h| (h.key, h.value)));
    resume::fingerprint(m.key(), m.payload(), pairs)
}

/// One partition's progress in a commit: the source offset, and in the metadata the target
/// offset of the record at it (resume.rs).
fn add_progress(tpl: &mut TopicPartitionList, c: &Copied, source_offset: i64, target_offset: Option<i64>) {
    let mut e = tpl.add_partition(&c.source_topic, c.partition);
    let _ = e.set_offset(Offset::Offset(source_offset));
    if let Some(t) = target_offset {
        e.set_metadata(resume::encode_metadata(&c.remote_topic, c.partition, t));
    }
}

pub struct CopyLoop {
    flow: Flow,
    source: Cluster,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    consumer: BaseConsumer<Context>,
    producer: BaseProducer<TargetContext>,
    sync_producer: BaseProducer<Context>,
    /// Reads a target partition's records after the committed one when a partition resumes (never commits).
    tail_reader: BaseConsumer<Context>,
    source_admin: AdminClient<Context>,
    target_admin: AdminClient<Context>,
    slots: Vec<Slot>,
    index: HashMap<(String, i32), usize>,
    topic_configs: BTreeMap<String, Vec<(String, String)>>,
    failure: Option<String>,
    in_flight: i64,
    /// Whether the target producer's effective settings are acks=all and idempotent.
    producer_exact: Result<(), String>,
}

impl CopyLoop {
    /// Creates every client (so a bad passthrough setting stops start-up, naming it).
    pub fn new(flow: Flow, source: Cluster, target: Cluster, metrics: Arc<Metrics>, shared: Arc<Shared>) -> anyhow::Result<Self> {
        let ctx = |role| Context { metrics: metrics.clone(), source: flow.source.clone(), target: flow.target.clone(), role };
        let group = progress_group(&flow);
        let consumer_id = metrics::consumer_client_id(&flow.source, &flow.target).trim_matches('"').to_string();
        let consumer: BaseConsumer<Context> = client_config(
            &source,
            Kind::Consumer,
            &consumer_id,
            &[
                ("group.id", &group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "earliest"),
                ("statistics.interval.ms", "5000"),
                ("fetch.wait.max.ms", "100"),
            ],
        )
        .create_with_context(ctx(StatsRole::SourceConsumer))
        .with_context(|| format!("{} consumer settings", flow.source))?;
        let producer_id = metrics::producer_client_id(&flow.source, &flow.target).trim_matches('"').to_string();
        let producer_config = client_config(
            &target,
            Kind::Producer,
            &producer_id,
            // Idempotence keeps each partition's order through retries; no timeout: an
            // unreachable target pauses the flow instead of failing records.
            &[("enable.idempotence", "true"), ("acks", "all"), ("message.timeout.ms", "0"), ("linger.ms", "5"), ("statistics.interval.ms", "5000")],
        );
        let producer_exact = resume::producer_preconditions(|k| producer_config.get(k).map(str::to_string));
        let producer: BaseProducer<TargetContext> = producer_config
        .create_with_context(TargetContext { inner: ctx(StatsRole::TargetProducer), acks: Mutex::new(Vec::new()), refused: AtomicBool::new(false) })
        .with_context(|| format!("{} producer settings", flow.target))?;
        let sync_producer: BaseProducer<Context> = client_config(&source, Kind::Producer, &format!("{producer_id}-offset-syncs"), &[("acks", "all"), ("linger.ms", "5")])
            .create_with_context(ctx(StatsRole::None))
            .with_context(|| format!("{} producer settings", flow.source))?;
        let tail_reader: BaseConsumer<Context> = client_config(
            &target,
            Kind::Consumer,
            &format!("{consumer_id}-tail"),
            &[("group.id", &format!("{group}-tail-reader")), ("enable.auto.commit", "false"), ("enable.auto.offset.store", "false"), ("fetch.wait.max.ms", "100")],
        )
        .create_with_context(ctx(StatsRole::None))
        .with_context(|| format!("{} consumer settings", flow.target))?;
        let source_admin = client_config(&source, Kind::Admin, &format!("{producer_id}-admin"), &[])
            .create_with_context(ctx(StatsRole::None))
            .with_context(|| format!("{} admin settings", flow.source))?;
        let target_admin = client_config(&target, Kind::Admin, &format!("{producer_id}-admin"), &[])
            .create_with_context(ctx(StatsRole::None))
            .with_context(|| format!("{} admin settings", flow.target))?;
        metrics.with(|s| {
            s.flows.entry((flow.source.clone(), flow.target.clone())).or_default();
        });
        Ok(CopyLoop {
            flow,
            source,
            metrics,
            shared,
            consumer,
            producer,
            sync_producer,
            tail_reader,
            source_admin,
            target_admin,
            slots: Vec::new(),
            index: HashMap::new(),
            topic_configs: BTreeMap::new(),
            failure: None,
            in_flight: 0,
            producer_exact,
        })
    }

    fn key(&self) -> (String, String) {
        (self.flow.source.clone(), self.flow.target.clone())
    }

    /// Runs until `stop`; returns an error when the target refused a record for good (the
    /// flow stops there, as an MM2 task fails, with that record's progress uncommitted).
    pub fn run(mut self, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        let s = self.flow.settings.clone();
        let offset_syncs = ReplicationPolicy::offset_syncs_topic(&self.flow.target);
        topics::create_internal_topic(&self.source_admin, &offset_syncs, s.offset_syncs_topic_replication_factor).map_err(|e| anyhow!(e))?;
        self.load_offset_syncs(&offset_syncs);
        self.refresh_topics(true)?;
        let mut next_refresh = Instant::now() + s.refresh_topics_interval;
        let mut next_config_sync = Instant::now() + s.sync_topic_configs_interval;
        let mut next_commit = Instant::now() + s.offset_flush_interval;
        tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), partitions = self.slots.len(), "copying");
        while !stop.load(Ordering::Relaxed) {
            if let Some(msg) = self.consumer.poll(Duration::from_millis(50)) {
                match msg {
                    Ok(m) => match self.index.get(&(m.topic().to_string(), m.partition())).copied() {
                        None => {}
                        Some(slot) => match self.slots[slot].progress.on_record(m.offset(), || message_fingerprint(&m)) {
                            Action::Skip { target_offset } => self.skipped(slot, m.offset(), target_offset),
                            Action::Rewind { source_offset, reason } => self.rewind(slot, source_offset, &reason)?,
                            Action::Copy => match send_record(&self.producer, &mut self.slots, slot, &m, &stop) {
                                Ok(true) => self.in_flight += 1,
                                Ok(false) => {}
                                Err(e) => self.failure = Some(e),
                            },
                        },
                    },
                    Err(e) => tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), error = %e, "fetch failed; retrying"),
                }
            }
            self.producer.poll(Duration::ZERO);
            self.sync_producer.poll(Duration::ZERO);
            self.drain_acks();
            if let Some(f) = &self.failure {
                return Err(anyhow!("{}: {f}", self.flow.name()));
            }
            let now = Instant::now();
            if now >= next_commit {
                self.commit();
                next_commit = now + s.offset_flush_interval;
            }
            if s.refresh_topics_enabled && now >= next_refresh {
                if let Err(e) = self.refresh_topics(false) {
                    tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), error = %e, "topic refresh failed");
                }
                next_refresh = now + s.refresh_topics_interval;
            }
            if s.sync_topic_configs_enabled && now >= next_config_sync {
                self.sync_configs();
                next_config_sync = now + s.sync_topic_configs_interval;
            }
        }
        // A clean stop: wait (bounded) for what was sent, then commit it.
        let _ = self.producer.flush(Duration::from_secs(30));
        self.drain_acks();
        self.commit();
        let _ = self.sync_producer.flush(Duration::from_secs(5));
        tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), "stopped");
        Ok(())
    }

    /// Reads back the offset syncs earlier runs wrote, so checkpoints translate at once after a
    /// restart. Best effort: without them translation waits for new syncs.
    fn load_offset_syncs(&self, topic: &str) {
        let reader: Result<BaseConsumer, _> =
            client_config(&self.source, Kind::Consumer, "lantern-mirror-offset-syncs-reader", &[("group.id", "lantern-mirror-offset-syncs-reader"), ("enable.auto.commit", "false")]).create();
        let Ok(reader) = reader else { return };
        let Ok((low, high)) = reader.fetch_watermarks(topic, 0, topics::TIMEOUT) else { return };
        let mut tpl = TopicPartitionList::new();
        if tpl.add_partition_offset(topic, 0, Offset::Offset(low)).is_err() || reader.assign(&tpl).is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut pos = low;
        let mut n = 0;
        while pos < high && Instant::now() < deadline {
            let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) else { continue };
            pos = m.offset() + 1;
            if let (Some(k), Some(v)) = (m.key(), m.payload()) {
                if let Ok((t, p, up, down)) = OffsetSync::decode(k, v) {
                    self.shared.syncs.lock().unwrap_or_else(|e| e.into_inner()).record(&t, p, up, down);
                    n += 1;
                }
            }
        }
        tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), syncs = n, "offset syncs read back");
    }

    fn drain_acks(&mut self) {
        let mut acks = std::mem::take(&mut *self.producer.context().acks.lock().unwrap_or_else(|e| e.into_inner()));
        if acks.is_empty() {
            return;
        }
        // One metrics lookup per partition: a stable sort keeps each partition's order.
        acks.sort_by_key(|a| a.slot);
        let now = now_ms();
        let key = self.key();
        let mut syncs = Vec::new();
        let mut failed = 0;
        self.in_flight -= acks.len() as i64;
        self.metrics.with(|ms| {
            for run in acks.chunk_by(|a, b| a.slot == b.slot) {
                let slot = &mut self.slots[run[0].slot];
                let c = &slot.copied;
                let p = ms.partitions.entry((key.0.clone(), key.1.clone(), c.remote_topic.clone(), c.partition)).or_default();
                for a in run {
                    match &a.result {
                        Ok(downstream) => {
                            slot.progress.acknowledge(a.source_offset, *downstream);
                            if slot.sync_state.update(a.source_offset, *downstream) {
                                slot.delayed_sync = None;
                                syncs.push((a.slot, a.source_offset, *downstream));
                            } else {
                                slot.delayed_sync = Some((a.source_offset, *downstream));
                            }
                            p.records.record(now, 1.0);
                            p.bytes.record(now, a.bytes as f64);
                            if a.source_timestamp >= 0 {
                                p.record_age.record(now, a.sent_ms.saturating_sub(a.source_timestamp as u64) as f64);
                                p.last_acked_timestamp_ms = a.source_timestamp;
                            }
                            p.replication_latency.record(now, now.saturating_sub(a.sent_ms) as f64);
                        }
                        Err(e) => {
                            failed += 1;
                            if self.failure.is_none() {
                                self.failure = Some(format!("the target refused offset {} of {}-{}: {e}", a.source_offset, slot.copied.source_topic, slot.copied.partition));
                            }
                        }
                    }
                }
                p.acked_next_offset = slot.progress.acked_next;
                p.high_watermark = p.high_watermark.max(slot.progress.acked_next);
                if slot.progress.interleaved > 0 && !slot.interleaving_logged {
                    // Records this run did not write sit between its own: another writer of
                    // the target, or a killed run's last request arriving after the restart
                    // read the target's end (its records are then on the target twice).
                    tracing::warn!(target: "lantern.mirror", flow = %format!("{}->{}", key.0, key.1), topic = %slot.copied.remote_topic, partition = slot.copied.partition, "records of another writer on the target partition, between this flow's own");
                    slot.interleaving_logged = true;
                }
            }
            if let Some(f) = ms.flows.get_mut(&key) {
                f.active_records = self.in_flight;
                f.record_failures += failed;
            }
        });
        for (slot, up, down) in syncs {
            self.send_offset_sync(slot, up, down);
        }
    }

    fn send_offset_sync(&mut self, slot: usize, upstream: i64, downstream: i64) {
        let c = &self.slots[slot].copied;
        let sync = OffsetSync { topic: &c.source_topic, partition: c.partition, upstream_offset: upstream, downstream_offset: downstream };
        let (k, v) = (sync.key(), sync.value());
        let topic = ReplicationPolicy::offset_syncs_topic(&self.flow.target);
        if let Err((e, _)) = self.sync_producer.send(BaseRecord::<[u8], [u8]>::to(&topic).partition(0).key(&k[..]).payload(&v[..])) {
            // A lost sync only makes translation coarser; the next one replaces it.
            tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), error = %e, "offset sync not sent");
        }
        self.shared.syncs.lock().unwrap_or_else(|e| e.into_inner()).record(&c.source_topic, c.partition, upstream, downstream);
    }

    /// Commits the acknowledged progress of every partition that moved, and sends the offset
    /// syncs that were held back (MM2 sends those at its offset commits too).
    fn commit(&mut self) {
        let delayed: Vec<(usize, i64, i64)> = self.slots.iter_mut().enumerate().filter_map(|(i, s)| s.delayed_sync.take().map(|(u, d)| (i, u, d))).collect();
        for (slot, up, down) in delayed {
            self.slots[slot].sync_state.update(up, down);
            self.send_offset_sync(slot, up, down);
        }
        // A target offset only from a run whose producer keeps one record per offset: another
        // run must not trust the count of one that did not.
        let exact = self.flow.settings.exactly_once_support != ExactlyOnceSupport::Disabled && self.producer_exact.is_ok();
        let mut tpl = TopicPartitionList::new();
        let mut moved = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            if let Some((source_offset, target_offset)) = s.progress.to_commit() {
                add_progress(&mut tpl, &s.copied, source_offset, target_offset.filter(|_| exact));
                moved.push((i, source_offset));
            }
        }
        if moved.is_empty() {
            return;
        }
        let t0 = Instant::now();
        let result = self.consumer.commit(&tpl, CommitMode::Sync);
        let took = t0.elapsed().as_secs_f64() * 1000.0;
        let key = self.key();
        self.metrics.with(|m| {
            if let Some(f) = m.flows.get_mut(&key) {
                f.offset_commit_time.record(now_ms(), took);
                if result.is_err() {
                    f.offset_commit_failures += 1;
                }
            }
        });
        match result {
            Ok(()) => {
                for (i, source_offset) in moved {
                    self.slots[i].progress.on_committed(source_offset);
                }
            }
            Err(e) => tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), error = %e, "progress commit failed; will retry"),
        }
    }

    /// Finds the source topics to copy, creates or grows their target topics and (re)assigns
    /// the consumer, keeping every partition's position.
    fn refresh_topics(&mut self, first: bool) -> anyhow::Result<()> {
        let s = &self.flow.settings;
        let listed = topics::list_topics(self.consumer.client()).map_err(|e| anyhow!(e))?;
        let wanted: Vec<(String, i32)> = listed.into_iter().filter(|(t, n)| *n > 0 && should_replicate_topic(s, t, &self.flow.target)).collect();
        let mut added = TopicPartitionList::new();
        let mut added_slots = Vec::new();
        let mut created_now = HashSet::new();
        for (topic, partitions) in &wanted {
            let remote = s.policy.format_remote_topic(&self.flow.source, topic);
            let known = self.slots.iter().filter(|x| &x.copied.source_topic == topic).count() as i32;
            if known >= *partitions {
                continue;
            }
            let configs = if s.sync_topic_configs_enabled { topics::synced_configs(&self.source_admin, topic).unwrap_or_default() } else { Vec::new() };
            if known == 0 {
                let created = topics::create_topic(&self.target_admin, &remote, *partitions, s.replication_factor, &configs).map_err(|e| anyhow!(e))?;
                if created {
                    created_now.insert(remote.clone());
                    tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), topic = %remote, partitions, "created target topic");
                }
                self.topic_configs.insert(topic.clone(), configs);
            }
            // The target may have fewer partitions (it existed before, or the source grew).
            let target_partitions = topics::list_topics(self.target_admin.inner()).map_err(|e| anyhow!(e))?.get(&remote).copied().unwrap_or(0);
            if target_partitions < *partitions {
                topics::add_partitions(&self.target_admin, &remote, *partitions).map_err(|e| anyhow!(e))?;
                tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), topic = %remote, partitions, "added target partitions");
            }
            for p in known..*partitions {
                added.add_partition(topic, p);
                added_slots.push(Copied { source_topic: topic.clone(), remote_topic: remote.clone(), partition: p });
            }
        }
        if added_slots.is_empty() && !first {
            return Ok(());
        }
        // Where each new partition resumes, and which records read from there are on the target
        // already (resume.rs).
        let committed = if added.count() > 0 { self.consumer.committed_offsets(added, topics::TIMEOUT).context("reading committed progress")? } else { TopicPartitionList::new() };
        let mut fresh = TopicPartitionList::new();
        let mut fallbacks = 0;
        let mut decided = Vec::new();
        for c in added_slots {
            let (committed_offset, metadata) = match committed.find_partition(&c.source_topic, c.partition) {
                // Unknown is not "never committed": resuming fresh would overwrite the real
                // progress. The partition is assigned at the next refresh instead.
                Some(e) if e.error().is_err() => {
                    return Err(anyhow!("reading the committed progress of {}-{}: {:?}", c.source_topic, c.partition, e.error()));
                }
                Some(e) => (if let Offset::Offset(o) = e.offset() { Some(o) } else { None }, e.metadata().to_string()),
                None => (None, String::new()),
            };
            let resume = self.resume_of(&c, committed_offset, &metadata, created_now.contains(&c.remote_topic));
            if let (Resume::AtLeastOnce { reason, .. }, ExactlyOnceSupport::Required) = (&resume, s.exactly_once_support) {
                return Err(anyhow!("{}-{}: exactly.once.support=required, but {reason}", c.source_topic, c.partition));
            }
            decided.push((c, resume));
        }
        for (c, resume) in decided {
            let start = resume.source_offset().unwrap_or(-1);
            match &resume {
                Resume::Exact { target_offset, skip, .. } => {
                    tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), topic = %c.source_topic, partition = c.partition, resume = start, delivery = "exactly once", target_offset, skip, "partition assigned")
                }
                Resume::Fresh { source_offset, target_offset } => {
                    tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), topic = %c.source_topic, partition = c.partition, resume = start, delivery = "exactly once", target_offset, skip = 0, "partition assigned");
                    add_progress(&mut fresh, &c, *source_offset, Some(*target_offset));
                }
                Resume::AtLeastOnce { reason, .. } => {
                    fallbacks += 1;
                    tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), topic = %c.source_topic, partition = c.partition, resume = start, delivery = "at least once", reason = %reason, "partition assigned");
                    if *reason != resume::Fallback::Disabled {
                        tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), topic = %c.source_topic, partition = c.partition, reason = %reason, "resuming at least once: records copied since the last progress commit are copied again");
                    }
                }
            }
            self.index.insert((c.source_topic.clone(), c.partition), self.slots.len());
            let progress = PartitionProgress::new(&resume);
            let committed_at = progress.acked_next;
            self.metrics.with(|m| {
                let p = m.partitions.entry((self.flow.source.clone(), self.flow.target.clone(), c.remote_topic.clone(), c.partition)).or_default();
                p.source_topic.clone_from(&c.source_topic);
                p.acked_next_offset = committed_at;
                p.high_watermark = p.high_watermark.max(committed_at);
            });
            self.slots.push(Slot { copied: c, progress, sync_state: PartitionState::new(s.offset_lag_max), delayed_sync: None, interleaving_logged: false });
        }
        // Progress for partitions never committed: (log start, target end), so that a crash
        // before their first regular commit resumes exactly too.
        if fresh.count() > 0 {
            if let Err(e) = self.consumer.commit(&fresh, CommitMode::Sync) {
                tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), error = %e, "first progress commit failed; a crash before the next one resumes at least once");
            }
        }
        let key = self.key();
        self.metrics.with(|m| {
            if let Some(f) = m.flows.get_mut(&key) {
                f.exactly_once_fallbacks += fallbacks;
            }
        });
        let mut tpl = TopicPartitionList::new();
        for slot in &self.slots {
            let offset = if slot.progress.next_send >= 0 { Offset::Offset(slot.progress.next_send) } else { Offset::Beginning };
            tpl.add_partition_offset(&slot.copied.source_topic, slot.copied.partition, offset).context("assignment")?;
        }
        self.consumer.assign(&tpl).context("assigning source partitions")?;
        *self.shared.partitions.lock().unwrap_or_else(|e| e.into_inner()) = self.slots.iter().map(|s| s.copied.clone()).collect();
        let n = wanted.len() as u64;
        let key = self.key();
        self.metrics.with(|m| {
            if let Some(f) = m.flows.get_mut(&key) {
                f.topics = n;
            }
        });
        Ok(())
    }

    /// Reads what the resume decision needs: the target offset in the commit's metadata, the
    /// source's log start and the target partition's high watermark (ListOffsets latest; a
    /// target topic this run just created is empty).
    fn resume_of(&self, c: &Copied, committed: Option<i64>, metadata: &str, created_now: bool) -> Resume {
        let mode = self.flow.settings.exactly_once_support;
        let target_offset = resume::decode_metadata(metadata, &c.remote_topic, c.partition);
        let mut observed = Observed { committed: committed.map(|s| (s, target_offset)), source_log_start: None, source_end: None, target_end: None };
        if mode != ExactlyOnceSupport::Disabled {
            if let Ok((low, high)) = self.consumer.fetch_watermarks(&c.source_topic, c.partition, topics::TIMEOUT) {
                (observed.source_log_start, observed.source_end) = (Some(low), Some(high));
            }
            observed.target_end = if created_now { Some(0) } else { self.target_end(&c.remote_topic, c.partition) };
        }
        let resume = resume::decide(mode, &self.producer_exact, &observed);
        match resume.needs_tail() {
            Some((from, to)) => resume.with_tail(self.target_records(&c.remote_topic, c.partition, from, to)),
            None => resume,
        }
    }

    /// The fingerprints of the target's records at offsets `from..to`, in order (None: not all
    /// read, one at each offset, within the timeout; a gap means the count cannot be trusted).
    fn target_records(&self, topic: &str, partition: i32, from: i64, to: i64) -> Option<Vec<u64>> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(from)).ok()?;
        self.tail_reader.assign(&tpl).ok()?;
        // The timeout again for every 100,000 records read.
        let deadline = Instant::now() + topics::TIMEOUT * (1 + ((to - from) / 100_000) as u32);
        let mut found = Vec::with_capacity((to - from) as usize);
        let mut next = from;
        while next < to && Instant::now() < deadline {
            match self.tail_reader.poll(Duration::from_millis(200)) {
                Some(Ok(m)) if m.topic() == topic && m.partition() == partition => {
                    if m.offset() != next {
                        break;
                    }
                    found.push(message_fingerprint(&m));
                    next += 1;
                }
                Some(Err(e)) => tracing::debug!(target: "lantern.mirror", topic, partition, error = %e, "reading the target's records after the commit"),
                _ => {}
            }
        }
        let _ = self.tail_reader.unassign();
        (next == to).then_some(found)
    }

    /// A record to skip is not the target's record at its position: the count is wrong, and the
    /// partition is read again from where it resumed and copied at least once (or, with
    /// `required`, the flow stops).
    fn rewind(&mut self, slot: usize, source_offset: i64, reason: &resume::Fallback) -> anyhow::Result<()> {
        let c = self.slots[slot].copied.clone();
        if self.flow.settings.exactly_once_support == ExactlyOnceSupport::Required {
            return Err(anyhow!("{}-{}: exactly.once.support=required, but {reason}", c.source_topic, c.partition));
        }
        tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), topic = %c.source_topic, partition = c.partition, resume = source_offset, reason = %reason, "resuming at least once: records copied since the last progress commit are copied again");
        self.slots[slot].delayed_sync = None;
        let key = self.key();
        self.metrics.with(|m| {
            if let Some(f) = m.flows.get_mut(&key) {
                f.exactly_once_fallbacks += 1;
            }
        });
        self.consumer.seek(&c.source_topic, c.partition, Offset::Offset(source_offset), topics::TIMEOUT).context("reading a partition again")?;
        Ok(())
    }

    fn target_end(&self, topic: &str, partition: i32) -> Option<i64> {
        // A partition added a moment ago may not be in the target's metadata yet.
        for attempt in 0..5 {
            match self.target_admin.inner().fetch_watermarks(topic, partition, topics::TIMEOUT) {
                Ok((_, high)) if high >= 0 => return Some(high),
                Ok(_) => {}
                Err(e) => tracing::debug!(target: "lantern.mirror", topic, partition, attempt, error = %e, "target end offset"),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }

    /// A record already on the target: not sent; fed to the offset syncs as if acknowledged at
    /// its target offset.
    fn skipped(&mut self, slot: usize, offset: i64, target_offset: i64) {
        let s = &mut self.slots[slot];
        if s.sync_state.update(offset, target_offset) {
            s.delayed_sync = None;
            self.send_offset_sync(slot, offset, target_offset);
        } else {
            s.delayed_sync = Some((offset, target_offset));
        }
        let s = &self.slots[slot];
        let (acked_next, done) = (s.progress.acked_next, s.progress.skipping() == 0);
        let key = self.key();
        let remote = (key.0.clone(), key.1.clone(), s.copied.remote_topic.clone(), s.copied.partition);
        self.metrics.with(|m| {
            if let Some(f) = m.flows.get_mut(&key) {
                f.resume_skipped_records += 1;
            }
            if let Some(p) = m.partitions.get_mut(&remote) {
                p.acked_next_offset = acked_next;
            }
        });
        if done {
            tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), topic = %s.copied.source_topic, partition = s.copied.partition, next = offset + 1, target_offset = target_offset + 1, "skipped the records already on the target; copying");
        }
    }

    fn sync_configs(&mut self) {
        let topics: Vec<String> = self.topic_configs.keys().cloned().collect();
        for topic in topics {
            let configs = match topics::synced_configs(&self.source_admin, &topic) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), error = %e, "config sync: describe failed");
                    continue;
                }
            };
            let remote = self.flow.settings.policy.format_remote_topic(&self.flow.source, &topic);
            match topics::sync_configs(&self.target_admin, &remote, &configs) {
                Ok(true) => tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), topic = %remote, "topic configs synced"),
                Ok(false) => {}
                Err(e) => tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), error = %e, "config sync failed"),
            }
            self.topic_configs.insert(topic, configs);
        }
    }
}
