"""A Lantern cluster of real lantern-broker processes for the end-to-end tests.

`Cluster(workdir, n)` gives nodes 1..n ports on 127.0.0.1 (a Kafka listener, a CONTROLLER
listener and the HTTP listener each), makes them the voters of `controller.quorum.voters`,
starts them together and waits until every one answers /health/ready (registered and
unfenced). `Cluster(workdir, n, controllers=3)` is Kafka's isolated mode instead: nodes
1..n are brokers only (`process.roles=broker`) and nodes 101..103 are controller-only
voters (`process.roles=controller`, a CONTROLLER listener and HTTP, no Kafka listener). Nodes are `lantern.Broker`s, so each keeps its ports and data directory across
restarts, and every process is stopped by its pid (its own session) at teardown.

Besides lifecycle (kill -9, SIGTERM, SIGSTOP/SIGCONT, restart, add a node), this file holds
the raw Kafka requests the cluster tests read the cluster with, so they can ask one
particular node (client libraries pick a broker themselves): Metadata v1 and
FindCoordinator v1, and the controller metrics on /metrics.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lantern import Broker, free_port

# Kafka error codes the cluster tests look for.
LEADER_NOT_AVAILABLE = 5
NOT_CONTROLLER = 41
INVALID_REPLICATION_FACTOR = 38

ACTIVE_CONTROLLER_METRIC = "kafka_controller_kafkacontroller_activecontrollercount"


class ClusterNode(Broker):
    """One node (broker and controller) of a Cluster."""

    def __init__(self, cluster: "Cluster", node_id: int, *, props: dict | None = None, name: str | None = None,
                 controller_only: bool = False):
        self.cluster = cluster
        self.node_id = node_id
        self.controller_only = controller_only
        name = name or f"node{node_id}"
        super().__init__(cluster.workdir / name, name=name, props=props)
        self.controller_port = free_port()  # never one another node was given (see free_port)

    @property
    def is_voter(self) -> bool:
        return self.node_id in getattr(self.cluster, "voter_ids", [self.node_id])

    @property
    def controller_address(self) -> str:
        return f"{self.host}:{self.controller_port}"

    def args(self) -> list[str]:
        # A voter listens for the quorum on its CONTROLLER listener; a node added later is a
        # broker only and needs none.
        controller = f",CONTROLLER://{self.controller_address}" if self.is_voter else ""
        props = {
            "node.id": str(self.node_id),
            "log.dirs": ",".join(str(d) for d in self.data_dirs),
            "listeners": f"PLAINTEXT://{self.host}:{self.port}{controller}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.advertised_port}",
            "http.listener": f"{self.host}:{self.http_port}",
            "rest.listeners": f"http://{self.host}:{self.rest_port}",
            "controller.quorum.voters": self.cluster.voters,
        }
        if self.controller_only:
            props.update({"process.roles": "controller", "listeners": f"CONTROLLER://{self.controller_address}"})
            del props["advertised.listeners"]
            del props["rest.listeners"]
        elif self.cluster.isolated:
            props["process.roles"] = "broker"
        props.update(self.cluster.props)
        props.update(self.props)
        return [f"--{k}={v}" for k, v in props.items()] + self.extra_args

    # ------------------------------------------------------------- signals
    def sigstop(self) -> None:
        """SIGSTOP, returning once every thread of the broker is stopped. The signal is
        asynchronous: a thread busy on the other core can still answer a fetch for a moment
        after os.kill returns, and a test that resumes another broker in that moment races
        it (seen in CI: a leader paused this way still served its unreplicated tail)."""
        os.kill(self.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while not self.all_threads_stopped():
            if time.monotonic() > deadline:
                raise AssertionError(f"broker {self.pid} not stopped 5 s after SIGSTOP")
            time.sleep(0.005)

    def all_threads_stopped(self) -> bool:
        try:
            tasks = list(Path(f"/proc/{self.pid}/task").iterdir())
        except FileNotFoundError:
            return True  # gone: nothing of it runs
        for task in tasks:
            try:
                state = Path(task, "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                continue  # that thread has exited
            if state not in ("T", "t", "Z", "X"):
                return False
        return True

    def sigcont(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stopped(self) -> bool:
        """True while the process is stopped by SIGSTOP (state T in /proc)."""
        try:
            return Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
        except (FileNotFoundError, IndexError):
            return False

    def is_ready(self) -> bool:
        return self.alive() and self.health("/health/ready") == 200

    def listening_ports(self) -> set[int]:
        """TCP ports this process listens on (its sockets' inodes matched in /proc/net/tcp*)."""
        inodes = set()
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                    ports.add(int(f[1].rsplit(":", 1)[1], 16))
        return ports

    # ------------------------------------------------------------- metrics
    def metrics(self, timeout: float = 2.0) -> dict[str, float]:
        """{series: value} from /metrics (empty when the node does not answer)."""
        try:
            with urllib.request.urlopen(self.http_base + "/metrics", timeout=timeout) as r:
                text = r.read().decode()
        except (OSError, ValueError):
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out

    def metric(self, name: str) -> float | None:
        return self.metrics().get(name)


class Cluster:
    """N nodes sharing one metadata quorum. `props` apply to every node."""

    def __init__(self, workdir: Path, n: int, *, props: dict | None = None, controllers: int = 0):
        self.workdir = Path(workdir)
        self.props = {k: str(v) for k, v in (props or {}).items()}
        self.nodes: dict[int, ClusterNode] = {}
        self.extra: list[Broker] = []  # other processes a test started against this cluster
        self.isolated = controllers > 0
        for node_id in range(1, n + 1):
            self.nodes[node_id] = ClusterNode(self, node_id)
        for node_id in range(101, 101 + controllers):
            self.nodes[node_id] = ClusterNode(self, node_id, controller_only=True)
        self.voter_ids = sorted(i for i, node in self.nodes.items() if node.controller_only) if self.isolated else sorted(self.nodes)
        self.voters = ",".join(f"{i}@{self.nodes[i].controller_address}" for i in self.voter_ids)

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> "Cluster":
        """Starts every node at once (none is ready before a quorum exists) and waits for all."""
        for node in self.nodes.values():
            node.start(wait=False)
        self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, ids=None, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for i in ids or list(self.nodes):
            self.nodes[i].wait_ready(timeout=max(0.1, deadline - time.monotonic()))

    def node(self, node_id: int) -> ClusterNode:
        return self.nodes[node_id]

    def running(self) -> list[ClusterNode]:
        """Nodes whose process is alive and not stopped."""
        return [n for n in self.nodes.values() if n.alive() and not n.stopped()]

    def running_brokers(self) -> list[ClusterNode]:
        """Running nodes with a Kafka listener (all but controller-only nodes)."""
        return [n for n in self.running() if not n.controller_only]

    @property
    def bootstrap(self) -> str:
        """Comma-separated Kafka addresses of the running nodes."""
        return self.bootstrap_without()

    def bootstrap_without(self, *ids: int) -> str:
        return ",".join(n.bootstrap for n in self.running_brokers() if n.node_id not in ids)

    def log_tail(self, n_lines: int = 40) -> str:
        return "\n".join(f"--- {b.name}:\n{b.log_tail(n_lines)}" for b in self.all_processes())

    def kill9(self, node_id: int) -> None:
        self.nodes[node_id].kill9()

    def terminate(self, node_id: int) -> int:
        return self.nodes[node_id].terminate()

    def terminate_all(self, timeout: float = 15.0) -> dict[int, int]:
        """SIGTERM every running node at once, as a whole-cluster shutdown does; waits for
        each and returns {node id: exit code}."""
        running = [n for n in self.nodes.values() if n.alive()]
        for n in running:
            n.proc.send_signal(signal.SIGTERM)
        return {n.node_id: n.terminate(timeout=timeout) for n in running}

    def restart(self, node_id: int, wait: bool = True) -> ClusterNode:
        node = self.nodes[node_id]
        if node.alive():
            if node.stopped():
                node.sigcont()
            node.terminate()
        return node.start(wait=wait)

    def add_node(self, node_id: int | None = None, *, props: dict | None = None, start: bool = True,
                 wait: bool = True) -> ClusterNode:
        """A new node with the same quorum settings. It is not a voter (the voter list stays),
        so it needs `process.roles=broker` in `props`."""
        node_id = node_id or max(self.nodes) + 1
        assert node_id not in self.nodes, f"node {node_id} exists"
        node = ClusterNode(self, node_id, props=props)
        self.nodes[node_id] = node
        if start:
            node.start(wait=wait)
        return node

    def heal(self, timeout: float = 30.0) -> None:
        """Brings every node back (SIGCONT a stopped one, start a dead one) and waits until
        all are ready: a shared cluster starts each test whole."""
        for node in self.nodes.values():
            if node.proc is None:
                continue
            if node.alive() and node.stopped():
                node.sigcont()
            if not node.alive():
                node.start(wait=False)
        self.wait_ready([i for i, n in self.nodes.items() if n.proc is not None], timeout=timeout)

    def stop(self) -> None:
        """Teardown: SIGKILL every process by pid (stopped ones too)."""
        for b in [*self.nodes.values(), *self.extra]:
            b.stop()

    def all_processes(self) -> list[Broker]:
        return [*self.nodes.values(), *self.extra]

    # ----------------------------------------------------------- controller
    def active_controllers(self) -> list[int]:
        """Ids of the running nodes whose ActiveControllerCount is 1."""
        return [n.node_id for n in self.running() if n.metric(ACTIVE_CONTROLLER_METRIC) == 1]

    def wait_controller(self, *, not_id: int | None = None, timeout: float = 10.0) -> int:
        """Waits until exactly one running node reports itself active controller (and it is
        not `not_id`) and every running node's Metadata names it; returns its id."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            active = self.active_controllers()
            if len(active) == 1 and active[0] != not_id and self.isolated:
                # Brokers name themselves (a live broker that forwards) in Metadata when the
                # active controller is not a broker, as Kafka's do.
                return active[0]
            if len(active) == 1 and active[0] != not_id:
                views = {}
                for n in self.running_brokers():
                    try:
                        views[n.node_id] = metadata(n).controller_id
                    except OSError as e:
                        views[n.node_id] = repr(e)
                if set(views.values()) == {active[0]}:
                    return active[0]
                last = f"active {active}, Metadata controller ids {views}"
            else:
                last = f"active controllers by metric: {active}"
            time.sleep(0.05)
        raise AssertionError(f"no single active controller (other than {not_id}) within {timeout}s: {last}")


# ------------------------------------------------------------ raw requests
def _str16(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v if len(v) > 1 else v[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def int32s(self) -> list[int]:
        n = self.take(">i")
        return [self.take(">i") for _ in range(max(n, 0))]


def request(host_port: tuple[str, int], api_key: int, version: int, body: bytes, timeout: float = 5.0) -> bytes:
    """Sends one request (non-flexible header v1) and returns the response body after the
    correlation id."""
    header = struct.pack(">hhi", api_key, version, 1) + _str16("lantern-cluster-tests")
    payload = header + body
    with socket.create_connection(host_port, timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        buf = b""
        while len(buf) < 4:
            chunk = s.recv(4 - len(buf))
            if not chunk:
                raise ConnectionError("connection closed before a response")
            buf += chunk
        (size,) = struct.unpack(">i", buf)
        data = b""
        while len(data) < size:
            chunk = s.recv(size - len(data))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(data)} of {size} bytes")
            data += chunk
    (corr,) = struct.unpack_from(">i", data)
    assert corr == 1, f"correlation id {corr}"
    return data[4:]


@dataclass
class PartitionMeta:
    error: int
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass
class TopicMeta:
    error: int
    name: str
    internal: bool
    partitions: dict[int, PartitionMeta] = field(default_factory=dict)


@dataclass
class Metadata:
    brokers: dict[int, tuple[str, int, str | None]]
    controller_id: int
    topics: dict[str, TopicMeta]


def metadata(node: Broker, topics: list[str] | None = None, timeout: float = 5.0) -> Metadata:
    """Metadata v1 asked of `node` itself; `topics` None asks for all topics (v1 auto-creates
    listed topics that do not exist, so list only existing ones)."""
    body = struct.pack(">i", -1) if topics is None else struct.pack(">i", len(topics)) + b"".join(_str16(t) for t in topics)
    r = _Reader(request((node.host, node.port), 3, 1, body, timeout))
    brokers = {}
    for _ in range(r.take(">i")):
        node_id = r.take(">i")
        host = r.string()
        port = r.take(">i")
        rack = r.string()
        brokers[node_id] = (host, port, rack)
    controller_id = r.take(">i")
    out = {}
    for _ in range(r.take(">i")):
        err = r.take(">h")
        name = r.string()
        internal = bool(r.take(">b"))
        t = TopicMeta(err, name, internal)
        for _ in range(r.take(">i")):
            perr = r.take(">h")
            p = r.take(">i")
            leader = r.take(">i")
            t.partitions[p] = PartitionMeta(perr, p, leader, r.int32s(), r.int32s())
        out[name] = t
    return Metadata(brokers, controller_id, out)


def log_end_offsets(node: Broker) -> dict[tuple[str, int], float]:
    """{(topic, partition): log end offset} of every partition `node` hosts, from one scrape
    of its /metrics (kafka_log_log_logendoffset)."""
    out = {}
    for k, v in node.metrics().items():
        if k.startswith("kafka_log_log_logendoffset{"):
            topic = k.split('topic="')[1].split('"')[0]
            out[(topic, int(k.split('partition="')[1].split('"')[0]))] = v
    return out


def find_coordinator(node: Broker, group: str, timeout: float = 5.0) -> tuple[int, int, str | None]:
    """FindCoordinator v1 for a group: (error code, coordinator node id, error message)."""
    body = _str16(group) + struct.pack(">b", 0)
    r = _Reader(request((node.host, node.port), 10, 1, body, timeout))
    r.take(">i")  # throttle
    err = r.take(">h")
    msg = r.string()
    node_id = r.take(">i")
    return err, node_id, msg


def create_topic(node: Broker, name: str, partitions: int, replication_factor: int = 1,
                 timeout: float = 5.0) -> tuple[int, str | None]:
    """CreateTopics v2 asked of `node` (any broker forwards it to the active controller):
    (error code, error message)."""
    body = struct.pack(">i", 1) + _str16(name) + struct.pack(">ihii", partitions, replication_factor, 0, 0)
    body += struct.pack(">ib", int(timeout * 1000), 0)
    r = _Reader(request((node.host, node.port), 19, 2, body, timeout + 1))
    r.take(">i")  # throttle
    assert r.take(">i") == 1
    assert r.string() == name
    return r.take(">h"), r.string()


def describe_log_dirs(node: Broker, timeout: float = 5.0) -> dict[str, dict[tuple[str, int], tuple[int, int]]]:
    """DescribeLogDirs v1 for every replica: {log dir: {(topic, partition): (size, offset lag)}}."""
    r = _Reader(request((node.host, node.port), 35, 1, struct.pack(">i", -1), timeout))
    r.take(">i")  # throttle
    out: dict[str, dict[tuple[str, int], tuple[int, int]]] = {}
    for _ in range(r.take(">i")):
        err = r.take(">h")
        assert err == 0, err
        d = out.setdefault(r.string(), {})
        for _ in range(r.take(">i")):
            topic = r.string()
            for _ in range(r.take(">i")):
                index, size, lag, _future = r.take(">iqqb")
                d[(topic, index)] = (size, lag)
    return out


def java_string_hash(s: str) -> int:
    """Java's String.hashCode (over UTF-16 code units), as Kafka hashes group ids."""
    h = 0
    for unit in struct.unpack(f">{len(s.encode('utf-16-be')) // 2}H", s.encode("utf-16-be")):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h


def offsets_partition(group: str, n_partitions: int) -> int:
    """The __consumer_offsets partition of a group, as Kafka's GroupMetadataManager.partitionFor:
    Utils.abs(groupId.hashCode) % n, Utils.abs being Math.abs with MIN_VALUE mapped to 0."""
    h = java_string_hash(group)
    signed = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if signed == -(1 << 31) else abs(signed)) % n_partitions


def wait_for(what: str, check, timeout: float, interval: float = 0.05):
    """Polls `check()` until it returns something truthy; returns it. Fails naming `what`
    and the last value (or exception) seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = check()
            if v:
                return v
            last = v
        except (OSError, AssertionError, struct.error) as e:
            last = repr(e)
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true within {timeout}s (last: {last})")
        time.sleep(interval)
