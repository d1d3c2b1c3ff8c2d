#!/usr/bin/env python3
"""Group-coordinator latency while the broker does heavy disk work (issue 11): Heartbeat and
OffsetCommit round trips, each measured on its own connection, while

  * compaction: the cleaner compacts a large compacted topic that is being produced to and
    consumed from (the log's lock and the tokio workers are what the cleaner used to hold);
  * fetch: two clients read a large partition with 50 MB Fetch requests, back to back.

Each broker given with --broker NAME=PATH runs every scenario on a fresh data dir; the result
is a markdown section (stdout, or --out) with p50/p99/max per request type and phase.

    .venv-tests/bin/python bench/group_latency.py \\
        --broker main=target/baseline/lantern-broker-main --broker branch=target/release/lantern-broker

Needs confluent-kafka (the tests' venv has it). The probes speak the Kafka protocol themselves
(JoinGroup/SyncGroup v0 once; then one process sends Heartbeat v0 and another OffsetCommit v2,
one request every 5 ms, each waiting for its response), so every figure is one request's
round trip. Not part of tests/run or bench/run: it takes about 2 minutes per broker and round.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import multiprocessing
import threading
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

ROOT = Path(__file__).resolve().parent.parent
# Probe and fetch clients run in spawned processes (forking after librdkafka started its
# threads is unsafe).
MP = multiprocessing.get_context("spawn")


# ------------------------------------------------------------------ wire
def s16(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def b32(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


class Conn:
    """One blocking Kafka connection; request() returns the response body after the
    correlation id."""

    def __init__(self, port: int, client_id: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self.corr = 0

    def request(self, api: int, version: int, body: bytes) -> bytes:
        self.corr += 1
        payload = struct.pack(">hhi", api, version, self.corr) + s16(self.client_id) + body
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", self._exact(4))
        resp = self._exact(size)
        (corr,) = struct.unpack(">i", resp[:4])
        assert corr == self.corr, (corr, self.corr)
        return resp[4:]

    def _exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if not k:
                raise ConnectionError("broker closed the connection")
            got += k
        return bytes(buf)


def join_group(conn: Conn, group: str) -> tuple[str, int]:
    meta = struct.pack(">h", 0) + struct.pack(">i", 0) + b32(b"")  # consumer protocol v0, no topics
    body = s16(group) + struct.pack(">i", 60000) + s16("") + s16("consumer") + struct.pack(">i", 1) + s16("range") + b32(meta)
    deadline = time.monotonic() + 60
    # FindCoordinator first: it creates __consumer_offsets, as in Kafka.
    while struct.unpack(">h", conn.request(10, 0, s16(group))[:2])[0] != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    while True:
        r = conn.request(11, 0, body)
        (err, generation) = struct.unpack(">hi", r[:6])
        # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE: the broker is still starting.
        if err not in (14, 15) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert err == 0, f"JoinGroup error {err}"
    pos = 6
    for _ in range(2):  # protocol name, leader id
        (n,) = struct.unpack(">h", r[pos:pos + 2])
        pos += 2 + n
    (n,) = struct.unpack(">h", r[pos:pos + 2])
    member = r[pos + 2:pos + 2 + n].decode()
    body = s16(group) + struct.pack(">i", generation) + s16(member) + struct.pack(">i", 1) + s16(member) + b32(b"")
    (err,) = struct.unpack(">h", conn.request(14, 0, body)[:2])
    assert err == 0, f"SyncGroup error {err}"
    return member, generation


def heartbeat(conn: Conn, group: str, member: str, generation: int) -> int:
    return struct.unpack(">h", conn.request(12, 0, s16(group) + struct.pack(">i", generation) + s16(member))[:2])[0]


def offset_commit(conn: Conn, group: str, member: str, generation: int, topic: str, offset: int) -> int:
    body = (s16(group) + struct.pack(">i", generation) + s16(member) + struct.pack(">q", -1)
            + struct.pack(">i", 1) + s16(topic) + struct.pack(">i", 1) + struct.pack(">iq", 0, offset) + s16(""))
    r = conn.request(8, 2, body)
    # topics[1]: name, partitions[1]: (partition, error)
    (n,) = struct.unpack(">h", r[4:6])
    return struct.unpack(">h", r[6 + n + 4 + 4:6 + n + 4 + 4 + 2])[0]


# ------------------------------------------------------------------ broker
PRIORITY = -5


def raise_priority() -> None:
    """Runs the broker and the probes at nice -5 when allowed (root): other sessions' builds
    on a shared machine then take CPU time from the load generators, not from what is measured."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    except OSError:
        pass



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, binary: str, work: Path, props: dict):
        self.port, self.http = free_port(), free_port()
        self.work = work
        self.log = work / "broker.log"
        args = {"node.id": 1, "log.dirs": work / "data", "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}", "http.listener": f"127.0.0.1:{self.http}",
                **props}
        self.proc = subprocess.Popen([binary, "--log-format", "json", *[f"--{k}={v}" for k, v in args.items()]],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"), start_new_session=True,
                                     preexec_fn=lambda: raise_priority())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"broker not ready; see {self.log}")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cleaned(self, partition: str) -> list[dict]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if '"cleaned log"' in line and f'"{partition}"' in line:
                out.append(json.loads(line))
        return out

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


