//! Partition reassignment (KIP-455) as the active controller decides it. Pure: a partition's
//! state and the request come in, the PartitionChange to write (or a refusal) goes out.
//!
//! A reassignment to `target` adds the target replicas the partition lacks
//! (`adding_replicas`) to its replica list, so they are created and fetch from the leader, and
//! marks the ones not in the target as `removing_replicas`. The replica list is the target
//! followed by the removing replicas, so the target's first replica is the preferred leader
//! from the start. It completes, in the same PartitionChange as whatever ISR change makes it
//! possible, once every target replica is in the ISR: the replica list becomes the target, the
//! ISR loses the removed replicas, and a leader that was removed hands over to the first target
//! replica in the ISR. Cancelling removes the adding replicas again. A new target while one is
//! in progress is taken against the whole current list, as Kafka does: nothing already copied is
//! dropped before the new target is in sync.
use super::image::PartitionImage;
use super::records::MetadataRecord;

/// Why a reassignment request for one partition is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// NO_REASSIGNMENT_IN_PROGRESS: a cancel for a partition that is not moving.
    NoReassignmentInProgress,
    /// INVALID_REPLICA_ASSIGNMENT, with what is wrong.
    InvalidAssignment(String),
    /// INVALID_REPLICATION_FACTOR: the target changes the replica count and the request did
    /// not allow that (AlterPartitionReassignments v1).
    ReplicationFactorChange { current: usize, target: usize },
}

/// A partition's replica state, changed step by step, then written as one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    pub leader: i32,
    pub isr: Vec<i32>,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Next {
    pub fn of(p: &PartitionImage) -> Next {
        Next {
            leader: p.leader,
            isr: p.isr.clone(),
            replicas: p.replicas.clone(),
            adding: p.adding_replicas.clone(),
            removing: p.removing_replicas.clone(),
        }
    }

    /// The PartitionChange from `p` to this state; None when nothing changes.
    pub fn record(&self, p: &PartitionImage, topic_id: uuid::Uuid, partition: i32) -> Option<MetadataRecord> {
        if *self == Next::of(p) {
            return None;
        }
        let changed = |new: &Vec<i32>, old: &Vec<i32>| (new != old).then(|| new.clone());
        Some(MetadataRecord::PartitionChange {
            topic_id,
            partition,
            leader: (self.leader != p.leader).then_some(self.leader),
            isr: changed(&self.isr, &p.isr),
            replicas: changed(&self.replicas, &p.replicas),
            adding_replicas: changed(&self.adding, &p.adding_replicas),
            removing_replicas: changed(&self.removing, &p.removing_replicas),
        })
    }

    /// Completes a reassignment in progress if every target replica is in the ISR: the
    /// replicas become the target, the ISR loses the removed ones, and a removed (or absent)
    /// leader is replaced by the first target replica in the ISR that `can_lead`.
    pub fn complete_if_done(&mut self, can_lead: &dyn Fn(i32) -> bool) {
        if self.adding.is_empty() && self.removing.is_empty() {
            return;
        }
        let replicas: Vec<i32> = self.replicas.iter().copied().filter(|r| !self.removing.contains(r)).collect();
        let isr: Vec<i32> = replicas.iter().copied().filter(|r| self.isr.contains(r)).collect();
        if replicas.is_empty() || isr.len() != replicas.len() {
            return;
        }
        if !isr.contains(&self.leader) {
            // A leader being removed hands over; with no target replica able to lead yet
            // (fenced, shutting down), the move waits rather than take the partition offline.
            match isr.iter().copied().find(|r| can_lead(*r)) {
                Some(l) => self.leader = l,
                None if self.leader >= 0 => return,
                None => {}
            }
        }
        self.replicas = replicas;
        self.isr = isr;
        self.adding.clear();
        self.removing.clear();
    }
}

