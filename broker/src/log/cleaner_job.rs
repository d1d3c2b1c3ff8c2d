//! The middle phase of a clean (see `cleaner`): everything slow, done without the log's lock
//! on read handles taken under it. Builds the bounded offset map, writes each changed
//! segment's cleaned copy (fsynced) and rebuilds its index, ready to be swapped in.

use std::collections::HashMap;
use std::path::PathBuf;

use super::batch_filter::{filter_batch, FilteredBatch, RemovedRecords};
use super::cleaner::{CleanPlan, CleanStats};
use super::cleaner_files::{discard, CleanedOutput};
use super::offset_map::OffsetMap;
use super::record_batch::{verify_crc, BatchHeader};
use super::records::{BatchRecords, Record, DEFAULT_MAX_DECOMPRESSED};
use super::segment::{Segment, SegmentFile, MAX_SEGMENT_BYTES};
use super::LogError;

/// Larger batches are copied unread (and their keys not mapped); also the decompression cap.
const MAX_CLEANABLE_BATCH: usize = DEFAULT_MAX_DECOMPRESSED;

/// One segment of the cleanable range, as it was when the run started.
pub(super) struct SegmentToClean {
    pub base_offset: i64,
    pub file: SegmentFile,
    /// Its largest timestamp is within delete.retention.ms: tombstones stay.
    pub keep_tombstones: bool,
}

/// A clean's slow phase, taken from the log by `PartitionLog::prepare_clean`. Blocking:
/// run it on a blocking thread.
pub struct CleanJob {
    pub(super) dir: PathBuf,
    pub(super) plan: CleanPlan,
    /// Segments from the one holding the first dirty offset to the log end.
    pub(super) to_map: Vec<SegmentFile>,
    pub(super) to_clean: Vec<SegmentToClean>,
    /// Base offset of each producer's last batch: kept (possibly emptied) by the cleaner.
    pub(super) last_batches: HashMap<i64, i64>,
    pub(super) map_memory: usize,
    pub(super) index_interval: usize,
    pub(super) now_ms: i64,
}

/// A finished copy of one segment, waiting for `PartitionLog::finish_clean`.
pub(super) struct CleanedSegment {
    pub base_offset: i64,
    /// The segment file the copy was made from (swapped only if it is still the log's).
    pub original: SegmentFile,
    /// The `.cleaned` file.
    pub copy: PathBuf,
    /// The copy opened with its index rebuilt (empty when nothing was left in it).
    pub segment: Segment,
}

/// What [`CleanJob::run`] produced. Copies that are never installed are removed on drop.
pub struct CleanedLog {
    /// The log's directory when the clean was planned.
    pub(super) dir: PathBuf,
    pub(super) segments: Vec<CleanedSegment>,
    /// The next cleaner checkpoint: everything below it is clean once the copies are in.
    pub(super) checkpoint: i64,
    pub(super) stats: CleanStats,
}

impl Drop for CleanedLog {
    fn drop(&mut self) {
        for s in &self.segments {
            let _ = discard(&s.copy);
        }
    }
}

impl CleanJob {
    /// Maps keys, then filters every segment below the mapped end into a copy.
    pub fn run(self) -> Result<CleanedLog, LogError> {
        let mut map = OffsetMap::with_memory(self.map_memory);
        let full_at = self.build_offset_map(&mut map)?;
        let checkpoint = full_at.map_or(self.plan.first_uncleanable, |upto| upto.min(self.plan.first_uncleanable));
        let map_full = checkpoint < self.plan.first_uncleanable;
        let mut stats = CleanStats { keys_mapped: map.len(), map_full, ..CleanStats::default() };
        if checkpoint <= self.plan.first_dirty {
            tracing::warn!(target: "kafka.log.LogCleaner", dir = %self.dir.display(), capacity = map.capacity(),
                "the offset map cannot hold the keys of a single batch; raise log.cleaner.dedupe.buffer.size");
            return Ok(CleanedLog { dir: self.dir.clone(), segments: Vec::new(), checkpoint: self.plan.first_dirty, stats });
        }
        if map_full {
            tracing::info!(target: "kafka.log.LogCleaner", dir = %self.dir.display(), keys = map.len(), upto = checkpoint,
                "the offset map is full (log.cleaner.dedupe.buffer.size): cleaning up to the last mapped offset; the rest stays dirty");
        }
        let mut segments = Vec::new();
        // Kafka cleans the segments that overlap [0, checkpoint): a partly mapped segment too
        // (its records after the mapped end are newer than every mapped offset, so they stay).
        for segment in self.to_clean.iter().filter(|s| s.base_offset < checkpoint) {
            if let Some(done) = self.clean_segment(segment, &map, &mut stats)? {
                segments.push(done);
            }
        }
        Ok(CleanedLog { dir: self.dir.clone(), segments, checkpoint, stats })
    }

