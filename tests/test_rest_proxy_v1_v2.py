"""Claim: every broker also serves Confluent's v2 produce and metadata API and the managed
service's stateless v1 API (docs/rest-proxy.md): records produced through v2 (binary and json)
and v1 (text and base64) land byte-exact where kcat reads them; records kcat and
confluent-kafka produce (uncompressed, lz4, zstd, gzip, snappy) are read back byte-exact through
the v1 consume route, paging with its NextOffset header; topics created through v1 have the
partitions and configs asked for; metadata agrees with the cluster; every error path answers
the documented status and code (40401, 40402, 400 out of range, 415, 422) rather than a 500.

All through `requests` against real lantern-broker processes."""

from __future__ import annotations

import base64
import json
import os
import random
import string

import requests
from confluent_kafka import Producer

from clients import create_topic, kcat_produce, wait_topic
from test_rest_proxy import kcat_records

BINARY = {"Content-Type": "application/vnd.kafka.binary.v2+json", "Accept": "application/vnd.kafka.v2+json"}
JSON_V2 = {"Content-Type": "application/vnd.kafka.json.v2+json", "Accept": "application/vnd.kafka.v2+json"}


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def unb64(s: str | None) -> bytes | None:
    return None if s is None else base64.b64decode(s)


def error(r: requests.Response, status: int, code: int) -> str:
    assert r.status_code == status, (r.request.method, r.url, r.status_code, r.text)
    body = r.json()
    assert body["error_code"] == code and isinstance(body["message"], str), (r.url, body)
    return body["message"]


def consume_all(base: str, topic: str, partition: int, start: int, count: int, encoding: str = "utf8"):
    """Every record from `start` to the end through the v1 consume route, `count` a page,
    following NextOffset; returns the records and the number of pages."""
    out, offset, pages = [], start, 0
    while True:
        r = requests.get(f"{base}/v1/consumer/topics/{topic}/partitions/{partition}/offsets/{offset}",
                         params={"count": count, "encoding": encoding}, timeout=30)
        assert r.status_code == 200, r.text
        page = r.json()
        nxt = int(r.headers["NextOffset"])
        if not page:
            assert nxt == offset
            return out, pages
        pages += 1
        assert len(page) <= count and [x["offset"] for x in page] == list(range(offset, offset + len(page))), page[:2]
        assert nxt == page[-1]["offset"] + 1
        out += page
        offset = nxt


