"""OpenTelemetry tracing end to end: the real broker exports spans through opentelemetry-otlp to
receivers the test runs (tests/otlp_receivers.py), one per OTEL_EXPORTER_OTLP_PROTOCOL, each
decoding with the OpenTelemetry project's protobuf definitions: grpc (grpcio, over TLS with a
private CA given by OTEL_EXPORTER_OTLP_CERTIFICATE), http/protobuf (over TLS, gzip) and
http/json (plain http).

Checked: a SERVER span per request under the configured resource, a log.append child with the
topic and partition, a log.flush child when an fsync runs, a link from log.append to the
producer's W3C `traceparent` record header (plain and zstd batches) with its tracestate,
request headers from OTEL_EXPORTER_OTLP_HEADERS; that nothing is sent when tracing is not
configured, turned off or sampled out; that bad settings stop start-up; that spans still queued
go out at shutdown; and that a stuck receiver costs dropped (counted) spans, not produce latency.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time

import pytest

import clients
from lantern import run_broker_expect_exit
from otlp_receivers import INTERNAL, SERVER, STATUS_ERROR, GrpcReceiver, HttpReceiver, make_ca


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("otlp-tls"))


def span_counter(broker, which: str) -> float:
    """lantern_tracing_spans_<which>_total from the broker's /metrics."""
    import urllib.request
    name = f"lantern_tracing_spans_{which}_total"
    with urllib.request.urlopen(broker.http_base + "/metrics", timeout=5) as r:
        text = r.read().decode()
    values = [float(l.split()[1]) for l in text.splitlines() if l.startswith(name + " ")]
    assert len(values) == 1, f"/metrics has {len(values)} {name} lines"
    return values[0]


@pytest.fixture
def no_otel_env(monkeypatch):
    """The broker inherits the test's environment: make sure no OTEL_* setting leaks in."""
    for k in list(os.environ):
        if k.startswith("OTEL_"):
            monkeypatch.delenv(k)


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def new_traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def produce_one(bootstrap: str, topic: str, value: bytes, traceparent: str, **conf) -> float:
    """Produces one record with trace headers; returns the seconds until it was acknowledged."""
    p = clients.producer(bootstrap, linger_ms=0, **conf)
    errors = []
    t0 = time.monotonic()
    p.produce(topic, value=value, headers=[("traceparent", traceparent.encode()), ("tracestate", b"lantern=t1")],
              on_delivery=lambda err, msg: err and errors.append(err))
    left = p.flush(30)
    assert left == 0 and not errors, f"produce failed: undelivered={left} errors={errors}"
    return time.monotonic() - t0


def tracing_env(endpoint: str, protocol: str, **extra) -> dict:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": "lantern-under-test",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=e2e",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=lantern-7",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    env.update(extra)
    return env


# (protocol, over TLS with the private CA, compression)
PROTOCOLS = [("grpc", True, "gzip"), ("http/protobuf", True, "gzip"), ("http/json", False, "none")]


