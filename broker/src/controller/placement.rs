//! Where a new partition's replicas go: Kafka's assignment (AdminUtils.assignReplicasToBrokers),
//! round-robin from a random start with a shifting follower offset, rack-aware when brokers
//! name racks, and over both fault and update domains when the racks are `FD<N>UD<M>` labels
//! (see `racks`). Pure: the caller passes the brokers and the random numbers.
use std::collections::{BTreeMap, BTreeSet};

use super::racks::{self, Topology};

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
    if brokers.is_empty() || replication_factor == 0 || replication_factor > brokers.len() {
        return Vec::new();
    }
    // Without racks every broker is on the same (empty) rack, and the rack-aware walk below
    // reduces to Kafka's plain assignment.
    rack_aware(brokers, count, replication_factor, first_partition, seed)
}

fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    let shift = 1 + (shift + j) % (n - 1).max(1);
    (first + shift) % n
}

/// Kafka's rack-aware assignment over the rack-alternated broker order, with one constraint
/// per rack dimension (one: the rack; a grid: fault domain and update domain): a follower goes
/// where each of its domains is new to the partition, unless every domain of that dimension
/// already holds one of its replicas. Where a grid has no broker in the cell that would
/// satisfy both (a missing cell), the update domain gives way first, then the fault domain.
fn rack_aware(brokers: &[Candidate], count: usize, rf: usize, first_partition: usize, seed: Seed) -> Vec<Vec<i32>> {
    let topology = Topology::of(brokers.iter().map(|b| b.rack.as_deref()));
    let order = racks::alternated(&brokers.iter().map(|b| (b.id, b.rack.clone())).collect::<Vec<_>>());
    let domains: BTreeMap<i32, Vec<String>> = brokers.iter().map(|b| (b.id, topology.domains(b.rack.as_deref()))).collect();
    let dims = topology.dimension_names().len();
    let per_dim: Vec<usize> = (0..dims).map(|d| domains.values().map(|v| &v[d]).collect::<BTreeSet<_>>().len()).collect();
    // Kafka shifts followers by the number of racks; on a grid the cells play that part.
    let num_racks = brokers.iter().map(|b| b.rack.clone().unwrap_or_default()).collect::<BTreeSet<_>>().len();
    let n = order.len();
    let start = seed.start_index % n;
    let mut shift = seed.replica_shift % n;
    let mut out = Vec::with_capacity(count);
    for p in first_partition..first_partition + count {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let leader = order[first];
        let mut replicas = vec![leader];
        let mut used: Vec<BTreeSet<&str>> = domains[&leader].iter().map(|v| [v.as_str()].into()).collect();
        let mut k = 0;
        // On a grid, taking the first follower that fits can leave no cell for the next one
        // (the two diagonals of a sparse grid): look ahead, while a fully spread set exists.
        let best: usize = per_dim.iter().map(|a| rf.min(*a)).sum();
        let mut lookahead = topology == Topology::Grid && completable(&replicas, rf, &order, &domains, best);
        for _ in 0..rf - 1 {
            // Strict first (every dimension, with a completion), then with the last dimensions
            // relaxed, finally any broker not yet used: within n - 1 steps the walk has tried
            // every other broker.
            let mut chosen = None;
            let passes = std::iter::once((dims, lookahead)).chain((0..=dims).rev().map(|d| (d, false)));
            'passes: for (strict_dims, ahead) in passes {
                for _ in 0..n.saturating_sub(1).max(1) {
                    let b = order[replica_index(first, shift * num_racks, k, n)];
                    k += 1;
                    if replicas.contains(&b) {
                        continue;
                    }
                    let fits = (0..strict_dims).all(|d| !used[d].contains(domains[&b][d].as_str()) || used[d].len() == per_dim[d]);
                    let ahead_ok = !ahead || {
                        let mut with = replicas.clone();
                        with.push(b);
                        completable(&with, rf, &order, &domains, best)
                    };
                    if fits && ahead_ok {
                        chosen = Some(b);
                        break 'passes;
                    }
                }
            }
            // rf <= n, so the last pass (no constraint) always finds an unused broker.
            let Some(b) = chosen.or_else(|| order.iter().copied().find(|b| !replicas.contains(b))) else { break };
            for (d, v) in domains[&b].iter().enumerate() {
                used[d].insert(v.as_str());
            }
            replicas.push(b);
            lookahead = lookahead && completable(&replicas, rf, &order, &domains, best);
        }
        out.push(replicas);
    }
    out
}

