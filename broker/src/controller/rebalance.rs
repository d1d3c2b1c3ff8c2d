//! Rebalance planning: which partitions move where so that every usable broker holds its share
//! of replicas and preferred leaders, each partition's replicas are spread over racks (fault and
//! update domains on a grid, see `racks`), brokers being drained end up with nothing, and as
//! few bytes as possible are copied. Pure: brokers, partition sizes and placements come in, the
//! moves come out. `lantern-admin rebalance plan` and `broker drain` print and execute it.
//!
//! How: every usable broker may hold `ceil(replicas / brokers)` replicas. The largest partitions
//! go first and keep their replicas where they are if those are usable, well spread and under
//! that share. Each other partition keeps the largest subset of its replicas that still allows a
//! set as well spread as the brokers allow and completes it with the least loaded brokers
//! (copying only the replicas it lacks). Last, replicas are reordered inside partitions (no
//! copy) so preferred leaders are balanced too.
use std::collections::{BTreeMap, BTreeSet};

use super::racks::{spread_shortfall, Topology};

/// A broker as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub id: i32,
    pub rack: Option<String>,
}

/// One partition: its current replicas (preferred leader first) and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLoad {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub bytes: u64,
}

/// One reassignment: the partition's replicas before and after, and the bytes its new
/// replicas copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
    pub bytes_to_copy: u64,
}

/// A partition the plan cannot place as asked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub topic: String,
    pub partition: i32,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub moves: Vec<Move>,
    /// Placed, but less spread over racks than its replica count asks (too few racks, or
    /// racks too full): each says which domains are shared.
    pub unspread: Vec<Problem>,
    /// Not placeable at all: more replicas than usable brokers. Its replicas stay put.
    pub blocked: Vec<Problem>,
}

impl Plan {
    pub fn bytes_to_copy(&self) -> u64 {
        self.moves.iter().map(|m| m.bytes_to_copy).sum()
    }
}

/// Plans a rebalance of `partitions` over `brokers`, moving everything off `drain`.
pub fn plan(brokers: &[Broker], drain: &BTreeSet<i32>, partitions: &[PartitionLoad]) -> Plan {
    let usable: Vec<&Broker> = brokers.iter().filter(|b| !drain.contains(&b.id)).collect();
    let topology = Topology::of(usable.iter().map(|b| b.rack.as_deref()));
    let domains: BTreeMap<i32, Vec<String>> = usable.iter().map(|b| (b.id, topology.domains(b.rack.as_deref()))).collect();
    let dims = topology.dimension_names().len();
    let available: Vec<usize> = (0..dims).map(|d| domains.values().map(|v| &v[d]).collect::<BTreeSet<_>>().len()).collect();
    let ctx = Ctx { domains: &domains, available: &available };

    let mut out = Plan::default();
    let placeable: Vec<&PartitionLoad> = partitions
        .iter()
        .filter(|p| {
            let ok = !p.replicas.is_empty() && p.replicas.len() <= usable.len();
            if !ok {
                out.blocked.push(Problem {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    reason: format!("{} replicas but only {} usable brokers", p.replicas.len(), usable.len()),
                });
            }
            ok
        })
        .collect();
    let total: usize = placeable.iter().map(|p| p.replicas.len()).sum();
    let n = usable.len().max(1);
    let mut capacity = total.div_ceil(n);
    let mut load: BTreeMap<i32, usize> = usable.iter().map(|b| (b.id, 0)).collect();
    let mut topic_load: BTreeMap<(&str, i32), usize> = BTreeMap::new();
    let mut placed: Vec<Option<Vec<i32>>> = vec![None; placeable.len()];

    // Largest first: they are the most expensive to move.
    let mut order: Vec<usize> = (0..placeable.len()).collect();
    order.sort_by(|a, b| placeable[*b].bytes.cmp(&placeable[*a].bytes).then(a.cmp(b)));

    // Keep what is already good.
    for &i in &order {
        let p = placeable[i];
        let usable_now = p.replicas.iter().all(|r| load.contains_key(r)) && distinct(&p.replicas);
        if usable_now && ctx.spread(&p.replicas) == ctx.best_spread(p.replicas.len()) && p.replicas.iter().all(|r| load[r] < capacity) {
            for r in &p.replicas {
                *load.get_mut(r).unwrap() += 1;
                *topic_load.entry((p.topic.as_str(), *r)).or_default() += 1;
            }
            placed[i] = Some(p.replicas.clone());
        }
    }
    // Place the rest, keeping as many current replicas as a well-spread set allows.
    for &i in &order {
        if placed[i].is_some() {
            continue;
        }
        let p = placeable[i];
        let chosen = loop {
            if let Some(set) = ctx.choose(p, &load, &topic_load, capacity) {
                break set;
            }
            // Only when the spread constraints leave no room under the fair share.
            capacity += 1;
        };
        for r in &chosen {
            *load.get_mut(r).unwrap() += 1;
            *topic_load.entry((p.topic.as_str(), *r)).or_default() += 1;
        }
        if ctx.spread(&chosen) < ctx.best_spread(chosen.len()) {
            let replica_domains: Vec<Vec<String>> = chosen.iter().map(|r| domains[r].clone()).collect();
            out.unspread.push(Problem {
                topic: p.topic.clone(),
                partition: p.partition,
                reason: format!(
                    "{} could not be spread further: {}",
                    topology.dimension_names().join(" and "),
                    spread_shortfall(&replica_domains, &available).join("; ")
                ),
            });
        }
        placed[i] = Some(chosen);
    }
    let mut placed: Vec<Vec<i32>> = placed.into_iter().map(|s| s.unwrap_or_default()).collect();
    even_out(&mut placed, &placeable, &ctx, &mut load);
    balance_leaders(&mut placed, usable.iter().map(|b| b.id));
    for (p, to) in placeable.iter().zip(placed) {
        if to != p.replicas {
            let new = to.iter().filter(|r| !p.replicas.contains(r)).count() as u64;
            out.moves.push(Move { topic: p.topic.clone(), partition: p.partition, from: p.replicas.clone(), to, bytes_to_copy: new * p.bytes });
        }
    }
    out
}

