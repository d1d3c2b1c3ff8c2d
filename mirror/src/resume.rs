//! Exactly-once resume without transactions: where a source partition's copy resumes after a
//! restart, and which of the records read from there are already on the target.
//!
//! Each progress commit (source offset S, group `lantern-mirror.<source>-><target>`) carries in
//! its OffsetCommit metadata the target offset T the record at S goes to. On assignment the
//! target partition's end E (ListOffsets latest: the high watermark) says that k = E - T records
//! were written after that commit; the first k records read from S (every record the mirror
//! copies counts: the consumer never hands out control records or aborted transactions) are
//! skipped, and the copy goes on from the k+1st. That is exact when the mirror is the only writer
//! of the target partition and each record it wrote went to the next offset (acks=all,
//! idempotent producer); otherwise the partition falls back to at least once (`Fallback`).
//! Before it trusts the count, the mirror reads the target's records T..E-1 and compares each
//! record it skips with the target record at the same position (key, value and headers):
//! another writer's records, a killed run's request that arrived late, a gap a refused batch
//! left, source records compacted away or deleted by retention since the killed run make them
//! differ, and the partition is read again from S and copied at least once instead of losing
//! records. Only a run of records identical in key, value and headers can hide such a change.
//!
//! Everything here is plain data: `decide` turns what was read on assignment into a `Resume`,
//! and `PartitionProgress` follows one partition's records (skipped, sent, acknowledged) to the
//! progress to commit. The copy loop only moves bytes around them.
use std::collections::VecDeque;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Most records after a commit the resume reads back from the target to check (8 bytes of
/// memory each; one offset.flush.interval.ms of traffic is normally far less). Beyond it the
/// partition resumes at least once.
pub const MAX_VERIFIED: u64 = 2_000_000;

/// `exactly.once.support`: the connector-level name and values of KIP-618, plus `disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExactlyOnceSupport {
    /// Exact resume where the preconditions hold; at least once, logged, where they do not.
    Requested,
    /// A partition whose preconditions do not hold stops the flow with the reason.
    Required,
    /// At least once: every restart re-copies what was copied since the last commit.
    Disabled,
}

impl ExactlyOnceSupport {
    pub fn parse(v: &str) -> Result<Self, String> {
        match v.to_ascii_lowercase().as_str() {
            "requested" => Ok(Self::Requested),
            "required" => Ok(Self::Required),
            "disabled" => Ok(Self::Disabled),
            _ => Err(format!("{v:?} is not requested, required or disabled")),
        }
    }
}

const METADATA_PREFIX: &str = "lantern-mirror/1 target=";

/// The OffsetCommit metadata of a progress commit: the remote partition and the target offset of
/// the record at the committed source offset. Topic names cannot hold ':' or '@'.
pub fn encode_metadata(remote_topic: &str, partition: i32, target_offset: i64) -> String {
    format!("{METADATA_PREFIX}{remote_topic}:{partition}@{target_offset}")
}

/// The target offset in a progress commit's metadata, if it is this format and names this remote
/// partition (a commit made under another replication policy names another topic).
pub fn decode_metadata(metadata: &str, remote_topic: &str, partition: i32) -> Option<i64> {
    let rest = metadata.strip_prefix(METADATA_PREFIX)?;
    let (where_, offset) = rest.rsplit_once('@')?;
    let (topic, p) = where_.rsplit_once(':')?;
    let offset: i64 = offset.parse().ok()?;
    (topic == remote_topic && p.parse::<i32>().ok()? == partition && offset >= 0).then_some(offset)
}

/// What was read when a partition was assigned.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The committed source offset and the target offset its metadata names (None: no commit).
    pub committed: Option<(i64, Option<i64>)>,
    /// The source partition's log start offset and high watermark (None: could not be read).
    pub source_log_start: Option<i64>,
    pub source_end: Option<i64>,
    /// The target partition's high watermark (None: could not be read).
    pub target_end: Option<i64>,
}

