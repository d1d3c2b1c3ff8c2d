//! `GET .../records` of a v2 consumer instance: the assigned partitions get positions (a seek
//! to the beginning or end, else the group's committed offset, else `auto.offset.reset`), then
//! Fetch requests go to every leader at once, as the Java consumer sends them, until records
//! of at least `fetch.min.bytes` arrived, `max_bytes` is reached or the timeout passes. Each
//! partition's position moves on only for the records answered (a seek or a rebalance meanwhile
//! drops them).
use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use super::error::RestError;
use super::fetch::{decode, FetchedRecord};
use super::v2_consumer_group::{committed, list_offsets};
use super::v2_consumer_state::{Format, Reset, Seek, Tp};
use super::v2_consumers::Entry;
use super::RestState;
use crate::error_code;

/// The largest `max_bytes` honoured (keys and values of one answer).
pub const MAX_BYTES_CAP: usize = 8 << 20;
/// Records in one answer at most (an answer of empty records is still bounded).
pub const MAX_RECORDS: usize = 10_000;
/// Longest a single Fetch waits at a leader; the answer's deadline is checked between rounds.
const ROUND_WAIT: Duration = Duration::from_millis(250);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Confluent's 40903 for a partition with no committed offset under `auto.offset.reset=none`.
fn no_offset(tp: &Tp) -> RestError {
    RestError::new(StatusCode::CONFLICT, 40903, format!("Illegal state: no committed offset for {}-{} and auto.offset.reset is none", tp.0, tp.1))
}

/// Gives every assigned partition a position.
async fn position(state: &RestState, entry: &Entry) -> Result<(), RestError> {
    let ((seeks, fresh), group, reset) = {
        let i = entry.instance.lock();
        (i.unpositioned(), i.group.clone(), i.config.reset)
    };
    let mut wanted: Vec<(Tp, Seek)> = seeks;
    if !fresh.is_empty() {
        let found = committed(state, &group, &fresh).await?;
        let mut i = entry.instance.lock();
        for (tp, offset, _) in found {
            if offset >= 0 {
                i.set_position(&tp, offset);
            } else {
                match reset {
                    Reset::Earliest => wanted.push((tp, Seek::Beginning)),
                    Reset::Latest => wanted.push((tp, Seek::End)),
                    Reset::None => return Err(no_offset(&tp)),
                }
            }
        }
    }
    for (seek, timestamp) in [(Seek::Beginning, -2), (Seek::End, -1)] {
        let tps: Vec<Tp> = wanted.iter().filter(|(_, s)| *s == seek).map(|(tp, _)| tp.clone()).collect();
        if tps.is_empty() {
            continue;
        }
        let offsets = list_offsets(state, &tps, timestamp).await;
        let mut i = entry.instance.lock();
        // Only where nothing else set the position meanwhile.
        let (seeks, fresh) = i.unpositioned();
        let open: std::collections::HashSet<Tp> = seeks.into_iter().map(|(t, _)| t).chain(fresh).collect();
        for (tp, o) in offsets {
            if open.contains(&tp) {
                i.set_position(&tp, o);
            }
        }
    }
    Ok(())
}

/// One record as the format embeds it; `None` when a JSON instance meets bytes that are not JSON.
pub(super) fn record_json(format: Format, tp: &Tp, r: &FetchedRecord) -> Option<Value> {
    let embed = |b: &Option<Vec<u8>>| -> Option<Value> {
        match (b, format) {
            (None, _) => Some(Value::Null),
            (Some(b), Format::Binary) => Some(Value::String(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b))),
            (Some(b), Format::Json) => serde_json::from_slice(b).ok(),
        }
    };
    Some(json!({ "topic": tp.0, "key": embed(&r.key)?, "value": embed(&r.value)?, "partition": tp.1, "offset": r.offset }))
}

