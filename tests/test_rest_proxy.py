"""Claim: every broker serves Confluent's v3 REST API on rest.listeners (docs/rest-proxy.md):
the cluster, brokers, topics, partitions and replicas as the metadata has them; topics created
and deleted; records produced (one, several, a chunked stream, records:batch) land byte-exact
where real Kafka clients (kcat, confluent-kafka) read them, keyed records in the partition the
Java partitioner (murmur2) picks, through any broker of a cluster; bad input gets Confluent's
error bodies (413 before the body is read, 422 naming the field, 404 40403 for an unknown
topic, 408 for a body that stops arriving) while Kafka traffic goes on; each request counts in
/metrics and leaves a request-log line with its route.

All through `requests` against real lantern-broker processes."""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import time

import requests
from confluent_kafka import Consumer, Producer, TopicPartition

from clients import KCAT, create_topic, kcat_env, kcat_produce, wait_topic
from lantern import run_broker_expect_exit

JSON = {"Content-Type": "application/json"}


def cluster_id(base: str) -> str:
    r = requests.get(f"{base}/v3/clusters", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["cluster_id"]


def kcat_records(bootstrap: str, topic: str) -> dict[tuple[int, int], tuple[bytes | None, bytes | None]]:
    """Every record of `topic` read by kcat, byte-exact: kcat prints each key and value with its
    length (%K, %S; -1 for null) so any bytes survive."""
    r = subprocess.run([KCAT, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                        "-f", "%p %o %K %S|%k%s\n"], env=kcat_env("debian"), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    out, i, records = r.stdout, 0, {}
    while i < len(out):
        bar = out.index(b"|", i)
        p, o, kl, vl = (int(x) for x in out[i:bar].split())
        i = bar + 1
        key = out[i:i + kl] if kl >= 0 else None
        i += max(kl, 0)
        value = out[i:i + vl] if vl >= 0 else None
        i += max(vl, 0)
        assert out[i:i + 1] == b"\n", f"kcat output out of step at byte {i}"
        i += 1
        records[(p, o)] = (key, value)
    return records


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def test_v3_resources_describe_the_cluster(broker_factory, topic_name):
    b = broker_factory()
    base = b.rest_base
    create_topic(b.bootstrap, topic_name, 3)
    c = cluster_id(base)
    root = f"{base}/v3/clusters/{c}"
    cl = requests.get(root, timeout=10).json()
    assert cl["kind"] == "KafkaCluster" and cl["metadata"]["self"] == root, cl
    assert cl["metadata"]["resource_name"] == f"crn:///kafka={c}"
    assert cl["controller"]["related"] == f"{root}/brokers/1"
    brokers = requests.get(f"{root}/brokers", timeout=10).json()
    assert brokers["kind"] == "KafkaBrokerList" and [x["broker_id"] for x in brokers["data"]] == [1], brokers
    one = requests.get(f"{root}/brokers/1", timeout=10).json()
    assert (one["kind"], one["host"], one["port"]) == ("KafkaBroker", b.host, b.port), one
    topics = requests.get(f"{root}/topics", timeout=10).json()
    assert topics["kind"] == "KafkaTopicList" and topics["metadata"]["self"] == f"{root}/topics"
    assert topic_name in [t["topic_name"] for t in topics["data"]]
    t = requests.get(f"{root}/topics/{topic_name}", timeout=10).json()
    assert (t["kind"], t["partitions_count"], t["replication_factor"], t["is_internal"]) == ("KafkaTopic", 3, 1, False), t
    assert t["metadata"]["self"] == f"{root}/topics/{topic_name}"
    parts = requests.get(f"{root}/topics/{topic_name}/partitions", timeout=10).json()
    assert [p["partition_id"] for p in parts["data"]] == [0, 1, 2] and parts["kind"] == "KafkaPartitionList"
    p2 = requests.get(f"{root}/topics/{topic_name}/partitions/2", timeout=10).json()
    assert p2["leader"]["related"] == f"{root}/topics/{topic_name}/partitions/2/replicas/1", p2
    reps = requests.get(f"{root}/topics/{topic_name}/partitions/2/replicas", timeout=10).json()
    assert [(r["broker_id"], r["is_leader"], r["is_in_sync"]) for r in reps["data"]] == [(1, True, True)], reps
    assert requests.get(f"{root}/topics/{topic_name}/partitions/2/replicas/1", timeout=10).json()["kind"] == "KafkaReplica"

    def error(url: str, status: int, code: int):
        r = requests.get(url, timeout=10)
        assert r.status_code == status, (url, r.status_code, r.text)
        body = r.json()
        assert body["error_code"] == code and isinstance(body["message"], str), (url, body)

    error(f"{base}/v3/clusters/not-this-one/topics", 404, 404)
    error(f"{root}/topics/no-such-topic", 404, 40403)
    error(f"{root}/topics/no-such-topic/partitions", 404, 40403)
    error(f"{root}/topics/{topic_name}/partitions/3", 404, 40403)
    error(f"{root}/topics/{topic_name}/partitions/x", 404, 404)
    error(f"{root}/topics/{topic_name}/partitions/0/replicas/7", 404, 404)
    error(f"{root}/brokers/9", 404, 404)
    error(f"{base}/no/such/route", 404, 404)


def test_v3_topics_are_created_and_deleted(broker_factory, topic_name):
    b = broker_factory()
    root = f"{b.rest_base}/v3/clusters/{cluster_id(b.rest_base)}"
    body = {"topic_name": topic_name, "partitions_count": 4, "configs": [{"name": "cleanup.policy", "value": "compact"}]}
    r = requests.post(f"{root}/topics", json=body, timeout=30)
    assert r.status_code == 201, r.text
    assert (r.json()["kind"], r.json()["partitions_count"]) == ("KafkaTopic", 4)
    wait_topic(b.bootstrap, topic_name, 4)
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    cfg = admin.describe_configs([ConfigResource("topic", topic_name)])
    assert list(cfg.values())[0].result(timeout=10)["cleanup.policy"].value == "compact"
    again = requests.post(f"{root}/topics", json=body, timeout=30)
    assert (again.status_code, again.json()["error_code"]) == (400, 40002), again.text
    for bad, field in [({"topic_name": 5}, "topic_name"), ({"topic_name": "x", "partitions_count": "3"}, "partitions_count"),
                       ({"topic_name": "x", "configs": [{"value": "1"}]}, "configs[0].name")]:
        r = requests.post(f"{root}/topics", json=bad, timeout=30)
        assert r.status_code == 422 and field in r.json()["message"], (bad, r.status_code, r.text)
    bad_config = requests.post(f"{root}/topics", json={"topic_name": topic_name + "-b", "configs": [{"name": "retention.ms", "value": "soon"}]}, timeout=30)
    assert (bad_config.status_code, bad_config.json()["error_code"]) == (400, 40002), bad_config.text
    d = requests.delete(f"{root}/topics/{topic_name}", timeout=30)
    assert d.status_code == 204, d.text
    assert requests.get(f"{root}/topics/{topic_name}", timeout=10).status_code == 404
    assert requests.delete(f"{root}/topics/{topic_name}", timeout=30).json()["error_code"] == 40403


def test_v3_streaming_produce_10000_records_read_back_byte_exact(broker_factory, topic_name):
    """10,000 records of random bytes (some keys null, some empty) streamed in one chunked
    request; kcat reads back exactly those bytes at the offsets the delivery reports gave."""
    b = broker_factory()
    create_topic(b.bootstrap, topic_name, 4)
    root = f"{b.rest_base}/v3/clusters/{cluster_id(b.rest_base)}"
    rng = random.Random(18)
    sent = []
    for i in range(10_000):
        key = None if i % 7 == 0 else bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
        value = os.urandom(rng.randrange(0, 300))
        sent.append((key, value))

    def body():
        for key, value in sent:
            rec = {"value": {"type": "BINARY", "data": b64(value)}}
            if key is not None:
                rec["key"] = {"type": "BINARY", "data": b64(key)}
            yield (json.dumps(rec) + "\n").encode()

    started = time.monotonic()
    r = requests.post(f"{root}/topics/{topic_name}/records", data=body(), headers=JSON, stream=True, timeout=120)
    assert r.status_code == 200 and "chunked" in r.request.headers.get("Transfer-Encoding", ""), r.status_code
    reports = [json.loads(line) for line in r.iter_lines() if line.strip()]
    elapsed = time.monotonic() - started
    assert len(reports) == len(sent), f"{len(reports)} reports for {len(sent)} records"
    bad = [x for x in reports if x["error_code"] != 200]
    assert not bad, bad[:3]
    stored = kcat_records(b.bootstrap, topic_name)
    assert len(stored) == len(sent)
    for (key, value), rep in zip(sent, reports):
        assert stored[(rep["partition_id"], rep["offset"])] == (key, value), rep
        assert rep["value"] == {"type": "BINARY", "size": len(value)}
    print(f"10,000 records streamed in {elapsed:.1f}s")

    # Keyed records go where the Java producer's partitioner sends them: the same as
    # librdkafka's murmur2_random partitioner, which is Kafka's murmur2.
    keyed = [(k, rep["partition_id"]) for (k, _), rep in zip(sent, reports) if k][:200]
    p = Producer({"bootstrap.servers": b.bootstrap, "partitioner": "murmur2_random"})
    landed = {}
    for i, (k, _) in enumerate(keyed):
        p.produce(topic_name, key=k, value=b"x", on_delivery=lambda err, msg, i=i: landed.__setitem__(i, msg.partition()))
    p.flush(30)
    assert [landed[i] for i in range(len(keyed))] == [part for _, part in keyed]
    assert len({part for _, part in keyed}) == 4


def test_v3_records_types_headers_timestamps_and_batch(broker_factory, topic_name):
    b = broker_factory()
    create_topic(b.bootstrap, topic_name, 2)
    root = f"{b.rest_base}/v3/clusters/{cluster_id(b.rest_base)}"
    one = {"partition_id": 1, "key": {"type": "STRING", "data": "clé"}, "value": {"type": "JSON", "data": {"n": [1, 2]}},
           "headers": [{"name": "h1", "value": b64(b"\x00\xff")}, {"name": "h2", "value": None}],
           "timestamp": "2021-02-05T19:14:42.123Z"}
    r = requests.post(f"{root}/topics/{topic_name}/records", json=one, timeout=30)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["error_code"], rep["partition_id"], rep["offset"], rep["timestamp"]) == (200, 1, 0, "2021-02-05T19:14:42.123Z"), rep
    assert rep["key"] == {"type": "STRING", "size": len("clé".encode())} and rep["value"]["type"] == "JSON"
    batch = {"entries": [{"id": "a", "partition_id": 0, "value": {"type": "STRING", "data": "first"}},
                         {"id": "b", "value": {"type": "BINARY", "data": "%%"}},
                         {"id": "c", "partition_id": 0, "value": {"type": "STRING", "data": "second"}}]}
    r = requests.post(f"{root}/topics/{topic_name}/records:batch", json=batch, timeout=30)
    assert r.status_code == 207, r.text
    res = r.json()
    assert [(s["id"], s["partition_id"], s["offset"]) for s in res["successes"]] == [("a", 0, 0), ("c", 0, 1)], res
    assert [(f["id"], f["error_code"]) for f in res["failures"]] == [("b", 422)] and "entries[1].value.data" in res["failures"][0]["message"]
    for bad_batch, message in [({"entries": []}, "Empty batch."), ({"entries": [{"id": "x"}, {"id": "x"}]}, "not distinct"),
                               ({"entries": [{"id": str(i)} for i in range(11)]}, "Too many")]:
        r = requests.post(f"{root}/topics/{topic_name}/records:batch", json=bad_batch, timeout=30)
        assert (r.status_code, r.json()["error_code"]) == (400, 42208) and message in r.json()["message"], r.text

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "rest-check", "enable.auto.commit": False})
    c.assign([TopicPartition(topic_name, 1, 0), TopicPartition(topic_name, 0, 0)])
    got = {}
    deadline = time.monotonic() + 30
    while len(got) < 3 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got[(m.partition(), m.offset())] = m
    c.close()
    m = got[(1, 0)]
    assert (m.key(), m.value()) == ("clé".encode(), b'{"n":[1,2]}')
    assert m.headers() == [("h1", b"\x00\xff"), ("h2", None)]
    assert m.timestamp() == (1, 1612552482123)
    assert [got[(0, o)].value() for o in (0, 1)] == [b"first", b"second"]


