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
    /// Set at SIGTERM: heartbeats ask the controller to move this broker's leaderships away
    /// (Kafka's controlled shutdown).
    pub want_shutdown: AtomicBool,
    /// The controller's answer: nothing is led here any more, the broker may stop.
    pub may_shut_down: AtomicBool,
}

impl LifecycleState {
    pub fn new() -> Self {
        Self {
            epoch: AtomicI64::new(-1),
            unfenced: AtomicBool::new(false),
            want_shutdown: AtomicBool::new(false),
            may_shut_down: AtomicBool::new(false),
        }
    }
}

/// Controlled shutdown: asks the controller (through the heartbeats) to move this broker's
/// leaderships to other in-sync replicas, and waits until it says the broker may stop, or
/// for `patience`. Returns whether the controller agreed in time.
pub async fn controlled_shutdown(state: &LifecycleState, patience: Duration) -> bool {
    state.want_shutdown.store(true, Ordering::Release);
    let deadline = tokio::time::Instant::now() + patience;
    while tokio::time::Instant::now() < deadline {
        if state.may_shut_down.load(Ordering::Acquire) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The endpoints this broker registers: its advertised listeners, controller ones excluded,
/// then its REST proxy's first listener (named [`crate::rest::REST_ENDPOINT`], last so that it
/// is never a client's fallback endpoint), which the other brokers' proxies forward a consumer
/// instance's requests to.
pub fn endpoints(config: &BrokerConfig) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = config
        .advertised_listeners
        .iter()
        .filter(|l| !config.cluster.controller_listener_names.contains(&l.name))
        .map(|l| Endpoint { name: l.name.clone(), host: l.host.clone(), port: l.port })
        .collect();
    let fallback_host = out.first().map(|e| e.host.clone());
    if let Some(rest) = crate::rest::advertised_rest_endpoint(&config.rest, fallback_host.as_deref()) {
        out.push(rest);
    }
    out
}

/// How long a registration refused as a duplicate is retried before start-up stops: two
/// sessions (a newly elected controller starts every session afresh) and a second.
pub fn duplicate_patience(config: &BrokerConfig) -> Duration {
    Duration::from_millis(2 * config.cluster.session_timeout_ms + 1000)
}

/// Registers until the controller accepts, logging while the quorum is not there yet.
///
/// DUPLICATE_BROKER_REGISTRATION means a live session holds this node id. After a quick
/// restart that is this node's previous incarnation, whose session expires within
/// `broker.session.timeout.ms`: wait for it (as Kafka's brokers retry). If another process
/// keeps heartbeating with this id for [`duplicate_patience`], it is a real duplicate: an
/// error, and the caller stops start-up.
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
    let patience = duplicate_patience(config);
    loop {
        let outcome = match controller.submit(request.clone()).await {
            // No leader has contacted this node (yet), or the one it last heard of no longer
            // leads and nobody has told it (a second process with another node's id is never
            // contacted by the leader): ask the voters themselves.
            Err(ControllerError::NotController(_)) => {
                controller.ask_voters(&request, Duration::from_millis(config.cluster.election_timeout_ms)).await
            }
            other => other,
        };
        match outcome {
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
/// registration, and stopping if an operator unregistered it.
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
        // In a controlled shutdown, ask again at once rather than after an interval.
        let pause = if state.want_shutdown.load(Ordering::Acquire) { Duration::from_millis(50) } else { interval };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
        let epoch = state.epoch.load(Ordering::Acquire);
        let want_shutdown = state.want_shutdown.load(Ordering::Acquire);
        let request = ControllerRequest::BrokerHeartbeat {
            broker_id: config.node_id,
            broker_epoch: epoch,
            metadata_offset: controller.image().last_offset,
            want_shutdown,
        };
        match controller.submit_within(request, timeout).await {
            Ok(ControllerReply::Heartbeat { fenced, should_shut_down }) => {
                last_answer = std::time::Instant::now();
                if want_shutdown && should_shut_down {
                    state.may_shut_down.store(true, Ordering::Release);
                }
                let was = state.unfenced.swap(!fenced, Ordering::AcqRel);
                if was == fenced {
                    tracing::info!(target: "kafka.server.BrokerLifecycleManager", fenced, broker_epoch = epoch, "controller changed this broker's state");
                }
            }
            Ok(other) => tracing::warn!(target: "kafka.server.BrokerLifecycleManager", reply = ?other, "unexpected answer to a heartbeat"),
            // The active controller has no registration of this node at all: UnregisterBroker.
            Err(ControllerError::BrokerNotRegistered(_)) => {
                state.unfenced.store(false, Ordering::Release);
                if config.cluster.roles.controller {
                    // Still a voter of the metadata quorum: keep that part running.
                    tracing::warn!(target: "kafka.server.BrokerLifecycleManager", broker_epoch = epoch,
                        "this broker was unregistered (lantern-admin broker remove); it no longer serves as a broker, the controller keeps running");
                    return;
                }
                tracing::warn!(target: "kafka.server.BrokerLifecycleManager", broker_epoch = epoch,
                    "this broker was unregistered (lantern-admin broker remove): shutting down; start it again to rejoin the cluster");
                std::process::exit(0);
            }
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
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use super::*;
    use crate::config::Origin;

    const SESSION_MS: u64 = 300;

    fn config(dir: &std::path::Path, extra: &[(&str, String)]) -> BrokerConfig {
        let mut raw: BTreeMap<String, (String, Origin)> = [
            ("log.dirs", dir.to_str().unwrap().to_string()),
            ("broker.heartbeat.interval.ms", "50".to_string()),
            ("broker.session.timeout.ms", SESSION_MS.to_string()),
            ("controller.quorum.election.timeout.ms", "200".to_string()),
            ("controller.quorum.request.timeout.ms", "300".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), (v, Origin::Flag)))
        .collect();
        for (k, v) in extra {
            raw.insert(k.to_string(), (v.clone(), Origin::Flag));
        }
        BrokerConfig::from_properties(raw).unwrap()
    }

    async fn standalone(dir: &std::path::Path) -> (BrokerConfig, Arc<Controller>) {
        let config = config(dir, &[]);
        let controller = Controller::start(&config).await.unwrap();
        (config, controller)
    }

    /// Keeps `broker_id`'s registration alive (unfenced) on `controller` until aborted.
    async fn live_broker(controller: &Arc<Controller>, broker_id: i32) -> tokio::task::JoinHandle<()> {
        let reg = ControllerRequest::RegisterBroker { broker_id, incarnation_id: Uuid::new_v4(), endpoints: vec![], rack: None };
        let Ok(ControllerReply::Registered { broker_epoch }) = controller.submit(reg).await else { panic!("registration failed") };
        let hb = ControllerRequest::BrokerHeartbeat { broker_id, broker_epoch, metadata_offset: broker_epoch, want_shutdown: false };
        assert!(matches!(controller.submit(hb.clone()).await.unwrap(), ControllerReply::Heartbeat { fenced: false, .. }));
        let controller = controller.clone();
        tokio::spawn(async move {
            loop {
                let _ = controller.submit(hb.clone()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_right_after_a_crash_registers_once_the_old_session_expires() {
        let dir = tempfile::tempdir().unwrap();
        let (config, controller) = standalone(dir.path()).await;
        let crashed = LifecycleState::new();
        let old_epoch = register(&controller, &config, Uuid::new_v4(), &crashed).await.unwrap();
        let hb = ControllerRequest::BrokerHeartbeat { broker_id: 1, broker_epoch: old_epoch, metadata_offset: old_epoch, want_shutdown: false };
        let unfenced = controller.submit(hb).await.unwrap();
        assert!(matches!(unfenced, ControllerReply::Heartbeat { fenced: false, .. }), "{unfenced:?}");
        // The incarnation crashes (no more heartbeats) and its successor starts at once.
        let started = Instant::now();
        let restarted = LifecycleState::new();
        let epoch = register(&controller, &config, Uuid::new_v4(), &restarted)
            .await
            .expect("a restart after a crash must not be refused as a duplicate");
        assert!(epoch > old_epoch);
        assert!(started.elapsed() < duplicate_patience(&config), "took {:?}", started.elapsed());
        controller.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_process_no_leader_talks_to_learns_from_the_voters_that_its_id_is_taken() {
        // The active controller (node 1) knows a live broker 2; a second "node 2" lists node 1
        // among its voters, but no leader ever contacts it (its voter address is the first
        // node 2's), so its own quorum never tells it who leads.
        let dir = tempfile::tempdir().unwrap();
        let (_, active) = standalone(&dir.path().join("active")).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let active_addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let handler = active.clone();
        tokio::spawn(crate::controller::quorum::rpc::serve(listener, handler, active.stats.rpc.clone(), std::time::Duration::from_secs(600), stopped));
        let first = live_broker(&active, 2).await;

        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let second = config(
            &dir.path().join("second"),
            &[
                ("node.id", "2".into()),
                ("listeners", format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{unused}")),
                ("controller.quorum.voters", format!("1@{active_addr},2@127.0.0.1:{unused}")),
            ],
        );
        let controller = Controller::start(&second).await.unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), register(&controller, &second, Uuid::new_v4(), &LifecycleState::new())).await;
        let e = outcome.expect("the second node 2 was still waiting to register after 10 s").unwrap_err();
        assert!(matches!(e, ControllerError::DuplicateBrokerRegistration(2, _)), "{e:?}");
        first.abort();
        let _ = stop.send(true);
        controller.shutdown().await;
        active.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_live_broker_with_the_same_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (config, controller) = standalone(dir.path()).await;
        let live = LifecycleState::new();
        let epoch = register(&controller, &config, Uuid::new_v4(), &live).await.unwrap();
        let hb = ControllerRequest::BrokerHeartbeat { broker_id: 1, broker_epoch: epoch, metadata_offset: epoch, want_shutdown: false };
        assert!(matches!(controller.submit(hb).await.unwrap(), ControllerReply::Heartbeat { fenced: false, .. }));
        let heartbeats = {
            let controller = controller.clone();
            let broker_id = config.node_id;
            tokio::spawn(async move {
                loop {
                    let hb = ControllerRequest::BrokerHeartbeat { broker_id, broker_epoch: epoch, metadata_offset: epoch, want_shutdown: false };
                    let _ = controller.submit(hb).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let started = Instant::now();
        let e = register(&controller, &config, Uuid::new_v4(), &LifecycleState::new()).await.unwrap_err();
        assert!(matches!(e, ControllerError::DuplicateBrokerRegistration(1, _)), "{e:?}");
        assert!(started.elapsed() >= duplicate_patience(&config));
        heartbeats.abort();
        controller.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broker_in_controlled_shutdown_cannot_rejoin_an_isr_even_under_a_new_controller() {
        // Found under load: the broker that had just moved its leadership away fetched once
        // more as a caught-up follower; the new leader asked to add it back, the next
        // controller (the old one had been that broker) did not know it was shutting down and
        // agreed, and acks=all waited for a stopped broker until its session expired.
        let dir = tempfile::tempdir().unwrap();
        let (config, controller) = standalone(dir.path()).await;
        let mut beats = Vec::new();
        for id in [1, 2, 3] {
            beats.push(live_broker(&controller, id).await);
        }
        let create = ControllerRequest::CreateTopic {
            name: "t".into(),
            partitions: 1,
            replication_factor: 3,
            assignments: Some(vec![vec![2, 1, 3]]),
            configs: Default::default(),
            validate_only: false,
        };
        controller.submit(create).await.unwrap();
        let epoch2 = controller.image().brokers[&2].epoch;
        beats[1].abort();
        let shutdown = ControllerRequest::BrokerHeartbeat { broker_id: 2, broker_epoch: epoch2, metadata_offset: epoch2, want_shutdown: true };
        let reply = controller.submit(shutdown).await.unwrap();
        assert!(matches!(reply, ControllerReply::Heartbeat { should_shut_down: true, .. }), "{reply:?}");
        let image = controller.image();
        let p = image.partition("t", 0).unwrap().clone();
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 3]));
        assert!(image.brokers[&2].in_controlled_shutdown && !image.is_isr_eligible(2));
        let topic_id = image.topic("t").unwrap().id;
        let epoch1 = image.brokers[&1].epoch;
        let rejoin = ControllerRequest::AlterPartition {
            broker_id: 1,
            broker_epoch: epoch1,
            topic_id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: vec![2, 1, 3],
        };
        let e = controller.submit(rejoin.clone()).await.unwrap_err();
        assert_eq!(e.code(), crate::error_code::INELIGIBLE_REPLICA, "{e:?}");
        // The next controller (here: the same node restarted from its log) knows it too.
        for b in &beats {
            b.abort();
        }
        controller.shutdown().await;
        let controller = Controller::start(&config).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !controller.image().brokers.get(&2).is_some_and(|b| b.in_controlled_shutdown) {
            assert!(Instant::now() < deadline, "the restarted controller never replayed the shutdown record");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        controller.shutdown().await;
    }
}
