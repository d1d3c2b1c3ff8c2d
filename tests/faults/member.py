"""One consumer-group member of the fault suite's group workload, as a process of its own so
that the suite can kill it with SIGKILL (a member that dies) or SIGTERM (one that leaves).

    python member.py <name> <bootstrap> <topic> <group> <history file> <run start>

It subscribes, polls, and every half second commits the positions of what it has read
(synchronously, so an acknowledged commit is known); on each assignment it reads the
group's committed offsets back. Everything goes to its history file in the suite's format
(HISTORY.md), with `t` measured from `<run start>` (CLOCK_MONOTONIC, shared by the
processes of one machine).
"""

from __future__ import annotations

import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException


def main() -> None:
    name, bootstrap, topic, group, path, start = sys.argv[1:7]
    start = float(start)
    out = open(path, "a", buffering=1)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))

    def add(e: dict) -> None:
        e.setdefault("t", round(time.monotonic() - start, 6))
        e.setdefault("process", name)
        out.write(json.dumps(e, separators=(",", ":")) + "\n")

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                  "socket.connection.setup.timeout.ms": 3000, "reconnect.backoff.max.ms": 1000, "log_level": 0})
    positions: dict[int, int] = {}

    def commit() -> None:
        if not positions:
            return
        from confluent_kafka import TopicPartition

        offsets = [TopicPartition(topic, p, o) for p, o in positions.items()]
        try:
            for tp in c.commit(offsets=offsets, asynchronous=False) or []:
                if tp.error is None:
                    add({"f": "commit", "type": "ok", "group": group, "topic": topic, "partition": tp.partition, "offset": tp.offset})
        except KafkaException:
            pass  # rebalancing or the coordinator is away: the next commit carries it

    def on_assign(consumer, parts):
        add({"f": "assign", "type": "ok", "group": group, "partitions": sorted(tp.partition for tp in parts)})
        try:
            for tp in consumer.committed(parts, timeout=10):
                if tp.offset >= 0:
                    add({"f": "committed", "type": "ok", "group": group, "topic": topic, "partition": tp.partition,
                         "offset": tp.offset})
        except KafkaException:
            pass

    def on_revoke(consumer, parts):
        commit()
        for tp in parts:
            positions.pop(tp.partition, None)
        add({"f": "revoke", "type": "ok", "group": group, "partitions": sorted(tp.partition for tp in parts)})

    def on_lost(consumer, parts):
        for tp in parts:
            positions.pop(tp.partition, None)

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    last = time.monotonic()
    while not stop["flag"]:
        try:
            msgs = c.consume(500, 0.2)
        except KafkaException:
            continue
        for m in msgs:
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    pass
                continue
            positions[m.partition()] = m.offset() + 1
            add({"f": "poll", "type": "ok", "mode": "subscribe", "group": group, "topic": topic, "partition": m.partition(),
                 "offset": m.offset(), "key": m.key().decode() if m.key() else None, "value": m.value().decode()})
        if time.monotonic() - last >= 0.5:
            last = time.monotonic()
            commit()
    commit()
    c.close()
    add({"f": "leave", "type": "ok", "group": group})
    out.close()


if __name__ == "__main__":
    main()
