//! One flow's MirrorHeartbeatConnector and MirrorCheckpointConnector: heartbeats to the target's
//! `heartbeats` topic; for each consumer group of the source that `groups` admits, its committed
//! offsets on the copied partitions translated through the offset syncs into checkpoints on the
//! target's `<source>.checkpoints.internal`; and with sync.group.offsets.enabled, those translated
//! offsets committed to the same group on the target while it has no active members there, and
//! only forward (never past records the group had not read, never back).
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use rdkafka::admin::AdminClient;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::clients::{client_config, Context, Kind, StatsRole};
use crate::config::{Cluster, Flow};
use crate::flow::{progress_group, Copied, Shared};
use crate::formats::{Checkpoint, Heartbeat};
use crate::metrics::{now_ms, Metrics};
use crate::policy::{should_checkpoint_group, ReplicationPolicy, HEARTBEATS_TOPIC};
use crate::topics;

pub struct CheckpointLoop {
    flow: Flow,
    source: Cluster,
    target: Cluster,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    producer: BaseProducer<Context>,
    source_client: BaseConsumer<Context>,
    target_client: BaseConsumer<Context>,
    target_admin: AdminClient<Context>,
    group_readers: HashMap<String, BaseConsumer<Context>>,
    group_writers: HashMap<String, BaseConsumer<Context>>,
    /// (group, remote topic, partition) -> (upstream, downstream) last emitted.
    emitted: HashMap<(String, String, i32), (i64, i64)>,
}

impl CheckpointLoop {
    pub fn new(flow: Flow, source: Cluster, target: Cluster, metrics: Arc<Metrics>, shared: Arc<Shared>) -> anyhow::Result<Self> {
        let ctx = || Context { metrics: metrics.clone(), source: flow.source.clone(), target: flow.target.clone(), role: StatsRole::None };
        let id = format!("connector-producer-MirrorCheckpointConnector-{}->{}-0", flow.source, flow.target);
        let producer = client_config(&target, Kind::Producer, &id, &[("acks", "all"), ("linger.ms", "5")])
            .create_with_context(ctx())
            .with_context(|| format!("{} producer settings", flow.target))?;
        let source_client = client_config(&source, Kind::Consumer, &format!("{id}-groups"), &[("group.id", "lantern-mirror-admin")]).create_with_context(ctx())?;
        let target_client = client_config(&target, Kind::Consumer, &format!("{id}-groups"), &[("group.id", "lantern-mirror-admin")]).create_with_context(ctx())?;
        let target_admin = client_config(&target, Kind::Admin, &format!("{id}-admin"), &[]).create_with_context(ctx())?;
        Ok(CheckpointLoop {
            flow,
            source,
            target,
            metrics,
            shared,
            producer,
            source_client,
            target_client,
            target_admin,
            group_readers: HashMap::new(),
            group_writers: HashMap::new(),
            emitted: HashMap::new(),
        })
    }

