"""OpenTelemetry tracing end to end: the real broker exports OTLP/HTTP JSON spans to a small
receiver the test runs (Python's http.server on a free 127.0.0.1 port).

Checked: a SERVER span per Produce request under the configured service.name, a log.append
child with the topic and partition, a log.flush child when an fsync runs, a link from
log.append to the producer's W3C `traceparent` record header (plain and zstd batches), and
that the broker sends nothing when tracing is not configured or is turned off.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import clients
from lantern import run_broker_expect_exit

SERVER, INTERNAL = 2, 1


class OtlpReceiver:
    """Accepts POST /v1/traces with a JSON body (OTLP/HTTP JSON) and keeps every request."""

    def __init__(self, port: int = 0):
        self.requests: list[dict] = []
        self.bad: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ctype = self.headers.get("Content-Type", "")
                with receiver.lock:
                    if self.path != "/v1/traces" or not ctype.startswith("application/json"):
                        receiver.bad.append(f"{self.path} {ctype}")
                        status = 404
                    else:
                        receiver.requests.append(json.loads(body))
                        status = 200
                reply = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[tuple[dict, dict]]:
        """(resource attributes, span) for every span received so far."""
        out = []
        with self.lock:
            for req in self.requests:
                for rs in req.get("resourceSpans", []):
                    resource = attrs(rs.get("resource", {}))
                    for ss in rs.get("scopeSpans", []):
                        out.extend((resource, s) for s in ss.get("spans", []))
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def attrs(obj: dict) -> dict:
    """OTLP KeyValue list -> {key: python value}."""
    out = {}
    for kv in obj.get("attributes", []):
        v = kv["value"]
        if "stringValue" in v:
            out[kv["key"]] = v["stringValue"]
        elif "intValue" in v:
            out[kv["key"]] = int(v["intValue"])
        elif "boolValue" in v:
            out[kv["key"]] = v["boolValue"]
    return out


@pytest.fixture
def receiver():
    r = OtlpReceiver()
    yield r
    r.close()


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


def produce_one(bootstrap: str, topic: str, value: bytes, traceparent: str, **conf) -> None:
    p = clients.producer(bootstrap, linger_ms=0, **conf)
    errors = []
    p.produce(topic, value=value, headers=[("traceparent", traceparent.encode()), ("tracestate", b"lantern=t1")],
              on_delivery=lambda err, msg: err and errors.append(err))
    left = p.flush(30)
    assert left == 0 and not errors, f"produce failed: undelivered={left} errors={errors}"


def tracing_env(receiver: OtlpReceiver, **extra) -> dict:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_SERVICE_NAME": "lantern-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    env.update(extra)
    return env


def test_produce_spans_reach_the_otlp_receiver_linked_to_the_producer(broker_factory, topic_name, receiver, no_otel_env):
    b = broker_factory(props={"num.partitions": 1, "log.flush.interval.messages": 1}, env=tracing_env(receiver))
    clients.create_topic(b.bootstrap, topic_name, 1)
    plain_tp, plain_trace, plain_span = new_traceparent()
    zstd_tp, zstd_trace, zstd_span = new_traceparent()
    produce_one(b.bootstrap, topic_name, b"plain", plain_tp)
    produce_one(b.bootstrap, topic_name, b"compressed" * 100, zstd_tp, compression_type="zstd")

    def appends_with_links():
        found = {}
        for _, s in receiver.spans():
            for link in s.get("links", []):
                if s["name"] == "log.append":
                    found[(link["traceId"], link["spanId"])] = s
        return found if {(plain_trace, plain_span), (zstd_trace, zstd_span)} <= found.keys() else None

    linked = wait_for(appends_with_links, what="log.append spans linked to both producer contexts")
    spans = receiver.spans()
    by_id = {s["spanId"]: (res, s) for res, s in spans}
    assert not receiver.bad, f"requests the receiver refused: {receiver.bad}"

    for (trace_id, span_id), append in linked.items():
        # The append span: INTERNAL, the topic and partition, the offset and count.
        a = attrs(append)
        assert append["kind"] == INTERNAL
        assert a["messaging.destination.name"] == topic_name
        assert a["messaging.destination.partition.id"] == "0"
        assert a["messaging.batch.message_count"] == 1
        assert "messaging.kafka.offset" in a
        # Its link: the producer's context, marked remote, with the tracestate header.
        link = next(l for l in append["links"] if l["traceId"] == trace_id)
        assert link["spanId"] == span_id and link.get("traceState") == "lantern=t1", link
        # The broker's span is its own trace (linked, not parented, to the producer).
        assert append["traceId"] != trace_id
        # Its parent: the Produce request's SERVER span, same trace, with service.name.
        assert append.get("parentSpanId") in by_id, f"parent of log.append not exported: {append}"
        resource, request = by_id[append["parentSpanId"]]
        assert request["name"] == "kafka.Produce" and request["kind"] == SERVER, request
        assert request["traceId"] == append["traceId"]
        assert "parentSpanId" not in request or not request["parentSpanId"]
        assert resource["service.name"] == "lantern-under-test"
        r = attrs(request)
        assert r["kafka.api.name"] == "Produce" and r["kafka.api.key"] == 0
        assert r["messaging.client.id"] == "rdkafka" and isinstance(r["kafka.correlation_id"], int)
        assert int(request["startTimeUnixNano"]) <= int(append["startTimeUnixNano"])
        assert int(append["endTimeUnixNano"]) <= int(request["endTimeUnixNano"])
        assert "status" not in request, f"a successful produce marked as failed: {request}"
        # log.flush.interval.messages=1: each append ran an fsync, recorded under it.
        flushes = [s for _, s in spans if s["name"] == "log.flush" and s.get("parentSpanId") == append["spanId"]]
        assert len(flushes) == 1, f"expected one log.flush under {append['spanId']}, got {flushes}"
        assert flushes[0]["traceId"] == append["traceId"] and flushes[0]["kind"] == INTERNAL

    # One span per request, not only for Produce.
    names = {s["name"] for _, s in spans if s["kind"] == SERVER}
    assert {"kafka.ApiVersions", "kafka.Metadata", "kafka.Produce"} <= names, names


def test_nothing_is_sent_unless_tracing_is_configured(broker_factory, topic_name, receiver, no_otel_env):
    # Tracing asked for and then turned off: the endpoint is known but never used.
    off = broker_factory(props={"num.partitions": 1}, env=tracing_env(receiver, OTEL_TRACES_EXPORTER="none"))
    # No OTEL_* variable at all; if the spec's default port is free, listen there too, so a
    # broker that exported by default would be caught.
    try:
        default_port = OtlpReceiver(4318)
    except OSError:
        default_port = None
    try:
        bare = broker_factory(props={"num.partitions": 1})
        for b in (off, bare):
            tp, _, _ = new_traceparent()
            clients.create_topic(b.bootstrap, topic_name, 1)
            produce_one(b.bootstrap, topic_name, b"untraced", tp)
        time.sleep(1.5)  # 15x the schedule delay the first broker would have used
        assert receiver.requests == [] and receiver.bad == []
        if default_port is not None:
            assert default_port.requests == [] and default_port.bad == []
    finally:
        if default_port is not None:
            default_port.close()


@pytest.mark.parametrize("env, expected", [
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "set OTEL_EXPORTER_OTLP_PROTOCOL=http/json"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTLP/HTTP with JSON bodies only"),
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "set it to otlp"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318"}, "https is not supported"),
])
def test_unsupported_tracing_settings_stop_start_up(tmp_path, no_otel_env, env, expected):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", **env}
    rc, out = run_broker_expect_exit([f"--log.dirs={tmp_path / 'data'}", "--node.id=1"], env=env)
    assert rc == 2, out
    assert "tracing configuration error" in out and expected in out, out


def test_spans_still_queued_are_exported_at_shutdown(broker_factory, topic_name, receiver, no_otel_env):
    # A schedule delay far beyond the test: only the shutdown flush can deliver the spans.
    b = broker_factory(props={"num.partitions": 1}, env=tracing_env(receiver, OTEL_BSP_SCHEDULE_DELAY="600000"))
    clients.create_topic(b.bootstrap, topic_name, 1)
    tp, trace_id, _ = new_traceparent()
    produce_one(b.bootstrap, topic_name, b"late", tp)
    time.sleep(0.3)
    assert receiver.requests == [], "spans were exported before the schedule delay or shutdown"
    assert b.terminate() == 0
    links = [l for _, s in receiver.spans() if s["name"] == "log.append" for l in s.get("links", [])]
    assert any(l["traceId"] == trace_id for l in links), f"no log.append linked to {trace_id} after shutdown"
    assert "span exporter stopped" in b.log_tail(40)
