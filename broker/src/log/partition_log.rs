//! `PartitionLog`: the log of one partition in its own directory (`<log.dir>/<topic>-<n>`),
//! an ordered run of segments of which the last is the active one.
//!
//! This file owns opening (with crash recovery), appending (producer checks, rolling,
//! offset assignment) and flushing. Reads and ListOffsets lookups are in `fetch.rs`;
//! retention, time-based rolling and truncation in `retention.rs`; compaction in `cleaner.rs`.
//!
//! Concurrency: a `PartitionLog` is plain data (`&self` to read, `&mut self` to change);
//! `LogManager` shares it as `Arc<parking_lot::Mutex<PartitionLog>>`, and the slow work is
//! handed out to run outside that lock: [`PartitionLog::flush_job`] (the fsync; durability is
//! group-committed), `plan_read` / `plan_timestamp_lookup` (preads and scans, in `fetch.rs`)
//! and `prepare_clean` (compaction, in `cleaner.rs`).

use crate::cluster::leader_epochs::LeaderEpochHistory;
use super::cleaner_files;
use super::producer_state::{ProducerStateManager, SequenceCheck};
use super::record_batch::{stamp_batch, BatchError, BatchHeader};
use super::records::{validate_keys_for_compaction, DEFAULT_MAX_DECOMPRESSED};
use super::segment::{Segment, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, MAX_SEGMENT_BYTES, TIME_INDEX_SUFFIX};
use super::log_validator::AppendPolicy;
use super::LogError;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Per-partition storage settings (Kafka topic configs of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// segment.bytes: roll when the active segment would exceed this (capped at 2 GiB - 1).
    pub segment_bytes: u64,
    /// segment.ms: roll a non-empty active segment older than this.
    pub segment_ms: u64,
    /// segment.jitter.ms: each segment rolls up to this much (and under segment.ms) earlier,
    /// by an amount fixed per segment, so partitions created together do not roll together.
    pub segment_jitter_ms: u64,
    /// segment.index.bytes: a segment whose offset index (8 bytes an entry) or time index
    /// (12) would outgrow this rolls.
    pub segment_index_bytes: usize,
    /// retention.ms: delete segments whose newest record is older; -1 keeps forever.
    pub retention_ms: i64,
    /// retention.bytes: delete oldest segments while the log is bigger; -1 is unlimited.
    pub retention_bytes: i64,
    /// max.message.bytes: largest accepted batch (enforced by `validate_produce_records`).
    pub max_message_bytes: usize,
    /// index.interval.bytes: log bytes between sparse index entries.
    pub index_interval_bytes: usize,
    /// flush.messages: report a flush as due after this many unflushed messages.
    pub flush_interval_messages: u64,
    /// flush.ms: report a flush as due when the last flush is this old.
    pub flush_interval_ms: u64,
    /// cleanup.policy contains "delete": retention by time and size applies.
    pub cleanup_policy_delete: bool,
    /// cleanup.policy contains "compact": keyless records are refused and the cleaner
    /// keeps only the latest record of each key (see `cleaner.rs`).
    pub cleanup_policy_compact: bool,
    /// delete.retention.ms: how long compaction keeps tombstones (null values).
    pub delete_retention_ms: i64,
    /// min.compaction.lag.ms: segments with a record newer than this are not cleaned yet.
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms: a compacted log with a dirty record older than this is cleaned
    /// whatever its dirty ratio, and its active segment rolls at this age at the latest.
    pub max_compaction_lag_ms: i64,
    /// min.cleanable.dirty.ratio: clean only when this share of the cleanable bytes is new.
    pub min_cleanable_dirty_ratio: f64,
    /// message.timestamp.*, compression.type: what produced batches go through before they
    /// are appended (see `log_validator.rs`; applied by the partition, outside the lock).
    pub append: AppendPolicy,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 * 1024 * 1024,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            index_interval_bytes: 4096,
            flush_interval_messages: u64::MAX,
            flush_interval_ms: 1000,
            cleanup_policy_delete: true,
            cleanup_policy_compact: false,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            append: AppendPolicy::default(),
        }
    }
}