    pub fn run(mut self, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        let s = self.flow.settings.clone();
        if s.emit_heartbeats_enabled {
            topics::create_internal_topic(&self.target_admin, HEARTBEATS_TOPIC, s.heartbeats_topic_replication_factor).map_err(|e| anyhow!(e))?;
        }
        if s.emit_checkpoints_enabled {
            let name = ReplicationPolicy::checkpoints_topic(&self.flow.source);
            topics::create_internal_topic(&self.target_admin, &name, s.checkpoints_topic_replication_factor).map_err(|e| anyhow!(e))?;
        }
        let now = Instant::now();
        let (mut next_heartbeat, mut next_checkpoint, mut next_group_sync) = (now, now + s.emit_checkpoints_interval, now + s.sync_group_offsets_interval);
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if s.emit_heartbeats_enabled && now >= next_heartbeat {
                self.heartbeat();
                next_heartbeat = now + s.emit_heartbeats_interval.max(Duration::from_millis(100));
            }
            let sync_due = s.sync_group_offsets_enabled && now >= next_group_sync;
            if (s.emit_checkpoints_enabled && now >= next_checkpoint) || sync_due {
                if let Err(e) = self.checkpoint_round(sync_due) {
                    tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), error = %e, "checkpoint round failed; will retry");
                }
                next_checkpoint = now + s.emit_checkpoints_interval.max(Duration::from_millis(100));
                if sync_due {
                    next_group_sync = now + s.sync_group_offsets_interval.max(Duration::from_millis(100));
                }
            }
            self.producer.poll(Duration::from_millis(100));
        }
        let _ = self.producer.flush(Duration::from_secs(5));
        Ok(())
    }

    fn heartbeat(&mut self) {
        let hb = Heartbeat { source_cluster_alias: self.flow.source.clone(), target_cluster_alias: self.flow.target.clone(), timestamp: now_ms() as i64 };
        let (k, v) = (hb.key(), hb.value());
        match self.producer.send(BaseRecord::<[u8], [u8]>::to(HEARTBEATS_TOPIC).partition(0).key(&k[..]).payload(&v[..])) {
            Ok(()) => self.metrics.with(|m| {
                if let Some(f) = m.flows.get_mut(&(self.flow.source.clone(), self.flow.target.clone())) {
                    f.heartbeats += 1;
                }
            }),
            Err((e, _)) => tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), error = %e, "heartbeat not sent"),
        }
    }

    fn checkpoint_round(&mut self, sync_groups: bool) -> anyhow::Result<()> {
        let copied: Vec<Copied> = self.shared.partitions.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if copied.is_empty() {
            return Ok(());
        }
        let own = progress_group(&self.flow);
        let groups = self.source_client.fetch_group_list(None, topics::TIMEOUT).context("listing source groups")?;
        let names: Vec<String> = groups.groups().iter().map(|g| g.name().to_string()).filter(|g| *g != own && g != "lantern-mirror-admin" && should_checkpoint_group(&self.flow.settings, g)).collect();
        let topic = ReplicationPolicy::checkpoints_topic(&self.flow.source);
        let mut emitted = 0u64;
        for group in names {
            let read_at = now_ms();
            let reader = match self.group_readers.get(&group) {
                Some(r) => r,
                None => {
                    let c = client_config(&self.source, Kind::Consumer, "lantern-mirror-checkpoints", &[("group.id", &group), ("enable.auto.commit", "false")]).create_with_context(self.ctx())?;
                    self.group_readers.entry(group.clone()).or_insert(c)
                }
            };
            let mut tpl = TopicPartitionList::new();
            for c in &copied {
                tpl.add_partition(&c.source_topic, c.partition);
            }
            let committed = reader.committed_offsets(tpl, topics::TIMEOUT).with_context(|| format!("offsets of group {group}"))?;
            let mut checkpoints = Vec::new();
            {
                let store = self.shared.syncs.lock().unwrap_or_else(|e| e.into_inner());
                for c in &copied {
                    let Some(Offset::Offset(upstream)) = committed.find_partition(&c.source_topic, c.partition).map(|e| e.offset()) else { continue };
                    let Some(downstream) = store.translate_downstream(&c.source_topic, c.partition, upstream) else { continue };
                    checkpoints.push(Checkpoint { group: group.clone(), topic: c.remote_topic.clone(), partition: c.partition, upstream_offset: upstream, downstream_offset: downstream, metadata: String::new() });
                }
            }
            for cp in &checkpoints {
                let key = (cp.group.clone(), cp.topic.clone(), cp.partition);
                if self.emitted.get(&key) == Some(&(cp.upstream_offset, cp.downstream_offset)) {
                    continue;
                }
                if self.flow.settings.emit_checkpoints_enabled {
                    let (k, v) = (cp.key(), cp.value());
                    if let Err((e, _)) = self.producer.send(BaseRecord::<[u8], [u8]>::to(&topic).partition(0).key(&k[..]).payload(&v[..])) {
                        tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), error = %e, "checkpoint not sent");
                        continue;
                    }
                }
                self.emitted.insert(key, (cp.upstream_offset, cp.downstream_offset));
                emitted += 1;
            }
            // Checkpoints are acknowledged before their latency is measured and the group synced.
            self.producer.flush(Duration::from_secs(15)).context("checkpoints not acknowledged")?;
            let latency = now_ms().saturating_sub(read_at) as f64;
            self.metrics.with(|m| {
                for cp in &checkpoints {
                    m.checkpoints.entry((self.flow.source.clone(), self.flow.target.clone(), cp.group.clone(), cp.topic.clone(), cp.partition)).or_default().record(now_ms(), latency);
                }
            });
            if sync_groups && !checkpoints.is_empty() {
                if let Err(e) = self.sync_group(&group, &checkpoints) {
                    tracing::warn!(target: "lantern.mirror", flow = %self.flow.name(), group = %group, error = %e, "group offset sync failed");
                }
            }
        }
        let key = (self.flow.source.clone(), self.flow.target.clone());
        self.metrics.with(|m| {
            if let Some(f) = m.flows.get_mut(&key) {
                f.checkpoints += emitted;
                f.last_checkpoint_ms = now_ms();
            }
        });
        Ok(())
    }

    /// Commits the translated offsets to the group on the target, if it has no members there,
    /// for partitions where that moves the group forward.
    fn sync_group(&mut self, group: &str, checkpoints: &[Checkpoint]) -> anyhow::Result<()> {
        let list = self.target_client.fetch_group_list(Some(group), topics::TIMEOUT).context("describing the target group")?;
        if let Some(g) = list.groups().iter().find(|g| g.name() == group) {
            if !g.members().is_empty() || !matches!(g.state(), "Empty" | "Dead" | "") {
                tracing::debug!(target: "lantern.mirror", group, state = g.state(), "group active on the target: not synced");
                return Ok(());
            }
        }
        let writer = match self.group_writers.get(group) {
            Some(w) => w,
            None => {
                let c = client_config(&self.target, Kind::Consumer, "lantern-mirror-group-sync", &[("group.id", group), ("enable.auto.commit", "false")]).create_with_context(self.ctx())?;
                self.group_writers.entry(group.to_string()).or_insert(c)
            }
        };
        let mut current = TopicPartitionList::new();
        for cp in checkpoints {
            current.add_partition(&cp.topic, cp.partition);
        }
        let current = writer.committed_offsets(current, topics::TIMEOUT).context("target group offsets")?;
        let mut tpl = TopicPartitionList::new();
        for cp in checkpoints {
            let have = match current.find_partition(&cp.topic, cp.partition).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            };
            if cp.downstream_offset > have {
                tpl.add_partition_offset(&cp.topic, cp.partition, Offset::Offset(cp.downstream_offset))?;
            }
        }
        if tpl.count() > 0 {
            writer.commit(&tpl, CommitMode::Sync).context("committing translated offsets")?;
            tracing::info!(target: "lantern.mirror", flow = %self.flow.name(), group, partitions = tpl.count(), "group offsets synced to the target");
        }
        Ok(())
    }

    fn ctx(&self) -> Context {
        Context { metrics: self.metrics.clone(), source: self.flow.source.clone(), target: self.flow.target.clone(), role: StatsRole::None }
    }
}
