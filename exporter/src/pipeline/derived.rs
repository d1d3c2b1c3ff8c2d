//! The metrics derived from log events, and their rendering on /metrics. The whole state is
//! plain data so the checkpoint can store it beside the file offsets it corresponds to: that
//! pairing is what makes the counters exact across a kill -9.
//!
//! Label cardinality is capped: past [`MAX_VALUES`] distinct values of a label (per label:
//! logger, request, error, client id, client software name or version), further values are
//! counted under `other`.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::event::{Facts, RequestFacts};
use super::slowest::{SlowRequest, Slowest};
use crate::exposition::{MetricType, MetricWriter};

/// Upper bounds (ms) of the request latency histogram buckets; +Inf is implied.
pub const TIME_BUCKETS_MS: [f64; 13] = [0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0];
/// Distinct values kept per label before further ones become `other`.
pub const MAX_VALUES: usize = 100;
pub const OTHER: &str = "other";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestStats {
    pub count: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Non-cumulative counts per bucket of [`TIME_BUCKETS_MS`], then the +Inf overflow.
    pub buckets: Vec<u64>,
    pub time_sum_ms: f64,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientStats {
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    /// level -> logger -> events
    pub log_events: BTreeMap<String, BTreeMap<String, u64>>,
    /// per configured file path
    pub lines_read: BTreeMap<String, u64>,
    pub lines_invalid: BTreeMap<String, u64>,
    pub rotations: BTreeMap<String, u64>,
    /// Events not spooled because the spool was full (see spool.rs).
    pub events_dropped: u64,
    pub requests: BTreeMap<String, RequestStats>,
    /// (client id, software name, software version) -> stats, flattened as "id\u{0}name\u{0}version".
    pub clients: BTreeMap<String, ClientStats>,
    /// Distinct values of each client label seen, for the cardinality caps.
    pub client_ids: BTreeSet<String>,
    pub client_software_names: BTreeSet<String>,
    pub client_software_versions: BTreeSet<String>,
    pub slowest: Slowest,
}

/// `value` if the map already has it or has room for it, else `other`.
fn capped<'a, V>(map: &BTreeMap<String, V>, value: &'a str) -> &'a str {
    if map.contains_key(value) || map.len() < MAX_VALUES {
        value
    } else {
        OTHER
    }
}

/// The capped-label check for a label that is one part of a compound key; records the value.
fn capped_part(seen: &mut BTreeSet<String>, value: &str) -> String {
    if seen.contains(value) || seen.len() < MAX_VALUES {
        seen.insert(value.to_string());
        value.to_string()
    } else {
        OTHER.to_string()
    }
}

impl Derived {
    /// Creates the per-file series of a configured file (at 0 until something happens).
    pub fn watch_file(&mut self, file: &str) {
        for m in [&mut self.lines_read, &mut self.lines_invalid, &mut self.rotations] {
            m.entry(file.to_string()).or_default();
        }
    }

    pub fn line_read(&mut self, file: &str) {
        *self.lines_read.entry(file.to_string()).or_default() += 1;
    }

    pub fn line_invalid(&mut self, file: &str) {
        *self.lines_invalid.entry(file.to_string()).or_default() += 1;
    }

    pub fn rotated(&mut self, file: &str, n: u64) {
        if n > 0 {
            *self.rotations.entry(file.to_string()).or_default() += n;
        }
    }

    pub fn event(&mut self, facts: &Facts, timestamp_ms: Option<i64>, now_ms: i64) {
        match facts {
            Facts::Log { level, logger } => {
                let level = capped(&self.log_events, level).to_string();
                let loggers = self.log_events.entry(level).or_default();
                let logger = capped(loggers, logger).to_string();
                *loggers.entry(logger).or_default() += 1;
            }
            Facts::Request(r) => self.request(r, timestamp_ms.unwrap_or(now_ms), now_ms),
        }
    }