/// Why a partition resumes at least once.
#[derive(Debug, Clone, PartialEq)]
pub enum Fallback {
    Disabled,
    /// The target producer's effective settings (acks, enable.idempotence) say so.
    Producer(String),
    /// The commit carries no target offset: written by an older lantern-mirror, another tool,
    /// or under another replication policy.
    NoTargetOffset,
    TargetEndUnknown,
    SourceLogStartUnknown,
    /// The target holds fewer records than the commit says were written: the target topic was
    /// recreated or lost records (acks below all, unclean election).
    TargetBehind { committed_target: i64, target_end: i64 },
    /// The committed source offset was deleted by retention: the records read from the log
    /// start are not the ones the count refers to.
    SourceTruncated { committed: i64, log_start: i64 },
    /// The target holds more records after the commit than the source has offsets after it.
    TargetAhead { to_skip: u64, source_offsets: i64 },
    /// The target's records after the commit could not be read to check the count against
    /// (or there are more than MAX_VERIFIED of them).
    TargetTailUnreadable,
    /// A record read from the source is not the target's record at its position: the target's
    /// records after the commit are not the source's records from S.
    TargetTailMismatch { source_offset: i64 },
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fallback::Disabled => write!(f, "exactly.once.support=disabled"),
            Fallback::Producer(why) => write!(f, "the target producer is not acks=all and idempotent: {why}"),
            Fallback::NoTargetOffset => write!(f, "the committed progress carries no target offset (an older format, or another replication policy)"),
            Fallback::TargetEndUnknown => write!(f, "the target partition's end offset could not be read"),
            Fallback::SourceLogStartUnknown => write!(f, "the source partition's log start offset could not be read"),
            Fallback::TargetBehind { committed_target, target_end } => {
                write!(f, "the target partition ends at {target_end}, before the committed target offset {committed_target} (recreated, or records lost)")
            }
            Fallback::SourceTruncated { committed, log_start } => {
                write!(f, "the committed source offset {committed} is below the source's log start {log_start} (deleted by retention)")
            }
            Fallback::TargetAhead { to_skip, source_offsets } => {
                write!(f, "the target holds {to_skip} records after the committed one, the source only {source_offsets} offsets (another writer of the target)")
            }
            Fallback::TargetTailUnreadable => write!(f, "the target partition's records after the committed one could not be read (or are more than {MAX_VERIFIED})"),
            Fallback::TargetTailMismatch { source_offset } => write!(
                f,
                "the target partition's record at the position of source record {source_offset} is another record (another writer of the target, a killed run's request that arrived late, or source records compacted or deleted since)"
            ),
        }
    }
}

/// Where a partition resumes.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// No progress committed: copy from the source's log start; the records already on the
    /// target are not this flow's. Committing (source offset, target offset) before copying
    /// makes the next restart exact.
    Fresh { source_offset: i64, target_offset: i64 },
    /// Resume at `source_offset`; its first `skip` records are on the target already (at
    /// `target_offset`..); the next record copied goes to `target_offset + skip`. `expected`: the
    /// fingerprints of the target's records `target_offset..target_offset + skip`, which the
    /// records skipped must have, in order (None: not read yet).
    Exact { source_offset: i64, target_offset: i64, skip: u64, expected: Option<Vec<u64>> },
    /// Resume at the committed offset (None: the source's beginning) and copy everything read.
    AtLeastOnce { source_offset: Option<i64>, reason: Fallback },
}

impl Resume {
    pub fn source_offset(&self) -> Option<i64> {
        match self {
            Resume::Fresh { source_offset, .. } | Resume::Exact { source_offset, .. } => Some(*source_offset),
            Resume::AtLeastOnce { source_offset, .. } => *source_offset,
        }
    }
}

