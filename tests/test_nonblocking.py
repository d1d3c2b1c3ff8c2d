"""Claim: compacting a busy partition does not stall the broker's other connections.

The broker runs requests on a few async worker threads (one per core). A request that waits
for a partition's lock holds its worker; the cleaner used to hold the lock for a whole clean,
so a handful of fetches and produces on the partition being compacted held every worker, and
every connection stalled, group heartbeats included. This test keeps more requests on such a
partition than there are workers and measures Metadata requests on another connection while
the cleaner compacts a couple of hundred MB of it.

(The same for 50 MB fetches, whose preads used to run on a worker under the lock, is
`cluster::partition::tests::an_append_does_not_wait_for_a_large_read_of_the_same_partition`:
end to end on a shared 2-core machine the difference was within the noise; figures for both
are in docs/benchmarks.md, from bench/group_latency.py.)
"""

import re
import struct
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

import clients
from test_bad_input import connect, frame, header_v1, read_response

METADATA = 3
# More requests parked on the busy partition than the broker has workers (one per core,
# up to 16 cores: raise this on bigger machines).
PARKED = 16


class Probe(threading.Thread):
    """Metadata v1 (all topics) every 10 ms on its own connection; (start, seconds) each."""

    def __init__(self, broker):
        super().__init__(daemon=True)
        self.sock = connect(broker)
        self.sock.settimeout(60)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self):
        corr = 0
        while not self.stop.is_set():
            corr += 1
            started = time.monotonic()
            self.sock.sendall(frame(header_v1(METADATA, 1, corr) + struct.pack(">i", -1)))
            body = read_response(self.sock)
            assert struct.unpack(">i", body[:4])[0] == corr
            self.samples.append((started, time.monotonic() - started))
            time.sleep(0.01)

    def worst(self, start: float, end: float) -> tuple[float, int]:
        inside = [d for s, d in self.samples if start <= s <= end]
        return (max(inside) if inside else float("inf")), len(inside)


def keep_busy(stop: threading.Event, fn) -> threading.Thread:
    def loop():
        while not stop.is_set():
            fn()
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def produce_keyed(bootstrap, topic, records, keys, value_bytes):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                  "queue.buffering.max.messages": 1_000_000})
    value = b"v" * value_bytes
    for i in range(records):
        while True:
            try:
                p.produce(topic, key=b"key-%d" % (i % keys), value=value, partition=0)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0


def test_requests_are_answered_while_the_cleaner_compacts_a_busy_partition(broker_factory, topic_name):
    b = broker_factory(props={"log.cleaner.backoff.ms": 200})
    clients.create_topic(b.bootstrap, topic_name, 1, {
        "cleanup.policy": "compact", "segment.bytes": str(32 << 20),
        "min.compaction.lag.ms": "3600000",  # nothing is cleaned until the data is in
    })
    produce_keyed(b.bootstrap, topic_name, 1_500_000, 50_000, 100)  # ~200 MB on disk

    stop = threading.Event()
    trickle = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    busy = [keep_busy(stop, lambda: (trickle.produce(topic_name, key=b"key-1", value=b"new", partition=0),
                                     trickle.poll(0), time.sleep(0.005)))]
    consumers = []
    for n in range(PARKED):
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"tail-{n}", "fetch.wait.max.ms": 50})
        c.assign([TopicPartition(topic_name, 0, -1)])
        consumers.append(c)
        busy.append(keep_busy(stop, lambda c=c: c.poll(0.05)))
    probe = Probe(b)
    probe.start()
    time.sleep(2)

    started = time.monotonic()
    admin = clients.admin(b.bootstrap)
    change = ConfigEntry("min.compaction.lag.ms", "0", incremental_operation=AlterConfigOpType.SET)
    for f in admin.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[change])]).values():
        f.result(30)
    cleaned = None
    while cleaned is None and time.monotonic() < started + 120:
        text = re.sub(r"\x1b\[[0-9;]*m", "", b.log_text())  # the text log colours field names
        m = re.search(rf"cleaned log.*partition={re.escape(topic_name)}-0.*elapsed_ms=(\d+)", text)
        cleaned = int(m.group(1)) if m else None
        time.sleep(0.1)
    ended = time.monotonic()
    probe.stop.set()
    stop.set()
    for t in busy:
        t.join(10)
    probe.join(10)
    for c in consumers:
        c.close()
    trickle.flush(10)

    assert cleaned is not None, "the cleaner never compacted the topic"
    # Unless the clean takes a while, a stall could not be told from noise.
    assert cleaned >= 800, f"the clean took only {cleaned} ms; write more data so the test can fail"
    worst, n = probe.worst(started, ended)
    assert n > 0 and worst < 0.4, (
        f"a Metadata request took {worst * 1000:.0f} ms during a {cleaned} ms clean ({n} requests answered)")
