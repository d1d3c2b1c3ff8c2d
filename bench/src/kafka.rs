//! librdkafka (through rust-rdkafka) against the broker: produce, consume, end-to-end latency.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::{Message, Offset, TopicPartitionList};
use rdkafka_sys as rdsys;

use crate::limits::percentile;

/// Process-wide monotonic epoch for timestamps carried in payloads (producer and consumer are
/// threads of this process, so one clock serves both).
fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// `count` distinct text-like payloads of `size` bytes (random words from a small vocabulary:
/// lz4 compresses them about 2x, as it does ordinary log lines; random bytes would not compress).
pub fn payloads(size: usize, count: usize) -> Vec<Vec<u8>> {
    const WORDS: &[&str] = &[
        "order",
        "user",
        "id",
        "status",
        "shipped",
        "pending",
        "cart",
        "item",
        "price",
        "eur",
        "usd",
        "sku",
        "warehouse",
        "berlin",
        "lisbon",
        "osaka",
        "timeout",
        "retry",
        "GET",
        "POST",
        "/api/v2",
        "200",
        "404",
        "503",
        "latency_ms",
        "region",
        "eu-west",
        "trace",
        "span",
        "session",
        "login",
        "ok",
        "false",
        "true",
        "null",
        "quantity",
        "customer",
        "invoice",
        "payment",
        "card",
        "visa",
        "refund",
        "delivery",
        "address",
        "street",
        "zip",
        "country",
        "phone",
        "email",
        "event",
        "click",
        "view",
        "page",
        "search",
        "query",
        "result",
        "score",
        "model",
        "version",
        "build",
        "kafka",
        "lantern",
        "topic",
        "offset",
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count)
        .map(|_| {
            let mut v = Vec::with_capacity(size + 16);
            while v.len() < size {
                let r = next();
                v.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize].as_bytes());
                v.push(if r & 0x300 == 0 { b'=' } else { b' ' });
                if r & 0xF000 == 0 {
                    v.extend_from_slice((r >> 20).to_string().as_bytes());
                    v.push(b' ');
                }
            }
            v.truncate(size);
            v
        })
        .collect()
}

pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = futures_executor::block_on(admin.create_topics([&t], &opts)).expect("CreateTopics");
    for r in res {
        if let Err((name, code)) = r {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                panic!("creating {name}: {code:?}");
            }
        }
    }
}

