"""The nemesis: faults injected into a running cluster, each with its recovery.

Every fault is started by `start(kind)` and healed by `stop(fault)`; both are written to the
history (`f: nemesis`, type start/stop) with their targets. Targets are chosen with the run's
seeded random generator, from what the cluster looks like at that moment (who leads a
partition, who is the active controller), so a seed replays the same choices as long as the
cluster answers the same way.

Kinds:
- `kill`: kill -9 of a broker (the leader of a partition, a follower, the active controller,
  or any), restarted at the heal.
- `pause`: SIGSTOP for longer than the broker session, SIGCONT at the heal.
- `isolate`: one broker cut from every other host, clients included.
- `leader-cut`: a partition's leader cut from the other brokers (and so from the quorum) but
  still reachable by clients: it may keep answering them for a while.
- `split`: the brokers split into a minority and a majority; clients reach both sides.
- `bridge`: two groups that cannot see each other, both seeing one broker in the middle
  (non-transitive).
- `split+kill`: a split whose minority broker is also killed and restarted while still cut off.
- `disk-full`: a broker's log directory (a small tmpfs of its own) filled to the last byte;
  appends there fail with KAFKA_STORAGE_ERROR until the filler is deleted at the heal.
- `crash-roll`, `crash-compaction`: a broker killed (SIGKILL from inside, through its crash
  file, see broker/src/crash_point.rs) the next time it is in the middle of a segment roll or
  of a compaction's segment swap; restarted at the heal.

Network kinds need a `hosts.Network`; without one only `kill` and `pause` are offered.
"""

from __future__ import annotations

import errno
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cluster import ACTIVE_CONTROLLER_METRIC, Cluster, metadata

NETWORK_KINDS = ["isolate", "leader-cut", "split", "bridge", "split+kill"]
DISK_KINDS = ["disk-full"]
CRASH_KINDS = ["crash-roll", "crash-compaction"]
CRASH_POINTS = {"crash-roll": ["log.roll.sealed", "log.roll.created"],
                "crash-compaction": ["cleaner.before_swap", "cleaner.mid_swap"]}
CRASH_FILE = "crash-at"
FILLER = "disk-full.filler"
PROCESS_KINDS = ["kill", "pause"]


