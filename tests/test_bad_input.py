"""Claim: malformed or hostile bytes on the Kafka port never crash the broker, never make
it allocate what a length field claims, and never stop it serving normal clients.

Each case talks to a fresh broker over a raw socket, then checks: the process is alive,
its RSS (current and peak, /proc/<pid>/status VmRSS/VmHWM) stays under 200 MiB, and a
normal confluent-kafka client can still produce and consume.
"""

import random
import socket
import struct
import time

import pytest

import clients

RSS_LIMIT = 200 * 1024 * 1024


# ------------------------------------------------------------- wire helpers
def header_v1(api_key: int, api_version: int, correlation_id: int, client_id: bytes = b"lantern-tests") -> bytes:
    return struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id


def header_v2(api_key, api_version, correlation_id, client_id=b"lantern-tests") -> bytes:
    return header_v1(api_key, api_version, correlation_id, client_id) + b"\x00"  # no tagged fields


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def connect(broker) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_quietly(s: socket.socket, data: bytes) -> None:
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the broker may hang up before we finish: fine


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_response(s: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(s, 4))
    assert 0 <= size < 1 << 20, f"implausible response size {size}"
    return recv_exact(s, size)


def outcome_within(s: socket.socket, timeout: float = 5.0) -> str:
    """'closed' if the broker hangs up, 'answered' if it sends something, 'open' if
    neither happens within `timeout`."""
    s.settimeout(timeout)
    try:
        data = s.recv(4096)
        return "answered" if data else "closed"
    except (ConnectionResetError, BrokenPipeError):
        return "closed"
    except socket.timeout:
        return "open"


