"""Claim: log compaction (cleanup.policy=compact) works as in Kafka, seen from real clients:

* the cleaner keeps exactly the latest record of each key, in offset order, without moving
  the high watermark (offsets never change);
* a tombstone removes its key; the tombstone itself is kept for delete.retention.ms and then
  removed too;
* a record without a key is refused by a compacted topic (INVALID_RECORD, code 87) and
  nothing of its batch is stored;
* `__consumer_offsets` is a compacted topic holding Kafka-format offset commit records
  (OffsetCommitKey v1 / OffsetCommitValue v3) in the partition Kafka's hash picks.

Broker settings: log.cleaner.backoff.ms=300 so the cleaner runs often, and
log.retention.check.interval.ms=300 so segment.ms rolls the active segment (which the
cleaner never touches) soon after the last append.
"""

from __future__ import annotations

import random
import struct
import time

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, TopicPartition

import clients

CLEANER_PROPS = {"log.cleaner.backoff.ms": 300, "log.retention.check.interval.ms": 300}


def compact_config(**extra) -> dict:
    c = {"cleanup.policy": "compact", "segment.bytes": 2000, "segment.ms": 500, "min.cleanable.dirty.ratio": 0.01}
    c.update(extra)
    return c


# Small producer batches, so that a batch is never larger than a 2000-byte segment.
SMALL_BATCHES = {"batch.size": 1000, "linger.ms": 2, "compression.codec": "none"}


