//! A lock-free latency/size histogram reporting Kafka's percentiles (50, 75, 95, 98, 99,
//! 99.9) over roughly the last one to two minutes, like Yammer's decaying histograms.
//!
//! Values go into log-linear buckets (8 sub-buckets per power of two, about 9% relative
//! error); two bucket sets alternate every `WINDOW_SECS`, and quantiles read both.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = 64 * SUB;
const WINDOW_SECS: u64 = 60;

/// Kafka's reported percentiles and the quantile label values the JMX exporter gives them.
pub const QUANTILES: [(f64, &str); 6] =
    [(0.50, "0.50"), (0.75, "0.75"), (0.95, "0.95"), (0.98, "0.98"), (0.99, "0.99"), (0.999, "0.999")];

pub struct Histogram {
    sets: [Box<[AtomicU64]>; 2],
    epoch: AtomicU64,
    count: AtomicU64,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        let set = || (0..BUCKETS).map(|_| AtomicU64::new(0)).collect::<Vec<_>>().into_boxed_slice();
        Self { sets: [set(), set()], epoch: AtomicU64::new(window_now()), count: AtomicU64::new(0), sum: AtomicU64::new(0) }
    }
}

/// The current window's number, for [`Histogram::record_in`]: a request recording several
/// histograms reads the clock once.
pub fn window_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / WINDOW_SECS).unwrap_or(0)
}

fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let mantissa = (v >> (exp - SUB_BITS)) as usize & (SUB - 1);
    (((exp - SUB_BITS + 1) as usize) * SUB + mantissa).min(BUCKETS - 1)
}

/// The middle value of a bucket.
fn bucket_value(i: usize) -> f64 {
    if i < SUB {
        return i as f64;
    }
    let exp = (i / SUB) as u32 + SUB_BITS - 1;
    let mantissa = (i % SUB) as u64;
    let low = (1u64 << exp) + (mantissa << (exp - SUB_BITS));
    low as f64 + ((1u64 << (exp - SUB_BITS)) as f64) / 2.0
}

impl Histogram {
    /// Records one value (in the histogram's unit, e.g. microseconds or bytes).
    pub fn record(&self, v: u64) {
        self.record_in(v, window_now())
    }

    /// [`Histogram::record`] in window `now` ([`window_now`]; time passed in).
    pub fn record_in(&self, v: u64, now: u64) {
        let epoch = self.epoch.load(Ordering::Relaxed);
        // Only forward: a recorder preempted across a window boundary must not move the epoch
        // back (and clear the current window's set); its value lands in the set of its window.
        if now > epoch && self.epoch.compare_exchange(epoch, now, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            // A new window: the set it maps to holds data two windows old; clear it. When more
            // than one window passed, the other set is stale too.
            self.clear_set((now % 2) as usize);
            if now > epoch + 1 {
                self.clear_set(((now + 1) % 2) as usize);
            }
        }
        self.sets[(now % 2) as usize][bucket_of(v)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    fn clear_set(&self, i: usize) {
        for b in self.sets[i].iter() {
            b.store(0, Ordering::Relaxed);
        }
    }

    /// Everything recorded since start (Kafka's histogram Count).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// Quantiles over the recent windows, in the recorded unit; 0 when nothing is recent.
    pub fn quantiles(&self) -> [f64; 6] {
        self.quantiles_in(window_now())
    }

    /// [`Histogram::quantiles`] as of window `now`. Only recording clears a set, so when
    /// traffic stops the sets keep old values: a set counts only while its window is the
    /// current or the previous one, so a spike leaves the quantiles within two windows.
    fn quantiles_in(&self, now: u64) -> [f64; 6] {
        let epoch = self.epoch.load(Ordering::Acquire);
        // The set of window w is sets[w % 2]; it holds window `epoch` or `epoch - 1`.
        let live = |set: usize| {
            let window = if set as u64 == epoch % 2 { epoch } else { epoch.wrapping_sub(1) };
            window == now || window.wrapping_add(1) == now
        };
        let (live0, live1) = (live(0), live(1));
        let merged: Vec<u64> = (0..BUCKETS)
            .map(|i| {
                let a = if live0 { self.sets[0][i].load(Ordering::Relaxed) } else { 0 };
                let b = if live1 { self.sets[1][i].load(Ordering::Relaxed) } else { 0 };
                a + b
            })
            .collect();
        let total: u64 = merged.iter().sum();
        let mut out = [0.0; 6];
        if total == 0 {
            return out;
        }
        for (slot, (q, _)) in out.iter_mut().zip(QUANTILES) {
            let rank = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0u64;
            for (i, n) in merged.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    *slot = bucket_value(i);
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_bucket_error() {
        let h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let q = h.quantiles();
        for ((want, _), got) in QUANTILES.iter().zip(q) {
            let exact = want * 10_000.0;
            assert!((got - exact).abs() / exact < 0.1, "q{want}: {got} vs {exact}");
        }
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn a_spike_leaves_the_quantiles_two_windows_after_traffic_stops() {
        let h = Histogram::default();
        let w = 1_000u64;
        h.epoch.store(w, Ordering::Relaxed);
        for _ in 0..100 {
            h.record_in(5_000_000, w); // a 5 s spike
        }
        assert!(h.quantiles_in(w)[4] > 4_000_000.0, "seen in its own window");
        assert!(h.quantiles_in(w + 1)[4] > 4_000_000.0, "and in the next (one to two minutes, as documented)");
        assert_eq!(h.quantiles_in(w + 2), [0.0; 6], "gone once nothing was recorded for two windows");
        assert_eq!(h.quantiles_in(w + 50), [0.0; 6]);
        // Traffic resumes: the old spike is not counted with the new values.
        h.record_in(10, w + 50);
        assert!(h.quantiles_in(w + 50)[5] < 20.0, "{:?}", h.quantiles_in(w + 50));
        assert_eq!(h.count(), 101, "Count is cumulative, as Kafka's");
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for v in (0..1_000_000u64).step_by(7) {
            let b = bucket_of(v);
            assert!(b >= last);
            last = b;
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }
}
