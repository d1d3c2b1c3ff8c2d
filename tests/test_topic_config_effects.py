"""Claims: the topic configs that act on produced batches do what Kafka's LogValidator does,
checked with real clients and on the batches stored in the segment files:
message.timestamp.type=LogAppendTime (the broker's clock in the stored batch, its timestamp
type bit, a valid CRC, log_append_time_ms in the produce response as librdkafka reports it),
message.timestamp.before/after.max.ms and the deprecated difference.max.ms (INVALID_TIMESTAMP),
and compression.type (batches recompressed to the topic's codec on append, read back by
librdkafka and kafka-python; `producer` keeps the producer's codec), also as broker-level
defaults."""

import struct
import time

import pytest
from confluent_kafka import KafkaError, Producer, TopicPartition, TIMESTAMP_LOG_APPEND_TIME, TIMESTAMP_CREATE_TIME

import clients
from lantern import batch_crc_ok, read_batches

CODEC_BITS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
TOPIC_CODEC = {"uncompressed": "none", "gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}


def stored_batches(broker, topic: str) -> list[tuple[int, int, bool]]:
    """(attributes, maxTimestamp, CRC intact) of every batch in the partition's segments."""
    out = []
    for path in broker.segment_files(topic, 0):
        data = path.read_bytes()
        for b in read_batches(path):
            (attributes,) = struct.unpack_from(">h", data, b.pos + 21)
            (max_ts,) = struct.unpack_from(">q", data, b.pos + 35)
            out.append((attributes, max_ts, batch_crc_ok(path, b)))
    return out


def produce(bootstrap: str, topic: str, messages, *, timestamp=None, **conf) -> list:
    """Produces and returns (error, timestamp type, timestamp) of each delivery report."""
    # One batch per call: flush() sends at once, so a long linger only keeps a slow loop (a
    # loaded machine) from splitting the records into several batches.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5000,
                  **{k.replace("_", "."): v for k, v in conf.items()}})
    reports = [None] * len(messages)

    def cb_for(i):
        def cb(err, msg):
            reports[i] = (err, *msg.timestamp())
        return cb

    for i, (k, v) in enumerate(messages):
        kw = {} if timestamp is None else {"timestamp": timestamp}
        p.produce(topic, key=k, value=v, on_delivery=cb_for(i), **kw)
    assert p.flush(30) == 0
    return reports


def test_log_append_time_is_stamped_on_the_stored_batches_and_reported(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, 1, config={"message.timestamp.type": "LogAppendTime"})
    # Values that compress well: librdkafka sends a batch uncompressed when lz4 would grow it.
    messages = [(b"k%d" % i, (b"v%d " % i) * 20) for i in range(200)]
    before = int(time.time() * 1000)
    reports = produce(broker.bootstrap, topic_name, messages, timestamp=1000, compression_type="lz4")
    after = int(time.time() * 1000)
    assert all(err is None for err, _, _ in reports), reports[:3]
    # librdkafka reports the log_append_time_ms of the produce response.
    assert {t for _, t, _ in reports} == {TIMESTAMP_LOG_APPEND_TIME}
    assert all(before <= ts <= after for _, _, ts in reports), (before, reports[:3], after)
    batches = stored_batches(broker, topic_name)
    assert batches
    for attributes, max_ts, crc_ok in batches:
        assert attributes & 0x08, "the timestamp type bit is LogAppendTime"
        assert attributes & 0x07 == CODEC_BITS["lz4"], "the producer's codec is kept"
        assert before <= max_ts <= after and crc_ok
    c = clients.consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic_name, 0, 0)])
        got = []
        while len(got) < len(messages):
            got += [m for m in c.consume(500, timeout=5) if not m.error()]
    finally:
        c.close()
    assert [(m.key(), m.value()) for m in got] == messages
    assert {m.timestamp()[0] for m in got} == {TIMESTAMP_LOG_APPEND_TIME}
    assert all(before <= m.timestamp()[1] <= after for m in got), "not the producer's 1000"


def test_create_time_keeps_the_producers_timestamps(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, 1)
    reports = produce(broker.bootstrap, topic_name, [(b"k", b"v")], timestamp=1000)
    assert reports == [(None, TIMESTAMP_CREATE_TIME, 1000)]
    assert [(a & 0x08, ts) for a, ts, _ in stored_batches(broker, topic_name)] == [(0, 1000)]


