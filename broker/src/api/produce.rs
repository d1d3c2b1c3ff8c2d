//! Produce: validate each partition's record batches, append them, and acknowledge per the
//! request's acks (0: no response, 1: after the append and any policy fsync, -1: once every
//! in-sync replica has the records, within the request's timeout; refused up front with
//! NOT_ENOUGH_REPLICAS when the ISR is below min.insync.replicas).
use std::sync::Arc;

use kafka_protocol::messages::produce_response::{BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{now_ms, str_bytes, RequestContext};
use crate::error_code;
use crate::broker::Broker;
use crate::cluster::partition::Appended;
use crate::cluster::PartitionError;
use crate::log::record_batch::BatchError;
use crate::metrics::{BrokerMetrics, TopicStats};
use crate::telemetry::kafka as spans;
use std::sync::atomic::Ordering;
use tokio::task::JoinSet;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = request.acks;
    let timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    let refuse_all = if !matches!(acks, 0 | 1 | -1) {
        Some((error_code::INVALID_REQUIRED_ACKS, "acks must be 0, 1 or -1 (all)"))
    } else if request.transactional_id.is_some() {
        Some((error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactions are not supported by this broker yet"))
    } else {
        None
    };
    // Responses are built in request order; appends to different partitions run concurrently
    // so that their fsyncs (with log.flush.interval.messages=1) overlap.
    let mut responses: Vec<TopicProduceResponse> = Vec::with_capacity(request.topic_data.len());
    let mut appends: JoinSet<Outcome> = JoinSet::new();
    for (ti, topic) in request.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for (pi, pd) in topic.partition_data.into_iter().enumerate() {
            let base = PartitionProduceResponse::default().with_index(pd.index);
            let refusal = match (refuse_all, broker.leader_partition(&name, pd.index), pd.records) {
                (Some((code, message)), _, _) => Some((code, Some(message))),
                (None, Err(code), _) => Some((code, None)),
                (None, Ok(_), None) => Some((error_code::INVALID_REQUEST, Some("a produce partition needs records"))),
                // KIP-110: zstd needs Produce v7; older clients cannot have meant it.
                (None, Ok(_), Some(records)) if version < 7 && crate::log::record_batch::first_zstd_batch(&records).is_some() => {
                    Some((error_code::UNSUPPORTED_COMPRESSION_TYPE, Some("Produce requests below version 7 may not use zstd compression")))
                }
                (None, Ok(partition), Some(records)) => {
                    let trace = ctx.trace.clone();
                    // Only Produce v0-2 can carry the old formats that are converted (and counted).
                    let conversions = (broker.metrics.enabled && version < 3).then(|| broker.topic_stats(&name)).flatten();
                    appends.spawn(async move {
                        // Produce v0-2 may carry magic 0/1 message sets: stored as one v2 batch.
                        // BytesInPerSec counts what the producer sent, before any conversion.
                        let received = records.len();
                        let converted = version < 3 && crate::log::legacy_format::is_legacy(&records);
                        let records = if converted {
                            match up_convert(records).await {
                                Ok(batch) => batch,
                                Err(e) => return (ti, pi, Err(e), received, partition),
                            }
                        } else {
                            records
                        };
                        let span = trace.map(|t| spans::log_append_span(&t, &partition.topic, partition.index, &records));
                        // The local append (and its fsync) here; an acks=all wait for the
                        // followers comes after, without the handler slot.
                        let result = if acks == -1 {
                            partition.append_for_acks_all(&records, now_ms()).await
                        } else {
                            partition.append(&records, now_ms()).await
                        };
                        if let Some(span) = span {
                            spans::finish_log_append(span, &partition.topic, partition.index, result.as_ref());
                        }
                        if let Err(e) = &result {
                            tracing::debug!(target: "kafka.request.logger", partition = %partition.name(), error = %e, "produce refused");
                        }
                        // Kafka counts conversions as LogValidator appends them.
                        if let (true, Ok(a), Some(stats)) = (converted, &result, &conversions) {
                            TopicStats::add(&stats.produce_conversions, a.records);
                        }
                        (ti, pi, result, received, partition)
                    });
                    None
                }
            };
            partitions.push(match refusal {
                Some((code, message)) => base.with_error_code(code).with_error_message(message.map(str_bytes)),
                None => awaiting_append(base),
            });
        }
        responses.push(TopicProduceResponse::default().with_name(topic.name).with_partition_responses(partitions));
    }
    let recording = broker.metrics.enabled;
    // Each topic's meters, looked up once per request (empty with metrics off).
    let stats = if recording { count_produce_requests(broker, &responses) } else { Vec::new() };
    let waiting = appends.len() as i64;
    broker.metrics.purgatory_produce.fetch_add(waiting, Ordering::Relaxed);
    let mut outcomes = joined(&mut appends).await;
    if acks == -1 {
        // acks=all: every appended partition not yet on its in-sync followers waits for them,
        // together, and without the handler slot (Kafka's produce purgatory; RemoteTimeMs).
        let mut waits: JoinSet<Outcome> = JoinSet::new();
        for (ti, pi, result, bytes, partition) in std::mem::take(&mut outcomes) {
            match result {
                Ok(appended) => match partition.replicated_now(appended) {
                    Some(decided) => outcomes.push((ti, pi, decided, bytes, partition)),
                    None => {
                        waits.spawn(async move {
                            let result = partition.replicated(appended, timeout).await;
                            (ti, pi, result, bytes, partition)
                        });
                    }
                },
                Err(e) => outcomes.push((ti, pi, Err(e), bytes, partition)),
            }
        }
        if !waits.is_empty() {
            outcomes.extend(crate::network::handler_pool::remote(joined(&mut waits)).await);
        }
    }
    let mut completed = 0i64;
    for (ti, pi, result, bytes, _) in outcomes {
        completed += 1;
        if let Some(Some(stats)) = stats.get(ti) {
            record_append(&broker.metrics, stats, &result, bytes as u64);
        }
        let topic = &mut responses[ti];
        let slot = &mut topic.partition_responses[pi];
        match result {
            Ok(a) => {
                slot.error_code = error_code::NONE;
                slot.error_message = None;
                slot.base_offset = a.base_offset;
                slot.log_append_time_ms = a.log_append_time;
                slot.log_start_offset = a.log_start_offset;
            }
            Err(e) => {
                slot.error_code = e.code();
                let partition = format!("{}-{}", topic.name.0, slot.index);
                let record_errors = e.record_errors(&partition);
                if record_errors.is_empty() {
                    slot.error_message = Some(str_bytes(&e.to_string()));
                } else {
                    // Kafka's wording (LogValidator), so clients and their users see the same.
                    let first: Vec<String> = record_errors.iter().take(3).map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')")).collect();
                    slot.error_message = Some(str_bytes(&if slot.error_code == error_code::INVALID_TIMESTAMP {
                        "One or more records have been rejected due to invalid timestamp".to_string()
                    } else {
                        format!(
                            "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                            record_errors.len(),
                            first.join(", ")
                        )
                    }));
                    slot.record_errors = record_errors
                        .into_iter()
                        .map(|(i, m)| BatchIndexAndErrorMessage::default().with_batch_index(i).with_batch_index_error_message(Some(str_bytes(&m))))
                        .collect();
                }
            }
        }
    }
    broker.metrics.purgatory_produce.fetch_sub(waiting, Ordering::Relaxed);
    if completed < waiting && recording {
        for (t, stats) in responses.iter().zip(&stats) {
            let lost = t.partition_responses.iter().filter(|p| is_awaiting_append(p)).count() as u64;
            if let Some(stats) = stats {
                TopicStats::add(&stats.failed_produce, lost);
            }
        }
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// A partition's append: (topic index, partition index, result, record bytes, partition).
type Outcome = (usize, usize, Result<Appended, PartitionError>, usize, Arc<crate::cluster::Partition>);

/// Every task's outcome; a task that failed to complete leaves its partition at the error
/// `awaiting_append` put there (counted as lost by the caller).
async fn joined(tasks: &mut JoinSet<Outcome>) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => tracing::error!(target: "kafka.server.ReplicaManager", error = ?e, "a produce append task failed to complete; answering UNKNOWN_SERVER_ERROR"),
        }
    }
    outcomes
}

