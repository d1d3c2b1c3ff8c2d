"""Claim: the KRaft dashboards people already use work unmodified against a Lantern cluster:
Strimzi's strimzi-kraft.json under the default `metrics.naming=strimzi`, and Confluent
jmx-monitoring-stacks' kraft.json (and its old-exporter twin) under `metrics.naming=confluent`.
Their PromQL is shipped as fixtures (tests/fixtures/kraft_dashboards/*.exprs.json: every panel's
expressions and every variable's query, with the source repository, path and commit).

Against a real 3-node cluster (every node broker and controller):
- every Kafka-side metric those expressions select is served by each of the three brokers, with
  every label the expressions match on or group by that the broker (not the scrape) provides;
- a real Prometheus scraping the three brokers, with the target labels the dashboards' own
  scrape setups add (Strimzi's PodMonitor: namespace, pod, kubernetes_pod_name,
  strimzi_io_cluster, strimzi_io_name, container; Confluent's stack: job="kafka-controller",
  env), resolves every template variable as Grafana would (query_result() and its regex,
  label_values()) and returns data for every expression of every Kafka-side panel; a few values
  are checked against the cluster (3 brokers, one leader, no fenced broker).

Excluded, and listed exactly in EXCLUDED_PANELS: panels whose metrics come from the JVM
(jvm_*) or from Kubernetes itself (cAdvisor's container_*, the kubelet's kubelet_volume_*); a
Rust process has neither. Labels that only a Kubernetes or Confluent scrape adds are checked
by name only (TARGET_LABELS): the broker cannot serve them and must not.
"""

from __future__ import annotations

import json
import math
import re
import urllib.request
from pathlib import Path

import pytest

import quorum_stack
from test_metrics import Scrape

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kraft_dashboards"
BOARDS = {
    "strimzi": ["strimzi-kraft.exprs.json"],
    "confluent": ["confluent-kraft.exprs.json", "confluent-kraft-old-exporter.exprs.json"],
}

# Labels that the scrape adds (Prometheus target labels), never the exporter.
TARGET_LABELS = {"namespace", "pod", "kubernetes_pod_name", "strimzi_io_cluster", "strimzi_io_name", "container",
                 "persistentvolumeclaim", "job", "env", "instance"}
# Metric name prefixes of panels that are not Kafka's: the JVM's and Kubernetes' own metrics.
EXCLUDED_PREFIXES = ("jvm_", "container_", "kubelet_")
EXCLUDED_PANELS = {
    "strimzi-kraft.exprs.json": {"Memory Usage", "CPU Usage", "Available Disk Space", "JVM Memory Used", "JVM GC Time",
                                 "JVM GC Count", "JVM Thread Count"},
    "confluent-kraft.exprs.json": {"JVM Memory Used", "Time spent in GC"},
    "confluent-kraft-old-exporter.exprs.json": {"JVM Memory Used", "Time spent in GC"},
}

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
            "inf", "nan"}
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r'(?<![\w:.$"])([a-zA-Z_:][\w:]*)(?![\w:])\s*(\{[^}]*\})?(?!\s*\()')
_MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"')


def selectors(expr: str) -> tuple[list[tuple[str, list[tuple[str, str, str]]]], set[str]]:
    """The vector selectors of a PromQL expression, as (metric, [(label, op, value)]), and the
    labels it groups by. Enough PromQL for dashboard queries: no nested braces in strings."""
    grouping = {label.strip() for g in _GROUPING.findall(expr) for label in g.split(",") if label.strip()}
    rest = _GROUPING.sub(" ", expr)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # range durations
    found = []
    for name, block in _SELECTOR.findall(rest):
        if name in KEYWORDS or name.isdigit():
            continue
        found.append((name, _MATCHER.findall(block or "")))
    return found, grouping


def test_selector_parsing_on_literal_expressions():
    sel, grouping = selectors('sum(irate(kafka_server_raftchannelmetrics_request_total{namespace="$ns",'
                              'kubernetes_pod_name=~"$c-$n"}[5m])) by (kubernetes_pod_name)')
    assert sel == [("kafka_server_raftchannelmetrics_request_total", [("namespace", "=", "$ns"), ("kubernetes_pod_name", "=~", "$c-$n")])]
    assert grouping == {"kubernetes_pod_name"}
    sel, grouping = selectors("max(kafka_server_raftmetrics_current_state) by (kubernetes_pod_name, current_state)")
    assert sel == [("kafka_server_raftmetrics_current_state", [])] and grouping == {"kubernetes_pod_name", "current_state"}
    sel, _ = selectors('sum without(area)(jvm_memory_used_bytes{job="kafka-controller",env="$env"})')
    assert [s[0] for s in sel] == ["jvm_memory_used_bytes"]
    sel, _ = selectors('irate(process_cpu_seconds_total{job="kafka-controller",env="$env"}[5m])*100')
    assert [s[0] for s in sel] == ["process_cpu_seconds_total"]


