//! RequestMetrics handles per API, cached in a fixed table so recording a request allocates
//! nothing after the first request of each API, version and error.
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::ApiKey;
use parking_lot::RwLock;

use super::{BrokerMetrics, Counter, RequestTimes};

const MAX_API: usize = 128;
const MAX_VERSION: usize = 32;
const MAX_ERROR: usize = 160;

/// The handles of one API.
pub struct ApiHandles {
    pub name: &'static str,
    pub times: Arc<RequestTimes>,
    versions: [OnceLock<Arc<Counter>>; MAX_VERSION],
    /// Error codes -1..MAX_ERROR-1 (every code Kafka defines, UNKNOWN_SERVER_ERROR included),
    /// at index code + 1, without a lock; others in `errors`.
    known_errors: [OnceLock<Arc<Counter>>; MAX_ERROR],
    errors: RwLock<HashMap<i16, Arc<Counter>>>,
}

/// Kafka's request name for metrics: the API name, with Fetch split into FetchConsumer and
/// FetchFollower as Kafka does.
pub fn request_name(api: ApiKey, follower: bool) -> &'static str {
    match (api, follower) {
        (ApiKey::Fetch, false) => "FetchConsumer",
        (ApiKey::Fetch, true) => "FetchFollower",
        _ => api_name(api),
    }
}

fn api_name(api: ApiKey) -> &'static str {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut v = vec![""; MAX_API];
        for k in ApiKey::iter() {
            if let Some(slot) = v.get_mut(k as i16 as usize) {
                *slot = Box::leak(format!("{k:?}").into_boxed_str());
            }
        }
        v
    });
    names.get(api as i16 as usize).copied().unwrap_or("Unknown")
}

/// Kafka's name of an error code (`NONE`, `UNKNOWN_TOPIC_OR_PARTITION`, ...).
pub fn error_name(code: i16) -> String {
    if code == 0 {
        return "NONE".into();
    }
    match code.err().map(|e| format!("{e:?}")).filter(|n| !n.starts_with("Unknown(")) {
        Some(camel) => {
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
        None => format!("UNKNOWN_{code}"),
    }
}

pub struct RequestMetrics {
    apis: Vec<OnceLock<ApiHandles>>,
    fetch_follower: OnceLock<ApiHandles>,
    /// `request="Fetch"`: every fetch, consumer's and follower's, as Kafka also records them.
    fetch_all: OnceLock<ApiHandles>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self { apis: (0..MAX_API).map(|_| OnceLock::new()).collect(), fetch_follower: OnceLock::new(), fetch_all: OnceLock::new() }
    }
}

impl RequestMetrics {
    pub fn api(&self, metrics: &BrokerMetrics, api: ApiKey, follower: bool) -> &ApiHandles {
        let slot = if api == ApiKey::Fetch && follower {
            &self.fetch_follower
        } else {
            // ApiKey values are below MAX_API; the fallback slot 0 only guards the index.
            self.apis.get(api as i16 as usize).unwrap_or(&self.apis[0])
        };
        slot.get_or_init(|| {
            let name = request_name(api, follower);
            ApiHandles {
                name,
                times: metrics.request_times.with(&[name]),
                versions: Default::default(),
                known_errors: std::array::from_fn(|_| OnceLock::new()),
                errors: RwLock::new(HashMap::new()),
            }
        })
    }
}

impl RequestMetrics {
    /// For a Fetch, the `request="Fetch"` handles besides FetchConsumer/FetchFollower: Kafka
    /// records every fetch under both names (rates and times), and its errors under Fetch.
    pub fn fetch_all(&self, metrics: &BrokerMetrics, api: ApiKey) -> Option<&ApiHandles> {
        (api == ApiKey::Fetch).then(|| {
            self.fetch_all.get_or_init(|| ApiHandles {
                name: "Fetch",
                times: metrics.request_times.with(&["Fetch"]),
                versions: Default::default(),
                known_errors: std::array::from_fn(|_| OnceLock::new()),
                errors: RwLock::new(HashMap::new()),
            })
        })
    }
}

/// How long one request spent in each of Kafka's RequestMetrics stages (µs), and its size.
pub struct RequestTimings {
    pub request_bytes: u64,
    pub request_queue: u64,
    pub local: u64,
    pub remote: u64,
    pub response_queue: u64,
    pub response_send: u64,
    pub total: u64,
}

impl RequestMetrics {
    /// Records a request whose response was sent (or none was owed): its version, its times
    /// and its error codes (`(code, partitions)`, NONE included, as Kafka's ErrorsPerSec).
    /// A Fetch counts under FetchConsumer/FetchFollower and under Fetch, its errors under
    /// Fetch only (Kafka's RequestChannel). Everything `metrics.enabled=false` leaves out of
    /// a request is in here, kept out of line so a profile can attribute it.
    #[inline(never)]
    pub fn record_completed(&self, m: &BrokerMetrics, api: ApiKey, handles: &ApiHandles, version: i16, t: &RequestTimings, errors: &[(i16, u64)]) {
        let fetch_all = self.fetch_all(m, api);
        let window = super::histogram::window_now();
        for h in std::iter::once(handles).chain(fetch_all) {
            h.count_version(m, version);
            let times = &h.times;
            times.request_bytes.record_in(t.request_bytes, window);
            times.request_queue.record_in(t.request_queue, window);
            times.remote.record_in(t.remote, window);
            times.local.record_in(t.local, window);
            times.response_queue.record_in(t.response_queue, window);
            times.response_send.record_in(t.response_send, window);
            times.total.record_in(t.total, window);
        }
        let counted = fetch_all.unwrap_or(handles);
        for &(code, n) in errors {
            counted.count_error(m, code, n);
        }
    }
}

impl ApiHandles {
    pub fn count_version(&self, metrics: &BrokerMetrics, version: i16) {
        let idx = (version.max(0) as usize).min(MAX_VERSION - 1);
        let c = self.versions[idx].get_or_init(|| metrics.requests.with(&[self.name, &version.to_string()]));
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_error(&self, metrics: &BrokerMetrics, code: i16, n: u64) {
        if let Some(slot) = usize::try_from(i32::from(code) + 1).ok().and_then(|i| self.known_errors.get(i)) {
            let c = slot.get_or_init(|| metrics.errors.with(&[self.name, &error_name(code)]));
            c.fetch_add(n, Ordering::Relaxed);
            return;
        }
        if let Some(c) = self.errors.read().get(&code) {
            c.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let c = metrics.errors.with(&[self.name, &error_name(code)]);
        c.fetch_add(n, Ordering::Relaxed);
        self.errors.write().insert(code, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(1), "OFFSET_OUT_OF_RANGE");
        assert_eq!(request_name(ApiKey::Produce, false), "Produce");
        assert_eq!(request_name(ApiKey::Fetch, false), "FetchConsumer");
        assert_eq!(request_name(ApiKey::ApiVersions, false), "ApiVersions");
    }
}