@pytest.mark.parametrize("protocol, tls, compression", PROTOCOLS, ids=[p for p, _, _ in PROTOCOLS])
def test_produce_spans_reach_the_receiver_linked_to_the_producer(broker_factory, topic_name, ca, no_otel_env,
                                                                 protocol, tls, compression):
    ca_pem, cert, key = ca
    receiver = GrpcReceiver(tls=(cert, key) if tls else None) if protocol == "grpc" else HttpReceiver(tls=(cert, key) if tls else None)
    try:
        extra = {"OTEL_EXPORTER_OTLP_COMPRESSION": compression}
        if tls:
            extra["OTEL_EXPORTER_OTLP_CERTIFICATE"] = str(ca_pem)
        b = broker_factory(props={"num.partitions": 1, "log.flush.interval.messages": 1},
                           env=tracing_env(receiver.endpoint, protocol, **extra))
        clients.create_topic(b.bootstrap, topic_name, 1)
        plain_tp, plain_trace, plain_span = new_traceparent()
        zstd_tp, zstd_trace, zstd_span = new_traceparent()
        produce_one(b.bootstrap, topic_name, b"plain", plain_tp)
        produce_one(b.bootstrap, topic_name, b"compressed" * 100, zstd_tp, compression_type="zstd")

        def appends_with_links():
            found = {(t, s): span for span in receiver.spans() if span.name == "log.append" for t, s, _ in span.links}
            return found if {(plain_trace, plain_span), (zstd_trace, zstd_span)} <= found.keys() else None

        linked = wait_for(appends_with_links, what=f"log.append spans linked to both producer contexts over {protocol}")
        spans = receiver.spans()
        by_id = {s.span_id: s for s in spans}
        assert not receiver.bad, f"requests the receiver refused: {receiver.bad}"
        assert all(h.get("x-tenant") == "lantern-7" for h in receiver.headers), receiver.headers
        if protocol != "grpc":
            want = "application/x-protobuf" if protocol == "http/protobuf" else "application/json"
            assert all(h["content-type"].startswith(want) for h in receiver.headers), receiver.headers
            if compression == "gzip":
                assert all(h.get("content-encoding") == "gzip" for h in receiver.headers), receiver.headers

        for (trace_id, span_id), append in linked.items():
            if (trace_id, span_id) not in {(plain_trace, plain_span), (zstd_trace, zstd_span)}:
                continue
            # The append span: INTERNAL, the topic and partition, the offset and count.
            a = append.attrs
            assert append.kind == INTERNAL and append.scope == "lantern-broker"
            assert a["messaging.destination.name"] == topic_name
            assert a["messaging.destination.partition.id"] == "0"
            assert a["messaging.batch.message_count"] == 1
            assert isinstance(a["messaging.kafka.offset"], int)
            # Its link: the producer's context with the tracestate header.
            assert (trace_id, span_id, "lantern=t1") in append.links, append.links
            # The broker's span is its own trace (linked, not parented, to the producer).
            assert append.trace_id != trace_id
            # Its parent: the Produce request's SERVER span, same trace, under the resource.
            assert append.parent_span_id in by_id, f"parent of log.append not exported: {append}"
            request = by_id[append.parent_span_id]
            assert request.name == "kafka.Produce" and request.kind == SERVER, request
            assert request.trace_id == append.trace_id and request.parent_span_id == ""
            res = request.resource
            assert res["service.name"] == "lantern-under-test" and res["service.instance.id"] == "1", res
            assert res["deployment.environment"] == "e2e" and res["telemetry.sdk.name"] == "opentelemetry", res
            r = request.attrs
            assert r["kafka.api.name"] == "Produce" and r["kafka.api.key"] == 0
            assert r["messaging.client.id"] == "rdkafka" and isinstance(r["kafka.correlation_id"], int)
            assert r["network.peer.address"] == "127.0.0.1"
            assert request.start_ns <= append.start_ns and append.end_ns <= request.end_ns
            assert request.status_code != STATUS_ERROR, f"a successful produce marked as failed: {request}"
            # log.flush.interval.messages=1: each append ran an fsync, recorded under it.
            flushes = [s for s in spans if s.name == "log.flush" and s.parent_span_id == append.span_id]
            assert len(flushes) == 1, f"expected one log.flush under {append.span_id}, got {flushes}"
            assert flushes[0].trace_id == append.trace_id and flushes[0].kind == INTERNAL

        # One span per request, not only for Produce.
        names = {s.name for s in spans if s.kind == SERVER}
        assert {"kafka.ApiVersions", "kafka.Metadata", "kafka.Produce"} <= names, names
        # /metrics counts what the receiver accepted, once its answer is back
        exported = wait_for(lambda: (lambda n: n if n >= len(spans) else None)(span_counter(b, "exported")),
                            what=f"lantern_tracing_spans_exported_total to reach the {len(spans)} spans received")
        assert exported <= len(receiver.spans()), (len(spans), exported)
        assert span_counter(b, "dropped") == 0 and span_counter(b, "export_failed") == 0
    finally:
        receiver.close()


