//! Start-up and shutdown: HTTP first (so liveness answers while the node waits for its quorum
//! and recovers logs), then the controller and its listener, registration with the active
//! controller, log recovery and the metadata, then the Kafka listeners; ready once the
//! controller has unfenced this broker. A controller-only node (`process.roles=controller`)
//! stops after the quorum part: ready once it has applied the cluster's metadata and knows
//! the active controller.
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::background;
use crate::broker::Broker;
use crate::cluster::{lifecycle, meta_properties, ReplicaManager};
use crate::config::BrokerConfig;
use crate::controller::{quorum, Controller};
use crate::http::{self, NodeSlot};
use crate::network;
use crate::telemetry::{Exporter, Tracer};

/// Runs the node until `shutdown` turns true, then flushes and closes every log.
/// `telemetry` (built from the OTEL_* environment by `Tracer::start`) turns on span export.
pub async fn run(config: BrokerConfig, telemetry: Option<(Tracer, Exporter)>, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let (tracer, exporter) = match telemetry {
        Some((tracer, exporter)) => (Some(tracer), Some(exporter)),
        None => {
            tracing::debug!(target: "kafka.server.KafkaServer", "tracing is off (set OTEL_EXPORTER_OTLP_ENDPOINT to export spans)");
            (None, None)
        }
    };
    let slot = NodeSlot::new(config.clone());
    let (http_listener, http_addr) = network::bind(&config.http_listener.to_string()).await?;
    tracing::info!(target: "kafka.server.KafkaServer", address = %http_addr, "HTTP endpoints listening (/metrics, /health/live, /health/ready)");
    let http_task = tokio::spawn(http::serve(http_listener, slot.clone(), shutdown.clone()));

    // Directories of another node or cluster stop start-up before anything touches them.
    let dirs = data_dirs(&config);
    let found = meta_properties::read_all(&dirs).map_err(anyhow::Error::msg)?;
    meta_properties::check(&found, config.node_id, config.cluster_id.as_deref()).map_err(anyhow::Error::msg)?;

    let controller = Controller::start(&config).await.with_context(|| match found.first() {
        Some((dir, m)) => format!("{} holds data of cluster {} (its meta.properties)", dir.display(), m.cluster_id),
        None => "cannot start the metadata quorum".to_string(),
    })?;
    slot.set_controller(controller.clone());
    let mut tasks = Vec::new();
    if let Some(l) = config.listeners.iter().find(|l| config.cluster.controller_listener_names.contains(&l.name)) {
        let (listener, local) = network::bind(&format!("{}:{}", l.host, l.port)).await?;
        tracing::info!(target: "kafka.server.ControllerServer", listener = %l.name, address = %local, voters = ?quorum::voters(&config).keys().collect::<Vec<_>>(), "controller listener ready");
        tasks.push(tokio::spawn(quorum::rpc::serve(listener, controller.clone(), controller.stats.rpc.clone(), config.connections_max_idle.unwrap_or(Duration::MAX), shutdown.clone())));
    }
    tasks.push(tokio::spawn(controller.clone().run(shutdown.clone())));
    tasks.push(tokio::spawn(crate::controller::state_change::watch_quorum(controller.clone(), shutdown.clone())));
    if !config.cluster.roles.broker {
        let result = run_controller_only(&config, &controller, &slot, &found, &dirs, shutdown.clone()).await;
        if result.is_err() {
            // A start-up error stops the node at once (its tasks end with the runtime), as a
            // broker's does: waiting for them would wait for a shutdown signal.
            controller.shutdown().await;
            return result;
        }
        for t in tasks {
            let _ = t.await;
        }
        controller.shutdown().await;
        let _ = http_task.await;
        if let Some(exporter) = exporter {
            exporter.shutdown().await;
        }
        if result.is_ok() {
            tracing::info!(target: "kafka.server.ControllerServer", "shut down cleanly");
        }
        return result;
    }

    // Register, then wait until this node has applied the metadata up to its registration:
    // only then is the image complete enough to decide which logs to keep.
    let incarnation = uuid::Uuid::new_v4();
    let state = Arc::new(lifecycle::LifecycleState::new());
    let epoch = {
        let mut stop = shutdown.clone();
        tokio::select! {
            r = lifecycle::register(&controller, &config, incarnation, &state) => r.context("cannot join the cluster")?,
            _ = stop.changed() => {
                controller.shutdown().await;
                return Ok(());
            }
        }
    };
    let mut images = controller.subscribe();
    let mut stop = shutdown.clone();
    while controller.image().last_offset < epoch {
        tokio::select! {
            changed = images.changed() => if changed.is_err() {
                anyhow::bail!("the metadata quorum stopped during start-up");
            },
            _ = stop.changed() => {
                controller.shutdown().await;
                return Ok(());
            }
        }
    }
    let cluster_id = controller.image().cluster_id.clone();
    if let Some(configured) = config.cluster_id.as_deref().filter(|c| *c != cluster_id) {
        anyhow::bail!("cluster.id={configured} but the metadata quorum belongs to cluster {cluster_id}; fix cluster.id or controller.quorum.voters");
    }
    meta_properties::check(&found, config.node_id, Some(&cluster_id)).map_err(anyhow::Error::msg)?;
    let meta = meta_properties::MetaProperties { node_id: config.node_id, cluster_id: cluster_id.clone() };
    meta_properties::write_missing(&dirs, &meta).context("cannot write meta.properties")?;

    let broker = {
        let config = config.clone();
        let controller = controller.clone();
        tokio::task::spawn_blocking(move || open(config, controller, tracer)).await.context("start-up task failed")??
    };
    broker.lifecycle.epoch.store(epoch, std::sync::atomic::Ordering::Release);
    slot.set_broker(broker.clone());
    // The broker's own tasks stop only after a controlled shutdown has moved its leaderships
    // away (the controller's tasks above stop at the signal itself).
    let (broker_stop_tx, broker_stop) = watch::channel(false);
    tasks.push(tokio::spawn(lifecycle::heartbeat_loop(
        controller.clone(),
        config.clone(),
        incarnation,
        broker.lifecycle.clone(),
        broker_stop.clone(),
    )));
    tasks.push(tokio::spawn(follow_metadata(broker.clone(), broker_stop.clone())));
    tasks.push(tokio::spawn(crate::cluster::replica_fetcher::run(broker.clone(), broker_stop.clone())));
    tasks.push(tokio::spawn(background::isr_shrink_loop(broker.clone(), broker_stop.clone())));
    tasks.push(tokio::spawn(background::offline_report_loop(broker.clone(), broker_stop.clone())));

    for l in broker.config.listeners.iter().filter(|l| !broker.config.cluster.controller_listener_names.contains(&l.name)) {
        let addr = format!("{}:{}", l.host, l.port);
        let (listener, local) = network::bind(&addr).await?;
        tracing::info!(target: "kafka.server.KafkaServer", listener = %l.name, address = %local, "Kafka listener ready");
        tasks.push(tokio::spawn(network::run_listener(listener, l.name.clone(), broker.clone(), broker_stop.clone())));
    }
    // The REST proxy, a Kafka client of this cluster: after the Kafka listeners it sends to.
    tasks.extend(crate::rest::start(broker.clone(), broker_stop.clone()).await?);
    tasks.push(tokio::spawn(background::flush_loop(broker.clone(), broker_stop.clone())));
    tasks.push(tokio::spawn(background::retention_loop(broker.clone(), broker_stop.clone())));
    tasks.push(tokio::spawn(background::producer_expiration_loop(broker.clone(), broker_stop.clone())));
    tasks.push(tokio::spawn(background::hw_checkpoint_loop(broker.clone(), broker_stop.clone())));
    tasks.push(tokio::spawn(background::log_dir_probe_loop(broker.clone(), broker_stop.clone())));
    tasks.push(tokio::spawn(background::group_loop(broker.clone(), broker_stop.clone())));
    if broker.config.log_cleaner_enable {
        tasks.push(tokio::spawn(background::cleaner_loop(broker.clone(), broker_stop.clone())));
    }
    tasks.push(tokio::spawn(ready_when_unfenced(broker.clone(), broker_stop.clone())));

    let mut shutdown = shutdown;
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    broker.begin_shutdown();
    if broker.config.controlled_shutdown_enable {
        // Bounded by two sessions: by then the controller has fenced this broker anyway.
        let patience = Duration::from_millis(2 * broker.config.cluster.session_timeout_ms);
        tracing::info!(target: "kafka.server.KafkaServer", "controlled shutdown: asking the controller to move this broker's leaderships");
        let started = std::time::Instant::now();
        if lifecycle::controlled_shutdown(&broker.lifecycle, patience).await {
            tracing::info!(target: "kafka.server.KafkaServer", elapsed_ms = started.elapsed().as_millis() as u64, "controlled shutdown complete");
        } else {
            tracing::warn!(target: "kafka.server.KafkaServer", patience_ms = patience.as_millis() as u64, "controlled shutdown did not complete in time; stopping anyway");
        }
    }
    let _ = broker_stop_tx.send(true);
    tracing::info!(target: "kafka.server.KafkaServer", "shutting down: flushing and closing logs");
    for t in tasks {
        let _ = t.await;
    }
    let b = broker.clone();
    tokio::task::spawn_blocking(move || {
        b.replicas.close_all();
        b.replicas.checkpoint_high_watermarks(&b.config.log_dirs);
    })
    .await
    .context("closing logs")?;
    controller.shutdown().await;
    let _ = http_task.await;
    if let Some(exporter) = exporter {
        exporter.shutdown().await;
    }
    tracing::info!(target: "kafka.server.KafkaServer", "shut down cleanly");
    Ok(())
}

