"""A full disk: writes fail with KAFKA_STORAGE_ERROR, reads keep working, the broker stays up
and recovers by itself once space is freed, and nothing acknowledged is lost.

The log directory is a small tmpfs of the test's own (so this needs root to mount it); the
fault suite (tests/faults) injects the same fault into a replicated cluster at random.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer

import clients
from cluster import metadata, wait_for
from mounts import CANNOT_MOUNT, can_mount, mount_tmpfs, read_only_over, umount

sys.path.insert(0, str(Path(__file__).resolve().parent / "faults"))
from nemesis import fill  # noqa: E402

pytestmark = pytest.mark.skipif(not can_mount(), reason=CANNOT_MOUNT)


@pytest.fixture
def small_disks():
    mounted: list[Path] = []

    def mount(path: Path, size_mb: int = 16) -> Path:
        mount_tmpfs(path, size_mb)
        mounted.append(path)
        return path

    yield mount
    for p in mounted:
        umount(p)


def produce_once(bootstrap: str, topic: str, value: bytes) -> KafkaError | None:
    """One record, acks=all, no retries: the broker's own answer."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0, "enable.idempotence": False,
                  "message.timeout.ms": 10000})
    result = []
    p.produce(topic, value, partition=0, on_delivery=lambda err, msg: result.append(err))
    p.flush(15)
    assert result, "no delivery report"
    return result[0]


def test_a_full_disk_fails_writes_with_a_storage_error_and_recovers_when_space_is_freed(small_disks, broker_factory, topic_name):
    # The metadata log on another disk, as in Kafka a failed metadata log directory stops
    # the node (the quorum cannot go on without its log): only the data disk fills here.
    b = broker_factory(start=False)
    b.props["metadata.log.dir"] = str(b.workdir / "metadata")
    small_disks(b.data_dirs[0], 16)
    b.start()
    clients.create_topic(b.bootstrap, topic_name, 1)
    before = [(f"k{i}".encode(), f"before-{i}".encode()) for i in range(200)]
    clients.produce_confluent(b.bootstrap, topic_name, before)

    filler = b.data_dirs[0] / "filler"
    fill(filler)
    # Larger than a page: a small record could still fit in the last page the segment has.
    err = produce_once(b.bootstrap, topic_name, b"x" * 100_000)
    assert err is not None and err.code() == KafkaError.KAFKA_STORAGE_ERROR, f"expected KAFKA_STORAGE_ERROR, got {err}"
    # Reads keep working, and the broker is up.
    got = clients.consume_confluent(b.bootstrap, topic_name, [0])
    assert [v for _, _, _, v, _ in got] == [v for _, v in before]
    assert b.alive() and b.health("/health/live") == 200
    log = re.sub(r"\x1b\[[0-9;]*m", "", b.log_text())
    assert "No space left on device" in log, b.log_tail(20)

    filler.unlink()
    assert produce_once(b.bootstrap, topic_name, b"after") is None
    got = clients.consume_confluent(b.bootstrap, topic_name, [0])
    values = [v for _, _, _, v, _ in got]
    assert values == [v for _, v in before] + [b"after"], "the failed write left a trace, or something acknowledged was lost"

    # The log reads back cleanly after a restart (no partial batch from the failed write).
    b.restart()
    got = clients.consume_confluent(b.bootstrap, topic_name, [0])
    assert [v for _, _, _, v, _ in got] == [v for _, v in before] + [b"after"]