/// The resume decision for one partition. `producer`: whether the target producer's effective
/// settings are acks=all and idempotent (Err: why not).
pub fn decide(mode: ExactlyOnceSupport, producer: &Result<(), String>, o: &Observed) -> Resume {
    let committed = o.committed.map(|(s, _)| s);
    let fallback = |reason| Resume::AtLeastOnce { source_offset: committed, reason };
    if mode == ExactlyOnceSupport::Disabled {
        return fallback(Fallback::Disabled);
    }
    if let Err(why) = producer {
        return fallback(Fallback::Producer(why.clone()));
    }
    let Some(target_end) = o.target_end else { return fallback(Fallback::TargetEndUnknown) };
    let Some(log_start) = o.source_log_start else { return fallback(Fallback::SourceLogStartUnknown) };
    match o.committed {
        None => Resume::Fresh { source_offset: log_start.max(0), target_offset: target_end },
        Some((_, None)) => fallback(Fallback::NoTargetOffset),
        Some((_, Some(t))) if target_end < t => fallback(Fallback::TargetBehind { committed_target: t, target_end }),
        Some((s, Some(t))) => {
            let skip = (target_end - t) as u64;
            if skip > 0 && log_start > s {
                return fallback(Fallback::SourceTruncated { committed: s, log_start });
            }
            if let Some(end) = o.source_end.filter(|end| skip as i64 > end - s) {
                return fallback(Fallback::TargetAhead { to_skip: skip, source_offsets: end - s });
            }
            if skip > MAX_VERIFIED {
                return fallback(Fallback::TargetTailUnreadable);
            }
            Resume::Exact { source_offset: s, target_offset: t, skip, expected: None }
        }
    }
}

impl Resume {
    /// The target records to read to check the count: offsets `from..to` (none when nothing
    /// is skipped).
    pub fn needs_tail(&self) -> Option<(i64, i64)> {
        match self {
            Resume::Exact { target_offset, skip, expected: None, .. } if *skip > 0 => Some((*target_offset, target_offset + *skip as i64)),
            _ => None,
        }
    }

    /// The fingerprints of those target records in offset order, or None: they could not all
    /// be read.
    pub fn with_tail(self, tail: Option<Vec<u64>>) -> Resume {
        match (self, tail) {
            (Resume::Exact { source_offset, target_offset, skip, .. }, Some(fps)) if fps.len() as u64 == skip => {
                Resume::Exact { source_offset, target_offset, skip, expected: Some(fps) }
            }
            (Resume::Exact { source_offset, .. }, _) => Resume::AtLeastOnce { source_offset: Some(source_offset), reason: Fallback::TargetTailUnreadable },
            (other, _) => other,
        }
    }
}

/// What a record is compared by: key, value and headers (not the timestamp, which a target
/// topic with `message.timestamp.type=LogAppendTime` replaces).
pub fn fingerprint<'a>(key: Option<&[u8]>, value: Option<&[u8]>, headers: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    value.hash(&mut h);
    for (k, v) in headers {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

/// Whether the target producer's effective settings keep one record per offset in send order.
/// `get` reads an effective librdkafka setting.
pub fn producer_preconditions(get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
    let idempotent = get("enable.idempotence").unwrap_or_default();
    if idempotent != "true" {
        return Err(format!("enable.idempotence={idempotent}"));
    }
    // librdkafka's alias of acks: whichever is set must be all.
    for key in ["acks", "request.required.acks"] {
        if let Some(v) = get(key).filter(|v| v != "all" && v != "-1") {
            return Err(format!("{key}={v}"));
        }
    }
    Ok(())
}

/// What to do with a record read from the source.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Already on the target at `target_offset`: do not send it.
    Skip { target_offset: i64 },
    Copy,
    /// The count was wrong (`Fallback::TargetTailMismatch`): read again from `source_offset` and
    /// copy everything from there. Nothing was sent or committed since the resume.
    Rewind { source_offset: i64, reason: Fallback },
}

