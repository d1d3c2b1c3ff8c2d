//! ListOffsets: earliest (-2, and -4 earliest-local), latest (-1), max timestamp (-3), or the
//! first offset whose record timestamp is at or after a given time.
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::error_code;
use crate::broker::Broker;
use crate::cluster::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub fn handle(broker: &Broker, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
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
                    let partition = match broker.leader_partition(&name, p.partition_index) {
                        Ok(partition) => partition,
                        Err(code) => return base.with_error_code(code).with_offset(-1).with_timestamp(-1),
                    };
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch != partition.leader_epoch() {
                        let code = if p.current_leader_epoch > partition.leader_epoch() {
                            error_code::UNKNOWN_LEADER_EPOCH
                        } else {
                            error_code::FENCED_LEADER_EPOCH
                        };
                        return base.with_error_code(code).with_offset(-1).with_timestamp(-1);
                    }
                    match lookup(&partition, p.timestamp) {
                        Ok((offset, timestamp)) => base
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(if offset >= 0 && version >= 4 { partition.leader_epoch() } else { -1 }),
                        Err(code) => base.with_error_code(code).with_offset(-1).with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for a ListOffsets query; -1/-1 when no record matches.
fn lookup(partition: &Partition, timestamp: i64) -> Result<(i64, i64), i16> {
    match timestamp {
        LATEST => Ok((partition.high_watermark(), -1)),
        EARLIEST | EARLIEST_LOCAL => Ok((partition.log_start_offset(), -1)),
        MAX_TIMESTAMP => {
            let log = partition.log().lock();
            Ok(log.max_timestamp_offset().map_err(|e| e.kafka_error_code())?.unwrap_or((-1, -1)))
        }
        ts if ts >= 0 => {
            let log = partition.log().lock();
            let found = log.offset_for_timestamp(ts).map_err(|e| e.kafka_error_code())?;
            Ok(match found {
                Some((offset, ts)) if offset < partition.high_watermark() => (offset, ts),
                _ => (-1, -1),
            })
        }
        _ => Err(error_code::INVALID_REQUEST),
    }
}
