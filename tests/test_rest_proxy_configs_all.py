"""Claim: the REST proxy's v3 config routes over every broker or several topics at once
(docs/rest-proxy.md) answer what the one-resource routes answer and what confluent-kafka's
AdminClient reads: `GET .../brokers/-/configs` is each live broker's configs (broker by broker,
each as `.../brokers/{b}/configs` lists it), `GET .../topics/-/configs` every topic's but the
internal ones, and `POST .../topics/-/configs:alter` changes several topics in one request:
204, 207 with `failures` naming the topics Kafka refused (the others changed), and with an
unknown topic or config name 404 and nothing changed; `validate_only` changes nothing.

All through `requests` against real lantern-broker processes."""

from __future__ import annotations

import requests
from confluent_kafka.admin import AdminClient, ConfigResource

from clients import create_topic


def cluster_root(base: str) -> str:
    r = requests.get(f"{base}/v3/clusters", timeout=10)
    assert r.status_code == 200, r.text
    return f"{base}/v3/clusters/{r.json()['data'][0]['cluster_id']}"


def described(bootstrap: str, kind: str, name: str) -> dict:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_configs([ConfigResource(kind, name)])
    return {n: e.value for n, e in list(futures.values())[0].result(timeout=10).items()}


def expect_error(r: requests.Response, status: int, code: int | None = None) -> None:
    assert r.status_code == status, (r.request.method, r.url, r.status_code, r.text)
    if code is not None:
        assert r.json()["error_code"] == code, r.text


def test_all_brokers_configs_are_each_brokers_configs(cluster_factory):
    cl = cluster_factory(2)
    n1, n2 = cl.nodes[1], cl.nodes[2]
    root = cluster_root(n1.rest_base)
    r = requests.put(f"{root}/brokers/2/configs/leader.replication.throttled.rate", json={"value": "123456"}, timeout=10)
    assert r.status_code == 204, r.text
    r = requests.get(f"{root}/brokers/-/configs", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "KafkaBrokerConfigList" and body["metadata"]["self"] == f"{root}/brokers/-/configs", body["metadata"]
    each = []
    for b in (1, 2):
        one = requests.get(f"{root}/brokers/{b}/configs", timeout=10)
        assert one.status_code == 200, one.text
        each += one.json()["data"]
    assert body["data"] == each
    assert [x["broker_id"] for x in body["data"]] == sorted(x["broker_id"] for x in body["data"]) and {x["broker_id"] for x in body["data"]} == {1, 2}
    rate = {x["broker_id"]: x["value"] for x in body["data"] if x["name"] == "leader.replication.throttled.rate"}
    assert rate[2] == "123456" and rate[1] != "123456", rate
    assert described(n2.bootstrap, "broker", "2")["leader.replication.throttled.rate"] == "123456"
    expect_error(requests.get(f"{n1.rest_base}/v3/clusters/no-such-cluster/brokers/-/configs", timeout=10), 404)


def test_all_topics_configs_and_multi_topic_alter(broker_factory, topic_name):
    b = broker_factory()
    root = cluster_root(b.rest_base)
    t1, t2 = topic_name + "-1", topic_name + "-2"
    create_topic(b.bootstrap, t1, 1, {"retention.ms": "3600000"})
    create_topic(b.bootstrap, t2, 1)

    r = requests.get(f"{root}/topics/-/configs", timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "KafkaTopicConfigList" and body["metadata"]["self"] == f"{root}/topics/-/configs"
    names = [x["topic_name"] for x in body["data"]]
    assert not any(n.startswith("__") for n in names) and names == sorted(names)
    for t in (t1, t2):
        assert [x for x in body["data"] if x["topic_name"] == t] == requests.get(f"{root}/topics/{t}/configs", timeout=10).json()["data"]
    assert {(x["topic_name"], x["value"]) for x in body["data"] if x["name"] == "retention.ms"} >= {(t1, "3600000")}

    alter = f"{root}/topics/-/configs:alter"
    changes = {"data": [
        {"topic_name": t1, "configs": [{"name": "retention.ms", "operation": "DELETE"}, {"name": "cleanup.policy", "value": "compact"}]},
        {"topic_name": t2, "configs": [{"name": "retention.ms", "value": "7200000"}]},
    ]}
    # validate_only and refused requests change nothing.
    assert requests.post(alter, json={**changes, "validate_only": True}, timeout=10).status_code == 204
    unknown_topic = {"data": changes["data"] + [{"topic_name": topic_name + "-none", "configs": [{"name": "retention.ms", "value": "1"}]}]}
    expect_error(requests.post(alter, json=unknown_topic, timeout=10), 404, 40403)
    unknown_name = {"data": changes["data"][:1] + [{"topic_name": t2, "configs": [{"name": "no.such.config", "value": "1"}]}]}
    expect_error(requests.post(alter, json=unknown_name, timeout=10), 404)
    for bad in [{}, {"data": {}}, {"data": [{"topic_name": t1}]}, {"data": [{"topic_name": t1, "configs": []}] * 2}, {"data": [], "validate_only": "x"}]:
        expect_error(requests.post(alter, json=bad, timeout=10), 422)
    assert (described(b.bootstrap, "topic", t1)["retention.ms"], described(b.bootstrap, "topic", t1)["cleanup.policy"]) == ("3600000", "delete")
    assert described(b.bootstrap, "topic", t2)["retention.ms"] != "7200000"

    assert requests.post(alter, json=changes, timeout=10).status_code == 204
    c1, c2 = described(b.bootstrap, "topic", t1), described(b.bootstrap, "topic", t2)
    assert (c1["retention.ms"], c1["cleanup.policy"], c2["retention.ms"]) == ("604800000", "compact", "7200000"), (c1, c2)

    # Kafka refuses one topic's value: 207 naming it; the other topic's change is made.
    partly = {"data": [
        {"topic_name": t1, "configs": [{"name": "retention.ms", "value": "60000"}]},
        {"topic_name": t2, "configs": [{"name": "retention.ms", "value": "not-a-number"}]},
    ]}
    r = requests.post(alter, json=partly, timeout=10)
    assert r.status_code == 207, r.text
    failures = r.json()["failures"]
    assert [(f["topic_name"], f["error_code"]) for f in failures] == [(t2, 40002)] and failures[0]["message"], failures
    assert (described(b.bootstrap, "topic", t1)["retention.ms"], described(b.bootstrap, "topic", t2)["retention.ms"]) == ("60000", "7200000")
    assert requests.post(alter, json={"data": []}, timeout=10).status_code == 204
    expect_error(requests.post(f"{b.rest_base}/v3/clusters/no-such-cluster/topics/-/configs:alter", json=changes, timeout=10), 404)
