//! A broker that is not a controller (`process.roles=broker`) follows the metadata as an
//! observer, as Kafka's brokers fetch `__cluster_metadata`: it asks the active controller for
//! the records after the offset it has applied (long polling), or for the whole image when it
//! is new or too far behind (the log before a snapshot is gone), and publishes each new image.
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::image::MetadataImage;
use super::quorum::MetadataBatch;

/// What the active controller sends an observer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MetadataDelta {
    /// The whole image (a new observer, or one behind the oldest entry the log still has).
    Image(MetadataImage),
    /// Entries after the observer's offset: (offset, batch).
    Batches(Vec<(i64, MetadataBatch)>),
}

impl MetadataDelta {
    /// Metadata records it carries (Kafka's observers count what they fetch in raft-metrics
    /// fetch-records-rate; a whole image counts as none).
    pub fn records(&self) -> usize {
        match self {
            MetadataDelta::Image(_) => 0,
            MetadataDelta::Batches(b) => b.iter().map(|(_, batch)| batch.records.len()).sum(),
        }
    }
}

pub struct Observer {
    published: watch::Sender<Arc<MetadataImage>>,
    voters: Vec<i32>,
    /// Which voter to ask next while the active controller is unknown.
    cursor: AtomicUsize,
    /// The voter that last answered as the active controller; -1 when unknown.
    leader: AtomicI32,
    apply_errors: std::sync::atomic::AtomicU64,
}

impl Observer {
    pub fn new(voters: Vec<i32>) -> Self {
        let (published, _) = watch::channel(Arc::new(MetadataImage::default()));
        Self { published, voters, cursor: AtomicUsize::new(0), leader: AtomicI32::new(-1), apply_errors: Default::default() }
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.published.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.published.subscribe()
    }

    pub fn apply_errors(&self) -> u64 {
        self.apply_errors.load(Ordering::Relaxed)
    }

    /// The controller to ask: the known active one, or the next voter to try.
    pub fn target(&self) -> i32 {
        match self.leader.load(Ordering::Acquire) {
            l if l >= 0 => l,
            _ => self.voters.get(self.cursor.load(Ordering::Relaxed) % self.voters.len().max(1)).copied().unwrap_or(-1),
        }
    }

    /// The active controller as last seen; -1 when unknown.
    pub fn leader(&self) -> i32 {
        self.leader.load(Ordering::Acquire)
    }

    pub fn answered(&self, voter: i32) {
        self.leader.store(voter, Ordering::Release);
    }

    /// `voter` is not (or no longer) the active controller: try the next one.
    pub fn refused(&self, voter: i32) {
        let _ = self.leader.compare_exchange(voter, -1, Ordering::AcqRel, Ordering::Acquire);
        self.cursor.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies what the active controller sent.
    pub fn apply(&self, delta: MetadataDelta) {
        let next = match delta {
            MetadataDelta::Image(img) => img,
            MetadataDelta::Batches(batches) => {
                if batches.is_empty() {
                    return;
                }
                let mut img = (*self.image()).clone();
                for (offset, batch) in batches {
                    if offset <= img.last_offset {
                        continue;
                    }
                    for record in &batch.records {
                        if let Err(e) = img.apply(record, offset, batch.timestamp_ms) {
                            self.apply_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(target: "org.apache.kafka.image.loader.MetadataLoader", offset, ?record, error = %e,
                                "skipped a metadata record that does not fit the image");
                        }
                    }
                }
                img
            }
        };
        self.published.send_replace(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::MetadataRecord;

    #[test]
    fn batches_apply_once_and_a_full_image_replaces() {
        let o = Observer::new(vec![1, 2, 3]);
        let batch = |name: &str| MetadataBatch {
            records: vec![MetadataRecord::Topic { name: name.into(), topic_id: uuid::Uuid::new_v4() }],
            timestamp_ms: 5,
        };
        o.apply(MetadataDelta::Batches(vec![(3, batch("a")), (4, batch("b"))]));
        // A repeat of offset 4 (a retried fetch) is not applied twice.
        o.apply(MetadataDelta::Batches(vec![(4, batch("b")), (6, batch("c"))]));
        let img = o.image();
        assert_eq!((img.topics.len(), img.last_offset, o.apply_errors()), (3, 6, 0));
        o.apply(MetadataDelta::Image(MetadataImage { cluster_id: "x".into(), last_offset: 9, ..Default::default() }));
        assert_eq!((o.image().topics.len(), o.image().last_offset), (0, 9));
        assert_eq!(o.target(), 1);
        o.refused(1);
        assert_eq!(o.target(), 2);
        o.answered(3);
        assert_eq!(o.target(), 3);
        o.refused(3);
        assert_eq!(o.leader(), -1);
    }
}
