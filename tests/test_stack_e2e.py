"""Claim: the plain-process monitoring stack (deploy/local/run-stack) works end to end with
Debian's real Prometheus and Alertmanager, from the same prometheus.yml, rule file and
alertmanager.yml as the compose stack: after real clients (confluent-kafka: producers, a
consumer group that commits and is left behind, an admin request that fails) have used a
cluster of three brokers, every scrape target is up and in its cluster; every PromQL
expression of every dashboard panel and template variable (variables set to values the live
Prometheus returns for them, Grafana's $__rate_interval/$__interval/$__range substituted)
returns at least one series; and `kill -9` of broker-1 makes LanternBrokerDown for broker-1,
and for no other broker, reach Alertmanager's webhook receiver within the rule's `for` plus
two scrape intervals, then resolve after the broker is restarted; the same kill fires the
replication alerts from the brokers that see them (LanternUnderMinIsrPartitions,
LanternOfflinePartitions; LanternUnderReplicatedPartitions, whose `for` is 5m, is checked
active in Prometheus), Alertmanager holds them back as its inhibit rule says (the broker down
explains them), and they resolve once broker-1 is back in the ISRs.
Every broker has two log dirs (JBOD): broker-2's second becomes read-only (root only: a
read-only tmpfs mounted over it, tests/mounts.py), the broker takes it offline and stays up,
LanternOfflineLogDirectories for broker-2 reaches the webhook within its `for` plus two scrape
intervals, LanternBrokerDown never fires for it, and once the dir is unmounted and broker-2
restarted (an offline dir comes back only with a restart) every alert resolves (one over a 5m
rate window may stay pending once its cause has stopped: PENDING_AFTER_A_FAULT). That test runs
last: the alerts of the failed dir's partitions are notified (no broker is down to inhibit them).
Broker-1's JSON log is also rotated (copytruncate) and given a non-JSON line, so the log
pipeline's rotation and invalid-line panels have something real to show.

The stack also runs a second cluster (backup-1, one node, cluster="lantern-2") and
lantern-mirror copying the first ("primary") to it ("backup") from deploy/mirror/mm2.properties:
every record of the traffic's topic appears on the backup as primary.orders, partition for
partition in order; the mirror's target is up as job lantern-mirror, every query of the
Mirroring dashboard and every selector of the mirroring alert rules has data from the live
scrape, and the mirror's JSON log reaches the backup cluster's log topic like the brokers' logs.

Short intervals for the test only (run-stack options): scrape 2s, evaluation 1s, group_wait
0s, group_interval 1s, the mirror's checkpoints every 1s and topic refresh every 2s; the rules
and their `for` are the production ones.

The Logs dashboard needs lantern-exporter's log pipeline and the Node dashboard its node
collectors; until those exist in this checkout, their tests fail naming each panel without
data (they are never skipped).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import mounts
from lantern import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
RUN_STACK = DEPLOY / "local" / "run-stack"
RULES = DEPLOY / "prometheus" / "rules" / "lantern-alerts.yml"
DASHBOARDS = REPO_ROOT / "dashboards"
SCRAPE_S = 2
EVAL_S = 1
BROKERS = ["broker-1", "broker-2", "broker-3"]
CLUSTER = "lantern-1"
BACKUP = "backup-1"  # the backup cluster's one node
BACKUP_CLUSTER = "lantern-2"
MIRROR = "mirror-1"
TOPIC = "orders"
REPLICATED = "orders-replicated"
UNDER_MIN = "orders-min-isr"
GROUP = "billing"
# The values the test drives traffic through, preferred when a variable offers them.
PREFERRED = {"cluster": CLUSTER, "instance": "broker-1", "topic": TOPIC, "group": GROUP,
             "source": "primary", "target": "backup"}


# --- webhook receiver ------------------------------------------------------------------------

class Webhook:
    """Alertmanager's webhook receiver: records (arrival time, alert) for every alert of every POST."""

    def __init__(self):
        self.received: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.time()
                payload = json.loads(body)
                with hook.lock:
                    for a in payload.get("alerts", []):
                        hook.received.append((now, a))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def find(self, alertname: str, status: str, since: float, **labels) -> tuple[float, dict] | None:
        with self.lock:
            for t, a in self.received:
                if (t >= since and a["status"] == status and a["labels"].get("alertname") == alertname
                        and all(a["labels"].get(k) == v for k, v in labels.items())):
                    return t, a
        return None

    def close(self):
        self.server.shutdown()


# --- Prometheus API --------------------------------------------------------------------------

def api(base: str, path: str, **params) -> dict:
    url = f"http://{base}{path}?{urllib.parse.urlencode(params)}" if params else f"http://{base}{path}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"Prometheus {path} {params}: {e.code} {e.read().decode(errors='replace')}") from None
    assert body["status"] == "success", body
    return body["data"]


def alert_rule(name: str) -> tuple[dict, int]:
    """The rule of alert `name` in the production rule file, and its `for` in seconds."""
    rule = next(r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if r.get("alert") == name)
    for_s = int(rule["for"].rstrip("m")) * 60 if rule["for"].endswith("m") else int(rule["for"].rstrip("s"))
    return rule, for_s


