"""Claim: the fault suite's checker (tests/faults/checker.py) finds each anomaly it names, and
only that one, in a history planted with it, reports a clean history as clean, and measures
unavailability and fault recovery exactly; the plot writes a PNG. No broker is started.
"""

from __future__ import annotations

import json

import pytest

from faults import checker
from faults.checker import ANOMALIES, check, load, summary_markdown


class History:
    """Builds a synthetic history: sends with their outcome, polls, the final read."""

    def __init__(self):
        self.events: list[dict] = []

    def send(self, process, partition, value, invoked, done=None, outcome="ok", offset=None):
        self.events.append({"f": "send", "type": "invoke", "process": process, "t": invoked,
                            "partition": partition, "key": None, "value": value})
        if done is None:
            return
        ev = {"f": "send", "type": outcome, "process": process, "t": done, "partition": partition,
              "key": None, "value": value, "latency": done - invoked}
        if outcome == "ok":
            ev["offset"] = offset
        else:
            ev["error"] = "planted"
        self.events.append(ev)

    def poll(self, process, partition, offset, value, t, group=None):
        ev = {"f": "poll", "type": "ok", "process": process, "t": t, "mode": "assign" if group is None else "subscribe",
              "partition": partition, "offset": offset, "key": None, "value": value}
        if group is not None:
            ev["group"] = group
        self.events.append(ev)

    def final(self, partition, records: dict[int, str], end: int, t=100.0):
        for offset, value in sorted(records.items()):
            self.events.append({"f": "final_read", "type": "ok", "process": "final", "t": t,
                                "partition": partition, "offset": offset, "key": None, "value": value})
        self.events.append({"f": "final_read", "type": "end", "process": "final", "t": t,
                            "partition": partition, "offset": end})

    def commit(self, group, partition, offset, t, process="g1"):
        self.events.append({"f": "commit", "type": "ok", "process": process, "t": t, "group": group,
                            "partition": partition, "offset": offset})

    def nemesis(self, fault, start, stop, targets=(1,), leaders=None):
        self.events.append({"f": "nemesis", "type": "start", "process": "nemesis", "t": start, "fault": fault,
                            "targets": list(targets), "detail": "planted", "leaders": leaders or {}})
        if stop is not None:
            self.events.append({"f": "nemesis", "type": "stop", "process": "nemesis", "t": stop, "fault": fault,
                                "targets": list(targets)})


def clean(h: History | None = None, final: bool = True) -> History:
    """Two producers over two partitions, ten acknowledged sends each, read back where the
    acks said; a consumer polls some, a group commits forward, one fault; one unknown send
    that made it and one that did not, and a failed one that did not."""
    h = h or History()
    logs: dict[int, dict[int, str]] = {0: {}, 1: {}}
    t = 0.0
    for i in range(10):
        for partition in (0, 1):
            for process in ("p1", "p2"):
                value = f"{process}-{partition}-{i:03d}"
                offset = len(logs[partition])
                h.send(process, partition, value, t, t + 0.25, offset=offset)
                logs[partition][offset] = value
                t += 0.5
    for offset in range(5):
        h.poll("c1", 0, offset, logs[0][offset], 30.0 + offset)
    h.send("p1", 1, "p1-unknown-in", 31.0, 32.0, outcome="info")
    logs[1][len(logs[1])] = "p1-unknown-in"
    h.send("p1", 1, "p1-unknown-out", 33.0, 34.0, outcome="info")
    h.send("p2", 0, "p2-failed", 33.0, 33.5, outcome="fail")
    # Group g's member g1 reads partition 0 up to offset 11 and commits as it goes.
    for offset in range(12):
        h.poll("g1", 0, offset, logs[0][offset], 34.0 + offset / 100, group="g")
    for t, offset in ((35.0, 2), (36.0, 5), (37.0, 5), (38.0, 9)):
        h.commit("g", 0, offset, t)
    h.nemesis("kill", 10.0, 12.0)
    h.logs = logs
    if final:
        for partition, records in logs.items():
            h.final(partition, records, len(records))
    return h


def assert_only(report, kind: str | None, count: int = 0):
    expected = {k: 0 for k in ANOMALIES}
    if kind is not None:
        expected[kind] = count
    assert report.anomalies == expected
    assert report.ok is (kind is None)
    if kind is not None:
        assert 1 <= len(report.examples[kind]) <= checker.MAX_EXAMPLES


