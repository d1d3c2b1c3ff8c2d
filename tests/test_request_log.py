"""Claim: with the request log on (`--request-log[=<path>]`, or request.log.path) the broker
writes one JSON line per completed request carrying the fields of Kafka's "Completed request"
line (kafka.request.logger), and those lines agree with what the clients did and with the
RequestMetrics on /metrics; with it off (the default) nothing is written.
"""

from __future__ import annotations

import collections
import json
import re
import time

import confluent_kafka
from kafka.admin import KafkaAdminClient

import clients
from test_metrics import ERR_UNKNOWN_TOPIC_OR_PARTITION, FAST_PROPS, raw_produce, scrape

NUMBER = (int, float)
TOP_FIELDS = {
    "timestamp": str, "message": str, "requestHeader": dict, "apiName": str, "connection": str, "listener": str,
    "securityProtocol": str, "principal": str, "clientInformation": dict,
    "totalTimeMs": NUMBER, "requestQueueTimeMs": NUMBER, "localTimeMs": NUMBER, "remoteTimeMs": NUMBER,
    "throttleTimeMs": NUMBER, "responseQueueTimeMs": NUMBER, "sendTimeMs": NUMBER,
    "requestBytes": int, "responseBytes": int, "errorCodes": dict,
}
HEADER_FIELDS = {"requestApiKey": int, "requestApiVersion": int, "correlationId": int, "clientId": str}
PHASES = ["requestQueueTimeMs", "localTimeMs", "remoteTimeMs", "responseQueueTimeMs", "sendTimeMs"]
API_KEYS = {"Produce": 0, "FetchConsumer": 1, "ListOffsets": 2, "Metadata": 3, "OffsetCommit": 8, "OffsetFetch": 9,
            "FindCoordinator": 10, "ApiVersions": 18, "CreateTopics": 19, "DescribeCluster": 60}
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
CONNECTION_RE = re.compile(r"^127\.0\.0\.1:(\d+)-127\.0\.0\.1:\d+-\d+$")


def read_log(path) -> list[dict]:
    out = []
    for i, line in enumerate(path.read_text().splitlines()):
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise AssertionError(f"request log line {i + 1} is not JSON ({e}): {line[:300]!r}")
    return out


def check_types(i: int, rec: dict) -> None:
    def bad(what):
        return f"request log line {i + 1}: {what}: {json.dumps(rec)[:600]}"

    for k, t in TOP_FIELDS.items():
        assert k in rec, bad(f"no field {k}")
        assert isinstance(rec[k], t) and not isinstance(rec[k], bool), bad(f"{k} is {type(rec[k]).__name__}")
    for k, t in HEADER_FIELDS.items():
        assert k in rec["requestHeader"], bad(f"no requestHeader.{k}")
        assert isinstance(rec["requestHeader"][k], t), bad(f"requestHeader.{k} is {type(rec['requestHeader'][k])}")
    for k in ("softwareName", "softwareVersion"):
        assert isinstance(rec["clientInformation"].get(k), str), bad(f"clientInformation.{k} missing or not a string")
    assert rec["message"] == "Completed request", bad("message")
    assert TIMESTAMP_RE.match(rec["timestamp"]), bad("timestamp is not RFC 3339")
    assert all(isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in rec["errorCodes"].items()), \
        bad("errorCodes is not {NAME: count}")
    times = {k: rec[k] for k in ["totalTimeMs", "throttleTimeMs", *PHASES]}
    assert all(v >= 0 for v in times.values()), bad(f"negative time {times}")
    assert rec["totalTimeMs"] >= rec["localTimeMs"], bad("totalTimeMs < localTimeMs")
    assert sum(rec[k] for k in PHASES) <= rec["totalTimeMs"] + 0.001, \
        bad(f"the phases ({ {k: rec[k] for k in PHASES} }) add up to more than totalTimeMs")
    assert rec["requestBytes"] > 0 and rec["responseBytes"] >= 0, bad("byte counts")
    api = rec["apiName"]
    if api in API_KEYS:
        assert rec["requestHeader"]["requestApiKey"] == API_KEYS[api], bad(f"apiName {api} with another api key")


