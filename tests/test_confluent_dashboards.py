"""Claim: Confluent jmx-monitoring-stacks' dashboards for KRaft clusters work against a Lantern
cluster run with `metrics.naming=confluent`: kafka-cluster-kraft.json, kafka-topics-kraft.json
and kraft.json, and their dashboards-old-exporter versions (their PromQL as fixtures in
tests/fixtures/kraft_dashboards, with the source commit), queried through a real Prometheus, as
their users open them.

A real 3-node cluster (every node broker and controller) and Debian's Prometheus scraping each
node as both job="kafka-broker" and job="kafka-controller", as Confluent's dev-toolkit scrapes
its combined nodes, with its `env` label. Real clients give the panels something to show:
confluent-kafka produces to and a consumer group reads and commits a replicated topic,
kafka-python pinned to Kafka 0.10.1 produces the old message format (the conversion panels), a
keyless record is refused by a compacted topic, an Admin client deletes a topic that does not
exist (the errors panel), and one node's log dir holds a `-stray` directory (the stray partition
panels).

- every Kafka-side metric the dashboards select is served by each of the three brokers with the
  label names they match on or group by; every label value they select is served by some broker
  (a request type only where such requests arrived);
- every expression of every Kafka-side panel returns data once its template variables are
  resolved as Grafana resolves them, and a few values are checked against what was done.

Allowed to return nothing, and then required to: exactly the expressions selecting what
docs/metrics.md lists under "Not served" (tiered storage, the JVM), which this test reads from
there, so the allow-list and the documentation cannot drift apart.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import NewTopic

import clients
import quorum_stack
from test_kraft_dashboards import (load, resolve_variables, scrape, selectors, served_problems, substitute,
                                   variable_selectors)

FIXTURES = ["confluent-kafka-cluster-kraft.exprs.json", "confluent-kafka-topics-kraft.exprs.json",
            "confluent-kraft.exprs.json", "confluent-kafka-cluster-kraft-old-exporter.exprs.json",
            "confluent-kafka-topics-kraft-old-exporter.exprs.json", "confluent-kraft-old-exporter.exprs.json"]
METRICS_MD = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
TOPIC = "orders"
COMPACTED = "compacted-orders"
GROUP = "dashboard-readers"
N_MESSAGES = 300
N_OLD_FORMAT = 20
STRAY_BYTES = 4096


def not_served() -> dict[str, str]:
    """docs/metrics.md's "Not served" table: name -> why."""
    text = METRICS_MD.read_text()
    section = text.split("\n## Not served\n", 1)
    assert len(section) == 2, "docs/metrics.md has no 'Not served' section"
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \|$", section[1], re.M)
    assert rows, "docs/metrics.md's 'Not served' table is empty"
    return dict(rows)


def plain(expr: str) -> str:
    """`${var}` as `$var`: the selector parser takes no braces inside label matchers."""
    return re.sub(r"\$\{(\w+)\}", r"$\1", expr)


def uses(d: dict):
    """(where, metric, matchers, grouping) of every selector of a dashboard's panels and
    variables."""
    for v in d["variables"]:
        for metric, matchers in variable_selectors({**v, "query": plain(v["query"])}):
            yield f"variable {v['name']}", metric, matchers, set()
    for p in d["panels"]:
        for e in p["exprs"]:
            sel, grouping = selectors(plain(e))
            for metric, matchers in sel:
                yield f"panel {p['title']!r}", metric, matchers, grouping


def selects_not_served(expr: str, left_out: dict) -> bool:
    return any(metric in left_out for metric, _ in selectors(expr)[0])


def test_not_served_list_is_exactly_what_the_dashboards_select_and_lantern_lacks():
    left_out = not_served()
    selected = {metric for f in FIXTURES for _, metric, _, _ in uses(load(f))}
    assert set(left_out) <= selected, f"listed as not served but no dashboard selects them: {set(left_out) - selected}"
    for f in FIXTURES:
        d = load(f)
        assert d["metrics.naming"] == "confluent" and re.fullmatch(r"[0-9a-f]{40}", d["source"]["commit"])
        # A panel may mix (the storage distribution: tiered and local sizes); an expression
        # may not, or one not served would hide behind one that is.
        for p in d["panels"]:
            for e in p["exprs"]:
                names = {m for m, _ in selectors(e)[0]}
                assert not (names & set(left_out)) or names <= set(left_out), f"{f} {p['title']!r}: {e}"


