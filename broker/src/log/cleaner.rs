//! Log compaction of one `PartitionLog` (cleanup.policy=compact), after Kafka's LogCleaner:
//! keep only the latest record of each key in the closed segments, drop tombstones once
//! they are old enough, and replace each rewritten segment atomically.
//!
//! One run of [`PartitionLog::clean`]:
//! 1. The cleanable range is the closed segments, oldest first, up to (not including) the
//!    first one holding a record newer than `now - min.compaction.lag.ms`. Its part at or
//!    after the cleaner checkpoint (the first dirty offset) is dirty; the run is skipped
//!    unless dirty bytes / cleanable bytes >= min.cleanable.dirty.ratio.
//! 2. An [`OffsetMap`] of key -> latest offset is built from the first dirty offset to the
//!    log end, active segment included. The part below the checkpoint was compacted by an
//!    earlier run, so it holds at most one record per key, each older than any dirty one.
//! 3. Each cleanable segment is filtered (`batch_filter`): a record stays iff no later record
//!    has its key. A retained tombstone (null value) stays while its segment's largest
//!    timestamp is within delete.retention.ms of now (simpler than Kafka, which counts from
//!    when the segment was first cleaned). Keyless records are removed, as Kafka does.
//!    Control and transactional batches, batches that fail their CRC or cannot be decoded
//!    (or are over 64 MiB) are kept as they are and their keys are not mapped.
//! 4. A segment that changed is replaced through `<base>.log.cleaned` -> `.log.swap` ->
//!    `.log` (`cleaner_files`, which also recovers an interrupted swap on open), then
//!    reopened with its indexes rebuilt. A segment left empty is deleted instead (the first
//!    one is kept: it fixes the log start offset).
//! 5. The checkpoint moves to the end of the cleanable range, persisted in
//!    `cleaner-offset-checkpoint` in the partition directory.
//!
//! Offsets never change: batches keep their base offset and last offset delta, so the log
//! start and end offsets stay put and reads of a removed offset find the next batch.
//! Simplifications: the run holds the log's `&mut` (the caller's lock) throughout; segments
//! are not merged; the offset map has no memory cap (about 32 bytes per distinct dirty key).

use super::batch_filter::{filter_batch, FilteredBatch, RemovedRecords};
use super::cleaner_files::{discard, store_checkpoint, swap_in, CleanedOutput};
use super::offset_map::OffsetMap;
use super::partition_log::{sync_dir, PartitionLog};
use super::record_batch::{verify_crc, BatchHeader};
use super::records::{BatchRecords, Record, DEFAULT_MAX_DECOMPRESSED};
use super::segment::{Segment, MAX_SEGMENT_BYTES};
use super::LogError;

/// Larger batches are copied unread (and their keys not mapped); also the decompression cap.
const MAX_CLEANABLE_BATCH: usize = DEFAULT_MAX_DECOMPRESSED;

/// What one [`PartitionLog::clean`] run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Segments of the cleanable range that were filtered (rewritten only if they changed).
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
}

