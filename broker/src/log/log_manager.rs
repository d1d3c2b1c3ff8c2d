//! `LogManager`: the broker's data directories (`log.dirs`). Locks each directory against a
//! second broker, discovers and opens (recovers) the partition logs found in them, places
//! new partitions in the least-loaded directory, and deletes partitions.
//!
//! Logs are handed out as [`SharedLog`] = `Arc<parking_lot::Mutex<PartitionLog>>`. Every
//! operation holds the lock briefly (a read is one pread into one buffer); the slow part,
//! the fsync, runs with no lock at all (see `PartitionLog::flush_job`).
//! The manager keeps its own map of hosted partitions, behind a mutex, so it can be shared.

use super::partition_log::{LogConfig, PartitionLog};
use super::LogError;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// A partition log shared between request handlers.
pub type SharedLog = Arc<Mutex<PartitionLog>>;

/// Removes directories [`LogManager::delete_partition`] renamed for deletion. Blocking (the
/// file system frees every block); a failure is logged and left to the next start, which
/// removes every `-delete` directory.
pub fn remove_deleted(dirs: impl IntoIterator<Item = PathBuf>) {
    for dir in dirs {
        if let Err(e) = fs::remove_dir_all(&dir) {
            tracing::warn!(target: "kafka.log.LogManager", dir = %dir.display(), error = %e, "could not remove a deleted partition's directory; the next start removes it");
        }
    }
}

/// What became of a partition directory the metadata no longer has ([`set_aside_stray`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrayOutcome {
    /// It held no records (a creation cut short, a topic deleted before any write): removed.
    Removed,
    /// It holds records: renamed to this `-stray` directory and kept for an operator.
    SetAside(PathBuf),
}

/// Deals with the directory of a partition the metadata no longer has (its topic deleted, or
/// re-created under another id, while this broker was down, or a creation or deletion that
/// failed part-way), so that it neither stops the broker nor stands in the way of a topic of
/// the same name: removed when it holds no records, else renamed to `<name>.<uuid>-stray` and
/// never loaded again (Kafka's LogManager does the same with stray logs since 3.8). Blocking.
pub fn set_aside_stray(dir: &Path) -> Result<StrayOutcome, LogError> {
    let holds_records = fs::read_dir(dir)
        .map_err(LogError::io("listing", dir))?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(super::segment::LOG_SUFFIX) && e.metadata().map_or(true, |m| m.len() > 0));
    if !holds_records {
        fs::remove_dir_all(dir).map_err(LogError::io("removing", dir))?;
        return Ok(StrayOutcome::Removed);
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix = format!(".{}{STRAY_SUFFIX}", uuid::Uuid::new_v4().simple());
    let mut keep = name.len().min(255 - suffix.len());
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    let aside = dir.with_file_name(format!("{}{suffix}", &name[..keep]));
    fs::rename(dir, &aside).map_err(LogError::io("renaming aside", dir))?;
    Ok(StrayOutcome::SetAside(aside))
}

/// Kafka's limit on topic name length.
/// The quorum's metadata log directory inside `metadata.log.dir`; never a partition here.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";
/// The topic name whose partition 0 directory that is: no client may create it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub const MAX_TOPIC_NAME_LEN: usize = 249;
const LOCK_FILE: &str = ".lock";
pub(super) const DELETE_SUFFIX: &str = "-delete";
/// A partition directory the metadata no longer has, holding records: renamed aside with this
/// suffix and kept for an operator, as Kafka's `-stray` directories.
pub const STRAY_SUFFIX: &str = "-stray";

/// A partition found on disk by [`LogManager::open`]: (topic, partition, log).
pub type LoadedPartition = (String, i32, SharedLog);

#[derive(Debug)]
struct DataDir {
    path: PathBuf,
    /// Holds the flock for the manager's lifetime.
    _lock: File,
}

#[derive(Debug)]
struct Hosted {
    /// Which of `dirs` holds the log; shared with a log-directory move, which changes it
    /// under the log's lock at the moment it swaps the copy in.
    dir_index: Arc<AtomicUsize>,
    log: SharedLog,
}