def active_alerts(prom: str, name: str | None = None) -> list[dict]:
    """Prometheus' ALERTS series (pending or firing) now, of alert `name` or of all."""
    query = f'ALERTS{{alertname="{name}"}}' if name else "ALERTS"
    return [a["metric"] for a in api(prom, "/api/v1/query", query=query)["result"]]


def run_stack(*args, check=True) -> subprocess.CompletedProcess:
    # LANTERN_* variables (tests/run's own) would reach the brokers as unknown properties
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERN_")}
    r = subprocess.run([sys.executable, str(RUN_STACK), *map(str, args)], capture_output=True, text=True, timeout=180, env=env)
    if check:
        assert r.returncode == 0, f"run-stack {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}"
    return r


# --- the stack and its traffic ---------------------------------------------------------------

def drive_traffic(bootstrap: str, seconds: float, heavy: bool) -> None:
    """A topic with 3 partitions, a producer, a consumer group that commits while consuming and is
    then left behind (lag), and a CreateTopics that fails (TOPIC_ALREADY_EXISTS)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)]).values():
        f.result(timeout=30)
    for f in admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)]).values():
        with pytest.raises(KafkaException):
            f.result(timeout=30)  # the error response the error panels and alerts count

    # Replicated topics, for the replication alerts when a broker is killed: every partition of
    # REPLICATED has a replica on each broker (under-replicated when one dies), and UNDER_MIN
    # (2 replicas, min.insync.replicas=2) drops below its minimum when one of its two dies.
    for f in admin.create_topics([NewTopic(REPLICATED, num_partitions=3, replication_factor=3),
                                  NewTopic(UNDER_MIN, num_partitions=3, replication_factor=2,
                                           config={"min.insync.replicas": "2"})]).values():
        f.result(timeout=30)

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "client.id": "stack-e2e-producer"})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "client.id": "stack-e2e-consumer",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000})
    consumer.subscribe([TOPIC])
    stop = time.monotonic() + seconds
    sent = consumed = 0
    try:
        while time.monotonic() < stop:
            for i in range(50 if heavy else 10):
                producer.produce(TOPIC, key=f"k{sent % 17}".encode(), value=b"x" * (100 + sent % 400))
                sent += 1
            producer.poll(0)
            msgs = consumer.consume(num_messages=30, timeout=0.3)
            real = [m for m in msgs if not m.error()]
            if real:
                consumed += len(real)
                consumer.commit(asynchronous=False)
        for i in range(300):
            producer.produce(REPLICATED if i % 2 else UNDER_MIN, key=f"r{i}".encode(), value=b"r" * 100)
        # leave the group behind: more messages it has not consumed
        for i in range(2000 if heavy else 200):
            producer.produce(TOPIC, value=b"y" * 200)
            if i % 500 == 0:
                producer.poll(0)
        assert producer.flush(30) == 0
    finally:
        consumer.close()
    assert consumed > 0, "the consumer group consumed nothing"


def ask_every_broker_for_a_missing_topic(brokers: list[str]) -> None:
    """A Metadata request for a topic that does not exist, answered UNKNOWN_TOPIC_OR_PARTITION, on
    each broker (a consumer does not auto-create; its first request goes to its only bootstrap
    broker). The duplicate CreateTopics above fails on the active controller only, and every
    broker's error panels should have something to show."""
    for b in brokers:
        c = Consumer({"bootstrap.servers": b, "group.id": "stack-e2e-metadata", "client.id": "stack-e2e-metadata"})
        try:
            t = c.list_topics("stack-e2e-no-such-topic", timeout=30).topics["stack-e2e-no-such-topic"]
            assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, (b, t.error)
        finally:
            c.close()


