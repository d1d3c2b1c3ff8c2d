"""Claim: the official Apache Kafka Java clients (kafka-clients 3.9 and 4.1, the client
most Kafka users run) work against Lantern through their public API: Admin creates a
6-partition topic, an idempotent acks=all producer sends keyed messages in every
compression codec, a KafkaConsumer in a consumer group reads them all back byte-exact,
exactly once, in per-key order, and commits; listOffsets (earliest, latest, forTimestamp,
maxTimestamp), describeCluster, describeTopics, describeConfigs and deleteTopics answer
what Kafka would.

The checks themselves run in Java (tests/java/LanternClientCheck.java, which prints a
`LANTERN_RESULT {json}` summary and exits non-zero on any mismatch); this file starts a
fresh broker per case, runs the program, and also checks what the Java client negotiated
(its NetworkClient logs the API versions it will use with the broker) and the broker's
own counters of malformed / unsupported requests.

The jars (fetched and SHA-256-verified) and the compiled classes live in .cache/ (see
tests/java/setup.sh, which tests/run calls and the session fixture in conftest.py calls again:
it is a no-op when everything is in place).
"""

from __future__ import annotations

import os
import re
import urllib.request

import pytest

from javacheck import CLIENTS, run_java  # the java_classpaths fixture is in conftest.py

N_MESSAGES = int(os.environ.get("LANTERN_JAVA_MESSAGES", "20000"))
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

# Highest version of each API the Java client itself speaks (its ApiKeys.latestVersion());
# it uses min(this, the broker's advertised max).
CLIENT_MAX = {
    "3.9.0": {"Produce": 11, "Fetch": 17, "ListOffsets": 9, "Metadata": 12, "OffsetCommit": 9, "OffsetFetch": 9,
              "FindCoordinator": 6, "JoinGroup": 9, "Heartbeat": 4, "LeaveGroup": 5, "SyncGroup": 5,
              "DescribeGroups": 5, "ApiVersions": 4, "CreateTopics": 7, "DeleteTopics": 6, "InitProducerId": 5,
              "OffsetForLeaderEpoch": 4, "DescribeConfigs": 4, "DescribeCluster": 1},
    "4.1.1": {"Produce": 13, "Fetch": 18, "ListOffsets": 10, "Metadata": 13, "OffsetCommit": 10, "OffsetFetch": 10,
              "FindCoordinator": 6, "JoinGroup": 9, "Heartbeat": 4, "LeaveGroup": 5, "SyncGroup": 5,
              "DescribeGroups": 6, "ApiVersions": 4, "CreateTopics": 7, "DeleteTopics": 6, "InitProducerId": 6,
              "OffsetForLeaderEpoch": 4, "DescribeConfigs": 4, "DescribeCluster": 2},
}
# The lowest negotiated version we accept for what the checks exercise: the versions Lantern
# reaches today (a broker change that lowers one is a regression). ListOffsets >= 7 is also
# what OffsetSpec.maxTimestamp() needs.
MIN_USABLE = {"Produce": 11, "Fetch": 12, "ListOffsets": 8, "Metadata": 12, "OffsetCommit": 9, "OffsetFetch": 9,
              "FindCoordinator": 4, "JoinGroup": 9, "Heartbeat": 4, "LeaveGroup": 5, "SyncGroup": 5,
              "DescribeGroups": 5, "ApiVersions": 3, "CreateTopics": 7, "DeleteTopics": 6, "InitProducerId": 5,
              "DescribeConfigs": 4, "DescribeCluster": 1}
ROUNDTRIP_APIS = ["ApiVersions", "Metadata", "CreateTopics", "InitProducerId", "Produce", "FindCoordinator",
                  "JoinGroup", "SyncGroup", "Heartbeat", "OffsetFetch", "ListOffsets", "Fetch", "OffsetCommit",
                  "LeaveGroup", "DescribeGroups"]
META_APIS = ["ApiVersions", "Metadata", "DescribeCluster", "CreateTopics", "DescribeConfigs", "InitProducerId",
             "Produce", "ListOffsets", "Fetch", "DeleteTopics"]

BROKER_PROPS = {"group.initial.rebalance.delay.ms": 0}


def negotiated_versions(stderr: str) -> dict[str, tuple[int, int, int | None]]:
    """From NetworkClient's "... API versions: (Produce(0): 0 to 11 [usable: 11], ...)" line
    (the one for the last connection it logged): {api: (broker_min, broker_max, usable)};
    usable None when the client cannot use the broker's range."""
    lines = [ln for ln in stderr.splitlines() if "finalized features" in ln and "API versions: (" in ln]
    assert lines, "the Java client logged no negotiated API versions (tests/java/log4j2.xml not in effect?)"
    out = {}
    for m in re.finditer(r"(\w+)\(\d+\): (\d+)(?: to (\d+))? \[(?:usable: (\d+)|[^\]]*)\]",
                         lines[-1].split("API versions: (", 1)[1]):
        name, lo, hi, usable = m.group(1), int(m.group(2)), int(m.group(3) or m.group(2)), m.group(4)
        out[name] = (lo, hi, int(usable) if usable is not None else None)
    return out


