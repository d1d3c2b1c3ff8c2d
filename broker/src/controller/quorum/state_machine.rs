//! The state machine of the metadata log: the [`MetadataImage`] built by applying committed
//! records, published to the rest of the node through a watch channel, and snapshots of it
//! (`snapshot.json`, replaced atomically) that bound the log and let a node that fell far
//! behind catch up.
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::log_store::write_atomic;
use super::{Applied, TypeConfig};
use crate::controller::image::MetadataImage;

const SNAPSHOT_FILE: &str = "snapshot.json";

type NodeId = u64;
type SE = StorageError<NodeId>;

/// What a snapshot holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotFile {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    image: MetadataImage,
    snapshot_id: String,
}

struct State {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    image: Arc<MetadataImage>,
    snapshot_seq: u64,
}

struct Inner {
    dir: PathBuf,
    state: Mutex<State>,
    published: watch::Sender<Arc<MetadataImage>>,
    /// Records that did not fit the image (controller bugs), for metrics.
    apply_errors: std::sync::atomic::AtomicU64,
    /// Serialises snapshot writes (openraft builds snapshots in a task of their own, which can
    /// run while a snapshot from the leader is installed) and remembers the newest stored, so
    /// an older snapshot never replaces a newer one.
    stored: tokio::sync::Mutex<Option<LogId<NodeId>>>,
}

/// Cheap to clone; all clones are the same state machine.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

