"""Claim: Strimzi's Kafka Exporter dashboard (strimzi-kafka-exporter.json) works unmodified
against a Lantern cluster, which serves kafka_exporter's families itself (no exporter process).
Its PromQL is shipped as a fixture (tests/fixtures/kraft_dashboards/strimzi-kafka-exporter.exprs.json:
every panel's expressions and every variable's query, with the source repository, path and commit).

kafka_exporter is one process asking the whole cluster; Lantern's brokers split its families so
that summing over the cluster, as the dashboard does, counts everything once:
- kafka_brokers, kafka_broker_info, kafka_topic_partitions: the live broker with the lowest id;
- kafka_topic_partition_*: the partition's leader;
- kafka_consumergroup_*: the group's coordinator.
The dashboard also reads two of Kafka's own partition gauges (kafka.cluster:type=Partition
AtMinIsr and UnderMinIsr, named by Strimzi's JMX exporter rules): Kafka registers them on every
replica and reports a nonzero value on the leader only (Partition.scala), so their sums count
each partition once too.

Against a real 3-node cluster (every node broker and controller; __consumer_offsets with
replication factor 3 as in Kafka), a topic of replication factor 3 with records in every
partition, and a consumer group that committed offsets and left:
- each family is served by exactly the broker that should serve it (read from each broker's
  /metrics), with kafka_exporter's labels and values matching Metadata, FindCoordinator and what
  the clients did: kafka_brokers 3, one kafka_broker_info per broker (id, address), every
  partition's leader id, replica and in-sync counts, preferred-leader flag, offsets, the group's
  committed offsets, lag and members;
- a real Prometheus scraping the three brokers, with the target labels Strimzi's PodMonitor
  adds (namespace, strimzi_io_cluster, ... see quorum_stack), resolves every template variable as
  Grafana would and returns data for every expression of every panel, with the values the
  cluster implies (sum(kafka_brokers) is 3, Topics/Partitions/Replicas/In Sync Replicas equal
  Metadata's, nothing under-replicated, offsets and lag per partition);
- kill -9 of the broker with the lowest id (the one serving the broker families): once it is
  fenced, every partition it held is under-replicated (1) with 2 in-sync replicas, served by its
  new leader only; the broker families move to the next broker (kafka_brokers 2); the group's
  families stay served by its (possibly new) coordinator; the dashboard's panels follow.

Excluded panels: none (EXCLUDED_PANELS is empty): every panel reads a Kafka-side metric.
Labels that only the Kubernetes scrape adds are checked by name only (TARGET_LABELS).
The module's live tests share one cluster; the kill test changes it and comes last.
"""

from __future__ import annotations

import re
import struct
import time

import pytest
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

import clients
import quorum_stack
from cluster import Metadata, find_coordinator, metadata
from test_kraft_dashboards import TARGET_LABELS, load, resolve_variables, scrape, selectors, served_problems, \
    substitute, variable_selectors
from test_metrics import Scrape, consume_with_group

FIXTURE = "strimzi-kafka-exporter.exprs.json"
# Panel title -> why it cannot apply to Lantern. None: every panel reads a Kafka-side metric.
EXCLUDED_PANELS: dict[str, str] = {}

# The labels each family the dashboard may use carries, as kafka_exporter (or, for the
# kafka_cluster_partition_* gauges, Strimzi's JMX exporter rules) names them.
BROKER_FAMILIES = {  # the live broker with the lowest node id
    "kafka_brokers": set(),
    "kafka_broker_info": {"address", "id"},
    "kafka_topic_partitions": {"topic"},
}
PARTITION_FAMILIES = {name: {"topic", "partition"} for name in (  # the partition's leader
    "kafka_topic_partition_current_offset", "kafka_topic_partition_oldest_offset", "kafka_topic_partition_leader",
    "kafka_topic_partition_replicas", "kafka_topic_partition_in_sync_replica",
    "kafka_topic_partition_leader_is_preferred", "kafka_topic_partition_under_replicated_partition")}