    fn request(&mut self, r: &RequestFacts, timestamp_ms: i64, now_ms: i64) {
        let api = capped(&self.requests, &r.api).to_string();
        let stats = self.requests.entry(api.clone()).or_default();
        if stats.buckets.len() != TIME_BUCKETS_MS.len() + 1 {
            stats.buckets = vec![0; TIME_BUCKETS_MS.len() + 1];
        }
        stats.count += 1;
        stats.request_bytes += r.request_bytes;
        stats.response_bytes += r.response_bytes;
        stats.time_sum_ms += r.total_time_ms;
        let b = TIME_BUCKETS_MS.iter().position(|le| r.total_time_ms <= *le).unwrap_or(TIME_BUCKETS_MS.len());
        stats.buckets[b] += 1;
        for (name, n) in &r.errors {
            let name = capped(&stats.errors, name).to_string();
            *stats.errors.entry(name).or_default() += n;
        }

        let id = capped_part(&mut self.client_ids, &r.client_id);
        let name = capped_part(&mut self.client_software_names, &r.software_name);
        let version = capped_part(&mut self.client_software_versions, &r.software_version);
        let mut key = format!("{id}\u{0}{name}\u{0}{version}");
        // Each part is capped, but their combinations could still reach MAX_VALUES^3 series.
        if !self.clients.contains_key(&key) && self.clients.len() >= MAX_VALUES {
            key = format!("{OTHER}\u{0}{OTHER}\u{0}{OTHER}");
        }
        let c = self.clients.entry(key).or_default();
        c.requests += 1;
        c.bytes_in += r.request_bytes;
        c.bytes_out += r.response_bytes;

        self.slowest.record(
            SlowRequest { total_time_ms: r.total_time_ms, request: api, client_id: id, correlation_id: r.correlation_id, timestamp_ms },
            now_ms,
        );
    }

