//! The metadata log's records, named as KRaft names them, and how each changes the image.
//!
//! The active controller decides (validates a request against the image, picks placements)
//! and writes records; every node applies the same records in the same order, so applying must
//! be deterministic: a record that does not fit the image (a controller bug) is skipped and
//! reported the same way on every node, so the images stay identical.
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::image::{BrokerRegistration, Endpoint, MetadataImage, PartitionImage, TopicImage};

/// Which kind of resource a ConfigRecord is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic,
    /// A broker's dynamic config (`name` its id), or the cluster-wide default (`name` "").
    Broker,
}

/// One metadata change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// Lantern's: the cluster id, written once by the first active controller.
    ClusterId { cluster_id: String },
    Topic { name: String, topic_id: Uuid },
    Partition { topic_id: Uuid, partition: i32, replicas: Vec<i32>, isr: Vec<i32>, leader: i32 },
    /// A change of leader, ISR or replicas. A new leader bumps the leader epoch; every change
    /// bumps the partition epoch. `adding_replicas` / `removing_replicas` describe a
    /// reassignment in progress (KIP-455; see `reassignment`); `None` leaves them as they are.
    PartitionChange {
        topic_id: Uuid,
        partition: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
        replicas: Option<Vec<i32>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adding_replicas: Option<Vec<i32>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removing_replicas: Option<Vec<i32>>,
    },
    RemoveTopic { topic_id: Uuid },
    /// `value: None` deletes the override.
    Config { resource: ConfigResource, name: String, key: String, value: Option<String> },
    /// The broker's epoch is the offset of this record.
    RegisterBroker { broker_id: i32, incarnation_id: Uuid, endpoints: Vec<Endpoint>, rack: Option<String> },
    UnregisterBroker { broker_id: i32, broker_epoch: i64 },
    FenceBroker { broker_id: i32, broker_epoch: i64 },
    UnfenceBroker { broker_id: i32, broker_epoch: i64 },
    /// Kafka's BrokerRegistrationChangeRecord for `InControlledShutdown`: the broker asked to
    /// shut down; cleared only by its next registration.
    BrokerRegistrationChange { broker_id: i32, broker_epoch: i64, in_controlled_shutdown: bool },
    /// Reserves producer ids below `next_producer_id` for `broker_id`.
    ProducerIds { broker_id: i32, next_producer_id: i64 },
}

/// Why a record was skipped; logged by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("topic id {0} is not in the image")]
    UnknownTopicId(Uuid),
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("partition {1} of topic id {0} does not exist")]
    UnknownPartition(Uuid, i32),
    #[error("broker {0} is not registered with epoch {1}")]
    StaleBroker(i32, i64),
    #[error("the cluster id is already {0}")]
    ClusterIdSet(String),
}

