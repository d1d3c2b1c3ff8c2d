"""Claim: the broker's /metrics endpoint (on http.listener) exports Kafka's metrics under the
names the Prometheus JMX exporter gives them (Strimzi's rules by default, Confluent's with
metrics.naming=confluent) plus kafka_exporter's consumer-group metrics, and the numbers are
right: they match what real clients did (messages, bytes, requests counted by librdkafka's
own statistics, committed offsets), the Prometheus tooling (`promtool check metrics`) accepts
the scrape (its only lint findings are names Kafka itself dictates, listed below), OpenMetrics
is served on request, and docs/metrics.md lists every family the broker exports.

Three tests here and in test_request_log.py pin Kafka behaviour Lantern does not have yet:
connections without ApiVersions v3 count as software "unknown", and a request is counted in
requests_total only once completed (with TotalTimeMs and the request log line).

Helpers here (Scrape, scrape(), raw_produce(), ...) are also used by test_request_log.py.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
import uuid

import psutil
import pytest
from confluent_kafka import Producer, TopicPartition

import clients
from lantern import REPO_ROOT, crc32c
from test_bad_input import connect, frame, header_v1, read_response, uvarint

DOCS = REPO_ROOT / "docs" / "metrics.md"

# Small __consumer_offsets, no initial rebalance delay: brokers start and groups settle fast.
FAST_PROPS = {
    "offsets.topic.num.partitions": 5,
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
}

QUANTILES = ["0.50", "0.75", "0.95", "0.98", "0.99", "0.999"]

ERR_UNKNOWN_TOPIC_OR_PARTITION = 3


# ===================================================================== scrapes
_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(\S+))?$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _parse_labels(text: str, line: str) -> dict:
    labels, pos = {}, 0
    while pos < len(text):
        m = _LABEL_RE.match(text, pos)
        assert m, f"malformed label set at {text[pos:]!r} in line {line!r}"
        assert m.group(1) not in labels, f"duplicate label {m.group(1)} in line {line!r}"
        labels[m.group(1)] = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), m.group(2))
        pos = m.end()
    return labels


class Scrape:
    """A parsed Prometheus text (or OpenMetrics) exposition."""

    def __init__(self, text: str, content_type: str = ""):
        self.text, self.content_type = text, content_type
        self.types: dict[str, str] = {}
        self.helps: dict[str, str] = {}
        self.samples: list[tuple[str, dict, float]] = []
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "TYPE":
                    assert parts[2] not in self.types, f"family {parts[2]} has two TYPE lines"
                    self.types[parts[2]] = parts[3].strip() if len(parts) > 3 else ""
                elif len(parts) >= 3 and parts[1] == "HELP":
                    self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            m = _SAMPLE_RE.match(line)
            assert m, f"unparsable sample line {line!r}"
            self.samples.append((m.group(1), _parse_labels(m.group(2) or "", line), float(m.group(3))))

    def series(self, name: str, **labels) -> list[tuple[dict, float]]:
        """Every sample of `name` whose labels include `labels`."""
        return [(lb, v) for n, lb, v in self.samples
                if n == name and all(lb.get(k) == str(w) for k, w in labels.items())]

    def has(self, name: str, **labels) -> bool:
        return any(lb == {k: str(w) for k, w in labels.items()} for lb, _ in self.series(name))

    def value(self, name: str, default=None, **labels) -> float:
        """The sample of `name` with exactly `labels` (no more, no fewer)."""
        want = {k: str(v) for k, v in labels.items()}
        found = [v for lb, v in self.series(name) if lb == want]
        assert len(found) <= 1, f"{name}{want} appears {len(found)} times in one scrape"
        if found:
            return found[0]
        if default is not None:
            return default
        raise AssertionError(f"/metrics has no {name}{want or ''}; series of {name}: "
                             f"{[lb for lb, _ in self.series(name)][:20] or 'none'}")

    def total(self, name: str, **labels) -> float:
        return sum(v for _, v in self.series(name, **labels))

    def sample_names(self) -> set[str]:
        return {n for n, _, _ in self.samples}


def scrape(broker, accept: str | None = None) -> Scrape:
    req = urllib.request.Request(broker.http_base + "/metrics", headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200, f"/metrics answered {r.status}"
        return Scrape(r.read().decode("utf-8"), r.headers.get("Content-Type", ""))


def wait_for(cond, timeout: float, what) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    if not cond():
        raise AssertionError(what() if callable(what) else what)


def wait_metric(broker, check, timeout: float, what) -> Scrape:
    """Scrape until check(scrape) is true; returns that scrape, or fails with what(last scrape)."""
    deadline = time.monotonic() + timeout
    while True:
        s = scrape(broker)
        if check(s):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(what(s))
        time.sleep(0.1)


# ========================================================================= docs
def docs_rows() -> list[dict]:
    """The rows of the generated table in docs/metrics.md (the "Not served" table after it is
    tests/test_confluent_dashboards.py's)."""
    rows = []
    for line in DOCS.read_text().split("\n## Not served\n", 1)[0].splitlines():
        if not line.startswith("| ") or line.startswith("| MBean") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 7, f"docs/metrics.md: row with {len(cells)} cells: {line!r}"
        mbean, strimzi, confluent, typ, labels, status, meaning = cells
        # The Confluent cell may name aliases after the family's name: `name` `alias`.
        confluent, *aliases = re.findall(r"`([^`]+)`", confluent)
        rows.append(dict(mbean=mbean, strimzi=strimzi.strip("`"), confluent=confluent, confluent_aliases=aliases, type=typ,
                         labels=[x.strip() for x in labels.split(",") if x.strip()], status=status))
    assert len(rows) > 50, f"docs/metrics.md: only {len(rows)} table rows parsed; has the table format changed?"
    return rows


# ================================================================ raw requests
def zigzag(n: int) -> bytes:
    return uvarint((n << 1) ^ (n >> 63))


def record_batch(value: bytes, key: bytes | None = None) -> bytes:
    """A one-record, uncompressed magic-2 record batch with a valid CRC-32C."""
    body = b"\x00" + zigzag(0) + zigzag(0)  # attributes, timestampDelta, offsetDelta
    body += zigzag(-1) if key is None else zigzag(len(key)) + key
    body += zigzag(len(value)) + value + zigzag(0)  # no headers
    record = zigzag(len(body)) + body
    ts = int(time.time() * 1000)
    # attributes, lastOffsetDelta, baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, count
    after_crc = struct.pack(">hiqqqhii", 0, 0, ts, ts, -1, -1, -1, 1) + record
    rest = struct.pack(">ibI", -1, 2, crc32c(after_crc)) + after_crc  # leaderEpoch, magic, crc
    return struct.pack(">qi", 0, len(rest)) + rest


def _str16(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def raw_produce(broker, topic: str, partition: int, value: bytes = b"raw", *,
                client_id: bytes = b"lantern-raw", correlation_id: int = 77) -> int:
    """Send one Produce v3 request (acks=1) for `topic`/`partition` over a plain socket and
    return the partition's error code from the response."""
    batch = record_batch(value)
    body = struct.pack(">hhi", -1, 1, 5000)  # transactional_id null, acks, timeout
    body += struct.pack(">i", 1) + _str16(topic) + struct.pack(">i", 1)
    body += struct.pack(">ii", partition, len(batch)) + batch
    s = connect(broker)
    try:
        s.sendall(frame(header_v1(0, 3, correlation_id, client_id) + body))
        s.settimeout(10)
        resp = read_response(s)
    finally:
        s.close()
    corr, n_topics = struct.unpack_from(">ii", resp, 0)
    assert corr == correlation_id and n_topics == 1, f"Produce v3 response: correlation {corr}, {n_topics} topics"
    (name_len,) = struct.unpack_from(">h", resp, 8)
    pos = 10 + name_len
    n_parts, index, err = struct.unpack_from(">iih", resp, pos)
    assert n_parts == 1 and index == partition, f"Produce v3 response: {n_parts} partitions, index {index}"
    return err


def raw_list_offsets(broker, topic: str, partition: int = 0, *, client_id: bytes = b"lantern-raw") -> int:
    """One ListOffsets v1 (latest) for `topic`/`partition`; returns the partition's error code."""
    body = struct.pack(">i", -1) + struct.pack(">i", 1) + _str16(topic)
    body += struct.pack(">i", 1) + struct.pack(">iq", partition, -1)
    s = connect(broker)
    try:
        s.sendall(frame(header_v1(2, 1, 78, client_id) + body))
        s.settimeout(10)
        resp = read_response(s)
    finally:
        s.close()
    corr, n_topics = struct.unpack_from(">ii", resp, 0)
    assert corr == 78 and n_topics == 1, f"ListOffsets v1 response: correlation {corr}, {n_topics} topics"
    (name_len,) = struct.unpack_from(">h", resp, 8)
    n_parts, index, err = struct.unpack_from(">iih", resp, 10 + name_len)
    assert n_parts == 1 and index == partition
    return err


# ================================================================ clients
def produce_counting_requests(bootstrap: str, topic: str, msgs, **conf) -> tuple[int, dict]:
    """Produce (partition, key, value) triples with acks=all, no compression, and return
    (Produce requests librdkafka sent, its last statistics). The count comes from
    librdkafka's statistics (STATISTICS.md: brokers.<name>.req.Produce, the requests
    sent per broker handle), taken after every delivery report has arrived."""
    stats: list[str] = []
    errors: list = []
    c = {"bootstrap.servers": bootstrap, "acks": "all", "compression.type": "none", "linger.ms": 5,
         "batch.num.messages": 100, "statistics.interval.ms": 100, "stats_cb": stats.append}
    c.update(conf)
    p = Producer(c)

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    for partition, key, value in msgs:
        while True:
            try:
                p.produce(topic, value=value, key=key, partition=partition, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(60)
    assert left == 0, f"{left} messages undelivered after 60 s"
    assert not errors, f"{len(errors)} deliveries failed, first: {errors[0]}"
    # two more statistics emissions: the second was certainly produced after the last response
    n = len(stats)
    deadline = time.monotonic() + 10
    while len(stats) < n + 2 and time.monotonic() < deadline:
        p.poll(0.05)
    assert len(stats) >= n + 2, "librdkafka emitted no statistics within 10 s (statistics.interval.ms=100)"
    st = json.loads(stats[-1])
    produce_reqs = sum(b.get("req", {}).get("Produce", 0) for b in st["brokers"].values())
    retries = sum(b.get("txretries", 0) for b in st["brokers"].values())
    assert retries == 0, f"librdkafka retried {retries} requests: the Produce request count would not be exact"
    assert st["txmsgs"] == len(msgs), f"librdkafka statistics say {st['txmsgs']} messages sent, expected {len(msgs)}"
    return produce_reqs, st


def consume_with_group(bootstrap: str, topic: str, group: str, upto: dict[int, int], **conf) -> None:
    """Subscribe as a member of `group`, read each partition p up to offset upto[p] (what it
    fetches beyond is ignored), commit exactly those offsets synchronously and close."""
    c = clients.consumer(bootstrap, **{"group.id": group, "session.timeout.ms": 6000, **conf})
    try:
        c.subscribe([topic])
        pos = {p: 0 for p in upto}
        deadline = time.monotonic() + 30
        while not c.assignment() or any(pos[p] < upto[p] for p in upto):
            assert time.monotonic() < deadline, \
                f"group {group}: assignment {c.assignment()}, positions {pos} did not reach {upto} in 30 s"
            for m in c.consume(num_messages=1000, timeout=0.2):
                if m.error():
                    if m.error().code() in clients.TRANSIENT_CONSUMER_ERRORS:
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                p = m.partition()
                if m.offset() < upto[p]:
                    pos[p] = m.offset() + 1
        res = c.commit(offsets=[TopicPartition(topic, p, o) for p, o in upto.items()], asynchronous=False)
        bad = [tp for tp in res if tp.error is not None]
        assert not bad, f"commit failed for {bad}"
    finally:
        c.close()


def rest_auth_props(tmp_path) -> dict:
    """rest.authentication=basic with one user, whose credentials `load` sends: the REST
    proxy's authentication-failure family then has its series (docs/rest-proxy.md)."""
    import bcrypt
    users = tmp_path / "rest-users"
    users.write_text("metrics:" + bcrypt.hashpw(b"scrape", bcrypt.gensalt(rounds=4)).decode() + "\n")
    return {"rest.authentication": "basic", "rest.authentication.basic.users.file": str(users)}


REST_CREDENTIALS = {"Authorization": "Basic bWV0cmljczpzY3JhcGU="}  # metrics:scrape


def load(broker, topic: str) -> None:
    """Some traffic of every kind: a 3-partition topic, produce, a consumer group that
    consumes and commits, an error response (produce to a partition that does not exist)."""
    clients.create_topic(broker.bootstrap, topic, 3)
    clients.produce_confluent(broker.bootstrap, topic, clients.keyed_messages(600, 30))
    consume_with_group(broker.bootstrap, topic, f"g-{uuid.uuid4().hex[:6]}",
                       {p: clients.watermarks(broker.bootstrap, topic, p)[1] for p in range(3)})
    assert raw_produce(broker, topic, 99) == ERR_UNKNOWN_TOPIC_OR_PARTITION
    # The REST proxy (docs/rest-proxy.md): a request that succeeds and one that fails.
    for path, want in [("/v3/clusters", 200), ("/v3/clusters/none", 404)]:
        try:
            urllib.request.urlopen(urllib.request.Request(broker.rest_base + path, headers=REST_CREDENTIALS), timeout=10)
            status = 200
        except urllib.error.HTTPError as e:
            status = e.code
        assert status == want, (path, status)


# ==================================================================== promtool
PROMTOOL = shutil.which("promtool")

# promtool's lint rules vs names that are Kafka's (or kafka_exporter's) own. Strimzi's JMX exporter rules keep the
# MBean keys as label names (networkProcessor, delayedOperation, clientSoftwareName,
# clientSoftwareVersion); socket-server-metrics' attribute is literally `connection-count`;
# Confluent's rules type every socket-server-metrics attribute as GAUGE, including
# `connection-creation-total` / `connection-close-total`, and Lantern types the
# raft-channel-metrics `-total` attributes as gauges by analogy with Confluent's raft-metrics
# rule (it has none for raft-channel-metrics). broker-metadata-metrics' attributes are literally
# `metadata-apply-error-count`, `metadata-load-error-count` and `last-applied-record-lag-ms`.
# A dashboard needs those exact names, so these warnings are accepted, and only these.
KAFKA_CAMELCASE_LABELS = {"networkProcessor", "delayedOperation", "clientSoftwareName", "clientSoftwareVersion", "clientId"}
CAMEL_WARNING = "label names should be written in 'snake_case' not 'camelCase'"
COUNT_SUFFIX_WARNING = 'non-histogram and non-summary metrics should not have "_count" suffix'
TOTAL_SUFFIX_WARNING = 'non-counter metrics should not have "_total" suffix'
KAFKA_COUNT_SUFFIX = {"kafka_server_socket_server_metrics_connection_count",
                      "kafka_server_socketservermetrics_connection_count",
                      "kafka_server_brokermetadatametrics_metadata_apply_error_count",
                      "kafka_server_brokermetadatametrics_metadata_load_error_count",
                      "kafka_server_broker_metadata_metrics_metadata_apply_error_count",
                      "kafka_server_broker_metadata_metrics_metadata_load_error_count"}
UNIT_WARNING = "metric names should not contain abbreviated units"
KAFKA_ABBREVIATED_UNITS = {"kafka_server_brokermetadatametrics_last_applied_record_lag_ms",
                           "kafka_server_broker_metadata_metrics_last_applied_record_lag_ms"}
# kafka_exporter's own name for the per-topic lag sum (a gauge)
KAFKA_EXPORTER_SUM_SUFFIX = {"kafka_consumergroup_lag_sum", "kafka_consumergroup_current_offset_sum"}
SUM_SUFFIX_WARNING = 'non-histogram and non-summary metrics should not have "_sum" suffix'
KAFKA_GAUGE_TOTAL_SUFFIX = {"kafka_server_socketservermetrics_connection_creation_total",
                            "kafka_server_socketservermetrics_connection_close_total",
                            *(f"kafka_server_raft_channel_metrics_{a}_total" for a in ("request", "response", "incoming_byte", "outgoing_byte"))}


def promtool_problems(text: str) -> tuple[int, list[str]]:
    assert PROMTOOL, "promtool is not installed (tests/run installs Debian's prometheus package for it)"
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    return r.returncode, [line for line in out.splitlines() if line.strip()]


def unexpected_promtool_problems(s: Scrape, problems: list[str], *, openmetrics: bool = False) -> list[str]:
    bad = []
    for line in problems:
        family, _, msg = line.partition(" ")
        if msg == CAMEL_WARNING:
            labels = {k for lb, _ in s.series(family) for k in lb} or \
                     {k for n, lb, _ in s.samples if n.startswith(family) for k in lb}
            camel = {k for k in labels if re.search(r"[a-z][A-Z]", k)}
            if camel and camel <= KAFKA_CAMELCASE_LABELS:
                continue
        elif msg == COUNT_SUFFIX_WARNING and family in KAFKA_COUNT_SUFFIX:
            continue
        elif msg == TOTAL_SUFFIX_WARNING and family in KAFKA_GAUGE_TOTAL_SUFFIX:
            continue
        elif msg == UNIT_WARNING and family in KAFKA_ABBREVIATED_UNITS:
            continue
        elif msg == SUM_SUFFIX_WARNING and family in KAFKA_EXPORTER_SUM_SUFFIX:
            continue
        elif openmetrics and msg == "no help text" and family.endswith("_total") \
                and s.types.get(family[:-len("_total")]) == "counter" and family[:-len("_total")] in s.helps:
            # promtool reads the 0.0.4 text format: an OpenMetrics counter's HELP is on the
            # family name without _total, so it cannot pair it with the _total sample.
            continue
        bad.append(line)
    return bad


@pytest.mark.parametrize("naming", ["strimzi", "confluent"])
def test_promtool_accepts_scrape_after_load(broker_factory, topic_name, naming, tmp_path):
    b = broker_factory(props={**FAST_PROPS, **rest_auth_props(tmp_path), "metrics.naming": naming})
    load(b, topic_name)

    s = scrape(b)
    assert s.content_type.startswith("text/plain") and "version=0.0.4" in s.content_type, \
        f"Prometheus text should be served as text/plain; version=0.0.4, got {s.content_type!r}"
    assert len(s.samples) > 200, f"only {len(s.samples)} samples after load"
    rc, problems = promtool_problems(s.text)
    assert rc in (0, 3) and not any(p.startswith("error while linting") for p in problems), \
        f"promtool could not parse the scrape (exit {rc}): {problems}"
    bad = unexpected_promtool_problems(s, problems)
    assert not bad, f"promtool check metrics ({naming}) reports {len(bad)} problems:\n" + "\n".join(bad)
    if not problems:
        assert rc == 0, f"promtool exited {rc} without reporting a problem"

    om = scrape(b, accept="application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert om.content_type.startswith("application/openmetrics-text"), \
        f"asked for OpenMetrics, got Content-Type {om.content_type!r}"
    assert "version=1.0.0" in om.content_type, f"OpenMetrics Content-Type without version: {om.content_type!r}"
    check_openmetrics_structure(om)
    # every sample of the text form is in the OpenMetrics form too, with the same labels
    text_keys = {(n, tuple(sorted(lb.items()))) for n, lb, _ in s.samples if not n.startswith("process_")}
    om_keys = {(n, tuple(sorted(lb.items()))) for n, lb, _ in om.samples if not n.startswith("process_")}
    missing = sorted(text_keys - om_keys)
    assert not missing, f"{len(missing)} series of the text form are not in the OpenMetrics form, e.g. {missing[:5]}"
    # promtool (2.42) parses the 0.0.4 text format, not OpenMetrics: it rejects OpenMetrics'
    # `unknown` type (Confluent's untyped rules). Where the body has none, it must parse too.
    if "unknown" not in om.types.values():
        rc, problems = promtool_problems(om.text)
        assert rc in (0, 3) and not any(p.startswith("error while linting") for p in problems), \
            f"promtool could not parse the OpenMetrics body (exit {rc}): {problems}"
        bad = unexpected_promtool_problems(om, problems, openmetrics=True)
        assert not bad, f"promtool check metrics (OpenMetrics, {naming}) reports {len(bad)} problems:\n" + "\n".join(bad)


OM_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "unknown": ("",), "info": ("_info",),
               "stateset": ("",), "summary": ("", "_sum", "_count", "_created"),
               "histogram": ("_bucket", "_sum", "_count", "_created"),
               "gaugehistogram": ("_bucket", "_gsum", "_gcount")}


def check_openmetrics_structure(om: Scrape) -> None:
    """The OpenMetrics 1.0 rules a scraper relies on: every sample belongs to a family declared
    by a TYPE line before it, with a suffix its type allows; a family's samples are contiguous;
    counters are declared without _total; the exposition ends with one '# EOF'."""
    assert om.text.endswith("# EOF\n"), f"OpenMetrics body must end with '# EOF\\n', ends with {om.text[-40:]!r}"
    assert om.text.count("# EOF") == 1, "'# EOF' appears more than once"
    for fam, typ in om.types.items():
        assert typ in OM_SUFFIXES, f"OpenMetrics has no metric type {typ!r} (family {fam}); 'untyped' is 'unknown'"
        if typ == "counter":
            assert not fam.endswith("_total"), f"OpenMetrics counter family {fam} must be declared without _total"
    current, done = None, set()
    for line in om.text.splitlines():
        if line.startswith("# TYPE "):
            fam = line.split()[2]
            assert fam not in done, f"family {fam} declared twice / not contiguous"
            if current:
                done.add(current)
            current = fam
        elif line and not line.startswith("#"):
            name = _SAMPLE_RE.match(line).group(1)
            assert current is not None, f"sample {line!r} before any TYPE line"
            allowed = {current + suf for suf in OM_SUFFIXES[om.types[current]]}
            assert name in allowed, (f"sample {name} under family {current} ({om.types[current]}): "
                                     f"a {om.types[current]} only has {sorted(allowed)}")


# ============================================================ BrokerTopicMetrics
BTM = "kafka_server_brokertopicmetrics_"


def test_topic_metrics_match_what_clients_did(broker_factory, topic_name):
    b = broker_factory(props=dict(FAST_PROPS))
    per_partition = [1700, 1650, 1650]
    n = sum(per_partition)
    clients.create_topic(b.bootstrap, topic_name, 3)
    msgs = []
    for p, count in enumerate(per_partition):
        for i in range(count):
            msgs.append((p, f"key-{p}-{i:05d}".encode(), (f"value-{p}-{i:05d}-".encode() * 10)[:100]))
    payload = sum(len(k) + len(v) for _, k, v in msgs)
    assert payload == n * 111

    s0 = scrape(b)
    in0 = s0.value(BTM + "messagesin_total", 0, topic=topic_name)
    bytes_in0 = s0.value(BTM + "bytesin_total", 0, topic=topic_name)
    prod0 = s0.total("kafka_network_requestmetrics_requests_total", request="Produce")
    tpr0 = s0.value(BTM + "totalproducerequests_total", 0, topic=topic_name)

    produce_reqs, _ = produce_counting_requests(b.bootstrap, topic_name, msgs)
    assert produce_reqs >= n // 100, f"librdkafka reports only {produce_reqs} Produce requests for {n} messages"

    s1 = scrape(b)
    got_in = s1.value(BTM + "messagesin_total", topic=topic_name) - in0
    assert got_in == n, f"messagesin_total{{topic={topic_name}}} grew by {got_in}, produced {n}"
    got_bytes = s1.value(BTM + "bytesin_total", topic=topic_name) - bytes_in0
    assert got_bytes >= payload, f"bytesin_total{{topic}} grew by {got_bytes}, less than the {payload} payload bytes"
    assert got_bytes < payload * 2, f"bytesin_total{{topic}} grew by {got_bytes} for {payload} payload bytes"
    got_reqs = s1.total("kafka_network_requestmetrics_requests_total", request="Produce") - prod0
    by_version = {lb["version"]: v for lb, v in s1.series("kafka_network_requestmetrics_requests_total",
                                                          request="Produce")}
    assert got_reqs == produce_reqs, (
        f"requests_total{{request=Produce}} grew by {got_reqs} (by version: {by_version}); librdkafka's "
        f"statistics report {produce_reqs} Produce requests sent")
    tpr = s1.value(BTM + "totalproducerequests_total", topic=topic_name) - tpr0
    assert produce_reqs <= tpr <= 3 * produce_reqs, (
        f"totalproducerequests_total{{topic}} grew by {tpr}: each of the {produce_reqs} Produce requests addresses "
        f"1..3 partitions of the topic")

    for p, count in enumerate(per_partition):
        for fam in ("kafka_log_log_size", "kafka_log_log_numlogsegments", "kafka_log_log_logstartoffset",
                    "kafka_log_log_logendoffset"):
            assert s1.has(fam, topic=topic_name, partition=p), f"no {fam}{{topic={topic_name},partition={p}}}"
        assert s1.value("kafka_log_log_logendoffset", topic=topic_name, partition=p) == count, \
            f"partition {p}: logendoffset {s1.value('kafka_log_log_logendoffset', topic=topic_name, partition=p)}, " \
            f"produced {count}"
        assert s1.value("kafka_log_log_logstartoffset", topic=topic_name, partition=p) == 0
        assert s1.value("kafka_log_log_numlogsegments", topic=topic_name, partition=p) >= 1
        size = s1.value("kafka_log_log_size", topic=topic_name, partition=p)
        on_disk = sum(f.stat().st_size for f in b.segment_files(topic_name, p))
        assert size == on_disk, f"partition {p}: kafka_log_log_size {size}, its .log files hold {on_disk} bytes"
        assert s1.value("kafka_topic_partition_current_offset", topic=topic_name, partition=p) == count
        assert s1.value("kafka_topic_partition_oldest_offset", topic=topic_name, partition=p) == 0
    leo = s1.total("kafka_log_log_logendoffset", topic=topic_name)
    assert leo == n, f"logendoffset summed over {topic_name}'s partitions is {leo}, produced {n}"
    assert s1.value("kafka_topic_partitions", topic=topic_name) == 3

    out0 = s1.value(BTM + "bytesout_total", 0, topic=topic_name)
    got = clients.consume_all_confluent(b.bootstrap, topic_name, 3, timeout=60)
    assert len(got) == n, f"consumed {len(got)} of {n}"
    s2 = scrape(b)
    got_out = s2.value(BTM + "bytesout_total", topic=topic_name) - out0
    assert got_out >= payload, f"bytesout_total{{topic}} grew by {got_out} after consuming {payload} payload bytes"
    assert s2.value(BTM + "totalfetchrequests_total", topic=topic_name) > 0

    # the all-topics series (no labels) is the sum of the per-topic ones
    for fam in ("messagesin_total", "bytesin_total", "bytesout_total", "totalproducerequests_total",
                "totalfetchrequests_total", "failedproducerequests_total"):
        all_topics = s2.value(BTM + fam)
        per_topic = {lb["topic"]: v for lb, v in s2.series(BTM + fam) if "topic" in lb}
        assert all_topics == sum(per_topic.values()), (
            f"{BTM}{fam} (all topics) is {all_topics}, the per-topic series sum to {sum(per_topic.values())}: "
            f"{per_topic}")


# ================================================================ consumer lag
def test_consumer_group_lag(broker_factory, topic_name):
    b = broker_factory(props=dict(FAST_PROPS))
    counts = {0: 201, 1: 301, 2: 499}
    clients.create_topic(b.bootstrap, topic_name, 3)
    clients.produce_confluent(b.bootstrap, topic_name,
                              [(f"k{p}".encode(), f"v{p}-{i}".encode()) for p in counts for i in range(counts[p])],
                              partition_of=lambda i: 0 if i < 201 else 1 if i < 502 else 2)
    half = {p: c // 2 for p, c in counts.items()}
    group = f"lag-{uuid.uuid4().hex[:6]}"
    consume_with_group(b.bootstrap, topic_name, group, half)

    def lag_ok(s):
        return all(s.value("kafka_consumergroup_lag", -1, consumergroup=group, topic=topic_name, partition=p)
                   == counts[p] - half[p] for p in counts)

    s = wait_metric(b, lag_ok, 10, lambda s: (
        f"kafka_consumergroup_lag for {group} should be {{p: end - committed}} = "
        f"{ {p: counts[p] - half[p] for p in counts} }, got "
        f"{ {lb.get('partition'): v for lb, v in s.series('kafka_consumergroup_lag', consumergroup=group)} }"))
    for p in counts:
        cur = s.value("kafka_consumergroup_current_offset", consumergroup=group, topic=topic_name, partition=p)
        assert cur == half[p], f"kafka_consumergroup_current_offset partition {p}: {cur}, committed {half[p]}"
    lag_sum = s.value("kafka_consumergroup_lag_sum", consumergroup=group, topic=topic_name)
    want = sum(counts.values()) - sum(half.values())
    assert lag_sum == want, f"kafka_consumergroup_lag_sum {lag_sum}, expected {want}"
    assert s.value("kafka_consumergroup_members", consumergroup=group) == 0, "the member closed: 0 members"

    # lag follows new messages (log end moves, committed offset does not)
    clients.produce_confluent(b.bootstrap, topic_name, [(b"k0", b"more-%d" % i) for i in range(50)],
                              partition_of=lambda i: 0)
    wait_metric(b, lambda s: s.value("kafka_consumergroup_lag", -1, consumergroup=group, topic=topic_name,
                                     partition=0) == counts[0] - half[0] + 50,
                10, lambda s: f"lag of partition 0 after 50 more messages: "
                              f"{s.value('kafka_consumergroup_lag', -1, consumergroup=group, topic=topic_name, partition=0)}, "
                              f"expected {counts[0] - half[0] + 50}")


# ============================================================== RequestMetrics
RM = "kafka_network_requestmetrics_"


def test_request_metrics(broker_factory, topic_name):
    b = broker_factory(props=dict(FAST_PROPS))
    clients.create_topic(b.bootstrap, topic_name, 1)
    s0 = scrape(b)
    count0 = {r: s0.value(RM + "totaltimems_count", 0, request=r) for r in ("Produce", "FetchConsumer")}
    msgs = [(b"k", b"x" * 200)] * 300
    clients.produce_confluent(b.bootstrap, topic_name, msgs, **{"batch.num.messages": 50})
    clients.consume_all_confluent(b.bootstrap, topic_name, 1, timeout=30)
    s = scrape(b)
    for r in ("Produce", "FetchConsumer"):
        for fam in ("totaltimems", "requestqueuetimems", "localtimems", "remotetimems", "responsequeuetimems",
                    "responsesendtimems", "requestbytes"):
            qs = {lb.get("quantile"): v for lb, v in s.series(RM + fam, request=r)}
            assert sorted(qs, key=float) == QUANTILES, f"{RM}{fam}{{request={r}}} quantiles {sorted(qs)}, want {QUANTILES}"
            vals = [qs[q] for q in QUANTILES]
            assert all(v >= 0 and not math.isnan(v) for v in vals), f"{RM}{fam}{{request={r}}}: {qs}"
            assert vals == sorted(vals), f"{RM}{fam}{{request={r}}} quantiles are not non-decreasing: {qs}"
            assert s.value(RM + fam + "_sum", request=r) >= 0
            assert s.types.get(RM + fam) == "summary", f"{RM}{fam} TYPE {s.types.get(RM + fam)}"
        grew = s.value(RM + "totaltimems_count", request=r) - count0[r]
        assert grew > 0, f"{RM}totaltimems_count{{request={r}}} did not grow"
    # the producer waited for every response before it closed: each Produce was timed once
    reqs = s.total(RM + "requests_total", request="Produce")
    assert s.value(RM + "totaltimems_count", request="Produce") == reqs, (
        f"totaltimems_count{{request=Produce}} is {s.value(RM + 'totaltimems_count', request='Produce')} but "
        f"requests_total{{request=Produce}} is {reqs}: every completed request is timed once")
    assert s.value(RM + "requestbytes_sum", request="Produce") >= 300 * 201, "Produce requestbytes_sum < payload"
    # Kafka records every fetch under request="Fetch" too (the Fetch-latency alert selects it),
    # and a fetch's errors under Fetch only.
    fetch_grew = s.value(RM + "totaltimems_count", request="Fetch") - s0.value(RM + "totaltimems_count", 0, request="Fetch")
    consumer_grew = s.value(RM + "totaltimems_count", request="FetchConsumer") - count0["FetchConsumer"]
    assert fetch_grew == consumer_grew > 0, f"Fetch timed {fetch_grew:g} times, FetchConsumer {consumer_grew:g} (no follower here)"
    assert s.value(RM + "errors_total", request="Fetch", error="NONE") > 0
    assert not s.series(RM + "errors_total", request="FetchConsumer")
    assert s.value(RM + "errors_total", request="Metadata", error="NONE") > 0
    assert s.value(RM + "errors_total", request="Produce", error="NONE") > 0

    e0 = s.value(RM + "errors_total", 0, request="Produce", error="UNKNOWN_TOPIC_OR_PARTITION")
    assert raw_produce(b, topic_name, 7) == ERR_UNKNOWN_TOPIC_OR_PARTITION, "produce to partition 7 of a 1-partition topic"
    l0 = s.value(RM + "errors_total", 0, request="ListOffsets", error="UNKNOWN_TOPIC_OR_PARTITION")
    assert raw_list_offsets(b, f"no-such-topic-{uuid.uuid4().hex[:6]}") == ERR_UNKNOWN_TOPIC_OR_PARTITION
    s2 = scrape(b)
    got = s2.value(RM + "errors_total", 0, request="Produce", error="UNKNOWN_TOPIC_OR_PARTITION") - e0
    assert got == 1, (f"errors_total{{request=Produce,error=UNKNOWN_TOPIC_OR_PARTITION}} grew by {got} after one "
                      f"refused produce; Produce errors: {s2.series(RM + 'errors_total', request='Produce')}")
    got = s2.value(RM + "errors_total", 0, request="ListOffsets", error="UNKNOWN_TOPIC_OR_PARTITION") - l0
    assert got == 1, f"errors_total{{request=ListOffsets,error=UNKNOWN_TOPIC_OR_PARTITION}} grew by {got}, expected 1"


def test_request_counted_once_completed_like_kafka(broker_factory, topic_name):
    """Kafka marks RequestsPerSec in RequestChannel.Request.updateRequestMetrics, together with
    TotalTimeMs and the request log line, once the response has been sent: a request whose
    client is gone before its response goes out is in none of them, so requests_total and
    totaltimems_count always agree. Here a client sends a long-poll Fetch (max_wait 800 ms on
    an empty partition) and resets the connection (SO_LINGER 0) while the broker waits."""
    b = broker_factory(props=dict(FAST_PROPS))
    clients.create_topic(b.bootstrap, topic_name, 1)
    s0 = scrape(b)
    body = struct.pack(">iiiib", -1, 800, 1, 1 << 20, 0)  # replica, max_wait, min_bytes, max_bytes, isolation
    body += struct.pack(">i", 1) + _str16(topic_name) + struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, 1 << 20)
    sock = connect(b)
    sock.sendall(frame(header_v1(1, 4, 91, b"gone-client") + body))
    time.sleep(0.2)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    time.sleep(1.2)  # the long poll has ended and the broker has tried to answer
    s1 = scrape(b)
    received = s1.total(RM + "requests_total", request="FetchConsumer") - \
        s0.total(RM + "requests_total", request="FetchConsumer")
    timed = s1.value(RM + "totaltimems_count", 0, request="FetchConsumer") - \
        s0.value(RM + "totaltimems_count", 0, request="FetchConsumer")
    assert received == timed, (
        f"after a Fetch whose client reset the connection during the long poll, "
        f"requests_total{{request=FetchConsumer}} grew by {received:g} but totaltimems_count by {timed:g} "
        f"(Kafka counts both, and logs the request, only once the response is sent)")
    assert received <= 1


# =========================================================== naming profiles
SOFTWARE_FAMILY = {"strimzi": ("kafka_server_socket_server_metrics_connections_software",
                               "clientSoftwareName", "clientSoftwareVersion"),
                   "confluent": ("kafka_server_socketservermetrics_connections",
                                 "client_software_name", "client_software_version")}
CONNECTION_COUNT = {"strimzi": "kafka_server_socket_server_metrics_connection_count",
                    "confluent": "kafka_server_socketservermetrics_connection_count"}


@pytest.mark.parametrize("naming", ["strimzi", "confluent"])
def test_naming_profiles_and_connections_by_software(broker_factory, topic_name, naming):
    import confluent_kafka
    b = broker_factory(props={**FAST_PROPS, "metrics.naming": naming})
    clients.create_topic(b.bootstrap, topic_name, 1)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(10):
        p.produce(topic_name, key=b"k", value=b"v%d" % i)
    assert p.flush(30) == 0
    # kcat (plain librdkafka) stays connected as a consumer until we stop it
    kcat_version = clients.kcat_librdkafka_version("debian")
    fam, name_label, version_label = SOFTWARE_FAMILY[naming]
    kcat = subprocess.Popen([clients.KCAT, "-C", "-b", b.bootstrap, "-t", topic_name, "-o", "beginning", "-q"],
                            env=clients.kcat_env("debian"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        py_name = "confluent-kafka-python"  # what confluent-kafka sets as client.software.name
        py_version = f"{confluent_kafka.__version__}-rdkafka-{confluent_kafka.libversion()[0]}"

        def conns(s, name, version):
            return sum(v for lb, v in s.series(fam) if lb.get(name_label) == name and lb.get(version_label) == version)

        s = wait_metric(b, lambda s: conns(s, "librdkafka", kcat_version) >= 1 and conns(s, py_name, py_version) >= 1,
                        15, lambda s: f"{fam} should show librdkafka {kcat_version} (kcat) and {py_name} {py_version} "
                                      f"(confluent-kafka) while both are connected; it has {s.series(fam)}")
        for lb, _ in s.series(fam):
            assert lb.get("listener") == "PLAINTEXT", f"{fam} series without listener=PLAINTEXT: {lb}"
        cc = s.total(CONNECTION_COUNT[naming], listener="PLAINTEXT")
        assert cc >= 2, f"{CONNECTION_COUNT[naming]}{{listener=PLAINTEXT}} is {cc} with two clients connected"
        assert cc == s.total(fam), f"connection count {cc} != connections by software {s.total(fam)}"

        rows = docs_rows()
        if naming == "confluent":
            v = s.value("kafka_server_brokertopicmetrics_messagesinpersec", topic=topic_name)
            assert v == 10, f"kafka_server_brokertopicmetrics_messagesinpersec{{topic}} is {v}, produced 10"
            assert s.total(RM + "requestspersec", request="Produce") >= 1, "no requestspersec{request=Produce}"
            assert not s.series(RM + "requests_total"), "Strimzi's requests_total under metrics.naming=confluent"
            strimzi_only = {r["strimzi"] for r in rows} - {r["confluent"] for r in rows}
            leaked = sorted(strimzi_only & (s.sample_names() | set(s.types)))
            assert not leaked, f"metrics.naming=confluent still exports Strimzi names: {leaked}"
        else:
            assert s.value("kafka_server_brokertopicmetrics_messagesin_total", topic=topic_name) == 10
            confluent_only = {r["confluent"] for r in rows} - {r["strimzi"] for r in rows}
            leaked = sorted(confluent_only & (s.sample_names() | set(s.types)))
            assert not leaked, f"metrics.naming=strimzi (default) exports Confluent names: {leaked}"
    finally:
        kcat.kill()
        kcat.wait()
        del p
    # both gone: nothing is left counted as connected
    wait_metric(b, lambda s: s.total(fam) == 0 and s.total(CONNECTION_COUNT[naming]) == 0, 10,
                lambda s: f"after the clients left: {fam} {s.series(fam)}, "
                          f"{CONNECTION_COUNT[naming]} {s.series(CONNECTION_COUNT[naming])}")


def test_connections_without_api_versions_count_as_unknown_software(broker_factory):
    """Kafka counts every connection in the by-software gauge: one that has not sent
    ApiVersions v3+ (which is optional) as ClientInformation.EMPTY, i.e.
    clientSoftwareName="unknown", clientSoftwareVersion="unknown" (Selector.register)."""
    b = broker_factory(props=dict(FAST_PROPS))
    fam, name_label, version_label = SOFTWARE_FAMILY["strimzi"]
    s = connect(b)
    try:
        # a Metadata v1 request for no topics, so the connection is certainly accepted and served
        s.sendall(frame(header_v1(3, 1, 5, b"no-api-versions") + struct.pack(">i", 0)))
        s.settimeout(10)
        read_response(s)
        got = wait_metric(b, lambda sc: sc.total(CONNECTION_COUNT["strimzi"]) == 1, 5,
                          lambda sc: f"connection_count {sc.series(CONNECTION_COUNT['strimzi'])} with one connection")
        unknown = sum(v for lb, v in got.series(fam)
                      if lb.get(name_label) == "unknown" and lb.get(version_label) == "unknown")
        assert unknown == 1 and got.total(fam) == 1, (
            f"one open connection that sent no ApiVersions: {fam} should have "
            f"{{{name_label}=\"unknown\",{version_label}=\"unknown\"}} 1 (Kafka's ClientInformation.EMPTY) and "
            f"sum to connection_count (1); it has {got.series(fam) or 'no series'}")
    finally:
        s.close()


# ========================================================= broker-level gauges
def test_broker_gauges(broker_factory, topic_name):
    b = broker_factory(props=dict(FAST_PROPS))
    clients.create_topic(b.bootstrap, topic_name + "-a", 3)
    clients.create_topic(b.bootstrap, topic_name + "-b", 2)
    # a committed offset makes sure __consumer_offsets exists (offsets.topic.num.partitions=5)
    c = clients.consumer(b.bootstrap, **{"group.id": f"gauges-{uuid.uuid4().hex[:6]}"})
    try:
        c.commit(offsets=[TopicPartition(topic_name + "-a", 0, 0)], asynchronous=False)
    finally:
        c.close()
    # some work, so that the process has used CPU time measurable in clock ticks (10 ms)
    clients.produce_confluent(b.bootstrap, topic_name + "-b", [(b"k%d" % (i % 50), b"v" * 50) for i in range(50000)],
                              **{"batch.num.messages": 200})
    partitions = 3 + 2 + FAST_PROPS["offsets.topic.num.partitions"]
    s = wait_metric(b, lambda s: s.value("kafka_server_replicamanager_partitioncount") == partitions, 10,
                    lambda s: f"ReplicaManager PartitionCount is {s.value('kafka_server_replicamanager_partitioncount')}, "
                              f"expected {partitions} (3 + 2 + 5 of __consumer_offsets)")
    expect = {
        "kafka_server_replicamanager_leadercount": partitions,
        "kafka_server_replicamanager_underreplicatedpartitions": 0,
        "kafka_server_replicamanager_offlinereplicacount": 0,
        "kafka_controller_kafkacontroller_activecontrollercount": 1,
        "kafka_controller_kafkacontroller_globaltopiccount": 3,  # two topics and __consumer_offsets
        "kafka_controller_kafkacontroller_globalpartitioncount": partitions,
        "kafka_controller_kafkacontroller_offlinepartitionscount": 0,
        "kafka_controller_kafkacontroller_activebrokercount": 1,
        "kafka_controller_kafkacontroller_fencedbrokercount": 0,
        "kafka_server_kafkaserver_brokerstate": 3,
        "kafka_brokers": 1,
        "kafka_coordinator_group_groupmetadatamanager_numgroups": 1,
        "kafka_coordinator_group_groupmetadatamanager_numoffsets": 1,
    }
    got = {k: s.value(k) for k in expect}
    wrong = {k: (got[k], v) for k, v in expect.items() if got[k] != v}
    assert not wrong, f"broker gauges (got, expected): {wrong}"
    assert s.value("kafka_topic_partitions", topic=topic_name + "-a") == 3
    assert s.value("kafka_topic_partitions", topic=topic_name + "-b") == 2

    proc = psutil.Process(b.pid)
    rss = s.value("process_resident_memory_bytes")
    assert rss > 0 and 0.5 < rss / proc.memory_info().rss < 2, \
        f"process_resident_memory_bytes {rss}, psutil says {proc.memory_info().rss}"
    assert s.value("process_virtual_memory_bytes") >= rss
    cpu, t = s.value("process_cpu_seconds_total"), proc.cpu_times()
    assert abs(cpu - (t.user + t.system)) <= 0.05, \
        f"process_cpu_seconds_total {cpu}, /proc/{b.pid}/stat says {t.user + t.system:.2f} s (user+system)"
    if t.user + t.system >= 0.03:
        assert cpu > 0, "process_cpu_seconds_total is 0"
    fds = s.value("process_open_fds")
    real_fds = len(os.listdir(f"/proc/{b.pid}/fd"))
    assert fds > 0 and abs(fds - real_fds) <= 10, f"process_open_fds {fds}, /proc/{b.pid}/fd has {real_fds}"
    assert s.value("process_max_fds") >= fds
    start = s.value("process_start_time_seconds")
    assert abs(start - proc.create_time()) < 2, f"process_start_time_seconds {start}, psutil {proc.create_time()}"
    # The idle shares and the request queue are tested against real capacity, at rest and under
    # load, in test_handler_capacity.py (a check that they lie in 0..1 proved nothing).


def test_broker_state_while_logs_recover_then_running(broker_factory, topic_name):
    """BrokerState through a restart with a large active segment to recover (every batch's CRC
    checked, the index rebuilt): /metrics, polled from the moment the process starts, serves a
    valid exposition (promtool) with BrokerState 2 while the logs recover, then 1 (starting) until
    the broker is ready, and 3 once it is: in that order, never another value, never an empty page.
    (It replaces a unit test that checked the text the renderer prints for recovery: a constant.)"""
    b = broker_factory(props=dict(FAST_PROPS))
    clients.create_topic(b.bootstrap, topic_name, 1)
    p = clients.producer(b.bootstrap, **{"linger.ms": 100, "batch.size": 1_000_000, "compression.type": "none"})
    for i in range(400_000):  # 400 MB in the active segment
        while True:
            try:
                p.produce(topic_name, value=b"r" * 1000, partition=0)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    b.stop()
    b.start(wait=False)
    seen: list[tuple[float, bool]] = []
    recovering_text = recovering_openmetrics = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert b.proc.poll() is None, f"broker exited: {b.log_tail()}"
        try:
            with urllib.request.urlopen(b.http_base + "/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            continue  # not listening yet
        state = Scrape(text).value("kafka_server_kafkaserver_brokerstate")
        # (/health/ready asked only when it matters, to scrape as often as possible meanwhile)
        ready = state in (2, 3) and b._http_status("/health/ready") == 200
        seen.append((state, ready))
        if state == 2 and recovering_text is None:
            recovering_text = text
            om = scrape(b, accept="application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5")
            if om.value("kafka_server_kafkaserver_brokerstate") == 2:
                recovering_openmetrics = om.text
        if ready and state == 3:
            break
    states = sorted({st for st, _ in seen})
    print(f"{len(seen)} scrapes during the restart, {sum(st == 2 for st, _ in seen)} with BrokerState 2, values {states}")
    assert recovering_text is not None, f"no scrape saw BrokerState 2 while the broker recovered: {seen[:20]}"
    # 2 (recovering) until the logs are open, then 1 (starting: not yet registered and serving),
    # then 3 (running), in that order and never back.
    order = [{2: 0, 1: 1, 3: 2}.get(st) for st, _ in seen]
    assert None not in order and order == sorted(order) and seen[-1] == (3, True), \
        f"BrokerState over the restart (state, ready): {seen}"
    assert all(not ready for st, ready in seen if st == 2), "BrokerState 2 while /health/ready answered 200"
    code, problems = promtool_problems(recovering_text)
    assert code == 0 and not problems, f"the exposition served while recovering is not valid: {problems}\n{recovering_text}"
    if recovering_openmetrics is not None:
        assert recovering_openmetrics.endswith("# EOF\n"), f"OpenMetrics without its terminator: {recovering_openmetrics!r}"


# ==================================================================== docs
@pytest.mark.parametrize("naming", ["strimzi", "confluent"])
def test_docs_list_every_exported_family(broker_factory, topic_name, naming, tmp_path):
    b = broker_factory(props={**FAST_PROPS, **rest_auth_props(tmp_path), "metrics.naming": naming})
    load(b, topic_name)
    s = scrape(b)
    rows = docs_rows()
    documented = {r[naming] for r in rows} | {a for r in rows for a in r.get(f"{naming}_aliases", [])}
    undocumented = sorted(set(s.types) - documented)
    assert not undocumented, (f"families exported under metrics.naming={naming} but missing from docs/metrics.md "
                              f"(regenerate it from the catalogue): {undocumented}")
    # and the other way: what the table calls exported is exported (after this load every
    # family has a series), what it calls planned is not
    exported = {r[naming] for r in rows if r["status"] == "exported"}
    planned = {r[naming] for r in rows if r["status"] != "exported"}
    absent = sorted(exported - set(s.types))
    assert not absent, f"docs/metrics.md lists these as exported, the scrape has no such family: {absent}"
    leaked = sorted(planned & set(s.types))
    assert not leaked, f"docs/metrics.md lists these as planned, yet they are exported: {leaked}"
    if naming == "strimzi":
        wrong_type = {r["strimzi"]: (r["type"], s.types[r["strimzi"]]) for r in rows
                      if r["strimzi"] in s.types and s.types[r["strimzi"]] != r["type"]}
        assert not wrong_type, f"TYPE differs from docs/metrics.md (docs, scrape): {wrong_type}"
        for r in rows:
            if r["strimzi"] in s.types and r["labels"]:
                seen = {k for lb, _ in s.series(r["strimzi"]) for k in lb if k != "quantile"}
                assert seen <= set(r["labels"]), \
                    f"{r['strimzi']}: labels {sorted(seen)} in the scrape, docs say {r['labels']}"


def test_topic_series_exist_only_for_topics_the_metadata_has(broker_factory, topic_name):
    """Per-topic BrokerTopicMetrics series are made only for existing topics (a produce or
    list to a made-up name creates none: unauthenticated input cannot grow memory) and go when
    the topic is deleted, as Kafka removes its per-topic MBeans."""
    from confluent_kafka.admin import AdminClient
    b = broker_factory(props=dict(FAST_PROPS))
    made_up = f"no-such-topic-{uuid.uuid4().hex[:6]}"
    assert raw_produce(b, made_up, 0) == ERR_UNKNOWN_TOPIC_OR_PARTITION
    clients.create_topic(b.bootstrap, topic_name, 1)
    clients.produce_confluent(b.bootstrap, topic_name, [(b"k", b"v")] * 10)
    s = scrape(b)
    topics = {lb.get("topic") for n, lb, _ in s.samples if n.startswith("kafka_server_brokertopicmetrics_")}
    assert made_up not in topics, f"series for a topic that does not exist: {made_up}"
    assert topic_name in topics, f"no series for {topic_name}: {sorted(t for t in topics if t)}"
    assert s.total("kafka_server_brokertopicmetrics_failedproducerequests_total", topic=topic_name) == 0, (
        "a clean produce counted as failed: " + str(s.series("kafka_server_brokertopicmetrics_failedproducerequests_total")))
    assert s.total("kafka_server_brokertopicmetrics_totalproducerequests_total", topic=topic_name) > 0
    admin = AdminClient({"bootstrap.servers": b.bootstrap})  # kept: its futures die with it
    admin.delete_topics([topic_name])[topic_name].result(timeout=20)
    got = wait_metric(b, lambda sc: not any(lb.get("topic") == topic_name for n, lb, _ in sc.samples), 10,
                      lambda sc: f"series of the deleted {topic_name}: {[(n, lb) for n, lb, _ in sc.samples if lb.get('topic') == topic_name][:5]}")
    assert got.total("kafka_server_brokertopicmetrics_messagesin_total") >= 10, "the all-topics series stay"


def test_api_versions_with_invalid_client_software_is_refused_and_not_a_label(broker_factory):
    """ApiVersions v3 whose client_software_name does not match Kafka's pattern
    ([a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])?) gets INVALID_REQUEST (Kafka's isValid), and
    the name never becomes a metric label."""
    b = broker_factory(props=dict(FAST_PROPS))
    fam, name_label, _ = SOFTWARE_FAMILY["strimzi"]

    def compact(s: bytes) -> bytes:
        return uvarint(len(s) + 1) + s

    for name, want in ((b"bad name {x=1}", 42), (b"good-client", 0)):
        s = connect(b)
        try:
            s.sendall(frame(struct.pack(">hhih", 18, 3, 9, 5) + b"probe" + b"\x00" + compact(name) + compact(b"1.0") + b"\x00"))
            s.settimeout(10)
            resp = read_response(s)
            corr, err = struct.unpack_from(">ih", resp, 0)
            assert (corr, err) == (9, want), (name, corr, err)
            sc = scrape(b)
            names = {lb.get(name_label) for lb, _ in sc.series(fam)}
            assert "bad name {x=1}" not in names, names
            if want == 0:
                assert "good-client" in names, names
        finally:
            s.close()
