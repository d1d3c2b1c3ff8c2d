"""Compatibility behaviours Kafka's clients rely on (issue 16), each against a real client."""

import clients

BATCH_VALUE = 900 * 1024
PARTITIONS = 4
PER_PARTITION = 3
FETCH_MAX = 1024 * 1024


def test_fetch_max_bytes_below_the_sum_of_several_large_batches_still_reads_everything(broker_factory, topic_name):
    """KIP-74: only the first partition with data may return a batch larger than what is left of
    the request's max_bytes; later partitions whose next batch does not fit are left out of that
    response. A librdkafka consumer that refuses any response larger than its fetch.max.bytes
    (receive.message.max.bytes = fetch.max.bytes + 512, the least it accepts) reads every 900 KB
    batch of four partitions. It used to get one whole batch per partition, 3.6 MB in a response,
    and drop the connection."""
    broker = broker_factory()
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    msgs = [(b"k%d" % i, bytes([65 + i % 26]) * BATCH_VALUE) for i in range(PARTITIONS * PER_PARTITION)]
    # One record per batch (linger 0), spread round the partitions.
    clients.produce_confluent(broker.bootstrap, topic_name, msgs, partition_of=lambda i: i % PARTITIONS,
                              linger_ms=0, batch_num_messages=1, compression_type="none")
    got = clients.consume_confluent(
        broker.bootstrap, topic_name, list(range(PARTITIONS)), timeout=60,
        **{"fetch.max.bytes": FETCH_MAX, "max.partition.fetch.bytes": FETCH_MAX,
           "receive.message.max.bytes": FETCH_MAX + 512})
    assert len(got) == len(msgs)
    by_key = {k: v for _, _, k, v, _ in got}
    assert all(by_key[k] == v for k, v in msgs)


def test_incremental_alter_configs_append_and_subtract_on_cleanup_policy(broker_factory, topic_name):
    """IncrementalAlterConfigs APPEND and SUBTRACT on a list-valued config, with
    confluent-kafka's AdminClient: APPEND compact to a topic without an override gives
    `delete,compact` (Kafka starts from the config's default); SUBTRACT delete leaves `compact`; APPEND on a config that is not a list is
    INVALID_CONFIG. (A key twice in one request is INVALID_REQUEST, as Kafka; librdkafka refuses
    to send that, so it is not tried here.)"""
    import pytest
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    broker = broker_factory()
    clients.create_topic(broker.bootstrap, topic_name, 1)
    a = clients.admin(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic_name)

    def alter(*entries):
        r = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=list(entries))
        return a.incremental_alter_configs([r])[r].result(timeout=15)

    def policy():
        return a.describe_configs([res])[res].result(timeout=15)["cleanup.policy"].value

    alter(ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    assert policy() == "delete,compact"
    alter(ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    assert policy() == "delete,compact", "an item already there is not added twice"
    alter(ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT))
    assert policy() == "compact"
    with pytest.raises(KafkaException) as e:
        alter(ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.APPEND))
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value
    assert policy() == "compact", "a refused request changes nothing"


def _log_start_series(node, topic: str, partition: int) -> float | None:
    return node.metric(f'kafka_log_log_logstartoffset{{topic="{topic}",partition="{partition}"}}')


