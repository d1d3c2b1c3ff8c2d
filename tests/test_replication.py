"""Claim (issue 13, first part): partitions are replicated. With replication factor 3 and
min.insync.replicas=2 on a 3-broker cluster, followers fetch from the leader (Fetch with
their replica id), every replica ends with the same records, acks=all is acknowledged once
the ISR has the batch, a killed leader's partition moves to an ISR member with no
acknowledged record lost, the restarted broker catches up and rejoins the ISR, and with two
of three brokers down acks=all gets NOT_ENOUGH_REPLICAS while acks=1 still works.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import clients
from cluster import describe_log_dirs, find_coordinator, metadata, wait_for
from cluster import log_end_offsets as all_log_end_offsets

TOPIC = "replicated"
PARTITIONS = 3
# Followers that stop fetching leave the ISR after this (Kafka's default is 30 s).
PROPS = {"replica.lag.time.max.ms": 4000, "offsets.topic.num.partitions": 3,
         "replica.high.watermark.checkpoint.interval.ms": 500}


def log_end_offsets(node, topic: str) -> dict[int, float]:
    return {p: v for (t, p), v in all_log_end_offsets(node).items() if t == topic}


def isr_of(c, topic: str) -> dict[int, list[int]]:
    node = c.running_brokers()[0]
    return {i: sorted(pm.isr) for i, pm in metadata(node, [topic]).topics[topic].partitions.items()}


def leaders_of(c, topic: str) -> dict[int, int]:
    node = c.running_brokers()[0]
    return {i: pm.leader for i, pm in metadata(node, [topic]).topics[topic].partitions.items()}


def produce(bootstrap: str, messages, acks="all", **conf):
    return clients.produce_confluent(bootstrap, TOPIC, messages, partition_of=lambda i: i % PARTITIONS,
                                     acks=acks, enable_idempotence=(acks == "all"), **conf)


def test_replicated_topic_survives_a_leader_kill_and_the_broker_rejoins(cluster_factory):
    c = cluster_factory(3, props=PROPS)
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})], request_timeout=15)[TOPIC].result(20)
    clients.wait_topic(c.bootstrap, TOPIC, PARTITIONS)
    assert all(v == [1, 2, 3] for v in isr_of(c, TOPIC).values()), isr_of(c, TOPIC)

    first = [(f"k{i}".encode(), f"first-{i}".encode()) for i in range(6000)]
    produce(c.bootstrap, first)
    # Every replica has every record: the log end offsets agree on all three brokers.
    expected = {p: float(len(range(p, len(first), PARTITIONS))) for p in range(PARTITIONS)}
    wait_for("every replica at the leader's log end",
             lambda: all(log_end_offsets(n, TOPIC) == expected for n in c.running_brokers()), 15)

    # kill -9 the leader of partition 0; acks=all goes on through the new leaders.
    victim = leaders_of(c, TOPIC)[0]
    c.kill9(victim)
    wait_for(f"partition 0 led by a survivor, ISR without {victim}",
             lambda: leaders_of(c, TOPIC)[0] not in (victim, -1) and victim not in isr_of(c, TOPIC)[0], 15)
    second = [(f"k{i}".encode(), f"second-{i}".encode()) for i in range(6000)]
    produce(c.bootstrap, second)

    got = clients.consume_all_confluent(c.bootstrap, TOPIC, PARTITIONS)
    values = sorted(v for _, _, _, v, _ in got)
    assert values == sorted(v for _, v in first + second), "acknowledged records lost or duplicated"
    for p in range(PARTITIONS):
        offsets = [o for q, o, _, _, _ in got if q == p]
        assert offsets == list(range(len(offsets))), f"partition {p} offsets have gaps"

    # The killed broker comes back, catches up and rejoins every ISR.
    c.restart(victim)
    wait_for(f"broker {victim} back in every ISR", lambda: all(victim in v for v in isr_of(c, TOPIC).values()), 30)
    # The metrics saw it: bytes replicated in and out, ISR expansions on the leaders.
    metrics = {n.node_id: n.metrics() for n in c.running_brokers()}
    total = lambda name: sum(m.get(name, 0) for m in metrics.values())  # noqa: E731
    assert total("kafka_server_brokertopicmetrics_replicationbytesin_total") > 0
    assert total("kafka_server_brokertopicmetrics_replicationbytesout_total") > 0
    assert total("kafka_server_replicamanager_isrexpands_total") >= 1
    ends = log_end_offsets(c.node(victim), TOPIC)
    leader_ends = {p: log_end_offsets(c.node(leaders_of(c, TOPIC)[p]), TOPIC)[p] for p in range(PARTITIONS)}
    assert ends == leader_ends, f"the restarted replica has {ends}, the leaders {leader_ends}"

    # DescribeLogDirs on every broker: each holds every replica, the same size everywhere,
    # caught up (lag 0); the fetcher's MaxLag agrees.
    views = {n.node_id: describe_log_dirs(n) for n in c.running_brokers()}
    sizes = {}
    for node_id, dirs in views.items():
        assert list(dirs) == [str(c.node(node_id).data_dirs[0])], dirs.keys()
        replicas = {k: v for d in dirs.values() for k, v in d.items() if k[0] == TOPIC}
        assert sorted(replicas) == [(TOPIC, p) for p in range(PARTITIONS)], (node_id, sorted(replicas))
        assert all(size > 0 and lag == 0 for size, lag in replicas.values()), (node_id, replicas)
        for k, (size, _) in replicas.items():
            sizes.setdefault(k, set()).add(size)
        assert c.node(node_id).metric('kafka_server_replicafetchermanager_maxlag{clientId="Replica"}') == 0
    assert all(len(v) == 1 for v in sizes.values()), f"replica sizes differ between brokers: {sizes}"

    # Every broker checkpoints its high watermarks in Kafka's replication-offset-checkpoint
    # format; all records are committed, so each is the log end.
    def checkpoint(n) -> dict[int, int]:
        lines = (n.data_dirs[0] / "replication-offset-checkpoint").read_text().splitlines()
        assert lines[0] == "0" and int(lines[1]) == len(lines) - 2, lines[:3]
        return {int(p): int(o) for t, p, o in (ln.split(" ") for ln in lines[2:]) if t == TOPIC}
    wait_for("checkpointed high watermarks at the log ends",
             lambda: all(checkpoint(n) == {p: int(v) for p, v in leader_ends.items()} for n in c.running_brokers()), 10)
    # ...and each replica its leader-epoch history (leader-epoch-checkpoint): the same on every
    # broker, epochs and start offsets increasing, partition 0's with the epoch of its new leader.
    def epochs(n, p) -> list[tuple[int, int]]:
        lines = (n.data_dirs[0] / f"{TOPIC}-{p}" / "leader-epoch-checkpoint").read_text().splitlines()
        assert lines[0] == "0" and int(lines[1]) == len(lines) - 2, lines
        return [tuple(map(int, ln.split(" "))) for ln in lines[2:]]
    for p in range(PARTITIONS):
        wait_for(f"partition {p}'s epoch checkpoints agree",
                 lambda p=p: len({tuple(epochs(n, p)) for n in c.running_brokers()}) == 1, 10)
        hist = epochs(c.running_brokers()[0], p)
        assert hist == sorted(hist) and len({e for e, _ in hist}) == len(hist), hist
    assert len(epochs(c.running_brokers()[0], 0)) >= 2, "partition 0 changed leader: two epochs with records"


def test_acks_all_needs_min_insync_replicas(cluster_factory):
    # Controller-only voters, so that two brokers down leave the metadata quorum whole.
    c = cluster_factory(3, props=PROPS, controllers=3)
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})], request_timeout=15)[TOPIC].result(20)
    clients.wait_topic(c.bootstrap, TOPIC, PARTITIONS)
    produce(c.bootstrap, [(b"k", b"warm-up")])
    survivor = 1
    for i in (2, 3):
        c.kill9(i)
    wait_for("the ISR down to the survivor", lambda: all(v == [survivor] for v in isr_of(c, TOPIC).values()), 15)
    # acks=all: refused with NOT_ENOUGH_REPLICAS (retries off, so the client reports the
    # broker's error rather than retrying it until its delivery timeout).
    p = Producer({"bootstrap.servers": c.node(survivor).bootstrap, "acks": "all", "retries": 0, "message.timeout.ms": 5000})
    errors = []
    p.produce(TOPIC, b"v", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, errors
    # acks=1 still works.
    reports = clients.produce_confluent(c.node(survivor).bootstrap, TOPIC, [(b"k", b"acks-1")], partition_of=lambda i: 0, acks=1)
    assert reports[0][1] >= 0


def test_a_former_leaders_unreplicated_tail_is_truncated_and_replicas_end_identical(cluster_factory):
    """Divergence (KIP-101): the leader appends records no follower has, is cut off (SIGSTOP),
    a new leader takes writes in a new epoch, the old one resumes as a follower: its tail is
    removed and every replica's segment file ends byte-identical."""
    c = cluster_factory(3, props=PROPS, controllers=3)
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 3, config={"min.insync.replicas": "2"})], request_timeout=15)[TOPIC].result(20)
    clients.wait_topic(c.bootstrap, TOPIC, 1)
    base = [(b"k", f"base-{i}".encode()) for i in range(500)]
    clients.produce_confluent(c.bootstrap, TOPIC, base, partition_of=lambda i: 0, acks="all")
    old = leaders_of(c, TOPIC)[0]
    followers = [b for b in (1, 2, 3) if b != old]
    wait_for("followers at the leader's end",
             lambda: all(log_end_offsets(c.node(b), TOPIC).get(0) == 500.0 for b in (1, 2, 3)), 15)

    # Followers paused (well within the 2 s session): the leader alone takes acks=1 records.
    for b in followers:
        c.node(b).sigstop()
    # A fetch a follower sent before it stopped may still be parked at the leader and would
    # carry the tail into its socket buffer: wait until the leader's Fetch purgatory is empty
    # (those long-polls, replica.fetch.wait.max.ms, have ended empty). A timer alone is not
    # enough: a leader slow to read the fetch off its socket parks it late (seen in CI).
    parked = 'kafka_server_delayedoperationpurgatory_purgatorysize{delayedOperation="Fetch"}'
    time.sleep(0.6)
    wait_for("no follower fetch parked at the leader",
             lambda: all(c.node(old).metric(parked) == 0.0 for _ in range(3)), 10, interval=0.1)
    tail = [(b"k", f"tail-{i}".encode()) for i in range(50)]
    clients.produce_confluent(c.node(old).bootstrap, TOPIC, tail, partition_of=lambda i: 0, acks=1, timeout=5)
    assert log_end_offsets(c.node(old), TOPIC)[0] == 550.0
    # Cut the leader off, bring the followers back: one of them takes over in a new epoch.
    c.node(old).sigstop()
    for b in followers:
        c.node(b).sigcont()
    wait_for("a follower leads partition 0", lambda: leaders_of(c, TOPIC)[0] in followers, 15)
    new = leaders_of(c, TOPIC)[0]
    # The scenario's premise: no follower got the tail (else there is nothing to truncate).
    assert log_end_offsets(c.node(new), TOPIC).get(0) == 500.0, {b: log_end_offsets(c.node(b), TOPIC) for b in followers}
    after = [(b"k", f"after-{i}".encode()) for i in range(200)]
    clients.produce_confluent(c.node(new).bootstrap, TOPIC, after, partition_of=lambda i: 0, acks="all")

    # The old leader resumes: it follows, truncates its tail and catches up.
    c.node(old).sigcont()
    wait_for(f"broker {old} back in the ISR", lambda: old in isr_of(c, TOPIC)[0], 30)
    wait_for("every replica at the new leader's end",
             lambda: all(log_end_offsets(c.node(b), TOPIC).get(0) == 700.0 for b in (1, 2, 3)), 15)
    files = {b: b"".join(f.read_bytes() for f in sorted(c.node(b).partition_dirs(TOPIC, 0)[0].glob("*.log"))) for b in (1, 2, 3)}
    assert files[old] == files[new] and files[followers[0]] == files[followers[1]], (
        f"segment bytes differ: sizes {({b: len(v) for b, v in files.items()})}")
    got = clients.consume_all_confluent(c.bootstrap, TOPIC, 1)
    values = [v for _, _, _, v, _ in got]
    assert values == [v for _, v in base + after], "the consumer sees the old leader's tail or misses records"