/// One Fetch to `leader` for `partitions` from their positions.
async fn fetch_from(state: &RestState, leader: i32, partitions: &[(Tp, i64)], budget: usize, wait: Duration, min_bytes: usize) -> Option<FetchResponse> {
    let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for ((t, p), o) in partitions {
        by_topic.entry(t).or_default().push(
            FetchPartition::default().with_partition(*p).with_current_leader_epoch(-1).with_fetch_offset(*o).with_log_start_offset(-1).with_partition_max_bytes(budget as i32),
        );
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(wait.as_millis() as i32)
        .with_min_bytes(min_bytes.min(i32::MAX as usize) as i32)
        .with_max_bytes(budget as i32)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(by_topic.into_iter().map(|(t, ps)| FetchTopic::default().with_topic(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps)).collect());
    state.client.call(leader, ApiKey::Fetch, 12, &request, FETCH_TIMEOUT + wait).await.ok()
}

/// Reads records for `entry` for at most `timeout`: the answer body's records.
pub async fn read(state: &RestState, entry: &Entry, timeout: Duration, max_bytes: usize) -> Result<Vec<Value>, RestError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let (format, min_bytes, reset) = {
        let i = entry.instance.lock();
        (i.config.format, i.config.fetch_min_bytes, i.config.reset)
    };
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut bad: Option<RestError> = None;
    loop {
        // Once records are in `out` their positions have moved: answer with them rather than
        // an error, or a later commit would pass records the client never got.
        if let Err(e) = position(state, entry).await {
            return if out.is_empty() { Err(e) } else { Ok(out) };
        }
        let readable = entry.instance.lock().readable();
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if readable.is_empty() {
            if remaining.is_zero() {
                return Ok(out);
            }
            // Not assigned yet (a rebalance in progress): look again shortly.
            tokio::time::sleep(remaining.min(Duration::from_millis(100))).await;
            continue;
        }
        let image = state.broker.image();
        let mut by_leader: BTreeMap<i32, Vec<(Tp, i64)>> = BTreeMap::new();
        for (tp, o) in readable {
            if let Some(l) = image.partition(&tp.0, tp.1).map(|p| p.leader).filter(|l| *l >= 0) {
                by_leader.entry(l).or_default().push((tp, o));
            }
        }
        drop(image);
        let budget = max_bytes.saturating_sub(bytes).max(1);
        // The leaders wait for the bytes still wanted (fetch.min.bytes), as a Kafka consumer's
        // fetches do; a round that asked without waiting would spin while they are short.
        let wait = remaining.min(ROUND_WAIT);
        let want = min_bytes.saturating_sub(bytes).max(1);
        let answers = futures_util::future::join_all(by_leader.iter().map(|(l, ps)| fetch_from(state, *l, ps, budget, wait, want))).await;
        for ((_, asked), answer) in by_leader.iter().zip(answers) {
            let Some(answer) = answer else { continue };
            let asked: std::collections::HashMap<&Tp, i64> = asked.iter().map(|(tp, o)| (tp, *o)).collect();
            for t in &answer.responses {
                for p in &t.partitions {
                    let tp = (t.topic.0.to_string(), p.partition_index);
                    let Some(&from) = asked.get(&tp) else { continue };
                    match p.error_code {
                        error_code::NONE => {}
                        error_code::OFFSET_OUT_OF_RANGE => {
                            let seek = match reset {
                                Reset::Earliest => Seek::Beginning,
                                Reset::Latest => Seek::End,
                                Reset::None => {
                                    // Answered once nothing else was read (see above).
                                    bad.get_or_insert_with(|| no_offset(&tp));
                                    continue;
                                }
                            };
                            entry.instance.lock().seek_to(&tp, seek);
                            continue;
                        }
                        // A moved leadership or a transient error: the next round tries again.
                        _ => continue,
                    }
                    let room = MAX_RECORDS.saturating_sub(out.len());
                    if room == 0 || bytes >= max_bytes {
                        continue;
                    }
                    let Ok(fetched) = decode(p.records.as_deref().unwrap_or_default(), from, room, max_bytes - bytes) else { continue };
                    let mut next = fetched.next_offset;
                    let mut kept = Vec::new();
                    for r in &fetched.records {
                        match record_json(format, &tp, r) {
                            Some(v) => {
                                // At least 1 a record, so that tombstones count toward fetch.min.bytes.
                                bytes += (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)).max(1);
                                kept.push(v);
                            }
                            None => {
                                next = r.offset;
                                bad.get_or_insert_with(|| {
                                    RestError::new(StatusCode::UNPROCESSABLE_ENTITY, 42203, format!("Conversion of JSON to Object failed: the record at {}-{} offset {} is not JSON (create the instance with format binary to read it)", tp.0, tp.1, r.offset))
                                });
                                break;
                            }
                        }
                    }
                    if entry.instance.lock().on_read(&tp, from, next) {
                        out.extend(kept);
                    }
                }
            }
        }
        let enough = bytes >= min_bytes.max(1) && !out.is_empty();
        if enough || bytes >= max_bytes || out.len() >= MAX_RECORDS || tokio::time::Instant::now() >= deadline || bad.is_some() {
            return match (out.is_empty(), bad) {
                (true, Some(e)) => Err(e),
                _ => Ok(out),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::TimestampType;

    #[test]
    fn records_embed_as_the_format_says() {
        let tp = ("t".to_string(), 2);
        let r = FetchedRecord { offset: 7, timestamp: 0, timestamp_type: TimestampType::CreateTime, key: None, value: Some(br#"{"a":[1]}"#.to_vec()) };
        assert_eq!(record_json(Format::Binary, &tp, &r).unwrap(), json!({"topic": "t", "key": null, "value": "eyJhIjpbMV19", "partition": 2, "offset": 7}));
        assert_eq!(record_json(Format::Json, &tp, &r).unwrap()["value"], json!({"a": [1]}));
        let junk = FetchedRecord { value: Some(vec![0xff, 0]), ..r };
        assert_eq!(record_json(Format::Json, &tp, &junk), None);
        assert_eq!(record_json(Format::Binary, &tp, &junk).unwrap()["value"], "/wA=");
    }
}