/// Checks a target replica list: not empty, no broker twice, every broker registered.
pub fn check_target(target: &[i32], registered: &dyn Fn(i32) -> bool) -> Result<(), Refusal> {
    if target.is_empty() {
        return Err(Refusal::InvalidAssignment("the target replica list is empty; cancel with a null list instead".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = target.iter().find(|r| !seen.insert(**r)) {
        return Err(Refusal::InvalidAssignment(format!("broker {dup} is listed twice in {target:?}")));
    }
    if let Some(b) = target.iter().find(|r| !registered(**r)) {
        return Err(Refusal::InvalidAssignment(format!("broker {b} in {target:?} is not registered")));
    }
    Ok(())
}

/// Moves `p` towards `target` (checked by [`check_target`]). The state to write; unchanged
/// when the partition already has exactly that replica list and nothing in progress.
pub fn alter(p: &PartitionImage, target: &[i32], allow_replication_factor_change: bool, can_lead: &dyn Fn(i32) -> bool) -> Result<Next, Refusal> {
    let current = p.target_replicas().len();
    if !allow_replication_factor_change && current != target.len() {
        return Err(Refusal::ReplicationFactorChange { current, target: target.len() });
    }
    let mut removing: Vec<i32> = p.replicas.iter().copied().filter(|r| !target.contains(r)).collect();
    removing.sort_unstable();
    // Adding is counted from the partition's original replicas (before any reassignment in
    // progress), so a cancel after a second target still restores exactly those: a replica
    // the first target was adding and the second drops is both adding and removing.
    let original: Vec<i32> = p.replicas.iter().copied().filter(|r| !p.adding_replicas.contains(r)).collect();
    let mut next = Next::of(p);
    next.replicas = target.iter().copied().chain(removing.iter().copied()).collect();
    let mut adding: Vec<i32> = next.replicas.iter().copied().filter(|r| !original.contains(r)).collect();
    adding.sort_unstable();
    next.adding = adding;
    next.removing = removing;
    // The ISR keeps replica order (as AlterPartition writes it).
    next.isr = next.replicas.iter().copied().filter(|r| p.isr.contains(r)).collect();
    next.complete_if_done(can_lead);
    Ok(next)
}

/// Cancels the reassignment in progress: the adding replicas leave again (replicas and ISR),
/// the removing ones stay. When only adding replicas are in the ISR, that would leave it
/// empty: allowed only as an unclean step (`unclean`, the topic's unclean leader election),
/// with the first remaining replica as the sole ISR member, as Kafka does.
pub fn cancel(p: &PartitionImage, unclean: bool, can_lead: &dyn Fn(i32) -> bool) -> Result<Next, Refusal> {
    if !p.is_reassigning() {
        return Err(Refusal::NoReassignmentInProgress);
    }
    let mut next = Next::of(p);
    next.replicas.retain(|r| !p.adding_replicas.contains(r));
    next.isr.retain(|r| !p.adding_replicas.contains(r));
    if next.isr.is_empty() {
        if !unclean {
            return Err(Refusal::InvalidAssignment(format!(
                "cancelling would leave no in-sync replica (only the adding replicas {:?} are in sync); let the reassignment finish, or enable unclean.leader.election.enable on the topic",
                p.adding_replicas
            )));
        }
        next.isr = next.replicas.first().copied().into_iter().collect();
        next.leader = -1;
    }
    if !next.isr.contains(&next.leader) {
        next.leader = next.replicas.iter().copied().find(|r| next.isr.contains(r) && can_lead(*r)).unwrap_or(-1);
    }
    next.adding.clear();
    next.removing.clear();
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn part(leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionImage {
        PartitionImage { leader, replicas: replicas.to_vec(), isr: isr.to_vec(), ..Default::default() }
    }

    /// Applies `next` to `p` through the record, as every node would.
    fn applied(p: &PartitionImage, next: &Next) -> PartitionImage {
        let mut img = crate::controller::MetadataImage::default();
        let id = uuid::Uuid::new_v4();
        img.apply(&MetadataRecord::Topic { name: "t".into(), topic_id: id }, 1, 0).unwrap();
        img.apply(&MetadataRecord::Partition { topic_id: id, partition: 0, replicas: p.replicas.clone(), isr: p.isr.clone(), leader: p.leader }, 2, 0)
            .unwrap();
        let setup = Next::of(p).record(&img.topics["t"].partitions[0], id, 0);
        if let Some(r) = setup {
            img.apply(&r, 3, 0).unwrap();
        }
        let before = img.topics["t"].partitions[0].clone();
        if let Some(r) = next.record(&before, id, 0) {
            img.apply(&r, 4, 0).unwrap();
        }
        img.topics["t"].partitions[0].clone()
    }

    fn all(_: i32) -> bool {
        true
    }

    #[test]
    fn adding_replicas_catch_up_before_the_old_ones_leave() {
        let p = part(1, &[1, 2, 3], &[1, 2, 3]);
        let next = alter(&p, &[4, 5, 6], true, &all).unwrap();
        assert_eq!(next.replicas, vec![4, 5, 6, 1, 2, 3]);
        assert_eq!((next.adding.clone(), next.removing.clone()), (vec![4, 5, 6], vec![1, 2, 3]));
        assert_eq!((next.leader, next.isr.clone()), (1, vec![1, 2, 3]), "the old replicas lead and ack until the new ones are in sync");
        let moving = applied(&p, &next);
        assert!(moving.is_reassigning());
        assert_eq!(moving.target_replicas(), vec![4, 5, 6]);
        // Two new replicas join: not complete yet.
        let mut n = Next::of(&moving);
        n.isr = vec![4, 5, 1, 2, 3];
        n.complete_if_done(&all);
        assert_eq!(n.replicas, vec![4, 5, 6, 1, 2, 3]);
        // The third joins: complete, the leader (removed) hands over to the first target replica.
        n.isr = vec![4, 5, 6, 1, 2, 3];
        n.complete_if_done(&all);
        assert_eq!(n, Next { leader: 4, isr: vec![4, 5, 6], replicas: vec![4, 5, 6], adding: vec![], removing: vec![] });
        let done = applied(&moving, &n);
        assert!(!done.is_reassigning());
        assert_eq!(done.leader_epoch, moving.leader_epoch + 1);
    }

    #[test]
    fn a_reorder_or_a_removal_of_in_sync_replicas_completes_at_once() {
        let p = part(1, &[1, 2, 3], &[1, 2, 3]);
        let reorder = alter(&p, &[3, 1, 2], true, &all).unwrap();
        assert_eq!(reorder, Next { leader: 1, isr: vec![3, 1, 2], replicas: vec![3, 1, 2], adding: vec![], removing: vec![] });
        let shrink = alter(&p, &[2, 3], true, &all).unwrap();
        assert_eq!(shrink, Next { leader: 2, isr: vec![2, 3], replicas: vec![2, 3], adding: vec![], removing: vec![] });
        // The same list: nothing to write.
        let same = alter(&p, &[1, 2, 3], true, &all).unwrap();
        assert_eq!(same.record(&p, uuid::Uuid::nil(), 0), None);
    }

    #[test]
    fn an_out_of_sync_target_replica_waits_even_with_nothing_to_add() {
        let p = part(1, &[1, 2, 3], &[1, 2]);
        let next = alter(&p, &[2, 3], true, &all).unwrap();
        assert_eq!((next.adding.clone(), next.removing.clone()), (vec![], vec![1]));
        assert_eq!(next.replicas, vec![2, 3, 1]);
        assert_eq!(next.leader, 1);
    }

    #[test]
    fn a_new_target_midway_keeps_what_is_being_copied_until_it_is_in_sync() {
        let p = part(1, &[1, 2, 3], &[1, 2, 3]);
        let moving = applied(&p, &alter(&p, &[1, 2, 4], true, &all).unwrap());
        assert_eq!((moving.adding_replicas.clone(), moving.removing_replicas.clone()), (vec![4], vec![3]));
        let again = alter(&moving, &[1, 2, 5], true, &all).unwrap();
        assert_eq!(again.replicas, vec![1, 2, 5, 3, 4]);
        assert_eq!((again.adding.clone(), again.removing.clone()), (vec![4, 5], vec![3, 4]));
        // A cancel now restores the original replicas exactly (found by review: 4 stayed).
        let retargeted = applied(&moving, &again);
        let back = cancel(&retargeted, false, &all).unwrap();
        assert_eq!((back.replicas, back.adding, back.removing), (vec![1, 2, 3], vec![], vec![]));
        // Back to the original list: completes at once, 4 leaves.
        let back = alter(&moving, &[1, 2, 3], true, &all).unwrap();
        assert_eq!((back.replicas, back.isr, back.adding, back.removing), (vec![1, 2, 3], vec![1, 2, 3], vec![], vec![]));
    }

    #[test]
    fn cancel_removes_the_adding_replicas() {
        let p = part(1, &[1, 2, 3], &[1, 2, 3]);
        assert_eq!(cancel(&p, false, &all), Err(Refusal::NoReassignmentInProgress));
        let moving = applied(&p, &alter(&p, &[4, 2, 3], true, &all).unwrap());
        let mut caught_up = moving.clone();
        caught_up.isr = vec![4, 2, 3, 1];
        caught_up.leader = 4;
        let back = cancel(&caught_up, false, &all).unwrap();
        assert_eq!(back, Next { leader: 2, isr: vec![2, 3, 1], replicas: vec![2, 3, 1], adding: vec![], removing: vec![] });
        // Only the adding replica in sync: refused unless unclean.
        let mut lone = moving.clone();
        lone.isr = vec![4];
        lone.leader = 4;
        assert!(matches!(cancel(&lone, false, &all), Err(Refusal::InvalidAssignment(m)) if m.contains("no in-sync replica")));
        let unclean = cancel(&lone, true, &all).unwrap();
        assert_eq!((unclean.isr, unclean.leader), (vec![2], 2));
    }

    #[test]
    fn targets_are_checked() {
        let registered = |b: i32| (1..=4).contains(&b);
        assert!(check_target(&[1, 2], &registered).is_ok());
        for (bad, what) in [(vec![], "empty"), (vec![1, 1], "twice"), (vec![1, 9], "not registered")] {
            assert!(matches!(check_target(&bad, &registered), Err(Refusal::InvalidAssignment(m)) if m.contains(what)), "{bad:?}");
        }
        let p = part(1, &[1, 2, 3], &[1, 2, 3]);
        assert_eq!(alter(&p, &[1, 2], false, &all), Err(Refusal::ReplicationFactorChange { current: 3, target: 2 }));
    }

    #[test]
    fn a_removed_leader_with_no_target_able_to_lead_keeps_leading_until_one_can() {
        let mut p = part(1, &[4, 1, 2, 3], &[1, 2, 3, 4]);
        p.adding_replicas = vec![4];
        p.removing_replicas = vec![1, 2, 3];
        let mut n = Next::of(&p);
        n.complete_if_done(&|b| b != 4);
        assert_eq!((n.leader, n.replicas.clone(), n.removing.clone()), (1, vec![4, 1, 2, 3], vec![1, 2, 3]), "not completed");
        n.complete_if_done(&|_| true);
        assert_eq!((n.leader, n.replicas, n.isr), (4, vec![4], vec![4]));
    }

    proptest! {
        /// Whatever the target, the ISR stays within the replicas, the leader (if any) is in
        /// the ISR, and once every target replica is in sync the partition holds exactly the
        /// target.
        #[test]
        fn reassignment_invariants(current in proptest::sample::subsequence((1..=6).collect::<Vec<i32>>(), 1..=4),
                                   target in proptest::sample::subsequence((1..=6).collect::<Vec<i32>>(), 1..=4),
                                   second in proptest::sample::subsequence((1..=6).collect::<Vec<i32>>(), 1..=4),
                                   in_sync in proptest::collection::vec(any::<bool>(), 6)) {
            let isr: Vec<i32> = current.iter().copied().enumerate().filter(|(i, _)| *i == 0 || in_sync[*i]).map(|(_, r)| r).collect();
            let p = part(current[0], &current, &isr);
            let next = alter(&p, &target, true, &all).unwrap();
            prop_assert!(next.isr.iter().all(|r| next.replicas.contains(r)));
            prop_assert!(next.leader < 0 || next.isr.contains(&next.leader));
            prop_assert!(next.adding.iter().all(|r| target.contains(r) && !current.contains(r)));
            prop_assert!(next.removing.iter().all(|r| !target.contains(r)));
            let moving = applied(&p, &next);
            // A second target, then a cancel: back to the original replicas, whatever was
            // being copied.
            let retargeted = applied(&moving, &alter(&moving, &second, true, &all).unwrap());
            if retargeted.is_reassigning() {
                let back = cancel(&retargeted, false, &all).unwrap();
                let mut got = back.replicas.clone();
                got.sort_unstable();
                // The replicas before any reassignment in progress (the first one may have
                // completed at once).
                let mut want: Vec<i32> = moving.replicas.iter().copied().filter(|r| !moving.adding_replicas.contains(r)).collect();
                want.sort_unstable();
                prop_assert_eq!(got, want);
            }
            // Every replica catches up.
            let mut n = Next::of(&moving);
            n.isr = n.replicas.clone();
            n.complete_if_done(&all);
            prop_assert_eq!(&n.replicas, &target);
            prop_assert_eq!(&n.isr, &target);
            prop_assert!(n.adding.is_empty() && n.removing.is_empty());
            prop_assert!(target.contains(&n.leader));
        }
    }
}
