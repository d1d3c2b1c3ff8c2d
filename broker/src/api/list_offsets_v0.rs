//! ListOffsets v0, which Kafka 3.9 still answers and Sarama-based tools (Burrow up to 1.9.3)
//! send for end offsets: up to `max_num_offsets` offsets per partition, newest first, chosen
//! among segment boundaries rather than by record timestamps (Kafka's
//! `UnifiedLog.legacyFetchOffsetsBefore` and `Partition.legacyFetchOffsetsForTimestamp`).
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;
use crate::error_code;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// `replica_id` of an ordinary consumer: its answers stop at the high watermark.
const CONSUMER_REPLICA_ID: i32 = -1;

pub fn handle(broker: &Broker, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let from_consumer = request.replica_id.0 == CONSUMER_REPLICA_ID;
    let now_ms = super::now_ms();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    // v0 knows no other negative timestamp: Kafka answers UNSUPPORTED_VERSION.
                    if p.timestamp < EARLIEST {
                        return base.with_error_code(error_code::UNSUPPORTED_VERSION);
                    }
                    let partition = match broker.leader_partition(&name, p.partition_index) {
                        Ok(partition) => partition,
                        Err(code) => return base.with_error_code(code),
                    };
                    let table = partition.log().lock().segment_offset_times(now_ms);
                    let hw = from_consumer.then(|| partition.high_watermark());
                    match offsets_before(&table, p.timestamp, p.max_num_offsets, hw) {
                        Some(offsets) => base.with_old_style_offsets(offsets),
                        // A negative count makes Kafka fail allocating the array.
                        None => base.with_error_code(error_code::UNKNOWN_SERVER_ERROR),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Kafka's v0 answer over `table` ((offset, time) per segment boundary, oldest first, see
/// `PartitionLog::segment_offset_times`): the boundary at the chosen start (the last for
/// LATEST, the first for EARLIEST, else the last whose time is at or before `timestamp`)
/// and up to `max_num_offsets - 1` before it, newest first. For a consumer (`hw` given),
/// offsets past the high watermark are replaced by the high watermark, which leads the list
/// (so the list may hold one more than asked). `None` for a negative count.
pub fn offsets_before(table: &[(i64, i64)], timestamp: i64, max_num_offsets: i32, hw: Option<i64>) -> Option<Vec<i64>> {
    let max = usize::try_from(max_num_offsets).ok()?;
    let start = match timestamp {
        LATEST => table.len().checked_sub(1),
        EARLIEST => (!table.is_empty()).then_some(0),
        ts => table.iter().rposition(|&(_, time)| time <= ts),
    };
    let Some(start) = start else { return Some(Vec::new()) };
    let take = max.min(start + 1);
    let mut offsets: Vec<i64> = table[start + 1 - take..=start].iter().rev().map(|&(offset, _)| offset).collect();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    if let Some(hw) = hw {
        if offsets.iter().any(|&o| o > hw) {
            offsets.retain(|&o| o <= hw);
            offsets.insert(0, hw);
        }
    }
    Some(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three segments at 0, 100, 250 modified at t=1000, 2000, 3000; log end 300 at t=4000.
    const TABLE: &[(i64, i64)] = &[(0, 1000), (100, 2000), (250, 3000), (300, 4000)];

    #[test]
    fn latest_is_the_log_end_for_a_replica_and_the_high_watermark_for_a_consumer() {
        assert_eq!(offsets_before(TABLE, LATEST, 1, None), Some(vec![300]));
        assert_eq!(offsets_before(TABLE, LATEST, 1, Some(300)), Some(vec![300]));
        assert_eq!(offsets_before(TABLE, LATEST, 1, Some(280)), Some(vec![280]));
        // Kafka leads with the high watermark and keeps what is at or below it.
        assert_eq!(offsets_before(TABLE, LATEST, 3, Some(280)), Some(vec![280, 250, 100]));
        assert_eq!(offsets_before(TABLE, LATEST, 10, None), Some(vec![300, 250, 100, 0]));
    }

    #[test]
    fn earliest_is_the_first_boundary_only() {
        assert_eq!(offsets_before(TABLE, EARLIEST, 1, None), Some(vec![0]));
        assert_eq!(offsets_before(TABLE, EARLIEST, 5, Some(300)), Some(vec![0]));
    }

    #[test]
    fn a_timestamp_picks_the_last_boundary_modified_at_or_before_it() {
        assert_eq!(offsets_before(TABLE, 2500, 1, None), Some(vec![100]));
        assert_eq!(offsets_before(TABLE, 2000, 2, None), Some(vec![100, 0]));
        assert_eq!(offsets_before(TABLE, 999, 1, None), Some(vec![]));
        assert_eq!(offsets_before(TABLE, 9999, 2, None), Some(vec![300, 250]));
    }

    #[test]
    fn zero_offsets_is_an_empty_list_and_a_negative_count_an_error() {
        assert_eq!(offsets_before(TABLE, LATEST, 0, None), Some(vec![]));
        assert_eq!(offsets_before(TABLE, LATEST, -1, None), None);
        assert_eq!(offsets_before(&[], LATEST, 1, None), Some(vec![]));
    }

    #[test]
    fn an_empty_log_answers_its_start() {
        // One empty active segment at the log start: no log-end entry.
        assert_eq!(offsets_before(&[(42, 1000)], LATEST, 1, Some(42)), Some(vec![42]));
        assert_eq!(offsets_before(&[(42, 1000)], EARLIEST, 1, Some(42)), Some(vec![42]));
    }
}
