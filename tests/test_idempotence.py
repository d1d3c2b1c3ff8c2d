"""Claim: with enable.idempotence=true, a producer whose connections are cut over and over
mid-stream still gets every message written exactly once and in send order per partition.

A TCP proxy sits between client and broker (the broker advertises the proxy's port, so
every connection goes through it) and cuts all connections every second while producing.
A second is what librdkafka needs to reconnect and re-acquire its producer id (its PID
timer alone waits 500 ms); cutting faster starves any broker, Kafka included.
"""

import time

import pytest

import clients
from clients import first_diff
from lantern import free_port
from tcp_proxy import ChaosProxy

N = 50_000
PARTITIONS = 3
DEADLINE_S = 240


@pytest.fixture
def proxied(broker_factory):
    proxy_port = free_port()
    b = broker_factory(start=False, advertised_port=proxy_port)
    proxy = ChaosProxy(b.port, cut_interval=1.0, listen_port=proxy_port).start()
    try:
        b.start()
        yield b, proxy
    finally:
        proxy.stop()


def test_idempotent_producer_survives_connection_cuts(proxied, topic_name):
    broker, proxy = proxied
    assert broker.bootstrap == f"127.0.0.1:{proxy.port}"
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)

    p = clients.producer(broker.bootstrap, **{
        "enable.idempotence": True, "acks": "all", "linger.ms": 5, "batch.num.messages": 500,
        "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 200,
        "retry.backoff.ms": 20, "message.timeout.ms": DEADLINE_S * 1000,
        # librdkafka >= 2.10 "re-bootstraps" (forgets every broker, and with them the
        # producer-id acquisition) whenever all connections are down -- which the proxy
        # makes happen every 200 ms. Real deployments have several brokers; keep the
        # client on its learned broker so the test exercises the broker, not that logic.
        "metadata.recovery.strategy": "none",
    })
    sent = {q: [] for q in range(PARTITIONS)}
    errors, delivered = [], [0]

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{msg.value()[:40]!r}: {err}")
        else:
            delivered[0] += 1

    proxy.chaos.set()
    t0 = time.monotonic()
    for i in range(N):
        q = i % PARTITIONS
        v = f"idem-{i:06d}".encode()
        sent[q].append(v)
        while True:
            try:
                p.produce(topic_name, value=v, key=str(i).encode(), partition=q, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if i % 500 == 499:
            time.sleep(0.15)  # spread the stream over ~15 s, i.e. ~75 cut windows
    remaining = p.flush(DEADLINE_S)
    elapsed = time.monotonic() - t0
    proxy.chaos.clear()
    print(f"produced {N} in {elapsed:.1f}s; proxy faults {proxy.faults}, {proxy.cuts} connections cut, "
          f"{proxy.accepted} accepted")

    assert proxy.faults["drop-response"] >= 3 and proxy.faults["tear-request"] >= 3, (
        f"test precondition: too few faults were injected: {proxy.faults}")
    assert remaining == 0, f"{remaining} messages undelivered after {DEADLINE_S}s ({len(errors)} errors: {errors[:3]})"
    assert not errors, f"{len(errors)} deliveries failed, e.g. {errors[:5]}"
    assert delivered[0] == N, f"{delivered[0]} delivery reports for {N} messages"

    got = clients.consume_all_confluent(broker.bootstrap, topic_name, PARTITIONS)
    for q in range(PARTITIONS):
        vals = [v for part, _, _, v, _ in sorted(got, key=lambda m: (m[0], m[1])) if part == q]
        dup = len(vals) - len(set(vals))
        assert dup == 0, f"partition {q}: {dup} duplicated messages (idempotence failed)"
        missing = set(sent[q]) - set(vals)
        assert not missing, f"partition {q}: {len(missing)} acknowledged messages missing, e.g. {sorted(missing)[:3]}"
        assert vals == sent[q], (
            f"partition {q}: order differs from send order; first difference at {first_diff(vals, sent[q])}")
    offs = {}
    for part, off, *_ in got:
        offs.setdefault(part, []).append(off)
    for q, o in offs.items():
        assert sorted(o) == list(range(len(o))), f"partition {q}: offsets are not contiguous from 0"
