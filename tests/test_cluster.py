"""Claim: three Lantern nodes started with the same `controller.quorum.voters` form one
cluster that every real client sees as one: kcat, confluent-kafka (librdkafka), kafka-python
and the Java AdminClient/producer see 3 brokers, one controller and a 12-partition topic led
from all 3 brokers; 100,000 keyed messages produced through three clients come back byte-exact
with per-key order; a consumer group of 3 spreads over the partitions and group coordinators
are spread over the brokers; a node restarted with SIGTERM, and then the whole cluster, keep
every topic, message and committed offset.

The tests share one cluster (module scope) and run in file order, each on the state the
previous ones left: the 12-partition topic filled by the produce test is read by the group
and restart tests. Each test starts from a whole cluster (`heal`): a node a failing test left
down is brought back first. Faults (failover, fencing, a fourth broker) are in
test_cluster_faults.py, refused settings in test_cluster_bad_input.py.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import clients
from cluster import LEADER_NOT_AVAILABLE, find_coordinator, metadata, offsets_partition, wait_for
from javacheck import CLIENTS, JAVA_DIR, run_java

N_MESSAGES = 100_000
PARTITIONS = 12
TOPIC = "cluster-orders"
GROUP = "cluster-group-of-three"

# All members of the group join within this window, so the first generation spreads the
# partitions over all three and nothing is consumed twice by a rebalance.
PROPS = {"group.initial.rebalance.delay.ms": 2000}


@pytest.fixture(scope="module")
def cluster(module_cluster_factory):
    c = module_cluster_factory(3, props=PROPS)
    a = AdminClient({"bootstrap.servers": c.bootstrap})
    a.create_topics([NewTopic(TOPIC, PARTITIONS, 1)], request_timeout=15)[TOPIC].result(timeout=20)
    clients.wait_topic(c.bootstrap, TOPIC, PARTITIONS)
    # Each broker learns the topic from the metadata log on its own schedule (as in Kafka,
    # one broker may answer before another has applied the record): wait for every node.
    for n in c.nodes.values():
        wait_for(f"node {n.node_id} to serve {TOPIC} with a leader for each partition", lambda n=n: (
            lambda t: t.error == 0 and len(t.partitions) == PARTITIONS and all(pm.leader >= 0 for pm in t.partitions.values()))(
                metadata(n, [TOPIC]).topics[TOPIC]), timeout=15)
    return c


@pytest.fixture(autouse=True)
def whole(cluster):
    cluster.heal()
    return cluster


@pytest.fixture(scope="module")
def state():
    """What earlier tests of this module leave for later ones."""
    return {}


def leaders(md, topic: str) -> dict[int, int]:
    return {p: pm.leader for p, pm in md.topics[topic].partitions.items()}


# ------------------------------------------------------------------- view
def test_every_client_sees_three_brokers_a_controller_and_leaders_on_all(cluster, java_classpaths, state):
    nodes = cluster.nodes
    expected_brokers = {i: ("127.0.0.1", n.port) for i, n in nodes.items()}
    controller = cluster.wait_controller()

    # Every node's own Metadata answer is the same: brokers, controller, leaders.
    views = {i: metadata(n, [TOPIC]) for i, n in nodes.items()}
    for i, md in views.items():
        assert {b: hp[:2] for b, hp in md.brokers.items()} == expected_brokers, f"node {i}'s Metadata brokers"
        assert md.controller_id == controller, f"node {i} names controller {md.controller_id}, active is {controller}"
        t = md.topics[TOPIC]
        assert t.error == 0 and sorted(t.partitions) == list(range(PARTITIONS)), f"node {i}: {t}"
        for pm in t.partitions.values():
            assert pm.error == 0 and pm.leader in nodes and pm.replicas == [pm.leader] and pm.isr == [pm.leader], pm
    lead = leaders(views[1], TOPIC)
    assert all(leaders(md, TOPIC) == lead for md in views.values()), {i: leaders(md, TOPIC) for i, md in views.items()}
    assert set(lead.values()) == set(nodes), f"12 partitions are led from {sorted(set(lead.values()))}, not all 3 brokers"
    per_broker = {b: sum(1 for x in lead.values() if x == b) for b in nodes}
    assert set(per_broker.values()) == {4}, f"round-robin placement gives 4 leaders each, got {per_broker}"
    state["leaders"] = lead

    # kcat -L (Debian's librdkafka 2.0.2)
    r = clients.kcat("debian", ["-L", "-J", "-b", cluster.bootstrap, "-t", TOPIC])
    kl = json.loads(r.stdout)
    assert {b["id"]: b["name"] for b in kl["brokers"]} == {i: f"127.0.0.1:{p}" for i, (_, p) in expected_brokers.items()}, kl
    assert kl["controllerid"] == controller, kl
    [kt] = kl["topics"]
    assert {p["partition"]: p["leader"] for p in kt["partitions"]} == lead, kt

    # confluent-kafka AdminClient: describe_cluster, list_topics, describe_topics
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    dc = a.describe_cluster(request_timeout=10).result(timeout=15)
    assert sorted(n.id for n in dc.nodes) == [1, 2, 3] and dc.controller.id == controller, dc
    assert sorted(a.list_topics(timeout=10).brokers) == [1, 2, 3]
    td = a.describe_topics(TopicCollection([TOPIC]), request_timeout=10)[TOPIC].result(timeout=15)
    assert {p.id: p.leader.id for p in td.partitions} == lead, td
    state["cluster_id"] = dc.cluster_id

    # The Java AdminClient (kafka-clients 4.x): describeCluster, describeTopics
    s, _ = run_java(java_classpaths[CLIENTS["4.x"]], cluster, f"--topic={TOPIC}", "--mode=cluster")
    assert s["cluster_id"] == dc.cluster_id and s["controller"] == controller, s
    assert {n["id"]: ("127.0.0.1", n["port"]) for n in s["nodes"]} == expected_brokers, s["nodes"]
    jp = s["topics"][TOPIC]
    assert {p["partition"]: p["leader"] for p in jp} == lead, jp
    assert all(p["replicas"] == [p["leader"]] and p["isr"] == [p["leader"]] for p in jp), jp


# ---------------------------------------------------------------- produce
def test_100k_keyed_messages_from_three_clients_come_back_exact(cluster, java_classpaths, tmp_path, state):
    msgs = clients.keyed_messages(N_MESSAGES)
    # Each key goes through one client only, so per-key order is each client's own order.
    share = {c: [m for i, m in enumerate(msgs) if (i % 1000) % 3 == c] for c in range(3)}
    input_file = tmp_path / "java-input.tsv"
    input_file.write_bytes(b"".join(k + b"\t" + v + b"\n" for k, v in share[2]))
    cp = java_classpaths[CLIENTS["4.x"]]
    t0 = time.monotonic()
    java = subprocess.Popen(
        ["java", "-Xmx512m", f"-Dlog4j2.configurationFile={JAVA_DIR / 'log4j2.xml'}", "-cp", cp, "LanternClientCheck",
         f"--bootstrap={cluster.bootstrap}", f"--topic={TOPIC}", "--mode=produce", f"--input={input_file}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    kp_result: dict = {}

    def kafka_python():
        try:
            kp_result["reports"] = clients.produce_kafka_python(cluster.bootstrap, TOPIC, share[1])
        except BaseException as e:  # reported below, in the test's thread
            kp_result["error"] = e

    kp = threading.Thread(target=kafka_python)
    kp.start()
    reports = clients.produce_confluent(cluster.bootstrap, TOPIC, share[0])
    kp.join(timeout=180)
    out, err = java.communicate(timeout=180)
    took = time.monotonic() - t0
    assert "error" not in kp_result, f"kafka-python producer failed: {kp_result.get('error')!r}"
    assert len(kp_result["reports"]) == len(share[1])
    assert len(reports) == len(share[0])
    lines = [ln for ln in out.splitlines() if ln.startswith("LANTERN_RESULT ")]
    assert java.returncode == 0 and lines, f"Java producer exited {java.returncode}:\n{out[-2000:]}\n{err[-3000:]}"
    js = json.loads(lines[-1].split(" ", 1)[1])
    assert js["ok"] and js["acked"] == len(share[2]), js
    print(f"produced {N_MESSAGES} messages through confluent-kafka, kafka-python and Java in {took:.1f}s; "
          f"Java producer metrics {js['producer_metrics']}")

    got = clients.consume_all_confluent(cluster.bootstrap, TOPIC, PARTITIONS)
    clients.check_roundtrip(msgs, [(p, o, k, v) for p, o, k, v, _ in got])
    by_partition = {p: 0 for p in range(PARTITIONS)}
    for p, *_ in got:
        by_partition[p] += 1
    assert all(by_partition.values()), f"some partitions got no messages: {by_partition}"
    state["end_offsets"] = by_partition
    # Every broker took part: messages-in counted on each.
    for n in cluster.nodes.values():
        assert n.metric(f'kafka_server_brokertopicmetrics_messagesin_total{{topic="{TOPIC}"}}'), n.name


# ------------------------------------------------------------------ groups
def test_consumer_group_of_three_spreads_over_partitions_and_coordinators_spread(cluster, state):
    assert "end_offsets" in state, "needs the produce test's data"
    end = state["end_offsets"]
    assigned: dict[int, list[list[int]]] = {i: [] for i in range(3)}
    members = []
    for i in range(3):
        def on_assign(c, parts, i=i):
            assigned[i].append(sorted(p.partition for p in parts))
        c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, "session.timeout.ms": 10000, "partition.assignment.strategy": "range"})
        c.subscribe([TOPIC], on_assign=on_assign)
        members.append(c)
    seen: dict[int, set] = {i: set() for i in range(3)}
    positions: dict[int, dict[int, int]] = {i: {} for i in range(3)}
    total = sum(end.values())
    deadline = time.monotonic() + 90
    try:
        while sum(len(s) for s in seen.values()) < total:
            assert time.monotonic() < deadline, (
                f"group consumed {sum(len(s) for s in seen.values())} of {total} in 90s; assignments {assigned}")
            for i, c in enumerate(members):
                for m in c.consume(num_messages=5000, timeout=0.1):
                    if m.error():
                        assert m.error().code() in clients.TRANSIENT_CONSUMER_ERRORS, f"member {i}: {m.error()}"
                        continue
                    key = (m.partition(), m.offset())
                    assert not any(key in s for s in seen.values()), f"{key} delivered twice (assignments {assigned})"
                    seen[i].add(key)
                    positions[i][m.partition()] = m.offset() + 1
        for i, c in enumerate(members):
            c.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in positions[i].items()], asynchronous=False)
    finally:
        for c in members:
            c.close()
    finals = [a[-1] for a in assigned.values()]
    assert all(len(a) == 1 for a in assigned.values()), f"the group rebalanced after its first generation: {assigned}"
    assert sorted(p for a in finals for p in a) == list(range(PARTITIONS)), f"assignments {finals} do not cover 0..11 once"
    assert sorted(len(a) for a in finals) == [4, 4, 4], f"range assignment of 12 over 3 members: {finals}"
    for i in range(3):
        assert {p for p, _ in seen[i]} == set(finals[i]), f"member {i} read partitions outside its assignment"

    # The committed offsets, read back through the coordinator.
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)])[GROUP].result(timeout=15)
    committed = {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == TOPIC}
    assert committed == end, f"committed offsets {committed} != end offsets {end}"
    state["committed"] = committed

    # Coordinators: FindCoordinator asked of every node gives the leader of the group's
    # __consumer_offsets partition, and over 30 groups not always broker 1.
    md = metadata(cluster.node(1), ["__consumer_offsets"])
    offsets_leaders = leaders(md, "__consumer_offsets")
    n_offsets = len(offsets_leaders)
    assert n_offsets == 50 and set(offsets_leaders.values()) == {1, 2, 3}, offsets_leaders
    coordinators = {}
    for g in [GROUP] + [f"cluster-group-{i}" for i in range(30)]:
        answers = {n.node_id: find_coordinator(n, g) for n in cluster.nodes.values()}
        assert {e for e, _, _ in answers.values()} == {0}, f"FindCoordinator({g}): {answers}"
        ids = {c for _, c, _ in answers.values()}
        assert len(ids) == 1, f"nodes disagree on the coordinator of {g}: {answers}"
        coordinators[g] = ids.pop()
        assert coordinators[g] == offsets_leaders[offsets_partition(g, n_offsets)], (
            f"coordinator of {g} is {coordinators[g]}, but __consumer_offsets-{offsets_partition(g, n_offsets)} is "
            f"led by {offsets_leaders[offsets_partition(g, n_offsets)]}")
    print(f"group coordinators: {coordinators}")
    assert len(set(coordinators.values())) >= 2, f"every group is coordinated by one broker: {coordinators}"
    desc = a.describe_consumer_groups([GROUP])[GROUP].result(timeout=15)
    assert desc.coordinator.id == coordinators[GROUP], desc
    state["coordinator"] = coordinators[GROUP]


# ----------------------------------------------------------------- restarts
def snapshot(cluster) -> dict:
    """Topics with their partitions' leaders, and each partition's end offset."""
    md = metadata(cluster.node(1))
    topics = {name: leaders(md, name) for name in md.topics}
    ends = {}
    c = clients.consumer(cluster.bootstrap)
    try:
        for name, parts in topics.items():
            for p in parts:
                ends[(name, p)] = c.get_watermark_offsets(TopicPartition(name, p), timeout=10, cached=False)
    finally:
        c.close()
    return {"topics": topics, "ends": ends}


def test_node_restarted_with_sigterm_keeps_its_topics_and_data(cluster, state):
    assert "committed" in state, "needs the group test's offsets"
    # Restart the node that leads the group's coordinator partition: its groups must come back too.
    node_id = state["coordinator"]
    mine = sorted(p for p, b in state["leaders"].items() if b == node_id)
    before = snapshot(cluster)
    data_before = clients.consume_confluent(cluster.bootstrap, TOPIC, mine)
    assert cluster.terminate(node_id) == 0, cluster.node(node_id).log_tail()
    # While it is down (until its session expires and after), its partitions have no leader.
    md = wait_for(f"node {node_id}'s partitions offline", lambda: (
        lambda m: m if all(m.topics[TOPIC].partitions[p].leader == -1 for p in mine) else None)(
            metadata(cluster.node(1 if node_id != 1 else 2), [TOPIC])), timeout=10)
    assert all(md.topics[TOPIC].partitions[p].error == LEADER_NOT_AVAILABLE for p in mine), md.topics[TOPIC]
    cluster.node(node_id).start()
    after = wait_for("leaders back", lambda: (lambda s: s if s["topics"] == before["topics"] else None)(snapshot(cluster)),
                     timeout=15)
    assert after["ends"] == before["ends"]
    data_after = clients.consume_confluent(cluster.bootstrap, TOPIC, mine)
    assert sorted(data_after) == sorted(data_before), "the restarted node's partitions do not read back the same"
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)])[GROUP].result(timeout=15)
    assert {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == TOPIC} == state["committed"]


def test_whole_cluster_restart_keeps_everything(cluster, state):
    assert "committed" in state, "needs the group test's offsets"
    before = snapshot(cluster)
    codes = cluster.terminate_all()
    assert set(codes.values()) == {0}, f"exit codes after SIGTERM: {codes}"
    t0 = time.monotonic()
    cluster.start()
    print(f"whole cluster ready again {time.monotonic() - t0:.1f}s after the restart")
    controller = cluster.wait_controller()
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    dc = a.describe_cluster(request_timeout=10).result(timeout=15)
    assert dc.cluster_id == state["cluster_id"] and dc.controller.id == controller
    after = wait_for("every partition led again", lambda: (
        lambda s: s if s["topics"] == before["topics"] else None)(snapshot(cluster)), timeout=15)
    assert after["ends"] == before["ends"]
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)])[GROUP].result(timeout=15)
    assert {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == TOPIC} == state["committed"]
    got = clients.consume_all_confluent(cluster.bootstrap, TOPIC, PARTITIONS)
    clients.check_roundtrip(clients.keyed_messages(N_MESSAGES), [(p, o, k, v) for p, o, k, v, _ in got])