def test_nothing_is_sent_unless_tracing_is_configured(broker_factory, topic_name, no_otel_env):
    receiver = HttpReceiver()
    # No OTEL_* variable at all; if the spec's default port is free, listen there too, so a
    # broker that exported by default would be caught.
    try:
        default_port = HttpReceiver(4318)
    except OSError:
        default_port = None
    try:
        # Tracing asked for and then turned off: the endpoint is known but never used.
        off = broker_factory(props={"num.partitions": 1},
                             env=tracing_env(receiver.endpoint, "http/json", OTEL_TRACES_EXPORTER="none"))
        # On, but the sampler keeps nothing.
        sampled_out = broker_factory(props={"num.partitions": 1},
                                     env=tracing_env(receiver.endpoint, "http/json", OTEL_TRACES_SAMPLER="traceidratio",
                                                     OTEL_TRACES_SAMPLER_ARG="0"))
        bare = broker_factory(props={"num.partitions": 1})
        for b in (off, sampled_out, bare):
            tp, _, _ = new_traceparent()
            clients.create_topic(b.bootstrap, topic_name, 1)
            produce_one(b.bootstrap, topic_name, b"untraced", tp)
        time.sleep(1.5)  # 15x the schedule delay the first brokers would have used
        assert receiver.requests == 0 and receiver.bad == []
        for b in (off, sampled_out, bare):
            assert span_counter(b, "queued") == 0 and span_counter(b, "exported") == 0
        if default_port is not None:
            assert default_port.requests == 0 and default_port.bad == []
        assert "tracing: exporting spans over OTLP" in sampled_out.log_tail(200)
    finally:
        receiver.close()
        if default_port is not None:
            default_port.close()


@pytest.mark.parametrize("env, expected", [
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "expected grpc, http/protobuf or http/json"),
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "set it to otlp or none"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli"}, "expected gzip, zstd or none"),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"}, "cannot read the CA certificate /nonexistent/ca.pem"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key"}, "OTEL_EXPORTER_OTLP_HEADERS"),
    # a header name HTTP forbids: opentelemetry-otlp would drop it silently
    ({"OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=7,bad key=secret-token"}, "OTEL_EXPORTER_OTLP_HEADERS=<"),
    # set but empty: the crate would then ignore the general variable's headers
    ({"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=secret-token"},
     "OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
    # the crate does not trim, so it would ignore " gzip" and send uncompressed
    ({"OTEL_EXPORTER_OTLP_COMPRESSION": " gzip"}, "OTEL_EXPORTER_OTLP_COMPRESSION=\" gzip\""),
])
def test_bad_tracing_settings_stop_start_up(tmp_path, no_otel_env, env, expected):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://127.0.0.1:4318", **env}
    rc, out = run_broker_expect_exit([f"--log.dirs={tmp_path / 'data'}", "--node.id=1"], env=env)
    assert rc == 2, out
    assert "tracing configuration error" in out and expected in out, out
    assert "secret" not in out, f"the error shows the headers: {out}"


def test_spans_still_queued_are_exported_at_shutdown(broker_factory, topic_name, no_otel_env):
    receiver = GrpcReceiver()
    try:
        # A schedule delay far beyond the test: only the shutdown flush can deliver the spans.
        b = broker_factory(props={"num.partitions": 1},
                           env=tracing_env(receiver.endpoint, "grpc", OTEL_BSP_SCHEDULE_DELAY="600000"))
        clients.create_topic(b.bootstrap, topic_name, 1)
        tp, trace_id, _ = new_traceparent()
        produce_one(b.bootstrap, topic_name, b"late", tp)
        time.sleep(0.3)
        assert receiver.requests == 0, "spans were exported before the schedule delay or shutdown"
        assert span_counter(b, "queued") >= 2 and span_counter(b, "exported") == 0
        assert b.terminate() == 0
        links = [l for s in receiver.spans() if s.name == "log.append" for l in s.links]
        assert any(l[0] == trace_id for l in links), f"no log.append linked to {trace_id} after shutdown"
        assert "span exporter stopped" in b.log_tail(40)
    finally:
        receiver.close()


