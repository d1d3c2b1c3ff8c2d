//! Moving a partition's log to another of this broker's `log.dirs` while it stays in use
//! (AlterReplicaLogDirs; Kafka's "future replica" and ReplicaAlterLogDirsThread).
//!
//! The copy is a second `PartitionLog`, the *future* log, in `<target dir>/<topic>-<n>.<id>-future`.
//! It follows the current log as a follower follows its leader: whole batches, appended as
//! they are (offsets, epochs and producer state carried by the batches). The current log's
//! lock is held only to decide (what to truncate, where to read); the copy's own file work
//! and the reads run without it ([`copy_round`]), and a truncation of the current log during
//! an unlocked read is caught by its truncation count. A truncation of the current log (a
//! follower's, after a leader change) is mirrored by comparing leader epochs, as KIP-279
//! does between replicas. When the copy has caught up, [`complete`] takes the lock, copies
//! the last batches and swaps: the future log replaces the current one inside the same shared
//! handle, so every holder (partition, fetches, cleaner) goes on with the new files.
//!
//! Crash safety: before anything is renamed the copy gets a commit marker
//! ([`COMMITTED_MARKER`], fsynced); then the copy is renamed to the partition's name in its
//! directory, then the current directory is renamed for deletion, then the marker goes. At
//! start-up ([`resolve_future_dirs`]) a marked directory wins over any other copy of its
//! partition, and an unmarked future directory is an unfinished copy and is removed.

use super::fetch::ReadPlan;
use super::log_manager::{partition_dir_name, parse_partition_dir_name, SharedLog, DELETE_SUFFIX};
use super::partition_log::{sync_dir, PartitionLog};
use super::record_batch::validate_fetched_records;
use super::LogError;
use std::fs;
use std::path::{Path, PathBuf};

/// Suffix of a future log's directory.
pub const FUTURE_SUFFIX: &str = "-future";

/// The file that marks a complete copy (written, fsynced, before the first rename).
pub const COMMITTED_MARKER: &str = ".lantern-move-committed";

/// What one [`copy_round`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Batch bytes appended to the future log.
    pub copied_bytes: usize,
    /// Whether the copy reached the current log's end as it was when the read was planned.
    pub caught_up: bool,
}

/// The directory name of a future log of `topic`-`partition`, or None when it would be longer
/// than a file name may be (Kafka answers INVALID_TOPIC_EXCEPTION then).
pub fn future_dir_name(topic: &str, partition: i32) -> Option<String> {
    let name = format!("{}.{}{FUTURE_SUFFIX}", partition_dir_name(topic, partition), uuid::Uuid::new_v4().simple());
    (name.len() <= 255).then_some(name)
}

/// The partition a future log's directory name belongs to.
pub fn parse_future_dir_name(name: &str) -> Option<(String, i32)> {
    let stem = name.strip_suffix(FUTURE_SUFFIX)?;
    let (partition_dir, id) = stem.rsplit_once('.')?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    parse_partition_dir_name(partition_dir)
}

/// Under `current`'s lock: how far `future` agrees with it (where to truncate the copy: a
/// truncation of the current log shows as diverging leader epochs, as between a follower and
/// its leader) and where the current log starts.
fn agreement(current: &PartitionLog, future: &PartitionLog) -> (i64, i64) {
    let end = future.log_end_offset();
    let mut keep = end.min(current.log_end_offset());
    if let Some(epoch) = future.epoch_history().latest_epoch() {
        let answer = current.end_offset_for_epoch(epoch);
        keep = keep.min(crate::cluster::leader_epochs::truncation_offset(future.epoch_history(), end, answer));
    }
    (keep, current.log_start_offset())
}

/// Makes `future` a prefix of the current log again ([`agreement`]'s answer): truncates what
/// diverged, restarts it at the current log start when retention has moved past its end, and
/// drops its segments wholly below the current log start. File work on the copy only.
fn align(future: &mut PartitionLog, (keep, start): (i64, i64), now_ms: i64) -> Result<(), LogError> {
    if keep < future.log_end_offset() {
        future.truncate_to(keep, now_ms)?;
    }
    if future.log_end_offset() < start {
        future.truncate_fully_and_start_at(start, now_ms)?;
    } else if future.log_start_offset() < start {
        future.delete_segments_below(start, now_ms)?;
    }
    Ok(())
}