def test_clean_history_is_ok():
    h = clean()
    report = check(h.events)
    assert_only(report, None)
    assert report.counts["sends_invoked"] == 43
    assert report.counts["sends_acknowledged"] == 40
    assert report.counts["sends_failed"] == 1
    assert report.counts["sends_unknown"] == 2
    assert report.counts["polls"] == 17
    assert report.counts["final_read_records"] == 41
    assert report.counts["commits"] == 4
    assert report.faults == {"kill": 1}
    assert report.details["unknown_writes"] == {"in_final_read": 1, "not_in_final_read": 1}
    assert report.details["inconsistent_offsets"] == {"offset_conflicts": 0, "value_conflicts": 0}
    assert all(v == [] for v in report.examples.values())
    assert set(report.unavailability) == {0, 1}
    json.dumps(report.to_dict())  # the suite writes it out


def test_lost_acknowledged_send():
    # Acknowledged at the end of partition 0, then the log was cut back below it.
    h = clean(final=False)
    h.send("p1", 0, "p1-lost", 40.0, 40.5, offset=len(h.logs[0]))
    for partition, records in h.logs.items():
        h.final(partition, records, len(records))
    report = check(h.events)
    assert_only(report, "lost", 1)
    assert report.examples["lost"][0]["value"] == "p1-lost"


def test_duplicated_send():
    h = clean(final=False)
    end = len(h.logs[0])
    h.logs[0][end] = h.logs[0][3]  # the record at offset 3 written again at the end
    for partition, records in h.logs.items():
        h.final(partition, records, len(records))
    report = check(h.events)
    assert_only(report, "duplicated", 1)
    assert report.examples["duplicated"][0]["positions"] == [(0, 3), (0, end)]


def test_reordered_sends_of_one_producer():
    h = clean(final=False)
    base = len(h.logs[1])
    # "first" was acknowledged before "second" was handed over, yet sits above it.
    h.send("p2", 1, "p2-first", 40.0, 40.5, offset=base + 1)
    h.send("p2", 1, "p2-second", 41.0, 41.5, offset=base)
    h.logs[1][base] = "p2-second"
    h.logs[1][base + 1] = "p2-first"
    for partition, records in h.logs.items():
        h.final(partition, records, len(records))
    report = check(h.events)
    assert_only(report, "reordered", 1)
    ex = report.examples["reordered"][0]
    assert (ex["earlier"]["value"], ex["later"]["value"]) == ("p2-first", "p2-second")


def test_overlapping_sends_may_land_in_either_order():
    # Both in flight at once: no order is promised between them.
    h = clean(final=False)
    base = len(h.logs[1])
    h.send("p2", 1, "p2-first", 40.0, 41.5, offset=base + 1)
    h.send("p2", 1, "p2-second", 41.0, 41.6, offset=base)
    h.logs[1][base] = "p2-second"
    h.logs[1][base + 1] = "p2-first"
    for partition, records in h.logs.items():
        h.final(partition, records, len(records))
    assert_only(check(h.events), None)


def test_two_values_at_one_offset():
    # Two consumers saw different records at the end offset of partition 1, which the final read
    # never reached (neither is a vanished read); both sends were of unknown outcome.
    h = clean(final=False)
    at = len(h.logs[1])
    h.send("p1", 1, "p1-x", 40.0, 41.0, outcome="info")
    h.send("p2", 1, "p2-y", 40.0, 41.0, outcome="info")
    h.poll("c1", 1, at, "p1-x", 42.0)
    h.poll("c2", 1, at, "p2-y", 42.0)
    for partition, records in h.logs.items():
        h.final(partition, records, len(records))
    report = check(h.events)
    assert_only(report, "inconsistent_offsets", 1)
    assert report.details["inconsistent_offsets"] == {"offset_conflicts": 1, "value_conflicts": 0}
    assert report.examples["inconsistent_offsets"][0]["position"] == (1, at)


