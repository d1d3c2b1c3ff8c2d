"""Claim: a segment whose tail is torn or garbage (crash mid-write, disk junk) is repaired
at start-up: the log is truncated to the end of the last complete, valid batch, every
complete message stays readable, the garbage is never served, new messages continue
right after the valid data, and the broker says on stderr that it truncated."""

import random
import struct

import pytest

import clients
from lantern import batch_crc_ok, read_batches

N = 1000
PER_BATCH = 100


def _corrupt_garbage(path, batches):
    with open(path, "ab") as f:
        f.write(random.Random(1234).randbytes(1000))
    return N


def _corrupt_half_batch(path, batches):
    last = batches[-1]
    with open(path, "r+b") as f:
        f.truncate(last.pos + last.total_size // 2)
    return last.base_offset


def _corrupt_bad_crc(path, batches):
    """A complete-looking batch (copy of the last one, next offset) with one flipped byte."""
    last = batches[-1]
    data = bytearray(path.read_bytes()[last.pos:last.end])
    struct.pack_into(">q", data, 0, N)
    data[-3] ^= 0xFF
    with open(path, "ab") as f:
        f.write(bytes(data))
    return N


def _corrupt_zeros(path, batches):
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)
    return N


CASES = {
    "random-garbage-appended": _corrupt_garbage,
    "last-batch-cut-in-half": _corrupt_half_batch,
    "appended-batch-with-bad-crc": _corrupt_bad_crc,
    "zeros-appended": _corrupt_zeros,
}


def _value(i):
    return f"torn-{i:05d}".encode()


def _check_segments_clean(broker, topic):
    for seg in broker.segment_files(topic, 0):
        batches = read_batches(seg)
        size = seg.stat().st_size
        covered = batches[-1].end if batches else 0
        assert covered == size, f"{seg.name}: {size - covered} bytes after the last complete batch remain on disk"
        bad = [b for b in batches if not batch_crc_ok(seg, b)]
        assert not bad, f"{seg.name}: batches with a bad CRC remain on disk: {bad[:3]}"


@pytest.mark.parametrize("case", list(CASES))
def test_torn_tail_is_truncated(broker_factory, topic_name, case):
    broker = broker_factory()
    clients.create_topic(broker.bootstrap, topic_name, 1)
    clients.produce_confluent(broker.bootstrap, topic_name, [(None, _value(i)) for i in range(N)],
                              partition_of=lambda _i: 0, flush_every=PER_BATCH, **{"linger.ms": 100})
    assert broker.terminate() == 0, "SIGTERM should give exit code 0"

    segs = broker.segment_files(topic_name, 0)
    assert segs, f"no .log segment in {broker.partition_dir(topic_name, 0)}"
    active = segs[-1]
    batches = read_batches(active)
    assert batches and batches[-1].end == active.stat().st_size and batches[-1].next_offset == N, (
        f"precondition: {active} should hold complete batches up to offset {N}: {batches[-3:]}, "
        f"size {active.stat().st_size}")
    assert batches[-1].record_count > 1, "precondition: the last batch should hold several records"

    expected_end = CASES[case](active, batches)
    log_before = len(broker.log_text())
    broker.start()

    low, high = clients.watermarks(broker.bootstrap, topic_name, 0)
    assert (low, high) == (0, expected_end), (
        f"after recovery the log should span [0, {expected_end}), watermarks are [{low}, {high})")
    got = clients.consume_all_confluent(broker.bootstrap, topic_name, 1)
    assert [o for _, o, *_ in got] == list(range(expected_end)), "offsets after recovery are not 0..end-1"
    wrong = [(o, v) for _, o, _, v, _ in got if v != _value(o)]
    assert not wrong, f"{len(wrong)} records differ from what was produced, e.g. {wrong[:3]}"

    # New writes land right after the valid data and nothing from the garbage shows up.
    extra = [(None, f"after-{i}".encode()) for i in range(10)]
    reports = clients.produce_confluent(broker.bootstrap, topic_name, extra, partition_of=lambda _i: 0)
    assert [o for _, o in reports] == list(range(expected_end, expected_end + 10)), (
        f"offsets of messages produced after recovery: {[o for _, o in reports]}, expected from {expected_end}")
    tail = clients.consume_confluent(broker.bootstrap, topic_name, [0], start={0: max(0, expected_end - 5)})
    assert [v for *_, v, _ in tail] == [_value(i) for i in range(max(0, expected_end - 5), expected_end)] + \
        [v for _, v in extra], f"records around the repaired tail: {[(o, v) for _, o, _, v, _ in tail]}"

    recovery_log = broker.log_text()[log_before:]
    assert "truncat" in recovery_log.lower(), (
        f"the broker's stderr should mention the truncation; it printed:\n{recovery_log[-3000:]}")

    assert broker.terminate() == 0
    _check_segments_clean(broker, topic_name)
