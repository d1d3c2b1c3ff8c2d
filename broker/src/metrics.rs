//! Broker counters kept while the full JMX-style metric catalogue is built (issue 4).
//! Plain atomics: cheap on hot paths, rendered in Prometheus text format on /metrics.
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct BrokerMetrics {
    pub connections_created: AtomicU64,
    pub connections_closed: AtomicU64,
    pub malformed_requests: AtomicU64,
    pub oversized_requests: AtomicU64,
    pub unsupported_requests: AtomicU64,
    pub requests: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl BrokerMetrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text exposition of the counters.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let rows: [(&str, &str, &AtomicU64); 9] = [
            ("kafka_server_socket_server_metrics_connection_creation_total", "Connections accepted.", &self.connections_created),
            ("kafka_server_socket_server_metrics_connection_close_total", "Connections closed.", &self.connections_closed),
            ("lantern_network_malformed_requests_total", "Requests that could not be decoded; each closed its connection.", &self.malformed_requests),
            ("lantern_network_oversized_requests_total", "Length prefixes above socket.request.max.bytes; each closed its connection.", &self.oversized_requests),
            ("lantern_network_unsupported_requests_total", "Requests for unknown API keys or unsupported versions.", &self.unsupported_requests),
            ("lantern_network_requests_total", "Requests decoded and handled.", &self.requests),
            ("kafka_server_brokertopicmetrics_messagesin_total", "Messages appended to logs.", &self.messages_in),
            ("kafka_server_brokertopicmetrics_bytesin_total", "Record bytes appended to logs.", &self.bytes_in),
            ("kafka_server_brokertopicmetrics_bytesout_total", "Record bytes sent to consumers.", &self.bytes_out),
        ];
        for (name, help, v) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}
