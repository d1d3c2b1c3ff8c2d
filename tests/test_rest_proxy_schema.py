"""Claim: the REST proxy's OpenAPI document (broker/src/rest/openapi.yaml, served at
/openapi.yaml) describes what the proxy really serves, and nothing a client sends makes it answer
5xx (docs/rest-proxy.md). schemathesis (a property-based API tester, run as its CLI) reads the
served document, generates valid and invalid requests for every operation for a bounded time,
and checks each answer: no 5xx, a status code and content type the document lists for the
operation, response headers and bodies that match the document's schemas.

The broker is a real lantern-broker with real data (two topics with records, a consumer group
with committed offsets, a v2 consumer instance), and schemathesis is told those names so its
requests reach past the 404s into each operation's logic."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from clients import create_topic, produce_confluent

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])
# The whole run's budget; the suite's budget for this file is about a minute.
MAX_TIME_S = int(os.environ.get("LANTERN_SCHEMATHESIS_SECONDS", "35"))
V2 = {"Content-Type": "application/vnd.kafka.v2+json"}


def seed_data(b, topics: list[str], group: str, *, commit: bool = True) -> tuple[str, str]:
    """Topics with records, a consumer group with committed offsets (so lags exist; unless not
    `commit`), and a v2 consumer instance; returns (cluster id, instance id)."""
    for t, n in zip(topics, (3, 1)):
        create_topic(b.bootstrap, t, n)
        produce_confluent(b.bootstrap, t, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(20)])
    if commit:
        commit_some(b, topics, group)
    cid = requests.get(f"{b.rest_base}/v3/clusters", timeout=10).json()["data"][0]["cluster_id"]
    r = requests.post(f"{b.rest_base}/consumers/{group}", headers=V2, timeout=10,
                      json={"name": "fuzzed", "format": "binary", "auto.offset.reset": "earliest"})
    assert r.status_code == 200, r.text
    r = requests.post(f"{b.rest_base}/consumers/{group}/instances/fuzzed/subscription", headers=V2, timeout=10,
                      json={"topics": topics})
    assert r.status_code == 204, r.text
    return cid, "fuzzed"


def commit_some(b, topics: list[str], group: str) -> None:
    """A confluent-kafka consumer of `group` reads part of the topics and commits."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe(topics)
    got, deadline = 0, time.monotonic() + 30
    while got < 10 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got += 1
    assert got >= 10, "the seeding consumer read nothing"
    c.commit(asynchronous=False)
    c.close()


def config(cid: str, topics: list[str], group: str, instance: str) -> str:
    """schemathesis.toml: path parameters drawn mostly from the names that exist (and otherwise
    generated, so the unknown-name paths are fuzzed too)."""
    q = lambda xs: "[" + ", ".join(f'"{x}"' if isinstance(x, str) else str(x) for x in xs) + "]"
    dicts = {
        "clusters": [cid],
        "topics": topics,
        "groups": [group],
        "instances": [instance],
        "partitions": [0, 1, 2],
        "brokers": [1],
        "configs": ["cleanup.policy", "retention.ms", "log.retention.ms", "num.partitions"],
    }
    bind = {
        "path.cluster_id": ("clusters", 0.9),
        "path.topic_name": ("topics", 0.8),
        "path.consumer_group_id": ("groups", 0.8),
        "path.group_name": ("groups", 0.8),
        "path.instance": ("instances", 0.8),
        "path.partition_id": ("partitions", 0.8),
        "path.broker_id": ("brokers", 0.8),
        "path.name": ("configs", 0.8),
    }
    lines = ["[dictionaries]"]
    lines += [f"{k} = {{ values = {q(v)} }}" for k, v in dicts.items()]
    lines += ["", "[parameters]"]
    lines += [f'"{k}" = {{ dictionary = "{d}", probability = {p} }}' for k, (d, p) in bind.items()]
    return "\n".join(lines) + "\n"


