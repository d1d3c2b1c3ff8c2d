"""Thin helpers around the real Kafka clients used by the tests: confluent-kafka
(librdkafka), kafka-python and the kcat command-line tool (Debian's librdkafka 2.0.2,
or the newer librdkafka bundled in the confluent-kafka wheel)."""

from __future__ import annotations

import collections
import glob
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

# Errors a librdkafka consumer may report while working normally (connection churn);
# everything else makes the consume helpers fail loudly with the client's error text.
TRANSIENT_CONSUMER_ERRORS = {KafkaError._PARTITION_EOF, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}


# ------------------------------------------------------------------ messages
_ALPHABET = "".join(random.Random(42).choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
                    for _ in range(512))


def keyed_messages(n: int, n_keys: int = 1000) -> list[tuple[bytes, bytes]]:
    """n (key, value) pairs; key k<i % n_keys>; values unique, containing the key,
    the per-key sequence number and the global index, plus a variable-length filler.
    Only [A-Za-z0-9|._-] so the text formats of kcat can carry them."""
    out = []
    seq = [0] * n_keys
    for i in range(n):
        k = i % n_keys
        s = seq[k]
        seq[k] += 1
        start = (i * 7) % 256
        filler = _ALPHABET[start:start + (i % 97)]
        out.append((f"k{k}".encode(), f"k{k}|{s:06d}|{i:07d}|{filler}".encode()))
    return out


def first_diff(a: list, b: list) -> str:
    """Describe where two sequences first differ (for assertion messages)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"index {i}: got {x!r}, expected {y!r}"
    return f"lengths differ: got {len(a)}, expected {len(b)}" if len(a) != len(b) else "equal"


def seq_of(value: bytes) -> int:
    return int(value.split(b"|", 2)[1])


def check_roundtrip(sent: list[tuple[bytes, bytes]], received: list[tuple[int, int, bytes, bytes]]):
    """Check that `received` ((partition, offset, key, value) in consumption order) holds
    exactly the `sent` messages: byte-exact, no loss, no duplicates, per-key order kept,
    and each partition's offsets contiguous from 0."""
    sent_key_of = {v: k for k, v in sent}
    assert len(sent_key_of) == len(sent), "test bug: sent values are not unique"
    got_values = collections.Counter(v for _, _, _, v in received)
    dups = [v for v, c in got_values.items() if c > 1]
    missing = [v for v in sent_key_of if v not in got_values]
    extra = [v for v in got_values if v not in sent_key_of]
    assert not dups, f"{len(dups)} messages were received more than once, e.g. {dups[:3]}"
    assert not extra, f"{len(extra)} received values were never sent (corrupted?), e.g. {extra[:3]}"
    assert not missing, f"{len(missing)} of {len(sent)} sent messages were never received, e.g. {missing[:3]}"
    assert len(received) == len(sent), f"received {len(received)} messages, sent {len(sent)}"

    bad_keys = [(k, v) for _, _, k, v in received if sent_key_of[v] != k]
    assert not bad_keys, f"{len(bad_keys)} messages came back with a different key, e.g. {bad_keys[:3]}"

    by_partition = collections.defaultdict(list)
    for p, o, k, v in received:
        by_partition[p].append((o, k, v))
    key_partition = {}
    per_key = collections.defaultdict(list)
    for p, rows in sorted(by_partition.items()):
        rows.sort()
        offsets = [o for o, _, _ in rows]
        assert offsets == list(range(len(offsets))), (
            f"partition {p}: offsets are not 0..{len(offsets) - 1} without gaps/duplicates; "
            f"first mismatch at index {next(i for i, o in enumerate(offsets) if o != i)}"
        )
        for _, k, v in rows:
            if key_partition.setdefault(k, p) != p:
                raise AssertionError(f"key {k!r} found in partitions {key_partition[k]} and {p}")
            per_key[k].append(seq_of(v))
    unordered = {k: s for k, s in per_key.items() if s != sorted(s)}
    assert not unordered, (
        f"per-key order broken for {len(unordered)} keys, e.g. {next(iter(unordered))!r}: "
        f"seqs in offset order {next(iter(unordered.values()))[:20]}..."
    )