/// Whether `chosen` can grow to `rf` replicas from `brokers` with `best` spread (distinct
/// domains summed over dimensions). A bounded search; an exhausted budget answers yes (the
/// walk then goes on as Kafka's would).
fn completable(chosen: &[i32], rf: usize, brokers: &[i32], domains: &BTreeMap<i32, Vec<String>>, best: usize) -> bool {
    fn spread(set: &[i32], domains: &BTreeMap<i32, Vec<String>>) -> usize {
        let dims = set.first().map_or(0, |b| domains[b].len());
        (0..dims).map(|d| set.iter().map(|b| domains[b][d].as_str()).collect::<BTreeSet<_>>().len()).sum()
    }
    fn search(set: &mut Vec<i32>, from: usize, rf: usize, brokers: &[i32], domains: &BTreeMap<i32, Vec<String>>, best: usize, budget: &mut usize) -> bool {
        if set.len() == rf {
            return spread(set, domains) == best;
        }
        for i in from..brokers.len() {
            if *budget == 0 {
                return true;
            }
            *budget -= 1;
            let b = brokers[i];
            if set.contains(&b) {
                continue;
            }
            set.push(b);
            let found = search(set, i + 1, rf, brokers, domains, best, budget);
            set.pop();
            if found {
                return true;
            }
        }
        false
    }
    let mut sorted: Vec<i32> = brokers.to_vec();
    sorted.sort_unstable();
    let mut set = chosen.to_vec();
    let mut budget = 5_000;
    search(&mut set, 0, rf, &sorted, domains, best, &mut budget)
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

    fn grid_brokers(cells: &[&str]) -> Vec<Candidate> {
        cells.iter().enumerate().map(|(i, c)| Candidate { id: i as i32 + 1, rack: Some(c.to_string()) }).collect()
    }

    fn spread(bs: &[Candidate], replicas: &[i32]) -> (usize, usize) {
        let cell = |id: &i32| racks::Cell::parse(bs.iter().find(|b| b.id == *id).unwrap().rack.as_deref().unwrap()).unwrap();
        let fds: BTreeSet<u32> = replicas.iter().map(|r| cell(r).fault_domain).collect();
        let uds: BTreeSet<u32> = replicas.iter().map(|r| cell(r).update_domain).collect();
        (fds.len(), uds.len())
    }

    /// The cluster: three brokers on the diagonal, then three more; every partition's
    /// replicas on three fault domains and three update domains.
    #[test]
    fn grid_replicas_take_distinct_fault_and_update_domains() {
        for cells in [&["FD0UD0", "FD1UD1", "FD2UD2"][..], &["FD0UD0", "FD1UD1", "FD2UD2", "FD0UD1", "FD1UD2", "FD2UD0"][..]] {
            let bs = grid_brokers(cells);
            for start in 0..6 {
                for r in assign(&bs, 12, 3, 0, Seed { start_index: start, replica_shift: start * 7 }) {
                    assert_eq!(spread(&bs, &r), (3, 3), "{r:?} on {cells:?}");
                }
            }
        }
    }

    /// A grid with a missing cell where no third broker can take a new fault and update
    /// domain at once: the fault domain is kept distinct, the partition still gets three
    /// replicas.
    #[test]
    fn a_gap_in_the_grid_relaxes_the_update_domain_first() {
        let bs = grid_brokers(&["FD0UD0", "FD1UD0", "FD0UD1"]);
        for start in 0..3 {
            for r in assign(&bs, 6, 3, 0, Seed { start_index: start, replica_shift: start }) {
                assert_eq!(r.len(), 3);
                assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3);
            }
            for r in assign(&bs, 6, 2, 0, Seed { start_index: start, replica_shift: start }) {
                let (fds, _) = spread(&bs, &r);
                assert_eq!(fds, 2, "{r:?}");
            }
        }
    }

    proptest! {
        /// On a full grid of at least rf x rf cells (any number of brokers per cell), every
        /// partition's replicas are on rf fault domains and rf update domains.
        #[test]
        fn full_grids_spread_both_dimensions(fds in 1u32..5, uds in 1u32..5, extra in proptest::collection::vec((0u32..5, 0u32..5), 0..6),
                                              rf in 1usize..4, parts in 1usize..30, start in 0usize..50, shift in 0usize..50) {
            let mut labels: Vec<String> = (0..fds).flat_map(|f| (0..uds).map(move |u| format!("FD{f}UD{u}"))).collect();
            labels.extend(extra.iter().filter(|(f, u)| *f < fds && *u < uds).map(|(f, u)| format!("FD{f}UD{u}")));
            let bs: Vec<Candidate> = labels.iter().enumerate().map(|(i, c)| Candidate { id: i as i32 + 1, rack: Some(c.clone()) }).collect();
            prop_assume!(rf <= bs.len());
            for r in assign(&bs, parts, rf, 0, Seed { start_index: start, replica_shift: shift }) {
                prop_assert_eq!(r.len(), rf);
                prop_assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), rf);
                let (f, u) = spread(&bs, &r);
                prop_assert_eq!(f, rf.min(fds as usize), "{:?}", r);
                prop_assert_eq!(u, rf.min(uds as usize), "{:?}", r);
            }
        }

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
