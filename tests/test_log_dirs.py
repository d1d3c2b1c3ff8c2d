"""Claim: with several log.dirs, partitions are spread across them (each partition lives in
exactly one of them), DescribeLogDirs reports each where it is with its size, and everything
is found again after a restart."""

import clients
from clients import check_roundtrip, keyed_messages
from cluster import describe_log_dirs

PARTITIONS = 6


def test_partitions_spread_over_log_dirs(broker_factory, topic_name):
    broker = broker_factory(n_dirs=2)
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    msgs = keyed_messages(6000, n_keys=60)
    clients.produce_confluent(broker.bootstrap, topic_name, msgs)

    placement = {}
    for p in range(PARTITIONS):
        dirs = broker.partition_dirs(topic_name, p)
        assert len(dirs) == 1, f"partition {p} should live in exactly one log dir, found {dirs}"
        placement[p] = dirs[0].parent
        assert list(dirs[0].glob("*.log")), f"partition {p}: no .log segment in {dirs[0]}"
    used = set(placement.values())
    assert used == set(broker.data_dirs), (
        f"partitions of a {PARTITIONS}-partition topic all went to {sorted(map(str, used))}; "
        f"expected both of {[str(d) for d in broker.data_dirs]}: {placement}")
    counts = {d: sum(1 for v in placement.values() if v == d) for d in broker.data_dirs}
    assert max(counts.values()) - min(counts.values()) <= 2, f"uneven spread {counts}"
    # DescribeLogDirs (what kafka-log-dirs.sh asks) names the same directory for each
    # partition, with its size on disk.
    described = describe_log_dirs(broker)
    assert set(described) == {str(d) for d in broker.data_dirs}, described.keys()
    for p in range(PARTITIONS):
        where = [d for d, replicas in described.items() if (topic_name, p) in replicas]
        assert where == [str(placement[p])], (p, where, str(placement[p]))
        size, lag = described[where[0]][(topic_name, p)]
        on_disk = sum(f.stat().st_size for f in broker.partition_dirs(topic_name, p)[0].glob("*.log"))
        assert size == on_disk and lag == 0, (p, size, on_disk, lag)

    assert broker.terminate() == 0
    broker.start()
    got = clients.consume_all_confluent(broker.bootstrap, topic_name, PARTITIONS)
    check_roundtrip(msgs, [(p, o, k, v) for p, o, k, v, _ in got])


def test_describe_log_dirs_naming_a_huge_topic_costs_nothing(broker_factory, topic_name):
    # Bad input: a DescribeLogDirs that names a 30,000-byte topic with 250,000 partitions
    # (1 MB on the wire) is answered from what the broker hosts, with nothing for that topic,
    # and the broker goes on serving.
    import struct
    import time

    from cluster import _Reader, _str16, request
    broker = broker_factory()
    clients.create_topic(broker.bootstrap, topic_name, 2)
    body = struct.pack(">i", 1) + _str16("x" * 30_000) + struct.pack(">i", 250_000) + b"".join(struct.pack(">i", i) for i in range(250_000))
    t0 = time.monotonic()
    r = _Reader(request(("127.0.0.1", broker.port), 35, 1, body, timeout=10))
    took = time.monotonic() - t0
    r.take(">i")
    assert r.take(">i") == 1  # one log dir
    assert r.take(">h") == 0
    r.string()
    assert r.take(">i") == 0, "topics described for a topic this broker does not host"
    assert took < 2, f"{took:.1f}s to answer"
    assert describe_log_dirs(broker)[str(broker.data_dirs[0])].keys() == {(topic_name, 0), (topic_name, 1)}