def test_controlled_shutdown_moves_leaders_away_without_losing_a_produce(cluster_factory):
    """SIGTERM of a broker that leads partitions under continuous acks=all produce: its
    leaderships move to in-sync followers before it stops (controlled shutdown), so
    deliveries pause far less than a session timeout (which is what a crash costs); the
    producer sees no failed delivery and every record is read back once."""
    import threading

    c = cluster_factory(3, props=PROPS)
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})], request_timeout=15)[TOPIC].result(20)
    clients.wait_topic(c.bootstrap, TOPIC, PARTITIONS)
    victim = leaders_of(c, TOPIC)[0]
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 1})
    delivered, failed = [], []

    def on_delivery(err, msg):
        (failed if err is not None else delivered).append((time.monotonic(), msg.partition(), msg.value()))

    sent = []
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            v = f"v-{i}".encode()
            p.produce(TOPIC, v, partition=0, on_delivery=on_delivery)  # partition 0: led by the victim
            sent.append(v)
            i += 1
            p.poll(0.002)

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(1.5)
    t_term = time.monotonic()
    code = c.terminate(victim)
    t_exit = time.monotonic()
    time.sleep(1.5)
    stop.set()
    t.join(10)
    assert p.flush(30) == 0
    assert code == 0, f"broker {victim} exited with {code}"
    assert "controlled shutdown complete" in c.node(victim).log_text(), c.node(victim).log_tail(30)
    assert not failed, f"{len(failed)} deliveries failed, first {failed[0]}"
    times = sorted(ts for ts, _, _ in delivered if ts >= t_term - 0.5)
    stall = max(b - a for a, b in zip(times, times[1:]))
    print(f"controlled shutdown of broker {victim}: exit after {t_exit - t_term:.2f}s, longest delivery gap {stall:.3f}s")
    # A crash would stall partition 0 for a session (2 s) plus an election.
    assert stall < 1.0, f"deliveries stalled {stall:.2f}s around the controlled shutdown"
    assert victim not in leaders_of(c, TOPIC).values()
    got = clients.consume_confluent(c.bootstrap, TOPIC, [0])
    assert sorted(v for _, _, _, v, _ in got) == sorted(sent), "records lost or duplicated"


