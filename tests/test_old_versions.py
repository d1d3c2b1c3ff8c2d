"""Old request versions (issue 16, "Compatibility"): the versions Kafka 4 removed (KIP-896) that
Kafka 3.9 still accepts, sent by kafka-python pinned to an old broker version (`api_version`)
or, where kafka-python has no call that sends them, built with kafka-python's own protocol
classes. Each of these closed the connection before (the codec had no such version).
ListOffsets v0 is in test_list_offsets.py and test_burrow.py."""

from __future__ import annotations

import re
import time

import pytest

import clients
from test_metrics import FAST_PROPS, scrape

UNSUPPORTED_VERSION = 35


def kp_admin(bootstrap: str, api_version: tuple):
    from kafka import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=bootstrap, api_version=api_version, request_timeout_ms=20000)


def requests_of(broker, api: str, version: int) -> float:
    return scrape(broker).value("kafka_network_requestmetrics_requests_total", 0, request=api, version=version)


def topics_of(broker) -> set[str]:
    return set(clients.admin(broker.bootstrap).list_topics(timeout=10).topics)


def wait_until(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def fast_broker(broker_factory):
    return broker_factory(props=dict(FAST_PROPS))


def test_create_topics_v0_and_v1_and_delete_topics_v0(fast_broker, topic_name):
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError
    b = fast_broker
    before = {v: requests_of(b, "CreateTopics", v) for v in (0, 1)}
    a = kp_admin(b.bootstrap, (0, 10, 1))  # CreateTopics v0, DeleteTopics v0
    try:
        r = a.create_topics([NewTopic(topic_name, 3, 1)])
        assert r.API_VERSION == 0 and [tuple(t) for t in r.topic_errors] == [(topic_name, 0)], r
        clients.wait_topic(b.bootstrap, topic_name, 3)
        with pytest.raises(TopicAlreadyExistsError) as e:
            a.create_topics([NewTopic(topic_name, 3, 1)])
        assert "CreateTopicsResponse_v0" in str(e.value), e.value
    finally:
        a.close()

    a = kp_admin(b.bootstrap, (0, 10, 2))  # CreateTopics v1: validate_only, error messages
    try:
        other = topic_name + "-v"
        r = a.create_topics([NewTopic(other, 2, 1)], validate_only=True)
        assert r.API_VERSION == 1 and [tuple(t)[:2] for t in r.topic_errors] == [(other, 0)], r
        assert other not in topics_of(b), "validate_only creates nothing"
        with pytest.raises(TopicAlreadyExistsError) as e:
            a.create_topics([NewTopic(topic_name, 3, 1)])
        assert re.search(r"CreateTopicsResponse_v1\(.*error_message=.topic '.*' already exists", str(e.value)), \
            f"v1 carries an error message: {e.value}"
    finally:
        a.close()
    assert requests_of(b, "CreateTopics", 0) >= before[0] + 2 and requests_of(b, "CreateTopics", 1) >= before[1] + 2

    a = kp_admin(b.bootstrap, (0, 10, 1))
    try:
        r = a.delete_topics([topic_name])
        assert r.API_VERSION == 0 and [tuple(t) for t in r.topic_error_codes] == [(topic_name, 0)], r
    finally:
        a.close()
    wait_until(lambda: topic_name not in topics_of(b), 30, f"{topic_name} still listed after DeleteTopics v0")


def test_describe_configs_v0_says_which_configs_are_defaults(fast_broker, topic_name):
    from kafka.admin import ConfigResource, ConfigResourceType
    b = fast_broker
    clients.create_topic(b.bootstrap, topic_name, 1, config={"retention.ms": "123456"})
    a = kp_admin(b.bootstrap, (1, 0))  # DescribeConfigs v0
    try:
        [r] = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
        assert r.API_VERSION == 0, r
        [(code, _msg, _type, name, entries)] = [tuple(x) for x in r.resources]
        assert (code, name) == (0, topic_name), r
        # v0 entries: (name, value, read_only, is_default, is_sensitive)
        by_name = {e[0]: e for e in entries}
        assert by_name["retention.ms"][1:4] == ("123456", False, False), by_name["retention.ms"]
        assert by_name["segment.bytes"][3] is True, f"a config left at its default: {by_name['segment.bytes']}"
    finally:
        a.close()


def test_describe_log_dirs_v0(fast_broker, topic_name):
    b = fast_broker
    clients.create_topic(b.bootstrap, topic_name, 2)
    clients.produce_confluent(b.bootstrap, topic_name, [(b"k", b"v" * 100)] * 10, partition_of=lambda i: 0)
    a = kp_admin(b.bootstrap, (1, 0))  # DescribeLogDirs v0
    try:
        r = a.describe_log_dirs()
        assert r.API_VERSION == 0, r
        parts = {(t[0], p[0]): p for d in r.log_dirs for t in d[2] for p in t[1]}
        assert parts[(topic_name, 0)][1] > 1000 and parts[(topic_name, 1)][1] == 0, parts
    finally:
        a.close()


def test_offset_for_leader_epoch_v0_and_v1(fast_broker, topic_name):
    from kafka.protocol.offset_for_leader_epoch import OffsetForLeaderEpochRequest
    b = fast_broker
    clients.create_topic(b.bootstrap, topic_name, 1)
    clients.produce_confluent(b.bootstrap, topic_name, [(b"k", b"v")] * 25, partition_of=lambda i: 0)
    a = kp_admin(b.bootstrap, (2, 0))
    try:
        for version in (0, 1):
            r = a.send_request(OffsetForLeaderEpochRequest[version]([(topic_name, [(0, 0)])]))
            [(topic, [part])] = [(t[0], [tuple(p) for p in t[1]]) for t in r.topics]
            assert topic == topic_name
            if version == 0:
                assert part == (0, 0, 25), f"v0: (error, partition, end offset) {part}"
            else:
                assert part == (0, 0, 0, 25), f"v1: (error, partition, leader epoch, end offset) {part}"
    finally:
        a.close()


def test_offset_commit_v1_and_offset_fetch_v1_store_and_read_offsets(fast_broker, topic_name):
    """kafka-python as a 0.8.2 client commits with OffsetCommit v1 (no generation: a simple
    commit) and reads back with OffsetFetch v1."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    b = fast_broker
    clients.create_topic(b.bootstrap, topic_name, 2)
    group = f"old-{topic_name[-6:]}"
    before = requests_of(b, "OffsetCommit", 1)
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, api_version=(0, 8, 2),
                      enable_auto_commit=False, session_timeout_ms=10000, request_timeout_ms=20000)
    try:
        tps = [TopicPartition(topic_name, p) for p in (0, 1)]
        c.commit({tps[0]: OffsetAndMetadata(7, "m7", -1), tps[1]: OffsetAndMetadata(11, "", -1)})
        assert c.committed(tps[0]) == 7 and c.committed(tps[1]) == 11
    finally:
        c.close()
    assert requests_of(b, "OffsetCommit", 1) > before
    # A modern client (librdkafka, OffsetFetch v7+) sees them too.
    from confluent_kafka import TopicPartition as CTP
    m = clients.consumer(b.bootstrap, **{"group.id": group})
    try:
        got = m.committed([CTP(topic_name, 0), CTP(topic_name, 1)], timeout=15)
    finally:
        m.close()
    assert {tp.partition: tp.offset for tp in got} == {0: 7, 1: 11}, got

def test_offset_commit_v0_and_offset_fetch_v0_answer_unsupported_version_as_kafka_3_9_kraft(fast_broker, topic_name):
    """v0 kept offsets in ZooKeeper; a Kafka 3.9 broker without ZooKeeper answers every
    partition with UNSUPPORTED_VERSION (35), in the v0 layout, and keeps the connection."""
    from kafka.protocol.commit import OffsetCommitRequest, OffsetFetchRequest
    b = fast_broker
    clients.create_topic(b.bootstrap, topic_name, 1)
    a = kp_admin(b.bootstrap, (2, 0))
    try:
        r = a.send_request(OffsetCommitRequest[0]("g0", [(topic_name, [(0, 5, "")])]))
        assert [(t[0], [tuple(p) for p in t[1]]) for t in r.topics] == [(topic_name, [(0, UNSUPPORTED_VERSION)])], r
        r = a.send_request(OffsetCommitRequest[0]("g0", [("no-such-topic", [(0, 5, "")])]))
        assert [(t[0], [tuple(p) for p in t[1]]) for t in r.topics] == [("no-such-topic", [(0, 3)])], r
        r = a.send_request(OffsetFetchRequest[0]("g0", [(topic_name, [0])]))
        # v0 partitions: (partition, offset, metadata, error)
        assert [(t[0], [tuple(p) for p in t[1]]) for t in r.topics] == [(topic_name, [(0, -1, "", UNSUPPORTED_VERSION)])], r
    finally:
        a.close()


def test_api_versions_advertises_kafka_3_9s_oldest_versions(fast_broker):
    """ApiVersions, as a real client reads it: every API Lantern implements starts where Kafka
    3.9's does (Produce and Fetch at v0 with the message formats before v2, converted)."""
    from kafka import KafkaClient
    c = KafkaClient(bootstrap_servers=fast_broker.bootstrap)
    try:
        c.poll(future=c.cluster.request_update(), timeout_ms=10000)
        ranges = c.get_api_versions()
    finally:
        c.close()
    # ListOffsets, OffsetCommit, OffsetFetch, OffsetForLeaderEpoch, CreateTopics, DeleteTopics,
    # DescribeConfigs, AlterReplicaLogDirs, DescribeLogDirs
    for key in (2, 8, 9, 23, 19, 20, 32, 34, 35):
        assert ranges[key][0] == 0, f"API {key}: advertised {ranges[key]}"
    assert ranges[0][0] == 0 and ranges[1][0] == 0, f"Produce {ranges[0]}, Fetch {ranges[1]}"
