//! The broker's periodic work: time-based flushes, retention and segment rolls, log
//! cleaning, and group coordinator housekeeping. Each loop stops when `shutdown` turns true.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::now_ms;
use crate::broker::Broker;
use crate::cluster::Partition;

/// Sleeps `tick`; false once shutdown is signalled.
async fn wait(tick: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(tick) => true,
        _ = shutdown.changed() => false,
    }
}

/// Runs `work` for every hosted partition every `tick`, on a blocking thread (it does disk
/// I/O).
async fn every_partition(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>, tick: Duration, work: impl Fn(&Broker, &Partition, i64) + Copy + Send + 'static) {
    while wait(tick, &mut shutdown).await {
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for p in b.replicas.all() {
                work(&b, &p, now);
            }
        })
        .await;
    }
}

/// Flushes partitions whose oldest unflushed data is older than their flush.ms.
pub async fn flush_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let tick = Duration::from_millis(broker.config.flush_interval_ms.clamp(10, 1000));
    while wait(tick, &mut shutdown).await {
        let now = now_ms();
        for p in broker.replicas.all() {
            match p.flush_if_due_by_time(now).await {
                Ok(Some(d)) => broker.metrics.log_flush.record(d.as_micros() as u64),
                Ok(None) => {}
                Err(e) => tracing::error!(target: "kafka.log.LogManager", partition = %p.name(), error = %e, "scheduled flush failed"),
            }
        }
    }
}

/// Probes the log directories every log.dir.failure.probe.interval.ms; a directory that fails
/// (I/O error, read-only, gone) goes offline: its partitions stop being served here and the
/// controller moves their leadership and ISR membership to the other replicas (Kafka's JBOD
/// behaviour), while the broker goes on serving its other directories.
pub async fn log_dir_probe_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let tick = Duration::from_millis(broker.config.log_dir_failure_probe_interval_ms.max(100));
    while wait(tick, &mut shutdown).await {
        let b = broker.clone();
        let Ok(failed) = tokio::task::spawn_blocking(move || b.replicas.probe_log_dirs()).await else { continue };
        for (dir, why, partitions) in failed {
            tracing::error!(target: "kafka.log.LogManager", dir = %dir.display(), error = %why, partitions = partitions.len(),
                "log directory failed: taken offline, its partitions are no longer served by this broker (replace the disk and restart to bring it back)");
            // Not awaited here: shutting down must not wait for an unreachable controller.
            let b = broker.clone();
            tokio::spawn(async move { b.report_offline_replicas(partitions).await });
        }
        if broker.replicas.all_log_dirs_offline() {
            // Kafka halts when no log directory is left: a broker that can store nothing
            // must not stay registered and be given partitions.
            tracing::error!(target: "kafka.log.LogManager", "every log directory is offline: shutting down (replace the disks and restart)");
            std::process::exit(1);
        }
    }
}

/// Reports to the controller the replicas whose log could not be created or opened here
/// (`Broker::queue_offline_report`), once this broker is unfenced: the controller moves their
/// leadership and ISR membership to the other replicas, or marks the partition offline.
pub async fn offline_report_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let partitions = tokio::select! {
            p = broker.next_offline_report() => p,
            _ = shutdown.changed() => return,
        };
        while !broker.lifecycle.unfenced.load(std::sync::atomic::Ordering::Acquire) {
            if !wait(Duration::from_millis(100), &mut shutdown).await {
                return;
            }
        }
        tokio::select! {
            _ = broker.report_offline_replicas(partitions) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Writes each log directory's high-watermark checkpoint every
/// replica.high.watermark.checkpoint.interval.ms.
pub async fn hw_checkpoint_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let tick = Duration::from_millis(broker.config.hw_checkpoint_interval_ms);
    while wait(tick, &mut shutdown).await {
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || b.replicas.checkpoint_high_watermarks(&b.config.log_dirs)).await;
    }
}

/// Applies retention and time-based segment rolls every log.retention.check.interval.ms.
pub async fn retention_loop(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    let tick = Duration::from_millis(broker.config.retention_check_interval_ms);
    every_partition(broker, shutdown, tick, |_, p, now| {
        // A roll fsyncs under the lock: flush first, without it, so the roll has little left.
        if p.log().lock().roll_due(0, 0, now) {
            if let Err(e) = p.flush_blocking() {
                tracing::error!(target: "kafka.log.LogManager", partition = %p.name(), error = %e, "flush before a time-based roll failed");
            }
        }
        let mut log = p.log().lock();
        if let Err(e) = log.maybe_roll_by_time(now) {
            tracing::error!(target: "kafka.log.LogManager", partition = %p.name(), error = %e, "time-based segment roll failed");
        }
        match log.apply_retention(now) {
            Ok(0) => {}
            Ok(n) => tracing::info!(target: "kafka.log.LogManager", partition = %p.name(), segments = n, log_start_offset = log.log_start_offset(), "deleted segments past retention"),
            Err(e) => tracing::error!(target: "kafka.log.LogManager", partition = %p.name(), error = %e, "retention failed"),
        }
    })
    .await
}

