//! A log's leader-epoch history (Kafka's `leader-epoch-checkpoint`): for every leader epoch,
//! the offset of its first record. Followers use it with OffsetForLeaderEpoch (KIP-101,
//! KIP-279) to find where their log stops agreeing with the new leader's, and truncate there
//! before fetching, so a former leader's unreplicated tail is removed, never served.
//!
//! Pure: the caller persists it (the checkpoint file) and applies the truncations it decides.

/// `(epoch, start_offset)` pairs, epochs and offsets both increasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochHistory {
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochHistory {
    pub fn new(entries: Vec<(i32, i64)>) -> Self {
        let mut h = Self::default();
        for (e, o) in entries {
            h.assign(e, o);
        }
        h
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts at `start_offset` (the first batch appended in it). An
    /// older or equal epoch, or an offset before the latest start, is ignored, as Kafka does.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) {
        match self.entries.last() {
            Some(&(e, o)) if epoch <= e || start_offset < o => {}
            _ => self.entries.push((epoch, start_offset)),
        }
    }

    /// OffsetForLeaderEpoch on the leader: for a follower whose last epoch is `epoch`, the
    /// largest epoch not above it that this log has, and where that epoch ends (the start of
    /// the next epoch, or `log_end_offset` for the latest). `(-1, -1)` when the log has no
    /// epoch at or below the one asked (the follower must truncate to its log start).
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        match self.entries.iter().rposition(|(e, _)| *e <= epoch) {
            None => (-1, -1),
            Some(i) => {
                let end = self.entries.get(i + 1).map_or(log_end_offset, |next| next.1);
                (self.entries[i].0, end)
            }
        }
    }

    /// Drops epochs that start at or after `offset` (the log was truncated there).
    pub fn truncate_from(&mut self, offset: i64) {
        self.entries.retain(|(_, o)| *o < offset);
    }

    /// Drops epochs wholly before `offset` (the log start moved), keeping the one that covers
    /// it, now starting at `offset`.
    pub fn truncate_before(&mut self, offset: i64) {
        let keep_from = self.entries.iter().rposition(|(_, o)| *o <= offset).unwrap_or(0);
        self.entries.drain(..keep_from);
        if let Some(first) = self.entries.first_mut() {
            first.1 = first.1.max(offset);
        }
    }
}

/// The history rebuilt from the batch headers (`rebuilt`), with each epoch's start taken from
/// the checkpoint where that is earlier: compaction removes batches, and with them an
/// epoch's first batches, after which the headers alone would date it later. A checkpointed
/// start is used only where it keeps the history ordered (after the previous epoch's start)
/// and within the log (not before `log_start_offset`); epochs with no batch left are not
/// restored (a stale checkpoint, e.g. written before a truncation, cannot add any).
pub fn with_checkpoint(rebuilt: &LeaderEpochHistory, checkpoint: &[(i32, i64)], log_start_offset: i64) -> LeaderEpochHistory {
    let mut entries: Vec<(i32, i64)> = Vec::with_capacity(rebuilt.entries.len());
    for &(epoch, start) in &rebuilt.entries {
        let floor = entries.last().map_or(log_start_offset, |&(_, prev)| prev.saturating_add(1).max(log_start_offset));
        let start = match checkpoint.iter().find(|(e, _)| *e == epoch) {
            Some(&(_, saved)) if saved < start && saved >= floor => saved,
            _ => start,
        };
        entries.push((epoch, start));
    }
    LeaderEpochHistory { entries }
}

