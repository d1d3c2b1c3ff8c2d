//! OffsetForLeaderEpoch: the end offset of a leader epoch, used by clients to detect log
//! truncation after a leader change. Lantern partitions have one epoch until replication
//! lands, so the answer is the log end for the current epoch and undefined for later ones.
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::error_code;
use crate::broker::Broker;

pub fn handle(broker: &Broker, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = EpochEndOffset::default().with_partition(p.partition);
                    let partition = match broker.leader_partition(&t.topic.0, p.partition) {
                        Ok(partition) => partition,
                        Err(code) => return base.with_error_code(code).with_leader_epoch(-1).with_end_offset(-1),
                    };
                    let epoch = partition.leader_epoch();
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch != epoch {
                        let code = if p.current_leader_epoch > epoch { error_code::UNKNOWN_LEADER_EPOCH } else { error_code::FENCED_LEADER_EPOCH };
                        return base.with_error_code(code).with_leader_epoch(-1).with_end_offset(-1);
                    }
                    if p.leader_epoch > epoch {
                        // Kafka: an epoch above the latest has an undefined end offset.
                        base.with_leader_epoch(-1).with_end_offset(-1)
                    } else {
                        // Every record so far was written in the current (only) epoch.
                        base.with_leader_epoch(epoch).with_end_offset(partition.high_watermark())
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
