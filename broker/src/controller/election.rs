//! Partition leadership when brokers come and go: which partitions lose their leader when a
//! broker is fenced, and which offline partitions get one back when a broker returns. Pure
//! functions of the image; the controller writes the records they return.
//!
//! Kafka's rules (unclean election off): a new leader comes only from the ISR, in replica
//! order; the ISR never shrinks to empty, so the last member stays in it while it is down and
//! the partition is offline (leader -1) until that member returns.
use super::image::{MetadataImage, PartitionImage};
use super::records::MetadataRecord;

/// The change for one partition when `broker` is no longer available, if any.
fn without(p: &PartitionImage, broker: i32, live: &dyn Fn(i32) -> bool) -> Option<(Option<i32>, Option<Vec<i32>>)> {
    if !p.isr.contains(&broker) && p.leader != broker {
        return None;
    }
    let shrunk: Vec<i32> = p.isr.iter().copied().filter(|b| *b != broker).collect();
    let isr = if shrunk.is_empty() { p.isr.clone() } else { shrunk };
    let leader = if p.leader == broker || p.leader < 0 {
        p.replicas.iter().copied().find(|r| *r != broker && isr.contains(r) && live(*r)).unwrap_or(-1)
    } else {
        p.leader
    };
    let leader_change = (leader != p.leader).then_some(leader);
    let isr_change = (isr != p.isr).then_some(isr);
    if leader_change.is_none() && isr_change.is_none() {
        return None;
    }
    Some((leader_change, isr_change))
}

/// PartitionChange records that move leadership and ISR membership away from `broker`.
pub fn on_broker_fenced(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    let live = |b: i32| b != broker && image.is_live(b);
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            if let Some((leader, isr)) = without(p, broker, &live) {
                out.push(MetadataRecord::PartitionChange { topic_id: t.id, partition: i as i32, leader, isr, replicas: None, adding_replicas: None, removing_replicas: None });
            }
        }
    }
    out
}

/// PartitionChange records that move leadership and ISR membership of `partitions` away from
/// `broker`, whose replicas of them are offline (a failed log directory). As for a fenced
/// broker, the ISR keeps its last member (the partition is then offline until it returns).
pub fn on_replicas_offline(image: &MetadataImage, broker: i32, partitions: &[(String, i32)]) -> Vec<MetadataRecord> {
    let live = |b: i32| b != broker && image.is_live(b);
    let mut out = Vec::new();
    for (topic, index) in partitions {
        let Some(t) = image.topic(topic) else { continue };
        let Some(p) = usize::try_from(*index).ok().and_then(|i| t.partitions.get(i)) else { continue };
        if let Some((leader, isr)) = without(p, broker, &live) {
            out.push(MetadataRecord::PartitionChange { topic_id: t.id, partition: *index, leader, isr, replicas: None, adding_replicas: None, removing_replicas: None });
        }
    }
    out
}

/// PartitionChange records that give offline partitions whose ISR holds `broker` their leader
/// back, now that `broker` is live again.
pub fn on_broker_unfenced(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    let live = |b: i32| b == broker || image.is_live(b);
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            if p.leader >= 0 || !p.isr.contains(&broker) {
                continue;
            }
            if let Some(leader) = p.replicas.iter().copied().find(|r| p.isr.contains(r) && live(*r)) {
                out.push(MetadataRecord::PartitionChange { topic_id: t.id, partition: i as i32, leader: Some(leader), isr: None, replicas: None, adding_replicas: None, removing_replicas: None });
            }
        }
    }
    out
}

/// The outcome of an election asked for one partition (ElectLeaders, or the controller's own
/// preferred-leader rebalance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elected {
    /// The record that makes the change.
    Change(MetadataRecord),
    /// ELECTION_NOT_NEEDED: the preferred replica leads already (or, unclean, a leader exists).
    NotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE: the preferred replica is not live or not in the ISR.
    PreferredNotAvailable,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE: no live replica can lead.
    EligibleNotAvailable,
    /// UNKNOWN_TOPIC_OR_PARTITION.
    Unknown,
}

/// Preferred leader election for one partition: its first replica leads if it is live and
/// in the ISR (Kafka's PreferredReplicaPartitionLeaderElectionStrategy).
pub fn elect_preferred(image: &MetadataImage, topic_id: uuid::Uuid, partition: i32) -> Elected {
    let Some(p) = image.topic_names.get(&topic_id).and_then(|n| image.partition(n, partition)) else { return Elected::Unknown };
    let Some(&preferred) = p.replicas.first() else { return Elected::Unknown };
    if p.leader == preferred {
        return Elected::NotNeeded;
    }
    if !image.is_live(preferred) || !p.isr.contains(&preferred) {
        return Elected::PreferredNotAvailable;
    }
    Elected::Change(MetadataRecord::PartitionChange { topic_id, partition, leader: Some(preferred), isr: None, replicas: None, adding_replicas: None, removing_replicas: None })
}

