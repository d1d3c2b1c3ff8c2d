//! DeleteRecords on a partition: the leader moves its log start offset and waits for the
//! ISR's followers to move theirs (the low watermark); followers take the leader's log start
//! from each fetch response (Kafka's Partition.deleteRecordsOnLeader and the fetcher's
//! maybeIncrementLogStartOffset).
use std::sync::Arc;

use super::{Partition, PartitionError};

/// DeleteRecords' offset meaning "everything below the high watermark".
pub const HIGH_WATERMARK: i64 = -1;

impl Partition {
    /// On the leader: deletes the records before `offset` (or before the high watermark for
    /// [`HIGH_WATERMARK`]) by moving the log start offset there, durably, on a blocking
    /// thread. Returns the offset the start was asked to reach; the caller waits for
    /// [`Partition::low_watermark`] to get there.
    pub async fn delete_records_before(self: &Arc<Self>, offset: i64, now_ms: i64) -> Result<i64, PartitionError> {
        if !self.is_leader() {
            return Err(PartitionError::NotLeader(self.name()));
        }
        {
            let log = self.log.lock();
            if !log.config().cleanup_policy_delete {
                return Err(PartitionError::DeleteOnCompactedTopic(self.name()));
            }
        }
        let high_watermark = self.high_watermark();
        let target = if offset == HIGH_WATERMARK { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(PartitionError::DeleteBeyondHighWatermark { partition: self.name(), offset, high_watermark });
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut log = me.log.lock();
            if !me.is_leader() {
                return Err(PartitionError::NotLeader(me.name()));
            }
            log.increment_log_start_offset(target, now_ms)?;
            Ok(())
        })
        .await
        .map_err(|_| PartitionError::TaskAborted { what: "record deletion", partition: self.name() })??;
        // Waiters on the low watermark re-check (a leader alone is done at once).
        self.hw_watch.send_modify(|_| {});
        Ok(target)
    }

    /// On the leader: the smallest log start offset of the leader and its ISR's followers
    /// (-1 while one has not fetched yet, or when this broker does not lead).
    pub fn low_watermark(&self) -> i64 {
        let start = self.log_start_offset();
        self.replication.lock().as_ref().map_or(-1, |r| r.low_watermark(start))
    }

    /// Waits until the low watermark reaches `required` (true) or `timeout` passes, or this
    /// broker stops leading (false); without the request's handler slot (the followers'
    /// fetches move it; RemoteTimeMs).
    pub async fn wait_low_watermark(&self, required: i64, timeout: std::time::Duration) -> bool {
        crate::network::handler_pool::remote(self.wait_low_watermark_inner(required, timeout)).await
    }

    async fn wait_low_watermark_inner(&self, required: i64, timeout: std::time::Duration) -> bool {
        let mut rx = self.hw_watch.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !self.is_leader() {
                return false;
            }
            if self.low_watermark() >= required {
                return true;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return false },
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    /// On a follower: the leader's log start offset from a fetch response. The local start
    /// follows it when it is inside this log (a start past the log end is the fetcher's
    /// restart case); the checkpoint write and segment deletions run on a blocking thread.
    pub async fn follow_leader_log_start(self: &Arc<Self>, leader_log_start: i64, now_ms: i64) -> Result<(), PartitionError> {
        let behind = {
            let log = self.log.lock();
            leader_log_start > log.log_start_offset() && leader_log_start <= log.log_end_offset()
        };
        if !behind || self.is_leader() {
            return Ok(());
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut log = me.log.lock();
            if me.is_leader() {
                return Ok(());
            }
            log.increment_log_start_offset(leader_log_start, now_ms).map(|_| ()).map_err(PartitionError::from)
        })
        .await
        .map_err(|_| PartitionError::TaskAborted { what: "log start update", partition: self.name() })?
    }
}
