"""OTLP trace receivers for the tests, one per OTEL_EXPORTER_OTLP_PROTOCOL, each decoding what
it receives with the OpenTelemetry project's own protobuf definitions (opentelemetry-proto):

- `grpc`: a grpcio server implementing opentelemetry.proto.collector.trace.v1.TraceService;
- `http/protobuf`: POST /v1/traces with an ExportTraceServiceRequest body (gzip, zstd or not);
- `http/json`: POST /v1/traces with OTLP's JSON encoding (hex ids, enum numbers);
- logs over HTTP (`HttpLogsReceiver`) and gRPC (`GrpcLogsReceiver`) likewise.

Each can listen over TLS with a certificate from `make_ca` (a CA and a 127.0.0.1/localhost
server certificate written by the openssl command). Every receiver keeps the spans as plain
dicts (see `Span`) and the request headers (gRPC metadata) it saw.
"""

from __future__ import annotations

import gzip
import json
import zstandard
import ssl
import subprocess
import threading
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

SERVER, INTERNAL = 2, 1
STATUS_ERROR = 2


@dataclass
class Span:
    resource: dict
    scope: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    attrs: dict
    links: list = field(default_factory=list)  # (trace id, span id, trace state)
    dropped_links: int = 0
    status_code: int = 0


def _value(v) -> object:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def spans_from_proto(req: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    out = []
    for rs in req.resource_spans:
        resource = {a.key: _value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(Span(
                    resource=resource, scope=ss.scope.name, name=s.name, kind=s.kind,
                    trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
                    start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano,
                    attrs={a.key: _value(a.value) for a in s.attributes},
                    links=[(l.trace_id.hex(), l.span_id.hex(), l.trace_state) for l in s.links],
                    dropped_links=s.dropped_links_count, status_code=s.status.code))
    return out


def _json_value(v: dict) -> object:
    if "intValue" in v:
        return int(v["intValue"])
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    return None


def spans_from_json(body: dict) -> list[Span]:
    """OTLP/JSON: ids are hex strings, enums numbers, 64-bit integers strings or numbers."""
    attrs = lambda obj: {kv["key"]: _json_value(kv["value"]) for kv in obj.get("attributes", [])}
    out = []
    for rs in body.get("resourceSpans", []):
        resource = attrs(rs.get("resource", {}))
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                out.append(Span(
                    resource=resource, scope=ss.get("scope", {}).get("name", ""), name=s["name"], kind=int(s.get("kind", 0)),
                    trace_id=s["traceId"].lower(), span_id=s["spanId"].lower(), parent_span_id=s.get("parentSpanId", "").lower(),
                    start_ns=int(s["startTimeUnixNano"]), end_ns=int(s["endTimeUnixNano"]), attrs=attrs(s),
                    links=[(l["traceId"].lower(), l["spanId"].lower(), l.get("traceState", "")) for l in s.get("links", [])],
                    dropped_links=int(s.get("droppedLinksCount", 0)), status_code=int(s.get("status", {}).get("code", 0))))
    return out


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost signed by it: (ca, cert, key)."""
    d = Path(directory)
    ca_key, ca, key, csr, cert, ext = (d / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem", "ext.cnf"))
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=lantern test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return ca, cert, key


class _Base:
    scheme = "http"

    def __init__(self):
        self.lock = threading.Lock()
        self._spans: list[Span] = []
        self.requests = 0
        self.headers: list[dict] = []
        self.bad: list[str] = []

    def _keep(self, spans: list[Span], headers: dict):
        with self.lock:
            self.requests += 1
            self._spans.extend(spans)
            self.headers.append(headers)

    def spans(self) -> list[Span]:
        with self.lock:
            return list(self._spans)


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return body


class GrpcReceiver(_Base):
    """opentelemetry.proto.collector.trace.v1.TraceService/Export on 127.0.0.1 (TLS with `tls=(cert, key)`).
    With `accept_gzip=False` grpcio refuses gzip-compressed requests (UNIMPLEMENTED, "Compression
    algorithm 'gzip' is disabled"): grpcio hides the grpc-encoding header from the handler, so
    this is how a test sees, on the receiver's side, that a client compressed."""

    def __init__(self, tls: tuple[Path, Path] | None = None, accept_gzip: bool = True):
        super().__init__()
        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                receiver._keep(spans_from_proto(request), dict(context.invocation_metadata()))
                return trace_service_pb2.ExportTraceServiceResponse()

        # bit 0: identity only; the default enables every algorithm grpcio knows
        options = [] if accept_gzip else [("grpc.compression_enabled_algorithms_bitset", 1)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self.server)
        if tls:
            creds = grpc.ssl_server_credentials([(tls[1].read_bytes(), tls[0].read_bytes())])
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
            self.scheme = "https"
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def close(self):
        self.server.stop(0)


class HttpReceiver(_Base):
    """POST `path` (/v1/traces) as http/protobuf or http/json (by Content-Type), gzip and zstd
    accepted; `paths` lists every path requested."""

    def __init__(self, port: int = 0, tls: tuple[Path, Path] | None = None, path: str = "/v1/traces"):
        super().__init__()
        receiver = self
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = _decompress(self.rfile.read(int(self.headers.get("Content-Length", 0))), self.headers.get("Content-Encoding"))
                ctype = self.headers.get("Content-Type", "")
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.paths.append(self.path)
                if self.path != path:
                    status, reply = 404, b""
                elif ctype.startswith("application/x-protobuf"):
                    req = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                    receiver._keep(spans_from_proto(req), headers)
                    status, reply = 200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                elif ctype.startswith("application/json"):
                    receiver._keep(spans_from_json(json.loads(body)), headers)
                    status, reply = 200, b"{}"
                else:
                    status, reply = 415, b""
                if status != 200:
                    with receiver.lock:
                        receiver.bad.append(f"{self.path} {ctype}")
                self.send_response(status)
                self.send_header("Content-Type", ctype or "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class GrpcLogsReceiver:
    """opentelemetry.proto.collector.logs.v1.LogsService/Export on 127.0.0.1 (TLS with
    `tls=(cert, key)`); keeps (resource attributes, scope name, LogRecord message) per record."""

    def __init__(self, tls: tuple[Path, Path] | None = None):
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
        self.lock = threading.Lock()
        self.records: list[tuple[dict, str, object]] = []
        receiver = self

        class Service(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request, context):
                with receiver.lock:
                    for rl in request.resource_logs:
                        resource = {a.key: _value(a.value) for a in rl.resource.attributes}
                        for sl in rl.scope_logs:
                            receiver.records.extend((resource, sl.scope.name, r) for r in sl.log_records)
                return logs_service_pb2.ExportLogsServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Service(), self.server)
        if tls:
            creds = grpc.ssl_server_credentials([(tls[1].read_bytes(), tls[0].read_bytes())])
            self.endpoint = f"https://127.0.0.1:{self.server.add_secure_port('127.0.0.1:0', creds)}"
        else:
            self.endpoint = f"http://127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def close(self):
        self.server.stop(0)


class HttpLogsReceiver:
    """POST /v1/logs as http/protobuf or http/json (TLS with `tls=(cert, key)`, gzip and zstd
    accepted), answering `status`: 200 keeps the records as (resource attributes, LogRecord in
    OTLP/JSON form); any other status refuses every request. Keeps each request's headers."""

    def __init__(self, tls: tuple[Path, Path] | None = None, status: int = 200):
        from google.protobuf.json_format import MessageToDict
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        self.lock = threading.Lock()
        self.records: list[tuple[dict, dict]] = []
        self.headers: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = _decompress(self.rfile.read(int(self.headers.get("Content-Length", 0))), self.headers.get("Content-Encoding"))
                ctype = self.headers.get("Content-Type", "")
                with receiver.lock:
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                if status == 200 and self.path == "/v1/logs":
                    if ctype.startswith("application/x-protobuf"):
                        req = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
                        parsed = MessageToDict(req, use_integers_for_enums=True)
                        reply = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
                    else:
                        parsed, reply = json.loads(body), b"{}"
                    with receiver.lock:
                        for rl in parsed["resourceLogs"]:
                            res = {a["key"]: a["value"].get("stringValue") for a in rl["resource"]["attributes"]}
                            for sl in rl["scopeLogs"]:
                                receiver.records.extend((res, r) for r in sl["logRecords"])
                    code = 200
                else:
                    code, reply = (status if status != 200 else 404), b"refused"
                self.send_response(code)
                self.send_header("Content-Type", ctype if code == 200 else "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.endpoint = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
