//! The metadata log and the vote on disk.
//!
//! `metadata.log` holds frames of `[u32 length][u32 crc32c][JSON entry]`. Appends are fsynced
//! before openraft is told they are durable; a torn or corrupt tail found at start-up (a crash
//! mid-append, never acknowledged) is cut off. Entries are also kept in memory: the metadata
//! log is small because snapshots bound it. `vote.json` and `purged.json` are replaced
//! atomically (write, fsync, rename, fsync the directory). All file work runs on blocking
//! threads, never on the async workers.
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;

use super::TypeConfig;

const LOG_FILE: &str = "metadata.log";
const VOTE_FILE: &str = "vote.json";
const PURGED_FILE: &str = "purged.json";
/// Largest entry accepted when reading the log back; larger lengths mean corruption.
const MAX_FRAME: usize = 64 * 1024 * 1024;

type NodeId = u64;
type SE = StorageError<NodeId>;

/// What readers see, behind a lock that is never held across file I/O (openraft's
/// replication tasks and the observers' fetches read it on the async workers).
struct Mem {
    /// index -> (entry, file position of its frame)
    entries: BTreeMap<u64, (Entry<TypeConfig>, u64)>,
    vote: Option<Vote<NodeId>>,
    purged: Option<LogId<NodeId>>,
}

/// The files, behind their own lock, taken only on blocking threads. openraft issues the
/// writes (append, truncate, purge, save_vote) one at a time; each changes the files first
/// and `Mem` after, in short critical sections.
struct Disk {
    dir: PathBuf,
    file: File,
    file_len: u64,
}

/// The metadata log; clones share the same state (openraft reads through a clone).
#[derive(Clone)]
pub struct LogStore {
    mem: Arc<Mutex<Mem>>,
    disk: Arc<Mutex<Disk>>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        crate::durable_fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let created = !path.try_exists()?;
        let mut file = OpenOptions::new().create(true).truncate(false).read(true).append(true).open(&path)?;
        if created {
            // The appends fdatasync the file; its name must be durable too, or a power cut
            // takes the whole log (every topic) with it.
            crate::durable_fs::sync_dir(dir)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (entries, valid) = decode_frames(&bytes).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if valid < bytes.len() as u64 {
            tracing::warn!(target: "org.apache.kafka.raft.KafkaRaftClient", path = %path.display(), kept = valid, dropped = bytes.len() as u64 - valid,
                "metadata log has a torn or corrupt tail (a crash during an append that was never acknowledged); cutting it off");
            file.set_len(valid)?;
            file.sync_all()?;
        }
        let vote = read_json(&dir.join(VOTE_FILE))?;
        let purged: Option<LogId<NodeId>> = read_json(&dir.join(PURGED_FILE))?;
        // A crash between recording a purge and rewriting the file leaves purged entries.
        let entries = match purged {
            Some(p) => entries.into_iter().filter(|(i, _)| *i > p.index).collect(),
            None => entries,
        };
        Ok(Self {
            mem: Arc::new(Mutex::new(Mem { entries, vote, purged })),
            disk: Arc::new(Mutex::new(Disk { dir: dir.to_path_buf(), file, file_len: valid })),
        })
    }

    /// Runs blocking file work off the async workers.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&mut Disk, &Mutex<Mem>) -> Result<T, SE> + Send + 'static) -> Result<T, SE> {
        let (disk, mem) = (self.disk.clone(), self.mem.clone());
        tokio::task::spawn_blocking(move || f(&mut disk.lock(), &mem))
            .await
            .map_err(|e| SE::from(StorageIOError::write_logs(&std::io::Error::other(e.to_string()))))?
    }
}

/// Decodes frames until the first bad one; returns the entries and the valid length.
/// The entries of a log file and the length of its valid prefix. A torn or corrupt tail (a
/// bad length or checksum: a crash in an append) ends it; an intact frame that does not
/// decode is an error instead, never a tail to cut: it holds a committed entry this binary
/// cannot read (a record from a newer version).
fn decode_frames(bytes: &[u8]) -> std::io::Result<(BTreeMap<u64, (Entry<TypeConfig>, u64)>, u64)> {
    let mut entries = BTreeMap::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= 8 {
        let len = u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]) as usize;
        let crc = u32::from_be_bytes([bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]]);
        if len > MAX_FRAME || bytes.len() - pos - 8 < len {
            break;
        }
        let body = &bytes[pos + 8..pos + 8 + len];
        if crc32c::crc32c(body) != crc {
            break;
        }
        let entry = serde_json::from_slice::<Entry<TypeConfig>>(body).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the metadata log entry at byte {pos} is intact but cannot be read ({e}); it was probably written by a newer Lantern: run that version, nothing was changed"),
            )
        })?;
        // A later frame with a lower or equal index follows a truncation that was rewritten:
        // never happens with set_len truncation, but keep the newest if it does.
        entries.split_off(&entry.log_id.index);
        entries.insert(entry.log_id.index, (entry, pos as u64));
        pos += 8 + len;
    }
    Ok((entries, pos as u64))
}