def test_one_value_at_two_offsets():
    # The ack said offset `at`; the final read has it one further on (nothing at `at`).
    h = clean(final=False)
    at = len(h.logs[0])
    h.send("p1", 0, "p1-moved", 40.0, 40.5, offset=at)
    h.logs[0][at + 1] = "p1-moved"
    for partition, records in h.logs.items():
        h.final(partition, records, max(records) + 1)
    report = check(h.events)
    assert_only(report, "inconsistent_offsets", 1)
    assert report.details["inconsistent_offsets"] == {"offset_conflicts": 0, "value_conflicts": 1}
    assert report.examples["inconsistent_offsets"][0]["positions"] == [(0, at), (0, at + 1)]


def test_vanished_read():
    # A consumer read offset `at` (an unknown-outcome send); the final read went past `at`
    # and found nothing there.
    h = clean(final=False)
    at = len(h.logs[0])
    h.send("p1", 0, "p1-uncommitted", 40.0, 45.0, outcome="info")
    h.poll("c1", 0, at, "p1-uncommitted", 41.0)
    h.poll("c2", 0, at, "p1-uncommitted", 41.5)  # seen twice: still one read
    h.send("p2", 0, "p2-after", 46.0, 46.5, offset=at + 1)
    h.logs[0][at + 1] = "p2-after"
    for partition, records in h.logs.items():
        h.final(partition, records, max(records) + 1)
    report = check(h.events)
    assert_only(report, "vanished_reads", 1)
    assert report.examples["vanished_reads"][0]["offset"] == at


def test_read_beyond_the_final_end_is_not_vanished():
    h = clean()
    h.send("p1", 0, "p1-late", 40.0, 45.0, outcome="info")
    h.poll("c1", 0, len(h.logs[0]), "p1-late", 41.0)
    assert_only(check(h.events), None)


def test_committed_offset_backwards():
    h = clean()
    for offset in range(8):  # g2 (a second member) read 0..7 of partition 0 and 0..3 of 1
        h.poll("g2", 0, offset, h.logs[0][offset], 38.5, group="g")
    for offset in range(4):
        h.poll("g2", 1, offset, h.logs[1][offset], 38.5, group="g")
    h.commit("g", 0, 7, 39.0, process="g2")  # the last commit was 9
    h.commit("g", 0, 8, 40.0, process="g2")
    h.commit("g", 1, 4, 39.5, process="g2")  # another partition's offsets are its own
    report = check(h.events)
    assert_only(report, "committed_offsets_backwards", 1)
    ex = report.examples["committed_offsets_backwards"][0]
    assert (ex["partition"], ex["from"], ex["to"]) == (0, 9, 7)


def test_commit_beyond_what_was_read():
    h = clean()
    h.commit("g", 0, 12, 39.0)  # g1 read up to offset 11: 12 is fine
    h.commit("g", 0, 14, 39.5)  # but not 14
    report = check(h.events)
    # Offsets 12 and 13, below the group's commit, were read by nobody: reported too.
    assert report.anomalies == {**{k: 0 for k in ANOMALIES}, "commit_beyond_read": 1, "unread_below_commit": 2}
    assert report.examples["commit_beyond_read"][0] == {"group": "g", "partition": 0, "process": "g1", "committed": 14,
                                                         "read_up_to": 12, "t": 39.5}


def test_a_member_may_commit_the_offset_it_was_handed():
    h = clean()
    h.events.append({"f": "committed", "type": "ok", "process": "g3", "t": 39.0, "group": "g", "partition": 0, "offset": 12})
    h.commit("g", 0, 12, 39.5, process="g3")
    assert_only(check(h.events), None)


def test_offsets_below_a_commit_that_no_member_read():
    h = clean()
    # g1's reads of offsets 3 and 4 never happened.
    h.events = [e for e in h.events if not (e.get("process") == "g1" and e.get("f") == "poll" and e["offset"] in (3, 4))]
    report = check(h.events)
    assert_only(report, "unread_below_commit", 2)
    assert [x["offset"] for x in report.examples["unread_below_commit"]] == [3, 4]


def test_commits_are_ordered_by_time_not_by_line():
    h = clean()
    h.commit("g", 0, 12, 50.0)
    h.commit("g", 0, 10, 45.0)  # written later, happened earlier
    assert_only(check(h.events), None)


