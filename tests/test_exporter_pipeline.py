"""Claim: lantern-exporter's log pipeline tails the broker's JSON log and request log through
partial lines, rename+create rotation, truncation and its own kill -9, and
- its derived counters on /metrics equal the exact counts of the input (no line lost, none
  counted twice);
- every event reaches the log topic at least once (checked with confluent-kafka, by a unique
  id embedded in each line), also when the broker was down for a while (the exporter keeps
  serving metrics meanwhile, with a bounded spool);
- `lantern-exporter logs` reads the topic back and counts and filters correctly.

The input is built from real lines: a real broker is run with --log-format json and
--request-log, real clients talk to it, and its lines are used verbatim and as templates for a
known mix of levels, loggers, APIs, errors, clients and latencies.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import clients
from lantern import REPO_ROOT, _killpg, free_port

EXPORTER_BIN = Path(os.environ.get("LANTERN_EXPORTER_BIN", REPO_ROOT / "target" / "release" / "lantern-exporter"))
TOPIC = "__lantern_logs"
BUCKETS = ["0.5", "1", "2.5", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "+Inf"]
LEVELS = ["INFO", "WARN", "ERROR", "DEBUG"]
LOGGERS = ["kafka.server.KafkaServer", "kafka.log.LogManager", "state.change.logger", "kafka.log.LogCleaner",
           "kafka.coordinator.group.GroupCoordinator", "kafka.network.Processor"]
APIS = ["Produce", "FetchConsumer", "Metadata", "ApiVersions", "ListOffsets"]
ERRORS = ["UNKNOWN_TOPIC_OR_PARTITION", "NOT_LEADER_OR_FOLLOWER", "REQUEST_TIMED_OUT"]
CLIENTS = [("rdkafka", "librdkafka", "2.0.2"), ("console-producer", "apache-kafka-java", "3.9.0"),
           ("app-1", "confluent-kafka-python", "2.3.0"), ("", "unknown", "unknown")]
TIMES_MS = [0.1, 0.5, 0.7, 1.0, 3.3, 7.0, 12.0, 42.0, 99.0, 180.0, 420.0, 777.0, 1500.0, 4000.0, 9000.0]
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


# ----------------------------------------------------------------- the exporter process
class Exporter:
    def __init__(self, workdir: Path, args: list[str]):
        self.workdir = workdir
        self.port = free_port()
        self.args = [f"--web.listen-address=127.0.0.1:{self.port}", "--collector.disable-defaults",
                     f"--pipeline.checkpoint={workdir / 'exporter.checkpoint'}",
                     "--pipeline.poll-interval-ms=50", "--pipeline.host=test-host", "--pipeline.broker-id=1", *args]
        self.log_path = workdir / "exporter.stderr.log"
        self.proc = None

    def start(self) -> "Exporter":
        assert EXPORTER_BIN.exists(), f"{EXPORTER_BIN} missing: cargo build --release --workspace"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([str(EXPORTER_BIN), *self.args], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.workdir)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"exporter exited: {self.log_path.read_text()[-3000:]}"
            try:
                self.metrics()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("exporter did not serve /metrics within 15s")

    def metrics_text(self) -> str:
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metrics(self) -> dict:
        """{(name, frozenset(labels)): value} of every lantern_* sample."""
        out = {}
        for line in self.metrics_text().splitlines():
            m = SAMPLE_RE.match(line)
            if m and m.group(1).startswith("lantern_"):
                labels = frozenset((k, v.replace('\\"', '"').replace("\\\\", "\\")) for k, v in LABEL_RE.findall(m.group(2) or ""))
                out[(m.group(1), labels)] = float(m.group(3))
        return out

    def kill9(self) -> None:
        _killpg(self.proc)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _killpg(self.proc)
            self.proc.wait()


@pytest.fixture
def exporters():
    started: list[Exporter] = []
    yield started
    for e in started:
        e.stop()


def value(m: dict, name: str, **labels) -> float:
    return m.get((name, frozenset(labels.items())), 0.0)


def family(m: dict, name: str) -> dict:
    """{frozenset(labels): value} of one family's samples."""
    return {labels: v for (n, labels), v in m.items() if n == name}


def wait_for(what: str, cond, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except OSError as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last})")


# ----------------------------------------------------------------- real lines as templates
def real_broker_lines(broker_factory, tmp_path) -> tuple[list[dict], list[dict]]:
    """Runs a real broker with JSON logs and the request log, drives real clients against it,
    and returns (JSON log lines, request log lines) it wrote."""
    rl = tmp_path / "real-request.log"
    b = broker_factory(name="templates", extra_args=["--log-format", "json", f"--request-log={rl}"])
    clients.produce_confluent(b.bootstrap, "templates", [(b"k", b"v%d" % i) for i in range(5)])
    clients.consume_all_confluent(b.bootstrap, "templates", 1)
    subprocess.run(["kcat", "-b", b.bootstrap, "-t", "no-such-topic", "-C", "-p", "3", "-e", "-o", "beginning"],
                   capture_output=True, timeout=30)
    wait_for("request log lines", lambda: rl.exists() and len(rl.read_text().splitlines()) >= 8)
    b.terminate()
    log_lines = [json.loads(l) for l in b.log_text().splitlines() if l.startswith("{")]
    req_lines = [json.loads(l) for l in rl.read_text().splitlines()]
    assert len(log_lines) >= 5 and all("level" in l and "target" in l for l in log_lines), log_lines[:3]
    assert req_lines and all("apiName" in r for r in req_lines)
    return log_lines, req_lines


