//! Fetch: whole record batches from each requested partition, within per-partition and
//! per-request byte limits, long-polling until min_bytes arrive or max_wait_ms passes.
//!
//! Each pass plans every partition's read under its log's lock (cheap: index lookups), then
//! preads the planned bytes without any lock, on a blocking thread when they are many, so a
//! 50 MB fetch neither holds a partition's lock nor a tokio worker while it reads.
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::RequestContext;
use crate::broker::Broker;
use crate::cluster::{DelayedFetch, Partition};
use crate::error_code;
use crate::log::{format_conversion, FetchSlice, LogError, ReadPlan};
use crate::metrics::TopicStats;
use std::sync::atomic::Ordering;

/// Longest wait honoured, whatever the client asks.
const MAX_WAIT_CAP_MS: u64 = 30_000;
/// A pass that reads at least this much does its preads on a blocking thread. Below it the
/// pread (a page-cache copy of tens of microseconds) costs less than the hand-off.
const BLOCKING_READ_BYTES: usize = 64 * 1024;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, mut request: FetchRequest, version: i16) -> FetchResponse {
    // v13+ name topics by id: read by name, answer by id.
    let known_ids = (version >= 13).then(|| resolve_topic_ids(broker, &mut request));
    let max_wait = Duration::from_millis((request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP_MS));
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let request_max = if version >= 3 { request.max_bytes.max(0) as usize } else { usize::MAX };
    let max_bytes = request_max.min(broker.config.fetch_max_bytes);
    // Registered with the partitions' watchers only once the fetch has to wait.
    let mut delayed: Option<DelayedFetch> = None;
    // A follower (replica_id >= 0) reads up to the log end and reports its position.
    // v15+ carry the replica in ReplicaState (KIP-903).
    let replica_id = if version >= 15 { request.replica_state.replica_id.0 } else { request.replica_id.0 };
    let replica = follower(broker, ctx, replica_id);
    let response = loop {
        let (response, total, errored) = read_once(broker, &request, max_bytes, replica).await;
        let now = tokio::time::Instant::now();
        if total >= min_bytes || errored || now >= deadline {
            break response;
        }
        let Some(watch) = &delayed else {
            // Register, then read again: an append between the read above and the
            // registration would otherwise go unnoticed until the deadline.
            delayed = Some(DelayedFetch::watch(requested_partitions(broker, &request)));
            continue;
        };
        // In the purgatory: waiting for min_bytes or max_wait_ms.
        broker.metrics.purgatory_fetch.fetch_add(1, Ordering::Relaxed);
        // Without the handler slot (RemoteTimeMs), as a delayed fetch frees Kafka's handler thread.
        let woken = crate::network::handler_pool::remote(watch.wait_until(deadline)).await;
        broker.metrics.purgatory_fetch.fetch_sub(1, Ordering::Relaxed);
        if !woken {
            // Timed out: answer with what there is.
            break read_once(broker, &request, max_bytes, replica).await.0;
        }
    };
    let mut response = response;
    if version < 10 && replica.is_none() {
        keep_zstd_from_old_consumers(&mut response);
    }
    if let (Some(magic), None) = (format_conversion::fetch_magic(version), replica) {
        down_convert_for_old_consumer(broker, &mut response, &request, magic).await;
    }
    if broker.metrics.enabled {
        record_topic_stats(broker, &response, replica);
    }
    if let Some(known) = known_ids {
        answer_by_topic_id(&mut response, &request, &known);
    }
    response
}

/// Fetch v13+: each requested topic id becomes its name for the read; whether it is known.
fn resolve_topic_ids(broker: &Broker, request: &mut FetchRequest) -> Vec<bool> {
    let image = broker.image();
    request
        .topics
        .iter_mut()
        .map(|t| match image.topic_by_id(t.topic_id) {
            Some(topic) => {
                t.topic = kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(topic.name.clone()));
                true
            }
            None => {
                t.topic = Default::default();
                false
            }
        })
        .collect()
}

/// Fetch v13+: the response names each topic by the id it was asked by; an unknown id answers
/// UNKNOWN_TOPIC_ID for its partitions, as Kafka.
fn answer_by_topic_id(response: &mut FetchResponse, request: &FetchRequest, known: &[bool]) {
    for (ti, t) in response.responses.iter_mut().enumerate() {
        let Some(asked) = request.topics.get(ti) else { continue };
        t.topic_id = asked.topic_id;
        t.topic = Default::default();
        if !known.get(ti).copied().unwrap_or(false) {
            for p in &mut t.partitions {
                p.error_code = error_code::UNKNOWN_TOPIC_ID;
                p.high_watermark = -1;
                p.records = None;
            }
        }
    }
}

