"""pytest fixtures for the Lantern end-to-end tests.

`broker_factory(**kw)` starts a real lantern-broker (see lantern.Broker) in a temp dir;
`broker` is one started with default settings. `cluster_factory(n)` starts an n-node cluster
(see cluster.Cluster) for one test, `module_cluster_factory(n)` one shared by a test module.
Every process a test started is killed at teardown, and when a test fails the tail of each
broker's stderr (of every cluster still running, too) is attached to the report.
`java_classpaths` compiles tests/java once per session (see javacheck.py).
`powercut_mount(backing, mountpoint, **kw)` mounts tests/powercut_fs.py (skipping the test
where FUSE is not available), unmounted at teardown.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import Cluster  # noqa: E402
from javacheck import setup_classpaths  # noqa: E402
from lantern import Broker  # noqa: E402
from powercut_fs import MountFailed, PowercutMount, fuse_unavailable  # noqa: E402

# Clusters not torn down yet: their nodes' logs go into the report of a failing test.
_LIVE_CLUSTERS: list[Cluster] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    brokers = list(getattr(item, "_lantern_brokers", None) or [])
    for c in _LIVE_CLUSTERS:
        brokers += c.all_processes()
    if rep.failed and brokers:
        for b in brokers:
            rep.sections.append((f"{b.name} stderr tail ({b.log_path})", b.log_tail(80)))


@pytest.fixture
def broker_factory(request, tmp_path):
    started: list[Broker] = []
    request.node._lantern_brokers = started

    def make(*, start: bool = True, name: str | None = None, **kw) -> Broker:
        b = Broker(tmp_path / (name or f"broker{len(started) + 1}"), name=name or f"broker{len(started) + 1}", **kw)
        started.append(b)
        if start:
            b.start()
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory(props={"num.partitions": 1, "auto.create.topics.enable": "true"})


@pytest.fixture
def topic_name(request) -> str:
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60].strip("-")
    return f"{base}-{uuid.uuid4().hex[:6]}"


def _cluster_factory(workdir_of):
    made: list[Cluster] = []

    def make(n: int = 3, *, props: dict | None = None, start: bool = True, controllers: int = 0) -> Cluster:
        c = Cluster(workdir_of(len(made) + 1), n, props=props, controllers=controllers)
        made.append(c)
        _LIVE_CLUSTERS.append(c)
        if start:
            c.start()
        return c

    return made, make


def _stop_clusters(made: list[Cluster]) -> None:
    for c in made:
        c.stop()
        _LIVE_CLUSTERS.remove(c)


@pytest.fixture
def cluster_factory(tmp_path):
    """`cluster_factory(n=3, props=None, controllers=0)`: an n-node cluster, all nodes voters
    (or, with `controllers`, n brokers and that many controller-only voters), started and
    ready; stopped (by pid) after the test."""
    made, make = _cluster_factory(lambda i: tmp_path / f"cluster{i}")
    yield make
    _stop_clusters(made)


@pytest.fixture(scope="module")
def module_cluster_factory(request, tmp_path_factory):
    """As cluster_factory, for a cluster that the tests of one module share."""
    name = "".join(c if c.isalnum() else "-" for c in request.module.__name__)
    made, make = _cluster_factory(lambda i: tmp_path_factory.mktemp(f"{name}-cluster{i}"))
    yield make
    _stop_clusters(made)


@pytest.fixture(scope="session")
def java_classpaths() -> dict[str, str]:
    """{kafka-clients version: classpath}; runs tests/java/setup.sh (fetch + verify jars,
    compile LanternClientCheck) once per session."""
    return setup_classpaths()


@pytest.fixture
def powercut_mount():
    """`make(backing, mountpoint, seed=None)`: a started PowercutMount; skips the test where
    this machine cannot mount FUSE (see powercut_fs.fuse_unavailable). Every mount is
    unmounted and its process gone after the test."""
    made: list[PowercutMount] = []

    def make(backing: Path, mountpoint: Path, **kw) -> PowercutMount:
        why = fuse_unavailable()
        if why:
            pytest.skip(f"FUSE unavailable: {why}")
        m = PowercutMount(backing, mountpoint, **kw)
        made.append(m)
        try:
            return m.start()
        except MountFailed as e:
            # the kernel refusing the mount (a container without CAP_SYS_ADMIN) is the
            # machine's limit; anything else (a missing package, a crash) is a failure
            if "mount failed: Operation not permitted" in str(e) or "mount failed: Permission denied" in str(e):
                pytest.skip(f"FUSE unavailable: the kernel refused the mount: {e}")
            raise

    yield make
    for m in made:
        m.stop()
