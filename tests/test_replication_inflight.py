"""Claim (issue 13, "how it is shown to work", first point): with 3 brokers, a topic of
replication factor 3 and min.insync.replicas=2, idempotent producers (confluent-kafka and the
Java client, acks=all) write 50,000 records each while the leader of a partition is killed
with kill -9. Every acknowledged record is read back exactly once and in order per partition,
no send fails (the producers retry what the kill interrupted, and the new leader recognises
the retried batches as duplicates), and the killed broker restarts, rejoins every ISR and
UnderReplicatedPartitions returns to 0 on every broker.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import clients
from cluster import metadata, wait_for
from javacheck import CLIENTS, JAVA_DIR

TOPIC = "inflight"
PARTITIONS = 3
PER_PRODUCER = 50_000
KEYS = 60
# Each producer spreads its records over about 8 s, so the kill lands mid-stream.
RATE = 6_000
PROPS = {"replica.lag.time.max.ms": 4000, "offsets.topic.num.partitions": 3}
UNDER_REPLICATED = "kafka_server_replicamanager_underreplicatedpartitions"


def leaders_of(c) -> dict[int, int]:
    node = c.running_brokers()[0]
    return {i: pm.leader for i, pm in metadata(node, [TOPIC]).topics[TOPIC].partitions.items()}


def isr_of(c) -> dict[int, list[int]]:
    node = c.running_brokers()[0]
    return {i: sorted(pm.isr) for i, pm in metadata(node, [TOPIC]).topics[TOPIC].partitions.items()}


def confluent_producer(bootstrap: str, out: dict) -> None:
    """Keys c0..c59, values c-<i>; paced at RATE. Records the acknowledged values and every
    delivery error."""
    retries = [0]

    def stats(text):
        # librdkafka's statistics: requests it sent again, summed over brokers.
        retries[0] = max(retries[0], sum(b.get("txretries", 0) for b in json.loads(text)["brokers"].values()))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                  "statistics.interval.ms": 200, "stats_cb": stats})
    acked, errors = out.setdefault("acked", []), []

    def done(err, msg):
        if err is None:
            acked.append(msg.value())
        else:
            errors.append(f"{err.name()}: {err.str()} (retriable={err.retriable()})")

    t0 = time.monotonic()
    for i in range(PER_PRODUCER):
        wait = t0 + i / RATE - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        while True:
            try:
                p.produce(TOPIC, key=f"c{i % KEYS}".encode(), value=f"c-{i}".encode(), on_delivery=done)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(120)
    time.sleep(0.5)
    p.poll(0)  # a last statistics report
    out.update(errors=errors, unflushed=left, retries=retries[0])


def test_idempotent_producers_lose_nothing_when_the_leader_is_killed_mid_stream(cluster_factory, java_classpaths, tmp_path):
    c = cluster_factory(3, props=PROPS)
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})],
                        request_timeout=15)[TOPIC].result(20)
    clients.wait_topic(c.bootstrap, TOPIC, PARTITIONS)
    wait_for("every ISR full", lambda: all(v == [1, 2, 3] for v in isr_of(c).values()), 15)

    java_input = tmp_path / "java.tsv"
    java_input.write_text("".join(f"j{i % KEYS}\tj-{i}\n" for i in range(PER_PRODUCER)))
    java = subprocess.Popen(
        ["java", "-Xmx512m", f"-Dlog4j2.configurationFile={JAVA_DIR / 'log4j2.xml'}", "-cp",
         java_classpaths[CLIENTS["4.x"]], "LanternClientCheck", f"--bootstrap={c.bootstrap}", f"--topic={TOPIC}",
         "--mode=produce", f"--input={java_input}", f"--rate={RATE}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    java_err: list[str] = []
    java_started = threading.Event()

    def read_java_stderr():
        for line in java.stderr:
            java_err.append(line)
            if "producing" in line:
                java_started.set()

    threading.Thread(target=read_java_stderr, daemon=True).start()
    assert java_started.wait(60), "the Java producer did not start:\n" + "".join(java_err[-40:])
    result: dict = {}
    producer = threading.Thread(target=confluent_producer, args=(c.bootstrap, result))
    producer.start()

    # Both producers are writing: kill -9 the leader of partition 0 about 2.5 s in.
    time.sleep(2.5)
    victim = leaders_of(c)[0]
    c.kill9(victim)
    killed_at = time.monotonic()
    # Mid-stream: both producers are still writing (some records acknowledged, most not sent).
    acked_before = len(result.get("acked", []))
    assert 0 < acked_before < PER_PRODUCER // 2, f"confluent-kafka had {acked_before} records acknowledged at the kill"
    assert java.poll() is None, "the Java producer had already finished at the kill"
    print(f"killed broker {victim}, the leader of partition 0, with both producers writing")
    producer.join(240)
    assert not producer.is_alive(), "the confluent-kafka producer did not finish"
    out, _ = java.communicate(timeout=240)
    print(f"producers finished {time.monotonic() - killed_at:.1f}s after the kill")

    # No send failed: what the kill interrupted was retried and acknowledged.
    assert result["errors"] == [] and result["unflushed"] == 0, (result["errors"][:10], result["unflushed"])
    assert len(result["acked"]) == PER_PRODUCER
    lines = [ln for ln in out.splitlines() if ln.startswith("LANTERN_RESULT ")]
    assert java.returncode == 0 and lines, f"Java producer exited {java.returncode}:\n{out[-2000:]}\n{''.join(java_err[-60:])}"
    js = json.loads(lines[-1].split(" ", 1)[1])
    assert js["ok"] and js["acked"] == PER_PRODUCER, js
    java_retries = js["producer_metrics"].get("record-retry-total", 0)
    print(f"Java producer: {js['producer_metrics']}; confluent-kafka requests retried: {result['retries']}")
    # Requests in flight to the killed leader are sent again (counted as retries); a kill that
    # falls between two requests to it leaves only queued records, which wait for the new
    # leader and are not retries: so retries are reported, not required.

    # Every acknowledged record exactly once, and per key (so per partition and producer) in
    # the order sent.
    got = clients.consume_all_confluent(c.bootstrap, TOPIC, PARTITIONS)
    values = [v for _, _, _, v, _ in got]
    assert len(values) == len(set(values)), f"{len(values) - len(set(values))} records duplicated"
    sent = {f"c-{i}".encode() for i in range(PER_PRODUCER)} | {f"j-{i}".encode() for i in range(PER_PRODUCER)}
    assert set(values) == sent, f"missing {len(sent - set(values))}, unexpected {len(set(values) - sent)}"
    last: dict[tuple[int, bytes], int] = {}
    for p, o, k, v, _ in got:
        n = int(v.split(b"-")[1])
        assert n > last.get((p, k), -1), f"partition {p} key {k!r}: {v!r} after {last[(p, k)]}"
        last[(p, k)] = n
    for p in range(PARTITIONS):
        offsets = [o for q, o, _, _, _ in got if q == p]
        assert offsets == list(range(len(offsets))), f"partition {p} offsets have gaps"

    # The killed broker comes back, catches up, rejoins every ISR; nothing under-replicated.
    c.restart(victim)
    wait_for(f"broker {victim} back in every ISR", lambda: all(v == [1, 2, 3] for v in isr_of(c).values()), 60)
    wait_for("UnderReplicatedPartitions 0 on every broker",
             lambda: all(n.metric(UNDER_REPLICATED) == 0 for n in c.running_brokers()), 30)
