"""Claim: the REST proxy serves Confluent's v2 consumer instances (docs/rest-proxy.md): each
instance is a real member of its Kafka consumer group, so it shares partitions with a
confluent-kafka consumer of the same group and its commits are where confluent-kafka resumes;
records produced by kcat come back byte-exact (binary) or as JSON; every route answers
Confluent's bodies and codes; an instance made through one broker is used through any broker of
the cluster; an idle instance expires and leaves its group.

All through `requests` against real lantern-broker processes."""

from __future__ import annotations

import base64
import json
import random
import time

import requests
from confluent_kafka import Consumer

from clients import create_topic, kcat_produce

V2 = {"Content-Type": "application/vnd.kafka.v2+json"}
BINARY = {"Accept": "application/vnd.kafka.binary.v2+json"}
JSONFMT = {"Accept": "application/vnd.kafka.json.v2+json"}
FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0"}


def create(base: str, group: str, **body) -> dict:
    r = requests.post(f"{base}/consumers/{group}", json=body, headers=V2, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/vnd.kafka.v2+json"
    return r.json()


def wait_assigned(uri: str, n: int, timeout: float = 20.0) -> list[tuple[str, int]]:
    """Waits until the instance holds n partitions (its background task joins the group; no
    read is needed, so none of the records is taken here)."""
    deadline = time.monotonic() + timeout
    while True:
        parts = requests.get(f"{uri}/assignments", timeout=10).json()["partitions"]
        if len(parts) == n or time.monotonic() > deadline:
            assert len(parts) == n, parts
            return sorted((p["topic"], p["partition"]) for p in parts)
        time.sleep(0.1)


def read_until(uri: str, n: int, accept: dict, timeout: float = 20.0) -> list[dict]:
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        r = requests.get(f"{uri}/records?timeout=500", headers=accept, timeout=10)
        assert r.status_code == 200, r.text
        out += r.json()
    assert len(out) == n, (len(out), n)
    return out


def unb64(s: str | None) -> bytes | None:
    return None if s is None else base64.b64decode(s)


def test_v2_consumer_reads_kcat_records_byte_exact_and_every_route_answers_confluents_way(broker_factory, topic_name):
    b = broker_factory(props=FAST_GROUPS)
    base = b.rest_base
    create_topic(b.bootstrap, topic_name, 3)
    rnd = random.Random(18)
    alphabet = [x for x in range(256) if x not in (ord(":"), ord("\n"))]
    sent = [(bytes(rnd.choices(alphabet, k=rnd.randint(1, 40))), bytes(rnd.choices(alphabet, k=rnd.randint(0, 300)))) for _ in range(300)]
    kcat_produce("debian", b.bootstrap, topic_name, sent, "none")

    c = create(base, "g-routes", name="one", **{"auto.offset.reset": "earliest", "auto.commit.enable": "false"})
    uri = c["base_uri"]
    assert c["instance_id"] == "one" and uri == f"{base}/consumers/g-routes/instances/one", c
    # Create errors: the same name (409 40902), bad configuration (422 42204), content type (415).
    r = requests.post(f"{base}/consumers/g-routes", json={"name": "one"}, headers=V2, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (409, 40902), r.text
    for body, code in [({"format": "avro"}, 42204), ({"format": "xml"}, 42204), ({"auto.offset.reset": "smallest"}, 42204), ({"fetch.min.bytes": -5}, 40001)]:
        r = requests.post(f"{base}/consumers/g-routes", json=body, headers=V2, timeout=10)
        assert (r.status_code, r.json()["error_code"]) == (422, code), (body, r.text)
    r = requests.post(f"{base}/consumers/g-routes", json={}, headers={"Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 415, r.text
    r = requests.post(f"{base}/consumers/g-routes", data=b"{not json", headers=V2, timeout=10)
    assert r.status_code == 400, r.text

    # Subscribe; the subscription reads back; payload errors are 422 42206.
    for bad in [{}, {"topics": []}, {"topics": [1]}, {"topics": ["a"], "topic_pattern": "b"}, {"topic_pattern": "("}]:
        r = requests.post(f"{uri}/subscription", json=bad, headers=V2, timeout=10)
        assert (r.status_code, r.json()["error_code"]) == (422, 42206), (bad, r.text)
    r = requests.post(f"{uri}/subscription", json={"topics": [topic_name]}, headers=V2, timeout=10)
    assert r.status_code == 204, r.text
    assert requests.get(f"{uri}/subscription", timeout=10).json() == {"topics": [topic_name]}
    r = requests.post(f"{uri}/assignments", json={"partitions": [{"topic": topic_name, "partition": 0}]}, headers=V2, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (409, 40903), r.text

    # Every record comes back byte-exact, in each partition's order.
    assert wait_assigned(uri, 3) == [(topic_name, p) for p in range(3)]
    got = read_until(uri, len(sent), BINARY)
    assert sorted((unb64(x["key"]), unb64(x["value"])) for x in got) == sorted(sent)
    by_p: dict[int, list[int]] = {}
    for x in got:
        assert x["topic"] == topic_name
        by_p.setdefault(x["partition"], []).append(x["offset"])
    assert all(offs == list(range(len(offs))) for offs in by_p.values()), by_p
    # Nothing more: an empty answer after the timeout, not a hang.
    t0 = time.monotonic()
    assert requests.get(f"{uri}/records?timeout=300", headers=BINARY, timeout=10).json() == []
    assert time.monotonic() - t0 < 3
    # The format is the instance's: json asked of a binary instance is 406 40601.
    r = requests.get(f"{uri}/records", headers=JSONFMT, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (406, 40601), r.text
    r = requests.get(f"{uri}/records?timeout=soon", headers=BINARY, timeout=10)
    assert r.status_code == 400, r.text

    # Seek: to an offset, to the beginning, to the end; unassigned partitions are 40903.
    p0 = sorted(o for x in got for o in [x["offset"]] if x["partition"] == 0)
    r = requests.post(f"{uri}/positions", json={"offsets": [{"topic": topic_name, "partition": 0, "offset": 2}]}, headers=V2, timeout=10)
    assert r.status_code == 204, r.text
    again = read_until(uri, len(p0) - 2, BINARY)
    assert [x["offset"] for x in again] == p0[2:]
    r = requests.post(f"{uri}/positions/beginning", json={"partitions": [{"topic": topic_name, "partition": 1}]}, headers=V2, timeout=10)
    assert r.status_code == 204, r.text
    n1 = sum(1 for x in got if x["partition"] == 1)
    assert len(read_until(uri, n1, BINARY)) == n1
    r = requests.post(f"{uri}/positions/beginning", json={"partitions": [{"topic": topic_name, "partition": 2}]}, headers=V2, timeout=10)
    r = requests.post(f"{uri}/positions/end", json={"partitions": [{"topic": topic_name, "partition": 2}]}, headers=V2, timeout=10)
    assert r.status_code == 204
    assert requests.get(f"{uri}/records?timeout=200", headers=BINARY, timeout=10).json() == []
    for path, body in [("positions", {"offsets": [{"topic": "nope", "partition": 0, "offset": 1}]}),
                       ("positions/end", {"partitions": [{"topic": topic_name, "partition": 7}]})]:
        r = requests.post(f"{uri}/{path}", json=body, headers=V2, timeout=10)
        assert (r.status_code, r.json()["error_code"]) == (409, 40903), (path, r.text)
    r = requests.post(f"{uri}/positions", json={"offsets": [{"topic": topic_name, "partition": 0, "offset": -1}]}, headers=V2, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (422, 42206), r.text

    # Commit given offsets, then everything consumed; read the committed offsets back.
    r = requests.post(f"{uri}/offsets", json={"offsets": [{"topic": topic_name, "partition": 0, "offset": 1}]}, headers=V2, timeout=10)
    assert r.status_code == 200, r.text
    asked = {"partitions": [{"topic": topic_name, "partition": p} for p in range(3)]}
    offs = requests.get(f"{uri}/offsets", json=asked, headers=V2, timeout=10).json()["offsets"]
    assert offs == [{"topic": topic_name, "partition": 0, "offset": 1, "metadata": ""}], offs
    r = requests.post(f"{uri}/offsets", headers=V2, timeout=10)
    assert r.status_code == 200, r.text
    offs = {o["partition"]: o["offset"] for o in requests.get(f"{uri}/offsets", json=asked, headers=V2, timeout=10).json()["offsets"]}
    ends = {p: len([x for x in got if x["partition"] == p]) for p in range(3)}
    assert offs == ends, (offs, ends)
    r = requests.get(f"{uri}/offsets", headers=V2, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (404, 40402), r.text

    # Unsubscribe: no assignment; then a manual assignment, readable at once.
    assert requests.delete(f"{uri}/subscription", timeout=10).status_code == 204
    assert requests.get(f"{uri}/subscription", timeout=10).json() == {"topics": []}
    r = requests.post(f"{uri}/assignments", json={"partitions": [{"topic": topic_name, "partition": 1}]}, headers=V2, timeout=10)
    assert r.status_code == 204, r.text
    assert requests.get(f"{uri}/assignments", timeout=10).json() == {"partitions": [{"topic": topic_name, "partition": 1}]}
    r = requests.post(f"{uri}/subscription", json={"topics": [topic_name]}, headers=V2, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (409, 40903), r.text

    # Delete; then every route of the instance is 404 40403.
    assert requests.delete(uri, timeout=10).status_code == 204
    for method, path in [("GET", "/subscription"), ("POST", "/subscription"), ("DELETE", "/subscription"), ("GET", "/assignments"),
                         ("POST", "/assignments"), ("POST", "/positions"), ("POST", "/positions/beginning"), ("POST", "/positions/end"),
                         ("GET", "/records"), ("POST", "/offsets"), ("GET", "/offsets"), ("DELETE", "")]:
        r = requests.request(method, f"{uri}{path}", json={}, headers=V2, timeout=10)
        assert (r.status_code, r.json()["error_code"]) == (404, 40403), (method, path, r.text)


def test_json_instance_commits_where_a_confluent_consumer_resumes(broker_factory, topic_name):
    b = broker_factory(props=FAST_GROUPS)
    create_topic(b.bootstrap, topic_name, 2)
    values = [{"n": i, "s": "é" * (i % 3)} for i in range(40)]
    kcat_produce("debian", b.bootstrap, topic_name, [(str(i).encode(), json.dumps(v).encode()) for i, v in enumerate(values)], "none")
    kcat_produce("debian", b.bootstrap, topic_name, [(b"k", b"not json")], "none", partition=0)
    c = create(b.rest_base, "g-json", format="json", **{"auto.offset.reset": "earliest", "auto.commit.enable": "false"})
    uri = c["base_uri"]
    assert c["instance_id"].startswith("rest-consumer-1-"), c
    requests.post(f"{uri}/subscription", json={"topics": [topic_name]}, headers=V2, timeout=10)
    wait_assigned(uri, 2)
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 40 and time.monotonic() < deadline:
        r = requests.get(f"{uri}/records?timeout=500", headers=JSONFMT, timeout=10)
        if r.status_code == 422:
            # The record that is not JSON: 42203 once everything before it was answered.
            assert r.json()["error_code"] == 42203, r.text
            continue
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/vnd.kafka.json.v2+json", r.text
        got += r.json()
    assert sorted((x["key"], json.dumps(x["value"], sort_keys=True)) for x in got) == sorted((i, json.dumps(v, sort_keys=True)) for i, v in enumerate(values))
    assert requests.post(f"{uri}/offsets", headers=V2, timeout=10).status_code == 200
    committed = {x["partition"]: max(y["offset"] for y in got if y["partition"] == x["partition"]) + 1 for x in got}
    assert requests.delete(uri, timeout=10).status_code == 204
    # A confluent-kafka consumer of the group starts where the instance committed.
    consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-json", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic_name])
        m, deadline = None, time.monotonic() + 20
        while m is None and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error():
                m = None
        # Everything up to the record that is not JSON was committed; partition 1 is done.
        assert m is not None and (m.partition(), m.offset(), m.value()) == (0, committed[0], b"not json"), (m and (m.partition(), m.offset()), committed)
    finally:
        consumer.close()


def test_instance_and_confluent_consumer_split_the_partitions_and_idle_expiry_frees_them(broker_factory, topic_name):
    b = broker_factory(props={**FAST_GROUPS, "rest.consumer.instance.timeout.ms": "3000", "rest.consumer.max.instances": "1"})
    create_topic(b.bootstrap, topic_name, 4)
    uri = create(b.rest_base, "g-split")["base_uri"]
    r = requests.post(f"{b.rest_base}/consumers/g-other", json={}, headers=V2, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (429, 429), r.text
    requests.post(f"{uri}/subscription", json={"topics": [topic_name]}, headers=V2, timeout=10)
    wait_assigned(uri, 4)
    held: set[int] = set()

    def on_assign(_c, parts):
        held.clear()
        held.update(p.partition for p in parts)

    consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-split", "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
    try:
        consumer.subscribe([topic_name], on_assign=on_assign)
        deadline = time.monotonic() + 20
        mine: list = []
        while time.monotonic() < deadline:
            consumer.poll(0.2)
            mine = requests.get(f"{uri}/assignments", timeout=10).json()["partitions"]
            requests.get(f"{uri}/records?timeout=50", headers=BINARY, timeout=10)
            if len(held) == 2 and len(mine) == 2:
                break
        instance = {p["partition"] for p in mine}
        assert len(held) == 2 and len(instance) == 2 and held | instance == {0, 1, 2, 3}, (held, instance)
        # Leave the instance idle: after rest.consumer.instance.timeout.ms it leaves the group
        # and the confluent consumer gets every partition.
        t0 = time.monotonic()
        while len(held) != 4 and time.monotonic() - t0 < 15:
            consumer.poll(0.2)
        assert held == {0, 1, 2, 3}, held
        assert time.monotonic() - t0 < 3 + 6, "the group waited past the instance timeout and a rebalance"
        r = requests.get(f"{uri}/assignments", timeout=10)
        assert (r.status_code, r.json()["error_code"]) == (404, 40403), r.text
        # The expired instance's place under rest.consumer.max.instances is free again.
        create(b.rest_base, "g-other")
    finally:
        consumer.close()


def test_an_instance_made_through_one_broker_is_used_through_any(cluster_factory, topic_name):
    cl = cluster_factory(3, props=FAST_GROUPS)
    n1, n2, n3 = cl.nodes[1], cl.nodes[2], cl.nodes[3]
    create_topic(n1.bootstrap, topic_name, 3)
    sent = [(f"k{i}".encode(), bytes([65 + i % 26]) * (i % 50)) for i in range(90)]
    kcat_produce("debian", n1.bootstrap, topic_name, sent, "none")
    c = create(n1.rest_base, "g-any", **{"auto.offset.reset": "earliest"})
    assert c["base_uri"].startswith(n1.rest_base) and c["instance_id"].startswith("rest-consumer-1-"), c
    via2 = f"{n2.rest_base}/consumers/g-any/instances/{c['instance_id']}"
    via3 = f"{n3.rest_base}/consumers/g-any/instances/{c['instance_id']}"
    assert requests.post(f"{via2}/subscription", json={"topics": [topic_name]}, headers=V2, timeout=10).status_code == 204
    assert requests.get(f"{via3}/subscription", timeout=10).json() == {"topics": [topic_name]}
    wait_assigned(via2, 3)
    got = read_until(via2, len(sent), BINARY)
    assert sorted((unb64(x["key"]), unb64(x["value"]) or b"") for x in got) == sorted(sent)
    assert requests.post(f"{via3}/offsets", headers=V2, timeout=10).status_code == 200
    asked = {"partitions": [{"topic": topic_name, "partition": p} for p in range(3)]}
    offs = requests.get(f"{via2}/offsets", json=asked, headers=V2, timeout=10).json()["offsets"]
    assert sum(o["offset"] for o in offs) == len(sent), offs
    # A named instance is found through the others too.
    named = create(n2.rest_base, "g-any2", name="named")["base_uri"]
    assert named.startswith(n2.rest_base)
    assert requests.get(f"{n3.rest_base}/consumers/g-any2/instances/named/subscription", timeout=10).json() == {"topics": []}
    assert requests.delete(via3, timeout=10).status_code == 204
    r = requests.get(f"{via2}/assignments", timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (404, 40403), r.text
    r = requests.get(f"{n1.rest_base}/consumers/g-any/instances/rest-consumer-9-x/assignments", timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (404, 40403), r.text
