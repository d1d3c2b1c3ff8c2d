#!/usr/bin/env python3
"""Mirroring benchmarks (issue 17): two single-node lantern-broker processes and a
lantern-mirror between them, clients on the same 2 cores (the mirror and both brokers share the
CPU):

  * throughput: the same run's single confluent-kafka producer into one broker (1 KiB records,
    6 partitions, acks=all, linger.ms=5) for --secs, against lantern-mirror copying a backlog of
    that many records from one broker to the other (started after the backlog is written, timed
    to the target's last record);
  * replication latency at 10,000 records/s of 1 KiB: the producer stamps each value with its
    send time, a consumer of the target in another process records the arrival; p50/p99/max,
    and the mirror's own replication-latency-ms (send to the target's acknowledgement).

    .venv-tests/bin/python bench/mirror.py --out bench/mirror.md

bench/run runs it (BENCH_ONLY=mirror) and puts the result into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from lantern import Broker  # noqa: E402
from mirror import Mirror  # noqa: E402

MP = multiprocessing.get_context("spawn")
VALUE = 1024
PARTITIONS = 6


def mirror_props(src: Broker, tgt: Broker, topic: str) -> dict:
    return {
        "clusters": "primary, backup", "primary.bootstrap.servers": src.bootstrap, "backup.bootstrap.servers": tgt.bootstrap,
        "primary->backup.enabled": "true", "primary->backup.topics": topic, "replication.factor": "1",
        "offset-syncs.topic.replication.factor": "1", "checkpoints.topic.replication.factor": "1",
        "heartbeats.topic.replication.factor": "1", "offset.flush.interval.ms": "5000",
        "emit.checkpoints.interval.seconds": "5",
    }


def create(bootstrap: str, topic: str) -> None:
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)


def produce(bootstrap: str, topic: str, secs: float | None = None, count: int | None = None, rate: float | None = None) -> tuple[int, float]:
    """Produces 1 KiB records (for `secs`, or `count` of them, at `rate`/s if given); returns
    (records acknowledged, seconds from first send to last acknowledgement)."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 1 << 20})
    pad = b"x" * (VALUE - 8)
    acked = [0]

    def cb(err, _msg):
        if err is None:
            acked[0] += 1

    t0 = time.monotonic()
    i = 0
    while (secs is None or time.monotonic() - t0 < secs) and (count is None or i < count):
        if rate:
            ahead = t0 + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        value = struct.pack(">d", time.time()) + pad
        while True:
            try:
                p.produce(topic, value=value, partition=i % PARTITIONS, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
        i += 1
    p.flush(120)
    return acked[0], time.monotonic() - t0


def target_count(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-hw"})
    try:
        if topic not in c.list_topics(timeout=10).topics:
            return 0
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in range(PARTITIONS))
    finally:
        c.close()


def latency_consumer(bootstrap: str, topic: str, expect: int, out) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-latency", "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 10})
    c.assign([TopicPartition(topic, p, -2) for p in range(PARTITIONS)])
    lat = []
    deadline = time.monotonic() + 300
    while len(lat) < expect and time.monotonic() < deadline:
        for m in c.consume(num_messages=1000, timeout=0.2):
            if not m.error():
                lat.append(time.time() - struct.unpack(">d", m.value()[:8])[0])
    c.close()
    out.put(lat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=float, default=20, help="baseline produce duration (the backlog is what it wrote)")
    ap.add_argument("--latency-secs", type=float, default=30)
    ap.add_argument("--rate", type=float, default=10_000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "mirror.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lantern-bench-mirror-"))
    props = {"num.partitions": 1, "auto.create.topics.enable": "false"}
    src = Broker(work / "primary", name="primary", props=props).start()
    tgt = Broker(work / "backup", name="backup", props=props).start()
    mirror = None
    try:
        # 1. the baseline: one producer into one broker; what it wrote is the backlog to copy
        create(src.bootstrap, "backlog")
        n, took = produce(src.bootstrap, "backlog", secs=args.secs)
        producer_rate = n / took
        # 2. the mirror copies the backlog
        mirror = Mirror(work / "mirror", mirror_props(src, tgt, "backlog")).start()
        t0 = time.monotonic()
        while target_count(tgt.bootstrap, "primary.backlog") < n:
            time.sleep(0.2)
        mirror_secs = time.monotonic() - t0
        mirror_rate = n / mirror_secs
        mirror.terminate()
        # 3. replication latency at --rate
        create(src.bootstrap, "latency")
        mirror = Mirror(work / "mirror2", mirror_props(src, tgt, "latency")).start()
        while "primary.latency" not in AdminClient({"bootstrap.servers": tgt.bootstrap}).list_topics(timeout=10).topics:
            time.sleep(0.2)
        expect = int(args.rate * args.latency_secs)
        q = MP.Queue()
        cons = MP.Process(target=latency_consumer, args=(tgt.bootstrap, "primary.latency", expect, q))
        cons.start()
        time.sleep(2)
        sent, _ = produce(src.bootstrap, "latency", count=expect, rate=args.rate)
        lat = sorted(q.get(timeout=400))
        cons.join()
        text = mirror.metrics_text()
        rl = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
              if l.startswith("kafka_connect_mirror_mirrorsourceconnector_replication_latency_ms_avg{") and not l.endswith("NaN")]
        q50, q99 = (lat[int(len(lat) * 0.5)] * 1000, lat[int(len(lat) * 0.99)] * 1000) if lat else (float("nan"),) * 2
        lines = [
            "### Mirroring (lantern-mirror, issue 17)",
            "",
            f"Two single-node brokers and lantern-mirror on the same {multiprocessing.cpu_count()} cores; 1 KiB records, "
            f"{PARTITIONS} partitions, acks=all.",
            "",
            "| measurement | result |",
            "|---|---|",
            f"| one producer into one broker ({args.secs:.0f} s) | {producer_rate:,.0f} records/s ({producer_rate * VALUE / 1e6:,.1f} MB/s) |",
            f"| lantern-mirror copying that backlog ({n:,} records) | {mirror_rate:,.0f} records/s ({mirror_rate * VALUE / 1e6:,.1f} MB/s) in {mirror_secs:.1f} s: "
            f"**{100 * mirror_rate / producer_rate:.0f}%** of the producer (goal: at least 50%) |",
            f"| replication latency at {args.rate:,.0f} records/s ({len(lat):,} of {sent:,} records seen) | "
            f"p50 {q50:.1f} ms, p99 {q99:.1f} ms, max {lat[-1] * 1000 if lat else float('nan'):.1f} ms (produce on the source to consume on the target) |",
            f"| the mirror's replication-latency-ms (send to the target's ack), per partition avg | "
            f"{', '.join(f'{v:.1f}' for v in rl) or 'n/a'} ms |",
            "",
        ]
        args.out.write_text("\n".join(lines))
        print("\n".join(lines))
    finally:
        if mirror:
            mirror.stop()
        src.stop()
        tgt.stop()


if __name__ == "__main__":
    main()