def test_v2_produce_binary_and_json_10000_records_read_back_byte_exact(broker_factory, topic_name):
    """5,000 binary records (random bytes, null and empty keys) and 5,000 json records in
    pages of 1,000, to the topic and to a partition; kcat reads exactly those bytes at the
    offsets v2 reported."""
    b = broker_factory()
    create_topic(b.bootstrap, topic_name, 3)
    rng = random.Random(182)
    sent, reports = [], []
    for page in range(5):
        recs = []
        for i in range(1000):
            key = None if i % 9 == 0 else bytes(rng.randrange(256) for _ in range(rng.randrange(0, 10)))
            recs.append((key, os.urandom(rng.randrange(0, 200))))
        body = {"records": [{"value": b64(v), **({"key": b64(k)} if k is not None else {})} for k, v in recs]}
        url = f"{b.rest_base}/topics/{topic_name}" + (f"/partitions/{page % 3}" if page % 2 else "")
        r = requests.post(url, data=json.dumps(body), headers=BINARY, timeout=60)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "application/vnd.kafka.v2+json"
        out = r.json()
        assert out["key_schema_id"] is None and out["value_schema_id"] is None
        assert len(out["offsets"]) == 1000 and all(o["error_code"] is None and o["error"] is None for o in out["offsets"])
        if page % 2:
            assert {o["partition"] for o in out["offsets"]} == {page % 3}
        sent += recs
        reports += out["offsets"]
    for page in range(5):
        values = [{"n": page * 1000 + i, "s": "é" * (i % 5), "l": [i, None, True]} for i in range(1000)]
        body = {"records": [{"key": f"k{i % 50}", "value": v, **({"partition": 2} if page == 4 else {})} for i, v in enumerate(values)]}
        r = requests.post(f"{b.rest_base}/topics/{topic_name}", data=json.dumps(body), headers=JSON_V2, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()["offsets"]
        assert all(o["error_code"] is None for o in out)
        if page == 4:
            assert {o["partition"] for o in out} == {2}
        # The json format writes each key and value as compact JSON text (object keys sorted).
        sent += [(json.dumps(f"k{i % 50}").encode(), json.dumps(v, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode())
                 for i, v in enumerate(values)]
        reports += out
    stored = kcat_records(b.bootstrap, topic_name)
    assert len(stored) == len(sent) == 10_000
    for (key, value), rep in zip(sent, reports):
        assert stored[(rep["partition"], rep["offset"])] == (key, value), rep


def test_v2_metadata_and_error_paths(broker_factory, topic_name):
    b = broker_factory()
    base = b.rest_base
    create_topic(b.bootstrap, topic_name, 2, config={"retention.ms": 3600000})
    topics = requests.get(f"{base}/topics", timeout=10)
    assert topics.status_code == 200 and topic_name in topics.json(), topics.text
    t = requests.get(f"{base}/topics/{topic_name}", timeout=10).json()
    assert t["name"] == topic_name and t["configs"].get("retention.ms") == "3600000", t
    assert [p["partition"] for p in t["partitions"]] == [0, 1]
    assert t["partitions"][1] == {"partition": 1, "leader": 1, "replicas": [{"broker": 1, "leader": True, "in_sync": True}]}
    assert requests.get(f"{base}/topics/{topic_name}/partitions", timeout=10).json() == t["partitions"]
    assert requests.get(f"{base}/topics/{topic_name}/partitions/1", timeout=10).json() == t["partitions"][1]
    assert requests.get(f"{base}/brokers", timeout=10).json() == {"brokers": [1]}

    one = json.dumps({"records": [{"value": b64(b"x")}]})
    error(requests.get(f"{base}/topics/missing", timeout=10), 404, 40401)
    error(requests.get(f"{base}/topics/missing/partitions", timeout=10), 404, 40401)
    error(requests.get(f"{base}/topics/{topic_name}/partitions/2", timeout=10), 404, 40402)
    error(requests.get(f"{base}/topics/{topic_name}/partitions/x", timeout=10), 404, 404)
    error(requests.post(f"{base}/topics/missing", data=one, headers=BINARY, timeout=10), 404, 40401)
    error(requests.post(f"{base}/topics/{topic_name}/partitions/5", data=one, headers=BINARY, timeout=10), 404, 40402)
    for ct in ["application/json", "application/vnd.kafka.avro.v2+json", "text/plain"]:
        error(requests.post(f"{base}/topics/{topic_name}", data=one, headers={"Content-Type": ct}, timeout=10), 415, 415)
    assert "records[1].value" in error(requests.post(f"{base}/topics/{topic_name}", headers=BINARY, timeout=10,
                                                     data=json.dumps({"records": [{"value": "aGk="}, {"value": "%%%"}]})), 422, 422)
    assert "records[0].key" in error(requests.post(f"{base}/topics/{topic_name}", headers=BINARY, timeout=10,
                                                   data=json.dumps({"records": [{"key": 5}]})), 422, 422)
    error(requests.post(f"{base}/topics/{topic_name}", data=json.dumps({"values": []}), headers=BINARY, timeout=10), 422, 422)
    error(requests.post(f"{base}/topics/{topic_name}", data=json.dumps({"records": []}), headers=JSON_V2, timeout=10), 422, 422)
    error(requests.post(f"{base}/topics/{topic_name}", data="{not json", headers=JSON_V2, timeout=10), 400, 400)
    # A record asking for a partition the topic lacks fails alone; the others are written.
    r = requests.post(f"{base}/topics/{topic_name}", headers=JSON_V2, timeout=10,
                      data=json.dumps({"records": [{"value": 1, "partition": 7}, {"value": 2, "partition": 0}]}))
    assert r.status_code == 200, r.text
    bad, good = r.json()["offsets"]
    assert bad["error_code"] == 40402 and bad["offset"] is None and bad["error"], bad
    assert good["error_code"] is None and good["partition"] == 0
    stored = kcat_records(b.bootstrap, topic_name)
    assert list(stored.values()) == [(None, b"2")]


def test_v1_topics_metadata_and_produce_10000_records_read_back_byte_exact(broker_factory, topic_name):
    b = broker_factory()
    base = b.rest_base
    r = requests.put(f"{base}/v1/topics/{topic_name}", timeout=30,
                     json={"partition_count": 3, "replication_factor": 1, "topic_properties": {"retention.ms": 7200000, "cleanup.policy": "delete"}})
    assert r.status_code == 200, r.text
    assert r.json() == {"topic": topic_name, "partition_count": 3, "replication_factor": 1,
                        "topic_properties": {"retention.ms": 7200000, "cleanup.policy": "delete"}}
    wait_topic(b.bootstrap, topic_name, 3)
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    cfg = list(admin.describe_configs([ConfigResource("topic", topic_name)]).values())[0].result(timeout=10)
    assert cfg["retention.ms"].value == "7200000"
    error(requests.put(f"{base}/v1/topics/{topic_name}", json={"partition_count": 3}, timeout=30), 400, 40002)
    assert "partition_count" in error(requests.put(f"{base}/v1/topics/x-{topic_name}", json={"partition_count": 0}, timeout=30), 422, 422)
    assert "topic_properties" in error(requests.put(f"{base}/v1/topics/x-{topic_name}", json={"topic_properties": [1]}, timeout=30), 422, 422)

    assert topic_name in requests.get(f"{base}/v1/metadata/topics", timeout=10).json()["topics"]
    parts = requests.get(f"{base}/v1/metadata/topics/{topic_name}/partitions", timeout=10).json()
    assert [(p["partition"], p["leader"]) for p in parts] == [(0, 1), (1, 1), (2, 1)]
    assert requests.get(f"{base}/v1/metadata/topics/{topic_name}/partitions/2", timeout=10).json() == parts[2]
    error(requests.get(f"{base}/v1/metadata/topics/missing/partitions", timeout=10), 404, 40401)
    error(requests.get(f"{base}/v1/metadata/topics/{topic_name}/partitions/3", timeout=10), 404, 40402)

    # 5,000 text records (strings as UTF-8; other JSON as compact JSON text), then 5,000
    # binary ones with encoding=base64.
    rng = random.Random(181)
    sent, reports = [], []
    for page in range(5):
        recs = [{"key": f"key-{rng.randrange(100)}", "value": "".join(rng.choice(string.printable + "ßø€") for _ in range(rng.randrange(60)))}
                for _ in range(999)] + [{"value": {"nested": [1, 2]}, "partition": 1}]
        r = requests.post(f"{base}/v1/producer/topics/{topic_name}", json={"records": recs}, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()["offsets"]
        assert len(out) == 1000 and all(o["error_code"] is None for o in out) and out[-1]["partition"] == 1
        sent += [(x.get("key", "").encode() or None, x["value"].encode() if isinstance(x["value"], str) else b'{"nested":[1,2]}') for x in recs]
        reports += out
    for page in range(5):
        recs = [(None if i % 4 == 0 else os.urandom(8), os.urandom(rng.randrange(0, 100))) for i in range(1000)]
        body = {"records": [{"key": None if k is None else b64(k), "value": b64(v)} for k, v in recs]}
        r = requests.post(f"{base}/v1/producer/topics/{topic_name}?encoding=base64", json=body, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()["offsets"]
        assert all(o["error_code"] is None for o in out)
        sent += recs
        reports += out
    stored = kcat_records(b.bootstrap, topic_name)
    assert len(stored) == len(sent) == 10_000
    for (key, value), rep in zip(sent, reports):
        assert stored[(rep["partition"], rep["offset"])] == (key, value), rep

    error(requests.post(f"{base}/v1/producer/topics/missing", json={"records": [{"value": "x"}]}, timeout=10), 404, 40401)
    assert "records[0].value" in error(requests.post(f"{base}/v1/producer/topics/{topic_name}?encoding=base64",
                                                     json={"records": [{"value": "!!"}]}, timeout=10), 422, 422)
    error(requests.post(f"{base}/v1/producer/topics/{topic_name}?encoding=hex", json={"records": [{"value": "x"}]}, timeout=10), 400, 400)
    r = requests.post(f"{base}/v1/producer/topics/{topic_name}", json={"records": [{"value": "x", "partition": 3}]}, timeout=10)
    assert r.status_code == 200 and r.json()["offsets"][0]["error_code"] == 40402, r.text


def test_v1_consume_reads_what_kcat_produced_paging_with_next_offset(broker_factory, topic_name):
    """3,000 text records from kcat read back through v1 in pages of 700 (text), and binary
    records from confluent-kafka read back with encoding=base64; every error path."""
    b = broker_factory()
    base = b.rest_base
    create_topic(b.bootstrap, topic_name, 2)
    rng = random.Random(183)
    alphabet = (string.ascii_letters + string.digits + " !#$%&()*+,-./;<=>?@[]^_{|}~").encode()
    msgs = [(bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 12))), bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 150))))
            for _ in range(3000)]
    kcat_produce("debian", b.bootstrap, topic_name, msgs, "none", partition=0)
    got, pages = consume_all(base, topic_name, 0, 0, 700)
    assert pages == 5 and len(got) == 3000
    assert [(x["key"].encode(), x["value"].encode()) for x in got] == msgs
    assert all(x["partition"] == 0 and x["timestampType"] == "CreateTime" and x["timestamp"] > 1.6e12 for x in got)
    # From the middle, and the default count of 1.
    r = requests.get(f"{base}/v1/consumer/topics/{topic_name}/partitions/0/offsets/1234", timeout=10)
    assert r.status_code == 200 and r.headers["NextOffset"] == "1235" and len(r.json()) == 1, r.text
    assert r.json()[0]["value"].encode() == msgs[1234][1]
    # At the end: nothing, and NextOffset stays.
    r = requests.get(f"{base}/v1/consumer/topics/{topic_name}/partitions/0/offsets/3000?count=5", timeout=10)
    assert (r.status_code, r.json(), r.headers["NextOffset"]) == (200, [], "3000")

    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    binary = [(None if i % 5 == 0 else os.urandom(6), os.urandom(rng.randrange(0, 400))) for i in range(500)]
    for k, v in binary:
        p.produce(topic_name, key=k, value=v, partition=1)
    assert p.flush(30) == 0
    got, _ = consume_all(base, topic_name, 1, 0, 200, encoding="base64")
    assert [(unb64(x["key"]), unb64(x["value"])) for x in got] == binary

    consume = f"{base}/v1/consumer/topics/{topic_name}/partitions"
    msg = error(requests.get(f"{consume}/0/offsets/3001", timeout=10), 400, 400)
    assert "out of range" in msg and "3000" in msg, msg
    for q in ["count=0", "count=10001", "count=x", "encoding=hex"]:
        error(requests.get(f"{consume}/0/offsets/0?{q}", timeout=10), 400, 400)
    error(requests.get(f"{consume}/0/offsets/-1", timeout=10), 400, 400)
    error(requests.get(f"{consume}/0/offsets/x", timeout=10), 400, 400)
    error(requests.get(f"{consume}/2/offsets/0", timeout=10), 404, 40402)
    error(requests.get(f"{consume}/x/offsets/0", timeout=10), 404, 404)
    error(requests.get(f"{base}/v1/consumer/topics/missing/partitions/0/offsets/0", timeout=10), 404, 40401)
    # Records out are counted.
    metrics = requests.get(f"{b.http_base}/metrics", timeout=10).text
    out = [line for line in metrics.splitlines() if line.startswith("kafka_rest_restmetrics_recordsout_total")]
    assert out and float(out[0].split()[-1]) >= 3500, out


