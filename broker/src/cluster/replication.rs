//! The leader's side of replication for one partition, as Kafka's `Partition` and its
//! replica states decide it: what each follower has (from the offsets it fetches at), which
//! followers are in sync, the high watermark, and whether an acks=all produce is done.
//!
//! Pure: time comes in as `now_ms`, nothing here does I/O. The caller (the partition on the
//! leader) feeds it follower fetches and local appends, sends the ISR changes it proposes to
//! the controller (AlterPartition, with the partition epoch), and reports back when the
//! controller has committed or refused them.
//!
//! Kafka's rules, kept here:
//! - A follower's log end offset is the offset it fetches at (it has everything before it).
//! - A follower is caught up at a fetch when it fetches at or past the leader's log end
//!   offset; fetching at or past the leader's log end offset of its *previous* fetch means it
//!   was caught up at that previous fetch (`lastCaughtUpTimeMs`, KIP-16).
//! - An ISR member not caught up for `replica.lag.time.max.ms` leaves the ISR; a replica out
//!   of the ISR rejoins once its log end offset reaches the high watermark and the start of
//!   the current leader epoch, unless its broker is fenced or in controlled shutdown
//!   (KIP-841: a broker about to stop must not become a member that acks=all waits for).
//!   One ISR change is in flight at a time.
//! - The high watermark is the smallest log end offset of the leader and the followers in
//!   the *maximal* ISR (the committed ISR together with an addition in flight), and never
//!   moves back.
//! - acks=all is done when the high watermark reaches the batch's end; it is then refused
//!   with NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR has fallen below `min.insync.replicas`.
use std::collections::BTreeMap;

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The offset of its last fetch; -1 until it has fetched from this leader.
    pub log_end_offset: i64,
    /// When it was last known caught up with the leader (0: never in this leadership).
    pub last_caught_up_ms: i64,
    /// The leader's log end offset and the time at its previous fetch.
    last_fetch_leader_leo: i64,
    last_fetch_ms: i64,
    /// The log start offset it reported in its last fetch; -1 until it has fetched.
    pub log_start_offset: i64,
}

/// An ISR change the leader asks the controller for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub new_isr: Vec<i32>,
    /// The partition epoch the change is based on: the controller refuses it if the
    /// partition has changed since (a stale leader cannot overwrite a newer ISR).
    pub partition_epoch: i32,
}

/// Where an acks=all produce stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksAll {
    /// Every ISR member has it and the ISR is at least min.insync.replicas.
    Done,
    /// Not every ISR member has it yet.
    Waiting,
    /// It is replicated to the whole ISR, but the ISR shrank below min.insync.replicas.
    NotEnoughReplicasAfterAppend,
}

#[derive(Debug, Clone)]
pub struct LeaderReplication {
    local: i32,
    replicas: Vec<i32>,
    /// The ISR as the controller last committed it.
    isr: Vec<i32>,
    partition_epoch: i32,
    /// The change sent to the controller and not yet answered.
    pending: Option<IsrChange>,
    /// The first offset of the current leader epoch on this leader.
    leader_epoch_start_offset: i64,
    followers: BTreeMap<i32, FollowerState>,
    high_watermark: i64,
    /// Replicas whose brokers the metadata shows fenced or in controlled shutdown: they may
    /// not join the ISR.
    ineligible: Vec<i32>,
}

impl LeaderReplication {
    /// This broker (`local`) becomes leader with log end offset `leader_leo` (the start of its
    /// new leader epoch) and its current high watermark. As in Kafka, followers in the ISR
    /// count as caught up now (they get a full lag time to fetch), the others never; no
    /// follower's log end offset is known until it fetches.
    pub fn new(local: i32, replicas: Vec<i32>, isr: Vec<i32>, partition_epoch: i32, leader_leo: i64, high_watermark: i64, now_ms: i64) -> Self {
        let followers = replicas
            .iter()
            .filter(|r| **r != local)
            .map(|r| {
                let caught_up = if isr.contains(r) { now_ms } else { 0 };
                (*r, FollowerState { log_end_offset: -1, last_caught_up_ms: caught_up, last_fetch_leader_leo: -1, last_fetch_ms: 0, log_start_offset: -1 })
            })
            .collect();
        Self {
            local,
            replicas,
            isr,
            partition_epoch,
            pending: None,
            leader_epoch_start_offset: leader_leo,
            followers,
            high_watermark: high_watermark.min(leader_leo),
            ineligible: Vec::new(),
        }
    }

