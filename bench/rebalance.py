#!/usr/bin/env python3
"""Rebalance benchmark (issue 15): 5 GiB onto 3 new brokers, on real lantern-broker processes
started by the tests' cluster harness (tests/cluster.py) on 127.0.0.1, clients on the same
machine:

  * 3 brokers that are also the controller quorum, racks FD0UD0, FD1UD1, FD2UD2; one topic of
    --partitions partitions, replication factor 3, min.insync.replicas=2, filled with --gib GiB
    of incompressible 1 KiB records (the sum of the partitions' sizes, each counted once, as
    Kafka's tools count a partition's size; the brokers hold three copies). The partitions are
    deliberately uneven (partition p gets a share proportional to 12 + p, about 1.8:1 between
    the largest and the smallest once the stream's even share is in), so a plan that ignores
    sizes copies more than the minimum;
  * a stream of --rate records/s of 1 KiB (confluent-kafka, acks=all, idempotent,
    linger.ms=0, round-robin over the partitions) into the same topic from before the new
    brokers start to after the move; each record's latency is librdkafka's own produce() to
    delivery report time (Message.latency());
  * 3 broker-only nodes join (process.roles=broker, racks FD0UD1, FD1UD2, FD2UD0, the same
    controller.quorum.voters), then `lantern-admin rebalance execute --wait --output json`
    (one run without a throttle, one with `--throttle 30000000`; --throttles, a fresh cluster each):
    its wall time, the bytes its plan copies against the least any plan balancing the replica
    count can copy (computed from the partition sizes at that moment), the bytes the brokers
    counted (kafka_server_brokertopicmetrics_reassignmentbytesin_total: the plan's bytes plus
    the stream's records that reached the moving partitions during the copy), and the stream's
    latency before, during and after the move.

    .venv-tests/bin/python bench/rebalance.py --out bench/rebalance.md

bench/run runs it (BENCH_ONLY=rebalance) and puts the result into docs/benchmarks.md. Takes
about 7 minutes and ~25 GB of disk under $TMPDIR (deleted after each run).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import lantern  # noqa: E402
from cluster import Cluster, describe_log_dirs, metadata, wait_for  # noqa: E402

MP = multiprocessing.get_context("spawn")
ADMIN = ROOT / "target" / "release" / "lantern-admin"
VALUE = 1024
TOPIC = "rebalance"
OLD = {1: "FD0UD0", 2: "FD1UD1", 3: "FD2UD2"}
NEW = {4: "FD0UD1", 5: "FD1UD2", 6: "FD2UD0"}
PROPS = {"offsets.topic.num.partitions": 3}
REASSIGN_IN = "kafka_server_brokertopicmetrics_reassignmentbytesin_total"
REASSIGN_OUT = "kafka_server_brokertopicmetrics_reassignmentbytesout_total"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ clients (spawned processes)
def fill(bootstrap: str, partitions: int, total: int, out) -> None:
    """Produces `total` value bytes of 1 KiB incompressible records, partition p getting a
    share proportional to 12 + p (interleaved, so every partition grows all along)."""
    weights = [12 + p for p in range(partitions)]
    slots = [p for k in range(max(weights)) for p in range(partitions) if k < weights[p]]
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                  "batch.size": 1_000_000, "queue.buffering.max.kbytes": 1_048_576})
    payloads = [os.urandom(VALUE) for _ in range(64)]
    acked = [0, 0]

    def done(err, _msg):
        acked[0 if err is None else 1] += 1

    n = total // VALUE
    t0 = time.monotonic()
    i = 0
    last = t0
    while i < n:
        try:
            p.produce(TOPIC, payloads[i & 63], partition=slots[i % len(slots)], on_delivery=done)
            i += 1
        except BufferError:
            p.poll(0.005)
            continue
        if i & 1023 == 0:
            p.poll(0)
            if time.monotonic() - last > 10:
                last = time.monotonic()
                print(f"fill: {acked[0] * VALUE / 2**30:.2f} GiB acknowledged", file=sys.stderr)
    p.flush(300)
    out.put({"messages": acked[0], "errors": acked[1], "secs": time.monotonic() - t0})


def stream(bootstrap: str, partitions: int, rate: int, stop, files: str, out) -> None:
    """`rate` records/s of 1 KiB until `stop` is set; writes every delivered record's send
    time (CLOCK_MONOTONIC, shared by the processes) and latency to `files`.send/.lat, and the
    failed deliveries' times to `files`.err."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 0,
                  "queue.buffering.max.kbytes": 1_048_576, "queue.buffering.max.messages": 1_000_000})
    pad = os.urandom(VALUE)
    sends, lats, errs = array("d"), array("d"), array("d")

    def done(err, msg):
        now = time.monotonic()
        if err is None:
            lat = msg.latency()
            sends.append(now - lat)
            lats.append(lat)
        else:
            errs.append(now)

    t0 = time.monotonic()
    n = 0
    announced = False
    while not stop.is_set():
        due = int((time.monotonic() - t0) * rate)
        while n < due:
            p.produce(TOPIC, pad, partition=n % partitions, on_delivery=done)
            n += 1
        p.poll(0)
        if not announced and lats:
            out.put("started")
            announced = True
        time.sleep(0.0005)
    left = p.flush(120)
    for ext, arr in (("send", sends), ("lat", lats), ("err", errs)):
        with open(f"{files}.{ext}", "wb") as f:
            arr.tofile(f)
    out.put({"sent": n, "undelivered": left, "secs": time.monotonic() - t0})