# ------------------------------------------------------------------ load
def probe_main(port: int, api: str, group: str, member: str, generation: int, stop, out) -> None:
    """One probe, in its own process (no other client's Python code competes with it for the
    GIL) and on its own connection: `api` requests one every 5 ms, each waiting for its
    answer, until `stop`; sends back [(send time, api, seconds)] and the count of errors."""
    raise_priority()
    conn = Conn(port, f"probe-{api}")
    out.send("ready")
    samples, errors, i = [], 0, 0
    while not stop.is_set():
        started = time.monotonic()  # CLOCK_MONOTONIC: comparable with the parent's
        if api == "Heartbeat":
            err = heartbeat(conn, group, member, generation)
        else:
            err = offset_commit(conn, group, member, generation, "probe-topic", i)
        took = time.monotonic() - started
        samples.append((started, api, took))
        errors += err != 0
        i += 1
        time.sleep(max(0.0, 0.005 - took))
    out.send((samples, errors))


class Probe:
    """A group member (joined here) probed by two processes: one sends Heartbeats, the other
    OffsetCommits, so a stall of one request type does not hide the other's latency."""

    def __init__(self, broker: "Broker", group: str):
        self.join_conn = Conn(broker.port, "probe-join")
        member, generation = join_group(self.join_conn, group)
        self.stop_event = MP.Event()
        self.pipes, self.procs = [], []
        for api in ("Heartbeat", "OffsetCommit"):
            parent, child = MP.Pipe()
            proc = MP.Process(target=probe_main, args=(broker.port, api, group, member, generation, self.stop_event, child), daemon=True)
            proc.start()
            assert parent.poll(30) and parent.recv() == "ready", f"the {api} probe did not start"
            self.pipes.append(parent)
            self.procs.append(proc)
        self.samples: list = []
        self.errors = 0

    def finish(self) -> None:
        self.stop_event.set()
        for pipe, proc in zip(self.pipes, self.procs):
            samples, errors = pipe.recv()
            self.samples += samples
            self.errors += errors
            proc.join(30)


def fetch_main(port: int, topic: str, max_bytes: int, stop, out) -> None:
    """A Fetch client in its own process: 50 MB fetches from offset 0, back to back."""
    os.nice(10)  # a load generator: the broker and the probe come first (clients would be elsewhere)
    conn = Conn(port, "fetcher")
    body = (struct.pack(">iiiib", -1, 500, 1, max_bytes, 0) + struct.pack(">i", 1) + s16(topic)
            + struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, max_bytes))
    buf = bytearray(max_bytes + (1 << 20))
    view = memoryview(buf)
    total = 0
    while not stop.is_set():
        conn.corr += 1
        payload = struct.pack(">hhi", 1, 4, conn.corr) + s16(conn.client_id) + body
        conn.sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", conn._exact(4))
        got = 0
        while got < size:  # into one reused buffer, overwritten: the client keeps nothing
            k = conn.sock.recv_into(view, min(size - got, len(buf)))
            if not k:
                raise ConnectionError("broker closed the connection")
            got += k
        total += size
    out.send(total)


def topic_user_main(bootstrap: str, topic: str, stop) -> None:
    """Keeps a topic in use, in its own niced process: a producer writing every 10 ms and two
    consumers tailing it."""
    os.nice(10)  # a load generator: the broker and the probe come first (clients would be elsewhere)
    done = threading.Event()
    trickle = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    threads = [background(done, lambda: (trickle.produce(topic, key=b"key-1", value=b"new", partition=0),
                                         trickle.poll(0), time.sleep(0.01)))]
    for n in range(2):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tail-{n}", "fetch.wait.max.ms": 100})
        c.assign([TopicPartition(topic, 0, -1)])
        threads.append(background(done, lambda c=c: c.poll(0.1)))
    stop.wait()
    done.set()
    for t in threads:
        t.join(10)
    trickle.flush(10)


def background(stop: threading.Event, fn) -> threading.Thread:
    def loop():
        while not stop.is_set():
            fn()
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def produce(bootstrap: str, topic: str, records: int, value_bytes: int, keys: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000, "compression.type": "none",
                  "queue.buffering.max.messages": 1_000_000})
    value = b"v" * value_bytes
    for i in range(records):
        while True:
            try:
                p.produce(topic, key=b"key-%d" % (i % keys), value=value, partition=0)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    p.flush(120)