    /// The brokers the latest metadata shows fenced or in controlled shutdown. An expansion
    /// in flight that adds one of them is forgotten (the controller refuses it anyway): the
    /// high watermark must not wait for a broker that is stopping.
    pub fn set_ineligible(&mut self, brokers: &[i32]) {
        if self.ineligible != brokers {
            self.ineligible = brokers.to_vec();
        }
        if let Some(p) = &self.pending {
            if p.new_isr.iter().any(|r| !self.isr.contains(r) && self.ineligible.contains(r)) {
                self.pending = None;
            }
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn pending(&self) -> Option<&IsrChange> {
        self.pending.as_ref()
    }

    pub fn follower(&self, id: i32) -> Option<&FollowerState> {
        self.followers.get(&id)
    }

    /// The committed ISR with an addition in flight (a shrink in flight still counts the
    /// members it would remove): whose log end offsets bound the high watermark.
    fn maximal_isr(&self) -> Vec<i32> {
        let mut out = self.isr.clone();
        if let Some(p) = &self.pending {
            for r in &p.new_isr {
                if !out.contains(r) {
                    out.push(*r);
                }
            }
        }
        out
    }

    /// A fetch from `follower` at `fetch_offset`, served when the leader's log end offset
    /// was `leader_leo`. Returns the new high watermark if it moved, and an ISR expansion to
    /// send to the controller if the follower has just come in sync. A fetch from a broker
    /// that is not a replica changes nothing.
    pub fn on_follower_fetch(&mut self, follower: i32, fetch_offset: i64, leader_leo: i64, now_ms: i64) -> (Option<i64>, Option<IsrChange>) {
        let Some(f) = self.followers.get_mut(&follower) else { return (None, None) };
        if fetch_offset >= leader_leo {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if f.last_fetch_leader_leo >= 0 && fetch_offset >= f.last_fetch_leader_leo {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch_leader_leo = leader_leo;
        f.last_fetch_ms = now_ms;
        let expand = self.maybe_expand_isr(follower);
        (self.maybe_advance_high_watermark(leader_leo), expand)
    }

    /// The leader appended up to `leader_leo`: with no follower in the ISR the high
    /// watermark follows it.
    pub fn on_leader_append(&mut self, leader_leo: i64) -> Option<i64> {
        self.maybe_advance_high_watermark(leader_leo)
    }

    fn maybe_expand_isr(&mut self, follower: i32) -> Option<IsrChange> {
        if self.pending.is_some() || self.isr.contains(&follower) || self.ineligible.contains(&follower) {
            return None;
        }
        let f = self.followers.get(&follower)?;
        if f.log_end_offset < self.high_watermark || f.log_end_offset < self.leader_epoch_start_offset {
            return None;
        }
        let mut new_isr = self.isr.clone();
        new_isr.push(follower);
        new_isr.sort_by_key(|r| self.replicas.iter().position(|x| x == r));
        let change = IsrChange { new_isr, partition_epoch: self.partition_epoch };
        self.pending = Some(change.clone());
        Some(change)
    }

    /// The ISR members (other than the leader) not caught up within `lag_max_ms`; if any,
    /// the shrunk ISR to send to the controller. Nothing while another change is in flight.
    pub fn maybe_shrink_isr(&mut self, now_ms: i64, lag_max_ms: i64) -> Option<IsrChange> {
        if self.pending.is_some() {
            return None;
        }
        let out_of_sync: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| *r != self.local)
            .filter(|r| self.followers.get(r).is_none_or(|f| now_ms - f.last_caught_up_ms > lag_max_ms))
            .collect();
        if out_of_sync.is_empty() {
            return None;
        }
        let new_isr: Vec<i32> = self.isr.iter().copied().filter(|r| !out_of_sync.contains(r)).collect();
        let change = IsrChange { new_isr, partition_epoch: self.partition_epoch };
        self.pending = Some(change.clone());
        Some(change)
    }

    /// The controller committed an ISR (the answer to our change, or a change it made
    /// itself, e.g. fencing a broker) at `partition_epoch`. An older epoch is ignored.
    /// Returns the new high watermark if it moved (a shrink can let it advance).
    pub fn on_isr_committed(&mut self, isr: Vec<i32>, partition_epoch: i32, leader_leo: i64) -> Option<i64> {
        // The same state again (every metadata image is applied to every partition) changes
        // nothing: above all it must not forget a change in flight, or the high watermark
        // would stop counting a joining member the controller may still commit.
        if partition_epoch <= self.partition_epoch {
            return None;
        }
        self.isr = isr;
        self.partition_epoch = partition_epoch;
        self.pending = None;
        self.maybe_advance_high_watermark(leader_leo)
    }

    /// The controller refused our change (a stale partition epoch, or an error): forget it;
    /// the next fetch or shrink check proposes again from the state then.
    pub fn on_isr_change_failed(&mut self) {
        self.pending = None;
    }

    fn maybe_advance_high_watermark(&mut self, leader_leo: i64) -> Option<i64> {
        let mut hw = leader_leo;
        for r in self.maximal_isr() {
            if r == self.local {
                continue;
            }
            // A member that has not fetched from this leader yet holds the high watermark.
            let leo = self.followers.get(&r).map_or(-1, |f| f.log_end_offset);
            hw = hw.min(leo);
        }
        if hw > self.high_watermark {
            self.high_watermark = hw;
            Some(hw)
        } else {
            None
        }
    }

    /// Before appending an acks=all batch: is the ISR large enough? (Kafka refuses with
    /// NOT_ENOUGH_REPLICAS when it is not, and does not append.)
    pub fn enough_replicas_for_acks_all(&self, min_insync_replicas: usize) -> bool {
        self.isr.len() >= min_insync_replicas
    }

    /// A follower's fetch reported its log start offset. Returns whether that changed.
    pub fn on_follower_log_start(&mut self, follower: i32, log_start_offset: i64) -> bool {
        let Some(f) = self.followers.get_mut(&follower) else { return false };
        let changed = f.log_start_offset != log_start_offset;
        f.log_start_offset = log_start_offset;
        changed
    }

    /// DeleteRecords' low watermark (Kafka's lowWatermarkIfLeader): the smallest log start
    /// offset of the leader (`leader_log_start`) and the ISR's followers; -1 while one of
    /// them has not reported its own. Followers out of the ISR do not hold it back: one that
    /// is down would make every DeleteRecords time out.
    pub fn low_watermark(&self, leader_log_start: i64) -> i64 {
        self.isr
            .iter()
            .filter(|r| **r != self.local)
            .map(|r| self.followers.get(r).map_or(-1, |f| f.log_start_offset))
            .fold(leader_log_start, i64::min)
    }

    /// Whether an acks=all batch ending before `required_offset` is done.
    pub fn acks_all(&self, required_offset: i64, min_insync_replicas: usize) -> AcksAll {
        if self.high_watermark < required_offset {
            AcksAll::Waiting
        } else if self.isr.len() < min_insync_replicas {
            AcksAll::NotEnoughReplicasAfterAppend
        } else {
            AcksAll::Done
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LAG: i64 = 30_000;

    /// Leader 1 of replicas 1, 2, 3, all in the ISR, log end offset 100, high watermark 90.
    fn leader() -> LeaderReplication {
        LeaderReplication::new(1, vec![1, 2, 3], vec![1, 2, 3], 5, 100, 90, 1_000)
    }

    #[test]
    fn low_watermark_is_the_smallest_log_start_of_the_leader_and_the_isr() {
        let mut l = LeaderReplication::new(1, vec![1, 2, 3, 4], vec![1, 2, 3], 5, 100, 90, 1_000);
        assert_eq!(l.low_watermark(50), -1, "no follower has reported its log start yet");
        assert!(l.on_follower_log_start(2, 50));
        assert!(!l.on_follower_log_start(2, 50));
        assert_eq!(l.low_watermark(50), -1, "follower 3 has not reported");
        l.on_follower_log_start(3, 40);
        assert_eq!(l.low_watermark(50), 40);
        l.on_follower_log_start(3, 60);
        assert_eq!(l.low_watermark(50), 50, "the leader's own start counts");
        l.on_follower_log_start(4, 0);
        assert_eq!(l.low_watermark(50), 50, "4 is not in the ISR");
        assert!(!l.on_follower_log_start(9, 0), "not a replica");
    }

    #[test]
    fn high_watermark_waits_for_every_isr_member_then_is_their_smallest_offset() {
        let mut l = leader();
        assert_eq!(l.high_watermark(), 90);
        assert_eq!(l.on_follower_fetch(2, 100, 100, 1_100), (None, None), "3 has not fetched yet");
        assert_eq!(l.on_follower_fetch(3, 95, 100, 1_100), (Some(95), None));
        assert_eq!(l.on_follower_fetch(3, 100, 100, 1_200), (Some(100), None));
        assert_eq!(l.on_leader_append(120), None, "followers do not have 100..120 yet");
        assert_eq!(l.on_follower_fetch(2, 120, 120, 1_300), (None, None));
        assert_eq!(l.on_follower_fetch(3, 110, 120, 1_300), (Some(110), None));
    }

    #[test]
    fn a_sole_isr_member_leader_moves_the_high_watermark_with_its_appends() {
        let mut l = LeaderReplication::new(1, vec![1, 2], vec![1], 0, 10, 10, 0);
        assert_eq!(l.on_leader_append(15), Some(15));
        assert_eq!(l.acks_all(15, 1), AcksAll::Done);
        assert_eq!(l.acks_all(15, 2), AcksAll::NotEnoughReplicasAfterAppend);
        assert!(!l.enough_replicas_for_acks_all(2));
    }

    #[test]
    fn a_lagging_follower_leaves_the_isr_after_the_lag_time_and_the_high_watermark_moves_on() {
        let mut l = leader();
        l.on_follower_fetch(2, 100, 100, 1_000);
        l.on_follower_fetch(3, 100, 100, 1_000);
        l.on_leader_append(200);
        // 2 keeps up; 3 stops fetching.
        for t in (2_000..=31_000).step_by(1_000) {
            l.on_follower_fetch(2, 200, 200, t);
        }
        assert_eq!(l.maybe_shrink_isr(31_000, LAG), None, "3 was caught up at 1,000: exactly the lag time");
        let change = l.maybe_shrink_isr(31_001, LAG).expect("3 is out of sync");
        assert_eq!(change, IsrChange { new_isr: vec![1, 2], partition_epoch: 5 });
        assert_eq!(l.high_watermark(), 100, "a shrink in flight still counts 3");
        assert_eq!(l.maybe_shrink_isr(40_000, LAG), None, "one change at a time");
        assert_eq!(l.on_isr_committed(vec![1, 2], 6, 200), Some(200));
        assert_eq!(l.acks_all(200, 2), AcksAll::Done);
    }

    #[test]
    fn a_follower_that_keeps_fetching_but_never_reaches_the_end_is_out_of_sync() {
        let mut l = leader();
        l.on_follower_fetch(3, 100, 100, 1_000);
        let mut leo = 100;
        for t in (1_000..=40_000).step_by(500) {
            leo += 10;
            l.on_leader_append(leo);
            // 2 always fetches 20 behind the leader's end at its previous fetch.
            l.on_follower_fetch(2, leo - 20, leo, t);
            l.on_follower_fetch(3, leo, leo, t);
        }
        let change = l.maybe_shrink_isr(40_000, LAG).expect("2 never caught up");
        assert_eq!(change.new_isr, vec![1, 3]);
    }

    #[test]
    fn catching_up_to_the_previous_fetch_counts_as_caught_up_then() {
        let mut l = leader();
        l.on_follower_fetch(2, 100, 150, 10_000); // leader at 150
        l.on_follower_fetch(2, 150, 170, 20_000); // has what the leader had at 10,000
        assert_eq!(l.follower(2).unwrap().last_caught_up_ms, 10_000);
    }

    #[test]
    fn a_follower_rejoins_once_it_reaches_the_high_watermark_and_its_epoch_start() {
        let mut l = LeaderReplication::new(1, vec![1, 2, 3], vec![1, 2], 3, 100, 100, 0);
        l.on_follower_fetch(2, 100, 100, 0);
        assert_eq!(l.on_follower_fetch(3, 50, 100, 10), (None, None));
        let (_, expand) = l.on_follower_fetch(3, 100, 100, 20);
        assert_eq!(expand, Some(IsrChange { new_isr: vec![1, 2, 3], partition_epoch: 3 }));
        // Until the controller answers, no second change; the high watermark counts 3 now.
        l.on_leader_append(130);
        l.on_follower_fetch(2, 130, 130, 30);
        assert_eq!(l.high_watermark(), 100, "3 (joining) has only 100");
        assert_eq!(l.maybe_shrink_isr(1_000_000, LAG), None);
        assert_eq!(l.on_isr_committed(vec![1, 2, 3], 4, 130), None);
        assert_eq!(l.on_follower_fetch(3, 130, 130, 40).0, Some(130));
    }

    #[test]
    fn a_follower_on_a_broker_shutting_down_or_fenced_does_not_rejoin() {
        // The trace that found it: broker 3 moved its leadership here in a controlled shutdown,
        // fetched once as a caught-up follower, then stopped. Re-adding it would hold every
        // acks=all produce until its session expired (seconds).
        let mut l = LeaderReplication::new(1, vec![1, 2, 3], vec![1, 2], 3, 100, 100, 0);
        l.set_ineligible(&[3]);
        l.on_follower_fetch(2, 100, 100, 0);
        assert_eq!(l.on_follower_fetch(3, 100, 100, 10), (None, None), "no expansion proposed");
        l.on_leader_append(120);
        assert_eq!(l.on_follower_fetch(2, 120, 120, 20).0, Some(120), "the high watermark does not wait for 3");
        // Registered again and unfenced: it rejoins at its next fetch.
        l.set_ineligible(&[]);
        assert_eq!(l.on_follower_fetch(3, 120, 120, 30).1.map(|c| c.new_isr), Some(vec![1, 2, 3]));
        // It starts shutting down while that expansion is in flight: the expansion is dropped
        // and the high watermark stops waiting for it.
        l.on_leader_append(150);
        l.set_ineligible(&[3]);
        assert_eq!(l.pending(), None);
        assert_eq!(l.on_follower_fetch(2, 150, 150, 40).0, Some(150));
    }

    #[test]
    fn a_follower_below_the_leader_epoch_start_does_not_rejoin() {
        // New leader at offset 100 with an old high watermark of 80; 3 out of the ISR at 90.
        let mut l = LeaderReplication::new(1, vec![1, 2, 3], vec![1, 2], 7, 100, 80, 0);
        assert_eq!(l.on_follower_fetch(3, 90, 100, 1).1, None, "90 < epoch start 100");
        assert_eq!(l.on_follower_fetch(3, 100, 100, 2).1.map(|c| c.new_isr), Some(vec![1, 2, 3]));
    }

    #[test]
    fn stale_isr_commits_and_non_replicas_change_nothing() {
        let mut l = leader();
        assert_eq!(l.on_isr_committed(vec![1], 4, 100), None);
        assert_eq!(l.isr(), &[1, 2, 3]);
        assert_eq!(l.on_follower_fetch(9, 100, 100, 5), (None, None));
        assert!(l.follower(9).is_none());
    }

    #[test]
    fn reapplying_the_same_state_keeps_a_joining_member_in_the_high_watermark() {
        // Replicas 1, 3, 2, ISR 1, 2; 3 joins at 100 (pending) while 2 is at 110.
        let mut l = LeaderReplication::new(1, vec![1, 3, 2], vec![1, 2], 4, 100, 100, 0);
        l.on_follower_fetch(3, 100, 100, 1);
        assert!(l.pending().is_some());
        l.on_leader_append(110);
        assert_eq!(l.on_isr_committed(vec![1, 2], 4, 110), None, "an unrelated image re-applies epoch 4");
        assert!(l.pending().is_some(), "the expansion in flight is kept");
        l.on_follower_fetch(2, 110, 110, 2);
        assert_eq!(l.high_watermark(), 100, "3 (joining) has only 100");
    }

    #[test]
    fn a_refused_change_is_forgotten_and_proposed_again() {
        let mut l = leader();
        let first = l.maybe_shrink_isr(1_000 + LAG + 1, LAG).unwrap();
        l.on_isr_change_failed();
        assert_eq!(l.maybe_shrink_isr(1_000 + LAG + 2, LAG), Some(first));
    }

    #[test]
    fn acks_all_waits_for_the_high_watermark() {
        let mut l = leader();
        l.on_leader_append(110);
        assert_eq!(l.acks_all(110, 2), AcksAll::Waiting);
        l.on_follower_fetch(2, 110, 110, 2_000);
        assert_eq!(l.acks_all(110, 2), AcksAll::Waiting, "3 is in the ISR and has not fetched");
        l.on_follower_fetch(3, 110, 110, 2_000);
        assert_eq!(l.acks_all(110, 2), AcksAll::Done);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Append(u8),
        Fetch { follower: i32, behind: u8 },
        Tick(u16),
        Shrink,
        Commit,
        Refuse,
        /// The metadata applies the current (unchanged) state again.
        Reapply,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1u8..50).prop_map(Step::Append),
            (2i32..=3, 0u8..60).prop_map(|(follower, behind)| Step::Fetch { follower, behind }),
            (1u16..20_000).prop_map(Step::Tick),
            Just(Step::Shrink),
            Just(Step::Commit),
            Just(Step::Refuse),
            Just(Step::Reapply),
        ]
    }

    proptest! {
        /// Whatever the followers do: the high watermark never moves back, never passes the
        /// leader's log end offset or the log end offset of a follower in the ISR, and acks=all
        /// is done only for what every ISR member has.
        #[test]
        fn high_watermark_is_safe(steps in proptest::collection::vec(step(), 1..200)) {
            let mut l = LeaderReplication::new(1, vec![1, 2, 3], vec![1, 2, 3], 0, 0, 0, 0);
            let mut leo = 0i64;
            let mut now = 0i64;
            // Each follower's log end offset as the leader last learned it (what it truly has
            // is at least that much: a follower only fetches forward here).
            let mut has: BTreeMap<i32, i64> = [(2, 0), (3, 0)].into();
            for s in steps {
                let before = l.high_watermark();
                match s {
                    Step::Append(n) => { leo += n as i64; l.on_leader_append(leo); }
                    Step::Fetch { follower, behind } => {
                        let at = (leo - behind as i64).max(has[&follower]);
                        has.insert(follower, at);
                        l.on_follower_fetch(follower, at, leo, now);
                    }
                    Step::Tick(ms) => now += ms as i64,
                    Step::Shrink => { l.maybe_shrink_isr(now, LAG); }
                    Step::Commit => {
                        if let Some(p) = l.pending().cloned() {
                            l.on_isr_committed(p.new_isr, p.partition_epoch + 1, leo);
                        }
                    }
                    Step::Refuse => l.on_isr_change_failed(),
                    Step::Reapply => { l.on_isr_committed(l.isr().to_vec(), l.partition_epoch(), leo); }
                }
                let hw = l.high_watermark();
                prop_assert!(hw >= before, "high watermark moved back {before} -> {hw}");
                prop_assert!(hw <= leo);
                for r in l.isr() {
                    if *r != 1 {
                        prop_assert!(hw <= has[r], "hw {hw} past ISR member {r}'s {}", has[r]);
                    }
                }
                prop_assert!(l.isr().contains(&1), "the leader left the ISR");
                if l.acks_all(hw, 1) == AcksAll::Done {
                    prop_assert!(l.isr().iter().all(|r| *r == 1 || has[r] >= hw));
                }
            }
        }
    }
}
