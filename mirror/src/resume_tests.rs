//! The resume decision and a simulated copy with crashes at any point: the target ends equal to
//! the source, record for record, when the preconditions hold.
use super::*;
use proptest::prelude::*;

const OK: Result<(), String> = Ok(());

fn observed(committed: Option<(i64, Option<i64>)>, log_start: i64, target_end: i64) -> Observed {
    Observed { committed, source_log_start: Some(log_start), source_end: None, target_end: Some(target_end) }
}

#[test]
fn metadata_round_trips_and_names_its_partition() {
    let m = encode_metadata("primary.orders", 2, 1234);
    assert_eq!(m, "lantern-mirror/1 target=primary.orders:2@1234");
    assert_eq!(decode_metadata(&m, "primary.orders", 2), Some(1234));
    assert_eq!(decode_metadata(&m, "primary.orders", 1), None, "another partition");
    assert_eq!(decode_metadata(&m, "orders", 2), None, "another replication policy's remote topic");
    for bad in ["", "lantern-mirror/1 target=primary.orders:2@", "lantern-mirror/1 target=primary.orders:2@-5", "lantern-mirror/2 target=primary.orders:2@1", "x:2@1"] {
        assert_eq!(decode_metadata(bad, "primary.orders", 2), None, "{bad:?}");
    }
}

#[test]
fn decisions() {
    use ExactlyOnceSupport::*;
    // 10 records written since the commit (S=500, T=200)
    assert_eq!(decide(Requested, &OK, &observed(Some((500, Some(200))), 0, 210)), Resume::Exact { source_offset: 500, target_offset: 200, skip: 10, expected: None });
    assert_eq!(decide(Required, &OK, &observed(Some((500, Some(200))), 0, 200)), Resume::Exact { source_offset: 500, target_offset: 200, skip: 0, expected: None });
    // nothing committed: from the log start; what the target holds is not this flow's
    assert_eq!(decide(Requested, &OK, &observed(None, 40, 7)), Resume::Fresh { source_offset: 40, target_offset: 7 });
    let fb = |r: Resume| match r {
        Resume::AtLeastOnce { source_offset, reason } => (source_offset, reason),
        other => panic!("{other:?}"),
    };
    assert_eq!(fb(decide(Disabled, &OK, &observed(Some((500, Some(200))), 0, 210))), (Some(500), Fallback::Disabled));
    assert_eq!(fb(decide(Requested, &Err("acks=1".into()), &observed(Some((500, Some(200))), 0, 210))), (Some(500), Fallback::Producer("acks=1".into())));
    assert_eq!(fb(decide(Requested, &OK, &observed(Some((500, None)), 0, 210))), (Some(500), Fallback::NoTargetOffset));
    assert_eq!(
        fb(decide(Requested, &OK, &observed(Some((500, Some(200))), 0, 150))),
        (Some(500), Fallback::TargetBehind { committed_target: 200, target_end: 150 })
    );
    assert_eq!(
        fb(decide(Requested, &OK, &observed(Some((500, Some(200))), 600, 210))),
        (Some(500), Fallback::SourceTruncated { committed: 500, log_start: 600 })
    );
    // a truncated source with nothing to skip is no problem: the consumer resets, nothing skipped
    assert!(matches!(decide(Requested, &OK, &observed(Some((500, Some(200))), 600, 200)), Resume::Exact { skip: 0, .. }));
    // more records on the target since the commit than offsets on the source since it
    let ahead = Observed { source_end: Some(505), ..observed(Some((500, Some(200))), 0, 210) };
    assert_eq!(fb(decide(Requested, &OK, &ahead)).1, Fallback::TargetAhead { to_skip: 10, source_offsets: 5 });
    // the target's records after the commit: all read, or the partition resumes at least once
    let exact = decide(Requested, &OK, &observed(Some((500, Some(200))), 0, 210));
    assert_eq!(exact.needs_tail(), Some((200, 210)));
    let fps: Vec<u64> = (0..10).collect();
    assert_eq!(exact.clone().with_tail(Some(fps.clone())), Resume::Exact { source_offset: 500, target_offset: 200, skip: 10, expected: Some(fps) });
    assert_eq!(exact.clone().with_tail(Some(vec![1, 2])), Resume::AtLeastOnce { source_offset: Some(500), reason: Fallback::TargetTailUnreadable }, "some read");
    assert_eq!(exact.with_tail(None), Resume::AtLeastOnce { source_offset: Some(500), reason: Fallback::TargetTailUnreadable });
    // too many to read back
    let many = decide(Requested, &OK, &observed(Some((0, Some(0))), 0, MAX_VERIFIED as i64 + 1));
    assert_eq!(fb(many).1, Fallback::TargetTailUnreadable);
    assert_eq!(decide(Requested, &OK, &observed(Some((500, Some(200))), 0, 200)).needs_tail(), None, "nothing to skip");
    let unknown = Observed { committed: Some((5, Some(5))), source_log_start: Some(0), source_end: None, target_end: None };
    assert_eq!(fb(decide(Requested, &OK, &unknown)).1, Fallback::TargetEndUnknown);
    assert_eq!(fb(decide(Requested, &OK, &Observed { target_end: Some(5), source_log_start: None, ..unknown })).1, Fallback::SourceLogStartUnknown);
}