/// Unclean leader election for one partition without a leader: the first live ISR member if
/// there is one, else the first live replica, which becomes the whole ISR (records only the
/// old ISR had are lost: that is what unclean means, and why it is off by default).
pub fn elect_unclean(image: &MetadataImage, topic_id: uuid::Uuid, partition: i32) -> Elected {
    let Some(p) = image.topic_names.get(&topic_id).and_then(|n| image.partition(n, partition)) else { return Elected::Unknown };
    if p.leader >= 0 {
        return Elected::NotNeeded;
    }
    if let Some(r) = p.replicas.iter().copied().find(|r| p.isr.contains(r) && image.is_live(*r)) {
        return Elected::Change(MetadataRecord::PartitionChange { topic_id, partition, leader: Some(r), isr: None, replicas: None, adding_replicas: None, removing_replicas: None });
    }
    // A replica a reassignment is still adding may hold nothing yet: last resort.
    let settled = p.replicas.iter().copied().filter(|r| !p.adding_replicas.contains(r));
    match settled.chain(p.adding_replicas.iter().copied()).find(|r| image.is_live(*r)) {
        Some(r) => Elected::Change(MetadataRecord::PartitionChange { topic_id, partition, leader: Some(r), isr: Some(vec![r]), replicas: None, adding_replicas: None, removing_replicas: None }),
        None => Elected::EligibleNotAvailable,
    }
}

/// The unclean elections due now: every partition without a leader, no live ISR member, and
/// a topic that allows unclean election (`unclean`, given its configs), gets its first
/// `eligible` live replica as leader and sole ISR member. (A partition whose ISR has a live
/// member is left to the clean election of its return.)
pub fn unclean_elections_due(image: &MetadataImage, unclean: &dyn Fn(&super::TopicImage) -> bool, eligible: &dyn Fn(i32) -> bool) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for t in image.topics.values().filter(|t| unclean(t)) {
        for (i, p) in t.partitions.iter().enumerate() {
            if p.leader >= 0 || p.isr.iter().any(|r| image.is_live(*r)) {
                continue;
            }
            let settled = p.replicas.iter().copied().filter(|r| !p.adding_replicas.contains(r));
            if let Some(r) = settled.chain(p.adding_replicas.iter().copied()).find(|r| image.is_live(*r) && eligible(*r)) {
                out.push(MetadataRecord::PartitionChange { topic_id: t.id, partition: i as i32, leader: Some(r), isr: Some(vec![r]), replicas: None, adding_replicas: None, removing_replicas: None });
            }
        }
    }
    out
}

