//! What the controller measures about itself for Kafka's quorum metrics: the windowed
//! `raft-metrics` statistics (commit and election latency, records appended and fetched), the
//! `ControllerEventManager` timings of decisions, and [`QuorumView`], the `raft-metrics` gauges
//! read from openraft's metrics. Rendering them is `metrics::render`'s job.
use std::time::{Duration, Instant};

use openraft::{BasicNode, RaftMetrics, ServerState};
use parking_lot::Mutex;

use crate::metrics::windowed::WindowedStat;
use crate::metrics::Histogram;

/// The sampled statistics of Kafka's `KafkaRaftMetrics`.
pub struct RaftStats {
    commit_latency_ms: Mutex<WindowedStat>,
    election_latency_ms: Mutex<WindowedStat>,
    append_records: Mutex<WindowedStat>,
    fetch_records: Mutex<WindowedStat>,
}

impl Default for RaftStats {
    fn default() -> Self {
        let now = Instant::now();
        let w = || Mutex::new(WindowedStat::new(now));
        Self { commit_latency_ms: w(), election_latency_ms: w(), append_records: w(), fetch_records: w() }
    }
}

/// One reading of [`RaftStats`].
#[derive(Debug, Clone, Copy)]
pub struct RaftStatsReading {
    pub commit_latency_avg: f64,
    pub commit_latency_max: f64,
    pub election_latency_avg: f64,
    pub election_latency_max: f64,
    pub append_records_rate: f64,
    pub fetch_records_rate: f64,
}

impl RaftStats {
    /// A batch of `records` committed as leader, `latency` after it was handed to the quorum.
    pub fn committed(&self, records: usize, latency: Duration) {
        let now = Instant::now();
        self.commit_latency_ms.lock().record(latency.as_secs_f64() * 1000.0, now);
        self.append_records.lock().record(records as f64, now);
    }

    /// Records a follower received from the leader.
    pub fn fetched(&self, records: usize) {
        if records > 0 {
            self.fetch_records.lock().record(records as f64, Instant::now());
        }
    }

    /// From this node starting an election to a leader being known.
    pub fn election(&self, latency: Duration) {
        self.election_latency_ms.lock().record(latency.as_secs_f64() * 1000.0, Instant::now());
    }

    pub fn read(&self, now: Instant) -> RaftStatsReading {
        let mut commit = self.commit_latency_ms.lock();
        let mut election = self.election_latency_ms.lock();
        RaftStatsReading {
            commit_latency_avg: commit.avg(now),
            commit_latency_max: commit.max(now),
            election_latency_avg: election.avg(now),
            election_latency_max: election.max(now),
            append_records_rate: self.append_records.lock().rate(now),
            fetch_records_rate: self.fetch_records.lock().rate(now),
        }
    }
}

/// Kafka's ControllerEventManager timings, for decisions taken under the controller's write
/// lock (its event queue): time waiting for the lock, time holding it. Microseconds.
#[derive(Default)]
pub struct EventStats {
    pub queue_time_us: Histogram,
    pub processing_time_us: Histogram,
}

/// Held while a decision runs; records its processing time when dropped.
pub struct EventTimer<'a, G> {
    _guard: G,
    started: Instant,
    stats: &'a EventStats,
}

impl<'a, G> EventTimer<'a, G> {
    /// `queued` is when the decision started waiting for `guard`.
    pub fn started(guard: G, queued: Instant, stats: &'a EventStats) -> Self {
        let started = Instant::now();
        stats.queue_time_us.record(started.saturating_duration_since(queued).as_micros() as u64);
        Self { _guard: guard, started, stats }
    }
}

impl<G> Drop for EventTimer<'_, G> {
    fn drop(&mut self) {
        self.stats.processing_time_us.record(self.started.elapsed().as_micros() as u64);
    }
}

/// The `raft-metrics` gauges, in Kafka's terms, from openraft's view of the quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    /// The leader's id, -1 while none is known.
    pub current_leader: i64,
    /// This node's id when it leads or campaigns, the candidate it voted for while there is no
    /// leader, otherwise -1 (Kafka reports -1 for a follower).
    pub current_vote: i64,
    /// Unknown to an observer, which does not take part in elections.
    pub current_epoch: Option<u64>,
    /// leader, candidate, voted, follower, unattached or observer.
    pub current_state: &'static str,
    /// Offset after the last entry this node knows is committed (it applies them as soon as
    /// it knows), -1 before the first.
    pub high_watermark: i64,
    /// Offset after the last entry in this node's log.
    pub log_end_offset: i64,
}

