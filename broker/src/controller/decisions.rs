//! The active controller deciding one request: checks against the applied image, the records
//! that carry it out (from `decide` and `election`), and their write through the quorum.
use super::*;

impl Controller {
    pub(super) async fn decide_and_write(&self, request: ControllerRequest) -> Result<ControllerReply, ControllerError> {
        if !self.is_active() {
            return Err(ControllerError::NotController(format!("node {} is not the active controller", self.node_id)));
        }
        self.ensure_caught_up().await?;
        if let ControllerRequest::BrokerHeartbeat { broker_id, broker_epoch, metadata_offset, want_shutdown } = request {
            return self.heartbeat(broker_id, broker_epoch, metadata_offset, want_shutdown).await;
        }
        if let ControllerRequest::FetchMetadata { after_offset } = request {
            return self.fetch_metadata(after_offset).await;
        }
        let _guard = self.event_lock().await?;
        if self.image().cluster_id.is_empty() {
            // The first record of a new cluster is its id: nothing is decided before it.
            self.initialise_cluster_locked().await?;
        }
        let image = self.image();
        let seed = random_seed();
        let decided = match &request {
            ControllerRequest::CreateTopic { name, partitions, replication_factor, assignments, configs, .. } => {
                let partitions = if *partitions == -1 { self.config.num_partitions } else { *partitions };
                let rf = if *replication_factor == -1 { self.config.default_replication_factor } else { *replication_factor };
                decide::create_topic(&image, name, partitions, rf, assignments.as_deref(), configs, Uuid::new_v4(), seed)
            }
            ControllerRequest::DeleteTopic { name } => decide::delete_topic(&image, name),
            ControllerRequest::CreatePartitions { name, count, assignments, .. } => {
                decide::create_partitions(&image, name, *count, assignments.as_deref(), seed)
            }
            ControllerRequest::AlterTopicConfigs { name, ops, .. } => decide::alter_topic_configs(&image, name, ops),
            ControllerRequest::AlterBrokerConfigs { name, ops, validate_only } => {
                let records = decide::alter_broker_configs(&image, name, ops)?;
                if *validate_only || records.is_empty() {
                    return Ok(ControllerReply::ConfigsChanged);
                }
                Ok(records)
            }
            ControllerRequest::AllocateProducerIds { broker_id, count } => Ok(vec![MetadataRecord::ProducerIds {
                broker_id: *broker_id,
                next_producer_id: image.next_producer_id + (*count).clamp(1, 1_000_000),
            }]),
            ControllerRequest::RegisterBroker { broker_id, incarnation_id, endpoints, rack } => {
                if let Some(existing) = image.brokers.get(broker_id) {
                    if existing.incarnation_id == *incarnation_id {
                        // A retry whose first answer was lost.
                        return Ok(ControllerReply::Registered { broker_epoch: existing.epoch });
                    }
                    if !existing.fenced && self.heartbeats.lock().is_alive(*broker_id, Instant::now()) {
                        return Err(ControllerError::DuplicateBrokerRegistration(*broker_id, existing.incarnation_id));
                    }
                }
                // The previous incarnation's leaderships move away, as when it is fenced.
                let mut recs = election::on_broker_fenced(&image, *broker_id);
                recs.push(MetadataRecord::RegisterBroker {
                    broker_id: *broker_id,
                    incarnation_id: *incarnation_id,
                    endpoints: endpoints.clone(),
                    rack: rack.clone(),
                });
                Ok(recs)
            }
            ControllerRequest::AlterPartition { broker_id, broker_epoch, topic_id, partition, leader_epoch, partition_epoch, new_isr } => {
                if image.brokers.get(broker_id).is_none_or(|b| b.epoch != *broker_epoch) {
                    return Err(ControllerError::StaleBrokerEpoch { broker_id: *broker_id, broker_epoch: *broker_epoch });
                }
                match election::alter_isr(&image, *broker_id, *topic_id, *partition, *leader_epoch, *partition_epoch, new_isr) {
                    Ok(Some(record)) => Ok(vec![record]),
                    Ok(None) => return Ok(ControllerReply::IsrChanged),
                    Err(refusal) => {
                        use election::AlterIsrRefusal as R;
                        let code = match refusal {
                            R::UnknownPartition => error_code::UNKNOWN_TOPIC_OR_PARTITION,
                            R::NotLeader => error_code::NOT_LEADER_OR_FOLLOWER,
                            R::FencedLeaderEpoch => error_code::FENCED_LEADER_EPOCH,
                            R::InvalidUpdateVersion => error_code::INVALID_UPDATE_VERSION,
                            R::IneligibleReplica => error_code::INELIGIBLE_REPLICA,
                        };
                        return Err(ControllerError::AlterPartition(format!("{refusal:?} (broker {broker_id}, partition {partition} of topic id {topic_id})"), code));
                    }
                }
            }
            ControllerRequest::ElectLeaders { unclean, partitions } => {
                let targets: Vec<(String, i32)> = match partitions {
                    Some(list) => list.clone(),
                    None => image.topics.values().flat_map(|t| (0..t.partitions.len() as i32).map(move |i| (t.name.clone(), i))).collect(),
                };
                let mut records = Vec::new();
                let mut results = Vec::with_capacity(targets.len());
                for (topic, partition) in targets {
                    let id = image.topic(&topic).map(|t| t.id).unwrap_or_default();
                    let elected = if *unclean { election::elect_unclean(&image, id, partition) } else { election::elect_preferred(&image, id, partition) };
                    let code = match elected {
                        election::Elected::Change(r) => {
                            records.push(r);
                            0
                        }
                        election::Elected::NotNeeded => error_code::ELECTION_NOT_NEEDED,
                        election::Elected::PreferredNotAvailable => error_code::PREFERRED_LEADER_NOT_AVAILABLE,
                        election::Elected::EligibleNotAvailable => error_code::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                        election::Elected::Unknown => error_code::UNKNOWN_TOPIC_OR_PARTITION,
                    };
                    results.push((topic, partition, code));
                }
                if !records.is_empty() {
                    let moves = records.len();
                    self.write(records).await?;
                    if *unclean {
                        self.stats.unclean_elections.fetch_add(moves as u64, Ordering::Relaxed);
                    }
                    tracing::info!(target: "state.change.logger", unclean = *unclean, partitions = moves, "leaders elected on request (ElectLeaders)");
                }
                return Ok(ControllerReply::Elected(results));
            }
            ControllerRequest::AlterReassignments { partitions, allow_replication_factor_change } => {
                let unclean = |t: &TopicImage| crate::cluster::topic_config::unclean_leader_election(&self.config, &t.configs);
                let (records, results) = decide::alter_reassignments(&image, partitions, *allow_replication_factor_change, &unclean);
                if !records.is_empty() {
                    let n = records.len();
                    self.write(records).await?;
                    tracing::info!(target: "state.change.logger", partitions = n, "partition reassignments changed (AlterPartitionReassignments)");
                }
                return Ok(ControllerReply::Reassigned(results));
            }
            ControllerRequest::ReplicasOffline { broker_id, broker_epoch, partitions } => {
                if image.brokers.get(broker_id).is_none_or(|b| b.epoch != *broker_epoch) {
                    return Err(ControllerError::StaleBrokerEpoch { broker_id: *broker_id, broker_epoch: *broker_epoch });
                }
                let records = election::on_replicas_offline(&image, *broker_id, partitions);
                let n = records.len();
                if n > 0 {
                    self.write(records).await?;
                }
                tracing::warn!(target: "state.change.logger", broker = *broker_id, partitions = partitions.len(), changed = n,
                    "replicas offline on a failed log directory: leadership and ISR membership moved to the other replicas");
                return Ok(ControllerReply::IsrChanged);
            }
            ControllerRequest::UnregisterBroker { broker_id } => {
                let records = decide::unregister_broker(&image, *broker_id)?;
                self.write(records).await?;
                tracing::warn!(target: "state.change.logger", broker = *broker_id, "unregistered broker (UnregisterBroker): it is no longer part of the cluster");
                return Ok(ControllerReply::Unregistered);
            }
            // Answered above, before any decision.
            ControllerRequest::BrokerHeartbeat { .. } | ControllerRequest::FetchMetadata { .. } => Ok(Vec::new()),
        };
        let records = decided?;
        if let ControllerRequest::CreateTopic { name, validate_only: true, .. }
        | ControllerRequest::CreatePartitions { name, validate_only: true, .. }
        | ControllerRequest::AlterTopicConfigs { name, validate_only: true, .. } = &request
        {
            // The topic as the change would leave it, from a copy of the image.
            let mut img = (*image).clone();
            for r in &records {
                let _ = img.apply(r, image.last_offset, 0);
            }
            return img.topics.remove(name).map(ControllerReply::Topic).ok_or_else(|| ControllerError::UnknownTopic(name.clone()));
        }
        let deleted = match &request {
            ControllerRequest::DeleteTopic { name } => image.topic(name).cloned(),
            _ => None,
        };
        let offset = self.write(records).await?;
        let image = self.image();
        let topic = |name: &str| image.topic(name).cloned().ok_or_else(|| ControllerError::UnknownTopic(name.to_string()));
        Ok(match request {
            ControllerRequest::CreateTopic { name, .. }
            | ControllerRequest::CreatePartitions { name, .. }
            | ControllerRequest::AlterTopicConfigs { name, .. } => ControllerReply::Topic(topic(&name)?),
            ControllerRequest::DeleteTopic { name } => ControllerReply::TopicDeleted(deleted.ok_or(ControllerError::UnknownTopic(name))?),
            ControllerRequest::AllocateProducerIds { count, .. } => {
                ControllerReply::ProducerIds { start: image.next_producer_id - count.clamp(1, 1_000_000), count: count.clamp(1, 1_000_000) }
            }
            ControllerRequest::RegisterBroker { broker_id, .. } => {
                self.heartbeats.lock().touch(broker_id, Instant::now());
                tracing::info!(target: "state.change.logger", broker = broker_id, broker_epoch = offset, "registered broker");
                ControllerReply::Registered { broker_epoch: offset as i64 }
            }
            ControllerRequest::BrokerHeartbeat { .. } => ControllerReply::Heartbeat { fenced: true, should_shut_down: false },
            ControllerRequest::FetchMetadata { .. } => ControllerReply::Metadata(observer::MetadataDelta::Batches(Vec::new())),
            ControllerRequest::ElectLeaders { .. } => ControllerReply::Elected(Vec::new()),
            // Answered above, where they were decided.
            ControllerRequest::AlterReassignments { .. } => ControllerReply::Reassigned(Vec::new()),
            ControllerRequest::UnregisterBroker { .. } => ControllerReply::Unregistered,
            ControllerRequest::AlterBrokerConfigs { .. } => ControllerReply::ConfigsChanged,
            ControllerRequest::ReplicasOffline { .. } => ControllerReply::IsrChanged,
            ControllerRequest::AlterPartition { broker_id, partition, topic_id, new_isr, .. } => {
                tracing::info!(target: "state.change.logger", broker = broker_id, topic_id = %topic_id, partition, isr = ?new_isr, metadata_offset = offset, "ISR changed at the leader's request");
                ControllerReply::IsrChanged
            }
        })
    }
}