/// The segments a run will clean and where its dirty part starts.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CleanPlan {
    /// Number of leading segments to clean.
    segments: usize,
    /// Offsets from here on go into the offset map.
    first_dirty: i64,
    /// Base offset of the first segment not cleaned: the next checkpoint.
    first_uncleanable: i64,
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

    /// Compacts the log if cleanup.policy includes compact and enough of it is dirty (see
    /// the module docs). Blocking file I/O: run it on a blocking thread. On an I/O error the
    /// segments already replaced stay replaced; the others are untouched.
    pub fn clean(&mut self, now_ms: i64) -> Result<CleanStats, LogError> {
        self.ensure_live()?;
        let mut stats = CleanStats::default();
        if !self.config.cleanup_policy_compact {
            return Ok(stats);
        }
        let Some(plan) = self.clean_plan(now_ms) else {
            return Ok(stats);
        };
        let map = self.build_offset_map(plan.first_dirty)?;
        let bases: Vec<i64> = self.segments[..plan.segments].iter().map(Segment::base_offset).collect();
        for base in bases {
            let idx = self.segments.partition_point(|s| s.base_offset() < base);
            self.clean_segment(idx, &map, now_ms, &mut stats)?;
        }
        self.store_cleaner_checkpoint(plan.first_uncleanable)?;
        tracing::info!(target: "kafka.log.LogCleaner", 
            dir = %self.dir.display(),
            segments = stats.segments_cleaned,
            bytes_before = stats.bytes_before,
            bytes_after = stats.bytes_after,
            records_removed = stats.records_removed,
            tombstones_removed = stats.tombstones_removed,
            "cleaned log"
        );
        Ok(stats)
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

    fn first_dirty_offset(&self) -> i64 {
        self.cleaner_checkpoint.unwrap_or(self.log_start_offset).clamp(self.log_start_offset, self.log_end_offset())
    }

    fn clean_plan(&self, now_ms: i64) -> Option<CleanPlan> {
        let (segments, clean, dirty) = self.cleanable_bytes(now_ms);
        if dirty == 0 {
            return None;
        }
        let ratio = dirty as f64 / (clean + dirty) as f64;
        if !(ratio >= self.config.min_cleanable_dirty_ratio) {
            return None;
        }
        Some(CleanPlan {
            segments,
            first_dirty: self.first_dirty_offset(),
            first_uncleanable: self.segments[segments].base_offset(),
        })
    }

    /// Maps each key to its latest offset over `[first_dirty, log end)`.
    fn build_offset_map(&self, first_dirty: i64) -> Result<OffsetMap, LogError> {
        let mut map = OffsetMap::new();
        let first = self.segments.partition_point(|s| s.base_offset() <= first_dirty).saturating_sub(1);
        let mut buf = Vec::new();
        for segment in &self.segments[first..] {
            for item in segment.headers_from(0) {
                let (pos, header) = item?;
                if header.last_offset() < first_dirty || !is_compactable(&header) {
                    continue;
                }
                buf.resize(header.total_size(), 0);
                segment.read_exact_at(pos, &mut buf)?;
                let mapped = verify_crc(&header, &buf)
                    .map_err(Into::into)
                    .and_then(|()| BatchRecords::decode(&buf, MAX_CLEANABLE_BATCH))
                    .and_then(|records| {
                        for record in records.iter() {
                            let record = record?;
                            if let (Some(key), true) = (record.key, record.offset >= first_dirty) {
                                map.put(key, record.offset);
                            }
                        }
                        Ok(())
                    });
                if let Err(e) = mapped {
                    tracing::warn!(target: "kafka.log.LogCleaner", 
                        segment = %segment.path().display(),
                        base_offset = header.base_offset,
                        error = %e,
                        "cannot read a batch while mapping keys for compaction; its keys do not supersede older records"
                    );
                }
            }
        }
        Ok(map)
    }

    /// Filters segment `idx` into a `.cleaned` copy and swaps it in if anything changed.
    fn clean_segment(
        &mut self,
        idx: usize,
        map: &OffsetMap,
        now_ms: i64,
        stats: &mut CleanStats,
    ) -> Result<(), LogError> {
        let segment = &self.segments[idx];
        let keep_tombstones =
            segment.largest_timestamp() > now_ms.saturating_sub(self.config.delete_retention_ms.max(0));
        let retain = |r: &Record<'_>| {
            r.key.is_some_and(|k| map.latest(k).is_none_or(|latest| r.offset >= latest))
                && (keep_tombstones || r.value.is_some())
        };
        let mut out = CleanedOutput::new(segment);
        let mut removed = RemovedRecords::default();
        let mut buf = Vec::new();
        for item in segment.headers_from(0) {
            let (pos, header) = item?;
            let size = header.total_size() as u64;
            if !is_compactable(&header) || header.total_size() > MAX_CLEANABLE_BATCH {
                out.keep(pos, size, None)?;
                continue;
            }
            buf.resize(header.total_size(), 0);
            segment.read_exact_at(pos, &mut buf)?;
            let keep_empty = header.has_producer_id()
                && self.producers.last_batch_offset(header.producer_id) == Some(header.base_offset);
            let filtered = filter_batch(&buf, MAX_CLEANABLE_BATCH, keep_empty, retain).map_err(|e| {
                tracing::warn!(target: "kafka.log.LogCleaner", 
                    segment = %segment.path().display(),
                    base_offset = header.base_offset,
                    error = %e,
                    "cannot read a batch while compacting; keeping it as it is"
                );
            });
            let rest_after = segment.size().saturating_sub(pos + size);
            match filtered {
                Ok((FilteredBatch::Dropped, r)) => {
                    out.replace(pos, &[])?;
                    add(&mut removed, r);
                }
                // A rewrite can grow a compressed batch: take it only if the segment still fits.
                Ok((FilteredBatch::Rewritten(new), r))
                    if out.size() + new.len() as u64 + rest_after <= MAX_SEGMENT_BYTES =>
                {
                    out.replace(pos, &new)?;
                    add(&mut removed, r);
                }
                Ok(_) | Err(()) => out.keep(pos, size, Some(&buf))?,
            }
        }
        let written = out.size();
        let cleaned = out.finish()?;
        stats.segments_cleaned += 1;
        stats.bytes_before += segment.size();
        stats.bytes_after += written;
        stats.records_removed += removed.records;
        stats.tombstones_removed += removed.tombstones;
        let Some(cleaned) = cleaned else {
            return Ok(());
        };
        let base = segment.base_offset();
        if written == 0 && idx > 0 {
            discard(&cleaned)?;
            let emptied = self.segments.remove(idx);
            tracing::debug!(target: "kafka.log.LogCleaner", segment = %emptied.path().display(), "deleting a segment compacted to nothing");
            emptied.delete()?;
            return sync_dir(&self.dir);
        }
        swap_in(&self.dir, base, &segment.path().to_path_buf(), &cleaned)?;
        let (mut segment, _) = Segment::open(&self.dir, base, self.config.index_interval_bytes, now_ms)?;
        segment.recover(now_ms)?;
        segment.seal()?;
        self.segments[idx] = segment;
        Ok(())
    }
}

/// Whether the cleaner may look inside a batch: not a transaction marker, and not part of
/// a transaction (Lantern has no transactions yet, so aborted data cannot be told apart).
fn is_compactable(header: &BatchHeader) -> bool {
    !header.is_control() && !header.is_transactional()
}

fn add(total: &mut RemovedRecords, more: RemovedRecords) {
    total.records += more.records;
    total.tombstones += more.tombstones;
}

#[cfg(test)]
#[path = "cleaner_tests.rs"]
mod tests;