def test_v1_consume_of_compressed_topics_and_the_6_mib_cap(broker_factory, topic_name):
    b = broker_factory()
    base = b.rest_base
    rng = random.Random(184)
    for codec in ["lz4", "zstd", "gzip", "snappy"]:
        t = f"{topic_name}-{codec}"
        create_topic(b.bootstrap, t, 1, config={"compression.type": "producer"})
        msgs = [(f"k{i}".encode(), ("".join(rng.choice("abcde") for _ in range(rng.randrange(1, 300)))).encode()) for i in range(1500)]
        kcat_produce("debian", b.bootstrap, t, msgs, codec)
        got, _ = consume_all(base, t, 0, 0, 1000)
        assert [(x["key"].encode(), x["value"].encode()) for x in got] == msgs, codec
        # From inside a compressed batch.
        mid, _ = consume_all(base, t, 0, 777, 10_000)
        assert [x["offset"] for x in mid] == list(range(777, 1500)), codec

    # Keys and values of one answer stop at 6 MiB: ten 1,000,000-byte values come six at a time.
    big = f"{topic_name}-big"
    create_topic(b.bootstrap, big, 1)
    p = Producer({"bootstrap.servers": b.bootstrap, "message.max.bytes": 1100000})
    values = [bytes([i]) * 1_000_000 for i in range(10)]
    for v in values:
        p.produce(big, value=v)
    assert p.flush(30) == 0
    r = requests.get(f"{base}/v1/consumer/topics/{big}/partitions/0/offsets/0?count=10&encoding=base64", timeout=30)
    assert r.status_code == 200, r.text
    first = r.json()
    assert 1 <= len(first) <= 6 and r.headers["NextOffset"] == str(len(first)), (len(first), r.headers["NextOffset"])
    got, _ = consume_all(base, big, 0, 0, 10, encoding="base64")
    assert [unb64(x["value"]) for x in got] == values