/// Up-converts an old-format message set (decompression and recompression: a blocking thread).
async fn up_convert(records: bytes::Bytes) -> Result<bytes::Bytes, PartitionError> {
    let converted = tokio::task::spawn_blocking(move || {
        crate::log::format_conversion::up_convert(&records, crate::log::records::DEFAULT_MAX_DECOMPRESSED)
    })
    .await
    .map_err(|_| PartitionError::TaskAborted { what: "message format conversion", partition: String::new() })?;
    Ok(bytes::Bytes::from(converted?))
}

const APPEND_DID_NOT_COMPLETE: &str = "the append task did not complete (the broker logged why); the records may or may not have been written: retry";

/// A partition whose append has been started: it answers UNKNOWN_SERVER_ERROR unless the
/// append's result replaces that, so an append task that panics or is cancelled is never
/// answered as a success at offset 0.
fn awaiting_append(base: PartitionProduceResponse) -> PartitionProduceResponse {
    base.with_error_code(error_code::UNKNOWN_SERVER_ERROR).with_error_message(Some(str_bytes(APPEND_DID_NOT_COMPLETE)))
}

fn is_awaiting_append(p: &PartitionProduceResponse) -> bool {
    p.error_code == error_code::UNKNOWN_SERVER_ERROR && p.error_message.as_deref() == Some(APPEND_DID_NOT_COMPLETE)
}