GROUP_FAMILIES = {  # the group's coordinator
    "kafka_consumergroup_current_offset": {"consumergroup", "topic", "partition"},
    "kafka_consumergroup_current_offset_sum": {"consumergroup", "topic"},
    "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"},
    "kafka_consumergroup_lag_sum": {"consumergroup", "topic"},
    "kafka_consumergroup_members": {"consumergroup"},
}
KAFKA_PARTITION_GAUGES = {  # every replica; nonzero on the leader only
    "kafka_cluster_partition_atminisr": {"topic", "partition"},
    "kafka_cluster_partition_underminisr": {"topic", "partition"},
}
LABELS = {**BROKER_FAMILIES, **PARTITION_FAMILIES, **GROUP_FAMILIES, **KAFKA_PARTITION_GAUGES}

# What the fixture's dashboard selects (a newer dashboard using more must be looked at).
DASHBOARD_FAMILIES = {
    "kafka_broker_info", "kafka_topic_partitions", "kafka_topic_partition_current_offset",
    "kafka_topic_partition_oldest_offset", "kafka_topic_partition_replicas", "kafka_topic_partition_in_sync_replica",
    "kafka_topic_partition_under_replicated_partition", "kafka_topic_partition_leader_is_preferred",
    "kafka_consumergroup_current_offset", "kafka_consumergroup_lag",
    "kafka_cluster_partition_atminisr", "kafka_cluster_partition_underminisr",
}
MIN_ISR_PANELS = {"Partitions at minimum ISR", "Partitions under minimum ISR"}
RATE_PANELS = {"Messages in per second", "Messages consumed per second"}
# Panels summed to one number (no `by`), and the `by` labels of the others, in the order used here.
SCALAR_PANELS = {"Topics", "Partitions", "Replicas", "In Sync Replicas", "Under Replicated Partitions",
                 "Partitions at minimum ISR", "Partitions under minimum ISR", "Partitions not on preferred node"}
GROUPED_PANELS = {
    "Messages in per second": ("topic",),
    "Messages consumed per second": ("consumergroup", "topic"),
    "Lag by  Consumer Group": ("consumergroup", "topic"),
    "Consumer Group Offsets": ("consumergroup", "partition", "topic"),
    "Consumer Group Lag": ("consumergroup", "partition", "topic"),
    "Number of Partitions": ("topic",),
    "Latest Offsets": ("partition", "topic"),
    "Oldest Offsets": ("partition", "topic"),
}

