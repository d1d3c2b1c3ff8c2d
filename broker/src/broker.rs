//! The broker's shared state, handed to every request handler.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cluster::ReplicaManager;
use crate::config::BrokerConfig;
use crate::controller::{Controller, ControllerError, MetadataImage, TopicImage};
use crate::metrics::BrokerMetrics;

/// Everything a request handler may use.
pub struct Broker {
    pub config: BrokerConfig,
    pub controller: Controller,
    pub replicas: ReplicaManager,
    pub metrics: BrokerMetrics,
    ready: AtomicBool,
}

impl Broker {
    pub fn new(config: BrokerConfig, controller: Controller, replicas: ReplicaManager) -> Arc<Self> {
        Arc::new(Self { config, controller, replicas, metrics: BrokerMetrics::default(), ready: AtomicBool::new(false) })
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