#[test]
fn producer_settings() {
    let settings = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
    assert_eq!(producer_preconditions(settings(&[("enable.idempotence", "true"), ("acks", "all")])), Ok(()));
    assert_eq!(producer_preconditions(settings(&[("enable.idempotence", "true"), ("acks", "-1")])), Ok(()));
    assert_eq!(producer_preconditions(settings(&[("enable.idempotence", "false"), ("acks", "all")])), Err("enable.idempotence=false".into()));
    assert_eq!(producer_preconditions(settings(&[("enable.idempotence", "true"), ("acks", "1")])), Err("acks=1".into()));
}

#[test]
fn skipped_records_are_the_acknowledged_prefix_and_move_the_target_offset() {
    let mut p = PartitionProgress::new(&Resume::Exact { source_offset: 100, target_offset: 50, skip: 2, expected: Some(vec![100, 102]) });
    assert_eq!(p.to_commit(), None);
    // offsets 101 and 103 are gone upstream (compaction, a control record): counts are in records
    assert_eq!(p.on_record(100, || 100), Action::Skip { target_offset: 50 });
    assert_eq!(p.to_commit(), None, "not while skipping: the count is confirmed at its last record");
    assert_eq!(p.on_record(102, || 102), Action::Skip { target_offset: 51 });
    assert_eq!(p.skipping(), 0);
    assert_eq!(p.to_commit(), Some((103, Some(52))));
    assert_eq!(p.on_record(104, || 0), Action::Copy);
    p.sent(104);
    p.sent(105);
    p.acknowledge(105, 53);
    assert_eq!(p.to_commit(), Some((103, Some(52))), "104 is not acknowledged yet");
    p.acknowledge(104, 52);
    assert_eq!(p.to_commit(), Some((106, Some(54))));
    p.on_committed(106);
    assert_eq!(p.to_commit(), None);
    assert_eq!(p.interleaved, 0);
    // a record someone else wrote at 54
    p.sent(106);
    p.acknowledge(106, 55);
    assert_eq!((p.interleaved, p.to_commit()), (1, Some((107, Some(56)))));
}

#[test]
fn a_last_record_that_differs_starts_over_at_least_once() {
    let mut p = PartitionProgress::new(&Resume::Exact { source_offset: 100, target_offset: 50, skip: 2, expected: Some(vec![100, 999]) });
    assert_eq!(p.on_record(100, || 100), Action::Skip { target_offset: 50 });
    let reason = Fallback::TargetTailMismatch { source_offset: 101 };
    assert_eq!(p.on_record(101, || 101), Action::Rewind { source_offset: 100, reason });
    assert_eq!((p.next_send, p.acked_next, p.skipping(), p.to_commit()), (100, 100, 0, None));
    assert_eq!(p.on_record(100, || 100), Action::Copy);
}