def rotate_like_logrotate(log: Path) -> None:
    """logrotate's copytruncate on the broker's JSON log (the broker keeps its O_APPEND stderr),
    then a line that is not JSON, as a Rust panic message on stderr would be: the pipeline's
    rotation and invalid-line counters (and their panels) get something real to count."""
    log.with_name(log.name + ".1").write_bytes(log.read_bytes())
    with open(log, "r+b") as f:
        f.truncate(0)
    time.sleep(1.5)
    with open(log, "ab") as f:
        f.write(b"thread 'tokio-runtime-worker' panicked at broker/src/example.rs:1:1: not JSON (written by the test)\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for binary in ("/usr/bin/prometheus", "/usr/bin/prometheus-alertmanager"):
        if not Path(binary).exists():
            pytest.fail(f"{binary} missing (tests/run installs Debian's prometheus and prometheus-alertmanager)")
    d = tmp_path_factory.mktemp("stack")
    hook = Webhook()
    started = time.time()
    run_stack("start", "--dir", d, "--brokers", len(BROKERS), "--log-dirs", 2, "--timeout", 90,
              "--scrape-interval", f"{SCRAPE_S}s", "--evaluation-interval", f"{EVAL_S}s",
              "--group-wait", "0s", "--group-interval", "1s", "--repeat-interval", "1h",
              "--webhook-url", hook.url,
              "--mirror-prop", "emit.checkpoints.interval.seconds=1", "--mirror-prop", "refresh.topics.interval.seconds=2",
              "--mirror-prop", "offset.flush.interval.ms=1000",
              "--broker-prop", "offsets.topic.num.partitions=5", "--broker-prop", "group.initial.rebalance.delay.ms=0")
    st = json.loads((d / "stack.json").read_text())
    try:
        errors = []

        def guarded(*args):
            try:
                drive_traffic(*args)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
        cluster = ",".join(st["brokers"][b]["kafka"] for b in BROKERS)
        worker = threading.Thread(target=guarded, args=(cluster, 14, True))
        worker.start()
        worker.join(120)
        assert not errors, errors
        ask_every_broker_for_a_missing_topic([st["brokers"][b]["kafka"] for b in BROKERS])
        rotate_like_logrotate(Path(st["brokers"]["broker-1"]["log"]))
        # a few scrapes after the traffic so gauges (lag, offsets) and rates are recorded
        time.sleep(4 * SCRAPE_S)
        yield {"dir": d, "state": st, "hook": hook, "prom": st["prometheus"], "started": started}
    finally:
        run_stack("stop", "--dir", d, check=False)
        hook.close()


# --- tests -----------------------------------------------------------------------------------

def test_prometheus_loaded_every_rule(stack):
    groups = api(stack["prom"], "/api/v1/rules")["groups"]
    loaded = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
    wanted = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    assert loaded == wanted
    assert all(r["health"] == "ok" for g in groups for r in g["rules"]), \
        [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]


def test_every_scrape_target_is_up(stack):
    targets = api(stack["prom"], "/api/v1/targets")["activeTargets"]
    seen = {(t["labels"]["job"], t["labels"]["instance"]): t for t in targets}
    assert set(seen) == {*[(job, b) for job in ("lantern-broker", "lantern-exporter") for b in [*BROKERS, BACKUP]],
                         ("lantern-exporter", MIRROR), ("lantern-mirror", MIRROR),
                         ("prometheus", "prometheus"), ("alertmanager", "alertmanager")}, sorted(seen)
    down = {k: t["lastError"] for k, t in seen.items() if t["health"] != "up"}
    assert not down, down
    clusters = {k: t["labels"]["cluster"] for k, t in seen.items() if k[0].startswith("lantern-")}
    assert clusters == {k: CLUSTER if k[1] in BROKERS else BACKUP_CLUSTER for k in clusters}, clusters


def rate_interval() -> str:
    # Grafana: max($__interval + scrape interval, 4 * scrape interval)
    return f"{4 * SCRAPE_S}s"


def substitute(expr: str, values: dict[str, str], range_s: int) -> str:
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    expr = (expr.replace("$__rate_interval", rate_interval()).replace("$__interval", f"{SCRAPE_S}s")
            .replace("$__range", f"{range_s}s"))
    assert "$" not in expr, expr
    return expr


def promql_regex_literal(value: str) -> str:
    """A label value as a regex matching only itself, inside a PromQL double-quoted string
    (as Grafana formats a single selected value for =~)."""
    return "".join("\\\\" + c if c in ".^$*+?()[]{}|\\" else c for c in value)


def resolve_variables(prom: str, board: dict, range_s: int) -> tuple[dict[str, str], list[str]]:
    """Each template variable's query run against Prometheus in order (later ones see earlier values).
    The value chosen is the one the traffic went through when offered, else the first, unless it
    leaves a later variable without values and another does not: in a cluster a group's metrics
    come from its coordinator only, so $group has values under that broker's $instance alone."""
    variables = board["templating"]["list"]

    def resolve(i: int, values: dict[str, str]) -> tuple[dict[str, str], list[str]]:
        if i == len(variables):
            return values, []
        v = variables[i]
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q, re.S)
        assert m, q
        selector = substitute(m.group(1), values, range_s)
        series = api(prom, "/api/v1/series", **{"match[]": selector, "start": time.time() - range_s, "end": time.time()})
        found = sorted({s[m.group(2)] for s in series if m.group(2) in s})
        if not found:
            rest, problems = resolve(i + 1, {**values, v["name"]: ".*"})
            return rest, [f"variable ${v['name']}: {q} returned no values", *problems]
        preferred = PREFERRED.get(v["name"])
        first = None
        for chosen in sorted(found, key=lambda value: value != preferred):
            result = resolve(i + 1, {**values, v["name"]: promql_regex_literal(chosen)})
            if not result[1]:
                return result
            first = first or result
        return first

    return resolve(0, {})