def test_request_log_lines(broker_factory, topic_name, tmp_path):
    log_path = tmp_path / "requests.jsonl"
    b = broker_factory(props=dict(FAST_PROPS), extra_args=[f"--request-log={log_path}"])

    clients.create_topic(b.bootstrap, topic_name, 2)
    msgs = [(b"k%d" % (i % 10), b"value-%04d" % i) for i in range(400)]
    clients.produce_confluent(b.bootstrap, topic_name, msgs, **{"client.id": "rl-producer", "batch.num.messages": 50})
    got = clients.consume_all_confluent(b.bootstrap, topic_name, 2, timeout=30, **{"client.id": "rl-consumer"})
    assert len(got) == len(msgs)
    a = KafkaAdminClient(bootstrap_servers=b.bootstrap, client_id="rl-admin", request_timeout_ms=10000)
    try:
        cluster = a.describe_cluster()
        assert cluster["brokers"], f"kafka-python describe_cluster: {cluster}"
        assert topic_name in a.list_topics()
    finally:
        a.close()
    clients.kcat_produce("debian", b.bootstrap, topic_name, [(b"kc", b"from-kcat")], "none",
                         extra=["-X", "client.id=rl-kcat"])
    assert raw_produce(b, topic_name, 5, client_id=b"rl-raw") == ERR_UNKNOWN_TOPIC_OR_PARTITION

    # the log is written off the request path: wait until it has a line per completed request
    # (TotalTimeMs counts those; requests_total counts requests received, see
    # test_metrics.py::test_request_counted_once_completed_like_kafka)
    deadline = time.monotonic() + 10
    while True:
        s = scrape(b)
        received, completed = collections.Counter(), collections.Counter()
        for lb, v in s.series("kafka_network_requestmetrics_requests_total"):
            # request="Fetch" counts the FetchConsumer and FetchFollower requests again (as
            # Kafka); the log names each request once.
            if lb["request"] != "Fetch":
                received[lb["request"]] += int(v)
        for r in received:
            completed[r] = int(s.value("kafka_network_requestmetrics_totaltimems_count", 0, request=r))
        recs = read_log(log_path) if log_path.exists() else []
        if len(recs) >= sum(completed.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert recs, f"no request log at {log_path} (exists: {log_path.exists()})"

    for i, rec in enumerate(recs):
        check_types(i, rec)

    lines_per_api = collections.Counter(r["apiName"] for r in recs)
    assert {"Produce", "FetchConsumer", "Metadata", "ApiVersions"} <= set(lines_per_api), \
        f"apiName values in the log: {dict(lines_per_api)}"
    assert lines_per_api["Produce"] == received["Produce"], (
        f"{lines_per_api['Produce']} Produce lines in the request log, "
        f"kafka_network_requestmetrics_requests_total{{request=Produce}} is {received['Produce']}")
    completed = {k: v for k, v in completed.items() if v}
    assert dict(lines_per_api) == completed, (
        f"lines per apiName {dict(lines_per_api)} differ from totaltimems_count (completed requests) per request "
        f"{completed} (requests_total, received: {dict(received)})")
    produce_bytes = sum(r["requestBytes"] for r in recs if r["apiName"] == "Produce")
    metric_bytes = s.value("kafka_network_requestmetrics_requestbytes_sum", request="Produce")
    assert produce_bytes == metric_bytes, \
        f"Produce requestBytes in the log sum to {produce_bytes}, requestbytes_sum{{request=Produce}} is {metric_bytes}"

    for r in recs:
        assert r["listener"] == "PLAINTEXT" and r["securityProtocol"] == "PLAINTEXT", r
        assert r["principal"] == "User:ANONYMOUS", r
        m = CONNECTION_RE.match(r["connection"])
        assert m and int(m.group(1)) == b.port, f"connection {r['connection']!r} is not <broker>-<client>-<index>"

    by_client = collections.defaultdict(list)
    for r in recs:
        by_client[r["requestHeader"]["clientId"]].append(r)
    assert {"rl-producer", "rl-consumer", "rl-admin", "rl-kcat", "rl-raw"} <= set(by_client), \
        f"client ids in the log: {sorted(by_client)}"
    apis = {c: {r["apiName"] for r in rs} for c, rs in by_client.items()}
    assert "Produce" in apis["rl-producer"], f"rl-producer's requests: {apis['rl-producer']}"
    assert "FetchConsumer" in apis["rl-consumer"], f"rl-consumer's requests: {apis['rl-consumer']}"
    assert "Produce" in apis["rl-kcat"], f"rl-kcat's requests: {apis['rl-kcat']}"
    assert apis["rl-raw"] == {"Produce"}, f"rl-raw's requests: {apis['rl-raw']}"
    assert {"ApiVersions", "Metadata"} <= apis["rl-admin"], f"rl-admin's requests: {apis['rl-admin']}"

    # client software, announced by ApiVersions v3+ on each connection (that line included);
    # librdkafka starts every connection with it. (kafka-python reuses the versions it learnt
    # and skips ApiVersions on later connections: those lines are "not announced", whose
    # value test_request_log_unknown_client_software checks.)
    import kafka
    want_sw = {
        "rl-producer": ("confluent-kafka-python",
                        f"{confluent_kafka.__version__}-rdkafka-{confluent_kafka.libversion()[0]}"),
        "rl-consumer": ("confluent-kafka-python",
                        f"{confluent_kafka.__version__}-rdkafka-{confluent_kafka.libversion()[0]}"),
        "rl-kcat": ("librdkafka", clients.kcat_librdkafka_version("debian")),
        "rl-admin": ("kafka-python", kafka.__version__),
    }
    for client, want in want_sw.items():
        conns = collections.defaultdict(list)
        for r in by_client[client]:
            conns[r["connection"]].append(r)
        announced = 0
        for conn, rs in conns.items():
            first = next((i for i, r in enumerate(rs)
                          if r["apiName"] == "ApiVersions" and r["requestHeader"]["requestApiVersion"] >= 3), None)
            if client != "rl-admin":
                assert first == 0, f"{client}: connection {conn} did not start with ApiVersions v3+: " \
                                   f"{[(r['apiName'], r['requestHeader']['requestApiVersion']) for r in rs][:5]}"
            if first is None:
                continue
            announced += 1
            seen = {(r["clientInformation"]["softwareName"], r["clientInformation"]["softwareVersion"])
                    for r in rs[first:]}
            assert seen == {want}, f"{client} on {conn}: clientInformation {seen}, expected {want}"
        assert announced >= 1, f"{client}: no connection announced its software"

    # correlation ids never go backwards on a connection
    per_conn = collections.defaultdict(list)
    for r in recs:
        per_conn[r["connection"]].append(r["requestHeader"]["correlationId"])
    backwards = {c: ids for c, ids in per_conn.items() if ids != sorted(ids)}
    assert not backwards, f"correlation ids decrease on connections: {backwards}"
    assert len(per_conn) >= 5, f"only {len(per_conn)} connections in the log"

    raw = by_client["rl-raw"]
    assert len(raw) == 1 and raw[0]["errorCodes"] == {"UNKNOWN_TOPIC_OR_PARTITION": 1}, (
        f"the produce to partition 5 of a 2-partition topic should log errorCodes "
        f"{{'UNKNOWN_TOPIC_OR_PARTITION': 1}}: {raw}")
    ok_produce = [r for r in by_client["rl-producer"] if r["apiName"] == "Produce"]
    assert all(r["errorCodes"] == {"NONE": sum(r["errorCodes"].values())} for r in ok_produce), \
        f"successful produces with error codes: {[r['errorCodes'] for r in ok_produce if 'NONE' not in r['errorCodes']]}"


def test_request_log_unknown_client_software(broker_factory, topic_name, tmp_path):
    """A client that never sent ApiVersions v3+ is logged as Kafka logs it:
    ClientInformation.EMPTY, i.e. softwareName/softwareVersion "unknown"."""
    log_path = tmp_path / "requests.jsonl"
    b = broker_factory(props=dict(FAST_PROPS), extra_args=[f"--request-log={log_path}"])
    clients.create_topic(b.bootstrap, topic_name, 1)
    assert raw_produce(b, topic_name, 3, client_id=b"rl-raw") == ERR_UNKNOWN_TOPIC_OR_PARTITION
    deadline = time.monotonic() + 10
    raw = []
    while not raw and time.monotonic() < deadline:
        time.sleep(0.05)
        raw = [r for r in (read_log(log_path) if log_path.exists() else [])
               if r["requestHeader"]["clientId"] == "rl-raw"]
    assert len(raw) == 1, f"expected one line for the raw produce, got {raw}"
    info = raw[0]["clientInformation"]
    assert info == {"softwareName": "unknown", "softwareVersion": "unknown"}, (
        f"a connection without ApiVersions v3 should be logged with Kafka's ClientInformation.EMPTY "
        f"(softwareName/softwareVersion 'unknown'), got {info}")


def test_request_log_off_by_default(broker_factory, topic_name):
    b = broker_factory(props=dict(FAST_PROPS))
    clients.create_topic(b.bootstrap, topic_name, 1)
    clients.produce_confluent(b.bootstrap, topic_name, [(b"k", b"v%d" % i) for i in range(50)])
    assert len(clients.consume_all_confluent(b.bootstrap, topic_name, 1, timeout=30)) == 50
    b.terminate()
    expected = {d.name for d in b.data_dirs} | {b.log_path.name}
    extra = sorted(str(p.relative_to(b.workdir)) for p in b.workdir.iterdir() if p.name not in expected)
    assert not extra, f"with the request log off the broker created {extra} in its working directory"
    assert "Completed request" not in b.log_text(), "request log lines went to stderr although the log is off"

    # the control: `--request-log` without a value writes ./logs/kafka-request.log (relative to
    # the working directory the check above looked at)
    c = broker_factory(props=dict(FAST_PROPS), extra_args=["--request-log"], name="with-log")
    clients.create_topic(c.bootstrap, topic_name, 1)
    clients.produce_confluent(c.bootstrap, topic_name, [(b"k", b"v")])
    path = c.workdir / "logs" / "kafka-request.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (path.exists() and '"Produce"' in path.read_text()):
        time.sleep(0.05)
    assert path.exists(), f"--request-log did not create {path}"
    assert any(r["apiName"] == "Produce" for r in read_log(path)), f"no Produce line in {path}"