TOPIC = "exporter-dashboard"
PARTITIONS = 6
TOPIC_MIN_ISR = 3  # ISR 3 of 3 is "at minimum ISR"; after a broker dies, 2 is "under"
COUNTS = {p: 20 + 7 * p for p in range(PARTITIONS)}  # records per partition
COMMITTED = {p: c // 2 for p, c in COUNTS.items()}  # the group's committed offsets
GROUP = "exporter-dashboard-group"


def uses(d: dict) -> list[tuple[str, str, list, set]]:
    """(where, metric, matchers, grouping) of every selector of the fixture's variables and panels."""
    out = [(f"variable {v['name']}", metric, matchers, set()) for v in d["variables"]
           for metric, matchers in variable_selectors(v)]
    for p in d["panels"]:
        for e in p["exprs"]:
            sel, grouping = selectors(e)
            out += [(f"panel {p['title']!r}", metric, matchers, grouping) for metric, matchers in sel]
    return out


def test_fixture_names_its_source_and_uses_only_known_families():
    d = load(FIXTURE)
    assert d["source"]["repo"] == "https://github.com/strimzi/strimzi-kafka-operator"
    assert d["source"]["path"].endswith("/strimzi-kafka-exporter.json")
    assert re.fullmatch(r"[0-9a-f]{40}", d["source"]["commit"]), d["source"]
    assert d["metrics.naming"] == "strimzi"  # kafka_cluster_partition_* are Strimzi's names
    titles = [p["title"] for p in d["panels"]]
    assert set(titles) == SCALAR_PANELS | set(GROUPED_PANELS) and len(titles) == len(set(titles)), titles
    assert set(EXCLUDED_PANELS) <= set(titles)
    assert [v["name"] for v in d["variables"]] == ["kubernetes_namespace", "strimzi_cluster_name", "consumergroup",
                                                   "topic"]
    found = uses(d)
    assert {metric for _, metric, _, _ in found} == DASHBOARD_FAMILIES
    problems = []
    for where, metric, matchers, grouping in found:
        wanted = ({m[0] for m in matchers} | grouping) - TARGET_LABELS
        if not wanted <= LABELS[metric]:
            problems.append(f"{where}: {metric} by {sorted(wanted - LABELS[metric])}")
    assert not problems, problems
    for p in d["panels"]:
        for e in p["exprs"]:
            sel, grouping = selectors(e)
            assert sel, f"panel {p['title']!r}: no selector in {e}"
            assert (grouping == set(GROUPED_PANELS.get(p["title"], ()))), (p["title"], grouping)


class CannedPrometheus:
    """Answers resolve_variables' two kinds of questions from fixed series."""

    def __init__(self, series: list[dict]):
        self.series, self.asked = series, []

    def query(self, expr):
        self.asked.append(("query", expr))
        return [{"metric": s, "value": [1700000000.0, "1"]} for s in self.series if s["__name__"] == expr.split("{")[0]]

    def api(self, path, **params):
        self.asked.append((path, params))
        label = path.split("/")[-2]
        metric = params.get("match[]", "").split("{")[0]
        return sorted({s[label] for s in self.series if label in s and (not metric or s["__name__"] == metric)})


def test_variables_resolve_as_grafana_would_on_canned_answers():
    target = {"namespace": "ns1", "strimzi_io_cluster": "c1", "pod": "c1-kafka-1"}
    offset = {"__name__": "kafka_consumergroup_current_offset", "topic": "t", "partition": "0", **target}
    prom = CannedPrometheus([
        {"__name__": "kafka_broker_info", "address": "h:1", "id": "1", **target},
        {**offset, "consumergroup": "g.1"},
        {**offset, "consumergroup": "g2"},
        {"__name__": "kafka_topic_partition_current_offset", "topic": "t", "partition": "0", **target},
        # other series with the same labels: label_values(<selector>, label) must not offer them
        {"__name__": "kafka_log_log_size", "topic": "other", "partition": "0", "consumergroup": "not-a-group", **target},
    ])
    options = {}
    values = resolve_variables(prom, load(FIXTURE), options)
    assert values == {"kubernetes_namespace": "ns1", "strimzi_cluster_name": "c1", "consumergroup": "(g\\\\.1|g2)",
                      "topic": ".*"}, values
    assert options["consumergroup"] == ["g.1", "g2"] and options["topic"] == ["t"], options
    assert ("/api/v1/label/topic/values",
            {"match[]": 'kafka_topic_partition_current_offset{namespace="ns1",strimzi_io_cluster="c1"}'}) in prom.asked
    q = substitute(load(FIXTURE)["panels"][-1]["exprs"][0], values)
    assert q == 'sum(kafka_topic_partition_oldest_offset{topic=~".*", namespace=~"ns1"}) by (partition,topic)', q


# --------------------------------------------------------------------------- live cluster
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("kafka-exporter")
    nodes = quorum_stack.start_cluster(d, props={"offsets.topic.replication.factor": 3})
    prom = None
    try:
        boot = ",".join(n.bootstrap for n in nodes)
        a = clients.admin(boot)
        a.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": str(TOPIC_MIN_ISR)})],
                        request_timeout=30)[TOPIC].result(timeout=30)
        clients.wait_topic(boot, TOPIC, PARTITIONS)
        partition_of = [p for p in range(PARTITIONS) for _ in range(COUNTS[p])]
        clients.produce_confluent(boot, TOPIC, [(b"k%d" % p, b"v%d" % i) for i, p in enumerate(partition_of)],
                                  partition_of=lambda i: partition_of[i])
        consume_with_group(boot, TOPIC, GROUP, COMMITTED)
        prom = quorum_stack.Prometheus(d / "prometheus", nodes)
        prom.wait_scrapes(len(nodes), scrapes=3)
        yield nodes, prom
    finally:
        if prom:
            prom.stop()
        quorum_stack.stop_all(nodes)


