"""Claim: the REST proxy's v3 admin resources (docs/rest-proxy.md) say what Kafka's own admin
clients say. Topic, broker and cluster-default broker configs read over REST equal
confluent-kafka's AdminClient.describe_configs (value, default, read-only, source, synonyms);
changes made with PUT, DELETE and configs:alter (validate_only too) are what AdminClient then
reads. A real confluent-kafka consumer group that consumed part of a topic and committed is
listed with its member (client id, assignments), and its per-partition lags and lag summary are
the log end offset minus the committed offset as confluent-kafka computes them and as the
broker's kafka_consumergroup_lag reports them. Error paths answer Confluent's codes: 404 for an
unknown group, consumer or config name, 404 40403 for an unknown topic, 400 40002 for a static
broker config or a bad value, 422 for a body that is not what the endpoint takes.

All through `requests` against a real lantern-broker process."""

from __future__ import annotations

import re
import time
import urllib.request

import requests
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

import clients
from clients import create_topic, produce_confluent

GROUP_PROPS = {"offsets.topic.num.partitions": 5, "group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 1000}


def cluster_root(base: str) -> str:
    r = requests.get(f"{base}/v3/clusters", timeout=10)
    assert r.status_code == 200, r.text
    return f"{base}/v3/clusters/{r.json()['data'][0]['cluster_id']}"


def described(bootstrap: str, kind: str, name: str) -> dict:
    """AdminClient.describe_configs of one resource: {name: ConfigEntry}."""
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the answer is in
    futures = admin.describe_configs([ConfigResource(kind, name)])
    return list(futures.values())[0].result(timeout=10)


def expect_error(response: requests.Response, status: int, code: int) -> dict:
    assert response.status_code == status, (response.request.method, response.url, response.status_code, response.text)
    body = response.json()
    assert body["error_code"] == code and isinstance(body["message"], str), body
    return body


def same_as_admin_client(rest: dict, entry) -> None:
    """One REST config body against confluent-kafka's ConfigEntry of the same config."""
    assert (rest["value"], rest["is_default"], rest["is_read_only"], rest["is_sensitive"]) == \
        (entry.value, entry.is_default, entry.is_read_only, entry.is_sensitive), (rest, entry)
    assert rest["source"] == ConfigSource(entry.source).name, (rest, entry.source)
    # confluent-kafka keeps synonyms in a dict by name (a later one of the same name wins).
    if entry.synonyms:
        assert {s["name"]: (s["value"], s["source"]) for s in rest["synonyms"]} == \
            {n: (s.value, ConfigSource(s.source).name) for n, s in entry.synonyms.items()}, (rest, entry.synonyms)


def test_v3_configs_read_as_admin_client_reads_them(broker_factory, topic_name):
    b = broker_factory()
    root = cluster_root(b.rest_base)
    create_topic(b.bootstrap, topic_name, 1, config={"retention.ms": 123456})
    listed = requests.get(f"{root}/topics/{topic_name}/configs", timeout=10).json()
    assert listed["kind"] == "KafkaTopicConfigList" and listed["metadata"]["self"] == f"{root}/topics/{topic_name}/configs", listed
    admin = described(b.bootstrap, "topic", topic_name)
    assert [c["name"] for c in listed["data"]] == sorted(admin), "every topic config, sorted by name"
    for c in listed["data"]:
        assert c["kind"] == "KafkaTopicConfig" and c["topic_name"] == topic_name
        same_as_admin_client(c, admin[c["name"]])
    one = requests.get(f"{root}/topics/{topic_name}/configs/retention.ms", timeout=10).json()
    assert one["metadata"] == {"self": f"{root}/topics/{topic_name}/configs/retention.ms",
                               "resource_name": f"crn:///kafka={root.rsplit('/', 1)[1]}/topic={topic_name}/config=retention.ms"}, one
    assert (one["value"], one["source"], one["is_default"]) == ("123456", "DYNAMIC_TOPIC_CONFIG", False), one
    assert one["synonyms"][0] == {"name": "retention.ms", "value": "123456", "source": "DYNAMIC_TOPIC_CONFIG"}, one

    brokers = requests.get(f"{root}/brokers/1/configs", timeout=10).json()
    admin = described(b.bootstrap, "broker", "1")
    assert brokers["kind"] == "KafkaBrokerConfigList" and [c["name"] for c in brokers["data"]] == sorted(admin)
    for c in brokers["data"]:
        assert c["kind"] == "KafkaBrokerConfig" and c["broker_id"] == 1
        same_as_admin_client(c, admin[c["name"]])
    defaults = requests.get(f"{root}/broker-configs", timeout=10).json()
    assert defaults["kind"] == "KafkaClusterConfigList" and defaults["data"], defaults
    assert {(c["kind"], c["config_type"]) for c in defaults["data"]} == {("KafkaClusterConfig", "BROKER")}

    expect_error(requests.get(f"{root}/topics/no-such-topic/configs", timeout=10), 404, 40403)
    expect_error(requests.get(f"{root}/topics/{topic_name}/configs/no.such.config", timeout=10), 404, 404)
    expect_error(requests.get(f"{root}/brokers/9/configs", timeout=10), 404, 404)
    expect_error(requests.get(f"{root}/brokers/1/configs/no.such.config", timeout=10), 404, 404)
    expect_error(requests.get(f"{b.rest_base}/v3/clusters/not-this-one/broker-configs", timeout=10), 404, 404)


def test_v3_configs_altered_by_put_delete_and_alter(broker_factory, topic_name):
    b = broker_factory()
    root = cluster_root(b.rest_base)
    create_topic(b.bootstrap, topic_name, 1)
    configs = f"{root}/topics/{topic_name}/configs"
    default = described(b.bootstrap, "topic", topic_name)["retention.ms"].value
    r = requests.put(f"{configs}/retention.ms", json={"value": "7200000"}, timeout=30)
    assert r.status_code == 204, r.text
    assert described(b.bootstrap, "topic", topic_name)["retention.ms"].value == "7200000"
    assert requests.delete(f"{configs}/retention.ms", timeout=30).status_code == 204
    after = described(b.bootstrap, "topic", topic_name)["retention.ms"]
    assert after.is_default and after.value == default != "7200000", after

    batch = {"data": [{"name": "cleanup.policy", "value": "compact"}, {"name": "max.message.bytes", "value": "65536", "operation": "SET"}]}
    r = requests.post(f"{configs}:alter", json={**batch, "validate_only": True}, timeout=30)
    assert r.status_code == 204, r.text
    assert described(b.bootstrap, "topic", topic_name)["cleanup.policy"].value == "delete", "validate_only changes nothing"
    assert requests.post(f"{configs}:alter", json=batch, timeout=30).status_code == 204
    now = described(b.bootstrap, "topic", topic_name)
    assert (now["cleanup.policy"].value, now["max.message.bytes"].value) == ("compact", "65536")
    r = requests.post(f"{configs}:alter", json={"data": [{"name": "cleanup.policy", "operation": "DELETE"}]}, timeout=30)
    assert r.status_code == 204, r.text
    assert described(b.bootstrap, "topic", topic_name)["cleanup.policy"].value == "delete"

    # A broker's dynamic config, then the cluster-wide default of another.
    rate = f"{root}/brokers/1/configs/leader.replication.throttled.rate"
    assert requests.put(rate, json={"value": "1048576"}, timeout=30).status_code == 204
    entry = described(b.bootstrap, "broker", "1")["leader.replication.throttled.rate"]
    assert (entry.value, ConfigSource(entry.source).name) == ("1048576", "DYNAMIC_BROKER_CONFIG"), entry
    assert requests.get(rate, timeout=10).json()["source"] == "DYNAMIC_BROKER_CONFIG"
    r = requests.post(f"{root}/brokers/1/configs:alter",
                      json={"data": [{"name": "leader.replication.throttled.rate", "operation": "DELETE"}]}, timeout=30)
    assert r.status_code == 204, r.text
    assert ConfigSource(described(b.bootstrap, "broker", "1")["leader.replication.throttled.rate"].source).name != "DYNAMIC_BROKER_CONFIG"
    cluster_wide = f"{root}/broker-configs/follower.replication.throttled.rate"
    assert requests.put(cluster_wide, json={"value": "2048"}, timeout=30).status_code == 204
    entry = described(b.bootstrap, "broker", "1")["follower.replication.throttled.rate"]
    assert (entry.value, ConfigSource(entry.source).name) == ("2048", "DYNAMIC_DEFAULT_BROKER_CONFIG"), entry
    assert requests.get(cluster_wide, timeout=10).json()["value"] == "2048"
    assert requests.delete(cluster_wide, timeout=30).status_code == 204
    assert ConfigSource(described(b.bootstrap, "broker", "1")["follower.replication.throttled.rate"].source).name != "DYNAMIC_DEFAULT_BROKER_CONFIG"

    # Errors: an unknown name (nothing sent), a static broker config, a bad value, bad bodies.
    expect_error(requests.put(f"{configs}/no.such.config", json={"value": "1"}, timeout=10), 404, 404)
    expect_error(requests.delete(f"{configs}/no.such.config", timeout=10), 404, 404)
    body = expect_error(requests.post(f"{configs}:alter", json={"data": [{"name": "retention.ms", "value": "1"},
                                                                          {"name": "no.such.config", "value": "1"}]}, timeout=10), 404, 404)
    assert "no.such.config" in body["message"], body
    assert described(b.bootstrap, "topic", topic_name)["retention.ms"].is_default, "nothing of a refused batch applied"
    assert requests.get(f"{root}/brokers/1/configs/num.partitions", timeout=10).json()["is_read_only"] is True
    expect_error(requests.put(f"{root}/brokers/1/configs/num.partitions", json={"value": "7"}, timeout=10), 400, 40002)
    expect_error(requests.put(f"{configs}/retention.ms", json={"value": "soon"}, timeout=10), 400, 40002)
    expect_error(requests.put(f"{configs}/retention.ms", json={"value": 5}, timeout=10), 422, 422)
    expect_error(requests.put(f"{configs}/retention.ms", data="{", headers={"Content-Type": "application/json"}, timeout=10), 422, 422)
    expect_error(requests.post(f"{configs}:alter", json={"data": "retention.ms"}, timeout=10), 422, 422)
    body = expect_error(requests.post(f"{configs}:alter", json={"data": [{"name": "retention.ms", "operation": "APPEND"}]}, timeout=10), 422, 422)
    assert "data[0].operation" in body["message"], body
    expect_error(requests.put(f"{root}/topics/no-such-topic/configs/retention.ms", json={"value": "1"}, timeout=10), 404, 40403)
    assert b.alive()


def kafka_lag_metrics(b, group: str) -> dict[tuple[str, int], int]:
    """kafka_consumergroup_lag of `group` from the broker's /metrics: {(topic, partition): lag}."""
    with urllib.request.urlopen(f"{b.http_base}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("kafka_consumergroup_lag{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line[:line.rindex("}")]))
            if labels.get("consumergroup") == group:
                out[(labels["topic"], int(labels["partition"]))] = int(float(line.rsplit(" ", 1)[1]))
    return out


def test_v3_consumer_groups_and_lags_agree_with_confluent_kafka(broker_factory, topic_name):
    b = broker_factory(props=GROUP_PROPS)
    root = cluster_root(b.rest_base)
    create_topic(b.bootstrap, topic_name, 3)
    produce_confluent(b.bootstrap, topic_name, [(None, b"v%d" % i) for i in range(60)], partition_of=lambda i: i % 3)
    group, upto = f"rest-{topic_name}", {0: 12, 1: 5}
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "client.id": "rest-lag-client",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    try:
        c.subscribe([topic_name])
        pos, deadline = {0: 0, 1: 0}, time.monotonic() + 30
        while not c.assignment() or any(pos[p] < o for p, o in upto.items()):
            assert time.monotonic() < deadline, f"assignment {c.assignment()}, positions {pos}"
            for m in c.consume(num_messages=100, timeout=0.2):
                if not m.error() and m.partition() in pos and m.offset() < upto[m.partition()]:
                    pos[m.partition()] = m.offset() + 1
        done = c.commit(offsets=[TopicPartition(topic_name, p, o) for p, o in upto.items()], asynchronous=False)
        assert all(tp.error is None for tp in done), done
        # The reference: end offset (high watermark) - committed offset, from confluent-kafka.
        committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic_name, p) for p in range(3)], timeout=10)
                     if tp.offset >= 0}
        assert committed == upto, committed
        expected = {p: c.get_watermark_offsets(TopicPartition(topic_name, p), timeout=10, cached=False)[1] - o
                    for p, o in committed.items()}
        assert expected == {0: 8, 1: 15}, expected
        member, assigned = c.memberid(), sorted(tp.partition for tp in c.assignment())

        groups = requests.get(f"{root}/consumer-groups", timeout=10).json()
        assert groups["kind"] == "KafkaConsumerGroupList", groups
        g = next(x for x in groups["data"] if x["consumer_group_id"] == group)
        assert (g["kind"], g["state"], g["is_simple"], g["type"]) == ("KafkaConsumerGroup", "STABLE", False, "CLASSIC"), g
        assert g["partition_assignor"] in ("range", "roundrobin", "cooperative-sticky"), g
        assert g["coordinator"]["related"] == f"{root}/brokers/1" and g["metadata"]["self"] == f"{root}/consumer-groups/{group}"
        assert requests.get(f"{root}/consumer-groups/{group}", timeout=10).json() == g

        consumers = requests.get(f"{root}/consumer-groups/{group}/consumers", timeout=10).json()
        assert [(x["consumer_id"], x["client_id"]) for x in consumers["data"]] == [(member, "rest-lag-client")], consumers
        one = requests.get(f"{root}/consumer-groups/{group}/consumers/{member}", timeout=10).json()
        assert one == consumers["data"][0] and one["kind"] == "KafkaConsumer"
        assignments = requests.get(one["assignments"]["related"], timeout=10).json()
        assert sorted((a["topic_name"], a["partition_id"]) for a in assignments["data"]) == [(topic_name, p) for p in assigned]
        assert assigned == [0, 1, 2]
        # Each one by its own URL; a partition the member is not assigned (or not a number) is 404.
        for a in assignments["data"]:
            assert requests.get(a["metadata"]["self"], timeout=10).json() == a
        for p in ("3", "x"):
            expect_error(requests.get(f"{root}/consumer-groups/{group}/consumers/{member}/assignments/{topic_name}/partitions/{p}", timeout=10), 404, 404)

        lags = requests.get(f"{root}/consumer-groups/{group}/lags", timeout=10).json()
        assert lags["kind"] == "KafkaConsumerLagList"
        got = [(x["partition_id"], x["current_offset"], x["log_end_offset"], x["lag"], x["consumer_id"], x["client_id"]) for x in lags["data"]]
        assert got == [(1, 5, 20, 15, member, "rest-lag-client"), (0, 12, 20, 8, member, "rest-lag-client")], \
            "committed partitions only, largest lag first"
        assert {x["partition_id"]: x["lag"] for x in lags["data"]} == expected
        one = requests.get(f"{root}/consumer-groups/{group}/lags/{topic_name}/partitions/0", timeout=10).json()
        assert one == lags["data"][1] and one["kind"] == "KafkaConsumerLag"
        summary = requests.get(f"{root}/consumer-groups/{group}/lag-summary", timeout=10).json()
        assert (summary["kind"], summary["max_lag"], summary["total_lag"]) == ("KafkaConsumerGroupLagSummary", 15, 23), summary
        assert (summary["max_lag_topic_name"], summary["max_lag_partition_id"], summary["max_lag_consumer_id"],
                summary["max_lag_client_id"]) == (topic_name, 1, member, "rest-lag-client"), summary
        assert summary["max_lag_partition"]["related"] == f"{root}/topics/{topic_name}/partitions/1"

        # The broker's own kafka_consumergroup_lag says the same.
        deadline = time.monotonic() + 10
        while (metric := kafka_lag_metrics(b, group)) != {(topic_name, p): lag for p, lag in expected.items()}:
            assert time.monotonic() < deadline, f"kafka_consumergroup_lag {metric}, REST {expected}"
            time.sleep(0.3)

        expect_error(requests.get(f"{root}/consumer-groups/{group}/lags/{topic_name}/partitions/2", timeout=10), 404, 404)
        expect_error(requests.get(f"{root}/consumer-groups/{group}/consumers/not-a-member", timeout=10), 404, 404)
    finally:
        c.close()
    # Once the member has left: no consumers, the lags stay, owned by nobody.
    g = requests.get(f"{root}/consumer-groups/{group}", timeout=10).json()
    assert g["state"] == "EMPTY", g
    assert requests.get(f"{root}/consumer-groups/{group}/consumers", timeout=10).json()["data"] == []
    lags = requests.get(f"{root}/consumer-groups/{group}/lags", timeout=10).json()["data"]
    assert [(x["lag"], x["consumer_id"]) for x in lags] == [(15, ""), (8, "")], lags
    for path in ("", "/consumers", "/lags", "/lag-summary", "/lags/t/partitions/0"):
        expect_error(requests.get(f"{root}/consumer-groups/no-such-group{path}", timeout=10), 404, 404)
    expect_error(requests.get(f"{b.rest_base}/v3/clusters/not-this-one/consumer-groups", timeout=10), 404, 404)
    # The REST metrics count the new routes by their templates, as every other route.
    with urllib.request.urlopen(f"{b.http_base}/metrics", timeout=10) as r:
        text = r.read().decode()
    lags_route = 'endpoint="GET /v3/clusters/{cluster_id}/consumer-groups/{consumer_group_id}/lags"'
    assert f"kafka_rest_restmetrics_requests_total{{{lags_route}}} 3" in text
    assert f'kafka_rest_restmetrics_errors_total{{{lags_route},status="404"}} 1' in text
    assert clients.topic_partition_count(b.bootstrap, topic_name) == 3


