"""The checker: what a fault run's history (see HISTORY.md) says about the broker.

`check(events)` turns the history into a `Report`: anomalies by kind with a few examples
each, how long each partition went without an acknowledged write, how long each fault took
to be followed by an acknowledgement, and the counts behind them. `summary_markdown` renders
a report as one page. Everything here is a pure function of the events except `load`, so the
checker is unit-tested on hand-made histories (tests/test_fault_checker.py).

Where a record sits is a position, (partition, offset). The final read (every partition read
from its start after every fault healed) is the truth the other observations are held to.
One fault can show up under two names: a read past the high watermark whose offset was
later reused is both a vanished read and an offset conflict; both are reported.
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field

# Anomaly kinds, in the order the summary lists them.
ANOMALIES = (
    "lost",
    "duplicated",
    "reordered",
    "inconsistent_offsets",
    "vanished_reads",
    "committed_offsets_backwards",
    "commit_beyond_read",
    "unread_below_commit",
    "aborted_reads_of_failed",
)

MAX_EXAMPLES = 5
GAP_THRESHOLD_S = 1.0

_DESCRIPTIONS = {
    "lost": "acknowledged send missing from the final read",
    "duplicated": "one send at more than one offset in the final read",
    "reordered": "a producer's later send before its earlier, acknowledged one in the log",
    "inconsistent_offsets": "two values at one offset, or one value at two offsets",
    "vanished_reads": "polled record gone from its offset in the final read",
    "committed_offsets_backwards": "a group's committed offset went down",
    "commit_beyond_read": "a member committed past what it had read (or been handed as committed)",
    "unread_below_commit": "an offset below a group's last commit that no member of the group read",
    "aborted_reads_of_failed": "send the client was told failed is in the final read",
}


@dataclass
class Report:
    """What one history says. `anomalies` always has every kind in ANOMALIES (0 when none);
    `ok` is True when all of them are 0. `examples[kind]` holds up to MAX_EXAMPLES dicts.
    `unavailability[partition]` has longest_gap, longest_gap_start, total_unavailable (s) and
    acks; `fault_recovery[fault kind]` has faults, samples (s, one per fault and partition),
    median, worst and never (fault/partition pairs with no ack after the fault started).
    `faults` counts injected faults by kind; `details` has the split of inconsistent_offsets,
    unknown writes found or not, and each fault interval."""

    anomalies: dict[str, int]
    ok: bool
    examples: dict[str, list[dict]]
    unavailability: dict[int, dict[str, float]]
    counts: dict[str, int]
    fault_recovery: dict[str, dict]
    faults: dict[str, int] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def load(path) -> list[dict]:
    """The events of a history file. A line that is not JSON (a writer killed mid-line)
    becomes {"f": "unparsed", "line": n}, counted by `check`, rather than failing the run."""
    events = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                events.append({"f": "unparsed", "line": n})
    return events


@dataclass
class _Send:
    value: object
    process: str | None = None
    partition: int | None = None
    invoked: tuple | None = None  # (t, index): the history's order breaks ties in t
    acked: tuple | None = None
    offset: int | None = None  # where the ack said it went
    outcome: str | None = None  # "ok" beats "fail" beats "info"


_OUTCOME_RANK = {None: 0, "info": 1, "fail": 2, "ok": 3}


class _History:
    """The history regrouped for the checks, in one pass."""

    def __init__(self, events: list[dict]):
        self.sends: dict[object, _Send] = {}
        self.send_invokes = 0
        self.first_invoke_t: float | None = None
        self.last_send_t: float | None = None
        self.polls: list[tuple] = []  # (partition, offset, value, t, process)
        self.final_at: dict[tuple, set] = defaultdict(set)  # position -> values
        self.final_pos: dict[object, set] = defaultdict(set)  # value -> positions
        self.final_records = 0
        self.final_end: dict[int, int] = {}
        self.commits: dict[tuple, list[tuple]] = defaultdict(list)  # (group, p) -> [(t, i, offset, process)]
        self.committed_fetches = 0
        self.group_read: dict[tuple, set] = defaultdict(set)  # (group, partition) -> offsets its members polled
        # (process, partition) -> [(t, next offset)]: how far it had read (a poll), or been
        # handed as committed (an OffsetFetch on assignment), at each time.
        self.read_by: dict[tuple, list[tuple]] = defaultdict(list)
        self.nemesis: list[tuple] = []  # (t, i, event)
        self.unparsed = 0
        for i, e in enumerate(events):
            f = e.get("f")
            if f == "send":
                self._send(e, i)
            elif f == "poll" and e.get("type") == "ok" and e.get("offset") is not None:
                self.polls.append((e.get("partition"), e.get("offset"), e.get("value"), e.get("t"), e.get("process")))
                if e.get("group") is not None:
                    self.group_read[(e["group"], e.get("partition"))].add(e["offset"])
                self.read_by[(e.get("process"), e.get("partition"))].append((e.get("t", 0.0), e["offset"] + 1))
            elif f == "final_read":
                self._final(e)
            elif f == "commit" and e.get("type") == "ok":
                self.commits[(e.get("group"), e.get("partition"))].append(
                    (e.get("t", 0.0), i, e.get("offset"), e.get("process")))
            elif f == "committed":
                self.committed_fetches += 1
                if e.get("offset") is not None:
                    self.read_by[(e.get("process"), e.get("partition"))].append((e.get("t", 0.0), e["offset"]))
            elif f == "nemesis":
                self.nemesis.append((e.get("t", 0.0), i, e))
            elif f == "unparsed":
                self.unparsed += 1
        for p, o in self.final_at:  # a final read without its end still reached past what it read
            if o + 1 > self.final_end.get(p, -1):
                self.final_end[p] = o + 1

    def _send(self, e: dict, i: int) -> None:
        t = e.get("t", 0.0)
        self.last_send_t = t if self.last_send_t is None else max(self.last_send_t, t)
        value = e.get("value")
        s = self.sends.get(value)
        if s is None:
            s = self.sends[value] = _Send(value)
        s.process = s.process or e.get("process")
        if e.get("partition") is not None and (s.partition is None or e.get("type") == "ok"):
            s.partition = e.get("partition")
        kind = e.get("type")
        if kind == "invoke":
            self.send_invokes += 1
            s.invoked = (t, i)
            self.first_invoke_t = t if self.first_invoke_t is None else min(self.first_invoke_t, t)
            return
        if _OUTCOME_RANK.get(kind, 0) > _OUTCOME_RANK[s.outcome]:
            s.outcome = kind
        if kind == "ok":
            s.acked = (t, i)
            offset = e.get("offset")
            if isinstance(offset, int) and offset >= 0:
                s.offset = offset
            if s.invoked is None and e.get("latency") is not None:
                s.invoked = (t - e["latency"], -1)

    def _final(self, e: dict) -> None:
        p, o = e.get("partition"), e.get("offset")
        if o is None:
            return
        if e.get("type") == "end":
            self.final_end[p] = max(o, self.final_end.get(p, o))
        elif e.get("type") == "ok":
            self.final_records += 1
            self.final_at[(p, o)].add(e.get("value"))
            self.final_pos[e.get("value")].add((p, o))


def _examples(found: list) -> list:
    return found[:MAX_EXAMPLES]


def _lost(h: _History):
    found = [s for s in h.sends.values() if s.outcome == "ok" and s.value not in h.final_pos]
    return len(found), [{"value": s.value, "partition": s.partition, "acked_offset": s.offset,
                         "acked_t": s.acked[0], "process": s.process} for s in _examples(found)]


def _duplicated(h: _History):
    found = [(v, ps) for v, ps in h.final_pos.items() if len(ps) > 1]
    return len(found), [{"value": v, "positions": sorted(ps)} for v, ps in _examples(found)]


def _reordered(h: _History):
    """Per (producer, partition): a send whose invoke came after an earlier send's ack, yet
    sits below it in the final read. Counted once per later send, in O(n log n)."""
    by_stream: dict[tuple, list[tuple]] = defaultdict(list)
    for s in h.sends.values():
        if s.outcome != "ok" or s.invoked is None:
            continue
        offsets = [o for p, o in h.final_pos.get(s.value, ()) if p == s.partition]
        if offsets:
            by_stream[(s.process, s.partition)].append((s.invoked, s.acked, min(offsets), s.value))
    count, examples = 0, []
    for (process, partition), stream in by_stream.items():
        by_ack = sorted(stream, key=lambda x: x[1])
        j, highest = 0, None  # highest final offset among sends acked so far
        for invoked, _, offset, value in sorted(stream, key=lambda x: x[0]):
            while j < len(by_ack) and by_ack[j][1] < invoked:
                if highest is None or by_ack[j][2] > highest[2]:
                    highest = by_ack[j]
                j += 1
            if highest is not None and highest[2] > offset:
                count += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append({"process": process, "partition": partition,
                                     "earlier": {"value": highest[3], "acked_t": highest[1][0], "offset": highest[2]},
                                     "later": {"value": value, "invoked_t": invoked[0], "offset": offset}})
    return count, examples


def _inconsistent_offsets(h: _History):
    """(a) one position holding two values, (b) one value at two positions, over acks, polls
    and the final read. A value the final read holds twice, and seen nowhere else, is
    `duplicated`, not (b)."""
    observed = [((s.partition, s.offset), s.value) for s in h.sends.values()
                if s.offset is not None and s.partition is not None]
    observed += [((p, o), v) for p, o, v, _, _ in h.polls]
    observed += [(position, v) for position, values in h.final_at.items() for v in values]
    # A set only where there is a second value (or position): one per record would cost
    # seconds on a million-event history.
    value_at: dict[tuple, object] = {}
    values_at: dict[tuple, set] = {}
    position_of: dict[object, tuple] = {}
    positions_of: dict[object, set] = {}
    for position, v in observed:
        first = value_at.setdefault(position, v)
        if first != v:
            values_at.setdefault(position, {first}).add(v)
        first = position_of.setdefault(v, position)
        if first != position:
            positions_of.setdefault(v, {first}).add(position)
    offset_conflicts = list(values_at.items())
    value_conflicts = [(v, ps) for v, ps in positions_of.items() if not ps <= h.final_pos.get(v, set())]
    examples = [{"position": p, "values": sorted(vs, key=str)} for p, vs in _examples(offset_conflicts)]
    examples += [{"value": v, "positions": sorted(ps), "final_read": sorted(h.final_pos.get(v, ()))}
                 for v, ps in value_conflicts[:MAX_EXAMPLES - len(examples)]]
    split = {"offset_conflicts": len(offset_conflicts), "value_conflicts": len(value_conflicts)}
    return len(offset_conflicts) + len(value_conflicts), examples, split


def _vanished_reads(h: _History):
    seen = set()
    found = []
    for p, o, v, t, process in h.polls:
        if (p, o, v) in seen:
            continue
        seen.add((p, o, v))
        if h.final_end.get(p, -1) > o and v not in h.final_at.get((p, o), ()):
            found.append({"partition": p, "offset": o, "value": v, "polled_t": t, "process": process,
                          "final_read_there": sorted(h.final_at.get((p, o), ()), key=str)})
    return len(found), _examples(found)


def _committed_offsets_backwards(h: _History):
    count, examples = 0, []
    for (group, partition), commits in h.commits.items():
        commits.sort(key=lambda c: (c[0], c[1]))
        for before, after in zip(commits, commits[1:]):
            if after[2] < before[2]:
                count += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append({"group": group, "partition": partition, "from": before[2], "to": after[2],
                                     "t": after[0], "process": after[3], "previous_process": before[3]})
    return count, examples


def _commit_beyond_read(h: _History):
    """A commit of offset o by a process for a partition is backed by what that process had
    read before it (o <= its last polled offset + 1) or the committed offset it was handed:
    a group that commits more than it read skips records on the next rebalance."""
    count, examples = 0, []
    reach = {k: sorted(v) for k, v in h.read_by.items()}
    for (group, partition), commits in h.commits.items():
        for t, _, offset, process in commits:
            seen = reach.get((process, partition), [])
            k = bisect.bisect_right(seen, (t, float("inf")))
            best = max((o for _, o in seen[:k]), default=0)
            if offset is not None and offset > best:
                count += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append({"group": group, "partition": partition, "process": process, "committed": offset,
                                     "read_up_to": best, "t": t})
    return count, examples


def _unread_below_commit(h: _History):
    """Offsets below a group's highest commit for a partition that no member of the group
    polled (only groups whose members record their group on polls, and only offsets the
    final read holds: a compacted or truncated-away offset has nothing to read)."""
    count, examples = 0, []
    for (group, partition), commits in h.commits.items():
        read = h.group_read.get((group, partition))
        if read is None:
            continue
        top = max((c[2] for c in commits if c[2] is not None), default=0)
        for o in range(top):
            if o not in read and h.final_at.get((partition, o)):
                count += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append({"group": group, "partition": partition, "offset": o, "committed": top})
    return count, examples


def _failed_present(h: _History):
    found = [s for s in h.sends.values() if s.outcome == "fail" and s.value in h.final_pos]
    return len(found), [{"value": s.value, "process": s.process, "positions": sorted(h.final_pos[s.value])}
                        for s in _examples(found)]


def _ack_times(h: _History) -> dict[int, list[float]]:
    acks: dict[int, list[float]] = {p: [] for p in {s.partition for s in h.sends.values()} if p is not None}
    for s in h.sends.values():
        if s.outcome == "ok" and s.acked is not None and s.partition is not None:
            acks[s.partition].append(s.acked[0])
    for times in acks.values():
        times.sort()
    return acks


def _unavailability(h: _History, acks: dict[int, list[float]], threshold: float) -> dict[int, dict]:
    """Per partition, the gaps between successive acks within [first send invoke, last send
    event]; the stretches before the first ack and after the last count as gaps too."""
    if h.first_invoke_t is None:
        return {}
    start, end = h.first_invoke_t, max(h.last_send_t, h.first_invoke_t)
    out = {}
    for p, times in sorted(acks.items()):
        marks = [start] + [t for t in times if start <= t <= end] + [end]
        longest, longest_start, total = 0.0, start, 0.0
        for a, b in zip(marks, marks[1:]):
            gap = b - a
            if gap > longest:
                longest, longest_start = gap, a
            if gap > threshold:
                total += gap
        out[p] = {"longest_gap": longest, "longest_gap_start": longest_start,
                  "total_unavailable": total, "acks": len(times)}
    return out


def _fault_intervals(h: _History) -> list[dict]:
    """Nemesis starts paired with their stops (same fault and targets, first in first out);
    a fault never stopped has stop None."""
    open_faults: dict[tuple, list[dict]] = defaultdict(list)
    intervals = []
    for t, _, e in sorted(h.nemesis, key=lambda x: (x[0], x[1])):
        key = (e.get("fault"), json.dumps(e.get("targets"), sort_keys=True))
        if e.get("type") == "start":
            interval = {"fault": e.get("fault"), "targets": e.get("targets"), "start": t, "stop": None,
                        "detail": e.get("detail"), "leaders": e.get("leaders")}
            intervals.append(interval)
            open_faults[key].append(interval)
        elif e.get("type") == "stop" and open_faults[key]:
            open_faults[key].pop(0)["stop"] = t
    return intervals


def _fault_recovery(intervals: list[dict], acks: dict[int, list[float]]) -> dict[str, dict]:
    """Per fault kind, the stall each fault caused each partition: the longest gap between
    two successive acks of that partition that overlaps the fault (from its start to its
    stop). `samples` has one per fault and partition; `leader_samples` only those whose
    leader at the fault's start was among its targets (the nemesis records `leaders`): the
    unavailability of a leader failure. `never`: partitions with no ack after the start."""
    out: dict[str, dict] = {}
    for interval in intervals:
        r = out.setdefault(interval["fault"], {"faults": 0, "samples": [], "leader_samples": [], "other_samples": [], "never": 0})
        r["faults"] += 1
        interval["recovery"] = {}
        start = interval["start"]
        stop = interval["stop"] if interval["stop"] is not None else float("inf")
        leaders = {int(k): v for k, v in (interval.get("leaders") or {}).items()}
        targets = set(interval.get("targets") or [])
        for p, times in acks.items():
            k = bisect.bisect_right(times, start)
            if k >= len(times):
                r["never"] += 1
                interval["recovery"][p] = None
                continue
            # Gaps (times[i-1], times[i]) with times[i] > start and times[i-1] < stop.
            stall = 0.0
            i = max(k, 1)
            while i < len(times) and times[i - 1] < stop:
                stall = max(stall, times[i] - times[i - 1])
                i += 1
            if k == 0:
                stall = max(stall, times[0] - start)
            r["samples"].append(stall)
            interval["recovery"][p] = stall
            if leaders.get(p) in targets:
                r["leader_samples"].append(stall)
            elif leaders:
                r["other_samples"].append(stall)
    for r in out.values():
        for key, samples in (("", r["samples"]), ("leader_", r["leader_samples"]), ("other_", r["other_samples"])):
            r[f"{key}median"] = statistics.median(samples) if samples else None
            r[f"{key}worst"] = max(samples) if samples else None
    return out


def check(events: list[dict], gap_threshold: float = GAP_THRESHOLD_S) -> Report:
    """Every check over one history; linear in the events but for a few sorts."""
    h = _History(events)
    anomalies, examples = {}, {}
    for kind, fn in (("lost", _lost), ("duplicated", _duplicated), ("reordered", _reordered),
                     ("vanished_reads", _vanished_reads),
                     ("committed_offsets_backwards", _committed_offsets_backwards),
                     ("commit_beyond_read", _commit_beyond_read),
                     ("unread_below_commit", _unread_below_commit),
                     ("aborted_reads_of_failed", _failed_present)):
        anomalies[kind], examples[kind] = fn(h)
    anomalies["inconsistent_offsets"], examples["inconsistent_offsets"], split = _inconsistent_offsets(h)
    anomalies = {kind: anomalies[kind] for kind in ANOMALIES}
    examples = {kind: examples[kind] for kind in ANOMALIES}

    outcomes = defaultdict(int)
    unknown_found = unknown_missing = 0
    for s in h.sends.values():
        outcomes[s.outcome] += 1
        if s.outcome == "info":
            if s.value in h.final_pos:
                unknown_found += 1
            else:
                unknown_missing += 1
    acks = _ack_times(h)
    intervals = _fault_intervals(h)
    faults: dict[str, int] = defaultdict(int)
    for interval in intervals:
        faults[interval["fault"]] += 1
    counts = {
        "sends_invoked": h.send_invokes,
        "sends_acknowledged": outcomes["ok"],
        "sends_failed": outcomes["fail"],
        "sends_unknown": outcomes["info"],
        "sends_without_outcome": outcomes[None],
        "polls": len(h.polls),
        "final_read_records": h.final_records,
        "commits": sum(len(c) for c in h.commits.values()),
        "committed_fetches": h.committed_fetches,
        "faults": len(intervals),
        "unparsed_lines": h.unparsed,
    }
    return Report(
        anomalies=anomalies,
        ok=not any(anomalies.values()),
        examples=examples,
        unavailability=_unavailability(h, acks, gap_threshold),
        counts=counts,
        fault_recovery=_fault_recovery(intervals, acks),
        faults=dict(faults),
        details={
            "inconsistent_offsets": split,
            "unknown_writes": {"in_final_read": unknown_found, "not_in_final_read": unknown_missing},
            "gap_threshold": gap_threshold,
            "fault_intervals": intervals,
        },
    )


def _s(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def summary_markdown(report: Report, title: str, seed, extra: dict | None = None) -> str:
    """One page for a human: verdict, anomalies, counts, faults with their recovery,
    unavailability per partition, examples."""
    verdict = "PASS: no anomalies" if report.ok else "FAIL: " + ", ".join(
        f"{k} {n}" for k, n in report.anomalies.items() if n)
    lines = [f"# {title}", "", f"**{verdict}**", "", f"- seed: `{seed}`"]
    lines += [f"- {k}: {v}" for k, v in (extra or {}).items()]

    split = report.details.get("inconsistent_offsets", {})
    lines += ["", "## Anomalies", "", "| anomaly | count | meaning |", "|---|---:|---|"]
    for kind, n in report.anomalies.items():
        meaning = _DESCRIPTIONS[kind]
        if kind == "inconsistent_offsets" and split:
            meaning += f" ({split['offset_conflicts']} offsets, {split['value_conflicts']} values)"
        lines.append(f"| {kind} | {n} | {meaning} |")

    unknown = report.details.get("unknown_writes", {})
    lines += ["", "## Counts", "", "| what | count |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in report.counts.items()]
    if unknown:
        lines.append(f"| unknown sends in final read / not | {unknown['in_final_read']} / "
                     f"{unknown['not_in_final_read']} |")

    lines += ["", "## Faults injected", ""]
    if report.fault_recovery:
        lines += ["| fault | injected | stall median (s) | stall worst (s) | leader hit: median (s) | leader hit: worst (s) "
                  "| leader spared: median (s) | leader spared: worst (s) | no ack after |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for kind, r in sorted(report.fault_recovery.items()):
            lines.append(f"| {kind} | {r['faults']} | {_s(r['median'])} | {_s(r['worst'])} | "
                         f"{_s(r.get('leader_median'))} | {_s(r.get('leader_worst'))} | "
                         f"{_s(r.get('other_median'))} | {_s(r.get('other_worst'))} | {r['never']} |")
        lines += ["", "Stall: per fault and partition, the longest time between two acknowledged sends that "
                  "overlaps the fault. Leader hit: only partitions whose leader was the fault's target (for a split, "
                  "in the minority); leader spared: the others (for a split, led from the majority side)."]
    else:
        lines.append("none")

    threshold = report.details.get("gap_threshold", GAP_THRESHOLD_S)
    lines += ["", "## Unavailability", "",
              f"| partition | acks | longest gap (s) | starting at (s) | total in gaps > {threshold:g} s |",
              "|---|---:|---:|---:|---:|"]
    for p, u in report.unavailability.items():
        lines.append(f"| {p} | {u['acks']} | {_s(u['longest_gap'])} | {_s(u['longest_gap_start'])} | "
                     f"{_s(u['total_unavailable'])} |")

    if any(report.examples.values()):
        lines += ["", "## Examples", ""]
        for kind, found in report.examples.items():
            if found:
                lines += [f"### {kind}", "", "```"]
                lines += [json.dumps(x, default=str) for x in found]
                lines += ["```", ""]
    return "\n".join(lines).rstrip() + "\n"


def check_table(events: list[dict]) -> dict:
    """A compacted topic (a table): compaction may remove any record but the latest of its
    key, and never moves one. For each key, the last value in the final read must be the last
    acknowledged one, or one sent after it whose outcome is unknown; a record the final read
    has at an offset must be the one acknowledged there. Returns {"latest_lost": n,
    "moved": n, "keys": n, "examples": [...]}."""
    acked: dict[str, tuple[float, str]] = {}  # key -> (ack time, value) of its last ack
    invoked_at: dict[str, float] = {}
    unknown: dict[str, list[tuple[float, str]]] = defaultdict(list)
    at_offset: dict[tuple[int, int], str] = {}
    for e in events:
        if e.get("f") != "send":
            continue
        if e.get("type") == "invoke":
            invoked_at[e["value"]] = e["t"]
        elif e.get("type") == "ok":
            if e["key"] not in acked or acked[e["key"]][0] <= e["t"]:
                acked[e["key"]] = (e["t"], e["value"])
            at_offset[(e["partition"], e["offset"])] = e["value"]
        elif e.get("type") == "info":
            unknown[e["key"]].append((invoked_at.get(e["value"], e["t"]), e["value"]))
    final: dict[str, str] = {}
    moved, examples = 0, []
    for e in sorted((e for e in events if e.get("f") == "final_read" and e.get("type") == "ok"),
                    key=lambda e: (e["partition"], e["offset"])):
        final[e["key"]] = e["value"]
        expected = at_offset.get((e["partition"], e["offset"]))
        if expected is not None and expected != e["value"]:
            moved += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append({"kind": "moved", "partition": e["partition"], "offset": e["offset"],
                                 "acked": expected, "final": e["value"]})
    latest_lost = 0
    for key, (_, value) in acked.items():
        allowed = {value} | {v for t, v in unknown[key] if t >= invoked_at.get(value, 0.0)}
        if final.get(key) not in allowed:
            latest_lost += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append({"kind": "latest_lost", "key": key, "last_acked": value, "final": final.get(key)})
    return {"latest_lost": latest_lost, "moved": moved, "keys": len(acked), "examples": examples}
