//! Idempotent-producer bookkeeping for one partition: per producer id, the current epoch
//! and the last 5 appended batches, to reject sequence gaps and stale epochs and to answer
//! a retried batch with its original offsets instead of storing it twice.
//!
//! Choice for an unknown producer id: any starting sequence is accepted (as Kafka >= 2.5
//! does, KIP-360), because the broker may have lost the producer's state when the
//! segments holding its batches were deleted by retention. The state is rebuilt from the
//! batch headers when a log is opened.

use crate::error_code;
use super::record_batch::BatchHeader;
use std::collections::{HashMap, VecDeque};
use thiserror::Error;

/// How many recent batches per producer are remembered for duplicate detection (Kafka's
/// max.in.flight.requests.per.connection limit for idempotence).
pub const RETAINED_BATCHES: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SequenceError {
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {received}; the producer lost a batch and must reset (it will bump its epoch)")]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    #[error("producer {producer_id} used epoch {received} but epoch {current} is current; a newer instance of this producer fenced it")]
    InvalidEpoch {
        producer_id: i64,
        current: i16,
        received: i16,
    },
    #[error(
        "duplicate batch of producer {producer_id} inside a multi-batch produce; send retried batches on their own"
    )]
    DuplicateInMultiBatch { producer_id: i64 },
}

impl SequenceError {
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            SequenceError::OutOfOrder { .. } => error_code::OUT_OF_ORDER_SEQUENCE_NUMBER,
            SequenceError::InvalidEpoch { .. } => error_code::INVALID_PRODUCER_EPOCH,
            SequenceError::DuplicateInMultiBatch { .. } => error_code::DUPLICATE_SEQUENCE_NUMBER,
        }
    }
}

/// Outcome of checking a batch against the producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data: append it.
    Append,
    /// A retry of a batch already in the log at these offsets: acknowledge, do not store.
    Duplicate {
        base_offset: i64,
        last_offset: i64,
        timestamp: i64,
    },
}

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

/// What DescribeProducers reports of one idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
    last_timestamp: i64,
}

/// Sequence number after adding `delta`, wrapping from i32::MAX to 0 as Kafka does.
pub fn increment_sequence(seq: i32, delta: i32) -> i32 {
    let next = i64::from(seq) + i64::from(delta);
    let max = i64::from(i32::MAX);
    // `as` cannot lose information for sequences from a valid batch; for garbage it wraps.
    (if next > max { next - max - 1 } else { next }) as i32
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq == increment_sequence(last_seq, 1)
}

fn last_seq_of(h: &BatchHeader) -> i32 {
    increment_sequence(h.base_sequence, h.last_offset_delta.max(0))
}

