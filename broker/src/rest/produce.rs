//! Producing over HTTP: the records of one request (or of what a stream has delivered so far)
//! are given partitions as the Java producer gives them (the asked-for partition, else the
//! key's murmur2 hash, else one partition for all the unkeyed records of the round, as its
//! sticky partitioner does), written as one batch per partition and sent to each partition's
//! leader in one Produce request per leader (acks=all), all leaders at once. Errors that new
//! metadata resolves (a moved leadership) are retried on the next image; each record gets its
//! own delivery report.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::error::{is_retriable, RestError};
use super::records::{self, ProducerRecord};
use super::RestState;
use crate::error_code;

const PRODUCE_VERSION: i16 = 9;
/// How long a leader has for acks=all.
const ACKS_TIMEOUT_MS: i32 = 30_000;
/// Tries of a partition whose leader moved (each after the next metadata image, or a pause).
const ATTEMPTS: u32 = 5;
/// Records of one partition are sent in batches of at most this many payload bytes, well
/// under the default message.max.bytes (a single larger record goes alone and the broker
/// judges it against the topic's max.message.bytes).
const BATCH_BYTES: usize = 512 * 1024;

/// Where a produced record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
    /// CreateTime, or the broker's LogAppendTime when the topic uses it.
    pub timestamp: i64,
}

pub type Report = Result<Delivery, RestError>;

/// Chooses the partition of each record: `None` where the asked-for one does not exist.
pub fn assign_partitions(records: &[ProducerRecord], partitions: i32, sticky: i32) -> Vec<Option<i32>> {
    records
        .iter()
        .map(|r| match (r.partition, &r.key) {
            (Some(p), _) => (p < partitions).then_some(p),
            (None, Some(key)) => Some(records::key_partition(key, partitions)),
            (None, None) => Some(sticky),
        })
        .collect()
}

/// Groups record indexes by partition, in order, cut into batches of at most [`BATCH_BYTES`].
fn batches(records: &[ProducerRecord], assigned: &[Option<i32>]) -> Vec<(i32, Vec<usize>)> {
    let mut by_partition: BTreeMap<i32, Vec<Vec<usize>>> = BTreeMap::new();
    let mut sizes: BTreeMap<i32, usize> = BTreeMap::new();
    for (i, p) in assigned.iter().enumerate() {
        let Some(p) = *p else { continue };
        let size = records[i].payload_bytes() + 64;
        let chunks = by_partition.entry(p).or_default();
        let used = sizes.entry(p).or_default();
        if chunks.is_empty() || (*used + size > BATCH_BYTES && !chunks.last().is_some_and(Vec::is_empty)) {
            chunks.push(Vec::new());
            *used = 0;
        }
        *used += size;
        if let Some(last) = chunks.last_mut() {
            last.push(i);
        }
    }
    // Waves: the first batch of every partition, then the second of those with more, ...
    let mut out = Vec::new();
    let mut wave = 0;
    loop {
        let mut any = false;
        for (p, chunks) in &by_partition {
            if let Some(c) = chunks.get(wave) {
                out.push((*p, c.clone()));
                any = true;
            }
        }
        if !any {
            return out;
        }
        wave += 1;
    }
}

static STICKY: AtomicUsize = AtomicUsize::new(0);

/// Produces `records` to `topic` and reports on each, in order.
pub async fn produce(state: &RestState, topic: &str, records: &[ProducerRecord]) -> Vec<Report> {
    let image = state.broker.image();
    let Some(t) = image.topic(topic) else {
        return records.iter().map(|_| Err(RestError::unknown_topic(topic))).collect();
    };
    let partitions = t.partitions.len() as i32;
    let sticky = (STICKY.fetch_add(1, Ordering::Relaxed) % partitions.max(1) as usize) as i32;
    let assigned = assign_partitions(records, partitions, sticky);
    let now = crate::api::now_ms();
    let timestamps: Vec<i64> = records.iter().map(|r| r.timestamp.unwrap_or(now)).collect();
    let mut reports: Vec<Option<Report>> = assigned
        .iter()
        .zip(records)
        .map(|(p, r)| match p {
            Some(_) => None,
            None => Some(Err(RestError::unknown_partition(topic, r.partition.unwrap_or(-1)))),
        })
        .collect();
    let all = batches(records, &assigned);
    // Each wave sends at most one batch per partition (one per partition per Produce request).
    let mut pending: Vec<(i32, Vec<usize>)> = Vec::new();
    let mut rest = all.into_iter().peekable();
    while rest.peek().is_some() || !pending.is_empty() {
        if pending.is_empty() {
            let mut seen = std::collections::HashSet::new();
            while let Some((p, _)) = rest.peek() {
                if !seen.insert(*p) {
                    break;
                }
                pending.extend(rest.next());
            }
        }
        let wave = std::mem::take(&mut pending);
        send_wave(state, topic, records, &timestamps, wave, &mut reports).await;
    }
    let metrics = &state.broker.metrics;
    let mut delivered = (0u64, 0u64);
    for (r, rec) in reports.iter().zip(records) {
        if matches!(r, Some(Ok(_))) {
            delivered.0 += 1;
            delivered.1 += rec.payload_bytes() as u64;
        }
    }
    crate::metrics::add(&metrics.rest_records_in, delivered.0);
    crate::metrics::add(&metrics.rest_bytes_in, delivered.1);
    reports
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(RestError::from_kafka(error_code::UNKNOWN_SERVER_ERROR, topic, -1, Some("no answer")))))
        .collect()
}

