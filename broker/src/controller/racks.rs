//! Racks in one or two dimensions, and the order placement walks brokers in.
//!
//! Kafka's `broker.rack` is one label: replicas of a partition go on distinct racks. The managed
//! Kafka service names two dimensions in one label, `FD<N>UD<M>`: a fault domain (hosts that
//! share power and a switch, so fail together) and an update domain (hosts patched and rebooted
//! together). When every broker's rack is such a label, the cluster is a grid: replicas go on
//! distinct fault domains and distinct update domains where there are enough of them. Any
//! other label (or a mix) is one-dimensional, as in Kafka. Pure: no I/O.
use std::collections::{BTreeMap, BTreeSet};

/// One broker's rack as placement reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub fault_domain: u32,
    pub update_domain: u32,
}

impl Cell {
    /// `FD<N>UD<M>` (upper case, N and M below 1000), else None. The bound keeps the grid
    /// walk small whatever the labels (`FD0UD999999` would make a grid of a billion cells).
    pub fn parse(label: &str) -> Option<Cell> {
        let rest = label.strip_prefix("FD")?;
        let (fd, ud) = rest.split_once("UD")?;
        let num = |s: &str| (!s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u32>().ok()).flatten();
        Some(Cell { fault_domain: num(fd)?, update_domain: num(ud)? })
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FD{}UD{}", self.fault_domain, self.update_domain)
    }
}

/// How a set of brokers' racks is read: a grid of fault and update domains when every broker
/// has an `FD<N>UD<M>` label, one dimension otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    OneDimensional,
    Grid,
}

impl Topology {
    pub fn of<'a>(racks: impl IntoIterator<Item = Option<&'a str>>) -> Topology {
        let mut any = false;
        for r in racks {
            any = true;
            if r.and_then(Cell::parse).is_none() {
                return Topology::OneDimensional;
            }
        }
        if any { Topology::Grid } else { Topology::OneDimensional }
    }

    /// The domains a replica on a broker with `rack` occupies, one per dimension: `[fault
    /// domain, update domain]` on a grid, `[rack]` otherwise (no rack reads as the rack "").
    pub fn domains(self, rack: Option<&str>) -> Vec<String> {
        match (self, rack.and_then(Cell::parse)) {
            (Topology::Grid, Some(c)) => vec![format!("FD{}", c.fault_domain), format!("UD{}", c.update_domain)],
            _ => vec![rack.unwrap_or("").to_string()],
        }
    }

    /// What the dimensions are called, for messages.
    pub fn dimension_names(self) -> &'static [&'static str] {
        match self {
            Topology::Grid => &["fault domain", "update domain"],
            Topology::OneDimensional => &["rack"],
        }
    }
}

