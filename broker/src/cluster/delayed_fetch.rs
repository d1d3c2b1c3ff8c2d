//! Long-poll fetch wake-ups, per partition. Kafka's fetch purgatory watches each delayed
//! fetch under the keys of the partitions it reads, and an append completes only the
//! fetches watching that partition; a broker-wide signal would make every append re-run
//! every waiting fetch (thousands of re-reads per second with many idle consumers).
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Partition;

/// The fetches waiting on one partition.
#[derive(Default)]
pub struct FetchWatchers {
    waiting: Mutex<Vec<Arc<Notify>>>,
}

impl FetchWatchers {
    fn add(&self, fetch: &Arc<Notify>) {
        self.waiting.lock().push(Arc::clone(fetch));
    }

    fn remove(&self, fetch: &Arc<Notify>) {
        let mut waiting = self.waiting.lock();
        if let Some(i) = waiting.iter().position(|n| Arc::ptr_eq(n, fetch)) {
            waiting.swap_remove(i);
        }
    }

    /// Wakes every fetch waiting on the partition (after an append moved its high watermark).
    pub fn wake_all(&self) {
        for fetch in self.waiting.lock().iter() {
            // notify_one stores a permit when the fetch is not parked yet (it is between
            // registering and awaiting, re-reading its partitions): no wake-up is lost.
            fetch.notify_one();
        }
    }

    /// Fetches currently waiting on the partition.
    pub fn len(&self) -> usize {
        self.waiting.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One long-poll fetch's registration with the partitions it reads; dropping it
/// deregisters. Register, then read once more, then wait: an append between the last read
/// and the wait leaves a permit, so it is not missed.
pub struct DelayedFetch {
    notify: Arc<Notify>,
    partitions: Vec<Arc<Partition>>,
}

impl DelayedFetch {
    pub fn watch(partitions: Vec<Arc<Partition>>) -> DelayedFetch {
        let notify = Arc::new(Notify::new());
        for p in &partitions {
            p.fetch_watchers().add(&notify);
        }
        DelayedFetch { notify, partitions }
    }

    /// Waits for an append to one of the watched partitions, or the deadline; true when
    /// woken by an append.
    pub async fn wait_until(&self, deadline: tokio::time::Instant) -> bool {
        tokio::time::timeout_at(deadline, self.notify.notified()).await.is_ok()
    }
}

impl Drop for DelayedFetch {
    fn drop(&mut self) {
        for p in &self.partitions {
            p.fetch_watchers().remove(&self.notify);
        }
    }
}
