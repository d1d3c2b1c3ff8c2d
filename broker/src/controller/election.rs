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
                out.push(MetadataRecord::PartitionChange { topic_id: t.id, partition: i as i32, leader, isr, replicas: None });
            }
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
                out.push(MetadataRecord::PartitionChange { topic_id: t.id, partition: i as i32, leader: Some(leader), isr: None, replicas: None });
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
    /// INELIGIBLE_REPLICA: a proposed member is not a replica, is fenced, or the leader is
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
    let eligible = |r: &i32| p.replicas.contains(r) && (p.isr.contains(r) || image.is_live(*r));
    if !new_isr.contains(&broker) || !new_isr.iter().all(eligible) {
        return Err(AlterIsrRefusal::IneligibleReplica);
    }
    let mut isr: Vec<i32> = p.replicas.iter().copied().filter(|r| new_isr.contains(r)).collect();
    isr.dedup();
    if isr == p.isr {
        return Ok(None);
    }
    Ok(Some(MetadataRecord::PartitionChange { topic_id, partition, leader: None, isr: Some(isr), replicas: None }))
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
                BrokerRegistration { id, epoch: 1, incarnation_id: Uuid::nil(), endpoints: vec![], rack: None, fenced: !live.contains(&id) },
            );
        }
        let partitions = parts
            .into_iter()
            .map(|(leader, replicas, isr)| PartitionImage { leader, leader_epoch: 0, replicas, isr, partition_epoch: 0 })
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
    }
}
