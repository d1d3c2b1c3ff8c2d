//! Start-up and shutdown: HTTP first (so liveness answers during recovery), then metadata and
//! log recovery, then the Kafka listeners, then readiness; background flush and retention.
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::background;
use crate::broker::Broker;
use crate::cluster::ReplicaManager;
use crate::config::BrokerConfig;
use crate::controller::Controller;
use crate::coordinator::offsets_topic::TOPIC as OFFSETS_TOPIC;
use crate::http::{self, BrokerSlot};
use crate::network;
use crate::telemetry::{TraceConfig, Tracer};

/// Runs the broker until `shutdown` turns true, then flushes and closes every log.
/// `trace_config` (from the OTEL_* environment) turns on span export.
pub async fn run(config: BrokerConfig, trace_config: Option<TraceConfig>, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let (tracer, exporter) = match trace_config {
        Some(t) => {
            tracing::info!(target: "kafka.server.KafkaServer", endpoint = %t.endpoint, service_name = %t.service_name, sampler = ?t.sampler, "tracing: exporting spans as OTLP/HTTP JSON");
            let instance = vec![("service.instance.id".to_string(), config.node_id.to_string())];
            let (tracer, exporter) = Tracer::start(t, instance);
            (Some(tracer), Some(exporter))
        }
        None => {
            tracing::debug!(target: "kafka.server.KafkaServer", "tracing is off (set OTEL_EXPORTER_OTLP_ENDPOINT to export spans)");
            (None, None)
        }
    };
    let slot: BrokerSlot = Default::default();
    let (http_listener, http_addr) = network::bind(&config.http_listener.to_string()).await?;
    tracing::info!(target: "kafka.server.KafkaServer", address = %http_addr, "HTTP endpoints listening (/metrics, /health/live, /health/ready)");
    let http_task = tokio::spawn(http::serve(http_listener, slot.clone(), shutdown.clone()));

    let broker = tokio::task::spawn_blocking(move || open(config, tracer)).await.context("start-up task failed")??;
    let _ = slot.set(broker.clone());

    let mut tasks = Vec::new();
    for l in &broker.config.listeners {
        let addr = format!("{}:{}", l.host, l.port);
        let (listener, local) = network::bind(&addr).await?;
        tracing::info!(target: "kafka.server.KafkaServer", listener = %l.name, address = %local, "Kafka listener ready");
        tasks.push(tokio::spawn(network::run_listener(listener, l.name.clone(), broker.clone(), shutdown.clone())));
    }
    tasks.push(tokio::spawn(background::flush_loop(broker.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(background::retention_loop(broker.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(background::group_loop(broker.clone(), shutdown.clone())));
    if broker.config.log_cleaner_enable {
        tasks.push(tokio::spawn(background::cleaner_loop(broker.clone(), shutdown.clone())));
    }
    broker.set_ready(true);
    tracing::info!(target: "kafka.server.KafkaServer", node_id = broker.node_id(), cluster_id = %broker.image().cluster_id, "broker started");

    let mut shutdown = shutdown;
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    broker.set_ready(false);
    tracing::info!(target: "kafka.server.KafkaServer", "shutting down: flushing and closing logs");
    for t in tasks {
        let _ = t.await;
    }
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.replicas.close_all()).await.context("closing logs")?;
    let _ = http_task.await;
    if let Some(exporter) = exporter {
        exporter.shutdown().await;
    }
    tracing::info!(target: "kafka.server.KafkaServer", "shut down cleanly");
    Ok(())
}

/// Opens metadata and recovers every log (blocking I/O).
fn open(config: BrokerConfig, tracer: Option<Tracer>) -> anyhow::Result<Arc<Broker>> {
    std::fs::create_dir_all(&config.metadata_log_dir)
        .with_context(|| format!("cannot create metadata.log.dir {}", config.metadata_log_dir.display()))?;
    let controller = Controller::open(&config.metadata_log_dir, config.node_id, config.cluster_id.clone())
        .context("cannot open cluster metadata")?;
    let started = std::time::Instant::now();
    let (replicas, loaded) = ReplicaManager::open(&config).context("cannot open the logs in log.dirs")?;
    tracing::info!(target: "kafka.server.KafkaServer", partitions = loaded.len(), elapsed_ms = started.elapsed().as_millis() as u64, "logs loaded and recovered");
    let image = controller.image();
    for (topic, index) in &loaded {
        if image.topic(topic).is_none_or(|t| *index as usize >= t.partitions.len()) {
            tracing::warn!(target: "kafka.server.KafkaServer", topic = %topic, partition = index, "a log on disk belongs to no known topic; it is left in place and not served");
            replicas.forget(topic, *index);
        }
    }
    ensure_offsets_topic(&controller, &config)?;
    let request_log = match &config.request_log_path {
        Some(path) => Some(
            crate::network::request_log::RequestLog::open(path)
                .with_context(|| format!("cannot open request.log.path {}", path.display()))?,
        ),
        None => None,
    };
    let broker = Broker::new(config, controller, replicas, request_log, tracer);
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
