//! Moving a partition's log to another of this broker's `log.dirs` while it stays in use
//! (AlterReplicaLogDirs; Kafka's "future replica" and ReplicaAlterLogDirsThread).
//!
//! The copy is a second `PartitionLog`, the *future* log, in `<target dir>/<topic>-<n>.<id>-future`.
//! It follows the current log as a follower follows its leader: whole batches, appended as
//! they are (offsets, epochs and producer state carried by the batches), the current log's
//! lock held only to plan each read ([`copy_round`]). A truncation of the current log (a
//! follower's, after a leader change) is mirrored by comparing leader epochs, as KIP-279
//! does between replicas. When the copy is close behind, [`complete`] takes the lock, copies
//! the last batches, and swaps: the current directory is renamed for deletion, the future one
//! to the partition's name, and the future log replaces the current one inside the same
//! shared handle, so every holder (partition, fetches, cleaner) goes on with the new files.
//!
//! Crash safety rests on one order: the current directory is renamed away only once the
//! future log is complete and fsynced. At start-up ([`resolve_future_dirs`]) a future
//! directory whose partition still has its directory is an unfinished copy and is removed;
//! one whose partition has none is the complete copy of a swap cut short, and takes the name.

use super::fetch::ReadPlan;
use super::log_manager::{partition_dir_name, parse_partition_dir_name, SharedLog, DELETE_SUFFIX};
use super::partition_log::{sync_dir, PartitionLog};
use super::record_batch::validate_fetched_records;
use super::LogError;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Suffix of a future log's directory.
pub const FUTURE_SUFFIX: &str = "-future";

/// What one [`copy_round`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Batch bytes appended to the future log.
    pub copied_bytes: usize,
    /// Offsets the future log is behind the current one after the round.
    pub behind: i64,
}

/// The directory name of a future log of `topic`-`partition`.
pub fn future_dir_name(topic: &str, partition: i32) -> String {
    format!("{}.{}{FUTURE_SUFFIX}", partition_dir_name(topic, partition), uuid::Uuid::new_v4().simple())
}

/// The partition a future log's directory name belongs to.
pub fn parse_future_dir_name(name: &str) -> Option<(String, i32)> {
    let stem = name.strip_suffix(FUTURE_SUFFIX)?;
    let (partition_dir, id) = stem.rsplit_once('.')?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    parse_partition_dir_name(partition_dir)
}

/// Makes `future` a prefix of `current` again: truncates what diverged (the current log was
/// truncated by a leader change; leader epochs tell where, as between follower and leader)
/// and restarts it at the current log start when retention has moved past its end.
fn align(current: &PartitionLog, future: &mut PartitionLog, now_ms: i64) -> Result<(), LogError> {
    let end = future.log_end_offset();
    let mut keep = end.min(current.log_end_offset());
    if let Some(epoch) = future.epoch_history().latest_epoch() {
        let answer = current.end_offset_for_epoch(epoch);
        keep = keep.min(crate::cluster::leader_epochs::truncation_offset(future.epoch_history(), end, answer));
    }
    if keep < end {
        future.truncate_to(keep, now_ms)?;
    }
    if future.log_end_offset() < current.log_start_offset() {
        future.truncate_fully_and_start_at(current.log_start_offset(), now_ms)?;
    }
    Ok(())
}

/// Under `current`'s lock: aligns `future` and plans a read of up to `max_bytes` after its end.
fn plan_next(current: &PartitionLog, future: &mut PartitionLog, max_bytes: usize, now_ms: i64) -> Result<ReadPlan, LogError> {
    current.ensure_live()?;
    align(current, future, now_ms)?;
    current.plan_read(future.log_end_offset(), max_bytes, i64::MAX)
}

/// Reads a plan and appends its whole batches to `future`; returns the bytes appended.
fn append_read(plan: ReadPlan, future: &mut PartitionLog, now_ms: i64) -> Result<usize, LogError> {
    if plan.bytes() == 0 {
        return Ok(0);
    }
    let slice = plan.read()?;
    let headers = validate_fetched_records(&slice.records)?;
    let complete: usize = headers.iter().map(|h| h.total_size()).sum();
    if complete > 0 {
        future.append_as_follower(&slice.records[..complete], &headers, now_ms)?;
    }
    Ok(complete)
}

/// One step of the copy: under `current`'s lock, aligns the future log and plans a read of up
/// to `max_bytes` after its end; reads and appends without the lock. Blocking file I/O.
pub fn copy_round(current: &SharedLog, future: &mut PartitionLog, max_bytes: usize, now_ms: i64) -> Result<Round, LogError> {
    let plan = plan_next(&current.lock(), future, max_bytes, now_ms)?;
    let copied_bytes = append_read(plan, future, now_ms)?;
    let behind = current.lock().log_end_offset() - future.log_end_offset();
    Ok(Round { copied_bytes, behind })
}

