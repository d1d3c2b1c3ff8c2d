//! One module per Kafka API. A handler is a function of (request, broker state) -> response;
//! none of them touches a socket.
mod alter_configs;
mod alter_replica_log_dirs;
mod api_versions;
mod create_partitions;
mod elect_leaders;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_offsets_v0;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod partition_reassignments;
mod produce;
mod sync_group;
mod unregister_broker;
mod error_codes;

pub use error_codes::error_codes;

use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::protocol::Request;

pub use api_versions::{unsupported_version_response, valid_client_software};


pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Who sent a request, and what the handler reports back about it.
pub struct RequestContext {
    pub peer: std::net::SocketAddr,
    /// The listener the request came in on: Metadata answers with endpoints on it.
    pub listener: String,
    pub client_id: String,
    /// The request's span, when tracing is on and the request sampled: handlers start
    /// child spans from it.
    pub trace: Option<crate::telemetry::TraceParent>,
}

impl RequestContext {
    pub fn new(peer: std::net::SocketAddr, listener: &str, header: &kafka_protocol::messages::RequestHeader) -> Self {
        Self {
            peer,
            listener: listener.to_string(),
            client_id: header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            trace: None,
        }
    }

}

/// Handles a decoded request. `None` means no response is sent (Produce with acks=0).
pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: Request) -> Option<ResponseKind> {
    let version = request.version();
    let response = match request.body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(r, version)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, ctx, r, version).await),
        RequestKind::Produce(r) => return produce::handle(broker, ctx, r, version).await.map(ResponseKind::Produce),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(broker, ctx, r, version).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(broker, r, version).await),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics::handle(broker, r, version).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics::handle(broker, r, version).await),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(create_partitions::handle(broker, r).await),
        RequestKind::ElectLeaders(r) => ResponseKind::ElectLeaders(elect_leaders::handle(broker, r, version).await),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(describe_configs::handle(broker, r, version)),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(alter_configs::handle(broker, r).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(broker, r).await)
        }
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(describe_cluster::handle(broker, ctx, r)),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(init_producer_id::handle(broker, r).await),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, r))
        }
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(find_coordinator::handle(broker, ctx, r, version).await),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(join_group::handle(broker, ctx, r, version).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group::handle(broker, r, version).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(broker, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(leave_group::handle(broker, r, version).await),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offset_commit::handle(broker, r, version).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch::handle(broker, r, version)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(list_groups::handle(broker, r, version)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(describe_groups::handle(broker, r, version)),
        RequestKind::DescribeProducers(r) => ResponseKind::DescribeProducers(describe_producers::handle(broker, r)),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records::handle(broker, r).await),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(delete_groups::handle(broker, r).await),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(offset_delete::handle(broker, r).await),
        RequestKind::DescribeLogDirs(r) => ResponseKind::DescribeLogDirs(describe_log_dirs::handle(broker, r, version).await),
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(partition_reassignments::alter(broker, r, version).await)
        }
        RequestKind::AlterReplicaLogDirs(r) => ResponseKind::AlterReplicaLogDirs(alter_replica_log_dirs::handle(broker, r).await),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(partition_reassignments::list(broker, r)),
        RequestKind::UnregisterBroker(r) => ResponseKind::UnregisterBroker(unregister_broker::handle(broker, r).await),
        // The decoder only lets through the APIs in protocol::SUPPORTED, all matched above.
        other => {
            tracing::error!(target: "kafka.request.logger", request = ?std::mem::discriminant(&other), "decoded a request with no handler");
            return None;
        }
    };
    Some(response)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