def in_process(target, *args, timeout: float = 900):
    q = MP.Queue()
    proc = MP.Process(target=target, args=(*args, q))
    proc.start()
    r = q.get(timeout=timeout)
    proc.join(30)
    return r


# ------------------------------------------------------------------ cluster readings
def partition_metadata(c: Cluster):
    return metadata(c.running_brokers()[0], [TOPIC]).topics[TOPIC].partitions


def sizes(c: Cluster) -> tuple[dict[int, int], dict[int, int]]:
    """({partition: size}, {broker: bytes on its disks}) from DescribeLogDirs on every broker;
    a partition's size is its largest copy's (as lantern-admin takes it)."""
    part: dict[int, int] = {}
    per_broker: dict[int, int] = {}
    for node in c.running_brokers():
        total = 0
        for replicas in describe_log_dirs(node).values():
            for (topic, index), (size, _lag) in replicas.items():
                total += size
                if topic == TOPIC:
                    part[index] = max(part.get(index, 0), size)
        per_broker[node.node_id] = total
    return part, per_broker


def metric_total(node, name: str) -> float:
    """A per-topic counter's all-topics value: its series without labels (the broker exports it
    beside the {topic="..."} ones), else the sum of those."""
    series = {k: v for k, v in node.metrics().items() if k == name or k.startswith(name + "{")}
    return series[name] if name in series else sum(series.values())