def test_group_keeps_its_committed_offsets_when_its_coordinator_is_killed(cluster_factory):
    """__consumer_offsets replicated 3 ways: kill -9 the group's coordinator; the group's new
    coordinator (the new leader of its __consumer_offsets partition) has the commits, and a
    consumer resumes exactly where the group committed, skipping nothing."""
    from confluent_kafka import Consumer
    from cluster import find_coordinator, offsets_partition

    c = cluster_factory(3, props={**PROPS, "offsets.topic.replication.factor": 3})
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})], request_timeout=15)[TOPIC].result(20)
    clients.wait_topic(c.bootstrap, TOPIC, PARTITIONS)
    messages = [(f"k{i}".encode(), f"v-{i}".encode()) for i in range(3000)]
    produce(c.bootstrap, messages)
    group = "failover-group"
    conf = {"bootstrap.servers": c.bootstrap, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}

    first = Consumer(conf)
    first.subscribe([TOPIC])
    seen_first = []
    deadline = time.monotonic() + 60
    while len(seen_first) < 1500 and time.monotonic() < deadline:
        batch = [m for m in first.consume(200, 1.0) if m.error() is None]
        if batch:
            seen_first += [m.value() for m in batch]
            first.commit(asynchronous=False)
    first.close()
    assert len(seen_first) >= 1500

    err, coordinator, _ = find_coordinator(c.running_brokers()[0], group)
    assert err == 0
    c.kill9(coordinator)
    wait_for("a new leader of the group's __consumer_offsets partition",
             lambda: leaders_of_offsets(c, offsets_partition(group, 3)) not in (coordinator, -1), 15)

    second = Consumer(conf)
    second.subscribe([TOPIC])
    seen_second = []
    deadline = time.monotonic() + 60
    while len(seen_first) + len(seen_second) < len(messages) and time.monotonic() < deadline:
        seen_second += [m.value() for m in second.consume(500, 1.0) if m.error() is None]
    second.close()
    assert not set(seen_first) & set(seen_second), "the second consumer re-read committed records"
    assert sorted(seen_first + seen_second) == sorted(v for _, v in messages), "records skipped"