fn distinct(v: &[i32]) -> bool {
    v.iter().collect::<BTreeSet<_>>().len() == v.len()
}

struct Ctx<'a> {
    domains: &'a BTreeMap<i32, Vec<String>>,
    available: &'a [usize],
}

impl Ctx<'_> {
    /// How spread a replica set is: per dimension, its distinct domains.
    fn spread(&self, set: &[i32]) -> usize {
        (0..self.available.len())
            .map(|d| set.iter().filter_map(|r| self.domains.get(r).map(|v| v[d].as_str())).collect::<BTreeSet<_>>().len())
            .sum()
    }

    /// The most spread a set of `rf` replicas can be.
    fn best_spread(&self, rf: usize) -> usize {
        self.available.iter().map(|a| rf.min(*a)).sum()
    }

    /// The replica set for `p`: the most spread set reachable under `capacity`, keeping as
    /// many current replicas as possible, new replicas on the least loaded brokers (and the
    /// fewest replicas of the same topic). Current replicas keep their positions; new ones
    /// take the places of those that leave. None if no set fits under `capacity`.
    fn choose(&self, p: &PartitionLoad, load: &BTreeMap<i32, usize>, topic_load: &BTreeMap<(&str, i32), usize>, capacity: usize) -> Option<Vec<i32>> {
        let rf = p.replicas.len();
        let keepable: Vec<i32> = p.replicas.iter().copied().filter(|r| load.get(r).is_some_and(|l| *l < capacity)).collect::<Vec<_>>();
        let mut candidates: Vec<i32> = load.iter().filter(|(_, l)| **l < capacity).map(|(b, _)| *b).collect();
        candidates.sort_by_key(|b| (load[b], topic_load.get(&(p.topic.as_str(), *b)).copied().unwrap_or(0), *b));
        let best = self.best_spread(rf);
        // (spread, kept, -load) of the best set so far.
        let mut found: Option<(usize, usize, Vec<i32>)> = None;
        // Larger kept subsets first; within a size, any order (all are tried).
        let mut subsets: Vec<Vec<i32>> = (0u32..(1 << keepable.len()))
            .map(|mask| keepable.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, r)| *r).collect())
            .collect();
        subsets.sort_by_key(|s: &Vec<i32>| std::cmp::Reverse(s.len()));
        for kept in subsets {
            if found.as_ref().is_some_and(|(s, k, _)| *s == best && *k > kept.len()) {
                break;
            }
            let pool: Vec<i32> = candidates.iter().copied().filter(|b| !kept.contains(b)).collect();
            let mut budget = 20_000usize;
            if let Some(added) = self.complete(&kept, rf - kept.len(), &pool, best, &mut budget) {
                let mut set = kept.clone();
                set.extend(&added);
                let score = self.spread(&set);
                let better = match &found {
                    None => true,
                    Some((s, k, _)) => score > *s || (score == *s && kept.len() > *k),
                };
                if better {
                    found = Some((score, kept.len(), set));
                }
            }
        }
        let (_, _, set) = found?;
        // Kept replicas stay in their positions; new ones fill the vacated places in order.
        let mut incoming = set.iter().copied().filter(|r| !p.replicas.contains(r));
        let mut out: Vec<i32> = p.replicas.iter().map(|r| if set.contains(r) { *r } else { incoming.next().unwrap_or(-1) }).collect();
        out.retain(|r| *r >= 0);
        out.extend(incoming);
        Some(out)
    }

    /// `need` brokers from `pool` (in preference order) that, added to `kept`, give the most
    /// spread set; stops at the first set reaching `best`. A bounded search.
    fn complete(&self, kept: &[i32], need: usize, pool: &[i32], best: usize, budget: &mut usize) -> Option<Vec<i32>> {
        if need == 0 {
            return Some(Vec::new());
        }
        let mut chosen = Vec::with_capacity(need);
        let mut top: Option<(usize, Vec<i32>)> = None;
        self.search(kept, need, pool, 0, &mut chosen, best, &mut top, budget);
        top.map(|(_, v)| v)
    }

    #[allow(clippy::too_many_arguments)]
    fn search(&self, kept: &[i32], need: usize, pool: &[i32], from: usize, chosen: &mut Vec<i32>, best: usize, top: &mut Option<(usize, Vec<i32>)>, budget: &mut usize) -> bool {
        if chosen.len() == need {
            let set: Vec<i32> = kept.iter().chain(chosen.iter()).copied().collect();
            let s = self.spread(&set);
            if top.as_ref().is_none_or(|(t, _)| s > *t) {
                *top = Some((s, chosen.clone()));
            }
            return s == best;
        }
        for i in from..pool.len() {
            if *budget == 0 {
                return true;
            }
            *budget -= 1;
            if pool.len() - i < need - chosen.len() {
                break;
            }
            chosen.push(pool[i]);
            let done = self.search(kept, need, pool, i + 1, chosen, best, top, budget);
            chosen.pop();
            if done {
                return true;
            }
        }
        false
    }
}

