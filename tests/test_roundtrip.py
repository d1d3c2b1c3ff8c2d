"""Claim: every supported client can produce keyed messages with every compression codec
and read all of them back byte-exact, exactly once, with per-key order preserved.

Clients: kcat on Debian's librdkafka 2.0.2, the same kcat on the newer librdkafka that
the confluent-kafka wheel bundles, confluent-kafka, kafka-python. Each (client, codec)
pair is its own test; each produces N_MESSAGES to a 6-partition topic (kafka-python, pure
Python and about 10x slower than the others, KAFKA_PYTHON_MESSAGES: still hundreds of
batches per codec).
"""

import os
import time

import pytest

import clients
from clients import CODECS, check_roundtrip, keyed_messages

N_MESSAGES = int(os.environ.get("LANTERN_ROUNDTRIP_MESSAGES", "100000"))
KAFKA_PYTHON_MESSAGES = min(N_MESSAGES, 25_000)
PARTITIONS = 6

_MESSAGES = None


def messages():
    global _MESSAGES
    if _MESSAGES is None:
        _MESSAGES = keyed_messages(N_MESSAGES)
    return _MESSAGES


def _strip(rows):
    return [(p, o, k, v) for p, o, k, v, *_ in rows]


def check_reports(msgs, reports, got):
    """The (partition, offset) the broker acknowledged for each message is where it is."""
    where = {v: (p, o) for p, o, _, v, *_ in got}
    wrong = [(i, reports[i], where[v]) for i, (_, v) in enumerate(msgs) if tuple(reports[i]) != where[v]]
    assert not wrong, (f"{len(wrong)} delivery reports disagree with the fetched positions, "
                       f"e.g. (index, acked, fetched) {wrong[:3]}")


def test_kcat_variants_use_different_librdkafka():
    """Precondition of the kcat-bundled tests: LD_LIBRARY_PATH really swaps librdkafka."""
    debian = clients.kcat_librdkafka_version("debian")
    bundled = clients.kcat_librdkafka_version("bundled")
    assert debian == "2.0.2", f"Debian kcat should run on librdkafka 2.0.2, `kcat -V` says {debian}"
    assert bundled != debian, f"kcat with the wheel's librdkafka still reports {bundled}"


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("variant", ["debian", "bundled"])
def test_kcat_roundtrip(broker, topic_name, variant, codec):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    msgs = messages()
    t0 = time.monotonic()
    clients.kcat_produce(variant, broker.bootstrap, topic_name, msgs, codec)
    t1 = time.monotonic()
    got = clients.kcat_consume(variant, broker.bootstrap, topic_name)
    t2 = time.monotonic()
    print(f"kcat[{variant}] {codec}: produce {t1 - t0:.1f}s, consume {t2 - t1:.1f}s")
    check_roundtrip(msgs, got)


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_roundtrip(broker, topic_name, codec):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    msgs = messages()
    t0 = time.monotonic()
    reports = clients.produce_confluent(broker.bootstrap, topic_name, msgs, **{"compression.codec": codec})
    t1 = time.monotonic()
    got = clients.consume_all_confluent(broker.bootstrap, topic_name, PARTITIONS)
    t2 = time.monotonic()
    print(f"confluent-kafka {codec}: produce {t1 - t0:.1f}s, consume {t2 - t1:.1f}s")
    check_roundtrip(msgs, _strip(got))
    check_reports(msgs, reports, got)


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_roundtrip(broker, topic_name, codec):
    clients.create_topic_kafka_python(broker.bootstrap, topic_name, PARTITIONS)
    msgs = messages()[:KAFKA_PYTHON_MESSAGES]
    t0 = time.monotonic()
    reports = clients.produce_kafka_python(broker.bootstrap, topic_name, msgs, codec=codec)
    t1 = time.monotonic()
    got = clients.consume_kafka_python(broker.bootstrap, topic_name, list(range(PARTITIONS)))
    t2 = time.monotonic()
    print(f"kafka-python {codec}: produce {t1 - t0:.1f}s, consume {t2 - t1:.1f}s")
    check_roundtrip(msgs, _strip(got))
    check_reports(msgs, reports, got)