/// A controller-only node: no Kafka listener, no partition logs, no registration. It is ready
/// once it has applied the metadata log up to the cluster id (which it then records in
/// meta.properties, as a broker does) and while it knows the active controller.
async fn run_controller_only(
    config: &BrokerConfig,
    controller: &Arc<Controller>,
    slot: &NodeSlot,
    found: &[(std::path::PathBuf, meta_properties::MetaProperties)],
    dirs: &[std::path::PathBuf],
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut images = controller.subscribe();
    while controller.image().cluster_id.is_empty() {
        tokio::select! {
            changed = images.changed() => if changed.is_err() {
                anyhow::bail!("the metadata quorum stopped during start-up");
            },
            _ = shutdown.changed() => return Ok(()),
        }
    }
    let cluster_id = controller.image().cluster_id.clone();
    if let Some(configured) = config.cluster_id.as_deref().filter(|c| *c != cluster_id) {
        anyhow::bail!("cluster.id={configured} but the metadata quorum belongs to cluster {cluster_id}; fix cluster.id or controller.quorum.voters");
    }
    meta_properties::check(found, config.node_id, Some(&cluster_id)).map_err(anyhow::Error::msg)?;
    let meta = meta_properties::MetaProperties { node_id: config.node_id, cluster_id: cluster_id.clone() };
    meta_properties::write_missing(dirs, &meta).context("cannot write meta.properties")?;
    tracing::info!(target: "kafka.server.ControllerServer", node_id = config.node_id, cluster_id = %cluster_id, "controller started (process.roles=controller: no Kafka listener, no partitions)");
    while !*shutdown.borrow() {
        slot.set_controller_ready(controller.controller_id() >= 0);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.changed() => {}
        }
    }
    slot.set_controller_ready(false);
    Ok(())
}

