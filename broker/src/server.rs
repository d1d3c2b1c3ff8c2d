//! Start-up and shutdown: HTTP first (so liveness answers during recovery), then metadata and
//! log recovery, then the Kafka listeners, then readiness; background flush and retention.
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::api::now_ms;
use crate::broker::Broker;
use crate::cluster::ReplicaManager;
use crate::config::BrokerConfig;
use crate::controller::Controller;
use crate::http::{self, BrokerSlot};
use crate::network;

/// Runs the broker until `shutdown` turns true, then flushes and closes every log.
pub async fn run(config: BrokerConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let slot: BrokerSlot = Default::default();
    let (http_listener, http_addr) = network::bind(&config.http_listener.to_string()).await?;
    tracing::info!(address = %http_addr, "HTTP endpoints listening (/metrics, /health/live, /health/ready)");
    let http_task = tokio::spawn(http::serve(http_listener, slot.clone(), shutdown.clone()));

    let broker = tokio::task::spawn_blocking(move || open(config)).await.context("start-up task failed")??;
    let _ = slot.set(broker.clone());

    let mut tasks = Vec::new();
    for l in &broker.config.listeners {
        let addr = format!("{}:{}", l.host, l.port);
        let (listener, local) = network::bind(&addr).await?;
        tracing::info!(listener = %l.name, address = %local, "Kafka listener ready");
        tasks.push(tokio::spawn(network::run_listener(listener, broker.clone(), shutdown.clone())));
    }
    tasks.push(tokio::spawn(flush_loop(broker.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(retention_loop(broker.clone(), shutdown.clone())));
    broker.set_ready(true);
    tracing::info!(node_id = broker.node_id(), cluster_id = %broker.image().cluster_id, "broker started");

    let mut shutdown = shutdown;
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    broker.set_ready(false);
    tracing::info!("shutting down: flushing and closing logs");
    for t in tasks {
        let _ = t.await;
    }
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.replicas.close_all()).await.context("closing logs")?;
    let _ = http_task.await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Opens metadata and recovers every log (blocking I/O).
fn open(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
    std::fs::create_dir_all(&config.metadata_log_dir)
        .with_context(|| format!("cannot create metadata.log.dir {}", config.metadata_log_dir.display()))?;
    let controller = Controller::open(&config.metadata_log_dir, config.node_id, config.cluster_id.clone())
        .context("cannot open cluster metadata")?;
    let started = std::time::Instant::now();
    let (replicas, loaded) = ReplicaManager::open(&config).context("cannot open the logs in log.dirs")?;
    tracing::info!(partitions = loaded.len(), elapsed_ms = started.elapsed().as_millis() as u64, "logs loaded and recovered");
    let image = controller.image();
    for (topic, index) in &loaded {
        if image.topic(topic).is_none_or(|t| *index as usize >= t.partitions.len()) {
            tracing::warn!(topic = %topic, partition = index, "a log on disk belongs to no known topic; it is left in place and not served");
            replicas.forget(topic, *index);
        }
    }
    let broker = Broker::new(config, controller, replicas);
    broker.apply_metadata().context("cannot create the logs the metadata lists")?;
    Ok(broker)
}

/// Flushes partitions whose oldest unflushed data is older than their flush.ms.
async fn flush_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let tick = Duration::from_millis(broker.config.flush_interval_ms.clamp(10, 1000));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => return,
        }
        let now = now_ms();
        for p in broker.replicas.all() {
            if let Err(e) = p.flush_if_due_by_time(now).await {
                tracing::error!(partition = %p.name(), error = %e, "scheduled flush failed");
            }
        }
    }
}

/// Applies retention and time-based segment rolls every log.retention.check.interval.ms.
async fn retention_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let tick = Duration::from_millis(broker.config.retention_check_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => return,
        }
        let b = broker.clone();
        let work = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for p in b.replicas.all() {
                let mut log = p.log().lock();
                if let Err(e) = log.maybe_roll_by_time(now) {
                    tracing::error!(partition = %p.name(), error = %e, "time-based segment roll failed");
                }
                match log.apply_retention(now) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(target: "kafka.log.LogManager", partition = %p.name(), segments = n, log_start_offset = log.log_start_offset(), "deleted segments past retention"),
                    Err(e) => tracing::error!(partition = %p.name(), error = %e, "retention failed"),
                }
            }
        });
        let _ = work.await;
    }
}