def test_delete_records_moves_the_log_start_on_every_replica_and_survives_restarts(cluster_factory, topic_name):
    """DeleteRecords with confluent-kafka's AdminClient on a replication-factor-3 topic: the
    answer's low watermark is the requested offset (in the middle of a batch), a consumer from
    the beginning starts there, every replica's log start moves (the followers take it from
    their fetches), and it stays after the leader is killed and the whole cluster restarted.
    Refused as Kafka refuses it: past the high watermark (OFFSET_OUT_OF_RANGE) and on a
    compact-only topic (POLICY_VIOLATION)."""
    import pytest
    from confluent_kafka import KafkaException, TopicPartition
    from confluent_kafka.admin import NewTopic
    from cluster import metadata, wait_for

    c = cluster_factory(3, props={"replica.lag.time.max.ms": 4000})
    a = clients.admin(c.bootstrap)
    compacted = topic_name + "-compacted"
    for t, conf in ((topic_name, {}), (compacted, {"cleanup.policy": "compact"})):
        a.create_topics([NewTopic(t, 1, replication_factor=3, config={"min.insync.replicas": "2", **conf})])[t].result(timeout=30)
        clients.wait_topic(c.bootstrap, t, 1)
    msgs = [(b"k%d" % i, b"v%d" % i) for i in range(1000)]
    # Batches of 100: offset 450 is inside one.
    clients.produce_confluent(c.bootstrap, topic_name, msgs, acks="all", linger_ms=50, batch_num_messages=100)

    def delete(topic, offset):
        tp = TopicPartition(topic, 0, offset)
        return a.delete_records([tp], request_timeout=30, operation_timeout=20)[tp].result(timeout=40)

    assert delete(topic_name, 450).low_watermark == 450
    assert clients.watermarks(c.bootstrap, topic_name, 0) == (450, 1000)
    got = clients.consume_confluent(c.bootstrap, topic_name, [0], timeout=30)
    assert [o for _, o, _, _, _ in got] == list(range(450, 1000)), "a consumer from the beginning starts at the new log start"
    for node in c.running_brokers():
        wait_for(f"node {node.node_id}'s log start offset", lambda: _log_start_series(node, topic_name, 0) == 450, 15)

    with pytest.raises(KafkaException) as e:
        delete(topic_name, 1001)
    assert e.value.args[0].name() == "OFFSET_OUT_OF_RANGE"
    with pytest.raises(KafkaException) as e:
        delete(compacted, 0)
    assert e.value.args[0].name() == "POLICY_VIOLATION"

    leader = metadata(c.running_brokers()[0], [topic_name]).topics[topic_name].partitions[0].leader
    c.kill9(leader)
    wait_for("a new leader", lambda: metadata(c.running_brokers()[0], [topic_name]).topics[topic_name].partitions[0].leader not in (-1, leader), 30)
    assert clients.watermarks(c.bootstrap, topic_name, 0)[0] == 450, "the new leader starts where the old one did"
    a = clients.admin(c.bootstrap)  # metadata without the killed broker
    assert delete(topic_name, -1).low_watermark == 1000, "-1: everything below the high watermark"
    c.restart(leader)
    c.terminate_all()
    c.start()

    def after_restart():
        try:
            return clients.watermarks(c.bootstrap, topic_name, 0)
        except KafkaException:
            return None
    assert wait_for("watermarks after the restart", after_restart, 60) == (1000, 1000), "deleted records stay deleted across restarts"


def test_java_admin_legacy_alter_configs_and_describe_producers(broker_factory, topic_name, java_classpaths):
    """The Java AdminClient 3.9's legacy `alterConfigs` replaces a topic's whole config set
    (what it leaves out goes back to Kafka's default, as DescribeConfigs then shows) and is
    refused for an invalid value; `describeProducers` (3.9 and 4.1) reports the idempotent
    producer that wrote 10 records: one producer, last sequence 9, no open transaction."""
    from javacheck import CLIENTS, run_java

    broker = broker_factory()
    summaries = {v: run_java(java_classpaths[CLIENTS[v]], broker, "--mode=admin-compat", f"--topic={topic_name}-{v}")[0]
                 for v in ("3.x", "4.x")}
    summary = summaries["3.x"]
    assert summary["legacy_alter_configs"] is True
    assert summary["configs_after_alter"] == {
        "retention.bytes": "12345 DYNAMIC_TOPIC_CONFIG",
        "retention.ms": "604800000 DEFAULT_CONFIG",
        "cleanup.policy": "delete DEFAULT_CONFIG",
    }, summary["configs_after_alter"]
    assert summary["invalid_value"] == "InvalidConfigurationException", summary["invalid_value"]
    for version, summary in summaries.items():
        producers = summary["producers"]
        assert len(producers) == 1, (version, producers)
        assert producers[0]["last_sequence"] == 9 and producers[0]["epoch"] == 0 and producers[0]["producer_id"] >= 0, (version, producers)
        assert producers[0]["txn_start"] is False
        assert producers[0]["last_timestamp"] > 0


def test_a_batch_with_keyless_records_for_a_compacted_topic_fails_exactly_those_records(broker_factory, topic_name, java_classpaths):
    """KIP-467: one batch of 100 records to a compacted topic, 10 of them without a key. The
    broker answers INVALID_RECORD with record_errors naming the 10 (ProduceResponse v8+), so
    the Java producer fails exactly those 10 with InvalidRecordException and the other 90
    with its own "part of a batch which had one or more invalid records" error (Kafka never
    appends part of a batch), instead of failing all 100 as invalid."""
    from javacheck import CLIENTS, run_java

    broker = broker_factory()
    keyless = [i for i in range(100) if i % 10 == 3]
    for version in ("3.x", "4.x"):
        summary, _ = run_java(java_classpaths[CLIENTS[version]], broker, "--mode=record-errors", f"--topic={topic_name}-{version}")
        failed_by = summary["failed_by"]
        assert failed_by.get("InvalidRecordException") == keyless, (version, summary)
        others = [i for cls, idx in failed_by.items() if cls != "InvalidRecordException" for i in idx]
        assert sorted(others) == [i for i in range(100) if i not in keyless], (version, summary)
        assert "without key" in summary["message_by"]["InvalidRecordException"], summary["message_by"]
        assert summary["acked"] == 0, "Kafka never appends part of a batch"


