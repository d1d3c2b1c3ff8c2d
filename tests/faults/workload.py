"""The fault suite's clients: what they send and see goes into the history (HISTORY.md).

- `Producer`: an idempotent acks=all producer (or whatever `config` says) appending unique
  values `p<n>-<seq>` round-robin to the topic's partitions at a steady rate, keyed
  `k<partition>-<n>` so a key's values form one list per producer (list-append style: each
  acknowledgement's offset is recorded). Every send is an invoke, then ok (with the offset
  the broker acknowledged), or info (outcome unknown: timed out or the client gave up).
- `Reader`: a consumer polling continuously, `assign` mode (every partition from offset 0)
  or `subscribe` mode (a group member committing what it has read every second); records
  every record it returns, and its commits and the committed offsets it starts from.
- `final_read`: after the faults, a fresh consumer reads every partition from the start to
  its end offset.

All clients are confluent-kafka (librdkafka), run as threads of the suite's process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer as KProducer, TopicPartition


# librdkafka's own log lines (connection failures are expected under faults): the suite sends
# them to a file of the run instead of the terminal.
CLIENT_LOG = logging.getLogger("faults.rdkafka")


# What every client of the suite shares: fail over quickly (connections to a cut-off broker
# time out in seconds, not minutes), and log to the run's file.
CLIENT_CONF = {
    "socket.connection.setup.timeout.ms": 3000,
    "reconnect.backoff.max.ms": 1000,
    "topic.metadata.refresh.interval.ms": 5000,
    "logger": CLIENT_LOG,
}


class History:
    """Thread-safe append-only event log, written through to a JSON-lines file."""

    def __init__(self, path: Path, start: float):
        self.path = Path(path)
        self.start = start
        self._fh = open(self.path, "w", buffering=1 << 20)
        self._lock = threading.Lock()
        self.events: list[dict] = []

    def now(self) -> float:
        return round(time.monotonic() - self.start, 6)

    def add(self, event: dict) -> None:
        event.setdefault("t", self.now())
        line = json.dumps(event, separators=(",", ":"))
        with self._lock:
            self.events.append(event)
            self._fh.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class Producer(threading.Thread):
    def __init__(self, n: int, bootstrap: str, topic: str, partitions: int, history: History, *,
                 rate: float, config: dict | None = None, key_space: int | None = None, process: str | None = None):
        super().__init__(name=process or f"p{n}", daemon=True)
        self.process = process or f"p{n}"
        # None: one key per producer and partition (a list per key); else keys key-0 ..
        # key-<key_space - 1> in turn (a table, for compacted topics).
        self.key_space = key_space
        self.n = n
        self.topic = topic
        self.partitions = partitions
        self.history = history
        self.rate = rate
        self.stop = threading.Event()
        conf = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 30000,
            "request.timeout.ms": 10000,
            **CLIENT_CONF,
        }
        conf.update(config or {})
        self.producer = KProducer(conf)
        self.sent = 0
        self.acked = 0

    def _on_delivery(self, invoked: float, partition: int, key: str, value: str):
        def done(err, msg):
            now = self.history.now()
            ev = {"f": "send", "process": self.process, "t": now, "topic": self.topic, "partition": partition, "key": key,
                  "value": value, "latency": round(now - invoked, 6)}
            if err is None:
                ev.update(type="ok", offset=msg.offset())
                self.acked += 1
            else:
                # Whether it reached the log is unknown (timed out, or the producer gave up
                # after sending): the checker treats it as indeterminate.
                ev.update(type="info", error=str(err.name()))
            self.history.add(ev)
        return done

    def run(self) -> None:
        seq = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            partition = seq % self.partitions
            key = f"k{partition}-{self.n}" if self.key_space is None else f"key-{seq % self.key_space}"
            value = f"{self.process}-{seq:07d}"
            invoked = self.history.now()
            self.history.add({"f": "send", "type": "invoke", "process": self.process, "t": invoked, "topic": self.topic,
                              "partition": partition, "key": key, "value": value})
            while True:
                try:
                    self.producer.produce(self.topic, value.encode(), key.encode(), partition=partition,
                                          on_delivery=self._on_delivery(invoked, partition, key, value))
                    break
                except BufferError:
                    self.producer.poll(0.1)
            seq += 1
            self.sent += 1
            self.producer.poll(0)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.producer.poll(delay)
            else:
                next_at = time.monotonic()

    def drain(self, timeout: float) -> int:
        """Waits for every outstanding delivery report; returns how many are still pending."""
        return self.producer.flush(timeout)


class Reader(threading.Thread):
    def __init__(self, n: int, bootstrap: str, topic: str, partitions: int, history: History, *, mode: str,
                 group: str = "fault-group"):
        super().__init__(name=f"c{n}", daemon=True)
        assert mode in ("assign", "subscribe")
        self.bootstrap = bootstrap
        self.process = f"c{n}" if mode == "assign" else f"g{n}"
        self.topic = topic
        self.partitions = partitions
        self.history = history
        self.mode = mode
        self.group = group
        self.stop = threading.Event()
        self.polled = 0
        self.errors = 0

    def _consumer(self) -> Consumer:
        conf = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group if self.mode == "subscribe" else f"fault-reader-{self.process}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            **CLIENT_CONF,
        }
        return Consumer(conf)

    def run(self) -> None:
        c = self._consumer()
        if self.mode == "assign":
            c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        else:
            def on_assign(consumer, parts):
                try:
                    for tp in consumer.committed(parts, timeout=10):
                        if tp.offset >= 0:
                            self.history.add({"f": "committed", "type": "ok", "process": self.process, "group": self.group,
                                              "partition": tp.partition, "offset": tp.offset})
                except KafkaException:
                    pass
            c.subscribe([self.topic], on_assign=on_assign)
        last_commit = time.monotonic()
        while not self.stop.is_set():
            try:
                msgs = c.consume(500, 0.2)
            except KafkaException:
                self.errors += 1
                continue
            for m in msgs:
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        self.errors += 1
                    continue
                self.polled += 1
                self.history.add({"f": "poll", "type": "ok", "process": self.process, "mode": self.mode, "topic": self.topic,
                                  **({"group": self.group} if self.mode == "subscribe" else {}),
                                  "partition": m.partition(), "offset": m.offset(),
                                  "key": m.key().decode() if m.key() else None, "value": m.value().decode()})
            if self.mode == "subscribe" and time.monotonic() - last_commit >= 1.0:
                last_commit = time.monotonic()
                try:
                    for tp in c.commit(asynchronous=False) or []:
                        if tp.error is None and tp.offset >= 0:
                            self.history.add({"f": "commit", "type": "ok", "process": self.process, "group": self.group,
                                              "partition": tp.partition, "offset": tp.offset})
                except KafkaException:
                    self.errors += 1  # nothing to commit, or the coordinator is away: next time
        try:
            c.close()
        except Exception:
            pass


def final_read(bootstrap: str, topic: str, partitions: int, history: History, *, timeout: float = 120.0,
               log: Callable[[str], None] = print) -> dict[int, int]:
    """Reads every partition from its start to its end offset; returns {partition: end}."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"fault-final-reader-{topic}", "enable.auto.commit": False,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest", "logger": CLIENT_LOG})
    ends: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    for p in range(partitions):
        while True:
            try:
                ends[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                break
            except KafkaException as e:
                if time.monotonic() > deadline:
                    raise AssertionError(f"final read: no end offset for {topic}-{p}: {e}")
                time.sleep(1)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    positions = {p: 0 for p in range(partitions)}
    records = 0
    while any(positions[p] < ends[p] for p in ends):
        if time.monotonic() > deadline:
            raise AssertionError(f"final read incomplete after {timeout}s: at {positions}, ends {ends}")
        for m in c.consume(1000, 1.0):
            if m.error() is not None:
                continue
            positions[m.partition()] = m.offset() + 1
            records += 1
            history.add({"f": "final_read", "type": "ok", "process": "final", "topic": topic, "partition": m.partition(),
                         "offset": m.offset(), "key": m.key().decode() if m.key() else None, "value": m.value().decode()})
    for p, end in ends.items():
        history.add({"f": "final_read", "type": "end", "process": "final", "topic": topic, "partition": p, "offset": end})
    c.close()
    log(f"final read of {topic}: {records} records, end offsets {ends}")
    return ends
