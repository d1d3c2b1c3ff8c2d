//! The broker's shared state, handed to every request handler.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::lifecycle::LifecycleState;
use crate::cluster::ReplicaManager;
use crate::config::BrokerConfig;
use crate::controller::{Controller, ControllerError, ControllerReply, ControllerRequest, MetadataImage, TopicImage};
use crate::coordinator::{CoordinatorConfig, GroupCoordinator};
use crate::metrics::BrokerMetrics;

/// Everything a request handler may use.
pub struct Broker {
    pub config: BrokerConfig,
    pub controller: Arc<Controller>,
    /// This broker's registration with the controller.
    pub lifecycle: Arc<LifecycleState>,
    pub replicas: Arc<ReplicaManager>,
    pub coordinator: Arc<GroupCoordinator>,
    pub metrics: BrokerMetrics,
    /// The request log, when request.log.path is set.
    pub request_log: Option<crate::network::request_log::RequestLog>,
    /// Starts spans, when tracing is on (OTEL_* environment variables).
    pub tracer: Option<crate::telemetry::Tracer>,
    /// max.connections and max.connections.per.ip, shared by the listeners.
    pub connection_quotas: Arc<crate::network::ConnectionQuotas>,
    /// `num.io.threads` request handler slots.
    pub handlers: Arc<crate::network::handler_pool::HandlerPool>,
    /// Replication throttles: what this broker sends to followers that are catching up, and
    /// what it fetches as such a follower (see `cluster::replication_quota`).
    pub leader_quota: crate::cluster::replication_quota::ReplicationQuota,
    pub follower_quota: crate::cluster::replication_quota::ReplicationQuota,
    ready: AtomicBool,
    /// Replicas whose log could not be created or opened, to report offline to the controller.
    offline_reports: parking_lot::Mutex<Vec<(String, i32)>>,
    offline_reported: tokio::sync::Notify,
    /// Set when shutdown starts (BrokerState 7 from then on).
    shutting_down: AtomicBool,
}

impl Broker {
    pub fn new(
        config: BrokerConfig,
        controller: Arc<Controller>,
        replicas: Arc<ReplicaManager>,
        request_log: Option<crate::network::request_log::RequestLog>,
        tracer: Option<crate::telemetry::Tracer>,
    ) -> Arc<Self> {
        let profile = config.metrics_naming;
        let metrics_enabled = config.metrics_enabled;
        let connection_quotas = crate::network::ConnectionQuotas::new(config.max_connections, config.max_connections_per_ip);
        let worker_threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let handlers = crate::network::handler_pool::HandlerPool::new(config.num_io_threads);
        let coordinator = Arc::new(GroupCoordinator::new(CoordinatorConfig {
            offsets_partitions: config.offsets_topic_num_partitions,
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
            min_session_timeout: Duration::from_millis(config.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(config.group_max_session_timeout_ms),
            offsets_retention: Duration::from_secs(config.offsets_retention_minutes * 60),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
        }));
        Arc::new(Self {
            config,
            controller,
            lifecycle: Arc::new(LifecycleState::new()),
            replicas,
            coordinator,
            metrics: BrokerMetrics::new(metrics_enabled, profile, worker_threads),
            request_log,
            tracer,
            connection_quotas,
            handlers,
            leader_quota: crate::cluster::replication_quota::ReplicationQuota::new(std::time::Instant::now()),
            follower_quota: crate::cluster::replication_quota::ReplicationQuota::new(std::time::Instant::now()),
            ready: AtomicBool::new(false),
            offline_reports: Default::default(),
            offline_reported: Default::default(),
            shutting_down: AtomicBool::new(false),
        })
    }

    /// A broker config that may be changed at run time (IncrementalAlterConfigs on the broker
    /// resource): this broker's dynamic value, else the cluster-wide dynamic default, else
    /// the static configuration.
    pub fn dynamic_config(&self, key: &str) -> Option<String> {
        let image = self.image();
        image
            .dynamic_broker_config(self.node_id(), key)
            .map(str::to_string)
            .or_else(|| self.config.effective.get(key).map(|(v, _)| v.clone()))
    }

    /// The replication throttle rates now in force, applied to the quotas.
    pub fn refresh_replication_quotas(&self) {
        let now = std::time::Instant::now();
        let rate = |k: &str| self.dynamic_config(k).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(crate::cluster::replication_quota::UNLIMITED);
        self.leader_quota.set_rate(rate("leader.replication.throttled.rate"), now);
        self.follower_quota.set_rate(rate("follower.replication.throttled.rate"), now);
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.controller.image()
    }

    /// Ready once every log is recovered and the listeners are bound.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release)
    }

