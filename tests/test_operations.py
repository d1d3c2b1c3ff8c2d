"""Operating a cluster: partition reassignment with Kafka's own Admin client, scale-out over
fault and update domains with `lantern-admin rebalance execute --wait`, and a safe scale-down
(`broker remove` refused while the broker holds replicas, `broker drain` then `remove`).
Real `lantern-broker` processes, the real `lantern-admin` binary, the real Java and
confluent-kafka clients."""

from __future__ import annotations

import json
import subprocess
import threading
import time

from confluent_kafka.admin import AdminClient, NewTopic

import clients
from cluster import metadata, wait_for
from javacheck import CLIENTS, run_java
from lantern import REPO_ROOT

ADMIN_BIN = REPO_ROOT / "target" / "release" / "lantern-admin"
PROPS = {"offsets.topic.num.partitions": 3, "replica.lag.time.max.ms": 4000}


def lantern_admin(c, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    assert ADMIN_BIN.exists(), f"{ADMIN_BIN} missing: tests/run builds the workspace (cargo build --release --workspace)"
    p = subprocess.run([str(ADMIN_BIN), "--bootstrap-server", c.bootstrap, "--request-timeout-s", "10", *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    print(f"lantern-admin {' '.join(args)} -> {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def admin_json(c, *args: str) -> dict:
    p = lantern_admin(c, "--output", "json", *args)
    assert p.returncode == 0, f"lantern-admin {args} exited {p.returncode}: {p.stderr}"
    return json.loads(p.stdout)


def create(c, topic: str, assignment: dict[int, list[int]] | None = None, partitions: int = 1, rf: int = 3, **config):
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    t = (NewTopic(topic, num_partitions=len(assignment), replica_assignment=[assignment[p] for p in sorted(assignment)])
         if assignment else NewTopic(topic, partitions, rf))
    t.config = {k.replace("_", "."): str(v) for k, v in config.items()}
    admin.create_topics([t], request_timeout=15)[topic].result(20)
    clients.wait_topic(c.bootstrap, topic, len(assignment) if assignment else partitions)


def partitions_of(c, topic: str):
    return metadata(c.node(min(n.node_id for n in c.running_brokers()))).topics[topic].partitions


def test_lantern_admin_has_help_for_every_command():
    for args in [[], ["cluster", "describe"], ["rebalance", "plan"], ["rebalance", "execute"], ["rebalance", "status"],
                 ["rebalance", "cancel"], ["leaders", "elect"], ["broker", "drain"], ["broker", "remove"]]:
        p = subprocess.run([str(ADMIN_BIN), *args, "--help"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and "Usage:" in p.stdout, (args, p.stdout, p.stderr)


def test_java_admin_reassigns_a_partition_and_cancel_undoes_a_stuck_one(cluster_factory, java_classpaths):
    c = cluster_factory(4, props=PROPS)
    create(c, "moved", {0: [1, 2, 3]}, min_insync_replicas=2)
    sent = [(b"k%d" % i, b"v%d" % i) for i in range(2000)]
    clients.produce_confluent(c.bootstrap, "moved", sent, partition_of=lambda i: 0, acks="all")
    summary, _ = run_java(java_classpaths[CLIENTS["3.x"]], c, "--mode=reassign", "--topic=moved", "--partition=0", "--replicas=4,2,3")
    assert summary["final_replicas"] == [4, 2, 3], summary
    assert sorted(summary["final_isr"]) == [2, 3, 4], summary
    # lantern-admin sees the result: broker 4 holds the replica, broker 1 none (its copy is deleted).
    def held():
        return {b["id"]: b["replicas"] for b in admin_json(c, "cluster", "describe")["brokers"]}
    wait_for("broker 4 holds the replica, broker 1 none", lambda: (lambda h: h[4] == 1 and h[1] == 0)(held()), 15)
    wait_for("broker 1's copy deleted", lambda: not any((d / "moved-0").exists() for d in c.node(1).data_dirs), 15)
    got = clients.consume_confluent(c.bootstrap, "moved", [0])
    assert [(k, v) for (_, _, k, v, _) in got] == sent

    # A reassignment onto a broker that cannot catch up (down) stays in progress, is listed,
    # and `rebalance cancel` puts the replicas back.
    c.kill9(1)
    run_java(java_classpaths[CLIENTS["3.x"]], c, "--mode=reassign", "--topic=moved", "--partition=0", "--replicas=4,2,1", "--wait=false")
    def listed():
        return [(r["topic"], r["partition"], r["adding"], r["removing"]) for r in admin_json(c, "rebalance", "status")["reassignments"]]
    wait_for("the stuck reassignment listed", lambda: listed() == [("moved", 0, [1], [3])], 15)
    assert admin_json(c, "rebalance", "cancel")["cancelled"] == 1
    wait_for("nothing listed after the cancel", lambda: listed() == [], 15)
    p = partitions_of(c, "moved")[0]
    assert p.replicas == [4, 2, 3], p.replicas
    c.restart(1)
    wait_for("the replicas back as before the cancelled move, all in sync",
             lambda: (lambda p: (p.replicas, sorted(p.isr)) == ([4, 2, 3], [2, 3, 4]))(partitions_of(c, "moved")[0]), 15)
    assert not any((d / "moved-0").exists() for d in c.node(1).data_dirs), "broker 1 holds no copy of the cancelled move"


class Producing(threading.Thread):
    """Produces unique values with acks=all and idempotence until stopped; remembers every
    acknowledged one."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        self.topic = topic
        self.p = clients.producer(bootstrap, enable_idempotence=True, linger_ms=5)
        self.acked: set[bytes] = set()
        self.failed: list[str] = []
        self.halt = threading.Event()

    def run(self):
        i = 0
        while not self.halt.is_set():
            v = b"v%08d" % i
            i += 1

            def done(err, msg, v=v):
                if err is None:
                    self.acked.add(v)
                else:
                    self.failed.append(str(err))
            try:
                self.p.produce(self.topic, value=v, key=v, on_delivery=done)
            except BufferError:
                pass
            self.p.poll(0.002)
        self.p.flush(60)


def test_scale_out_onto_new_fault_and_update_domains_under_produce(cluster_factory):
    c = cluster_factory(3, props=PROPS, start=False)
    for node_id, rack in zip((1, 2, 3), ("FD0UD0", "FD1UD1", "FD2UD2")):
        c.node(node_id).props["broker.rack"] = rack
    c.start()
    create(c, "grid", partitions=12, rf=3, min_insync_replicas=2)
    producing = Producing(c.bootstrap, "grid")
    producing.start()
    try:
        for node_id, rack in zip((4, 5, 6), ("FD0UD1", "FD1UD2", "FD2UD0")):
            c.add_node(node_id, props={"process.roles": "broker", "broker.rack": rack})
        wait_for("six brokers in Metadata", lambda: len(metadata(c.node(1)).brokers) == 6, 30)
        time.sleep(1)
        p = lantern_admin(c, "rebalance", "execute", "--wait", timeout=300)
        assert p.returncode == 0, p.stderr
        assert "All" in p.stdout and "reassignments done" in p.stdout, p.stdout
        p = lantern_admin(c, "leaders", "elect", "--preferred")
        assert p.returncode == 0, p.stderr
    finally:
        producing.halt.set()
        producing.join(120)
    assert not producing.failed, producing.failed[:5]
    md = metadata(c.node(1))
    racks = {b: r for b, (_, _, r) in md.brokers.items()}
    parts = md.topics["grid"].partitions
    held = {b: 0 for b in racks}
    for p in parts.values():
        fds = {racks[r][:3] for r in p.replicas}
        uds = {racks[r][3:] for r in p.replicas}
        assert len(p.replicas) == 3 and len(fds) == 3 and len(uds) == 3, (p.partition, p.replicas, racks)
        for r in p.replicas:
            held[r] += 1
    assert all(n > 0 for n in held.values()), held
    # Preferred leaders balanced (2 each, from the plan), and leadership follows once every
    # preferred replica is in sync (elected again if one was catching up at the first try).
    preferred = {b: sum(1 for p in parts.values() if p.replicas[0] == b) for b in racks}
    assert all(1 <= n <= 3 for n in preferred.values()), preferred

    def leads():
        lantern_admin(c, "leaders", "elect", "--preferred")
        ps = metadata(c.node(1)).topics["grid"].partitions
        return {b: sum(1 for p in ps.values() if p.leader == b) for b in racks}
    wait_for("each broker leads 2 +/- 1 partitions", lambda: all(1 <= n <= 3 for n in leads().values()), 30)
    got = clients.consume_all_confluent(c.bootstrap, "grid", 12)
    values = {v for (_, _, _, v, _) in got}
    missing = producing.acked - values
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:3]}"
    assert len(producing.acked) > 100


def test_remove_is_refused_while_the_broker_holds_replicas_and_drain_then_remove_succeeds(cluster_factory):
    c = cluster_factory(3, props=PROPS)
    c.add_node(4, props={"process.roles": "broker"})
    wait_for("four brokers in Metadata", lambda: len(metadata(c.node(1)).brokers) == 4, 30)
    create(c, "wide", partitions=1, rf=3)
    create(c, "pairs", {0: [4, 1], 1: [2, 4], 2: [3, 4], 3: [1, 2]})
    clients.produce_confluent(c.bootstrap, "pairs", [(None, b"x%d" % i) for i in range(400)], partition_of=lambda i: i % 4)
    before = {i: p.replicas for i, p in partitions_of(c, "pairs").items()}

    p = lantern_admin(c, "broker", "remove", "4")
    assert p.returncode == 2, p
    assert "InvalidKafkaScaleDownRequestErrorCode" in p.stderr and "pairs-0" in p.stderr, p.stderr
    assert 4 in metadata(c.node(1)).brokers and {i: q.replicas for i, q in partitions_of(c, "pairs").items()} == before

    p = lantern_admin(c, "broker", "drain", "4", "--wait", timeout=300)
    assert p.returncode == 0, p.stderr
    def drained():
        return all(len(q.replicas) == rf and 4 not in q.replicas
                   for topic, rf in (("pairs", 2), ("wide", 3)) for q in partitions_of(c, topic).values())
    wait_for("every replica off broker 4, replication factors kept", drained, 15)
    p = lantern_admin(c, "broker", "remove", "4")
    assert p.returncode == 0, p.stderr
    wait_for("broker 4's process exits by itself", lambda: not c.node(4).alive(), 15)
    assert c.node(4).proc.returncode == 0
    wait_for("three brokers in Metadata", lambda: sorted(metadata(c.node(1)).brokers) == [1, 2, 3], 15)
    got = clients.consume_all_confluent(c.bootstrap, "pairs", 4)
    assert len(got) == 400

    # Draining another broker would leave "wide" (3 replicas) on two: refused, nothing moves.
    p = lantern_admin(c, "broker", "drain", "3")
    assert p.returncode == 2 and "InvalidKafkaScaleDownRequestErrorCode" in p.stderr, p
    assert admin_json(c, "rebalance", "status")["reassignments"] == []
    p = lantern_admin(c, "broker", "remove", "3")
    assert p.returncode == 2 and "wide" in p.stderr, p.stderr


def test_a_throttled_drain_copies_at_the_throttled_rate(cluster_factory):
    """`broker drain --throttle 10000000`: the new replica grows at 10 MB/s within 20%
    (measured on its own log size between 20% and 80% of the copy), and the throttle is gone
    afterwards."""
    rate = 10_000_000
    c = cluster_factory(3, props=PROPS)
    create(c, "big", {0: [1]})
    payload = bytes(range(256)) * 400  # 100 KiB
    records = [(b"%06d" % i, payload[i % 256:] + payload[:i % 256]) for i in range(1000)]
    clients.produce_confluent(c.bootstrap, "big", records, partition_of=lambda i: 0, acks=1, compression_type="none")
    total = sum(len(v) for _, v in records)

    def sizes() -> dict[int, float]:
        out = {}
        for b in (2, 3):
            v = c.node(b).metric('kafka_log_log_size{topic="big",partition="0"}')
            if v is not None:
                out[b] = v
        return out

    drain = subprocess.Popen([str(ADMIN_BIN), "--bootstrap-server", c.bootstrap, "broker", "drain", "1", "--wait", "--throttle", str(rate)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []  # (time, bytes copied so far)
    deadline = time.monotonic() + 120
    while drain.poll() is None and time.monotonic() < deadline:
        s = sizes()
        if s:
            samples.append((time.monotonic(), max(s.values())))
        time.sleep(0.1)
    out, err = drain.communicate(timeout=60)
    print(out, err)
    assert drain.returncode == 0, err
    first = next((t, b) for t, b in samples if b >= 0.2 * total)
    last = next((t, b) for t, b in samples if b >= 0.8 * total)
    measured = (last[1] - first[1]) / (last[0] - first[0])
    print(f"replication rate between 20% and 80% of {total} bytes: {measured / 1e6:.2f} MB/s (throttle {rate / 1e6:.0f} MB/s)")
    assert 0.8 * rate <= measured <= 1.2 * rate, f"{measured / 1e6:.2f} MB/s"
    assert "Replication throttle removed" in out
    held = {b["id"]: b["replicas"] for b in admin_json(c, "cluster", "describe")["brokers"]}
    assert held[1] == 0 and sum(held.values()) == 1, held
    # The rates are back to none on every broker.
    def throttles():
        return {b: (c.node(b).metric("kafka_server_leaderreplication_throttled_rate"),
                    c.node(b).metric("kafka_server_followerreplication_throttled_rate")) for b in (1, 2, 3)}
    wait_for("every broker unthrottled", lambda: (lambda t: all(v == (float(2**63 - 1),) * 2 for v in t.values()) or print(t))(throttles()), 10)


def test_auto_rebalance_on_broker_join_moves_partitions_onto_a_new_broker(cluster_factory):
    c = cluster_factory(3, props={**PROPS, "auto.rebalance.on.broker.join": "true"})
    create(c, "joined", partitions=6, rf=2)
    sent = [(b"k%d" % i, b"v%d" % i) for i in range(600)]
    clients.produce_confluent(c.bootstrap, "joined", sent, partition_of=lambda i: i % 6)
    c.add_node(4, props={"process.roles": "broker"})

    def settled():
        ps = partitions_of(c, "joined")
        return (sum(4 in p.replicas for p in ps.values()) == 3 and all(len(p.replicas) == 2 and len(p.isr) == 2 for p in ps.values())
                and admin_json(c, "rebalance", "status")["reassignments"] == [])
    wait_for("broker 4 holds its share (3 of 12 replicas), every partition back to 2 in-sync replicas", settled, 30)
    # Read until each partition's 100 records are in (not until the high watermark seen at the
    # start): once in a full CI run, one partition read as empty right after the leader moves.
    # A record that is really gone still fails this test, by the timeout.
    got = clients.consume_all_confluent(c.bootstrap, "joined", 6, end={p: 100 for p in range(6)}, timeout=60)
    assert sorted(v for _, _, _, v, _ in got) == sorted(v for _, v in sent)
