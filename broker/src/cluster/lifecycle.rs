//! The broker's side of membership (Kafka's BrokerLifecycleManager): register with the active
//! controller, then heartbeat every `broker.heartbeat.interval.ms`. The controller unfences the
//! broker once it has caught up with the metadata, and fences it when heartbeats stop.
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::controller::{Controller, ControllerError, ControllerReply, ControllerRequest, Endpoint};

/// What the rest of the broker needs to know about its registration.
#[derive(Default)]
pub struct LifecycleState {
    /// The broker epoch of the current registration; -1 before the first.
    pub epoch: AtomicI64,
    /// Fenced until the controller says otherwise.
    pub unfenced: AtomicBool,
}

impl LifecycleState {
    pub fn new() -> Self {
        Self { epoch: AtomicI64::new(-1), unfenced: AtomicBool::new(false) }
    }
}

/// The endpoints this broker registers: its advertised listeners, controller ones excluded.
pub fn endpoints(config: &BrokerConfig) -> Vec<Endpoint> {
    config
        .advertised_listeners
        .iter()
        .filter(|l| !config.cluster.controller_listener_names.contains(&l.name))
        .map(|l| Endpoint { name: l.name.clone(), host: l.host.clone(), port: l.port })
        .collect()
}

/// Registers until the controller accepts, logging while the quorum is not there yet.
///
/// DUPLICATE_BROKER_REGISTRATION means a live session holds this node id. After a quick
/// restart that is this node's previous incarnation, whose session expires within
/// `broker.session.timeout.ms`: wait for it (as Kafka's brokers retry). If another process
/// keeps heartbeating with this id for two sessions, it is a real duplicate: an error, and the
/// caller stops start-up.
pub async fn register(controller: &Controller, config: &BrokerConfig, incarnation: Uuid, state: &LifecycleState) -> Result<i64, ControllerError> {
    let request = ControllerRequest::RegisterBroker {
        broker_id: config.node_id,
        incarnation_id: incarnation,
        endpoints: endpoints(config),
        rack: config.rack.clone(),
    };
    let started = std::time::Instant::now();
    let mut warned = 0u64;
    let mut duplicate_since: Option<std::time::Instant> = None;
    let patience = Duration::from_millis(2 * config.cluster.session_timeout_ms + 1000);
    loop {
        match controller.submit(request.clone()).await {
            Ok(ControllerReply::Registered { broker_epoch }) => {
                state.epoch.store(broker_epoch, Ordering::Release);
                tracing::info!(target: "kafka.server.BrokerLifecycleManager", broker_epoch, incarnation = %incarnation, "registered with the controller");
                return Ok(broker_epoch);
            }
            Ok(other) => tracing::warn!(target: "kafka.server.BrokerLifecycleManager", reply = ?other, "unexpected answer to the registration"),
            Err(e @ ControllerError::DuplicateBrokerRegistration(..)) => {
                let since = *duplicate_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= patience {
                    return Err(e);
                }
                if since.elapsed() < Duration::from_millis(150) {
                    tracing::info!(target: "kafka.server.BrokerLifecycleManager", error = %e,
                        "node id still registered by a live session (a previous incarnation of this node?); waiting for it to expire");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                let waited = started.elapsed().as_secs();
                if waited / 5 > warned {
                    warned = waited / 5;
                    tracing::warn!(target: "kafka.server.BrokerLifecycleManager", waited_s = waited, error = %e,
                        "still waiting to register: is a majority of controller.quorum.voters running and reachable?");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Heartbeats until shutdown, re-registering if the controller no longer knows this
/// registration.
pub async fn heartbeat_loop(
    controller: Arc<Controller>,
    config: BrokerConfig,
    incarnation: Uuid,
    state: Arc<LifecycleState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(config.cluster.heartbeat_interval_ms);
    // An answer that takes longer than the session is useless: the broker is fenced anyway.
    let timeout = Duration::from_millis(config.cluster.session_timeout_ms / 2).max(interval);
    let session = Duration::from_millis(config.cluster.session_timeout_ms);
    let mut last_answer = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let epoch = state.epoch.load(Ordering::Acquire);
        let request = ControllerRequest::BrokerHeartbeat {
            broker_id: config.node_id,
            broker_epoch: epoch,
            metadata_offset: controller.image().last_offset,
            want_shutdown: false,
        };
        match controller.submit_within(request, timeout).await {
            Ok(ControllerReply::Heartbeat { fenced, .. }) => {
                last_answer = std::time::Instant::now();
                let was = state.unfenced.swap(!fenced, Ordering::AcqRel);
                if was == fenced {
                    tracing::info!(target: "kafka.server.BrokerLifecycleManager", fenced, broker_epoch = epoch, "controller changed this broker's state");
                }
            }
            Ok(other) => tracing::warn!(target: "kafka.server.BrokerLifecycleManager", reply = ?other, "unexpected answer to a heartbeat"),
            Err(ControllerError::StaleBrokerEpoch { .. }) => {
                state.unfenced.store(false, Ordering::Release);
                tracing::warn!(target: "kafka.server.BrokerLifecycleManager", broker_epoch = epoch, "the controller no longer knows this registration; registering again");
                let registered = tokio::select! {
                    r = register(&controller, &config, incarnation, &state) => r,
                    _ = shutdown.changed() => return,
                };
                if let Err(e) = registered {
                    tracing::error!(target: "kafka.server.BrokerLifecycleManager", error = %e, "cannot register again");
                }
            }
            Err(e) => {
                tracing::debug!(target: "kafka.server.BrokerLifecycleManager", error = %e, "heartbeat failed; retrying");
                // No answer for a whole session: the controller has fenced this broker by now,
                // so stop claiming to be ready (clients are told to go elsewhere).
                if last_answer.elapsed() >= session && state.unfenced.swap(false, Ordering::AcqRel) {
                    tracing::warn!(target: "kafka.server.BrokerLifecycleManager", session_ms = session.as_millis() as u64,
                        "no heartbeat answer for a whole session: considering this broker fenced");
                }
            }
        }
    }
}
