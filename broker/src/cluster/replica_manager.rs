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
        for (topic, index, log) in loaded {
            found.push((topic.clone(), index));
            // The topic id from partition.metadata (nil for a log from before ids were
            // recorded); apply_image deletes a log whose topic is gone or has another id, and
            // fills in leader and epoch.
            let dir = log.lock().dir().to_path_buf();
            let topic_id = partition_metadata::read(&dir).map_err(LogError::io("reading", &dir.join(partition_metadata::FILE)))?;
            let topic_id = topic_id.unwrap_or_else(uuid::Uuid::nil);
            let hw = dir.parent().and_then(|d| checkpoints.get(d)).and_then(|c| c.get(&(topic.clone(), index))).copied().unwrap_or(0);
            let partition = Partition::with_leader(&topic, topic_id, index, 0, -1, config.node_id, log);
            partition.restore_high_watermark(hw);
            partitions.insert((topic.clone(), index), Arc::new(partition));
        }
        Ok((Self { logs: Arc::new(Mutex::new(logs)), mover: Default::default(), partitions: RwLock::new(partitions), applied_offset: std::sync::atomic::AtomicI64::new(-1), isr_shrinks: Default::default(), isr_expands: Default::default(), applied: tokio::sync::watch::channel(-1).0 }, found))
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
    /// `image` must be caught up at least to this broker's registration: an empty image would
    /// delete every log.
    pub fn apply_image(&self, image: &MetadataImage, config: &BrokerConfig) -> Result<(), PartitionError> {
        let mut doomed = Vec::new();
        let applied = self.apply_image_locked(image, config, &mut doomed);
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
        applied
    }

    fn apply_image_locked(&self, image: &MetadataImage, config: &BrokerConfig, doomed: &mut Vec<std::path::PathBuf>) -> Result<(), PartitionError> {
        let local = config.node_id;
        let mut partitions = self.partitions.write();
        let applied = self.applied_offset.load(std::sync::atomic::Ordering::Acquire);
        if image.last_offset < applied {
            return Ok(());
        }
        self.applied_offset.store(image.last_offset, std::sync::atomic::Ordering::Release);
        let logs = self.logs.lock();
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
                doomed.push(logs.delete_partition(&key.0, key.1)?);
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
                match logs.delete_partition(&key.0, key.1) {
                    Ok(dir) => doomed.push(dir),
                    // The other partitions' changes still apply; the files stay for an operator.
                    Err(e) => tracing::error!(target: "state.change.logger", partition = %p.name(), error = %e, "could not delete the replica's files"),
                }
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
                if logs.is_offline(&topic.name, index) {
                    // On a failed disk: neither served nor re-created until a restart.
                    continue;
                }
                let fresh = |log| {
                    let p = Partition::with_leader(&topic.name, topic.id, index, pimage.leader_epoch, pimage.leader, local, log);
                    p.set_min_insync_replicas(min_insync);
                    p.apply_state(&state(pimage, &ineligible), now_ms);
                    p
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
                        partition_metadata::write(&dir, topic.id).map_err(LogError::io("writing", &dir.join(partition_metadata::FILE)))?;
                        log.lock().set_config(cfg.clone());
                        partitions.insert(key, Arc::new(fresh(log)));
                    }
                    None => {
                        let log = match logs.create_partition(&topic.name, index, cfg.clone()) {
                            Err(crate::log::LogError::PartitionExists { .. }) => {
                                // A log left on disk by a topic deleted while this broker was
                                // down (it was not served): the new topic starts empty.
                                tracing::warn!(target: "state.change.logger", topic = %topic.name, partition = index,
                                    "deleting a leftover log of an earlier topic with the same name");
                                doomed.push(logs.delete_partition(&topic.name, index)?);
                                logs.create_partition(&topic.name, index, cfg.clone())?
                            }
                            other => other?,
                        };
                        let dir = log.lock().dir().to_path_buf();
                        partition_metadata::write(&dir, topic.id).map_err(LogError::io("writing", &dir.join(partition_metadata::FILE)))?;
                        tracing::info!(target: "state.change.logger", topic = %topic.name, partition = index, leader = pimage.leader, "created log");
                        partitions.insert(key, Arc::new(fresh(log)));
                    }
                }
            }
        }
        drop(logs);
        drop(partitions);
        self.applied.send_replace(image.last_offset);
        Ok(())
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
    pub fn offline_log_dirs(&self) -> Vec<(std::path::PathBuf, String)> {
        self.logs.lock().offline_dirs()
    }

    /// Whether every log directory is offline.
    pub fn all_log_dirs_offline(&self) -> bool {
        self.logs.lock().all_offline()
    }

    /// Whether the partition was on a log directory now offline.
    pub fn is_offline(&self, topic: &str, index: i32) -> bool {
        self.logs.lock().is_offline(topic, index)
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
mod tests {
    use super::*;
    use crate::controller::{PartitionImage, TopicImage};
    use crate::log::test_util::{encode_batch, BatchSpec};

    fn config(dir: &std::path::Path) -> BrokerConfig {
        let raw = [("log.dirs".to_string(), (dir.display().to_string(), crate::config::Origin::Flag))].into_iter().collect();
        BrokerConfig::from_properties(raw).unwrap()
    }

    fn image(leader: i32, leader_epoch: i32) -> MetadataImage {
        let id = uuid::Uuid::from_u128(7);
        let mut img = MetadataImage::default();
        let p = PartitionImage { leader, leader_epoch, replicas: vec![1], isr: vec![1], partition_epoch: leader_epoch, ..Default::default() };
        img.topic_names.insert(id, "t".into());
        img.topics.insert("t".into(), TopicImage { name: "t".into(), id, partitions: vec![p], configs: Default::default() });
        img
    }

    /// A produce that picked up the partition before a leadership change must not leave the
    /// high watermark behind: the change is applied in place, not by a new partition object.
    #[tokio::test]
    async fn leadership_changes_in_place_so_in_flight_appends_advance_the_same_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let (rm, _) = ReplicaManager::open(&cfg).unwrap();
        rm.apply_image(&image(1, 0), &cfg).unwrap();
        let held = rm.partition("t", 0).unwrap();
        assert!(held.is_leader());
        rm.apply_image(&image(-1, 1), &cfg).unwrap();
        assert!(!held.is_leader(), "a holder sees the leader go away");
        rm.apply_image(&image(1, 2), &cfg).unwrap();
        let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"a", b"b"])));
        held.append(&batch, 0).await.unwrap();
        let now = rm.partition("t", 0).unwrap();
        assert_eq!((now.leader_epoch(), now.high_watermark()), (2, 2));
    }


    /// A restarted broker resumes each high watermark from the checkpoint (at most the log
    /// end), not from the log end: records past it were never known to be committed.
    #[tokio::test]
    async fn high_watermarks_resume_from_the_checkpoint_not_the_log_end() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        {
            let (rm, _) = ReplicaManager::open(&cfg).unwrap();
            rm.apply_image(&image(1, 0), &cfg).unwrap();
            let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"a", b"b", b"c"])));
            rm.partition("t", 0).unwrap().append(&batch, 0).await.unwrap();
            rm.close_all();
        }
        super::super::hw_checkpoint::write(dir.path(), &[("t".into(), 0, 1)]).unwrap();
        let (rm, _) = ReplicaManager::open(&cfg).unwrap();
        let p = rm.partition("t", 0).unwrap();
        assert_eq!((p.log_end_offset(), p.high_watermark()), (3, 1));
        // A checkpoint past the log end (a truncated log) is capped at it.
        drop(rm);
        super::super::hw_checkpoint::write(dir.path(), &[("t".into(), 0, 99)]).unwrap();
        let (rm, _) = ReplicaManager::open(&cfg).unwrap();
        assert_eq!(rm.partition("t", 0).unwrap().high_watermark(), 3);
        // What the broker writes back is what it has.
        rm.checkpoint_high_watermarks(&cfg.log_dirs);
        assert_eq!(super::super::hw_checkpoint::read(dir.path()).unwrap()[&("t".to_string(), 0)], 3);
    }

    /// Two applies race (a handler's and the metadata follower's): the older image, applied
    /// last, must not delete the log of a topic the newer one created.
    #[tokio::test]
    async fn an_older_image_applied_late_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let (rm, _) = ReplicaManager::open(&cfg).unwrap();
        let mut newer = image(1, 0);
        newer.last_offset = 10;
        rm.apply_image(&newer, &cfg).unwrap();
        let older = MetadataImage { last_offset: 5, ..Default::default() };
        rm.apply_image(&older, &cfg).unwrap();
        assert!(rm.partition("t", 0).is_some());
    }

    /// A log left from a deleted topic (forgotten at start-up) does not block a new topic of
    /// the same name, and none of its records are served under the new topic.
    #[tokio::test]
    async fn a_leftover_log_of_a_deleted_topic_does_not_block_or_leak_into_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        {
            let (rm, _) = ReplicaManager::open(&cfg).unwrap();
            rm.apply_image(&image(1, 0), &cfg).unwrap();
            let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"old"])));
            rm.partition("t", 0).unwrap().append(&batch, 0).await.unwrap();
            rm.close_all();
        }
        let (rm, loaded) = ReplicaManager::open(&cfg).unwrap();
        assert_eq!(loaded.len(), 1);
        rm.forget("t", 0); // start-up: no topic t in the metadata
        let mut recreated = image(1, 0);
        let id = uuid::Uuid::from_u128(8);
        let t = recreated.topics.get_mut("t").unwrap();
        t.id = id;
        recreated.topic_names = [(id, "t".to_string())].into();
        rm.apply_image(&recreated, &cfg).unwrap();
        let p = rm.partition("t", 0).unwrap();
        assert_eq!((p.topic_id, p.log().lock().log_end_offset()), (id, 0));
    }

    /// The topic was deleted and re-created under the same name (new id, this broker again a
    /// replica) while this broker was down: at restart the image has a topic `t`, but not the
    /// one its log belongs to. The log's partition.metadata says so; the old records go.
    #[tokio::test]
    async fn a_log_of_a_topic_recreated_while_the_broker_was_down_is_not_served_as_the_new_topic() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        {
            let (rm, _) = ReplicaManager::open(&cfg).unwrap();
            rm.apply_image(&image(1, 0), &cfg).unwrap();
            let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"old", b"older"])));
            rm.partition("t", 0).unwrap().append(&batch, 0).await.unwrap();
            rm.close_all();
        }
        let (rm, _) = ReplicaManager::open(&cfg).unwrap();
        assert_eq!(rm.partition("t", 0).unwrap().topic_id, uuid::Uuid::from_u128(7), "the id comes from partition.metadata");
        let mut recreated = image(1, 0);
        let id = uuid::Uuid::from_u128(8);
        recreated.topics.get_mut("t").unwrap().id = id;
        recreated.topic_names = [(id, "t".to_string())].into();
        rm.apply_image(&recreated, &cfg).unwrap();
        let p = rm.partition("t", 0).unwrap();
        assert_eq!((p.topic_id, p.log().lock().log_end_offset()), (id, 0));
        let dir = p.log().lock().dir().to_path_buf();
        assert_eq!(partition_metadata::read(&dir).unwrap(), Some(id));

        // And the same log kept across a restart under the same topic keeps its records.
        let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"new"])));
        p.append(&batch, 0).await.unwrap();
        rm.close_all();
        drop((p, rm));
        let (rm, _) = ReplicaManager::open(&cfg).unwrap();
        rm.apply_image(&recreated, &cfg).unwrap();
        let p = rm.partition("t", 0).unwrap();
        assert_eq!(p.log().lock().log_end_offset(), 1);
        assert!(p.is_leader(), "a log loaded at start-up leads when the image says this broker leads");
    }
}