def load(fixture: str) -> dict:
    return json.loads((FIXTURES / fixture).read_text())


def variable_selectors(var: dict) -> list:
    """query_result(<PromQL>) and label_values([<PromQL>,] label) variables."""
    q = var["query"]
    m = re.fullmatch(r"query_result\((.*)\)", q, re.S)
    if m:
        return selectors(m.group(1))[0]
    m = re.fullmatch(r"label_values\((?:(.*),)?\s*(\w+)\s*\)", q, re.S)
    assert m, f"variable query {q!r} not understood"
    return selectors(m.group(1))[0] if m.group(1) else []


def is_excluded(metric: str) -> bool:
    return metric.startswith(EXCLUDED_PREFIXES)


def test_fixtures_name_their_source_and_exclusions_are_exact():
    for naming, fixtures in BOARDS.items():
        for f in fixtures:
            d = load(f)
            assert d["metrics.naming"] == naming
            assert re.fullmatch(r"[0-9a-f]{40}", d["source"]["commit"]) and d["source"]["path"].endswith(".json")
            excluded = {p["title"] for p in d["panels"] for e in p["exprs"] for name, _ in selectors(e)[0] if is_excluded(name)}
            mixed = {p["title"] for p in d["panels"]
                     if {is_excluded(n) for e in p["exprs"] for n, _ in selectors(e)[0]} == {True, False}}
            assert excluded == EXCLUDED_PANELS[f], f"{f}: excluded panels are now {sorted(excluded)}"
            assert not mixed, f"{f}: panels mixing Kafka-side and excluded metrics: {mixed}"
            kafka_side = [p for p in d["panels"] if p["title"] not in excluded]
            assert len(kafka_side) >= 10, f"{f}: only {len(kafka_side)} Kafka-side panels"


# --------------------------------------------------------------------------- live cluster
@pytest.fixture(scope="module", params=sorted(BOARDS))
def stack(request, tmp_path_factory):
    naming = request.param
    d = tmp_path_factory.mktemp(f"kraft-{naming}")
    nodes = quorum_stack.start_cluster(d, props={"metrics.naming": naming})
    prom = None
    try:
        prom = quorum_stack.Prometheus(d / "prometheus", nodes)
        prom.wait_scrapes(len(nodes), scrapes=3)
        yield naming, nodes, prom
    finally:
        if prom:
            prom.stop()
        quorum_stack.stop_all(nodes)


def scrape(node) -> Scrape:
    with urllib.request.urlopen(node.http_base + "/metrics", timeout=10) as r:
        return Scrape(r.read().decode("utf-8"))


def served_problems(scr: Scrape, metric: str, matchers, grouping) -> list[str]:
    series = scr.series(metric)
    if not series:
        return [f"{metric} is not served"]
    problems = []
    keys = {k for lb, _ in series for k in lb if k != "quantile"}
    wanted = {m[0] for m in matchers} | grouping
    for label in sorted(wanted - TARGET_LABELS - keys):
        problems.append(f"{metric} has no label {label} (it has {sorted(keys)})")
    for label, op, value in matchers:
        if label in TARGET_LABELS or "$" in value:
            continue
        values = {lb.get(label, "") for lb, _ in series}
        if op == "=" and value not in values:
            problems.append(f"{metric}{{{label}={value!r}}}: served values {sorted(values)}")
        if op == "=~" and not any(re.fullmatch(value, v) for v in values):
            problems.append(f"{metric}{{{label}=~{value!r}}}: served values {sorted(values)}")
    return problems