def check_negotiated(version: str, stderr: str, apis: list[str]) -> dict[str, int]:
    got = negotiated_versions(stderr)
    problems, usable = [], {}
    for api in apis:
        if api not in got:
            problems.append(f"{api}: broker does not advertise it")
            continue
        lo, hi, u = got[api]
        want = min(CLIENT_MAX[version][api], hi)
        usable[api] = u
        if u is None or u != want or u < lo:
            problems.append(f"{api}: broker {lo}..{hi}, client max {CLIENT_MAX[version][api]}, usable {u} (expected {want})")
        elif u < MIN_USABLE.get(api, 0):
            problems.append(f"{api}: negotiated v{u}, below the v{MIN_USABLE[api]} Lantern used to reach")
    assert not problems, f"kafka-clients {version} negotiated unexpected API versions: {problems}"
    return usable


def broker_counters(broker) -> dict[str, float]:
    with urllib.request.urlopen(broker.http_base + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def assert_clean_broker(broker):
    m = broker_counters(broker)
    bad = {k: m.get(k) for k in ("lantern_network_malformed_requests_total",
                                 "lantern_network_unsupported_requests_total") if m.get(k)}
    assert not bad, f"the broker counted bad requests from the Java client: {bad}; log tail:\n{broker.log_tail(40)}"
    assert "panicked" not in broker.log_text(), f"broker panicked:\n{broker.log_tail(60)}"
    assert broker.alive(), f"broker exited:\n{broker.log_tail(60)}"


ROUNDTRIP_CASES = [("3.x", c) for c in CODECS] + [("4.x", c) for c in ("none", "zstd")]


@pytest.mark.parametrize("client,codec", ROUNDTRIP_CASES, ids=[f"{c}-{k}" for c, k in ROUNDTRIP_CASES])
def test_java_roundtrip_group(broker_factory, topic_name, java_classpaths, client, codec):
    version = CLIENTS[client]
    broker = broker_factory(props=BROKER_PROPS)
    s, err = run_java(java_classpaths[version], broker, f"--topic={topic_name}", "--mode=roundtrip",
                      f"--count={N_MESSAGES}", f"--compression={codec}", "--consume=group", "--partitions=6")
    assert s["client_version"] == version
    assert s["compression"] == codec and s["count"] == N_MESSAGES
    assert s["group_error"] is None
    v = s["verified_group"]
    assert v == {"received": N_MESSAGES, "missing": 0, "duplicates": 0, "corrupt": 0, "keys": 1000, "ok": True}, v
    assert sum(s["end_offsets"].values()) == N_MESSAGES and len(s["end_offsets"]) == 6, s["end_offsets"]
    assert all(o > 0 for o in s["end_offsets"].values()), f"some partition got no keys: {s['end_offsets']}"
    assert s["producer_metrics"]["record-retry-total"] == 0 and s["producer_metrics"]["record-error-total"] == 0
    if codec != "none":
        assert s["producer_metrics"]["compression-rate-avg"] < 0.6, s["producer_metrics"]
    assert s["group_state_after_close"].lower() == "empty"
    usable = check_negotiated(version, err, ROUNDTRIP_APIS)
    print(f"kafka-clients {version} negotiated: {usable}")
    assert_clean_broker(broker)
    assert broker_counters(broker).get("kafka_server_brokertopicmetrics_messagesin_total", 0) >= N_MESSAGES


@pytest.mark.parametrize("client", ["4.x"])
def test_java_roundtrip_assign(broker_factory, topic_name, java_classpaths, client):
    """The produce/fetch path without any group API: assign() + seekToBeginning."""
    version = CLIENTS[client]
    broker = broker_factory(props=BROKER_PROPS)
    s, _ = run_java(java_classpaths[version], broker, f"--topic={topic_name}", "--mode=roundtrip",
                    f"--count={N_MESSAGES}", "--compression=lz4", "--consume=assign")
    assert "verified_group" not in s and s["verified_assign"]["ok"] and s["verified_assign"]["received"] == N_MESSAGES
    assert_clean_broker(broker)


@pytest.mark.parametrize("client", list(CLIENTS))
def test_java_admin_offsets_and_configs(broker_factory, topic_name, java_classpaths, client):
    version = CLIENTS[client]
    broker = broker_factory(props=BROKER_PROPS)
    s, err = run_java(java_classpaths[version], broker, f"--topic={topic_name}", "--mode=meta", "--node-id=1")
    assert s["client_version"] == version
    lo = s["list_offsets"]
    assert lo["latest p0"].startswith("100@") and lo["maxTimestamp p0"].startswith("70@"), lo
    assert lo["forTimestamp(max+1) p0"] == "-1@-1", lo
    assert s["broker_config_entries"] > 0 and s["topic_config_entries"] > 0
    check_negotiated(version, err, META_APIS)
    assert_clean_broker(broker)