#[derive(Default)]
struct ProdCtx {
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    failed: AtomicU64,
    /// Sum over statistics windows of (mean batch bytes x batches) and (batches), and of
    /// (mean messages per batch x batches).
    batch: Mutex<(f64, f64, f64)>,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for ProdCtx {
    fn stats(&self, s: Statistics) {
        let mut b = self.batch.lock().unwrap();
        for t in s.topics.values() {
            let n = t.batchsize.cnt as f64;
            b.0 += t.batchsize.avg as f64 * n;
            b.1 += n;
            b.2 += t.batchcnt.avg as f64 * t.batchcnt.cnt as f64;
        }
    }
}

impl ProducerContext for ProdCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                self.acked_bytes
                    .fetch_add(m.payload_len() as u64, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct ProduceSpec {
    pub size: usize,
    pub partitions: i32,
    pub acks: &'static str,
    pub compression: &'static str,
    pub secs: f64,
    /// Value bytes per second to offer (a paced producer); None: as fast as the producer
    /// queue accepts.
    pub rate: Option<f64>,
}

#[derive(Clone, Debug, Default)]
pub struct ProduceResult {
    pub msgs: u64,
    pub bytes: u64,
    pub secs: f64,
    pub failed: u64,
    pub first_error: Option<String>,
    /// Mean produced batch (MessageSet) size in bytes, after compression, and messages per
    /// batch, from librdkafka's statistics.
    pub avg_batch_bytes: f64,
    pub avg_batch_msgs: f64,
}

impl ProduceResult {
    pub fn mb_s(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    pub fn msg_s(&self) -> f64 {
        self.msgs as f64 / self.secs
    }
    /// The bytes the broker stored (batches as sent, after compression): batches x mean
    /// batch size; the value bytes if the statistics gave no batch size.
    pub fn stored_bytes(&self) -> f64 {
        if self.avg_batch_msgs > 0.0 && self.avg_batch_bytes.is_finite() {
            self.msgs as f64 / self.avg_batch_msgs * self.avg_batch_bytes
        } else {
            self.bytes as f64
        }
    }
}

fn producer_config(bootstrap: &str, acks: &str, compression: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("compression.type", compression)
        .set("statistics.interval.ms", "1000")
        // Everything else is librdkafka's default (linger.ms=5, batch.size=1000000,
        // queue.buffering.max.messages=100000, no idempotence).
        ;
    c
}

/// Produces for `secs` (payload pool cycled), as fast as the client can or at `spec.rate`,
/// then waits for every acknowledgement. Throughput = acknowledged payload bytes / (first send .. last ack).
pub fn produce(bootstrap: &str, topic: &str, spec: &ProduceSpec) -> ProduceResult {
    create_topic(bootstrap, topic, spec.partitions);
    let pool = payloads(spec.size, 4096);
    let producer: BaseProducer<ProdCtx> = producer_config(bootstrap, spec.acks, spec.compression)
        .create_with_context(ProdCtx::default())
        .expect("producer");
    wait_metadata(producer.client(), topic, spec.partitions);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(spec.secs);
    let mut i = 0usize;
    'outer: loop {
        for _ in 0..64 {
            let p = &pool[i % pool.len()];
            match producer.send(BaseRecord::<(), [u8]>::to(topic).payload(p)) {
                Ok(()) => i += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("send: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
        if Instant::now() >= deadline {
            break 'outer;
        }
        if let Some(rate) = spec.rate {
            // Paced: wait (serving callbacks) until the bytes sent so far are due.
            // (poll with a timeout under 1 ms returns at once: rdkafka passes whole ms, so sleep)
            let due = t0 + Duration::from_secs_f64((i * spec.size) as f64 / rate);
            let now = Instant::now();
            if due > now {
                producer.poll(Duration::ZERO);
                thread::sleep(due - now);
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    // flush returns once the last acknowledgement is in.
    let end = Instant::now();
    // One more statistics window for the tail of the run.
    thread::sleep(Duration::from_millis(1100));
    producer.poll(Duration::ZERO);
    let ctx = producer.context();
    let b = *ctx.batch.lock().unwrap();
    let r = ProduceResult {
        msgs: ctx.acked.load(Ordering::Relaxed),
        bytes: ctx.acked_bytes.load(Ordering::Relaxed),
        secs: (end - t0).as_secs_f64(),
        failed: ctx.failed.load(Ordering::Relaxed),
        first_error: ctx.first_error.lock().unwrap().clone(),
        avg_batch_bytes: if b.1 > 0.0 { b.0 / b.1 } else { f64::NAN },
        avg_batch_msgs: if b.1 > 0.0 { b.2 / b.1 } else { f64::NAN },
    };
    r
}

fn wait_metadata<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    partitions: i32,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(md) = client.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                if t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions().iter().all(|p| p.leader() >= 0)
                {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} has no metadata with {partitions} partitions"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("consumer")
}

#[derive(Clone, Debug, Default)]
pub struct ConsumeResult {
    pub msgs: u64,
    pub bytes: u64,
    pub secs: f64,
}

impl ConsumeResult {
    pub fn mb_s(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    pub fn msg_s(&self) -> f64 {
        self.msgs as f64 / self.secs
    }
}

/// Reads the whole topic from the beginning (assigned partitions, no group protocol): the data
/// was just written, so it is served from the page cache.
pub fn consume_all(bootstrap: &str, topic: &str, partitions: i32) -> ConsumeResult {
    consume_all_with(bootstrap, topic, partitions, &[])
}

/// librdkafka allocates (and the kernel zero-fills) one receive buffer per Fetch response,
/// and with many partitions the default fetch.max.bytes (50 MiB) makes every response that
/// big: the consumer then spends its time in clear_page. This smaller limit is the setting a
/// many-partition consumer would use; the harness reports it beside the default.
pub const SMALL_FETCH_MAX_BYTES: &str = "8388608";

/// [`consume_all`] with extra consumer settings.
pub fn consume_all_with(bootstrap: &str, topic: &str, partitions: i32, settings: &[(&str, &str)]) -> ConsumeResult {
    // librdkafka 2.0 stops fetching a partition whose local queue holds queued.min.messages
    // (100000) or queued.max.messages.kbytes, and then waits a fixed 1000 ms before fetching it
    // again (fetch.queue.backoff.ms only arrived in 2.1): at 100 B records that caps a consumer
    // far below what it can do. Large thresholds keep it fetching.
    let mut config = vec![("queued.min.messages", "10000000"), ("queued.max.messages.kbytes", "2097151")];
    config.extend_from_slice(settings);
    let c = consumer(bootstrap, "bench-consume", &config);
    let mut expected = 0i64;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (lo, hi) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        expected += hi - lo;
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    let t0 = Instant::now();
    c.assign(&tpl).expect("assign");
    let (mut msgs, mut bytes) = (0u64, 0u64);
    let deadline = t0 + Duration::from_secs(300);
    // librdkafka's batch API on the consumer queue (up to 10000 messages a call): per-message
    // BaseConsumer::poll spent more of the shared CPUs in the client (a clock read and locks per
    // call) than the broker spent serving the data.
    let rk = c.client().native_ptr();
    // SAFETY: rk is the live consumer handle; the queue is destroyed before the consumer.
    let q = unsafe { rdsys::rd_kafka_queue_get_consumer(rk) };
    assert!(!q.is_null(), "no consumer queue");
    let mut buf: Vec<*mut rdsys::rd_kafka_message_t> = vec![std::ptr::null_mut(); 10_000];
    while (msgs as i64) < expected {
        // SAFETY: buf has buf.len() slots; each returned message is destroyed exactly once.
        let n = unsafe { rdsys::rd_kafka_consume_batch_queue(q, 200, buf.as_mut_ptr(), buf.len()) };
        assert!(n >= 0, "rd_kafka_consume_batch_queue failed");
        let mut err = None;
        for &m in &buf[..n as usize] {
            // SAFETY: m is a valid message returned above, not yet destroyed.
            unsafe {
                if (*m).err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    err.get_or_insert((*m).err);
                } else {
                    msgs += 1;
                    bytes += (*m).len as u64;
                }
                rdsys::rd_kafka_message_destroy(m);
            }
        }
        if let Some(e) = err {
            // SAFETY: q is destroyed once.
            unsafe { rdsys::rd_kafka_queue_destroy(q) };
            panic!("consume: {e:?}");
        }
        if n == 0 {
            assert!(
                Instant::now() < deadline,
                "consume: {msgs} of {expected} messages after 300 s"
            );
        }
    }
    let last = Instant::now();
    // SAFETY: q is destroyed once, before the consumer it belongs to.
    unsafe { rdsys::rd_kafka_queue_destroy(q) };
    assert_eq!(
        msgs as i64, expected,
        "consumed fewer messages than the topic holds"
    );
    ConsumeResult {
        msgs,
        bytes,
        secs: (last - t0).as_secs_f64(),
    }
}

#[derive(Clone, Debug, Default)]
pub struct LatencyResult {
    pub sent: u64,
    pub received: u64,
    pub measured: u64,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Sends `rate` msg/s of `size` bytes for `secs` (after 1 s of warm-up that is not measured),
/// each carrying its send time; a consumer thread of this process records receive - send.
pub fn e2e_latency(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    size: usize,
    rate: f64,
    secs: f64,
) -> LatencyResult {
    create_topic(bootstrap, topic, partitions);
    let warmup = rate as u64; // the first second
    let total = warmup + (rate * secs) as u64;
    let done = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let (bs, tp, d2, r2) = (
        bootstrap.to_string(),
        topic.to_string(),
        done.clone(),
        ready.clone(),
    );
    let consumer_thread = thread::spawn(move || {
        let c = consumer(&bs, "bench-latency", &[]);
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&tp, p, Offset::Beginning).unwrap();
        }
        c.assign(&tpl).expect("assign");
        // The consumer's first fetches are in flight before the producer starts.
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(1500) {
            let _ = c.poll(Duration::from_millis(100));
        }
        r2.store(true, Ordering::SeqCst);
        let mut lat = Vec::with_capacity(total as usize);
        let mut received = 0u64;
        let mut done_at: Option<Instant> = None;
        while received < total {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                let now = now_ns();
                let p = m.payload().unwrap_or(&[]);
                if p.len() >= 16 {
                    let sent = u64::from_le_bytes(p[0..8].try_into().unwrap());
                    let seq = u64::from_le_bytes(p[8..16].try_into().unwrap());
                    received += 1;
                    if seq >= warmup {
                        lat.push(now.saturating_sub(sent) as f64 / 1e6);
                    }
                }
            }
            if d2.load(Ordering::SeqCst) {
                let at = *done_at.get_or_insert_with(Instant::now);
                if at.elapsed() > Duration::from_secs(15) {
                    break;
                }
            }
        }
        (received, lat)
    });
    while !ready.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(10));
    }
    let mut cfg = producer_config(bootstrap, "all", "none");
    // As Kafka's own EndToEndLatency tool: no lingering, so the figure is the broker's and
    // the network's, not the client's batching delay.
    cfg.set("linger.ms", "0");
    let producer: BaseProducer<ProdCtx> = cfg
        .create_with_context(ProdCtx::default())
        .expect("producer");
    wait_metadata(producer.client(), topic, partitions);
    let pool = payloads(size, 1024);
    let mut buf = vec![0u8; size.max(16)];
    let t0 = Instant::now();
    let interval_ns = 1e9 / rate;
    let mut i = 0u64;
    while i < total {
        let due = t0 + Duration::from_nanos((i as f64 * interval_ns) as u64);
        let now = Instant::now();
        if due > now {
            producer.poll(Duration::ZERO);
            thread::sleep(due - now);
            continue;
        }
        buf[..size].copy_from_slice(&pool[(i % 1024) as usize]);
        buf[0..8].copy_from_slice(&now_ns().to_le_bytes());
        buf[8..16].copy_from_slice(&i.to_le_bytes());
        match producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&buf[..size.max(16)])) {
            Ok(()) => i += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => panic!("send: {e}"),
        }
    }
    let send_secs = t0.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(60)).expect("flush");
    done.store(true, Ordering::SeqCst);
    let (received, mut lat) = consumer_thread.join().expect("consumer thread");
    lat.sort_by(f64::total_cmp);
    LatencyResult {
        sent: total,
        received,
        measured: lat.len() as u64,
        rate: total as f64 / send_secs,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        p999_ms: percentile(&lat, 99.9),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
    }
}
