"""Claim: SIGTERM shuts the broker down gracefully -- exit code 0 within 10 s even with
clients connected or producing -- and after a restart on the same dirs and ports every
message (every acknowledged one, when the SIGTERM came mid-stream) is served."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import clients
from clients import check_roundtrip, keyed_messages
from durable_producer import durable_value

PARTITIONS = 3


def test_health_endpoints(broker):
    assert broker.health("/health/live") == 200
    assert broker.health("/health/ready") == 200


def test_sigterm_with_idle_clients_then_restart(broker_factory, topic_name):
    broker = broker_factory()
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    msgs = keyed_messages(5000, n_keys=50)
    clients.produce_confluent(broker.bootstrap, topic_name, msgs)
    # keep a producer and a consumer connected across the shutdown
    idle_p = clients.producer(broker.bootstrap)
    idle_p.list_topics(topic_name, timeout=10)
    idle_c = clients.consumer(broker.bootstrap)
    idle_c.list_topics(topic_name, timeout=10)
    try:
        t0 = time.monotonic()
        code = broker.terminate(timeout=10)
        took = time.monotonic() - t0
        assert code == 0, f"exit code after SIGTERM: {code}; log tail:\n{broker.log_tail()}"
        print(f"graceful shutdown took {took:.2f}s")
    finally:
        idle_c.close()
        del idle_p

    broker.start()
    got = clients.consume_all_confluent(broker.bootstrap, topic_name, PARTITIONS)
    check_roundtrip(msgs, [(p, o, k, v) for p, o, k, v, _ in got])


def test_sigterm_while_producing_keeps_acked_messages(broker_factory, topic_name, tmp_path):
    """No per-message fsync here (default flush settings): the graceful path must flush."""
    broker = broker_factory()
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    acked_file = tmp_path / "acked.txt"
    log = open(tmp_path / "producer.log", "wb")
    producer_py = Path(__file__).resolve().parent / "durable_producer.py"
    prod = subprocess.Popen([sys.executable, str(producer_py), broker.bootstrap, topic_name, str(PARTITIONS),
                             str(acked_file)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while (not acked_file.exists() or acked_file.stat().st_size < 20000) and time.monotonic() < deadline:
            assert prod.poll() is None, "producer died"
            time.sleep(0.05)
        assert acked_file.exists() and acked_file.stat().st_size > 0, "precondition: nothing acknowledged in 30 s"
        t0 = time.monotonic()
        code = broker.terminate(timeout=10)
        assert code == 0, f"exit code after SIGTERM while producing: {code}; log tail:\n{broker.log_tail()}"
        print(f"graceful shutdown under load took {time.monotonic() - t0:.2f}s")
        time.sleep(0.3)
    finally:
        prod.send_signal(signal.SIGKILL)
        prod.wait()
        log.close()

    acked = {int(x) for x in acked_file.read_text().split()}
    broker.start()
    got = clients.consume_all_confluent(broker.bootstrap, topic_name, PARTITIONS)
    present = {int(k) for _, _, k, _, _ in got}
    bad = [(p, o, v) for p, o, k, v, _ in got if v != durable_value(int(k))]
    assert not bad, f"{len(bad)} records were never sent like that, e.g. {bad[:3]}"
    assert len(present) == len(got), "duplicate records after graceful shutdown"
    lost = sorted(acked - present)
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged messages lost across SIGTERM, e.g. {lost[:10]}"
