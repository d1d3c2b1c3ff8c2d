//! Kafka's sampled statistics (`org.apache.kafka.common.metrics.stats`: `Avg`, `Max`, `Rate`)
//! for the Kafka-metrics attributes that report them (`commit-latency-avg`,
//! `append-records-rate`, ...): values recorded into two samples of 30 seconds (Kafka's
//! `metrics.num.samples` and `metrics.sample.window.ms` defaults), measured over the samples
//! that are not older than both windows together. Time is passed in, so the arithmetic is
//! tested without waiting.
use std::time::{Duration, Instant};

/// Kafka's `metrics.sample.window.ms` default.
pub const SAMPLE_WINDOW: Duration = Duration::from_secs(30);
const SAMPLES: usize = 2;

#[derive(Debug, Clone, Copy)]
struct Sample {
    start: Instant,
    count: u64,
    sum: f64,
    max: f64,
}

impl Sample {
    fn new(start: Instant) -> Self {
        Self { start, count: 0, sum: 0.0, max: f64::NEG_INFINITY }
    }
}

/// Average, maximum and per-second rate of the values recorded in the last one to two
/// windows. `avg` and `max` are NaN when nothing was recorded, as Kafka reports them.
#[derive(Debug, Clone)]
pub struct WindowedStat {
    window: Duration,
    samples: [Sample; SAMPLES],
    current: usize,
}

impl WindowedStat {
    pub fn new(now: Instant) -> Self {
        Self::with_window(SAMPLE_WINDOW, now)
    }

    pub fn with_window(window: Duration, now: Instant) -> Self {
        Self { window, samples: [Sample::new(now); SAMPLES], current: 0 }
    }

    pub fn record(&mut self, value: f64, now: Instant) {
        if now.saturating_duration_since(self.samples[self.current].start) >= self.window {
            self.current = (self.current + 1) % SAMPLES;
            self.samples[self.current] = Sample::new(now);
        }
        let s = &mut self.samples[self.current];
        s.count += 1;
        s.sum += value;
        s.max = s.max.max(value);
    }

    /// Samples older than all windows together no longer count (Kafka's purgeObsoleteSamples).
    fn purge(&mut self, now: Instant) {
        let horizon = self.window * SAMPLES as u32;
        for s in &mut self.samples {
            if now.saturating_duration_since(s.start) >= horizon {
                *s = Sample::new(now);
            }
        }
    }

    pub fn avg(&mut self, now: Instant) -> f64 {
        self.purge(now);
        let (count, sum) = self.samples.iter().fold((0, 0.0), |(c, t), s| (c + s.count, t + s.sum));
        if count == 0 { f64::NAN } else { sum / count as f64 }
    }

    pub fn max(&mut self, now: Instant) -> f64 {
        self.purge(now);
        let max = self.samples.iter().filter(|s| s.count > 0).map(|s| s.max).fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY { f64::NAN } else { max }
    }

    /// Sum of the recorded values per second. Like Kafka's `Rate`, the elapsed time is counted
    /// from the oldest sample and is at least one full window, so a burst right after start-up
    /// is not reported as an enormous rate.
    pub fn rate(&mut self, now: Instant) -> f64 {
        self.purge(now);
        let sum: f64 = self.samples.iter().map(|s| s.sum).sum();
        let oldest = self.samples.iter().map(|s| s.start).min().unwrap_or(now);
        let mut elapsed = now.saturating_duration_since(oldest);
        let full_windows = (elapsed.as_nanos() / self.window.as_nanos().max(1)) as u32;
        let min_full_windows = SAMPLES as u32 - 1;
        if full_windows < min_full_windows {
            elapsed += self.window * (min_full_windows - full_windows);
        }
        sum / elapsed.as_secs_f64().max(0.001)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn nothing_recorded_is_nan_and_zero_rate() {
        let t0 = Instant::now();
        let mut w = WindowedStat::new(t0);
        assert!(w.avg(at(t0, 5_000)).is_nan());
        assert!(w.max(at(t0, 5_000)).is_nan());
        assert_eq!(w.rate(at(t0, 5_000)), 0.0);
    }

    #[test]
    fn avg_and_max_cover_both_windows_then_forget() {
        let t0 = Instant::now();
        let mut w = WindowedStat::new(t0);
        w.record(10.0, at(t0, 1_000));
        w.record(30.0, at(t0, 2_000));
        w.record(2.0, at(t0, 31_000)); // second sample
        assert_eq!(w.avg(at(t0, 32_000)), 14.0);
        assert_eq!(w.max(at(t0, 32_000)), 30.0);
        // The first sample (started at 0) is obsolete after 60 s; the second (31 s) after 91 s.
        assert_eq!(w.avg(at(t0, 61_000)), 2.0);
        assert_eq!(w.max(at(t0, 61_000)), 2.0);
        assert!(w.avg(at(t0, 91_000)).is_nan());
    }

    #[test]
    fn rate_counts_at_least_one_full_window_like_kafka() {
        let t0 = Instant::now();
        let mut w = WindowedStat::new(t0);
        for i in 0..60 {
            w.record(1.0, at(t0, i * 100));
        }
        // 60 records within 10 s of start: 60 / (10 s + one padding window of 30 s).
        assert!((w.rate(at(t0, 10_000)) - 1.5).abs() < 1e-9);
        // Steady 2 records a second for a long time: the rate converges on 2.
        let mut w = WindowedStat::new(t0);
        for i in 0..400 {
            w.record(1.0, at(t0, i * 500));
        }
        let r = w.rate(at(t0, 200_000));
        assert!((r - 2.0).abs() < 0.1, "{r}");
    }

    #[test]
    fn a_late_record_after_a_long_gap_starts_fresh_samples() {
        let t0 = Instant::now();
        let mut w = WindowedStat::new(t0);
        w.record(100.0, at(t0, 0));
        w.record(5.0, at(t0, 600_000));
        assert_eq!(w.max(at(t0, 600_001)), 5.0);
        assert_eq!(w.avg(at(t0, 600_001)), 5.0);
    }
}