    /// Writes every derived family (always all families, so dashboards see them from the start).
    pub fn render(&self, out: &mut MetricWriter, now_ms: i64) {
        use MetricType::*;
        out.family("lantern_log_events_total", "Broker log events read, by level and logger (the JSON target).", Counter);
        for (level, loggers) in &self.log_events {
            for (logger, n) in loggers {
                out.sample("lantern_log_events_total", &[("level", level), ("logger", logger)], *n as f64);
            }
        }
        let per_file = |out: &mut MetricWriter, name: &str, help: &str, m: &BTreeMap<String, u64>| {
            out.family(name, help, Counter);
            for (file, n) in m {
                out.sample(name, &[("file", file)], *n as f64);
            }
        };
        per_file(out, "lantern_log_lines_invalid_total", "Lines that are not a JSON object of the expected shape (shipped as log_type=invalid).", &self.lines_invalid);
        per_file(out, "lantern_pipeline_lines_read_total", "Complete lines read, per configured file.", &self.lines_read);
        per_file(out, "lantern_pipeline_file_rotations_total", "Rotations (rename+create) and truncations seen, per configured file.", &self.rotations);
        out.single("lantern_pipeline_events_dropped_total", "Events not delivered: the spool was full, or a receiver refused them for good (still counted in the derived metrics).", Counter, self.events_dropped as f64);

        out.family("lantern_requestlog_requests_total", "Requests in the request log, by API.", Counter);
        for (api, s) in &self.requests {
            out.sample("lantern_requestlog_requests_total", &[("request", api)], s.count as f64);
        }
        out.family("lantern_requestlog_errors_total", "Error codes in responses (NONE excluded), by API and error name.", Counter);
        for (api, s) in &self.requests {
            for (err, n) in &s.errors {
                out.sample("lantern_requestlog_errors_total", &[("request", api), ("error", err)], *n as f64);
            }
        }
        out.family("lantern_requestlog_total_time_ms", "Request total time (Kafka's TotalTimeMs), in milliseconds.", Histogram);
        for (api, s) in &self.requests {
            let mut cumulative = 0u64;
            for (i, n) in s.buckets.iter().enumerate() {
                cumulative += n;
                let le = match TIME_BUCKETS_MS.get(i) {
                    Some(v) => {
                        let mut t = String::new();
                        crate::exposition::write_value(&mut t, *v);
                        t
                    }
                    None => "+Inf".to_string(),
                };
                out.sample("lantern_requestlog_total_time_ms_bucket", &[("request", api), ("le", &le)], cumulative as f64);
            }
            out.sample("lantern_requestlog_total_time_ms_sum", &[("request", api)], s.time_sum_ms);
            out.sample("lantern_requestlog_total_time_ms_count", &[("request", api)], s.count as f64);
        }
        out.family("lantern_requestlog_request_bytes_total", "Request bytes, by API.", Counter);
        for (api, s) in &self.requests {
            out.sample("lantern_requestlog_request_bytes_total", &[("request", api)], s.request_bytes as f64);
        }
        out.family("lantern_requestlog_response_bytes_total", "Response bytes, by API.", Counter);
        for (api, s) in &self.requests {
            out.sample("lantern_requestlog_response_bytes_total", &[("request", api)], s.response_bytes as f64);
        }

        out.family("lantern_requestlog_client_requests_total", "Requests by client id and client software.", Counter);
        let mut bytes: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
        for (key, c) in &self.clients {
            let mut parts = key.split('\u{0}');
            let (id, name, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            out.sample(
                "lantern_requestlog_client_requests_total",
                &[("client_id", id), ("client_software_name", name), ("client_software_version", version)],
                c.requests as f64,
            );
            let e = bytes.entry((id, name)).or_default();
            e.0 += c.bytes_in;
            e.1 += c.bytes_out;
        }
        out.family("lantern_requestlog_client_bytes_total", "Request (in) and response (out) bytes by client id and client software.", Counter);
        for ((id, name), (bin, bout)) in &bytes {
            let labels = |d| [("client_id", *id), ("client_software_name", *name), ("direction", d)];
            out.sample("lantern_requestlog_client_bytes_total", &labels("in"), *bin as f64);
            out.sample("lantern_requestlog_client_bytes_total", &labels("out"), *bout as f64);
        }

        out.family("lantern_requestlog_slowest_request_ms", "The 10 slowest requests of the last 5 minutes (rank 1 is the slowest), total time in ms.", Gauge);
        for (i, r) in self.slowest.top(now_ms).iter().enumerate() {
            let rank = (i + 1).to_string();
            let corr = r.correlation_id.to_string();
            out.sample(
                "lantern_requestlog_slowest_request_ms",
                &[("rank", &rank), ("request", &r.request), ("client_id", &r.client_id), ("correlation_id", &corr)],
                r.total_time_ms,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(api: &str, ms: f64, client: &str) -> Facts {
        Facts::Request(RequestFacts {
            api: api.into(),
            client_id: client.into(),
            software_name: "librdkafka".into(),
            software_version: "2.0.2".into(),
            correlation_id: 1,
            total_time_ms: ms,
            request_bytes: 10,
            response_bytes: 20,
            errors: vec![("NOT_LEADER_OR_FOLLOWER".into(), 2)],
        })
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_le_labels() {
        let mut d = Derived::default();
        for ms in [0.2, 0.5, 0.7, 3.0, 7000.0] {
            d.event(&req("Fetch", ms, "c"), Some(0), 0);
        }
        let mut w = MetricWriter::new();
        d.render(&mut w, 0);
        let text = w.into_string();
        for line in [
            "lantern_requestlog_total_time_ms_bucket{request=\"Fetch\",le=\"0.5\"} 2",
            "lantern_requestlog_total_time_ms_bucket{request=\"Fetch\",le=\"1\"} 3",
            "lantern_requestlog_total_time_ms_bucket{request=\"Fetch\",le=\"2.5\"} 3",
            "lantern_requestlog_total_time_ms_bucket{request=\"Fetch\",le=\"5\"} 4",
            "lantern_requestlog_total_time_ms_bucket{request=\"Fetch\",le=\"5000\"} 4",
            "lantern_requestlog_total_time_ms_bucket{request=\"Fetch\",le=\"+Inf\"} 5",
            "lantern_requestlog_total_time_ms_count{request=\"Fetch\"} 5",
            "lantern_requestlog_errors_total{request=\"Fetch\",error=\"NOT_LEADER_OR_FOLLOWER\"} 10",
            "lantern_requestlog_client_bytes_total{client_id=\"c\",client_software_name=\"librdkafka\",direction=\"in\"} 50",
            "lantern_requestlog_slowest_request_ms{rank=\"1\",request=\"Fetch\",client_id=\"c\",correlation_id=\"1\"} 7000",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn client_ids_are_capped() {
        let mut d = Derived::default();
        for i in 0..(MAX_VALUES + 5) {
            d.event(&req("Produce", 1.0, &format!("client-{i}")), Some(0), 0);
        }
        assert_eq!(d.clients.len(), MAX_VALUES + 1);
        assert_eq!(d.clients.get("other\u{0}other\u{0}other").map(|c| c.requests), Some(5));
    }

    #[test]
    fn client_combinations_are_capped_too() {
        // 30 ids x 30 software names stay under the per-label cap, but not their product.
        let mut d = Derived::default();
        for i in 0..30 {
            for n in 0..30 {
                let mut f = req("Produce", 1.0, &format!("client-{i}"));
                if let Facts::Request(r) = &mut f {
                    r.software_name = format!("sw-{n}");
                }
                d.event(&f, Some(0), 0);
            }
        }
        assert_eq!(d.clients.len(), MAX_VALUES + 1);
        let total: u64 = d.clients.values().map(|c| c.requests).sum();
        assert_eq!(total, 900, "every request is still counted");
    }

    #[test]
    fn round_trips_through_json() {
        let mut d = Derived::default();
        d.event(&Facts::Log { level: "WARN".into(), logger: "kafka.log.LogCleaner".into() }, None, 0);
        d.event(&req("Produce", 1.234567, "c"), Some(0), 0);
        let back: Derived = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }
}