/// Kafka's auto leader rebalance: for every broker whose share of partitions it prefers but
/// does not lead is above `max_imbalance_percent`, the preferred-leader elections that can be
/// made now.
pub fn rebalance_preferred_leaders(image: &MetadataImage, max_imbalance_percent: u32) -> Vec<MetadataRecord> {
    let mut preferred: std::collections::BTreeMap<i32, (usize, usize)> = Default::default();
    for t in image.topics.values() {
        for p in &t.partitions {
            if let Some(&first) = p.replicas.first() {
                let e = preferred.entry(first).or_default();
                e.0 += 1;
                if p.leader != first {
                    e.1 += 1;
                }
            }
        }
    }
    let over: Vec<i32> = preferred
        .into_iter()
        .filter(|(_, (total, not_leading))| *total > 0 && not_leading * 100 > max_imbalance_percent as usize * total)
        .map(|(b, _)| b)
        .collect();
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            if p.replicas.first().is_some_and(|f| over.contains(f)) {
                if let Elected::Change(r) = elect_preferred(image, t.id, i as i32) {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Why an AlterPartition is refused (Kafka's error for each in the comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterIsrRefusal {
    /// UNKNOWN_TOPIC_OR_PARTITION.
    UnknownPartition,
    /// NOT_LEADER_OR_FOLLOWER: the sender does not lead the partition.
    NotLeader,
    /// FENCED_LEADER_EPOCH: the sender's leader epoch is not the current one.
    FencedLeaderEpoch,
    /// INVALID_UPDATE_VERSION: the partition changed since the sender's partition epoch.
    InvalidUpdateVersion,
    /// INELIGIBLE_REPLICA: a proposed member is not a replica, is fenced or shutting down, or the leader is
    /// missing from it.
    IneligibleReplica,
}

/// AlterPartition (KIP-497): the leader `broker` of `partition` proposes `new_isr`, based on
/// its `leader_epoch` and `partition_epoch`. A stale leader or a change based on an older
/// partition state is refused, so it cannot overwrite a newer ISR; a member that is not a
/// live replica cannot join (KIP-841). Returns the PartitionChange to write (none when the
/// ISR is already that).
pub fn alter_isr(
    image: &MetadataImage,
    broker: i32,
    topic_id: uuid::Uuid,
    partition: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: &[i32],
) -> Result<Option<MetadataRecord>, AlterIsrRefusal> {
    let p = image
        .topic_names
        .get(&topic_id)
        .and_then(|name| image.partition(name, partition))
        .ok_or(AlterIsrRefusal::UnknownPartition)?;
    if p.leader != broker {
        return Err(AlterIsrRefusal::NotLeader);
    }
    if leader_epoch != p.leader_epoch {
        return Err(AlterIsrRefusal::FencedLeaderEpoch);
    }
    if partition_epoch != p.partition_epoch {
        return Err(AlterIsrRefusal::InvalidUpdateVersion);
    }
    // A joining member must be unfenced and not in controlled shutdown (KIP-841).
    let eligible = |r: &i32| p.replicas.contains(r) && (p.isr.contains(r) || image.is_isr_eligible(*r));
    if !new_isr.contains(&broker) || !new_isr.iter().all(eligible) {
        return Err(AlterIsrRefusal::IneligibleReplica);
    }
    let mut isr: Vec<i32> = p.replicas.iter().copied().filter(|r| new_isr.contains(r)).collect();
    isr.dedup();
    if isr == p.isr {
        return Ok(None);
    }
    // The ISR change that brings the last target replica in sync completes a reassignment in
    // the same record (KIP-455).
    let mut next = super::reassignment::Next::of(p);
    next.isr = isr;
    next.complete_if_done(&|r| image.is_isr_eligible(r));
    Ok(next.record(p, topic_id, partition))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::image::{BrokerRegistration, TopicImage};
    use uuid::Uuid;

    fn image(parts: Vec<(i32, Vec<i32>, Vec<i32>)>, live: &[i32]) -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in 1..=4 {
            img.brokers.insert(
                id,
                BrokerRegistration { id, epoch: 1, incarnation_id: Uuid::nil(), endpoints: vec![], rack: None, fenced: !live.contains(&id), in_controlled_shutdown: false },
            );
        }
        let partitions = parts
            .into_iter()
            .map(|(leader, replicas, isr)| PartitionImage { leader, leader_epoch: 0, replicas, isr, partition_epoch: 0, ..Default::default() })
            .collect();
        let id = Uuid::new_v4();
        img.topic_names.insert(id, "t".into());
        img.topics.insert("t".into(), TopicImage { name: "t".into(), id, partitions, configs: Default::default() });
        img
    }

    fn apply_all(img: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            img.apply(r, 0, 0).unwrap();
        }
    }

    #[test]
    fn leader_moves_to_the_next_live_isr_member_in_replica_order() {
        let mut img = image(vec![(1, vec![1, 2, 3], vec![1, 2, 3]), (2, vec![2, 1, 3], vec![2, 3]), (3, vec![3, 4], vec![3])], &[1, 2, 3, 4]);
        let recs = on_broker_fenced(&img, 1);
        apply_all(&mut img, &recs);
        let p = |i: i32| img.partition("t", i).unwrap().clone();
        assert_eq!((p(0).leader, p(0).isr.clone(), p(0).leader_epoch), (2, vec![2, 3], 1));
        // Not a member: untouched.
        assert_eq!((p(1).leader, p(1).partition_epoch), (2, 0));
        assert_eq!(recs.len(), 1);
    }

    #[test]
    fn unclean_elections_only_for_offline_partitions_of_topics_that_allow_them() {
        // Partition 0 offline (its only ISR member, 1, is fenced; 2 is a live out-of-sync
        // replica); partition 1 led; partition 2 offline with no live replica at all.
        let img = image(vec![(-1, vec![1, 2], vec![1]), (2, vec![2, 1], vec![2]), (-1, vec![1, 3], vec![1])], &[2]);
        assert!(unclean_elections_due(&img, &|_| false, &|_| true).is_empty());
        // A broker in a controlled shutdown is not eligible.
        assert!(unclean_elections_due(&img, &|_| true, &|b| b != 2).is_empty());
        let recs = unclean_elections_due(&img, &|_| true, &|_| true);
        assert_eq!(recs.len(), 1, "{recs:?}");
        let mut img = img;
        apply_all(&mut img, &recs);
        let p = img.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (2, vec![2], 1));
        assert!(unclean_elections_due(&img, &|_| true, &|_| true).is_empty(), "nothing left to elect");
    }

    #[test]
    fn last_isr_member_keeps_its_place_and_the_partition_goes_offline_until_it_returns() {
        let mut img = image(vec![(1, vec![1], vec![1]), (1, vec![1, 2], vec![1])], &[1, 2]);
        let recs = on_broker_fenced(&img, 1);
        apply_all(&mut img, &recs);
        img.brokers.get_mut(&1).unwrap().fenced = true;
        for i in 0..2 {
            let p = img.partition("t", i).unwrap();
            // Broker 2 is live but not in the ISR: no unclean election.
            assert_eq!((p.leader, p.isr.clone()), (-1, vec![1]), "partition {i}");
        }
        assert_eq!(img.offline_partitions(), 2);
        let recs = on_broker_unfenced(&img, 1);
        apply_all(&mut img, &recs);
        for i in 0..2 {
            let p = img.partition("t", i).unwrap();
            assert_eq!((p.leader, p.leader_epoch), (1, 2), "partition {i}");
        }
        assert!(on_broker_unfenced(&img, 1).is_empty());
    }

    #[test]
    fn offline_replicas_lose_leadership_and_isr_membership_of_those_partitions_only() {
        let mut img = image(vec![(1, vec![1, 2, 3], vec![1, 2, 3]), (1, vec![1, 2, 3], vec![1, 2, 3]), (2, vec![2, 1], vec![2, 1])], &[1, 2, 3]);
        let recs = on_replicas_offline(&img, 1, &[("t".into(), 0), ("t".into(), 2), ("nope".into(), 0)]);
        apply_all(&mut img, &recs);
        let p = |i: i32| img.partition("t", i).unwrap().clone();
        assert_eq!((p(0).leader, p(0).isr.clone()), (2, vec![2, 3]));
        assert_eq!((p(1).leader, p(1).isr.clone()), (1, vec![1, 2, 3]), "not on the failed disk");
        assert_eq!((p(2).leader, p(2).isr.clone()), (2, vec![2]));
    }

    /// KIP-455: the ISR expansion that brings the last target replica in sync completes the
    /// reassignment in the same record, and the removed leader hands over.
    #[test]
    fn the_expansion_that_completes_a_reassignment_writes_the_target() {
        let mut img = image(vec![(1, vec![4, 2, 3, 1], vec![2, 3, 1])], &[1, 2, 3, 4]);
        {
            let p = &mut img.topics.get_mut("t").unwrap().partitions[0];
            p.adding_replicas = vec![4];
            p.removing_replicas = vec![1];
        }
        let id = *img.topic_names.keys().next().unwrap();
        let rec = alter_isr(&img, 1, id, 0, 0, 0, &[1, 2, 3, 4]).unwrap().unwrap();
        apply_all(&mut img, &[rec]);
        let p = img.partition("t", 0).unwrap();
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch), (vec![4, 2, 3], vec![4, 2, 3], 4, 1));
        assert!(!p.is_reassigning());
    }

    #[test]
    fn alter_isr_takes_changes_from_the_current_leader_at_the_current_epochs_only() {
        let mut img = image(vec![(1, vec![1, 2, 3], vec![1, 2, 3])], &[1, 2, 3]);
        let id = *img.topic_names.keys().next().unwrap();
        // Shrink by the leader at the current epochs.
        let rec = alter_isr(&img, 1, id, 0, 0, 0, &[1, 3]).unwrap().unwrap();
        apply_all(&mut img, &[rec]);
        let p = img.partition("t", 0).unwrap().clone();
        assert_eq!((p.isr.clone(), p.leader_epoch), (vec![1, 3], 0));
        assert!(p.partition_epoch > 0, "an ISR change bumps the partition epoch");
        // The same proposal again, based on the old partition epoch: refused.
        assert_eq!(alter_isr(&img, 1, id, 0, 0, 0, &[1]), Err(AlterIsrRefusal::InvalidUpdateVersion));
        // Not the leader, an old leader epoch, an unknown partition.
        assert_eq!(alter_isr(&img, 2, id, 0, 0, p.partition_epoch, &[1, 2]), Err(AlterIsrRefusal::NotLeader));
        assert_eq!(alter_isr(&img, 1, id, 0, 7, p.partition_epoch, &[1, 2]), Err(AlterIsrRefusal::FencedLeaderEpoch));
        assert_eq!(alter_isr(&img, 1, id, 5, 0, 0, &[1]), Err(AlterIsrRefusal::UnknownPartition));
        // Expansion with a live replica, in replica order; a fenced one or a stranger cannot join.
        let rec = alter_isr(&img, 1, id, 0, 0, p.partition_epoch, &[1, 3, 2]).unwrap().unwrap();
        assert!(matches!(rec, MetadataRecord::PartitionChange { isr: Some(ref isr), .. } if isr == &vec![1, 2, 3]));
        img.brokers.get_mut(&2).unwrap().fenced = true;
        assert_eq!(alter_isr(&img, 1, id, 0, 0, p.partition_epoch, &[1, 2, 3]), Err(AlterIsrRefusal::IneligibleReplica));
        assert_eq!(alter_isr(&img, 1, id, 0, 0, p.partition_epoch, &[1, 3, 4]), Err(AlterIsrRefusal::IneligibleReplica));
        assert_eq!(alter_isr(&img, 1, id, 0, 0, p.partition_epoch, &[3]), Err(AlterIsrRefusal::IneligibleReplica));
        assert_eq!(alter_isr(&img, 1, id, 0, 0, p.partition_epoch, &[1, 3]), Ok(None));
        // Unfenced but in controlled shutdown (recorded in the log, so any controller knows): refused too.
        img.brokers.get_mut(&2).unwrap().fenced = false;
        img.brokers.get_mut(&2).unwrap().in_controlled_shutdown = true;
        assert_eq!(alter_isr(&img, 1, id, 0, 0, p.partition_epoch, &[1, 2, 3]), Err(AlterIsrRefusal::IneligibleReplica));
        img.brokers.get_mut(&2).unwrap().in_controlled_shutdown = false;
        assert!(alter_isr(&img, 1, id, 0, 0, p.partition_epoch, &[1, 2, 3]).unwrap().is_some());
    }

    #[test]
    fn preferred_and_unclean_elections_follow_kafkas_rules() {
        let mut img = image(
            vec![(2, vec![1, 2, 3], vec![1, 2, 3]), (2, vec![1, 2], vec![2]), (1, vec![1, 2], vec![1, 2]), (-1, vec![3, 4], vec![3])],
            &[1, 2, 4],
        );
        let id = *img.topic_names.keys().next().unwrap();
        assert!(matches!(elect_preferred(&img, id, 0), Elected::Change(MetadataRecord::PartitionChange { leader: Some(1), isr: None, .. })));
        assert_eq!(elect_preferred(&img, id, 1), Elected::PreferredNotAvailable, "1 is not in the ISR");
        assert_eq!(elect_preferred(&img, id, 2), Elected::NotNeeded);
        assert_eq!(elect_preferred(&img, id, 9), Elected::Unknown);
        // Unclean: the ISR member 3 is down; live replica 4 takes over with an ISR of itself.
        assert!(matches!(elect_unclean(&img, id, 3), Elected::Change(MetadataRecord::PartitionChange { leader: Some(4), isr: Some(ref isr), .. }) if isr == &vec![4]));
        assert_eq!(elect_unclean(&img, id, 0), Elected::NotNeeded);
        img.brokers.get_mut(&4).unwrap().fenced = true;
        assert_eq!(elect_unclean(&img, id, 3), Elected::EligibleNotAvailable);
    }

    #[test]
    fn rebalance_moves_leadership_back_only_above_the_imbalance_threshold() {
        // Broker 1 prefers 4 partitions and leads 3 of them: 25% imbalance.
        let parts = vec![
            (1, vec![1, 2], vec![1, 2]),
            (1, vec![1, 2], vec![1, 2]),
            (1, vec![1, 2], vec![1, 2]),
            (2, vec![1, 2], vec![1, 2]),
        ];
        let img = image(parts, &[1, 2]);
        assert!(rebalance_preferred_leaders(&img, 25).is_empty(), "25% is not above 25%");
        let recs = rebalance_preferred_leaders(&img, 10);
        assert_eq!(recs.len(), 1);
        assert!(matches!(recs[0], MetadataRecord::PartitionChange { partition: 3, leader: Some(1), .. }));
    }
}