def test_every_kafka_side_metric_and_label_is_served_by_every_broker(stack):
    naming, nodes, _ = stack
    scrapes = {b.name: scrape(b) for b in nodes}
    problems, checked = [], set()
    for f in BOARDS[naming]:
        d = load(f)
        uses = [(f"variable {v['name']}", s, set()) for v in d["variables"] for s in variable_selectors(v)]
        uses += [(f"panel {p['title']!r}", s, g) for p in d["panels"] for e in p["exprs"] for s, g in
                 ((s, selectors(e)[1]) for s in selectors(e)[0])]
        for where, (metric, matchers), grouping in uses:
            if is_excluded(metric):
                continue
            checked.add(metric)
            for name, scr in scrapes.items():
                problems += [f"{f} {where} on {name}: {p}" for p in served_problems(scr, metric, matchers, grouping)]
    assert not problems, "\n".join(problems)
    assert len(checked) >= 12, sorted(checked)


def regex_literal(value: str) -> str:
    """A label value as a regex matching only itself, inside a PromQL double-quoted string."""
    return "".join("\\\\" + c if c in ".^$*+?()[]{}|\\" else c for c in value)


def resolve_variables(prom, d: dict, options: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Each variable's value as Grafana would pick it: the query's results through the
    variable's regex, "All" where it offers one (its allValue, or without one every value as
    a regex alternation), else the first value. label_values(<selector>, label) asks for the
    label's values on the selector's series only. `options`, when given, receives each
    variable's values."""
    values: dict[str, str] = {}
    for v in d["variables"]:
        query = substitute(v["query"], values)
        m = re.fullmatch(r"query_result\((.*)\)", query, re.S)
        if m:
            lines = []
            for r in prom.query(m.group(1)):
                labels = ", ".join(f'{k}="{val}"' for k, val in sorted(r["metric"].items()) if k != "__name__")
                lines.append(f'{r["metric"].get("__name__", "")}{{{labels}}} {r["value"][1]} {int(float(r["value"][0]) * 1000)}')
        else:
            selector, label = re.fullmatch(r"label_values\((?:(.*),)?\s*(\w+)\s*\)", query, re.S).groups()
            lines = prom.api(f"/api/v1/label/{label}/values", **({"match[]": selector.strip()} if selector else {}))
        regex = substitute(v.get("regex") or "", values).strip("/")
        found = []
        for line in lines:
            if not regex:
                found.append(line)
            elif (mm := re.match(regex, line)) is not None:
                found.append(mm.group(1) if mm.groups() else line)
        assert found, f"variable {v['name']}: {query} gave {lines} and nothing matches {regex!r}"
        if options is not None:
            options[v["name"]] = found
        if v.get("includeAll") and v.get("allValue"):
            values[v["name"]] = v["allValue"]
        elif v.get("includeAll"):
            values[v["name"]] = "(" + "|".join(regex_literal(x) for x in found) + ")"
        else:
            values[v["name"]] = found[0]
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    return expr


def test_every_kafka_side_panel_returns_data_in_prometheus(stack):
    naming, nodes, prom = stack
    empty, results = [], {}
    for f in BOARDS[naming]:
        d = load(f)
        values = resolve_variables(prom, d)
        for p in d["panels"]:
            if p["title"] in EXCLUDED_PANELS[f]:
                continue
            for e in p["exprs"]:
                q = substitute(e, values)
                assert "$" not in q, q
                got = prom.query(q)
                results[(f, p["title"], e)] = got
                if not got:
                    empty.append(f"{f} panel {p['title']!r}: {q}")
    assert not empty, "no data for:\n" + "\n".join(empty)

    def one(fixture, title, index=0):
        d = load(fixture)
        e = [p for p in d["panels"] if p["title"] == title][0]["exprs"][index]
        return results[(fixture, title, e)]

    if naming == "strimzi":
        f = "strimzi-kraft.exprs.json"
        states = sorted(r["metric"]["current_state"] for r in one(f, "Current Raft State"))
        assert states == ["follower", "follower", "leader"], states
        leaders = {r["value"][1] for r in one(f, "Current Quorum Leader")}
        assert len(leaders) == 1 and leaders <= {"1", "2", "3"}, leaders
        assert len(one(f, "Log End Offset")) == 3
    else:
        for f in BOARDS["confluent"]:
            # sum/count over the controllers: right only because every controller reports it
            assert [float(r["value"][1]) for r in one(f, "Brokers Count")] == [3.0]
            assert [float(r["value"][1]) for r in one(f, "Fenced Broker Count")] == [0.0]
            leader = float(one(f, "Current Leader")[0]["value"][1])
            assert leader in (1.0, 2.0, 3.0), leader
            assert float(one(f, "Metadata Error Count")[0]["value"][1]) == 0.0
            hw = float(one(f, "Health")[0]["value"][1])
            assert not math.isnan(hw) and hw > 0, hw