def settle(what: str, check, timeout: float, interval: float = 0.25):
    """Calls check() (a list of problems) until it has none; fails with the last ones. Brokers
    learn metadata changes and Prometheus scrapes a little apart."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            problems = check()
        except (OSError, AssertionError, KeyError, ValueError, struct.error) as e:
            problems = [f"{type(e).__name__}: {e}"]
        if not problems:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}, still after {timeout}s:\n" + "\n".join(problems))
        time.sleep(interval)


def min_isr(bootstrap: str, topics) -> dict[str, int]:
    """Each topic's effective min.insync.replicas (DescribeConfigs)."""
    a = clients.admin(bootstrap)
    res = {t: ConfigResource(ResourceType.TOPIC, t) for t in topics}
    futs = a.describe_configs(list(res.values()), request_timeout=15)
    return {t: int(futs[r].result(timeout=15)["min.insync.replicas"].value) for t, r in res.items()}


def partitions_of(md: Metadata):
    return [(t, p, pm) for t, tm in sorted(md.topics.items()) for p, pm in sorted(tm.partitions.items())]


def serving_problems(scrapes: dict[int, Scrape], md: Metadata, coordinator: int) -> list[str]:
    """Each exporter family served by exactly the broker that should, with the values Metadata
    and the clients imply. `scrapes`: the live brokers' /metrics by node id."""
    problems = []

    def servers(metric, **labels):
        return sorted(i for i, s in scrapes.items() if s.series(metric, **labels))

    lowest = min(md.brokers)
    for fam in BROKER_FAMILIES:
        if servers(fam) != [lowest]:
            problems.append(f"{fam} served by {servers(fam)}, not by the lowest live broker {lowest} alone")
    if servers("kafka_brokers") == [lowest]:
        s = scrapes[lowest]
        if s.value("kafka_brokers") != len(md.brokers):
            problems.append(f"kafka_brokers {s.value('kafka_brokers')}, Metadata lists {sorted(md.brokers)}")
        info = {(lb.get("id"), lb.get("address")): v for lb, v in s.series("kafka_broker_info")}
        want = {(str(i), f"{host}:{port}"): 1.0 for i, (host, port, _) in md.brokers.items()}
        if info != want:
            problems.append(f"kafka_broker_info {info}, Metadata's brokers {want}")
        parts = {lb.get("topic"): v for lb, v in s.series("kafka_topic_partitions")}
        want = {t: float(len(tm.partitions)) for t, tm in md.topics.items()}
        if parts != want:
            problems.append(f"kafka_topic_partitions {parts}, Metadata {want}")

    led = 0
    for t, p, pm in partitions_of(md):
        want_servers = [pm.leader] if pm.leader in scrapes else []
        led += bool(want_servers)
        for fam in PARTITION_FAMILIES:
            if servers(fam, topic=t, partition=p) != want_servers:
                problems.append(f"{fam}{{topic={t},partition={p}}} served by {servers(fam, topic=t, partition=p)}, "
                                f"its leader is {pm.leader}")
        if not want_servers or servers("kafka_topic_partition_leader", topic=t, partition=p) != want_servers:
            continue
        s = scrapes[pm.leader]
        want = {
            "kafka_topic_partition_leader": pm.leader,
            "kafka_topic_partition_replicas": len(pm.replicas),
            "kafka_topic_partition_in_sync_replica": len(pm.isr),
            "kafka_topic_partition_under_replicated_partition": int(len(pm.isr) < len(pm.replicas)),
            "kafka_topic_partition_leader_is_preferred": int(pm.leader == pm.replicas[0]),
        }
        if t == TOPIC:
            want["kafka_topic_partition_current_offset"] = COUNTS[p]
            want["kafka_topic_partition_oldest_offset"] = 0
        for fam, value in want.items():
            got = s.value(fam, -1, topic=t, partition=p)
            if got != value:
                problems.append(f"{fam}{{topic={t},partition={p}}} on {pm.leader}: {got}, expected {value} "
                                f"(Metadata: leader {pm.leader}, replicas {pm.replicas}, isr {pm.isr})")
    for fam in PARTITION_FAMILIES:  # nothing for partitions Metadata does not list
        n = sum(len(s.series(fam)) for s in scrapes.values())
        if n != led:
            problems.append(f"{fam}: {n} series in the cluster, {led} partitions with a live leader")

    for fam in GROUP_FAMILIES:
        if servers(fam, consumergroup=GROUP) != [coordinator]:
            problems.append(f"{fam}{{consumergroup={GROUP}}} served by {servers(fam, consumergroup=GROUP)}, "
                            f"its coordinator is {coordinator}")
    if coordinator in scrapes:
        s = scrapes[coordinator]
        want = {("kafka_consumergroup_current_offset", p): COMMITTED[p] for p in COMMITTED}
        want.update({("kafka_consumergroup_lag", p): COUNTS[p] - COMMITTED[p] for p in COMMITTED})
        for (fam, p), value in want.items():
            got = s.value(fam, -1, consumergroup=GROUP, topic=TOPIC, partition=p)
            if got != value:
                problems.append(f"{fam}{{partition={p}}} on {coordinator}: {got}, expected {value}")
        for fam, value in (("kafka_consumergroup_current_offset_sum", sum(COMMITTED.values())),
                           ("kafka_consumergroup_lag_sum", sum(COUNTS.values()) - sum(COMMITTED.values()))):
            got = s.value(fam, -1, consumergroup=GROUP, topic=TOPIC)
            if got != value:
                problems.append(f"{fam} on {coordinator}: {got}, expected {value}")
        got = s.value("kafka_consumergroup_members", -1, consumergroup=GROUP)
        if got != 0:
            problems.append(f"kafka_consumergroup_members {got}: the member left, 0 expected")
    return problems


