//! `state.change.logger` lines for what the metadata quorum decides beyond single requests:
//! partition leaders moved by a batch of records (fencing, unfencing, re-registration) and
//! controller elections. Which lines to write is decided by pure functions of their inputs
//! ([`leader_moves`], [`QuorumTransitions::observe`]); the watcher task only feeds them.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use tokio::sync::watch;

use super::image::MetadataImage;
use super::records::MetadataRecord;
use super::Controller;

/// A partition whose leader a batch of records changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderMove {
    pub topic: String,
    pub partition: i32,
    /// -1: the partition had no leader.
    pub from: i32,
    /// -1: the partition goes offline.
    pub to: i32,
    pub leader_epoch: i32,
}

/// The leader changes `records` make when applied in order to `image`.
pub fn leader_moves(image: &MetadataImage, records: &[MetadataRecord]) -> Vec<LeaderMove> {
    let mut current: BTreeMap<(uuid::Uuid, i32), (i32, i32)> = BTreeMap::new();
    let mut out = Vec::new();
    for r in records {
        let MetadataRecord::PartitionChange { topic_id, partition, leader: Some(to), .. } = r else { continue };
        let Some(topic) = image.topic_by_id(*topic_id) else { continue };
        let Some(p) = usize::try_from(*partition).ok().and_then(|i| topic.partitions.get(i)) else { continue };
        let (from, epoch) = *current.get(&(*topic_id, *partition)).unwrap_or(&(p.leader, p.leader_epoch));
        if from == *to {
            continue;
        }
        current.insert((*topic_id, *partition), (*to, epoch + 1));
        out.push(LeaderMove { topic: topic.name.clone(), partition: *partition, from, to: *to, leader_epoch: epoch + 1 });
    }
    out
}

/// Logs leader moves once their records are committed.
pub fn log_leader_moves(moves: &[LeaderMove], offset: u64) {
    for m in moves {
        if m.to < 0 {
            tracing::warn!(target: "state.change.logger", partition = %format!("{}-{}", m.topic, m.partition), previous_leader = m.from,
                leader_epoch = m.leader_epoch, metadata_offset = offset, "partition is offline: no live replica in its ISR can lead");
        } else {
            tracing::info!(target: "state.change.logger", partition = %format!("{}-{}", m.topic, m.partition), previous_leader = m.from,
                leader = m.to, leader_epoch = m.leader_epoch, metadata_offset = offset, "partition leader moved");
        }
    }
}

/// A change in who leads the metadata quorum, as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumEvent {
    /// This node started campaigning in `term`.
    ElectionStarted { term: u64 },
    /// `leader` leads `term`; `election` is how long this node campaigned, if it did.
    LeaderElected { term: u64, leader: u64, previous: Option<u64>, election: Option<Duration> },
    /// No leader is known any more.
    LeaderLost { term: u64, previous: u64 },
}

/// Turns successive readings of openraft's state into [`QuorumEvent`]s.
#[derive(Debug, Default)]
pub struct QuorumTransitions {
    leader: Option<u64>,
    term: u64,
    campaign_started: Option<Instant>,
}

impl QuorumTransitions {
    pub fn observe(&mut self, state: ServerState, term: u64, leader: Option<u64>, now: Instant) -> Vec<QuorumEvent> {
        let mut events = Vec::new();
        if state == ServerState::Candidate && self.campaign_started.is_none() {
            self.campaign_started = Some(now);
            events.push(QuorumEvent::ElectionStarted { term });
        }
        let leader_changed = leader != self.leader || (leader.is_some() && term != self.term);
        if leader_changed {
            match leader {
                Some(l) => events.push(QuorumEvent::LeaderElected {
                    term,
                    leader: l,
                    previous: self.leader,
                    election: self.campaign_started.take().map(|s| now.saturating_duration_since(s)),
                }),
                None => {
                    if let Some(previous) = self.leader {
                        events.push(QuorumEvent::LeaderLost { term, previous });
                    }
                }
            }
        }
        self.leader = leader;
        self.term = term;
        events
    }
}

impl QuorumEvent {
    fn log(&self, node: i32) {
        match self {
            QuorumEvent::ElectionStarted { term } => {
                tracing::info!(target: "state.change.logger", node, term, "starting a controller election: no leader heard within the election timeout")
            }
            QuorumEvent::LeaderElected { term, leader, previous, election } => tracing::info!(target: "state.change.logger", node, term,
                controller = leader, previous_controller = previous.map_or(-1, |p| p as i64), election_ms = election.map(|d| d.as_millis() as u64),
                "controller elected: the metadata quorum has a leader"),
            QuorumEvent::LeaderLost { term, previous } => {
                tracing::warn!(target: "state.change.logger", node, term, previous_controller = previous, "lost the controller: no leader known")
            }
        }
    }
}