def test_idle_idempotent_producers_are_forgotten_after_producer_id_expiration_ms(broker_factory, topic_name, java_classpaths):
    """producer.id.expiration.ms bounds a partition's producer state: 40 short-lived idempotent
    producers each write one record; DescribeProducers (Java AdminClient) lists all 40, and
    none once their last batch is older than the expiration (checked every
    producer.id.expiration.check.interval.ms). Before, the state grew forever."""
    import time
    from javacheck import CLIENTS, run_java

    broker = broker_factory(props={"producer.id.expiration.ms": 10000, "producer.id.expiration.check.interval.ms": 500})
    clients.create_topic(broker.bootstrap, topic_name, 1)
    producers = [clients.producer(broker.bootstrap, enable_idempotence=True, linger_ms=0) for _ in range(40)]
    errors = []
    for i, p in enumerate(producers):
        p.produce(topic_name, key=b"k%d" % i, value=b"v", partition=0, on_delivery=lambda e, m: e and errors.append(e))
    for p in producers:
        assert p.flush(30) == 0
    assert not errors, errors
    del producers
    last_write = time.monotonic()
    cp = java_classpaths[CLIENTS["3.x"]]
    before = run_java(cp, broker, "--mode=describe-producers", f"--topic={topic_name}")[0]["producers"]
    assert len(before) == 40 and len({p["producer_id"] for p in before}) == 40, before
    time.sleep(max(0.0, last_write + 11.5 - time.monotonic()))
    after = run_java(cp, broker, "--mode=describe-producers", f"--topic={topic_name}")[0]["producers"]
    assert after == [], after


def _zstd_batch(values: list[bytes]) -> bytes:
    """A magic-2 record batch of `values` (no keys), its records zstd-compressed."""
    import struct
    import time
    import zstandard
    from lantern import crc32c
    from test_bad_input import uvarint

    def zigzag(n: int) -> bytes:
        return uvarint((n << 1) ^ (n >> 63))

    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + zigzag(0) + zigzag(i) + zigzag(-1) + zigzag(len(v)) + v + zigzag(0)
        records += zigzag(len(body)) + body
    compressed = zstandard.ZstdCompressor().compress(records)
    ts = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 4, len(values) - 1, ts, ts, -1, -1, -1, len(values)) + compressed
    rest = struct.pack(">ibI", -1, 2, crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(rest)) + rest


def test_zstd_is_refused_to_produce_below_v7_and_fetch_below_v10(broker_factory, topic_name):
    """KIP-110, as Kafka: a zstd batch in Produce v3 gets UNSUPPORTED_COMPRESSION_TYPE (v7
    stores it), and a consumer's Fetch v4 whose first batch is zstd gets the same error instead
    of records it cannot read. (Since compression.type=zstd recompresses on the broker, a topic
    can hold zstd that an old client never sent.)"""
    import struct
    from test_bad_input import connect, frame, header_v1, read_response

    broker = broker_factory()
    clients.create_topic(broker.bootstrap, topic_name, 1)
    batch = _zstd_batch([b"v%d" % i for i in range(10)])

    def produce(version: int) -> int:
        body = struct.pack(">hhi", -1, 1, 5000) + struct.pack(">i", 1) + struct.pack(">h", len(topic_name)) + topic_name.encode()
        body += struct.pack(">i", 1) + struct.pack(">ii", 0, len(batch)) + batch
        s = connect(broker)
        try:
            s.sendall(frame(header_v1(0, version, 7, b"old-client") + body))
            s.settimeout(10)
            resp = read_response(s)
        finally:
            s.close()
        (name_len,) = struct.unpack_from(">h", resp, 8)
        _, index, err = struct.unpack_from(">iih", resp, 10 + name_len)
        return err

    assert produce(3) == 76, "Produce v3 with zstd: UNSUPPORTED_COMPRESSION_TYPE"
    assert clients.watermarks(broker.bootstrap, topic_name, 0) == (0, 0)
    assert produce(7) == 0, "Produce v7 may use zstd"

    body = struct.pack(">iiiib", -1, 100, 1, 1 << 20, 0) + struct.pack(">i", 1)
    body += struct.pack(">h", len(topic_name)) + topic_name.encode() + struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, 1 << 20)
    s = connect(broker)
    try:
        s.sendall(frame(header_v1(1, 4, 8, b"old-client") + body))
        s.settimeout(10)
        resp = read_response(s)
    finally:
        s.close()
    _, _, n_topics = struct.unpack_from(">iii", resp, 0)
    (name_len,) = struct.unpack_from(">h", resp, 12)
    _, index, err = struct.unpack_from(">iih", resp, 14 + name_len)
    assert (n_topics, index, err) == (1, 0, 76), (n_topics, index, err)
    got = clients.consume_confluent(broker.bootstrap, topic_name, [0], timeout=30)
    assert [v for _, _, _, v, _ in got] == [b"v%d" % i for i in range(10)], "a current client reads the zstd batch"