class SilentReceiver:
    """Accepts connections and never answers (nor reads)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.sock.close()
        for c in self.held:
            c.close()


def test_a_stuck_receiver_drops_and_counts_spans_without_slowing_produce(broker_factory, topic_name, no_otel_env):
    # A receiver that accepts connections and never answers: the export task waits on its
    # first batch for the whole timeout while the one-span queue overflows.
    silent = SilentReceiver()
    try:
        endpoint = silent.endpoint
        b = broker_factory(props={"num.partitions": 1},
                           env=tracing_env(endpoint, "http/protobuf", OTEL_BSP_MAX_QUEUE_SIZE="1", OTEL_EXPORTER_OTLP_TIMEOUT="20000"))
        clients.create_topic(b.bootstrap, topic_name, 1)
        took = [produce_one(b.bootstrap, topic_name, b"x", new_traceparent()[0]) for _ in range(5)]
        assert max(took) < 2.0, f"produce waited for the stuck receiver: {took}"
        # /metrics counts the drops as they happen (the shutdown line below may count a few more)
        counted = {n: span_counter(b, n) for n in ("queued", "dropped", "exported", "export_failed")}
        assert counted["dropped"] >= 10 and counted["exported"] == 0 and counted["queued"] >= 1, counted
        assert b.terminate() == 0
        log = re.sub(r"\x1b\[[0-9;]*m", "", b.log_tail(60))  # without the terminal colours
        stopped = [l for l in log.splitlines() if "span exporter stopped" in l]
        assert stopped, b.log_tail(60)
        dropped = int(re.search(r"dropped_queue_full=(\d+)", stopped[-1]).group(1))
        exported = int(re.search(r"exported=(\d+)", stopped[-1]).group(1))
        assert dropped >= counted["dropped"] and exported == 0, (stopped[-1], counted)
    finally:
        silent.close()


def test_grpc_to_plain_http_under_the_service_name_the_spec_picks(broker_factory, topic_name, no_otel_env):
    """OTLP/gRPC without TLS, and the resource's service.name by the SDK environment spec:
    OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES (opentelemetry_sdk's own
    Resource::builder() lets the attribute win)."""
    receiver = GrpcReceiver()
    try:
        b = broker_factory(props={"num.partitions": 1},
                           env=tracing_env(receiver.endpoint, "grpc", OTEL_SERVICE_NAME="lantern-by-name",
                                           OTEL_RESOURCE_ATTRIBUTES="service.name=lantern-by-attribute,deployment.environment=e2e"))
        assert receiver.endpoint.startswith("http://")
        clients.create_topic(b.bootstrap, topic_name, 1)
        produce_one(b.bootstrap, topic_name, b"plain grpc", new_traceparent()[0])
        produce = wait_for(lambda: [s for s in receiver.spans() if s.name == "kafka.Produce"], what="a kafka.Produce span over gRPC")
        res = produce[0].resource
        assert res["service.name"] == "lantern-by-name", res
        assert res["deployment.environment"] == "e2e" and res["service.instance.id"] == "1", res
        assert all(h.get("x-tenant") == "lantern-7" for h in receiver.headers), receiver.headers
    finally:
        receiver.close()


def test_grpc_gzip_is_what_the_receiver_gets(broker_factory, topic_name, no_otel_env):
    """OTEL_EXPORTER_OTLP_COMPRESSION=gzip over gRPC, seen by the receiver: a grpcio server that
    accepts only uncompressed requests refuses every export of a broker asked for gzip (gRPC
    UNIMPLEMENTED) and takes those of a broker asked for none."""
    refusing = GrpcReceiver(accept_gzip=False)
    try:
        gzipped = broker_factory(props={"num.partitions": 1},
                                 env=tracing_env(refusing.endpoint, "grpc", OTEL_EXPORTER_OTLP_COMPRESSION="gzip"))
        plain = broker_factory(props={"num.partitions": 1},
                               env=tracing_env(refusing.endpoint, "grpc", OTEL_EXPORTER_OTLP_COMPRESSION="none",
                                               OTEL_SERVICE_NAME="uncompressed"))
        for b in (gzipped, plain):
            clients.create_topic(b.bootstrap, topic_name, 1)
            produce_one(b.bootstrap, topic_name, b"gzip", new_traceparent()[0])
        wait_for(lambda: span_counter(gzipped, "export_failed") > 0, what="the gzip-compressed export to be refused")
        wait_for(lambda: span_counter(plain, "exported") > 0, what="the uncompressed export to be accepted")
        assert span_counter(gzipped, "exported") == 0 and span_counter(plain, "export_failed") == 0
        assert {s.resource["service.name"] for s in refusing.spans()} == {"uncompressed"}
        log = gzipped.log_tail(200)
        assert "could not export spans" in log and "gRPC code: Unimplemented" in log, log
    finally:
        refusing.close()


def test_zstd_over_http_to_the_traces_endpoint_as_given(broker_factory, topic_name, no_otel_env):
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is (no /v1/traces appended, the spec's
    rule for signal-specific endpoints) and wins over OTEL_EXPORTER_OTLP_ENDPOINT; zstd bodies."""
    receiver = HttpReceiver(path="/otlp/spans")
    try:
        b = broker_factory(props={"num.partitions": 1},
                           env=tracing_env("http://127.0.0.1:9", "http/protobuf", OTEL_EXPORTER_OTLP_COMPRESSION="zstd",
                                           OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint + "/otlp/spans"))
        clients.create_topic(b.bootstrap, topic_name, 1)
        produce_one(b.bootstrap, topic_name, b"zstd" * 100, new_traceparent()[0])
        wait_for(lambda: [s for s in receiver.spans() if s.name == "kafka.Produce"], what="a kafka.Produce span over zstd")
        assert set(receiver.paths) == {"/otlp/spans"} and not receiver.bad, (receiver.paths, receiver.bad)
        assert all(h.get("content-encoding") == "zstd" for h in receiver.headers), receiver.headers
    finally:
        receiver.close()