# --------------------------------------------------------------------------- live cluster
def workload(nodes) -> None:
    bootstrap = ",".join(n.bootstrap for n in nodes)
    admin = clients.admin(bootstrap)
    admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=3)])[TOPIC].result(timeout=30)
    clients.wait_topic(bootstrap, TOPIC, 3)
    clients.produce_confluent(bootstrap, TOPIC, clients.keyed_messages(N_MESSAGES))
    # kafka-python as a Kafka 0.10.1 client: Produce v2 with magic-1 messages, up-converted.
    clients.produce_kafka_python(bootstrap, TOPIC, clients.keyed_messages(N_OLD_FORMAT), api_version=(0, 10, 1))
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.subscribe([TOPIC])
        got, committed, deadline = 0, False, time.monotonic() + 60
        while got < N_MESSAGES + N_OLD_FORMAT:
            assert time.monotonic() < deadline, f"the group read {got} of {N_MESSAGES + N_OLD_FORMAT} messages"
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error() is None:
                    got += 1
            if got and not committed:
                c.commit(offsets=c.position(c.assignment()), asynchronous=False)
                committed = True
        c.commit(offsets=c.position(c.assignment()), asynchronous=False)
    finally:
        c.close()
    # A record without a key, refused by a compacted topic (NoKeyCompactedTopicRecordsPerSec).
    clients.create_topic(bootstrap, COMPACTED, 1, {"cleanup.policy": "compact"})
    p = clients.producer(bootstrap, **{"message.timeout.ms": 10000})
    refused = []
    p.produce(COMPACTED, value=b"no key", on_delivery=lambda err, _m: refused.append(err))
    p.flush(15)
    assert len(refused) == 1 and refused[0] is not None, f"a keyless record on a compacted topic: {refused}"
    # An error response: DeleteTopics of a topic that does not exist.
    with pytest.raises(Exception):
        admin.delete_topics(["no-such-topic"], operation_timeout=10)["no-such-topic"].result(timeout=30)
    # What set_aside_stray leaves in a log dir: a directory of records the metadata no longer has.
    stray = nodes[0].data_dirs[0] / "gone-0.0123456789abcdef0123456789abcdef-stray"
    stray.mkdir()
    (stray / "00000000000000000000.log").write_bytes(b"\0" * STRAY_BYTES)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("confluent-dashboards")
    nodes = quorum_stack.start_cluster(d, props={"metrics.naming": "confluent"})
    prom = None
    try:
        prom = quorum_stack.Prometheus(d / "prometheus", nodes, jobs=("kafka-broker", "kafka-controller"))
        workload(nodes)
        prom.wait_scrapes(len(nodes), scrapes=3)
        time.sleep(2.5 * quorum_stack.SCRAPE_S)  # two scrapes after the workload, for rate()
        yield nodes, prom
    finally:
        if prom:
            prom.stop()
        quorum_stack.stop_all(nodes)


def test_every_kafka_side_metric_and_label_is_served(stack):
    nodes, _ = stack
    left_out = not_served()
    scrapes = {b.name: scrape(b) for b in nodes}
    problems, checked = [], set()
    for f in FIXTURES:
        for where, metric, matchers, grouping in uses(load(f)):
            if metric in left_out:
                assert all(not scr.series(metric) for scr in scrapes.values()), f"{metric} is served: take it off the list"
                continue
            checked.add(metric)
            # Names and label names: on every broker. Label values: on some broker. `quantile`
            # is the summary's own label (served_problems leaves it out of the label names).
            label_names = (grouping | {m[0] for m in matchers}) - {"quantile"}
            per_node = {name: served_problems(scr, metric, [], label_names)
                        for name, scr in scrapes.items()}
            if any(m[0] == "quantile" for m in matchers):
                per_node = {name: ps + ([] if any("quantile" in lb for lb, _ in scrapes[name].series(metric))
                                        else [f"{metric} is not a summary (no quantile label)"])
                            for name, ps in per_node.items()}
            problems += [f"{f} {where} on {name}: {p}" for name, ps in per_node.items() for p in ps]
            if not any(per_node.values()):
                valued = [m for m in matchers if m[0] != "quantile"]
                each = [served_problems(scr, metric, valued, set()) for scr in scrapes.values()]
                if all(each):
                    problems += [f"{f} {where} on no broker: {p}" for p in each[0]]
    assert not problems, "\n".join(problems)
    assert len(checked) >= 60, sorted(checked)


