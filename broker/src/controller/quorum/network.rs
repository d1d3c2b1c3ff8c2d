//! openraft's view of the other voters: one [`RpcClient`] per target, carrying append, vote
//! and snapshot RPCs. A voter that cannot be reached is reported as unreachable, and openraft
//! backs off and retries.
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::rpc::{ChannelStats, RpcClient, RpcRequest, RpcResponse};
use super::TypeConfig;

/// Makes a connection per voter; their traffic counts in `stats`, and refused connections
/// are noted there.
pub struct Network {
    timeout: Duration,
    stats: Arc<ChannelStats>,
}

impl Network {
    pub fn new(timeout: Duration, stats: Arc<ChannelStats>) -> Self {
        Self { timeout, stats }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection { target, client: RpcClient::counted(node.addr.clone(), self.timeout, self.stats.clone()), stats: self.stats.clone() }
    }
}

pub struct Connection {
    target: u64,
    client: RpcClient,
    stats: Arc<ChannelStats>,
}

impl Connection {
    async fn call<E: std::error::Error>(&mut self, request: RpcRequest, option: &RPCOption) -> Result<RpcResponse, RPCError<u64, BasicNode, E>> {
        // An AppendEntries over the frame limit (a lagging voter, large records) is sent again
        // with half the entries: openraft shrinks the batch on PayloadTooLarge.
        let entries = match &request {
            RpcRequest::AppendEntries(r) => r.entries.len() as u64,
            _ => 0,
        };
        match self.client.call(&request, Some(option.hard_ttl())).await {
            Ok(r) => Ok(r),
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge && entries > 1 => {
                Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(RPCError::Network(NetworkError::new(&e))),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                self.stats.refused(self.target, std::time::Instant::now());
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Unreachable(Unreachable::new(&e))),
        }
    }

    fn unexpected<E: std::error::Error>(&self, got: &RpcResponse) -> RPCError<u64, BasicNode, E> {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, format!("voter {} answered with the wrong response type: {got:?}", self.target));
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(RpcRequest::AppendEntries(rpc), &option).await? {
            RpcResponse::AppendEntries(Ok(r)) => Ok(r),
            RpcResponse::AppendEntries(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        match self.call(RpcRequest::InstallSnapshot(rpc), &option).await? {
            RpcResponse::InstallSnapshot(Ok(r)) => Ok(r),
            RpcResponse::InstallSnapshot(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(RpcRequest::Vote(rpc), &option).await? {
            RpcResponse::Vote(Ok(r)) => Ok(r),
            RpcResponse::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(self.unexpected(&other)),
        }
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Retry an unreachable voter soon: a restarted controller should rejoin quickly.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