def leaders_of_offsets(c, partition: int) -> int:
    md = metadata(c.running_brokers()[0], ["__consumer_offsets"])
    return md.topics["__consumer_offsets"].partitions[partition].leader


def preferred_of(c, topic: str) -> dict[int, int]:
    node = c.running_brokers()[0]
    return {i: pm.replicas[0] for i, pm in metadata(node, [topic]).topics[topic].partitions.items()}


def test_preferred_leaders_come_back_by_elect_leaders_and_by_auto_rebalance(cluster_factory):
    """A restarted broker gets its preferred leaderships back: on request (ElectLeaders,
    confluent-kafka's elect_leaders) with auto rebalance off, and by the controller itself
    with auto.leader.rebalance.enable."""
    from confluent_kafka import ElectionType, TopicPartition

    for auto in (False, True):
        props = {**PROPS, "auto.leader.rebalance.enable": str(auto).lower(), "leader.imbalance.check.interval.seconds": 1}
        c = cluster_factory(3, props=props)
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3)], request_timeout=15)[TOPIC].result(20)
        clients.wait_topic(c.bootstrap, TOPIC, PARTITIONS)
        preferred = preferred_of(c, TOPIC)
        assert leaders_of(c, TOPIC) == preferred
        victim = preferred[0]
        c.kill9(victim)
        wait_for("partition 0 led elsewhere", lambda: leaders_of(c, TOPIC)[0] not in (victim, -1), 15)
        c.restart(victim)
        wait_for(f"broker {victim} back in the ISR", lambda: victim in isr_of(c, TOPIC)[0], 30)
        if auto:
            wait_for("the controller gives partition 0 back to its preferred leader",
                     lambda: leaders_of(c, TOPIC)[0] == victim, 15)
        else:
            time.sleep(2)
            assert leaders_of(c, TOPIC)[0] != victim, "leadership moved back with auto rebalance off"
            admin = AdminClient({"bootstrap.servers": c.bootstrap})
            result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(TOPIC, 0)]).result(20)
            assert result[TopicPartition(TOPIC, 0)] is None, result
            wait_for("partition 0 led by its preferred replica", lambda: leaders_of(c, TOPIC)[0] == victim, 10)
            again = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(TOPIC, 0)]).result(20)
            err = again[TopicPartition(TOPIC, 0)]
            assert err is not None and err.code() == 84, f"a second election: {err}"  # ELECTION_NOT_NEEDED
        assert leaders_of(c, TOPIC) == preferred
        c.stop()