def test_a_follower_with_a_full_disk_backs_off_and_catches_up_once_space_is_freed(small_disks, cluster_factory, topic_name):
    """Found by the fault suite: a follower whose appends failed fetched again at once, and
    the leader answered at once (it had the records), tens of thousands of times a second,
    each with a warning in the log."""
    c = cluster_factory(3, start=False, props={"replica.lag.time.max.ms": 3000})
    for node in c.nodes.values():
        small_disks(node.data_dirs[0], 64)
        node.props["metadata.log.dir"] = str(node.workdir / "metadata")
    c.start()
    from confluent_kafka.admin import NewTopic

    admin = clients.admin(c.bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 3, config={"min.insync.replicas": "2"})])[topic_name].result(30)
    clients.wait_topic(c.bootstrap, topic_name, 1)
    leader = metadata(c.running_brokers()[0], [topic_name]).topics[topic_name].partitions[0].leader
    follower = c.nodes[next(i for i in c.nodes if i != leader)]
    fill(follower.data_dirs[0] / "filler")
    warnings_before = follower.log_text().count("could not append fetched")
    sent = [(f"k{i}".encode(), f"v-{i}".encode()) for i in range(3000)]
    started = time.monotonic()
    clients.produce_confluent(c.bootstrap, topic_name, sent)
    time.sleep(max(0.0, 5 - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    warnings = follower.log_text().count("could not append fetched") - warnings_before
    # replica.fetch.backoff.ms (1 s) between tries: a handful, not thousands.
    assert 1 <= warnings <= 3 * elapsed + 3, f"{warnings} append warnings in {elapsed:.1f}s"
    assert follower.alive()

    (follower.data_dirs[0] / "filler").unlink()
    wait_for("the follower back in the ISR", lambda: sorted(metadata(c.running_brokers()[0], [topic_name]).topics[topic_name].partitions[0].isr) == sorted(c.nodes), 30)
    got = clients.consume_confluent(c.bootstrap, topic_name, [0])
    assert [v for _, _, _, v, _ in got] == [v for _, v in sent]


def test_a_failed_log_directory_goes_offline_and_the_broker_goes_on_serving_its_other_disk(small_disks, cluster_factory, topic_name):
    """JBOD: broker 1 has two log directories; the second (a tmpfs of the test's own) becomes
    read-only. The broker takes it offline (OfflineLogDirectoryCount 1, DescribeLogDirs
    KAFKA_STORAGE_ERROR), the leadership of its partitions moves to other brokers, the partitions
    on the first directory stay with broker 1, and nothing acknowledged is lost."""
    from confluent_kafka.admin import NewTopic

    c = cluster_factory(3, start=False, props={"log.dir.failure.probe.interval.ms": 300, "replica.lag.time.max.ms": 3000})
    node1 = c.node(1)
    second = node1.workdir / "data2"
    small_disks(second, 64)
    node1.data_dirs.append(second)
    c.start()
    admin = clients.admin(c.bootstrap)
    admin.create_topics([NewTopic(topic_name, num_partitions=4, replica_assignment=[[1, 2, 3]] * 4,
                                  config={"min.insync.replicas": "2"})])[topic_name].result(30)
    clients.wait_topic(c.bootstrap, topic_name, 4)
    before = [(b"k%d" % i, b"before-%d" % i) for i in range(400)]
    clients.produce_confluent(c.bootstrap, topic_name, before, partition_of=lambda i: i % 4)
    on_second = sorted(p for p in range(4) if node1.partition_dirs(topic_name, p)[0].parent == second)
    on_first = sorted(set(range(4)) - set(on_second))
    assert on_second and on_first, (on_first, on_second)

    # The directory becomes unwritable: a read-only filesystem mounted over it (mounts.py).
    with read_only_over(second):
        wait_for("the read-only directory offline", lambda: node1.metric("kafka_log_logmanager_offlinelogdirectorycount") == 1.0, 15)

        def parts():
            return metadata(c.node(2), [topic_name]).topics[topic_name].partitions
        wait_for("its partitions led elsewhere, broker 1 out of their ISR",
                 lambda: all(parts()[p].leader != 1 and 1 not in parts()[p].isr for p in on_second), 15)
        assert all(parts()[p].leader == 1 for p in on_first), {p: parts()[p].leader for p in on_first}
        assert node1.alive()
        after = [(b"k%d" % i, b"after-%d" % i) for i in range(400)]
        clients.produce_confluent(c.bootstrap, topic_name, after, partition_of=lambda i: i % 4)
        got = clients.consume_all_confluent(c.bootstrap, topic_name, 4)
        assert sorted(v for _, _, _, v, _ in got) == sorted(v for _, v in before + after)
        described = subprocess.run([str(Path(__file__).resolve().parent.parent / "target" / "release" / "lantern-admin"),
                                    "--bootstrap-server", c.bootstrap, "--output", "json", "cluster", "describe"],
                                   capture_output=True, text=True, timeout=60)
        import json
        disks = {d["path"]: d["error"] for b in json.loads(described.stdout)["brokers"] if b["id"] == 1 for d in b["disks"]}
        assert disks == {str(node1.data_dirs[0]): None, str(second): "KAFKA_STORAGE_ERROR"}, disks
