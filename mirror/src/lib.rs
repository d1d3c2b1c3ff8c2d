//! lantern-mirror: mirroring between Kafka clusters in MirrorMaker 2's model (its properties
//! configuration, replication policies, internal topics and record formats, offset translation
//! and metric names), as one process that is a client of both clusters.
pub mod checkpoint;
pub mod cli;
pub mod clients;
pub mod config;
pub mod flow;
pub mod formats;
pub mod http;
pub mod metrics;
pub mod offset_sync;
pub mod policy;
pub mod resume;
pub mod topics;