def test_offsets_topic_waits_for_as_many_live_brokers_as_its_replication_factor(cluster_factory):
    # As Kafka: __consumer_offsets is not created with fewer live brokers than
    # offsets.topic.replication.factor; FindCoordinator answers COORDINATOR_NOT_AVAILABLE and
    # says why, and the topic is created with all its replicas once the brokers are back.
    c = cluster_factory(3, props={**PROPS, "offsets.topic.replication.factor": 3}, controllers=3)
    for i in (2, 3):
        assert c.terminate(i) == 0
    wait_for("brokers 2 and 3 gone from Metadata", lambda: sorted(metadata(c.node(1)).brokers) == [1], 15)
    err, node, msg = find_coordinator(c.node(1), "offsets-rf-group")
    assert err == 15 and node == -1, (err, node, msg)  # COORDINATOR_NOT_AVAILABLE
    assert "offsets.topic.replication.factor" in msg and "'1'" in msg and "'3'" in msg, msg
    assert "__consumer_offsets" not in metadata(c.node(1)).topics
    for i in (2, 3):
        c.restart(i)
    wait_for("FindCoordinator answered", lambda: find_coordinator(c.node(1), "offsets-rf-group")[0] == 0, 30)
    parts = metadata(c.node(1), ["__consumer_offsets"]).topics["__consumer_offsets"].partitions
    assert parts and all(sorted(p.replicas) == [1, 2, 3] for p in parts.values()), parts