/// Single-replica moves from the most to the least loaded brokers until every broker is within
/// one replica of the others, or no move keeps its partition as spread as it is. The greedy
/// placement above can leave a broker short when the shares filled up in an awkward order.
/// Cheapest first: a replica this plan already moves (no extra copy), then a small partition.
fn even_out(sets: &mut [Vec<i32>], parts: &[&PartitionLoad], ctx: &Ctx, load: &mut BTreeMap<i32, usize>) {
    let total: usize = load.values().sum();
    for _ in 0..=total {
        let mut by_load: Vec<(usize, i32)> = load.iter().map(|(b, l)| (*l, *b)).collect();
        by_load.sort_unstable();
        let Some(&(lo, _)) = by_load.first() else { return };
        let Some(&(hi, _)) = by_load.last() else { return };
        if hi <= lo + 1 {
            return;
        }
        // (extra copy, bytes, set index, position, destination)
        let mut best: Option<(bool, u64, usize, usize, i32)> = None;
        for &(src_load, src) in by_load.iter().rev() {
            for &(dst_load, dst) in &by_load {
                if dst_load + 1 >= src_load {
                    break;
                }
                for (i, set) in sets.iter().enumerate() {
                    let Some(pos) = set.iter().position(|r| *r == src) else { continue };
                    if set.contains(&dst) {
                        continue;
                    }
                    let mut moved = set.clone();
                    moved[pos] = dst;
                    if ctx.spread(&moved) < ctx.spread(set) {
                        continue;
                    }
                    let extra_copy = parts[i].replicas.contains(&src) && !parts[i].replicas.contains(&dst);
                    let key = (extra_copy, parts[i].bytes, i, pos, dst);
                    if best.as_ref().is_none_or(|b| (key.0, key.1) < (b.0, b.1)) {
                        best = Some(key);
                    }
                }
            }
            if best.is_some() {
                break;
            }
        }
        let Some((_, _, i, pos, dst)) = best else { return };
        let src = sets[i][pos];
        sets[i][pos] = dst;
        *load.get_mut(&src).unwrap() -= 1;
        *load.get_mut(&dst).unwrap() += 1;
    }
}

