"""Claim: with several log.dirs, partitions are spread across them (each partition lives in
exactly one of them) and everything is found again after a restart."""

import clients
from clients import check_roundtrip, keyed_messages

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

    assert broker.terminate() == 0
    broker.start()
    got = clients.consume_all_confluent(broker.bootstrap, topic_name, PARTITIONS)
    check_roundtrip(msgs, [(p, o, k, v) for p, o, k, v, _ in got])
