//! OffsetForLeaderEpoch: the end offset of a leader epoch, from the log's leader-epoch
//! history. Followers ask it before fetching from a new leader, to find where their log stops
//! agreeing with the leader's (KIP-101/279); clients ask it to detect truncation.
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
                    } else if p.leader_epoch == epoch {
                        // The current epoch ends at the log end (Kafka answers the same).
                        base.with_leader_epoch(epoch).with_end_offset(partition.log_end_offset())
                    } else {
                        // From the log's epoch history: the largest epoch at or below the one
                        // asked and where it ends (KIP-101/279); (-1, -1) if there is none.
                        let (e, end) = partition.log().lock().end_offset_for_epoch(p.leader_epoch);
                        base.with_leader_epoch(e).with_end_offset(end)
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