# ----------------------------------------------------------- health checks
def metric(broker, name: str) -> float:
    """The value of an unlabelled counter on the broker's /metrics endpoint."""
    import urllib.request
    with urllib.request.urlopen(broker.http_base + "/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"/metrics has no {name}; it has:\n{text[:2000]}")


def assert_counted_and_logged(broker, counter: str, before: float) -> None:
    """A refused connection shows up as a counter increment and a log line."""
    deadline = time.monotonic() + 5
    while metric(broker, counter) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(broker, counter) > before, f"{counter} did not increase"
    assert "closing connection" in broker.log_tail(200), "no log line for the refused connection"


def assert_still_healthy(broker, topic_name):
    time.sleep(0.3)
    assert broker.alive(), f"broker died (exit code {broker.proc.returncode}); log tail:\n{broker.log_tail()}"
    rss, peak = broker.rss_bytes(), broker.peak_rss_bytes()
    assert rss < RSS_LIMIT, f"broker RSS is {rss / 2**20:.0f} MiB (limit {RSS_LIMIT / 2**20:.0f} MiB)"
    assert peak < RSS_LIMIT, f"broker peak RSS (VmHWM) reached {peak / 2**20:.0f} MiB (limit {RSS_LIMIT / 2**20:.0f} MiB)"
    clients.create_topic(broker.bootstrap, topic_name, 1)
    msgs = [(b"k", f"after-bad-input-{i}".encode()) for i in range(100)]
    clients.produce_confluent(broker.bootstrap, topic_name, msgs, **{"message.timeout.ms": 20000})
    got = clients.consume_all_confluent(broker.bootstrap, topic_name, 1, timeout=30)
    assert [v for *_, v, _ in got] == [v for _, v in msgs], "a normal client could not round-trip after the bad input"


# ------------------------------------------------------------------- cases
@pytest.mark.parametrize("length", [0x7FFFFFFF, 0x80000000], ids=["0x7fffffff", "0x80000000"])
def test_huge_length_prefix(broker, topic_name, length):
    before = metric(broker, "lantern_network_oversized_requests_total")
    s = connect(broker)
    send_quietly(s, struct.pack(">I", length) + b"\x00\x12\x00\x03\x00\x00\x00\x01")
    outcome = outcome_within(s)
    s.close()
    assert outcome == "closed", f"broker should hang up on a frame length of {length:#x}, got: {outcome}"
    assert_counted_and_logged(broker, "lantern_network_oversized_requests_total", before)
    assert_still_healthy(broker, topic_name)


def test_truncated_request(broker, topic_name):
    s = connect(broker)
    send_quietly(s, struct.pack(">i", 100) + header_v1(18, 0, 1)[:6])  # 10 bytes of a 104-byte frame
    s.close()
    # and the same, but leaving the connection open while others work
    s2 = connect(broker)
    send_quietly(s2, struct.pack(">i", 100) + header_v1(18, 0, 2)[:6])
    try:
        assert_still_healthy(broker, topic_name)
    finally:
        s2.close()


HUGE_ARRAY_REQUESTS = {
    # Metadata v1: topics array of 2^31-1 entries, then a few bytes of a first topic name.
    "metadata-v1": frame(header_v1(3, 1, 7, b"") + struct.pack(">i", 0x7FFFFFFF) + struct.pack(">h", 5) + b"abcd"),
    # Produce v3: transactional_id=null, acks=1, timeout=1000, topics array of 2^31-1.
    "produce-v3": frame(header_v1(0, 3, 8, b"") + struct.pack(">hhii", -1, 1, 1000, 0x7FFFFFFF) + b"\x00\x01t"),
    # Metadata v12 (flexible): compact topics array with length 2^31-2.
    "metadata-v12-compact": frame(header_v2(3, 12, 9, b"") + uvarint(0x7FFFFFFF) + b"\x00" * 16 + b"\x05abcd"),
    # Fetch v4: replica_id, max_wait, min_bytes, max_bytes, isolation, topics array of 2^31-1.
    "fetch-v4": frame(header_v1(1, 4, 10, b"") + struct.pack(">iiiib", -1, 100, 1, 1 << 20, 0) + struct.pack(">i", 0x7FFFFFFF) + b"\x00\x01t"),
}


@pytest.mark.parametrize("case", list(HUGE_ARRAY_REQUESTS))
def test_huge_array_count(broker, topic_name, case):
    req = HUGE_ARRAY_REQUESTS[case]
    if case == "metadata-v1":
        assert len(req) == 4 + 20, "the Metadata request should be 20 bytes"
    before = metric(broker, "lantern_network_malformed_requests_total")
    s = connect(broker)
    send_quietly(s, req)
    outcome = outcome_within(s)
    s.close()
    assert outcome == "closed", f"a request whose array count exceeds its bytes must close the connection, got {outcome}"
    assert_counted_and_logged(broker, "lantern_network_malformed_requests_total", before)
    assert_still_healthy(broker, topic_name)


def test_one_megabyte_of_random_bytes(broker, topic_name):
    data = random.Random(99).randbytes(1 << 20)
    for _ in range(3):
        s = connect(broker)
        send_quietly(s, data)
        s.close()
    # also with a plausible small length prefix so the random bytes reach the decoder
    rnd = random.Random(7)
    for _ in range(50):
        s = connect(broker)
        body = rnd.randbytes(rnd.randrange(1, 2000))
        send_quietly(s, frame(body))
        s.close()
    assert_still_healthy(broker, topic_name)


def test_unknown_api_key(broker, topic_name):
    before = metric(broker, "lantern_network_unsupported_requests_total")
    s = connect(broker)
    send_quietly(s, frame(header_v1(9999, 0, 11) + b"\x00" * 8))
    outcome = outcome_within(s)
    s.close()
    # Kafka cannot parse a header with an unknown key and closes the connection; so do we.
    assert outcome == "closed", f"unknown API key: expected the connection closed, got {outcome}"
    assert_counted_and_logged(broker, "lantern_network_unsupported_requests_total", before)
    assert_still_healthy(broker, topic_name)


def test_api_versions_unsupported_version(broker, topic_name):
    s = connect(broker)
    try:
        s.sendall(frame(header_v2(18, 99, 4242) + b"\x00"))
        s.settimeout(10)
        resp = read_response(s)
        (corr,) = struct.unpack_from(">i", resp, 0)
        assert corr == 4242, f"correlation id {corr}, expected 4242"
        (err,) = struct.unpack_from(">h", resp, 4)
        assert err == 35, f"ApiVersions v99 should get error 35 (UNSUPPORTED_VERSION), got {err}"
        # v0 body: error_code int16, api_keys [int16 key, int16 min, int16 max]
        (count,) = struct.unpack_from(">i", resp, 6)
        assert 0 <= count < 1000, f"api_keys count {count}: the error response is not v0-encoded"
        assert len(resp) == 10 + 6 * count, (
            f"response body of {len(resp)} bytes is not a v0 ApiVersions response with {count} keys")
        keys = {struct.unpack_from(">h", resp, 10 + 6 * i)[0]: struct.unpack_from(">hh", resp, 12 + 6 * i)
                for i in range(count)}
        assert 18 in keys, f"the error response should list ApiVersions' own version range, lists {keys}"
        lo, hi = keys[18]
        assert lo == 0 and hi >= 3, f"ApiVersions range {lo}..{hi}"
        # The connection stays usable: a supported version now works (what librdkafka does next).
        s.sendall(frame(header_v1(18, 0, 4243)))
        resp = read_response(s)
        corr, err = struct.unpack_from(">ih", resp, 0)
        assert (corr, err) == (4243, 0), f"ApiVersions v0 after the v99 error: correlation {corr}, error {err}"
    finally:
        s.close()
    assert_still_healthy(broker, topic_name)
