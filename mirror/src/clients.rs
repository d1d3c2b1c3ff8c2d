//! The Kafka clients of both clusters, over librdkafka: each kind's settings (lantern-mirror's
//! defaults, then the cluster's `<alias>.*` passthrough, then `<alias>.consumer.*` /
//! `.producer.*` / `.admin.*`), and the client context that routes librdkafka's logs to tracing
//! and its statistics into the metrics.
use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::Statistics;

use crate::config::Cluster;
use crate::metrics::Metrics;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Consumer,
    Producer,
    Admin,
}

/// `defaults` first, so the cluster's own settings override them.
pub fn client_config(cluster: &Cluster, kind: Kind, client_id: &str, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cluster.bootstrap_servers)
        .set("client.id", client_id)
        .set("reconnect.backoff.ms", "250")
        .set("reconnect.backoff.max.ms", "5000")
        .set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    for (k, v) in &cluster.client {
        c.set(k, v);
    }
    let own = match kind {
        Kind::Consumer => &cluster.consumer,
        Kind::Producer => &cluster.producer,
        Kind::Admin => &cluster.admin,
    };
    for (k, v) in own {
        c.set(k, v);
    }
    c
}

/// Which flow's metrics a client's statistics feed, and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StatsRole {
    None,
    SourceConsumer,
    TargetProducer,
}

/// The level a librdkafka log line is logged at. A broker connection failing (facility FAIL,
/// which librdkafka logs at LOG_ERR) is also reported to `error` below and logged once there, as
/// a warning: a broker of either cluster restarting pauses the flow, as the Java client's
/// "Connection to node could not be established" warning says, and is the cluster's alert
/// (LanternBrokerDown), not an ERROR of the mirror's (LanternErrorLogSpike). As lantern-exporter.
fn log_level(level: RDKafkaLogLevel, facility: &str) -> tracing::Level {
    if facility == "FAIL" {
        return tracing::Level::DEBUG;
    }
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => tracing::Level::ERROR,
        RDKafkaLogLevel::Warning => tracing::Level::WARN,
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::Level::INFO,
        RDKafkaLogLevel::Debug => tracing::Level::DEBUG,
    }
}

#[derive(Clone)]
pub struct Context {
    pub metrics: Arc<Metrics>,
    pub source: String,
    pub target: String,
    pub role: StatsRole,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match log_level(level, fac) {
            tracing::Level::ERROR => tracing::error!(target: "lantern.mirror.rdkafka", facility = fac, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "lantern.mirror.rdkafka", facility = fac, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "lantern.mirror.rdkafka", facility = fac, "{message}"),
            _ => tracing::debug!(target: "lantern.mirror.rdkafka", facility = fac, "{message}"),
        }
    }

    /// librdkafka retries connections itself: a cluster being down pauses the flow, it does not
    /// end it.
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "lantern.mirror.rdkafka", source = %self.source, target = %self.target, error = %error, "{reason}");
    }

    fn stats(&self, stats: Statistics) {
        let key = (self.source.clone(), self.target.clone());
        match self.role {
            StatsRole::None => {}
            StatsRole::SourceConsumer => self.metrics.with(|s| {
                if let Some(f) = s.flows.get_mut(&key) {
                    f.consumer_bytes = stats.rx_bytes.max(0) as u64;
                }
                // The log end offsets librdkafka saw while fetching: the lag's upper end.
                for (k, p) in s.partitions.iter_mut().filter(|(k, _)| k.0 == key.0 && k.1 == key.1) {
                    let hw = stats.topics.get(&p.source_topic).and_then(|t| t.partitions.get(&k.3)).map(|sp| sp.hi_offset);
                    if let Some(hw) = hw.filter(|h| *h >= 0) {
                        p.high_watermark = p.high_watermark.max(hw);
                    }
                }
            }),
            StatsRole::TargetProducer => self.metrics.with(|s| {
                // librdkafka's view of where a record's time goes (microseconds): queued in the
                // producer, waiting in the output buffer, and the broker's round trip.
                for (name, b) in &stats.brokers {
                    if let (Some(q), Some(o), Some(r)) = (&b.int_latency, &b.outbuf_latency, &b.rtt) {
                        if r.cnt > 0 {
                            tracing::debug!(target: "lantern.mirror.stats", broker = %name, queue_avg_us = q.avg, outbuf_avg_us = o.avg, rtt_avg_us = r.avg, rtt_max_us = r.max, "target producer latency");
                        }
                    }
                }
                if let Some(f) = s.flows.get_mut(&key) {
                    f.producer_bytes = stats.tx_bytes.max(0) as u64;
                    f.producer_buffer_available = stats.msg_size_max.saturating_sub(stats.msg_size) as f64;
                }
            }),
        }
    }
}

impl ConsumerContext for Context {}

/// Heartbeats, checkpoints and offset syncs need no per-record report.
impl ProducerContext for Context {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_connection_failing_is_not_an_error_of_the_mirror() {
        // "Connect to ipv4#127.0.0.1:9092 failed: Connection refused" arrives as FAIL at LOG_ERR
        assert_eq!(log_level(RDKafkaLogLevel::Error, "FAIL"), tracing::Level::DEBUG);
        assert_eq!(log_level(RDKafkaLogLevel::Error, "TOPICERR"), tracing::Level::ERROR);
        assert_eq!(log_level(RDKafkaLogLevel::Warning, "CONFWARN"), tracing::Level::WARN);
        assert_eq!(log_level(RDKafkaLogLevel::Notice, "MAXPOLL"), tracing::Level::INFO);
    }
}
