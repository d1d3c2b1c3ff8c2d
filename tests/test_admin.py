"""Claims: the admin APIs behave as against Kafka for real admin clients: CreatePartitions,
DescribeConfigs, IncrementalAlterConfigs, DeleteTopics, DescribeCluster (confluent-kafka's
AdminClient and kafka-python's KafkaAdminClient), topic configs are honoured
(max.message.bytes), and OffsetForLeaderEpoch answers with the log end offset of the
current epoch (raw protocol: no Python client exposes it directly)."""

import socket
import struct
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewPartitions,
                                   NewTopic, ResourceType)

import clients


def _result(futures: dict, timeout: float = 15.0):
    return {k: f.result(timeout=timeout) for k, f in futures.items()}


def test_create_partitions_grows_and_refuses_shrinking(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, 2)
    a = clients.admin(broker.bootstrap)
    _result(a.create_partitions([NewPartitions(topic_name, 5)]))
    clients.wait_topic(broker.bootstrap, topic_name, 5)
    assert clients.topic_partition_count(broker.bootstrap, topic_name) == 5
    with pytest.raises(KafkaException) as e:
        _result(a.create_partitions([NewPartitions(topic_name, 3)]))
    assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS, e.value
    # the new partitions take writes
    clients.produce_confluent(broker.bootstrap, topic_name, [(b"k", b"v")], partition_of=lambda i: 4)
    assert clients.watermarks(broker.bootstrap, topic_name, 4) == (0, 1)


def test_describe_and_alter_topic_configs(broker, topic_name):
    a = clients.admin(broker.bootstrap)
    _result(a.create_topics([NewTopic(topic_name, 1, 1, config={"retention.ms": "3600000"})]))
    res = ConfigResource(ResourceType.TOPIC, topic_name)
    configs = _result(a.describe_configs([res]))[res]
    assert configs["retention.ms"].value == "3600000"
    src = configs["retention.ms"].source
    assert getattr(src, "value", src) == 1, f"a topic override is DYNAMIC_TOPIC_CONFIG (1), got {src}"
    assert configs["segment.bytes"].value == "1073741824", "broker default is reported for unset configs"

    alter = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
    ])
    _result(a.incremental_alter_configs([alter]))
    configs = _result(a.describe_configs([res]))[res]
    assert configs["retention.ms"].value == "60000"
    assert configs["segment.bytes"].value == "1048576"

    delete = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    _result(a.incremental_alter_configs([delete]))
    configs = _result(a.describe_configs([res]))[res]
    assert configs["retention.ms"].value == str(7 * 24 * 3600 * 1000), "DELETE falls back to the broker default"

    bad = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        _result(a.incremental_alter_configs([bad]))
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value


def test_broker_configs_are_described(broker):
    a = clients.admin(broker.bootstrap)
    res = ConfigResource(ResourceType.BROKER, "1")
    configs = _result(a.describe_configs([res]))[res]
    assert configs["log.dirs"].value == ",".join(str(d) for d in broker.data_dirs)
    assert configs["num.partitions"].value == "1"


def test_replication_throttle_rates_are_dynamic_broker_configs_and_nothing_else_is(broker):
    a = clients.admin(broker.bootstrap)
    res = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
        ConfigEntry("leader.replication.throttled.rate", "1000000", incremental_operation=AlterConfigOpType.SET)])
    _result(a.incremental_alter_configs([res]))
    described = _result(a.describe_configs([ConfigResource(ResourceType.BROKER, "1")]))
    entry = list(described.values())[0]["leader.replication.throttled.rate"]
    assert entry.value == "1000000" and entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value, (entry.value, entry.source)
    static = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
        ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        _result(a.incremental_alter_configs([static]))
    assert e.value.args[0].code() == KafkaError.INVALID_REQUEST and "restart" in e.value.args[0].str(), e.value
    undo = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
        ConfigEntry("leader.replication.throttled.rate", None, incremental_operation=AlterConfigOpType.DELETE)])
    _result(a.incremental_alter_configs([undo]))
    described = _result(a.describe_configs([ConfigResource(ResourceType.BROKER, "1")]))
    assert list(described.values())[0]["leader.replication.throttled.rate"].value == str(2**63 - 1)


