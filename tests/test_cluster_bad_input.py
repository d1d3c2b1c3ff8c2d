"""Claim: a Lantern cluster refuses bad input with Kafka's error or a start-up message that
names the problem, and the refusal costs nothing else:

- CreateTopics asking for more replicas than there are live brokers gets
  INVALID_REPLICATION_FACTOR, through every broker;
- garbage on a node's CONTROLLER listener (bytes that are not a frame of the controller
  protocol, a huge length prefix, a Kafka request sent to the wrong port) closes that
  connection and nothing else: the node stays ready and the quorum keeps working;
- a voter list that does not hold the node's own controller listener stops start-up naming
  controller.quorum.voters (or listeners) before any data directory is created;
- a data directory that belongs to another node or another cluster (its meta.properties)
  stops start-up, and the directory is left exactly as it was (every file, byte for byte,
  and no new ones);
- a second process with a node id the cluster already has stops, naming the duplicate id,
  and the cluster and the original node are unaffected.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

import clients
from cluster import INVALID_REPLICATION_FACTOR, ClusterNode, create_topic, metadata
from lantern import free_port, run_broker_expect_exit


@pytest.fixture(scope="module")
def cluster(module_cluster_factory):
    return module_cluster_factory(3)


@pytest.fixture(autouse=True)
def whole(cluster):
    cluster.heal()
    return cluster


def tree(root: Path) -> dict[str, str]:
    """{relative path: sha256 of the content, or 'dir'} of everything under root."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_cluster_works(cluster, tag: str) -> None:
    """Every node ready and listing all brokers, one controller, and a topic can be created
    and used."""
    cluster.wait_ready()
    controller = cluster.wait_controller()
    for i, n in cluster.nodes.items():
        md = metadata(n)
        assert {b: hp[1] for b, hp in md.brokers.items()} == {j: m.port for j, m in cluster.nodes.items()}, (
            f"node {i}: brokers {md.brokers}")
        assert md.controller_id == controller
    err, msg = create_topic(cluster.node(1), f"works-{tag}", 3)
    assert err == 0, msg
    clients.wait_topic(cluster.bootstrap, f"works-{tag}", 3)
    msgs = [(f"k{i}".encode(), f"{tag}-{i}".encode()) for i in range(30)]
    clients.produce_confluent(cluster.bootstrap, f"works-{tag}", msgs, partition_of=lambda i: i % 3)
    got = clients.consume_all_confluent(cluster.bootstrap, f"works-{tag}", 3)
    assert sorted((k, v) for _, _, k, v, _ in got) == sorted(msgs)


# ------------------------------------------------------------- placement
def test_replication_factor_above_live_brokers_is_refused(cluster):
    for i, n in cluster.nodes.items():
        err, msg = create_topic(n, f"rf4-via-{i}", 3, replication_factor=4)
        assert err == INVALID_REPLICATION_FACTOR, (err, msg)
        assert "3" in msg and "4" in msg, f"the message should give both counts: {msg!r}"
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic("rf4", 3, 4)], request_timeout=10)["rf4"].result(timeout=15)
    assert e.value.args[0].code() == INVALID_REPLICATION_FACTOR, e.value
    assert not {t for t in metadata(cluster.node(1)).topics if t.startswith("rf4")}, "a refused topic was created"


