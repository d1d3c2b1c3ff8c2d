//! The active controller's own work: broker heartbeats and sessions, controlled shutdown,
//! fencing brokers whose session ended, and the periodic elections (unclean where a topic
//! allows it, preferred leaders), run from `run` every tick.
use super::*;

impl Controller {
    pub(super) async fn heartbeat(&self, broker_id: i32, epoch: i64, metadata_offset: i64, want_shutdown: bool) -> Result<ControllerReply, ControllerError> {
        let image = self.image();
        let Some(reg) = image.brokers.get(&broker_id).filter(|b| b.epoch == epoch) else {
            // No registration at all (this image is caught up): an operator unregistered it.
            if !image.brokers.contains_key(&broker_id) {
                return Err(ControllerError::BrokerNotRegistered(broker_id));
            }
            return Err(ControllerError::StaleBrokerEpoch { broker_id, broker_epoch: epoch });
        };
        self.heartbeats.lock().touch(broker_id, Instant::now());
        if reg.fenced && metadata_offset >= epoch && !want_shutdown {
            let _guard = self.event_lock().await?;
            let image = self.image();
            if image.brokers.get(&broker_id).is_some_and(|b| b.epoch == epoch && b.fenced) {
                let mut recs = vec![MetadataRecord::UnfenceBroker { broker_id, broker_epoch: epoch }];
                recs.extend(election::on_broker_unfenced(&image, broker_id));
                self.write(recs).await?;
                tracing::info!(target: "state.change.logger", broker = broker_id, broker_epoch = epoch, "unfenced broker: it has caught up with the metadata");
                if self.config.auto_rebalance_on_broker_join {
                    let moves = decide::rebalance_on_broker_join(&self.image(), broker_id);
                    if !moves.is_empty() {
                        let n = moves.len();
                        self.write(moves).await?;
                        tracing::info!(target: "state.change.logger", broker = broker_id, partitions = n,
                            "a new broker joined: partitions reassigned onto it (auto.rebalance.on.broker.join)");
                    }
                }
            }
        }
        if want_shutdown {
            return self.controlled_shutdown(broker_id, epoch).await;
        }
        let fenced = self.image().brokers.get(&broker_id).is_none_or(|b| b.fenced);
        Ok(ControllerReply::Heartbeat { fenced, should_shut_down: false })
    }

    /// A broker shutting down asks for its leaderships to move (Kafka's controlled shutdown):
    /// each partition it leads gets the next live ISR member as leader and it leaves every ISR
    /// that has another member, as when it is fenced. It may stop once it leads nothing that
    /// another replica could lead. Alone in the cluster, it stops at once (there is nowhere
    /// to move to).
    pub(super) async fn controlled_shutdown(&self, broker_id: i32, epoch: i64) -> Result<ControllerReply, ControllerError> {
        let image = self.image();
        let fenced = image.brokers.get(&broker_id).is_none_or(|b| b.fenced);
        if !image.live_brokers().any(|b| b.id != broker_id) {
            return Ok(ControllerReply::Heartbeat { fenced, should_shut_down: true });
        }
        let _guard = self.event_lock().await?;
        let image = self.image();
        if image.brokers.get(&broker_id).is_none_or(|b| b.epoch != epoch) {
            return Err(ControllerError::StaleBrokerEpoch { broker_id, broker_epoch: epoch });
        }
        let mut records = election::on_broker_fenced(&image, broker_id);
        if image.brokers.get(&broker_id).is_some_and(|b| !b.in_controlled_shutdown) {
            // First, in the same write: no ISR takes it back from now on, whichever node is
            // the active controller when a leader asks (KIP-841).
            records.insert(0, MetadataRecord::BrokerRegistrationChange { broker_id, broker_epoch: epoch, in_controlled_shutdown: true });
        }
        if !records.is_empty() {
            let moved = records.iter().filter(|r| matches!(r, MetadataRecord::PartitionChange { .. })).count();
            self.write(records).await?;
            tracing::info!(target: "state.change.logger", broker = broker_id, partitions = moved, "controlled shutdown: leaderships and ISR membership moved away");
        }
        let image = self.image();
        let still_leading = image.topics.values().flat_map(|t| &t.partitions).filter(|p| p.leader == broker_id).count();
        Ok(ControllerReply::Heartbeat { fenced, should_shut_down: still_leading == 0 })
    }

    /// Fences brokers whose session expired; run periodically by the active controller.
    pub(super) async fn fence_expired(&self) {
        if self.ensure_caught_up().await.is_err() {
            return;
        }
        let image = self.image();
        let unfenced: Vec<i32> = image.live_brokers().map(|b| b.id).collect();
        let refusals = self.stats.channel.take_refusals();
        let expired = {
            let mut heartbeats = self.heartbeats.lock();
            // A voter that refused a connection is a node whose process is gone: if it is
            // also a broker, it has the same grace as one whose heartbeat connection closed.
            for (voter, at) in refusals {
                if let Some(broker) = unfenced.iter().copied().find(|b| *b as u64 == voter) {
                    heartbeats.refused(broker, at);
                }
            }
            heartbeats.expired(unfenced, Instant::now())
        };
        for broker_id in expired {
            let Ok(_guard) = self.event_lock().await else { return };
            // A heartbeat may have arrived while this waited for the lock.
            if self.heartbeats.lock().is_alive(broker_id, Instant::now()) {
                continue;
            }
            let image = self.image();
            let Some(b) = image.brokers.get(&broker_id).filter(|b| !b.fenced) else { continue };
            let mut recs = vec![MetadataRecord::FenceBroker { broker_id, broker_epoch: b.epoch }];
            recs.extend(election::on_broker_fenced(&image, broker_id));
            let moved = recs.len() - 1;
            let lost = self.heartbeats.lock().lost_connection(broker_id);
            match self.write(recs).await {
                Ok(_) => {
                    self.stats.fenced.fetch_add(1, Ordering::Relaxed);
                    if lost {
                        tracing::warn!(target: "state.change.logger", broker = broker_id, partitions_changed = moved,
                            grace_ms = 2 * self.config.cluster.heartbeat_interval_ms,
                            "fenced broker: its heartbeat connection closed and it did not heartbeat again within two heartbeat intervals");
                    } else {
                        tracing::warn!(target: "state.change.logger", broker = broker_id, partitions_changed = moved,
                            session_timeout_ms = self.config.cluster.session_timeout_ms, "fenced broker: no heartbeat within its session");
                    }
                }
                Err(e) => tracing::warn!(target: "state.change.logger", broker = broker_id, error = %e, "could not fence broker"),
            }
        }
    }

