#!/usr/bin/env python3
"""REST proxy benchmark (issue 18), on one real lantern-broker started by the tests' harness.

- Produce throughput of 1 KiB JSON values: v3 streaming over one HTTP connection, and over 16
  concurrent connections, against the same run's native Kafka produce (confluent-kafka, acks=all).
- Latency of single-record v3 produce requests (one keep-alive connection per sender) at a
  fixed request rate, p50/p99.

    .venv-tests/bin/python bench/rest_proxy.py [--records 40000] [--rate 200] [--seconds 5]

Needs target/release/lantern-broker and the tests' venv (confluent-kafka, requests)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import requests  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

from clients import create_topic  # noqa: E402
from lantern import Broker  # noqa: E402

PAYLOAD = "x" * 1012  # with {"p": ...}: 1 KiB of JSON per value


def native(bootstrap: str, topic: str, n: int) -> float:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    value = json.dumps({"p": PAYLOAD}).encode()
    started = time.monotonic()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0
    return n / (time.monotonic() - started)


def stream(url: str, n: int, out: list) -> None:
    line = (json.dumps({"value": {"type": "JSON", "data": {"p": PAYLOAD}}}) + "\n").encode()

    def body():
        for _ in range(n):
            yield line

    r = requests.post(url, data=body(), headers={"Content-Type": "application/json"}, stream=True, timeout=300)
    ok = sum(1 for x in r.iter_lines() if x.strip() and json.loads(x)["error_code"] == 200)
    out.append(ok)


def rest(url: str, n: int, connections: int) -> float:
    out: list = []
    threads = [threading.Thread(target=stream, args=(url, n // connections, out)) for _ in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert sum(out) == (n // connections) * connections, out
    return sum(out) / elapsed


def latency(url: str, rate: int, seconds: float, senders: int = 4) -> tuple[float, float, int]:
    body = json.dumps({"value": {"type": "JSON", "data": {"p": "x"}}})
    times: list[float] = []
    lock = threading.Lock()
    interval = senders / rate
    start = time.monotonic() + 0.2

    def sender(i: int):
        s = requests.Session()
        k = 0
        while True:
            due = start + (k * senders + i) / rate
            if due > start + seconds:
                return
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            t0 = time.monotonic()
            r = s.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
            assert r.status_code == 200, r.text
            with lock:
                times.append(time.monotonic() - t0)
            k += 1

    ts = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    del interval
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000, len(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lantern-rest-bench-"))
    b = Broker(work / "broker").start()
    try:
        r = requests.get(f"{b.rest_base}/v3/clusters", timeout=10).json()
        c = r["data"][0]["cluster_id"]
        for t in ("native", "rest1", "rest16", "latency"):
            create_topic(b.bootstrap, t, 4)
        nat = native(b.bootstrap, "native", a.records)
        one = rest(f"{b.rest_base}/v3/clusters/{c}/topics/rest1/records", a.records, 1)
        many = rest(f"{b.rest_base}/v3/clusters/{c}/topics/rest16/records", a.records, 16)
        p50, p99, n = latency(f"{b.rest_base}/v3/clusters/{c}/topics/latency/records", a.rate, a.seconds)
        print(f"records: {a.records} of 1 KiB JSON, topic of 4 partitions, acks=all")
        print(f"native Kafka produce (confluent-kafka):     {nat:9.0f} records/s")
        print(f"v3 streaming, 1 connection:                 {one:9.0f} records/s ({one / nat:.0%} of native)")
        print(f"v3 streaming, 16 connections:               {many:9.0f} records/s ({many / nat:.0%} of native)")
        print(f"single-record v3 produce at {a.rate} req/s for {a.seconds:.0f} s: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({n} requests)")
    finally:
        b.stop()


if __name__ == "__main__":
    main()