# ------------------------------------------------------------ confluent-kafka
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, topic: str, partitions: int, config: dict | None = None,
                 timeout: float = 30.0) -> None:
    a = admin(bootstrap)
    futs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                     config={k: str(v) for k, v in (config or {}).items()})],
                           operation_timeout=timeout, request_timeout=timeout)
    futs[topic].result(timeout=timeout)
    wait_topic(bootstrap, topic, partitions, timeout=timeout)


def wait_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0) -> None:
    """Wait until Metadata shows `topic` with `partitions` partitions, each with a leader."""
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            md = a.list_topics(topic, timeout=5)
            t = md.topics.get(topic)
            last = t
            if t is not None and t.error is None and len(t.partitions) == partitions and \
                    all(pm.leader >= 0 and pm.error is None for pm in t.partitions.values()):
                return
        except KafkaException as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"topic {topic} not ready with {partitions} partitions after {timeout}s: {last!r}")


def topic_partition_count(bootstrap: str, topic: str) -> int:
    md = admin(bootstrap).list_topics(topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, f"metadata error for {topic}: {t.error}"
    return len(t.partitions)


def producer(bootstrap: str, **conf) -> Producer:
    c = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5}
    c.update({k.replace("_", "."): v for k, v in conf.items()})
    return Producer(c)


def produce_confluent(bootstrap: str, topic: str, messages, *, partition_of=None, timestamp_of=None,
                      flush_every: int | None = None, timeout: float = 120.0, **conf) -> list:
    """Produce `messages` ((key, value) pairs) and wait for every delivery report.
    Returns the delivery reports as (partition, offset) in send order; fails with the
    client's error if any delivery failed."""
    p = producer(bootstrap, **conf)
    reports = [None] * len(messages)
    errors = []

    def cb_for(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                reports[i] = (msg.partition(), msg.offset())
        return cb

    for i, (k, v) in enumerate(messages):
        kw = {}
        if partition_of is not None:
            kw["partition"] = partition_of(i)
        if timestamp_of is not None:
            kw["timestamp"] = timestamp_of(i)
        while True:
            try:
                p.produce(topic, value=v, key=k, on_delivery=cb_for(i), **kw)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if flush_every and (i + 1) % flush_every == 0:
            _flush(p, timeout)
    _flush(p, timeout)
    assert not errors, f"{len(errors)} deliveries failed, first: message #{errors[0][0]}: {errors[0][1]}"
    undelivered = sum(1 for r in reports if r is None)
    assert undelivered == 0, f"{undelivered} messages have no delivery report"
    return reports


def _flush(p: Producer, timeout: float) -> None:
    left = p.flush(timeout)
    assert left == 0, f"{left} messages still undelivered after flush({timeout}s)"


def consumer(bootstrap: str, **conf) -> Consumer:
    c = {
        "bootstrap.servers": bootstrap,
        "group.id": "lantern-tests",  # required by confluent-kafka; only assign() is used
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    }
    c.update(conf)
    return Consumer(c)


def watermarks(bootstrap: str, topic: str, partition: int, timeout: float = 10.0) -> tuple[int, int]:
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
    finally:
        c.close()


def consume_confluent(bootstrap: str, topic: str, partitions: list[int], *, start: dict | None = None,
                      end: dict | None = None, timeout: float = 120.0, **conf) -> list:
    """Assign `partitions` (from `start[p]`, default beginning) and read until each
    partition's position reaches `end[p]` (default: its high watermark when we start).
    Returns (partition, offset, key, value, timestamp) tuples in arrival order."""
    c = consumer(bootstrap, **conf)
    try:
        if end is None:
            end = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                   for p in partitions}
        start = start or {}
        c.assign([TopicPartition(topic, p, start.get(p, -2)) for p in partitions])  # -2 = beginning
        pos = {p: start.get(p, 0) for p in partitions}
        out = []
        deadline = time.monotonic() + timeout
        while any(pos[p] < end[p] for p in partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s consuming {topic}: positions {pos}, "
                                     f"targets {end}, {len(out)} messages so far")
            for m in c.consume(num_messages=10000, timeout=0.5):
                if m.error():
                    if m.error().code() in TRANSIENT_CONSUMER_ERRORS:
                        continue
                    raise AssertionError(f"consumer error on {topic}: {m.error()}")
                out.append((m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1]))
                pos[m.partition()] = m.offset() + 1
        return out
    finally:
        c.close()


