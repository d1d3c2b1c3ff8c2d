//! The partitions this broker hosts, created and removed as the metadata image changes.
//! (Long-polling fetches wait on each partition's own watchers: see `delayed_fetch`.)
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::partition::{Partition, PartitionError};
use super::partition::PartitionState;
use super::topic_config::{log_config, min_insync_replicas};
use crate::config::BrokerConfig;
use crate::controller::MetadataImage;
use super::partition_metadata;
use crate::log::{LogConfig, LogError, LogManager};

pub use super::partition::Appended as AppendResult;

/// Data read for one fetch partition.
pub struct FetchedData {
    pub records: bytes::Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

type Key = (String, i32);

/// A change to this broker's logs that the committed metadata asks for and that could not be
/// made here (creating, opening or deleting a partition's log). The metadata stays as
/// committed; the broker says so (to the client that asked, in its log and metrics) instead of
/// pretending the change was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFailure {
    pub topic: String,
    /// Nil when not known (a log found at start-up that could not be read).
    pub topic_id: uuid::Uuid,
    pub partition: i32,
    /// "create", "open" or "delete".
    pub action: &'static str,
    pub error: String,
    /// The partition's directory when one is left on disk.
    pub dir: Option<std::path::PathBuf>,
}

impl std::fmt::Display for LocalFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not {} the log of {}-{}: {}", self.action, self.topic, self.partition, self.error)
    }
}

/// Deletions that failed, kept for the DeleteTopics that caused them (the newest ones only).
const FAILED_DELETIONS_KEPT: usize = 1024;

pub struct ReplicaManager {
    logs: Arc<Mutex<LogManager>>,
    /// Runs AlterReplicaLogDirs moves.
    mover: super::log_dir_mover::LogDirMover,
    partitions: RwLock<HashMap<Key, Arc<Partition>>>,
    /// The metadata offset of the newest image applied: an older one (two applies racing)
    /// is skipped, or it would delete the logs of topics created since.
    applied_offset: std::sync::atomic::AtomicI64,
    /// ISR changes committed for partitions this broker leads (Kafka's IsrShrinksPerSec and
    /// IsrExpandsPerSec count on the leader).
    pub isr_shrinks: std::sync::atomic::AtomicU64,
    pub isr_expands: std::sync::atomic::AtomicU64,
    /// The metadata offset of the last image applied, for whoever acts on the partitions'
    /// new state (the replica fetchers start following a new leader at once).
    applied: tokio::sync::watch::Sender<i64>,
    /// Replicas this broker should host but could not create or open: not served (clients get
    /// KAFKA_STORAGE_ERROR), reported to the controller as offline, and not tried again until
    /// a restart (as a Kafka replica on a failed log directory). Dropped once the metadata no
    /// longer assigns them here.
    offline_replicas: Mutex<HashMap<Key, LocalFailure>>,
    /// Deletions that failed (the directory stays on disk until a restart or a topic of the
    /// same name removes it), newest last.
    failed_deletions: Mutex<std::collections::VecDeque<LocalFailure>>,
}

