//! Replication throttles (Kafka's ReplicationQuotaManager): a byte rate shared by every
//! throttled replica on one side (the leader sending, or the follower fetching). While a
//! reassignment copies data, `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate` cap it so producers and consumers keep their share of
//! the disks and network. Only replicas listed in the topic's
//! `leader.replication.throttled.replicas` / `follower.replication.throttled.replicas` and
//! not in the ISR are throttled: a replica that is in sync is never held back.
//!
//! A token bucket, one second deep: a throttled transfer may go while the bucket is not in
//! debt; what it sends is taken out afterwards (a fetch's size is known only once read).
//! Pure: times are passed in.
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// No throttle: Kafka's default for the rates (Long.MAX_VALUE).
pub const UNLIMITED: u64 = i64::MAX as u64;

pub struct ReplicationQuota {
    state: Mutex<State>,
}

struct State {
    rate: u64,
    /// Bytes that may still go; negative: in debt.
    tokens: f64,
    last: Instant,
    /// Bytes recorded in the current and the previous measuring second, for byte-rate.
    window_start: Instant,
    window_bytes: u64,
    last_window_rate: f64,
}

impl ReplicationQuota {
    pub fn new(now: Instant) -> Self {
        ReplicationQuota {
            state: Mutex::new(State { rate: UNLIMITED, tokens: 0.0, last: now, window_start: now, window_bytes: 0, last_window_rate: 0.0 }),
        }
    }

    /// Sets the rate in bytes a second (`UNLIMITED`: none). A new rate starts with a full
    /// bucket only if it had none before.
    pub fn set_rate(&self, rate: u64, now: Instant) {
        let mut s = self.state.lock();
        if s.rate == rate {
            return;
        }
        s.refill(now);
        if s.rate == UNLIMITED {
            s.tokens = 0.0;
        }
        s.rate = rate.max(1);
        let cap = s.rate as f64;
        s.tokens = s.tokens.min(cap);
    }

    pub fn rate(&self) -> u64 {
        self.state.lock().rate
    }

    pub fn is_limited(&self) -> bool {
        self.rate() != UNLIMITED
    }

    /// Whether a throttled transfer must wait now.
    pub fn exceeded(&self, now: Instant) -> bool {
        let mut s = self.state.lock();
        if s.rate == UNLIMITED {
            return false;
        }
        s.refill(now);
        s.tokens < 0.0
    }

    /// How long until a throttled transfer may go (zero when it may now).
    pub fn wait(&self, now: Instant) -> Duration {
        let mut s = self.state.lock();
        if s.rate == UNLIMITED {
            return Duration::ZERO;
        }
        s.refill(now);
        if s.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-s.tokens / s.rate as f64)
    }

    /// Takes `bytes` a throttled transfer moved out of the bucket.
    pub fn record(&self, bytes: u64, now: Instant) {
        let mut s = self.state.lock();
        s.roll_window(now);
        s.window_bytes += bytes;
        if s.rate == UNLIMITED {
            return;
        }
        s.refill(now);
        s.tokens -= bytes as f64;
    }

    /// Throttled bytes a second over the last complete measuring second (Kafka's
    /// `byte-rate`).
    pub fn byte_rate(&self, now: Instant) -> f64 {
        let mut s = self.state.lock();
        s.roll_window(now);
        s.last_window_rate
    }
}

impl State {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        let cap = self.rate as f64;
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(cap);
    }

    fn roll_window(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.window_start);
        if age >= Duration::from_secs(1) {
            self.last_window_rate = if age >= Duration::from_secs(2) { 0.0 } else { self.window_bytes as f64 / age.as_secs_f64() };
            self.window_start = now;
            self.window_bytes = 0;
        }
    }
}

/// Whether a topic's throttled-replicas list (`"*"`, or `"partition:broker,..."`) names
/// `partition` on `broker`.
pub fn listed(value: Option<&str>, partition: i32, broker: i32) -> bool {
    match value.map(str::trim) {
        None | Some("") => false,
        Some("*") => true,
        Some(list) => list.split(',').any(|e| {
            let mut it = e.trim().splitn(2, ':');
            matches!((it.next().and_then(|p| p.trim().parse::<i32>().ok()), it.next().and_then(|b| b.trim().parse::<i32>().ok())),
                     (Some(p), Some(b)) if p == partition && b == broker)
        }),
    }
}

/// Checks a throttled-replicas list: empty, `*`, or `partition:broker` pairs.
pub fn validate_list(value: &str) -> Result<(), String> {
    let v = value.trim();
    if v.is_empty() || v == "*" {
        return Ok(());
    }
    for e in v.split(',') {
        let ok = e.trim().split_once(':').is_some_and(|(p, b)| p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok());
        if !ok {
            return Err(format!("'{}' is not partition:broker (the list is '*' or partition:broker pairs separated by commas)", e.trim()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_holds_over_time() {
        let t0 = Instant::now();
        let q = ReplicationQuota::new(t0);
        assert!(!q.exceeded(t0), "unlimited by default");
        q.set_rate(10_000_000, t0);
        // A follower fetching 1 MB whenever it may, for 10 simulated seconds.
        let mut sent = 0u64;
        let mut now = t0;
        while now < t0 + Duration::from_secs(10) {
            if q.exceeded(now) {
                now += q.wait(now).max(Duration::from_millis(1));
                continue;
            }
            q.record(1_000_000, now);
            sent += 1_000_000;
            now += Duration::from_millis(5);
        }
        let rate = sent as f64 / 10.0;
        assert!((9_000_000.0..=11_100_000.0).contains(&rate), "{rate}");
        assert!(q.byte_rate(now) > 0.0);
    }

    #[test]
    fn lists_name_partitions_on_brokers() {
        assert!(listed(Some("*"), 3, 9));
        assert!(listed(Some("0:1, 2:3"), 2, 3));
        assert!(!listed(Some("0:1,2:3"), 2, 1));
        assert!(!listed(None, 0, 1) && !listed(Some(""), 0, 1));
        assert!(validate_list("0:1,1:2").is_ok() && validate_list("*").is_ok() && validate_list("").is_ok());
        assert!(validate_list("0-1").is_err() && validate_list("a:1").is_err());
    }
}