fn encode_frame(entry: &Entry<TypeConfig>, out: &mut Vec<u8>) -> std::io::Result<()> {
    let body = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{} is corrupt: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces `path` atomically and durably.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A name of its own per write: two writers never share a temporary file.
    let tmp = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SE> {
        let mem = self.mem.lock();
        Ok(mem.entries.range(range).map(|(_, (e, _))| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SE> {
        let mem = self.mem.lock();
        let last = mem.entries.values().next_back().map(|(e, _)| e.log_id).or(mem.purged);
        Ok(LogState { last_purged_log_id: mem.purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SE> {
        let vote = *vote;
        self.blocking(move |disk, mem| {
            let bytes = serde_json::to_vec(&vote).map_err(|e| SE::from(StorageIOError::write_vote(&e)))?;
            write_atomic(&disk.dir.join(VOTE_FILE), &bytes).map_err(|e| SE::from(StorageIOError::write_vote(&e)))?;
            mem.lock().vote = Some(vote);
            Ok(())
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SE> {
        Ok(self.mem.lock().vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SE>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let result = self
            .blocking(move |disk, mem| {
                let mut buf = Vec::new();
                let mut positions = Vec::with_capacity(entries.len());
                for e in &entries {
                    positions.push(disk.file_len + buf.len() as u64);
                    encode_frame(e, &mut buf).map_err(|err| SE::from(StorageIOError::write_logs(&err)))?;
                }
                let io = |err: std::io::Error| SE::from(StorageIOError::write_logs(&err));
                disk.file.write_all(&buf).map_err(io)?;
                disk.file.sync_data().map_err(io)?;
                disk.file_len += buf.len() as u64;
                let mut mem = mem.lock();
                for (e, pos) in entries.into_iter().zip(positions) {
                    mem.entries.insert(e.log_id.index, (e, pos));
                }
                Ok(())
            })
            .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SE> {
        self.blocking(move |disk, mem| {
            let removed = mem.lock().entries.split_off(&log_id.index);
            if let Some((_, (_, pos))) = removed.iter().next() {
                let pos = *pos;
                let io = |err: std::io::Error| SE::from(StorageIOError::write_logs(&err));
                disk.file.set_len(pos).map_err(io)?;
                disk.file.sync_all().map_err(io)?;
                disk.file_len = pos;
            }
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SE> {
        self.blocking(move |disk, mem| {
            let io = |err: std::io::Error| SE::from(StorageIOError::write_logs(&err));
            // Record the purge point first: entries at or below it are in a snapshot.
            let bytes = serde_json::to_vec(&log_id).map_err(|e| io(std::io::Error::other(e)))?;
            write_atomic(&disk.dir.join(PURGED_FILE), &bytes).map_err(io)?;
            let kept: Vec<Entry<TypeConfig>> = {
                let mut mem = mem.lock();
                mem.purged = Some(log_id);
                let kept = mem.entries.split_off(&(log_id.index + 1));
                mem.entries = kept;
                mem.entries.values().map(|(e, _)| e.clone()).collect()
            };
            // Rewrite the file with what is left (small: snapshots bound the log).
            let mut buf = Vec::new();
            let mut positions = Vec::with_capacity(kept.len());
            for e in &kept {
                positions.push((e.log_id.index, buf.len() as u64));
                encode_frame(e, &mut buf).map_err(io)?;
            }
            let path = disk.dir.join(LOG_FILE);
            write_atomic(&path, &buf).map_err(io)?;
            disk.file = OpenOptions::new().read(true).append(true).open(&path).map_err(io)?;
            disk.file_len = buf.len() as u64;
            let mut mem = mem.lock();
            for (index, pos) in positions {
                if let Some(slot) = mem.entries.get_mut(&index) {
                    slot.1 = pos;
                }
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Blank }
    }

    fn write_entries(dir: &Path, n: u64) {
        let mut buf = Vec::new();
        for i in 1..=n {
            encode_frame(&entry(i), &mut buf).unwrap();
        }
        fs::write(dir.join(LOG_FILE), &buf).unwrap();
    }

    #[test]
    fn torn_and_corrupt_tails_are_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        write_entries(dir.path(), 3);
        let path = dir.path().join(LOG_FILE);
        let full = fs::read(&path).unwrap();
        // Torn: the last frame is half written.
        fs::write(&path, &full[..full.len() - 5]).unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.mem.lock().entries.len(), 2);
        let len = fs::metadata(&path).unwrap().len();
        drop(log);
        // Corrupt: a flipped byte in the second frame's body drops it and what follows.
        let mut bytes = fs::read(&path).unwrap();
        let second = (len / 2) as usize + 10;
        bytes[second] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.mem.lock().entries.keys().copied().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn an_intact_entry_this_version_cannot_read_stops_the_open_and_cuts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        write_entries(dir.path(), 2);
        let path = dir.path().join(LOG_FILE);
        // A well-formed frame (good checksum) holding what a newer version might write.
        let mut bytes = fs::read(&path).unwrap();
        let body = br#"{"log_id":{"leader_id":{"term":1,"node_id":1},"index":3},"payload":{"Normal":{"SomeFutureRecord":{}}}}"#;
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
        bytes.extend_from_slice(body);
        write_entries(dir.path(), 0);
        fs::write(&path, &bytes).unwrap();
        let e = LogStore::open(dir.path()).err().expect("an unreadable committed entry must not be cut off as a torn tail");
        assert!(e.to_string().contains("newer Lantern"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), bytes, "the log is left as it was");
    }

    #[tokio::test]
    async fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        write_entries(dir.path(), 10);
        let mut log = LogStore::open(dir.path()).unwrap();
        log.truncate(entry(8).log_id).await.unwrap();
        log.purge(entry(3).log_id).await.unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|l| l.index), Some(7));
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        drop(log);
        let mut log = LogStore::open(dir.path()).unwrap();
        let got: Vec<u64> = log.try_get_log_entries(0..100).await.unwrap().iter().map(|e| e.log_id.index).collect();
        assert_eq!(got, vec![4, 5, 6, 7]);
        assert_eq!(log.get_log_state().await.unwrap().last_purged_log_id.map(|l| l.index), Some(3));
    }
}