def test_v3_topic_created_with_replicas_assignments(broker_factory, topic_name):
    """Confluent's replicas_assignments gives the partitions and their replicas; validate_only
    answers 200 (Confluent's status) and creates nothing."""
    b = broker_factory()
    root = cluster_root(b.rest_base)
    body = {"topic_name": topic_name, "replicas_assignments": {"1": [1], "0": [1], "2": [1]}}
    r = requests.post(f"{root}/topics", json={**body, "validate_only": True}, timeout=30)
    assert r.status_code == 200 and r.json()["partitions_count"] == 3, r.text
    assert topic_name not in AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10).topics
    r = requests.post(f"{root}/topics", json=body, timeout=30)
    assert r.status_code == 201, r.text
    clients.wait_topic(b.bootstrap, topic_name, 3)
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(topic_name, timeout=10).topics[topic_name]
    assert {p: m.replicas for p, m in md.partitions.items()} == {0: [1], 1: [1], 2: [1]}
    expect_error(requests.post(f"{root}/topics", json={"topic_name": topic_name + "-x", "replicas_assignments": {"0": [9]}}, timeout=30), 400, 40002)
    expect_error(requests.post(f"{root}/topics", json={"topic_name": topic_name + "-x", "replicas_assignments": {"0": [1], "2": [1]}}, timeout=30), 400, 40002)
    for bad, field in [({"x": [1]}, "replicas_assignments.x"), ({"0": 1}, "replicas_assignments.0"), ([[1]], "replicas_assignments")]:
        body = expect_error(requests.post(f"{root}/topics", json={"topic_name": topic_name + "-x", "replicas_assignments": bad}, timeout=10), 422, 422)
        assert field in body["message"], body