def read_log(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record of partition 0, from the start to the current
    high watermark (the last record must be a live one, which every test here ensures)."""
    return [(o, k, v) for _, o, k, v, _ in clients.consume_confluent(bootstrap, topic, [0], timeout=30)]


def test_compaction_keeps_the_last_value_of_each_key(broker_factory, topic_name):
    broker = broker_factory(props=CLEANER_PROPS)
    clients.create_topic(broker.bootstrap, topic_name, 1, config=compact_config())
    n_keys, n_updates = 100, 10_000
    rng = random.Random(8)
    updates, seq, last = [], [0] * n_keys, {}
    for i in range(n_updates):
        k = i if i < n_keys else rng.randrange(n_keys)  # every key at least once, then random order
        key = f"key-{k:03d}".encode()
        value = f"key-{k:03d}|update-{seq[k]:05d}|{i:05d}".encode()
        seq[k] += 1
        updates.append((key, value))
        last[key] = (i, value)
    clients.produce_confluent(broker.bootstrap, topic_name, updates, partition_of=lambda _i: 0, **SMALL_BATCHES)
    low, high = clients.watermarks(broker.bootstrap, topic_name, 0)
    assert (low, high) == (0, n_updates), f"watermarks after producing {n_updates}: {(low, high)}"

    deadline = time.monotonic() + 30
    got = read_log(broker.bootstrap, topic_name)
    history = [len(got)]
    while len(got) != n_keys and time.monotonic() < deadline:
        time.sleep(0.5)
        got = read_log(broker.bootstrap, topic_name)
        history.append(len(got))
    assert len(got) == n_keys, (
        f"after 30s of cleaning, a consumer reading from the beginning gets {len(got)} records, expected one per "
        f"key ({n_keys}); record counts seen while waiting: {history[:5]}...{history[-5:]}; "
        f"segments on disk: {len(broker.segment_files(topic_name, 0))}")

    offsets = [o for o, _, _ in got]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), f"offsets not increasing: {offsets}"
    wrong = [(o, k, v, last.get(k)) for o, k, v in got if last.get(k) != (o, v)]
    assert not wrong, (f"{len(wrong)} retained records are not the last update of their key (offset, key, value, "
                       f"expected (offset, value)): {wrong[:3]}")
    assert {k for _, k, _ in got} == set(last), "some keys are missing after compaction"
    low, high = clients.watermarks(broker.bootstrap, topic_name, 0)
    assert high == n_updates, f"high watermark moved from {n_updates} to {high} by compaction"
    assert low == 0, f"log start offset moved to {low} by compaction (Kafka keeps it)"

    # kafka-python reads the compacted log (offset gaps inside batches) the same way.
    kp = [(o, k, v) for _, o, k, v, _ in clients.consume_kafka_python(broker.bootstrap, topic_name, [0], timeout=30)]
    assert kp == got, f"kafka-python reads the compacted log differently: {clients.first_diff(kp, got)}"


def _victim_records(log, key=b"victim"):
    return [(o, v) for o, k, v in log if k == key]


def test_tombstones_delete_keys_and_expire_after_delete_retention(broker_factory, topic_name):
    broker = broker_factory(props=CLEANER_PROPS)
    short, long_ = f"{topic_name}-short", f"{topic_name}-long"
    clients.create_topic(broker.bootstrap, short, 1, config=compact_config(**{"delete.retention.ms": 1000}))
    clients.create_topic(broker.bootstrap, long_, 1, config=compact_config(**{"delete.retention.ms": 3_600_000}))

    def fillers(r):
        return [(f"filler-{i:02d}".encode(), f"round-{r:04d}-{i:02d}".encode()) for i in range(20)]

    first = [(b"victim", b"v1")] + [m for r in range(5) for m in fillers(r)]
    tomb = [(b"victim", None)]
    marker_round = fillers(5)  # records after the tombstone; superseded by the rounds below
    reports = {}
    for t in (short, long_):
        clients.produce_confluent(broker.bootstrap, t, first, partition_of=lambda _i: 0, **SMALL_BATCHES)
        (tomb_report,) = clients.produce_confluent(broker.bootstrap, t, tomb, partition_of=lambda _i: 0)
        marker = clients.produce_confluent(broker.bootstrap, t, marker_round, partition_of=lambda _i: 0,
                                           **SMALL_BATCHES)
        reports[t] = (tomb_report[1], marker[-1][1])

    def cleaned_past_tombstone(t, log):
        """A record written after the tombstone was cleaned away, so the cleaner has been over
        the tombstone's segment (the cleaned range is always a prefix of the log)."""
        marker_offset = reports[t][1]
        return all(o != marker_offset for o, _, _ in log)

    deadline = time.monotonic() + 30
    r = 6
    while True:
        # Keep the topics live, as real ones are: new dirty data for the cleaner, and the last
        # record always a live one.
        for t in (short, long_):
            clients.produce_confluent(broker.bootstrap, t, fillers(r), partition_of=lambda _i: 0, **SMALL_BATCHES)
        r += 1
        logs = {t: read_log(broker.bootstrap, t) for t in (short, long_)}
        short_done = cleaned_past_tombstone(short, logs[short]) and not _victim_records(logs[short])
        long_cleaned = cleaned_past_tombstone(long_, logs[long_])
        if short_done and long_cleaned:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"after 30s: delete.retention.ms=1000 topic still has victim records "
                        f"{_victim_records(logs[short])} (cleaned past the tombstone: "
                        f"{cleaned_past_tombstone(short, logs[short])}); delete.retention.ms=1h topic cleaned past the "
                        f"tombstone: {long_cleaned}, victim records {_victim_records(logs[long_])}")
        time.sleep(0.4)

    tomb_offset = reports[long_][0]
    assert _victim_records(logs[long_]) == [(tomb_offset, None)], (
        f"with delete.retention.ms=1h, after cleaning, key 'victim' should be just its tombstone at offset "
        f"{tomb_offset}; got {_victim_records(logs[long_])}")
    # Fillers are compacted too in both topics: one record per filler key.
    for t in (short, long_):
        keys = [k for _, k, _ in logs[t] if k.startswith(b"filler-")]
        assert len(keys) <= 40, f"{t}: {len(keys)} filler records remain, compaction is not keeping up"


