//! The controller: the owner of cluster metadata (brokers, topics, partitions, configs,
//! producer id blocks). Every change goes through the active controller, which checks it
//! against the current image (`decide`), writes the resulting records to the metadata log that
//! the Raft quorum replicates (`quorum`), and answers once they are committed and applied.
//! Every node applies the same records and publishes each new [`MetadataImage`].
//!
//! A node that is not the active controller forwards requests to it over the controller
//! listener; `submit` hides where the active controller is and retries while an election runs.
mod active;
mod decide;
mod decisions;
pub mod election;
pub mod heartbeats;
mod image;
mod legacy;
pub mod observer;
pub mod placement;
pub mod racks;
pub mod reassignment;
pub mod rebalance;
pub mod quorum;
pub mod records;
pub mod requests;
pub mod state_change;
pub mod stats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use uuid::Uuid;

pub use decide::{validate_topic_name, DYNAMIC_BROKER_CONFIGS, MAX_PARTITIONS_PER_TOPIC};
pub use image::{BrokerRegistration, Endpoint, MetadataImage, PartitionImage, TopicImage};
pub use requests::{ConfigOp, ControllerError, ControllerReply, ControllerRequest};

use heartbeats::BrokerHeartbeats;
use placement::Seed;
use quorum::rpc::{RpcClient, RpcHandler, RpcRequest, RpcResponse};
use quorum::state_machine::StateMachine;
use quorum::{MetadataBatch, MetadataRaft};
use records::MetadataRecord;

use crate::config::BrokerConfig;
use crate::error_code;

/// Producer ids a broker reserves per request to the controller.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Counters for the controller metrics.
#[derive(Default)]
pub struct ControllerStats {
    pub elections_won: AtomicU64,
    pub forwarded: AtomicU64,
    pub fenced: AtomicU64,
    /// Leaders elected from outside the ISR (ElectLeaders with the unclean type).
    pub unclean_elections: AtomicU64,
    /// Per partition given a new leader: from the decision's write to its commit
    /// (Kafka's LeaderElectionRateAndTimeMs), microseconds.
    pub leader_election_us: crate::metrics::histogram::Histogram,
    pub commit_latency_us_total: AtomicU64,
    pub commits: AtomicU64,
    pub rpc: Arc<quorum::rpc::RpcStats>,
    /// Requests this node sends other voters (Kafka's raft-channel-metrics).
    pub channel: Arc<quorum::rpc::ChannelStats>,
    pub raft: stats::RaftStats,
    pub events: stats::EventStats,
}

/// Where the active controller is, as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveController {
    Local,
    Remote(i32),
    Unknown,
}

/// What this node is in the metadata quorum.
enum Role {
    /// A voter: runs Raft on its own copy of the metadata log.
    Voter { raft: MetadataRaft, sm: StateMachine, log: quorum::log_store::LogStore },
    /// A broker that is not a controller: follows the active controller's log.
    Observer(observer::Observer),
}

pub struct Controller {
    node_id: i32,
    config: BrokerConfig,
    role: Role,
    /// Serialises decisions on the active controller, so each validates against the image
    /// the previous one produced.
    write_lock: tokio::sync::Mutex<()>,
    heartbeats: Mutex<BrokerHeartbeats>,
    /// Idle connections to other controllers, for forwarding.
    pool: Mutex<Vec<RpcClient>>,
    /// This broker's reserved producer ids: next, end.
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// The Raft term in which this node, as leader, has applied everything committed before
    /// it; decisions in a new term wait for that (a new leader's image can lag its log).
    caught_up_term: std::sync::atomic::AtomicU64,
    /// A write whose caller stopped waiting (`controller.quorum.request.timeout.ms`) but which
    /// may still commit: the next decision waits for it, so it never decides on an image that
    /// lacks it (a retried CreateTopics would otherwise be written twice).
    in_flight: Mutex<Option<WriteTask>>,
    pub stats: ControllerStats,
}

type WriteTask = tokio::task::JoinHandle<
    Result<openraft::raft::ClientWriteResponse<quorum::TypeConfig>, openraft::error::RaftError<u64, openraft::error::ClientWriteError<u64, openraft::BasicNode>>>,