    /// Shutdown has begun: not ready, and BrokerState says so.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.set_ready(false);
    }

    /// Kafka's BrokerState: 1 starting (logs recovered, not yet serving: registering or
    /// fenced), 3 running, 7 shutting down. (2, recovering logs, is reported before a
    /// `Broker` exists: see `metrics::render_recovering`.)
    pub fn state_code(&self) -> u8 {
        if self.shutting_down.load(Ordering::Acquire) {
            7
        } else if self.is_ready() {
            3
        } else {
            1
        }
    }

    /// Brings local partitions in line with the metadata image this node has applied
    /// (start-up): the logs the metadata no longer has are set aside first, and a replica whose
    /// log cannot be created is offline rather than a reason not to start.
    pub fn apply_metadata(&self) {
        let image = self.controller.image();
        self.replicas.set_aside_strays(&image);
        self.replicas.apply_image(&image, &self.config);
        // Those that failed here and those whose log could not be opened.
        let offline = self.replicas.offline_replicas();
        self.metrics.metadata_apply_errors.fetch_add(offline.len() as u64, Ordering::Relaxed);
        self.queue_offline_report(offline.into_iter().map(|f| (f.topic, f.partition)).collect());
    }

    /// Why this broker could not apply its part of a committed change to `topic`'s partitions
    /// `indexes` (their logs could not be created or opened here), as a message for the
    /// client; None when it could (or hosts none of them).
    pub fn local_apply_failure(&self, topic: &str, topic_id: uuid::Uuid, indexes: std::ops::Range<i32>) -> Option<String> {
        let failed: Vec<crate::cluster::replica_manager::LocalFailure> =
            indexes.filter_map(|i| self.replicas.offline_replica(topic, i)).filter(|f| f.topic_id.is_nil() || f.topic_id == topic_id).collect();
        self.describe_failures(&failed, "the partitions are offline on this broker until it restarts")
    }

    /// The failures as one message naming each (the first few) and what follows from them.
    pub fn describe_failures(&self, failed: &[crate::cluster::replica_manager::LocalFailure], consequence: &str) -> Option<String> {
        let first = failed.first()?;
        let mut msg = format!("the change is committed in the metadata, but broker {} {first}", self.node_id());
        for f in failed.iter().skip(1).take(2) {
            msg.push_str(&format!("; {f}"));
        }
        if failed.len() > 3 {
            msg.push_str(&format!("; and {} more", failed.len() - 3));
        }
        msg.push_str(&format!("; {consequence}"));
        Some(msg)
    }

    /// A topic's metric handles, only for a topic the metadata has: series are never created
    /// for the names a client makes up (unbounded memory from unauthenticated input).
    pub fn topic_stats(&self, topic: &str) -> Option<Arc<crate::metrics::TopicStats>> {
        self.image().topic(topic).is_some().then(|| self.metrics.topic(topic))
    }

    /// The partition if this broker leads it; otherwise the Kafka error to answer with:
    /// NOT_LEADER_OR_FOLLOWER when the partition exists elsewhere (the client refreshes its
    /// metadata and retries), UNKNOWN_TOPIC_OR_PARTITION when it does not exist.
    pub fn leader_partition(&self, topic: &str, index: i32) -> Result<Arc<crate::cluster::Partition>, i16> {
        match self.replicas.partition(topic, index) {
            Some(p) if p.is_leader() => Ok(p),
            Some(_) => Err(crate::error_code::NOT_LEADER_OR_FOLLOWER),
            None if self.replicas.is_offline(topic, index) => Err(crate::error_code::KAFKA_STORAGE_ERROR),
            None if self.image().partition(topic, index).is_some() => Err(crate::error_code::NOT_LEADER_OR_FOLLOWER),
            None => Err(crate::error_code::UNKNOWN_TOPIC_OR_PARTITION),
        }
    }

    /// Tells the controller that this broker's replicas of `partitions` are offline (a failed
    /// log directory), retrying until it answers (with a growing pause, up to 5 s): it moves
    /// their leadership and ISR membership to the other replicas.
    pub async fn report_offline_replicas(&self, partitions: Vec<(String, i32)>) {
        if partitions.is_empty() {
            return;
        }
        // Until it is done: until then the controller may keep this broker as their leader.
        let mut attempt = 0u64;
        loop {
            let request = ControllerRequest::ReplicasOffline {
                broker_id: self.node_id(),
                broker_epoch: self.lifecycle.epoch.load(std::sync::atomic::Ordering::Acquire),
                partitions: partitions.clone(),
            };
            match self.controller.submit(request).await {
                Ok(_) => {
                    self.apply_metadata_now().await;
                    return;
                }
                Err(e) => {
                    if attempt % 10 == 0 {
                        tracing::warn!(target: "kafka.server.ReplicaManager", error = %e, attempt, "could not report offline replicas to the controller; retrying");
                    }
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(500 * attempt.min(10))).await;
                }
            }
        }
    }

    /// Sends an ISR change that a partition this broker leads asks for to the controller
    /// (AlterPartition), in the background. Once committed, the metadata brings it back to the
    /// partition; a refusal (a newer partition state, this broker no longer leading) is
    /// forgotten and proposed again from the state then.
    pub fn request_isr_change(&self, partition: Arc<crate::cluster::Partition>, change: crate::cluster::replication::IsrChange) {
        let controller = self.controller.clone();
        let broker_id = self.node_id();
        let broker_epoch = self.lifecycle.epoch.load(Ordering::Acquire);
        tokio::spawn(async move {
            let request = crate::controller::ControllerRequest::AlterPartition {
                broker_id,
                broker_epoch,
                topic_id: partition.topic_id,
                partition: partition.index,
                leader_epoch: partition.leader_epoch(),
                partition_epoch: change.partition_epoch,
                new_isr: change.new_isr.clone(),
            };
            if let Err(e) = controller.submit(request).await {
                tracing::info!(target: "state.change.logger", partition = %partition.name(), isr = ?change.new_isr, error = %e, "ISR change not made");
                partition.isr_change_failed();
            }
        });
    }

    /// Why this broker cannot serve `group` now, if it cannot: the group's coordinator is the
    /// leader of its `__consumer_offsets` partition (NOT_COORDINATOR sends the client back to
    /// FindCoordinator; COORDINATOR_NOT_AVAILABLE while the partition has no leader or the topic
    /// does not exist yet).
    pub fn coordinator_error(&self, group: &str) -> Option<i16> {
        let image = self.image();
        let partition = self.coordinator.partition_for(group);
        match image.partition(crate::coordinator::offsets_topic::TOPIC, partition) {
            None => Some(crate::error_code::COORDINATOR_NOT_AVAILABLE),
            // Led here, but its groups not loaded yet (the leadership is new): as Kafka, the
            // client retries rather than see no groups and no committed offsets.
            Some(p) if p.leader == self.node_id() && !self.coordinator.is_loaded(partition) => {
                Some(crate::error_code::COORDINATOR_LOAD_IN_PROGRESS)
            }
            Some(p) if p.leader == self.node_id() => None,
            Some(p) if p.leader < 0 => Some(crate::error_code::COORDINATOR_NOT_AVAILABLE),
            Some(_) => Some(crate::error_code::NOT_COORDINATOR),
        }
    }

    /// Creates a topic with the broker defaults (auto-creation on Metadata), through the
    /// active controller, and opens the logs this broker hosts.
    pub async fn auto_create_topic(&self, name: &str) -> Result<TopicImage, ControllerError> {
        self.create_topic(name, self.config.num_partitions, self.config.default_replication_factor, Default::default()).await
    }

    /// Creates a topic through the active controller and applies the result locally.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<TopicImage, ControllerError> {
        let reply = self
            .controller
            .submit(ControllerRequest::CreateTopic {
                name: name.to_string(),
                partitions,
                replication_factor,
                assignments: None,
                configs,
                validate_only: false,
            })
            .await?;
        let ControllerReply::Topic(topic) = reply else {
            return Err(ControllerError::Storage(format!("unexpected answer to CreateTopics: {reply:?}")));
        };
        // `submit` answers once this node has applied the change: open its logs now.
        self.apply_metadata_now().await;
        match self.local_apply_failure(&topic.name, topic.id, 0..topic.partitions.len() as i32) {
            Some(why) => Err(ControllerError::NotAppliedLocally(why)),
            None => Ok(topic),
        }
    }

    /// Applies the current image on a blocking thread (log directories are created there).
    pub async fn apply_metadata_now(&self) {
        let image = self.controller.image();
        // A deleted topic's per-topic series go, as Kafka removes its MBeans.
        self.metrics.retain_topics(|topic| image.topic(topic).is_some());
        let replicas = self.replicas.clone();
        let config = self.config.clone();
        let coordinator = self.coordinator.clone();
        let failed = match tokio::task::spawn_blocking(move || {
            let failed = replicas.apply_image(&image, &config);
            // Groups follow the leadership of their __consumer_offsets partitions.
            coordinator.sync_with_leadership(&replicas);
            failed
        })
        .await
        {
            Ok(failed) => failed,
            Err(e) => {
                crate::metrics::inc(&self.metrics.metadata_apply_errors);
                tracing::error!(target: "state.change.logger", error = %e, "the metadata apply task failed");
                return;
            }
        };
        if failed.is_empty() {
            return;
        }
        self.metrics.metadata_apply_errors.fetch_add(failed.len() as u64, Ordering::Relaxed);
        // A replica whose log could not be created is offline here: the controller moves its
        // leadership and ISR membership to the other replicas (Kafka's offline replica).
        let offline: Vec<(String, i32)> = failed.iter().filter(|f| f.action != "delete").map(|f| (f.topic.clone(), f.partition)).collect();
        self.queue_offline_report(offline);
    }

    /// Queues replicas to report offline to the controller (`background::offline_report_loop`
    /// sends them once this broker is unfenced, so that its unfencing does not hand their
    /// leadership straight back).
    pub fn queue_offline_report(&self, partitions: Vec<(String, i32)>) {
        if partitions.is_empty() {
            return;
        }
        self.offline_reports.lock().extend(partitions);
        self.offline_reported.notify_one();
    }

    /// The replicas queued by `queue_offline_report`, waiting for some if none are.
    pub async fn next_offline_report(&self) -> Vec<(String, i32)> {
        loop {
            let queued = std::mem::take(&mut *self.offline_reports.lock());
            if !queued.is_empty() {
                return queued;
            }
            self.offline_reported.notified().await;
        }
    }
}
