"""Produce v0-2 and Fetch v0-3 (issue 16, "Old request versions"): the message formats before
record batch v2, which Kafka 3.9 still accepts. Magic 0 is what Kafka 0.8-0.9 clients write and
read, magic 1 (KIP-32 timestamps) Kafka 0.10's. Lantern stores only v2 batches: it up-converts
what old producers send and down-converts what old consumers fetch, as Kafka's LogValidator and
RecordsUtil.downConvert do.

Real clients pinned to old brokers: kafka-python with `api_version` (it writes and reads magic
0/1 with its own codecs, LZ4's pre-0.10 framing included) and kcat with ApiVersions disabled and
an old `broker.version.fallback` (librdkafka's legacy message path). Each test fails on a broker
without the conversion: the versions were refused (UNSUPPORTED_VERSION) before."""

from __future__ import annotations

import time

import pytest

import clients
from test_metrics import scrape

# kafka-python's api_version -> (magic, Produce version, Fetch version) it uses.
OLD_CLIENTS = {
    (0, 9): (0, 1, 1),
    (0, 10, 0): (1, 2, 2),
    (0, 10, 1): (1, 2, 3),
}
CODECS = ["none", "gzip", "snappy", "lz4"]
PER_CODEC = 150
TS0 = 1_700_000_000_000


def requests_of(broker, api: str, version: int) -> float:
    return scrape(broker).value("kafka_network_requestmetrics_requests_total", 0, request=api, version=version)


def conversions(broker, direction: str, topic: str) -> float:
    return scrape(broker).value(f"kafka_server_brokertopicmetrics_{direction}messageconversions_total", 0, topic=topic)


def kp_old_consume(bootstrap: str, topic: str, n: int, api_version: tuple, timeout: float = 60.0) -> list:
    """Reads n records of partition 0 from offset 0 with kafka-python pinned to api_version
    (which cannot ask ListOffsets v1+ for end offsets below 0.10.1: read until n arrive)."""
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, api_version=api_version, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", fetch_max_wait_ms=100)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            assert time.monotonic() < deadline, f"kafka-python {api_version} read {len(out)} of {n} records of {topic}"
            for recs in c.poll(timeout_ms=500).values():
                out.extend((r.offset, r.key, r.value, r.timestamp) for r in recs)
        return out
    finally:
        c.close()


def sent_records(codec: str, first: int) -> list[tuple[bytes, bytes, int]]:
    return [(f"key-{codec}-{i}".encode(), f"value {codec} {i} ".encode() * 3, TS0 + first + i) for i in range(PER_CODEC)]


@pytest.mark.parametrize("api_version", list(OLD_CLIENTS), ids=lambda v: "kafka-python-api-" + ".".join(map(str, v)))
def test_old_clients_produce_and_consume_every_codec_and_modern_clients_read_the_same(broker, topic_name, api_version):
    from kafka import KafkaProducer
    magic, produce_v, fetch_v = OLD_CLIENTS[api_version]
    b = broker
    clients.create_topic(b.bootstrap, topic_name, 1)
    produced_before, fetched_before = requests_of(b, "Produce", produce_v), requests_of(b, "Fetch", fetch_v)

    sent = []
    for codec in CODECS:
        records = sent_records(codec, len(sent))
        p = KafkaProducer(bootstrap_servers=b.bootstrap, api_version=api_version, acks="all", linger_ms=20,
                          compression_type=None if codec == "none" else codec)
        try:
            futures = [p.send(topic_name, key=k, value=v, partition=0, timestamp_ms=ts) for k, v, ts in records]
            p.flush(timeout=30)
            offsets = [f.get(timeout=30).offset for f in futures]
        finally:
            p.close(timeout=10)
        assert offsets == list(range(len(sent), len(sent) + PER_CODEC)), f"{codec}: acknowledged offsets {offsets[:5]}..."
        sent.extend(records)
    assert requests_of(b, "Produce", produce_v) > produced_before, f"kafka-python {api_version} did not send Produce v{produce_v}"
    # Kafka's conversion meters count records: every one sent was up-converted.
    assert conversions(b, "produce", topic_name) == len(sent)

    # The old client reads back what it wrote: every record at its offset. Magic 0 has no
    # timestamps (kafka-python reports -1 or None), magic 1 keeps the producer's.
    got = kp_old_consume(b.bootstrap, topic_name, len(sent), api_version)
    assert [g[0] for g in got] == list(range(len(sent))), "offsets"
    assert [(g[1], g[2]) for g in got] == [(k, v) for k, v, _ in sent], clients.first_diff([(g[1], g[2]) for g in got], [(k, v) for k, v, _ in sent])
    want_ts = [ts if magic == 1 else None for _, _, ts in sent]
    assert [g[3] if (g[3] is not None and g[3] >= 0) else None for g in got] == want_ts
    assert requests_of(b, "Fetch", fetch_v) > fetched_before, f"kafka-python {api_version} did not fetch with v{fetch_v}"

    assert conversions(b, "fetch", topic_name) >= len(sent)
    # A modern consumer reads the same records from the stored v2 batches.
    modern = clients.consume_confluent(b.bootstrap, topic_name, [0])
    assert [(m[1], m[2], m[3]) for m in modern] == [(i, k, v) for i, (k, v, _) in enumerate(sent)]

    # And the old consumer reads what a modern producer wrote (headers dropped, lz4 batches
    # down-converted into one wrapper each).
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.bootstrap, "compression.type": "lz4", "linger.ms": 20, "acks": "all"})
    for i in range(100):
        p.produce(topic_name, key=f"modern-{i}".encode(), value=f"m{i}".encode(), partition=0, headers=[("h", b"x")], timestamp=TS0 + 10_000 + i)
    assert p.flush(30) == 0
    got = kp_old_consume(b.bootstrap, topic_name, len(sent) + 100, api_version)
    tail = got[len(sent):]
    assert [(g[0], g[1], g[2]) for g in tail] == [(len(sent) + i, f"modern-{i}".encode(), f"m{i}".encode()) for i in range(100)]
    if magic == 1:
        assert [g[3] for g in tail] == [TS0 + 10_000 + i for i in range(100)]


