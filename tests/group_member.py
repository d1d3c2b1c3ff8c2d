"""A confluent-kafka consumer-group member for tests/test_groups.py.

It subscribes, consumes, commits the offsets of what it consumed (asynchronously after each
batch, synchronously when partitions are revoked) and reports what happens as events:
  {"ev": "assign", "parts": [..]}      on_assign (eager protocol: the whole new assignment)
  {"ev": "revoke", "parts": [..]}      on_revoke, after the synchronous commit
  {"ev": "lost", "parts": [..]}        on_lost
  {"ev": "msgs", "recs": [[partition, offset, key, value], ..]}
  {"ev": "error", "error": ".."}       a consumer or commit error
  {"ev": "closed"}                     after Consumer.close()
each with "t" = time.monotonic() (CLOCK_MONOTONIC, comparable across processes).

Two ways to run it:
  * in-process: run_member(conf, topics, emit, should_stop) in a thread;
  * as a script (so a test can kill -9 it): python group_member.py '<conf json>' topic...
    events are JSON lines on stdout; SIGTERM makes it close() cleanly (LeaveGroup).
"""

from __future__ import annotations

import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

TRANSIENT = {KafkaError._PARTITION_EOF, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}


def _s(b):
    return None if b is None else b.decode("utf-8", "replace")


def run_member(conf: dict, topics: list[str], emit, should_stop) -> None:
    def on_commit(err, parts):
        bad = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in parts or [] if tp.error]
        if err is not None or bad:
            ev("error", error=f"commit failed: {err} {bad}")

    c = Consumer(dict(conf, on_commit=on_commit))
    positions: dict[tuple[str, int], int] = {}  # next offset to commit, per consumed partition

    def ev(kind, **kw):
        kw.update(ev=kind, t=time.monotonic())
        emit(kw)

    def commit_sync(keys):
        offs = [TopicPartition(t, p, positions[(t, p)]) for t, p in keys if (t, p) in positions]
        if not offs:
            return
        try:
            res = c.commit(offsets=offs, asynchronous=False)
            bad = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in res or [] if tp.error]
            if bad:
                ev("error", error=f"synchronous commit failed: {bad}")
        except KafkaException as e:
            ev("error", error=f"synchronous commit failed: {e}")

    def on_assign(_c, parts):
        ev("assign", parts=sorted(tp.partition for tp in parts))

    def on_revoke(_c, parts):
        keys = [(tp.topic, tp.partition) for tp in parts]
        commit_sync(keys)
        for k in keys:
            positions.pop(k, None)
        ev("revoke", parts=sorted(tp.partition for tp in parts))

    def on_lost(_c, parts):
        for tp in parts:
            positions.pop((tp.topic, tp.partition), None)
        ev("lost", parts=sorted(tp.partition for tp in parts))

    c.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    try:
        while not should_stop():
            msgs = c.consume(num_messages=1000, timeout=0.1)
            recs, touched = [], set()
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() not in TRANSIENT:
                        ev("error", error=str(err))
                    continue
                recs.append([m.partition(), m.offset(), _s(m.key()), _s(m.value())])
                positions[(m.topic(), m.partition())] = m.offset() + 1
                touched.add((m.topic(), m.partition()))
            if recs:
                ev("msgs", recs=recs)
                try:
                    c.commit(offsets=[TopicPartition(t, p, positions[(t, p)]) for t, p in touched],
                             asynchronous=True)
                except KafkaException as e:
                    ev("error", error=f"async commit failed: {e}")
    finally:
        c.close()
        ev("closed")


def main() -> None:
    conf = json.loads(sys.argv[1])
    topics = sys.argv[2:]
    stop = {"flag": False}

    def on_term(_sig, _frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_term)

    def emit(e):
        sys.stdout.write(json.dumps(e) + "\n")
        sys.stdout.flush()

    run_member(conf, topics, emit, lambda: stop["flag"])


if __name__ == "__main__":
    main()