/// Logs every controller election this voter sees and records its election latency, until
/// shutdown. Observers (broker-only nodes) take no part in elections.
pub async fn watch_quorum(controller: Arc<Controller>, mut shutdown: watch::Receiver<bool>) {
    let Some(raft) = controller.raft() else { return };
    let mut metrics = raft.metrics();
    let mut transitions = QuorumTransitions::default();
    let node = controller.node_id;
    loop {
        let (state, term, leader) = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_term, m.current_leader)
        };
        for event in transitions.observe(state, term, leader, Instant::now()) {
            event.log(node);
            if let QuorumEvent::LeaderElected { election: Some(d), .. } = event {
                controller.stats.raft.election(d);
            }
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::image::{PartitionImage, TopicImage};
    use uuid::Uuid;

    fn image_with(id: Uuid, leaders: &[i32]) -> MetadataImage {
        let mut img = MetadataImage::default();
        let partitions =
            leaders.iter().map(|l| PartitionImage { leader: *l, leader_epoch: 4, replicas: vec![1, 2], isr: vec![1, 2], partition_epoch: 0, ..Default::default() }).collect();
        img.topics.insert("t".into(), TopicImage { name: "t".into(), id, partitions, configs: Default::default() });
        img.topic_names.insert(id, "t".into());
        img
    }

    fn change(id: Uuid, partition: i32, leader: Option<i32>) -> MetadataRecord {
        MetadataRecord::PartitionChange { topic_id: id, partition, leader, isr: None, replicas: None, adding_replicas: None, removing_replicas: None }
    }

    #[test]
    fn leader_moves_follow_the_records_in_order() {
        let id = Uuid::new_v4();
        let img = image_with(id, &[1, 2]);
        let records = vec![
            change(id, 0, Some(2)),
            change(id, 0, Some(-1)),
            change(id, 1, Some(2)), // same leader: not a move
            change(id, 1, None),    // ISR only
            change(Uuid::new_v4(), 0, Some(1)),
        ];
        let moves = leader_moves(&img, &records);
        assert_eq!(
            moves,
            vec![
                LeaderMove { topic: "t".into(), partition: 0, from: 1, to: 2, leader_epoch: 5 },
                LeaderMove { topic: "t".into(), partition: 0, from: 2, to: -1, leader_epoch: 6 },
            ]
        );
    }

    #[test]
    fn elections_as_one_node_sees_them() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut q = QuorumTransitions::default();
        // Start-up: a leader is found without campaigning.
        assert_eq!(q.observe(ServerState::Follower, 1, Some(3), at(0)), vec![QuorumEvent::LeaderElected { term: 1, leader: 3, previous: None, election: None }]);
        assert_eq!(q.observe(ServerState::Follower, 1, Some(3), at(10)), vec![]);
        // The leader dies: this node times out and campaigns, then wins.
        assert_eq!(q.observe(ServerState::Follower, 1, None, at(1000)), vec![QuorumEvent::LeaderLost { term: 1, previous: 3 }]);
        assert_eq!(q.observe(ServerState::Candidate, 2, None, at(1200)), vec![QuorumEvent::ElectionStarted { term: 2 }]);
        assert_eq!(q.observe(ServerState::Candidate, 2, None, at(1250)), vec![]);
        assert_eq!(
            q.observe(ServerState::Leader, 2, Some(1), at(1500)),
            vec![QuorumEvent::LeaderElected { term: 2, leader: 1, previous: None, election: Some(Duration::from_millis(300)) }]
        );
        // Another node takes over in a new term without this node campaigning.
        assert_eq!(
            q.observe(ServerState::Follower, 3, Some(2), at(5000)),
            vec![QuorumEvent::LeaderElected { term: 3, leader: 2, previous: Some(1), election: None }]
        );
        // The same leader re-elected in a later term is still an election.
        assert_eq!(
            q.observe(ServerState::Follower, 4, Some(2), at(6000)),
            vec![QuorumEvent::LeaderElected { term: 4, leader: 2, previous: Some(2), election: None }]
        );
    }
}
