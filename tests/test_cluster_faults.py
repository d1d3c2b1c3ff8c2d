"""Claim: a 3-node Lantern cluster survives what happens to clusters, with its default timings
(broker.heartbeat.interval.ms=400, broker.session.timeout.ms=2000,
controller.quorum.election.timeout.ms=1000):

- kill -9 of the active controller: another node is reported as controller within a few
  seconds, a new topic can be created (through any surviving broker and through
  confluent-kafka) and used, and no committed metadata is lost; five times in a row, the
  killed node restarted and ready before the next round. The time from kill -9 to the first
  successful CreateTopics is measured and printed.
- a broker that stops heartbeating (SIGSTOP past its session) is fenced: it leaves every
  node's Metadata, its partitions go offline (leader -1, LEADER_NOT_AVAILABLE), placement and
  the replication-factor check count only live brokers; after SIGCONT it is back, with its
  partitions and data.
- a fourth broker started later with the same quorum settings (process.roles=broker: it
  is not a voter) joins, every node lists it, and new topics place partitions on it.

The tests share one cluster and leave it whole (`heal` brings back a node a failure left
down).
"""

from __future__ import annotations

import json
import statistics
import threading
import time

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

import clients
from cluster import (INVALID_REPLICATION_FACTOR, LEADER_NOT_AVAILABLE, create_topic, metadata, wait_for)

SESSION_S = 2.0
HEARTBEAT_S = 0.4
FAILOVERS = 5
# "A different one is reported within a few seconds": an election timeout is 1-1.5 s.
NEW_CONTROLLER_WITHIN_S = 5.0
CREATE_WITHIN_S = 8.0


@pytest.fixture(scope="module")
def cluster(module_cluster_factory):
    return module_cluster_factory(3)


@pytest.fixture(autouse=True)
def whole(cluster):
    cluster.heal()
    return cluster


def leaders(node, topic: str) -> dict[int, int]:
    return {p: pm.leader for p, pm in metadata(node, [topic]).topics[topic].partitions.items()}