/// Kafka counts TotalProduceRequests per topic-partition a request addresses; those refused
/// up front count as failed here, the appends started (awaiting_append) when they end.
/// Returns each topic's meters (None for a topic that does not exist), for those ends.
#[inline(never)]
fn count_produce_requests(broker: &Broker, responses: &[TopicProduceResponse]) -> Vec<Option<Arc<TopicStats>>> {
    let image = broker.image();
    responses
        .iter()
        .map(|t| {
            let stats = image.topic(&t.name.0).is_some().then(|| broker.metrics.topic(&t.name.0))?;
            TopicStats::add(&stats.produce_requests, t.partition_responses.len() as u64);
            let refused = t.partition_responses.iter().filter(|p| p.error_code != 0 && !is_awaiting_append(p)).count() as u64;
            TopicStats::add(&stats.failed_produce, refused);
            Some(stats)
        })
        .collect()
}

/// BrokerTopicMetrics and LogFlushStats for one partition's append, done or failed.
#[inline(never)]
fn record_append(metrics: &BrokerMetrics, stats: &TopicStats, result: &Result<Appended, PartitionError>, bytes: u64) {
    match result {
        Ok(a) => {
            if let Some(d) = a.flushed_in {
                metrics.log_flush.record(d.as_micros() as u64);
            }
            if !a.duplicate {
                TopicStats::add(&stats.messages_in, a.records);
                TopicStats::add(&stats.bytes_in, bytes);
            }
        }
        Err(e) => {
            TopicStats::add(&stats.failed_produce, 1);
            TopicStats::add(&stats.bytes_rejected, bytes);
            match e {
                PartitionError::Batch(BatchError::UnsupportedMagic { .. }) => TopicStats::add(&stats.invalid_magic, 1),
                PartitionError::Batch(BatchError::RecordWithoutKey { indexes }) => TopicStats::add(&stats.no_key_compacted, indexes.len() as u64),
                _ => match e.code() {
                    error_code::CORRUPT_MESSAGE => TopicStats::add(&stats.invalid_crc, 1),
                    error_code::OUT_OF_ORDER_SEQUENCE_NUMBER => TopicStats::add(&stats.invalid_sequence, 1),
                    _ => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_batches_count_under_their_brokertopicmetrics_meter() {
        let metrics = BrokerMetrics::new(true, crate::metrics::Profile::Confluent, 1);
        let stats = metrics.topic("t");
        let refuse = |e: BatchError| record_append(&metrics, &stats, &Err(PartitionError::Batch(e)), 100);
        refuse(BatchError::RecordWithoutKey { indexes: vec![0, 2, 5] });
        refuse(BatchError::UnsupportedMagic { magic: 3 });
        refuse(BatchError::CrcMismatch { stored: 1, computed: 2 });
        let n = |pair: &[Arc<crate::metrics::Counter>; 2]| (pair[0].load(Ordering::Relaxed), pair[1].load(Ordering::Relaxed));
        assert_eq!(n(&stats.no_key_compacted), (3, 3), "per record, for the topic and all topics");
        assert_eq!(n(&stats.invalid_magic), (1, 1));
        assert_eq!(n(&stats.invalid_crc), (1, 1));
        assert_eq!(n(&stats.failed_produce), (3, 3));
        assert_eq!(n(&stats.bytes_rejected), (300, 300));
    }

    #[test]
    fn a_partition_whose_append_never_reports_answers_an_error_not_success_at_offset_0() {
        let p = awaiting_append(PartitionProduceResponse::default().with_index(3));
        assert_eq!(p.error_code, error_code::UNKNOWN_SERVER_ERROR);
        assert!(is_awaiting_append(&p));
        assert!(!is_awaiting_append(&PartitionProduceResponse::default()));
    }
}