def test_failed_write_present():
    h = clean(final=False)
    h.logs[0][len(h.logs[0])] = "p2-failed"
    for partition, records in h.logs.items():
        h.final(partition, records, len(records))
    report = check(h.events)
    assert_only(report, "aborted_reads_of_failed", 1)
    assert report.examples["aborted_reads_of_failed"][0]["value"] == "p2-failed"


def test_unavailability_and_recovery_are_exact():
    h = History()
    # Partition 0 acks at 1, 2, 5.5, 6; partition 1 at 1.25 and 7. Sends run 0.5 .. 8.
    h.send("p1", 0, "a", 0.5, 1.0, offset=0)
    h.send("p1", 1, "b", 0.75, 1.25, offset=0)
    h.send("p1", 0, "c", 1.5, 2.0, offset=1)
    h.send("p1", 0, "d", 2.5, 5.5, offset=2)
    h.send("p1", 0, "e", 5.75, 6.0, offset=3)
    h.send("p1", 1, "f", 6.5, 7.0, offset=1)
    h.send("p1", 1, "g", 7.5, 8.0, outcome="info")
    h.final(0, {0: "a", 1: "c", 2: "d", 3: "e"}, 4)
    h.final(1, {0: "b", 1: "f"}, 2)
    h.nemesis("kill", 1.5, 4.0, targets=[1], leaders={"0": 1, "1": 2})
    h.nemesis("kill", 2.5, 3.0, targets=[2], leaders={"0": 1, "1": 2})
    h.nemesis("pause", 6.5, None)
    report = check(h.events)
    assert_only(report, None)
    # Partition 0 gaps: 0.5 (0.5..1), 1 (1..2), 3.5 (2..5.5), 0.5, 2 (6..8).
    assert report.unavailability[0] == {"longest_gap": 3.5, "longest_gap_start": 2.0,
                                        "total_unavailable": 5.5, "acks": 4}
    # Partition 1 gaps: 0.75 (0.5..1.25), 5.75 (1.25..7), 1 (7..8): exactly 1 s is not "longer".
    assert report.unavailability[1] == {"longest_gap": 5.75, "longest_gap_start": 1.25,
                                        "total_unavailable": 5.75, "acks": 2}
    kill = report.fault_recovery["kill"]
    # The stall a fault caused: the longest gap between acks overlapping the fault.
    # First kill 1.5..4: p0 gaps 1..2 and 2..5.5 overlap (3.5), p1 1.25..7 (5.75);
    # second kill 2.5..3: p0 2..5.5 (3.5), p1 1.25..7 (5.75).
    assert sorted(kill["samples"]) == [3.5, 3.5, 5.75, 5.75]
    assert (kill["faults"], kill["median"], kill["worst"], kill["never"]) == (2, 4.625, 5.75, 0)
    # Leader hit: the first kill's target led p0, the second's led p1.
    assert sorted(kill["leader_samples"]) == [3.5, 5.75]
    assert sorted(kill["other_samples"]) == [3.5, 5.75]  # the partition the other kill spared
    assert (kill["leader_median"], kill["leader_worst"]) == (4.625, 5.75)
    pause = report.fault_recovery["pause"]
    # Never stopped, from 6.5: p0 has no ack after it; p1's gap 1.25..7 overlaps it.
    assert (pause["faults"], pause["samples"], pause["never"], pause["worst"]) == (1, [5.75], 1, 5.75)
    assert pause["leader_samples"] == [] and pause["leader_median"] is None
    assert report.faults == {"kill": 2, "pause": 1}
    stops = [(i["fault"], i["targets"], i["stop"]) for i in report.details["fault_intervals"]]
    assert stops == [("kill", [1], 4.0), ("kill", [2], 3.0), ("pause", [1], None)]
    assert report.details["unknown_writes"] == {"in_final_read": 0, "not_in_final_read": 1}


def test_gap_threshold_is_a_parameter():
    h = clean()  # sends from 0 to 34 s; every gap between acks is at least 0.25 s
    assert check(h.events, gap_threshold=0.1).unavailability[0]["total_unavailable"] == 34.0
    assert check(h.events, gap_threshold=100.0).unavailability[0]["total_unavailable"] == 0.0


