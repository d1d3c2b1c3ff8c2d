#!/usr/bin/env python3
"""REST proxy benchmark (issue 18), on one real lantern-broker started by the tests' harness.

- Produce throughput of 1 KiB JSON values: v3 streaming over one HTTP connection, and over 16
  concurrent connections, against the same run's native Kafka produce (confluent-kafka, acks=all).
- Latency of single-record v3 produce requests (one keep-alive connection per sender) at a
  fixed request rate, p50/p99.

    .venv-tests/bin/python bench/rest_proxy.py [--records 200000] [--rate 1000] [--seconds 10] [--out bench/rest-proxy.md]

The HTTP client is a plain socket per connection (HTTP/1.1, a chunked body prepared in memory
and sent in 64 KiB chunks by one thread while another reads the reports), so that the client
is not what is measured: Python `requests` sending a chunk per record and parsing every report
managed about 9,500 records/s, the proxy's first version about 15,000 with curl.

Needs target/release/lantern-broker and the tests' venv (confluent-kafka, requests)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import requests  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

from clients import create_topic  # noqa: E402
from lantern import Broker  # noqa: E402

PAYLOAD = "x" * 1012  # with {"p": ...}: 1 KiB of JSON per value
CHUNK = 64 * 1024


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


def chunked_body(n: int) -> bytes:
    """n records as one chunked HTTP body, CHUNK bytes of records per chunk."""
    line = (json.dumps({"value": {"type": "JSON", "data": {"p": PAYLOAD}}}) + "\n").encode()
    per = max(1, CHUNK // len(line))
    parts = []
    left = n
    while left:
        k = min(per, left)
        data = line * k
        parts.append(b"%x\r\n%s\r\n" % (len(data), data))
        left -= k
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


def dechunk(raw: bytes) -> bytes:
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    out = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(rest[:size])
        rest = rest[size + 2:]


def stream(url: str, body: bytes, out: list) -> None:
    """One streaming produce over one connection: a thread sends, this one reads the reports."""
    u = urlsplit(url)
    s = socket.create_connection((u.hostname, u.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = (f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    sender = threading.Thread(target=s.sendall, args=(head + body,))
    sender.start()
    got = []
    tail = b""
    while True:
        b = s.recv(1 << 20)
        assert b, "the proxy closed the connection"
        got.append(b)
        tail = (tail + b)[-7:]
        if tail.endswith(b"\r\n0\r\n\r\n"):
            break
    sender.join()
    s.close()
    out.append(b"".join(got))


def rest(url: str, n: int, connections: int) -> float:
    per = n // connections
    body = chunked_body(per)
    out: list = []
    threads = [threading.Thread(target=stream, args=(url, body, out)) for _ in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    ok = 0
    for raw in out:
        for line in dechunk(raw).splitlines():
            if line.strip():
                report = json.loads(line)
                assert report["error_code"] == 200, report
                ok += 1
    assert ok == per * connections, (ok, per * connections)
    return ok / elapsed


def latency(url: str, rate: int, seconds: float, senders: int = 8) -> tuple[float, float, float, int]:
    """Single-record requests at `rate` per second for `seconds`, `senders` keep-alive
    connections taking turns. Returns p50 and p99 of send-to-answer, p99 measured from when
    each request was due (a late send counts against the proxy too), in ms, and the count."""
    u = urlsplit(url)
    body = json.dumps({"value": {"type": "JSON", "data": {"p": "x"}}}).encode()
    request = (f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    service: list[float] = []
    from_due: list[float] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.2

    def sender(i: int):
        s = socket.create_connection((u.hostname, u.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        k = 0
        while True:
            due = start + (k * senders + i) / rate
            if due > start + seconds:
                break
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            t0 = time.monotonic()
            s.sendall(request)
            status = f.readline()
            length = 0
            while True:
                h = f.readline()
                if h in (b"\r\n", b""):
                    break
                if h.lower().startswith(b"content-length:"):
                    length = int(h.split(b":")[1])
            answer = f.read(length)
            t1 = time.monotonic()
            assert status.startswith(b"HTTP/1.1 200"), (status, answer)
            with lock:
                service.append(t1 - t0)
                from_due.append(t1 - due)
            k += 1
        s.close()

    ts = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    service.sort()
    from_due.sort()

    def pct(xs, q):
        return xs[min(len(xs) - 1, int(len(xs) * q))] * 1000

    return pct(service, 0.5), pct(service, 0.99), pct(from_due, 0.99), len(service)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", help="also write the results as markdown here")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lantern-rest-bench-"))
    b = Broker(work / "broker").start()
    try:
        r = requests.get(f"{b.rest_base}/v3/clusters", timeout=10).json()
        c = r["data"][0]["cluster_id"]
        for t in ("native", "rest1", "rest16", "latency"):
            create_topic(b.bootstrap, t, 4)
        load = os.getloadavg()
        nat = native(b.bootstrap, "native", a.records)
        one = rest(f"{b.rest_base}/v3/clusters/{c}/topics/rest1/records", a.records, 1)
        many = rest(f"{b.rest_base}/v3/clusters/{c}/topics/rest16/records", a.records, 16)
        p50, p99, p99_due, n = latency(f"{b.rest_base}/v3/clusters/{c}/topics/latency/records", a.rate, a.seconds)
    finally:
        b.stop()
    print(f"records: {a.records} of 1 KiB JSON, topic of 4 partitions, acks=all")
    print(f"native Kafka produce (confluent-kafka):     {nat:9.0f} records/s")
    print(f"v3 streaming, 1 connection:                 {one:9.0f} records/s ({one / nat:.0%} of native)")
    print(f"v3 streaming, 16 connections:               {many:9.0f} records/s ({many / nat:.0%} of native)")
    print(f"single-record v3 produce at {a.rate} req/s for {a.seconds:.0f} s: p50 {p50:.2f} ms, "
          f"p99 {p99:.2f} ms (from when due: {p99_due:.2f} ms; {n} requests)")
    if a.out:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            commit = "?"
        args = " ".join(sys.argv[1:])
        Path(a.out).write_text(f"""### REST proxy produce (issue 18; bench/rest_proxy.py, `BENCH_ONLY=rest-proxy bench/run`)

`.venv-tests/bin/python bench/rest_proxy.py {args}` on {when}, commit {commit}: one
lantern-broker on this machine ({os.cpu_count()} cores, shared with the clients; load average
{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start), started by the tests' harness; a topic of
4 partitions per case; {a.records:,} records of 1 KiB JSON values per case; acks=all. The HTTP
client is a plain socket per connection sending a chunked body prepared in memory (64 KiB
chunks) while another thread reads the reports, so the client is not the limit.

| case | records/s | of native |
|---|---|---|
| native Kafka produce, confluent-kafka (linger.ms=5) | {nat:,.0f} | 100% |
| v3 streaming produce, 1 HTTP connection | {one:,.0f} | {one / nat:.0%} |
| v3 streaming produce, 16 HTTP connections | {many:,.0f} | {many / nat:.0%} |

Single-record v3 produce (`Content-Length` body, one record per request, 8 keep-alive
connections taking turns) at {a.rate:,} requests/s for {a.seconds:.0f} s: p50 {p50:.2f} ms, p99
{p99:.2f} ms from send to answer ({n:,} requests); p99 counted from when each request was due
(a late send counted against the proxy): {p99_due:.2f} ms.
""")


if __name__ == "__main__":
    main()