def check_dashboard(stack, name: str) -> tuple[int, list[str], dict[str, str]]:
    board = json.loads((DASHBOARDS / name).read_text())
    prom = stack["prom"]
    end = time.time()
    range_s = max(int(end - stack["started"]) + 1, 60)
    values, problems = resolve_variables(prom, board, range_s)
    checked = 0
    for p in board["panels"]:
        for t in p["targets"]:
            expr = substitute(t["expr"], values, range_s)
            if t.get("instant"):
                result = api(prom, "/api/v1/query", query=expr, time=end)["result"]
            else:
                result = api(prom, "/api/v1/query_range", query=expr, start=end - range_s, end=end, step=SCRAPE_S)["result"]
            checked += 1
            if not result:
                problems.append(f"panel {p['id']} {p['title']!r} query {t['refId']}: no data for {expr}")
    return checked, problems, values


@pytest.mark.parametrize("dashboard", ["lantern-cluster-overview.json", "lantern-topics.json",
                                       "lantern-consumer-groups.json", "lantern-node.json", "lantern-logs.json",
                                       "lantern-mirroring.json"])
def test_every_dashboard_query_returns_data(stack, dashboard):
    checked, problems, values = check_dashboard(stack, dashboard)
    print(f"{dashboard}: {checked} panel queries checked, {len(problems)} without data (variables {values})")
    assert checked > 0
    assert not problems, f"{dashboard}: {len(problems)} of {checked} queries/variables without data:\n" + "\n".join(problems)


# --- alert rules against the live stack ------------------------------------------------------

_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
                 "quantile", "limitk", "limit_ratio"}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _LABEL_LISTS | {"and", "or", "unless", "offset", "bool", "atan2"}
_PROMQL_TOKEN = re.compile(r"""\s+|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{}()]|\[[^\]]*\]|[A-Za-z_:][A-Za-z0-9_:]*"""
                           r"""|[0-9.]+[a-z]*|!=|=~|!~|==|<=|>=|[-+*/%^<>=,]""")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def promql_selectors(expr: str) -> tuple[list[str], set[str]]:
    """The vector selectors of a PromQL expression (metric name with its matchers, as written),
    and the label names its aggregations and vector matchings group or match on (by, on, ...).
    A small tokenizer, enough for the rule file: it refuses an expression it does not read whole."""
    tokens = [t for t in (m.group(0) for m in _PROMQL_TOKEN.finditer(expr)) if not t.isspace()]
    assert "".join(tokens) == re.sub(r"\s+", "", expr), f"cannot tokenize {expr!r}"
    found, labels, i = [], set(), 0
    while i < len(tokens):
        t, following = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        if t in _LABEL_LISTS and following == "(":
            end = tokens.index(")", i)
            labels |= {x for x in tokens[i + 2:end] if x != ","}
            i = end + 1
        elif t in _KEYWORDS or (t in _AGGREGATIONS and following in ("(", "by", "without")):
            i += 1
        elif _NAME.fullmatch(t) and following == "(":
            i += 1  # a function
        elif _NAME.fullmatch(t) or t == "{":
            selector, i = (t, i + 1) if t != "{" else ("", i)
            if i < len(tokens) and tokens[i] == "{":
                end = tokens.index("}", i)
                selector += "".join(tokens[i:end + 1])
                i = end + 1
            found.append(selector)
        else:
            i += 1
    return list(dict.fromkeys(found)), labels


def test_promql_selectors_reads_the_rules_as_written():
    """The extractor itself, on expressions of the rule file's kinds (no stack needed)."""
    assert promql_selectors('up{job="lantern-broker"} == 0') == (['up{job="lantern-broker"}'], set())
    sels, labels = promql_selectors('(sum by (cluster) (a_total{x=~"(?i)e,r"}) > 0) and on (cluster, instance) '
                                    '(sum without (y) (rate(b{topic=""}[10m] offset 5m)) == 0) / 300 <= 3 * c')
    assert sels == ['a_total{x=~"(?i)e,r"}', 'b{topic=""}', "c"] and labels == {"cluster", "instance", "y"}
    assert promql_selectors('predict_linear(m{a!~"t|r"}[6h], 24 * 3600) < 0')[0] == ['m{a!~"t|r"}']


# Selectors of alert rules that may rightly match nothing on this healthy stack (a metric that
# only appears when something breaks), each with the reason: {selector as written: why}. None
# does today: every rule's selectors match live series, the ERROR log events too (the stack's
# brokers log some while the cluster forms). An entry added here needs a check, after the fault
# test that produces it, that the selector then matches.
SELECTORS_ABSENT_WHEN_HEALTHY: dict[str, str] = {}


# Rule groups whose sources this process stack does not run, and the test that checks them live
# instead: {group: test}. None today: the stack runs lantern-mirror, so the lantern-mirroring
# group is checked here too (and in tests/test_mirror.py).
GROUPS_CHECKED_ELSEWHERE: dict[str, str] = {}


