//! One `source->target` flow's copy loop (MM2's MirrorSourceConnector and its task): picks the
//! source topics to copy (at start and every refresh.topics.interval), creates their target
//! topics, reads every partition from its committed progress and writes each record to the same
//! partition of the remote topic with its key, value, headers and timestamp. Progress is
//! committed to the source cluster (group `lantern-mirror.<source>-><target>`) only for records
//! the target acknowledged, so a crash re-copies (never skips) what was in flight: at least once.
//! Each acknowledgement feeds the offset syncs the checkpoint loop translates groups with.
use std::collections::{BTreeMap, HashMap, VecDeque};
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
fn send_record(
    producer: &BaseProducer<TargetContext>,
    slots: &mut [Slot],
    index: &HashMap<(String, i32), usize>,
    m: &rdkafka::message::BorrowedMessage<'_>,
    stop: &AtomicBool,
) -> Result<bool, String> {
    let Some(&slot) = index.get(&(m.topic().to_string(), m.partition())) else { return Ok(false) };
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
    slots[slot].next_send = m.offset() + 1;
    slots[slot].in_flight.push_back((m.offset(), false));
    Ok(true)
}

struct Slot {
    copied: Copied,
    /// Next source offset to hand to the producer / acknowledged by the target / committed.
    next_send: i64,
    acked_next: i64,
    committed: i64,
    sync_state: PartitionState,
    delayed_sync: Option<(i64, i64)>,
    /// Source offsets sent and not yet part of the acknowledged prefix, in send order, with
    /// whether each was acknowledged: progress only moves past a record once every record sent
    /// before it is acknowledged too, whatever order the producer reports them in.
    in_flight: VecDeque<(i64, bool)>,
}

impl Slot {
    fn acknowledge(&mut self, offset: i64) {
        match self.in_flight.front_mut() {
            Some(front) if front.0 == offset => front.1 = true,
            _ => {
                if let Some(e) = self.in_flight.iter_mut().find(|e| e.0 == offset) {
                    e.1 = true;
                }
            }
        }
        while let Some(&(o, true)) = self.in_flight.front() {
            self.acked_next = self.acked_next.max(o + 1);
            self.in_flight.pop_front();
        }
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
    source_admin: AdminClient<Context>,
    target_admin: AdminClient<Context>,
    slots: Vec<Slot>,
    index: HashMap<(String, i32), usize>,
    topic_configs: BTreeMap<String, Vec<(String, String)>>,
    failure: Option<String>,
    in_flight: i64,
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
        let producer: BaseProducer<TargetContext> = client_config(
            &target,
            Kind::Producer,
            &producer_id,
            // Idempotence keeps each partition's order through retries; no timeout: an
            // unreachable target pauses the flow instead of failing records.
            &[("enable.idempotence", "true"), ("acks", "all"), ("message.timeout.ms", "0"), ("linger.ms", "5"), ("statistics.interval.ms", "5000")],
        )
        .create_with_context(TargetContext { inner: ctx(StatsRole::TargetProducer), acks: Mutex::new(Vec::new()), refused: AtomicBool::new(false) })
        .with_context(|| format!("{} producer settings", flow.target))?;
        let sync_producer: BaseProducer<Context> = client_config(&source, Kind::Producer, &format!("{producer_id}-offset-syncs"), &[("acks", "all"), ("linger.ms", "5")])
            .create_with_context(ctx(StatsRole::None))
            .with_context(|| format!("{} producer settings", flow.source))?;
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
            source_admin,
            target_admin,
            slots: Vec::new(),
            index: HashMap::new(),
            topic_configs: BTreeMap::new(),
            failure: None,
            in_flight: 0,
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
                    Ok(m) => match send_record(&self.producer, &mut self.slots, &self.index, &m, &stop) {
                        Ok(true) => self.in_flight += 1,
                        Ok(false) => {}
                        Err(e) => self.failure = Some(e),
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
                            slot.acknowledge(a.source_offset);
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
                p.acked_next_offset = slot.acked_next;
                p.high_watermark = p.high_watermark.max(slot.acked_next);
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
        let mut tpl = TopicPartitionList::new();
        for s in self.slots.iter().filter(|s| s.acked_next > s.committed) {
            let _ = tpl.add_partition_offset(&s.copied.source_topic, s.copied.partition, Offset::Offset(s.acked_next));
        }
        if tpl.count() == 0 {
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
                for s in self.slots.iter_mut() {
                    s.committed = s.committed.max(s.acked_next);
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
        // Where each new partition resumes: its committed progress, else the beginning.
        let committed = if added.count() > 0 { self.consumer.committed_offsets(added, topics::TIMEOUT).context("reading committed progress")? } else { TopicPartitionList::new() };
        for c in added_slots {
            let start = match committed.find_partition(&c.source_topic, c.partition).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            };
            tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), topic = %c.source_topic, partition = c.partition, resume = start, "partition assigned");
            self.index.insert((c.source_topic.clone(), c.partition), self.slots.len());
            let committed_at = start.max(0);
            self.metrics.with(|m| {
                let p = m.partitions.entry((self.flow.source.clone(), self.flow.target.clone(), c.remote_topic.clone(), c.partition)).or_default();
                p.source_topic.clone_from(&c.source_topic);
                p.acked_next_offset = committed_at;
                p.high_watermark = p.high_watermark.max(committed_at);
            });
            self.slots.push(Slot { copied: c, next_send: start, acked_next: committed_at, committed: committed_at, sync_state: PartitionState::new(s.offset_lag_max), delayed_sync: None, in_flight: VecDeque::new() });
        }
        let mut tpl = TopicPartitionList::new();
        for slot in &self.slots {
            let offset = if slot.next_send >= 0 { Offset::Offset(slot.next_send) } else { Offset::Beginning };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Slot {
        let copied = Copied { source_topic: "t".into(), remote_topic: "a.t".into(), partition: 0 };
        Slot { copied, next_send: 0, acked_next: 0, committed: 0, sync_state: PartitionState::new(100), delayed_sync: None, in_flight: VecDeque::new() }
    }

    #[test]
    fn progress_is_the_acknowledged_prefix() {
        let mut s = slot();
        // offsets as sent (a gap: 12 was compacted away on the source)
        for o in [10, 11, 13, 14] {
            s.in_flight.push_back((o, false));
        }
        s.acknowledge(11);
        assert_eq!(s.acked_next, 0, "11 is acknowledged but 10 is not: nothing is safe to commit");
        s.acknowledge(10);
        assert_eq!(s.acked_next, 12);
        s.acknowledge(14);
        assert_eq!(s.acked_next, 12);
        s.acknowledge(13);
        assert_eq!(s.acked_next, 15);
        assert!(s.in_flight.is_empty());
    }
}