def test_keyless_records_are_refused_by_compacted_topics(broker_factory, topic_name):
    broker = broker_factory(props=CLEANER_PROPS)
    clients.create_topic(broker.bootstrap, topic_name, 1, config=compact_config())

    p = clients.producer(broker.bootstrap, **{"message.timeout.ms": 15000, "retries": 0})
    results = []
    p.produce(topic_name, value=b"no key here", partition=0, on_delivery=lambda e, m: results.append((e, m)))
    assert p.flush(20) == 0, "keyless produce got no delivery report within 20s"
    ((err, msg),) = results
    assert err is not None, f"keyless record was accepted at offset {msg.offset()} by a compacted topic"
    assert err.code() == KafkaError.INVALID_RECORD, (
        f"keyless record to a compacted topic failed with {err} (code {err.code()}), expected INVALID_RECORD (87)")

    # kafka-python: a batch mixing keyed and keyless records is refused as a whole, and (KIP-467
    # record_errors) only the keyless record fails as invalid; the keyed one fails with the
    # client's "part of a batch which had invalid records" error.
    from kafka import KafkaProducer
    from kafka.errors import InvalidRecordError
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=500, retries=0)
    try:
        futs = [kp.send(topic_name, key=b"has-key", value=b"a", partition=0),
                kp.send(topic_name, key=None, value=b"b", partition=0)]
        kp.flush(timeout=20)
        outcomes = []
        for f in futs:
            try:
                outcomes.append(f.get(timeout=5))
            except Exception as e:  # noqa: BLE001 - checked below
                outcomes.append(e)
    finally:
        kp.close(timeout=10)
    assert isinstance(outcomes[1], InvalidRecordError) and "without key" in str(outcomes[1]), outcomes
    assert isinstance(outcomes[0], Exception) and not isinstance(outcomes[0], InvalidRecordError), (
        f"kafka-python batch [keyed, keyless] to a compacted topic: {outcomes}; expected only the keyless record to be invalid")
    assert "part of a batch" in str(outcomes[0]), outcomes

    assert clients.watermarks(broker.bootstrap, topic_name, 0) == (0, 0), (
        f"refused records left the watermarks at {clients.watermarks(broker.bootstrap, topic_name, 0)}")
    ((part, off),) = clients.produce_confluent(broker.bootstrap, topic_name, [(b"k", b"kept")],
                                               partition_of=lambda _i: 0)
    assert off == 0, f"first accepted record got offset {off}: refused records took offsets"
    assert read_log(broker.bootstrap, topic_name) == [(0, b"k", b"kept")]


# ----------------------------------------------------- __consumer_offsets
def java_string_hash(s: str) -> int:
    h = 0
    units = s.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i:i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def kafka_partition_for(group: str, partitions: int) -> int:
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def _read_string(buf: bytes, pos: int) -> tuple[str | None, int]:
    (n,) = struct.unpack_from(">h", buf, pos)
    pos += 2
    if n < 0:
        return None, pos
    return buf[pos:pos + n].decode("utf-8"), pos + n


def decode_offset_key(key: bytes):
    """OffsetCommitKey (versions 0 and 1): int16 version, string group, string topic, int32 partition.
    Returns None for other key versions (2 = group metadata)."""
    (version,) = struct.unpack_from(">h", key, 0)
    if version not in (0, 1):
        return version, None
    group, pos = _read_string(key, 2)
    topic, pos = _read_string(key, pos)
    (partition,) = struct.unpack_from(">i", key, pos)
    assert pos + 4 == len(key), f"{len(key) - pos - 4} trailing bytes in offset key {key!r}"
    return version, (group, topic, partition)


def decode_offset_value_v3(value: bytes):
    """OffsetCommitValue v3: int16 version, int64 offset, int32 leader epoch, string metadata,
    int64 commit timestamp."""
    (version,) = struct.unpack_from(">h", value, 0)
    assert version == 3, f"OffsetCommitValue version {version}, expected 3 (bytes {value!r})"
    offset, epoch = struct.unpack_from(">qi", value, 2)
    metadata, pos = _read_string(value, 14)
    (ts,) = struct.unpack_from(">q", value, pos)
    assert pos + 8 == len(value), f"{len(value) - pos - 8} trailing bytes in OffsetCommitValue v3 {value!r}"
    return offset, epoch, metadata, ts


