"""Claim: ListOffsets answers earliest (low watermark = 0), latest (= the offset after the
last record, not the base offset of the last batch) and by-timestamp (the first record
whose timestamp >= the target, or -1/None past the end), for confluent-kafka and
kafka-python."""

import time

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import OffsetSpec

import clients

COUNTS = {0: 300, 1: 500, 2: 700}  # messages per partition
BATCH = 50                          # flush every BATCH messages -> multi-record batches
STEP_MS = 10


@pytest.fixture
def produced(broker, topic_name):
    """Produce COUNTS[p] messages to each partition p with explicit, strictly increasing
    timestamps; returns {partition: [timestamp of offset 0, 1, ...]}."""
    clients.create_topic(broker.bootstrap, topic_name, len(COUNTS))
    base = int(time.time() * 1000) - 3_600_000
    timestamps = {}
    i = 0
    for p, n in COUNTS.items():
        ts = [base + STEP_MS * (i + j) for j in range(n)]
        i += n
        msgs = [(f"k{p}".encode(), f"p{p}-m{j}".encode()) for j in range(n)]
        clients.produce_confluent(broker.bootstrap, topic_name, msgs, partition_of=lambda _j, p=p: p,
                                  timestamp_of=lambda j, ts=ts: ts[j], flush_every=BATCH,
                                  **{"linger.ms": 200})
        timestamps[p] = ts
    return timestamps


def mid(n):
    return n // 2 + 3  # inside a batch, not at a batch boundary


def test_stored_timestamps_are_the_producer_timestamps(broker, topic_name, produced):
    got = clients.consume_all_confluent(broker.bootstrap, topic_name, len(COUNTS))
    wrong = [(p, o, ts) for p, o, _, _, ts in got if produced[p][o] != ts]
    assert not wrong, f"{len(wrong)} records carry a timestamp other than the one produced, e.g. {wrong[:3]}"
    assert len(got) == sum(COUNTS.values())


def test_confluent_watermarks(broker, topic_name, produced):
    c = clients.consumer(broker.bootstrap)
    try:
        for p, n in COUNTS.items():
            low, high = c.get_watermark_offsets(TopicPartition(topic_name, p), timeout=10, cached=False)
            assert low == 0, f"partition {p}: earliest offset is {low}, expected 0"
            assert high == n, (f"partition {p}: latest offset is {high}, expected {n} (the offset after the "
                               f"last record; the last batch starts at {n - BATCH})")
    finally:
        c.close()


def test_confluent_offsets_for_times(broker, topic_name, produced):
    c = clients.consumer(broker.bootstrap)
    try:
        for p, n in COUNTS.items():
            ts = produced[p]
            m = mid(n)
            cases = [
                (ts[m] - STEP_MS // 2, m, "between two records"),
                (ts[m], m, "exactly a record's timestamp"),
                (ts[0] - 100_000, 0, "before the first record"),
                (ts[-1], n - 1, "the last record's timestamp"),
                (ts[-1] + 1, -1, "after the last record"),
            ]
            for target, expected, what in cases:
                [res] = c.offsets_for_times([TopicPartition(topic_name, p, target)], timeout=10)
                assert res.error is None, f"partition {p}, {what}: error {res.error}"
                assert res.offset == expected, (
                    f"partition {p}, timestamp {what} ({target}): offset {res.offset}, expected {expected}")
    finally:
        c.close()


def test_confluent_admin_list_offsets(broker, topic_name, produced):
    a = clients.admin(broker.bootstrap)
    for p, n in COUNTS.items():
        ts = produced[p]
        m = mid(n)
        specs = {
            "earliest": (OffsetSpec.earliest(), 0),
            "latest": (OffsetSpec.latest(), n),
            "for_timestamp(mid)": (OffsetSpec.for_timestamp(ts[m] - STEP_MS // 2), m),
        }
        for name, (spec, expected) in specs.items():
            futs = a.list_offsets({TopicPartition(topic_name, p): spec}, request_timeout=10)
            [res] = [f.result(timeout=15) for f in futs.values()]
            assert res.offset == expected, f"partition {p}: AdminClient.list_offsets {name} = {res.offset}, expected {expected}"


def test_kafka_python_offsets(broker, topic_name, produced):
    from kafka import TopicPartition as KTP
    c = clients.kp_consumer(broker.bootstrap)
    try:
        tps = {p: KTP(topic_name, p) for p in COUNTS}
        begin = c.beginning_offsets(list(tps.values()))
        end = c.end_offsets(list(tps.values()))
        for p, n in COUNTS.items():
            assert begin[tps[p]] == 0, f"partition {p}: kafka-python beginning_offsets {begin[tps[p]]}, expected 0"
            assert end[tps[p]] == n, f"partition {p}: kafka-python end_offsets {end[tps[p]]}, expected {n}"
            ts = produced[p]
            m = mid(n)
            for target, expected, what in [(ts[m] - STEP_MS // 2, m, "between two records"),
                                           (ts[m], m, "exactly a record's timestamp"),
                                           (ts[0] - 100_000, 0, "before the first record")]:
                res = c.offsets_for_times({tps[p]: target})[tps[p]]
                assert res is not None, f"partition {p}, {what}: offsets_for_times gave None"
                assert res.offset == expected, (
                    f"partition {p}, timestamp {what}: kafka-python offset {res.offset}, expected {expected}")
                assert res.timestamp == ts[expected], (
                    f"partition {p}, {what}: returned timestamp {res.timestamp}, record has {ts[expected]}")
            past = c.offsets_for_times({tps[p]: ts[-1] + 1})[tps[p]]
            assert past is None, f"partition {p}: timestamp after the last record gave {past}, expected None"
    finally:
        c.close()


def test_kafka_python_as_a_0_10_0_client_lists_offsets_with_v0(broker, topic_name, produced):
    """A client that only knows ListOffsets v0 (kafka-python pinned to api_version 0.10.0, as
    Sarama-based tools such as Burrow send it): the old-style offsets list holds the high
    watermark for latest and the log start for earliest. Lantern used to close the connection."""
    from kafka import TopicPartition as KTP

    from test_metrics import scrape

    def v0_requests():
        return scrape(broker).value("kafka_network_requestmetrics_requests_total", 0, request="ListOffsets", version=0)

    before = v0_requests()
    c = clients.kp_consumer(broker.bootstrap, api_version=(0, 10, 0), request_timeout_ms=20000)
    try:
        tps = {p: KTP(topic_name, p) for p in COUNTS}
        begin = c.beginning_offsets(list(tps.values()))
        end = c.end_offsets(list(tps.values()))
        assert {p: begin[tp] for p, tp in tps.items()} == {p: 0 for p in COUNTS}
        assert {p: end[tp] for p, tp in tps.items()} == COUNTS
    finally:
        c.close()
    assert v0_requests() >= before + 2, "kafka-python sent ListOffsets v0 (one per beginning/end call)"