impl Hosted {
    fn new(dir_index: usize, log: SharedLog) -> Hosted {
        Hosted { dir_index: Arc::new(AtomicUsize::new(dir_index)), log }
    }
    fn dir_index(&self) -> usize {
        self.dir_index.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
pub struct LogManager {
    dirs: Vec<DataDir>,
    default_config: LogConfig,
    partitions: Mutex<HashMap<(String, i32), Hosted>>,
    /// Directories taken offline after an I/O failure (index -> what failed), and the
    /// partitions they held: not served, not re-created, until the broker restarts (Kafka's
    /// JBOD behaviour).
    offline: Mutex<(BTreeMap<usize, String>, BTreeSet<(String, i32)>)>,
    /// Consecutive failed probes per directory.
    probe_streaks: Mutex<BTreeMap<usize, u32>>,
    /// Log-directory moves in progress (AlterReplicaLogDirs), by partition.
    moves: Mutex<HashMap<(String, i32), Arc<LogMove>>>,
    /// Where a partition not hosted yet is to be created (AlterReplicaLogDirs before the
    /// replica exists, as Kafka's reassignment tool sends it), by directory index.
    preferred: Mutex<HashMap<(String, i32), usize>>,
    /// Partition directories found at open whose log could not be opened.
    unopened: Mutex<Vec<Unopened>>,
}

/// A partition directory [`LogManager::open`] found but could not open: left as it is.
#[derive(Debug, Clone)]
pub struct Unopened {
    pub topic: String,
    pub partition: i32,
    pub dir: PathBuf,
    pub error: String,
}

/// A log-directory move in progress: of which log, where to, and how far the copy has got.
#[derive(Debug)]
pub struct LogMove {
    pub topic: String,
    pub partition: i32,
    pub current: SharedLog,
    pub target: usize,
    pub target_dir: PathBuf,
    /// The partition's directory index in the manager (see `Hosted`).
    hosted_index: Arc<AtomicUsize>,
    cancelled: AtomicBool,
    /// The copy's log end offset and size, for DescribeLogDirs (`is_future_key`).
    copied_end: AtomicI64,
    copied_bytes: AtomicU64,
}

impl LogMove {
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
    pub fn note_progress(&self, end: i64, bytes: u64) {
        self.copied_end.store(end, Ordering::Relaxed);
        self.copied_bytes.store(bytes, Ordering::Relaxed);
    }
    /// (log end offset, bytes) of the copy so far.
    pub fn progress(&self) -> (i64, u64) {
        (self.copied_end.load(Ordering::Relaxed), self.copied_bytes.load(Ordering::Relaxed))
    }
    /// The copy has replaced the log (called under the log's lock by `log_mover::complete`).
    pub fn swapped(&self) {
        self.hosted_index.store(self.target, Ordering::Release);
    }
}

/// What [`LogManager::begin_move`] decided.
#[derive(Debug)]
pub enum MoveStart {
    /// The log is in that directory already (a move elsewhere, if any, was cancelled).
    AlreadyThere,
    /// A move to that directory is under way.
    AlreadyMoving,
    /// Registered: the mover creates the copy and runs it (`cluster::log_dir_mover`).
    Started(Arc<LogMove>),
}

/// Why [`LogManager::begin_move`] refused, as AlterReplicaLogDirs answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveRefused {
    /// Not one of `log.dirs` (LOG_DIR_NOT_FOUND).
    UnknownDir,
    /// The target directory or the partition's own is offline (KAFKA_STORAGE_ERROR).
    Offline,
    /// Not hosted here (yet): the directory is remembered for its creation (REPLICA_NOT_AVAILABLE).
    NotHosted,
    /// The copy's directory name would be too long (INVALID_TOPIC_EXCEPTION, as Kafka).
    NameTooLong,
}

/// Failed probes in a row before a directory is taken offline: one failure may be a passing
/// shortage (descriptors, memory); a dead or read-only disk fails every time.
pub const PROBE_FAILURES_TO_OFFLINE: u32 = 3;

/// Name of the file a directory probe writes, fsyncs and removes.
const PROBE_FILE: &str = ".lantern-dir-probe";

/// Probes `dirs` (from [`LogManager::online_dirs`]), for [`LogManager::note_probes`]: a
/// small file written, fsynced and removed in each. Blocking, and meant to run with no lock
/// held (a hung disk must not stall anything else).
pub fn probe_dirs(dirs: Vec<(usize, PathBuf)>) -> Vec<(usize, Option<String>)> {
    dirs.into_iter().map(|(i, path)| (i, probe_failure(&path))).collect()
}

/// Why the directory failed its probe, or None when it is fine. A full disk is fine here
/// (writes fail with KAFKA_STORAGE_ERROR and recover once space is freed), and so are errors
/// of the process rather than the disk (no descriptors or memory left, interrupted).
fn probe_failure(dir: &Path) -> Option<String> {
    let e = probe(dir).err()?;
    let not_the_disk = matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOMEM) | Some(libc::EINTR) | Some(libc::EAGAIN)
    );
    (!not_the_disk).then(|| e.to_string())
}