/// KIP-110: a consumer fetching below v10 predates zstd. Its records end before the first zstd
/// batch, and a partition whose first batch is zstd answers UNSUPPORTED_COMPRESSION_TYPE (as
/// Kafka), so it never gets a batch it cannot read. (A topic can hold zstd batches its
/// producers did not send: `compression.type=zstd` recompresses.)
fn keep_zstd_from_old_consumers(response: &mut FetchResponse) {
    for p in response.responses.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        let Some(records) = &p.records else { continue };
        match crate::log::record_batch::first_zstd_batch(records) {
            None => {}
            Some(0) => {
                p.records = None;
                p.error_code = error_code::UNSUPPORTED_COMPRESSION_TYPE;
            }
            Some(at) => p.records = Some(records.slice(..at)),
        }
    }
}

/// Fetch v0-3: a consumer that reads magic 0 or 1 gets its records down-converted (Kafka's
/// RecordsUtil.downConvert), on a blocking thread when they are many. Stored data that cannot
/// be converted answers CORRUPT_MESSAGE for its partition, logged.
async fn down_convert_for_old_consumer(broker: &Broker, response: &mut FetchResponse, request: &FetchRequest, magic: i8) {
    let mut work = Vec::new();
    for (ti, t) in response.responses.iter().enumerate() {
        for (pi, p) in t.partitions.iter().enumerate() {
            let Some(records) = p.records.clone().filter(|r| !r.is_empty()) else { continue };
            let fetch_offset = request
                .topics
                .get(ti)
                .and_then(|rt| rt.partitions.iter().find(|rp| rp.partition == p.partition_index))
                .map_or(0, |rp| rp.fetch_offset);
            work.push((ti, pi, records, fetch_offset));
        }
    }
    let bytes: usize = work.iter().map(|w| w.2.len()).sum();
    let convert = move |work: Vec<(usize, usize, bytes::Bytes, i64)>| -> Vec<(usize, usize, Result<(Vec<u8>, u64), String>)> {
        work.into_iter()
            .map(|(ti, pi, records, from)| (ti, pi, format_conversion::down_convert(&records, magic, from, crate::log::records::DEFAULT_MAX_DECOMPRESSED)))
            .collect()
    };
    // Compressed batches are decompressed and compressed again: never on an async worker.
    let results = if bytes < BLOCKING_READ_BYTES && work.iter().all(|w| format_conversion::is_uncompressed(&w.2)) {
        convert(work)
    } else {
        let slots: Vec<(usize, usize)> = work.iter().map(|w| (w.0, w.1)).collect();
        tokio::task::spawn_blocking(move || convert(work))
            .await
            .unwrap_or_else(|_| slots.into_iter().map(|(ti, pi)| (ti, pi, Err("the conversion task did not complete".to_string()))).collect())
    };
    for (ti, pi, result) in results {
        let t = &mut response.responses[ti];
        let p = &mut t.partitions[pi];
        match result {
            Ok((set, records)) => {
                p.records = Some(bytes::Bytes::from(set));
                if let Some(stats) = broker.metrics.enabled.then(|| broker.topic_stats(&t.topic.0)).flatten() {
                    TopicStats::add(&stats.fetch_conversions, records);
                }
            }
            Err(reason) => {
                tracing::warn!(target: "kafka.server.ReplicaManager", partition = %format!("{}-{}", t.topic.0, p.partition_index), %reason,
                    "cannot down-convert records for a consumer fetching below v4; answering CORRUPT_MESSAGE");
                p.records = None;
                p.error_code = error_code::CORRUPT_MESSAGE;
            }
        }
    }
}

