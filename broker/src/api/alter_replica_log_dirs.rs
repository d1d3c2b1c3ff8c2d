//! AlterReplicaLogDirs: move replicas between this broker's log directories
//! (kafka-reassign-partitions.sh with `log_dirs`, the admin clients' alterReplicaLogDirs).
//! Each move runs in the background (`cluster::log_dir_mover`); DescribeLogDirs shows the
//! copy as a future replica until it replaces the current one.
use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_replica_log_dirs_response::{AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, TopicName};

use super::str_bytes;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, request: AlterReplicaLogDirsRequest) -> AlterReplicaLogDirsResponse {
    let b = Arc::clone(broker);
    // Starting a move may wait for a swap under way (the log's lock): a blocking thread.
    let answered = tokio::task::spawn_blocking(move || {
        let image = b.image();
        let mut by_topic: BTreeMap<String, Vec<AlterReplicaLogDirPartitionResult>> = BTreeMap::new();
        let mut refused = 0usize;
        let mut first_refused = None;
        for dir in &request.dirs {
            // Kafka compares absolute paths; log.dirs are made absolute at start-up.
            let path = std::path::Path::new(dir.path.as_str());
            for topic in &dir.topics {
                for &index in &topic.partitions {
                    let code = b.replicas.alter_log_dir(&image, topic.name.0.as_str(), index, path);
                    if code != crate::error_code::NONE {
                        refused += 1;
                        first_refused.get_or_insert_with(|| format!("{}-{} to {}: error code {code}", topic.name.0.as_str(), index, path.display()));
                    }
                    by_topic
                        .entry(topic.name.0.to_string())
                        .or_default()
                        .push(AlterReplicaLogDirPartitionResult::default().with_partition_index(index).with_error_code(code));
                }
            }
        }
        if let Some(first) = first_refused {
            // One line per request: a request may name any number of partitions.
            tracing::warn!(target: "kafka.server.ReplicaManager", refused, first = %first, "AlterReplicaLogDirs refused for some replicas");
        }
        by_topic
    })
    .await;
    let by_topic = match answered {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(target: "kafka.server.KafkaApis", error = %e, "AlterReplicaLogDirs handler failed");
            BTreeMap::new()
        }
    };
    AlterReplicaLogDirsResponse::default().with_results(
        by_topic
            .into_iter()
            .map(|(name, partitions)| AlterReplicaLogDirTopicResult::default().with_topic_name(TopicName(str_bytes(&name))).with_partitions(partitions))
            .collect(),
    )
}
