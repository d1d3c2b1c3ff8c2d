//! Lantern broker: a Kafka-wire-compatible broker with a durable partitioned log.
//!
//! Layers, top-down: `network` (accept, framing, size caps) -> `protocol` (decode, encode,
//! version negotiation) -> `api` (one module per Kafka API) -> `cluster` (hosted partitions)
//! and `controller` (cluster metadata) -> `log` (segments, indexes, recovery, retention).
//! `telemetry` traces requests across these layers (OpenTelemetry, opt-in).
pub mod api;
pub mod background;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod coordinator;
pub mod crash_point;
pub mod durable_fs;
pub mod error_code;
pub mod http;
pub mod log;
pub mod metrics;
pub mod network;
pub mod protocol;
pub mod rest;
pub mod server;
pub mod telemetry;
