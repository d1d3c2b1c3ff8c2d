//! Followers: for every broker that leads partitions this broker follows, one task fetches
//! them with Kafka's Fetch API (replica_id = this broker) on the leader's inter-broker
//! listener, appends what comes back as it is, and takes the leader's high watermark (Kafka's
//! ReplicaFetcherThread). The leader learns each follower's position from the offsets it
//! fetches at (see `replication`).
//!
//! When a partition gets a new leader epoch, the follower first asks the leader where its
//! latest epoch ends (OffsetForLeaderEpoch, KIP-101/279) and truncates to where the two logs
//! stop agreeing (`leader_epochs::truncation_offset`), so a former leader's unreplicated tail
//! is removed and records the new leader does have are kept.
//!
//! The leader is a peer, and peers can be broken: response sizes are capped before
//! allocation and every batch is CRC-checked before it is appended.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Partition;
use crate::api::now_ms;
use crate::broker::Broker;
use crate::error_code;

const FETCH_VERSION: i16 = 12;
const CLIENT_ID: &str = "lantern-replica-fetcher";
/// The first version with the follower's replica id.
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 3;
/// Pause after an error before the next fetch from the same leader.
const BACKOFF: Duration = Duration::from_millis(200);

/// Starts and stops one fetcher per leader as the metadata changes.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut fetchers: HashMap<i32, tokio::task::JoinHandle<()>> = HashMap::new();
    // Woken once each image is applied to the partitions (whose leaders this reads).
    let mut images = broker.replicas.subscribe_applied();
    loop {
        fetchers.retain(|_, t| !t.is_finished());
        for leader in leaders_followed(&broker) {
            fetchers.entry(leader).or_insert_with(|| tokio::spawn(fetch_from(broker.clone(), leader, shutdown.clone())));
        }
        tokio::select! {
            _ = images.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => break,
        }
    }
    for (_, t) in fetchers {
        let _ = t.await;
    }
}