/// The managed service's rack-alternated order of the cells of a grid: diagonal slices, so
/// consecutive cells differ in both fault and update domain. The grid spans fault domains
/// `0..=max` and update domains `0..=max` of `cells`; cells without a broker are skipped.
/// When the two sizes share a factor a plain diagonal would revisit cells early, so each round
/// of `fault domains` steps then starts one update domain further on.
pub fn alternated_cells(cells: &BTreeSet<Cell>) -> Vec<Cell> {
    let Some(fds) = cells.iter().map(|c| c.fault_domain).max().map(|m| m as u64 + 1) else { return Vec::new() };
    let uds = cells.iter().map(|c| c.update_domain).max().unwrap_or(0) as u64 + 1;
    let shift_rounds = gcd(fds, uds) > 1;
    let mut out = Vec::with_capacity(cells.len());
    let (mut i, mut j, mut round) = (0u64, 0u64, 1u64);
    // Every cell of the grid is visited once in fds * uds steps; the walk stops early once
    // every present cell is out (a sparse grid with huge labels must not walk for ever).
    for _ in 0..fds.saturating_mul(uds) {
        let cell = Cell { fault_domain: (i % fds) as u32, update_domain: (j % uds) as u32 };
        if cells.contains(&cell) {
            out.push(cell);
            if out.len() == cells.len() {
                break;
            }
        }
        i += 1;
        if shift_rounds && i % fds == 0 {
            j = round;
            round += 1;
        } else {
            j += 1;
        }
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Brokers `(id, rack)` in the order placement walks them: consecutive brokers on different
/// racks (Kafka's getRackAlternatedBrokerList: racks by name, each rack's brokers by id, one
/// from each rack in turn), and on a grid on different fault and update domains (cells in
/// [`alternated_cells`] order, one broker from each cell in turn).
pub fn alternated(brokers: &[(i32, Option<String>)]) -> Vec<i32> {
    let topology = Topology::of(brokers.iter().map(|(_, r)| r.as_deref()));
    let mut groups: Vec<Vec<i32>> = match topology {
        Topology::Grid => {
            let mut by_cell: BTreeMap<Cell, Vec<i32>> = BTreeMap::new();
            for (id, rack) in brokers {
                if let Some(cell) = rack.as_deref().and_then(Cell::parse) {
                    by_cell.entry(cell).or_default().push(*id);
                }
            }
            let order = alternated_cells(&by_cell.keys().copied().collect());
            order.into_iter().filter_map(|c| by_cell.remove(&c)).collect()
        }
        Topology::OneDimensional => {
            let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (id, rack) in brokers {
                by_rack.entry(rack.as_deref().unwrap_or("")).or_default().push(*id);
            }
            by_rack.into_values().collect()
        }
    };
    for g in &mut groups {
        g.sort_unstable();
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while out.len() < brokers.len() {
        let before = out.len();
        for g in &groups {
            if let Some(id) = g.get(round) {
                out.push(*id);
            }
        }
        if out.len() == before {
            break;
        }
        round += 1;
    }
    out
}

/// Why a partition's replicas are less spread than the brokers allow: per dimension, the
/// domains that hold two replicas while another domain of that dimension holds none.
/// `available[d]` is how many distinct domains dimension `d` has among the usable brokers.
pub fn spread_shortfall(replica_domains: &[Vec<String>], available: &[usize]) -> Vec<String> {
    let mut problems = Vec::new();
    for (d, &avail) in available.iter().enumerate() {
        let used: BTreeSet<&str> = replica_domains.iter().filter_map(|ds| ds.get(d).map(String::as_str)).collect();
        let wanted = replica_domains.len().min(avail);
        if used.len() < wanted {
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for ds in replica_domains {
                if let Some(v) = ds.get(d) {
                    *count.entry(v.as_str()).or_default() += 1;
                }
            }
            let shared: Vec<&str> = count.into_iter().filter(|(_, n)| *n > 1).map(|(v, _)| v).collect();
            problems.push(format!("{} replicas on {} distinct domains of {} available (shared: {})", replica_domains.len(), used.len(), avail, shared.join(", ")));
        }
    }
    problems
}

/// The rack domains of a cluster's live brokers, to tell whether a replica set is as spread
/// as they allow (the SharedDomainPartitionCount metric).
pub struct Spread {
    domains: BTreeMap<i32, Vec<String>>,
    available: Vec<usize>,
}

impl Spread {
    pub fn of_live(image: &super::MetadataImage) -> Spread {
        let live: Vec<&super::BrokerRegistration> = image.live_brokers().collect();
        let topology = Topology::of(live.iter().map(|b| b.rack.as_deref()));
        let domains: BTreeMap<i32, Vec<String>> = live.iter().map(|b| (b.id, topology.domains(b.rack.as_deref()))).collect();
        let available = (0..topology.dimension_names().len())
            .map(|d| domains.values().map(|v| &v[d]).collect::<BTreeSet<_>>().len())
            .collect();
        Spread { domains, available }
    }

    /// Whether two of `replicas` share a domain that a live broker outside it would not.
    /// Replicas on brokers that are not live are left out (they are not placed anywhere now).
    pub fn shares_domain(&self, replicas: &[i32]) -> bool {
        let placed: Vec<Vec<String>> = replicas.iter().filter_map(|r| self.domains.get(r).cloned()).collect();
        !spread_shortfall(&placed, &self.available).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cells(labels: &[&str]) -> BTreeSet<Cell> {
        labels.iter().map(|l| Cell::parse(l).unwrap()).collect()
    }

    fn names(order: &[Cell]) -> Vec<String> {
        order.iter().map(Cell::to_string).collect()
    }

    fn grid(fds: u32, uds: u32) -> BTreeSet<Cell> {
        (0..fds).flat_map(|f| (0..uds).map(move |u| Cell { fault_domain: f, update_domain: u })).collect()
    }

    #[test]
    fn labels() {
        assert_eq!(Cell::parse("FD0UD2"), Some(Cell { fault_domain: 0, update_domain: 2 }));
        assert_eq!(Cell::parse("FD12UD3").unwrap().to_string(), "FD12UD3");
        for bad in ["fd0ud2", "FD0", "UD0", "FDUD1", "FD1UD", "FD-1UD0", "FD1UD2x", "rack-a", "", "FD99999999999UD0", "FD1000UD0"] {
            assert_eq!(Cell::parse(bad), None, "{bad}");
        }
        assert_eq!(Topology::of([Some("FD0UD0"), Some("FD1UD1")]), Topology::Grid);
        assert_eq!(Topology::of([Some("FD0UD0"), Some("rack-b")]), Topology::OneDimensional);
        assert_eq!(Topology::of([Some("FD0UD0"), None]), Topology::OneDimensional);
        assert_eq!(Topology::Grid.domains(Some("FD1UD2")), vec!["FD1".to_string(), "UD2".to_string()]);
        assert_eq!(Topology::OneDimensional.domains(Some("FD1UD2")), vec!["FD1UD2".to_string()]);
    }

    /// The managed service's rebalance tool's own examples.
    #[test]
    fn three_by_three_and_three_by_two_match_the_managed_service() {
        assert_eq!(names(&alternated_cells(&grid(3, 3))), ["FD0UD0", "FD1UD1", "FD2UD2", "FD0UD1", "FD1UD2", "FD2UD0", "FD0UD2", "FD1UD0", "FD2UD1"]);
        assert_eq!(names(&alternated_cells(&grid(3, 2))), ["FD0UD0", "FD1UD1", "FD2UD0", "FD0UD1", "FD1UD0", "FD2UD1"]);
    }

    #[test]
    fn more_update_domains_than_fault_domains_and_shared_factors() {
        assert_eq!(names(&alternated_cells(&grid(2, 3))), ["FD0UD0", "FD1UD1", "FD0UD2", "FD1UD0", "FD0UD1", "FD1UD2"]);
        assert_eq!(names(&alternated_cells(&grid(2, 2))), ["FD0UD0", "FD1UD1", "FD0UD1", "FD1UD0"]);
        assert_eq!(names(&alternated_cells(&grid(4, 6))[..5]), ["FD0UD0", "FD1UD1", "FD2UD2", "FD3UD3", "FD0UD1"]);
    }

    #[test]
    fn missing_cells_are_skipped() {
        let gaps = cells(&["FD0UD1", "FD0UD2", "FD1UD0", "FD1UD1", "FD2UD0", "FD2UD2"]);
        assert_eq!(names(&alternated_cells(&gaps)), ["FD1UD1", "FD2UD2", "FD0UD1", "FD2UD0", "FD0UD2", "FD1UD0"]);
        let no_middle = cells(&["FD0UD0", "FD0UD1", "FD1UD0", "FD2UD0", "FD2UD1"]);
        assert_eq!(names(&alternated_cells(&no_middle)), ["FD0UD0", "FD2UD0", "FD0UD1", "FD1UD0", "FD2UD1"]);
        // A sparse grid with large numbers ends once every cell is out.
        let sparse = cells(&["FD0UD0", "FD999UD999", "FD999UD0"]);
        assert_eq!(alternated_cells(&sparse).len(), 3);
    }

    #[test]
    fn brokers_alternate_over_cells_then_go_round_again() {
        let b = |id: i32, r: &str| (id, Some(r.to_string()));
        // Two brokers in FD0UD0: the second comes after one of every other cell.
        let brokers = vec![b(1, "FD0UD0"), b(2, "FD1UD1"), b(3, "FD2UD2"), b(4, "FD0UD0")];
        assert_eq!(alternated(&brokers), vec![1, 2, 3, 4]);
        let brokers = vec![b(4, "FD0UD0"), b(1, "FD0UD0"), b(2, "FD1UD1")];
        assert_eq!(alternated(&brokers), vec![1, 2, 4]);
        // One dimension, as Kafka: racks by name, brokers by id.
        let brokers = vec![b(1, "a"), b(2, "a"), b(3, "b"), b(4, "c"), b(5, "c")];
        assert_eq!(alternated(&brokers), vec![1, 3, 4, 2, 5]);
        assert_eq!(alternated(&[(2, None), (1, None)]), vec![1, 2]);
    }

    #[test]
    fn shortfall_names_the_shared_domains() {
        let d = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let replicas = vec![d(&["FD0", "UD0"]), d(&["FD0", "UD1"]), d(&["FD1", "UD2"])];
        let p = spread_shortfall(&replicas, &[3, 3]);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("shared: FD0"), "{p:?}");
        assert!(spread_shortfall(&replicas, &[2, 3]).is_empty(), "two fault domains are all there are");
    }

    proptest! {
        /// Every present cell comes out exactly once, whatever the grid.
        #[test]
        fn every_cell_once(present in proptest::collection::btree_set((0u32..6, 0u32..6), 1..36)) {
            let cells: BTreeSet<Cell> = present.iter().map(|&(f, u)| Cell { fault_domain: f, update_domain: u }).collect();
            let order = alternated_cells(&cells);
            prop_assert_eq!(order.len(), cells.len());
            prop_assert_eq!(order.iter().copied().collect::<BTreeSet<_>>(), cells);
        }

        /// On a full grid, min(fds, uds) consecutive cells have distinct fault and update
        /// domains when they start a round (any start when the sizes share no factor, where the
        /// order is one diagonal).
        #[test]
        fn full_grid_windows_are_spread(fds in 1u32..6, uds in 1u32..6, start in 0usize..36) {
            let order = alternated_cells(&grid(fds, uds));
            let w = fds.min(uds) as usize;
            let start = if gcd(fds as u64, uds as u64) > 1 { (start % uds as usize) * fds as usize } else { start % order.len() };
            let window: Vec<Cell> = (0..w).map(|k| order[(start + k) % order.len()]).collect();
            let f: BTreeSet<u32> = window.iter().map(|c| c.fault_domain).collect();
            let u: BTreeSet<u32> = window.iter().map(|c| c.update_domain).collect();
            prop_assert_eq!(f.len(), w, "{:?}", window);
            prop_assert_eq!(u.len(), w, "{:?}", window);
        }
    }
}
