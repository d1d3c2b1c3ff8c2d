//! Lantern broker: a Kafka-wire-compatible broker with a durable partitioned log.
//!
//! Layers, top-down: `network` (accept, framing, size caps) -> `protocol` (decode, encode,
//! version negotiation) -> `api` (one module per Kafka API) -> `cluster` (topic metadata,
//! partitions) -> `log` (segments, indexes, recovery, retention).
pub mod log;
