"""Claim: Kafka's isolated mode works: controller-only nodes (process.roles=controller) form
the metadata quorum and brokers (process.roles=broker) serve clients.

A cluster of 2 brokers and 3 controller-only voters: clients see exactly the 2 brokers; a
topic's partitions are placed on brokers only and carry data end to end through
confluent-kafka; each controller-only node serves the quorum and controller metrics on
/metrics (and no broker metrics), is ready on /health/ready and has no Kafka port; kill -9 of
the active controller elects another controller-only node and topics can still be created;
the killed controller comes back and is a voter again. A controller-only node configured
with a Kafka listener stops at start-up naming `listeners`.
"""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

import clients
from cluster import ACTIVE_CONTROLLER_METRIC, create_topic, metadata, wait_for
from lantern import run_broker_expect_exit

BROKERS = {1, 2}
CONTROLLERS = {101, 102, 103}


def test_controller_only_quorum_serves_brokers_and_fails_over(cluster_factory):
    c = cluster_factory(2, controllers=3)
    assert set(c.nodes) == BROKERS | CONTROLLERS
    active = c.wait_controller(timeout=15)
    assert active in CONTROLLERS, f"the active controller is {active}, not a controller-only node"

    # Clients see the brokers only.
    for b in BROKERS:
        md = metadata(c.node(b))
        assert set(md.brokers) == BROKERS, f"broker {b}'s Metadata lists {sorted(md.brokers)}"
        assert md.controller_id in BROKERS, f"Metadata names controller {md.controller_id}, which clients cannot reach"

    # The controller-only nodes: quorum and controller metrics, no broker metrics, no Kafka port.
    for i in CONTROLLERS:
        node = c.node(i)
        m = node.metrics()
        assert node.is_ready(), f"controller {i} is not ready"
        assert m.get(ACTIVE_CONTROLLER_METRIC) == (1 if i == active else 0), f"controller {i}: {m.get(ACTIVE_CONTROLLER_METRIC)}"
        assert m.get("kafka_server_raftmetrics_current_leader") == active, f"controller {i} names leader {m.get('kafka_server_raftmetrics_current_leader')}"
        assert m.get("kafka_controller_kafkacontroller_activebrokercount") == len(BROKERS)
        assert not any(k.startswith("kafka_server_replicamanager_") for k in m), f"controller {i} reports broker metrics"
        assert node.listening_ports() == {node.controller_port, node.http_port}, (
            f"controller-only node {i} listens on {sorted(node.listening_ports())}, "
            f"not just its controller ({node.controller_port}) and HTTP ({node.http_port}) ports")
    for b in BROKERS:
        assert ACTIVE_CONTROLLER_METRIC not in c.node(b).metrics(), f"broker {b} reports kafka.controller metrics"

    # Placement uses the brokers, and data flows.
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("iso", 6, 1)], request_timeout=15)["iso"].result(timeout=20)
    clients.wait_topic(c.bootstrap, "iso", 6)
    leaders = {pm.leader for pm in metadata(c.node(1), ["iso"]).topics["iso"].partitions.values()}
    assert leaders == BROKERS, f"leaders of iso are on {sorted(leaders)}"
    msgs = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(2000)]
    clients.produce_confluent(c.bootstrap, "iso", msgs, partition_of=lambda i: i % 6)
    got = clients.consume_all_confluent(c.bootstrap, "iso", 6)
    assert sorted((k, v) for _, _, k, v, _ in got) == sorted(msgs)

    # kill -9 the active controller: another controller-only node takes over.
    c.kill9(active)
    new = c.wait_controller(not_id=active, timeout=10)
    assert new in CONTROLLERS - {active}
    # 36 TOPIC_ALREADY_EXISTS: an earlier attempt was committed but its answer timed out.
    wait_for("CreateTopics through broker 1 after the failover",
             lambda: create_topic(c.node(1), "after-failover", 4)[0] in (0, 36), 15)
    clients.wait_topic(c.bootstrap, "after-failover", 4)

    # The killed controller returns as a voter that follows the new leader.
    c.restart(active)
    wait_for(f"controller {active} follows leader {new}",
             lambda: c.node(active).metric("kafka_server_raftmetrics_current_leader") == new, 15)
    assert c.active_controllers() == [new]


def test_controller_only_node_with_a_kafka_listener_stops_naming_listeners(tmp_path):
    code, out = run_broker_expect_exit([
        f"--log.dirs={tmp_path / 'data'}", "--node.id=1", "--process.roles=controller",
        "--controller.quorum.voters=1@127.0.0.1:19093", "--listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:19093",
    ])
    assert code == 2, out
    assert "listeners" in out and "controller-only" in out, out
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir()), "start-up touched the data dir"


def test_controller_only_node_of_another_cluster_id_stops_instead_of_hanging(cluster_factory, tmp_path):
    c = cluster_factory(1, controllers=3)
    active = c.wait_controller(timeout=15)
    other = next(i for i in sorted(CONTROLLERS) if i != active)
    node = c.node(other)
    node.terminate()
    # The same voter on an empty directory and a cluster.id that is not the quorum's: it can
    # only find out after applying the quorum's log, and must then stop with the reason.
    fresh = tmp_path / "fresh"
    args = [a for a in node.args() if not a.startswith("--log.dirs=")]
    code, out = run_broker_expect_exit([*args, f"--log.dirs={fresh}", "--cluster.id=AAAAAAAAAAAAAAAAAAAAAA"], timeout=20)
    assert code not in (0, None), out
    assert "cluster.id=AAAAAAAAAAAAAAAAAAAAAA" in out and "belongs to cluster" in out, out[-2000:]
    assert not (fresh / "meta.properties").exists(), "meta.properties was written for the wrong cluster"
    # Back on its own directory it rejoins.
    c.restart(other)
    wait_for(f"controller {other} follows leader {active}",
             lambda: c.node(other).metric("kafka_server_raftmetrics_current_leader") == active, 15)