def test_a_short_timeout_fails_batches_to_a_silent_receiver_and_kafka_goes_on(broker_factory, topic_name, no_otel_env):
    """OTEL_EXPORTER_OTLP_TIMEOUT=300 against a receiver that accepts and never answers: each
    batch fails after the timeout and is counted, the broker keeps serving produce and fetch at
    its usual latency, and shutdown does not wait for the receiver."""
    silent = SilentReceiver()
    try:
        b = broker_factory(props={"num.partitions": 1},
                           env=tracing_env(silent.endpoint, "grpc", OTEL_EXPORTER_OTLP_TIMEOUT="300",
                                           OTEL_BSP_SCHEDULE_DELAY="50", OTEL_BSP_MAX_QUEUE_SIZE="8"))
        clients.create_topic(b.bootstrap, topic_name, 1)
        took = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            took.append(produce_one(b.bootstrap, topic_name, b"r%d" % len(took), new_traceparent()[0]))
        assert max(took) < 1.0, f"produce waited for the silent receiver: {took}"
        got = clients.consume_confluent(b.bootstrap, topic_name, [0], timeout=20)
        assert [v for _, _, _, v, _ in got] == [b"r%d" % i for i in range(len(took))]
        failed = wait_for(lambda: span_counter(b, "export_failed") or None, what="a batch to fail after the short timeout")
        assert span_counter(b, "exported") == 0 and failed + span_counter(b, "dropped") > 0
        assert silent.held, "the broker never connected to the receiver"
        t = time.monotonic()
        assert b.terminate() == 0
        assert time.monotonic() - t < 5.0, "shutdown waited for the silent receiver"
    finally:
        silent.close()
