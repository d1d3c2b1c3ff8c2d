//! The slowest requests of the last five minutes, in bounded memory: time is cut into 10 s
//! slots, each keeping its own top 10, so the top 10 of the live slots is the top 10 of the
//! window (to slot granularity) while at most 31 x 10 requests are held.
use serde::{Deserialize, Serialize};

pub const WINDOW_MS: i64 = 5 * 60 * 1000;
const SLOT_MS: i64 = 10_000;
pub const TOP: usize = 10;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowRequest {
    pub total_time_ms: f64,
    pub request: String,
    pub client_id: String,
    pub correlation_id: i64,
    pub timestamp_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Slowest {
    /// (slot start ms, that slot's slowest requests, slowest first)
    slots: Vec<(i64, Vec<SlowRequest>)>,
}

impl Slowest {
    pub fn record(&mut self, r: SlowRequest, now_ms: i64) {
        if r.timestamp_ms <= now_ms - WINDOW_MS {
            return;
        }
        self.expire(now_ms);
        let slot = r.timestamp_ms.div_euclid(SLOT_MS) * SLOT_MS;
        let i = match self.slots.iter().position(|(s, _)| *s == slot) {
            Some(i) => i,
            None => {
                self.slots.push((slot, Vec::new()));
                self.slots.len() - 1
            }
        };
        let top = &mut self.slots[i].1;
        if top.len() == TOP && top.last().is_some_and(|l| l.total_time_ms >= r.total_time_ms) {
            return;
        }
        let at = top.iter().position(|x| x.total_time_ms < r.total_time_ms).unwrap_or(top.len());
        top.insert(at, r);
        top.truncate(TOP);
    }

    fn expire(&mut self, now_ms: i64) {
        self.slots.retain(|(s, _)| *s + SLOT_MS > now_ms - WINDOW_MS);
    }

    /// The slowest requests with a timestamp in the last five minutes, slowest first.
    pub fn top(&self, now_ms: i64) -> Vec<SlowRequest> {
        let mut all: Vec<SlowRequest> = self
            .slots
            .iter()
            .flat_map(|(_, v)| v.iter())
            .filter(|r| r.timestamp_ms > now_ms - WINDOW_MS)
            .cloned()
            .collect();
        all.sort_by(|a, b| b.total_time_ms.total_cmp(&a.total_time_ms));
        all.truncate(TOP);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ms: f64, corr: i64, ts: i64) -> SlowRequest {
        SlowRequest { total_time_ms: ms, request: "Produce".into(), client_id: "c".into(), correlation_id: corr, timestamp_ms: ts }
    }

    #[test]
    fn keeps_the_ten_slowest_of_the_window() {
        let now = 1_000_000_000;
        let mut s = Slowest::default();
        for i in 0..100 {
            s.record(req(i as f64, i, now - 1000 * i), now);
        }
        s.record(req(1e6, 999, now - WINDOW_MS - 1), now);
        let top = s.top(now);
        assert_eq!(top.len(), 10);
        assert_eq!(top[0].correlation_id, 99);
        assert_eq!(top[9].correlation_id, 90);
        // six minutes later every one of them has left the window
        assert!(s.top(now + 6 * 60 * 1000).is_empty());
    }
}
