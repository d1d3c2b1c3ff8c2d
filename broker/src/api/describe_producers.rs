//! DescribeProducers (kafka-transactions.sh describe-producers, Admin.describeProducers): the
//! idempotent producers a partition's leader remembers, with epoch, last sequence and last
//! timestamp. Lantern has no transactions yet, so coordinator epoch and transaction start
//! offset are always -1 (Kafka's values for a producer with no open transaction).
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use crate::broker::Broker;

pub fn handle(broker: &Broker, request: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let base = PartitionResponse::default().with_partition_index(index);
                    match broker.leader_partition(&name, index) {
                        Ok(partition) => {
                            let producers = partition.log().lock().active_producers();
                            base.with_active_producers(
                                producers
                                    .into_iter()
                                    .map(|p| {
                                        ProducerState::default()
                                            .with_producer_id(ProducerId(p.producer_id))
                                            .with_producer_epoch(i32::from(p.epoch))
                                            .with_last_sequence(p.last_sequence)
                                            .with_last_timestamp(p.last_timestamp)
                                            .with_coordinator_epoch(-1)
                                            .with_current_txn_start_offset(-1)
                                    })
                                    .collect(),
                            )
                        }
                        Err(code) => base.with_error_code(code),
                    }
                })
                .collect();
            TopicResponse::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
