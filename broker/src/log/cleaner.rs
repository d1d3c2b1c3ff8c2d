//! Log compaction of one `PartitionLog` (cleanup.policy=compact), after Kafka's LogCleaner:
//! keep only the latest record of each key in the closed segments, drop tombstones once
//! they are old enough, and replace each rewritten segment atomically.
//!
//! A run has three phases, so the log's lock is held only at the start and at the end:
//! [`PartitionLog::prepare_clean`] (under the lock: the plan and read handles on the
//! segments), [`CleanJob::run`] (no lock, on a blocking thread: the offset map and the
//! cleaned copies, see `cleaner_job`), [`PartitionLog::finish_clean`] (under the lock: the
//! swaps). Appends, fetches and retention go on meanwhile; a segment that retention deleted
//! (or anything else replaced) in between is left alone and its copy discarded.
//!
//! What a run does:
//! 1. The cleanable range is the closed segments, oldest first, up to (not including) the
//!    first one holding a record newer than `now - min.compaction.lag.ms`. Its part at or
//!    after the cleaner checkpoint (the first dirty offset) is dirty; the run is skipped
//!    unless dirty bytes / cleanable bytes >= min.cleanable.dirty.ratio.
//! 2. An [`OffsetMap`] of key -> latest offset is built from the first dirty offset towards
//!    the log end (as it was when the run started), active segment included, until the map is
//!    full (`log.cleaner.dedupe.buffer.size`). The part below the checkpoint was compacted by
//!    an earlier run, so it holds at most one record per key, each older than any dirty one.
//!    When the map fills before the end of the cleanable range, only the segments below the
//!    last mapped offset are cleaned and the checkpoint moves only that far, as in Kafka.
//! 3. Each segment cleaned is filtered (`batch_filter`): a record stays iff no later record
//!    has its key. A retained tombstone (null value) stays while its segment's largest
//!    timestamp is within delete.retention.ms of now (simpler than Kafka, which counts from
//!    when the segment was first cleaned). Keyless records are removed, as Kafka does.
//!    Control and transactional batches, batches that fail their CRC or cannot be decoded
//!    (or are over 64 MiB) are kept as they are and their keys are not mapped.
//! 4. A segment that changed is replaced through `<base>.log.cleaned` -> `.log.swap` ->
//!    `.log` (`cleaner_files`, which also recovers an interrupted swap on open); its index is
//!    rebuilt from the copy before the swap. A segment left empty is deleted instead (the
//!    first one is kept: it fixes the log start offset).
//! 5. The checkpoint moves to the end of what was cleaned, persisted in
//!    `cleaner-offset-checkpoint` in the partition directory.
//!
//! Offsets never change: batches keep their base offset and last offset delta, so the log
//! start and end offsets stay put and reads of a removed offset find the next batch.
//! Simplification: segments are not merged.

use super::cleaner_files::{discard, store_checkpoint, swap_in};
pub use super::cleaner_job::{CleanJob, CleanedLog};
use super::cleaner_job::SegmentToClean;
use super::partition_log::{sync_dir, PartitionLog};
use super::segment::{RetiredSegment, Segment};
use super::LogError;

/// Kafka's default `log.cleaner.dedupe.buffer.size`: 128 MiB for the offset map.
pub const DEFAULT_DEDUPE_BUFFER_BYTES: usize = 128 << 20;

/// What one clean run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Segments that were filtered (rewritten only if they changed).
    pub segments_cleaned: usize,
    /// Size of those segments before the run.
    pub bytes_before: u64,
    /// Size of those segments after the run.
    pub bytes_after: u64,
    /// Records removed: superseded by a later record of the same key, keyless, or expired
    /// tombstones.
    pub records_removed: u64,
    /// Of `records_removed`, how many were tombstones (null value).
    pub tombstones_removed: u64,
    /// Distinct keys in the offset map, and whether it filled up (the run then cleaned only
    /// up to the last offset it mapped).
    pub keys_mapped: usize,
    pub map_full: bool,
}

/// What a clean took out of the log: segments cleaned to nothing (renamed to `*.deleted`)
/// and the segments its copies replaced (unlinked, still open). Dropping it removes and
/// closes them, which for large files is slow: drop it after releasing the log's lock.
#[derive(Debug, Default)]
#[must_use = "dropping it deletes files: do it after releasing the log's lock"]
pub struct Retired {
    deleted: Vec<RetiredSegment>,
    replaced: Vec<Segment>,
}