/// The directories that hold this node's data: the metadata log's, and the partitions' on a
/// broker.
fn data_dirs(config: &BrokerConfig) -> Vec<std::path::PathBuf> {
    if !config.cluster.roles.broker {
        return vec![config.metadata_log_dir.clone()];
    }
    let mut dirs = config.log_dirs.clone();
    if !dirs.contains(&config.metadata_log_dir) {
        dirs.push(config.metadata_log_dir.clone());
    }
    dirs
}

/// Marks the broker ready once the controller has unfenced it (it is then in Metadata).
async fn ready_when_unfenced(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        // Not ready once a shutdown has begun, even while the controlled shutdown runs.
        let unfenced = broker.lifecycle.unfenced.load(std::sync::atomic::Ordering::Acquire)
            && !broker.lifecycle.want_shutdown.load(std::sync::atomic::Ordering::Acquire);
        if unfenced != broker.is_ready() {
            broker.set_ready(unfenced);
            if unfenced {
                tracing::info!(target: "kafka.server.KafkaServer", node_id = broker.node_id(), cluster_id = %broker.image().cluster_id, "broker started");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Applies every new metadata image to the local logs.
async fn follow_metadata(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut images = broker.controller.subscribe();
    loop {
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        broker.apply_metadata_now().await;
    }
}

/// Recovers every log and applies the metadata (blocking I/O).
fn open(config: BrokerConfig, controller: Arc<Controller>, tracer: Option<Tracer>) -> anyhow::Result<Arc<Broker>> {
    let started = std::time::Instant::now();
    let (replicas, loaded) = ReplicaManager::open(&config).context("cannot open the logs in log.dirs")?;
    tracing::info!(target: "kafka.server.KafkaServer", partitions = loaded.len(), elapsed_ms = started.elapsed().as_millis() as u64, "logs loaded and recovered");
    let request_log = match &config.request_log_path {
        Some(path) => Some(
            crate::network::request_log::RequestLog::open(path)
                .with_context(|| format!("cannot open request.log.path {}", path.display()))?,
        ),
        None => None,
    };
    let broker = Broker::new(config, controller, Arc::new(replicas), request_log, tracer);
    broker.apply_metadata();
    let started = std::time::Instant::now();
    let (groups, offsets) = broker.coordinator.load(&broker.replicas).context("cannot load consumer groups from __consumer_offsets")?;
    tracing::info!(target: "kafka.coordinator.group.GroupMetadataManager", groups, offsets, elapsed_ms = started.elapsed().as_millis() as u64, "loaded consumer groups");
    Ok(broker)
}