def panel_values(values: dict, options: dict, d: dict, expr: str) -> dict:
    """The variables for one expression. Where it matches an "All" variable with `=` (the
    storage distribution's `instance="$instance"`, which no "All" value can satisfy), the
    first value, as a user picking one instance would."""
    out = dict(values)
    for v in d["variables"]:
        if v.get("includeAll") and re.search(r'=\s*"\$\{?' + re.escape(v["name"]) + r'\}?"', expr):
            out[v["name"]] = options[v["name"]][0]
    return out


def test_every_kafka_side_panel_returns_data_and_the_left_out_ones_none(stack):
    nodes, prom = stack
    left_out = not_served()
    empty, unexpected, results = [], [], {}
    for f in FIXTURES:
        d = load(f)
        options: dict[str, list[str]] = {}
        values = resolve_variables(prom, d, options)
        for p in d["panels"]:
            for e in p["exprs"]:
                q = substitute(e, panel_values(values, options, d, e))
                assert "$" not in q, q
                got = prom.query(q)
                results[(f, p["title"], e)] = got
                if selects_not_served(e, left_out):
                    if got:
                        unexpected.append(f"{f} panel {p['title']!r} (listed as not served): {q} -> {got}")
                elif not got:
                    empty.append(f"{f} panel {p['title']!r}: {q}")
    assert not empty, "no data for:\n" + "\n".join(empty)
    assert not unexpected, "\n".join(unexpected)

    def values_of(title, fixture="confluent-kafka-cluster-kraft.exprs.json", index=0):
        e = [p for p in load(fixture)["panels"] if p["title"] == title][0]["exprs"][index]
        return [float(r["value"][1]) for r in results[(fixture, title, e)]]

    assert values_of("Brokers Online") == [3.0]
    assert values_of("Active Controllers") == [1.0], "one active controller"
    assert values_of("Online Partitions")[0] >= 3
    # The dashboard sums the per-topic series and the all-topics one (no topic label): twice.
    assert values_of("Number of produced message conversion") == [2.0 * N_OLD_FORMAT]
    assert values_of("Stray Partitions Count") == [1.0]
    assert max(values_of("Stray Partitions Total Size")) >= STRAY_BYTES
    assert max(values_of("Replica - Min Fetch Rate")) > 0, "followers fetch from the leaders"
    assert len(values_of("Connections creation rate per instance")) == 3
    assert all(v > 0 for v in values_of("Connections creation rate per instance"))
    commits = prom.query('sum(kafka_network_requestmetrics_requestspersec{job="kafka-broker",request="OffsetCommit"})')
    assert [float(r["value"][1]) for r in commits] == [2.0], "the group committed twice"
    assert all(0 <= v <= 1 for v in values_of("Request Handler Avg Percent"))
    assert values_of("FetchSessionCache - Sessions in cache") == [0.0] * 3, "Lantern keeps no fetch sessions"
    no_key = prom.query(f'sum(kafka_server_brokertopicmetrics_nokeycompactedtopicrecordspersec{{job="kafka-broker",topic="{COMPACTED}"}})')
    assert [float(r["value"][1]) for r in no_key] == [1.0], no_key
    topics = "confluent-kafka-topics-kraft.exprs.json"
    totals = {r["metric"]["topic"]: float(r["value"][1])
              for r in results[(topics, "Total message count",
                                [p for p in load(topics)["panels"] if p["title"] == "Total message count"][0]["exprs"][0])]}
    # Summed over the three replicas of each partition.
    assert totals.get(TOPIC) == 3.0 * (N_MESSAGES + N_OLD_FORMAT), totals