def raw_http(port: int, head: bytes, body: bytes = b"", wait: float = 10.0) -> bytes:
    """Sends raw bytes (a request a client library would not send) and returns what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(head + body)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"}" in out:
                    break
        except socket.timeout:
            pass
        return out


def test_v3_bad_input_is_refused_and_kafka_traffic_goes_on(broker_factory, topic_name):
    b = broker_factory(props={"rest.max.request.bytes": "65536", "rest.request.timeout.ms": "1500"})
    create_topic(b.bootstrap, topic_name, 1)
    c = cluster_id(b.rest_base)
    path = f"/v3/clusters/{c}/topics/{topic_name}/records"
    url = b.rest_base + path

    # 413 from the declared length alone: the body is never sent.
    started = time.monotonic()
    out = raw_http(b.rest_port, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    assert b'"error_code":413' in out and time.monotonic() - started < 5

    for body, field in [(b'{"value": {"type": "BINARY", "data": "not base64!"}}', "value.data"),
                        (b'{"value": {"type": "STRING", "data": 5}}', "value.data"),
                        (b'{"value": {"type": "AVRO", "data": {}}}', "value.type"),
                        (b'{"partition_id": "zero"}', "partition_id"),
                        (b'{"timestamp": "yesterday"}', "timestamp"),
                        (b'{"value": ', "body"), (b"", "body")]:
        r = requests.post(url, data=body, headers=JSON, timeout=10)
        assert r.status_code == 422 and r.json()["error_code"] == 422 and field in r.json()["message"], (body, r.status_code, r.text)
    r = requests.post(url, data=b"{}", headers={"Content-Type": "text/plain"}, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (415, 415)
    r = requests.post(b.rest_base + f"/v3/clusters/{c}/topics/missing/records", json={}, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (404, 40403)
    r = requests.post(url, json={"partition_id": 5, "value": {"type": "STRING", "data": "x"}}, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (404, 40403)

    # A body that stops arriving: 408 after rest.request.timeout.ms, and meanwhile Kafka
    # clients produce as ever.
    with socket.create_connection(("127.0.0.1", b.rest_port), timeout=10) as slow:
        slow.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"val".encode())
        kcat_produce("debian", b.bootstrap, topic_name, [(b"k", b"while-a-body-hangs")], "none")
        started = time.monotonic()
        answer = slow.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - started < 5
    # A stream whose record grows past the limit ends with a 413 report.
    big = b'{"value": {"type": "STRING", "data": "' + b"x" * 70000 + b'"}}'
    r = requests.post(url, data=iter([b'{"value": {"type": "STRING", "data": "ok"}}', big]), headers=JSON, timeout=30)
    reports = [json.loads(x) for x in r.text.splitlines() if x.strip()]
    assert [x["error_code"] for x in reports] == [200, 413], reports
    assert b.alive()


def test_rest_metrics_and_request_log(broker_factory, topic_name, tmp_path):
    log = tmp_path / "requests.log"
    b = broker_factory(props={"request.log.path": str(log)})
    create_topic(b.bootstrap, topic_name, 1)
    root = f"{b.rest_base}/v3/clusters/{cluster_id(b.rest_base)}"
    for _ in range(3):
        assert requests.post(f"{root}/topics/{topic_name}/records", json={"value": {"type": "STRING", "data": "abc"}}, timeout=10).status_code == 200
    assert requests.get(f"{root}/topics/nope", timeout=10).status_code == 404
    text = requests.get(f"{b.http_base}/metrics", timeout=10).text
    produce = 'endpoint="POST /v3/clusters/{cluster_id}/topics/{topic_name}/records"'
    assert f"kafka_rest_restmetrics_requests_total{{{produce}}} 3" in text
    assert 'kafka_rest_restmetrics_errors_total{endpoint="GET /v3/clusters/{cluster_id}/topics/{topic_name}",status="404"} 1' in text
    assert f"kafka_rest_restmetrics_requestlatencyms_count{{{produce}}} 3" in text
    assert "kafka_rest_restmetrics_recordsin_total 3" in text and "kafka_rest_restmetrics_bytesin_total 9" in text
    deadline = time.monotonic() + 10
    lines = []
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.exists() else []
        if sum(1 for x in lines if x.get("listener") == "REST") >= 5:
            break
        time.sleep(0.2)
    rest = [x for x in lines if x.get("listener") == "REST"]
    assert any(x["route"] == "/v3/clusters/{cluster_id}/topics/{topic_name}/records" and x["status"] == 200 and x["method"] == "POST" for x in rest), rest
    assert any(x["route"] == "/v3/clusters/{cluster_id}/topics/{topic_name}" and x["status"] == 404 for x in rest), rest
    # The Kafka requests the proxy sent are logged too, under its client id.
    assert any(x.get("apiName") == "Produce" and x["requestHeader"]["clientId"] == "lantern-rest-proxy" for x in lines)


def test_rest_listener_conflicts(broker_factory, tmp_path):
    """A configured rest.listeners that cannot bind stops start-up naming it; the default one
    (8082, taken here by this test or by whatever already has it) gives way with a warning."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    code, err = run_broker_expect_exit([f"--log.dirs={tmp_path / 'x'}", "--listeners=PLAINTEXT://127.0.0.1:0",
                                        "--http.listener=127.0.0.1:0", f"--rest.listeners=http://127.0.0.1:{port}"])
    assert code != 0 and "rest.listeners" in err, err[-2000:]
    default = socket.socket()
    try:
        default.bind(("0.0.0.0", 8082))
        default.listen()
    except OSError:
        pass  # already held by something else: the same situation for the broker
    b = broker_factory(start=False, props={"rest.listeners": None})
    b.start()
    assert "the default REST listener cannot bind" in b.log_text()
    default.close()
    holder.close()