#[test]
fn a_first_record_that_differs_starts_over_before_skipping_anything_more() {
    // The source lost record 100 to compaction since the killed run copied it: the first record
    // read (101) is not the target's record at 50, although the last one would match (101 = the
    // target's record at 51 only by coincidence of identical contents).
    let mut p = PartitionProgress::new(&Resume::Exact { source_offset: 100, target_offset: 50, skip: 2, expected: Some(vec![100, 101]) });
    let reason = Fallback::TargetTailMismatch { source_offset: 101 };
    assert_eq!(p.on_record(101, || 101), Action::Rewind { source_offset: 100, reason });
    assert_eq!(p.skipping(), 0);
}

#[test]
fn at_least_once_learns_the_target_offset_from_its_first_acknowledgement() {
    let mut p = PartitionProgress::new(&Resume::AtLeastOnce { source_offset: Some(10), reason: Fallback::NoTargetOffset });
    assert_eq!((p.next_send, p.committed), (10, 10));
    assert_eq!(p.on_record(10, || 0), Action::Copy);
    p.sent(10);
    p.acknowledge(10, 77);
    assert_eq!(p.to_commit(), Some((11, Some(78))));
    let fresh = PartitionProgress::new(&Resume::AtLeastOnce { source_offset: None, reason: Fallback::Disabled });
    assert_eq!((fresh.next_send, fresh.committed), (-1, 0), "-1: from the beginning");
}

/// One partition copied by a simulated mirror that can be killed at any step. The source holds
/// `source` (offsets with gaps); the target log is `target` (source offsets, one per target
/// offset) with a high watermark; acknowledgements come only below it (acks=all).
struct Sim {
    source: Vec<i64>,
    target: Vec<i64>,
    hw: usize,
    commit: Option<(i64, Option<i64>)>,
    skipped: u64,
    /// A killed run's records still on their way to the target.
    zombies: Vec<i64>,
    foreign: i64,
    /// Only this flow writes, and nothing above the high watermark survives a crash.
    strict: bool,
}

fn sim(gaps: &[u8]) -> Sim {
    Sim { source: source_offsets(gaps), target: Vec::new(), hw: 0, commit: None, skipped: 0, zombies: Vec::new(), foreign: 0, strict: false }
}

/// One run of the mirror: its progress, its read position, records sent and not yet written,
/// and records written and not yet acknowledged.
struct Run {
    progress: PartitionProgress,
    read: usize,
    unsent: VecDeque<i64>,
    unacked: Vec<(i64, i64)>,
}

impl Sim {
    fn start(&mut self, mode: ExactlyOnceSupport) -> Run {
        let o = Observed { source_end: self.source.last().map(|l| l + 1), ..observed(self.commit, self.source[0], self.hw as i64) };
        let mut resume = decide(mode, &OK, &o);
        if let Some((from, to)) = resume.needs_tail() {
            resume = resume.with_tail(Some((from..to).map(|at| self.target[at as usize] as u64).collect()));
        }
        if let Resume::Fresh { source_offset, target_offset } = resume {
            self.commit = Some((source_offset, Some(target_offset)));
        }
        let progress = PartitionProgress::new(&resume);
        let read = self.source.iter().position(|&s| s >= progress.next_send).unwrap_or(self.source.len());
        Run { progress, read, unsent: VecDeque::new(), unacked: Vec::new() }
    }