def consume_all_confluent(bootstrap: str, topic: str, n_partitions: int, **kw) -> list:
    return consume_confluent(bootstrap, topic, list(range(n_partitions)), **kw)


# --------------------------------------------------------------- kafka-python
def kp_codec(codec: str):
    return None if codec == "none" else codec


def create_topic_kafka_python(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        a.create_topics([KNewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        a.close()
    wait_topic(bootstrap, topic, partitions)


def produce_kafka_python(bootstrap: str, topic: str, messages, *, codec: str = "none",
                         partition_of=None, timestamp_of=None, flush_every: int | None = None,
                         timeout: float = 180.0, **conf) -> list:
    from kafka import KafkaProducer
    cfg = dict(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=64 * 1024,
               compression_type=kp_codec(codec))
    cfg.update(conf)
    p = KafkaProducer(**cfg)
    futures = []
    try:
        for i, (k, v) in enumerate(messages):
            kw = {}
            if partition_of is not None:
                kw["partition"] = partition_of(i)
            if timestamp_of is not None:
                kw["timestamp_ms"] = timestamp_of(i)
            futures.append(p.send(topic, key=k, value=v, **kw))
            if flush_every and (i + 1) % flush_every == 0:
                p.flush(timeout=timeout)
        p.flush(timeout=timeout)
        reports, errors = [], []
        for i, f in enumerate(futures):
            if not f.is_done:
                errors.append((i, "not delivered after flush"))
                continue
            if f.failed():
                errors.append((i, repr(f.exception)))
                continue
            md = f.value
            reports.append((md.partition, md.offset))
        assert not errors, f"{len(errors)} kafka-python sends failed, first: #{errors[0][0]}: {errors[0][1]}"
        return reports
    finally:
        p.close(timeout=10)


def kp_consumer(bootstrap: str, **conf):
    from kafka import KafkaConsumer
    cfg = dict(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
               auto_offset_reset="earliest", consumer_timeout_ms=1000)
    cfg.update(conf)
    return KafkaConsumer(**cfg)


def consume_kafka_python(bootstrap: str, topic: str, partitions: list[int], *, start: dict | None = None,
                         timeout: float = 180.0, **conf) -> list:
    from kafka import TopicPartition as KTP
    c = kp_consumer(bootstrap, **conf)
    try:
        tps = [KTP(topic, p) for p in partitions]
        end = c.end_offsets(tps)
        c.assign(tps)
        start = start or {}
        for tp in tps:
            if tp.partition in start:
                c.seek(tp, start[tp.partition])
            else:
                c.seek_to_beginning(tp)
        pos = {p: start.get(p, 0) for p in partitions}
        out = []
        deadline = time.monotonic() + timeout
        while any(pos[tp.partition] < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"kafka-python timed out after {timeout}s consuming {topic}: "
                                     f"positions {pos}, targets {end}, {len(out)} so far")
            batch = c.poll(timeout_ms=500, max_records=10000)
            for tp, recs in batch.items():
                for r in recs:
                    out.append((r.partition, r.offset, r.key, r.value, r.timestamp))
                    pos[r.partition] = r.offset + 1
        return out
    finally:
        c.close()


# ---------------------------------------------------------------------- kcat
KCAT = shutil.which("kcat") or "/usr/bin/kcat"


def bundled_librdkafka() -> Path:
    """The librdkafka shared object that the confluent-kafka wheel bundles
    (site-packages/confluent_kafka.libs/librdkafka-<hash>.so.1)."""
    import confluent_kafka
    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(glob.glob(str(libs / "librdkafka*.so*")))
    assert found, f"no librdkafka*.so* in {libs}: has the confluent-kafka wheel changed layout?"
    return Path(found[0])


_BUNDLED_LIBDIR = None


def kcat_env(variant: str) -> dict:
    """Environment to run kcat with: 'debian' = the system librdkafka (2.0.2),
    'bundled' = the newer librdkafka from the confluent-kafka wheel via LD_LIBRARY_PATH."""
    global _BUNDLED_LIBDIR
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    if variant == "bundled":
        if _BUNDLED_LIBDIR is None:
            d = Path(tempfile.mkdtemp(prefix="lantern-rdkafka-"))
            (d / "librdkafka.so.1").symlink_to(bundled_librdkafka())
            _BUNDLED_LIBDIR = d
        env["LD_LIBRARY_PATH"] = str(_BUNDLED_LIBDIR)
    else:
        assert variant == "debian", variant
    return env


def kcat_librdkafka_version(variant: str) -> str:
    r = subprocess.run([KCAT, "-V"], env=kcat_env(variant), capture_output=True, timeout=30)
    text = (r.stdout + r.stderr).decode("utf-8", "replace")
    m = re.search(r"librdkafka ([0-9][0-9.]*)", text)
    assert m, f"cannot find the librdkafka version in `kcat -V` output:\n{text}"
    return m.group(1)


def kcat(variant: str, args: list[str], *, input_bytes: bytes | None = None, stdin=None,
         timeout: float = 180.0) -> subprocess.CompletedProcess:
    r = subprocess.run([KCAT, *args], env=kcat_env(variant), input=input_bytes,
                       stdin=stdin if input_bytes is None else None,
                       capture_output=True, timeout=timeout)
    assert r.returncode == 0, (
        f"kcat {' '.join(args)} exited {r.returncode}; stderr:\n{r.stderr.decode('utf-8', 'replace')[-4000:]}"
    )
    return r


def kcat_produce(variant: str, bootstrap: str, topic: str, messages, codec: str, *,
                 partition: int | None = None, extra: list[str] | None = None) -> subprocess.CompletedProcess:
    """Produce 'key:value' lines through `kcat -P -K:`. kcat waits for all deliveries
    before exiting; delivery failures go to stderr, which is checked too."""
    data = b"".join(k + b":" + v + b"\n" for k, v in messages)
    args = ["-P", "-b", bootstrap, "-t", topic, "-K:", "-z", codec, "-X", "acks=all"]
    if partition is not None:
        args += ["-p", str(partition)]
    args += extra or []
    r = kcat(variant, args, input_bytes=data)
    err = r.stderr.decode("utf-8", "replace")
    assert "Delivery failed" not in err and "% ERROR" not in err, f"kcat produce reported failures:\n{err[-4000:]}"
    return r


def kcat_consume(variant: str, bootstrap: str, topic: str, *, partition: int | None = None,
                 offset: str = "beginning", count: int | None = None, extra: list[str] | None = None,
                 timeout: float = 180.0) -> list[tuple[int, int, bytes, bytes]]:
    """Consume to the end (-e) and return (partition, offset, key, value) tuples."""
    args = ["-C", "-b", bootstrap, "-t", topic, "-o", offset, "-e", "-q", "-f", "%p\t%o\t%k\t%s\n"]
    if partition is not None:
        args += ["-p", str(partition)]
    if count is not None:
        args += ["-c", str(count)]
    args += extra or []
    r = kcat(variant, args, timeout=timeout)
    out = []
    for line in r.stdout.split(b"\n"):
        if not line:
            continue
        p, o, k, v = line.split(b"\t", 3)
        out.append((int(p), int(o), k, v))
    return out
