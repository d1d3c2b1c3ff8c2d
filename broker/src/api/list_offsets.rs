//! ListOffsets: earliest (-2, and -4 earliest-local), latest (-1), max timestamp (-3), latest
//! tiered (-5, v9: none without tiered storage, as Kafka answers it), or the first offset whose record timestamp is at or after a given time. Version 0 has its own
//! semantics (`list_offsets_v0`).
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::error_code;
use crate::broker::Broker;
use crate::cluster::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub async fn handle(broker: &Broker, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    if version == 0 {
        return super::list_offsets_v0::handle(broker, request);
    }
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let base = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let partition = match broker.leader_partition(&name, p.partition_index) {
                Ok(partition) => partition,
                Err(code) => {
                    partitions.push(base.with_error_code(code).with_offset(-1).with_timestamp(-1));
                    continue;
                }
            };
            if p.current_leader_epoch >= 0 && p.current_leader_epoch != partition.leader_epoch() {
                let code = if p.current_leader_epoch > partition.leader_epoch() {
                    error_code::UNKNOWN_LEADER_EPOCH
                } else {
                    error_code::FENCED_LEADER_EPOCH
                };
                partitions.push(base.with_error_code(code).with_offset(-1).with_timestamp(-1));
                continue;
            }
            partitions.push(match lookup(&partition, p.timestamp).await {
                Ok((offset, timestamp)) => base
                    .with_offset(offset)
                    .with_timestamp(timestamp)
                    .with_leader_epoch(if offset >= 0 && version >= 4 { partition.leader_epoch() } else { -1 }),
                Err(code) => base.with_error_code(code).with_offset(-1).with_timestamp(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for a ListOffsets query; -1/-1 when no record matches. Lookups by
/// timestamp scan segments on a blocking thread, without the log's lock.
async fn lookup(partition: &Partition, timestamp: i64) -> Result<(i64, i64), i16> {
    let by_time = match timestamp {
        LATEST => return Ok((partition.high_watermark(), -1)),
        EARLIEST | EARLIEST_LOCAL => return Ok((partition.log_start_offset(), -1)),
        MAX_TIMESTAMP => None,
        // KIP-1005: the highest offset in remote storage; Lantern has none (Kafka answers -1
        // when remote storage is not enabled).
        LATEST_TIERED => return Ok((-1, -1)),
        ts if ts >= 0 => Some(ts),
        _ => return Err(error_code::INVALID_REQUEST),
    };
    let found = partition.offset_for_timestamp(by_time).await.map_err(|e| e.code())?;
    Ok(found.unwrap_or((-1, -1)))
}
