//! Produce: validate each partition's record batches, append them, and acknowledge per the
//! request's acks (0: no response, 1 and -1: after the append and any policy fsync).
use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{error, now_ms, str_bytes};
use crate::broker::Broker;
use crate::metrics::BrokerMetrics;

pub async fn handle(broker: &Arc<Broker>, request: ProduceRequest, _version: i16) -> Option<ProduceResponse> {
    let acks = request.acks;
    let refuse_all = if !matches!(acks, 0 | 1 | -1) {
        Some((error::INVALID_REQUIRED_ACKS, "acks must be 0, 1 or -1 (all)"))
    } else if request.transactional_id.is_some() {
        Some((error::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactions are not supported by this broker yet"))
    } else {
        None
    };
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut appended_any = false;
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for pd in topic.partition_data {
            let base = PartitionProduceResponse::default().with_index(pd.index);
            if let Some((code, message)) = refuse_all {
                partitions.push(base.with_error_code(code).with_error_message(Some(str_bytes(message))));
                continue;
            }
            let Some(partition) = broker.replicas.partition(&name, pd.index) else {
                partitions.push(base.with_error_code(error::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            let Some(records) = pd.records else {
                partitions.push(base.with_error_code(error::INVALID_REQUEST));
                continue;
            };
            match partition.append(&records, now_ms()).await {
                Ok(a) => {
                    if !a.duplicate {
                        appended_any = true;
                        BrokerMetrics::add(&broker.metrics.messages_in, a.records);
                        BrokerMetrics::add(&broker.metrics.bytes_in, records.len() as u64);
                    }
                    partitions.push(
                        base.with_base_offset(a.base_offset)
                            .with_log_append_time_ms(a.log_append_time)
                            .with_log_start_offset(a.log_start_offset),
                    );
                }
                Err(e) => {
                    tracing::debug!(target: "kafka.request.logger", partition = %partition.name(), error = %e, "produce refused");
                    partitions.push(base.with_error_code(e.code()).with_error_message(Some(str_bytes(&e.to_string()))));
                }
            }
        }
        responses.push(TopicProduceResponse::default().with_name(topic.name).with_partition_responses(partitions));
    }
    if appended_any {
        broker.replicas.notify_append();
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}
