//! Ships spooled events to the log topic: Produce with acks=all, one batch in flight, the spool
//! offset advanced only on the broker's acknowledgement (at-least-once). When the broker is
//! away it retries with backoff (250 ms doubling to 5 s) and resumes where the spool says.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use tokio::sync::watch;

use super::kafka::{self, Connection, KafkaError};
use super::spool::{Batch, SpoolReader};
use super::timefmt;

pub const MAX_BATCH_EVENTS: usize = 1000;
pub const MAX_BATCH_BYTES: usize = 900 * 1024;

#[derive(Clone, Debug)]
pub struct ShipConfig {
    pub bootstrap: String,
    pub topic: String,
    /// Record key (the host name), which also picks the partition.
    pub key: Option<Bytes>,
    /// Pause after a batch that was not full, so a trickle of events is sent in fewer produces.
    pub linger: Duration,
}

#[derive(Debug, Default)]
pub struct ShipStats {
    pub shipped: AtomicU64,
    pub errors: AtomicU64,
    pub broker_up: AtomicBool,
}

/// Error codes meaning this batch will never be accepted as it is.
fn refused_for_good(code: i16) -> bool {
    // CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, INVALID_RECORD
    matches!(code, 2 | 10 | 18 | 87)
}

enum Outcome {
    Acked,
    Refused(i16),
}

pub async fn run(cfg: ShipConfig, spool: SpoolReader, stats: Arc<ShipStats>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(250);
    let mut max_events = MAX_BATCH_EVENTS;
    let mut logged_down = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let session = async {
            let mut conn = Connection::connect(&cfg.bootstrap).await?;
            let partitions = ensure_topic(&mut conn, &cfg.topic).await?;
            let partition = cfg.key.as_deref().map_or(0, |k| kafka::partition_for(k, partitions));
            Ok::<_, KafkaError>((conn, partition))
        };
        let (mut conn, partition) = match session.await {
            Ok(s) => s,
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                stats.broker_up.store(false, Ordering::Relaxed);
                if !logged_down {
                    tracing::warn!(target: "lantern.exporter.pipeline", error = %e, bootstrap = %cfg.bootstrap, "cannot ship log events; retrying with backoff, events wait in the spool");
                    logged_down = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        stats.broker_up.store(true, Ordering::Relaxed);
        if logged_down {
            tracing::info!(target: "lantern.exporter.pipeline", bootstrap = %cfg.bootstrap, "broker reachable again; shipping resumes");
            logged_down = false;
        }
        backoff = Duration::from_millis(250);
        loop {
            let batch = match spool.read_batch(max_events, MAX_BATCH_BYTES) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        _ = shutdown.changed() => return,
                    }
                }
                Err(e) => {
                    tracing::error!(target: "lantern.exporter.pipeline", error = %e, "cannot read the spool; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            match produce(&mut conn, &cfg, partition, &batch).await {
                Ok(Outcome::Acked) => {
                    spool.ack(&batch, false);
                    stats.shipped.fetch_add(batch.events.len() as u64, Ordering::Relaxed);
                    let full = batch.events.len() >= max_events;
                    max_events = MAX_BATCH_EVENTS;
                    if !full {
                        // Let a trickle gather into one batch: fewer, larger produces (each of
                        // which the broker's request log, if tailed, reports as one more line).
                        tokio::select! {
                            _ = tokio::time::sleep(cfg.linger) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                }
                Ok(Outcome::Refused(code)) if batch.events.len() > 1 => {
                    // Find the event the broker refuses by shipping smaller batches.
                    tracing::warn!(target: "lantern.exporter.pipeline", code, events = batch.events.len(), "batch refused; retrying in smaller batches");
                    max_events = (batch.events.len() / 2).max(1);
                }
                Ok(Outcome::Refused(code)) => {
                    tracing::error!(target: "lantern.exporter.pipeline", code, "the broker refuses this event for good (too large or invalid); dropped and counted in lantern_pipeline_events_dropped_total");
                    spool.ack(&batch, true);
                }
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    stats.broker_up.store(false, Ordering::Relaxed);
                    tracing::warn!(target: "lantern.exporter.pipeline", error = %e, "produce failed; reconnecting, the batch will be sent again");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The topic's partition count, creating the topic if the broker does not auto-create it.
async fn ensure_topic(conn: &mut Connection, topic: &str) -> Result<i32, KafkaError> {
    for attempt in 0..20 {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(kafka::topic_name(topic)))]))
            .with_allow_auto_topic_creation(true);
        let resp: MetadataResponse = conn.send(ApiKey::Metadata, &req).await?;
        let t = resp.topics.first();
        let code = t.map_or(3, |t| t.error_code);
        match code {
            0 if t.is_some_and(|t| !t.partitions.is_empty()) => return Ok(t.map_or(1, |t| t.partitions.len() as i32)),
            // UNKNOWN_TOPIC_OR_PARTITION: auto-create is off; create it ourselves.
            3 if attempt == 0 => {
                let req = CreateTopicsRequest::default()
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(kafka::topic_name(topic))
                        .with_num_partitions(1)
                        .with_replication_factor(1)])
                    .with_timeout_ms(10_000);
                let resp: CreateTopicsResponse = conn.send(ApiKey::CreateTopics, &req).await?;
                // TOPIC_ALREADY_EXISTS (36) is as good as created.
                if let Some(r) = resp.topics.first().filter(|r| r.error_code != 0 && r.error_code != 36) {
                    return Err(KafkaError::Broker { api: ApiKey::CreateTopics, code: r.error_code });
                }
            }
            // LEADER_NOT_AVAILABLE and friends: the topic is being created.
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Err(KafkaError::Broker { api: ApiKey::Metadata, code: 5 })
}

async fn produce(conn: &mut Connection, cfg: &ShipConfig, partition: i32, batch: &Batch) -> Result<Outcome, KafkaError> {
    let now = timefmt::now_ms();
    let records: Vec<(Option<Bytes>, Bytes, i64)> =
        batch.events.iter().map(|e| (cfg.key.clone(), Bytes::from(e.clone()), now)).collect();
    let records = kafka::encode_batch(&records).map_err(|detail| KafkaError::Codec { api: ApiKey::Produce, detail })?;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(kafka::topic_name(&cfg.topic))
            .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(records))])]);
    let resp: ProduceResponse = conn.send(ApiKey::Produce, &req).await?;
    let code = resp
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .map_or(-1, |p| p.error_code);
    match code {
        0 => Ok(Outcome::Acked),
        c if refused_for_good(c) => Ok(Outcome::Refused(c)),
        c => Err(KafkaError::Broker { api: ApiKey::Produce, code: c }),
    }
}