def test_produce_through_any_broker_of_a_cluster(cluster_factory, topic_name):
    """The proxy is a Kafka client of its cluster: records for partitions led by other brokers
    are sent to their leaders."""
    cl = cluster_factory(3)
    n1 = cl.nodes[1]
    create_topic(n1.bootstrap, topic_name, 6)
    root = f"{n1.rest_base}/v3/clusters/{cluster_id(n1.rest_base)}"
    leaders = {p["partition_id"]: int(p["leader"]["related"].rsplit("/", 1)[1])
               for p in requests.get(f"{root}/topics/{topic_name}/partitions", timeout=10).json()["data"]}
    assert set(leaders.values()) == {1, 2, 3}, leaders
    batch = "".join(json.dumps({"partition_id": p, "value": {"type": "STRING", "data": f"p{p}"}}) for p in range(6))
    for node in cl.nodes.values():
        r = requests.post(f"{node.rest_base}/v3/clusters/{cluster_id(n1.rest_base)}/topics/{topic_name}/records", data=batch, headers=JSON, timeout=30)
        reports = [json.loads(x) for x in r.text.splitlines()]
        assert [(x["error_code"], x["partition_id"]) for x in reports] == [(200, p) for p in range(6)], r.text
    stored = kcat_records(n1.bootstrap, topic_name)
    assert sorted(stored) == [(p, o) for p in range(6) for o in range(3)]
    assert all(v == f"p{p}".encode() for (p, _), (_, v) in stored.items())


