"""Every family Grafana's "Node Exporter Full" dashboard queries that node_exporter 1.5 serves
is served by lantern-exporter too.

The dashboard JSON is in tests/fixtures/node_exporter_full (source and licence in SOURCE.md).
Its metric names are taken from every query expression (panels, nested rows, template
variables). node_exporter 1.5 (Debian's) and lantern-exporter then run with their default
collectors, once on this machine and once on the fixture tree (exporter/tests/fixtures, which
has what a VM lacks: hwmon sensors, thermal zones), and the names node_exporter serves must all
be in lantern-exporter's scrape.
"""

from __future__ import annotations

import json
import re

from lantern import REPO_ROOT
from test_exporter_node import FIXTURES, TEXTFILE_ARGS, exporters, lantern_argv, node_exporter_bin  # noqa: F401

DASHBOARD = REPO_ROOT / "tests" / "fixtures" / "node_exporter_full" / "node-exporter-full.json"

# Debian's package enables the systemd collector and excludes lo from netdev by default;
# upstream 1.5 does neither, and upstream's defaults are what lantern-exporter follows.
UPSTREAM_DEFAULTS = ["--no-collector.systemd", "--collector.netdev.device-exclude="]


def dashboard_metric_names() -> set[str]:
    exprs: list[str] = []

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("expr", "query", "definition") and isinstance(v, str):
                    exprs.append(v)
                walk(v)
        elif isinstance(o, list):
            for x in o:
                walk(x)

    walk(json.loads(DASHBOARD.read_text()))
    assert len(exprs) > 200, f"only {len(exprs)} expressions found: is {DASHBOARD} the dashboard?"
    return {m for e in exprs for m in re.findall(r"\b(node_[a-zA-Z0-9_]+)", e)}


def _check(exporters, where: str, extra: list[str]) -> None:
    names = dashboard_metric_names()
    real = exporters("node_exporter", [node_exporter_bin(), *UPSTREAM_DEFAULTS, *TEXTFILE_ARGS, *extra])
    ours_extra = [a for a in extra if a != "--no-collector.netdev.netlink"]  # lantern has no netlink
    lantern = exporters("lantern-exporter", lantern_argv(*TEXTFILE_ARGS, *ours_extra))
    theirs, ours = set(real.scrape().samples), set(lantern.scrape().samples)
    served = names & theirs
    missing = sorted(served - ours)
    print(f"{where}: the dashboard queries {len(names)} node_* names; node_exporter serves {len(served)}, "
          f"lantern-exporter {len(served) - len(missing)}")
    assert not missing, f"{where}: families the dashboard queries that node_exporter serves and lantern-exporter lacks: {missing}"


def test_dashboard_families_on_this_machine(exporters):
    _check(exporters, "this machine", [])


def test_dashboard_families_on_the_fixture_tree(exporters):
    _check(exporters, "fixture tree", [f"--path.procfs={FIXTURES / 'proc'}", f"--path.sysfs={FIXTURES / 'sys'}",
                                       f"--path.rootfs={FIXTURES / 'rootfs'}",
                                       f"--path.udev.data={FIXTURES / 'udev' / 'data'}",
                                       "--no-collector.netdev.netlink"])
