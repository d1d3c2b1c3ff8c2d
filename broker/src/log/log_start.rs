//! The log start offset where it is not a segment's base offset: DeleteRecords (and a
//! follower following its leader's DeleteRecords) moves it into the middle of a segment.
//! Such a start is kept in the partition directory's `log-start-offset-checkpoint` (Kafka's
//! checkpoint format, one entry), written and fsynced before the move is acknowledged, so a
//! restart never brings deleted records back. A log whose start is its first segment's base
//! offset needs no file: at open the start is the larger of the two.
use std::path::Path;

use super::checkpoint_file;
use super::partition_log::PartitionLog;
use super::LogError;

pub const FILE: &str = "log-start-offset-checkpoint";

/// The checkpointed log start offset in `dir`, if any. An unreadable file is an error: the
/// records below it were deleted on a client's request, and serving them again is worse
/// than not starting.
pub fn read(dir: &Path) -> Result<Option<i64>, LogError> {
    let lines = checkpoint_file::read(dir, FILE).map_err(LogError::io("reading", &dir.join(FILE)))?;
    let Some(lines) = lines else { return Ok(None) };
    match lines.as_slice() {
        [line] => line.trim().parse::<i64>().ok().filter(|o| *o >= 0).map(Some).ok_or_else(|| {
            LogError::io("reading", &dir.join(FILE))(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{line:?} is not an offset; fix or remove the file (removing it may bring back records deleted with DeleteRecords)"),
            ))
        }),
        _ => Err(LogError::io("reading", &dir.join(FILE))(std::io::Error::new(std::io::ErrorKind::InvalidData, "expected exactly one entry"))),
    }
}

fn write(dir: &Path, offset: i64) -> Result<(), LogError> {
    checkpoint_file::write(dir, FILE, &[offset.to_string()]).map_err(LogError::io("writing", &dir.join(FILE)))
}

impl PartitionLog {
    /// Moves the log start offset up to `offset` (DeleteRecords, or a follower taking its
    /// leader's): never down, never past the log end. The new start is made durable first,
    /// then the segments wholly below it are deleted. Returns whether the start moved.
    pub fn increment_log_start_offset(&mut self, offset: i64, now_ms: i64) -> Result<bool, LogError> {
        self.ensure_live()?;
        let offset = offset.min(self.log_end_offset());
        if offset <= self.log_start_offset {
            return Ok(false);
        }
        write(&self.dir, offset)?;
        self.log_start_offset = offset;
        // As Kafka's truncateFromStart: epochs wholly below the start go, so
        // OffsetForLeaderEpoch never answers with an offset the log no longer has.
        self.epochs.truncate_before(offset);
        self.save_epoch_checkpoint()?;
        self.delete_segments_below(offset, now_ms)?;
        if self.cleaner_checkpoint.is_some_and(|c| c < offset) {
            self.store_cleaner_checkpoint(offset)?;
        }
        Ok(true)
    }

    /// At open: the checkpointed start, when it is past the first segment's base offset
    /// (never past the log end).
    pub(super) fn restore_log_start_offset(&mut self) -> Result<(), LogError> {
        if let Some(saved) = read(&self.dir)? {
            self.log_start_offset = self.log_start_offset.max(saved.min(self.log_end_offset()));
        }
        Ok(())
    }

    /// After a truncation that restarted the log lower than a checkpointed start: the
    /// checkpoint follows, or the next open would start the log past records it now has.
    pub(super) fn lower_saved_log_start(&mut self) -> Result<(), LogError> {
        match read(&self.dir) {
            Ok(Some(saved)) if saved > self.log_start_offset => write(&self.dir, self.log_start_offset),
            Ok(_) => Ok(()),
            // Unreadable: replace it with the start the log has now.
            Err(_) => write(&self.dir, self.log_start_offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::log::partition_log::{LogConfig, PartitionLog};
    use crate::log::record_batch::validate_produce_records;
    use crate::log::test_util::{encode_batch, BatchSpec};

    fn small_segments() -> LogConfig {
        LogConfig { segment_bytes: 300, ..LogConfig::default() }
    }

    fn append(log: &mut PartitionLog, n: usize) {
        for _ in 0..n {
            let mut bytes = encode_batch(&BatchSpec::timestamps(&[1, 2]));
            let headers = validate_produce_records(&bytes, 1 << 20).unwrap();
            log.append(&mut bytes, &headers, 0, 0).unwrap();
        }
    }

    #[test]
    fn the_start_moves_into_a_segment_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        append(&mut log, 9); // 18 records, several segments
        let segments = log.num_segments();
        assert!(segments >= 3, "{segments} segments");
        let mid = log.segment_base_offsets()[1] + 1;
        assert!(log.increment_log_start_offset(mid, 0).unwrap());
        assert_eq!(log.log_start_offset(), mid);
        assert_eq!(log.segment_base_offsets()[0], mid - 1, "the segment holding the new start stays");
        assert!(log.num_segments() < segments, "segments wholly below the start are deleted");
        assert!(!log.increment_log_start_offset(mid - 1, 0).unwrap(), "never down");
        assert_eq!(log.epoch_history().entries().first().map(|e| e.1), Some(mid), "epochs start at the log start");
        assert!(matches!(log.plan_read(mid - 1, 1 << 20, log.log_end_offset()), Err(crate::log::LogError::OffsetOutOfRange { .. })));
        drop(log);
        let log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        assert_eq!(log.log_start_offset(), mid, "a restart does not bring deleted records back");
    }

    #[test]
    fn the_start_never_passes_the_log_end_and_may_reach_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        append(&mut log, 3);
        assert!(log.increment_log_start_offset(1_000, 0).unwrap());
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 6));
        append(&mut log, 1);
        assert_eq!(log.log_end_offset(), 8, "appends go on after everything was deleted");
        drop(log);
        let log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 8));
    }

    #[test]
    fn a_truncation_below_the_start_restarts_the_log_and_the_checkpoint_follows() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        append(&mut log, 9);
        let base = log.segment_base_offsets()[1];
        log.increment_log_start_offset(base + 1, 0).unwrap();
        log.truncate_to(base, 0).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (base, base));
        drop(log);
        let log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (base, base));
    }

    #[test]
    fn an_unreadable_checkpoint_stops_the_open() {
        let dir = tempfile::tempdir().unwrap();
        drop(PartitionLog::open(dir.path(), small_segments()).unwrap());
        std::fs::write(dir.path().join(super::FILE), "0\n1\nnot-an-offset\n").unwrap();
        let err = PartitionLog::open(dir.path(), small_segments()).err().expect("refused");
        assert!(err.to_string().contains("log-start-offset-checkpoint"), "{err}");
    }
}
