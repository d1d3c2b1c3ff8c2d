"""Claim: lantern-exporter's log shipper and `lantern-exporter logs` work against a 3-node
cluster, not just the broker they bootstrap from:
- an exporter whose events' partition is led by another broker than its bootstrap one ships
  every event (at least once), and `logs`, bootstrapped at one broker, reads the events of all
  partitions back, most of them led elsewhere;
- kill -9 of a broker that leads none of `__lantern_logs`' partitions (and is, for one exporter,
  the only bootstrap broker) in the middle of shipping loses nothing.

The shipper keys events by host and partitions them as Java's producer does (murmur2), so the
tests pick host names that land on the partitions they want, and check that they did.
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

import clients
from lantern import free_port
from test_exporter_pipeline import TOPIC, Exporter, append, append_slowly, exporters, run_logs, value, wait_for  # noqa: F401

N_NODES = 3


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Utils.murmur2), unsigned."""
    m, h = 0x5BD1E995, (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[4 * n4:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def partition_of(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def host_for_partition(partition: int, partitions: int) -> str:
    return next(h for h in (f"host-{i}" for i in range(1000)) if partition_of(h, partitions) == partition)


def start_cluster(broker_factory) -> list:
    """Three combined broker+controller nodes with one voter set; returns them by node id - 1."""
    nodes = [broker_factory(name=f"node{i}", start=False) for i in range(1, N_NODES + 1)]
    cports = [free_port() for _ in nodes]
    voters = ",".join(f"{i}@127.0.0.1:{c}" for i, c in enumerate(cports, 1))
    for i, (b, c) in enumerate(zip(nodes, cports), 1):
        b.props.update({"node.id": i, "controller.quorum.voters": voters, "auto.create.topics.enable": "false",
                        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},CONTROLLER://127.0.0.1:{c}"})
    for b in nodes:
        b.start(wait=False)
    for b in nodes:
        b.wait_ready(timeout=90)
    return nodes


def create_log_topic(bootstrap: str, assignment: list[list[int]]) -> dict[int, int]:
    """Creates the log topic with explicit replica assignments; returns {partition: leader}."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(TOPIC, num_partitions=len(assignment), replica_assignment=assignment)]).values():
        f.result(timeout=30)

    def leaders():
        md = admin.list_topics(TOPIC, timeout=10).topics[TOPIC]
        got = {p: md.partitions[p].leader for p in md.partitions}
        return got if len(got) == len(assignment) and all(v >= 0 for v in got.values()) else None
    got = wait_for("log topic leaders", leaders, timeout=30)
    assert got == {p: r[0] for p, r in enumerate(assignment)}, got
    return got


def lines(host: str, n: int, ids: set) -> str:
    out = []
    for i in range(n):
        uid = f"{host}-{i:06d}"
        ids.add(uid)
        out.append(json.dumps({"timestamp": "2026-12-04T12:00:00Z", "level": "INFO", "target": "kafka.server.KafkaServer",
                               "message": f"event {i} of {host}", "test_id": uid}))
    return "\n".join(out) + "\n"


def start_exporter(tmp_path: Path, host: str, bootstrap: str, exporters) -> tuple[Exporter, Path]:
    work = tmp_path / f"exporter-{host}"
    work.mkdir()
    log = work / "broker.log"
    e = Exporter(work, [f"--pipeline.log-file={log}", f"--pipeline.bootstrap-server={bootstrap}",
                        f"--pipeline.host={host}"]).start()
    exporters.append(e)
    return e, log


def drained(e: Exporter, n: int) -> bool:
    m = e.metrics()
    return value(m, "lantern_pipeline_lines_read_total", file=str(e.workdir / "broker.log")) == n \
        and value(m, "lantern_pipeline_queue_events") == 0 and value(m, "lantern_pipeline_broker_up") == 1


def logged_ids(bootstrap: str) -> collections.Counter:
    return collections.Counter(json.loads(line)["test_id"] for line in run_logs(bootstrap, "--output=json").splitlines())


def test_ships_to_leaders_that_are_not_the_bootstrap_broker_and_logs_reads_every_partition(broker_factory, tmp_path, exporters):
    nodes = start_cluster(broker_factory)
    leaders = create_log_topic(nodes[0].bootstrap, [[1], [2], [3]])
    ids: set[str] = set()
    shippers = []
    for p, leader in leaders.items():
        host = host_for_partition(p, len(leaders))
        other = nodes[leader % N_NODES]  # the next node: never this partition's leader
        assert other.port != nodes[leader - 1].port
        e, log = start_exporter(tmp_path, host, other.bootstrap, exporters)
        append(log, lines(host, 3000, ids))
        shippers.append((e, host, p))
    for e, host, _ in shippers:
        wait_for(f"{host}'s events shipped", lambda: drained(e, 3000), timeout=120)

    # `logs` from node 1 reads partition 0 there and partitions 1 and 2 from nodes 2 and 3
    got = logged_ids(nodes[0].bootstrap)
    missing = ids - set(got)
    assert not missing, f"{len(missing)} events not read back, e.g. {sorted(missing)[:5]}"
    by_host = {row.split()[1]: int(row.split()[0]) for row in run_logs(nodes[0].bootstrap, "--count-by=host").splitlines()}
    assert set(by_host) == {h for _, h, _ in shippers} and all(n >= 3000 for n in by_host.values()), by_host
    # each host's events are on the partition murmur2 names, i.e. they went to that leader
    for _, host, p in shippers:
        lo, hi = clients.watermarks(nodes[0].bootstrap, TOPIC, p)
        assert hi - lo >= 3000, (host, p, lo, hi)


def test_kill9_of_a_broker_leading_no_log_partition_loses_nothing(broker_factory, tmp_path, exporters):
    nodes = start_cluster(broker_factory)
    # partitions on nodes 1 and 2 only; node 3 leads none of them
    leaders = create_log_topic(nodes[0].bootstrap, [[1], [2], [1], [2]])
    hosts = [host_for_partition(p, len(leaders)) for p in (0, 1)]
    all_nodes = ",".join(b.bootstrap for b in (nodes[2], nodes[0], nodes[1]))
    # one exporter knows only node 3 (it learns the rest from it), the other all three
    (e1, log1), (e2, log2) = (start_exporter(tmp_path, hosts[0], nodes[2].bootstrap, exporters),
                              start_exporter(tmp_path, hosts[1], all_nodes, exporters))
    ids: set[str] = set()
    writers = [append_slowly(log1, lines(hosts[0], 20000, ids), piece=4001, pause=0.02),
               append_slowly(log2, lines(hosts[1], 20000, ids), piece=4001, pause=0.02)]
    wait_for("shipping under way", lambda: all(value(e.metrics(), "lantern_pipeline_events_shipped_total") >= 2000 for e in (e1, e2)),
             interval=0.05)
    nodes[2].kill9()
    killed_at = time.monotonic()
    shipped_at_kill = [value(e.metrics(), "lantern_pipeline_events_shipped_total") for e in (e1, e2)]
    print(f"node 3 killed after {shipped_at_kill} events shipped")
    for w in writers:
        w.join()
    assert all(n < 19000 for n in shipped_at_kill), f"the kill was meant to land mid-run: {shipped_at_kill}"
    for e in (e1, e2):
        wait_for("every event shipped with node 3 down", lambda: drained(e, 20000), timeout=180)
    print(f"both exporters drained {time.monotonic() - killed_at:.1f}s after the kill")

    survivors = f"{nodes[0].bootstrap},{nodes[1].bootstrap}"
    got = logged_ids(survivors)
    missing = ids - set(got)
    assert not missing, f"{len(missing)} events lost across the kill -9 of node 3, e.g. {sorted(missing)[:5]}"
    dups = sum(n - 1 for n in got.values())
    print(f"{len(ids)} events, {dups} duplicates")