def test_unclean_leader_election_only_where_the_topic_allows_it(cluster_factory):
    # Two brokers (1, 2) and controller-only voters. Each topic has replicas on both; broker 2
    # dies (the ISRs shrink to 1), then broker 1, the last ISR member: both topics offline.
    # Broker 2 comes back out of sync: the topic with unclean.leader.election.enable gets it
    # as leader (its ISR becomes {2}); the default topic stays offline, as Kafka.
    c = cluster_factory(2, props=PROPS, controllers=3)
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    topics = [NewTopic("unclean-on", 2, 2, config={"unclean.leader.election.enable": "true"}), NewTopic("unclean-off", 2, 2)]
    for f in admin.create_topics(topics, request_timeout=15).values():
        f.result(20)
    for t in ("unclean-on", "unclean-off"):
        clients.wait_topic(c.bootstrap, t, 2)
    c.kill9(2)
    node1 = c.node(1)

    def state(topic):
        return {i: (p.leader, sorted(p.isr)) for i, p in metadata(node1, [topic]).topics[topic].partitions.items()}

    wait_for("ISRs down to broker 1", lambda: all(v == (1, [1]) for t in ("unclean-on", "unclean-off") for v in state(t).values()), 15)
    c.kill9(1)
    c.restart(2)
    node2 = c.node(2)

    def state2(topic):
        return {i: (p.leader, sorted(p.isr)) for i, p in metadata(node2, [topic]).topics[topic].partitions.items()}

    wait_for("unclean-on led by broker 2", lambda: all(v == (2, [2]) for v in state2("unclean-on").values()), 20)
    assert all(v[0] == -1 for v in state2("unclean-off").values()), state2("unclean-off")
    active = c.wait_controller()
    assert c.node(active).metric("kafka_controller_controllerstats_uncleanleaderelections_total") == 2
    # Writable again on the unclean leader; the clean topic still refuses.
    reports = clients.produce_confluent(node2.bootstrap, "unclean-on", [(b"k", b"after")], partition_of=lambda i: 0, acks=1)
    assert reports[0][1] >= 0
    p = Producer({"bootstrap.servers": node2.bootstrap, "acks": 1, "message.timeout.ms": 3000})
    errors = []
    p.produce("unclean-off", b"v", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None, f"an offline partition took a write: {errors}"


def test_a_follower_behind_the_leaders_log_start_starts_over_there(cluster_factory):
    # A follower is down while the leader's retention deletes segments past the follower's
    # log end: on return it cannot fetch what it lacks (OFFSET_OUT_OF_RANGE below the
    # leader's log start), so it empties its log, restarts it at the leader's log start and
    # rejoins the ISR (Kafka's truncateFullyAndStartAt).
    c = cluster_factory(3, props={**PROPS, "log.retention.check.interval.ms": 500})
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("short", 1, 3, config={"segment.bytes": "16384", "retention.bytes": "32768"})],
                        request_timeout=15)["short"].result(20)
    clients.wait_topic(c.bootstrap, "short", 1)
    wait_for("full ISR", lambda: sorted(metadata(c.node(1), ["short"]).topics["short"].partitions[0].isr) == [1, 2, 3], 15)
    leader = metadata(c.node(1), ["short"]).topics["short"].partitions[0].leader
    follower = next(i for i in (1, 2, 3) if i != leader)
    start = lambda n: n.metric('kafka_log_log_logstartoffset{topic="short",partition="0"}')  # noqa: E731
    end = lambda n: n.metric('kafka_log_log_logendoffset{topic="short",partition="0"}')  # noqa: E731
    clients.produce_confluent(c.bootstrap, "short", [(b"k", b"a" * 500)] * 20, partition_of=lambda i: 0)
    wait_for("the follower caught up", lambda: end(c.node(follower)) == 20, 15)
    assert c.terminate(follower) == 0
    for _ in range(40):  # separate batches, so that segments roll and retention can delete them
        clients.produce_confluent(c.bootstrap, "short", [(b"k", b"b" * 500)] * 10, partition_of=lambda i: 0)
    wait_for("retention past the follower's log end", lambda: start(c.node(leader)) > 20, 20)
    c.restart(follower)
    wait_for(f"broker {follower} back in the ISR",
             lambda: follower in metadata(c.node(leader), ["short"]).topics["short"].partitions[0].isr, 30)
    f, l = c.node(follower), c.node(leader)
    assert end(f) == end(l) == 420, (end(f), end(l))
    assert start(f) > 20, f"the follower kept its old log (starts at {start(f)})"
    assert "emptying it to fetch from there" in f.log_text()