/// Reorders replicas inside partitions (no data moves) so that each broker is the preferred
/// leader (first replica) of its share: a partition whose first replica leads more than the
/// share hands the place to another of its replicas that leads fewer.
fn balance_leaders(sets: &mut [Vec<i32>], brokers: impl Iterator<Item = i32>) {
    let mut leads: BTreeMap<i32, usize> = brokers.map(|b| (b, 0)).collect();
    for s in sets.iter() {
        if let Some(f) = s.first() {
            *leads.entry(*f).or_default() += 1;
        }
    }
    // Each pass strictly lowers the sum of squared leader counts, so this ends.
    loop {
        let mut changed = false;
        for s in sets.iter_mut() {
            let Some(&first) = s.first() else { continue };
            let Some((pos, other)) = s.iter().enumerate().skip(1).min_by_key(|(_, r)| (leads.get(r).copied().unwrap_or(usize::MAX), **r)).map(|(i, r)| (i, *r)) else {
                continue;
            };
            let (a, b) = (leads[&first], leads.get(&other).copied().unwrap_or(usize::MAX));
            if b.saturating_add(1) < a {
                s.swap(0, pos);
                *leads.get_mut(&first).unwrap() -= 1;
                *leads.get_mut(&other).unwrap() += 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brokers(racks: &[&str]) -> Vec<Broker> {
        racks.iter().enumerate().map(|(i, r)| Broker { id: i as i32 + 1, rack: (!r.is_empty()).then(|| r.to_string()) }).collect()
    }

    fn topic(name: &str, lists: &[Vec<i32>], bytes: u64) -> Vec<PartitionLoad> {
        lists.iter().enumerate().map(|(i, r)| PartitionLoad { topic: name.into(), partition: i as i32, replicas: r.clone(), bytes }).collect()
    }

    fn after(parts: &[PartitionLoad], plan: &Plan) -> Vec<Vec<i32>> {
        parts
            .iter()
            .map(|p| plan.moves.iter().find(|m| m.topic == p.topic && m.partition == p.partition).map_or(p.replicas.clone(), |m| m.to.clone()))
            .collect()
    }

    fn counts(sets: &[Vec<i32>], leaders_only: bool) -> BTreeMap<i32, usize> {
        let mut c = BTreeMap::new();
        for s in sets {
            for r in if leaders_only { &s[..1] } else { &s[..] } {
                *c.entry(*r).or_default() += 1;
            }
        }
        c
    }

    /// The scale-out: three brokers on the diagonal of a 3x3 grid, three more added;
    /// only the two diagonals are well-spread triples, so half the partitions move whole.
    #[test]
    fn scale_out_onto_three_new_cells_keeps_every_partition_on_three_fault_and_update_domains() {
        let bs = brokers(&["FD0UD0", "FD1UD1", "FD2UD2", "FD0UD1", "FD1UD2", "FD2UD0"]);
        let lists: Vec<Vec<i32>> = (0..12).map(|i| { let mut v = vec![1, 2, 3]; v.rotate_left(i % 3); v }).collect();
        let parts = topic("t", &lists, 1000);
        let planned = plan(&bs, &BTreeSet::new(), &parts);
        let sets = after(&parts, &planned);
        let topology = Topology::of(bs.iter().map(|b| b.rack.as_deref()));
        for s in &sets {
            let fds: BTreeSet<String> = s.iter().map(|r| topology.domains(bs[*r as usize - 1].rack.as_deref())[0].clone()).collect();
            let uds: BTreeSet<String> = s.iter().map(|r| topology.domains(bs[*r as usize - 1].rack.as_deref())[1].clone()).collect();
            assert_eq!((fds.len(), uds.len()), (3, 3), "{s:?}");
        }
        assert!(counts(&sets, false).values().all(|c| *c == 6), "{:?}", counts(&sets, false));
        let leaders = counts(&sets, true);
        assert_eq!(leaders.len(), 6);
        assert!(leaders.values().all(|c| (1..=3).contains(c)), "{leaders:?}");
        assert!(planned.unspread.is_empty() && planned.blocked.is_empty());
        // The least a plan can copy: six partitions' three replicas each.
        assert_eq!(planned.bytes_to_copy(), 6 * 3 * 1000);
    }

    #[test]
    fn a_balanced_cluster_needs_no_moves() {
        let bs = brokers(&["", "", ""]);
        let parts = topic("t", &[vec![1, 2], vec![2, 3], vec![3, 1]], 10);
        assert_eq!(plan(&bs, &BTreeSet::new(), &parts), Plan::default());
    }

    #[test]
    fn a_new_broker_without_racks_gets_its_share_with_one_copy_per_replica_moved() {
        let bs = brokers(&["", "", "", ""]);
        let lists: Vec<Vec<i32>> = (0..8).map(|i| vec![(i % 3) + 1, ((i + 1) % 3) + 1]).collect();
        let parts = topic("t", &lists, 100);
        let planned = plan(&bs, &BTreeSet::new(), &parts);
        let sets = after(&parts, &planned);
        assert_eq!(counts(&sets, false).values().copied().collect::<Vec<_>>(), vec![4, 4, 4, 4]);
        // Broker 4 gets 4 replicas: 4 copies, no more.
        assert_eq!(planned.bytes_to_copy(), 4 * 100);
        assert!(planned.moves.iter().all(|m| m.to.iter().filter(|r| !m.from.contains(r)).count() <= 1));
    }

    #[test]
    fn a_drained_broker_ends_with_nothing_and_too_few_brokers_is_blocked() {
        let bs = brokers(&["", "", ""]);
        let parts = topic("t", &[vec![1, 2], vec![2, 3], vec![3, 1]], 10);
        let plan3 = plan(&bs, &[3].into(), &parts);
        let sets = after(&parts, &plan3);
        assert!(sets.iter().all(|s| !s.contains(&3) && s.len() == 2), "{sets:?}");
        let wide = topic("w", &[vec![1, 2, 3]], 10);
        let blocked = plan(&bs, &[3].into(), &wide);
        assert_eq!(blocked.blocked.len(), 1, "{blocked:?}");
        assert!(blocked.moves.is_empty());
    }

    #[test]
    fn a_partition_that_cannot_be_spread_says_which_domains_it_shares() {
        // Two fault domains only for three replicas.
        let bs = brokers(&["FD0UD0", "FD1UD1", "FD0UD2"]);
        let parts = topic("t", &[vec![1, 2, 3]], 10);
        let kept = plan(&bs, &BTreeSet::new(), &parts);
        assert!(kept.moves.is_empty(), "already as spread as possible: {kept:?}");
        assert!(kept.unspread.is_empty(), "two fault domains are all there are: {kept:?}");
        // Three fault domains exist, but the third holds only a broker being drained.
        let bs = brokers(&["FD0UD0", "FD1UD1", "FD0UD2", "FD2UD0"]);
        let drained = plan(&bs, &[4].into(), &topic("t", &[vec![4, 2, 3]], 10));
        assert_eq!(after(&topic("t", &[vec![4, 2, 3]], 10), &drained)[0].len(), 3);
    }

    proptest! {
        /// Without racks: every usable broker ends within one replica of its share, nothing is
        /// left on a drained broker, no partition lists a broker twice, and a second plan over
        /// the result moves nothing.
        #[test]
        fn plans_balance_and_are_stable(n in 2i32..7, rf in 1usize..4, parts in 1usize..25, seed in 0u64..1000, drain_one in any::<bool>()) {
            prop_assume!(rf as i32 <= n - i32::from(drain_one));
            let bs = brokers(&vec![""; n as usize]);
            let mut rng = seed;
            let mut next = || { rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (rng >> 33) as usize };
            let lists: Vec<Vec<i32>> = (0..parts).map(|_| {
                let mut ids: Vec<i32> = (1..=n).collect();
                let mut out = Vec::new();
                for _ in 0..rf { out.push(ids.remove(next() % ids.len())); }
                out
            }).collect();
            let ps = topic("t", &lists, 1 + (seed % 7));
            let drain: BTreeSet<i32> = if drain_one { [n].into() } else { BTreeSet::new() };
            let p1 = plan(&bs, &drain, &ps);
            let sets = after(&ps, &p1);
            let usable = n as usize - drain.len();
            let c = counts(&sets, false);
            let share = (parts * rf).div_ceil(usable);
            for (b, k) in &c {
                prop_assert!(!drain.contains(b), "drained broker {} keeps {}", b, k);
                prop_assert!(*k <= share, "broker {} holds {} > {}", b, k, share);
            }
            for s in &sets {
                prop_assert_eq!(s.len(), rf);
                prop_assert!(distinct(s));
            }
            let again: Vec<PartitionLoad> = ps.iter().zip(&sets).map(|(p, s)| PartitionLoad { replicas: s.clone(), ..p.clone() }).collect();
            let p2 = plan(&bs, &drain, &again);
            prop_assert!(p2.moves.iter().all(|m| m.bytes_to_copy == 0), "a second plan copies data: {:?}", p2.moves);
        }
    }
}
