//! The active controller's view of broker liveness (Kafka's BrokerHeartbeatManager): when each
//! broker last heartbeated, and which sessions have expired. Time is passed in. Kept in memory
//! only: a newly active controller gives every registered broker a fresh session.
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct BrokerHeartbeats {
    session_timeout: Duration,
    last_contact: HashMap<i32, Instant>,
    last_check: Option<Instant>,
}

impl BrokerHeartbeats {
    pub fn new(session_timeout: Duration) -> Self {
        Self { session_timeout, last_contact: HashMap::new(), last_check: None }
    }

    pub fn touch(&mut self, broker: i32, now: Instant) {
        self.last_contact.insert(broker, now);
    }

    pub fn forget(&mut self, broker: i32) {
        self.last_contact.remove(&broker);
    }

    /// Whether `broker` heartbeated within its session.
    pub fn is_alive(&self, broker: i32, now: Instant) -> bool {
        self.last_contact.get(&broker).is_some_and(|t| now.saturating_duration_since(*t) < self.session_timeout)
    }

    /// Forgets every session: called when this controller becomes active.
    pub fn reset(&mut self) {
        self.last_contact.clear();
        self.last_check = None;
    }

    /// The brokers among `unfenced` whose session has expired at `now`.
    ///
    /// A broker first seen here gets a session starting now. If this check itself ran late by
    /// more than half a session (the controller was paused or starved), every session restarts
    /// instead: missing heartbeats are then the controller's fault, not the brokers'.
    pub fn expired(&mut self, unfenced: impl IntoIterator<Item = i32>, now: Instant) -> Vec<i32> {
        let stalled = self.last_check.is_some_and(|t| now.saturating_duration_since(t) > self.session_timeout / 2);
        self.last_check = Some(now);
        if stalled {
            for t in self.last_contact.values_mut() {
                *t = now;
            }
        }
        let mut out = Vec::new();
        for b in unfenced {
            let t = *self.last_contact.entry(b).or_insert(now);
            if now.saturating_duration_since(t) >= self.session_timeout {
                out.push(b);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_millis(2000);
    const TICK: Duration = Duration::from_millis(100);

    #[test]
    fn a_broker_that_stops_heartbeating_expires_after_its_session() {
        let t0 = Instant::now();
        let mut hb = BrokerHeartbeats::new(SESSION);
        hb.touch(1, t0);
        hb.touch(2, t0);
        let mut now = t0;
        let mut expired_at = None;
        while now < t0 + Duration::from_secs(5) {
            now += TICK;
            hb.touch(1, now);
            if !hb.expired([1, 2], now).is_empty() && expired_at.is_none() {
                expired_at = Some(now - t0);
            }
        }
        assert_eq!(expired_at, Some(SESSION));
        assert!(hb.is_alive(1, now) && !hb.is_alive(2, now));
    }

    #[test]
    fn unknown_brokers_get_a_fresh_session() {
        let t0 = Instant::now();
        let mut hb = BrokerHeartbeats::new(SESSION);
        assert!(hb.expired([7], t0).is_empty());
        let mut now = t0;
        while now + TICK < t0 + SESSION {
            now += TICK;
            assert!(hb.expired([7], now).is_empty());
        }
        assert_eq!(hb.expired([7], t0 + SESSION), vec![7]);
    }

    #[test]
    fn a_stalled_controller_does_not_fence_everyone() {
        let t0 = Instant::now();
        let mut hb = BrokerHeartbeats::new(SESSION);
        hb.touch(1, t0);
        assert!(hb.expired([1], t0).is_empty());
        // The controller itself was paused for 5 s: nobody is fenced for that.
        assert!(hb.expired([1], t0 + Duration::from_secs(5)).is_empty());
        // ...but a broker that still does not heartbeat expires one session later.
        let mut now = t0 + Duration::from_secs(5);
        let mut fenced = false;
        for _ in 0..25 {
            now += TICK;
            fenced |= hb.expired([1], now) == vec![1];
        }
        assert!(fenced);
    }
}