def produce_and_check(bootstrap: str, topic: str, partitions: list[int], n_each: int = 50, tag: str = "") -> list:
    """Produces n_each messages to each of `partitions` and reads each partition back from
    where they were written; returns the (key, value) pairs."""
    msgs = [(f"{tag}k{p}-{i}".encode(), f"{tag}v{p}-{i}".encode()) for p in partitions for i in range(n_each)]
    before = {p: clients.watermarks(bootstrap, topic, p)[1] for p in partitions}
    reports = clients.produce_confluent(bootstrap, topic, msgs, partition_of=lambda i: partitions[i // n_each],
                                        message_timeout_ms=15000)
    assert all(r[0] == partitions[i // n_each] for i, r in enumerate(reports))
    got = clients.consume_confluent(bootstrap, topic, partitions, start=before,
                                    end={p: before[p] + n_each for p in partitions}, timeout=30)
    assert sorted((k, v) for _, _, k, v, _ in got) == sorted(msgs), f"{topic} {partitions}: read back differs"
    return msgs


# --------------------------------------------------------------- failover
def test_controller_failover_five_times_in_a_row(cluster):
    created: dict[str, int] = {}  # topic -> partitions, every topic a failover round created
    timings = []
    for trial in range(FAILOVERS):
        old = cluster.wait_controller()
        survivors = [i for i in sorted(cluster.nodes) if i != old]
        via = cluster.node(survivors[trial % 2])
        topic = f"failover-{trial}"

        seen: dict[str, float] = {}

        def watch_controller():
            # The survivors' Metadata and ActiveControllerCount agree on one new controller.
            try:
                seen["id"] = cluster.wait_controller(not_id=old, timeout=NEW_CONTROLLER_WITHIN_S + 5)
                seen["t"] = time.monotonic()
            except AssertionError as e:
                seen["error"] = str(e)

        t_kill = time.monotonic()
        cluster.kill9(old)
        watcher = threading.Thread(target=watch_controller)
        watcher.start()
        # CreateTopics through a surviving broker, retried until it succeeds.
        attempts, last, unanswered = 0, None, False
        while True:
            attempts += 1
            try:
                err, msg = create_topic(via, topic, 3, timeout=2.0)
            except OSError as e:
                err, msg = None, repr(e)
                unanswered = True
            # 36 TOPIC_ALREADY_EXISTS after an attempt whose answer timed out: that attempt
            # was committed.
            if err == 0 or (err == 36 and unanswered):
                break
            last = (err, msg)
            assert time.monotonic() - t_kill < CREATE_WITHIN_S, (
                f"round {trial}: no CreateTopics succeeded within {CREATE_WITHIN_S}s of killing controller {old} "
                f"({attempts} attempts, last {last})")
            time.sleep(0.02)
        t_create = time.monotonic() - t_kill
        watcher.join()
        assert "error" not in seen, f"round {trial}: {seen.get('error')}"
        new = seen["id"]
        t_ctrl = seen["t"] - t_kill
        assert new != old and new in survivors
        assert t_ctrl < NEW_CONTROLLER_WITHIN_S, f"round {trial}: a new controller took {t_ctrl:.2f}s"
        created[topic] = 3

        # A real client, bootstrapping from the survivors, sees the new controller and
        # creates a topic too.
        a = AdminClient({"bootstrap.servers": cluster.bootstrap_without(old)})
        dc = a.describe_cluster(request_timeout=10).result(timeout=15)
        assert dc.controller.id == new and sorted(n.id for n in dc.nodes) in (sorted(survivors), [1, 2, 3]), dc
        t0 = time.monotonic()
        a.create_topics([NewTopic(f"{topic}-client", 2, 1)], request_timeout=10)[f"{topic}-client"].result(timeout=15)
        created[f"{topic}-client"] = 2
        t_client = time.monotonic() - t0
        timings.append((t_ctrl, t_create))
        print(f"failover round {trial}: killed controller {old}; controller {new} reported after {t_ctrl:.2f}s; "
              f"first CreateTopics (via node {via.node_id}) succeeded {t_create:.2f}s after kill -9 "
              f"({attempts} attempts); confluent-kafka create_topics then took {t_client:.2f}s")

        # Used at once: the partitions whose leader is alive take and return messages.
        lead = leaders(via, topic)
        live = [p for p, b in lead.items() if b in survivors]
        assert live, f"round {trial}: every partition of {topic} is on the killed node: {lead}"
        produce_and_check(cluster.bootstrap_without(old), topic, live, tag=f"r{trial}a-")

        # The killed node comes back; then every partition of the new topic is usable, and
        # every topic earlier rounds created is still there with all its partitions.
        cluster.node(old).start()
        for i, n in cluster.nodes.items():
            md = wait_for(f"node {i} sees every topic with a leader", lambda n=n: (
                lambda m: m if all(t in m.topics and len(m.topics[t].partitions) == k
                                   and all(pm.leader >= 0 for pm in m.topics[t].partitions.values())
                                   for t, k in created.items()) else None)(metadata(n, list(created))), timeout=10)
            assert set(md.brokers) == {1, 2, 3}, f"node {i}: brokers {sorted(md.brokers)}"
        produce_and_check(cluster.bootstrap, topic, [0, 1, 2], tag=f"r{trial}b-")

    ctrl = [t for t, _ in timings]
    create = [t for _, t in timings]
    print(f"controller failover over {FAILOVERS} rounds: new controller reported median {statistics.median(ctrl):.2f}s "
          f"max {max(ctrl):.2f}s; kill -9 -> first successful CreateTopics median {statistics.median(create):.2f}s "
          f"max {max(create):.2f}s")


# ----------------------------------------------------------------- fencing
def test_stopped_broker_is_fenced_and_returns_after_sigcont(cluster):
    controller = cluster.wait_controller()
    victim_id = next(i for i in sorted(cluster.nodes, reverse=True) if i != controller)
    victim = cluster.node(victim_id)
    others = [n for i, n in cluster.nodes.items() if i != victim_id]
    topic = "fencing"
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    a.create_topics([NewTopic(topic, 6, 1)], request_timeout=10)[topic].result(timeout=15)
    clients.wait_topic(cluster.bootstrap, topic, 6)
    lead = leaders(others[0], topic)
    mine = sorted(p for p, b in lead.items() if b == victim_id)
    assert mine, f"no partition of {topic} on node {victim_id}: {lead}"
    sent = produce_and_check(cluster.bootstrap, topic, sorted(lead), tag="before-")

    t0 = time.monotonic()
    victim.sigstop()
    try:
        def fenced_everywhere():
            views = [metadata(n, [topic]) for n in others]
            ok = all(victim_id not in md.brokers
                     and all(md.topics[topic].partitions[p].leader == -1 for p in mine) for md in views)
            return views if ok else None

        views = wait_for(f"node {victim_id} fenced in every other node's Metadata", fenced_everywhere,
                         timeout=SESSION_S + 5)
        t_fenced = time.monotonic() - t0
        print(f"SIGSTOP -> node {victim_id} gone from Metadata after {t_fenced:.2f}s "
              f"(broker.session.timeout.ms={SESSION_S * 1000:.0f})")
        # Not before its session could have expired (the last heartbeat was at most one
        # interval before the SIGSTOP).
        assert t_fenced >= SESSION_S - HEARTBEAT_S - 0.1, f"fenced after {t_fenced:.2f}s, before its session ran out"
        for md in views:
            assert sorted(md.brokers) == sorted(n.node_id for n in others)
            for p, pm in md.topics[topic].partitions.items():
                if p in mine:
                    assert (pm.leader, pm.error) == (-1, LEADER_NOT_AVAILABLE), pm
                else:
                    assert pm.leader == lead[p] and pm.error == 0, pm
        ctl = cluster.node(controller)
        assert ctl.metric("kafka_controller_kafkacontroller_fencedbrokercount") == 1
        assert ctl.metric("kafka_controller_kafkacontroller_activebrokercount") == 2
        assert ctl.metric("kafka_controller_kafkacontroller_offlinepartitionscount") >= len(mine)

        # Only live brokers count: 3 replicas are refused, and a new topic avoids the fenced one.
        r = a.create_topics([NewTopic("fencing-rf3", 3, 3)], request_timeout=10)["fencing-rf3"]
        with pytest.raises(KafkaException) as e:
            r.result(timeout=15)
        assert e.value.args[0].code() == INVALID_REPLICATION_FACTOR, e.value
        a2 = AdminClient({"bootstrap.servers": ",".join(n.bootstrap for n in others)})
        a2.create_topics([NewTopic("fencing-rf2", 3, 2)], validate_only=True, request_timeout=10)["fencing-rf2"].result(timeout=15)
        err, msg = create_topic(others[0], "fencing-new", 6)
        assert err == 0, msg
        placed = leaders(others[0], "fencing-new")
        assert victim_id not in placed.values() and set(placed.values()) == {n.node_id for n in others}, placed
        # The live brokers keep serving their partitions.
        produce_and_check(",".join(n.bootstrap for n in others), topic, [p for p in lead if p not in mine], tag="during-")
    finally:
        victim.sigcont()
    t1 = time.monotonic()
    for n in cluster.nodes.values():
        wait_for(f"node {victim_id} back in node {n.node_id}'s Metadata with its partitions", lambda n=n: (
            lambda md: victim_id in md.brokers and all(md.topics[topic].partitions[p].leader == victim_id for p in mine))(
                metadata(n, [topic])), timeout=10)
    victim.wait_ready(timeout=10)
    print(f"SIGCONT -> node {victim_id} back in every node's Metadata after {time.monotonic() - t1:.2f}s")
    assert cluster.node(controller).metric("kafka_controller_kafkacontroller_fencedbrokercount") == 0
    got = clients.consume_all_confluent(cluster.bootstrap, topic, 6)
    assert sorted((k, v) for _, _, k, v, _ in got if k.startswith(b"before-")) == sorted(sent)
    produce_and_check(cluster.bootstrap, topic, mine, tag="after-")


# ------------------------------------------------------------ a new broker
def test_fourth_broker_joins_and_gets_partitions(cluster):
    node = cluster.add_node(4, props={"process.roles": "broker"}, wait=False)
    try:
        node.wait_ready(timeout=20)
        controller = cluster.wait_controller()
        assert controller != 4, "a broker-only node became the controller"
        for i, n in cluster.nodes.items():
            md = wait_for(f"node {i} lists broker 4", lambda n=n: (lambda m: m if 4 in m.brokers else None)(metadata(n)),
                          timeout=10)
            assert {b: hp[1] for b, hp in md.brokers.items()} == {j: m.port for j, m in cluster.nodes.items()}, md.brokers
        r = clients.kcat("debian", ["-L", "-J", "-b", cluster.node(1).bootstrap])
        assert sorted(b["id"] for b in json.loads(r.stdout)["brokers"]) == [1, 2, 3, 4]
        err, msg = create_topic(cluster.node(1), "fourth-broker", 8)
        assert err == 0, msg
        for n in cluster.nodes.values():
            wait_for(f"node {n.node_id} sees fourth-broker led", lambda n=n: all(
                b >= 0 for b in leaders(n, "fourth-broker").values()), timeout=10)
        lead = leaders(node, "fourth-broker")
        assert all(leaders(n, "fourth-broker") == lead for n in cluster.nodes.values())
        assert sorted(lead.values()).count(4) == 2 and set(lead.values()) == {1, 2, 3, 4}, lead
        # Through the new broker alone, and through all.
        produce_and_check(node.bootstrap, "fourth-broker", sorted(p for p, b in lead.items() if b == 4), tag="alone-")
        produce_and_check(cluster.bootstrap, "fourth-broker", sorted(lead), tag="all-")
    finally:
        node.stop()
        del cluster.nodes[4]