impl MetadataImage {
    /// Applies one record written at `offset` (its Raft log index) at `timestamp_ms`.
    pub fn apply(&mut self, record: &MetadataRecord, offset: i64, timestamp_ms: i64) -> Result<(), ApplyError> {
        self.last_offset = offset;
        self.last_timestamp_ms = timestamp_ms;
        match record {
            MetadataRecord::ClusterId { cluster_id } => {
                if !self.cluster_id.is_empty() && self.cluster_id != *cluster_id {
                    return Err(ApplyError::ClusterIdSet(self.cluster_id.clone()));
                }
                self.cluster_id = cluster_id.clone();
            }
            MetadataRecord::Topic { name, topic_id } => {
                if self.topics.contains_key(name) {
                    return Err(ApplyError::TopicExists(name.clone()));
                }
                self.topic_names.insert(*topic_id, name.clone());
                let topic = TopicImage { name: name.clone(), id: *topic_id, partitions: Vec::new(), configs: Default::default() };
                self.topics.insert(name.clone(), topic);
            }
            MetadataRecord::Partition { topic_id, partition, replicas, isr, leader } => {
                let topic = self.topic_mut(*topic_id)?;
                // Partitions are written in order, so the index is the next one.
                if *partition as usize != topic.partitions.len() {
                    return Err(ApplyError::UnknownPartition(*topic_id, *partition));
                }
                topic.partitions.push(PartitionImage {
                    leader: *leader,
                    leader_epoch: 0,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    partition_epoch: 0,
                    ..Default::default()
                });
            }
            MetadataRecord::PartitionChange { topic_id, partition, leader, isr, replicas, adding_replicas, removing_replicas } => {
                let topic = self.topic_mut(*topic_id)?;
                let p = usize::try_from(*partition)
                    .ok()
                    .and_then(|i| topic.partitions.get_mut(i))
                    .ok_or(ApplyError::UnknownPartition(*topic_id, *partition))?;
                if let Some(l) = leader {
                    if *l != p.leader {
                        p.leader = *l;
                        p.leader_epoch += 1;
                    }
                }
                if let Some(isr) = isr {
                    p.isr = isr.clone();
                }
                if let Some(r) = replicas {
                    p.replicas = r.clone();
                }
                if let Some(a) = adding_replicas {
                    p.adding_replicas = a.clone();
                }
                if let Some(r) = removing_replicas {
                    p.removing_replicas = r.clone();
                }
                p.partition_epoch += 1;
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let name = self.topic_names.remove(topic_id).ok_or(ApplyError::UnknownTopicId(*topic_id))?;
                self.topics.remove(&name);
            }
            MetadataRecord::Config { resource: ConfigResource::Broker, name, key, value } => {
                let configs = self.broker_configs.entry(name.clone()).or_default();
                match value {
                    Some(v) => configs.insert(key.clone(), v.clone()),
                    None => configs.remove(key),
                };
                if configs.is_empty() {
                    self.broker_configs.remove(name);
                }
            }
            MetadataRecord::Config { resource: ConfigResource::Topic, name, key, value } => {
                let Some(topic) = self.topics.get_mut(name) else {
                    return Err(ApplyError::TopicExists(format!("{name} (missing)")));
                };
                match value {
                    Some(v) => topic.configs.insert(key.clone(), v.clone()),
                    None => topic.configs.remove(key),
                };
            }
            MetadataRecord::RegisterBroker { broker_id, incarnation_id, endpoints, rack } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerRegistration {
                        id: *broker_id,
                        epoch: offset,
                        incarnation_id: *incarnation_id,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: true,
                        in_controlled_shutdown: false,
                    },
                );
            }
            MetadataRecord::UnregisterBroker { broker_id, broker_epoch } => {
                self.broker_mut(*broker_id, *broker_epoch)?;
                self.brokers.remove(broker_id);
            }
            MetadataRecord::FenceBroker { broker_id, broker_epoch } => self.broker_mut(*broker_id, *broker_epoch)?.fenced = true,
            MetadataRecord::UnfenceBroker { broker_id, broker_epoch } => self.broker_mut(*broker_id, *broker_epoch)?.fenced = false,
            MetadataRecord::BrokerRegistrationChange { broker_id, broker_epoch, in_controlled_shutdown } => {
                self.broker_mut(*broker_id, *broker_epoch)?.in_controlled_shutdown = *in_controlled_shutdown;
            }
            MetadataRecord::ProducerIds { next_producer_id, .. } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
        }
        Ok(())
    }

    fn topic_mut(&mut self, id: Uuid) -> Result<&mut TopicImage, ApplyError> {
        let name = self.topic_names.get(&id).ok_or(ApplyError::UnknownTopicId(id))?;
        self.topics.get_mut(name).ok_or(ApplyError::UnknownTopicId(id))
    }

    fn broker_mut(&mut self, id: i32, epoch: i64) -> Result<&mut BrokerRegistration, ApplyError> {
        match self.brokers.get_mut(&id) {
            Some(b) if b.epoch == epoch => Ok(b),
            _ => Err(ApplyError::StaleBroker(id, epoch)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(port: u16) -> Vec<Endpoint> {
        vec![Endpoint { name: "PLAINTEXT".into(), host: "h".into(), port }]
    }

    #[test]
    fn topic_partitions_and_changes() {
        let mut img = MetadataImage::default();
        let id = Uuid::new_v4();
        img.apply(&MetadataRecord::Topic { name: "t".into(), topic_id: id }, 1, 0).unwrap();
        for p in 0..2 {
            img.apply(&MetadataRecord::Partition { topic_id: id, partition: p, replicas: vec![1, 2], isr: vec![1, 2], leader: 1 }, 2, 0)
                .unwrap();
        }
        assert_eq!(img.topic_by_id(id).unwrap().partitions.len(), 2);
        let change = MetadataRecord::PartitionChange { topic_id: id, partition: 1, leader: Some(2), isr: Some(vec![2]), replicas: None, adding_replicas: None, removing_replicas: None };
        img.apply(&change, 3, 0).unwrap();
        let p = img.partition("t", 1).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone()), (2, 1, 1, vec![2]));
        // An ISR-only change bumps the partition epoch, not the leader epoch.
        let isr = MetadataRecord::PartitionChange { topic_id: id, partition: 1, leader: Some(2), isr: Some(vec![2, 1]), replicas: None, adding_replicas: None, removing_replicas: None };
        img.apply(&isr, 4, 0).unwrap();
        let p = img.partition("t", 1).unwrap();
        assert_eq!((p.leader_epoch, p.partition_epoch), (1, 2));
        assert_eq!(img.apply(&MetadataRecord::Topic { name: "t".into(), topic_id: Uuid::new_v4() }, 5, 0), Err(ApplyError::TopicExists("t".into())));
        img.apply(&MetadataRecord::RemoveTopic { topic_id: id }, 6, 0).unwrap();
        assert!(img.topic("t").is_none() && img.topic_by_id(id).is_none());
        assert_eq!(img.last_offset, 6);
    }

    #[test]
    fn broker_epoch_is_the_registration_offset_and_fences_stale_incarnations() {
        let mut img = MetadataImage::default();
        let reg = |inc| MetadataRecord::RegisterBroker { broker_id: 2, incarnation_id: inc, endpoints: endpoint(9092), rack: None };
        img.apply(&reg(Uuid::new_v4()), 10, 0).unwrap();
        assert!(img.brokers[&2].fenced);
        img.apply(&MetadataRecord::UnfenceBroker { broker_id: 2, broker_epoch: 10 }, 11, 0).unwrap();
        assert!(img.is_live(2));
        // Restarted: a new registration at offset 20; the old epoch no longer applies.
        img.apply(&reg(Uuid::new_v4()), 20, 0).unwrap();
        assert_eq!(img.brokers[&2].epoch, 20);
        assert_eq!(img.apply(&MetadataRecord::UnfenceBroker { broker_id: 2, broker_epoch: 10 }, 21, 0), Err(ApplyError::StaleBroker(2, 10)));
        assert!(!img.is_live(2));
    }

    #[test]
    fn a_broker_in_controlled_shutdown_is_not_isr_eligible_until_it_registers_again() {
        let mut img = MetadataImage::default();
        let reg = |inc| MetadataRecord::RegisterBroker { broker_id: 2, incarnation_id: inc, endpoints: endpoint(9092), rack: None };
        img.apply(&reg(Uuid::new_v4()), 10, 0).unwrap();
        assert!(!img.is_isr_eligible(2), "fenced at registration");
        img.apply(&MetadataRecord::UnfenceBroker { broker_id: 2, broker_epoch: 10 }, 11, 0).unwrap();
        assert!(img.is_isr_eligible(2));
        let shutdown = MetadataRecord::BrokerRegistrationChange { broker_id: 2, broker_epoch: 10, in_controlled_shutdown: true };
        img.apply(&shutdown, 12, 0).unwrap();
        assert!(img.is_live(2) && !img.is_isr_eligible(2));
        assert_eq!(img.isr_ineligible_brokers(), vec![2]);
        // It survives a snapshot (the image as JSON), and a registration from before the field existed reads as not shutting down.
        let copy: MetadataImage = serde_json::from_slice(&serde_json::to_vec(&img).unwrap()).unwrap();
        assert!(!copy.is_isr_eligible(2));
        let mut old = serde_json::to_value(&img.brokers[&2]).unwrap();
        old.as_object_mut().unwrap().remove("in_controlled_shutdown");
        assert!(!serde_json::from_value::<crate::controller::image::BrokerRegistration>(old).unwrap().in_controlled_shutdown);
        // A stale epoch does not apply; the next registration clears it.
        let stale = MetadataRecord::BrokerRegistrationChange { broker_id: 2, broker_epoch: 9, in_controlled_shutdown: false };
        assert_eq!(img.apply(&stale, 13, 0), Err(ApplyError::StaleBroker(2, 9)));
        img.apply(&reg(Uuid::new_v4()), 20, 0).unwrap();
        img.apply(&MetadataRecord::UnfenceBroker { broker_id: 2, broker_epoch: 20 }, 21, 0).unwrap();
        assert!(img.is_isr_eligible(2));
    }
}