/// What an append reports back to the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Broker timestamp for LogAppendTime topics; always -1 (CreateTime) for now.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// Records in the appended (or duplicate) batches.
    pub record_count: i64,
    /// Unflushed messages reached flush.messages: run a [`FlushJob`] before acknowledging.
    pub flush_due: bool,
}

/// Result of [`PartitionLog::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batches were written at `base_offset..=last_offset`.
    Appended(AppendInfo),
    /// A retried idempotent batch already stored at these offsets; nothing was written
    /// (`flush_due` is false, `log_append_time` -1).
    Duplicate(AppendInfo),
}

impl AppendOutcome {
    pub fn info(&self) -> &AppendInfo {
        match self {
            AppendOutcome::Appended(info) | AppendOutcome::Duplicate(info) => info,
        }
    }

    pub fn base_offset(&self) -> i64 {
        self.info().base_offset
    }

    pub fn is_duplicate(&self) -> bool {
        matches!(self, AppendOutcome::Duplicate(_))
    }
}

/// An fsync to run without holding the log's lock; then call
/// [`PartitionLog::mark_flushed`] with [`FlushJob::upto_offset`].
#[derive(Debug, Clone)]
pub struct FlushJob {
    file: Arc<File>,
    path: PathBuf,
    upto_offset: i64,
}

impl FlushJob {
    /// fdatasync of the active segment. Blocking: run it on a blocking thread.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// The segment file being synced (for error messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every offset below this is durable once `sync` succeeds.
    pub fn upto_offset(&self) -> i64 {
        self.upto_offset
    }
}

/// The log of one partition.
#[derive(Debug)]
pub struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// Sorted by base offset; never empty; the last one is active.
    pub(super) segments: Vec<Segment>,
    pub(super) log_start_offset: i64,
    pub(super) producers: ProducerStateManager,
    pub(super) flushed_offset: i64,
    /// When the oldest unflushed append happened (approximately, see `mark_flushed`).
    pub(super) unflushed_since_ms: Option<i64>,
    pub(super) last_append_ms: i64,
    pub(super) deleted: bool,
    /// The cleaner's first dirty offset (Kafka's cleaner checkpoint): everything below it
    /// has been compacted. `None` until the first clean: the whole log is dirty.
    pub(super) cleaner_checkpoint: Option<i64>,
    /// Where each leader epoch starts in this log (Kafka's leader-epoch cache), rebuilt from
    /// the batch headers at open (the same scan as the producer state), corrected by the
    /// `leader-epoch-checkpoint` file, and kept with every append and truncation.
    pub(super) epochs: LeaderEpochHistory,
    /// The history as last written to `leader-epoch-checkpoint` (empty: never written).
    pub(super) epochs_saved: Vec<(i32, i64)>,
    /// Truncations so far (`truncate_to`, `truncate_fully_and_start_at`): a reader that planned
    /// under the lock and read without it checks this did not change meanwhile.
    pub(super) truncations: u64,
}

/// Kafka's per-partition leader-epoch checkpoint file.
pub const EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// Reads a partition's `leader-epoch-checkpoint`; missing or unreadable is empty (the batch
/// headers are then the whole history), with a warning for the unreadable.
fn read_epoch_checkpoint(dir: &Path) -> Vec<(i32, i64)> {
    let parse = |lines: Vec<String>| -> Option<Vec<(i32, i64)>> {
        lines
            .iter()
            .map(|l| {
                let (e, o) = l.split_once(' ')?;
                Some((e.parse().ok()?, o.parse().ok()?))
            })
            .collect()
    };
    match super::checkpoint_file::read(dir, EPOCH_CHECKPOINT_FILE) {
        Ok(None) => Vec::new(),
        Ok(Some(lines)) => parse(lines).unwrap_or_else(|| {
            tracing::warn!(target: "kafka.log.UnifiedLog", dir = %dir.display(), "leader-epoch-checkpoint has a malformed line; using the batch headers alone");
            Vec::new()
        }),
        Err(e) => {
            tracing::warn!(target: "kafka.log.UnifiedLog", error = %e, "cannot read leader-epoch-checkpoint; using the batch headers alone");
            Vec::new()
        }
    }
}