def live_view(nodes) -> tuple[dict[int, Scrape], Metadata, int]:
    """The live brokers' scrapes, Metadata (all topics) and the group's coordinator."""
    live = [n for n in nodes if n.alive()]
    md = metadata(live[0])
    err, coordinator, msg = find_coordinator(live[0], GROUP)
    assert err == 0, f"FindCoordinator({GROUP}): error {err} {msg}"
    return {n.node_id: scrape(n) for n in live}, md, coordinator


def test_each_family_is_served_once_with_kafka_exporters_labels_and_values(stack):
    nodes, _ = stack
    md = metadata(nodes[0])
    assert sorted(md.brokers) == [1, 2, 3] and TOPIC in md.topics and "__consumer_offsets" in md.topics
    for t, p, pm in partitions_of(md):
        assert len(pm.replicas) == 3 and sorted(pm.isr) == sorted(pm.replicas), (t, p, pm)
    # a new topic's leaders are its preferred (first) replicas
    assert all(pm.leader == pm.replicas[0] for pm in md.topics[TOPIC].partitions.values()), md.topics[TOPIC]
    settle("kafka_exporter families served once, as the cluster is",
           lambda: serving_problems(*live_view(nodes)), timeout=15)

    # every label the dashboard matches on or groups by, on the broker serving the family
    scrapes, _, _ = live_view(nodes)
    problems = []
    for where, metric, matchers, grouping in uses(load(FIXTURE)):
        serving = [s for s in scrapes.values() if s.series(metric)]
        if not serving:
            problems.append(f"{where}: {metric} is served by no broker")
        for s in serving:
            problems += [f"{where}: {p}" for p in served_problems(s, metric, matchers, grouping)]
    assert not problems, "\n".join(problems)


def value_of(result: list[dict]) -> float | None:
    return float(result[0]["value"][1]) if len(result) == 1 else None