>;

impl Controller {
    /// Starts this node's part of the metadata quorum from `metadata.log.dir`.
    pub async fn start(config: &BrokerConfig) -> anyhow::Result<Arc<Self>> {
        let dir = config.metadata_log_dir.join(crate::log::log_manager::METADATA_LOG_DIR);
        let stats = ControllerStats::default();
        let role = if config.cluster.roles.controller {
            let (raft, sm, log) = quorum::start(config, &dir, stats.channel.clone()).await?;
            Role::Voter { raft, sm, log }
        } else {
            Role::Observer(observer::Observer::new(config.cluster.voters.iter().map(|v| v.id).collect()))
        };
        let session = Duration::from_millis(config.cluster.session_timeout_ms);
        let c = Arc::new(Self {
            node_id: config.node_id,
            config: config.clone(),
            role,
            write_lock: Default::default(),
            heartbeats: Mutex::new(BrokerHeartbeats::new(session, Duration::from_millis(config.cluster.heartbeat_interval_ms))),
            pool: Default::default(),
            producer_ids: Default::default(),
            caught_up_term: std::sync::atomic::AtomicU64::new(u64::MAX),
            in_flight: Mutex::new(None),
            stats,
        });
        if let (Role::Voter { raft, .. }, 1) = (&c.role, config.cluster.voter_ids(config.node_id).len()) {
            // Alone in the quorum: no need to wait an election timeout to lead.
            let _ = raft.trigger().elect().await;
        }
        Ok(c)
    }

    /// The current metadata image (what this node has applied).
    pub fn image(&self) -> Arc<MetadataImage> {
        match &self.role {
            Role::Voter { sm, .. } => sm.image(),
            Role::Observer(o) => o.image(),
        }
    }