/// The copy's segments start where the current log's do (reads stop at a segment's end, and
/// the copy rolls where the next one starts), so that retention's deletions, and so the log
/// start offset, are the same in both. The copy never rolls by itself: see [`future_config`].
fn follow_segment(future: &mut PartitionLog, segment_base: i64, now_ms: i64) -> Result<(), LogError> {
    if future.active().base_offset() < segment_base && future.log_end_offset() <= segment_base {
        future.roll_to(segment_base, now_ms)?;
    }
    Ok(())
}

/// The copy's config while it is made: the current log's, without size-, time- or
/// index-based rolls (its segments follow the current log's); `complete` restores the real one.
pub fn future_config(current: &super::LogConfig) -> super::LogConfig {
    super::LogConfig {
        segment_bytes: u64::MAX,
        segment_ms: u64::MAX,
        segment_index_bytes: usize::MAX,
        max_compaction_lag_ms: i64::MAX,
        ..current.clone()
    }
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

/// One step of the copy, with `current`'s lock held only to decide: aligns the copy, plans a
/// read of up to `max_bytes` after its end, then reads and appends without the lock. A
/// truncation of the current log during the read undoes the round. Blocking file I/O.
pub fn copy_round(current: &SharedLog, future: &mut PartitionLog, max_bytes: usize, now_ms: i64) -> Result<Round, LogError> {
    let (agreed, truncations) = {
        let log = current.lock();
        log.ensure_live()?;
        (agreement(&log, future), log.truncations())
    };
    align(future, agreed, now_ms)?;
    let (plan, end, (segment_base, segment_end)) = {
        let log = current.lock();
        log.ensure_live()?;
        if log.truncations() != truncations || log.log_start_offset() != agreed.1 {
            // Truncated or trimmed again meanwhile: the next round aligns anew.
            return Ok(Round { copied_bytes: 0, caught_up: false });
        }
        let bounds = log.segment_bounds(future.log_end_offset());
        (log.plan_read(future.log_end_offset(), max_bytes, bounds.1)?, log.log_end_offset(), bounds)
    };
    follow_segment(future, segment_base, now_ms)?;
    let before = future.log_end_offset();
    let appended = append_read(plan, future, now_ms);
    if current.lock().truncations() != truncations {
        // The bytes read may be the new leader's, at positions planned for the old ones.
        if future.log_end_offset() > before {
            future.truncate_to(before, now_ms)?;
        }
        return Ok(Round { copied_bytes: 0, caught_up: false });
    }
    let copied_bytes = appended?;
    if copied_bytes == 0 && future.log_end_offset() < end {
        // Offsets that no batch holds any more (compacted away) at the end of a segment or of
        // the log: the copy moves on to the next segment, or its end moves there too.
        follow_segment(future, segment_end.min(end), now_ms)?;
    }
    Ok(Round { copied_bytes, caught_up: future.log_end_offset() >= end })
}

/// Copies `name` (a small per-partition file such as `partition.metadata`) from one log
/// directory to another, if it exists.
fn carry_file(from: &Path, to: &Path, name: &str) -> Result<(), LogError> {
    let source = from.join(name);
    match fs::read(&source) {
        Ok(bytes) => write_synced(&to.join(name), &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("reading", &source)(e)),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    use std::io::Write;
    let mut file = fs::File::create(path).map_err(LogError::io("creating", path))?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(LogError::io("writing", path))
}

/// Finishes the move: under `current`'s lock, copies what is left, takes over its config
/// and leader-epoch history, fsyncs, carries the small per-partition files named in `carry`
/// (e.g. `partition.metadata`), marks the copy committed, renames it to the partition's name
/// in its directory and the current directory for deletion, and puts the future log in the
/// current one's place. `swapped` runs under the lock once the future log is in place (the
/// log manager records the new directory there). Returns what to remove with
/// [`finish_move_cleanup`] once the lock is released.
///
/// Nothing changes unless the copy could be renamed into place; after that the swap always
/// completes, so appends never go to a directory about to be deleted. The lock is held for
/// the remaining copy: call this once [`copy_round`] has caught up, with the copy flushed.
pub fn complete(
    current: &SharedLog,
    mut future: PartitionLog,
    carry: &[&str],
    cancelled: impl Fn() -> bool,
    swapped: impl FnOnce(),
    now_ms: i64,
) -> Result<MovedFrom, LogError> {
    let mut log = current.lock();
    loop {
        log.ensure_live()?;
        if cancelled() {
            return Err(LogError::MoveIncomplete { dir: log.dir().to_path_buf(), reason: "cancelled".into() });
        }
        let agreed = agreement(&log, &future);
        align(&mut future, agreed, now_ms)?;
        let (segment_base, segment_end) = log.segment_bounds(future.log_end_offset());
        follow_segment(&mut future, segment_base, now_ms)?;
        let plan = log.plan_read(future.log_end_offset(), 8 << 20, segment_end)?;
        if append_read(plan, &mut future, now_ms)? == 0 {
            // The rest of this segment has no batch left (compacted away): on to the next, or
            // done at the log's end.
            let before = future.log_end_offset();
            follow_segment(&mut future, segment_end.min(log.log_end_offset()), now_ms)?;
            if future.log_end_offset() == before {
                break;
            }
        }
    }
    let old_dir = log.dir().to_path_buf();
    if future.log_end_offset() != log.log_end_offset() {
        return Err(LogError::MoveIncomplete {
            dir: old_dir,
            reason: format!("the copy ends at offset {} but the log at {}", future.log_end_offset(), log.log_end_offset()),
        });
    }
    future.take_over_state_of(&log)?;
    future.flush()?;
    for name in carry {
        carry_file(&old_dir, future.dir(), name)?;
    }
    let (Some(old_parent), Some(new_parent), Some(name)) = (old_dir.parent(), future.dir().parent(), old_dir.file_name()) else {
        return Err(LogError::MoveIncomplete { dir: old_dir.clone(), reason: "the log directory has no parent".into() });
    };
    let (old_parent, new_parent) = (old_parent.to_path_buf(), new_parent.to_path_buf());
    // A marker left in the current directory by an earlier move's failed tidy-up would make
    // two marked directories: it goes first.
    match fs::remove_file(old_dir.join(COMMITTED_MARKER)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(LogError::io("removing", &old_dir.join(COMMITTED_MARKER))(e)),
        _ => {}
    }
    let marker = future.dir().join(COMMITTED_MARKER);
    let committed = write_synced(&marker, b"").and_then(|_| sync_dir(future.dir())).and_then(|_| sync_dir(&new_parent));
    let final_dir = new_parent.join(name);
    let renamed = committed.and_then(|_| fs::rename(future.dir(), &final_dir).map_err(LogError::io("renaming the moved log into place", &final_dir)));
    if let Err(e) = renamed {
        let _ = fs::remove_file(&marker);
        return Err(e);
    }
    // From here the copy is the partition's log (a start-up now prefers it, marked, over the
    // old directory): the swap completes whatever fails below.
    future.set_dir(&final_dir);
    if let Err(e) = sync_dir(&new_parent) {
        tracing::error!(target: "kafka.log.LogManager", error = %e, "could not sync the log directory after moving a log into it");
    }
    crate::crash_point::reached("log.move.mid_swap");
    let doomed = old_parent.join(deleted_dir_name(&name.to_string_lossy()));
    let left = match fs::rename(&old_dir, &doomed).map_err(LogError::io("renaming for deletion", &old_dir)).and_then(|_| sync_dir(&old_parent)) {
        Ok(()) => MovedFrom { dir: doomed, marker: None },
        Err(e) => {
            // The old directory may still be under the partition's name: it must be gone
            // before the marker goes (`finish_move_cleanup`), or a start-up could not tell them apart.
            tracing::error!(target: "kafka.log.LogManager", dir = %old_dir.display(), error = %e,
                "could not rename the moved log's old directory for deletion; removing it in place");
            let dir = if doomed.exists() { doomed } else { old_dir.clone() };
            MovedFrom { dir, marker: Some(final_dir.join(COMMITTED_MARKER)) }
        }
    };
    let mut old = std::mem::replace(&mut *log, future);
    old.mark_deleted();
    swapped();
    drop(log);
    if left.marker.is_none() {
        // The old directory is out of the partition's name: the marker is no longer needed.
        let tidy = fs::remove_file(final_dir.join(COMMITTED_MARKER))
            .map_err(LogError::io("removing", &final_dir.join(COMMITTED_MARKER)))
            .and_then(|_| sync_dir(&final_dir));
        if let Err(e) = tidy {
            tracing::warn!(target: "kafka.log.LogManager", error = %e, "could not remove a log-directory move's commit marker; the next start does");
        }
    }
    Ok(left)
}

/// What a completed move left behind: the old directory to remove (renamed for deletion, or
/// still under the partition's name if that rename failed) and, in the latter case, the
/// commit marker to remove once it is gone ([`finish_move_cleanup`]).
#[derive(Debug)]
pub struct MovedFrom {
    pub dir: PathBuf,
    pub marker: Option<PathBuf>,
}

/// Removes what a completed move left behind (blocking: frees the old copy's blocks).
pub fn finish_move_cleanup(left: MovedFrom) {
    match fs::remove_dir_all(&left.dir) {
        Ok(()) => {
            if let Some(marker) = left.marker {
                if let Err(e) = fs::remove_file(&marker) {
                    tracing::warn!(target: "kafka.log.LogManager", file = %marker.display(), error = %e, "could not remove a log-directory move's commit marker; the next start does");
                }
            }
        }
        Err(e) => tracing::warn!(target: "kafka.log.LogManager", dir = %left.dir.display(), error = %e,
            "could not remove the moved log's old directory; the next start removes it"),
    }
}

/// `<partition dir name>.<id>-delete`, the partition dir name cut so the whole fits in a file
/// name (Kafka shortens the topic the same way).
pub fn deleted_dir_name(partition_dir: &str) -> String {
    let suffix = format!(".{}{DELETE_SUFFIX}", uuid::Uuid::new_v4().simple());
    let mut keep = partition_dir.len().min(255 - suffix.len());
    while !partition_dir.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &partition_dir[..keep])
}

/// Start-up: settles log-directory moves before any log is opened. For each partition, a
/// directory holding the commit marker (a copy complete before a crash) wins: any other
/// directory of the partition goes, and so does the marker; an unmarked future directory is
/// an unfinished copy and goes. Returns the partitions whose moved copy won.
pub fn resolve_future_dirs(dirs: &[PathBuf]) -> Result<Vec<(String, i32)>, LogError> {
    use std::collections::BTreeMap;
    // Per partition: its directories named as a partition, and its future directories.
    let mut found: BTreeMap<(String, i32), (Vec<PathBuf>, Vec<PathBuf>)> = BTreeMap::new();
    for dir in dirs {
        for entry in fs::read_dir(dir).map_err(LogError::io("listing data directory", dir))? {
            let entry = entry.map_err(LogError::io("listing data directory", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(key) = parse_future_dir_name(&name) {
                found.entry(key).or_default().1.push(entry.path());
            } else if let Some(key) = parse_partition_dir_name(&name) {
                found.entry(key).or_default().0.push(entry.path());
            }
        }
    }
    let marked = |d: &PathBuf| d.join(COMMITTED_MARKER).exists();
    let remove = |d: &Path, why: &str| -> Result<(), LogError> {
        tracing::info!(target: "kafka.log.LogManager", dir = %d.display(), "{why}");
        fs::remove_dir_all(d).map_err(LogError::io("removing", d))
    };
    let mut won = Vec::new();
    for (key, (plain, futures)) in found {
        if futures.is_empty() && !plain.iter().any(marked) {
            continue;
        }
        let winner = match plain.iter().find(|d| marked(d)) {
            Some(w) => Some(w.clone()),
            None if plain.is_empty() => match futures.iter().find(|d| marked(d)) {
                Some(f) => {
                    let target = f.parent().unwrap_or(Path::new(".")).join(partition_dir_name(&key.0, key.1));
                    fs::rename(f, &target).map_err(LogError::io("renaming a complete moved log into place", f))?;
                    Some(target)
                }
                None => None,
            },
            None => None,
        };
        // With a winner every other directory of the partition goes; without one (the log
        // never left its directory) only the copies.
        let losers: Vec<&PathBuf> = match &winner {
            Some(w) => plain.iter().chain(futures.iter()).filter(|d| *d != w).collect(),
            None => futures.iter().collect(),
        };
        for d in losers.into_iter().filter(|d| d.exists()) {
            let why = if winner.is_some() {
                "removing a partition directory superseded by a log-directory move a crash cut short"
            } else {
                "removing the copy of an unfinished log-directory move (the log stayed where it was; send AlterReplicaLogDirs again to move it)"
            };
            remove(d, why)?;
        }
        if let Some(w) = winner {
            tracing::warn!(target: "kafka.log.LogManager", dir = %w.display(), "finished a log-directory move that a crash cut short");
            fs::remove_file(w.join(COMMITTED_MARKER)).map_err(LogError::io("removing", &w.join(COMMITTED_MARKER)))?;
            sync_dir(&w)?;
            if let Some(parent) = w.parent() {
                sync_dir(parent)?;
            }
            won.push(key);
        }
    }
    Ok(won)
}

#[cfg(test)]
#[path = "log_mover_tests.rs"]
mod tests;