def keyed(result: list[dict], keys: tuple[str, ...]) -> dict[tuple, float]:
    return {tuple(r["metric"].get(k) for k in keys): float(r["value"][1]) for r in result}


def panel_results(prom, d: dict) -> tuple[dict[str, str], dict[str, list[str]], dict[str, list[dict]]]:
    """Variables resolved, their options, and each panel's (single) expression's result."""
    options: dict[str, list[str]] = {}
    values = resolve_variables(prom, d, options)
    results = {}
    for p in d["panels"]:
        if p["title"] in EXCLUDED_PANELS:
            continue
        assert len(p["exprs"]) == 1, p
        q = substitute(p["exprs"][0], values)
        assert "$" not in q, q
        results[p["title"]] = prom.query(q)
    return values, options, results


def panel_problems(results: dict[str, list[dict]], md: Metadata, min_isrs: dict[str, int],
                   titles: set[str]) -> list[str]:
    """The panels in `titles` against what Metadata and the clients imply (topic and group "All")."""
    led = [(t, p, pm) for t, p, pm in partitions_of(md) if pm.leader >= 0]
    scalars = {
        "Topics": len(md.topics),
        "Partitions": sum(len(tm.partitions) for tm in md.topics.values()),
        "Replicas": sum(len(pm.replicas) for _, _, pm in led),
        "In Sync Replicas": sum(len(pm.isr) for _, _, pm in led),
        "Under Replicated Partitions": sum(len(pm.isr) < len(pm.replicas) for _, _, pm in led),
        "Partitions not on preferred node": sum(pm.leader != pm.replicas[0] for _, _, pm in led),
        "Partitions at minimum ISR": sum(len(pm.isr) == min_isrs[t] for t, _, pm in led),
        "Partitions under minimum ISR": sum(len(pm.isr) < min_isrs[t] for t, _, pm in led),
    }
    lag = {p: COUNTS[p] - COMMITTED[p] for p in COUNTS}
    grouped = {  # (the rows that must be there exactly, or None: check only these keys' values)
        "Number of Partitions": {(t,): len(tm.partitions) for t, tm in md.topics.items()},
        "Latest Offsets": {(str(p), TOPIC): COUNTS[p] for p in COUNTS},
        "Oldest Offsets": {(str(p), TOPIC): 0 for p in COUNTS},
        "Consumer Group Offsets": {(GROUP, str(p), TOPIC): COMMITTED[p] for p in COMMITTED},
        "Consumer Group Lag": {(GROUP, str(p), TOPIC): lag[p] for p in lag},
        "Lag by  Consumer Group": {(GROUP, TOPIC): sum(lag.values())},
    }
    all_rows = {  # every row of these panels, one per led partition
        "Latest Offsets": {(str(p), t) for t, p, _ in led},
        "Oldest Offsets": {(str(p), t) for t, p, _ in led},
    }
    problems = []
    for title in sorted(titles):
        got = results[title]
        if not got:
            problems.append(f"panel {title!r}: no data")
        elif title in scalars:
            if value_of(got) != scalars[title]:
                problems.append(f"panel {title!r}: {[r['value'][1] for r in got]}, expected {scalars[title]}")
        elif title in RATE_PANELS:
            rows = keyed(got, GROUPED_PANELS[title])
            want = (TOPIC,) if title == "Messages in per second" else (GROUP, TOPIC)
            if want not in rows:
                problems.append(f"panel {title!r}: no row {want} in {sorted(rows)}")
        else:
            rows = keyed(got, GROUPED_PANELS[title])
            wrong = {k: (rows.get(k), v) for k, v in grouped[title].items() if rows.get(k) != v}
            if title in all_rows and set(rows) != all_rows[title]:
                wrong["rows"] = (sorted(set(rows) ^ all_rows[title]), "differ from the led partitions")
            if title in ("Number of Partitions", "Consumer Group Offsets", "Consumer Group Lag",
                         "Lag by  Consumer Group") and set(rows) != set(grouped[title]):
                wrong["rows"] = (sorted(rows), sorted(grouped[title]))
            if wrong:
                problems.append(f"panel {title!r}: (got, expected) {wrong}")
    return problems


