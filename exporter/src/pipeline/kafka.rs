//! The Kafka client settings the shipper and `lantern-exporter logs` share, over librdkafka (the
//! `rdkafka` crate): librdkafka finds each partition's leader, refreshes its metadata on
//! NOT_LEADER_OR_FOLLOWER and retries, so neither caller assumes one broker. This module also
//! owns the context that turns librdkafka's log lines and errors into tracing events and, for
//! the shipper, into its error counter and broker gauge.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::ship::ShipStats;

pub const CLIENT_ID: &str = "lantern-exporter";
/// How long a metadata or offsets request may take before the caller gives up on it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings common to every client: `bootstrap` is `host:port[,host:port...]`, any brokers of
/// the cluster. Reconnects back off from 250 ms to 5 s, as the hand-written client did.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", CLIENT_ID)
        .set("reconnect.backoff.ms", "250")
        .set("reconnect.backoff.max.ms", "5000")
        .set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// Routes librdkafka's logs and errors to tracing; with `stats`, errors are counted there too.
#[derive(Clone, Default)]
pub struct Context {
    pub stats: Option<Arc<ShipStats>>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // A broker connection failing is also reported to `error` below: logged once, there.
        if fac == "FAIL" {
            tracing::debug!(target: "lantern.exporter.rdkafka", facility = fac, "{message}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "lantern.exporter.rdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "lantern.exporter.rdkafka", facility = fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(target: "lantern.exporter.rdkafka", facility = fac, "{message}"),
            RDKafkaLogLevel::Debug => tracing::debug!(target: "lantern.exporter.rdkafka", facility = fac, "{message}"),
        }
    }

    /// Connection failures, "all brokers down", fatal errors: librdkafka keeps retrying by
    /// itself, so these are reported, not acted on (except that the gauge goes to 0 when no
    /// broker at all is reachable).
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(stats) = &self.stats {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
                stats.broker_up.store(false, Ordering::Relaxed);
            }
        }
        tracing::warn!(target: "lantern.exporter.rdkafka", error = %error, "{reason}");
    }
}

impl ConsumerContext for Context {}

/// Whether the broker will never accept this event as it is (too large or invalid): retrying
/// cannot help, so it is dropped and counted.
pub fn refused_for_good(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessage | RDKafkaErrorCode::MessageBatchTooLarge | RDKafkaErrorCode::InvalidRecord)
    )
}

/// Whether the topic (or partition) is unknown: the shipper checks the topic again, creating it
/// if the broker does not auto-create it.
pub fn unknown_topic(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownPartition)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart_from_outages() {
        let e = |c| KafkaError::MessageProduction(c);
        assert!(refused_for_good(&e(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(refused_for_good(&e(RDKafkaErrorCode::InvalidRecord)));
        assert!(!refused_for_good(&e(RDKafkaErrorCode::MessageTimedOut)));
        assert!(!refused_for_good(&e(RDKafkaErrorCode::NotLeaderForPartition)));
        assert!(unknown_topic(&e(RDKafkaErrorCode::UnknownTopic)));
        assert!(!unknown_topic(&e(RDKafkaErrorCode::AllBrokersDown)));
    }
}
