//! Ships spooled events to the log topic through librdkafka: an idempotent producer with
//! acks=all, one spool batch in flight, the spool offset advanced only once librdkafka has
//! reported every event of the batch delivered (at-least-once). librdkafka finds the leader of
//! the event's partition (the key, the host, picks it as Java's producer would) and follows it
//! when it moves; when no broker answers, events wait in the spool and the batch is sent again
//! with backoff (250 ms doubling to 5 s).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::watch;

use super::kafka::{self, Context};
use super::spool::{Batch, SpoolReader};

pub const MAX_BATCH_EVENTS: usize = 1000;
pub const MAX_BATCH_BYTES: usize = 900 * 1024;
/// How long librdkafka keeps trying one event (leader moves and reconnects included) before it
/// reports it undelivered; the shipper then sends the batch again after a backoff.
const MESSAGE_TIMEOUT_MS: &str = "30000";

#[derive(Clone, Debug)]
pub struct ShipConfig {
    /// `host:port[,host:port...]`: any brokers of the cluster.
    pub bootstrap: String,
    pub topic: String,
    /// Record key (the host name), which also picks the partition.
    pub key: Option<String>,
    /// Pause after a batch that was not full, so a trickle of events is sent in fewer produces.
    pub linger: Duration,
}

#[derive(Debug, Default)]
pub struct ShipStats {
    pub shipped: AtomicU64,
    pub errors: AtomicU64,
    pub broker_up: AtomicBool,
}

type Client = FutureProducer<Context>;

fn producer(cfg: &ShipConfig, stats: &Arc<ShipStats>) -> Result<Client, KafkaError> {
    kafka::base_config(&cfg.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Java's default partitioner for keyed records: a host's events land where Java's would.
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS)
        .set("linger.ms", "5")
        .create_with_context(Context { stats: Some(stats.clone()) })
}

/// What became of one batch.
enum Outcome {
    Delivered,
    /// The broker refuses an event of it for good (too large, invalid).
    Refused(KafkaError),
    /// Not delivered (no broker, leader gone, timed out): send it again.
    Failed(KafkaError),
}

pub async fn run(cfg: ShipConfig, spool: SpoolReader, stats: Arc<ShipStats>, mut shutdown: watch::Receiver<bool>) {
    let mut client = match producer(&cfg, &stats) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(target: "lantern.exporter.pipeline", error = %e, "cannot create the Kafka producer; events stay in the spool");
            return;
        }
    };
    let mut backoff = Backoff::default();
    let mut max_events = MAX_BATCH_EVENTS;
    let mut topic_ready = false;
    let mut logged_down = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if let Some((code, reason)) = client.client().fatal_error() {
            tracing::error!(target: "lantern.exporter.pipeline", ?code, reason, "the producer hit a fatal error; starting a new one, the batch will be sent again");
            match producer(&cfg, &stats) {
                Ok(p) => drop_blocking(std::mem::replace(&mut client, p)),
                Err(e) => tracing::error!(target: "lantern.exporter.pipeline", error = %e, "cannot create a new Kafka producer"),
            }
        }
        // Checked at start, after an unknown-topic error, and while the brokers are away and
        // nothing is being sent (a cheap reachability probe that also reconnects).
        if !topic_ready || !stats.broker_up.load(Ordering::Relaxed) {
            match ensure_topic(&client, &cfg.bootstrap, &cfg.topic).await {
                Ok(()) => {
                    topic_ready = true;
                    stats.broker_up.store(true, Ordering::Relaxed);
                    if logged_down {
                        tracing::info!(target: "lantern.exporter.pipeline", bootstrap = %cfg.bootstrap, "brokers reachable again; shipping resumes");
                        logged_down = false;
                    }
                }
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    stats.broker_up.store(false, Ordering::Relaxed);
                    if !logged_down {
                        tracing::warn!(target: "lantern.exporter.pipeline", error = %e, bootstrap = %cfg.bootstrap, "cannot ship log events; retrying with backoff, events wait in the spool");
                        logged_down = true;
                    }
                    if !sleep_or_shutdown(backoff.next(), &mut shutdown).await {
                        break;
                    }
                    continue;
                }
            }
        }
        let batch = match spool.read_batch(max_events, MAX_BATCH_BYTES) {
            Ok(Some(b)) => b,
            Ok(None) => {
                if !sleep_or_shutdown(Duration::from_millis(100), &mut shutdown).await {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::error!(target: "lantern.exporter.pipeline", error = %e, "cannot read the spool; retrying");
                if !sleep_or_shutdown(Duration::from_secs(1), &mut shutdown).await {
                    break;
                }
                continue;
            }
        };
        let outcome = tokio::select! {
            o = deliver(&client, &cfg, &batch) => o,
            // Undelivered events are sent again by the next start (the spool offset did not move).
            _ = shutdown.changed() => break,
        };
        match outcome {
            Outcome::Delivered => {
                spool.ack(&batch, false);
                stats.shipped.fetch_add(batch.events.len() as u64, Ordering::Relaxed);
                stats.broker_up.store(true, Ordering::Relaxed);
                if logged_down {
                    tracing::info!(target: "lantern.exporter.pipeline", bootstrap = %cfg.bootstrap, "brokers reachable again; shipping resumes");
                    logged_down = false;
                }
                backoff = Backoff::default();
                let full = batch.events.len() >= max_events;
                max_events = MAX_BATCH_EVENTS;
                // Let a trickle gather into one batch: fewer, larger produces (each of which the
                // broker's request log, if tailed, reports as one more line).
                if !full && !sleep_or_shutdown(cfg.linger, &mut shutdown).await {
                    break;
                }
            }
            // librdkafka packs events into record batches of its own; the broker refuses a whole
            // record batch, so the event at fault is found by shipping smaller spool batches.
            Outcome::Refused(e) if batch.events.len() > 1 => {
                tracing::warn!(target: "lantern.exporter.pipeline", error = %e, events = batch.events.len(), "batch refused; retrying in smaller batches");
                max_events = (batch.events.len() / 2).max(1);
            }
            Outcome::Refused(e) => {
                tracing::error!(target: "lantern.exporter.pipeline", error = %e, "the broker refuses this event for good (too large or invalid); dropped and counted in lantern_pipeline_events_dropped_total");
                spool.ack(&batch, true);
            }
            Outcome::Failed(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                stats.broker_up.store(false, Ordering::Relaxed);
                if kafka::unknown_topic(&e) {
                    topic_ready = false;
                }
                if !logged_down {
                    tracing::warn!(target: "lantern.exporter.pipeline", error = %e, bootstrap = %cfg.bootstrap, "events not delivered; retrying with backoff, events wait in the spool");
                    logged_down = true;
                }
                if !sleep_or_shutdown(backoff.next(), &mut shutdown).await {
                    break;
                }
            }
        }
    }
    drop_blocking(client);
}