    /// Maps each key to its latest offset from the first dirty offset to the log end (as it
    /// was when the run started). Stops early when the map cannot surely take the next
    /// batch's keys, and then returns the offset after the last batch mapped.
    fn build_offset_map(&self, map: &mut OffsetMap) -> Result<Option<i64>, LogError> {
        let first_dirty = self.plan.first_dirty;
        let mut mapped_upto = first_dirty;
        let mut buf = Vec::new();
        for segment in &self.to_map {
            for item in segment.headers_from(0) {
                let (pos, header) = item?;
                if header.last_offset() < first_dirty {
                    continue;
                }
                if !is_compactable(&header) {
                    mapped_upto = header.next_offset();
                    continue;
                }
                if !map.has_room_for(header.records_count.max(0) as usize) {
                    return Ok(Some(mapped_upto));
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
                                // Room was checked for the whole batch: a put cannot fail.
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
                mapped_upto = header.next_offset();
            }
        }
        Ok(None)
    }

    /// Filters one segment into a `.cleaned` copy; `None` if nothing changed.
    fn clean_segment(&self, segment: &SegmentToClean, map: &OffsetMap, stats: &mut CleanStats) -> Result<Option<CleanedSegment>, LogError> {
        let file = &segment.file;
        let keep_tombstones = segment.keep_tombstones;
        let retain = |r: &Record<'_>| {
            r.key.is_some_and(|k| map.latest(k).is_none_or(|latest| r.offset >= latest))
                && (keep_tombstones || r.value.is_some())
        };
        let mut out = CleanedOutput::new(file);
        let mut removed = RemovedRecords::default();
        let mut buf = Vec::new();
        for item in file.headers_from(0) {
            let (pos, header) = item?;
            let size = header.total_size() as u64;
            if !is_compactable(&header) || header.total_size() > MAX_CLEANABLE_BATCH {
                out.keep(pos, size, None)?;
                continue;
            }
            buf.resize(header.total_size(), 0);
            file.read_exact_at(pos, &mut buf)?;
            let keep_empty = header.has_producer_id() && self.last_batches.get(&header.producer_id) == Some(&header.base_offset);
            let filtered = filter_batch(&buf, MAX_CLEANABLE_BATCH, keep_empty, retain).map_err(|e| {
                tracing::warn!(target: "kafka.log.LogCleaner",
                    segment = %file.path().display(),
                    base_offset = header.base_offset,
                    error = %e,
                    "cannot read a batch while compacting; keeping it as it is"
                );
            });
            let rest_after = file.size().saturating_sub(pos + size);
            match filtered {
                Ok((FilteredBatch::Dropped, r)) => {
                    out.replace(pos, &[])?;
                    add(&mut removed, r);
                }
                // A rewrite can grow a compressed batch: take it only if the segment still fits.
                Ok((FilteredBatch::Rewritten(new), r)) if out.size() + new.len() as u64 + rest_after <= MAX_SEGMENT_BYTES => {
                    out.replace(pos, &new)?;
                    add(&mut removed, r);
                }
                Ok(_) | Err(()) => out.keep(pos, size, Some(&buf))?,
            }
        }
        let written = out.size();
        let copy = out.finish()?;
        stats.segments_cleaned += 1;
        stats.bytes_before += file.size();
        stats.bytes_after += written;
        stats.records_removed += removed.records;
        stats.tombstones_removed += removed.tombstones;
        let Some(copy) = copy else {
            return Ok(None);
        };
        let opened = match Segment::open_copy(&copy, &self.dir, segment.base_offset, self.index_interval, self.now_ms) {
            Ok(s) => s,
            Err(e) => {
                let _ = discard(&copy);
                return Err(e);
            }
        };
        Ok(Some(CleanedSegment { base_offset: segment.base_offset, original: file.clone(), copy, segment: opened }))
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
