"""Claim: the broker bounds its client connections as Kafka does, and says so in /metrics.

- `connections.max.idle.ms`: a connection with nothing read for that long is closed
  (counted in connection-close-total and lantern_network_idle_connections_closed_total);
  one that keeps sending requests stays open.
- `max.connections.per.ip`: one more connection from the address is closed as soon as it
  is accepted, counted in lantern_network_rejected_connections_total and logged as Kafka
  logs it; the others are unaffected.
- `max.connections`: at the limit the acceptor stops accepting (the client waits in the
  listen backlog) until a connection closes; the wait shows in AcceptorBlockedPercent.
"""

import struct
import time

from test_bad_input import connect, frame, header_v1, outcome_within, read_response
from test_metrics import scrape, wait_metric

API_VERSIONS = 18
LISTENER = "PLAINTEXT"


def api_versions(s, correlation_id: int = 1) -> None:
    """One ApiVersions v0 round trip; fails if the broker does not answer with error 0."""
    s.sendall(frame(header_v1(API_VERSIONS, 0, correlation_id)))
    body = read_response(s)
    (corr, error) = struct.unpack(">ih", body[:6])
    assert (corr, error) == (correlation_id, 0), (corr, error)


def closes_within(s, timeout: float) -> float:
    """Seconds until the broker hangs up on `s` (fails if it does not within `timeout`)."""
    started = time.monotonic()
    outcome = outcome_within(s, timeout)
    assert outcome == "closed", f"expected the broker to close the connection, got {outcome!r}"
    return time.monotonic() - started


def test_idle_connections_are_closed_after_connections_max_idle_ms(broker_factory):
    b = broker_factory(props={"connections.max.idle.ms": 1000})
    idle, busy = connect(b), connect(b)
    api_versions(idle)
    api_versions(busy)
    before = scrape(b)
    closed_before = before.value("kafka_server_socket_server_metrics_connection_close_total", listener=LISTENER, networkProcessor="0", default=0.0)

    for i in range(6):  # 3 s of a request every 0.5 s: never idle for a second
        time.sleep(0.5)
        api_versions(busy, correlation_id=10 + i)
    # The idle one has been quiet for 3 s: the broker hung up on it at about 1 s.
    closes_within(idle, 1.0)
    api_versions(busy, correlation_id=99)

    s = wait_metric(b, lambda s: s.value("lantern_network_idle_connections_closed_total", listener=LISTENER, default=0.0) >= 1,
                    5, "the idle close was not counted")
    assert s.value("lantern_network_idle_connections_closed_total", listener=LISTENER) == 1
    assert s.value("kafka_server_socket_server_metrics_connection_close_total", listener=LISTENER, networkProcessor="0") == closed_before + 1
    busy.close()


def test_a_quiet_connection_is_not_closed_before_connections_max_idle_ms(broker_factory):
    b = broker_factory(props={"connections.max.idle.ms": 4000})
    s = connect(b)
    api_versions(s)
    assert outcome_within(s, 2.5) == "open"
    api_versions(s, correlation_id=2)
    assert scrape(b).value("lantern_network_idle_connections_closed_total", default=0.0, listener=LISTENER) == 0


def test_max_connections_per_ip_refuses_the_extra_connection_and_counts_it(broker_factory):
    b = broker_factory(props={"max.connections.per.ip": 3})
    first = [connect(b) for _ in range(3)]
    for i, s in enumerate(first):
        api_versions(s, correlation_id=i)
    extra = connect(b)  # the kernel completes the handshake; the broker then hangs up
    assert closes_within(extra, 5) < 5
    for i, s in enumerate(first):
        api_versions(s, correlation_id=10 + i)
    s = wait_metric(b, lambda s: s.value("lantern_network_rejected_connections_total", listener=LISTENER, default=0.0) >= 1,
                    5, "the refused connection was not counted")
    assert s.value("lantern_network_rejected_connections_total", listener=LISTENER) == 1
    assert s.value("kafka_server_socket_server_metrics_connection_count", listener=LISTENER, networkProcessor="0") == 3
    assert "Rejected connection from 127.0.0.1" in b.log_text()

    first.pop().close()  # a slot for this address is free again
    deadline = time.monotonic() + 5
    while True:
        again = connect(b)
        try:
            api_versions(again, correlation_id=50)
            break
        except (ConnectionError, OSError):
            again.close()
            assert time.monotonic() < deadline, "a new connection was refused after one closed"
            time.sleep(0.1)
    again.close()
    for s in first:
        s.close()


def test_max_connections_blocks_the_acceptor_until_a_connection_closes(broker_factory):
    b = broker_factory(props={"max.connections": 2})
    first = [connect(b), connect(b)]
    for i, s in enumerate(first):
        api_versions(s, correlation_id=i)
    waiting = connect(b)  # accepted by the kernel's backlog, not yet by the broker
    waiting.sendall(frame(header_v1(API_VERSIONS, 0, 7)))
    assert outcome_within(waiting, 1.5) == "open", "the third connection was served at max.connections=2"
    first.pop().close()
    waiting.settimeout(5)
    body = read_response(waiting)
    assert struct.unpack(">ih", body[:6]) == (7, 0)
    time.sleep(1.1)  # AcceptorBlockedPercent is the share of the last window of >= 1 s
    blocked = scrape(b).value("kafka_network_acceptor_acceptorblocked_percent", listener=LISTENER)
    assert 0.2 < blocked <= 1.0, blocked
    waiting.close()
    first[0].close()