def test_load_skips_a_torn_line(tmp_path):
    path = tmp_path / "history.jsonl"
    lines = [json.dumps(e) for e in clean().events]
    path.write_text("\n".join(lines) + "\n" + '{"f": "send", "type": "in\n')
    events = load(path)
    assert len(events) == len(lines) + 1
    report = check(events)
    assert report.counts["unparsed_lines"] == 1
    assert_only(report, None)


def test_summary_names_every_anomaly_and_the_verdict():
    h = clean()
    h.commit("g", 0, 1, 99.0)
    text = summary_markdown(check(h.events), title="Fault run", seed=42, extra={"nodes": 3})
    assert text.startswith("# Fault run\n")
    assert "**FAIL: committed_offsets_backwards 1**" in text
    assert "- seed: `42`" in text and "- nodes: 3" in text
    for kind in ANOMALIES:
        assert f"| {kind} |" in text
    assert "| kill | 1 |" in text
    assert "### committed_offsets_backwards" in text
    assert "**PASS: no anomalies**" in summary_markdown(check(clean().events), "t", 1, {})


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from faults.plot import plot

    h = History()
    n = 0
    for i in range(2000):  # 20 s at 100 sends/s, a 3 s outage from 8 s
        t = i * 0.01
        if 8.0 <= t < 11.0:
            continue
        h.send("p1", i % 3, f"p1-{i}", t, t + 0.002 + (i % 50) * 0.0005, offset=n)
        n += 1
    h.nemesis("kill", 8.0, 11.0)
    h.nemesis("isolate", 14.0, 16.0, targets=[2])
    h.nemesis("pause", 18.0, None)
    path = tmp_path / "timeline.png"
    plot(h.events, path, "seed 1")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000


def _table_history(final: dict[int, tuple[str, str]]) -> list[dict]:
    """key-0 gets a (acked at 0), b (acked at 1), c (unknown outcome); key-1 gets d (acked)."""
    ev = []
    for t, key, value, outcome, offset in [(0.0, "key-0", "a", "ok", 0), (1.0, "key-0", "b", "ok", 1),
                                           (2.0, "key-1", "d", "ok", 2), (3.0, "key-0", "c", "info", None)]:
        ev.append({"f": "send", "type": "invoke", "t": t, "process": "t1", "topic": "table", "partition": 0, "key": key, "value": value})
        done = {"f": "send", "type": outcome, "t": t + 0.5, "process": "t1", "topic": "table", "partition": 0, "key": key, "value": value}
        if offset is not None:
            done["offset"] = offset
        ev.append(done)
    for offset, (key, value) in sorted(final.items()):
        ev.append({"f": "final_read", "type": "ok", "t": 9.0, "process": "final", "topic": "table", "partition": 0,
                   "offset": offset, "key": key, "value": value})
    return ev


def test_table_check_accepts_compaction_and_catches_a_lost_latest_value_or_a_moved_record():
    from faults.checker import check_table

    # Compacted: a (offset 0) removed; b and d kept at their offsets.
    assert check_table(_table_history({1: ("key-0", "b"), 2: ("key-1", "d")}))["latest_lost"] == 0
    # The unknown send after b was written after all: allowed.
    ok = check_table(_table_history({2: ("key-1", "d"), 3: ("key-0", "c")}))
    assert (ok["latest_lost"], ok["moved"], ok["keys"]) == (0, 0, 2)
    # b lost: only a (older) left for key-0.
    lost = check_table(_table_history({0: ("key-0", "a"), 2: ("key-1", "d")}))
    assert (lost["latest_lost"], lost["moved"]) == (1, 0)
    # A record at another record's offset.
    moved = check_table(_table_history({1: ("key-0", "b"), 2: ("key-1", "x"), 3: ("key-1", "d")}))
    assert moved["moved"] == 1 and moved["latest_lost"] == 0


def test_the_report_names_the_command_a_person_typed():
    import suite
    argv = ["--out", "target/faults/x", "--report", "docs/reliability.md", "--duration", "2700", "--rate", "100",
            "--seed", "7", "--seed", "7", "--inside", '{"hosts": ["n1"]}']
    assert suite.user_args(argv) == ["--duration", "2700", "--rate", "100", "--seed", "7"]
    assert suite.user_args(["--duration=60", "--inside={}"]) == ["--duration=60"]