/// Forgets idempotent producers whose last batch is older than producer.id.expiration.ms,
/// every producer.id.expiration.check.interval.ms (Kafka's producer-expiration task), so the
/// producer state of a partition written by many short-lived producers stays bounded.
pub async fn producer_expiration_loop(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    let tick = Duration::from_millis(broker.config.producer_id_expiration_check_interval_ms);
    let expiration_ms = broker.config.producer_id_expiration_ms;
    every_partition(broker, shutdown, tick, move |_, p, now| {
        let mut log = p.log().lock();
        let before = log.producer_count();
        log.remove_expired_producers(now, expiration_ms);
        let forgotten = before - log.producer_count();
        if forgotten > 0 {
            tracing::debug!(target: "kafka.log.ProducerStateManager", partition = %p.name(), forgotten, left = log.producer_count(), "expired idle producer ids");
        }
    })
    .await
}

/// Compacts logs with cleanup.policy=compact every log.cleaner.backoff.ms (Kafka's
/// LogCleaner, one thread). Each partition's lock is held only to plan the clean and to swap
/// the cleaned segments in; mapping keys and writing the copies runs unlocked, so produce,
/// fetch and OffsetCommit on the partition go on meanwhile.
pub async fn cleaner_loop(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    let tick = Duration::from_millis(broker.config.log_cleaner_backoff_ms);
    let map_memory = broker.config.log_cleaner_dedupe_buffer_size;
    every_partition(broker, shutdown, tick, move |b, p, now| {
        if b.replicas.is_moving(&p.topic, p.index) {
            // Being copied to another log directory: cleaned once it is there.
            return;
        }
        let started = std::time::Instant::now();
        let job = p.log().lock().prepare_clean(now, map_memory);
        let cleaned = match job {
            // The files the clean took out are removed when `retired` drops, after the lock.
            Ok(Some(job)) => job.run().and_then(|cleaned| p.log().lock().finish_clean(cleaned)),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        let cleaned = cleaned.map(|(stats, retired)| {
            drop(retired);
            stats
        });
        match cleaned {
            Ok(s) if s.segments_cleaned > 0 => tracing::info!(
                target: "kafka.log.LogCleaner",
                partition = %p.name(),
                segments = s.segments_cleaned,
                bytes_before = s.bytes_before,
                bytes_after = s.bytes_after,
                records_removed = s.records_removed,
                tombstones_removed = s.tombstones_removed,
                keys_mapped = s.keys_mapped,
                map_full = s.map_full,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "cleaned log"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(target: "kafka.log.LogCleaner", partition = %p.name(), error = %e, "cleaning failed"),
        }
    })
    .await
}

/// Group session expiry and rebalance deadlines (every 100 ms) and offset expiry (every
/// offsets.retention.check.interval.ms).
pub async fn group_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let expiry_every = Duration::from_millis(broker.config.offsets_retention_check_interval_ms);
    let mut last_expiry = tokio::time::Instant::now();
    while wait(Duration::from_millis(100), &mut shutdown).await {
        broker.coordinator.tick(&broker.replicas).await;
        if last_expiry.elapsed() >= expiry_every {
            last_expiry = tokio::time::Instant::now();
            broker.coordinator.expire_offsets(&broker.replicas).await;
        }
    }
}

/// Takes followers that have lagged for replica.lag.time.max.ms out of the ISR of every
/// partition this broker leads (Kafka's isr-expiration task), checking every half lag time.
pub async fn isr_shrink_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let lag = broker.config.replica_lag_time_max_ms as i64;
    let tick = Duration::from_millis((broker.config.replica_lag_time_max_ms / 2).max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => return,
        }
        let now = crate::api::now_ms();
        for p in broker.replicas.all() {
            if let Some(change) = p.maybe_shrink_isr(now, lag) {
                tracing::info!(target: "kafka.cluster.Partition", partition = %p.name(), isr = ?change.new_isr, "shrinking the ISR: followers have not caught up for replica.lag.time.max.ms");
                broker.request_isr_change(p.clone(), change);
            }
        }
    }
}