/// Writes a partition's `leader-epoch-checkpoint` (`epoch start_offset` lines), atomically.
pub fn write_epoch_checkpoint(dir: &Path, entries: &[(i32, i64)]) -> std::io::Result<()> {
    let lines: Vec<String> = entries.iter().map(|(e, o)| format!("{e} {o}")).collect();
    super::checkpoint_file::write(dir, EPOCH_CHECKPOINT_FILE, &lines)
}

/// Wall-clock milliseconds since the epoch (0 if the clock is before 1970).
pub(super) fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io("syncing directory", dir))
}

impl PartitionLog {
    /// Opens (creating if missing) the log in `dir`: loads segments by base offset,
    /// recovers the active segment and any segment without usable index files, removes
    /// leftovers of interrupted deletions, and rebuilds the producer state.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, LogError> {
        let now_ms = wall_clock_ms();
        // A new partition directory is linked durably into its log directory: without
        // that, a power cut can take it and every record fsynced into it.
        crate::durable_fs::create_dir_all(dir).map_err(LogError::io("creating log directory", dir))?;
        cleaner_files::finish_interrupted_swaps(dir)?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).map_err(LogError::io("listing log directory", dir))? {
            let entry = entry.map_err(LogError::io("listing log directory", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.ends_with(DELETED_SUFFIX) || name.ends_with(".tmp") {
                fs::remove_file(&path).map_err(LogError::io("removing leftover", &path))?;
            } else if let Some(stem) = name.strip_suffix(LOG_SUFFIX) {
                match stem.parse::<i64>() {
                    Ok(base) if base >= 0 && stem.len() == 20 => bases.push(base),
                    _ => {
                        tracing::warn!(target: "kafka.log.UnifiedLog", file = %path.display(), "ignoring a .log file whose name is not a 20-digit base offset")
                    }
                }
            } else if let Some(stem) = name
                .strip_suffix(INDEX_SUFFIX)
                .or_else(|| name.strip_suffix(TIME_INDEX_SUFFIX))
            {
                if !dir.join(format!("{stem}{LOG_SUFFIX}")).exists() {
                    fs::remove_file(&path).map_err(LogError::io("removing orphaned index", &path))?;
                }
            }
        }
        bases.sort_unstable();
        let interval = config.index_interval_bytes;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let (mut segment, needs_recovery) = Segment::open(dir, base, interval, now_ms)?;
            let is_active = i + 1 == bases.len();
            if needs_recovery || is_active {
                segment.recover(now_ms)?;
            }
            if needs_recovery && !is_active {
                // Persist the rebuilt index so the next open can skip the scan.
                segment.seal()?;
            }
            if let Some(prev) = segments.last() {
                let prev: &Segment = prev;
                if segment.base_offset() < prev.next_offset() {
                    return Err(LogError::CorruptSegment {
                        path: segment.path().to_path_buf(),
                        position: 0,
                        reason: format!(
                            "segment starts at offset {} but the previous one ends at {}",
                            segment.base_offset(),
                            prev.next_offset()
                        ),
                    });
                }
            }
            segments.push(segment);
        }
        if segments.is_empty() {
            segments.push(Segment::create(dir, 0, interval, now_ms)?);
            sync_dir(dir)?;
        }
        let log_start_offset = segments[0].base_offset();
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            producers: ProducerStateManager::new(),
            flushed_offset: 0,
            unflushed_since_ms: None,
            last_append_ms: now_ms,
            deleted: false,
            cleaner_checkpoint: cleaner_files::load_checkpoint(dir)?,
            epochs: LeaderEpochHistory::default(),
            epochs_saved: read_epoch_checkpoint(dir),
            truncations: 0,
        };
        log.flushed_offset = log.log_end_offset();
        log.restore_log_start_offset()?;
        log.rebuild_producer_state(now_ms)?;
        Ok(log)
    }

    /// Replays every batch header into a fresh producer state and leader-epoch history. A
    /// closed segment whose headers do not scan is recovered (truncated) first.
    pub(super) fn rebuild_producer_state(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.producers.clear();
        let mut epochs = LeaderEpochHistory::default();
        for segment in &mut self.segments {
            let scan: Result<Vec<BatchHeader>, LogError> =
                segment.headers_from(0).map(|item| item.map(|(_, h)| h)).collect();
            let headers = match scan {
                Ok(headers) => headers,
                Err(e) => {
                    tracing::warn!(target: "kafka.log.UnifiedLog", error = %e, "segment failed a header scan; recovering it");
                    segment.recover(now_ms)?;
                    segment
                        .headers_from(0)
                        .map(|item| item.map(|(_, h)| h))
                        .collect::<Result<_, _>>()?
                }
            };
            for header in &headers {
                epochs.assign(header.partition_leader_epoch, header.base_offset);
            }
            for header in headers.iter().filter(|h| !h.is_control()) {
                self.producers.update(header, header.base_offset);
            }
        }
        self.epochs = crate::cluster::leader_epochs::with_checkpoint(&epochs, &self.epochs_saved, self.log_start_offset);
        Ok(())
    }

    /// The epoch history to write to `leader-epoch-checkpoint`, if it changed since the last
    /// write (the caller writes it without the log's lock, see [`write_epoch_checkpoint`]).
    pub fn epoch_checkpoint_due(&self) -> Option<Vec<(i32, i64)>> {
        (self.epochs.entries() != self.epochs_saved.as_slice() && !self.deleted).then(|| self.epochs.entries().to_vec())
    }

    /// Records that `entries` are what the checkpoint file now holds.
    pub fn epoch_checkpoint_written(&mut self, entries: Vec<(i32, i64)>) {
        self.epochs_saved = entries;
    }

    /// Writes the checkpoint now if it changed (blocking; after a truncation, so that a
    /// crash cannot leave epochs in it that the log no longer has).
    pub(super) fn save_epoch_checkpoint(&mut self) -> Result<(), LogError> {
        if let Some(entries) = self.epoch_checkpoint_due() {
            write_epoch_checkpoint(&self.dir, &entries).map_err(LogError::io("writing the leader-epoch checkpoint", &self.dir.join(EPOCH_CHECKPOINT_FILE)))?;
            self.epochs_saved = entries;
        }
        Ok(())
    }

    pub(super) fn ensure_live(&self) -> Result<(), LogError> {
        if self.deleted {
            return Err(LogError::LogDeleted { dir: self.dir.clone() });
        }
        Ok(())
    }

    pub(super) fn active(&self) -> &Segment {
        // `segments` is never empty: open and every deletion path keep one.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Appends the validated record set of one produce partition (`headers` as returned by
    /// `validate_produce_records` for these bytes). Assigns offsets from the log end,
    /// stamping `leader_epoch`; rolls first if the active segment is full or old.
    /// Producer checks run before anything is written: a retried batch (only as the sole
    /// batch of the request) returns [`AppendOutcome::Duplicate`].
    pub fn append(
        &mut self,
        records: &mut [u8],
        headers: &[BatchHeader],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, LogError> {
        self.append_checked(records, headers, false, leader_epoch, now_ms)
    }

    /// [`PartitionLog::append`] for records whose keys the caller already checked with
    /// `validate_keys_for_compaction` (`keys_checked`), before taking the log's lock: the
    /// check decompresses every batch, which must not happen under the lock. Unchecked
    /// records bound for a compacted log are still checked here.
    pub fn append_checked(
        &mut self,
        records: &mut [u8],
        headers: &[BatchHeader],
        keys_checked: bool,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, LogError> {
        self.ensure_live()?;
        if headers.is_empty() {
            return Err(BatchError::EmptyRecordSet.into());
        }
        let total: usize = headers.iter().map(BatchHeader::total_size).sum();
        if total != records.len() {
            return Err(LogError::InvalidAppend {
                reason: "record set length differs from its batch headers",
            });
        }
        if self.config.cleanup_policy_compact && !keys_checked {
            validate_keys_for_compaction(records, headers, DEFAULT_MAX_DECOMPRESSED)?;
        }
        let count: i64 = headers.iter().map(|h| i64::from(h.last_offset_delta) + 1).sum();
        if let SequenceCheck::Duplicate {
            base_offset,
            last_offset,
            ..
        } = self.producers.check_all(headers)?
        {
            return Ok(AppendOutcome::Duplicate(AppendInfo {
                base_offset,
                last_offset,
                log_append_time: -1,
                log_start_offset: self.log_start_offset,
                record_count: count,
                flush_due: false,
            }));
        }
        self.maybe_roll(records.len(), count, now_ms)?;
        let base_offset = self.log_end_offset();
        self.epochs.assign(leader_epoch, base_offset);
        let mut next = base_offset;
        let mut at = 0;
        for h in headers {
            let size = h.total_size();
            stamp_batch(&mut records[at..at + size], next, leader_epoch);
            next += i64::from(h.last_offset_delta) + 1;
            at += size;
        }
        self.active_mut().append(records)?;
        let mut batch_base = base_offset;
        for h in headers {
            self.producers.update(h, batch_base);
            batch_base += i64::from(h.last_offset_delta) + 1;
        }
        self.unflushed_since_ms.get_or_insert(now_ms);
        self.last_append_ms = now_ms;
        Ok(AppendOutcome::Appended(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: -1,
            log_start_offset: self.log_start_offset,
            record_count: count,
            flush_due: self.flush_due(),
        }))
    }

    /// Appends batches fetched from the partition's leader as they are: offsets and leader
    /// epochs were assigned by the leader, so nothing is stamped. They must start at this
    /// log's end (a follower fetches from there) or after it (a compacted leader's log has
    /// gaps), in increasing order; producer state follows
    /// them, so a producer's retry reaching this broker after a failover is recognised.
    pub fn append_as_follower(&mut self, records: &[u8], headers: &[BatchHeader], now_ms: i64) -> Result<Option<i64>, LogError> {
        self.ensure_live()?;
        if headers.is_empty() {
            return Ok(None);
        }
        let end = self.log_end_offset();
        let mut next = end;
        let mut at = 0;
        for h in headers {
            // A compacted leader log has gaps (records removed): a batch may start past the
            // offset fetched at, never before it (Kafka's UnexpectedAppendOffsetException).
            if h.base_offset < next {
                return Err(LogError::InvalidAppend { reason: "fetched batches start before this replica's log end offset or overlap" });
            }
            next = h.base_offset + i64::from(h.last_offset_delta) + 1;
            at += h.total_size();
        }
        if at != records.len() {
            return Err(LogError::InvalidAppend { reason: "record set length differs from its batch headers" });
        }
        let count = next - end;
        let first_base = headers[0].base_offset;
        if next - 1 - self.active().base_offset() > i64::from(i32::MAX) {
            // A gap wider than the active segment's relative offsets reach (billions of
            // compacted-away offsets): start a segment at the first batch, as Kafka rolls at
            // the appended offset.
            self.roll_to(first_base, now_ms)?;
        } else {
            self.maybe_roll(records.len(), count, now_ms)?;
        }
        self.active_mut().append(records)?;
        for h in headers {
            self.epochs.assign(h.partition_leader_epoch, h.base_offset);
            if !h.is_control() {
                self.producers.update(h, h.base_offset);
            }
        }
        self.unflushed_since_ms.get_or_insert(now_ms);
        self.last_append_ms = now_ms;
        Ok(Some(next))
    }

    /// Rolls before an append of `bytes` bytes / `count` offsets when [`PartitionLog::roll_due`].
    fn maybe_roll(&mut self, bytes: usize, count: i64, now_ms: i64) -> Result<(), LogError> {
        if self.roll_due(bytes, count, now_ms) {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Whether an append of `bytes` bytes / `count` offsets would roll first: the active
    /// segment is non-empty and would grow past segment.bytes, is older than segment.ms (see
    /// `roll_age_ms`), its index is full (segment.index.bytes) or its relative offsets would
    /// overflow the index. A roll fsyncs the active segment under the lock, so callers flush
    /// first, outside it, when this says so.
    pub fn roll_due(&self, bytes: usize, count: i64, now_ms: i64) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        let limit = self.config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let full = active.size().saturating_add(bytes as u64) > limit;
        let old = now_ms.saturating_sub(active.rolling_base_ms()) > self.roll_age_ms();
        let index = active.index();
        let index_full = index.offset_entries().len() >= self.config.segment_index_bytes / 8
            || index.time_entries().len() >= self.config.segment_index_bytes / 12;
        let last_offset = active.next_offset().saturating_add(count).saturating_sub(1);
        let overflow = last_offset.saturating_sub(active.base_offset()) > i64::from(i32::MAX);
        full || old || index_full || overflow
    }

    /// Seals the active segment (fsync, index files) and starts a new one at the log end.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.ensure_live()?;
        let end = self.log_end_offset();
        self.active_mut().seal()?;
        self.mark_flushed(end);
        crate::crash_point::reached("log.roll.sealed");
        let segment = Segment::create(&self.dir, end, self.config.index_interval_bytes, now_ms)?;
        crate::crash_point::reached("log.roll.created");
        sync_dir(&self.dir)?;
        tracing::debug!(target: "kafka.log.UnifiedLog", dir = %self.dir.display(), base_offset = end, "rolled to a new segment");
        self.segments.push(segment);
        Ok(())
    }

    /// Starts a segment at `base` (past the log end) for a follower's batch after a gap too
    /// wide for the active segment: an empty active segment is replaced, a non-empty one
    /// sealed first.
    pub(super) fn roll_to(&mut self, base: i64, now_ms: i64) -> Result<(), LogError> {
        let end = self.log_end_offset();
        if self.active().is_empty() {
            let empty = self.segments.pop().expect("a log always has an active segment");
            empty.delete()?;
        } else {
            self.active_mut().seal()?;
            self.mark_flushed(end);
        }
        let segment = Segment::create(&self.dir, base.max(end), self.config.index_interval_bytes, now_ms)?;
        sync_dir(&self.dir)?;
        if self.segments.is_empty() {
            self.log_start_offset = base.max(end);
        }
        self.segments.push(segment);
        self.mark_flushed(base.max(end));
        Ok(())
    }

    /// The pending fsync, if anything appended is not yet durable.
    pub fn flush_job(&self) -> Option<FlushJob> {
        let end = self.log_end_offset();
        (self.flushed_offset < end && !self.deleted).then(|| FlushJob {
            file: self.active().file(),
            path: self.active().path().to_path_buf(),
            upto_offset: end,
        })
    }

    /// Records that a [`FlushJob`] covering offsets below `upto_offset` completed. If data
    /// arrived during the fsync, its age is counted from the latest append (the exact time
    /// of the first one is not kept), which can delay a time-based flush by one fsync.
    pub fn mark_flushed(&mut self, upto_offset: i64) {
        let end = self.log_end_offset();
        self.flushed_offset = self.flushed_offset.max(upto_offset.min(end));
        self.unflushed_since_ms = (self.flushed_offset < end).then_some(self.last_append_ms);
    }

    /// Flushes synchronously under the caller's lock (shutdown, tests).
    pub fn flush(&mut self) -> Result<(), LogError> {
        if let Some(job) = self.flush_job() {
            job.sync().map_err(LogError::io("syncing", job.path()))?;
            self.mark_flushed(job.upto_offset());
        }
        Ok(())
    }

    /// Offsets below this are durable (the recovery point).
    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset
    }

    /// Unflushed messages reached flush.messages (Kafka's flush.messages policy).
    pub fn flush_due(&self) -> bool {
        let unflushed = u64::try_from(self.log_end_offset() - self.flushed_offset).unwrap_or(0);
        unflushed > 0 && unflushed >= self.config.flush_interval_messages
    }

    /// The oldest unflushed append is at least flush.ms old.
    pub fn flush_due_by_time(&self, now_ms: i64) -> bool {
        let flush_ms = i64::try_from(self.config.flush_interval_ms).unwrap_or(i64::MAX);
        self.flushed_offset < self.log_end_offset()
            && self
                .unflushed_since_ms
                .is_some_and(|since| now_ms.saturating_sub(since) >= flush_ms)
    }

    /// Changes the configuration; takes effect for the next append, roll or retention run.
    pub fn set_config(&mut self, config: LogConfig) {
        let interval = config.index_interval_bytes;
        self.config = config;
        self.active_mut().set_index_interval(interval);
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Flushes and writes the active segment's index files (clean shutdown).
    pub fn close(&mut self) -> Result<(), LogError> {
        if self.deleted {
            return Ok(());
        }
        let end = self.log_end_offset();
        self.active_mut().seal()?;
        self.mark_flushed(end);
        self.save_epoch_checkpoint()?;
        sync_dir(&self.dir)
    }

    /// Removes the partition's directory and everything in it.
    pub fn delete(mut self) -> Result<(), LogError> {
        self.mark_deleted();
        fs::remove_dir_all(&self.dir).map_err(LogError::io("deleting log directory", &self.dir))
    }

    /// Makes every later operation fail with [`LogError::LogDeleted`] (for holders of a
    /// shared handle when the partition is deleted underneath them).
    pub fn mark_deleted(&mut self) {
        self.deleted = true;
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// How many truncations this log has had (see the field).
    pub fn truncations(&self) -> u64 {
        self.truncations
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's directory was renamed to `dir` (a log-directory move): later file
    /// operations use the new paths (open handles stay valid across a rename).
    pub fn set_dir(&mut self, dir: &Path) {
        self.dir = dir.to_path_buf();
        for segment in &mut self.segments {
            segment.set_dir(dir);
        }
    }

    /// A copy of `other` made batch by batch (a log-directory move) takes over what the
    /// batches do not carry: the config and the leader-epoch history (a checkpointed epoch
    /// start may precede its first remaining batch). Not the cleaner's checkpoint: the copy
    /// may hold batches from before a compaction of `other` that ran during the copy, so the
    /// whole copy is dirty for the cleaner.
    pub fn take_over_state_of(&mut self, other: &PartitionLog) -> Result<(), LogError> {
        self.set_config(other.config.clone());
        // DeleteRecords may have moved the start into the copy's first segment.
        self.increment_log_start_offset(other.log_start_offset, other.last_append_ms)?;
        self.epochs = other.epochs.clone();
        self.epochs_saved.clear();
        self.save_epoch_checkpoint()
    }
    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` in this log and where it
    /// ends (see [`LeaderEpochHistory::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    pub fn epoch_history(&self) -> &LeaderEpochHistory {
        &self.epochs
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The idempotent producers this log remembers (DescribeProducers).
    pub fn active_producers(&self) -> Vec<super::producer_state::ActiveProducer> {
        self.producers.active_producers()
    }
    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }
    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }
    pub fn num_segments(&self) -> usize {
        self.segments.len()
    }
    /// What ListOffsets v0 searches (Kafka's `legacyFetchOffsetsBefore`): each segment's
    /// base offset (at least the log start) with its file's modification time, oldest first,
    /// then the log end offset at `now_ms` when the active segment holds data.
    pub fn segment_offset_times(&self, now_ms: i64) -> Vec<(i64, i64)> {
        let mut table: Vec<(i64, i64)> = self
            .segments
            .iter()
            .map(|s| (s.base_offset().max(self.log_start_offset), s.last_modified_ms()))
            .collect();
        if !self.active().is_empty() {
            table.push((self.log_end_offset(), now_ms));
        }
        table
    }
    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(Segment::base_offset).collect()
    }
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }
    /// How many idempotent producers this log remembers.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Forgets idle producers (Kafka's producer.id.expiration.ms, default 86400000).
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) {
        self.producers.remove_expired(now_ms, expiration_ms);
    }
}

#[cfg(test)]
#[path = "partition_log_tests.rs"]
mod tests;