# ------------------------------------------------------- controller listener
def closed_within(s: socket.socket, timeout: float = 5.0) -> bool:
    """True when the peer closes the connection (EOF or reset) within `timeout`."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


GARBAGE = {
    "not-json": struct.pack(">I", 11) + b"hello world",
    "huge-length": struct.pack(">I", 0xFFFFFFF0) + b"\x00" * 16,
    "wrong-shape-json": struct.pack(">I", 12) + b'{"Vote": 42}',
    # ApiVersions v3, as a Kafka client pointed at the controller port would send it
    "kafka-request": bytes.fromhex("00000021001200030000000100096c616e7465726e2d7400066c616e7465726e06332e302e300000"),
}


def test_garbage_on_the_controller_listener_closes_only_that_connection(cluster):
    controller = cluster.wait_controller()
    for node in cluster.nodes.values():
        for name, payload in GARBAGE.items():
            with socket.create_connection(("127.0.0.1", node.controller_port), timeout=5) as s:
                try:
                    s.sendall(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                assert closed_within(s), f"node {node.node_id} kept the connection open after {name}"
        assert node.is_ready(), f"node {node.node_id} is not ready after garbage on its controller listener"
        assert node.rss_bytes() < 300 * 1024 * 1024, f"node {node.node_id} RSS {node.rss_bytes()} after garbage"
        assert "closing controller connection" in node.log_text(), "no log line for the refused connections"
        assert "panicked" not in node.log_text()
    assert cluster.wait_controller() == controller, "garbage on the controller listeners moved the controller"
    assert_cluster_works(cluster, "garbage")


# ------------------------------------------------------------ quorum config
@pytest.mark.parametrize("case", ["port-mismatch", "not-a-voter", "no-controller-listener"])
def test_voter_list_without_the_nodes_own_controller_listener_stops_startup(tmp_path, case):
    ports = {k: free_port() for k in ("kafka", "ctl", "http", "other")}
    voters = f"1@127.0.0.1:{ports['ctl']},2@127.0.0.1:{ports['other']},3@127.0.0.1:{ports['other'] + 1}"
    listeners = f"PLAINTEXT://127.0.0.1:{ports['kafka']},CONTROLLER://127.0.0.1:{ports['ctl']}"
    node_id, want = "1", "controller.quorum.voters"
    if case == "port-mismatch":
        voters = voters.replace(f"1@127.0.0.1:{ports['ctl']}", f"1@127.0.0.1:{ports['other'] + 2}")
    elif case == "not-a-voter":
        node_id = "4"
    else:
        listeners, want = f"PLAINTEXT://127.0.0.1:{ports['kafka']}", "listeners"
    data = tmp_path / "data"
    rc, out = run_broker_expect_exit([f"--node.id={node_id}", f"--log.dirs={data}", f"--listeners={listeners}",
                                      f"--controller.quorum.voters={voters}", f"--http.listener=127.0.0.1:{ports['http']}"])
    assert rc != 0, out
    assert want in out, f"the message does not name {want}:\n{out}"
    assert "panicked" not in out, out
    assert not data.exists(), f"start-up touched {data}: {list(data.rglob('*'))}"


# ---------------------------------------------------------- data directories
def restart_with_dirs(cluster, node_id: int, dirs: Path, extra_props: dict | None = None):
    """Stops node `node_id` and starts it with `dirs` as log.dirs; returns (exit code, log
    text of that start) when it exits by itself within 30 s, else fails."""
    node = cluster.node(node_id)
    assert node.terminate() == 0
    saved = dict(node.props)
    node.props.update({"log.dirs": str(dirs), **(extra_props or {})})
    try:
        mark = len(node.log_text())
        node.start(wait=False)
        try:
            node.proc.wait(timeout=30)
        except Exception:
            node.kill9()
            raise AssertionError(f"node {node_id} with the data of another node or cluster kept running:\n"
                                 f"{node.log_text()[mark:][-4000:]}")
        return node.proc.returncode, node.log_text()[mark:]
    finally:
        node.props = saved


def test_data_dir_of_another_node_stops_startup_untouched(cluster, tmp_path):
    foreign = tmp_path / "node1-copy"
    shutil.copytree(cluster.node(1).data_dirs[0], foreign)
    before = tree(foreign)
    assert "meta.properties" in before
    rc, log = restart_with_dirs(cluster, 3, foreign)
    assert rc != 0
    assert "node.id=3" in log and "belongs to node 1" in log, f"the message should name both node ids:\n{log[-3000:]}"
    assert tree(foreign) == before, "the other node's data directory was changed"
    cluster.node(3).start()
    assert_cluster_works(cluster, "other-node")


@pytest.mark.parametrize("cluster_id_set", [True, False], ids=["cluster.id-set", "cluster.id-learned"])
def test_data_dir_of_another_cluster_stops_startup_untouched(cluster, broker_factory, tmp_path, cluster_id_set):
    # Another cluster: a single-node Lantern whose node id is 3, with a topic and data.
    other = broker_factory(name=f"other-cluster-{cluster_id_set}", props={"node.id": "3"})
    clients.create_topic(other.bootstrap, "other-cluster-topic", 2)
    clients.produce_confluent(other.bootstrap, "other-cluster-topic", [(b"k", b"v")] * 10)
    assert other.terminate() == 0
    foreign = other.data_dirs[0]
    before = tree(foreign)
    other_id = next(ln.split("=", 1)[1] for ln in (foreign / "meta.properties").read_text().splitlines()
                    if ln.startswith("cluster.id="))
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    ours = admin.describe_cluster(request_timeout=10).result(15).cluster_id
    extra = {"cluster.id": ours} if cluster_id_set else {}
    rc, log = restart_with_dirs(cluster, 3, foreign, extra)
    assert rc != 0
    # Without cluster.id the node cannot know this cluster's id before it joins the quorum;
    # the metadata log on disk, made by another quorum, is what must stop it.
    want = [other_id, ours] if cluster_id_set else [other_id, "controller.quorum.voters"]
    assert all(w in log for w in want), f"the message should name {want}:\n{log[-3000:]}"
    assert tree(foreign) == before, (
        f"the other cluster's data directory was changed: "
        f"{sorted(set(tree(foreign).items()) ^ set(before.items()))[:10]}")
    cluster.node(3).start()
    assert "other-cluster-topic" not in metadata(cluster.node(1)).topics
    assert_cluster_works(cluster, f"other-cluster-{cluster_id_set}")


# ------------------------------------------------------------ duplicate id
@pytest.mark.parametrize("whose", ["active-controller", "other-voter"])
def test_second_node_with_the_same_id_stops_and_the_cluster_is_unaffected(cluster, whose):
    # The duplicate asks the voters who the controller is; when it copies the active
    # controller's id, only the voter entry of its own id reaches the controller (CI found it
    # waiting forever for that case).
    active = cluster.wait_controller()
    dup_id = active if whose == "active-controller" else next(i for i in (1, 2, 3) if i != active)
    original = cluster.node(dup_id)
    topic = f"before-duplicate-{whose}"
    err, msg = create_topic(cluster.node(1), topic, 3)
    assert err == 0, msg
    clients.wait_topic(cluster.bootstrap, topic, 3)
    # The same settings as the original on another host: 127.0.0.2 stands for that host, so
    # its controller listener matches the original's voter entry by port, as on a real second
    # machine.
    dup = ClusterNode(cluster, dup_id, name=f"node{dup_id}-duplicate-{whose}")
    dup.props["listeners"] = f"PLAINTEXT://127.0.0.1:{dup.port},CONTROLLER://127.0.0.2:{original.controller_port}"
    cluster.extra.append(dup)
    t0 = time.monotonic()
    dup.start(wait=False)
    try:
        dup.proc.wait(timeout=30)
    except Exception:
        raise AssertionError(f"a second node {dup_id} kept running for 30 s:\n{dup.log_tail(40)}")
    took = time.monotonic() - t0
    log = dup.log_text()
    print(f"the duplicate node {dup_id} stopped after {took:.1f}s")
    assert dup.proc.returncode != 0
    assert f"node id {dup_id} is already registered" in log and "node.id" in log, log[-3000:]
    # The original node was never fenced or replaced: same epoch, still serving.
    assert original.is_ready()
    assert "controller changed this broker's state" not in original.log_text().split("broker started")[-1], (
        f"the original node {dup_id} was fenced while the duplicate ran")
    md = metadata(cluster.node(1), [topic])
    assert md.brokers[dup_id][1] == original.port, md.brokers
    assert_cluster_works(cluster, f"duplicate-{whose}")
