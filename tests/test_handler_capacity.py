"""Claim: the broker's capacity gauges measure its real capacity, not a constant or a clamp.

RequestHandlerAvgIdlePercent is the share of the `num.io.threads` request handler slots' time no
request held (a request holds one while handled, its fsyncs included, as a Kafka handler thread
blocks on them); RequestQueueSize counts the requests read from clients and waiting for a slot;
NetworkProcessorAvgIdlePercent is the share of the worker threads' time not spent inside socket
reads and writes and request decoding (docs/metrics.md). Against a real broker process and real
clients (librdkafka producers, each its own connection, with log.flush.interval.messages=1 so
every Produce fsyncs):

- at rest both idle shares are near 1 and nothing is queued;
- a load below capacity (2 producers, 8 slots) leaves most of the handler capacity idle and
  nothing queued, though each request waits on an fsync (an idle ratio over worker threads read
  0 here: two fsync waits outlast two CPUs' worth of wall time);
- a load above capacity (24 producers on 8 slots) takes the handler idle share far down and
  requests queue for a slot, in the gauge and in Produce's RequestQueueTimeMs;
- that many small requests (their reads and decoding) make the network layer measurably busy;
- after the load, both are back near 1 and the queue is empty.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Producer

import clients
from test_metrics import FAST_PROPS, scrape

HANDLER_IDLE = "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent"
NETWORK_IDLE = "kafka_network_socketserver_networkprocessoravgidle_percent"
QUEUE = "kafka_network_requestchannel_requestqueuesize"
SLOTS = 8  # num.io.threads' default, as Kafka's


def window(broker) -> dict[str, float]:
    """The gauges over a fresh window of at least a second (the ratios are computed per window of
    at least 1 s since the previous scrape)."""
    scrape(broker)
    time.sleep(1.1)
    s = scrape(broker)
    return {"handler": s.value(HANDLER_IDLE), "network": s.value(NETWORK_IDLE), "queue": s.value(QUEUE)}


class Producers:
    """n librdkafka producers (n connections), each sending one message at a time and waiting
    for its acknowledgement (acks=1: answered after the append's fsync) before the next, from a
    thread of its own, until stopped: each keeps about one Produce at the broker at all times,
    and the clients cost little CPU (they wait, without the GIL, in flush)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, n: int):
        self.stop = threading.Event()
        self.errors: list = []
        self.acked = [0] * n
        self.threads = [threading.Thread(target=self.run, args=(bootstrap, topic, i % partitions, i), daemon=True)
                        for i in range(n)]

    def run(self, bootstrap: str, topic: str, partition: int, i: int) -> None:
        p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 0, "client.id": f"capacity-{i}"})

        def delivered(err, _msg):
            if err is not None:
                self.errors.append(err)
            else:
                self.acked[i] += 1

        deadline = time.monotonic() + 120  # bounded, whatever happens to the test
        while not self.stop.is_set() and time.monotonic() < deadline:
            p.produce(topic, value=b"v" * 4096, partition=partition, on_delivery=delivered)
            p.flush(10)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)
        assert not self.errors, f"{len(self.errors)} deliveries failed, first: {self.errors[0]}"


def test_handler_and_network_idle_and_request_queue_follow_real_capacity(broker_factory, topic_name):
    b = broker_factory(props={**FAST_PROPS, "log.flush.interval.messages": 1})
    partitions = 24
    clients.create_topic(b.bootstrap, topic_name, partitions)

    time.sleep(1)
    rest = window(b)
    print(f"at rest: {rest}")
    assert rest["handler"] >= 0.9 and rest["network"] >= 0.9, f"an idle broker is not idle: {rest}"
    assert rest["queue"] == 0, rest

    # Below capacity: two connections, each with one Produce at a time waiting on its fsync.
    with Producers(b.bootstrap, topic_name, partitions, 2) as light:
        time.sleep(1)
        below = [window(b) for _ in range(3)]
    print(f"2 producers (below capacity), acked {sum(light.acked)}: {below}")
    assert sum(light.acked) > 200, f"the light load produced only {sum(light.acked)} messages"
    # At most 2 of 8 slots held: idle ≥ 0.75, less a margin for the client's scheduling.
    assert min(w["handler"] for w in below) >= 0.6, f"2 producers on {SLOTS} slots, yet handlers read busy: {below}"
    assert max(w["queue"] for w in below) == 0, f"requests queued below capacity: {below}"

    # Above capacity: 24 connections for 8 slots, every request holding its slot through an fsync.
    queue_time_before = produce_queue_time_count(b)
    with Producers(b.bootstrap, topic_name, partitions, 24) as heavy:
        time.sleep(2)  # 24 clients connecting and fetching metadata
        above = []
        queued = []
        for _ in range(5):
            above.append(window(b))
            queued += [scrape(b).value(QUEUE) for _ in range(5)]
        queue_time = produce_queue_time(b)
    print(f"24 producers (above capacity), acked {sum(heavy.acked)}: {above}, queue samples {queued}, "
          f"Produce RequestQueueTimeMs {queue_time}")
    handler_busy = [w["handler"] for w in above]
    assert min(handler_busy) <= 0.3, f"24 producers on {SLOTS} slots, yet handlers read idle: {above}"
    assert min(w["handler"] for w in below) - max(sorted(handler_busy)[:2]) >= 0.4, \
        f"no clear gap between below ({below}) and above capacity ({above})"
    assert max(queued) >= 1 and sum(1 for q in queued if q > 0) >= len(queued) // 4, \
        f"above capacity, RequestQueueSize samples {queued}"
    assert produce_queue_time_count(b) > queue_time_before and queue_time["0.99"] >= 1.0, \
        f"requests queued for a slot, yet Produce RequestQueueTimeMs is {queue_time}"

    time.sleep(1)
    after = window(b)
    print(f"at rest again: {after}")
    assert after["handler"] >= 0.9 and after["network"] >= 0.9 and after["queue"] == 0, after
    # Many small requests (a read of its size prefix and body, and a decode, for each):
    # network work the worker threads do, measurably, though far from saturating them.
    network = [w["network"] for w in above]
    assert sum(network) / len(network) <= after["network"] - 0.07, \
        f"{sum(heavy.acked)} Produce requests left the network layer as idle as at rest: {network}, at rest {after}"


def produce_queue_time(broker) -> dict[str, float]:
    s = scrape(broker)
    return {lb["quantile"]: v for lb, v in s.series("kafka_network_requestmetrics_requestqueuetimems", request="Produce")
            if "quantile" in lb}


def produce_queue_time_count(broker) -> float:
    return scrape(broker).value("kafka_network_requestmetrics_requestqueuetimems_count", request="Produce")