/// Hands the whole batch to librdkafka and waits for every delivery report.
async fn deliver(client: &Client, cfg: &ShipConfig, batch: &Batch) -> Outcome {
    let mut reports = Vec::with_capacity(batch.events.len());
    let mut refused = None;
    let mut failed = None;
    for event in &batch.events {
        let mut record = FutureRecord::<str, str>::to(&cfg.topic).payload(event.as_str());
        if let Some(key) = &cfg.key {
            record = record.key(key.as_str());
        }
        match client.send_result(record) {
            Ok(report) => reports.push(report),
            Err((e, _)) if kafka::refused_for_good(&e) => refused = Some(e),
            Err((e, _)) => {
                failed = Some(e);
                break;
            }
        }
    }
    // Wait for what was handed over even after a failure, so the next attempt starts clean.
    for report in reports {
        match report.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) if kafka::refused_for_good(&e) => refused = Some(e),
            Ok(Err((e, _))) => failed = Some(e),
            Err(_canceled) => failed = Some(KafkaError::Canceled),
        }
    }
    match (failed, refused) {
        (Some(e), _) => Outcome::Failed(e),
        (None, Some(e)) => Outcome::Refused(e),
        (None, None) => Outcome::Delivered,
    }
}

/// Makes sure the topic exists: a Metadata request (which lets the broker auto-create it), or,
/// when the broker does not auto-create, CreateTopics with one partition.
async fn ensure_topic(client: &Client, bootstrap: &str, topic: &str) -> Result<(), KafkaError> {
    let (client, bootstrap, topic) = (client.clone(), bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || ensure_topic_blocking(&client, &bootstrap, &topic))
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}

fn ensure_topic_blocking(client: &Client, bootstrap: &str, topic: &str) -> Result<(), KafkaError> {
    let mut created = false;
    for _ in 0..20 {
        let md = client.client().fetch_metadata(Some(topic), kafka::REQUEST_TIMEOUT)?;
        let t = md.topics().iter().find(|t| t.name() == topic);
        match t.map(|t| (t.error(), t.partitions().is_empty())) {
            Some((None, false)) => return Ok(()),
            Some((Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART), _)) if !created => {
                create_topic(bootstrap, topic)?;
                created = true;
            }
            // LEADER_NOT_AVAILABLE and friends: the topic is being created.
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    Err(KafkaError::MetadataFetch(RDKafkaErrorCode::LeaderNotAvailable))
}

fn create_topic(bootstrap: &str, topic: &str) -> Result<(), KafkaError> {
    let admin: AdminClient<Context> = kafka::base_config(bootstrap).create_with_context(Context::default())?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().request_timeout(Some(kafka::REQUEST_TIMEOUT)).operation_timeout(Some(Duration::from_secs(10)));
    let results = futures_executor::block_on(admin.create_topics([&new], &opts))?;
    for r in results {
        match r {
            // TOPIC_ALREADY_EXISTS is as good as created.
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}

/// librdkafka's destructor waits for its threads: not on a tokio worker.
fn drop_blocking(client: Client) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn_blocking(move || drop(client));
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.changed() => false,
    }
}

/// 250 ms doubling to 5 s.
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(250))
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        d
    }
}