    /// The active controller's periodic work: notice a new term, write the cluster id (or
    /// import a pre-quorum metadata file) once, fence brokers whose session expired.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if let Role::Observer(_) = &self.role {
            return self.follow(shutdown).await;
        }
        let tick = Duration::from_millis((self.config.cluster.heartbeat_interval_ms / 2).clamp(20, 200));
        let mut was_active = false;
        let rebalance_every = Duration::from_secs(self.config.leader_imbalance_check_interval_seconds.max(1));
        let mut last_rebalance = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => return,
            }
            if let Some(raft) = self.raft() {
                if let Err(fatal) = &raft.metrics().borrow().running_state {
                    // Kafka halts on a metadata log I/O error: a node that cannot write its
                    // metadata must not go on serving a frozen image.
                    tracing::error!(target: "org.apache.kafka.raft.KafkaRaftClient", error = %fatal,
                        "the metadata quorum stopped on a fatal error; halting (restart the node after fixing the cause, e.g. a full or failed disk)");
                    std::process::exit(1);
                }
            }
            let active = self.is_active();
            if active && !was_active {
                self.stats.elections_won.fetch_add(1, Ordering::Relaxed);
                self.heartbeats.lock().reset();
                // Refusals seen before this term are about nodes that may have started since.
                self.stats.channel.take_refusals();
                let term = self.raft().map_or(0, |r| r.metrics().borrow().current_term);
                tracing::info!(target: "org.apache.kafka.controller.QuorumController", node = self.node_id, term, "became the active controller");
                if let Err(e) = self.initialise_cluster().await {
                    tracing::warn!(target: "org.apache.kafka.controller.QuorumController", error = %e, "could not write the cluster id; will retry");
                    continue;
                }
            } else if !active && was_active {
                tracing::info!(target: "org.apache.kafka.controller.QuorumController", node = self.node_id, "no longer the active controller");
            }
            was_active = active;
            if active {
                self.fence_expired().await;
                self.elect_unclean_where_enabled().await;
                if self.config.auto_leader_rebalance_enable && last_rebalance.elapsed() >= rebalance_every {
                    last_rebalance = Instant::now();
                    self.rebalance_leaders().await;
                }
            }
        }
    }

    /// Offline partitions of topics with unclean.leader.election.enable (the topic's, else the
    /// broker default) get a live replica from outside the ISR as leader, as Kafka's controller
    /// does: availability over the records only the lost ISR had.
    pub(super) async fn elect_unclean_where_enabled(&self) {
        let unclean = |t: &TopicImage| crate::cluster::topic_config::unclean_leader_election(&self.config, &t.configs);
        let image = self.image();
        let eligible = |b: i32| image.is_isr_eligible(b);
        // Cheap check first: most ticks have no offline partition of such a topic.
        if election::unclean_elections_due(&image, &unclean, &eligible).is_empty() {
            return;
        }
        // Decide only on the metadata of this term (a stale image would show leaders gone).
        if self.ensure_caught_up().await.is_err() {
            return;
        }
        let Ok(_guard) = self.event_lock().await else { return };
        let image = self.image();
        let eligible = |b: i32| image.is_isr_eligible(b);
        let records = election::unclean_elections_due(&image, &unclean, &eligible);
        if records.is_empty() {
            return;
        }
        let n = records.len();
        match self.write(records).await {
            Ok(_) => {
                self.stats.unclean_elections.fetch_add(n as u64, Ordering::Relaxed);
                tracing::warn!(target: "state.change.logger", partitions = n,
                    "unclean leader election: leaders elected from outside the ISR (unclean.leader.election.enable); records only the old ISR had are lost");
            }
            Err(e) => tracing::warn!(target: "state.change.logger", error = %e, "unclean leader election failed; will retry"),
        }
    }

    /// Kafka's auto leader rebalance: preferred replicas take their leadership back where a
    /// broker's imbalance is above `leader.imbalance.per.broker.percentage`.
    pub(super) async fn rebalance_leaders(&self) {
        if self.ensure_caught_up().await.is_err() {
            return;
        }
        let Ok(_guard) = self.event_lock().await else { return };
        let image = self.image();
        let records = election::rebalance_preferred_leaders(&image, self.config.leader_imbalance_per_broker_percentage);
        if records.is_empty() {
            return;
        }
        let n = records.len();
        match self.write(records).await {
            Ok(_) => tracing::info!(target: "state.change.logger", partitions = n, "preferred replicas took their leadership back (auto.leader.rebalance.enable)"),
            Err(e) => tracing::warn!(target: "state.change.logger", error = %e, "preferred leader rebalance failed; will retry"),
        }
    }
}