/// The follower's decision after asking the leader about its latest epoch: where to truncate
/// its log before fetching (KIP-279).
///
/// `leader_answer` is the leader's `(epoch, end_offset)` for the follower's latest epoch.
/// If the leader knows that epoch, the logs agree up to `min(end_offset, our end)`. If the
/// leader answers with an older epoch, the follower's entries after that epoch diverge: it
/// truncates to where its own copy of that epoch ends, capped by the leader's end offset.
pub fn truncation_offset(ours: &LeaderEpochHistory, log_end_offset: i64, leader_answer: (i32, i64)) -> i64 {
    let (leader_epoch, leader_end) = leader_answer;
    if leader_epoch < 0 || leader_end < 0 {
        return 0;
    }
    let (our_epoch, our_end) = ours.end_offset_for(leader_epoch, log_end_offset);
    if our_epoch == leader_epoch {
        our_end.min(leader_end).min(log_end_offset)
    } else {
        // We never had the leader's epoch: everything after our older epoch's end diverges.
        our_end.max(0).min(leader_end).min(log_end_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn end_offsets_as_kafka_answers_them() {
        let h = LeaderEpochHistory::new(vec![(0, 0), (2, 10), (5, 30)]);
        assert_eq!(h.end_offset_for(0, 50), (0, 10));
        assert_eq!(h.end_offset_for(1, 50), (0, 10));
        assert_eq!(h.end_offset_for(2, 50), (2, 30));
        assert_eq!(h.end_offset_for(4, 50), (2, 30));
        assert_eq!(h.end_offset_for(5, 50), (5, 50));
        assert_eq!(h.end_offset_for(9, 50), (5, 50));
        assert_eq!(LeaderEpochHistory::new(vec![(3, 5)]).end_offset_for(2, 9), (-1, -1));
    }

    #[test]
    fn a_checkpoint_restores_epoch_starts_that_compaction_removed() {
        // Compaction removed epoch 3's first batches (it started at 10, the headers say 14).
        let rebuilt = LeaderEpochHistory::new(vec![(1, 0), (3, 14), (4, 20)]);
        let saved = [(1, 0), (3, 10), (4, 20)];
        assert_eq!(with_checkpoint(&rebuilt, &saved, 0).entries(), &[(1, 0), (3, 10), (4, 20)]);
        // Not before the log start, not before the previous epoch's start.
        assert_eq!(with_checkpoint(&rebuilt, &[(3, 10)], 12).entries(), &[(1, 0), (3, 14), (4, 20)]);
        assert_eq!(with_checkpoint(&rebuilt, &[(3, 0)], 0).entries(), &[(1, 0), (3, 14), (4, 20)]);
        // A stale checkpoint (epochs 5 and 6 were truncated away) adds nothing, and an entry
        // later than the headers' is ignored.
        assert_eq!(with_checkpoint(&rebuilt, &[(4, 25), (5, 30), (6, 40)], 0).entries(), rebuilt.entries());
    }

    #[test]
    fn a_former_leaders_unreplicated_tail_is_cut() {
        // The old leader wrote offsets 10..15 in epoch 1 that no follower got; the new leader
        // (epoch 2) took over at 10 and wrote 10..20.
        let old = LeaderEpochHistory::new(vec![(0, 0), (1, 10)]);
        let new = LeaderEpochHistory::new(vec![(0, 0), (2, 10)]);
        let answer = new.end_offset_for(1, 20); // the leader has no epoch 1: (0, 10)
        assert_eq!(answer, (0, 10));
        assert_eq!(truncation_offset(&old, 15, answer), 10);
        // A follower that is merely behind in the same epoch keeps everything.
        let behind = LeaderEpochHistory::new(vec![(0, 0), (2, 10)]);
        assert_eq!(truncation_offset(&behind, 12, new.end_offset_for(2, 20)), 12);
    }

    #[test]
    fn truncation_keeps_the_history_consistent() {
        let mut h = LeaderEpochHistory::new(vec![(0, 0), (2, 10), (5, 30)]);
        h.truncate_from(30);
        assert_eq!(h.entries(), &[(0, 0), (2, 10)]);
        h.assign(1, 40); // an older epoch is ignored
        h.assign(6, 25);
        assert_eq!(h.latest_epoch(), Some(6));
        h.truncate_before(12);
        assert_eq!(h.entries(), &[(2, 12), (6, 25)]);
    }

    proptest! {
        /// Two logs built from a common prefix and then diverging: after the follower's
        /// rounds of OffsetForLeaderEpoch and truncation, it ends exactly where the logs stop
        /// agreeing: it keeps no divergent record and drops no common one.
        #[test]
        fn truncation_never_keeps_a_divergent_record(
            common in proptest::collection::vec(1i64..5, 1..5),
            ours in proptest::collection::vec(1i64..5, 0..4),
            theirs in proptest::collection::vec(1i64..5, 1..4),
        ) {
            // Each element is the length of one epoch's run of records. Epochs increase; the
            // follower's own divergent epochs are odd, the leader's even, after the prefix.
            let mut epoch = 0;
            let mut offset = 0i64;
            let mut prefix = Vec::new();
            for len in &common { prefix.push((epoch, offset)); offset += len; epoch += 2; }
            let common_end = offset;
            let (mut f, mut f_end, mut fe) = (prefix.clone(), common_end, epoch - 1);
            for len in &ours { fe += 2; f.push((fe, f_end)); f_end += len; }
            let (mut l, mut l_end, mut le) = (prefix.clone(), common_end, epoch - 2);
            for len in &theirs { le += 2; l.push((le, l_end)); l_end += len; }
            let (mut fh, lh) = (LeaderEpochHistory::new(f), LeaderEpochHistory::new(l));
            // KIP-279: ask about our latest epoch, truncate, repeat until nothing changes.
            let mut end = f_end;
            for _ in 0..20 {
                let Some(latest) = fh.latest_epoch() else { break };
                let t = truncation_offset(&fh, end, lh.end_offset_for(latest, l_end));
                prop_assert!(t <= end);
                if t == end {
                    break;
                }
                end = t;
                fh.truncate_from(end);
            }
            if !ours.is_empty() {
                prop_assert_eq!(end, common_end, "the follower must end exactly where the logs stop agreeing");
            } else {
                prop_assert_eq!(end, f_end);
            }
        }
    }
}