def test_every_variable_resolves_and_every_panel_returns_the_clusters_numbers(stack):
    nodes, prom = stack
    d = load(FIXTURE)
    md = metadata(nodes[0])
    min_isrs = min_isr(nodes[0].bootstrap, md.topics)
    assert min_isrs[TOPIC] == TOPIC_MIN_ISR, min_isrs
    checked = set(SCALAR_PANELS | set(GROUPED_PANELS)) - MIN_ISR_PANELS - set(EXCLUDED_PANELS)

    def check():
        values, options, results = panel_results(prom, d)
        problems = []
        want = {"kubernetes_namespace": quorum_stack.NAMESPACE, "strimzi_cluster_name": quorum_stack.STRIMZI_CLUSTER,
                "consumergroup": f"({GROUP})", "topic": ".*"}
        if values != want:
            problems.append(f"variables {values}, expected {want}")
        if sorted(options.get("topic", [])) != sorted(md.topics):
            problems.append(f"$topic offers {options.get('topic')}, Metadata's topics are {sorted(md.topics)}")
        # counted once over the cluster: exactly one broker serves kafka_brokers
        if value_of(prom.query("sum(kafka_brokers)")) != 3:
            problems.append(f"sum(kafka_brokers) {prom.query('sum(kafka_brokers)')}, expected 3")
        return problems + panel_problems(results, md, min_isrs, checked)

    settle("Strimzi's Kafka Exporter dashboard on the healthy cluster", check, timeout=15)


def test_min_isr_panels_count_each_partition_once(stack):
    """AtMinIsr/UnderMinIsr: on a healthy cluster the topic (min.insync.replicas 3, ISR 3) is
    at minimum ISR in every partition and nothing is under; summed over the three brokers'
    series, as the dashboard does, that is one per partition only if followers report 0."""
    nodes, prom = stack
    d = load(FIXTURE)
    md = metadata(nodes[0])
    min_isrs = min_isr(nodes[0].bootstrap, md.topics)
    assert sum(len(pm.isr) == min_isrs[t] for t, _, pm in partitions_of(md)) == PARTITIONS, (min_isrs, md.topics)
    settle("AtMinIsr/UnderMinIsr on the healthy cluster: nonzero on leaders only",
           lambda: partition_gauge_problems(*live_view(nodes)[:2], min_isrs), timeout=10)
    settle("the minimum-ISR panels on the healthy cluster",
           lambda: panel_problems(panel_results(prom, d)[2], md, min_isrs, MIN_ISR_PANELS), timeout=10)


def partition_gauge_problems(scrapes: dict[int, Scrape], md: Metadata, min_isrs: dict[str, int]) -> list[str]:
    """Kafka's kafka.cluster:type=Partition AtMinIsr/UnderMinIsr: the leader reports the
    partition's state; any other broker reports 0 (or nothing)."""
    problems = []
    for t, p, pm in partitions_of(md):
        want = {"kafka_cluster_partition_atminisr": int(len(pm.isr) == min_isrs[t]),
                "kafka_cluster_partition_underminisr": int(len(pm.isr) < min_isrs[t])}
        for fam, value in want.items():
            for i, s in scrapes.items():
                # absent on the leader reads as -1; on another broker, absent is as good as 0
                got = s.value(fam, -1 if i == pm.leader else 0, topic=t, partition=p)
                expected = value if i == pm.leader else 0
                if got != expected:
                    problems.append(f"{fam}{{topic={t},partition={p}}} on {i}: {got}, expected {expected} (leader "
                                    f"{pm.leader}, isr {pm.isr}, min.insync.replicas {min_isrs[t]})")
    return problems


def by_partition(prom, metric: str) -> dict[tuple[str, int], list[float]]:
    out: dict[tuple[str, int], list[float]] = {}
    for r in prom.query(metric):
        out.setdefault((r["metric"]["topic"], int(r["metric"]["partition"])), []).append(float(r["value"][1]))
    return out