def cpu_seconds(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / CLK_TCK
    except (OSError, IndexError):
        return 0.0


def machine_jiffies() -> tuple[int, int]:
    """(busy, all) jiffies of the whole machine since boot."""
    a = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = a
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


class Meter:
    """CPU of the brokers and of the whole machine between two instants."""

    def __init__(self, c: Cluster):
        self.c = c
        self.t = time.monotonic()
        self.brokers = {n.node_id: cpu_seconds(n.pid) for n in c.running()}
        self.machine = machine_jiffies()

    def since(self) -> dict:
        secs = time.monotonic() - self.t
        brokers = sum(cpu_seconds(n.pid) - self.brokers.get(n.node_id, 0.0) for n in self.c.running())
        busy, all_ = machine_jiffies()
        return {"secs": secs, "broker_cpu_s": brokers,
                "machine_busy": (busy - self.machine[0]) / max(1, all_ - self.machine[1])}


def window(sends: array, lats: array, errs: array, t0: float, t1: float) -> dict:
    ms = sorted(lat * 1000 for s, lat in zip(sends, lats) if t0 <= s < t1)
    if not ms:
        return {"n": 0}
    q = lambda f: ms[min(len(ms) - 1, int(len(ms) * f))]  # noqa: E731
    return {"n": len(ms), "secs": t1 - t0, "rate": len(ms) / (t1 - t0), "p50": statistics.median(ms), "p99": q(0.99),
            "p999": q(0.999), "max": ms[-1], "errors": sum(1 for e in errs if t0 <= e < t1)}


def least_bytes(part: dict[int, int], rf: int, old: int, new: int) -> tuple[int, int]:
    """The least a plan can copy so that every broker holds the same number of replicas (to
    within one): the new brokers must receive new * floor(replicas / brokers) copies, a
    partition can give each of them one (at most min(rf, new) copies), and the cheapest
    copies are the smallest partitions'. In the FDxUDy grid of this run only whole
    partitions can move (the two diagonals are the only triples on three fault and three
    update domains), which is what this picks anyway when the count is a multiple of 3.
    Returns (bytes, copies)."""
    need = new * ((len(part) * rf) // (old + new))
    per = min(rf, new)
    total = 0
    copies = 0
    for size in sorted(part.values()):
        take = min(per, need - copies)
        if take <= 0:
            break
        total += take * size
        copies += take
    return total, copies


def json_docs(text: str) -> list:
    dec, docs, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return docs
        doc, i = dec.raw_decode(text, i)
        docs.append(doc)


def head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def fmt_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


# ------------------------------------------------------------------ the run
def dirty_bytes() -> int:
    """Dirty + Writeback page cache of the machine (/proc/meminfo)."""
    kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(("Dirty:", "Writeback:")):
            kb += int(line.split()[1])
    return kb * 1024


def run(workdir: Path, a, throttle: int) -> dict:
    c = Cluster(workdir / "cluster", 3, props=PROPS)
    for i, rack in OLD.items():
        c.nodes[i].props["broker.rack"] = rack
    c.start()
    stop = MP.Event()
    sampling = threading.Event()
    res: dict = {"gib": a.gib, "partitions": a.partitions, "rate": a.rate, "throttle": throttle}
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic(TOPIC, a.partitions, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(30)
        wait_for("the topic's leaders", lambda: len(partition_metadata(c)) == a.partitions
                 and all(pm.leader >= 0 for pm in partition_metadata(c).values()), 30)

        # Fill: the stream adds rate x 1 KiB a second until the plan, so the fill leaves room for it.
        stream_before_plan = a.rate * VALUE * (a.warmup + a.before + 5)
        target = int(a.gib * 2**30) - stream_before_plan
        t = time.monotonic()
        f = in_process(fill, c.bootstrap, a.partitions, target)
        res["fill"] = {**f, "bytes": f["messages"] * VALUE, "wall": time.monotonic() - t}
        print(f"fill: {res['fill']}", file=sys.stderr)
        wait_for("every replica in sync", lambda: all(len(pm.isr) == 3 for pm in partition_metadata(c).values()), 120)

        # Once a second until the end: the machine's dirty page cache and the bytes the new
        # brokers have fetched into reassigned replicas.
        samples: list[tuple[float, int, float]] = []

        def sample():
            while not sampling.is_set():
                got = sum(metric_total(c.nodes[i], REASSIGN_IN) for i in NEW if i in c.nodes and c.nodes[i].alive())
                samples.append((time.monotonic(), dirty_bytes(), got))
                sampling.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        # The stream, then the window before anything changes.
        files = str(workdir / "stream")
        q = MP.Queue()
        sp = MP.Process(target=stream, args=(c.bootstrap, a.partitions, a.rate, stop, files, q))
        sp.start()
        assert q.get(timeout=60) == "started"
        time.sleep(a.warmup)
        m = Meter(c)
        res["before_t"] = (m.t, m.t + a.before)
        time.sleep(a.before)
        res["before_cpu"] = m.since()

        # Three broker-only nodes join.
        t = time.monotonic()
        for i, rack in NEW.items():
            c.add_node(i, props={"process.roles": "broker", "broker.rack": rack}, wait=False)
        c.wait_ready(list(NEW), timeout=60)
        wait_for("6 brokers in Metadata", lambda: len(metadata(c.nodes[1]).brokers) == 6, 30)
        res["join_secs"] = time.monotonic() - t

        # The move.
        part, disk_before = sizes(c)
        res["sizes"] = part
        res["disk_before"] = disk_before
        in_before = {n.node_id: metric_total(n, REASSIGN_IN) for n in c.running_brokers()}
        out_before = {n.node_id: metric_total(n, REASSIGN_OUT) for n in c.running_brokers()}
        cmd = [str(ADMIN), "--bootstrap-server", c.bootstrap_without(*NEW), "--output", "json", "rebalance", "execute", "--wait"]
        if throttle:
            cmd += ["--throttle", str(throttle)]
        m = Meter(c)
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.move_timeout)
        t1 = time.monotonic()
        res["move_cpu"] = m.since()
        res["move_t"] = (t0, t1)
        res["admin_rc"] = p.returncode
        res["admin_stderr"] = p.stderr[-2000:]
        print(f"lantern-admin (throttle {throttle}) exit {p.returncode} after {t1 - t0:.1f}s; stderr: {p.stderr[-2000:]}",
              file=sys.stderr)
        docs = json_docs(p.stdout) if p.stdout.strip() else []
        res["plan"] = docs[0] if docs else None
        res["done"] = docs[1] if len(docs) > 1 else None
        res["bytes_in"] = {n.node_id: metric_total(n, REASSIGN_IN) - in_before.get(n.node_id, 0.0) for n in c.running_brokers()}
        res["bytes_out"] = {n.node_id: metric_total(n, REASSIGN_OUT) - out_before.get(n.node_id, 0.0) for n in c.running_brokers()}

        # After: the stream goes on against the new placement.
        m = Meter(c)
        res["after_t"] = (m.t, m.t + a.after)
        time.sleep(a.after)
        res["after_cpu"] = m.since()
        stop.set()
        res["stream"] = q.get(timeout=180)
        sp.join(30)
        sampling.set()
        sampler.join(5)
        res["samples"] = samples
        sends, lats, errs = array("d"), array("d"), array("d")
        for ext, arr in (("send", sends), ("lat", lats), ("err", errs)):
            arr.frombytes(Path(f"{files}.{ext}").read_bytes())
        res["before"] = window(sends, lats, errs, *res["before_t"])
        res["during"] = window(sends, lats, errs, *res["move_t"])
        res["after"] = window(sends, lats, errs, *res["after_t"])
        res["errors_total"] = len(errs)
        # 5 s buckets from 10 s before the move to the end of the after window.
        res["timeline"] = []
        b = t0 - 10
        while b < res["after_t"][1] - 0.5:
            e = min(b + 5, res["after_t"][1])
            w = window(sends, lats, errs, b, e)
            inside = [x for x in samples if b <= x[0] < e]
            w.update({"from": b - t0, "to": e - t0, "dirty_max": max((x[1] for x in inside), default=0)})
            res["timeline"].append(w)
            b = e

        # Where everything ended up; the old copies' disk space given back.
        pm = partition_metadata(c)
        res["final"] = {i: sorted(x.replicas) for i, x in pm.items()}
        res["leaders"] = {i: x.leader for i, x in pm.items()}
        res["isr_full"] = all(len(x.isr) == 3 for x in pm.values())
        racks = {**OLD, **NEW}
        res["spread"] = all(len({racks[r][:3] for r in x.replicas}) == 3 and len({racks[r][3:] for r in x.replicas}) == 3
                            for x in pm.values())
        _, res["disk_after"] = sizes(c)
    finally:
        stop.set()
        sampling.set()
        c.stop()
    return res


# ------------------------------------------------------------------ report
def figures(r: dict) -> dict:
    part = r["sizes"]
    least, copies = least_bytes(part, 3, len(OLD), len(NEW))
    plan = r["plan"] or {"moves": [], "bytes_to_copy": 0}
    moves = plan["moves"]
    copied = [m for m in moves if set(m["to"]) - set(m["from"])]
    t0, t1 = r["move_t"]
    secs = t1 - t0
    metric_in = sum(r["bytes_in"].values())
    plan_copies = sum(len(set(m["to"]) - set(m["from"])) for m in moves)
    # The stream's records that reached the moving partitions while they were copied, once per
    # new copy: the part of the brokers' count that is not in the plan.
    stream_share = r["rate"] * VALUE * secs * plan_copies / r["partitions"]
    s = [x for x in r["samples"] if t0 - 1 <= x[0] <= t1 + 1]
    peak = max(((b[2] - a[2]) / (b[0] - a[0]) for a, b in zip(s, s[5:])), default=0.0)
    count, leaders = {}, {}
    for reps in r["final"].values():
        for b in reps:
            count[b] = count.get(b, 0) + 1
    for b in r["leaders"].values():
        leaders[b] = leaders.get(b, 0) + 1
    return {"unique": sum(part.values()), "lo": min(part.values()), "hi": max(part.values()), "least": least,
            "copies": copies, "plan_bytes": plan["bytes_to_copy"], "moves": moves, "copied": copied,
            "plan_copies": plan_copies, "whole": sum(1 for m in moves if not set(m["to"]) & set(m["from"])),
            "largest": -least_bytes({k: -v for k, v in part.items()}, 3, len(OLD), len(NEW))[0],
            "secs": secs, "metric_in": metric_in, "metric_out": sum(r["bytes_out"].values()),
            "stream_share": stream_share, "peak": peak, "count": count, "leaders": leaders,
            "ok": r["admin_rc"] == 0 and r["done"] is not None}


def label(r: dict) -> str:
    return f"`--throttle {r['throttle']}` ({r['throttle'] / 1e6:.0f} MB/s a broker)" if r["throttle"] else "no throttle"


def report(runs: list[dict], cmd: str) -> str:
    fs = [figures(r) for r in runs]
    r0 = runs[0]
    lines = ["### Rebalance (issue 15)", "",
             f"Measured by `bench/rebalance.py` ({cmd}) with `target/release/lantern-broker` and "
             "`target/release/lantern-admin`. Each run: 3 brokers that are also the controller quorum (racks FD0UD0, "
             "FD1UD1, FD2UD2; default settings otherwise) started by `tests/cluster.py`; one topic of "
             f"{r0['partitions']} partitions, replication factor 3, min.insync.replicas=2, filled with about "
             f"{r0['gib']:g} GiB of 1 KiB incompressible records by one confluent-kafka producer (acks=all). "
             "**5 GiB is partition data**: the sum of the partitions' sizes, each counted once, as Kafka's tools count "
             "it; the 3 brokers hold 3 copies of it. Partition sizes are deliberately uneven (partition p gets a share "
             "proportional to 12 + p, about 1.8:1 between the largest and the smallest), so a plan blind to sizes would "
             "copy more than the least. Then 3 broker-only nodes (process.roles=broker, racks FD0UD1, FD1UD2, FD2UD0) "
             "join and `lantern-admin --bootstrap-server <brokers 1-3> --output json rebalance execute --wait "
             "[--throttle N]` moves the replicas; its wall time is the move's. "
             f"A stream of {r0['rate']:,} records/s of 1 KiB (acks=all, idempotent, linger.ms=0, round-robin, into "
             "the same topic) runs from before the new brokers start to after the move; latency is librdkafka's "
             "produce() to delivery report (`Message.latency()`). Brokers, clients and the tool share the machine's "
             "2 cores and one disk.", "",
             f"The least a plan can copy: balanced, each of the 6 brokers holds {r0['partitions'] * 3} / 6 = "
             f"{r0['partitions'] // 2} replicas, so {r0['partitions'] * 3 // 2} replica copies must land on the new "
             f"brokers; the cheapest are 3 copies each of the {r0['partitions'] // 2} smallest partitions. On "
             "this grid that is also the only way that keeps every partition on 3 fault and 3 update domains (the "
             "two diagonals are the only such triples), so half the partitions must move whole.", "",
             "| | " + " | ".join(label(r) for r in runs) + " |", "|---|" + "---|" * len(runs)]

    def row(name: str, f) -> None:
        lines.append(f"| {name} | " + " | ".join(f(r, x) for r, x in zip(runs, fs)) + " |")

    row("partition data when the plan was made", lambda r, x: f"{fmt_bytes(x['unique'])} ({fmt_bytes(x['unique'] * 3)} in "
        f"replicas), partitions {x['lo'] / 2**20:.0f}-{x['hi'] / 2**20:.0f} MiB")
    row("`lantern-admin` exit code", lambda r, x: f"{r['admin_rc']}" + ("" if x["ok"] else " (**failed**, see below)"))
    row("**time** (`rebalance execute --wait`, wall)", lambda r, x: f"**{x['secs']:.1f} s**")
    row("partitions moved", lambda r, x: f"{len(x['copied'])} of {r['partitions']} ({x['whole']} whole); "
        f"{len(x['moves']) - len(x['copied'])} only reordered")
    row("replica copies", lambda r, x: f"{x['plan_copies']} (least: {x['copies']})")
    row("**bytes the plan copies**", lambda r, x: f"**{fmt_bytes(x['plan_bytes'])}**")
    row("**the least any plan can copy**", lambda r, x: f"**{fmt_bytes(x['least'])}** (plan / least = "
        f"{x['plan_bytes'] / x['least']:.4f})" if x["least"] else "0")
    row("size-blind plan, for comparison", lambda r, x: f"up to {fmt_bytes(x['largest'])} (the largest half); half of all "
        f"replicas {fmt_bytes(x['unique'] * 1.5)}")
    row("bytes fetched by the new brokers (`reassignmentbytesin_total`)", lambda r, x: f"{fmt_bytes(x['metric_in'])} "
        f"(leaders' `reassignmentbytesout_total`: {fmt_bytes(x['metric_out'])}) = the plan's + "
        f"{fmt_bytes(x['metric_in'] - x['plan_bytes'])}; the stream wrote about {fmt_bytes(x['stream_share'])} into "
        "the moving partitions' new copies meanwhile")
    row("copy rate, all new brokers", lambda r, x: f"{x['metric_in'] / x['secs'] / 1e6:.0f} MB/s average, "
        f"{x['peak'] / 1e6:.0f} MB/s peak (5 s)")
    row("after the move", lambda r, x: f"ISR full: {'yes' if r['isr_full'] else '**no**'}; on 3 FDs and 3 UDs: "
        f"{'yes' if r['spread'] else '**no**'}; replicas per broker "
        + "/".join(str(x["count"].get(b, 0)) for b in range(1, 7)) + ", leaders "
        + "/".join(str(x["leaders"].get(b, 0)) for b in range(1, 7)))
    row("disk per broker 1-6, GiB, before → at the end", lambda r, x: "/".join(f"{r['disk_before'].get(b, 0) / 2**30:.2f}"
        for b in range(1, 7)) + " → " + "/".join(f"{r['disk_after'].get(b, 0) / 2**30:.2f}" for b in range(1, 7)))
    lines += ["", f"**Produce latency of the {r0['rate']:,} records/s stream** (acks=all), records by the time they were "
              "sent; \"machine busy\": the whole machine's CPU (2 cores) over the window, brokers, clients and tool:", "",
              "| run | window | records | records/s | p50 ms | p99 ms | p99.9 ms | max ms | failed | broker CPU s | machine busy |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        for name, w, cpu in (("before (3 brokers)", r["before"], r["before_cpu"]), ("**during the move**", r["during"], r["move_cpu"]),
                             ("after (6 brokers)", r["after"], r["after_cpu"])):
            if w["n"]:
                lines.append(f"| {label(r)} | {name}, {w['secs']:.0f} s | {w['n']:,} | {w['rate']:,.0f} | {w['p50']:.1f} | "
                             f"**{w['p99']:.1f}** | {w['p999']:.1f} | {w['max']:.1f} | {w['errors']} | "
                             f"{cpu['broker_cpu_s']:.0f} | {cpu['machine_busy']:.0%} |")
            else:
                lines.append(f"| {label(r)} | {name} | 0 | | | | | | | | |")
    lines += ["", "Over time (5 s windows of send time, seconds from the start of the move; dirty: the machine's "
              "Dirty + Writeback page cache at its highest in the window):", "",
              "| run | s | p50 ms | p99 ms | max ms | dirty GiB |", "|---|---|---|---|---|---|"]
    for r in runs:
        for w in r["timeline"]:
            if w["n"]:
                lines.append(f"| {label(r)} | {w['from']:.0f} to {w['to']:.0f} | {w['p50']:.1f} | {w['p99']:.1f} | "
                             f"{w['max']:.1f} | {w['dirty_max'] / 2**30:.1f} |")
    lines.append("")
    for r, x in zip(runs, fs):
        lines.append(f"{label(r)}: the stream sent {r['stream']['sent']:,} records, {r['errors_total']} failed, "
                     f"{r['stream']['undelivered']} undelivered at the end.")
        if not x["ok"]:
            lines += ["", "`lantern-admin` stderr:", "", "```", r["admin_stderr"].strip(), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    global ADMIN
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--gib", type=float, default=5.0, help="partition data to fill, GiB (each partition counted once)")
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--before", type=float, default=30.0)
    ap.add_argument("--after", type=float, default=30.0)
    ap.add_argument("--throttles", default="0,30000000",
                    help="one run each: lantern-admin's --throttle, bytes/s a broker (0: none)")
    ap.add_argument("--move-timeout", type=float, default=900.0)
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    a = ap.parse_args()
    if not ADMIN.exists():
        sys.exit(f"{ADMIN} is missing: cargo build --release -p lantern-admin")
    extra = [f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items()
             if k not in ("out", "json") and v != ap.get_default(k)]
    nice = os.nice(0)
    cmd = "`" + (f"nice -n {nice} " if nice else "") + " ".join([".venv-tests/bin/python bench/rebalance.py", *extra]) + "`"
    # One build for every node and run: a copy, so a `cargo build` meanwhile does not start the
    # new brokers from another build than the old ones.
    bindir = Path(tempfile.mkdtemp(prefix="lantern-bench-rebalance-bin."))
    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(Path(lantern.BROKER_BIN).stat().st_mtime))
    lantern.BROKER_BIN = Path(shutil.copy2(lantern.BROKER_BIN, bindir / "lantern-broker"))
    ADMIN = Path(shutil.copy2(ADMIN, bindir / "lantern-admin"))
    cmd += f"; lantern-broker built {built}, HEAD {head()}"
    runs = []
    try:
        for throttle in (int(x) for x in a.throttles.split(",")):
            workdir = Path(tempfile.mkdtemp(prefix="lantern-bench-rebalance."))
            try:
                runs.append(run(workdir, a, throttle))
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    finally:
        shutil.rmtree(bindir, ignore_errors=True)
    if a.json:
        a.json.write_text(json.dumps(runs, indent=1, default=str))
    text = report(runs, cmd)
    if a.out:
        a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
