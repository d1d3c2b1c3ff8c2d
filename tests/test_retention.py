"""Claim: size-based retention deletes whole old segments in the background (topic configs
segment.bytes / retention.bytes, broker log.retention.check.interval.ms), the low
watermark moves up, and fetching a deleted offset is OFFSET_OUT_OF_RANGE for clients
(confluent-kafka with auto.offset.reset=error, kafka-python with auto_offset_reset='none')."""

import time

import pytest
from confluent_kafka import KafkaError, TopicPartition

import clients

SEGMENT_BYTES = 16384
RETENTION_BYTES = 65536
MESSAGE_SIZE = 500
N = 2000  # ~1 MB of values


@pytest.fixture
def retained(broker_factory, topic_name):
    broker = broker_factory(props={"log.retention.check.interval.ms": 500})
    clients.create_topic(broker.bootstrap, topic_name, 1,
                         config={"segment.bytes": SEGMENT_BYTES, "retention.bytes": RETENTION_BYTES})
    msgs = [(None, f"ret-{i:06d}-".encode().ljust(MESSAGE_SIZE, b"x")) for i in range(N)]
    clients.produce_confluent(broker.bootstrap, topic_name, msgs, partition_of=lambda _i: 0,
                              **{"batch.size": 4000, "linger.ms": 1, "compression.codec": "none"})
    deadline = time.monotonic() + 10
    low = high = None
    while time.monotonic() < deadline:
        low, high = clients.watermarks(broker.bootstrap, topic_name, 0)
        if low > 0:
            break
        time.sleep(0.25)
    return broker, topic_name, low, high


def test_old_segments_are_deleted(retained):
    broker, topic, low, high = retained
    assert high == N, f"high watermark {high}, expected {N}"
    assert low > 0, f"low watermark still 0 ten seconds after writing ~{N * MESSAGE_SIZE} bytes with retention.bytes={RETENTION_BYTES}"
    time.sleep(1.5)  # let any in-flight deletion finish
    segs = broker.segment_files(topic, 0)
    total = sum(s.stat().st_size for s in segs)
    max_segs = RETENTION_BYTES // SEGMENT_BYTES + 2
    assert len(segs) <= max_segs, (
        f"{len(segs)} segment files remain ({total} bytes); with segment.bytes={SEGMENT_BYTES} and "
        f"retention.bytes={RETENTION_BYTES} at most {max_segs} should: {[s.name for s in segs]}")
    assert total <= RETENTION_BYTES + 2 * SEGMENT_BYTES, f"{total} bytes of segments remain on disk"
    assert total >= RETENTION_BYTES - 2 * SEGMENT_BYTES, f"retention deleted too much: only {total} bytes remain"
    # The oldest remaining segment starts at the low watermark.
    low_now, _ = clients.watermarks(broker.bootstrap, topic, 0)
    assert int(segs[0].name.split(".")[0]) == low_now, (
        f"oldest segment file {segs[0].name} does not start at the low watermark {low_now}")
    # What is left is still readable from the low watermark to the end.
    got = clients.consume_confluent(broker.bootstrap, topic, [0], start={0: low_now})
    assert [o for _, o, *_ in got] == list(range(low_now, N))
    assert all(v.startswith(f"ret-{o:06d}-".encode()) for _, o, _, v, _ in got), "retained records are wrong"


def test_confluent_consumer_gets_offset_out_of_range(retained):
    broker, topic, low, _ = retained
    assert low > 0, "precondition: retention should have deleted offset 0"
    c = clients.consumer(broker.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        seen = []
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is None:
                pytest.fail(f"got a message at offset {m.offset()} from a position retention deleted "
                            f"(low watermark {low})")
            err = m.error()
            seen.append(err)
            if err.code() == KafkaError.OFFSET_OUT_OF_RANGE or (
                    err.code() == KafkaError._AUTO_OFFSET_RESET and "range" in err.str().lower()):
                return
        pytest.fail(f"no OFFSET_OUT_OF_RANGE error within 20s; errors seen: {seen}")
    finally:
        c.close()


def test_kafka_python_raises_offset_out_of_range(retained):
    from kafka import TopicPartition as KTP
    from kafka.errors import OffsetOutOfRangeError
    broker, topic, low, _ = retained
    assert low > 0, "precondition: retention should have deleted offset 0"
    c = clients.kp_consumer(broker.bootstrap, auto_offset_reset="none")
    try:
        tp = KTP(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                recs = c.poll(timeout_ms=500)
            except OffsetOutOfRangeError:
                return
            if recs:
                pytest.fail(f"kafka-python got records from a deleted position: "
                            f"{[r.offset for rs in recs.values() for r in rs][:5]}")
        pytest.fail("kafka-python did not raise OffsetOutOfRangeError within 20s")
    finally:
        c.close()