@pytest.mark.parametrize("config,offset_ms,refused", [
    ({"message.timestamp.before.max.ms": "3600000"}, -7_200_000, True),
    ({"message.timestamp.before.max.ms": "3600000"}, -60_000, False),
    ({"message.timestamp.before.max.ms": "3600000"}, +7_200_000, False),
    ({"message.timestamp.after.max.ms": "60000"}, +600_000, True),
    ({"message.timestamp.after.max.ms": "60000"}, -86_400_000 * 365, False),
    ({"message.timestamp.difference.max.ms": "60000"}, -600_000, True),
    ({"message.timestamp.difference.max.ms": "60000"}, +600_000, True),
    ({"message.timestamp.difference.max.ms": "60000", "message.timestamp.before.max.ms": "86400000"}, -600_000, False),
    ({"message.timestamp.before.max.ms": "0", "message.timestamp.type": "LogAppendTime"}, -600_000, False),
])
def test_timestamps_outside_the_topics_bounds_are_refused(broker, topic_name, config, offset_ms, refused):
    clients.create_topic(broker.bootstrap, topic_name, 1, config=config)
    ts = int(time.time() * 1000) + offset_ms
    for codec in ["none", "zstd"]:
        reports = produce(broker.bootstrap, topic_name, [(b"k", b"v")] * 3, timestamp=ts, compression_type=codec,
                          retries=0)
        errors = {r[0].code() if r[0] else None for r in reports}
        # The response carries INVALID_TIMESTAMP and, as Kafka's does (KIP-467), each refused
        # record in record_errors; librdkafka fails each record so listed as INVALID_RECORD.
        assert errors == ({KafkaError.INVALID_RECORD} if refused else {None}), (codec, reports)
    # kafka-python reads the partition's error code itself.
    from kafka import KafkaProducer
    from kafka.errors import InvalidTimestampError
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    try:
        future = p.send(topic_name, key=b"k", value=b"v", timestamp_ms=ts)
        p.flush(30)
        if refused:
            assert isinstance(future.exception, InvalidTimestampError), future.exception
        else:
            assert future.succeeded(), future.exception
    finally:
        p.close(timeout=10)
    expected_end = 0 if refused else 7
    assert clients.watermarks(broker.bootstrap, topic_name, 0)[1] == expected_end


@pytest.mark.parametrize("topic_codec", ["uncompressed", "gzip", "snappy", "lz4", "zstd"])
def test_batches_are_recompressed_to_the_topics_codec(broker, topic_name, topic_codec):
    clients.create_topic(broker.bootstrap, topic_name, 1, config={"compression.type": topic_codec})
    messages = [(b"key-%d" % i, (b"value %d " % i) * 20) for i in range(300)]
    sent_codecs = ["none", "gzip", "snappy", "lz4", "zstd"]
    for codec in sent_codecs:
        reports = produce(broker.bootstrap, topic_name, messages, compression_type=codec)
        assert all(r[0] is None for r in reports), (codec, reports[:2])
    batches = stored_batches(broker, topic_name)
    assert {a & 0x07 for a, _, _ in batches} == {CODEC_BITS[TOPIC_CODEC[topic_codec]]}
    assert all(ok for _, _, ok in batches)
    expected = messages * len(sent_codecs)
    got = clients.consume_confluent(broker.bootstrap, topic_name, [0])
    assert [(k, v) for _, _, k, v, _ in got] == expected
    got_kp = clients.consume_kafka_python(broker.bootstrap, topic_name, [0])
    assert [(k, v) for _, _, k, v, _ in got_kp] == expected


def test_producer_compression_type_keeps_each_producers_codec(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, 1, config={"compression.type": "producer"})
    for codec in ["gzip", "zstd", "none"]:
        produce(broker.bootstrap, topic_name, [(b"k", b"v" * 100)] * 10, compression_type=codec)
    codecs = [a & 0x07 for a, _, _ in stored_batches(broker, topic_name)]
    assert codecs == [CODEC_BITS["gzip"], CODEC_BITS["zstd"], CODEC_BITS["none"]]


def test_broker_level_defaults_apply_to_topics_without_overrides(broker_factory, topic_name):
    b = broker_factory(props={"log.message.timestamp.type": "LogAppendTime", "compression.type": "gzip",
                              "log.message.timestamp.after.max.ms": "60000"})
    clients.create_topic(b.bootstrap, topic_name, 1)
    reports = produce(b.bootstrap, topic_name, [(b"k", b"v" * 100)] * 5, timestamp=int(time.time() * 1000) + 600_000,
                      compression_type="zstd")
    # after.max.ms does not apply to LogAppendTime topics.
    assert {r[0] for r in reports} == {None} and {r[1] for r in reports} == {TIMESTAMP_LOG_APPEND_TIME}
    batches = stored_batches(b, topic_name)
    assert [(a & 0x07, bool(a & 0x08), ok) for a, _, ok in batches] == [(CODEC_BITS["gzip"], True, True)]
    other = topic_name + "-ct"
    clients.create_topic(b.bootstrap, other, 1, config={"message.timestamp.type": "CreateTime"})
    reports = produce(b.bootstrap, other, [(b"k", b"v")], timestamp=int(time.time() * 1000) + 600_000, retries=0)
    # librdkafka reports a one-record batch's error as the partition's (INVALID_TIMESTAMP).
    assert reports[0][0] is not None and reports[0][0].code() == KafkaError.INVALID_TIMESTAMP


def test_a_full_segment_index_rolls_the_segment(broker, topic_name):
    # 24 bytes: 3 offset index entries (8 bytes each) or 2 time index entries (12 bytes each).
    clients.create_topic(broker.bootstrap, topic_name, 1,
                         config={"segment.index.bytes": "24", "index.interval.bytes": "0"})
    for i in range(12):
        produce(broker.bootstrap, topic_name, [(b"k", b"v%d" % i)], timestamp=int(time.time() * 1000) + i)
    segments = broker.segment_files(topic_name, 0)
    assert len(segments) > 1, "the segment rolled when its index was full"
    for log in segments[:-1]:
        index = log.with_suffix(".index")
        assert index.stat().st_size <= 24, (index, index.stat().st_size)
    got = clients.consume_confluent(broker.bootstrap, topic_name, [0])
    assert [v for _, _, _, v, _ in got] == [b"v%d" % i for i in range(12)]