fn probe(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(PROBE_FILE);
    let mut f = fs::OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
    f.write_all(b"probe")?;
    f.sync_all()?;
    drop(f);
    fs::remove_file(&path)
}

/// Checks a topic name as Kafka does (it becomes a directory name, so this also keeps
/// paths inside the data directory): 1-249 characters of `[a-zA-Z0-9._-]`, not `.`/`..`.
pub fn validate_topic_name(name: &str) -> Result<(), LogError> {
    let invalid = |reason| {
        Err(LogError::InvalidTopic {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if name == METADATA_TOPIC {
        // Its directory is the metadata quorum's log.
        return invalid("it is the cluster metadata topic");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return invalid("it is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Splits a partition directory name `<topic>-<partition>` at the last '-'.
pub fn parse_partition_dir_name(name: &str) -> Option<(String, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let partition = partition.parse::<i32>().ok()?;
    validate_topic_name(topic).ok()?;
    Some((topic.to_string(), partition))
}

pub fn partition_dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Takes an exclusive, non-blocking flock on `<dir>/.lock`.
fn lock_dir(dir: &Path) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(LogError::io("opening lock file", &path))?;
    // SAFETY: flock only reads the descriptor, which `file` keeps open for this call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(LogError::DirLocked { dir: dir.to_path_buf() });
        }
        return Err(LogError::io("locking", &path)(err));
    }
    Ok(file)
}

impl LogManager {
    /// Locks every directory in `dirs` (creating missing ones), removes partition
    /// directories left over from interrupted deletions (`*-delete`), and opens every
    /// `<topic>-<partition>` directory with `default_config` (running recovery). Other
    /// entries (files like meta.properties, unrelated directories) are ignored. Returns the
    /// manager and what it loaded; apply per-topic configs with `PartitionLog::set_config`.
    pub fn open(dirs: &[PathBuf], default_config: LogConfig) -> Result<(LogManager, Vec<LoadedPartition>), LogError> {
        if dirs.is_empty() {
            return Err(LogError::NoLogDirs);
        }
        let mut data_dirs = Vec::with_capacity(dirs.len());
        for dir in dirs {
            crate::durable_fs::create_dir_all(dir).map_err(LogError::io("creating data directory", dir))?;
            data_dirs.push(DataDir {
                path: dir.clone(),
                _lock: lock_dir(dir)?,
            });
        }
        for (topic, partition) in super::log_mover::resolve_future_dirs(dirs)? {
            tracing::info!(target: "kafka.log.LogManager", topic = %topic, partition, "a log-directory move cut short by a crash was completed");
        }
        let mut hosted: HashMap<(String, i32), Hosted> = HashMap::new();
        let mut loaded = Vec::new();
        let mut unopened = Vec::new();
        for (dir_index, data_dir) in data_dirs.iter().enumerate() {
            let dir = &data_dir.path;
            let mut entries = Vec::new();
            for entry in fs::read_dir(dir).map_err(LogError::io("listing data directory", dir))? {
                let entry = entry.map_err(LogError::io("listing data directory", dir))?;
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if is_dir {
                    entries.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
                }
            }
            entries.sort();
            for (name, path) in entries {
                if name.ends_with(DELETE_SUFFIX) {
                    // A deletion cut short (a crash, or a removal that failed): finished now. A
                    // directory that still cannot be removed holds no partition, so it stops
                    // nothing; the next start tries again (Kafka retries its logsToBeDeleted).
                    tracing::info!(target: "kafka.log.LogManager", dir = %path.display(), "removing partition directory left by an interrupted deletion");
                    remove_deleted([path]);
                    continue;
                }
                if name.ends_with(STRAY_SUFFIX) {
                    // Kept for an operator (see `set_aside_stray`): never loaded.
                    continue;
                }
                // The metadata log lives beside the partitions (as in Kafka) but is the quorum's.
                if name == METADATA_LOG_DIR {
                    continue;
                }
                let Some((topic, partition)) = parse_partition_dir_name(&name) else {
                    continue;
                };
                if let Some(existing) = hosted.get(&(topic.clone(), partition)) {
                    return Err(LogError::DuplicatePartition {
                        name,
                        first: data_dirs[existing.dir_index()].path.clone(),
                        second: dir.clone(),
                    });
                }
                match PartitionLog::open(&path, default_config.clone()) {
                    Ok(log) => {
                        let log = Arc::new(Mutex::new(log));
                        loaded.push((topic.clone(), partition, Arc::clone(&log)));
                        hosted.insert((topic, partition), Hosted::new(dir_index, log));
                    }
                    // One log that cannot be opened does not stop the broker: it stays on disk,
                    // unserved, and the caller decides (offline replica, or a stray to set aside).
                    Err(e) => {
                        tracing::error!(target: "kafka.log.LogManager", dir = %path.display(), error = %e, "could not open a partition log");
                        unopened.push(Unopened { topic, partition, dir: path, error: e.to_string() });
                    }
                }
            }
        }
        tracing::info!(target: "kafka.log.LogManager", partitions = loaded.len(), dirs = data_dirs.len(), "log manager opened");
        let manager = LogManager {
            dirs: data_dirs,
            default_config,
            partitions: Mutex::new(hosted),
            offline: Mutex::new(Default::default()),
            probe_streaks: Mutex::new(Default::default()),
            moves: Mutex::new(Default::default()),
            preferred: Mutex::new(Default::default()),
            unopened: Mutex::new(unopened),
        };
        Ok((manager, loaded))
    }

    /// Creates a new, empty partition log in the data directory holding the fewest
    /// partitions (the first such directory on ties).
    pub fn create_partition(&self, topic: &str, partition: i32, config: LogConfig) -> Result<SharedLog, LogError> {
        let (log, leftover) = self.create_partition_with(topic, partition, config, |_| Ok(()))?;
        if let Some(dir) = leftover {
            remove_deleted([dir]);
        }
        Ok(log)
    }

    /// As [`LogManager::create_partition`], with `init` run on the new directory before the log
    /// is opened in it (the caller's own files, such as partition.metadata). All or nothing: if
    /// any step fails, the directory is removed again, so a failed creation leaves no partial
    /// partition behind. A directory of that name already on disk and not hosted (a deletion
    /// or creation that failed part-way) is renamed aside first, never adopted: returned with
    /// the log for [`remove_deleted`].
    pub fn create_partition_with(
        &self,
        topic: &str,
        partition: i32,
        config: LogConfig,
        init: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Result<(SharedLog, Option<PathBuf>), LogError> {
        validate_topic_name(topic)?;
        let name = partition_dir_name(topic, partition);
        if partition < 0 {
            return Err(LogError::UnknownPartition { name });
        }
        let mut partitions = self.partitions.lock();
        if partitions.contains_key(&(topic.to_string(), partition)) {
            return Err(LogError::PartitionExists { name });
        }
        let mut counts = vec![0usize; self.dirs.len()];
        for hosted in partitions.values() {
            counts[hosted.dir_index()] += 1;
        }
        let offline = self.offline.lock();
        if offline.1.contains(&(topic.to_string(), partition)) {
            return Err(LogError::OfflineDir { name, dir: self.dirs[0].path.clone() });
        }
        let preferred = self.preferred.lock().remove(&(topic.to_string(), partition)).filter(|i| !offline.0.contains_key(i));
        let Some(dir_index) = preferred.or_else(|| (0..self.dirs.len()).filter(|i| !offline.0.contains_key(i)).min_by_key(|&i| (counts[i], i))) else {
            return Err(LogError::OfflineDir { name, dir: self.dirs[0].path.clone() });
        };
        drop(offline);
        let mut leftover = None;
        for d in &self.dirs {
            let stale = d.path.join(&name);
            if fs::symlink_metadata(&stale).is_ok() {
                let aside = d.path.join(super::log_mover::deleted_dir_name(&name));
                tracing::warn!(target: "kafka.log.LogManager", dir = %stale.display(), "removing a leftover directory of a partition not hosted here before creating it anew");
                fs::rename(&stale, &aside).map_err(LogError::io("renaming aside a leftover", &stale))?;
                leftover = Some(aside);
            }
        }
        let path = self.dirs[dir_index].path.join(&name);
        let created = fs::create_dir(&path)
            .map_err(LogError::io("creating log directory", &path))
            .and_then(|()| init(&path).map_err(LogError::io("initialising log directory", &path)))
            .and_then(|()| PartitionLog::open(&path, config));
        let log = match created {
            Ok(log) => Arc::new(Mutex::new(log)),
            Err(e) => {
                if let Err(undo) = fs::remove_dir_all(&path) {
                    if undo.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(target: "kafka.log.LogManager", dir = %path.display(), error = %undo,
                            "could not remove a partly created partition directory; the next start removes it");
                    }
                }
                return Err(e);
            }
        };
        partitions.insert((topic.to_string(), partition), Hosted::new(dir_index, Arc::clone(&log)));
        Ok((log, leftover))
    }

    /// Stops hosting a partition without touching its files (its log could not be used).
    pub fn release(&self, topic: &str, partition: i32) {
        self.partitions.lock().remove(&(topic.to_string(), partition));
    }

    /// The partition directories [`LogManager::open`] could not open (taken: asked once).
    pub fn take_unopened(&self) -> Vec<Unopened> {
        std::mem::take(&mut *self.unopened.lock())
    }

    /// Deletes a partition: later operations on outstanding handles fail with
    /// `LogDeleted`; the directory is renamed to `<topic>-<n>.<uuid>-delete` (so a crash
    /// mid-way finishes the deletion at the next start). Returns that directory for
    /// [`remove_deleted`], which frees the files: a large replica takes seconds, so callers
    /// holding locks call it after releasing them.
    pub fn delete_partition(&self, topic: &str, partition: i32) -> Result<PathBuf, LogError> {
        let name = partition_dir_name(topic, partition);
        let hosted = self
            .partitions
            .lock()
            .remove(&(topic.to_string(), partition))
            .ok_or_else(|| LogError::UnknownPartition { name: name.clone() })?;
        if let Some(m) = self.moves.lock().remove(&(topic.to_string(), partition)) {
            m.cancel();
        }
        // Renamed within the directory the log is in now (under its lock: a log-directory
        // move may have just swapped it).
        let mut log = hosted.log.lock();
        log.mark_deleted();
        let path = log.dir().to_path_buf();
        let doomed = path.parent().unwrap_or(Path::new(".")).join(super::log_mover::deleted_dir_name(&name));
        fs::rename(&path, &doomed).map_err(LogError::io("renaming for deletion", &path))?;
        Ok(doomed)
    }

    /// The log of a hosted partition.
    pub fn get(&self, topic: &str, partition: i32) -> Option<SharedLog> {
        self.partitions
            .lock()
            .get(&(topic.to_string(), partition))
            .map(|h| Arc::clone(&h.log))
    }

    /// All hosted partitions.
    pub fn partitions(&self) -> Vec<LoadedPartition> {
        self.partitions
            .lock()
            .iter()
            .map(|((topic, partition), h)| (topic.clone(), *partition, Arc::clone(&h.log)))
            .collect()
    }

    pub fn log_dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// The online directories, to probe without holding any lock.
    pub fn online_dirs(&self) -> Vec<(usize, PathBuf)> {
        let offline = self.offline.lock();
        self.dirs.iter().enumerate().filter(|(i, _)| !offline.0.contains_key(i)).map(|(i, d)| (i, d.path.clone())).collect()
    }

    /// Records probe results (None: the directory is fine); a directory that failed
    /// [`PROBE_FAILURES_TO_OFFLINE`] times in a row is taken offline. Returns those, with
    /// the partitions they held.
    pub fn note_probes(&self, results: Vec<(usize, Option<String>)>) -> Vec<(PathBuf, String, Vec<(String, i32)>)> {
        let mut newly = Vec::new();
        for (i, failure) in results {
            let streak = {
                let mut streaks = self.probe_streaks.lock();
                match &failure {
                    None => {
                        streaks.remove(&i);
                        0
                    }
                    Some(_) => {
                        let s = streaks.entry(i).or_default();
                        *s += 1;
                        *s
                    }
                }
            };
            if let Some(why) = failure {
                if streak >= PROBE_FAILURES_TO_OFFLINE {
                    newly.push((self.dirs[i].path.clone(), why.clone(), self.take_offline(i, why)));
                }
            }
        }
        newly
    }

    /// Whether every directory is offline (then nothing can be served: Kafka halts).
    pub fn all_offline(&self) -> bool {
        self.offline.lock().0.len() == self.dirs.len()
    }

    /// Whether `path` is one of the offline directories.
    pub fn is_dir_offline(&self, path: &Path) -> bool {
        let offline = self.offline.lock();
        self.dirs.iter().enumerate().any(|(i, d)| d.path == path && offline.0.contains_key(&i))
    }

    /// Takes directory `index` offline: its partitions leave the hosted set (their files stay).
    pub fn take_offline(&self, index: usize, why: String) -> Vec<(String, i32)> {
        let mut partitions = self.partitions.lock();
        // Moves into or out of the directory stop first; a swap under way finishes before its
        // log's lock is free, so the directory indexes read below are final.
        let stopped: Vec<Arc<LogMove>> = self.moves.lock().values().filter(|m| m.target == index).cloned().collect();
        for m in stopped {
            m.cancel();
            drop(m.current.lock());
        }
        let keys: Vec<(String, i32)> = partitions.iter().filter(|(_, h)| h.dir_index() == index).map(|(k, _)| k.clone()).collect();
        for k in &keys {
            partitions.remove(k);
        }
        let mut offline = self.offline.lock();
        offline.0.insert(index, why);
        offline.1.extend(keys.iter().cloned());
        drop(offline);
        self.moves.lock().retain(|key, m| {
            let affected = m.target == index || keys.contains(key);
            if affected {
                m.cancel();
            }
            !affected
        });
        keys
    }

    /// Registers a move of a hosted partition's log to `dir` (AlterReplicaLogDirs); the mover
    /// creates the copy and runs it. A move to another directory under way is cancelled
    /// first; asking for the directory the log is in cancels any move and changes nothing.
    /// No file work: it runs under the manager's lock.
    pub fn begin_move(&self, topic: &str, partition: i32, dir: &Path) -> Result<MoveStart, MoveRefused> {
        let Some(target) = self.dirs.iter().position(|d| d.path == dir) else {
            return Err(MoveRefused::UnknownDir);
        };
        let key = (topic.to_string(), partition);
        {
            let offline = self.offline.lock();
            if offline.0.contains_key(&target) || offline.1.contains(&key) {
                return Err(MoveRefused::Offline);
            }
        }
        let (current, hosted_index) = {
            let partitions = self.partitions.lock();
            match partitions.get(&key) {
                Some(h) => (Arc::clone(&h.log), Arc::clone(&h.dir_index)),
                None => {
                    drop(partitions);
                    self.preferred.lock().insert(key, target);
                    return Err(MoveRefused::NotHosted);
                }
            }
        };
        if super::log_mover::future_dir_name(topic, partition).is_none() {
            return Err(MoveRefused::NameTooLong);
        }
        let mut moves = self.moves.lock();
        if let Some(m) = moves.get(&key) {
            if m.target == target {
                return Ok(MoveStart::AlreadyMoving);
            }
            m.cancel();
            // A swap under way finishes before the log's lock is free (and one not started
            // sees the cancel): the directory index read below is then the final one.
            drop(m.current.lock());
            moves.remove(&key);
        }
        if hosted_index.load(Ordering::Acquire) == target {
            return Ok(MoveStart::AlreadyThere);
        }
        let log_move = Arc::new(LogMove {
            topic: topic.to_string(),
            partition,
            current,
            target,
            target_dir: self.dirs[target].path.clone(),
            hosted_index,
            cancelled: AtomicBool::new(false),
            // The copy starts at the log start (the mover sets it when it begins).
            copied_end: AtomicI64::new(0),
            copied_bytes: AtomicU64::new(0),
        });
        moves.insert(key, Arc::clone(&log_move));
        Ok(MoveStart::Started(log_move))
    }

    /// The move registered for a partition, if one is.
    pub fn move_of(&self, topic: &str, partition: i32) -> Option<Arc<LogMove>> {
        self.moves.lock().get(&(topic.to_string(), partition)).cloned()
    }

    /// A move ended, completed or not (the directory index changed at the swap: see
    /// [`LogMove::swapped`]).
    pub fn end_move(&self, log_move: &Arc<LogMove>) {
        let key = (log_move.topic.clone(), log_move.partition);
        let mut moves = self.moves.lock();
        if moves.get(&key).is_some_and(|m| Arc::ptr_eq(m, log_move)) {
            moves.remove(&key);
        }
    }

    /// Drops a remembered directory for a partition that does not exist.
    pub fn forget_preferred(&self, topic: &str, partition: i32) {
        self.preferred.lock().remove(&(topic.to_string(), partition));
    }

    /// Moves in progress: (topic, partition, the move).
    pub fn moves(&self) -> Vec<(String, i32, Arc<LogMove>)> {
        self.moves.lock().iter().map(|((t, p), m)| (t.clone(), *p, Arc::clone(m))).collect()
    }

    /// Offline directories and why.
    pub fn offline_dirs(&self) -> Vec<(PathBuf, String)> {
        self.offline.lock().0.iter().map(|(i, why)| (self.dirs[*i].path.clone(), why.clone())).collect()
    }

    /// Whether a partition was on a directory now offline.
    pub fn is_offline(&self, topic: &str, partition: i32) -> bool {
        self.offline.lock().1.contains(&(topic.to_string(), partition))
    }

    pub fn default_config(&self) -> &LogConfig {
        &self.default_config
    }

    /// Clean shutdown: flushes and writes index files of every log. Tries all logs and
    /// returns the first error.
    pub fn close_all(&self) -> Result<(), LogError> {
        let mut first_error = None;
        for hosted in self.partitions.lock().values() {
            if let Err(e) = hosted.log.lock().close() {
                tracing::error!(target: "kafka.log.LogManager", error = %e, "closing a partition log failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::validate_produce_records;
    use crate::log::test_util::{encode_batch, BatchSpec};

    fn append_one(log: &SharedLog) {
        let mut bytes = encode_batch(&BatchSpec::values(&[b"x"]));
        let headers = validate_produce_records(&bytes, 1 << 20).unwrap();
        log.lock().append(&mut bytes, &headers, 0, 0).unwrap();
    }

    #[test]
    fn parses_partition_directory_names() {
        assert_eq!(
            parse_partition_dir_name("my-topic.v2-13"),
            Some(("my-topic.v2".to_string(), 13))
        );
        assert_eq!(parse_partition_dir_name("t-0"), Some(("t".to_string(), 0)));
        for bad in [
            "t-",
            "-3",
            "t-+1",
            "t-x",
            "topic",
            "t-0.abc-delete",
            "a b-1",
            "t-99999999999",
        ] {
            assert_eq!(parse_partition_dir_name(bad), None, "{bad}");
        }
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
        assert_eq!(validate_topic_name("../etc").unwrap_err().kafka_error_code(), 17);
    }

    #[test]
    fn an_offline_directory_hosts_nothing_and_gets_nothing_new() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().join("d1"), root.path().join("d2")];
        let (manager, _) = LogManager::open(&dirs, LogConfig::default()).unwrap();
        for p in 0..4 {
            manager.create_partition("t", p, LogConfig::default()).unwrap();
        }
        assert!(manager.note_probes(probe_dirs(manager.online_dirs())).is_empty(), "healthy directories pass the probe");
        let mut gone = manager.take_offline(1, "EIO".into());
        gone.sort();
        assert_eq!(gone, vec![("t".to_string(), 1), ("t".to_string(), 3)], "the partitions placed on d2");
        assert!(manager.get("t", 1).is_none() && manager.is_offline("t", 1) && !manager.is_offline("t", 0));
        assert_eq!(manager.offline_dirs(), vec![(dirs[1].clone(), "EIO".to_string())]);
        // Not re-created, and new partitions go to the directory still online.
        assert!(matches!(manager.create_partition("t", 1, LogConfig::default()), Err(LogError::OfflineDir { .. })));
        manager.create_partition("t", 9, LogConfig::default()).unwrap();
        assert!(dirs[0].join("t-9").is_dir());
        assert!(manager.note_probes(probe_dirs(manager.online_dirs())).is_empty(), "an offline directory is not probed again");
        assert!(!manager.all_offline());
    }

    #[test]
    fn a_directory_goes_offline_after_failing_probes_in_a_row_only() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().join("d1"), root.path().join("d2")];
        let (manager, _) = LogManager::open(&dirs, LogConfig::default()).unwrap();
        let fail = |i: usize| vec![(i, Some("EIO".to_string()))];
        assert!(manager.note_probes(fail(1)).is_empty());
        assert!(manager.note_probes(fail(1)).is_empty());
        assert!(manager.note_probes(vec![(1, None)]).is_empty(), "a good probe resets the count");
        for _ in 1..PROBE_FAILURES_TO_OFFLINE {
            assert!(manager.note_probes(fail(1)).is_empty());
        }
        let gone = manager.note_probes(fail(1));
        assert_eq!(gone.len(), 1);
        assert!(manager.is_dir_offline(&dirs[1]) && !manager.is_dir_offline(&dirs[0]));
        assert_eq!(manager.online_dirs(), vec![(0, dirs[0].clone())]);
    }

    #[test]
    fn places_partitions_and_reloads_them() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().join("d1"), root.path().join("d2")];
        let (manager, loaded) = LogManager::open(&dirs, LogConfig::default()).unwrap();
        assert!(loaded.is_empty());
        for p in 0..3 {
            append_one(
                &manager
                    .create_partition("orders.eu-west", p, LogConfig::default())
                    .unwrap(),
            );
        }
        assert!(dirs[0].join("orders.eu-west-0").is_dir());
        assert!(dirs[1].join("orders.eu-west-1").is_dir());
        assert!(dirs[0].join("orders.eu-west-2").is_dir());
        assert!(matches!(
            manager.create_partition("orders.eu-west", 1, LogConfig::default()),
            Err(LogError::PartitionExists { .. })
        ));
        assert!(matches!(
            manager.create_partition("bad/name", 0, LogConfig::default()),
            Err(LogError::InvalidTopic { .. })
        ));
        manager.close_all().unwrap();
        drop(manager);

        fs::write(dirs[0].join("meta.properties"), b"broker.id=1").unwrap();
        fs::create_dir(dirs[1].join("not a partition")).unwrap();
        fs::create_dir(dirs[1].join("gone-7.0123abcd-delete")).unwrap();
        let (manager, mut loaded) = LogManager::open(&dirs, LogConfig::default()).unwrap();
        loaded.sort_by_key(|l| l.1);
        let found: Vec<_> = loaded
            .iter()
            .map(|(t, p, log)| (t.as_str(), *p, log.lock().log_end_offset()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("orders.eu-west", 0, 1),
                ("orders.eu-west", 1, 1),
                ("orders.eu-west", 2, 1)
            ]
        );
        assert!(!dirs[1].join("gone-7.0123abcd-delete").exists());
        assert!(manager.get("orders.eu-west", 2).is_some());
        assert_eq!(manager.partitions().len(), 3);
    }

    #[test]
    fn a_locked_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().to_path_buf()];
        let (_manager, _) = LogManager::open(&dirs, LogConfig::default()).unwrap();
        let err = LogManager::open(&dirs, LogConfig::default()).unwrap_err();
        assert!(matches!(&err, LogError::DirLocked { dir } if dir == root.path()));
        assert!(err.to_string().contains(&root.path().display().to_string()));
    }

    #[test]
    fn delete_partition_removes_the_directory_and_fences_handles() {
        let root = tempfile::tempdir().unwrap();
        let (manager, _) = LogManager::open(&[root.path().to_path_buf()], LogConfig::default()).unwrap();
        let log = manager.create_partition("t", 0, LogConfig::default()).unwrap();
        append_one(&log);
        let doomed = manager.delete_partition("t", 0).unwrap();
        assert!(!root.path().join("t-0").exists());
        remove_deleted([doomed]);
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1, "only .lock remains");
        assert!(matches!(
            log.lock().read(0, 10, i64::MAX),
            Err(LogError::LogDeleted { .. })
        ));
        assert!(manager.get("t", 0).is_none());
        assert!(matches!(
            manager.delete_partition("t", 0),
            Err(LogError::UnknownPartition { .. })
        ));
        // The name can be reused.
        assert_eq!(
            manager
                .create_partition("t", 0, LogConfig::default())
                .unwrap()
                .lock()
                .log_end_offset(),
            0
        );
    }

    #[test]
    fn the_same_partition_in_two_directories_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().join("a"), root.path().join("b")];
        fs::create_dir_all(dirs[0].join("t-0")).unwrap();
        fs::create_dir_all(dirs[1].join("t-0")).unwrap();
        assert!(matches!(
            LogManager::open(&dirs, LogConfig::default()),
            Err(LogError::DuplicatePartition { .. })
        ));
    }

    /// All or nothing: a creation that fails part-way leaves no directory behind.
    #[test]
    fn a_failed_creation_leaves_no_partial_partition_directory() {
        let root = tempfile::tempdir().unwrap();
        let (manager, _) = LogManager::open(&[root.path().to_path_buf()], LogConfig::default()).unwrap();
        let failed = manager.create_partition_with("t", 0, LogConfig::default(), |dir| {
            fs::write(dir.join("partition.metadata"), b"half")?;
            Err(io::Error::from_raw_os_error(libc::EMFILE))
        });
        let err = failed.err().unwrap();
        assert!(err.to_string().contains("Too many open files"), "{err}");
        assert!(!root.path().join("t-0").exists());
        assert!(manager.get("t", 0).is_none());
        manager.create_partition("t", 0, LogConfig::default()).unwrap();
    }
}
