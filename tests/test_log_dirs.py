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
    print(f"answered in {took:.3f}s")
    assert took < 0.5, f"{took:.1f}s to answer (it took 1.5 s while the topic name was hashed once per partition)"
    assert describe_log_dirs(broker)[str(broker.data_dirs[0])].keys() == {(topic_name, 0), (topic_name, 1)}


def test_java_admin_moves_a_replica_between_log_dirs_while_it_is_produced_to(broker_factory, topic_name, java_classpaths):
    """AlterReplicaLogDirs with Kafka's own Admin client (alterReplicaLogDirs, then
    describeReplicaLogDirs until the replica is in the target directory with no future
    replica left), while an idempotent acks=all producer keeps writing: every acknowledged
    record is read back at its offset, the partition's directory exists only in the target
    directory (no copy or leftover), and a restart finds it there."""
    import threading
    from javacheck import CLIENTS, run_java

    broker = broker_factory(n_dirs=2, props={"log.segment.bytes": str(1 << 20)})
    clients.create_topic(broker.bootstrap, topic_name, 1)
    source = broker.partition_dir(topic_name, 0).parent
    target = next(d for d in broker.data_dirs if d != source)
    value = b"v" * 1000
    clients.produce_confluent(broker.bootstrap, topic_name, [(b"pre-%d" % i, value) for i in range(30000)],
                              enable_idempotence=True, linger_ms=20)

    acked: dict[int, bytes] = {}
    failures: list = []
    stop = threading.Event()

    def produce_during_the_move():
        p = clients.producer(broker.bootstrap, enable_idempotence=True)
        i = 0

        def report(err, msg):
            if err is not None:
                failures.append(err)
            else:
                acked[msg.offset()] = msg.key()
        while not stop.is_set():
            try:
                p.produce(topic_name, key=b"during-%d" % i, value=value, on_delivery=report)
                i += 1
            except BufferError:
                pass
            p.poll(0.001)
        assert p.flush(30) == 0

    writer = threading.Thread(target=produce_during_the_move)
    writer.start()
    try:
        summary, _ = run_java(java_classpaths[CLIENTS["3.x"]], broker, "--mode=move-log-dir", f"--topic={topic_name}",
                              "--partition=0", "--broker=1", f"--dir={target}")
    finally:
        stop.set()
        writer.join(60)
    assert not failures, f"{len(failures)} produce failures during the move, first: {failures[0]}"
    assert len(acked) > 100, f"the producer wrote only {len(acked)} records during the move"
    print(f"moved {topic_name}-0 from {source} to {target} in {summary['move_s']}s; future replica seen: {summary['future_seen']}; "
          f"{len(acked)} records acknowledged during the move")
    assert summary["current_dir"] == str(target)
    assert broker.partition_dirs(topic_name, 0) == [target / f"{topic_name}-0"]
    leftovers = [p.name for d in broker.data_dirs for p in d.iterdir() if p.name.endswith(("-future", "-delete"))]
    assert not leftovers, leftovers

    def check_everything_readable():
        records = clients.consume_confluent(broker.bootstrap, topic_name, [0])
        offsets = [r[1] for r in records]
        assert offsets == list(range(len(records))), "offsets are not contiguous from 0"
        by_offset = {r[1]: r[2] for r in records}
        missing = [o for o, k in acked.items() if by_offset.get(o) != k]
        assert not missing, f"{len(missing)} acknowledged records not at their offsets, first at {missing[:5]}"
        return len(records)

    n = check_everything_readable()
    assert n == 30000 + len(acked)
    broker.restart()
    assert broker.partition_dirs(topic_name, 0) == [target / f"{topic_name}-0"]
    assert check_everything_readable() == n
    # And back: a second move finds the log where the first one put it.
    run_java(java_classpaths[CLIENTS["3.x"]], broker, "--mode=move-log-dir", f"--topic={topic_name}",
             "--partition=0", "--broker=1", f"--dir={source}")
    assert broker.partition_dirs(topic_name, 0) == [source / f"{topic_name}-0"]
    assert check_everything_readable() == n
