"""Claim: with --log.flush.interval.messages=1 an acknowledged (acks=all) message survives
kill -9 of the broker, and recovery leaves each partition as a prefix of what was sent:
in send order, without holes, and with nothing that was never sent.

kill -9 keeps the page cache, so this passes with or without the fsync; the test that fails
on a broker that skips it is tests/test_power_loss.py (a power cut on a FUSE disk)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import clients
from clients import first_diff
from durable_producer import durable_value

PARTITIONS = 3
PRODUCER = Path(__file__).resolve().parent / "durable_producer.py"


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_acked_messages_survive_kill9(broker_factory, topic_name, tmp_path):
    broker = broker_factory(props={"log.flush.interval.messages": 1})
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    acked_file = tmp_path / "acked.txt"
    prod_log = open(tmp_path / "producer.log", "wb")
    prod = subprocess.Popen([sys.executable, str(PRODUCER), broker.bootstrap, topic_name, str(PARTITIONS),
                             str(acked_file)], stdout=prod_log, stderr=prod_log, stdin=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while _count_lines(acked_file) < 1000 and time.monotonic() - t0 < 30:
            assert prod.poll() is None, f"producer died: {(tmp_path / 'producer.log').read_text()[-2000:]}"
            time.sleep(0.05)
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
        before = _count_lines(acked_file)
        time.sleep(0.2)
        during = _count_lines(acked_file)
        assert during > before > 0, (
            f"precondition: the producer should be getting acks when the broker is killed ({before} -> {during})")
        broker.kill9()
        time.sleep(0.5)  # let delivery callbacks for responses already received be written
    finally:
        prod.send_signal(signal.SIGKILL)
        prod.wait()
        prod_log.close()

    acked = [int(x) for x in acked_file.read_text().split()]
    assert len(acked) == len(set(acked)), "test bug: an id was acknowledged twice"
    broker.start()
    got = clients.consume_all_confluent(broker.bootstrap, topic_name, PARTITIONS)
    print(f"{len(acked)} acknowledged, {len(got)} present after kill -9 + restart")

    present = {}
    for part, off, key, value, _ in sorted(got, key=lambda m: (m[0], m[1])):
        i = int(key)
        assert part == i % PARTITIONS, f"message {i} found in partition {part}, was sent to {i % PARTITIONS}"
        assert value == durable_value(i), f"partition {part} offset {off}: value {value!r} was never sent"
        present.setdefault(part, []).append(i)

    for q in range(PARTITIONS):
        ids = present.get(q, [])
        if ids:
            expected = list(range(q, ids[-1] + 1, PARTITIONS))
            assert ids == expected, (
                f"partition {q}: the ids present are not the send-order sequence {q}, {q + PARTITIONS}, ..., "
                f"{ids[-1]} (a hole, a duplicate or a reordering); first difference at {first_diff(ids, expected)}")
    all_present = {i for ids in present.values() for i in ids}
    lost = sorted(set(acked) - all_present)
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged messages lost after kill -9, e.g. {lost[:10]}"