def test_an_old_consumer_starting_inside_a_compressed_batch_skips_the_records_before_it(broker, topic_name):
    """A magic 1 wrapper holds the whole stored batch; the consumer skips the records before
    its fetch offset (the relative inner offsets must come out absolute for that)."""
    from kafka import KafkaConsumer, TopicPartition
    b = broker
    clients.create_topic(b.bootstrap, topic_name, 1)
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.bootstrap, "compression.type": "gzip", "linger.ms": 50, "batch.num.messages": 1000})
    for i in range(50):
        p.produce(topic_name, value=f"v{i}".encode(), partition=0)
    assert p.flush(30) == 0
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, api_version=(0, 10, 1), group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic_name, 0)
        c.assign([tp])
        c.seek(tp, 37)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 13:
            assert time.monotonic() < deadline, got
            for recs in c.poll(timeout_ms=500).values():
                got.extend((r.offset, r.value) for r in recs)
        assert got == [(i, f"v{i}".encode()) for i in range(37, 50)]
    finally:
        c.close()


def test_log_append_time_reaches_a_magic_1_consumer(broker, topic_name):
    b = broker
    clients.create_topic(b.bootstrap, topic_name, 1, config={"message.timestamp.type": "LogAppendTime"})
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=b.bootstrap, api_version=(0, 10, 1), compression_type="gzip", linger_ms=20)
    before = int(time.time() * 1000)
    futures = [p.send(topic_name, value=b"x", partition=0, timestamp_ms=123) for _ in range(20)]
    p.flush(timeout=30)
    p.close(timeout=10)
    assert [f.get(timeout=10).offset for f in futures] == list(range(20))
    after = int(time.time() * 1000)
    got = kp_old_consume(b.bootstrap, topic_name, 20, (0, 10, 1))
    assert all(before - 1000 <= g[3] <= after + 1000 for g in got), [g[3] for g in got]


@pytest.mark.parametrize("fallback,version", [("0.8.2.2", 0), ("0.9.0.1", 1)])
def test_kcat_on_the_legacy_message_path(broker, topic_name, fallback, version):
    """librdkafka with ApiVersions off and a pre-0.10 broker.version.fallback writes and reads
    magic 0 with Produce and Fetch v0 (0.8) or v1 (0.9). (From a 0.10 fallback on, librdkafka
    asks ApiVersions anyway and uses record batches.)"""
    b = broker
    clients.create_topic(b.bootstrap, topic_name, 1)
    legacy = ["-X", "api.version.request=false", "-X", f"broker.version.fallback={fallback}"]
    sent = [(f"k{i}".encode(), f"value-{i}".encode()) for i in range(300)]
    before = (requests_of(b, "Produce", version), requests_of(b, "Fetch", version))
    for c, codec in enumerate(("gzip", "snappy", "none")):
        clients.kcat_produce("debian", b.bootstrap, topic_name, sent[c * 100:(c + 1) * 100], codec, partition=0, extra=legacy)
    assert requests_of(b, "Produce", version) > before[0], f"kcat did not send Produce v{version}"
    got = clients.kcat_consume("debian", b.bootstrap, topic_name, partition=0, extra=legacy)
    assert [(o, k, v) for _, o, k, v in got] == [(i, k, v) for i, (k, v) in enumerate(sent)]
    assert requests_of(b, "Fetch", version) > before[1], f"kcat did not fetch with v{version}"
    modern = clients.consume_confluent(b.bootstrap, topic_name, [0])
    assert [(m[1], m[2], m[3]) for m in modern] == [(i, k, v) for i, (k, v) in enumerate(sent)]
