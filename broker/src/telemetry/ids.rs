//! Trace and span ids: random-looking, unique, never all-zero (W3C forbids zero ids).
//!
//! A SplitMix64 sequence seeded once from the OS (via a v4 UUID) and the clock: ids need to
//! be unique and well spread (ratio sampling reads them), not secret, and one atomic add per
//! id keeps the request path cheap.
use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

pub(super) struct IdGenerator {
    state: AtomicU64,
}

impl IdGenerator {
    pub(super) fn new() -> Self {
        let random = uuid::Uuid::new_v4().as_u64_pair().0;
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self { state: AtomicU64::new(random ^ clock.rotate_left(32)) }
    }

    fn next(&self) -> u64 {
        let z = self.state.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed).wrapping_add(GOLDEN_GAMMA);
        let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn nonzero(&self) -> u64 {
        loop {
            let v = self.next();
            if v != 0 {
                return v;
            }
        }
    }

    pub(super) fn trace_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&self.nonzero().to_be_bytes());
        id
    }

    pub(super) fn span_id(&self) -> [u8; 8] {
        self.nonzero().to_be_bytes()
    }
}

impl std::fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdGenerator")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_nonzero() {
        let g = IdGenerator::new();
        let spans: HashSet<[u8; 8]> = (0..10_000).map(|_| g.span_id()).collect();
        let traces: HashSet<[u8; 16]> = (0..10_000).map(|_| g.trace_id()).collect();
        assert_eq!((spans.len(), traces.len()), (10_000, 10_000));
        assert!(!spans.contains(&[0; 8]) && !traces.contains(&[0; 16]));
    }

    #[test]
    fn two_generators_start_apart() {
        assert_ne!(IdGenerator::new().trace_id(), IdGenerator::new().trace_id());
    }
}
