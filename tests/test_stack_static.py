"""Claim: the monitoring stack's files are valid for the tools that read them, without running
anything long: Prometheus' config (the compose one and run-stack's localhost twin) passes
`promtool check config`, the alerting rules pass `promtool check rules`, and their unit tests
(`promtool test rules`) cover every alert, both firing on its failure and silent on healthy
series; every alert has a severity, a summary and a runbook; alertmanager.yml passes
`amtool check-config`; docker-compose.yml validates against the Compose Specification's JSON
schema (vendored in deploy/compose-spec/) and only mounts files that exist; both stacks run the
same topology (a cluster of three, a one-node backup cluster, lantern-mirror between them from
deploy/mirror/mm2.properties, which lantern-mirror accepts, scraped as job lantern-mirror, its
log shipped by an exporter like the brokers'); the Grafana
dashboards are current-schema JSON with unique uids and panel ids, every panel titled,
described, with a unit, thresholds and the provisioned datasource, template variables for
cluster/instance (and topic/group where they apply), and every PromQL expression parses.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from lantern import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
DASHBOARDS = REPO_ROOT / "dashboards"
PROM = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules" / "lantern-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "lantern-alerts.test.yml"
AM = DEPLOY / "alertmanager" / "alertmanager.yml"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_SCHEMA = DEPLOY / "compose-spec" / "compose-spec.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
RUN_STACK = DEPLOY / "local" / "run-stack"


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed (tests/run installs Debian's prometheus and prometheus-alertmanager)")
    return path


def run(*cmd, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, timeout=120)


def alerts() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


# --- Prometheus ------------------------------------------------------------------------------

def test_promtool_check_config_compose():
    r = run(tool("promtool"), "check", "config", PROM)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_check_config_local_twin(tmp_path):
    """run-stack's localhost config is generated from the same prometheus.yml and rule file."""
    r = run(sys.executable, RUN_STACK, "render", "--dir", tmp_path, "--scrape-interval", "2s", "--evaluation-interval", "1s",
            "--group-wait", "0s", "--group-interval", "1s")
    assert r.returncode == 0, r.stdout + r.stderr
    local = tmp_path / "prometheus" / "prometheus.yml"
    r = run(tool("promtool"), "check", "config", local)
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = yaml.safe_load(local.read_text())
    assert cfg["rule_files"] == [str(RULES)], "the local stack must load the very same rule file"
    targets = [t for job in cfg["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert targets and all(t.startswith("127.0.0.1:") for t in targets), targets
    compose = yaml.safe_load(PROM.read_text())
    assert [j["job_name"] for j in cfg["scrape_configs"]] == [j["job_name"] for j in compose["scrape_configs"]]
    assert [j.get("relabel_configs") for j in cfg["scrape_configs"]] == [j.get("relabel_configs") for j in compose["scrape_configs"]]
    r = run(tool("amtool"), "check-config", tmp_path / "alertmanager" / "alertmanager.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_prometheus_relabels_to_stable_instance_names():
    cfg = yaml.safe_load(PROM.read_text())
    for job in cfg["scrape_configs"]:
        relabel = job.get("relabel_configs") or []
        assert {"source_labels": ["node"], "target_label": "instance"} in relabel, job["job_name"]
        for sc in job["static_configs"]:
            assert {"node", "cluster"} <= set(sc["labels"]), (job["job_name"], sc)


def test_promtool_check_rules():
    r = run(tool("promtool"), "check", "rules", RULES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in r.stdout


def test_promtool_test_rules():
    r = run(tool("promtool"), "test", "rules", RULE_TESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_rule_tests_are_current():
    r = run(sys.executable, DEPLOY / "prometheus" / "tests" / "make_alert_tests.py", "--check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_is_unit_tested_firing_and_silent():
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == ["../rules/lantern-alerts.yml"]
    fires: dict[str, int] = {}
    silent: dict[str, int] = {}
    for t in tests["tests"]:
        for case in t.get("alert_rule_test", []):
            bucket = fires if case.get("exp_alerts") else silent
            bucket[case["alertname"]] = bucket.get(case["alertname"], 0) + 1
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert not [n for n in names if n not in fires], f"alerts never tested firing: {[n for n in names if n not in fires]}"
    assert not [n for n in names if n not in silent], f"alerts never tested silent: {[n for n in names if n not in silent]}"


def test_every_alert_has_severity_summary_description_and_runbook():
    problems = []
    for a in alerts():
        if a.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            problems.append(f"{a['alert']}: severity label")
        for key in ("summary", "description", "runbook"):
            if len(a.get("annotations", {}).get(key, "").strip()) < 20:
                problems.append(f"{a['alert']}: annotation {key}")
        if not a.get("for"):
            problems.append(f"{a['alert']}: no `for`")
    assert not problems, problems


def test_alerts_cover_the_issue():
    """Issue 6's list of alerts, each mapped to the rule that implements it."""
    by_name = {a["alert"]: a["expr"] for a in alerts()}
    wanted = {
        "LanternBrokerDown": 'up{job="lantern-broker"}',
        "LanternScrapeTargetDown": "up{",
        "LanternUnderReplicatedPartitions": "underreplicatedpartitions",
        "LanternUnderMinIsrPartitions": "underminisrpartitioncount",
        "LanternOfflinePartitions": "offlinepartitionscount",
        "LanternNoActiveController": "activecontrollercount) == 0",
        "LanternMultipleActiveControllers": "activecontrollercount) > 1",
        "LanternFencedBrokers": "fencedbrokercount) > 0",
        "LanternOfflineLogDirectories": "offlinelogdirectorycount",
        "LanternDiskSpaceLow": "node_filesystem_avail_bytes",
        "LanternDiskWillFillIn24h": "predict_linear(",
        "LanternConsumerLagHighAndGrowing": "kafka_consumergroup_lag",
        "LanternTopicNoMessages": "messagesin_total",
        "LanternProduceLatencyHigh": 'request="Produce", quantile="0.99"',
        "LanternFetchLatencyHigh": 'request="Fetch", quantile="0.99"',
        "LanternRequestHandlerIdleLow": "requesthandleravgidle_percent",
        "LanternNetworkProcessorIdleLow": "networkprocessoravgidle_percent",
        "LanternRequestErrorRateHigh": "errors_total",
        "LanternErrorLogSpike": "lantern_log_events_total",
        "LanternExporterCollectorFailing": "node_scrape_collector_success",
    }
    for name, fragment in wanted.items():
        assert name in by_name, f"missing alert {name}"
        assert fragment in by_name[name], f"{name} does not use {fragment}"


def test_alert_metrics_exist_in_the_broker_catalogue():
    """Every broker metric an alert uses is exported (not 'planned') in docs/metrics.md."""
    doc = (REPO_ROOT / "docs" / "metrics.md").read_text()
    exported = set()
    for line in doc.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 7 and cells[6] == "exported":
            exported.add(cells[2].strip("`"))
    used = set(re.findall(r"\b(kafka_[a-z_]+)", " ".join(a["expr"] for a in alerts())))
    # lantern-mirror's MM2-named metrics are documented in docs/mirroring.md, not the broker's catalogue
    mirror = {m for m in used if m.startswith("kafka_connect_")}
    mirror_doc = (REPO_ROOT / "docs" / "mirroring.md").read_text()
    assert all(m in mirror_doc or m.removeprefix("kafka_connect_mirror_mirrorsourceconnector") in mirror_doc for m in mirror), mirror
    used -= mirror
    assert used and not (used - exported), f"alerts use metrics not exported by the broker: {sorted(used - exported)}"


# --- Alertmanager ----------------------------------------------------------------------------

def test_amtool_check_config():
    r = run(tool("amtool"), "check-config", AM)
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = yaml.safe_load(AM.read_text())
    hooks = [w for rcv in cfg["receivers"] for w in rcv.get("webhook_configs", [])]
    assert hooks and all(w.get("send_resolved") for w in hooks), "a webhook receiver that also reports resolution"


def duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", text))


def test_inhibited_alerts_wait_longer_than_the_alert_that_inhibits_them():
    """Alertmanager inhibits only while the source alert is firing in it. An inhibited alert whose
    `for` is not longer than its source's can reach Alertmanager first and be notified (the stack
    test caught LanternOfflinePartitions, `for: 1m`, notified beside LanternBrokerDown, `for: 1m`)."""
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    checked = 0
    for inhibit in yaml.safe_load(AM.read_text())["inhibit_rules"]:
        (source,) = [re.fullmatch(r'alertname="(\w+)"', m).group(1) for m in inhibit["source_matchers"]]
        source_for = duration_s(rules[source].get("for", "0s"))
        for matcher in inhibit["target_matchers"]:
            pattern = re.fullmatch(r'alertname=~?"(.+)"', matcher).group(1)
            for name, rule in rules.items():
                if re.fullmatch(pattern, name):
                    checked += 1
                    assert duration_s(rule.get("for", "0s")) > source_for, (
                        f"{name} (for {rule.get('for', '0s')}) is inhibited by {source} (for {rules[source].get('for')}):"
                        f" give it a longer `for` so {source} reaches Alertmanager first")
    assert checked >= 4, checked


# --- Compose ---------------------------------------------------------------------------------

def compose_validator():
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_validates_against_the_compose_spec():
    doc = yaml.safe_load(COMPOSE.read_text())
    errors = sorted(compose_validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_compose_schema_rejects_a_broken_file():
    """The vendored schema really constrains: a misspelt key and a wrong type are refused."""
    doc = yaml.safe_load(COMPOSE.read_text())
    v = compose_validator()
    bad = copy.deepcopy(doc)
    bad["services"]["broker-1"]["portz"] = ["9092:9092"]
    assert list(v.iter_errors(bad))
    bad = copy.deepcopy(doc)
    bad["services"]["prometheus"]["volumes"] = "not-a-list"
    assert list(v.iter_errors(bad))


def test_compose_stack_is_complete_and_mounts_what_exists():
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert {"broker-1", "broker-2", "broker-3", "exporter-1", "exporter-2", "exporter-3", "backup-1", "backup-exporter-1",
            "mirror-1", "mirror-exporter-1", "prometheus", "alertmanager", "grafana"} <= set(services)
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file(), name
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"{name} mounts missing {src}"
    # every scrape target of prometheus.yml is a compose service
    prom = yaml.safe_load(PROM.read_text())
    for job in prom["scrape_configs"]:
        for sc in job["static_configs"]:
            for t in sc["targets"]:
                assert t.split(":")[0] in services, f"{job['job_name']} scrapes {t}, not a compose service"
    hook = yaml.safe_load(AM.read_text())["receivers"][0]["webhook_configs"][0]["url"]
    assert hook.split("//")[1].split(":")[0] in services, "the webhook example points at a compose service"


def test_both_stacks_run_one_cluster_of_three_brokers(tmp_path):
    """Compose and run-stack: three nodes, each a broker and a controller with its own node id and
    a CONTROLLER listener, all with the same voters (one per node); Prometheus gives every broker
    and exporter the same cluster label (the backup cluster's are checked below)."""
    def props(cmd: list[str]) -> dict[str, str]:
        return dict(a[2:].split("=", 1) for a in cmd if a.startswith("--") and "=" in a)

    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    r = run(sys.executable, RUN_STACK, "render", "--dir", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    local = json.loads((tmp_path / "stack.json").read_text())["procs"]
    for where, cmds in (("compose", [compose[f"broker-{i}"]["command"] for i in (1, 2, 3)]),
                        ("run-stack", [local[f"broker-{i}"]["cmd"] for i in (1, 2, 3)])):
        nodes = [props(c) for c in cmds]
        assert [n["node.id"] for n in nodes] == ["1", "2", "3"], where
        voters = {n["controller.quorum.voters"] for n in nodes}
        assert len(voters) == 1 and [v.split("@")[0] for v in voters.pop().split(",")] == ["1", "2", "3"], where
        assert all("CONTROLLER://" in n["listeners"] for n in nodes), where
        # Group offsets survive a broker: __consumer_offsets is replicated on all three.
        assert all(n.get("offsets.topic.replication.factor") == "3" for n in nodes), where
    prom = yaml.safe_load(PROM.read_text())
    lantern = [sc for job in prom["scrape_configs"] if job["job_name"] in ("lantern-broker", "lantern-exporter")
               for sc in job["static_configs"] if sc["labels"]["node"].startswith("broker-")]
    assert {sc["labels"]["node"] for sc in lantern} == {"broker-1", "broker-2", "broker-3"}
    assert len({sc["labels"]["cluster"] for sc in lantern}) == 1


MM2 = DEPLOY / "mirror" / "mm2.properties"


def properties(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            key, value = re.split(r"\s*[=:]\s*", line, maxsplit=1)
            out[key] = value
    return out


def test_both_stacks_mirror_the_cluster_to_a_one_node_backup_cluster(tmp_path):
    """Compose and run-stack: backup-1 is a cluster of its own (node id 1, itself the only voter);
    mirror-1 runs lantern-mirror with deploy/mirror/mm2.properties (compose mounts it, run-stack
    renders it with only the addresses changed) copying primary (the three brokers) to backup
    (backup-1); Prometheus scrapes it as job lantern-mirror (what the Mirroring dashboard and the
    mirroring alert rules select) and the exporters of backup-1 and of the mirror's log, all in
    cluster lantern-2; the mirror's log goes to a file an exporter ships to the backup cluster."""
    def props(cmd: list[str]) -> dict[str, str]:
        return dict(a[2:].split("=", 1) for a in cmd if a.startswith("--") and "=" in a)

    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    r = run(sys.executable, RUN_STACK, "render", "--dir", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    st = json.loads((tmp_path / "stack.json").read_text())
    local = st["procs"]
    mm2 = properties(MM2.read_text())
    assert mm2["clusters"] == "primary, backup" and mm2["primary->backup.enabled"] == "true", mm2
    # compose: the primary alias is the three brokers' listeners, the backup alias backup-1's
    listening = {name: props(svc["command"])["listeners"].split(",")[0].split("//")[1].replace("0.0.0.0", name)
                 for name, svc in compose.items() if name in ("broker-1", "broker-2", "broker-3", "backup-1")}
    assert mm2["primary.bootstrap.servers"].split(",") == [listening[f"broker-{i}"] for i in (1, 2, 3)]
    assert mm2["backup.bootstrap.servers"] == listening["backup-1"]
    local_mm2 = properties((tmp_path / "mirror-1" / "mm2.properties").read_text())
    assert local_mm2["primary.bootstrap.servers"].split(",") == [st["brokers"][f"broker-{i}"]["kafka"] for i in (1, 2, 3)]
    assert local_mm2["backup.bootstrap.servers"] == st["brokers"]["backup-1"]["kafka"]
    assert {k: v for k, v in local_mm2.items() if not k.endswith(".bootstrap.servers")} == \
        {k: v for k, v in mm2.items() if not k.endswith(".bootstrap.servers")}, "run-stack changes only the addresses"
    for where, backup in (("compose", props(compose["backup-1"]["command"])), ("run-stack", props(local["backup-1"]["cmd"]))):
        assert backup["node.id"] == "1" and backup["controller.quorum.voters"].split("@")[0] == "1", (where, backup)
        assert "," not in backup["controller.quorum.voters"], (where, backup)
    # the mirror: the same config file, JSON logs into the file its exporter ships
    assert "./mirror:/etc/lantern-mirror:ro" in compose["mirror-1"]["volumes"]
    assert "--config=/etc/lantern-mirror/mm2.properties" in compose["mirror-1"]["command"]
    assert "2>>/var/log/lantern/mirror.log" in compose["mirror-1"]["entrypoint"][2]
    mx = props(compose["mirror-exporter-1"]["command"])
    assert mx["pipeline.log-file"] == "/var/log/lantern/mirror.log" and mx["pipeline.host"] == "mirror-1"
    assert mx["pipeline.bootstrap-server"] == listening["backup-1"]
    assert "mirror-1-logs:/var/log/lantern:ro" in compose["mirror-exporter-1"]["volumes"]
    lx = props(local["mirror-exporter-1"]["cmd"])
    assert lx["pipeline.log-file"] == local["mirror-1"]["stderr"] and lx["pipeline.host"] == "mirror-1"
    assert lx["pipeline.bootstrap-server"] == st["brokers"]["backup-1"]["kafka"]
    for cmd in (compose["mirror-1"]["command"], local["mirror-1"]["cmd"]):
        assert cmd[cmd.index("--log-format") + 1] == "json", cmd
    # Prometheus: job lantern-mirror on 9405, the backup's nodes in cluster lantern-2
    prom = yaml.safe_load(PROM.read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert [sc["targets"] for sc in jobs["lantern-mirror"]["static_configs"]] == [["mirror-1:9405"]]
    backup = {(job, sc["labels"]["node"]): sc["labels"]["cluster"] for job, j in jobs.items() for sc in j["static_configs"]
              if sc["labels"]["node"] in ("backup-1", "mirror-1")}
    assert backup == {("lantern-broker", "backup-1"): "lantern-2", ("lantern-exporter", "backup-1"): "lantern-2",
                      ("lantern-exporter", "mirror-1"): "lantern-2", ("lantern-mirror", "mirror-1"): "lantern-2"}, backup
    board = json.loads((DASHBOARDS / "lantern-mirroring.json").read_text())
    assert 'up{job="lantern-mirror"}' in board["templating"]["list"][0]["query"]["query"]


def test_the_stack_mirror_config_is_one_lantern_mirror_accepts(tmp_path):
    """deploy/mirror/mm2.properties through the real lantern-mirror: it passes the configuration
    checks (a typo stops start-up at once with exit code 2 naming it) and gets as far as the
    clusters, which do not exist here (it is still trying them 2 s later)."""
    binary = REPO_ROOT / "target" / "release" / "lantern-mirror"
    if not binary.exists():
        pytest.fail(f"{binary} missing: cargo build --release -p lantern-mirror")
    cfg = tmp_path / "mm2.properties"
    # nothing listens on these ports: start-up fails at the clusters, after the config
    cfg.write_text(re.sub(r"(?m)^(\w+\.bootstrap\.servers) = .*$", r"\1 = 127.0.0.1:1", MM2.read_text()))
    p = subprocess.Popen([binary, "--config", cfg, "--metrics.listener=127.0.0.1:0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        code = p.wait(timeout=2)
        assert code != 2, f"lantern-mirror refused the stack's config:\n{p.stderr.read()}"
    except subprocess.TimeoutExpired:
        pass  # past the configuration, waiting for the clusters
    finally:
        p.kill()
        p.communicate()
    bad = tmp_path / "bad.properties"
    bad.write_text(cfg.read_text() + "emit.chekpoints.interval.seconds = 1\n")
    r = subprocess.run([binary, "--config", bad, "--metrics.listener=127.0.0.1:0"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "emit.chekpoints.interval.seconds" in r.stderr, (r.returncode, r.stderr)


def test_dockerfile_is_multi_stage_and_builds_every_binary():
    text = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert "-p lantern-broker" in text and "-p lantern-exporter" in text and "-p lantern-mirror" in text
    # cargo loads the whole workspace: every member's directory must be in the build stage
    members = re.search(r"members\s*=\s*\[(.*?)\]", (REPO_ROOT / "Cargo.toml").read_text(), re.S).group(1)
    for member in re.findall(r'"([^"]+)"', members):
        assert re.search(rf"^COPY {re.escape(member)} {re.escape(member)}$", text, re.M), f"the Dockerfile does not copy {member}/"
    assert "COPY --from=build" in text


# --- Grafana ---------------------------------------------------------------------------------

def test_dashboards_are_built_from_build_py():
    r = run(sys.executable, DASHBOARDS / "build.py", "--check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_structure():
    ds_uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    boards = dashboards()
    assert set(boards) == {"lantern-cluster-overview.json", "lantern-topics.json", "lantern-consumer-groups.json",
                           "lantern-node.json", "lantern-logs.json", "lantern-mirroring.json"}
    uids = [d["uid"] for d in boards.values()]
    assert len(uids) == len(set(uids))
    problems = []
    for name, d in boards.items():
        if d.get("schemaVersion", 0) < 39:
            problems.append(f"{name}: schemaVersion {d.get('schemaVersion')}")
        if not d.get("title") or not d.get("uid") or len(d["uid"]) > 40:
            problems.append(f"{name}: title/uid")
        ids = [p["id"] for p in d["panels"]]
        if len(ids) != len(set(ids)):
            problems.append(f"{name}: duplicate panel ids")
        var_names = [v["name"] for v in d["templating"]["list"]]
        # a mirror is between clusters: its dashboard selects flows by source and target
        wanted = {"instance", "source", "target"} if name == "lantern-mirroring.json" else {"cluster", "instance"}
        if not wanted <= set(var_names):
            problems.append(f"{name}: variables {var_names}")
        for v in d["templating"]["list"]:
            if v["datasource"]["uid"] != ds_uid:
                problems.append(f"{name}: variable {v['name']} datasource")
        for p in d["panels"]:
            where = f"{name} panel {p.get('id')} {p.get('title')!r}"
            if not p.get("title"):
                problems.append(f"{where}: no title")
            if len(p.get("description", "")) < 20:
                problems.append(f"{where}: no description")
            defaults = p.get("fieldConfig", {}).get("defaults", {})
            if not defaults.get("unit"):
                problems.append(f"{where}: no unit")
            if not defaults.get("thresholds", {}).get("steps"):
                problems.append(f"{where}: no thresholds")
            if p.get("datasource", {}).get("uid") != ds_uid:
                problems.append(f"{where}: datasource")
            if not p.get("targets"):
                problems.append(f"{where}: no queries")
            for t in p.get("targets", []):
                if t.get("datasource", {}).get("uid") != ds_uid or not t.get("expr"):
                    problems.append(f"{where}: target {t.get('refId')}")
            g = p["gridPos"]
            if g["x"] + g["w"] > 24:
                problems.append(f"{where}: gridPos beyond 24 columns")
    assert not problems, problems
    assert "topic" in [v["name"] for v in boards["lantern-topics.json"]["templating"]["list"]]
    assert "group" in [v["name"] for v in boards["lantern-consumer-groups.json"]["templating"]["list"]]


def test_dashboard_provisioning_points_at_the_dashboards():
    prov = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "lantern.yml").read_text())
    path = prov["providers"][0]["options"]["path"]
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../dashboards:{path}:ro" in mounts
    assert compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(path)


def substitute(expr: str, values: dict[str, str], rate_interval="1m", interval="15s", range_="1h") -> str:
    for name, value in values.items():
        expr = expr.replace(f"${name}", value).replace(f"${{{name}}}", value)
    return (expr.replace("$__rate_interval", rate_interval).replace("$__interval", interval)
            .replace("$__range", range_))


def test_every_dashboard_expression_parses(tmp_path):
    """Each panel and variable query, variables substituted, as a recording rule: promtool parses them all."""
    rules = []
    for name, d in dashboards().items():
        values = {v["name"]: ".*" for v in d["templating"]["list"]}
        for v in d["templating"]["list"]:
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["query"]["query"], re.S)
            assert m, f"{name}: variable {v['name']} is not label_values(selector, label)"
            rules.append(substitute(m.group(1), values))
        for p in d["panels"]:
            for t in p["targets"]:
                rules.append(substitute(t["expr"], values))
    leftover = [r for r in rules if "$" in r]
    assert not leftover, leftover
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(rules)]}]}))
    r = run(tool("promtool"), "check", "rules", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(rules) > 100


def test_compose_commands_use_flags_the_binaries_accept():
    """Every --flag the compose file gives lantern-broker / lantern-exporter / lantern-mirror is one its --help lists."""
    binaries = {"lantern-broker": REPO_ROOT / "target" / "release" / "lantern-broker",
                "lantern-exporter": REPO_ROOT / "target" / "release" / "lantern-exporter",
                "lantern-mirror": REPO_ROOT / "target" / "release" / "lantern-mirror"}
    helps = {}
    for name, path in binaries.items():
        if not path.exists():
            pytest.fail(f"{path} missing: cargo build --release --workspace")
        r = run(path, "--help")
        helps[name] = r.stdout + r.stderr
    checked = 0
    for svc_name, svc in yaml.safe_load(COMPOSE.read_text())["services"].items():
        entry = svc.get("entrypoint") or []
        binary = next((b for b in binaries if any(b in part for part in entry)), None)
        if binary is None:
            continue
        for arg in svc.get("command", []):
            if not arg.startswith("--"):
                continue
            flag = arg[2:].split("=", 1)[0]
            if binary == "lantern-broker" and flag not in ("log-format", "config"):
                assert re.search(rf"^\s+{re.escape(flag)}\s", helps[binary], re.M), f"{svc_name}: {binary} has no property {flag}"
            else:
                assert f"--{flag}" in helps[binary], f"{svc_name}: {binary} --help does not list --{flag}"
            checked += 1
    assert checked >= 20