impl ReplicaManager {
    /// Opens every log found in the data directories (recovering torn tails).
    pub fn open(config: &BrokerConfig) -> Result<(Self, Vec<(String, i32)>), PartitionError> {
        let default = log_config(config, &Default::default());
        let (logs, loaded) = LogManager::open(&config.log_dirs, default)?;
        let mut partitions = HashMap::new();
        let mut found = Vec::new();
        // Each partition's high watermark resumes from its directory's checkpoint (0 when
        // none was written), never from its log end: see hw_checkpoint.
        let mut checkpoints: HashMap<std::path::PathBuf, HashMap<(String, i32), i64>> = HashMap::new();
        for dir in &config.log_dirs {
            let read = super::hw_checkpoint::read(dir).unwrap_or_else(|e| {
                tracing::warn!(target: "kafka.server.ReplicaManager", error = %e,
                    "cannot read the high-watermark checkpoint; high watermarks start at 0 and move up as the leaders say");
                HashMap::new()
            });
            checkpoints.insert(dir.clone(), read);
        }
        let mut offline_replicas = HashMap::new();
        for u in logs.take_unopened() {
            let failure = LocalFailure { topic: u.topic.clone(), topic_id: uuid::Uuid::nil(), partition: u.partition, action: "open", error: u.error, dir: Some(u.dir) };
            offline_replicas.insert((u.topic, u.partition), failure);
        }
        for (topic, index, log) in loaded {
            // The topic id from partition.metadata (nil for a log from before ids were
            // recorded); apply_image deletes a log whose topic is gone or has another id, and
            // fills in leader and epoch.
            let (dir, empty) = {
                let l = log.lock();
                (l.dir().to_path_buf(), l.log_end_offset() == 0)
            };
            let topic_id = match partition_metadata::read(&dir) {
                Ok(id) => id.unwrap_or_else(uuid::Uuid::nil),
                // A log with no records has nothing to mistake for another topic's: its id is
                // written again once the metadata is applied.
                Err(e) if empty => {
                    tracing::warn!(target: "kafka.log.LogManager", dir = %dir.display(), error = %e, "unreadable partition.metadata in an empty log; it is written again");
                    uuid::Uuid::nil()
                }
                Err(e) => {
                    // Whose records these are cannot be told: not served, left for an operator.
                    tracing::error!(target: "kafka.log.LogManager", dir = %dir.display(), error = %e, "unreadable partition.metadata; the replica is offline");
                    logs.release(&topic, index);
                    let error = LogError::io("reading", &dir.join(partition_metadata::FILE))(e).to_string();
                    offline_replicas.insert((topic.clone(), index), LocalFailure { topic, topic_id: uuid::Uuid::nil(), partition: index, action: "open", error, dir: Some(dir) });
                    continue;
                }
            };
            found.push((topic.clone(), index));
            let hw = dir.parent().and_then(|d| checkpoints.get(d)).and_then(|c| c.get(&(topic.clone(), index))).copied().unwrap_or(0);
            let partition = Partition::with_leader(&topic, topic_id, index, 0, -1, config.node_id, log);
            partition.restore_high_watermark(hw);
            partitions.insert((topic.clone(), index), Arc::new(partition));
        }
        let manager = Self {
            logs: Arc::new(Mutex::new(logs)),
            mover: Default::default(),
            partitions: RwLock::new(partitions),
            applied_offset: std::sync::atomic::AtomicI64::new(-1),
            isr_shrinks: Default::default(),
            isr_expands: Default::default(),
            applied: tokio::sync::watch::channel(-1).0,
            offline_replicas: Mutex::new(offline_replicas),
            failed_deletions: Default::default(),
        };
        Ok((manager, found))
    }

