//! The broker's shared state, handed to every request handler.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::ReplicaManager;
use crate::config::BrokerConfig;
use crate::controller::{Controller, ControllerError, MetadataImage, TopicImage};
use crate::coordinator::{CoordinatorConfig, GroupCoordinator};
use crate::metrics::BrokerMetrics;

/// Everything a request handler may use.
pub struct Broker {
    pub config: BrokerConfig,
    pub controller: Controller,
    pub replicas: ReplicaManager,
    pub coordinator: GroupCoordinator,
    pub metrics: BrokerMetrics,
    /// The request log, when request.log.path is set.
    pub request_log: Option<crate::network::request_log::RequestLog>,
    /// Starts spans, when tracing is on (OTEL_* environment variables).
    pub tracer: Option<crate::telemetry::Tracer>,
    ready: AtomicBool,
}

impl Broker {
    pub fn new(
        config: BrokerConfig,
        controller: Controller,
        replicas: ReplicaManager,
        request_log: Option<crate::network::request_log::RequestLog>,
        tracer: Option<crate::telemetry::Tracer>,
    ) -> Arc<Self> {
        let profile = config.metrics_naming;
        let metrics_enabled = config.metrics_enabled;
        let worker_threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let coordinator = GroupCoordinator::new(CoordinatorConfig {
            offsets_partitions: config.offsets_topic_num_partitions,
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
            min_session_timeout: Duration::from_millis(config.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(config.group_max_session_timeout_ms),
            offsets_retention: Duration::from_secs(config.offsets_retention_minutes * 60),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
        });
        Arc::new(Self {
            config,
            controller,
            replicas,
            coordinator,
            metrics: BrokerMetrics::new(metrics_enabled, profile, worker_threads),
            request_log,
            tracer,
            ready: AtomicBool::new(false),
        })
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

    /// Brings local partitions in line with the controller's current image.
    pub fn apply_metadata(&self) -> Result<(), crate::cluster::PartitionError> {
        self.replicas.apply_image(&self.controller.image(), &self.config)
    }

    /// Creates a topic with the broker defaults (auto-creation on Metadata/Produce).
    pub fn auto_create_topic(&self, name: &str) -> Result<TopicImage, ControllerError> {
        let topic = self.controller.create_topic(
            name,
            self.config.num_partitions,
            self.config.default_replication_factor,
            Default::default(),
            false,
        )?;
        if let Err(e) = self.apply_metadata() {
            tracing::error!(target: "state.change.logger", topic = name, error = %e, "could not create the logs of an auto-created topic");
        }
        Ok(topic)
    }
}