def rule_selector_problems(prom: str, allowed_absent: dict[str, str], only_groups: set[str] | None = None,
                           skip_groups: set[str] = frozenset()) -> tuple[int, list[str]]:
    """Each alerting rule's selectors queried in the live Prometheus: every one must match at least
    one series (unless allowed), and every series it matches must carry the labels the rule groups
    or matches on (a series without `cluster` drops out of `sum by (cluster)` and of `on (cluster)`)."""
    problems, checked = [], 0
    for g in yaml.safe_load(RULES.read_text())["groups"]:
        if g["name"] in skip_groups or (only_groups is not None and g["name"] not in only_groups):
            continue
        for rule in g["rules"]:
            if "alert" not in rule:
                continue
            selectors, labels = promql_selectors(rule["expr"])
            assert selectors, f"{rule['alert']}: no selector found in {rule['expr']!r}"
            for selector in selectors:
                checked += 1
                series = [r["metric"] for r in api(prom, "/api/v1/query", query=selector)["result"]]
                if not series:
                    if selector not in allowed_absent:
                        problems.append(f"{rule['alert']}: {selector} matches no series")
                    continue
                lacking = sorted({f"{s.get('__name__')}{{instance={s.get('instance')!r}}} lacks {sorted(labels - set(s))}"
                                  for s in series if not labels <= set(s)})
                if lacking:
                    problems.append(f"{rule['alert']}: {selector}: {len(lacking)} series without the labels the rule "
                                    f"groups or matches on: {lacking[:3]}")
    return checked, problems


def test_every_alert_rule_selector_matches_live_series(stack):
    """Not the hand-made series of deploy/prometheus/tests: the real brokers' and exporters'
    scrapes. An alert whose selector matches nothing (a renamed metric, a label value no one
    exports) can never fire, and promtool's unit tests, which write their own series, cannot
    see it. Each selector must match a live series carrying the labels the rule aggregates by."""
    checked, problems = rule_selector_problems(stack["prom"], SELECTORS_ABSENT_WHEN_HEALTHY,
                                               skip_groups=set(GROUPS_CHECKED_ELSEWHERE))
    print(f"{checked} alert rule selectors checked against the live stack")
    assert checked >= 20
    assert not problems, f"{len(problems)} alert rule selectors match nothing usable:\n" + "\n".join(problems)
    # An allow-listed selector that matches on the healthy stack is a stale entry: drop it.
    present = [s for s in SELECTORS_ABSENT_WHEN_HEALTHY if api(stack["prom"], "/api/v1/query", query=s)["result"]]
    assert not present, f"allowed to be absent on a healthy stack, yet present: {present} (drop the entry)"


# --- the mirror between the two clusters -----------------------------------------------------