/// One partition's progress: the records skipped, sent and acknowledged, and the (source,
/// target) offsets safe to commit, which are those of the contiguous acknowledged prefix.
#[derive(Debug, Clone)]
pub struct PartitionProgress {
    /// Next source offset to read (-1: the beginning).
    pub next_send: i64,
    /// Source offset after the acknowledged prefix, and the last one committed.
    pub acked_next: i64,
    pub committed: i64,
    /// Target offset of the next record after the acknowledged prefix (None: not known yet).
    pub target_next: Option<i64>,
    /// Acknowledgements that were not at the offset after the previous one: records this flow
    /// did not write landed in between (another writer, or a killed run's last request).
    pub interleaved: u64,
    skip_left: u64,
    skip_target: i64,
    /// The source offset resumed at, and the fingerprints the records skipped must have, in
    /// order (None: not checked).
    resumed_at: i64,
    expected: Option<Vec<u64>>,
    skipped: usize,
    /// Source offsets skipped or sent, not yet part of the acknowledged prefix, in read order,
    /// with the target offset once acknowledged: progress only moves past a record once every
    /// record read before it is acknowledged, whatever order the producer reports them in.
    in_flight: VecDeque<(i64, Option<i64>)>,
}

impl PartitionProgress {
    pub fn new(resume: &Resume) -> Self {
        let start = resume.source_offset().unwrap_or(-1);
        let (target_next, skip_left, skip_target, expected) = match resume {
            Resume::Fresh { target_offset, .. } => (Some(*target_offset), 0, *target_offset, None),
            Resume::Exact { target_offset, skip, expected, .. } => (Some(*target_offset), *skip, *target_offset, expected.clone()),
            Resume::AtLeastOnce { .. } => (None, 0, 0, None),
        };
        let committed = start.max(0);
        PartitionProgress {
            next_send: start,
            acked_next: committed,
            committed,
            target_next,
            interleaved: 0,
            skip_left,
            skip_target,
            resumed_at: start,
            expected,
            skipped: 0,
            in_flight: VecDeque::new(),
        }
    }

    /// Records still to skip.
    pub fn skipping(&self) -> u64 {
        self.skip_left
    }

    /// A record read at `offset`: skip it (it counts as acknowledged at once) or copy it; or,
    /// when a record to skip is not the target's record at its position (`fingerprint`), start
    /// over at least once.
    pub fn on_record(&mut self, offset: i64, fingerprint: impl FnOnce() -> u64) -> Action {
        if self.skip_left == 0 {
            return Action::Copy;
        }
        let want = self.expected.as_ref().map(|e| e.get(self.skipped).copied());
        if want.is_some_and(|w| w != Some(fingerprint())) {
            let reason = Fallback::TargetTailMismatch { source_offset: offset };
            let source_offset = self.resumed_at;
            *self = PartitionProgress::new(&Resume::AtLeastOnce { source_offset: Some(source_offset), reason: reason.clone() });
            return Action::Rewind { source_offset, reason };
        }
        self.skip_left -= 1;
        self.skipped += 1;
        let target_offset = self.skip_target;
        self.skip_target += 1;
        self.next_send = offset + 1;
        self.in_flight.push_back((offset, None));
        self.acknowledge(offset, target_offset);
        Action::Skip { target_offset }
    }

    /// A record handed to the producer.
    pub fn sent(&mut self, offset: i64) {
        self.next_send = offset + 1;
        self.in_flight.push_back((offset, None));
    }

    /// The target acknowledged the record read at `offset`, written at `target_offset`.
    pub fn acknowledge(&mut self, offset: i64, target_offset: i64) {
        match self.in_flight.front_mut() {
            Some(front) if front.0 == offset => front.1 = Some(target_offset),
            _ => {
                if let Some(e) = self.in_flight.iter_mut().find(|e| e.0 == offset) {
                    e.1 = Some(target_offset);
                }
            }
        }
        while let Some(&(o, Some(t))) = self.in_flight.front() {
            self.acked_next = self.acked_next.max(o + 1);
            if self.target_next.is_some_and(|next| next != t) {
                self.interleaved += 1;
            }
            self.target_next = Some(t + 1);
            self.in_flight.pop_front();
        }
    }

    /// The (source offset, target offset) to commit, if the acknowledged prefix moved.
    /// Nothing while records are being skipped: the count is not confirmed until the last one.
    pub fn to_commit(&self) -> Option<(i64, Option<i64>)> {
        (self.acked_next > self.committed && self.skip_left == 0).then_some((self.acked_next, self.target_next))
    }

    pub fn on_committed(&mut self, source_offset: i64) {
        self.committed = self.committed.max(source_offset);
    }
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
