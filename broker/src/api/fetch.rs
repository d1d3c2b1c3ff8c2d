//! Fetch: whole record batches from each requested partition, within per-partition and
//! per-request byte limits, long-polling until min_bytes arrive or max_wait_ms passes.
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use crate::error_code;
use crate::broker::Broker;
use super::RequestContext;
use crate::metrics::TopicStats;
use std::sync::atomic::Ordering;

/// Longest wait honoured, whatever the client asks.
const MAX_WAIT_CAP_MS: u64 = 30_000;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: FetchRequest, version: i16) -> FetchResponse {
    let max_wait = Duration::from_millis((request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP_MS));
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let request_max = if version >= 3 { request.max_bytes.max(0) as usize } else { usize::MAX };
    let max_bytes = request_max.min(broker.config.fetch_max_bytes);
    // Subscribe before the first read so an append in between is not missed.
    let mut appends = broker.replicas.subscribe();
    let mut waited = std::time::Duration::ZERO;
    let response = loop {
        let (response, total, errored) = read_once(broker, &request, max_bytes);
        let now = tokio::time::Instant::now();
        if total >= min_bytes || errored || now >= deadline {
            break response;
        }
        // In the purgatory: waiting for min_bytes or max_wait_ms.
        broker.metrics.purgatory_fetch.fetch_add(1, Ordering::Relaxed);
        let woke = tokio::time::timeout_at(deadline, appends.changed()).await;
        broker.metrics.purgatory_fetch.fetch_sub(1, Ordering::Relaxed);
        waited += now.elapsed();
        match woke {
            Ok(Ok(())) => continue,
            // Timed out, or the broker is shutting down: answer with what there is.
            _ => break read_once(broker, &request, max_bytes).0,
        }
    };
    ctx.add_remote(waited);
    if broker.metrics.enabled {
        record_topic_stats(broker, &response);
    }
    response
}

/// BytesOut, TotalFetchRequests and FailedFetchRequests per topic (counted per partition, as
/// Kafka does).
fn record_topic_stats(broker: &Broker, response: &FetchResponse) {
    for t in &response.responses {
        let stats = broker.metrics.topic(&t.topic.0);
        let bytes: usize = t.partitions.iter().map(|p| p.records.as_ref().map_or(0, |r| r.len())).sum();
        let failed = t.partitions.iter().filter(|p| p.error_code != 0).count() as u64;
        TopicStats::add(&stats.bytes_out, bytes as u64);
        TopicStats::add(&stats.fetch_requests, t.partitions.len() as u64);
        TopicStats::add(&stats.failed_fetch, failed);
    }
}

/// One pass over the requested partitions: (response, record bytes, whether any partition
/// answered with an error).
fn read_once(broker: &Broker, request: &FetchRequest, max_bytes: usize) -> (FetchResponse, usize, bool) {
    let mut total = 0usize;
    let mut errored = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
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
            let remaining = max_bytes.saturating_sub(total);
            let limit = (fp.partition_max_bytes.max(0) as usize).min(remaining);
            if limit == 0 && total > 0 {
                partitions.push(
                    base.with_high_watermark(partition.high_watermark())
                        .with_last_stable_offset(partition.high_watermark())
                        .with_log_start_offset(partition.log_start_offset()),
                );
                continue;
            }
            match partition.read(fp.fetch_offset, limit.max(1)) {
                Ok((records, hw, log_start)) => {
                    total += records.len();
                    partitions.push(
                        base.with_high_watermark(hw)
                            .with_last_stable_offset(hw)
                            .with_log_start_offset(log_start)
                            .with_records(Some(records)),
                    );
                }
                Err(e) => {
                    errored = true;
                    partitions.push(
                        base.with_error_code(e.code())
                            .with_high_watermark(partition.high_watermark())
                            .with_last_stable_offset(partition.high_watermark())
                            .with_log_start_offset(partition.log_start_offset()),
                    );
                }
            }
        }
        topics.push(FetchableTopicResponse::default().with_topic(topic.topic.clone()).with_partitions(partitions));
    }
    (FetchResponse::default().with_session_id(0).with_responses(topics), total, errored)
}
