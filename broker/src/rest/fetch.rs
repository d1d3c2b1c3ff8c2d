//! Reading one partition over HTTP: a Fetch (as a consumer, read_uncommitted) sent through the
//! proxy's client to the partition's leader, its record batches decoded with the broker's own
//! batch code (every codec, decompression capped), and the records from the asked-for offset
//! on kept until `count` records or `max_bytes` of keys and values. Errors that new metadata
//! resolves (a moved leadership) are retried on the next image, as in produce.
use std::time::Duration;

use axum::http::StatusCode;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::error::{is_retriable, RestError};
use super::RestState;
use crate::error_code;
use crate::log::record_batch::{BatchHeader, TimestampType, HEADER_SIZE};
use crate::log::records::{BatchRecords, RecordError, DEFAULT_MAX_DECOMPRESSED};

/// Fetch v12: topics by name, the newest version before topic ids.
const FETCH_VERSION: i16 = 12;
const ATTEMPTS: u32 = 5;
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Confluent's code for "offset out of range" is not defined; the status says it (416 would
/// mislead HTTP caches), the code is the status.
const OFFSET_OUT_OF_RANGE_STATUS: StatusCode = StatusCode::BAD_REQUEST;

/// One record as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// What one read returned: the records and the offset to ask for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub records: Vec<FetchedRecord>,
    pub next_offset: i64,
}

/// Keeps, from the complete batches of `data` (a Fetch answer's records; a trailing partial
/// batch is ignored, as consumers ignore it), the records at `from` and after: at most `count`,
/// and no more once their keys and values reach `max_bytes` (the first record is always kept,
/// so a large record cannot stall a reader). Control batches (transaction markers) are passed
/// over. `next_offset` is the offset after the last record kept or batch passed.
pub fn decode(data: &[u8], from: i64, count: usize, max_bytes: usize) -> Result<Fetched, RecordError> {
    let mut out = Vec::new();
    let mut next = from;
    let mut bytes = 0usize;
    let mut pos = 0usize;
    while data.len() - pos >= HEADER_SIZE && out.len() < count {
        let header = BatchHeader::parse(&data[pos..])?;
        let size = header.total_size();
        if size > data.len() - pos {
            break;
        }
        let batch = &data[pos..pos + size];
        pos += size;
        if header.next_offset() <= next {
            continue;
        }
        if header.is_control() {
            next = header.next_offset();
            continue;
        }
        let decoded = BatchRecords::decode(batch, DEFAULT_MAX_DECOMPRESSED)?;
        let mut batch_done = true;
        for r in decoded.iter() {
            let r = r?;
            if r.offset < next {
                continue;
            }
            let size = r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len);
            if out.len() >= count || (!out.is_empty() && bytes + size > max_bytes) {
                batch_done = false;
                break;
            }
            bytes += size;
            out.push(FetchedRecord {
                offset: r.offset,
                timestamp: r.timestamp,
                timestamp_type: header.timestamp_type(),
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
            });
            next = r.offset + 1;
        }
        if !batch_done || bytes >= max_bytes {
            break;
        }
        // Offsets the batch covers past its last record (compacted away) are passed too.
        next = next.max(header.next_offset());
    }
    Ok(Fetched { records: out, next_offset: next })
}