    /// Changes whenever this node applies metadata records.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        match &self.role {
            Role::Voter { sm, .. } => sm.subscribe(),
            Role::Observer(o) => o.subscribe(),
        }
    }

    /// This node's Raft instance; `None` on a broker that is not a controller.
    pub fn raft(&self) -> Option<&MetadataRaft> {
        match &self.role {
            Role::Voter { raft, .. } => Some(raft),
            Role::Observer(_) => None,
        }
    }

    pub fn apply_errors(&self) -> u64 {
        match &self.role {
            Role::Voter { sm, .. } => sm.apply_errors(),
            Role::Observer(o) => o.apply_errors(),
        }
    }

    /// Where the active controller is.
    pub fn active(&self) -> ActiveController {
        let raft = match &self.role {
            Role::Voter { raft, .. } => raft,
            Role::Observer(o) => {
                return match o.target() {
                    id if id >= 0 => ActiveController::Remote(id),
                    _ => ActiveController::Unknown,
                }
            }
        };
        let m = raft.metrics().borrow().clone();
        match m.current_leader {
            Some(id) if id == self.node_id as u64 && m.state == openraft::ServerState::Leader => ActiveController::Local,
            Some(id) if id != self.node_id as u64 => ActiveController::Remote(id as i32),
            _ => ActiveController::Unknown,
        }
    }

    /// The controller id to give clients (Metadata, DescribeCluster): the active controller
    /// when it is a live broker, else this broker, since every broker forwards admin requests
    /// (a client must never be told to wait for a node it cannot reach).
    pub fn client_controller_id(&self) -> i32 {
        let image = self.image();
        match self.controller_id() {
            id if id >= 0 && image.is_live(id) => id,
            _ if image.is_live(self.node_id) => self.node_id,
            _ => -1,
        }
    }

    /// The active controller's id, or -1 while none is known.
    pub fn controller_id(&self) -> i32 {
        if let Role::Observer(o) = &self.role {
            return o.leader();
        }
        match self.active() {
            ActiveController::Local => self.node_id,
            ActiveController::Remote(id) => id,
            ActiveController::Unknown => -1,
        }
    }

    /// True while this node is the active controller and a quorum has acknowledged it within
    /// an election timeout (a leader cut off from its quorum stops counting itself).
    pub fn is_active(&self) -> bool {
        let Role::Voter { raft, .. } = &self.role else { return false };
        let m = raft.metrics().borrow().clone();
        let lease = self.config.cluster.election_timeout_ms;
        m.state == openraft::ServerState::Leader
            && m.current_leader == Some(self.node_id as u64)
            && m.millis_since_quorum_ack.is_some_and(|ms| ms <= lease)
    }

    /// Sends `request` to the active controller, wherever it is, retrying while there is none
    /// (an election) for up to `controller.quorum.request.timeout.ms`.
    pub async fn submit(&self, request: ControllerRequest) -> Result<ControllerReply, ControllerError> {
        let timeout = Duration::from_millis(self.config.cluster.request_timeout_ms);
        self.submit_within(request, timeout).await
    }

    pub async fn submit_within(&self, request: ControllerRequest, timeout: Duration) -> Result<ControllerReply, ControllerError> {
        let deadline = Instant::now() + timeout;
        loop {
            let outcome = match self.active() {
                ActiveController::Local => self.execute(request.clone()).await,
                ActiveController::Remote(id) => {
                    let r = self.forward(id, &request, deadline).await;
                    if let Role::Observer(o) = &self.role {
                        match &r {
                            Err(ControllerError::NotController(_)) => o.refused(id),
                            _ => o.answered(id),
                        }
                    }
                    r
                }
                ActiveController::Unknown => Err(ControllerError::NotController("no controller is elected".into())),
            };
            match outcome {
                Ok((reply, offset)) => {
                    // Read your writes: a change is visible here before it is answered.
                    // Heartbeats and fetches change nothing, and a fetch's answer is what
                    // brings this node up to date, so they do not wait.
                    if !matches!(request, ControllerRequest::BrokerHeartbeat { .. } | ControllerRequest::FetchMetadata { .. }) {
                        self.wait_applied(offset, deadline).await;
                    }
                    return Ok(reply);
                }
                Err(ControllerError::NotController(why)) => {
                    if Instant::now() >= deadline {
                        return Err(ControllerError::NotController(why));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `request` to every voter in turn, each given at most `per_voter`: the active
    /// controller executes it, the others refuse. For a node that knows no leader because no
    /// leader talks to it, e.g. a second process started with another node's id, whose voter
    /// address reaches that other node: this is how it learns what the controller thinks of it.
    /// Its own id's voter is asked too: for such a duplicate, that address is the original
    /// node, which may be the active controller (for the original itself, it refuses).
    pub async fn ask_voters(&self, request: &ControllerRequest, per_voter: Duration) -> Result<ControllerReply, ControllerError> {
        let mut last = ControllerError::NotController("no voter answered".into());
        for voter in self.config.cluster.voters.iter() {
            match self.forward(voter.id, request, Instant::now() + per_voter).await {
                Ok((reply, _)) => return Ok(reply),
                Err(e @ ControllerError::NotController(_)) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Waits until this node has applied the metadata log up to `offset` (read your writes),
    /// or until `deadline`.
    async fn wait_applied(&self, offset: i64, deadline: Instant) {
        let mut rx = self.subscribe();
        while self.image().last_offset < offset {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                return;
            }
        }
    }

    async fn forward(&self, id: i32, request: &ControllerRequest, deadline: Instant) -> Result<(ControllerReply, i64), ControllerError> {
        let Some(voter) = self.config.cluster.voter(id) else {
            return Err(ControllerError::NotController(format!("controller {id} is not in controller.quorum.voters")));
        };
        let addr = voter.address();
        let mut client = {
            let mut pool = self.pool.lock();
            match pool.iter().position(|c| c.address() == addr) {
                Some(i) => pool.swap_remove(i),
                None => RpcClient::new(addr.clone(), Duration::from_millis(self.config.cluster.request_timeout_ms)),
            }
        };
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        let result = client.call(&RpcRequest::Controller(request.clone()), Some(left)).await;
        match result {
            Ok(RpcResponse::Controller(r)) => {
                self.pool.lock().push(client);
                r
            }
            Ok(other) => Err(ControllerError::NotController(format!("controller {id} answered {other:?}"))),
            Err(e) => Err(ControllerError::NotController(format!("controller {id} at {addr} is unreachable: {e}"))),
        }
    }

    /// Runs a request on this node, which must be the active controller; answers with the
    /// metadata offset the reply reflects.
    pub async fn execute(&self, request: ControllerRequest) -> Result<(ControllerReply, i64), ControllerError> {
        let reply = self.decide_and_write(request).await?;
        Ok((reply, self.image().last_offset))
    }

    /// Waits, once per term, until this leader's state machine has applied every entry
    /// committed before the term (openraft applies asynchronously, and a new leader applies the
    /// previous term's tail only after its own first entry commits). Decisions read the image:
    /// without this, a new controller could decide against a stale one (hand out producer ids
    /// twice, rewrite the cluster id, call live brokers stale).
    async fn ensure_caught_up(&self) -> Result<(), ControllerError> {
        let Role::Voter { raft, .. } = &self.role else {
            return Err(ControllerError::NotController("not a controller".into()));
        };
        let term = raft.metrics().borrow().current_term;
        if self.caught_up_term.load(Ordering::Acquire) == term {
            return Ok(());
        }
        let timeout = Duration::from_millis(self.config.cluster.request_timeout_ms);
        match tokio::time::timeout(timeout, raft.ensure_linearizable()).await {
            Ok(Ok(_)) => {
                self.caught_up_term.store(term, Ordering::Release);
                Ok(())
            }
            Ok(Err(e)) => Err(ControllerError::NotController(format!("leadership not confirmed: {e}"))),
            Err(_) => Err(ControllerError::NotController("a quorum did not confirm this controller in time".into())),
        }
    }

    /// An observer's fetch: the entries after `after_offset`, waiting up to half a second for
    /// new ones, or the whole image when the observer is new or behind the log's start.
    async fn fetch_metadata(&self, after_offset: i64) -> Result<ControllerReply, ControllerError> {
        let Role::Voter { log, .. } = &self.role else {
            return Err(ControllerError::NotController("not a controller".into()));
        };
        let mut rx = self.subscribe();
        let deadline = Instant::now() + Duration::from_millis(500);
        while self.image().last_offset <= after_offset {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                break;
            }
        }
        let image = self.image();
        if after_offset >= image.last_offset {
            return Ok(ControllerReply::Metadata(observer::MetadataDelta::Batches(Vec::new())));
        }
        let full = || Ok(ControllerReply::Metadata(observer::MetadataDelta::Image((*image).clone())));
        if after_offset < 0 {
            return full();
        }
        let mut reader = log.clone();
        let from = (after_offset + 1) as u64;
        let entries = openraft::RaftLogReader::try_get_log_entries(&mut reader, from..=image.last_offset as u64)
            .await
            .map_err(|e| ControllerError::Storage(e.to_string()))?;
        if entries.first().map(|e| e.log_id.index) != Some(from) {
            // The entries the observer needs are only in the snapshot now.
            return full();
        }
        // Bounded answers: the observer asks again from where this one ends.
        const MAX_FETCH_ENTRIES: usize = 500;
        const MAX_FETCH_RECORDS: usize = 50_000;
        let mut records = 0usize;
        let batches = entries
            .into_iter()
            .filter_map(|e| match e.payload {
                openraft::EntryPayload::Normal(b) => Some((e.log_id.index as i64, b)),
                _ => None,
            })
            .enumerate()
            .take_while(|(i, (_, b))| {
                records += b.records.len();
                *i == 0 || (*i < MAX_FETCH_ENTRIES && records <= MAX_FETCH_RECORDS)
            })
            .map(|(_, e)| e)
            .collect();
        Ok(ControllerReply::Metadata(observer::MetadataDelta::Batches(batches)))
    }

    /// An observer's loop: fetch the metadata from the active controller until shutdown.
    async fn follow(&self, mut shutdown: watch::Receiver<bool>) {
        let Role::Observer(o) = &self.role else { return };
        loop {
            let after = if self.image().cluster_id.is_empty() { -1 } else { self.image().last_offset };
            let fetched = tokio::select! {
                r = self.submit_within(ControllerRequest::FetchMetadata { after_offset: after }, Duration::from_millis(self.config.cluster.request_timeout_ms)) => r,
                _ = shutdown.changed() => return,
            };
            match fetched {
                Ok(ControllerReply::Metadata(delta)) => {
                    self.stats.raft.fetched(delta.records());
                    o.apply(delta)
                }
                Ok(other) => tracing::warn!(target: "org.apache.kafka.image.loader.MetadataLoader", reply = ?other, "unexpected answer to a metadata fetch"),
                Err(e) => {
                    tracing::debug!(target: "org.apache.kafka.image.loader.MetadataLoader", error = %e, "metadata fetch failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// Takes the write lock (Kafka's controller event queue), timing the wait and the hold,
    /// once an earlier write that timed out has been resolved (committed and applied, or
    /// failed); fails while it is still pending.
    async fn event_lock(&self) -> Result<stats::EventTimer<'_, tokio::sync::MutexGuard<'_, ()>>, ControllerError> {
        let queued = Instant::now();
        let guard = stats::EventTimer::started(self.write_lock.lock().await, queued, &self.stats.events);
        let pending = self.in_flight.lock().take();
        if let Some(mut task) = pending {
            let timeout = Duration::from_millis(self.config.cluster.request_timeout_ms);
            if tokio::time::timeout(timeout, &mut task).await.is_err() {
                *self.in_flight.lock() = Some(task);
                return Err(ControllerError::Timeout(format!(
                    "an earlier metadata write is still waiting for the quorum after another {timeout:?}"
                )));
            }
        }
        Ok(guard)
    }

    /// Writes records as one batch and waits until they are committed and applied here.
    async fn write(&self, records: Vec<MetadataRecord>) -> Result<u64, ControllerError> {
        let Role::Voter { raft, .. } = &self.role else {
            return Err(ControllerError::NotController("not a controller".into()));
        };
        let moves = state_change::leader_moves(&self.image(), &records);
        let count = records.len();
        let batch = MetadataBatch { records, timestamp_ms: now_ms() };
        let started = Instant::now();
        let timeout = Duration::from_millis(self.config.cluster.request_timeout_ms);
        let mut task: WriteTask = {
            let raft = raft.clone();
            tokio::spawn(async move { raft.client_write(batch).await })
        };
        let response = match tokio::time::timeout(timeout, &mut task).await {
            Err(_) => {
                // Still in the leader's log: it may commit later (see `in_flight`).
                *self.in_flight.lock() = Some(task);
                return Err(ControllerError::Timeout(format!("no quorum acknowledged it within {timeout:?}")));
            }
            Ok(Err(join)) => return Err(ControllerError::Storage(format!("the metadata write task failed: {join}"))),
            Ok(Ok(Err(openraft::error::RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f))))) => {
                return Err(ControllerError::NotController(format!("leadership moved to {:?}", f.leader_id)))
            }
            Ok(Ok(Err(e))) => return Err(ControllerError::Storage(e.to_string())),
            Ok(Ok(Ok(r))) => r,
        };
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats.commit_latency_us_total.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.stats.raft.committed(count, started.elapsed());
        let took = started.elapsed().as_micros() as u64;
        for _ in moves.iter().filter(|m| m.to >= 0) {
            self.stats.leader_election_us.record(took);
        }
        state_change::log_leader_moves(&moves, response.data.offset);
        Ok(response.data.offset)
    }

    /// Writes the cluster id into a new metadata log, importing the metadata file of a
    /// single-node Lantern from before the quorum if there is one.
    async fn initialise_cluster(&self) -> Result<(), ControllerError> {
        let _guard = self.event_lock().await?;
        self.initialise_cluster_locked().await
    }

    async fn initialise_cluster_locked(&self) -> Result<(), ControllerError> {
        self.ensure_caught_up().await?;
        let image = self.image();
        if !image.cluster_id.is_empty() {
            return Ok(());
        }
        let mut imported = false;
        let mut records = match legacy::import(&self.config.metadata_log_dir, self.node_id) {
            Ok(Some(recs)) => {
                imported = true;
                tracing::info!(target: "org.apache.kafka.controller.QuorumController", records = recs.len(), "importing the metadata of a single-node Lantern from before the quorum");
                recs
            }
            Ok(None) => Vec::new(),
            Err(e) => return Err(ControllerError::Storage(e)),
        };
        if !records.iter().any(|r| matches!(r, MetadataRecord::ClusterId { .. })) {
            let id = self.config.cluster_id.clone().unwrap_or_else(new_cluster_id);
            records.insert(0, MetadataRecord::ClusterId { cluster_id: id });
        }
        self.write(records).await?;
        if imported {
            legacy::mark_imported(&self.config.metadata_log_dir);
        }
        Ok(())
    }

    /// A producer id from this broker's reserved block, reserving a new block when it runs out.
    pub async fn allocate_producer_id(&self) -> Result<i64, ControllerError> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            let reply = self.submit(ControllerRequest::AllocateProducerIds { broker_id: self.node_id, count: PRODUCER_ID_BLOCK }).await?;
            let ControllerReply::ProducerIds { start, count } = reply else {
                return Err(ControllerError::Storage("unexpected answer to AllocateProducerIds".into()));
            };
            *ids = (start, start + count);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    pub async fn shutdown(&self) {
        if let Some(raft) = self.raft() {
            let _ = raft.shutdown().await;
        }
    }
}

impl RpcHandler for Controller {
    fn connection_closed(&self, heartbeated: &[i32]) {
        let now = Instant::now();
        let mut heartbeats = self.heartbeats.lock();
        for &broker in heartbeated {
            heartbeats.connection_closed(broker, now);
        }
    }

    async fn handle(&self, request: RpcRequest) -> RpcResponse {
        let Some(raft) = self.raft() else {
            return RpcResponse::Controller(Err(ControllerError::NotController(format!("node {} is not a controller", self.node_id))));
        };
        match request {
            RpcRequest::AppendEntries(r) => {
                self.stats.raft.fetched(r.entries.iter().map(quorum::records_in).sum());
                RpcResponse::AppendEntries(raft.append_entries(r).await)
            }
            RpcRequest::Vote(r) => RpcResponse::Vote(raft.vote(r).await),
            RpcRequest::InstallSnapshot(r) if r.offset.saturating_add(r.data.len() as u64) > quorum::MAX_SNAPSHOT_BYTES => {
                // openraft grows the receiving buffer to the chunk's offset: a hostile or
                // broken peer must not make this node allocate what it names.
                self.stats.rpc.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "org.apache.kafka.raft.KafkaRaftClient", from = r.vote.leader_id().voted_for().unwrap_or_default(), offset = r.offset, len = r.data.len(),
                    "refused a snapshot chunk past the {} MiB snapshot limit", quorum::MAX_SNAPSHOT_BYTES >> 20);
                RpcResponse::Controller(Err(ControllerError::Storage(format!(
                    "snapshot chunk at offset {} is past the {}-byte snapshot limit",
                    r.offset,
                    quorum::MAX_SNAPSHOT_BYTES
                ))))
            }
            RpcRequest::InstallSnapshot(r) => RpcResponse::InstallSnapshot(raft.install_snapshot(r).await),
            // Forwarded requests are served only by the active controller (no chains).
            RpcRequest::Controller(r) => RpcResponse::Controller(self.execute(r).await),
        }
    }
}

fn random_seed() -> Seed {
    let n = Uuid::new_v4().as_u128();
    Seed { start_index: (n & 0xffff) as usize, replica_shift: ((n >> 16) & 0xffff) as usize }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub fn new_cluster_id() -> String {
    // Kafka's cluster ids are URL-safe base64 of a UUID (22 characters).
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let n = Uuid::new_v4().as_u128();
    (0..22).map(|i| ALPHABET[((n >> (i * 6)) & 63) as usize] as char).collect()
}