/// The segments a run may clean and where its dirty part starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct CleanPlan {
    /// Number of leading segments in the cleanable range.
    pub segments: usize,
    /// Offsets from here on go into the offset map.
    pub first_dirty: i64,
    /// Base offset of the first segment not cleanable: the next checkpoint, unless the
    /// offset map fills up first.
    pub first_uncleanable: i64,
}

impl PartitionLog {
    /// The first dirty offset recorded by the last clean (`None`: never cleaned).
    pub fn cleaner_checkpoint(&self) -> Option<i64> {
        self.cleaner_checkpoint
    }

    /// Persists `offset` as the cleaner checkpoint.
    pub(super) fn store_cleaner_checkpoint(&mut self, offset: i64) -> Result<(), LogError> {
        store_checkpoint(&self.dir, offset)?;
        self.cleaner_checkpoint = Some(offset);
        Ok(())
    }

    /// Compacts the log in one go (all three phases under the caller's `&mut`), with the
    /// default offset-map memory. The broker's cleaner uses the phases separately.
    pub fn clean(&mut self, now_ms: i64) -> Result<CleanStats, LogError> {
        self.clean_with_map_memory(now_ms, DEFAULT_DEDUPE_BUFFER_BYTES)
    }

    /// [`PartitionLog::clean`] with an offset map of at most `map_memory` bytes.
    pub fn clean_with_map_memory(&mut self, now_ms: i64, map_memory: usize) -> Result<CleanStats, LogError> {
        match self.prepare_clean(now_ms, map_memory)? {
            Some(job) => {
                let cleaned = job.run()?;
                let (stats, _retired) = self.finish_clean(cleaned)?;
                Ok(stats)
            }
            None => Ok(CleanStats::default()),
        }
    }

    /// The first phase, under the log's lock: `None` when cleanup.policy has no compact or
    /// not enough of the log is dirty; otherwise the job to run without the lock.
    pub fn prepare_clean(&self, now_ms: i64, map_memory: usize) -> Result<Option<CleanJob>, LogError> {
        self.ensure_live()?;
        if !self.config.cleanup_policy_compact {
            return Ok(None);
        }
        let Some(plan) = self.clean_plan(now_ms) else {
            return Ok(None);
        };
        let first_mapped = self.segments.partition_point(|s| s.base_offset() <= plan.first_dirty).saturating_sub(1);
        let retention_cutoff = now_ms.saturating_sub(self.config.delete_retention_ms.max(0));
        let to_clean = self.segments[..plan.segments]
            .iter()
            .map(|s| SegmentToClean {
                base_offset: s.base_offset(),
                file: s.snapshot(),
                keep_tombstones: s.largest_timestamp() > retention_cutoff,
            })
            .collect();
        Ok(Some(CleanJob {
            dir: self.dir.clone(),
            plan,
            to_map: self.segments[first_mapped..].iter().map(Segment::snapshot).collect(),
            to_clean,
            last_batches: self.producers.last_batch_offsets(),
            map_memory,
            index_interval: self.config.index_interval_bytes,
            now_ms,
        }))
    }