/// The follower a fetch with `replica_id` comes from, if it is one: a live registered broker
/// (not this one) on the inter-broker listener. Anything else that claims a replica id reads
/// as a consumer does: up to the high watermark, moving no replication state (without
/// authentication, a client on the inter-broker listener can still claim a live broker's id).
fn follower(broker: &Broker, ctx: &RequestContext, replica_id: i32) -> Option<i32> {
    if replica_id < 0 {
        return None;
    }
    let ok = replica_id != broker.node_id()
        && ctx.listener == broker.config.cluster.inter_broker_listener_name
        && broker.image().is_live(replica_id);
    if !ok {
        tracing::debug!(target: "kafka.server.ReplicaManager", replica_id, listener = %ctx.listener, peer = %ctx.peer,
            "a fetch claims a replica id it cannot have; served as a consumer fetch");
    }
    ok.then_some(replica_id)
}

fn requested_partitions(broker: &Broker, request: &FetchRequest) -> Vec<Arc<Partition>> {
    request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().filter_map(|p| broker.replicas.partition(t.topic.0.as_str(), p.partition)))
        .collect()
}

/// BytesOut, TotalFetchRequests and FailedFetchRequests per topic (counted per partition, as
/// Kafka does); for a follower's fetch ReplicationBytesOut, and ReassignmentBytesOut for the
/// partitions it is being added to.
#[inline(never)]
fn record_topic_stats(broker: &Broker, response: &FetchResponse, follower: Option<i32>) {
    let image = broker.image();
    for t in &response.responses {
        let Some(stats) = image.topic(&t.topic.0).is_some().then(|| broker.metrics.topic(&t.topic.0)) else { continue };
        let bytes: usize = t.partitions.iter().map(|p| p.records.as_ref().map_or(0, |r| r.len())).sum();
        let failed = t.partitions.iter().filter(|p| p.error_code != 0).count() as u64;
        // Kafka counts bytes sent to followers as ReplicationBytesOut, not BytesOut.
        TopicStats::add(if follower.is_some() { &stats.replication_bytes_out } else { &stats.bytes_out }, bytes as u64);
        if let Some(f) = follower {
            let adding: usize = t
                .partitions
                .iter()
                .filter(|p| image.partition(&t.topic.0, p.partition_index).is_some_and(|i| i.adding_replicas.contains(&f)))
                .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
                .sum();
            TopicStats::add(&stats.reassignment_bytes_out, adding as u64);
        }
        TopicStats::add(&stats.fetch_requests, t.partitions.len() as u64);
        TopicStats::add(&stats.failed_fetch, failed);
    }
}

/// A partition's planned read: where its answer goes in the response, and the plan.
struct PlannedRead {
    topic: usize,
    partition: usize,
    plan: ReadPlan,
    /// Counted against the leader's replication throttle.
    throttled: bool,
}