/// Reads up to `count` records of `topic`-`partition` from `offset` (at most `max_bytes`).
/// An offset past the high watermark or before the log start is a 400 naming both.
pub async fn fetch(state: &RestState, topic: &str, partition: i32, offset: i64, count: usize, max_bytes: usize) -> Result<Fetched, RestError> {
    let mut images = state.broker.controller.subscribe();
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes as i32)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.to_string()))).with_partitions(vec![
            FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(max_bytes as i32),
        ])]);
    let mut last = RestError::from_kafka(error_code::LEADER_NOT_AVAILABLE, topic, partition, None);
    for attempt in 1..=ATTEMPTS {
        let image = state.broker.image();
        let Some(t) = image.topic(topic) else { return Err(RestError::unknown_topic(topic)) };
        let Some(p) = t.partitions.get(partition as usize) else { return Err(RestError::unknown_partition(topic, partition)) };
        let leader = p.leader;
        drop(image);
        let code = if leader < 0 {
            error_code::LEADER_NOT_AVAILABLE
        } else {
            match state.client.call::<_, FetchResponse>(leader, ApiKey::Fetch, FETCH_VERSION, &request, FETCH_TIMEOUT).await {
                Err(e) => {
                    last = RestError::new(StatusCode::INTERNAL_SERVER_ERROR, super::error::KAFKA_RETRIABLE, e.to_string());
                    error_code::REQUEST_TIMED_OUT
                }
                Ok(resp) => {
                    let Some(pr) = resp.responses.iter().flat_map(|t| &t.partitions).find(|p| p.partition_index == partition) else {
                        return Err(RestError::from_kafka(error_code::UNKNOWN_SERVER_ERROR, topic, partition, Some("the leader did not answer for this partition")));
                    };
                    match pr.error_code {
                        error_code::NONE => {
                            let data = pr.records.as_deref().unwrap_or_default();
                            let fetched = decode(data, offset, count, max_bytes)
                                .map_err(|e| RestError::from_kafka(e.kafka_error_code(), topic, partition, Some(&e.to_string())))?;
                            return Ok(fetched);
                        }
                        error_code::OFFSET_OUT_OF_RANGE => {
                            let range = if pr.log_start_offset >= 0 && pr.high_watermark >= 0 {
                                format!(" (the partition holds offsets {} to {})", pr.log_start_offset, pr.high_watermark)
                            } else {
                                String::new()
                            };
                            return Err(RestError::status(
                                OFFSET_OUT_OF_RANGE_STATUS,
                                format!("Offset {offset} is out of range for {topic}-{partition}{range}."),
                            ));
                        }
                        c => {
                            last = RestError::from_kafka(c, topic, partition, None);
                            c
                        }
                    }
                }
            }
        };
        if !is_retriable(code) || attempt == ATTEMPTS {
            return Err(last);
        }
        let _ = tokio::time::timeout(Duration::from_millis(100 * u64::from(attempt)), images.changed()).await;
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::Compression;
    use crate::log::test_util::{encode_batch, BatchSpec};

    /// A batch of `values` (key "k") at `base`, compressed with `codec`.
    fn batch(base: i64, values: &[&[u8]], codec: Compression) -> Vec<u8> {
        let mut spec = BatchSpec::values(values).with_compression(codec);
        spec.base_offset = base;
        for r in &mut spec.records {
            r.key = Some(b"k".to_vec());
        }
        encode_batch(&spec)
    }

    #[test]
    fn reads_from_inside_a_batch_across_codecs() {
        for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let mut data = batch(0, &[b"a", b"b", b"c"], codec);
            data.extend(batch(3, &[b"d", b"e"], codec));
            let f = decode(&data, 1, 3, 1 << 20).unwrap();
            let values: Vec<&[u8]> = f.records.iter().map(|r| r.value.as_deref().unwrap()).collect();
            assert_eq!(values, vec![&b"b"[..], b"c", b"d"], "{codec:?}");
            assert_eq!((f.records[0].offset, f.records[0].timestamp, f.next_offset), (1, 1001, 4));
            assert_eq!(f.records[0].key.as_deref(), Some(&b"k"[..]));
        }
    }

    #[test]
    fn bytes_cap_keeps_at_least_one_record_and_a_partial_batch_is_ignored() {
        let mut data = batch(10, &[&[1; 100], &[2; 100]], Compression::None);
        let f = decode(&data, 10, 10, 50).unwrap();
        assert_eq!((f.records.len(), f.next_offset), (1, 11));
        let whole = data.len();
        data.extend(batch(12, &[b"x"], Compression::None));
        let f = decode(&data[..whole + 30], 10, 10, 1 << 20).unwrap();
        assert_eq!((f.records.len(), f.next_offset), (2, 12));
        let empty = decode(&[], 7, 10, 100).unwrap();
        assert_eq!((empty.records.len(), empty.next_offset), (0, 7));
    }

    #[test]
    fn control_batches_are_passed_over() {
        let mut marker = BatchSpec::values(&[b"marker"]);
        marker.base_offset = 1;
        marker.attributes_extra = 0x20; // control
        let mut data = batch(0, &[b"a"], Compression::None);
        data.extend(encode_batch(&marker));
        data.extend(batch(2, &[b"b"], Compression::None));
        let f = decode(&data, 0, 10, 1 << 20).unwrap();
        assert_eq!(f.records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(f.next_offset, 3);
        let only_marker = decode(&data[..data.len() - batch(2, &[b"b"], Compression::None).len()], 1, 10, 1 << 20).unwrap();
        assert_eq!((only_marker.records.len(), only_marker.next_offset), (0, 2));
    }

    #[test]
    fn corrupt_records_are_an_error_not_a_panic() {
        let mut data = batch(0, &[b"abc", b"def"], Compression::Lz4);
        let n = data.len();
        for b in &mut data[HEADER_SIZE..n] {
            *b ^= 0x5a;
        }
        assert!(decode(&data, 0, 10, 1 << 20).is_err());
        assert!(decode(&[0xff; 200], 0, 10, 100).is_err());
    }
}
