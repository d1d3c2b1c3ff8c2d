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
from cluster import metadata, wait_for

TOPIC = "replicated"
PARTITIONS = 3
# Followers that stop fetching leave the ISR after this (Kafka's default is 30 s).
PROPS = {"replica.lag.time.max.ms": 4000, "offsets.topic.num.partitions": 3}


def log_end_offsets(node, topic: str) -> dict[int, float]:
    m = node.metrics()
    out = {}
    for k, v in m.items():
        if k.startswith("kafka_log_log_logendoffset{") and f'topic="{topic}"' in k:
            p = int(k.split('partition="')[1].split('"')[0])
            out[p] = v
    return out


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
    ends = log_end_offsets(c.node(victim), TOPIC)
    leader_ends = {p: log_end_offsets(c.node(leaders_of(c, TOPIC)[p]), TOPIC)[p] for p in range(PARTITIONS)}
    assert ends == leader_ends, f"the restarted replica has {ends}, the leaders {leader_ends}"


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