def create(admin: AdminClient, topic: str, config: dict) -> None:
    for f in admin.create_topics([NewTopic(topic, 1, 1, config=config)]).values():
        f.result(30)


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def summarize(samples, start: float, end: float) -> dict:
    out = {}
    for api in ("Heartbeat", "OffsetCommit"):
        ms = [t * 1000 for (s, a, t) in samples if a == api and start <= s < end]
        out[api] = {"n": len(ms), "p50": quantile(ms, 0.5), "p99": quantile(ms, 0.99), "max": max(ms) if ms else float("nan")}
    return out


# ------------------------------------------------------------------ scenarios
PROPS = {"offsets.topic.num.partitions": 1, "group.initial.rebalance.delay.ms": 0, "log.cleaner.backoff.ms": 500,
         "num.partitions": 1}


def scenario_compaction(binary: str, work: Path, mb: int) -> dict:
    b = Broker(binary, work, PROPS)
    try:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        create(admin, "probe-topic", {})
        # Compaction held back (min.compaction.lag.ms) until the data is in.
        create(admin, "compacted", {"cleanup.policy": "compact", "segment.bytes": 64 << 20,
                                     "min.compaction.lag.ms": 3_600_000, "min.cleanable.dirty.ratio": 0.01})
        records = mb * (1 << 20) // 150
        produce(b.bootstrap, "compacted", records, 100, 100_000)
        # The topic stays in use during the clean.
        stop = MP.Event()
        user = MP.Process(target=topic_user_main, args=(b.bootstrap, "compacted", stop), daemon=True)
        user.start()
        probe = Probe(b, "probe-group")
        time.sleep(3)
        cpu0 = b.cpu_seconds()
        t0 = time.monotonic()
        for f in admin.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, "compacted", incremental_configs=[
                ConfigEntry("min.compaction.lag.ms", "0", incremental_operation=AlterConfigOpType.SET)])]).values():
            f.result(30)
        deadline = time.monotonic() + 600
        while not b.cleaned("compacted-0") and time.monotonic() < deadline:
            time.sleep(0.1)
        t1 = time.monotonic()
        cleaned = b.cleaned("compacted-0")
        time.sleep(1)
        probe.finish()
        stop.set()
        user.join(30)
        done = cleaned[0] if cleaned else {}
        return {
            "before_clean": summarize(probe.samples, t0 - 3, t0),
            "during_clean": summarize(probe.samples, t0, t1),
            "clean_ms": done.get("elapsed_ms"), "bytes_before": done.get("bytes_before"), "bytes_after": done.get("bytes_after"),
            "window_s": t1 - t0, "broker_cpu_s": b.cpu_seconds() - cpu0, "errors": probe.errors,
        }
    finally:
        b.stop()


