//! Where a new partition's replicas go: Kafka's assignment (AdminUtils.assignReplicasToBrokers),
//! round-robin from a random start with a shifting follower offset, rack-aware when brokers
//! name racks. Pure: the caller passes the brokers and the random numbers.
use std::collections::{BTreeMap, BTreeSet};

/// A broker placement may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i32,
    pub rack: Option<String>,
}

/// The random choices of one assignment (Kafka's startIndex and nextReplicaShift).
#[derive(Debug, Clone, Copy)]
pub struct Seed {
    pub start_index: usize,
    pub replica_shift: usize,
}

/// Replicas (leader first) for partitions `first_partition..first_partition + count`.
/// `brokers` must be non-empty and at least `replication_factor` long (checked by the caller,
/// which answers INVALID_REPLICATION_FACTOR).
pub fn assign(brokers: &[Candidate], count: usize, replication_factor: usize, first_partition: usize, seed: Seed) -> Vec<Vec<i32>> {
    let mut sorted = brokers.to_vec();
    sorted.sort_by_key(|b| b.id);
    if sorted.is_empty() || replication_factor == 0 || replication_factor > sorted.len() {
        return Vec::new();
    }
    // Without racks every broker is on the same (empty) rack, and the rack-aware walk below
    // reduces to Kafka's plain assignment.
    rack_aware(&sorted, count, replication_factor, first_partition, seed)
}

fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    let shift = 1 + (shift + j) % (n - 1).max(1);
    (first + shift) % n
}

/// Brokers ordered so that consecutive ones are on different racks (Kafka's
/// getRackAlternatedBrokerList). Brokers without a rack count as one rack of their own.
fn rack_alternated(brokers: &[Candidate]) -> Vec<&Candidate> {
    let mut by_rack: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.as_deref().unwrap_or("")).or_default().push(b);
    }
    let mut iters: Vec<std::vec::IntoIter<&Candidate>> = by_rack.into_values().map(|v| v.into_iter()).collect();
    let mut out = Vec::with_capacity(brokers.len());
    while out.len() < brokers.len() {
        for it in iters.iter_mut() {
            if let Some(b) = it.next() {
                out.push(b);
            }
        }
    }
    out
}

fn rack_aware(brokers: &[Candidate], count: usize, rf: usize, first_partition: usize, seed: Seed) -> Vec<Vec<i32>> {
    let arranged = rack_alternated(brokers);
    let n = arranged.len();
    let rack = |b: &Candidate| b.rack.clone().unwrap_or_default();
    let num_racks = arranged.iter().map(|b| rack(b)).collect::<BTreeSet<_>>().len();
    let start = seed.start_index % n;
    let mut shift = seed.replica_shift % n;
    let mut out = Vec::with_capacity(count);
    for p in first_partition..first_partition + count {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let leader = arranged[first];
        let mut replicas = vec![leader.id];
        let mut racks: BTreeSet<String> = [rack(leader)].into();
        let mut used: BTreeSet<i32> = [leader.id].into();
        let mut k = 0;
        for _ in 0..rf - 1 {
            // Terminates: once every rack holds a replica any unused broker qualifies, and
            // rf <= n guarantees one exists within n steps.
            loop {
                let b = arranged[replica_index(first, shift * num_racks, k, n)];
                k += 1;
                let new_rack = !racks.contains(&rack(b)) || racks.len() == num_racks;
                let new_broker = !used.contains(&b.id) || used.len() == n;
                if new_rack && new_broker {
                    replicas.push(b.id);
                    racks.insert(rack(b));
                    used.insert(b.id);
                    break;
                }
                if k > 4 * n * n {
                    // Unreachable by the argument above; never loop forever on a bug.
                    break;
                }
            }
        }
        out.push(replicas);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brokers(n: i32, racks: usize) -> Vec<Candidate> {
        (1..=n)
            .map(|id| Candidate { id, rack: (racks > 0).then(|| format!("r{}", (id as usize) % racks)) })
            .collect()
    }

    #[test]
    fn kafka_example_without_racks() {
        // Kafka's documented example: 5 brokers, 10 partitions, rf 3, start 0, shift 0.
        let out = assign(&brokers(5, 0), 10, 3, 0, Seed { start_index: 0, replica_shift: 0 });
        let leaders: Vec<i32> = out.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 4, 5, 1, 2, 3, 4, 5]);
        assert_eq!(out[0], vec![1, 2, 3]);
        assert_eq!(out[5], vec![1, 3, 4]);
    }

    proptest! {
        #[test]
        fn replicas_distinct_and_leaders_balanced(n in 1i32..8, parts in 1usize..60, rf in 1usize..4, racks in 0usize..4,
                                                   start in 0usize..100, shift in 0usize..100) {
            prop_assume!(rf as i32 <= n);
            let bs = brokers(n, racks);
            let out = assign(&bs, parts, rf, 0, Seed { start_index: start, replica_shift: shift });
            prop_assert_eq!(out.len(), parts);
            let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
            for r in &out {
                prop_assert_eq!(r.len(), rf);
                let set: BTreeSet<i32> = r.iter().copied().collect();
                prop_assert_eq!(set.len(), rf, "replicas repeat a broker: {:?}", r);
                *leaders.entry(r[0]).or_default() += 1;
                if racks > 0 {
                    let distinct: BTreeSet<String> = r.iter().map(|id| bs[(*id - 1) as usize].rack.clone().unwrap()).collect();
                    let racks_present = bs.iter().map(|b| b.rack.clone()).collect::<BTreeSet<_>>().len();
                    prop_assert_eq!(distinct.len(), rf.min(racks_present), "replicas share a rack: {:?}", r);
                }
            }
            let (min, max) = (leaders.values().min().copied().unwrap_or(0), leaders.values().max().copied().unwrap_or(0));
            if parts >= n as usize {
                prop_assert!(max - min <= 1, "leaders unbalanced: {:?}", leaders);
                prop_assert_eq!(leaders.len(), n as usize);
            }
        }
    }
}