def test_max_message_bytes_is_honoured(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, 1, config={"max.message.bytes": "2000"})
    p = clients.producer(broker.bootstrap, **{"linger.ms": 0, "message.max.bytes": 100000})
    errors = []
    # separate batches: the limit applies to a whole batch, as in Kafka
    p.produce(topic_name, value=b"x" * 10000, partition=0, on_delivery=lambda e, m: errors.append(e))
    assert p.flush(15) == 0
    p.produce(topic_name, value=b"y" * 100, partition=0, on_delivery=lambda e, m: errors.append(e))
    assert p.flush(15) == 0
    codes = sorted(e.code() if e else 0 for e in errors)
    assert codes == [0, KafkaError.MSG_SIZE_TOO_LARGE], errors


def test_delete_topic_removes_data(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, 3)
    clients.produce_confluent(broker.bootstrap, topic_name, [(b"k", b"v")] * 10)
    dirs = [p for d in broker.data_dirs for p in d.glob(f"{topic_name}-*")]
    assert len(dirs) == 3, dirs
    a = clients.admin(broker.bootstrap)
    _result(a.delete_topics([topic_name]))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(p.exists() for p in dirs):
        time.sleep(0.1)
    assert not any(p.exists() for p in dirs), "partition directories remain after DeleteTopics"
    assert topic_name not in a.list_topics(timeout=10).topics
    with pytest.raises(KafkaException) as e:
        _result(a.delete_topics([topic_name]))
    assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, e.value


def test_describe_cluster(broker):
    a = clients.admin(broker.bootstrap)
    desc = a.describe_cluster().result(timeout=15)
    assert desc.controller.id == 1
    assert [(n.id, n.host, n.port) for n in desc.nodes] == [(1, "127.0.0.1", broker.port)]
    assert desc.cluster_id and len(desc.cluster_id) == 22


def test_kafka_python_admin(broker, topic_name):
    from kafka.admin import ConfigResource as KpResource, ConfigResourceType, KafkaAdminClient, NewTopic as KpTopic
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        a.create_topics([KpTopic(topic_name, 4, 1, topic_configs={"retention.bytes": "1000000"})])
        assert topic_name in a.list_topics()
        desc = a.describe_configs([KpResource(ConfigResourceType.TOPIC, topic_name)])
        text = repr(desc)
        assert "retention.bytes" in text and "1000000" in text, text[:500]
        a.delete_topics([topic_name])
        assert topic_name not in a.list_topics()
    finally:
        a.close()


def _offset_for_leader_epoch(port: int, topic: str, partition: int, epoch: int) -> tuple[int, int, int]:
    """OffsetForLeaderEpoch v3 over a raw socket: (error_code, leader_epoch, end_offset)."""
    name = topic.encode()
    body = struct.pack(">i", -1)  # replica_id
    body += struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
    body += struct.pack(">i", 1) + struct.pack(">iii", partition, -1, epoch)
    header = struct.pack(">hhi", 23, 3, 7) + struct.pack(">h", 4) + b"test"
    req = header + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        size = struct.unpack(">i", _recv(s, 4))[0]
        resp = _recv(s, size)
    corr, _throttle, n_topics = struct.unpack(">iii", resp[:12])
    assert corr == 7 and n_topics == 1
    tlen = struct.unpack(">h", resp[12:14])[0]
    pos = 14 + tlen
    n_parts = struct.unpack(">i", resp[pos:pos + 4])[0]
    assert n_parts == 1
    err, part, leader_epoch, end = struct.unpack(">hiiq", resp[pos + 4:pos + 22])
    assert part == partition
    return err, leader_epoch, end


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed by the broker"
        buf += chunk
    return buf


def test_offset_for_leader_epoch(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, 1)
    clients.produce_confluent(broker.bootstrap, topic_name, [(b"k", b"v")] * 42)
    assert _offset_for_leader_epoch(broker.port, topic_name, 0, 0) == (0, 0, 42)
    # an epoch beyond the current one has no end offset
    assert _offset_for_leader_epoch(broker.port, topic_name, 0, 5) == (0, -1, -1)
    # unknown partition
    assert _offset_for_leader_epoch(broker.port, topic_name, 9, 0)[0] == 3