def test_consumer_offsets_holds_kafka_format_commits(broker_factory, topic_name):
    n_offsets_partitions = 50  # the default, so the group lands where Kafka's hash puts it
    broker = broker_factory(props={"group.initial.rebalance.delay.ms": 0})
    clients.create_topic(broker.bootstrap, topic_name, 3)
    group = f"offsets-format-{topic_name[-6:]}"
    # Committed with kafka-python: confluent-kafka sends TopicPartition.metadata with its C
    # string's terminating NUL byte, kafka-python sends exactly the string.
    from kafka import OffsetAndMetadata, TopicPartition as KTP
    c = clients.kp_consumer(broker.bootstrap, group_id=group, heartbeat_interval_ms=300)
    c.subscribe([topic_name])
    try:
        deadline = time.monotonic() + 20
        while len(c.assignment()) < 3:
            assert time.monotonic() < deadline, f"no assignment within 20s: {c.assignment()}"
            c.poll(timeout_ms=200)
        t0 = int(time.time() * 1000)
        c.commit({KTP(topic_name, 2): OffsetAndMetadata(42, "lantern-meta", -1)})
        t1 = int(time.time() * 1000)
    finally:
        c.close()

    a = clients.admin(broker.bootstrap)
    fut = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic_name, 2)])],
                                        request_timeout=15)[group]
    (fetched,) = fut.result(timeout=20).topic_partitions
    # (not fetched.metadata: confluent-kafka reads it as a C string past its end, librdkafka #4649)
    assert fetched.offset == 42, f"OffsetFetch (confluent-kafka): {fetched}"
    from kafka.admin import KafkaAdminClient
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        kp_fetched = ka.list_consumer_group_offsets(group, partitions=[KTP(topic_name, 2)])[KTP(topic_name, 2)]
    finally:
        ka.close()
    assert (kp_fetched.offset, kp_fetched.metadata) == (42, "lantern-meta"), f"OffsetFetch (kafka-python): {kp_fetched}"

    assert clients.topic_partition_count(broker.bootstrap, "__consumer_offsets") == n_offsets_partitions
    raw = clients.consume_confluent(broker.bootstrap, "__consumer_offsets", list(range(n_offsets_partitions)),
                                    timeout=30)
    commits, group_keys = [], []
    for p, o, k, v, ts in raw:
        assert k is not None, f"__consumer_offsets[{p}] offset {o} has no key"
        version, fields = decode_offset_key(k)
        if fields is None:
            if version == 2 and _read_string(k, 2)[0] == group:
                group_keys.append(p)
            continue
        if fields == (group, topic_name, 2):
            commits.append((p, o, version, v, ts))
    assert commits, (f"no OffsetCommitKey for ({group}, {topic_name}, 2) in __consumer_offsets; "
                     f"{len(raw)} records there, keys e.g. {[r[2] for r in raw[:3]]}")
    p, o, version, value, ts = commits[-1]
    assert version == 1, f"OffsetCommitKey version {version}, expected 1"
    expected_p = kafka_partition_for(group, n_offsets_partitions)
    assert p == expected_p, f"commit of group {group} is in __consumer_offsets[{p}], Kafka's hash gives {expected_p}"
    assert value is not None, "the commit record is a tombstone"
    offset, epoch, metadata, commit_ts = decode_offset_value_v3(value)
    assert (offset, metadata) == (42, "lantern-meta"), f"decoded value: offset {offset}, metadata {metadata!r}"
    assert epoch == kp_fetched.leader_epoch, (
        f"leader epoch {epoch} in the record, OffsetFetch says {kp_fetched.leader_epoch}")
    assert t0 - 1000 <= commit_ts <= t1 + 1000, f"commit timestamp {commit_ts} not within [{t0}, {t1}] (+-1s)"
    assert group_keys and set(group_keys) == {expected_p}, (
        f"group metadata (key version 2) for {group} found in partitions {group_keys}, expected [{expected_p}]")
