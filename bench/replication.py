#!/usr/bin/env python3
"""Replication benchmarks (issue 13), on a 3-broker cluster of real lantern-broker processes
started by the tests' harness (tests/cluster.py), clients on the same 2 cores:

  * throughput: one confluent-kafka producer over 12 partitions of 1 KiB records, replication
    factor 1 with acks=1 against replication factor 3 with acks=all and min.insync.replicas=2
    (alternating, --rounds each), and the machine's buffered-write limit measured in the same
    run (every byte is written three times with replication factor 3, so a third of it is the
    ceiling);
  * end-to-end latency at 10,000 records/s of 1 KiB, replication factor 3, acks=all,
    linger.ms=0: the producer stamps each value with its send time, a consumer in another
    process records the arrival;
  * failover: kill -9 of partition 0's leader to the first acknowledged acks=all produce on the
    new leader (what a confluent-kafka producer sees), --failovers trials, the killed broker
    restarted and back in the ISR between trials;
  * controlled shutdown: SIGTERM of partition 0's leader under continuous acks=all produce,
    the longest gap between deliveries.

    .venv-tests/bin/python bench/replication.py --out bench/replication.md

bench/run runs it (BENCH_ONLY=replication) and puts the result into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from cluster import Cluster, metadata, wait_for  # noqa: E402

MP = multiprocessing.get_context("spawn")
VALUE = 1024
PARTITIONS = 12
PROPS = {"offsets.topic.num.partitions": 3}


def leaders(c: Cluster, topic: str) -> dict[int, int]:
    return {i: pm.leader for i, pm in metadata(c.running_brokers()[0], [topic]).topics[topic].partitions.items()}


def isr(c: Cluster, topic: str) -> dict[int, list[int]]:
    return {i: sorted(pm.isr) for i, pm in metadata(c.running_brokers()[0], [topic]).topics[topic].partitions.items()}


def create(c: Cluster, topic: str, partitions: int, rf: int, min_isr: int = 1) -> AdminClient:
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, rf, config={"min.insync.replicas": str(min_isr)})])[topic].result(30)
    wait_for(f"{topic}'s leaders", lambda: all(l >= 0 for l in leaders(c, topic).values()) and len(leaders(c, topic)) == partitions, 30)
    return admin


# ------------------------------------------------------------------ disk limit
def buffered_write_mbs(dir: Path, total: int = 1 << 30) -> float:
    """MB/s of writing `total` bytes through the page cache (4 MiB writes, no fsync)."""
    path = dir / "write-limit"
    chunk = os.urandom(4 << 20)
    t0 = time.monotonic()
    with open(path, "wb") as f:
        for _ in range(total // len(chunk)):
            f.write(chunk)
    took = time.monotonic() - t0
    path.unlink()
    return total / took / 1e6


# ------------------------------------------------------------------ throughput
def produce_for(bootstrap: str, topic: str, secs: float, acks: str, out) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1_000_000, "acks": acks,
                  "enable.idempotence": acks == "all", "queue.buffering.max.kbytes": 1_048_576})
    payloads = [os.urandom(VALUE) for _ in range(64)]
    acked = [0, 0]

    def done(err, _msg):
        acked[0 if err is None else 1] += 1

    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < secs:
        try:
            p.produce(topic, payloads[i & 63], partition=i % PARTITIONS, on_delivery=done)
            i += 1
        except BufferError:
            p.poll(0.005)
            continue
        if i & 1023 == 0:
            p.poll(0)
    p.flush(120)
    out.put({"messages": acked[0], "errors": acked[1], "secs": time.monotonic() - t0})


def in_process(target, *args, timeout: float = 300):
    q = MP.Queue()
    p = MP.Process(target=target, args=(*args, q))
    p.start()
    r = q.get(timeout=timeout)
    p.join(30)
    return r


def throughput(c: Cluster, secs: float, rounds: int) -> list[dict]:
    create(c, "rf1", PARTITIONS, 1)
    create(c, "rf3", PARTITIONS, 3, 2)
    out = []
    for r in range(rounds):
        for topic, acks in (("rf1", "1"), ("rf3", "all")):
            res = in_process(produce_for, c.bootstrap, topic, secs, acks)
            row = {"round": r + 1, "topic": topic, "acks": acks, "mbs": res["messages"] * VALUE / res["secs"] / 1e6,
                   "messages": res["messages"], "errors": res["errors"]}
            print(f"throughput: {row}", file=sys.stderr)
            out.append(row)
    return out


# ------------------------------------------------------------------ latency
def paced_producer(bootstrap: str, topic: str, rate: int, secs: float, out) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all", "enable.idempotence": True})
    pad = b"x" * (VALUE - 20)
    t0 = time.monotonic()
    n = 0
    errors = [0]

    def done(err, _msg):
        if err is not None:
            errors[0] += 1

    while True:
        now = time.monotonic()
        if now - t0 >= secs:
            break
        due = int((now - t0) * rate)
        while n < due:
            p.produce(topic, f"{time.time():.6f}".encode().ljust(20) + pad, partition=n % PARTITIONS, on_delivery=done)
            n += 1
        p.poll(0)
        time.sleep(0.0005)
    p.flush(60)
    out.put({"sent": n, "errors": errors[0]})


def latency_consumer(bootstrap: str, topic: str, expect: int, out) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "latency", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100, "auto.offset.reset": "latest"})
    c.assign([TopicPartition(topic, p, -1) for p in range(PARTITIONS)])  # -1: the end
    lat = []
    deadline = time.monotonic() + 120
    out.put("ready")
    while len(lat) < expect and time.monotonic() < deadline:
        # poll, not consume(n, timeout): consume waits for n records or the timeout, and
        # stamping arrivals when it returns adds up to that timeout to every latency.
        m = c.poll(0.1)
        if m is not None and m.error() is None:
            lat.append(time.time() - float(m.value()[:20]))
    c.close()
    out.put(lat)


def e2e_latency(c: Cluster, rate: int, secs: float) -> dict:
    create(c, "latency", PARTITIONS, 3, 2)
    q = MP.Queue()
    cons = MP.Process(target=latency_consumer, args=(c.bootstrap, "latency", int(rate * secs), q))
    cons.start()
    assert q.get(timeout=60) == "ready"
    time.sleep(2)  # the consumer's assignment settles
    prod = in_process(paced_producer, c.bootstrap, "latency", rate, secs)
    lat = sorted(q.get(timeout=180))
    cons.join(30)
    ms = [x * 1000 for x in lat]
    q99 = ms[int(len(ms) * 0.99) - 1] if ms else float("nan")
    return {"rate": rate, "sent": prod["sent"], "received": len(ms), "errors": prod["errors"],
            "p50": statistics.median(ms), "p99": q99, "max": ms[-1]}


# ------------------------------------------------------------------ failover
def failovers(c: Cluster, trials: int) -> list[dict]:
    create(c, "failover", 3, 3, 2)
    out = []
    for trial in range(trials):
        victim = leaders(c, "failover")[0]
        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 0,
                      "message.timeout.ms": 30000})
        p.produce("failover", b"warm", partition=0)
        p.flush(10)
        t_kill = time.monotonic()
        c.kill9(victim)
        acked = None
        while acked is None and time.monotonic() - t_kill < 60:
            result = []
            p.produce("failover", b"after", partition=0, on_delivery=lambda err, msg: result.append(err))
            p.flush(30)
            if result and result[0] is None:
                acked = time.monotonic() - t_kill
        new = leaders(c, "failover")[0]
        out.append({"trial": trial + 1, "killed": victim, "new": new, "secs": acked})
        print(f"failover {trial + 1}: killed {victim}, new leader {new}, first acked produce after {acked:.2f}s", file=sys.stderr)
        c.restart(victim)
        wait_for(f"broker {victim} back in every ISR", lambda: all(victim in v for v in isr(c, "failover").values()), 60)
    return out


def controlled_shutdowns(c: Cluster, trials: int) -> list[dict]:
    create(c, "controlled", 3, 3, 2)
    out = []
    for trial in range(trials):
        victim = leaders(c, "controlled")[0]
        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 1})
        times, failed = [], [0]
        stop = threading.Event()

        def on_delivery(err, _msg):
            if err is None:
                times.append(time.monotonic())
            else:
                failed[0] += 1

        def run():
            while not stop.is_set():
                p.produce("controlled", b"v", partition=0, on_delivery=on_delivery)
                p.poll(0.002)

        t = threading.Thread(target=run)
        t.start()
        time.sleep(1.0)
        t_term = time.monotonic()
        c.terminate(victim)
        exit_s = time.monotonic() - t_term
        time.sleep(1.5)
        stop.set()
        t.join(10)
        p.flush(30)
        ts = sorted(x for x in times if x >= t_term - 0.5)
        stall = max(b - a for a, b in zip(ts, ts[1:]))
        out.append({"trial": trial + 1, "victim": victim, "stall": stall, "exit": exit_s, "failed": failed[0]})
        print(f"controlled shutdown {trial + 1}: broker {victim}, exit {exit_s:.2f}s, longest gap {stall:.3f}s", file=sys.stderr)
        c.restart(victim)
        wait_for(f"broker {victim} back in every ISR", lambda: all(victim in v for v in isr(c, "controlled").values()), 60)
    return out


# ------------------------------------------------------------------ report
def report(limit: float, tp: list[dict], lat: dict | None, fo: list[dict], cs: list[dict], cmd: str) -> str:
    lines = ["### Replication (issue 13)", "",
             f"Measured by `bench/replication.py` ({cmd}) on 3 brokers (combined broker+controller, default "
             "settings) started by `tests/cluster.py`, clients and brokers on the same 2 cores.", ""]
    if tp:
        third = limit / 3
        lines += [f"**Throughput, 12 partitions, 1 KiB values**, one confluent-kafka producer (linger.ms=5, "
                  "batch.size=1000000, no compression). Buffered-write limit of this machine, same run "
                  f"(1 GiB in 4 MiB writes, no fsync): {limit:.0f} MB/s; a third of it: {third:.0f} MB/s.", "",
                  "| round | topic | acks | MB/s | messages | errors |", "|---|---|---|---|---|---|"]
        for r in tp:
            lines.append(f"| {r['round']} | {r['topic']} | {r['acks']} | {r['mbs']:.0f} | {r['messages']:,} | {r['errors']} |")
        rf1 = statistics.median(r["mbs"] for r in tp if r["topic"] == "rf1")
        rf3 = statistics.median(r["mbs"] for r in tp if r["topic"] == "rf3")
        met = "met" if rf3 >= 0.7 * third else "not met"
        lines += ["", f"Median: replication factor 3 acks=all {rf3:.0f} MB/s, replication factor 1 acks=1 {rf1:.0f} MB/s "
                  f"({rf3 / rf1:.2f}x); {rf3 / third:.0%} of a third of the write limit (goal: at least 70%: **{met}**).", ""]
    if lat:
        met = "met" if lat["p99"] < 10 else "not met"
        lines += [f"**End-to-end latency**, {lat['rate']:,} records/s of 1 KiB, replication factor 3, acks=all, "
                  "min.insync.replicas=2, linger.ms=0 (producer and consumer in separate processes, send time "
                  f"in the value): {lat['received']:,} of {lat['sent']:,} received, p50 {lat['p50']:.1f} ms, "
                  f"p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms (goal: p99 under 10 ms: **{met}**).", ""]
    if fo:
        secs = [r["secs"] for r in fo if r["secs"] is not None]
        med, mx = statistics.median(secs), max(secs)
        met = "met" if med < 3 and mx < 6 and len(secs) == len(fo) else "not met"
        lines += [f"**Leader failover**: kill -9 of partition 0's leader to the first acknowledged acks=all "
                  f"produce to it (confluent-kafka, idempotent), {len(fo)} trials, the broker restarted and back "
                  "in the ISR between trials.", "", "| trial | killed | new leader | seconds |", "|---|---|---|---|"]
        for r in fo:
            lines.append(f"| {r['trial']} | {r['killed']} | {r['new']} | {r['secs']:.2f} |")
        lines += ["", f"Median {med:.2f} s, max {mx:.2f} s (goal: median under 3 s, max under 6 s: **{met}**).", ""]
    if cs:
        stalls = [r["stall"] for r in cs]
        met = "met" if max(stalls) < 0.5 else "not met"
        lines += [f"**Controlled shutdown**: SIGTERM of partition 0's leader under continuous acks=all produce, "
                  f"the longest gap between deliveries around it, {len(cs)} trials: "
                  + ", ".join(f"{s * 1000:.0f} ms" for s in stalls)
                  + f" (failed deliveries: {sum(r['failed'] for r in cs)}; goal: under 0.5 s of stall: **{met}**).", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--secs", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--failovers", type=int, default=20)
    ap.add_argument("--controlled", type=int, default=5)
    ap.add_argument("--only", default="throughput,latency,failover,controlled")
    a = ap.parse_args()
    only = set(a.only.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="lantern-bench-replication."))
    cmd = "`.venv-tests/bin/python bench/replication.py" + (f" --only {a.only}" if a.only != ap.get_default("only") else "") + "`"
    try:
        limit = buffered_write_mbs(workdir) if "throughput" in only else 0.0
        c = Cluster(workdir / "cluster", 3, props=PROPS).start()
        try:
            tp = throughput(c, a.secs, a.rounds) if "throughput" in only else []
            lat = e2e_latency(c, 10_000, 10.0) if "latency" in only else None
            if lat:
                print(f"latency: {lat}", file=sys.stderr)
            fo = failovers(c, a.failovers) if "failover" in only else []
            cs = controlled_shutdowns(c, a.controlled) if "controlled" in only else []
        finally:
            c.stop()
        text = report(limit, tp, lat, fo, cs, cmd)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if a.out:
        a.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
