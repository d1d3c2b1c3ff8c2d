"""Burrow (issue 16, "Compatibility"): Debian's Burrow reads a group's committed offsets from
`__consumer_offsets` and asks for each partition's end offset with ListOffsets v0 (Sarama's
OffsetRequest at version 0, which Burrow up to 1.9.3 sends). Its lag for a group that stopped
halfway must be the one Lantern's own `kafka_consumergroup_lag` reports.

ZooKeeper (Debian's, which Burrow needs for its own coordination) and Burrow run on free
loopback ports with their config and data in the test's tmp dir.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

import clients
from lantern import free_port
from test_metrics import FAST_PROPS, consume_with_group, scrape

BURROW = shutil.which("Burrow") or "/usr/bin/Burrow"
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
CLUSTER = "lantern"
# Sarama's request versions follow this: 1.0.0 makes it fetch with v5 (record batches) and
# list offsets with v0 (Burrow never sets the OffsetRequest's version).
KAFKA_VERSION = "1.0.0"

pytestmark = pytest.mark.skipif(not (Path(BURROW).exists() and ZOOKEEPER_JAR.exists()),
                                reason="needs Debian's burrow and zookeeper (tests/run installs them)")


def _wait(cond, timeout: float, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.25)
    raise AssertionError(what() if callable(what) else what)


def _zk_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"srvr")
            return b"Mode: standalone" in s.recv(4096)
    except OSError:
        return False


@pytest.fixture
def zookeeper(tmp_path):
    """Debian's ZooKeeper, standalone, on a free loopback port."""
    port = free_port()
    d = tmp_path / "zookeeper"
    (d / "data").mkdir(parents=True)
    cfg = d / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={d / 'data'}\nclientPort={port}\n"
                   "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n")
    log = open(d / "zookeeper.log", "wb")
    p = subprocess.Popen(["java", "-cp", str(ZOOKEEPER_JAR), "org.apache.zookeeper.server.ZooKeeperServerMain", str(cfg)],
                         stdout=log, stderr=subprocess.STDOUT, cwd=d, start_new_session=True)
    try:
        _wait(lambda: p.poll() is not None or _zk_ok(port), 60, "ZooKeeper did not start")
        assert p.poll() is None, f"ZooKeeper exited: {(d / 'zookeeper.log').read_text()[-2000:]}"
        yield port
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()


class Burrow:
    def __init__(self, workdir: Path, bootstrap: str, zk_port: int):
        self.dir = workdir
        self.dir.mkdir(parents=True)
        self.http_port = free_port()
        self.log_path = self.dir / "burrow.log"
        servers = json.dumps([bootstrap])
        (self.dir / "burrow.toml").write_text(f"""
[general]
pidfile="{self.dir / 'burrow.pid'}"

[logging]
level="debug"

[zookeeper]
servers=["127.0.0.1:{zk_port}"]
timeout=6
root-path="/burrow"

[client-profile.lantern]
client-id="burrow-test"
kafka-version="{KAFKA_VERSION}"

[cluster.{CLUSTER}]
class-name="kafka"
servers={servers}
client-profile="lantern"
topic-refresh=5
offset-refresh=2

[consumer.{CLUSTER}]
class-name="kafka"
cluster="{CLUSTER}"
servers={servers}
client-profile="lantern"
start-latest=false
group-whitelist=""

[httpserver.default]
address="127.0.0.1:{self.http_port}"

[storage.default]
class-name="inmemory"
intervals=10
min-distance=1
""")
        self.out = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BURROW, "--config-dir", str(self.dir)], stdout=self.out,
                                     stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True)

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def get(self, path: str):
        assert self.proc.poll() is None, f"Burrow exited ({self.proc.returncode}):\n{self.log_tail()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")
        except (OSError, ValueError):
            return None, None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.out.close()


@pytest.fixture
def burrow_factory(tmp_path, zookeeper):
    made = []

    def make(bootstrap: str) -> Burrow:
        b = Burrow(tmp_path / f"burrow{len(made) + 1}", bootstrap, zookeeper)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


def test_burrow_reports_the_lag_lantern_reports(broker_factory, burrow_factory, topic_name):
    broker = broker_factory(props=dict(FAST_PROPS))
    counts = {0: 120, 1: 75, 2: 201}
    clients.create_topic(broker.bootstrap, topic_name, len(counts))
    clients.produce_confluent(
        broker.bootstrap, topic_name,
        [(b"k%d" % p, b"v%d-%d" % (p, i)) for p in counts for i in range(counts[p])],
        partition_of=lambda i: 0 if i < counts[0] else 1 if i < counts[0] + counts[1] else 2)
    half = {p: c // 2 for p, c in counts.items()}
    group = f"burrow-{uuid.uuid4().hex[:6]}"
    consume_with_group(broker.bootstrap, topic_name, group, half)

    before = _request_counts(scrape(broker))
    burrow = burrow_factory(broker.bootstrap)

    def burrow_lag():
        status, body = burrow.get(f"/v3/kafka/{CLUSTER}/consumer/{group}/lag")
        if status != 200 or body.get("error"):
            return None
        got = {}
        for part in body["status"].get("partitions") or []:
            if part["topic"] != topic_name or not part.get("end"):
                continue
            got[part["partition"]] = (part["end"]["offset"], part["end"]["lag"], part.get("current_lag"))
        return got if set(got) == set(counts) else None

    got = _wait(burrow_lag, 90, lambda: (
        f"Burrow has no lag for {group} on all of {topic_name}'s partitions: "
        f"{burrow.get(f'/v3/kafka/{CLUSTER}/consumer/{group}/lag')}\n"
        f"Burrow's log:\n{burrow.log_tail()}\nbroker's log:\n{broker.log_tail(30)}"))

    s = scrape(broker)
    lantern_lag = {p: s.value("kafka_consumergroup_lag", consumergroup=group, topic=topic_name, partition=p)
                   for p in counts}
    assert lantern_lag == {p: counts[p] - half[p] for p in counts}, lantern_lag
    assert {p: offset for p, (offset, _, _) in got.items()} == half, f"Burrow's committed offsets: {got}"
    assert {p: current_lag for p, (_, _, current_lag) in got.items()} == lantern_lag, \
        f"Burrow's current_lag {got}, Lantern's kafka_consumergroup_lag {lantern_lag}"

    # What Burrow sent (the requests counted since it started; nothing else ran meanwhile),
    # for the record and the reason for this test: ListOffsets v0.
    after = _request_counts(s)
    sent = sorted(k for k, n in after.items() if n > before.get(k, 0))
    print(f"Burrow {KAFKA_VERSION!r} sent:", sent)
    assert ("ListOffsets", "0") in sent, sent


def _request_counts(s) -> dict:
    return {(lb["request"], lb["version"]): v for lb, v in s.series("kafka_network_requestmetrics_requests_total")
            if "version" in lb}
