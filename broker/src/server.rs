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
use crate::coordinator::offsets_topic::TOPIC as OFFSETS_TOPIC;
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
    tasks.push(tokio::spawn(group_loop(broker.clone(), shutdown.clone())));
    if broker.config.log_cleaner_enable {
        tasks.push(tokio::spawn(cleaner_loop(broker.clone(), shutdown.clone())));
    }
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
    ensure_offsets_topic(&controller, &config)?;
    let broker = Broker::new(config, controller, replicas);
    broker.apply_metadata().context("cannot create the logs the metadata lists")?;
    let started = std::time::Instant::now();
    let (groups, offsets) = broker.coordinator.load(&broker.replicas).context("cannot load consumer groups from __consumer_offsets")?;
    tracing::info!(target: "kafka.coordinator.group.GroupMetadataManager", groups, offsets, elapsed_ms = started.elapsed().as_millis() as u64, "loaded consumer groups");
    Ok(broker)
}

/// Creates the compacted `__consumer_offsets` topic on first start.
fn ensure_offsets_topic(controller: &Controller, config: &BrokerConfig) -> anyhow::Result<()> {
    if controller.image().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let configs = [
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), config.offsets_topic_segment_bytes.to_string()),
    ]
    .into_iter()
    .collect();
    controller
        .create_topic(OFFSETS_TOPIC, config.offsets_topic_num_partitions, 1, configs, false)
        .context("cannot create __consumer_offsets")?;
    Ok(())
}

/// Compacts logs with cleanup.policy=compact every log.cleaner.backoff.ms (Kafka's
/// LogCleaner, one thread).
async fn cleaner_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let tick = Duration::from_millis(broker.config.log_cleaner_backoff_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => return,
        }
        let b = broker.clone();
        let work = tokio::task::spawn_blocking(move || {
            for p in b.replicas.all() {
                if !p.log().lock().config().cleanup_policy_compact {
                    continue;
                }
                let started = std::time::Instant::now();
                let result = p.log().lock().clean(now_ms());
                match result {
                    Ok(s) if s.segments_cleaned > 0 => tracing::info!(
                        target: "kafka.log.LogCleaner",
                        partition = %p.name(),
                        segments = s.segments_cleaned,
                        bytes_before = s.bytes_before,
                        bytes_after = s.bytes_after,
                        records_removed = s.records_removed,
                        tombstones_removed = s.tombstones_removed,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "cleaned log"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(target: "kafka.log.LogCleaner", partition = %p.name(), error = %e, "cleaning failed"),
                }
            }
        });
        let _ = work.await;
    }
}

/// Group session expiry, rebalance deadlines and offset expiry.
async fn group_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let expiry_every = Duration::from_millis(broker.config.offsets_retention_check_interval_ms);
    let mut last_expiry = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.changed() => return,
        }
        broker.coordinator.tick(&broker.replicas).await;
        if last_expiry.elapsed() >= expiry_every {
            last_expiry = tokio::time::Instant::now();
            broker.coordinator.expire_offsets(&broker.replicas).await;
        }
    }
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
