//! Kafka's per-second rates (`-rate` attributes, fetcher request rates) for the things that
//! come and go: connections per listener and replica fetchers per leader. Each keeps a
//! [`WindowedStat`] per key, recorded to as events happen and read at scrape time.
use std::collections::BTreeMap;
use std::time::Instant;

use parking_lot::Mutex;

use super::windowed::WindowedStat;

/// connection-creation-rate and connection-close-rate, per (listener, networkProcessor).
#[derive(Default)]
pub struct ConnectionRates {
    by_key: Mutex<BTreeMap<Vec<String>, (WindowedStat, WindowedStat)>>,
}

impl ConnectionRates {
    fn record(&self, labels: &[&str], created: bool, now: Instant) {
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        let mut by_key = self.by_key.lock();
        let (c, x) = by_key.entry(key).or_insert_with(|| (WindowedStat::new(now), WindowedStat::new(now)));
        if created { c.record(1.0, now) } else { x.record(1.0, now) }
    }

    pub fn created(&self, labels: &[&str]) {
        self.record(labels, true, Instant::now());
    }

    pub fn closed(&self, labels: &[&str]) {
        self.record(labels, false, Instant::now());
    }

    /// (labels, creations a second, closes a second) of every key seen.
    pub fn read(&self, now: Instant) -> Vec<(Vec<String>, f64, f64)> {
        self.by_key.lock().iter_mut().map(|(k, (c, x))| (k.clone(), c.rate(now), x.rate(now))).collect()
    }
}

/// Fetch requests a second of each running replica fetcher (one per leader followed), for
/// ReplicaFetcherManager MinFetchRate.
#[derive(Default)]
pub struct FetcherRates {
    by_leader: Mutex<BTreeMap<i32, WindowedStat>>,
}

/// A running fetcher's registration; dropping it (the fetcher stops) forgets its rate.
pub struct FetcherRegistration<'a> {
    rates: &'a FetcherRates,
    leader: i32,
}

impl FetcherRates {
    pub fn register(&self, leader: i32) -> FetcherRegistration<'_> {
        self.by_leader.lock().insert(leader, WindowedStat::new(Instant::now()));
        FetcherRegistration { rates: self, leader }
    }

    /// The lowest fetch request rate of the running fetchers; 0 when none runs (Kafka's
    /// MinFetchRate over no fetcher thread).
    pub fn min_rate(&self, now: Instant) -> f64 {
        let mut by_leader = self.by_leader.lock();
        let min = by_leader.values_mut().map(|w| w.rate(now)).fold(f64::INFINITY, f64::min);
        if min.is_finite() { min } else { 0.0 }
    }
}

impl FetcherRegistration<'_> {
    /// One fetch request sent to the leader.
    pub fn fetch_sent(&self) {
        let now = Instant::now();
        if let Some(w) = self.rates.by_leader.lock().get_mut(&self.leader) {
            w.record(1.0, now);
        }
    }
}

impl Drop for FetcherRegistration<'_> {
    fn drop(&mut self) {
        self.rates.by_leader.lock().remove(&self.leader);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn min_fetch_rate_is_the_slowest_running_fetcher_and_0_without_one() {
        let rates = FetcherRates::default();
        assert_eq!(rates.min_rate(Instant::now()), 0.0);
        let a = rates.register(1);
        let b = rates.register(2);
        for _ in 0..30 {
            a.fetch_sent();
        }
        b.fetch_sent();
        let later = Instant::now() + Duration::from_secs(1);
        // Rates over at least one 30 s window: 30 and 1 fetches.
        assert!((rates.min_rate(later) - 1.0 / 31.0).abs() < 0.01, "{}", rates.min_rate(later));
        drop(b);
        assert!((rates.min_rate(later) - 30.0 / 31.0).abs() < 0.05, "{}", rates.min_rate(later));
        drop(a);
        assert_eq!(rates.min_rate(later), 0.0);
    }

    #[test]
    fn connection_rates_count_creations_and_closes_per_listener() {
        let rates = ConnectionRates::default();
        for _ in 0..3 {
            rates.created(&["PLAINTEXT", "0"]);
        }
        rates.closed(&["PLAINTEXT", "0"]);
        let read = rates.read(Instant::now());
        assert_eq!(read.len(), 1);
        let (labels, created, closed) = &read[0];
        assert_eq!(labels, &vec!["PLAINTEXT".to_string(), "0".to_string()]);
        assert!(*created > 0.0 && (*created / *closed - 3.0).abs() < 1e-9, "{created} {closed}");
    }
}