/// Copies `name` (a small per-partition file such as `partition.metadata`) from one log
/// directory to another, if it exists.
fn carry_file(from: &Path, to: &Path, name: &str) -> Result<(), LogError> {
    let source = from.join(name);
    match fs::read(&source) {
        Ok(bytes) => {
            let target = to.join(name);
            let file = fs::File::create(&target).map_err(LogError::io("creating", &target))?;
            use std::io::Write;
            let mut file = file;
            file.write_all(&bytes).and_then(|_| file.sync_all()).map_err(LogError::io("writing", &target))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("reading", &source)(e)),
    }
}

/// Finishes the move: under `current`'s lock, copies what is left, takes over its config,
/// leader-epoch history and cleaner checkpoint, fsyncs, carries the small per-partition files
/// named in `carry` (e.g. `partition.metadata`), renames the current directory for deletion
/// and the future one to the partition's name in its directory, and puts the future log in
/// the current one's place. Returns the renamed current directory, to remove once the lock
/// is released.
///
/// The lock is held for the remaining copy: call this when [`copy_round`] says little is left.
pub fn complete(current: &SharedLog, mut future: PartitionLog, carry: &[&str], now_ms: i64) -> Result<PathBuf, LogError> {
    let mut log = current.lock();
    loop {
        let plan = plan_next(&log, &mut future, 8 << 20, now_ms)?;
        if append_read(plan, &mut future, now_ms)? == 0 {
            break;
        }
    }
    let old_dir = log.dir().to_path_buf();
    if future.log_end_offset() != log.log_end_offset() {
        return Err(LogError::MoveIncomplete {
            dir: old_dir,
            reason: format!(
                "the copy ends at offset {} but the log at {} (a gap at the log's end that no batch covers)",
                future.log_end_offset(),
                log.log_end_offset()
            ),
        });
    }
    future.take_over_state_of(&log)?;
    future.flush()?;
    for name in carry {
        carry_file(&old_dir, future.dir(), name)?;
    }
    sync_dir(future.dir())?;
    let (Some(old_parent), Some(new_parent), Some(name)) = (old_dir.parent(), future.dir().parent(), old_dir.file_name()) else {
        return Err(LogError::MoveIncomplete { dir: old_dir.clone(), reason: "the log directory has no parent".into() });
    };
    let final_dir = new_parent.join(name);
    let doomed = old_parent.join(format!("{}.{}{DELETE_SUFFIX}", name.to_string_lossy(), uuid::Uuid::new_v4().simple()));
    fs::rename(&old_dir, &doomed).map_err(LogError::io("renaming for deletion", &old_dir))?;
    sync_dir(old_parent)?;
    crate::crash_point::reached("log.move.mid_swap");
    if let Err(e) = fs::rename(future.dir(), &final_dir) {
        // The current log goes back where it was; the copy is abandoned (removed at start-up).
        let _ = fs::rename(&doomed, &old_dir);
        return Err(LogError::io("renaming the moved log into place", &final_dir)(e));
    }
    sync_dir(new_parent)?;
    future.set_dir(&final_dir);
    let mut old = std::mem::replace(&mut *log, future);
    old.mark_deleted();
    Ok(doomed)
}

/// Start-up: settles the future-log directories in `dirs` before any log is opened. Returns
/// the partitions whose future log took the partition's name (a swap cut short by a crash).
pub fn resolve_future_dirs(dirs: &[PathBuf]) -> Result<Vec<(String, i32)>, LogError> {
    let mut present: HashSet<(String, i32)> = HashSet::new();
    let mut futures = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(key) = parse_future_dir_name(&name) {
                futures.push((key, entry.path()));
            } else if let Some(key) = parse_partition_dir_name(&name) {
                present.insert(key);
            }
        }
    }
    let mut promoted = Vec::new();
    for ((topic, partition), path) in futures {
        let key = (topic, partition);
        if present.contains(&key) {
            tracing::info!(target: "kafka.log.LogManager", dir = %path.display(),
                "removing the copy of an unfinished log-directory move (the partition's log stayed where it was; send AlterReplicaLogDirs again to move it)");
            fs::remove_dir_all(&path).map_err(LogError::io("removing an unfinished future log", &path))?;
        } else {
            let parent = path.parent().unwrap_or(Path::new("."));
            let target = parent.join(partition_dir_name(&key.0, key.1));
            tracing::warn!(target: "kafka.log.LogManager", dir = %target.display(),
                "finishing a log-directory move cut short by a crash: the complete copy takes the partition's name");
            fs::rename(&path, &target).map_err(LogError::io("renaming a complete future log into place", &path))?;
            sync_dir(parent)?;
            present.insert(key.clone());
            promoted.push(key);
        }
    }
    Ok(promoted)
}

#[cfg(test)]
#[path = "log_mover_tests.rs"]
mod tests;