def fill(path: Path) -> int:
    """Writes zeros to `path` until its file system is full (ENOSPC); returns the bytes
    written. The file stays until it is deleted."""
    chunk = b"\0" * (1 << 20)
    written = 0
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n = f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return written
                chunk = chunk[: len(chunk) // 16 or 1]  # the last pages
                continue
            written += n or 0


@dataclass
class Fault:
    kind: str
    targets: list[int]
    detail: str
    started: float
    heal: list[Callable[[], None]] = field(default_factory=list)


class Nemesis:
    def __init__(self, cluster: Cluster, net, rng: random.Random, record: Callable[[dict], None], *,
                 topic: str, clock: Callable[[], float], pause_s: float = 4.0, log: Callable[[str], None] = print,
                 small_disks: bool = False, crash_points: bool = False):
        self.cluster = cluster
        self.net = net
        self.rng = rng
        self.record = record
        self.topic = topic
        self.clock = clock
        self.pause_s = pause_s
        self.log = log
        self.kinds = (PROCESS_KINDS + (NETWORK_KINDS if net is not None else []) + (DISK_KINDS if small_disks else [])
                      + (CRASH_KINDS if crash_points else []))
        self.counts: dict[str, int] = {}
        self.crashed: dict[int, int] = {}  # crashes at a crash point, per broker

    # ------------------------------------------------------------ the cluster now
    def _brokers(self) -> list[int]:
        return [i for i, n in self.cluster.nodes.items() if not n.controller_only]

    def _leaders(self) -> dict[int, int]:
        for node in self.rng.sample(self.cluster.running_brokers(), len(self.cluster.running_brokers())):
            try:
                md = metadata(node, [self.topic], timeout=2.0)
                t = md.topics.get(self.topic)
                if t is None:
                    continue
                return {i: p.leader for i, p in t.partitions.items() if p.leader >= 0}
            except Exception:
                continue
        return {}

    def _active_controller(self) -> int | None:
        for node in self.cluster.running():
            if (node.metric(ACTIVE_CONTROLLER_METRIC) or 0) >= 1:
                return node.node_id
        return None

    def _pick_broker(self) -> tuple[int, str]:
        """A broker to hit and why it was chosen: a leader, a follower, the active controller
        or any one."""
        brokers = self._brokers()
        role = self.rng.choice(["leader", "follower", "controller", "any"])
        leaders = self._leaders()
        if role == "leader" and leaders:
            p = self.rng.choice(sorted(leaders))
            return leaders[p], f"leader of {self.topic}-{p}"
        if role == "follower" and leaders:
            p = self.rng.choice(sorted(leaders))
            followers = [b for b in brokers if b != leaders[p]]
            if followers:
                return self.rng.choice(followers), f"follower of {self.topic}-{p}"
        if role == "controller":
            c = self._active_controller()
            if c is not None and c in brokers:
                return c, "active controller"
        return self.rng.choice(brokers), "random broker"

    def _host(self, node_id: int) -> str:
        return f"n{node_id}"

    # ---------------------------------------------------------------- faults
    def start(self, kind: str | None = None) -> Fault:
        kind = kind or self.rng.choice(self.kinds)
        leaders = self._leaders()
        now = self.clock()
        if kind == "kill":
            b, why = self._pick_broker()
            self.cluster.nodes[b].kill9()
            fault = Fault(kind, [b], f"kill -9 of broker {b} ({why})", now, [lambda: self._restart(b)])
        elif kind == "pause":
            b, why = self._pick_broker()
            self.cluster.nodes[b].sigstop()
            fault = Fault(kind, [b], f"SIGSTOP of broker {b} ({why})", now, [lambda: self.cluster.nodes[b].sigcont()])
        elif kind == "isolate":
            b, why = self._pick_broker()
            others = [h for h in self.net.hosts if h != self._host(b)]
            self.net.partition([self._host(b)], others)
            fault = Fault(kind, [b], f"broker {b} ({why}) cut from every host, clients included", now, [self.net.heal])
        elif kind == "leader-cut":
            leaders = self._leaders()
            b = leaders[self.rng.choice(sorted(leaders))] if leaders else self.rng.choice(self._brokers())
            others = [self._host(x) for x in self._brokers() if x != b]
            self.net.partition([self._host(b)], others)
            fault = Fault(kind, [b], f"leader {b} cut from the other brokers, still reachable by clients", now, [self.net.heal])
        elif kind in ("split", "split+kill"):
            brokers = self._brokers()
            self.rng.shuffle(brokers)
            minority, majority = sorted(brokers[: (len(brokers) - 1) // 2]), sorted(brokers[(len(brokers) - 1) // 2:])
            self.net.partition([self._host(x) for x in minority], [self._host(x) for x in majority])
            detail = f"brokers {minority} | {majority}"
            heal = [self.net.heal]
            if kind == "split+kill":
                victim = self.rng.choice(minority)
                self.cluster.nodes[victim].kill9()
                # Back while still cut off; it rejoins once the partition heals.
                time.sleep(0.5)
                self.cluster.nodes[victim].start(wait=False)
                detail += f"; minority broker {victim} killed and restarted inside the partition"
            fault = Fault(kind, minority, detail, now, heal)
        elif kind == "bridge":
            brokers = self._brokers()
            self.rng.shuffle(brokers)
            mid, rest = brokers[0], brokers[1:]
            left, right = sorted(rest[: len(rest) // 2]), sorted(rest[len(rest) // 2:])
            self.net.partition([self._host(x) for x in left], [self._host(x) for x in right])
            fault = Fault(kind, [mid], f"{left} and {right} cannot see each other; both see broker {mid}", now, [self.net.heal])
        elif kind == "disk-full":
            b, why = self._pick_broker()
            filler = self.cluster.nodes[b].data_dirs[0] / FILLER
            written = fill(filler)
            fault = Fault(kind, [b], f"log directory of broker {b} ({why}) filled ({written >> 20} MiB of filler)", now,
                          [lambda: filler.unlink(missing_ok=True)])
        elif kind in CRASH_KINDS:
            b, why = self._pick_broker()
            point = self.rng.choice(CRASH_POINTS[kind])
            node = self.cluster.nodes[b]
            (node.workdir / CRASH_FILE).write_text(point + "\n")
            fault = Fault(kind, [b], f"broker {b} ({why}) armed to crash at {point}", now, [lambda: self._disarm_and_restart(b)])
        else:
            raise ValueError(f"unknown fault kind {kind!r}; known: {self.kinds}")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.record({"f": "nemesis", "type": "start", "process": "nemesis", "t": now, "fault": kind,
                     "targets": fault.targets, "detail": fault.detail, "leaders": leaders})
        self.log(f"[nemesis {now:7.1f}s] start {kind}: {fault.detail}")
        return fault

    def stop(self, fault: Fault) -> None:
        for heal in fault.heal:
            heal()
        now = self.clock()
        self.record({"f": "nemesis", "type": "stop", "process": "nemesis", "t": now, "fault": fault.kind,
                     "targets": fault.targets})
        self.log(f"[nemesis {now:7.1f}s] stop  {fault.kind} after {now - fault.started:.1f}s")

    def _disarm_and_restart(self, node_id: int) -> None:
        node = self.cluster.nodes[node_id]
        armed = (node.workdir / CRASH_FILE).exists()
        (node.workdir / CRASH_FILE).unlink(missing_ok=True)
        self.log(f"[nemesis] broker {node_id} {'never reached its crash point' if armed else 'crashed at its crash point'}")
        self.crashed[node_id] = self.crashed.get(node_id, 0) + (0 if armed else 1)
        self._restart(node_id)

    def _restart(self, node_id: int) -> None:
        node = self.cluster.nodes[node_id]
        if not node.alive():
            node.start(wait=False)

    def heal_everything(self, timeout: float = 60.0) -> None:
        """After the run: no rule left, no filler, every process running and not stopped,
        all ready."""
        if self.net is not None:
            self.net.heal()
        for node in self.cluster.nodes.values():
            (node.workdir / CRASH_FILE).unlink(missing_ok=True)
            for d in node.data_dirs:
                (d / FILLER).unlink(missing_ok=True)
        for node in self.cluster.nodes.values():
            if node.alive() and node.stopped():
                node.sigcont()
            if not node.alive():
                node.start(wait=False)
        self.cluster.wait_ready(timeout=timeout)

    # ---------------------------------------------------------------- schedule
    def run(self, stop: threading.Event, *, every: tuple[float, float], hold: tuple[float, float],
            kinds: list[str] | None = None) -> None:
        """Until `stop`: wait a random time in `every`, inject a fault (cycling through
        `kinds` in a shuffled order, so every kind comes up), hold it for a random time in
        `hold`, heal it. A kill or pause is held at least `pause_s` (longer than a session)."""
        order: list[str] = []
        while not stop.wait(self.rng.uniform(*every)):
            if not order:
                order = list(kinds or self.kinds)
                self.rng.shuffle(order)
            kind = order.pop()
            try:
                fault = self.start(kind)
            except Exception as e:  # the cluster may not answer while recovering; try later
                self.log(f"[nemesis] could not start {kind}: {e}")
                continue
            if kind in CRASH_KINDS:
                # Until it reaches its point (rolls and compactions come every few seconds
                # under the suite's topic settings), then down for a while like a kill.
                node = self.cluster.nodes[fault.targets[0]]
                deadline = time.monotonic() + 30
                while node.alive() and time.monotonic() < deadline and not stop.wait(0.1):
                    pass
                held = self.rng.uniform(*hold)
            else:
                held = max(self.rng.uniform(*hold), self.pause_s if kind in ("kill", "pause") else 0)
            stop.wait(held)
            try:
                self.stop(fault)
            except Exception as e:  # a heal that failed must not end the schedule silently
                self.log(f"[nemesis] healing {kind} failed: {e!r}; healing everything")
                self.record({"f": "nemesis", "type": "stop", "process": "nemesis", "t": self.clock(), "fault": kind,
                             "targets": fault.targets, "error": repr(e)})
                try:
                    self.heal_everything()
                except Exception as e2:
                    self.log(f"[nemesis] healing everything failed too: {e2!r}")