def test_killed_broker_leaves_its_partitions_under_replicated_once_fenced(stack):
    """Runs last: it kills a broker of the module's cluster."""
    nodes, prom = stack
    d = load(FIXTURE)
    md0 = metadata(nodes[0])
    victim = next(n for n in nodes if n.node_id == min(md0.brokers))  # it serves the broker families
    others = [n for n in nodes if n is not victim]
    held = {(t, p) for t, p, pm in partitions_of(md0) if victim.node_id in pm.replicas}
    assert {(TOPIC, p) for p in range(PARTITIONS)} <= held, held

    victim.kill9()

    def fenced():
        views = {n.node_id: metadata(n) for n in others}
        return [f"node {i}'s Metadata still lists {victim.node_id}: brokers {sorted(md.brokers)}, leaders "
                f"{sorted((t, p) for t, p, pm in partitions_of(md) if pm.leader == victim.node_id)}"
                for i, md in views.items()
                if victim.node_id in md.brokers or any(pm.leader == victim.node_id for _, _, pm in partitions_of(md))]

    settle(f"node {victim.node_id} fenced", fenced, timeout=30)

    def shrunk():
        md = metadata(others[0])
        bad = [f"{t}-{p}: replicas {pm.replicas}, isr {pm.isr}, leader {pm.leader}" for t, p, pm in partitions_of(md)
               if (t, p) in held and (victim.node_id in pm.isr or len(pm.isr) != 2 or pm.leader < 0)]
        return [f"Metadata after the fencing: {b}" for b in bad]

    settle(f"node {victim.node_id} out of every ISR it was in", shrunk, timeout=15)

    # What the brief is about: through Prometheus, each partition the dead broker held is
    # under-replicated with 2 in-sync replicas, reported once (by its new leader).
    def under_replicated():
        urp = by_partition(prom, "kafka_topic_partition_under_replicated_partition")
        isr = by_partition(prom, "kafka_topic_partition_in_sync_replica")
        problems = [f"{t}-{p}: under_replicated_partition {urp.get((t, p))}, in_sync_replica {isr.get((t, p))}, "
                    f"expected [1.0] and [2.0]" for t, p in sorted(held)
                    if urp.get((t, p)) != [1.0] or isr.get((t, p)) != [2.0]]
        if value_of(prom.query("sum(kafka_brokers)")) != 2:
            problems.append(f"sum(kafka_brokers) {prom.query('sum(kafka_brokers)')}, expected 2")
        return problems

    settle(f"partitions of node {victim.node_id} under-replicated in Prometheus", under_replicated, timeout=15)

    # every family moved where it should, with consistent values, on the live brokers
    settle("kafka_exporter families served once by the live brokers", lambda: serving_problems(*live_view(others)),
           timeout=20)

    # (serving_problems has checked leader_is_preferred against Metadata: 0 where the victim
    # was the preferred leader; the panel below counts those partitions)
    md = metadata(others[0])
    min_isrs = min_isr(",".join(n.bootstrap for n in others), md.topics)
    checked = set(SCALAR_PANELS | set(GROUPED_PANELS)) - MIN_ISR_PANELS - set(EXCLUDED_PANELS)
    settle("Strimzi's Kafka Exporter dashboard after the fencing",
           lambda: panel_problems(panel_results(prom, d)[2], md, min_isrs, checked), timeout=15)
    # the topic's ISR (2) is now under its min.insync.replicas (3) in every partition
    assert sum(len(pm.isr) < min_isrs[t] for t, _, pm in partitions_of(md)) == PARTITIONS
    settle("AtMinIsr/UnderMinIsr after the fencing: nonzero on leaders only",
           lambda: partition_gauge_problems(*live_view(others)[:2], min_isrs), timeout=10)
    settle("the minimum-ISR panels after the fencing",
           lambda: panel_problems(panel_results(prom, d)[2], md, min_isrs, MIN_ISR_PANELS), timeout=10)