def scenario_fetch(binary: str, work: Path, mb: int, secs: float) -> dict:
    b = Broker(binary, work, PROPS)
    try:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        create(admin, "probe-topic", {})
        create(admin, "big", {})
        produce(b.bootstrap, "big", mb * (1 << 20) // 1100, 1000, 1 << 30)
        probe = Probe(b, "probe-group")
        time.sleep(2)
        stop = MP.Event()
        pipes, procs = [], []
        t0 = time.monotonic()
        cpu0 = b.cpu_seconds()
        for _ in range(2):
            parent, child = MP.Pipe()
            proc = MP.Process(target=fetch_main, args=(b.port, "big", 50 << 20, stop, child), daemon=True)
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        time.sleep(secs)
        t1 = time.monotonic()
        stop.set()
        fetched = [p.recv() for p in pipes]
        for proc in procs:
            proc.join(30)
        probe.finish()
        return {
            "before_fetch": summarize(probe.samples, t0 - 2, t0),
            "during_fetch": summarize(probe.samples, t0, t1),
            "fetched_mb_per_s": sum(fetched) / (1 << 20) / (t1 - t0), "window_s": t1 - t0,
            "broker_cpu_s": b.cpu_seconds() - cpu0, "errors": probe.errors,
        }
    finally:
        b.stop()


# ------------------------------------------------------------------ report
def markdown(results: dict, args) -> str:
    names = list(results)
    lines = [
        "### Group coordinator latency under heavy disk work (issue 11)",
        "",
        f"Generated by `bench/group_latency.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores shared by the broker and the Python clients:",
        "",
        "```sh",
        " ".join([".venv-tests/bin/python bench/group_latency.py", *[f"--broker {n}={p}" for n, p in args.broker],
                  f"--compaction-mb {args.compaction_mb} --fetch-mb {args.fetch_mb} --fetch-secs {args.fetch_secs} --rounds {args.rounds}"]),
        "```",
        "",
        "Brokers: " + "; ".join(f"`{n}` = `{p}`" for n, p in args.broker) + ". A build of another commit for "
        "comparison: `git worktree add /tmp/lantern-main main && (cd /tmp/lantern-main && cargo build --release "
        "-p lantern-broker)`, then `--broker main=/tmp/lantern-main/target/release/lantern-broker`.",
        "",
        "Milliseconds per round trip, measured by two probe clients of one group member (JoinGroup v0 "
        "once): one sends Heartbeat v0, the other OffsetCommit v2, each on its own connection and in its own "
        "process, one request every 5 ms, each waiting for the previous answer (so a stalled request is "
        "one sample, and n counts the requests answered in the phase). The broker and the probes run at "
        f"nice {PRIORITY if os.geteuid() == 0 else 0}, the load generators (other processes) at nice 10, so that "
        "the other sessions' builds on this shared machine take their CPU time from the load, not from what is "
        f"measured. Load average when the script started: {args.load_at_start}.",
        "",
        "| broker | phase | Heartbeat n | p50 | p99 | max | OffsetCommit n | p50 | p99 | max | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(name, phase, s, notes=""):
        h, c = s["Heartbeat"], s["OffsetCommit"]
        f = lambda x: f"{x:.1f}" if x == x else "-"  # noqa: E731
        lines.append(f"| {name} | {phase} | {h['n']} | {f(h['p50'])} | {f(h['p99'])} | {f(h['max'])} | "
                     f"{c['n']} | {f(c['p50'])} | {f(c['p99'])} | {f(c['max'])} | {notes} |")

    for n in names:
        r = results[n]
        if "compaction" in r:
            c = r["compaction"]
            row(n, "compaction: before", c["before_clean"])
            row(n, "compaction: during", c["during_clean"],
                f"clean of {(c['bytes_before'] or 0) / 1e6:.0f} MB -> {(c['bytes_after'] or 0) / 1e6:.1f} MB took "
                f"{c['clean_ms']} ms (cleaner's log); window {c['window_s']:.1f} s; probe errors {c['errors']}")
        if "fetch" in r:
            f = r["fetch"]
            row(n, "50 MB fetches: before", f["before_fetch"])
            row(n, "50 MB fetches: during", f["during_fetch"],
                f"2 clients fetched {f['fetched_mb_per_s']:.0f} MB/s for {f['window_s']:.0f} s; probe errors {f['errors']}")
    lines += [
        "",
        f"**compaction**: a compacted topic (1 partition, 64 MiB segments) holding {args.compaction_mb} MB of "
        "100 B values under 100,000 keys, written with compaction held back by min.compaction.lag.ms, then "
        "released with IncrementalAlterConfigs; during the clean a producer writes to the topic every 10 ms "
        "and two consumers tail it. \"during\" runs from the config change to the cleaner's \"cleaned log\" line. "
        f"**50 MB fetches**: a {args.fetch_mb} MB partition read from offset 0 by two raw clients, Fetch v4 with "
        "max_bytes and partition_max_bytes 50 MiB, back to back.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", action="append", type=lambda s: tuple(s.split("=", 1)), required=True,
                    help="NAME=PATH of a lantern-broker binary (repeatable)")
    ap.add_argument("--compaction-mb", type=int, default=800)
    ap.add_argument("--fetch-mb", type=int, default=400)
    ap.add_argument("--fetch-secs", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=1, help="run every broker this many times, alternating")
    ap.add_argument("--only", choices=["compaction", "fetch"])
    ap.add_argument("--out", help="write the markdown here (default: stdout)")
    ap.add_argument("--json", help="write the raw figures here")
    args = ap.parse_args()
    args.load_at_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results = {}
    runs = [(f"{name}" if args.rounds == 1 else f"{name} #{r + 1}", binary) for r in range(args.rounds) for name, binary in args.broker]
    for name, binary in runs:
        results[name] = {}
        for scenario in ("compaction", "fetch"):
            if args.only and args.only != scenario:
                continue
            work = Path(tempfile.mkdtemp(prefix=f"lantern-gl-{name}-{scenario}-"))
            try:
                print(f"[group_latency] {name}: {scenario}", file=sys.stderr)
                if scenario == "compaction":
                    results[name][scenario] = scenario_compaction(binary, work, args.compaction_mb)
                else:
                    results[name][scenario] = scenario_fetch(binary, work, args.fetch_mb, args.fetch_secs)
                print(json.dumps(results[name][scenario]), file=sys.stderr)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    md = markdown(results, args)
    if args.out:
        Path(args.out).write_text(md)
    else:
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
