//! Shrinking a `PartitionLog`: retention by time and size (whole segments, oldest first),
//! time-based rolling, and truncation to an offset (for replication followers).
//!
//! Retention does not know the high watermark; with a single replica it equals the log end.
//! A replicated broker must not let retention pass the high watermark (Kafka's rule).

use super::partition_log::{sync_dir, PartitionLog};
use super::segment::Segment;
use super::LogError;

impl PartitionLog {
    /// Deletes old segments: first while the oldest segment's newest record is older than
    /// retention.ms (Kafka: `largestTimestamp < now - retention.ms`), then while the log
    /// minus the oldest segment is still at least retention.bytes. An expired non-empty
    /// active segment is rolled first so it can go too; the log start offset moves to the
    /// first remaining segment. Returns how many segments were deleted.
    ///
    /// Only for cleanup.policy "delete" (alone or with "compact"): a compact-only log is
    /// never shortened by retention.ms or retention.bytes, as in Kafka.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        self.ensure_live()?;
        if !self.config.cleanup_policy_delete {
            return Ok(0);
        }
        let mut deleted = 0;
        if self.config.retention_ms >= 0 {
            let cutoff = now_ms.saturating_sub(self.config.retention_ms);
            let n = self.deletable_prefix(|segment, _| segment.largest_timestamp() < cutoff);
            deleted += self.delete_oldest(n, now_ms)?;
        }
        if self.config.retention_bytes >= 0 {
            let mut excess = i64::try_from(self.size_bytes()).unwrap_or(i64::MAX) - self.config.retention_bytes;
            let n = self.deletable_prefix(|segment, _| {
                let size = i64::try_from(segment.size()).unwrap_or(i64::MAX);
                let delete = excess >= size;
                if delete {
                    excess -= size;
                }
                delete
            });
            deleted += self.delete_oldest(n, now_ms)?;
        }
        Ok(deleted)
    }

    /// Deletes the segments wholly below `offset` (the copy of a log whose start moved: its
    /// log start offset follows, to the first segment left). Returns how many went.
    pub fn delete_segments_below(&mut self, offset: i64, now_ms: i64) -> Result<usize, LogError> {
        self.ensure_live()?;
        let n = self.deletable_prefix(|segment, _| segment.next_offset() <= offset);
        self.delete_oldest(n, now_ms)
    }

    /// How many leading segments satisfy `predicate` (called oldest first, stopping at the
    /// first refusal); an empty active segment is never counted.
    fn deletable_prefix(&self, mut predicate: impl FnMut(&Segment, bool) -> bool) -> usize {
        let last = self.segments.len() - 1;
        self.segments
            .iter()
            .enumerate()
            .take_while(|(i, segment)| !(*i == last && segment.is_empty()) && predicate(segment, *i == last))
            .count()
    }

    /// Deletes the `n` oldest segments, rolling first when that includes the active one.
    fn delete_oldest(&mut self, n: usize, now_ms: i64) -> Result<usize, LogError> {
        if n == 0 {
            return Ok(0);
        }
        if n >= self.segments.len() {
            self.roll(now_ms)?;
        }
        let doomed: Vec<Segment> = self.segments.drain(..n).collect();
        self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset());
        for segment in doomed {
            tracing::info!(target: "kafka.log.UnifiedLog", 
                segment = %segment.path().display(),
                size = segment.size(),
                log_start_offset = self.log_start_offset,
                "deleting segment by retention"
            );
            segment.delete()?;
        }
        Ok(n)
    }

    /// The age at which the active segment rolls, as Kafka's LogSegment.shouldRoll computes
    /// it: segment.ms (for a compacted log no more than max.compaction.lag.ms, so its records
    /// reach a cleanable segment in time) less the segment's jitter, a share of
    /// min(segment.jitter.ms, segment.ms) fixed by the partition and the segment's base offset
    /// (Kafka draws it at random per segment; a hash spreads partitions alike and repeats).
    pub(super) fn roll_age_ms(&self) -> i64 {
        let segment_ms = i64::try_from(self.config.segment_ms).unwrap_or(i64::MAX);
        let max_segment_ms = if self.config.cleanup_policy_compact && self.config.max_compaction_lag_ms > 0 {
            segment_ms.min(self.config.max_compaction_lag_ms)
        } else {
            segment_ms
        };
        let jitter_range = i64::try_from(self.config.segment_jitter_ms).unwrap_or(i64::MAX).min(segment_ms);
        let jitter = if jitter_range <= 0 {
            0
        } else {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (self.dir(), self.active().base_offset()).hash(&mut h);
            (h.finish() % jitter_range as u64) as i64
        };
        max_segment_ms.saturating_sub(jitter)
    }

    /// Rolls a non-empty active segment older than its roll age; returns whether it rolled.
    pub fn maybe_roll_by_time(&mut self, now_ms: i64) -> Result<bool, LogError> {
        self.ensure_live()?;
        let active = self.active();
        if active.is_empty() || now_ms.saturating_sub(active.rolling_base_ms()) <= self.roll_age_ms() {
            return Ok(false);
        }
        self.roll(now_ms)?;
        Ok(true)
    }

    /// Deletes every segment and restarts the log, empty, at `offset` (which may be past the
    /// old log end): a follower whose log ends before the leader's log start (retention has
    /// deleted what it would fetch next) starts over there, as Kafka's
    /// truncateFullyAndStartAt.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        self.ensure_live()?;
        self.truncations += 1;
        let old: Vec<Segment> = self.segments.drain(..).collect();
        for segment in old {
            segment.delete()?;
        }
        let start = offset.max(0);
        self.segments.push(Segment::create(&self.dir, start, self.config.index_interval_bytes, now_ms)?);
        sync_dir(&self.dir)?;
        self.log_start_offset = start;
        self.lower_saved_log_start()?;
        self.flushed_offset = start;
        self.mark_flushed(start);
        if self.cleaner_checkpoint.is_some() {
            self.store_cleaner_checkpoint(start)?;
        }
        self.rebuild_producer_state(now_ms)?;
        self.save_epoch_checkpoint()
    }

    /// Removes every batch from the one containing `offset` onwards (a follower truncating
    /// to the leader's log). If `offset` falls inside a batch that whole batch goes, so the
    /// log end may end up below `offset`. Truncating below the first segment empties the log
    /// and restarts it at `offset`. Producer state is rebuilt from the remaining batches.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        self.ensure_live()?;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.truncations += 1;
        // Below the log start (DeleteRecords may have put it inside the first segment) the
        // log restarts empty, as Kafka's truncateTo.
        if offset <= self.segments[0].base_offset() || offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset, now_ms);
        } else {
            while self.segments.len() > 1 && self.active().base_offset() >= offset {
                if let Some(segment) = self.segments.pop() {
                    segment.delete()?;
                }
            }
            let last = self.segments.len() - 1;
            if let Some((position, _)) = self.segments[last].find_batch(offset)? {
                self.segments[last].truncate_to_position(position, now_ms)?;
            }
        }
        self.flushed_offset = self.flushed_offset.min(self.log_end_offset());
        self.mark_flushed(self.flushed_offset);
        // Offsets past the new end may be reused: they are dirty again for the cleaner.
        if self.cleaner_checkpoint.is_some_and(|c| c > self.log_end_offset()) {
            self.store_cleaner_checkpoint(self.log_end_offset())?;
        }
        self.rebuild_producer_state(now_ms)?;
        self.save_epoch_checkpoint()
    }
}

