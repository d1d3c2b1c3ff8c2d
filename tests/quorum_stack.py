"""A small live monitoring stack for the KRaft dashboard and controller alert tests: three real
lantern-broker processes forming one cluster (each both broker and controller, on free
loopback ports) and Debian's real Prometheus scraping their /metrics every second.

Prometheus gets, as target labels, what the scrape setups the KRaft dashboards were written
for would add: Strimzi's PodMonitor relabelling on Kubernetes (namespace, pod,
kubernetes_pod_name, strimzi_io_cluster, strimzi_io_name, container) and the Confluent
jmx-monitoring-stacks scrape config (job="kafka-controller", also "kafka-broker" when asked, env), plus Lantern's own `cluster`.
None of these come from the broker. Processes are started in their own sessions and stopped by
pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from cluster import Cluster, ClusterNode
from lantern import Broker, free_port

PROMETHEUS = Path("/usr/bin/prometheus")
SCRAPE_S = 1
NAMESPACE = "lantern-test"
STRIMZI_CLUSTER = "lantern"
CLUSTER = "lantern-live"
ENV = "lantern-test"


def start_cluster(workdir: Path, n: int = 3, props: dict | None = None) -> list[ClusterNode]:
    """n nodes of tests/cluster.py's Cluster (ids 1..n, every one a voter of the metadata
    quorum); returns once all are ready (registered and unfenced)."""
    c = Cluster(workdir, n, props={"offsets.topic.num.partitions": 3, **(props or {})})
    try:
        c.start()
    except BaseException:
        c.stop()
        raise
    return list(c.nodes.values())


def stop_all(nodes: list[Broker]) -> None:
    for b in nodes:
        b.stop()


def pod_name(node: Broker) -> str:
    return f"{STRIMZI_CLUSTER}-kafka-{node.node_id}"


class Prometheus:
    """Prometheus scraping `nodes` every SCRAPE_S seconds, with an HTTP API client."""

    def __init__(self, workdir: Path, nodes: list[Broker], jobs: tuple[str, ...] = ("kafka-controller",)):
        """`jobs`: one scrape job of every node per name. Confluent's dev-toolkit scrapes its
        combined broker-and-controller nodes as both "kafka-broker" and "kafka-controller"."""
        if not PROMETHEUS.exists():
            raise AssertionError(f"{PROMETHEUS} missing (tests/run installs Debian's prometheus)")
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.jobs = jobs
        self.base = f"http://127.0.0.1:{self.port}"
        static = [{
            "targets": [f"127.0.0.1:{b.http_port}"],
            "labels": {
                "cluster": CLUSTER, "env": ENV, "namespace": NAMESPACE, "strimzi_io_cluster": STRIMZI_CLUSTER,
                "strimzi_io_name": f"{STRIMZI_CLUSTER}-kafka", "pod": pod_name(b), "kubernetes_pod_name": pod_name(b),
                "container": "kafka", "node": b.name,
            },
        } for b in nodes]
        config = {
            "global": {"scrape_interval": f"{SCRAPE_S}s", "scrape_timeout": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
            "scrape_configs": [{"job_name": job, "static_configs": static} for job in jobs],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(self.dir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.base + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"Prometheus did not become ready:\n{(self.dir / 'prometheus.log').read_text()[-3000:]}")
            time.sleep(0.1)

    def api(self, path: str, **params) -> dict:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}" if params else f"{self.base}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"Prometheus {path} {params}: {e.code} {e.read().decode(errors='replace')}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """The instant vector `expr` evaluates to now: [{"metric": {...}, "value": [t, "v"]}]."""
        data = self.api("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def wait_scrapes(self, targets: int, scrapes: int = 3, timeout: float = 30) -> None:
        """Until each of `targets` targets has been scraped successfully `scrapes` times by
        every job."""
        deadline = time.monotonic() + timeout
        jobs = "|".join(self.jobs)
        expr = f'count_over_time(up{{job=~"{jobs}"}}[1m]) >= {scrapes} and up == 1'
        while len(self.query(expr)) < targets * len(self.jobs):
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus has not scraped {targets} targets {scrapes} times: "
                                     f"{self.query('up')}, targets {self.api('/api/v1/targets')['activeTargets']}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
