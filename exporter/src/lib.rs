//! `lantern-exporter`: the agent beside every Lantern broker.
//!
//! - [`node`]: machine metrics under node_exporter's names, one collector per file;
//! - [`pipeline`]: tails the broker's structured logs, derives metrics and ships the events
//!   to a Kafka topic;
//! - [`http`]: the /metrics endpoint that serves both;
//! - [`exposition`]: the Prometheus text writer they share;
//! - [`cli`]: node_exporter-style flags.
pub mod cli;
pub mod exposition;
pub mod http;
pub mod node;
pub mod pipeline;