#[cfg(test)]
mod tests {
    use crate::log::partition_log::{LogConfig, PartitionLog};
    use crate::log::record_batch::validate_produce_records;
    use crate::log::test_util::{encode_batch, BatchSpec};
    use crate::log::LogError;

    fn append_ts(log: &mut PartitionLog, timestamps: &[i64], now_ms: i64) {
        let mut bytes = encode_batch(&BatchSpec::timestamps(timestamps));
        let headers = validate_produce_records(&bytes, 1 << 20).unwrap();
        log.append(&mut bytes, &headers, 0, now_ms).unwrap();
    }

    fn small_segments() -> LogConfig {
        // Each 2-record test batch is ~100 bytes: 3 batches per segment.
        LogConfig {
            segment_bytes: 300,
            index_interval_bytes: 100,
            ..LogConfig::default()
        }
    }

    #[test]
    fn retention_by_bytes_deletes_oldest_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        for i in 0..10 {
            append_ts(&mut log, &[i, i], 0);
        }
        assert_eq!(log.num_segments(), 4);
        let segment_size = log.segments[0].size() as i64;
        log.set_config(LogConfig {
            retention_bytes: segment_size,
            ..small_segments()
        });
        // 3 full segments + 1 batch; deleting stops once the excess is below the oldest segment.
        assert_eq!(log.apply_retention(0).unwrap(), 2);
        assert_eq!(log.num_segments(), 2);
        assert!((log.size_bytes() as i64) - segment_size < segment_size);
        assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
        assert_eq!(log.log_start_offset(), 12);
        assert!(matches!(
            log.read(0, 1000, i64::MAX),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.read(12, 1000, i64::MAX).unwrap().first_batch_offset, Some(12));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.starts_with("00000000000000000000") && !n.ends_with(".deleted")),
            "{names:?}"
        );
    }

    #[test]
    fn retention_by_time_rolls_and_deletes_expired_active_segment() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: 1000,
            ..small_segments()
        };
        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        for i in 0..5 {
            append_ts(&mut log, &[100 * i, 100 * i + 1], 0);
        }
        append_ts(&mut log, &[5000, 5001], 0);
        assert_eq!(log.num_segments(), 2);
        // now 2500: cutoff 1500; the first segment (max ts 201) goes, the second (max 5001) stays.
        assert_eq!(log.apply_retention(2500).unwrap(), 1);
        assert_eq!(log.log_start_offset(), 6);
        // now 10000: everything expired; the active segment is rolled, then deleted.
        assert_eq!(log.apply_retention(10_000).unwrap(), 1);
        assert_eq!(log.num_segments(), 1);
        assert_eq!(log.log_start_offset(), 12);
        assert_eq!(log.log_end_offset(), 12);
        // An empty active segment is never deleted.
        assert_eq!(log.apply_retention(20_000).unwrap(), 0);
        append_ts(&mut log, &[30_000], 0);
        assert_eq!(log.read(12, 1000, i64::MAX).unwrap().first_batch_offset, Some(12));
    }

    #[test]
    fn time_based_roll() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms: 100,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        assert!(!log.maybe_roll_by_time(i64::MAX).unwrap(), "empty segments do not roll");
        let now = log.active().rolling_base_ms();
        append_ts(&mut log, &[1], now);
        assert!(!log.maybe_roll_by_time(now + 100).unwrap());
        assert!(log.maybe_roll_by_time(now + 101).unwrap());
        assert_eq!(log.segment_base_offsets(), vec![0, 1]);
        // An append to an old segment rolls first, too.
        append_ts(&mut log, &[2], now + 101);
        append_ts(&mut log, &[3], now + 500);
        assert_eq!(log.segment_base_offsets(), vec![0, 1, 2]);
    }

    #[test]
    fn segment_jitter_brings_the_time_roll_forward_by_a_share_fixed_per_segment() {
        let jittered = LogConfig { segment_ms: 1000, segment_jitter_ms: 5000, ..LogConfig::default() };
        let mut ages = std::collections::HashSet::new();
        for _ in 0..8 {
            let dir = tempfile::tempdir().unwrap();
            let mut log = PartitionLog::open(dir.path(), jittered.clone()).unwrap();
            let age = log.roll_age_ms();
            assert!((1..=1000).contains(&age), "{age}: jitter is under min(segment.jitter.ms, segment.ms)");
            assert_eq!(log.roll_age_ms(), age, "fixed for the segment");
            ages.insert(age);
            let now = log.active().rolling_base_ms();
            append_ts(&mut log, &[1], now);
            assert!(!log.maybe_roll_by_time(now + age).unwrap());
            assert!(log.maybe_roll_by_time(now + age + 1).unwrap());
        }
        assert!(ages.len() > 1, "partitions created together roll at different ages: {ages:?}");
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), LogConfig { segment_jitter_ms: 0, ..jittered }).unwrap();
        assert_eq!(log.roll_age_ms(), 1000);
    }

    #[test]
    fn a_compacted_log_rolls_by_max_compaction_lag() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_ms: 1_000_000, max_compaction_lag_ms: 100, ..LogConfig::default() };
        let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        assert_eq!(log.roll_age_ms(), 1_000_000, "not compacted: segment.ms");
        log.set_config(LogConfig { cleanup_policy_compact: true, ..config });
        assert_eq!(log.roll_age_ms(), 100);
    }

    #[test]
    fn a_full_index_rolls_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        // 3 offset index entries (8 bytes each), 2 time index entries (12 bytes each).
        let config = LogConfig { segment_index_bytes: 24, index_interval_bytes: 0, ..LogConfig::default() };
        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        for i in 0..12 {
            append_ts(&mut log, &[i * 10], 0);
        }
        assert!(log.num_segments() > 1, "rolled when an index was full");
        for s in &log.segments {
            assert!(s.index().offset_entries().len() <= 3 && s.index().time_entries().len() <= 2);
        }
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), LogConfig { index_interval_bytes: 0, ..LogConfig::default() }).unwrap();
        for i in 0..12 {
            append_ts(&mut log, &[i * 10], 0);
        }
        assert_eq!(log.num_segments(), 1);
    }

    #[test]
    fn truncate_fully_and_start_at_restarts_an_empty_log_past_its_old_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        for i in 0..5 {
            append_ts(&mut log, &[i, i], 1_000);
        }
        assert_eq!(log.log_end_offset(), 10);
        log.truncate_fully_and_start_at(42, 2_000).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset(), log.num_segments(), log.size_bytes()), (42, 42, 1, 0));
        append_ts(&mut log, &[7, 7], 3_000);
        assert_eq!(log.log_end_offset(), 44);
        drop(log);
        let log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (42, 44), "after a reopen");
    }

    #[test]
    fn truncate_to_removes_later_batches_and_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        for i in 0..10 {
            append_ts(&mut log, &[i, i], 0);
        }
        log.truncate_to(7, 0).unwrap(); // inside batch 6..=7: the whole batch goes
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(log.segment_base_offsets(), vec![0, 6]);
        log.truncate_to(4, 0).unwrap();
        assert_eq!(log.log_end_offset(), 4);
        assert_eq!(log.segment_base_offsets(), vec![0]);
        append_ts(&mut log, &[1], 0);
        assert_eq!(log.log_end_offset(), 5);
        log.truncate_to(0, 0).unwrap();
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset(), log.num_segments()),
            (0, 0, 1)
        );
        drop(log);
        let log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        assert_eq!(log.log_end_offset(), 0);
    }
}