/// One pass over the requested partitions: (response, record bytes, whether any partition
/// answered with an error).
async fn read_once(broker: &Broker, request: &FetchRequest, max_bytes: usize, replica: Option<i32>) -> (FetchResponse, usize, bool) {
    let now_ms = super::now_ms();
    // Replication throttle (leader side): a follower catching up on a partition listed in the
    // topic's leader.replication.throttled.replicas gets nothing while the quota is spent.
    let image = replica.map(|_| broker.image());
    if replica.is_some() {
        broker.refresh_replication_quotas();
    }
    let quota_spent = replica.is_some() && broker.leader_quota.exceeded(std::time::Instant::now());
    let mut planned_bytes = 0usize;
    let mut errored = false;
    let mut planned: Vec<PlannedRead> = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for (ti, topic) in request.topics.iter().enumerate() {
        let name = topic.topic.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for fp in &topic.partitions {
            let base = PartitionData::default().with_partition_index(fp.partition);
            let partition = match broker.leader_partition(name, fp.partition) {
                Ok(p) => p,
                Err(code) => {
                    errored = true;
                    partitions.push(base.with_error_code(code).with_high_watermark(-1));
                    continue;
                }
            };
            let epoch = partition.leader_epoch();
            if fp.current_leader_epoch >= 0 && fp.current_leader_epoch != epoch {
                errored = true;
                let code = if fp.current_leader_epoch > epoch { error_code::UNKNOWN_LEADER_EPOCH } else { error_code::FENCED_LEADER_EPOCH };
                partitions.push(base.with_error_code(code).with_high_watermark(-1));
                continue;
            }
            // KIP-74: once some data is in the response, stop at the request limit; the first
            // batch is returned whole even when it is larger than the limits.
            let remaining = max_bytes.saturating_sub(planned_bytes);
            let limit = (fp.partition_max_bytes.max(0) as usize).min(remaining);
            if limit == 0 && planned_bytes > 0 {
                partitions.push(without_records(base, &partition));
                continue;
            }
            let throttled = match (replica, &image) {
                (Some(follower), Some(image)) => {
                    let listed = image.topic(name).and_then(|t| t.configs.get("leader.replication.throttled.replicas")).map(String::as_str);
                    crate::cluster::replication_quota::listed(listed, fp.partition, broker.node_id()) && !partition.isr().contains(&follower)
                }
                _ => false,
            };
            let planned_read = match replica {
                Some(_) => partition.plan_follower_read(fp.fetch_offset, limit.max(1)),
                None => partition.plan_read(fp.fetch_offset, limit.max(1)),
            };
            match planned_read {
                Ok((plan, hw)) => {
                    if let Some(follower) = replica {
                        if let Some(change) = partition.on_follower_fetch(follower, fp.fetch_offset, fp.log_start_offset, now_ms) {
                            broker.request_isr_change(partition.clone(), change);
                        }
                    }
                    let base = base.with_high_watermark(hw).with_last_stable_offset(hw).with_log_start_offset(plan.log_start_offset());
                    if throttled && quota_spent {
                        partitions.push(base);
                        continue;
                    }
                    // KIP-74: only the first partition with data may return a first batch
                    // larger than its limit (so the consumer always makes progress); a later
                    // one whose next batch does not fit in what is left is left out, or the
                    // response would exceed the client's fetch.max.bytes.
                    if planned_bytes > 0 && plan.bytes() > limit {
                        partitions.push(base);
                        continue;
                    }
                    planned_bytes += plan.bytes();
                    planned.push(PlannedRead { topic: ti, partition: partitions.len(), plan, throttled });
                    partitions.push(base);
                }
                Err(e) => {
                    errored = true;
                    partitions.push(without_records(base.with_error_code(e.code()), &partition));
                }
            }
        }
        topics.push(FetchableTopicResponse::default().with_topic(topic.topic.clone()).with_partitions(partitions));
    }
    let mut total = 0usize;
    let throttled: Vec<(usize, usize)> = planned.iter().filter(|r| r.throttled).map(|r| (r.topic, r.partition)).collect();
    for (slot, result) in read_planned(planned, planned_bytes).await {
        let data = &mut topics[slot.0].partitions[slot.1];
        match result {
            Ok(slice) => {
                total += slice.records.len();
                if throttled.contains(&slot) {
                    broker.leader_quota.record(slice.records.len() as u64, std::time::Instant::now());
                }
                data.records = Some(slice.records);
            }
            Err(code) => {
                errored = true;
                data.error_code = code;
            }
        }
    }
    (FetchResponse::default().with_session_id(0).with_responses(topics), total, errored)
}

fn without_records(base: PartitionData, partition: &Partition) -> PartitionData {
    let hw = partition.high_watermark();
    base.with_high_watermark(hw).with_last_stable_offset(hw).with_log_start_offset(partition.log_start_offset())
}

/// A planned read's response slot and its records, or the error code to answer with.
type ReadResult = ((usize, usize), Result<FetchSlice, i16>);

/// Runs the planned preads (no lock held), on a blocking thread when they add up to
/// [`BLOCKING_READ_BYTES`] or more.
async fn read_planned(planned: Vec<PlannedRead>, bytes: usize) -> Vec<ReadResult> {
    let run = |planned: Vec<PlannedRead>| -> Vec<ReadResult> {
        planned.into_iter().map(|r| ((r.topic, r.partition), r.plan.read().map_err(read_failed))).collect()
    };
    if bytes < BLOCKING_READ_BYTES {
        return run(planned);
    }
    let slots: Vec<(usize, usize)> = planned.iter().map(|r| (r.topic, r.partition)).collect();
    match tokio::task::spawn_blocking(move || run(planned)).await {
        Ok(results) => results,
        Err(e) => {
            tracing::error!(target: "kafka.server.ReplicaManager", error = %e, "a fetch read task did not complete");
            slots.into_iter().map(|slot| (slot, Err(error_code::UNKNOWN_SERVER_ERROR))).collect()
        }
    }
}

fn read_failed(e: LogError) -> i16 {
    // The error names the segment file.
    tracing::warn!(target: "kafka.server.ReplicaManager", error = %e, "fetch read failed");
    e.kafka_error_code()
}
