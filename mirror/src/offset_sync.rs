//! Offset translation state, as MM2 decides it: when the source task emits an offset sync
//! (`OffsetSyncWriter.PartitionState`), and how the checkpoint task turns a group's upstream
//! offset into a downstream one (`OffsetSyncStore.translateDownstream`): the newest sync at or
//! below the committed offset; exactly its downstream offset when equal, else one past it, so a
//! translated offset never skips a record the group had not read.
use std::collections::{BTreeMap, HashMap};

/// Per source partition: whether the record just acknowledged needs a sync.
#[derive(Debug, Clone)]
pub struct PartitionState {
    previous_upstream: i64,
    previous_downstream: i64,
    last_sync_downstream: i64,
    max_offset_lag: i64,
}

impl PartitionState {
    pub fn new(max_offset_lag: i64) -> Self {
        PartitionState { previous_upstream: -1, previous_downstream: -1, last_sync_downstream: -1, max_offset_lag }
    }

    /// Feeds one acknowledged record; true if an offset sync must be sent now.
    pub fn update(&mut self, upstream: i64, downstream: i64) -> bool {
        let no_previous_sync = self.last_sync_downstream == -1;
        let too_stale = downstream - (self.last_sync_downstream + 1) >= self.max_offset_lag;
        let skipped_upstream = upstream - self.previous_upstream != 1;
        let truncated_downstream = downstream < self.previous_downstream;
        let sync = no_previous_sync || too_stale || skipped_upstream || truncated_downstream;
        if sync {
            self.last_sync_downstream = downstream;
        }
        self.previous_upstream = upstream;
        self.previous_downstream = downstream;
        sync
    }
}

/// The syncs known per source partition (upstream offset -> downstream offset), bounded.
#[derive(Debug, Default)]
pub struct OffsetSyncStore {
    syncs: HashMap<(String, i32), BTreeMap<i64, i64>>,
}

/// Syncs kept per partition; older ones are dropped (translation of very old offsets then
/// falls back to none, which MM2 also does once its sparse store has moved on).
const KEPT_PER_PARTITION: usize = 64;

impl OffsetSyncStore {
    pub fn record(&mut self, topic: &str, partition: i32, upstream: i64, downstream: i64) {
        let m = self.syncs.entry((topic.to_string(), partition)).or_default();
        // A sync below an existing one with a larger downstream offset means the target was
        // truncated or re-copied: drop what came after it, as it no longer holds.
        m.retain(|&u, _| u < upstream);
        m.insert(upstream, downstream);
        while m.len() > KEPT_PER_PARTITION {
            // Keep the newest syncs; the oldest translate offsets no group should still hold.
            let first = *m.keys().next().unwrap_or(&0);
            m.remove(&first);
        }
    }

    /// The downstream offset for a group's committed upstream offset, or None when no sync at
    /// or below it is known (no checkpoint is then emitted).
    pub fn translate_downstream(&self, topic: &str, partition: i32, upstream: i64) -> Option<i64> {
        let m = self.syncs.get(&(topic.to_string(), partition))?;
        let (&sync_up, &sync_down) = m.range(..=upstream).next_back()?;
        Some(if sync_up == upstream { sync_down } else { sync_down + 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_follow_mm2s_rule() {
        let mut p = PartitionState::new(100);
        assert!(p.update(0, 0), "first record of this lifetime");
        assert!(!p.update(1, 1));
        let mut q = PartitionState::new(3);
        assert!(q.update(10, 0));
        assert!(!q.update(11, 1));
        assert!(!q.update(12, 2));
        assert!(!q.update(13, 3));
        assert!(q.update(14, 4), "translated offset too stale: 4 - (0 + 1) >= 3");
    }

    #[test]
    fn skips_and_truncation_sync() {
        let mut p = PartitionState::new(100);
        assert!(p.update(5, 0));
        assert!(!p.update(6, 1));
        assert!(p.update(9, 2), "upstream skipped (compacted or transaction markers)");
        assert!(p.update(10, 1), "downstream went back");
    }

    #[test]
    fn translation_never_skips_unread_records() {
        let mut s = OffsetSyncStore::default();
        assert_eq!(s.translate_downstream("t", 0, 5), None);
        s.record("t", 0, 100, 0);
        s.record("t", 0, 200, 100);
        assert_eq!(s.translate_downstream("t", 0, 99), None, "below the first sync: unknown");
        assert_eq!(s.translate_downstream("t", 0, 100), Some(0), "exact");
        assert_eq!(s.translate_downstream("t", 0, 150), Some(1), "one past the sync at or below");
        assert_eq!(s.translate_downstream("t", 0, 200), Some(100));
        assert_eq!(s.translate_downstream("t", 0, 5000), Some(101));
        assert_eq!(s.translate_downstream("t", 1, 150), None, "another partition");
        s.record("t", 0, 150, 40);
        assert_eq!(s.translate_downstream("t", 0, 250), Some(41), "newer syncs replace the ones above them");
    }
}