impl QuorumView {
    pub fn of(m: &RaftMetrics<u64, BasicNode>) -> Self {
        let me = m.id;
        let voted_this_term = (m.vote.leader_id.term == m.current_term && m.current_term > 0 && !m.vote.is_committed())
            .then(|| m.vote.leader_id.voted_for())
            .flatten();
        let current_state = match m.state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "observer",
            ServerState::Follower if m.current_leader.is_some() => "follower",
            ServerState::Follower if voted_this_term.is_some() => "voted",
            ServerState::Follower | ServerState::Shutdown => "unattached",
        };
        let current_vote = match m.state {
            ServerState::Leader | ServerState::Candidate => me as i64,
            _ if current_state == "voted" => voted_this_term.map_or(-1, |v| v as i64),
            _ => -1,
        };
        QuorumView {
            current_leader: m.current_leader.map_or(-1, |l| l as i64),
            current_vote,
            current_epoch: Some(m.current_term),
            current_state,
            high_watermark: m.last_applied.map_or(-1, |l| l.index as i64 + 1),
            log_end_offset: m.last_log_index.map_or(0, |i| i as i64 + 1),
        }
    }

    /// A broker that is not a controller (`process.roles=broker`): it follows the active
    /// controller (`leader`, -1 while unknown) and holds what it has applied up to
    /// `last_applied` (None before the first fetch); it has no log of its own.
    pub fn observer(leader: i32, last_applied: Option<i64>) -> Self {
        QuorumView {
            current_leader: leader as i64,
            current_vote: -1,
            current_epoch: None,
            current_state: "observer",
            high_watermark: last_applied.map_or(-1, |o| o + 1),
            log_end_offset: last_applied.map_or(0, |o| o + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId, Vote};

    fn metrics(id: u64, state: ServerState, term: u64, leader: Option<u64>, vote: Vote<u64>) -> RaftMetrics<u64, BasicNode> {
        let mut m = RaftMetrics::new_initial(id);
        m.state = state;
        m.current_term = term;
        m.current_leader = leader;
        m.vote = vote;
        m
    }

    #[test]
    fn states_as_kafka_names_them() {
        let leader = QuorumView::of(&metrics(2, ServerState::Leader, 3, Some(2), Vote::new_committed(3, 2)));
        assert_eq!((leader.current_state, leader.current_leader, leader.current_vote, leader.current_epoch), ("leader", 2, 2, Some(3)));
        let follower = QuorumView::of(&metrics(1, ServerState::Follower, 3, Some(2), Vote::new_committed(3, 2)));
        assert_eq!((follower.current_state, follower.current_leader, follower.current_vote), ("follower", 2, -1));
        let candidate = QuorumView::of(&metrics(1, ServerState::Candidate, 4, None, Vote::new(4, 1)));
        assert_eq!((candidate.current_state, candidate.current_leader, candidate.current_vote), ("candidate", -1, 1));
        let voted = QuorumView::of(&metrics(3, ServerState::Follower, 4, None, Vote::new(4, 1)));
        assert_eq!((voted.current_state, voted.current_vote), ("voted", 1));
        let unattached = QuorumView::of(&metrics(3, ServerState::Follower, 4, None, Vote::new_committed(3, 2)));
        assert_eq!((unattached.current_state, unattached.current_vote), ("unattached", -1));
        let fresh = QuorumView::of(&RaftMetrics::new_initial(1));
        assert_eq!((fresh.current_state, fresh.current_leader, fresh.high_watermark, fresh.log_end_offset), ("unattached", -1, -1, 0));
        assert_eq!(QuorumView::of(&metrics(5, ServerState::Learner, 1, Some(1), Vote::new_committed(1, 1))).current_state, "observer");
        let o = QuorumView::observer(2, Some(41));
        assert_eq!((o.current_state, o.current_leader, o.current_vote, o.current_epoch, o.high_watermark, o.log_end_offset), ("observer", 2, -1, None, 42, 42));
        assert_eq!(QuorumView::observer(-1, None).high_watermark, -1);
    }

    #[test]
    fn offsets_are_exclusive_ends_as_in_kafka() {
        let mut m = metrics(1, ServerState::Follower, 2, Some(2), Vote::new_committed(2, 2));
        m.last_log_index = Some(9);
        m.last_applied = Some(LogId::new(CommittedLeaderId::new(2, 2), 7));
        let v = QuorumView::of(&m);
        assert_eq!((v.high_watermark, v.log_end_offset), (8, 10));
    }

    #[test]
    fn event_timer_records_queue_and_processing_time() {
        let stats = EventStats::default();
        {
            let _t = EventTimer::started((), Instant::now() - Duration::from_millis(3), &stats);
        }
        assert_eq!(stats.queue_time_us.count(), 1);
        assert!(stats.queue_time_us.sum() >= 3000);
        assert_eq!(stats.processing_time_us.count(), 1);
    }

    #[test]
    fn raft_stats_read_what_was_recorded() {
        let s = RaftStats::default();
        assert!(s.read(Instant::now()).commit_latency_avg.is_nan());
        s.committed(4, Duration::from_millis(6));
        s.committed(2, Duration::from_millis(2));
        s.fetched(0);
        let r = s.read(Instant::now());
        assert_eq!((r.commit_latency_avg, r.commit_latency_max), (4.0, 6.0));
        assert!(r.append_records_rate > 0.0 && r.fetch_records_rate == 0.0);
    }
}
