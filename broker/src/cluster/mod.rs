//! The broker's side of cluster state: the partitions it hosts (`ReplicaManager`), each with
//! its log, leader epoch and high watermark, kept in step with the controller's metadata image.
pub mod delayed_fetch;
pub mod hw_checkpoint;
pub mod leader_epochs;
pub mod lifecycle;
pub mod log_dir_mover;
pub mod meta_properties;
pub mod partition;
pub mod partition_metadata;
pub mod replica_fetcher;
pub mod replica_manager;
pub mod replication;
pub mod replication_quota;
pub mod topic_config;
pub mod topic_config_defs;

pub use delayed_fetch::DelayedFetch;
pub use partition::{Partition, PartitionError};
pub use replica_manager::{AppendResult, FetchedData, ReplicaManager};