def _json_schema(node, components):
    """An OpenAPI 3.0 schema as JSON Schema: $refs inlined, `nullable` as a null alternative."""
    if isinstance(node, list):
        return [_json_schema(x, components) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _json_schema(components[node["$ref"].rsplit("/", 1)[1]], components)
    out = {k: _json_schema(v, components) for k, v in node.items() if k not in ("nullable", "format", "description")}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def test_openapi_document_matches_the_routes_and_the_answers(broker_factory, topic_name):
    """/openapi.yaml is the document kept in the repo; it lists exactly the routes the proxy
    has (read from its source), and the answers of every GET path validate against it."""
    import re
    from pathlib import Path

    import jsonschema
    import yaml
    b = broker_factory()
    served = requests.get(f"{b.rest_base}/openapi.yaml", timeout=10)
    src = Path(__file__).resolve().parent.parent / "broker" / "src" / "rest"
    assert served.status_code == 200 and served.text == (src / "openapi.yaml").read_text()
    doc = yaml.safe_load(served.text)
    routes = set()
    for f in src.glob("*.rs"):
        routes |= set(re.findall(r'\.route\(\s*"([^"]+)"', f.read_text()))
    assert routes == set(doc["paths"]), (routes ^ set(doc["paths"]))
    create_topic(b.bootstrap, topic_name, 2)
    c = cluster_id(b.rest_base)
    values = {"cluster_id": c, "topic_name": topic_name, "partition_id": "1", "broker_id": "1", "offset": "0"}
    wrong = {"cluster_id": "nope", "topic_name": "missing", "partition_id": "9", "broker_id": "9", "offset": "0"}
    # The v3 admin routes' parameters (tests/test_rest_proxy_admin.py covers them with real groups).
    values.update({"name": "retention.ms", "consumer_group_id": "no-group", "consumer_id": "no-member"})
    wrong.update({"name": "no.such.config", "consumer_group_id": "missing", "consumer_id": "missing"})
    # The v2 consumer instances' (tests/test_rest_proxy_consumers.py covers live ones).
    values.update({"group_name": "g", "instance": "rest-consumer-1-none"})
    wrong.update({"group_name": "missing", "instance": "missing"})
    components = doc["components"]["schemas"]
    checked = 0
    for path, item in doc["paths"].items():
        if "get" not in item or path == "/openapi.yaml":
            continue
        for subst in (values, wrong):
            url = b.rest_base + re.sub(r"\{(\w+)\}", lambda m: subst[m.group(1)], path)
            r = requests.get(url, timeout=10)
            spec = item["get"]["responses"].get(str(r.status_code))
            assert spec is not None, f"GET {url} answered {r.status_code}, which the document does not list"
            if "$ref" in spec:
                spec = doc["components"]["responses"][spec["$ref"].rsplit("/", 1)[1]]
            media = r.headers["Content-Type"].split(";")[0].strip()
            assert media in spec["content"], f"GET {url} answered {media}, which the document does not list"
            schema = _json_schema(spec["content"][media]["schema"], components)
            jsonschema.validate(r.json(), schema)
            checked += 1
    assert checked >= 16 + 16