    /// Changes after every image applied to the partitions.
    pub fn subscribe_applied(&self) -> tokio::sync::watch::Receiver<i64> {
        self.applied.subscribe()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.partitions.read().get(&(topic.to_string(), index)).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Creates the logs of partitions the image assigns to this broker, deletes those of
    /// topics it no longer has and of partitions reassigned to other brokers, and applies
    /// topic configs, ids, leaders and epochs to the ones that stay.
    ///
    /// One partition's failure (no file descriptors left, a full or read-only disk) stops
    /// neither the others' changes nor this broker: the failed replica is offline here (see
    /// `offline_replicas`) and a failed deletion is remembered for the request that caused it.
    /// Returns the failures this call recorded, for the caller to report.
    ///
    /// `image` must be caught up at least to this broker's registration: an empty image would
    /// delete every log.
    pub fn apply_image(&self, image: &MetadataImage, config: &BrokerConfig) -> Vec<LocalFailure> {
        let mut doomed = Vec::new();
        let failures = self.apply_image_locked(image, config, &mut doomed);
        // Freeing a large replica's blocks takes seconds: not while requests wait for the
        // partitions' lock, nor before the caller goes on (also when applying failed part-way).
        if !doomed.is_empty() {
            let spawned = std::thread::Builder::new()
                .name("log-delete".into())
                .spawn(move || crate::log::log_manager::remove_deleted(doomed));
            if let Err(e) = spawned {
                tracing::warn!(target: "kafka.log.LogManager", error = %e, "cannot start a thread to remove deleted replicas; the next start removes them");
            }
        }
        for f in &failures {
            tracing::error!(target: "state.change.logger", topic = %f.topic, partition = f.partition, action = f.action, error = %f.error,
                "could not apply a committed metadata change to this broker's log; the metadata stays as committed");
        }
        failures
    }

    fn apply_image_locked(&self, image: &MetadataImage, config: &BrokerConfig, doomed: &mut Vec<std::path::PathBuf>) -> Vec<LocalFailure> {
        let local = config.node_id;
        let mut failures = Vec::new();
        let mut partitions = self.partitions.write();
        let applied = self.applied_offset.load(std::sync::atomic::Ordering::Acquire);
        if image.last_offset < applied {
            return failures;
        }
        self.applied_offset.store(image.last_offset, std::sync::atomic::Ordering::Release);
        let logs = self.logs.lock();
        // An offline replica the metadata no longer puts here (its topic deleted or re-created,
        // the replica moved away) is forgotten: a new topic of that name starts afresh.
        self.offline_replicas.lock().retain(|(t, i), f| {
            image.topic(t).is_some_and(|topic| (f.topic_id.is_nil() || f.topic_id == topic.id) && topic.partitions.get(*i as usize).is_some_and(|p| p.replicas.contains(&local)))
        });
        let mut delete = |key: &Key, topic_id: uuid::Uuid, failures: &mut Vec<LocalFailure>| match logs.delete_partition(&key.0, key.1) {
            Ok(dir) => doomed.push(dir),
            // The partition is no longer served either way; its directory stays on disk until
            // the next start or a new topic of that name sets it aside.
            Err(e) => {
                let f = LocalFailure { topic: key.0.clone(), topic_id, partition: key.1, action: "delete", error: e.to_string(), dir: None };
                let mut kept = self.failed_deletions.lock();
                if kept.len() == FAILED_DELETIONS_KEPT {
                    kept.pop_front();
                }
                kept.push_back(f.clone());
                failures.push(f);
            }
        };
        // Remove what is gone (deleted topic, or a topic re-created with a new id).
        let gone: Vec<Key> = partitions
            .iter()
            .filter(|((t, i), p)| match image.topic(t) {
                None => true,
                Some(topic) => *i as usize >= topic.partitions.len() || (!p.topic_id.is_nil() && p.topic_id != topic.id),
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some(p) = partitions.remove(&key) {
                tracing::info!(target: "state.change.logger", partition = %p.name(), "deleting the log of a partition no longer in the metadata");
                delete(&key, p.topic_id, &mut failures);
            }
        }
        let elsewhere: Vec<Key> = partitions
            .keys()
            .filter(|(t, i)| image.partition(t, *i).is_some_and(|p| !p.replicas.contains(&local)))
            .cloned()
            .collect();
        let now_ms = crate::api::now_ms();
        let ineligible = image.isr_ineligible_brokers();
        fn state<'a>(p: &'a crate::controller::PartitionImage, ineligible: &'a [i32]) -> PartitionState<'a> {
            PartitionState { leader: p.leader, leader_epoch: p.leader_epoch, partition_epoch: p.partition_epoch, replicas: &p.replicas, isr: &p.isr, isr_ineligible: ineligible }
        }
        // No longer a replica (a reassignment moved it away): the replica is deleted, as
        // Kafka's StopReplica with delete does; the target replicas were all in sync first.
        for key in elsewhere {
            if let Some(p) = partitions.remove(&key) {
                // The new leadership first: acks=all produces waiting here answer NOT_LEADER
                // now rather than time out.
                if let Some(pimage) = image.partition(&key.0, key.1) {
                    p.apply_state(&state(pimage, &ineligible), now_ms);
                }
                tracing::info!(target: "state.change.logger", partition = %p.name(), "deleting the replica of a partition reassigned to other brokers");
                delete(&key, p.topic_id, &mut failures);
            }
        }
        for topic in image.topics.values() {
            let cfg: LogConfig = log_config(config, &topic.configs);
            let min_insync = min_insync_replicas(config, &topic.configs);
            for (index, pimage) in topic.partitions.iter().enumerate() {
                let index = index as i32;
                if !pimage.replicas.contains(&local) {
                    continue;
                }
                let key = (topic.name.clone(), index);
                if logs.is_offline(&topic.name, index) || self.offline_replicas.lock().contains_key(&key) {
                    // On a failed disk, or its log could not be created or opened: neither
                    // served nor tried again until a restart.
                    continue;
                }
                let fresh = |log| {
                    let p = Partition::with_leader(&topic.name, topic.id, index, pimage.leader_epoch, pimage.leader, local, log);
                    p.set_min_insync_replicas(min_insync);
                    p.apply_state(&state(pimage, &ineligible), now_ms);
                    p
                };
                let mut offline = |action: &'static str, error: String, dir: Option<std::path::PathBuf>| {
                    let f = LocalFailure { topic: topic.name.clone(), topic_id: topic.id, partition: index, action, error, dir };
                    self.offline_replicas.lock().insert(key.clone(), f.clone());
                    failures.push(f);
                };
                match partitions.get(&key) {
                    Some(p) if p.topic_id == topic.id => {
                        p.set_config(cfg.clone());
                        p.set_min_insync_replicas(min_insync);
                        let before = p.isr();
                        let leadership_changed = p.apply_state(&state(pimage, &ineligible), now_ms);
                        let after = p.isr();
                        if !leadership_changed && !before.is_empty() && !after.is_empty() {
                            use std::sync::atomic::Ordering::Relaxed;
                            match after.len().cmp(&before.len()) {
                                std::cmp::Ordering::Less => drop(self.isr_shrinks.fetch_add(1, Relaxed)),
                                std::cmp::Ordering::Greater => drop(self.isr_expands.fetch_add(1, Relaxed)),
                                std::cmp::Ordering::Equal => {}
                            }
                        }
                        if leadership_changed {
                            tracing::info!(target: "state.change.logger", partition = %p.name(), leader = pimage.leader, leader_epoch = pimage.leader_epoch,
                                "partition leadership changed");
                        }
                    }
                    Some(p) => {
                        // Loaded from disk at start-up with no recorded id (an id that differs
                        // was deleted above): record it, attach leader and epoch.
                        let log = p.log().clone();
                        let dir = log.lock().dir().to_path_buf();
                        if let Err(e) = partition_metadata::write(&dir, topic.id) {
                            partitions.remove(&key);
                            logs.release(&topic.name, index);
                            offline("create", LogError::io("writing", &dir.join(partition_metadata::FILE))(e).to_string(), Some(dir));
                            continue;
                        }
                        log.lock().set_config(cfg.clone());
                        partitions.insert(key, Arc::new(fresh(log)));
                    }
                    None => {
                        // partition.metadata is written inside the new directory before the log
                        // opens, and a failure removes the directory: no partial partition.
                        let id = topic.id;
                        if logs.get(&topic.name, index).is_some() {
                            // A log still open from a topic deleted while this broker was down
                            // (not served): the new topic starts empty.
                            tracing::warn!(target: "state.change.logger", topic = %topic.name, partition = index,
                                "deleting a leftover log of an earlier topic with the same name");
                            if let Ok(dir) = logs.delete_partition(&topic.name, index) {
                                doomed.push(dir);
                            }
                        }
                        match logs.create_partition_with(&topic.name, index, cfg.clone(), |dir| partition_metadata::write(dir, id)) {
                            Ok((log, leftover)) => {
                                // A directory left by a deletion or creation that failed, or by a
                                // topic deleted while this broker was down: never the new topic's.
                                doomed.extend(leftover);
                                tracing::info!(target: "state.change.logger", topic = %topic.name, partition = index, leader = pimage.leader, "created log");
                                partitions.insert(key, Arc::new(fresh(log)));
                            }
                            Err(e) => offline("create", e.to_string(), None),
                        }
                    }
                }
            }
        }
        drop(logs);
        drop(partitions);
        self.applied.send_replace(image.last_offset);
        failures
    }

    /// Why this broker does not host a replica the metadata assigns to it, if its log could
    /// not be created or opened here.
    pub fn offline_replica(&self, topic: &str, index: i32) -> Option<LocalFailure> {
        self.offline_replicas.lock().get(&(topic.to_string(), index)).cloned()
    }

    /// Every replica whose log could not be created or opened here.
    pub fn offline_replicas(&self) -> Vec<LocalFailure> {
        self.offline_replicas.lock().values().cloned().collect()
    }

    /// The failed deletions of a topic's partitions (by topic id).
    pub fn failed_deletions(&self, topic_id: uuid::Uuid) -> Vec<LocalFailure> {
        self.failed_deletions.lock().iter().filter(|f| f.topic_id == topic_id).cloned().collect()
    }

    /// Start-up, once the metadata is known: the logs found on disk that it no longer has
    /// (topic deleted, or re-created under another id, while this broker was down; a creation
    /// or deletion cut short) are set aside (`log_manager::set_aside_stray`): removed when
    /// empty, else renamed `-stray` and kept. They are not served, and they no longer hold the
    /// name a new topic needs. Blocking.
    pub fn set_aside_strays(&self, image: &MetadataImage) {
        let stray = |t: &str, i: i32, id: uuid::Uuid| {
            image.topic(t).is_none_or(|topic| i as usize >= topic.partitions.len() || (!id.is_nil() && id != topic.id))
        };
        let mut dirs = Vec::new();
        {
            let mut partitions = self.partitions.write();
            let logs = self.logs.lock();
            let keys: Vec<Key> = partitions.iter().filter(|((t, i), p)| stray(t, *i, p.topic_id)).map(|(k, _)| k.clone()).collect();
            for key in keys {
                if let Some(p) = partitions.remove(&key) {
                    logs.release(&key.0, key.1);
                    dirs.push(p.log().lock().dir().to_path_buf());
                }
            }
            self.offline_replicas.lock().retain(|(t, i), f| {
                let gone = stray(t, *i, f.topic_id);
                if gone {
                    dirs.extend(f.dir.clone());
                }
                !gone
            });
        }
        for dir in dirs {
            match crate::log::log_manager::set_aside_stray(&dir) {
                Ok(crate::log::log_manager::StrayOutcome::Removed) => {
                    tracing::info!(target: "kafka.log.LogManager", dir = %dir.display(), "removed the empty log of a partition the metadata no longer has")
                }
                Ok(crate::log::log_manager::StrayOutcome::SetAside(to)) => tracing::warn!(target: "kafka.log.LogManager", dir = %dir.display(), kept_as = %to.display(),
                    "the log of a partition the metadata no longer has holds records: renamed aside and kept, never served (remove it once not needed)"),
                Err(e) => tracing::warn!(target: "kafka.log.LogManager", dir = %dir.display(), error = %e,
                    "could not set aside the log of a partition the metadata no longer has; it is not served, and a new topic of that name sets it aside"),
            }
        }
    }

    /// Probes every online log directory (`log_manager::probe_dirs`); the partitions of a
    /// directory that failed stop being served here. Returns (dir, why, partitions) for each
    /// directory newly offline. Blocking: file I/O.
    pub fn probe_log_dirs(&self) -> Vec<(std::path::PathBuf, String, Vec<(String, i32)>)> {
        // The disk I/O runs with no lock held: a hung disk must not stall requests here.
        let online = self.logs.lock().online_dirs();
        let results = crate::log::log_manager::probe_dirs(online);
        let failed = self.logs.lock().note_probes(results);
        if !failed.is_empty() {
            let mut partitions = self.partitions.write();
            for (_, _, keys) in &failed {
                for k in keys {
                    partitions.remove(k);
                }
            }
        }
        failed
    }

    /// AlterReplicaLogDirs for one replica: starts moving its log to `dir` (one of
    /// `log.dirs`, absolute). Answers Kafka's error code: NONE once the move is under way (or
    /// nothing is to move), LOG_DIR_NOT_FOUND, KAFKA_STORAGE_ERROR (a directory offline, or the
    /// copy could not be created), REPLICA_NOT_AVAILABLE (not hosted here yet: it will be
    /// created in `dir`), UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION (the copy's
    /// directory name would be too long).
    pub fn alter_log_dir(&self, image: &MetadataImage, topic: &str, index: i32, dir: &std::path::Path) -> i16 {
        use crate::error_code::*;
        use crate::log::log_manager::{MoveRefused, MoveStart};
        let exists = image.partition(topic, index).is_some();
        let started = self.logs.lock().begin_move(topic, index, dir);
        match started {
            Ok(MoveStart::AlreadyThere) | Ok(MoveStart::AlreadyMoving) => NONE,
            Ok(MoveStart::Started(_)) => {
                tracing::info!(target: "state.change.logger", topic, partition = index, dir = %dir.display(), "moving the replica's log to another log directory");
                self.mover.submit(topic, index, &self.logs);
                NONE
            }
            Err(MoveRefused::UnknownDir) => LOG_DIR_NOT_FOUND,
            Err(MoveRefused::Offline) => KAFKA_STORAGE_ERROR,
            Err(MoveRefused::NameTooLong) => INVALID_TOPIC_EXCEPTION,
            Err(MoveRefused::NotHosted) if exists => REPLICA_NOT_AVAILABLE,
            Err(MoveRefused::NotHosted) => {
                self.logs.lock().forget_preferred(topic, index);
                UNKNOWN_TOPIC_OR_PARTITION
            }
        }
    }

    /// Whether a log-directory move of the partition is under way (the cleaner leaves it alone
    /// meanwhile, as Kafka pauses cleaning of a partition with a future replica).
    pub fn is_moving(&self, topic: &str, index: i32) -> bool {
        self.logs.lock().move_of(topic, index).is_some()
    }

    /// Log-directory moves in progress: (topic, partition, target dir, messages the copy is
    /// behind the log's end, the copy's bytes).
    pub fn log_dir_moves(&self) -> Vec<(String, i32, std::path::PathBuf, i64, u64)> {
        let moves = self.logs.lock().moves();
        moves
            .into_iter()
            .map(|(t, p, m)| {
                let (copied_end, bytes) = m.progress();
                let lag = self.partition(&t, p).map_or(0, |part| (part.log_end_offset() - copied_end).max(0));
                (t, p, m.target_dir.clone(), lag, bytes)
            })
            .collect()
    }

    /// Offline log directories and why.
    /// The log directories not taken offline.
    pub fn online_log_dirs(&self) -> Vec<std::path::PathBuf> {
        self.logs.lock().online_dirs().into_iter().map(|(_, d)| d).collect()
    }

    pub fn offline_log_dirs(&self) -> Vec<(std::path::PathBuf, String)> {
        self.logs.lock().offline_dirs()
    }

    /// Whether every log directory is offline.
    pub fn all_log_dirs_offline(&self) -> bool {
        self.logs.lock().all_offline()
    }

    /// Whether the partition was on a log directory now offline.
    pub fn is_offline(&self, topic: &str, index: i32) -> bool {
        self.logs.lock().is_offline(topic, index) || self.offline_replicas.lock().contains_key(&(topic.to_string(), index))
    }

    /// Writes every log directory's high-watermark checkpoint, and the leader-epoch
    /// checkpoint of every log whose epoch history changed since it was last written
    /// (blocking: file I/O, done without the logs' locks).
    pub fn checkpoint_high_watermarks(&self, dirs: &[std::path::PathBuf]) {
        // An offline directory gets no checkpoint: writing one without its partitions would
        // reset their high watermarks if it came back.
        let offline: Vec<std::path::PathBuf> = self.offline_log_dirs().into_iter().map(|(d, _)| d).collect();
        let dirs: Vec<std::path::PathBuf> = dirs.iter().filter(|d| !offline.contains(d)).cloned().collect();
        let dirs = dirs.as_slice();
        let mut by_dir: HashMap<&std::path::Path, Vec<(String, i32, i64)>> = dirs.iter().map(|d| (d.as_path(), Vec::new())).collect();
        for p in self.all() {
            let (dir, epochs) = {
                let log = p.log().lock();
                (log.dir().to_path_buf(), log.epoch_checkpoint_due())
            };
            // Written without the lock; a truncation meanwhile writes its own history, which
            // this write may then overwrite: so the history is compared again under the lock
            // and written once more if it moved (a few rounds at most: epochs change rarely).
            let mut epochs = epochs;
            for _ in 0..3 {
                let Some(entries) = epochs.take() else { break };
                if let Err(e) = crate::log::partition_log::write_epoch_checkpoint(&dir, &entries) {
                    // The partition may have been deleted meanwhile; its log says so next time.
                    tracing::warn!(target: "kafka.server.ReplicaManager", partition = %p.name(), error = %e, "cannot write the leader-epoch checkpoint");
                    break;
                }
                let mut log = p.log().lock();
                if log.epoch_history().entries() == entries.as_slice() {
                    log.epoch_checkpoint_written(entries);
                } else {
                    epochs = log.epoch_checkpoint_due();
                }
            }
            if let Some(entries) = dir.parent().and_then(|d| by_dir.get_mut(d)) {
                entries.push((p.topic.clone(), p.index, p.high_watermark()));
            }
        }
        for (dir, mut entries) in by_dir {
            entries.sort();
            if let Err(e) = super::hw_checkpoint::write(dir, &entries) {
                tracing::error!(target: "kafka.server.ReplicaManager", dir = %dir.display(), error = %e, "cannot write the high-watermark checkpoint");
            }
        }
    }

    /// Flushes and closes every log (graceful shutdown).
    pub fn close_all(&self) {
        for p in self.all() {
            if let Err(e) = p.log().lock().close() {
                tracing::error!(target: "kafka.server.ReplicaManager", partition = %p.name(), error = %e, "could not close log cleanly; it will be recovered at next start");
            }
        }
    }
}

impl ReplicaManager {
    /// Stops hosting a partition without touching its files.
    pub fn forget(&self, topic: &str, index: i32) {
        self.partitions.write().remove(&(topic.to_string(), index));
    }
}

#[cfg(test)]
#[path = "replica_manager_tests.rs"]
mod tests;