impl StateMachine {
    /// Loads the last snapshot, if any; openraft then applies the log after it.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        crate::durable_fs::create_dir_all(dir)?;
        let snap: Option<SnapshotFile> = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::other(format!("{} is corrupt ({e}); restore it from another voter's copy", dir.join(SNAPSHOT_FILE).display()))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let state = match snap {
            Some(s) => State { last_applied: s.last_applied, membership: s.membership, image: Arc::new(s.image), snapshot_seq: 0 },
            None => State { last_applied: None, membership: Default::default(), image: Default::default(), snapshot_seq: 0 },
        };
        let (published, _) = watch::channel(state.image.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                stored: tokio::sync::Mutex::new(state.last_applied),
                state: Mutex::new(state),
                published,
                apply_errors: Default::default(),
            }),
        })
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.inner.published.borrow().clone()
    }

    /// Changes whenever records are applied.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.published.subscribe()
    }

    pub fn apply_errors(&self) -> u64 {
        self.inner.apply_errors.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn snapshot_file(&self) -> SnapshotFile {
        let mut s = self.inner.state.lock();
        s.snapshot_seq += 1;
        let id = match s.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, s.snapshot_seq),
            None => format!("none-{}", s.snapshot_seq),
        };
        SnapshotFile { last_applied: s.last_applied, membership: s.membership.clone(), image: (*s.image).clone(), snapshot_id: id }
    }

    fn to_snapshot(file: &SnapshotFile, bytes: Vec<u8>) -> Snapshot<TypeConfig> {
        Snapshot {
            meta: SnapshotMeta {
                last_log_id: file.last_applied,
                last_membership: file.membership.clone(),
                snapshot_id: file.snapshot_id.clone(),
            },
            snapshot: Box::new(Cursor::new(bytes)),
        }
    }

    /// Writes a snapshot covering up to `last_applied`, unless a newer one is already stored.
    /// Returns whether it was written.
    async fn store(&self, bytes: Vec<u8>, last_applied: Option<LogId<NodeId>>) -> Result<bool, SE> {
        let mut stored = self.inner.stored.lock().await;
        if *stored > last_applied {
            return Ok(false);
        }
        let path = self.inner.dir.join(SNAPSHOT_FILE);
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|e| SE::from(StorageIOError::write_snapshot(None, &std::io::Error::other(e.to_string()))))?
            .map_err(|e| SE::from(StorageIOError::write_snapshot(None, &e)))?;
        *stored = last_applied;
        Ok(true)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SE> {
        let file = self.snapshot_file();
        let bytes = serde_json::to_vec(&file).map_err(|e| SE::from(StorageIOError::write_snapshot(None, &e)))?;
        if self.store(bytes.clone(), file.last_applied).await? {
            tracing::info!(target: "org.apache.kafka.image.publisher.SnapshotGenerator", snapshot = %file.snapshot_id, bytes = bytes.len(), "wrote metadata snapshot");
        }
        Ok(Self::to_snapshot(&file, bytes))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), SE> {
        let s = self.inner.state.lock();
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, SE>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        let image = {
            let mut s = self.inner.state.lock();
            let mut next: Option<MetadataImage> = None;
            for entry in entries {
                s.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(batch) => {
                        let img = next.get_or_insert_with(|| (*s.image).clone());
                        for record in &batch.records {
                            if let Err(e) = img.apply(record, entry.log_id.index as i64, batch.timestamp_ms) {
                                self.inner.apply_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                tracing::error!(target: "org.apache.kafka.image.loader.MetadataLoader", offset = entry.log_id.index, ?record, error = %e,
                                    "skipped a metadata record that does not fit the image");
                            }
                        }
                    }
                    EntryPayload::Membership(m) => s.membership = StoredMembership::new(Some(entry.log_id), m),
                }
                replies.push(Applied { offset: entry.log_id.index });
            }
            match next {
                Some(img) => {
                    let img = Arc::new(img);
                    s.image = img.clone();
                    Some(img)
                }
                None => None,
            }
        };
        if let Some(img) = image {
            self.inner.published.send_replace(img);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SE> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta<NodeId, BasicNode>, snapshot: Box<Cursor<Vec<u8>>>) -> Result<(), SE> {
        let bytes = snapshot.into_inner();
        let file: SnapshotFile =
            serde_json::from_slice(&bytes).map_err(|e| SE::from(StorageIOError::read_snapshot(Some(meta.signature()), &e)))?;
        self.store(bytes, meta.last_log_id).await?;
        let img = Arc::new(file.image);
        {
            let mut s = self.inner.state.lock();
            s.last_applied = meta.last_log_id;
            s.membership = meta.last_membership.clone();
            s.image = img.clone();
        }
        tracing::info!(target: "org.apache.kafka.image.loader.MetadataLoader", snapshot = %meta.snapshot_id, "installed a metadata snapshot from the leader");
        self.inner.published.send_replace(img);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SE> {
        let path = self.inner.dir.join(SNAPSHOT_FILE);
        let bytes = match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Ok(Err(e)) => return Err(SE::from(StorageIOError::read_snapshot(None, &e))),
            Err(e) => return Err(SE::from(StorageIOError::read_snapshot(None, &std::io::Error::other(e.to_string())))),
        };
        let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(|e| SE::from(StorageIOError::read_snapshot(None, &e)))?;
        Ok(Some(Self::to_snapshot(&file, bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::MetadataRecord;
    use crate::controller::quorum::MetadataBatch;
    use openraft::{CommittedLeaderId, RaftSnapshotBuilder};

    fn entry(index: u64, name: &str) -> Entry<TypeConfig> {
        let batch = MetadataBatch { records: vec![MetadataRecord::Topic { name: name.into(), topic_id: uuid::Uuid::new_v4() }], timestamp_ms: 7 };
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Normal(batch) }
    }

    /// A node that fell behind a snapshot gets it from the leader: installing it yields the
    /// leader's image, survives a restart, and later entries apply on top.
    #[tokio::test]
    async fn a_snapshot_built_on_one_node_installs_on_another_and_survives_restart() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = StateMachine::open(a_dir.path()).unwrap();
        a.apply((1..=5).map(|i| entry(i, &format!("t{i}")))).await.unwrap();
        let snap = a.build_snapshot().await.unwrap();
        let mut b = StateMachine::open(b_dir.path()).unwrap();
        let rx = b.subscribe();
        b.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
        assert!(rx.has_changed().unwrap(), "installing publishes the image");
        assert_eq!(*b.image(), *a.image());
        assert_eq!(b.applied_state().await.unwrap().0.map(|l| l.index), Some(5));
        b.apply([entry(6, "t6")]).await.unwrap();
        drop(b);
        let mut b = StateMachine::open(b_dir.path()).unwrap();
        // The snapshot is durable; entry 6 is re-applied from the log by openraft after a restart.
        assert_eq!((b.image().topics.len(), b.image().last_offset), (5, 5));
        assert_eq!(b.applied_state().await.unwrap().0.map(|l| l.index), Some(5));
        assert!(b.get_current_snapshot().await.unwrap().is_some());
    }


    fn blank(index: u64) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Blank }
    }

    /// openraft may build a snapshot while one from the leader is installed: the older one
    /// finishing last must not replace the newer on disk (the log before the newer is gone).
    #[tokio::test]
    async fn an_older_snapshot_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        sm.apply((1..=5).map(blank)).await.unwrap();
        let old = sm.snapshot_file();
        let old_bytes = serde_json::to_vec(&old).unwrap();
        // The leader's snapshot at 10 is installed first...
        let other = tempfile::tempdir().unwrap();
        let mut leader = StateMachine::open(other.path()).unwrap();
        leader.apply((1..=10).map(blank)).await.unwrap();
        let snap = leader.build_snapshot().await.unwrap();
        sm.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
        // ...then the build of 5 finishes.
        assert!(!sm.store(old_bytes, old.last_applied).await.unwrap());
        drop(sm);
        let mut sm = StateMachine::open(dir.path()).unwrap();
        assert_eq!(sm.applied_state().await.unwrap().0.map(|l| l.index), Some(10));
    }
}
