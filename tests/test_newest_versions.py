"""The newest versions Kafka 3.9 accepts (issue 16, "Old request versions" asks for every one):
Fetch 13-17 name topics by id, which librdkafka (Fetch 16) and the Java client (Fetch 17) use
as soon as a broker advertises them. Before, Lantern stopped at Fetch 12."""

from __future__ import annotations

import socket
import struct
import uuid

import clients
from test_metrics import scrape

UNKNOWN_TOPIC_ID = 100


def uvarint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def read_uvarint(buf: bytes, at: int) -> tuple[int, int]:
    n, shift = 0, 0
    while True:
        b = buf[at]
        at += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, at
        shift += 7


def fetch_v13(bootstrap: str, topic_id: uuid.UUID) -> tuple[int, int, int]:
    """One Fetch v13 for partition 0 of topic_id from offset 0, written by hand from Kafka's
    FetchRequest.json: (error code, high watermark, record bytes) of that partition."""
    partition = struct.pack(">iiqiqi", 0, -1, 0, -1, -1, 1 << 20) + uvarint(0)
    topic = topic_id.bytes + uvarint(2) + partition + uvarint(0)
    body = struct.pack(">iiiibii", -1, 100, 1, 1 << 20, 0, 0, -1) + uvarint(2) + topic + uvarint(1) + uvarint(1) + uvarint(0)
    header = struct.pack(">hhih", 1, 13, 7, 4) + b"test" + uvarint(0)
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        resp = s.recv(size, socket.MSG_WAITALL)
    assert struct.unpack(">i", resp[:4])[0] == 7, "correlation id"
    at = 4
    _, at = read_uvarint(resp, at)  # header tagged fields
    throttle, error, session = struct.unpack(">ihi", resp[at:at + 10])
    assert error == 0, error
    at += 10
    n_topics, at = read_uvarint(resp, at)
    assert n_topics - 1 == 1
    assert uuid.UUID(bytes=resp[at:at + 16]) == topic_id, "the response names the topic by the id it was asked by"
    at += 16
    n_parts, at = read_uvarint(resp, at)
    assert n_parts - 1 == 1
    index, code, hw = struct.unpack(">ihq", resp[at:at + 14])
    at += 14 + 8 + 8  # last stable offset, log start offset
    n_aborted, at = read_uvarint(resp, at)
    at += (max(n_aborted, 1) - 1) * 16 + 4  # aborted transactions, preferred read replica
    records_len, at = read_uvarint(resp, at)
    return code, hw, max(records_len - 1, 0)


def test_fetch_by_topic_id_and_unknown_ids(broker, topic_name):
    b = broker
    clients.create_topic(b.bootstrap, topic_name, 1)
    clients.produce_confluent(b.bootstrap, topic_name, [(b"k", b"v")] * 40, partition_of=lambda i: 0)
    from confluent_kafka import TopicCollection
    admin = clients.admin(b.bootstrap)
    desc = admin.describe_topics(TopicCollection([topic_name]))[topic_name].result(timeout=10)
    msb, lsb = (v & (2**64 - 1) for v in (desc.topic_id.get_most_significant_bits(), desc.topic_id.get_least_significant_bits()))
    topic_id = uuid.UUID(int=(msb << 64) | lsb)

    code, hw, records = fetch_v13(b.bootstrap, topic_id)
    assert (code, hw) == (0, 40) and records > 0, (code, hw, records)
    code, hw, records = fetch_v13(b.bootstrap, uuid.uuid4())
    assert (code, hw, records) == (UNKNOWN_TOPIC_ID, -1, 0)

    # librdkafka reads with the newest Fetch it knows (16) now that it is advertised.
    before = scrape(b).value("kafka_network_requestmetrics_requests_total", 0, request="Fetch", version=16)
    got = clients.consume_confluent(b.bootstrap, topic_name, [0])
    assert [m[1] for m in got] == list(range(40))
    assert scrape(b).value("kafka_network_requestmetrics_requests_total", 0, request="Fetch", version=16) > before