def read_partitions(bootstrap: str, topic: str, ends: dict[int, int]) -> dict[int, list[tuple]]:
    """Records [0, ends[p]) of each partition p as (key, value, timestamp)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "stack-e2e-mirror-reader", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        out = {p: [] for p in ends}
        deadline = time.monotonic() + 90
        while any(len(out[p]) < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"{topic}: read {({p: len(r) for p, r in out.items()})} of {ends}"
            for m in c.consume(num_messages=10000, timeout=0.2):
                if not m.error() and m.offset() < ends[m.partition()]:
                    out[m.partition()].append((m.key(), m.value(), m.timestamp()[1]))
        return out
    finally:
        c.close()


def test_mirror_copies_the_primary_to_the_backup(stack):
    """Every record the traffic produced to the primary's `orders` is on the backup cluster as
    `primary.orders` (MM2's default replication policy), partition for partition, in order, with
    key, value and timestamp; the backup has no record the primary does not (no crash: no
    duplicates)."""
    st = stack["state"]
    primary = ",".join(st["brokers"][b]["kafka"] for b in BROKERS)
    backup = st["brokers"][BACKUP]["kafka"]
    remote = f"primary.{TOPIC}"
    watch = Consumer({"bootstrap.servers": primary, "group.id": "stack-e2e-mirror-watch"})
    try:
        parts = sorted(watch.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions)
        source_end = {p: watch.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10, cached=False)[1] for p in parts}
    finally:
        watch.close()
    assert sum(source_end.values()) > 1000, source_end
    check = Consumer({"bootstrap.servers": backup, "group.id": "stack-e2e-mirror-watch"})
    started = time.monotonic()
    try:
        while True:
            topics = check.list_topics(timeout=10).topics
            if remote in topics and sorted(topics[remote].partitions) == parts:
                target_end = {p: check.get_watermark_offsets(TopicPartition(remote, p), timeout=10, cached=False)[1] for p in parts}
                if target_end == source_end:
                    break
            assert time.monotonic() - started < 30, \
                f"{remote} on the backup not caught up after 30s: {topics.get(remote)} vs {source_end}; mirror log:\n" \
                + Path(st["mirror"]["log"]).read_text(errors="replace")[-3000:]
            time.sleep(0.5)
    finally:
        check.close()
    caught_up = time.monotonic() - started
    want, got = read_partitions(primary, TOPIC, source_end), read_partitions(backup, remote, source_end)
    for p in parts:
        assert got[p] == want[p], f"partition {p}: the backup's {remote} differs from the primary's {TOPIC}"
    print(f"{sum(source_end.values())} records of {TOPIC} on the backup as {remote}, per partition in order "
          f"(caught up {caught_up:.1f}s after the check began)")


def test_the_mirror_log_is_shipped_with_the_stack_logs(stack):
    """lantern-mirror's JSON log goes where the brokers' go: an exporter tails it and ships it to
    the log topic of the cluster it runs beside (the backup's), as host mirror-1, next to
    backup-1's own events; `lantern-exporter logs` finds the mirror's start-up line there."""
    backup = stack["state"]["brokers"][BACKUP]["kafka"]
    exporter = REPO_ROOT / "target" / "release" / "lantern-exporter"
    deadline = time.monotonic() + 20
    while True:
        r = subprocess.run([exporter, "logs", f"--bootstrap-server={backup}", "--logger=lantern.mirror", "--output=json"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        events = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        if any(e.get("host") == MIRROR and e.get("message") == "listening" for e in events):
            break
        assert time.monotonic() < deadline, f"no lantern.mirror 'listening' event from {MIRROR} on the backup's log topic: {events[:5]}"
        time.sleep(1)
    r = subprocess.run([exporter, "logs", f"--bootstrap-server={backup}", "--count-by=host"], capture_output=True, text=True, timeout=60)
    hosts = {line.split()[1] for line in r.stdout.splitlines() if len(line.split()) == 2}
    assert {MIRROR, BACKUP} <= hosts, r.stdout
    print(f"{len(events)} lantern.mirror events shipped to the backup cluster; hosts there: {sorted(hosts)}")


def test_broker_down_alert_reaches_the_webhook_and_resolves(stack):
    """kill -9 broker-1: LanternBrokerDown must reach the webhook within `for` + 2 scrape intervals;
    after restart-broker a resolved notification must follow. Before the kill the healthy stack
    has notified nothing, and the other brokers of the cluster never have LanternBrokerDown."""
    _, for_s = alert_rule("LanternBrokerDown")
    budget = for_s + 2 * SCRAPE_S
    hook: Webhook = stack["hook"]
    pid = stack["state"]["procs"]["broker-1"]["pid"]
    current = json.loads((stack["dir"] / "stack.json").read_text())["procs"]["broker-1"]["pid"]
    assert current == pid
    with hook.lock:
        before = [a["labels"]["alertname"] + "/" + a["labels"].get("instance", "") for _, a in hook.received]
    assert not before, f"the healthy stack already notified alerts: {before}"

    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    firing = None
    while time.time() < killed_at + budget + 30 and firing is None:
        firing = hook.find("LanternBrokerDown", "firing", killed_at, instance="broker-1", cluster=CLUSTER)
        time.sleep(0.2)
    assert firing, f"no LanternBrokerDown notification within {budget + 30}s of kill -9; webhook got {hook.received}"
    latency = firing[0] - killed_at
    print(f"LanternBrokerDown reached the webhook {latency:.1f}s after kill -9 (for {for_s}s + 2 x {SCRAPE_S}s scrape = {budget}s)")
    assert latency <= budget, f"alert took {latency:.1f}s, budget {budget}s"
    alert = firing[1]
    assert alert["labels"]["severity"] == "critical" and alert["annotations"].get("runbook")

    # The replication alerts of the same kill fire in Prometheus, each from the broker that
    # sees it: partitions below min.insync.replicas on the surviving leaders and broker-1's
    # unreplicated "orders" partition offline on the controllers (both `for: 1m`, so already
    # due), under-replicated partitions (`for: 5m`, longer than this test waits: active, pending
    # or firing). Alertmanager has them and holds their notifications back, as
    # alertmanager.yml's inhibit rule says: the broker that is down explains them.
    def active(name: str) -> list[dict]:
        return api(stack["prom"], "/api/v1/query", query=f'ALERTS{{alertname="{name}"}}')["result"]

    for name in ("LanternUnderMinIsrPartitions", "LanternOfflinePartitions"):
        deadline = killed_at + 60 + 2 * SCRAPE_S + 30
        while not [a for a in active(name) if a["metric"]["alertstate"] == "firing"]:
            assert time.time() < deadline, f"{name} not firing in Prometheus after kill -9 of broker-1: {active(name)}"
            time.sleep(0.5)
        print(f"{name} firing in Prometheus {time.time() - killed_at:.1f}s after kill -9: "
              f"{sorted(a['metric'].get('instance', 'cluster') for a in active(name))}")
        assert all(a["metric"].get("instance") != "broker-1" for a in active(name)), active(name)
    under = active("LanternUnderReplicatedPartitions")
    assert under and {a["metric"]["alertstate"] for a in under} <= {"pending", "firing"}, under
    assert all(a["metric"]["instance"] != "broker-1" for a in under), under
    deadline = time.time() + 30
    while True:
        with urllib.request.urlopen(f"http://{stack['state']['alertmanager']}/api/v2/alerts", timeout=10) as r:
            am = {a["labels"]["alertname"]: a["status"] for a in json.loads(r.read())}
        if all(n in am for n in ("LanternUnderMinIsrPartitions", "LanternOfflinePartitions")):
            break
        assert time.time() < deadline, f"Alertmanager does not have the replication alerts: {am}"
        time.sleep(0.5)
    for name in ("LanternUnderMinIsrPartitions", "LanternOfflinePartitions"):
        assert am[name]["state"] == "suppressed" and am[name]["inhibitedBy"], (name, am[name])
        assert not hook.find(name, "firing", killed_at), f"{name} was notified although LanternBrokerDown inhibits it"

    restarted_at = time.time()
    run_stack("restart-broker", "--dir", stack["dir"], "broker-1", "--timeout", 60)
    resolved = None
    while time.time() < restarted_at + 60 and resolved is None:
        resolved = hook.find("LanternBrokerDown", "resolved", restarted_at, instance="broker-1")
        time.sleep(0.2)
    assert resolved, f"no resolved notification within 60s of the restart; webhook got {hook.received}"
    print(f"resolved notification {resolved[0] - restarted_at:.1f}s after the restart")
    for other in BROKERS[1:]:
        assert not hook.find("LanternBrokerDown", "firing", 0, instance=other), other
    # broker-1 catches up and rejoins the ISRs, its partition has a leader again: the
    # replication alerts resolve.
    deadline = time.time() + 60
    for name in ("LanternUnderMinIsrPartitions", "LanternOfflinePartitions", "LanternUnderReplicatedPartitions"):
        while active(name):
            assert time.time() < deadline, f"{name} still active 60s after the restart: {active(name)}"
            time.sleep(1)
    print(f"the replication alerts resolved {time.time() - restarted_at:.1f}s after the restart")


# Alerts that a fault rightly raises and that cannot resolve within a minute of the repair,
# because their expression looks back further: {alert: why}. They may stay pending (never
# firing) after the repair, once request_errors_now() shows their cause has stopped.
PENDING_AFTER_A_FAULT = {
    # While broker-2's partitions are offline, the mirror's consumer (and any client of those
    # topics) keeps asking every broker for their leaders: Metadata responses carry
    # LEADER_NOT_AVAILABLE. The rule's 5m rate window keeps the ratio up for 5 minutes after
    # the repair; its `for: 10m` keeps it pending.
    "LanternRequestErrorRateHigh": "5m rate window over the outage",
}


def request_errors_now(prom: str, alert: dict) -> bool:
    """Whether the broker of `alert` answered `request` with errors in the last 10 s."""
    expr = (f'sum(increase(kafka_network_requestmetrics_errors_total{{error!="NONE",instance="{alert.get("instance")}",'
            f'request="{alert.get("request")}"}}[10s]))')
    return any(float(r["value"][1]) > 0 for r in api(prom, "/api/v1/query", query=expr)["result"])


def broker_metric(http: str, name: str) -> float:
    """An unlabelled gauge from the broker's own /metrics (no scrape in between)."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"http://{http}/metrics has no {name}")


# Last in the module: it leaves notifications behind (the partitions on the failed directory
# go offline or under their minimum ISR, and are notified: no broker is down to inhibit them),
# which the broker-down test, which wants a stack that has notified nothing, must not see.
def test_offline_log_dir_alert_reaches_the_webhook_and_resolves_after_a_restart(stack):
    """JBOD (two log dirs per broker): broker-2's second log dir becomes read-only (a read-only
    tmpfs mounted over it, as tests/test_disk_full.py does). The broker takes it offline after
    three failed probes and goes on with its first dir; LanternOfflineLogDirectories for
    broker-2 (and no other broker) must reach the webhook within `for` + 2 scrape intervals of
    the broker reporting the dir offline, with the rule's labels, while broker-2 stays up
    (LanternBrokerDown never fires for it). A dir comes back online only with a restart
    (Kafka's JBOD behaviour, kept by Lantern): unmounted and restarted, the alert resolves, and
    every alert the failure raised is gone again."""
    if not mounts.can_mount():
        pytest.skip(mounts.CANNOT_MOUNT)
    name = "broker-2"
    rule, for_s = alert_rule("LanternOfflineLogDirectories")
    budget = for_s + 2 * SCRAPE_S
    hook: Webhook = stack["hook"]
    prom = stack["prom"]
    st = json.loads((stack["dir"] / "stack.json").read_text())  # the broker-down test restarted broker-1
    broker = st["brokers"][name]
    assert len(broker["log_dirs"]) == 2, broker["log_dirs"]
    failing = Path(broker["log_dirs"][1])
    offline_metric = "kafka_log_logmanager_offlinelogdirectorycount"
    assert broker_metric(broker["http"], offline_metric) == 0
    assert not active_alerts(prom, "LanternOfflineLogDirectories")
    alerts_before = {(a["alertname"], a.get("instance", "")) for a in active_alerts(prom)}
    hosted_before = broker_metric(broker["http"], "kafka_server_replicamanager_partitioncount")
    pid = st["procs"][name]["pid"]

    mounted_at = time.time()
    with mounts.read_only_over(failing):
        while broker_metric(broker["http"], offline_metric) != 1:
            assert time.time() < mounted_at + 30, f"{failing} (read-only) not offline on {name} after 30s"
            time.sleep(0.2)
        offline_at = time.time()
        print(f"{name} took {failing} offline {offline_at - mounted_at:.1f}s after it became read-only")
        # Its partitions on the failed dir are no longer hosted; those on the first dir are.
        hosted = broker_metric(broker["http"], "kafka_server_replicamanager_partitioncount")
        assert 0 < hosted < hosted_before, f"{name} hosts {hosted} partitions, {hosted_before} before"

        firing = None
        while time.time() < offline_at + budget + 30 and firing is None:
            firing = hook.find("LanternOfflineLogDirectories", "firing", mounted_at, instance=name)
            time.sleep(0.2)
        assert firing, (f"no LanternOfflineLogDirectories notification for {name} within {budget + 30}s of the dir "
                        f"going offline; Prometheus has {active_alerts(prom, 'LanternOfflineLogDirectories')}; "
                        f"webhook got {[a['labels'] for t, a in hook.received if t >= mounted_at]}")
        latency = firing[0] - offline_at
        print(f"LanternOfflineLogDirectories reached the webhook {latency:.1f}s after {name} reported the dir offline "
              f"({firing[0] - mounted_at:.1f}s after the mount; for {for_s}s + 2 x {SCRAPE_S}s scrape = {budget}s)")
        assert latency <= budget, f"alert took {latency:.1f}s, budget {budget}s"
        alert = firing[1]
        assert alert["labels"] == {"alertname": "LanternOfflineLogDirectories", "cluster": CLUSTER, "instance": name,
                                   "severity": rule["labels"]["severity"]}, alert["labels"]
        assert alert["annotations"]["summary"] == f"1 offline log directories on {name}", alert["annotations"]
        assert alert["annotations"].get("runbook"), alert["annotations"]
        others = [a["labels"] for t, a in hook.received
                  if a["labels"].get("alertname") == "LanternOfflineLogDirectories" and a["labels"].get("instance") != name]
        assert not others, f"LanternOfflineLogDirectories notified for brokers whose dirs are fine: {others}"

        # The broker stayed up all along: same process, live, scraped.
        assert st["procs"][name]["pid"] == pid and os.path.exists(f"/proc/{pid}")
        with urllib.request.urlopen(f"http://{broker['http']}/health/live", timeout=10) as r:
            assert r.status == 200
        up = api(prom, "/api/v1/query", query=f'up{{job="lantern-broker",instance="{name}"}}')["result"]
        assert [float(u["value"][1]) for u in up] == [1.0], up
        assert not hook.find("LanternBrokerDown", "firing", 0, instance=name)
        assert not [a for a in active_alerts(prom, "LanternBrokerDown") if a.get("instance") == name]
        raised = sorted({(a["alertname"], a.get("instance", "")) for a in active_alerts(prom)} - alerts_before)
        print(f"alerts active in Prometheus with the dir offline: {raised}")
    unmounted_at = time.time()

    # Unmounted (the files underneath are the dir's own again), the dir comes back with a restart.
    run_stack("restart-broker", "--dir", stack["dir"], name, "--timeout", 60)
    restarted_at = time.time()
    assert broker_metric(broker["http"], offline_metric) == 0
    resolved = None
    while time.time() < restarted_at + 60 and resolved is None:
        resolved = hook.find("LanternOfflineLogDirectories", "resolved", unmounted_at, instance=name)
        time.sleep(0.2)
    assert resolved, f"no resolved LanternOfflineLogDirectories within 60s of the restart; webhook got {hook.received}"
    print(f"resolved notification {resolved[0] - restarted_at:.1f}s after {name} was ready again "
          f"({restarted_at - unmounted_at:.1f}s restart)")
    assert not hook.find("LanternBrokerDown", "firing", 0, instance=name), "LanternBrokerDown fired for the broker"

    # The stack is as healthy as before: every alert the failure raised (offline or under-min-ISR
    # partitions of the failed dir) resolves once broker-2 has caught up; an alert over a long
    # rate window may only stay pending, once what it counts has stopped.
    deadline = time.time() + 60
    while True:
        raised = [a for a in active_alerts(prom) if (a["alertname"], a.get("instance", "")) not in alerts_before]
        lingering = [a for a in raised if a["alertname"] in PENDING_AFTER_A_FAULT and a["alertstate"] == "pending"
                     and not request_errors_now(prom, a)]
        unresolved = sorted((a["alertname"], a.get("instance", ""), a["alertstate"]) for a in raised if a not in lingering)
        if not unresolved:
            break
        assert time.time() < deadline, f"still active 60s after the restart: {unresolved}"
        time.sleep(1)
    print(f"every alert the failure raised resolved {time.time() - restarted_at:.1f}s after the restart"
          + (f"; still pending with their cause gone: {sorted((a['alertname'], a.get('instance'), a.get('request')) for a in lingering)}"
             if lingering else ""))