class Expected:
    """The exact counts the pipeline must derive from what was written."""

    def __init__(self):
        self.events = collections.Counter()          # (level, logger)
        self.invalid = collections.Counter()          # file
        self.lines = collections.Counter()            # file
        self.requests = collections.Counter()         # api
        self.errors = collections.Counter()           # (api, error)
        self.req_bytes = collections.Counter()
        self.resp_bytes = collections.Counter()
        self.buckets = collections.Counter()          # (api, le)
        self.time_sum = collections.Counter()
        self.client_requests = collections.Counter()  # (id, name, version)
        self.client_bytes = collections.Counter()     # (id, name, direction)
        self.ids: set[str] = set()
        self.times: list[float] = []                  # totalTimeMs of every request line
        self.levels = collections.Counter()           # what `logs --count-by level` must say


class LogWriter:
    """Writes broker-log and request-log lines built from real templates, recording what the
    pipeline must count."""

    def __init__(self, exp: Expected, log_templates: list[dict], req_templates: list[dict]):
        self.exp, self.log_templates, self.req_templates = exp, log_templates, req_templates
        self.n = 0
        self.real_log_left = list(log_templates)
        self.real_req_left = list(req_templates)

    def _uid(self, kind: str) -> str:
        self.n += 1
        uid = f"{kind}-{self.n:07d}"
        self.exp.ids.add(uid)
        return uid

    def broker_line(self, file_label: str) -> str:
        """A real line verbatim first (with an id added), then template-based ones in a known mix."""
        if self.real_log_left:
            d = dict(self.real_log_left.pop(0))
        else:
            t = self.log_templates[self.n % len(self.log_templates)]
            d = dict(t, level=LEVELS[self.n % len(LEVELS)], target=LOGGERS[(self.n // 4) % len(LOGGERS)],
                     message=f"synthetic event {self.n}")
        d["test_id"] = self._uid("log")
        self.exp.events[(d["level"], d["target"])] += 1
        self.exp.levels[d["level"]] += 1
        self.exp.lines[file_label] += 1
        return json.dumps(d) + "\n"

    def invalid_line(self, file_label: str) -> str:
        self.exp.invalid[file_label] += 1
        self.exp.lines[file_label] += 1
        self.exp.levels["(none)"] += 1
        return f"this is not json {self.n} {{\n"

    def request_line(self, file_label: str) -> str:
        if self.real_req_left:
            d = json.loads(json.dumps(self.real_req_left.pop(0)))
        else:
            d = json.loads(json.dumps(self.req_templates[self.n % len(self.req_templates)]))
            i = self.n
            cid, sw, ver = CLIENTS[i % len(CLIENTS)]
            d["apiName"] = APIS[i % len(APIS)]
            d["requestHeader"]["clientId"] = cid
            d["requestHeader"]["correlationId"] = i
            d["clientInformation"] = {"softwareName": sw, "softwareVersion": ver}
            d["totalTimeMs"] = TIMES_MS[(i // 3) % len(TIMES_MS)]
            d["requestBytes"] = 100 + i % 37
            d["responseBytes"] = 50 + i % 11
            d["errorCodes"] = {"NONE": 1}
            if i % 7 == 0:
                d["errorCodes"][ERRORS[i % len(ERRORS)]] = 1 + i % 3
        d["test_id"] = self._uid("req")
        e, api = self.exp, d["apiName"]
        cid, sw, ver = d["requestHeader"]["clientId"], d["clientInformation"]["softwareName"], d["clientInformation"]["softwareVersion"]
        e.requests[api] += 1
        for err, n in d["errorCodes"].items():
            if err != "NONE":
                e.errors[(api, err)] += n
        e.req_bytes[api] += d["requestBytes"]
        e.resp_bytes[api] += d["responseBytes"]
        for le in BUCKETS:
            if le == "+Inf" or d["totalTimeMs"] <= float(le):
                e.buckets[(api, le)] += 1
        e.time_sum[api] += d["totalTimeMs"]
        e.times.append(d["totalTimeMs"])
        e.client_requests[(cid, sw, ver)] += 1
        e.client_bytes[(cid, sw, "in")] += d["requestBytes"]
        e.client_bytes[(cid, sw, "out")] += d["responseBytes"]
        e.lines[file_label] += 1
        e.levels["(none)"] += 1
        return json.dumps(d) + "\n"


def append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def append_slowly(path: Path, text: str, piece: int = 7919, pause: float = 0.004) -> threading.Thread:
    """Appends `text` in pieces cut anywhere (mid-line too) from a thread, as a live broker
    writes: the exporter sees partial lines and a file that keeps growing."""
    def run():
        with open(path, "a") as f:
            for i in range(0, len(text), piece):
                f.write(text[i:i + piece])
                f.flush()
                time.sleep(pause)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def assert_metrics_equal(m: dict, exp: Expected) -> None:
    def same(name, got: dict, want: dict):
        got = {k: v for k, v in got.items() if v != 0}  # configured files have 0-valued series
        want = {k: float(v) for k, v in want.items()}
        assert got == pytest.approx(want), f"{name}: got {sorted(got.items())[:20]}\nwant {sorted(want.items())[:20]}"

    same("lantern_log_events_total", family(m, "lantern_log_events_total"),
         {frozenset({("level", l), ("logger", g)}): n for (l, g), n in exp.events.items()})
    same("lantern_log_lines_invalid_total", family(m, "lantern_log_lines_invalid_total"),
         {frozenset({("file", f)}): n for f, n in exp.invalid.items()})
    same("lantern_pipeline_lines_read_total", family(m, "lantern_pipeline_lines_read_total"),
         {frozenset({("file", f)}): n for f, n in exp.lines.items()})
    same("lantern_requestlog_requests_total", family(m, "lantern_requestlog_requests_total"),
         {frozenset({("request", a)}): n for a, n in exp.requests.items()})
    same("lantern_requestlog_errors_total", family(m, "lantern_requestlog_errors_total"),
         {frozenset({("request", a), ("error", e)}): n for (a, e), n in exp.errors.items()})
    same("lantern_requestlog_request_bytes_total", family(m, "lantern_requestlog_request_bytes_total"),
         {frozenset({("request", a)}): n for a, n in exp.req_bytes.items()})
    same("lantern_requestlog_response_bytes_total", family(m, "lantern_requestlog_response_bytes_total"),
         {frozenset({("request", a)}): n for a, n in exp.resp_bytes.items()})
    same("lantern_requestlog_total_time_ms_bucket", family(m, "lantern_requestlog_total_time_ms_bucket"),
         {frozenset({("request", a), ("le", le)}): exp.buckets[(a, le)] for a in exp.requests for le in BUCKETS})
    same("lantern_requestlog_total_time_ms_count", family(m, "lantern_requestlog_total_time_ms_count"),
         {frozenset({("request", a)}): n for a, n in exp.requests.items()})
    same("lantern_requestlog_total_time_ms_sum", family(m, "lantern_requestlog_total_time_ms_sum"),
         {frozenset({("request", a)}): n for a, n in exp.time_sum.items()})
    same("lantern_requestlog_client_requests_total", family(m, "lantern_requestlog_client_requests_total"),
         {frozenset({("client_id", c), ("client_software_name", s), ("client_software_version", v)}): n
          for (c, s, v), n in exp.client_requests.items()})
    same("lantern_requestlog_client_bytes_total", family(m, "lantern_requestlog_client_bytes_total"),
         {frozenset({("client_id", c), ("client_software_name", s), ("direction", d)}): n
          for (c, s, d), n in exp.client_bytes.items()})


def topic_events(bootstrap: str) -> list[dict]:
    return [json.loads(v) for (_p, _o, _k, v, _t) in clients.consume_all_confluent(bootstrap, TOPIC, 1)]


def run_logs(bootstrap: str, *args: str) -> str:
    p = subprocess.run([str(EXPORTER_BIN), "logs", f"--bootstrap-server={bootstrap}", *args],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"logs {args} failed: {p.stderr}"
    return p.stdout


def count_by(bootstrap: str, field: str) -> dict:
    out = {}
    for line in run_logs(bootstrap, f"--count-by={field}").splitlines():
        n, v = line.strip().split(None, 1)
        out[v] = int(n)
    return out


# ----------------------------------------------------------------- tests
def test_exact_counts_through_partial_lines_rotation_truncation_and_kill9(broker_factory, tmp_path, exporters):
    log_t, req_t = real_broker_lines(broker_factory, tmp_path)
    broker = broker_factory(name="sink", props={"auto.create.topics.enable": "true"})
    logs, work = tmp_path / "logs", tmp_path / "exporter"
    logs.mkdir(), work.mkdir()
    blog, rlog = logs / "broker.log", logs / "request.log"
    bl, rl = str(blog), str(rlog)
    exp = Expected()
    w = LogWriter(exp, log_t, req_t)
    args = [f"--pipeline.log-file={bl}", f"--pipeline.request-log={rl}", f"--pipeline.bootstrap-server={broker.bootstrap}"]

    # 1. the broker log does not exist yet: the exporter waits for it
    append(rlog, "".join(w.request_line(rl) for _ in range(500)))
    e = Exporter(work, args).start()
    exporters.append(e)
    wait_for("request log read", lambda: value(e.metrics(), "lantern_pipeline_lines_read_total", file=rl) == 500)

    # 2. a chunk ending in a partial line; the partial line is not an event until completed
    chunk = "".join(w.broker_line(bl) for _ in range(300)) + w.invalid_line(bl) + "".join(w.broker_line(bl) for _ in range(300))
    last = w.broker_line(bl)
    append(blog, chunk + last[:40])
    wait_for("first chunk read", lambda: value(e.metrics(), "lantern_pipeline_lines_read_total", file=bl) == 601)
    time.sleep(0.3)
    assert value(e.metrics(), "lantern_pipeline_lines_read_total", file=bl) == 601, "a partial line was counted"
    append(blog, last[40:])

    # 3. both files grow while being read (pieces cut mid-line); kill -9 in the middle of it
    writers = [append_slowly(blog, "".join(w.broker_line(bl) for _ in range(30000)) + w.invalid_line(bl)),
               append_slowly(rlog, "".join(w.request_line(rl) for _ in range(20000)))]
    seen = wait_for("reading under way", lambda: (lambda n: n > 5000 and n)(
        value(e.metrics(), "lantern_pipeline_lines_read_total", file=bl)), interval=0.01)
    e.kill9()
    for t in writers:
        t.join()
    print(f"first kill -9 after {seen:.0f} of {exp.lines[bl]} broker-log lines")
    assert seen < exp.lines[bl] - 1000, "the kill was meant to land mid-run"

    # 4. rename+create rotation while the exporter is down; the old file still gets lines
    old = logs / "broker.log.1"
    blog.rename(old)
    append(old, "".join(w.broker_line(bl) for _ in range(200)))
    append(blog, "".join(w.broker_line(bl) for _ in range(400)))
    e = Exporter(work, args).start()
    exporters.append(e)
    wait_for("everything read after restart", lambda: value(e.metrics(), "lantern_pipeline_lines_read_total", file=bl) == exp.lines[bl]
             and value(e.metrics(), "lantern_pipeline_lines_read_total", file=rl) == exp.lines[rl])

    # 5. live rotations: rename+create of the broker log, copytruncate of the request log
    with open(blog, "a") as writer:  # the "broker" keeps its descriptor across the rename
        writer.write("".join(w.broker_line(bl) for _ in range(100)))
        writer.flush()
        blog.rename(logs / "broker.log.2")
        writer.write("".join(w.broker_line(bl) for _ in range(50)))
    append(blog, "".join(w.broker_line(bl) for _ in range(100)) + "\n")  # a blank line is not an event
    exp.lines[bl] += 1
    wait_for("request log read before truncation", lambda: value(e.metrics(), "lantern_pipeline_lines_read_total", file=rl) == exp.lines[rl])
    (logs / "request.log.1").write_bytes(rlog.read_bytes())
    with open(rlog, "r+") as f:
        f.truncate(0)
    append(rlog, "".join(w.request_line(rl) for _ in range(300)))

    # 6. a second kill -9 under load, then a clean finish
    before = exp.lines[bl]
    writer = append_slowly(blog, "".join(w.broker_line(bl) for _ in range(30000)))
    seen = wait_for("reading under way again", lambda: (lambda n: n > before + 3000 and n)(
        value(e.metrics(), "lantern_pipeline_lines_read_total", file=bl)), interval=0.01)
    e.kill9()
    writer.join()
    print(f"second kill -9 after {seen:.0f} of {exp.lines[bl]} broker-log lines")
    assert seen < exp.lines[bl] - 1000, "the kill was meant to land mid-run"
    e = Exporter(work, args).start()
    exporters.append(e)
    m = wait_for("every line read", lambda: (lambda m: value(m, "lantern_pipeline_lines_read_total", file=bl) == exp.lines[bl]
                 and value(m, "lantern_pipeline_lines_read_total", file=rl) == exp.lines[rl] and m)(e.metrics()))
    total = sum(exp.lines.values())
    print(f"input: {total} lines; events by level {dict(exp.levels)}; requests {dict(exp.requests)}")
    assert_metrics_equal(m, exp)
    assert value(m, "lantern_pipeline_file_rotations_total", file=bl) >= 2
    assert value(m, "lantern_pipeline_file_rotations_total", file=rl) >= 1
    assert value(m, "lantern_pipeline_events_dropped_total") == 0

    # 7. the topic holds every event at least once; `logs` agrees with a real consumer
    wait_for("spool drained", lambda: value(e.metrics(), "lantern_pipeline_queue_events") == 0 and
             value(e.metrics(), "lantern_pipeline_broker_up") == 1, timeout=120)
    events = topic_events(broker.bootstrap)
    got = collections.Counter(ev.get("test_id") for ev in events)
    missing = exp.ids - set(got)
    assert not missing, f"{len(missing)} events never reached {TOPIC}, e.g. {sorted(missing)[:5]}"
    dups = sum(n - 1 for uid, n in got.items() if uid in exp.ids and n > 1)
    print(f"topic: {len(events)} records, {len(exp.ids)} distinct input events, {dups} duplicates (at-least-once)")
    assert all(ev["host"] == "test-host" and ev["broker_id"] == "1" for ev in events)
    consumer_levels = collections.Counter(ev.get("level", "(none)") for ev in events)
    assert count_by(broker.bootstrap, "level") == dict(consumer_levels)


def test_broker_down_metrics_go_on_spool_bounded_and_everything_arrives(broker_factory, tmp_path, exporters):
    log_t, req_t = real_broker_lines(broker_factory, tmp_path)
    broker = broker_factory(name="sink", props={"auto.create.topics.enable": "true"})
    blog, work = tmp_path / "broker.log", tmp_path / "exporter"
    work.mkdir()
    bl = str(blog)
    exp = Expected()
    w = LogWriter(exp, log_t, req_t)
    e = Exporter(work, [f"--pipeline.log-file={bl}", f"--pipeline.bootstrap-server={broker.bootstrap}"]).start()
    exporters.append(e)
    append(blog, "".join(w.broker_line(bl) for _ in range(1000)))
    wait_for("first events shipped", lambda: value(e.metrics(), "lantern_pipeline_events_shipped_total") >= 1000)

    broker.terminate()
    append(blog, "".join(w.broker_line(bl) for _ in range(20000)))
    m = wait_for("metrics derived with the broker down", lambda: (lambda m: value(m, "lantern_pipeline_lines_read_total", file=bl) == 21000 and m)(e.metrics()))
    assert_metrics_equal(m, exp)
    wait_for("broker reported down", lambda: value(e.metrics(), "lantern_pipeline_broker_up") == 0)
    # The spool is committed (and the queue gauge moves) once per round, just after the counters,
    # and librdkafka reports the broker down as soon as its connection closes: the last round's
    # commit may still be under way.
    queued = wait_for("events queued while the broker is down", lambda: (lambda q: q >= 19000 and q)(
        value(e.metrics(), "lantern_pipeline_queue_events")), timeout=30)
    rss = int(Path(f"/proc/{e.proc.pid}/status").read_text().split("VmRSS:")[1].split()[0]) * 1024
    spool = (work / "exporter.checkpoint.spool").stat().st_size
    print(f"broker down: {queued:.0f} events queued in a {spool} byte spool, exporter RSS {rss / 2**20:.1f} MiB")
    assert rss < 64 * 2**20, "the queue is meant to be on disk, not in memory"
    assert e.proc.poll() is None

    broker.start()
    wait_for("spool drained after the broker returned", lambda: value(e.metrics(), "lantern_pipeline_queue_events") == 0, timeout=120)
    got = {ev.get("test_id") for ev in topic_events(broker.bootstrap)}
    missing = exp.ids - got
    assert not missing, f"{len(missing)} events lost across the broker outage, e.g. {sorted(missing)[:5]}"
    assert value(e.metrics(), "lantern_pipeline_ship_errors_total") >= 1


def test_full_spool_drops_and_counts_but_metrics_stay_exact(broker_factory, tmp_path, exporters):
    log_t, req_t = real_broker_lines(broker_factory, tmp_path)
    blog, work = tmp_path / "broker.log", tmp_path / "exporter"
    work.mkdir()
    bl = str(blog)
    exp = Expected()
    w = LogWriter(exp, log_t, req_t)
    # no broker at all: nothing can be shipped, the spool holds at most 64 KiB
    dead = f"127.0.0.1:{free_port()}"
    e = Exporter(work, [f"--pipeline.log-file={bl}", f"--pipeline.bootstrap-server={dead}",
                        "--pipeline.spool-max-bytes=65536"]).start()
    exporters.append(e)
    append(blog, "".join(w.broker_line(bl) for _ in range(5000)))
    # the spool is committed (and the queue gauge moves) once per round, just after the counters
    m = wait_for("all read and spooled or dropped", lambda: (lambda m: value(m, "lantern_pipeline_lines_read_total", file=bl) == 5000
                 and value(m, "lantern_pipeline_queue_events") + value(m, "lantern_pipeline_events_dropped_total") == 5000 and m)(e.metrics()))
    assert_metrics_equal(m, exp)
    queued, dropped = value(m, "lantern_pipeline_queue_events"), value(m, "lantern_pipeline_events_dropped_total")
    print(f"spool full: {queued:.0f} events queued, {dropped:.0f} dropped and counted")
    assert dropped > 0 and queued > 0, (queued, dropped)
    assert (work / "exporter.checkpoint.spool").stat().st_size <= 65536


def test_logs_command_filters_and_counts(broker_factory, tmp_path, exporters):
    log_t, req_t = real_broker_lines(broker_factory, tmp_path)
    broker = broker_factory(name="sink", props={"auto.create.topics.enable": "true"})
    blog, rlog, work = tmp_path / "broker.log", tmp_path / "request.log", tmp_path / "exporter"
    work.mkdir()
    exp = Expected()
    w = LogWriter(exp, log_t, req_t)
    append(blog, "".join(w.broker_line(str(blog)) for _ in range(400)) + w.invalid_line(str(blog)))
    append(rlog, "".join(w.request_line(str(rlog)) for _ in range(100)))
    e = Exporter(work, [f"--pipeline.log-file={blog}", f"--pipeline.request-log={rlog}",
                        f"--pipeline.bootstrap-server={broker.bootstrap}"]).start()
    exporters.append(e)
    wait_for("all shipped", lambda: value(e.metrics(), "lantern_pipeline_events_shipped_total") >= 501 and
             value(e.metrics(), "lantern_pipeline_queue_events") == 0)
    # the slowest requests (all written within the last 5 minutes), slowest first
    slow = family(e.metrics(), "lantern_requestlog_slowest_request_ms")
    by_rank = sorted((int(dict(labels)["rank"]), v) for labels, v in slow.items())
    assert [r for r, _ in by_rank] == list(range(1, 11))
    assert [v for _, v in by_rank] == pytest.approx(sorted(exp.times, reverse=True)[:10])

    # promtool parses the exposition; its only lint is on the two names the dashboards use (_ms)
    p = subprocess.run(["promtool", "check", "metrics"], input=e.metrics_text(), capture_output=True, text=True)
    problems = sorted(l for l in (p.stdout + p.stderr).splitlines() if l.strip())
    assert problems == [f"lantern_requestlog_{n}_ms metric names should not contain abbreviated units"
                        for n in ("slowest_request", "total_time")], problems
    e.stop()  # no restarts here: the topic holds each event exactly once

    assert count_by(broker.bootstrap, "level") == dict(exp.levels)
    assert count_by(broker.bootstrap, "apiName").get("Produce") == exp.requests["Produce"]
    errors = [json.loads(l) for l in run_logs(broker.bootstrap, "--level=error", "--output=json").splitlines()]
    assert len(errors) == exp.levels["ERROR"] and all(ev["level"] == "ERROR" for ev in errors)
    one = sorted(exp.ids)[7]
    hits = run_logs(broker.bootstrap, f"--grep={one}", "--output=json").splitlines()
    assert len(hits) == 1 and json.loads(hits[0])["test_id"] == one
    cleaner = [json.loads(l) for l in run_logs(broker.bootstrap, "--logger=kafka.log", "--since=1h", "--output=json").splitlines()]
    assert cleaner and all(ev["target"].startswith("kafka.log.") for ev in cleaner)
    assert run_logs(broker.bootstrap, "--until=2000-01-01T00:00:00Z", "--output=json") == ""
    assert run_logs(broker.bootstrap, "--since=2099-01-01T00:00:00Z", "--output=json") == ""
    table = run_logs(broker.bootstrap, "--level=WARN")
    assert table.splitlines()[0].split()[:3] == ["TIMESTAMP", "LEVEL", "LOGGER"]
    assert len(table.splitlines()) == exp.levels["WARN"] + 1


class OtlpLogsReceiver:
    """Accepts POST /v1/logs on a given port, as OTLP/HTTP protobuf (decoded with the
    OpenTelemetry project's opentelemetry-proto) or JSON, and keeps every log record as
    (resource attributes, record in OTLP/JSON's shape)."""

    def __init__(self, port: int):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from google.protobuf.json_format import MessageToDict
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        self.records: list[tuple[dict, dict]] = []
        self.content_types: set[str] = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ctype = self.headers.get("Content-Type", "")
                ok = self.path == "/v1/logs"
                if ok and ctype.startswith("application/x-protobuf"):
                    req = logs_service_pb2.ExportLogsServiceRequest.FromString(raw)
                    # protobuf's JSON mapping names fields as OTLP/JSON does (ids aside)
                    body = MessageToDict(req, use_integers_for_enums=True)
                    reply = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
                elif ok and ctype.startswith("application/json"):
                    body, reply = json.loads(raw), b"{}"
                else:
                    ok = False
                if ok:
                    with receiver.lock:
                        receiver.content_types.add(ctype)
                        for rl in body["resourceLogs"]:
                            res = {a["key"]: a["value"]["stringValue"] for a in rl["resource"]["attributes"]}
                            for sl in rl["scopeLogs"]:
                                receiver.records.extend((res, r) for r in sl["logRecords"])
                else:
                    reply = b""
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_otlp_export_delivers_every_event_after_the_receiver_appears(broker_factory, tmp_path, exporters):
    log_t, req_t = real_broker_lines(broker_factory, tmp_path)
    blog, rlog, work = tmp_path / "broker.log", tmp_path / "request.log", tmp_path / "exporter"
    work.mkdir()
    exp = Expected()
    w = LogWriter(exp, log_t, req_t)
    port = free_port()
    # OTLP only (no topic); the receiver is not listening yet
    e = Exporter(work, [f"--pipeline.log-file={blog}", f"--pipeline.request-log={rlog}", "--pipeline.ship=false",
                        f"--pipeline.otlp-endpoint=http://127.0.0.1:{port}"]).start()
    exporters.append(e)
    append(blog, "".join(w.broker_line(str(blog)) for _ in range(3000)))
    append(rlog, "".join(w.request_line(str(rlog)) for _ in range(1000)))
    wait_for("OTLP export failing while nobody listens", lambda: value(e.metrics(), "lantern_pipeline_otlp_errors_total") >= 1
             and value(e.metrics(), "lantern_pipeline_otlp_queue_events") == 4000)
    receiver = OtlpLogsReceiver(port)
    try:
        m = wait_for("OTLP queue drained", lambda: (lambda m: value(m, "lantern_pipeline_otlp_queue_events") == 0 and m)(e.metrics()), timeout=90)
        assert_metrics_equal(m, exp)
        assert value(m, "lantern_pipeline_events_dropped_total") == 0
        assert value(m, "lantern_pipeline_broker_up") == 0  # shipping to Kafka is off
        with receiver.lock:
            records = list(receiver.records)
    finally:
        receiver.close()
    ids = collections.Counter()
    for res, r in records:
        attrs = {a["key"]: a["value"] for a in r["attributes"]}
        ids[attrs["test_id"]["stringValue"]] += 1
        assert res["host.name"] == "test-host" and res["service.instance.id"] == "1"
        if "severityText" in r:
            want = {"DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17}[r["severityText"]]
            assert int(r["severityNumber"]) == want and int(r["timeUnixNano"]) > 0
    missing = exp.ids - set(ids)
    assert not missing, f"{len(missing)} events never reached the OTLP receiver"
    assert receiver.content_types == {"application/x-protobuf"}, receiver.content_types  # the OTLP default
    print(f"OTLP: {len(records)} log records for {len(exp.ids)} events")


def test_otlp_logs_over_grpc_with_tls(tmp_path, exporters, tmp_path_factory, monkeypatch):
    """OTLP/gRPC to a grpcio LogsService over TLS with a private CA: every event arrives with
    its severity, body, attributes, resource (OTEL_RESOURCE_ATTRIBUTES included) and scope."""
    from otlp_receivers import GrpcLogsReceiver, make_ca, _value
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=e2e")
    ca, cert, key = make_ca(tmp_path_factory.mktemp("otlp-logs-tls"))
    receiver = GrpcLogsReceiver(tls=(cert, key))
    try:
        blog, work = tmp_path / "broker.log", tmp_path / "exporter"
        work.mkdir()
        levels = ["DEBUG", "INFO", "WARN", "ERROR"]
        append(blog, "".join(json.dumps({"timestamp": "2026-01-02T03:04:05.678Z", "level": levels[i % 4], "target": "kafka.log.LogManager",
                                         "message": f"event {i}", "partition": i, "test_id": f"g-{i}"}) + "\n" for i in range(200)))
        e = Exporter(work, [f"--pipeline.log-file={blog}", "--pipeline.ship=false", f"--pipeline.otlp-endpoint={receiver.endpoint}",
                            "--pipeline.otlp-protocol=grpc", f"--pipeline.otlp-certificate={ca}"]).start()
        exporters.append(e)
        wait_for("200 events exported over gRPC", lambda: value(e.metrics(), "lantern_pipeline_otlp_exported_total") >= 200)
        with receiver.lock:
            records = list(receiver.records)
    finally:
        receiver.close()
    by_id = {}
    for res, scope, r in records:
        attrs = {a.key: _value(a.value) for a in r.attributes}
        by_id[attrs["test_id"]] = (res, scope, r, attrs)
    assert set(by_id) == {f"g-{i}" for i in range(200)}, f"missing: {sorted({f'g-{i}' for i in range(200)} - set(by_id))[:5]}"
    res, scope, r, attrs = by_id["g-6"]
    assert res["service.name"] == "lantern-broker" and res["host.name"] == "test-host" and res["service.instance.id"] == "1", res
    assert res["deployment.environment"] == "e2e", res
    assert scope == "lantern-exporter"
    assert (r.severity_text, r.severity_number) == ("WARN", 13) and r.body.string_value == "event 6"
    assert r.time_unix_nano == 1767323045678 * 1_000_000 and r.observed_time_unix_nano > r.time_unix_nano
    assert attrs["partition"] == 6 and attrs["target"] == "kafka.log.LogManager"


@pytest.mark.parametrize("extra,env,expected", [
    (["--pipeline.otlp-certificate=/nonexistent/ca.pem"], {}, "cannot read the CA certificate /nonexistent/ca.pem"),
    (["--pipeline.otlp-protocol=grpc", "--pipeline.otlp-certificate=/nonexistent/ca.pem"], {}, "cannot read the CA certificate"),
    ([], {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
    ([], {"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli"}, "OTEL_EXPORTER_OTLP_COMPRESSION=\"brotli\": expected gzip, zstd or none"),
    # the checks agree with opentelemetry-otlp, which does not trim: it would ignore " gzip"
    ([], {"OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": " gzip"}, "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION=\" gzip\""),
    # headers the crate would drop silently; the message never shows them (credentials)
    ([], {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=secret-token,tenant"}, "OTEL_EXPORTER_OTLP_HEADERS=<"),
    ([], {"OTEL_EXPORTER_OTLP_LOGS_HEADERS": "bad key=secret-token"}, "OTEL_EXPORTER_OTLP_LOGS_HEADERS=<"),
    ([], {"OTEL_EXPORTER_OTLP_LOGS_HEADERS": "", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=secret-token"},
     "OTEL_EXPORTER_OTLP_LOGS_HEADERS"),
])
def test_bad_otlp_settings_stop_start_up(tmp_path, extra, env, expected):
    """A setting the OTLP log exporter cannot use stops the process with a message naming it,
    instead of leaving events to fill the spool for an exporter that never runs."""
    blog = tmp_path / "broker.log"
    blog.write_text("")
    args = [str(EXPORTER_BIN), f"--web.listen-address=127.0.0.1:{free_port()}", "--collector.disable-defaults",
            f"--pipeline.checkpoint={tmp_path / 'exporter.checkpoint'}", f"--pipeline.log-file={blog}",
            "--pipeline.ship=false", "--pipeline.otlp-endpoint=http://127.0.0.1:9", *extra]
    p = subprocess.run(args, env={**os.environ, **env}, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and expected in p.stderr, (p.returncode, p.stderr[-2000:])
    assert "secret" not in p.stderr, f"the error shows the headers: {p.stderr[-2000:]}"


def test_otlp_logs_over_http_json(tmp_path, exporters):
    """The third OTLP protocol: every event arrives as a log record in OTLP/JSON."""
    port = free_port()
    receiver = OtlpLogsReceiver(port)
    try:
        blog, work = tmp_path / "broker.log", tmp_path / "exporter"
        work.mkdir()
        append(blog, "".join(json.dumps({"timestamp": "2026-01-02T03:04:05.678Z", "level": "WARN", "target": "kafka.log.LogManager",
                                         "message": f"event {i}", "test_id": f"j-{i}"}) + "\n" for i in range(100)))
        e = Exporter(work, [f"--pipeline.log-file={blog}", "--pipeline.ship=false",
                            f"--pipeline.otlp-endpoint=http://127.0.0.1:{port}", "--pipeline.otlp-protocol=http/json"]).start()
        exporters.append(e)
        wait_for("100 events exported over http/json", lambda: value(e.metrics(), "lantern_pipeline_otlp_exported_total") >= 100)
        with receiver.lock:
            records, ctypes = list(receiver.records), set(receiver.content_types)
    finally:
        receiver.close()
    got = {a["value"]["stringValue"] for _, r in records for a in r["attributes"] if a["key"] == "test_id"}
    assert got == {f"j-{i}" for i in range(100)}, f"missing: {sorted({f'j-{i}' for i in range(100)} - got)[:5]}"
    assert all(c.startswith("application/json") for c in ctypes) and ctypes, ctypes
    res, r = records[0]
    assert res["service.name"] == "lantern-broker" and r["severityText"] == "WARN", (res, r)


@pytest.fixture(scope="module")
def otlp_ca(tmp_path_factory):
    from otlp_receivers import make_ca
    return make_ca(tmp_path_factory.mktemp("otlp-logs-https"))


def otlp_events(path: Path, prefix: str, n: int) -> set[str]:
    append(path, "".join(json.dumps({"timestamp": "2026-01-02T03:04:05.678Z", "level": "INFO", "target": "kafka.log.LogManager",
                                     "message": f"event {i}", "test_id": f"{prefix}-{i}"}) + "\n" for i in range(n)))
    return {f"{prefix}-{i}" for i in range(n)}


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_otlp_logs_over_https_with_headers_gzip_and_the_spec_service_name(tmp_path, exporters, otlp_ca, monkeypatch, protocol):
    """https with a private CA (--pipeline.otlp-certificate for protobuf, OTEL_EXPORTER_OTLP_CERTIFICATE
    for json) for both HTTP encodings; the receiver
    sees OTEL_EXPORTER_OTLP_HEADERS (percent-decoded) and gzip bodies, and the resource names the
    service by the SDK environment spec: OTEL_SERVICE_NAME over service.name in
    OTEL_RESOURCE_ATTRIBUTES."""
    from otlp_receivers import HttpLogsReceiver
    ca, cert, key = otlp_ca
    for k, v in {"OTEL_SERVICE_NAME": "logs-by-name", "OTEL_RESOURCE_ATTRIBUTES": "service.name=logs-by-attribute,deployment.environment=e2e",
                 "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=lantern-7,authorization=Bearer%20t0ken", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}.items():
        monkeypatch.setenv(k, v)
    if protocol == "http/json":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca))
        ca_flag = []
    else:
        ca_flag = [f"--pipeline.otlp-certificate={ca}"]
    receiver = HttpLogsReceiver(tls=(cert, key))
    try:
        blog, work = tmp_path / "broker.log", tmp_path / "exporter"
        work.mkdir()
        want = otlp_events(blog, "s", 50)
        e = Exporter(work, [f"--pipeline.log-file={blog}", "--pipeline.ship=false", f"--pipeline.otlp-endpoint={receiver.endpoint}",
                            f"--pipeline.otlp-protocol={protocol}", *ca_flag]).start()
        exporters.append(e)
        assert receiver.endpoint.startswith("https://")
        wait_for(f"50 events exported over https {protocol}", lambda: value(e.metrics(), "lantern_pipeline_otlp_exported_total") >= 50)
        with receiver.lock:
            records, headers = list(receiver.records), list(receiver.headers)
    finally:
        receiver.close()
    got = {a["value"]["stringValue"] for _, r in records for a in r["attributes"] if a["key"] == "test_id"}
    assert got == want, f"missing: {sorted(want - got)[:5]}"
    res = records[0][0]
    assert res["service.name"] == "logs-by-name" and res["deployment.environment"] == "e2e", res
    ctype = "application/x-protobuf" if protocol == "http/protobuf" else "application/json"
    for h in headers:
        assert h.get("x-tenant") == "lantern-7" and h.get("authorization") == "Bearer t0ken", h
        assert h.get("content-encoding") == "gzip" and h.get("content-type", "").startswith(ctype), h


def test_otlp_logs_refused_for_good_are_dropped_counted_and_leave_the_spool(tmp_path, exporters):
    """A receiver that answers 400 to everything: the exporter splits the batch down to single
    events, drops each (lantern_pipeline_events_dropped_total) and moves on, so the OTLP queue
    empties instead of growing, also for events that come later; no error is counted (the
    receiver answered) and nothing is counted as exported."""
    from otlp_receivers import HttpLogsReceiver
    receiver = HttpLogsReceiver(status=400)
    try:
        blog, work = tmp_path / "broker.log", tmp_path / "exporter"
        work.mkdir()
        otlp_events(blog, "r", 40)
        e = Exporter(work, [f"--pipeline.log-file={blog}", "--pipeline.ship=false",
                            f"--pipeline.otlp-endpoint={receiver.endpoint}"]).start()
        exporters.append(e)
        drained = lambda n: (lambda m: m if value(m, "lantern_pipeline_events_dropped_total") == n
                             and value(m, "lantern_pipeline_otlp_queue_events") == 0 else None)(e.metrics())
        wait_for("40 refused events dropped and the OTLP queue empty", lambda: drained(40), timeout=30)
        otlp_events(blog, "later", 10)
        m = wait_for("10 more refused events dropped", lambda: drained(50), timeout=30)
        with receiver.lock:
            requests = len(receiver.headers)
    finally:
        receiver.close()
    assert value(m, "lantern_pipeline_otlp_exported_total") == 0 and value(m, "lantern_pipeline_otlp_errors_total") == 0, m
    # 40 -> 20 -> 10 -> 5 -> 2 -> 1 (5 refused batches), then each event alone
    assert 50 <= requests <= 70, requests
    assert receiver.records == []