/// Producer state of one partition.
#[derive(Debug, Clone, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub fn new() -> ProducerStateManager {
        ProducerStateManager::default()
    }

    /// Checks one batch (see the module docs for the rules).
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        if !header.has_producer_id() {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        check_against(entry.epoch, &entry.batches, header)
    }

    /// Checks all batches of one produce request, each against the state as it will be after
    /// the previous ones. A duplicate is only answered as such when it is the only batch.
    pub fn check_all(&self, headers: &[BatchHeader]) -> Result<SequenceCheck, SequenceError> {
        if let [single] = headers {
            return self.check(single);
        }
        // Producer -> (epoch, last sequence) as of the batches earlier in this request.
        let mut pending: HashMap<i64, (i16, i32)> = HashMap::new();
        for h in headers.iter().filter(|h| h.has_producer_id()) {
            let outcome = match pending.get(&h.producer_id) {
                Some(&(epoch, last_seq)) => {
                    if check_epoch(epoch, h)? {
                        check_next_sequence(Some(last_seq), h)?;
                    }
                    SequenceCheck::Append
                }
                None => self.check(h)?,
            };
            if outcome != SequenceCheck::Append {
                return Err(SequenceError::DuplicateInMultiBatch {
                    producer_id: h.producer_id,
                });
            }
            pending.insert(h.producer_id, (h.producer_epoch, last_seq_of(h)));
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch appended at `base_offset` (ignored for batches without producer id).
    pub fn update(&mut self, header: &BatchHeader, base_offset: i64) {
        if !header.has_producer_id() {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if entry.epoch != header.producer_epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == RETAINED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: last_seq_of(header),
            base_offset,
            last_offset: base_offset.saturating_add(i64::from(header.last_offset_delta)),
            timestamp: header.max_timestamp,
        });
        entry.last_timestamp = header.max_timestamp;
    }

    /// Forgets producers whose last batch is older than `now_ms - expiration_ms` (Kafka's
    /// producer.id.expiration.ms, default one day).
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) {
        let cutoff = now_ms.saturating_sub(expiration_ms);
        self.producers.retain(|_, e| e.last_timestamp >= cutoff);
    }

    pub fn clear(&mut self) {
        self.producers.clear();
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Base offset of a producer's latest batch (the cleaner keeps that batch, possibly
    /// emptied, so the producer's sequence survives compaction and a restart).
    pub fn last_batch_offset(&self, producer_id: i64) -> Option<i64> {
        self.producers
            .get(&producer_id)
            .and_then(|e| e.batches.back())
            .map(|b| b.base_offset)
    }

    /// [`ProducerStateManager::last_batch_offset`] of every producer, for a cleaner that
    /// runs without the log's lock.
    pub fn last_batch_offsets(&self) -> std::collections::HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(id, e)| e.batches.back().map(|b| (*id, b.base_offset)))
            .collect()
    }

    /// Every producer's id, epoch, last sequence and last timestamp, by id (DescribeProducers).
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        let mut out: Vec<ActiveProducer> = self
            .producers
            .iter()
            .filter_map(|(id, e)| {
                e.batches.back().map(|b| ActiveProducer { producer_id: *id, epoch: e.epoch, last_sequence: b.last_seq, last_timestamp: e.last_timestamp })
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Current epoch and remembered batches of a producer.
    pub fn producer(&self, producer_id: i64) -> Option<(i16, Vec<BatchMetadata>)> {
        self.producers
            .get(&producer_id)
            .map(|e| (e.epoch, e.batches.iter().copied().collect()))
    }
}

fn check_against(
    epoch: i16,
    batches: &VecDeque<BatchMetadata>,
    h: &BatchHeader,
) -> Result<SequenceCheck, SequenceError> {
    if !check_epoch(epoch, h)? {
        return Ok(SequenceCheck::Append);
    }
    let last_seq = last_seq_of(h);
    if let Some(dup) = batches
        .iter()
        .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
    {
        return Ok(SequenceCheck::Duplicate {
            base_offset: dup.base_offset,
            last_offset: dup.last_offset,
            timestamp: dup.timestamp,
        });
    }
    check_next_sequence(batches.back().map(|b| b.last_seq), h)?;
    Ok(SequenceCheck::Append)
}

/// Rejects a stale epoch; a newer epoch must restart at sequence 0. Returns whether the
/// batch continues the current epoch (and so needs the sequence checks).
fn check_epoch(epoch: i16, h: &BatchHeader) -> Result<bool, SequenceError> {
    if h.producer_epoch < epoch {
        return Err(SequenceError::InvalidEpoch {
            producer_id: h.producer_id,
            current: epoch,
            received: h.producer_epoch,
        });
    }
    if h.producer_epoch > epoch {
        if h.base_sequence != 0 {
            return Err(SequenceError::OutOfOrder {
                producer_id: h.producer_id,
                expected: 0,
                received: h.base_sequence,
            });
        }
        return Ok(false);
    }
    Ok(true)
}

fn check_next_sequence(last_seq: Option<i32>, h: &BatchHeader) -> Result<(), SequenceError> {
    match last_seq {
        Some(last) if !in_sequence(last, h.base_sequence) => Err(SequenceError::OutOfOrder {
            producer_id: h.producer_id,
            expected: increment_sequence(last, 1),
            received: h.base_sequence,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::{encode_batch, BatchSpec};

    fn header(pid: i64, epoch: i16, seq: i32, records: usize) -> BatchHeader {
        let values: Vec<&[u8]> = vec![b"v"; records];
        BatchHeader::parse(&encode_batch(&BatchSpec::values(&values).idempotent(pid, epoch, seq))).unwrap()
    }

    #[test]
    fn sequences_duplicates_and_gaps() {
        let mut s = ProducerStateManager::new();
        let b0 = header(1, 0, 0, 3);
        assert_eq!(s.check(&b0), Ok(SequenceCheck::Append));
        s.update(&b0, 100);
        let b1 = header(1, 0, 3, 2);
        assert_eq!(s.check(&b1), Ok(SequenceCheck::Append));
        s.update(&b1, 103);
        assert_eq!(
            s.check(&b0),
            Ok(SequenceCheck::Duplicate {
                base_offset: 100,
                last_offset: 102,
                timestamp: 1002
            })
        );
        let gap = header(1, 0, 9, 1);
        let err = s.check(&gap).unwrap_err();
        assert_eq!(
            err,
            SequenceError::OutOfOrder {
                producer_id: 1,
                expected: 5,
                received: 9
            }
        );
        assert_eq!(err.kafka_error_code(), 45);
    }

    #[test]
    fn only_last_five_batches_are_duplicates() {
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            s.update(&header(1, 0, i, 1), i64::from(i));
        }
        assert!(matches!(
            s.check(&header(1, 0, 2, 1)),
            Ok(SequenceCheck::Duplicate { base_offset: 2, .. })
        ));
        assert!(matches!(
            s.check(&header(1, 0, 1, 1)),
            Err(SequenceError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn epochs() {
        let mut s = ProducerStateManager::new();
        s.update(&header(1, 5, 0, 1), 0);
        let err = s.check(&header(1, 4, 1, 1)).unwrap_err();
        assert_eq!(err.kafka_error_code(), 47);
        assert!(matches!(
            s.check(&header(1, 6, 3, 1)),
            Err(SequenceError::OutOfOrder { expected: 0, .. })
        ));
        assert_eq!(s.check(&header(1, 6, 0, 1)), Ok(SequenceCheck::Append));
        s.update(&header(1, 6, 0, 1), 1);
        assert_eq!(s.producer(1).unwrap().1.len(), 1, "new epoch forgets old batches");
    }

    #[test]
    fn unknown_producers_and_non_idempotent_batches_are_accepted() {
        let s = ProducerStateManager::new();
        assert_eq!(s.check(&header(9, 0, 42, 1)), Ok(SequenceCheck::Append));
        let plain = BatchHeader::parse(&encode_batch(&BatchSpec::values(&[b"x"]))).unwrap();
        assert_eq!(s.check(&plain), Ok(SequenceCheck::Append));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        let mut s = ProducerStateManager::new();
        s.update(&header(1, 0, i32::MAX - 1, 2), 0);
        assert_eq!(s.check(&header(1, 0, 0, 1)), Ok(SequenceCheck::Append));
        assert!(s.check(&header(1, 0, 1, 1)).is_err());
    }

    #[test]
    fn multi_batch_requests_chain_sequences() {
        let mut s = ProducerStateManager::new();
        s.update(&header(1, 0, 0, 2), 0);
        let ok = [header(1, 0, 2, 2), header(1, 0, 4, 1), header(2, 0, 0, 1)];
        assert_eq!(s.check_all(&ok), Ok(SequenceCheck::Append));
        let gap = [header(1, 0, 2, 2), header(1, 0, 5, 1)];
        assert!(matches!(
            s.check_all(&gap),
            Err(SequenceError::OutOfOrder { expected: 4, .. })
        ));
        let dup = [header(1, 0, 0, 2), header(1, 0, 2, 1)];
        assert!(matches!(
            s.check_all(&dup),
            Err(SequenceError::DuplicateInMultiBatch { .. })
        ));
    }

    #[test]
    fn expiration() {
        let mut s = ProducerStateManager::new();
        s.update(&header(1, 0, 0, 1), 0); // timestamp 1000
        s.remove_expired(1500, 1000);
        assert_eq!(s.len(), 1);
        s.remove_expired(3000, 1000);
        assert!(s.is_empty());
    }
}
