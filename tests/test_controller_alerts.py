"""Claim: the controller alerts of deploy/prometheus/rules/lantern-alerts.yml work on a real
cluster, not only on promtool's synthetic series. A real Prometheus scrapes a real 3-node
cluster every second and evaluates the rule file's own expressions (their `for` aside, which
the promtool unit tests cover):

- healthy: exactly one active controller, no fenced broker; none of the three expressions
  returns anything;
- kill -9 of a broker that is not the controller: LanternFencedBrokers' expression returns 1
  for the cluster within broker.session.timeout.ms plus a scrape (and a second of slack for
  the controller's session check and the query), while the two controller expressions stay
  empty; the partitions the dead broker led (replication factor 1) go offline, and
  LanternOfflinePartitions' expression counts them;
- kill -9 of a second broker: the survivor has lost its quorum and stops counting itself
  active, so LanternNoActiveController's expression returns 0 for the cluster;
  LanternMultipleActiveControllers' never returns anything.

On the way, state.change.logger has said what happened: every node logged the controller
election, the controller logged the fencing and each partition that went offline.
"""

from __future__ import annotations

import re
import time

import pytest
import yaml

import clients
import quorum_stack
from lantern import REPO_ROOT
from test_metrics import scrape

RULES = REPO_ROOT / "deploy" / "prometheus" / "rules" / "lantern-alerts.yml"
SESSION_MS = 2000  # broker.session.timeout.ms default (docs/design/cluster.md)
ELECTION_MS = 1000  # controller.quorum.election.timeout.ms default: the active controller's lease


def alert_expr(name: str) -> str:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if r.get("alert") == name]
    assert len(rules) == 1, f"{name} is not in {RULES}"
    return rules[0]["expr"]


@pytest.fixture
def stack(tmp_path):
    nodes = quorum_stack.start_cluster(tmp_path)
    prom = None
    try:
        prom = quorum_stack.Prometheus(tmp_path / "prometheus", nodes)
        prom.wait_scrapes(len(nodes), scrapes=2)
        yield nodes, prom
    finally:
        if prom:
            prom.stop()
        quorum_stack.stop_all(nodes)


def plain_log(node) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", node.log_text())


def wait_result(prom, expr: str, timeout: float) -> tuple[float, list]:
    """Polls `expr` until it returns something; (seconds waited, result)."""
    started = time.monotonic()
    while True:
        got = prom.query(expr)
        if got or time.monotonic() - started > timeout:
            return time.monotonic() - started, got
        time.sleep(0.1)


def test_controller_alert_expressions_on_a_live_cluster(stack):
    nodes, prom = stack
    no_controller = alert_expr("LanternNoActiveController")
    many_controllers = alert_expr("LanternMultipleActiveControllers")
    fenced = alert_expr("LanternFencedBrokers")
    cluster = {"cluster": quorum_stack.CLUSTER}

    # Healthy: the expressions see real series (one active controller, zero fenced) and fire on none.
    waited, active = wait_result(prom, "sum by (cluster) (kafka_controller_kafkacontroller_activecontrollercount) == 1", 10)
    assert active, f"no single active controller after {waited:.1f}s: {prom.query('kafka_controller_kafkacontroller_activecontrollercount')}"
    assert [r["value"][1] for r in prom.query("max by (cluster) (kafka_controller_kafkacontroller_fencedbrokercount)")] == ["0"]
    for expr in (no_controller, many_controllers, fenced):
        assert prom.query(expr) == [], f"fires on a healthy cluster: {expr}"

    controller = [b for b in nodes if scrape(b).value("kafka_controller_kafkacontroller_activecontrollercount") == 1]
    assert len(controller) == 1, "exactly one broker reports ActiveControllerCount 1"
    others = [b for b in nodes if b is not controller[0]]
    leader_id = controller[0].node_id
    for b in nodes:
        assert re.search(rf"state\.change\.logger: controller elected: .*\bcontroller={leader_id}\b", plain_log(b)), \
            f"{b.name} logged no controller election naming node {leader_id}"

    # A topic whose partitions are spread over the three brokers (replication factor 1).
    topic = "controller-alerts-probe"
    clients.create_topic(nodes[0].bootstrap, topic, 6)
    partitions = clients.admin(nodes[0].bootstrap).list_topics(topic, timeout=10).topics[topic].partitions
    victim = others[0].node_id
    led = sorted(p for p, m in partitions.items() if m.leader == victim)
    assert led, f"broker {victim} leads none of {topic}'s partitions: {partitions}"

    # A broker dies: fenced once its session expires, seen at the next scrape.
    others[0].kill9()
    budget = (SESSION_MS + quorum_stack.SCRAPE_S * 1000) / 1000 + 1.0
    waited, got = wait_result(prom, fenced, budget + 5)
    assert got, f"{fenced} returned nothing {waited:.1f}s after kill -9 of {others[0].name}"
    assert [(r["metric"], r["value"][1]) for r in got] == [(cluster, "1")], got
    assert waited <= budget, f"FencedBrokerCount reached Prometheus {waited:.1f}s after the kill (budget {budget:.1f}s)"
    assert prom.query(no_controller) == [] and prom.query(many_controllers) == []
    waited, got = wait_result(prom, alert_expr("LanternOfflinePartitions"), 5)
    assert [(r["metric"], r["value"][1]) for r in got] == [(cluster, str(len(led)))], (led, got)
    log = plain_log(controller[0])
    assert re.search(rf"WARN state\.change\.logger: fenced broker: .*\bbroker={victim}\b", log), \
        f"no state.change.logger line for the fencing in {controller[0].name}'s log"
    for p in led:
        assert re.search(rf"state\.change\.logger: partition is offline: .*\bpartition={topic}-{p}\b.*\bprevious_leader={victim}\b", log), \
            f"no state.change.logger line for {topic}-{p} going offline"

    # A second broker dies: one voter of three is no quorum; the survivor stops counting itself
    # active once no majority has acknowledged it within the election timeout.
    others[1].kill9()
    waited, got = wait_result(prom, no_controller, (ELECTION_MS + quorum_stack.SCRAPE_S * 1000) / 1000 + 5)
    assert [(r["metric"], r["value"][1]) for r in got] == [(cluster, "0")], (
        f"{no_controller} after losing the quorum ({waited:.1f}s): {got}; "
        f"{prom.query('kafka_controller_kafkacontroller_activecontrollercount')}")
    assert prom.query(many_controllers) == []
