"""Claim: acknowledged records survive a power cut when log.flush.interval.messages=1, and
with the default flush settings a power cut loses at most the records after the last
flush; either way the broker restarts on what reached the disk and serves a consistent log.

Unlike test_durability (kill -9 keeps the page cache, so it passes with or without fsync),
the broker's log.dirs here is a tests/powercut_fs.py mount: what was not fsynced (file data
on fsync/fdatasync of the file, names on fsync of their directory) is gone after the cut,
and the unsynced tail of a file is torn at a random byte. The controller's metadata log and
every checkpoint file live in the same directory, so they go through the same cut.

Each test: a real broker on the mount, an idempotent acks=all producer that records the
offset of every acknowledged record, a power cut while it produces (the mount freezes:
every later operation fails with EIO, and the backing directory is rewritten to the durable
state), kill -9 at the same moment, then the broker restarted on the backing directory and
everything read back. `check_after_cut` is the one checker of both tests. (The tests take
`powercut_mount` before `broker_factory`: fixtures are torn down in reverse, so after a
failure the broker is killed before its disk is unmounted.)
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Producer

import clients
from durable_producer import durable_value

PARTITIONS = 3
# Every partition rolls a few times during a run (a roll seals the old segment and must make
# the new one's name durable), and the high-watermark and leader-epoch checkpoints are
# rewritten all along (the high watermark one ahead of the flushed log, with default flushing).
TOPIC_CONFIG = {"segment.bytes": 1 << 20}
BROKER_PROPS = {"replica.high.watermark.checkpoint.interval.ms": 100}


class AckRecorder:
    """An idempotent acks=all producer sending id i (key str(i), value durable_value(i)) to
    partition i % PARTITIONS, from a thread, until stopped; `acked[i]` is the
    (partition, offset, monotonic time) of every acknowledged record."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.p = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "batch.num.messages": 200,
            "message.timeout.ms": 60000,
        })
        self.sent = 0
        self.acked: dict[int, tuple[int, int, float]] = {}
        self.failed: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ack-recorder", daemon=True)

    def _on_delivery(self, err, msg):
        i = int(msg.key())
        if err is None:
            self.acked[i] = (msg.partition(), msg.offset(), time.monotonic())
        else:
            self.failed[i] = str(err)

    def _run(self):
        while not self._stop.is_set():
            i = self.sent
            try:
                self.p.produce(self.topic, key=str(i).encode(), value=durable_value(i), partition=i % PARTITIONS,
                               on_delivery=self._on_delivery)
                self.sent += 1
            except BufferError:
                self.p.poll(0.01)
                continue
            self.p.poll(0)
            if self.sent % 500 == 0:
                time.sleep(0.001)  # let the broker breathe: a steady stream, not a flood

    def start(self) -> "AckRecorder":
        self._thread.start()
        return self

    def wait_acked(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            assert not self.failed, f"deliveries failed before the cut: {list(self.failed.items())[:5]}"
            assert time.monotonic() < deadline, f"only {len(self.acked)} of {n} records acknowledged in {timeout}s"
            time.sleep(0.01)

    def finish(self) -> None:
        """After the broker is gone: stop sending, then settle every record sent. A response
        already received is still reported as a success by poll; the rest are purged."""
        self._stop.set()
        self._thread.join(timeout=30)
        # The idempotent producer moves requests that fail on the dead connection back to the
        # partition's queue for a retry; those that land there after a purge are purged by the
        # next one, so purge until every record sent has its report.
        deadline = time.monotonic() + 30
        while len(self.acked) + len(self.failed) < self.sent:
            assert time.monotonic() < deadline, (
                f"{self.sent - len(self.acked) - len(self.failed)} records have no delivery report 30s after the purge")
            self.p.purge(in_queue=True, in_flight=True)
            for _ in range(10):
                self.p.poll(0.05)


@dataclass
class CutReport:
    acked: int
    present: int
    lost_acked: dict[int, list[int]] = field(default_factory=dict)  # partition -> lost acked offsets
    unacked_present: int = 0

    @property
    def lost(self) -> int:
        return sum(len(v) for v in self.lost_acked.values())


def check_after_cut(acked: dict[int, tuple[int, int, float]], got: list, end_offsets: dict[int, int]) -> CutReport:
    """The log after a power cut must be consistent, whatever the flush policy: each partition
    holds offsets 0..end-1 without a gap, carrying a prefix of what was sent to it (ids q,
    q+P, q+2P, ... in order: nothing duplicated, reordered or never sent, no corrupt value),
    and every acknowledged record still there is at the offset its acknowledgement named.
    Returns which acknowledged records are missing (the loss), for the caller to judge."""
    by_part: dict[int, list[tuple[int, int]]] = {q: [] for q in range(PARTITIONS)}
    for part, off, key, value, _ in got:
        i = int(key)
        assert value == durable_value(i), f"partition {part} offset {off}: value {value!r} was never sent (corrupt)"
        by_part[part].append((off, i))
    report = CutReport(acked=len(acked), present=len(got))
    for q, recs in by_part.items():
        recs.sort()
        offsets = [o for o, _ in recs]
        assert offsets == list(range(end_offsets[q])), (
            f"partition {q}: offsets are not 0..{end_offsets[q] - 1} without gaps or duplicates: "
            f"{clients.first_diff(offsets, list(range(end_offsets[q])))}")
        ids = [i for _, i in recs]
        expected = list(range(q, q + PARTITIONS * len(ids), PARTITIONS))
        assert ids == expected, (
            f"partition {q}: the records are not a prefix of what was sent to it (a hole, a duplicate or a "
            f"reordering): {clients.first_diff(ids, expected)}")
    for i, (q, off, _) in acked.items():
        here = by_part[q]
        if off < len(here):
            assert here[off][1] == i, (
                f"record {i} was acknowledged at {q}/{off}, which now holds record {here[off][1]}")
        else:
            report.lost_acked.setdefault(q, []).append(off)
    for offs in report.lost_acked.values():
        offs.sort()
    report.unacked_present = sum(1 for recs in by_part.values() for _, i in recs if i not in acked)
    return report


def _power_cut_run(broker_factory, powercut_mount, topic: str, tmp_path, props: dict, *, cut_kw: dict,
                   min_acked: int, min_seconds: float):
    """Broker on a powercut mount, records acknowledged for at least `min_seconds` and
    `min_acked` records, power cut with `cut_kw` and kill -9, restart on the backing dir.
    Returns (broker, recorder, cut report, cut time, consumed records, end offsets)."""
    broker = broker_factory(start=False, props={**BROKER_PROPS, **props})
    backing = tmp_path / "disk"
    fs = powercut_mount(backing, broker.data_dirs[0], log_path=tmp_path / "powercut.log")
    broker.start()
    clients.create_topic(broker.bootstrap, topic, PARTITIONS, config=TOPIC_CONFIG)
    rec = AckRecorder(broker.bootstrap, topic).start()
    try:
        t0 = time.monotonic()
        rec.wait_acked(min_acked)
        while time.monotonic() - t0 < min_seconds:
            time.sleep(0.05)
        wait_for_cut_premise(fs, broker.data_dirs[0], topic)
        before = len(rec.acked)
        rec.wait_acked(before + 50, timeout=10)  # still acknowledging: the cut lands mid-stream
        cut = fs.cut(**cut_kw)
        cut_at = time.monotonic()
        broker.kill9()
    finally:
        rec.finish()
    fs.unmount()
    unsynced = {f: v["unsynced_bytes"] for f, v in cut["unsynced_at_cut"]["files"].items()}
    print(f"power cut after {cut_at - t0:.1f}s: {rec.sent} sent, {len(rec.acked)} acknowledged; "
          f"unsynced bytes at the cut: {unsynced}, unsynced directories: {cut['unsynced_at_cut']['dirs']}")

    check_durable_files(cut["durable"], topic)
    broker.data_dirs = [backing]  # the disk as the cut left it
    broker.start()
    ends = {q: clients.watermarks(broker.bootstrap, topic, q) for q in range(PARTITIONS)}
    assert all(lo == 0 for lo, _ in ends.values()), f"log start offsets moved: {ends}"
    end_offsets = {q: hi for q, (_, hi) in ends.items()}
    got = clients.consume_all_confluent(broker.bootstrap, topic, PARTITIONS, end=end_offsets, timeout=60)
    return broker, rec, cut, cut_at, got, end_offsets


def _check_new_produce_works(broker, topic: str, end_offsets: dict[int, int]) -> None:
    """New records continue each log at its end, and since the restart the broker has
    logged no error and no panic."""
    msgs = [(f"after-{q}".encode(), f"after the cut {q}".encode()) for q in range(PARTITIONS)]
    reports = clients.produce_confluent(broker.bootstrap, topic, msgs, partition_of=lambda i: i,
                                        enable_idempotence=True)
    assert reports == [(q, end_offsets[q]) for q in range(PARTITIONS)], (
        f"new records should continue each log at its end {end_offsets}: {reports}")
    got = clients.consume_confluent(broker.bootstrap, topic, list(range(PARTITIONS)), start=end_offsets)
    assert sorted((p, o, k, v) for p, o, k, v, _ in got) == [
        (q, end_offsets[q], k, v) for q, (k, v) in enumerate(msgs)]
    restart_log = _restart_log(broker)
    assert "panicked" not in restart_log and " ERROR " not in restart_log, (
        f"the broker restarted on the cut disk with errors:\n{restart_log[-4000:]}")


def durable_now(fs, mount: Path, files: list[str]) -> list[str]:
    """Which of `files` (mount-relative paths) are durable now: present, with no unsynced
    bytes and a directory whose entries are all synced. (A file seen durable stays durable:
    the broker only ever replaces these atomically, and a cut cannot undo a synced rename.)"""
    present = [f for f in files if (mount / f.lstrip("/")).exists()]
    unsynced = fs.stats()
    dirty_dirs = set(unsynced["dirs"])
    return [f for f in present
            if f not in unsynced["files"] and (f.rsplit("/", 1)[0] or "/") not in dirty_dirs]


def wait_for_cut_premise(fs, mount: Path, topic: str, timeout: float = 60.0) -> None:
    """Before the cut: every partition has rolled (so the cut goes through a roll's aftermath)
    and has written its checkpoints durably once. Both happen on their own within a second or
    two, but on a loaded machine the single-threaded test file system can delay them: waiting
    for them keeps `check_durable_files` a check that the cut does not undo what was durable,
    not a race against the checkpoint interval. Fails if they never happen."""
    want = [f"/{topic}-{q}/{name}" for q in range(PARTITIONS) for name in ("partition.metadata", "leader-epoch-checkpoint")]
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while True:
        seen.update(durable_now(fs, mount, [f for f in want if f not in seen]))
        unrolled = [q for q in range(PARTITIONS) if len(list((mount / f"{topic}-{q}").glob("*.log"))) < 2]
        if len(seen) == len(want) and not unrolled:
            return
        assert time.monotonic() < deadline, (
            f"{timeout:.0f}s after the first acknowledgements: not durable yet {sorted(set(want) - seen)}; "
            f"partitions that have not rolled (segment.bytes=1 MiB): {unrolled}")
        time.sleep(0.05)


def check_durable_files(durable: dict, topic: str) -> None:
    """The files the broker needs besides the segments were all durable at the cut: its
    identity, the controller's metadata log, and each partition's topic id and checkpoints
    (checkpoints are replaced atomically: temp file, fsync, rename, directory fsync)."""
    want = ["/meta.properties", "/__cluster_metadata-0/metadata.log", "/replication-offset-checkpoint"]
    for q in range(PARTITIONS):
        want += [f"/{topic}-{q}/partition.metadata", f"/{topic}-{q}/leader-epoch-checkpoint"]
    missing = [f for f in want if f not in durable]
    assert not missing, f"not durable at the power cut: {missing}; durable: {sorted(durable)}"
    for q in range(PARTITIONS):
        segments = sorted(f for f in durable if f.startswith(f"/{topic}-{q}/") and f.endswith(".log"))
        assert len(segments) >= 2, f"partition {q} should have rolled (segment.bytes=1 MiB): {segments}"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _restart_log(broker) -> str:
    text = _ANSI.sub("", broker.log_text())
    return text[text.rfind("===== start #"):]


def _recovery_lines(broker) -> list[str]:
    """What recovery cut from each segment, from the restart's log."""
    out = []
    for line in _restart_log(broker).splitlines():
        m = re.search(r"truncated an invalid segment tail.*segment=\S*/([^/\s]+/\d+\.log) truncated_bytes=(\d+)", line)
        if m:
            out.append(f"{m[1]}: {m[2]} bytes")
    return out


def test_flush_every_message_keeps_every_acknowledged_record(powercut_mount, broker_factory, topic_name, tmp_path):
    broker, rec, cut, _, got, ends = _power_cut_run(
        broker_factory, powercut_mount, topic_name, tmp_path, {"log.flush.interval.messages": 1},
        # the cut lands inside an append not fsynced yet (so not acknowledged), torn
        cut_kw={"tear": True, "when_unsynced": 1, "path_contains": topic_name, "timeout": 20},
        min_acked=3000, min_seconds=1.0)
    report = check_after_cut(rec.acked, got, ends)
    print(f"flush.messages=1: {report.acked} acknowledged, {report.present} present after the cut "
          f"({report.unacked_present} of them never acknowledged); recovery: {_recovery_lines(broker)}")
    assert report.lost == 0, (
        f"{report.lost} acknowledged records lost with log.flush.interval.messages=1: "
        f"{ {q: (offs[0], offs[-1], len(offs)) for q, offs in report.lost_acked.items()} } "
        f"(partition: first, last, count); logs end at {ends}")
    _check_new_produce_works(broker, topic_name, ends)


FLUSH_MS = 1000  # Lantern's default log.flush.interval.ms (docs/configuration.md)


def test_default_flush_loses_only_the_last_flush_interval(powercut_mount, broker_factory, topic_name, tmp_path):
    """Default flush settings (time-based, every second): acknowledged records are lost, and
    the checker says so. The cut is made to land when a partition holds 64 KiB appended
    since its last flush, so there reliably is an acknowledged loss to detect. Every lost
    record was acknowledged within the last two flush intervals (a record waits up to one
    interval for the flush clock, whose tick is the interval too) plus slack."""
    broker, rec, cut, cut_at, got, ends = _power_cut_run(
        broker_factory, powercut_mount, topic_name, tmp_path, {},
        cut_kw={"tear": True, "when_unsynced": 65536, "path_contains": topic_name, "timeout": 20},
        min_acked=3000, min_seconds=2 * FLUSH_MS / 1000 + 2.5)
    report = check_after_cut(rec.acked, got, ends)
    ages = sorted(cut_at - rec.acked[i][2] for i in rec.acked
                  if rec.acked[i][1] >= ends[rec.acked[i][0]])
    oldest_ms = ages[-1] * 1000 if ages else 0
    print(f"default flush: {report.acked} acknowledged, {report.present} present after the cut; "
          f"{report.lost} acknowledged records lost "
          f"({ {q: len(offs) for q, offs in report.lost_acked.items()} } by partition), "
          f"the oldest acknowledged {oldest_ms:.0f} ms before the cut; recovery: {_recovery_lines(broker)}")
    assert report.lost > 0, (
        "the cut came with 64 KiB unflushed in a partition: acknowledged records should be lost "
        "(else the power cut did not drop unsynced data, and the flush=1 test proves nothing)")
    bound_ms = 2 * FLUSH_MS + 1500
    assert oldest_ms <= bound_ms, (
        f"a record acknowledged {oldest_ms:.0f} ms before the cut was lost: older than the last "
        f"flush interval (bound {bound_ms} ms); the time-based flush did not run")
    _check_new_produce_works(broker, topic_name, ends)