    /// The last phase, under the log's lock: swaps the cleaned copies in (the directory is
    /// fsynced twice for the whole run, not per segment), takes out segments cleaned to
    /// nothing and moves the checkpoint. A copy whose segment is no longer the one that was
    /// copied (deleted by retention meanwhile) is discarded. The files taken out are removed
    /// when the returned [`Retired`] is dropped, which the caller does after the lock.
    pub fn finish_clean(&mut self, mut cleaned: CleanedLog) -> Result<(CleanStats, Retired), LogError> {
        self.ensure_live()?;
        let mut retired = Retired::default();
        if cleaned.dir != self.dir {
            // The log moved to another log directory meanwhile: none of the copies is of its
            // segments, and its checkpoint is not this clean's.
            for done in cleaned.segments.drain(..) {
                let _ = discard(&done.copy);
            }
            return Ok((CleanStats::default(), retired));
        }
        let mut swapped = Vec::new();
        let mut emptied = false;
        for done in cleaned.segments.drain(..) {
            let idx = self.segments.partition_point(|s| s.base_offset() < done.base_offset);
            let current = self.segments.get(idx).filter(|s| s.base_offset() == done.base_offset);
            if !current.is_some_and(|s| s.snapshot().same_file(&done.original)) {
                tracing::debug!(target: "kafka.log.LogCleaner", dir = %self.dir.display(), base_offset = done.base_offset, "segment changed while it was being cleaned; discarding the copy");
                discard(&done.copy)?;
                continue;
            }
            // The first segment stays even when empty: it fixes the log start offset.
            if done.segment.is_empty() && idx > 0 {
                discard(&done.copy)?;
                let gone = self.segments.remove(idx);
                tracing::debug!(target: "kafka.log.LogCleaner", segment = %gone.path().display(), "deleting a segment compacted to nothing");
                retired.deleted.push(gone.retire()?);
                emptied = true;
            } else {
                swapped.push((done.copy, done.segment));
            }
        }
        if !swapped.is_empty() {
            // The copy is opened under the segment's own path, the name it takes once swapped.
            let swaps: Vec<_> = swapped.iter().map(|(copy, segment)| (segment.path().to_path_buf(), copy.clone())).collect();
            swap_in(&self.dir, &swaps)?;
        }
        for (_, mut segment) in swapped {
            segment.seal()?;
            let idx = self.segments.partition_point(|s| s.base_offset() < segment.base_offset());
            retired.replaced.push(std::mem::replace(&mut self.segments[idx], segment));
        }
        if emptied {
            sync_dir(&self.dir)?;
        }
        self.store_cleaner_checkpoint(cleaned.checkpoint)?;
        let stats = cleaned.stats;
        tracing::info!(target: "kafka.log.LogCleaner",
            dir = %self.dir.display(),
            segments = stats.segments_cleaned,
            bytes_before = stats.bytes_before,
            bytes_after = stats.bytes_after,
            records_removed = stats.records_removed,
            tombstones_removed = stats.tombstones_removed,
            keys_mapped = stats.keys_mapped,
            map_full = stats.map_full,
            "cleaned log"
        );
        Ok((stats, retired))
    }

    /// The share of the cleanable bytes that is dirty (0 when nothing is cleanable).
    pub fn dirty_ratio(&self, now_ms: i64) -> f64 {
        let (_, clean, dirty) = self.cleanable_bytes(now_ms);
        if clean + dirty == 0 {
            return 0.0;
        }
        dirty as f64 / (clean + dirty) as f64
    }

    /// (cleanable segments, clean bytes, dirty bytes) of the cleanable range.
    fn cleanable_bytes(&self, now_ms: i64) -> (usize, u64, u64) {
        let cutoff = now_ms.saturating_sub(self.config.min_compaction_lag_ms.max(0));
        let closed = &self.segments[..self.segments.len() - 1];
        let n = closed.iter().take_while(|s| s.largest_timestamp() <= cutoff).count();
        let first_dirty = self.first_dirty_offset();
        let (mut clean, mut dirty) = (0u64, 0u64);
        for (i, segment) in closed[..n].iter().enumerate() {
            // The next segment's base bounds this one even if its tail was cleaned away.
            if self.segments[i + 1].base_offset() > first_dirty {
                dirty += segment.size();
            } else {
                clean += segment.size();
            }
        }
        (n, clean, dirty)
    }

    /// Whether the first dirty segment of the `cleanable` first ones holds records older than
    /// max.compaction.lag.ms (its first batch's timestamp, as Kafka's LogCleanerManager takes
    /// it): then the log is cleaned whatever its dirty ratio.
    fn compaction_overdue(&self, cleanable: usize, now_ms: i64) -> bool {
        let first_dirty = self.first_dirty_offset();
        let oldest_dirty = (0..cleanable).find(|&i| self.segments[i + 1].base_offset() > first_dirty);
        oldest_dirty.is_some_and(|i| now_ms.saturating_sub(self.segments[i].rolling_base_ms()) > self.config.max_compaction_lag_ms)
    }

    fn first_dirty_offset(&self) -> i64 {
        self.cleaner_checkpoint.unwrap_or(self.log_start_offset).clamp(self.log_start_offset, self.log_end_offset())
    }

    fn clean_plan(&self, now_ms: i64) -> Option<CleanPlan> {
        let (segments, clean, dirty) = self.cleanable_bytes(now_ms);
        if dirty == 0 {
            return None;
        }
        let ratio = dirty as f64 / (clean + dirty) as f64;
        if !(ratio >= self.config.min_cleanable_dirty_ratio) && !self.compaction_overdue(segments, now_ms) {
            return None;
        }
        Some(CleanPlan {
            segments,
            first_dirty: self.first_dirty_offset(),
            first_uncleanable: self.segments[segments].base_offset(),
        })
    }
}

#[cfg(test)]
#[path = "cleaner_tests.rs"]
mod tests;
