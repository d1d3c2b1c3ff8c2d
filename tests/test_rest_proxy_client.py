"""Claim: Confluent's own client for its REST Proxy, npm `kafka-rest` 0.0.5 (confluentinc's
kafka-rest-node, which speaks Confluent's v1 API), and the examples shipped in that package,
used unmodified, work against the REST proxy of a real lantern-broker (docs/rest-proxy.md):
metadata, produce to a topic and to a partition, and a consumer instance that subscribes,
reads, commits and shuts down; every record comes back byte-exact, checked with confluent-kafka
and kcat. tests/rest_client/setup.sh installs the package (tests/run calls it; the fixture
below calls it again)."""

from __future__ import annotations

import base64
import json
import random
import re
import subprocess
from pathlib import Path

import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from clients import consume_all_confluent, create_topic, kcat_produce, watermarks

HERE = Path(__file__).resolve().parent
FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0"}
V1 = {"Content-Type": "application/vnd.kafka.v1+json"}


@pytest.fixture(scope="module")
def kafka_rest() -> Path:
    r = subprocess.run(["bash", str(HERE / "rest_client" / "setup.sh")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"tests/rest_client/setup.sh failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    pkg = Path(r.stdout.strip().splitlines()[-1])
    assert json.loads((pkg / "package.json").read_text())["version"] == "0.0.5"
    return pkg


def node(args: list[str], stdin: bytes | None = None, timeout: float = 60) -> str:
    r = subprocess.run(["node", *args], input=stdin, capture_output=True, timeout=timeout)
    assert r.returncode == 0, f"node {args} exited {r.returncode}:\n{r.stdout.decode()[-3000:]}\n{r.stderr.decode()[-3000:]}"
    return r.stdout.decode()


def b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode()


def test_confluents_node_client_reads_metadata_produces_and_consumes_byte_exact(broker_factory, topic_name, tmp_path, kafka_rest):
    b = broker_factory(props=FAST_GROUPS)
    create_topic(b.bootstrap, topic_name, 3)
    rnd = random.Random(1818)
    # 100 records from kcat first (its `key:value` lines: no ':' or newline in keys, none in values).
    safe = [x for x in range(256) if x not in (ord(":"), ord("\n"))]
    by_kcat = [(bytes(rnd.choices(safe, k=rnd.randint(1, 20))), bytes(rnd.choices(safe, k=rnd.randint(1, 200)))) for _ in range(100)]
    kcat_produce("debian", b.bootstrap, topic_name, by_kcat, "none")
    # Then the client's own: any bytes, unkeyed and keyed, to the topic and to partition 1. Not
    # empty ones: the client's consumer turns an empty key or value into null (its fromBase64
    # tests the base64 string's truth), which would say nothing about the proxy.
    rand = lambda lo, hi: bytes(rnd.getrandbits(8) for _ in range(rnd.randint(lo, hi)))  # noqa: E731
    to_topic = [(None if i % 4 == 0 else rand(1, 30), rand(1, 400)) for i in range(200)]
    to_partition = [(rand(1, 10) if i % 2 else None, rand(1, 100)) for i in range(50)]
    plan = {
        "url": b.rest_base, "topic": topic_name, "partition": 1, "group": "node-group",
        "to_topic": [{"key": b64(k), "value": b64(v)} for k, v in to_topic],
        "to_partition": [{"key": b64(k), "value": b64(v)} for k, v in to_partition],
        "expect": 350,
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = json.loads(node([str(HERE / "rest_client" / "drive.js"), str(kafka_rest), str(tmp_path / "plan.json")]).splitlines()[-1])

    # Metadata as the client parsed it.
    assert out["brokers"] == [1], out["brokers"]
    assert topic_name in out["topics"]
    assert out["topic"]["name"] == topic_name and len(out["topic"]["partitions"]) == 3, out["topic"]
    assert [p["partition"] for p in out["partitions"]] == [0, 1, 2] and all(p["leader"] == 1 for p in out["partitions"])
    assert out["partition"] == {"partition": 1, "leader": 1, "replicas": [{"broker": 1, "leader": True, "in_sync": True}]}
    assert out["missing_topic"]["status"] == 404 and out["missing_topic"]["data"]["error_code"] == 40401, out["missing_topic"]

    # Produce answers: one offset per record, no errors; the partition route kept partition 1.
    for answer, sent in ((out["produced_topic"], to_topic), (out["produced_partition"], to_partition)):
        assert len(answer["offsets"]) == len(sent) and all(o["error_code"] is None for o in answer["offsets"]), answer
    assert {o["partition"] for o in out["produced_partition"]["offsets"]} == {1}

    # What is in the log, read by confluent-kafka: kcat's records and the client's, byte-exact at
    # the offsets the produce answers gave.
    log = {(p, o): (k, v) for p, o, k, v, _ in consume_all_confluent(b.bootstrap, topic_name, 3)}
    assert len(log) == 350
    theirs = dict(log)
    for answer, sent in ((out["produced_topic"], to_topic), (out["produced_partition"], to_partition)):
        for o, (k, v) in zip(answer["offsets"], sent):
            assert theirs.pop((o["partition"], o["offset"])) == (k, v), o
    assert sorted(theirs.values()) == sorted(by_kcat)

    # partition.messages read partition 1 whole (up to 1000 records), byte-exact.
    p1 = sorted((o, k, v) for (p, o), (k, v) in log.items() if p == 1)
    assert [(m["offset"], None if m["key"] is None else base64.b64decode(m["key"]), base64.b64decode(m["value"])) for m in out["partition_messages"]] == p1
    assert all(m["partition"] == 1 for m in out["partition_messages"])

    # The consumer instance read every record once, byte-exact.
    got = {}
    for r in out["consumed"]:
        key = (r["partition"], r["offset"])
        assert key not in got, f"read twice: {key}"
        got[key] = (None if r["key"] is None else base64.b64decode(r["key"]), None if r["value"] is None else base64.b64decode(r["value"]))
    assert got == log
    # Its commit (v1: a bare list) is at each partition's end, and the group's committed offsets say so.
    ends = {p: watermarks(b.bootstrap, topic_name, p)[1] for p in range(3)}
    assert sorted((c["topic"], c["partition"], c["committed"]) for c in out["commit"]) == [(topic_name, p, ends[p]) for p in range(3)], out["commit"]
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "node-group"})
    try:
        committed = c.committed([TopicPartition(topic_name, p) for p in range(3)], timeout=10)
    finally:
        c.close()
    assert {tp.partition: tp.offset for tp in committed} == ends
    # shutdown() deleted the instance.
    r = requests.post(f"{out['instance']['uri']}/offsets", headers=V1, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (404, 40403), r.text


def test_confluents_examples_run_unmodified(broker_factory, topic_name, kafka_rest):
    b = broker_factory(props=FAST_GROUPS)
    create_topic(b.bootstrap, topic_name, 2)
    examples = kafka_rest / "examples"
    url = ["--url", b.rest_base]

    text = node([str(examples / "metadata.js"), *url])
    assert "Broker{id=1}" in text and f'Topic{{name="{topic_name}"}}' in text, text
    # It shows the first topic listed (an internal one may sort before ours) and its partition 0.
    first = re.search(r"Getting single topic (\S+):", text).group(1)
    n = len(requests.get(f"{b.rest_base}/topics/{first}", timeout=10).json()["partitions"])
    assert f'Topic{{name="{first}", partitions={n}}}' in text, text
    assert f'Partition{{topic="{first}", id=0, leader=1, replicas=1}}' in text, text

    lines = [f"line-{i} {'é' * (i % 4)} {'x' * i}" for i in range(60)]
    text = node([str(examples / "console_producer.js"), *url, "--topic", topic_name, "--format", "binary"], stdin="\n".join(lines).encode() + b"\n")
    assert "Error" not in text and "Finished sending 60 messages" in text, text
    log = consume_all_confluent(b.bootstrap, topic_name, 2)
    assert sorted(v for *_, v, _ in log) == sorted(x.encode() for x in lines)

    text = node([str(examples / "console_consumer.js"), *url, "--topic", topic_name, "--format", "binary", "--from-beginning",
                 "--message-limit", "60", "--group", "examples"])
    printed = [x for x in text.splitlines() if x.startswith("line-")]
    assert sorted(printed) == sorted(lines), text[-2000:]
    assert "Shutdown cleanly." in text, text[-2000:]


def test_v1_routes_answer_confluents_codes(broker_factory, topic_name):
    b = broker_factory(props=FAST_GROUPS)
    base = b.rest_base
    create_topic(b.bootstrap, topic_name, 1)
    create_topic(b.bootstrap, topic_name + "-b", 1)
    # Produce in v1's types answers v1's content type; avro has no schema registry here.
    r = requests.post(f"{base}/topics/{topic_name}", json={"records": [{"value": b64(b"v1")}]}, headers={"Content-Type": "application/vnd.kafka.binary.v1+json"}, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/vnd.kafka.v1+json" and r.json()["offsets"][0]["offset"] == 0, r.text
    r = requests.post(f"{base}/topics/{topic_name}", json={"records": [{"value": {"a": 1}}]}, headers={"Content-Type": "application/vnd.kafka.json.v1+json"}, timeout=10)
    assert r.status_code == 200 and r.json()["offsets"][0]["offset"] == 1, r.text
    r = requests.post(f"{base}/topics/{topic_name}", json={"records": [{"value": {"a": 1}}]}, headers={"Content-Type": "application/vnd.kafka.avro.v1+json"}, timeout=10)
    assert r.status_code == 415, r.text
    # The instance-less partition read: json values, a bad offset, an unknown partition, and a
    # record that is not JSON read as json.
    r = requests.get(f"{base}/topics/{topic_name}/partitions/0/messages?offset=1&count=5", headers={"Accept": "application/vnd.kafka.json.v1+json"}, timeout=10)
    assert r.status_code == 200 and r.json() == [{"key": None, "value": {"a": 1}, "partition": 0, "offset": 1}], r.text
    r = requests.get(f"{base}/topics/{topic_name}/partitions/0/messages?offset=0", headers={"Accept": "application/vnd.kafka.json.v1+json"}, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (422, 42203), r.text
    expect = [(f"{base}/topics/{topic_name}/partitions/0/messages", 400, 400), (f"{base}/topics/{topic_name}/partitions/0/messages?offset=x", 400, 400),
              (f"{base}/topics/{topic_name}/partitions/7/messages?offset=0", 404, 40402), (f"{base}/topics/nope/partitions/0/messages?offset=0", 404, 40401)]
    for url, status, code in expect:
        r = requests.get(url, timeout=10)
        assert (r.status_code, r.json()["error_code"]) == (status, code), (url, r.text)
    # The old consumer's reset values are v1's only; v2 refuses them as Confluent's v2 does.
    r = requests.post(f"{base}/consumers/g1", json={"name": "c", "auto.offset.reset": "smallest"}, headers=V1, timeout=10)
    assert r.status_code == 200, r.text
    uri = r.json()["base_uri"]
    r = requests.post(f"{base}/consumers/g1", json={"auto.offset.reset": "smallest"}, headers={"Content-Type": "application/vnd.kafka.v2+json"}, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (422, 42204), r.text
    # Reads: a schema format is 406, an unknown topic 40401, the first topic read is the one.
    r = requests.get(f"{uri}/topics/{topic_name}", headers={"Accept": "application/vnd.kafka.avro.v1+json"}, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (406, 40601), r.text
    r = requests.get(f"{uri}/topics/no-such-topic", timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (404, 40401), r.text
    got = []
    for _ in range(40):
        r = requests.get(f"{uri}/topics/{topic_name}", headers={"Accept": "application/vnd.kafka.binary.v1+json"}, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/vnd.kafka.binary.v1+json", r.text
        got += r.json()
        if len(got) >= 2:
            break
    assert [(x["offset"], base64.b64decode(x["value"])) for x in got] == [(0, b"v1"), (1, b'{"a":1}')], got
    r = requests.get(f"{uri}/topics/{topic_name}-b", timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (409, 40901), r.text
    r = requests.post(f"{uri}/offsets", headers=V1, timeout=10)
    assert r.status_code == 200 and r.json() == [{"topic": topic_name, "partition": 0, "consumed": 2, "committed": 2}], r.text
    assert requests.delete(uri, timeout=10).status_code == 204
    r = requests.get(f"{uri}/topics/{topic_name}", timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (404, 40403), r.text