/// The leaders of the partitions this broker hosts as a follower.
fn leaders_followed(broker: &Broker) -> Vec<i32> {
    let local = broker.node_id();
    let mut out: Vec<i32> = broker.replicas.all().iter().map(|p| p.leader()).filter(|l| *l >= 0 && *l != local).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The partitions this broker follows from `leader`, by (topic, index).
fn followed_from(broker: &Broker, leader: i32) -> BTreeMap<(String, i32), Arc<Partition>> {
    broker
        .replicas
        .all()
        .into_iter()
        .filter(|p| p.leader() == leader && !p.is_leader())
        .map(|p| ((p.topic.clone(), p.index), p))
        .collect()
}

/// Fetches from `leader` until this broker follows nothing there any more.
async fn fetch_from(broker: Arc<Broker>, leader: i32, mut shutdown: watch::Receiver<bool>) {
    let local = broker.node_id();
    let mut conn: Option<TcpStream> = None;
    let mut correlation = 0i32;
    // The leader epoch each partition was made ready (truncated) for.
    let mut ready_for: HashMap<(String, i32), i32> = HashMap::new();
    let mut images = broker.replicas.subscribe_applied();
    // Partitions left out of the fetches until then, after an error for them: without this
    // a full disk here turns into a loop of fetches the leader answers at once.
    // Keyed with the leader epoch the error happened under: a new epoch starts afresh.
    let mut delayed: HashMap<(String, i32), (tokio::time::Instant, i32)> = HashMap::new();
    let backoff = Duration::from_millis(broker.config.replica_fetch_backoff_ms);
    tracing::info!(target: "kafka.server.ReplicaFetcherThread", leader, "fetching from the leader");
    let rate = broker.metrics.fetcher_rates.register(leader);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let partitions = followed_from(&broker, leader);
        if partitions.is_empty() {
            tracing::info!(target: "kafka.server.ReplicaFetcherThread", leader, "no partition is followed from this leader any more");
            return;
        }
        ready_for.retain(|k, _| partitions.contains_key(k));
        let now = tokio::time::Instant::now();
        delayed.retain(|k, (until, epoch)| *until > now && partitions.get(k).is_some_and(|p| p.leader_epoch() == *epoch));
        let unready: Vec<&Arc<Partition>> = partitions
            .iter()
            .filter(|(k, p)| ready_for.get(*k) != Some(&p.leader_epoch()) && !delayed.contains_key(*k))
            .map(|(_, p)| p)
            .collect();
        if !unready.is_empty() {
            let truncated = async {
                if conn.is_none() {
                    conn = Some(connect(&broker, leader).await?);
                }
                let stream = conn.as_mut().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))?;
                correlation = correlation.wrapping_add(1);
                truncate_to_leader(stream, local, &unready, correlation).await
            };
            match tokio::time::timeout(Duration::from_millis(broker.config.cluster.request_timeout_ms.max(1000)), truncated).await {
                Ok(Ok((done, failed))) => {
                    for (key, epoch) in done {
                        ready_for.insert(key, epoch);
                    }
                    let until = tokio::time::Instant::now() + backoff;
                    for (key, epoch) in failed {
                        delayed.insert(key, (until, epoch));
                    }
                }
                Ok(Err(e)) => {
                    conn = None;
                    tracing::debug!(target: "kafka.server.ReplicaFetcherThread", leader, error = %e, "OffsetForLeaderEpoch failed; retrying");
                }
                Err(_) => conn = None,
            }
        }
        // Replication throttle (follower side): partitions listed in the topic's
        // follower.replication.throttled.replicas for this broker, and not in sync, are left
        // out while the quota is spent.
        broker.refresh_replication_quotas();
        let image = broker.image();
        let throttled: std::collections::HashSet<(String, i32)> = partitions
            .iter()
            .filter(|(k, _)| {
                image.partition(&k.0, k.1).is_some_and(|pi| !pi.isr.contains(&local))
                    && crate::cluster::replication_quota::listed(
                        image.topic(&k.0).and_then(|t| t.configs.get("follower.replication.throttled.replicas")).map(String::as_str),
                        k.1,
                        local,
                    )
            })
            .map(|(k, _)| k.clone())
            .collect();
        let quota_spent = !throttled.is_empty() && broker.follower_quota.exceeded(std::time::Instant::now());
        let ready: Vec<&Arc<Partition>> = partitions
            .iter()
            .filter(|(k, p)| ready_for.get(*k) == Some(&p.leader_epoch()) && !delayed.contains_key(*k))
            .filter(|(k, _)| !(quota_spent && throttled.contains(*k)))
            .map(|(_, p)| p)
            .collect();
        if ready.is_empty() {
            let mut wake = delayed.values().map(|(until, _)| *until).min().unwrap_or(now + BACKOFF).min(now + BACKOFF);
            if quota_spent {
                wake = wake.min(now + broker.follower_quota.wait(std::time::Instant::now()).max(Duration::from_millis(5)));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        // The leader epoch each partition is fetched under: what comes back is applied only
        // if it is still that (a leadership change while the fetch was out drops it).
        let requested: HashMap<(String, i32), i32> = ready.iter().map(|p| ((p.topic.clone(), p.index), p.leader_epoch())).collect();
        // Every partition followed from this leader now, delayed or not: the fetch is cut
        // short only when that set (or an epoch) changes.
        let followed: HashMap<(String, i32), i32> = partitions.iter().map(|(k, p)| (k.clone(), p.leader_epoch())).collect();
        let request = fetch_request(&broker, local, &ready);
        let fetched = async {
            if conn.is_none() {
                conn = Some(connect(&broker, leader).await?);
            }
            let stream = conn.as_mut().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))?;
            correlation = correlation.wrapping_add(1);
            rate.fetch_sent();
            call::<_, FetchResponse>(stream, CLIENT_ID, ApiKey::Fetch, FETCH_VERSION, &request, correlation, response_cap(&broker)).await
        };
        let timeout = Duration::from_millis(broker.config.replica_fetch_wait_max_ms + broker.config.cluster.request_timeout_ms.max(1000));
        enum Outcome {
            Response(std::io::Result<FetchResponse>),
            Changed,
            Stop,
        }
        let outcome = tokio::select! {
            r = tokio::time::timeout(timeout, fetched) => Outcome::Response(r.unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no fetch response in time")))),
            _ = followed_set_changes(&broker, leader, &followed, &mut images) => Outcome::Changed,
            _ = shutdown.changed() => Outcome::Stop,
        };
        let response = match outcome {
            Outcome::Stop => return,
            // The partitions followed from this leader changed while the fetch waited there (a
            // long-poll of up to replica.fetch.wait.max.ms): start again with the new set at
            // once, so a partition this broker has just come to follow (a leader move) is
            // replicated without waiting for the poll, which the leader's acks=all waits on.
            Outcome::Changed => {
                conn = None;
                continue;
            }
            Outcome::Response(r) => r,
        };
        match response {
            Ok(response) => {
                let applied = apply_response(&broker, leader, &partitions, &requested, &throttled, response).await;
                let until = tokio::time::Instant::now() + backoff;
                for key in applied.failed {
                    if let Some(&epoch) = requested.get(&key) {
                        delayed.insert(key, (until, epoch));
                    }
                }
                if !applied.any_ok {
                    tokio::time::sleep(BACKOFF).await;
                }
            }
            Err(e) => {
                conn = None;
                tracing::debug!(target: "kafka.server.ReplicaFetcherThread", leader, error = %e, "fetch from the leader failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(BACKOFF) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// Resolves once the applied metadata has this broker follow a different set of partitions
/// from `leader` (or at other leader epochs) than `followed`.
async fn followed_set_changes(broker: &Broker, leader: i32, followed: &HashMap<(String, i32), i32>, applied: &mut watch::Receiver<i64>) {
    loop {
        if applied.changed().await.is_err() {
            return std::future::pending().await;
        }
        let now: HashMap<(String, i32), i32> = followed_from(broker, leader).into_iter().map(|(k, p)| (k, p.leader_epoch())).collect();
        if &now != followed {
            return;
        }
    }
}

fn response_cap(broker: &Broker) -> usize {
    // At least one whole batch per partition comes back even above the limits.
    broker.config.replica_fetch_response_max_bytes + broker.config.message_max_bytes + (1 << 20)
}

fn fetch_request(broker: &Broker, local: i32, partitions: &[&Arc<Partition>]) -> FetchRequest {
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for p in partitions {
        topics.entry(p.topic.as_str()).or_default().push(
            FetchPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(p.leader_epoch())
                .with_fetch_offset(p.log_end_offset())
                .with_log_start_offset(p.log_start_offset())
                .with_partition_max_bytes(broker.config.replica_fetch_max_bytes as i32),
        );
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(local))
        .with_max_wait_ms(broker.config.replica_fetch_wait_max_ms as i32)
        .with_min_bytes(1)
        .with_max_bytes(broker.config.replica_fetch_response_max_bytes as i32)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| FetchTopic::default().with_topic(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
                .collect(),
        )
}

/// A connection to `leader`'s inter-broker listener (also the REST proxy's, `rest::client`).
pub(crate) async fn connect(broker: &Broker, leader: i32) -> std::io::Result<TcpStream> {
    let image = broker.image();
    let listener = &broker.config.cluster.inter_broker_listener_name;
    let endpoint = image
        .brokers
        .get(&leader)
        .and_then(|b| b.endpoints.iter().find(|e| &e.name == listener).or(b.endpoints.first()))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("broker {leader} has no {listener} endpoint")))?;
    let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The partitions a truncation round made ready (with the leader epoch they are ready for),
/// and those whose truncation failed here (a storage error), with the epoch, to back off.
type Truncated = (Vec<((String, i32), i32)>, Vec<((String, i32), i32)>);

/// Asks the leader where each partition's latest local epoch ends and truncates there.
async fn truncate_to_leader(
    stream: &mut TcpStream,
    local: i32,
    partitions: &[&Arc<Partition>],
    correlation: i32,
) -> std::io::Result<Truncated> {
    let mut ready = Vec::new();
    let mut failed = Vec::new();
    let mut ask: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    let mut asked: HashMap<(String, i32), (&Arc<Partition>, i32, i32)> = HashMap::new();
    for p in partitions {
        let epoch = p.leader_epoch();
        match p.log().lock().epoch_history().latest_epoch() {
            // An empty log agrees with every leader.
            None => ready.push(((p.topic.clone(), p.index), epoch)),
            Some(ours) => {
                ask.entry(p.topic.as_str())
                    .or_default()
                    .push(OffsetForLeaderPartition::default().with_partition(p.index).with_current_leader_epoch(epoch).with_leader_epoch(ours));
                asked.insert((p.topic.clone(), p.index), (p, epoch, ours));
            }
        }
    }
    if ask.is_empty() {
        return Ok((ready, failed));
    }
    let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(local)).with_topics(
        ask.into_iter()
            .map(|(t, ps)| OffsetForLeaderTopic::default().with_topic(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
            .collect(),
    );
    let response: OffsetForLeaderEpochResponse =
        call(stream, CLIENT_ID, ApiKey::OffsetForLeaderEpoch, OFFSET_FOR_LEADER_EPOCH_VERSION, &request, correlation, 1 << 20).await?;
    let now = now_ms();
    for t in response.topics {
        for r in t.partitions {
            let key = (t.topic.0.to_string(), r.partition);
            let Some((p, epoch, ours)) = asked.get(&key) else { continue };
            if r.error_code != 0 {
                tracing::debug!(target: "kafka.server.ReplicaFetcherThread", partition = %p.name(), error_code = r.error_code, "OffsetForLeaderEpoch refused");
                continue;
            }
            let offset = if r.leader_epoch < 0 || r.end_offset < 0 {
                // The leader has no epoch at or below ours: as Kafka, fall back to the high
                // watermark (what every ISR member had).
                p.high_watermark()
            } else {
                let log = p.log().lock();
                super::leader_epochs::truncation_offset(log.epoch_history(), log.log_end_offset(), (r.leader_epoch, r.end_offset))
            };
            let leo = p.log_end_offset();
            if offset < leo {
                if let Err(e) = p.truncate_as_follower(offset, *epoch, now).await {
                    tracing::warn!(target: "kafka.server.ReplicaFetcherThread", partition = %p.name(), error = %e, "could not truncate before following the new leader");
                    failed.push((key, *epoch));
                    continue;
                }
            }
            // KIP-279: when the leader answered with an older epoch than ours, the logs may
            // still differ before the point just cut: ask again about the (now older) latest
            // epoch, until the leader knows it (or there was nothing to cut).
            let complete = r.leader_epoch < 0 || r.end_offset < 0 || r.leader_epoch == *ours || offset >= leo;
            tracing::info!(target: "state.change.logger", partition = %p.name(), leader_epoch = epoch, asked_epoch = ours, leader_answer_epoch = r.leader_epoch,
                leader_answer_end_offset = r.end_offset, log_end_offset = leo, truncated_to = offset.min(leo), complete, "following the leader");
            if complete {
                ready.push((key, *epoch));
            }
        }
    }
    Ok((ready, failed))
}

/// Sends one request and reads its response (at most `cap` bytes), as `client_id`.
pub(crate) async fn call<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    client_id: &'static str,
    api_key: ApiKey,
    version: i16,
    request: &Req,
    correlation: i32,
    cap: usize,
) -> std::io::Result<Resp> {
    let invalid = |e: anyhow::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{e:#}"));
    let buf = crate::protocol::encode_request(api_key, version, correlation, client_id, request).map_err(invalid)?;
    stream.write_all(&buf).await?;

    let len = stream.read_i32().await?;
    if len < 0 || len as usize > cap {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{api_key:?} response of {len} bytes (limit {cap})")));
    }
    let mut frame = BytesMut::new();
    let mut remaining = len as usize;
    // Grow with the bytes that arrive, not with what the prefix claims.
    while remaining > 0 {
        let step = remaining.min(1 << 20);
        let start = frame.len();
        frame.resize(start + step, 0);
        stream.read_exact(&mut frame[start..]).await?;
        remaining -= step;
    }
    let (response, trailing) = crate::protocol::decode_response(frame.freeze(), api_key, version, correlation).map_err(invalid)?;
    if trailing > 0 {
        tracing::debug!(target: "kafka.server.ReplicaFetcherThread", trailing, "{api_key:?} response has trailing bytes");
    }
    Ok(response)
}

/// What applying a fetch response came to.
#[derive(Default)]
struct Applied {
    /// Some partition's records were appended (or it had none): false when the whole
    /// response was an error, and the caller backs off.
    any_ok: bool,
    /// Partitions that failed here (a storage error) or at the leader's storage: left out of
    /// the next fetches for `replica.fetch.backoff.ms`. Errors that new metadata resolves (not
    /// the leader, an unknown epoch) are not delayed: the partition is fetched again at once,
    /// under the new leadership, as before.
    failed: Vec<(String, i32)>,
}

/// Appends what the leader sent.
async fn apply_response(
    broker: &Broker,
    leader: i32,
    partitions: &BTreeMap<(String, i32), Arc<Partition>>,
    requested: &HashMap<(String, i32), i32>,
    throttled: &std::collections::HashSet<(String, i32)>,
    response: FetchResponse,
) -> Applied {
    let mut applied = Applied::default();
    if response.error_code != 0 {
        tracing::debug!(target: "kafka.server.ReplicaFetcherThread", leader, error_code = response.error_code, "fetch refused");
        return applied;
    }
    let mut any_ok = false;
    for topic in response.responses {
        for pd in topic.partitions {
            let key = (topic.topic.0.to_string(), pd.partition_index);
            let (Some(p), Some(&epoch)) = (partitions.get(&key), requested.get(&key)) else { continue };
            match pd.error_code {
                0 => {
                    any_ok = true;
                    let records = pd.records.unwrap_or_default();
                    let bytes = records.len() as u64;
                    if bytes > 0 && throttled.contains(&key) {
                        broker.follower_quota.record(bytes, std::time::Instant::now());
                    }
                    if bytes > 0 && broker.metrics.enabled {
                        let stats = broker.metrics.topic(&p.topic);
                        crate::metrics::TopicStats::add(&stats.replication_bytes_in, bytes);
                        if broker.image().partition(&p.topic, p.index).is_some_and(|i| i.adding_replicas.contains(&broker.node_id())) {
                            crate::metrics::TopicStats::add(&stats.reassignment_bytes_in, bytes);
                        }
                    }
                    match p.append_as_follower(records, pd.high_watermark, leader, epoch, now_ms()).await {
                        // DeleteRecords at the leader moves this replica's start too.
                        Ok(()) => {
                            if let Err(e) = p.follow_leader_log_start(pd.log_start_offset, now_ms()).await {
                                tracing::warn!(target: "kafka.server.ReplicaFetcherThread", partition = %p.name(), leader, leader_log_start = pd.log_start_offset, error = %e,
                                    "could not move the log start offset to the leader's; retrying after the backoff");
                                applied.failed.push(key);
                            }
                        }
                        // The leadership changed while the fetch was out: nothing to back off from.
                        Err(crate::cluster::partition::PartitionError::NotLeader(_)) => {}
                        Err(e) => {
                            tracing::warn!(target: "kafka.server.ReplicaFetcherThread", partition = %p.name(), leader, error = %e,
                                backoff_ms = broker.config.replica_fetch_backoff_ms, "could not append fetched records; retrying after the backoff");
                            applied.failed.push(key);
                        }
                    }
                }
                error_code::OFFSET_OUT_OF_RANGE => {
                    // Ahead of the leader (a tail it never had): truncate to what the leader
                    // has made visible. Behind the leader's log start: start over there.
                    let leo = p.log_end_offset();
                    if pd.high_watermark >= 0 && leo > pd.high_watermark {
                        let target = p.high_watermark().min(pd.high_watermark);
                        tracing::warn!(target: "kafka.server.ReplicaFetcherThread", partition = %p.name(), leader, log_end_offset = leo, truncate_to = target, "this replica is ahead of the leader; truncating");
                        if let Err(e) = p.truncate_as_follower(target, epoch, now_ms()).await {
                            tracing::warn!(target: "kafka.server.ReplicaFetcherThread", partition = %p.name(), error = %e, "could not truncate");
                            applied.failed.push(key);
                        }
                    } else if pd.log_start_offset > leo {
                        // Retention at the leader deleted what this replica would fetch next:
                        // start over at the leader's log start (Kafka's truncateFullyAndStartAt).
                        tracing::warn!(target: "kafka.server.ReplicaFetcherThread", partition = %p.name(), leader, log_end_offset = leo, leader_log_start = pd.log_start_offset,
                            "this replica ends before the leader's log start; emptying it to fetch from there");
                        if let Err(e) = p.restart_as_follower_at(pd.log_start_offset, epoch, now_ms()).await {
                            tracing::warn!(target: "kafka.server.ReplicaFetcherThread", partition = %p.name(), error = %e, "could not restart the log at the leader's log start");
                            applied.failed.push(key);
                        }
                    } else {
                        tracing::warn!(target: "kafka.server.ReplicaFetcherThread", partition = %p.name(), leader, log_end_offset = leo, leader_log_start = pd.log_start_offset,
                            "fetch offset out of range at the leader although within its log; retrying");
                        applied.failed.push(key);
                    }
                }
                error_code::KAFKA_STORAGE_ERROR => {
                    tracing::debug!(target: "kafka.server.ReplicaFetcherThread", partition = %p.name(), leader, "the leader cannot read this partition; retrying after the backoff");
                    applied.failed.push(key);
                }
                code => {
                    tracing::debug!(target: "kafka.server.ReplicaFetcherThread", partition = %p.name(), leader, error_code = code, "partition fetch refused; waiting for new metadata");
                }
            }
        }
    }
    applied.any_ok = any_ok;
    applied
}
