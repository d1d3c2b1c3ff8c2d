"""Claim: a fetch that starts inside a record batch works: the broker returns the whole
batch and the client skips the records before the requested offset, so the first
message delivered is exactly the one asked for (confluent-kafka, kafka-python, kcat)."""

import pytest

import clients
from lantern import read_batches

PRE = 3      # single-message batches before the big batch, so its base offset is not 0
BATCH = 10   # messages in the batch we start inside
SKIP = 5     # start at base + SKIP


@pytest.fixture
def broker(broker_factory):
    # flush every batch so the on-disk precondition check below sees the batch
    return broker_factory(props={"log.flush.interval.messages": 1})


@pytest.fixture
def batch_topic(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, 1)
    for i in range(PRE):
        clients.produce_confluent(broker.bootstrap, topic_name, [(b"pre", f"pre-{i}".encode())],
                                  partition_of=lambda _i: 0)
    msgs = [(b"k", f"batch-{i}".encode()) for i in range(BATCH)]
    reports = clients.produce_confluent(broker.bootstrap, topic_name, msgs, partition_of=lambda _i: 0,
                                        **{"linger.ms": 2000, "batch.num.messages": 1000})
    base = reports[0][1]
    assert [o for _, o in reports] == list(range(base, base + BATCH)), f"unexpected offsets {reports}"
    # Precondition: the ten messages really are one batch on disk (layout: record batches
    # stored as received, in <log.dir>/<topic>-<partition>/<base offset>.log).
    batches = [b for seg in broker.segment_files(topic_name, 0) for b in read_batches(seg)]
    big = [b for b in batches if b.base_offset == base]
    assert big and big[0].record_count == BATCH, (
        f"precondition: expected one {BATCH}-record batch at offset {base} on disk, batches: {batches}")
    return topic_name, base


def test_confluent_kafka_starts_at_requested_offset(broker, batch_topic):
    topic, base = batch_topic
    got = clients.consume_confluent(broker.bootstrap, topic, [0], start={0: base + SKIP})
    assert got, "nothing consumed"
    first = got[0]
    assert first[1] == base + SKIP, f"first message has offset {first[1]}, expected {base + SKIP}"
    assert first[3] == f"batch-{SKIP}".encode(), f"first message is {first[3]!r}"
    assert [m[3] for m in got] == [f"batch-{i}".encode() for i in range(SKIP, BATCH)]


def test_kafka_python_starts_at_requested_offset(broker, batch_topic):
    topic, base = batch_topic
    got = clients.consume_kafka_python(broker.bootstrap, topic, [0], start={0: base + SKIP})
    assert got, "nothing consumed"
    assert got[0][1] == base + SKIP, f"first message has offset {got[0][1]}, expected {base + SKIP}"
    assert [m[3] for m in got] == [f"batch-{i}".encode() for i in range(SKIP, BATCH)]


@pytest.mark.parametrize("variant", ["debian", "bundled"])
def test_kcat_starts_at_requested_offset(broker, batch_topic, variant):
    topic, base = batch_topic
    got = clients.kcat_consume(variant, broker.bootstrap, topic, partition=0, offset=str(base + SKIP))
    assert got, "nothing consumed"
    assert got[0][1] == base + SKIP, f"first message has offset {got[0][1]}, expected {base + SKIP}"
    assert [m[3] for m in got] == [f"batch-{i}".encode() for i in range(SKIP, BATCH)]