    /// One step: 0 read, 1 write, 2 replicate, 3 acknowledge (the `pick`th), 4 commit.
    fn step(&mut self, run: &mut Run, what: u8, pick: usize) {
        match what {
            0 if run.read < self.source.len() => {
                let o = self.source[run.read];
                run.read += 1;
                match run.progress.on_record(o, || o as u64) {
                    Action::Skip { target_offset } => {
                        if self.strict {
                            assert_eq!(self.target[target_offset as usize], o, "skipped a record that is not on the target at that offset");
                        }
                        self.skipped += 1;
                    }
                    Action::Rewind { source_offset, .. } => {
                        run.read = self.source.iter().position(|&s| s >= source_offset).unwrap_or(self.source.len());
                    }
                    Action::Copy => {
                        run.progress.sent(o);
                        run.unsent.push_back(o);
                    }
                }
            }
            1 => {
                if let Some(o) = run.unsent.pop_front() {
                    self.target.push(o);
                    run.unacked.push((o, self.target.len() as i64 - 1));
                }
            }
            2 => self.hw = self.target.len(),
            // a killed run's request arrives, or another producer writes
            6 if !self.zombies.is_empty() => {
                let n = 1 + pick % self.zombies.len();
                self.target.extend(self.zombies.drain(..n));
            }
            7 => {
                self.foreign += 1;
                self.target.push(-self.foreign);
            }
            3 => {
                let ready: Vec<usize> = (0..run.unacked.len()).filter(|&i| (run.unacked[i].1 as usize) < self.hw).collect();
                if !ready.is_empty() {
                    let (o, t) = run.unacked.remove(ready[pick % ready.len()]);
                    run.progress.acknowledge(o, t);
                }
            }
            4 => {
                if let Some((s, t)) = run.progress.to_commit() {
                    self.commit = Some((s, t));
                    run.progress.on_committed(s);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, run: &mut Run) {
        while run.read < self.source.len() || !run.unsent.is_empty() || !run.unacked.is_empty() || run.progress.skipping() > 0 {
            if run.read == self.source.len() && run.progress.skipping() > 0 {
                // more records skipped than the source holds yet: the next one decides
                let next = self.source.last().map_or(1, |l| l + 1);
                self.source.push(next);
            }
            for what in 0..5 {
                self.step(run, what, 0);
            }
        }
    }
}

fn source_offsets(gaps: &[u8]) -> Vec<i64> {
    let mut o = 0;
    gaps.iter()
        .map(|g| {
            o += 1 + i64::from(*g % 3);
            o
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Killed at any points (records written but not acknowledged, not replicated past the high
    /// watermark and then lost with the leader, commits at any time): the target ends equal to
    /// the source, each record once, in order.
    #[test]
    fn any_crash_points_leave_the_target_equal_to_the_source(
        gaps in proptest::collection::vec(any::<u8>(), 1..60),
        steps in proptest::collection::vec((0u8..6, any::<usize>()), 0..400),
    ) {
        let mut sim = Sim { strict: true, ..sim(&gaps) };
        let mut run = sim.start(ExactlyOnceSupport::Requested);
        for (what, pick) in steps {
            if what == 5 {
                // kill -9: what was not replicated is lost with the leader's tail (acks=all:
                // those records were never acknowledged)
                sim.target.truncate(sim.hw);
                run = sim.start(ExactlyOnceSupport::Requested);
            } else {
                sim.step(&mut run, what, pick);
            }
        }
        sim.finish(&mut run);
        prop_assert_eq!(&sim.target, &sim.source);
        prop_assert_eq!(run.progress.interleaved, 0);
    }

    /// The same with the unreplicated tail kept (it reaches the high watermark after the restart
    /// read it): duplicates of that tail, never a loss, and first copies in the source's order.
    #[test]
    fn records_above_the_high_watermark_at_restart_can_only_be_duplicated(
        gaps in proptest::collection::vec(any::<u8>(), 1..60),
        steps in proptest::collection::vec((0u8..6, any::<usize>()), 0..400),
    ) {
        let mut sim = sim(&gaps);
        let mut run = sim.start(ExactlyOnceSupport::Requested);
        for (what, pick) in steps {
            if what == 5 {
                run = sim.start(ExactlyOnceSupport::Requested);
                sim.hw = sim.target.len();
            } else {
                sim.step(&mut run, what, pick);
            }
        }
        sim.finish(&mut run);
        let mut first = Vec::new();
        for o in &sim.target {
            if !first.contains(o) {
                first.push(*o);
            }
        }
        prop_assert_eq!(&first, &sim.source);
    }

    /// Records the flow did not write (another producer; a killed run's request arriving after
    /// the restart read the target's end, at any later point): duplicates, never a loss, as long
    /// as no two records are alike (the check compares every record skipped with the target).
    #[test]
    fn records_of_other_writers_never_cause_a_loss(
        gaps in proptest::collection::vec(any::<u8>(), 1..60),
        steps in proptest::collection::vec((0u8..9, any::<usize>()), 0..400),
    ) {
        let mut sim = sim(&gaps);
        let mut run = sim.start(ExactlyOnceSupport::Requested);
        for (what, pick) in steps {
            if what == 5 || what == 8 {
                // kill -9; with 8, what it had sent but not written is still on its way (the
                // idempotent producer's sequence numbers refuse it if records written before it
                // were lost with the leader)
                let lost_tail = sim.hw < sim.target.len();
                sim.target.truncate(sim.hw);
                if lost_tail {
                    sim.zombies.clear();
                }
                if what == 8 && !lost_tail {
                    sim.zombies.extend(run.unsent.iter().copied());
                }
                run = sim.start(ExactlyOnceSupport::Requested);
            } else {
                sim.step(&mut run, what, pick);
            }
        }
        sim.finish(&mut run);
        let mut first = Vec::new();
        for o in sim.target.iter().filter(|o| **o >= 0) {
            if !first.contains(o) {
                first.push(*o);
            }
        }
        prop_assert_eq!(&first, &sim.source);
    }

    /// Disabled, the same runs re-copy what was copied since the last commit.
    #[test]
    fn disabled_is_at_least_once(gaps in proptest::collection::vec(any::<u8>(), 1..60), steps in proptest::collection::vec((0u8..6, any::<usize>()), 0..400)) {
        let mut sim = sim(&gaps);
        let mut run = sim.start(ExactlyOnceSupport::Disabled);
        for (what, pick) in steps {
            if what == 5 {
                sim.target.truncate(sim.hw);
                run = sim.start(ExactlyOnceSupport::Disabled);
            } else {
                sim.step(&mut run, what, pick);
            }
        }
        sim.finish(&mut run);
        let mut first = Vec::new();
        for o in &sim.target {
            if !first.contains(o) {
                first.push(*o);
            }
        }
        prop_assert_eq!(&first, &sim.source);
        prop_assert_eq!(sim.skipped, 0);
    }
}

#[test]
fn disabled_duplicates_what_requested_does_not() {
    // read and write 5 records, commit after 2, write 3 more, kill, restart
    for (mode, want) in [(ExactlyOnceSupport::Requested, 5), (ExactlyOnceSupport::Disabled, 8)] {
        let mut sim = Sim { source: (0..5).collect(), ..sim(&[0]) };
        let mut run = sim.start(mode);
        for _ in 0..5 {
            sim.step(&mut run, 0, 0);
            sim.step(&mut run, 1, 0);
        }
        sim.step(&mut run, 2, 0);
        sim.step(&mut run, 3, 0);
        sim.step(&mut run, 3, 0);
        sim.step(&mut run, 4, 0);
        assert_eq!(sim.commit.map(|c| c.0), Some(2));
        let mut run = sim.start(mode);
        sim.finish(&mut run);
        assert_eq!(sim.target.len(), want, "{mode:?}: {:?}", sim.target);
    }
}

#[test]
fn progress_is_the_acknowledged_prefix() {
    let mut p = PartitionProgress::new(&Resume::AtLeastOnce { source_offset: None, reason: Fallback::Disabled });
    // offsets as sent (a gap: 12 was compacted away on the source)
    for o in [10, 11, 13, 14] {
        p.sent(o);
    }
    p.acknowledge(11, 1);
    assert_eq!(p.acked_next, 0, "11 is acknowledged but 10 is not: nothing is safe to commit");
    p.acknowledge(10, 0);
    assert_eq!(p.acked_next, 12);
    p.acknowledge(14, 3);
    assert_eq!(p.acked_next, 12);
    p.acknowledge(13, 2);
    assert_eq!((p.acked_next, p.target_next), (15, Some(4)));
    assert_eq!(p.to_commit(), Some((15, Some(4))));
}