/// Sends one batch per partition of `wave` to the partitions' leaders, retrying the
/// partitions whose leadership moved, and fills in their records' reports.
async fn send_wave(
    state: &RestState,
    topic: &str,
    records: &[ProducerRecord],
    timestamps: &[i64],
    wave: Vec<(i32, Vec<usize>)>,
    reports: &mut [Option<Report>],
) {
    let encoded: BTreeMap<i32, (Vec<usize>, bytes::Bytes)> = wave
        .into_iter()
        .map(|(p, idx)| {
            let rs: Vec<(&ProducerRecord, i64)> = idx.iter().map(|&i| (&records[i], timestamps[i])).collect();
            (p, (idx, bytes::Bytes::from(records::encode(&rs))))
        })
        .collect();
    let mut todo: Vec<i32> = encoded.keys().copied().collect();
    let mut images = state.broker.controller.subscribe();
    for attempt in 1..=ATTEMPTS {
        let image = state.broker.image();
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        let mut outcome: BTreeMap<i32, (i16, i64, i64, Option<String>)> = BTreeMap::new();
        for &p in &todo {
            match image.partition(topic, p).map(|pi| pi.leader) {
                Some(l) if l >= 0 => by_leader.entry(l).or_default().push(p),
                Some(_) => {
                    outcome.insert(p, (error_code::LEADER_NOT_AVAILABLE, -1, -1, None));
                }
                None => {
                    outcome.insert(p, (error_code::UNKNOWN_TOPIC_OR_PARTITION, -1, -1, None));
                }
            }
        }
        let sends = by_leader.into_iter().map(|(leader, ps)| {
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(ACKS_TIMEOUT_MS)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_data(
                        ps.iter()
                            .filter_map(|p| encoded.get(p).map(|(_, b)| PartitionProduceData::default().with_index(*p).with_records(Some(b.clone()))))
                            .collect(),
                    )]);
            async move {
                let timeout = Duration::from_millis(ACKS_TIMEOUT_MS as u64 + 5_000);
                let r: Result<ProduceResponse, _> = state.client.call(leader, ApiKey::Produce, PRODUCE_VERSION, &request, timeout).await;
                (ps, r)
            }
        });
        for (ps, answer) in futures_util::future::join_all(sends).await {
            match answer {
                Ok(resp) => {
                    for pr in resp.responses.iter().flat_map(|t| &t.partition_responses) {
                        let msg = pr.error_message.as_ref().map(|m| m.to_string());
                        outcome.insert(pr.index, (pr.error_code, pr.base_offset, pr.log_append_time_ms, msg));
                    }
                    for p in ps {
                        outcome.entry(p).or_insert((error_code::UNKNOWN_SERVER_ERROR, -1, -1, Some("the leader did not answer for this partition".into())));
                    }
                }
                Err(e) => {
                    tracing::debug!(target: "kafka.rest", topic, error = %e, "produce to the leader failed");
                    for p in ps {
                        outcome.insert(p, (error_code::REQUEST_TIMED_OUT, -1, -1, Some(e.to_string())));
                    }
                }
            }
        }
        todo.clear();
        for (p, (code, base, append_time, msg)) in outcome {
            let Some((idx, _)) = encoded.get(&p) else { continue };
            if code != 0 && is_retriable(code) && attempt < ATTEMPTS {
                todo.push(p);
                continue;
            }
            for (j, &i) in idx.iter().enumerate() {
                reports[i] = Some(match code {
                    0 => Ok(Delivery { partition: p, offset: base + j as i64, timestamp: if append_time >= 0 { append_time } else { timestamps[i] } }),
                    c => Err(RestError::from_kafka(c, topic, p, msg.as_deref())),
                });
            }
        }
        if todo.is_empty() {
            return;
        }
        // A new image (the leadership moved), or a pause growing with each try.
        let _ = tokio::time::timeout(Duration::from_millis(100 * u64::from(attempt)), images.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(partition: Option<i32>, key: Option<&[u8]>, size: usize) -> ProducerRecord {
        ProducerRecord { partition, key: key.map(<[u8]>::to_vec), value: Some(vec![0; size]), key_type: None, value_type: None, headers: vec![], timestamp: None }
    }

    #[test]
    fn partitions_as_the_java_producer_chooses_them() {
        let rs = [rec(Some(2), Some(b"x"), 1), rec(None, Some(b"foobar"), 1), rec(None, None, 1), rec(Some(9), None, 1)];
        // murmur2("foobar") = -790332482: & 0x7fffffff = 1357151166, % 4 = 2.
        assert_eq!(assign_partitions(&rs, 4, 1), vec![Some(2), Some(2), Some(1), None]);
    }

    #[test]
    fn batches_keep_record_order_and_size_bounds() {
        let rs: Vec<ProducerRecord> = (0..10).map(|i| rec(Some(i % 2), None, 200 * 1024)).collect();
        let assigned: Vec<Option<i32>> = rs.iter().map(|r| r.partition).collect();
        let b = batches(&rs, &assigned);
        // Two 200 KiB records per batch; partition 0 then 1 in each wave.
        assert_eq!(b, vec![(0, vec![0, 2]), (1, vec![1, 3]), (0, vec![4, 6]), (1, vec![5, 7]), (0, vec![8]), (1, vec![9])]);
        let huge = [rec(Some(0), None, 2 << 20), rec(Some(0), None, 1)];
        assert_eq!(batches(&huge, &[Some(0), Some(0)]), vec![(0, vec![0]), (0, vec![1])]);
    }
}
