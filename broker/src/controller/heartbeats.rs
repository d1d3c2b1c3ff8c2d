//! The active controller's view of broker liveness (Kafka's BrokerHeartbeatManager): when each
//! broker last heartbeated, and which sessions have expired. Time is passed in. Kept in memory
//! only: a newly active controller gives every registered broker a fresh session.
//!
//! A session also ends early when the connection that carried a broker's heartbeats closes
//! and the broker does not heartbeat again within a grace of two heartbeat intervals: a
//! broker killed or crashed closes its connections at once (its kernel does), and waiting out
//! the whole session would leave its partitions leaderless for that long. A live broker whose
//! connection merely broke reconnects and heartbeats within one interval. Pauses and network
//! partitions close nothing; they still take the session timeout.
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct BrokerHeartbeats {
    session_timeout: Duration,
    /// How long a broker whose heartbeat connection closed has to heartbeat again.
    lost_grace: Duration,
    last_contact: HashMap<i32, Instant>,
    /// When the connection carrying each broker's heartbeats closed, if it has since.
    connection_lost: HashMap<i32, Instant>,
    last_check: Option<Instant>,
}

impl BrokerHeartbeats {
    pub fn new(session_timeout: Duration, heartbeat_interval: Duration) -> Self {
        Self {
            session_timeout,
            lost_grace: (heartbeat_interval * 2).min(session_timeout),
            last_contact: HashMap::new(),
            connection_lost: HashMap::new(),
            last_check: None,
        }
    }

    pub fn touch(&mut self, broker: i32, now: Instant) {
        self.last_contact.insert(broker, now);
        self.connection_lost.remove(&broker);
    }

    pub fn forget(&mut self, broker: i32) {
        self.last_contact.remove(&broker);
        self.connection_lost.remove(&broker);
    }

    /// A connection on which `broker` heartbeated has closed at `now`.
    pub fn connection_closed(&mut self, broker: i32, now: Instant) {
        if self.last_contact.contains_key(&broker) {
            self.connection_lost.entry(broker).or_insert(now);
        }
    }

    /// `broker`'s node refused a connection at `now` (its process is not running): as a closed
    /// heartbeat connection, and for a broker this controller has not heard from yet too
    /// (a newly active controller, whose fresh sessions would otherwise wait a whole one).
    pub fn refused(&mut self, broker: i32, now: Instant) {
        let heard = *self.last_contact.entry(broker).or_insert(now);
        // A refusal from before the broker's last heartbeat is from before it (re)started.
        if heard <= now {
            self.connection_closed(broker, now);
        }
    }

    /// Whether the connection carrying `broker`'s heartbeats closed since its last heartbeat.
    pub fn lost_connection(&self, broker: i32) -> bool {
        self.connection_lost.contains_key(&broker)
    }

    /// Whether `broker` heartbeated within its session (and, if its heartbeat connection
    /// closed, again within the grace after that).
    pub fn is_alive(&self, broker: i32, now: Instant) -> bool {
        self.last_contact.get(&broker).is_some_and(|t| now.saturating_duration_since(*t) < self.session_timeout)
            && !self.connection_lost.get(&broker).is_some_and(|t| now.saturating_duration_since(*t) >= self.lost_grace)
    }

    /// Forgets every session: called when this controller becomes active.
    pub fn reset(&mut self) {
        self.last_contact.clear();
        self.connection_lost.clear();
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
            for t in self.last_contact.values_mut().chain(self.connection_lost.values_mut()) {
                *t = now;
            }
        }
        let mut out = Vec::new();
        for b in unfenced {
            self.last_contact.entry(b).or_insert(now);
            if !self.is_alive(b, now) {
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
    const INTERVAL: Duration = Duration::from_millis(400);

    #[test]
    fn a_broker_whose_connection_closed_expires_after_the_grace() {
        let t0 = Instant::now();
        let mut hb = BrokerHeartbeats::new(SESSION, INTERVAL);
        hb.touch(1, t0);
        hb.touch(2, t0);
        hb.connection_closed(1, t0 + TICK);
        hb.connection_closed(2, t0 + TICK);
        // Broker 2 reconnects and heartbeats again; broker 1 was killed.
        hb.touch(2, t0 + 3 * TICK);
        assert!(hb.expired([1, 2], t0 + TICK + 2 * INTERVAL - TICK).is_empty());
        assert_eq!(hb.expired([1, 2], t0 + TICK + 2 * INTERVAL), vec![1]);
        assert!(!hb.is_alive(1, t0 + TICK + 2 * INTERVAL));
        assert!(hb.is_alive(2, t0 + TICK + 2 * INTERVAL));
    }

    #[test]
    fn a_newly_active_controller_fences_a_refusing_broker_after_the_grace() {
        let t0 = Instant::now();
        let mut hb = BrokerHeartbeats::new(SESSION, INTERVAL);
        hb.reset();
        assert!(hb.expired([1, 2], t0).is_empty());
        hb.refused(1, t0 + TICK);
        hb.touch(2, t0 + TICK);
        assert!(hb.expired([1, 2], t0 + 2 * INTERVAL).is_empty());
        assert_eq!(hb.expired([1, 2], t0 + TICK + 2 * INTERVAL), vec![1]);
    }

    #[test]
    fn a_closed_connection_of_an_unknown_broker_changes_nothing() {
        let t0 = Instant::now();
        let mut hb = BrokerHeartbeats::new(SESSION, INTERVAL);
        hb.connection_closed(3, t0);
        // Broker 3 is first seen by the check (a session starting then), not by a heartbeat.
        let mut now = t0;
        while now < t0 + SESSION {
            assert!(hb.expired([3], now).is_empty(), "expired after {:?}", now - t0);
            now += TICK;
        }
        assert_eq!(hb.expired([3], t0 + SESSION), vec![3]);
    }

    #[test]
    fn a_stalled_controller_does_not_fence_brokers_whose_connection_closed() {
        let t0 = Instant::now();
        let mut hb = BrokerHeartbeats::new(SESSION, INTERVAL);
        hb.touch(1, t0);
        assert!(hb.expired([1], t0).is_empty());
        hb.connection_closed(1, t0 + TICK);
        // Paused past the grace and half a session: the broker gets a new grace.
        let late = t0 + SESSION;
        assert!(hb.expired([1], late).is_empty());
        hb.touch(1, late + TICK);
        assert!(hb.expired([1], late + 2 * TICK).is_empty());
    }

    #[test]
    fn a_broker_that_stops_heartbeating_expires_after_its_session() {
        let t0 = Instant::now();
        let mut hb = BrokerHeartbeats::new(SESSION, INTERVAL);
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
        let mut hb = BrokerHeartbeats::new(SESSION, INTERVAL);
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
        let mut hb = BrokerHeartbeats::new(SESSION, INTERVAL);
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