def run_schemathesis(url: str, cfg: Path, report: Path, *extra: str, max_time: int = MAX_TIME_S) -> subprocess.CompletedProcess:
    """The CLI with the checks above. Health checks are hypothesis's about generation itself
    (too slow, too much filtered), not about answers: on a shared 2-core machine they would
    fail a run that checked nothing wrong."""
    cmd = [str(SCHEMATHESIS), "--no-color", "--config-file", str(cfg), "run", url,
           "--checks", CHECKS, "--max-time", str(max_time), "--request-timeout", "10",
           "--workers", "2", "--report", "junit", "--report-dir", str(report),
           "--suppress-health-check", "all", *extra]
    if os.environ.get("LANTERN_SCHEMATHESIS_SEED"):
        cmd += ["--seed", os.environ["LANTERN_SCHEMATHESIS_SEED"]]
    # In the report's directory, so its cache (.schemathesis/) stays out of the work tree.
    report.mkdir(parents=True, exist_ok=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=max_time + 120, cwd=report,
                          env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": str(HOOKS)})


def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document(broker_factory, topic_name, tmp_path):
    # A records long poll waits at most rest.request.timeout.ms: well under schemathesis's
    # --request-timeout, so a slow answer is told from a hang.
    b = broker_factory(props={"num.partitions": 1, "rest.request.timeout.ms": "4000"})
    topics, group = [f"{topic_name}-a", f"{topic_name}-b"], f"{topic_name}-g"
    cid, instance = seed_data(b, topics, group)
    cfg = tmp_path / "schemathesis.toml"
    cfg.write_text(config(cid, topics, group, instance))
    started = time.monotonic()
    r = run_schemathesis(f"{b.rest_base}/openapi.yaml", cfg, tmp_path / "report")
    took = time.monotonic() - started
    # schemathesis prints each failure with a curl reproducer and the run's seed (to replay:
    # LANTERN_SCHEMATHESIS_SEED=<seed>).
    assert r.returncode == 0, f"schemathesis found failures (exit {r.returncode}):\n{r.stdout[-20000:]}\n{r.stderr[-5000:]}"
    assert "passed" in r.stdout and took < MAX_TIME_S + 60, (took, r.stdout[-2000:])
    assert b.proc.poll() is None, "the broker died under schemathesis"
    # Kafka traffic goes on after the fuzzing.
    # (To a topic schemathesis was not told of, so not one it may have deleted.)
    create_topic(b.bootstrap, f"{topic_name}-after", 1)
    produce_confluent(b.bootstrap, f"{topic_name}-after", [(b"after", b"fuzzing")])
    assert requests.get(f"{b.rest_base}/v3/clusters", timeout=10).status_code == 200


def test_a_body_that_is_not_json_gets_a_documented_4xx_on_every_operation(broker_factory, topic_name):
    """What schemathesis found first, pinned deterministically: every operation that takes a
    body, sent bytes that are not JSON under its documented content type (to names that exist,
    so the body is what is judged), answers a 4xx in Confluent's error shape that the document
    lists for it (the v2 consumer routes answered 400, which the document did not list)."""
    import re

    import yaml
    b = broker_factory(props={"num.partitions": 1})
    topics, group = [f"{topic_name}-a", f"{topic_name}-b"], f"{topic_name}-g"
    cid, instance = seed_data(b, topics, group, commit=False)
    doc = yaml.safe_load(requests.get(f"{b.rest_base}/openapi.yaml", timeout=10).text)
    values = {"cluster_id": cid, "topic_name": topics[0], "partition_id": "0", "broker_id": "1",
              "name": "retention.ms", "group_name": group, "instance": instance}
    checked = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters" or "requestBody" not in op:
                continue
            body = op["requestBody"]
            if "$ref" in body:
                body = doc["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[1]]
            media = next(iter(body["content"]))
            url = b.rest_base + re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
            r = requests.request(method.upper(), url, data=b"\x00{not json", headers={"Content-Type": media}, timeout=10)
            where = f"{method.upper()} {path} ({r.status_code} {r.text[:200]})"
            assert 400 <= r.status_code < 500 and str(r.status_code) in op["responses"], where
            error = r.json()
            assert isinstance(error["error_code"], int) and isinstance(error["message"], str), where
            checked.append((method, path))
    assert len(checked) >= 20, checked
