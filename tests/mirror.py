"""Drives a real lantern-mirror process for the end-to-end tests, and decodes MM2's internal
record formats independently of the mirror's own code (from Kafka's schemas: Heartbeat.java,
Checkpoint.java, OffsetSync.java)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

from lantern import REPO_ROOT, broker_env, free_port, tail

MIRROR_BIN = Path(os.environ.get("LANTERN_MIRROR_BIN", REPO_ROOT / "target" / "release" / "lantern-mirror"))


class Mirror:
    """One lantern-mirror process with a properties file; restart() keeps both."""

    def __init__(self, workdir: Path, props: dict, name: str = "mirror"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.config = self.workdir / f"{name}.properties"
        self.config.write_text("".join(f"{k} = {v}\n" for k, v in props.items()))
        self.port = free_port()
        self.log_path = self.workdir / f"{name}.stderr.log"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> "Mirror":
        assert MIRROR_BIN.exists(), f"{MIRROR_BIN} missing: cargo build --release -p lantern-mirror"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(MIRROR_BIN), "--config", str(self.config), f"--metrics.listener=127.0.0.1:{self.port}", "--log-format=json"],
            stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL, env=broker_env(),
            cwd=str(self.workdir), start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
            try:
                self.metrics_text()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{self.name} serves no /metrics after 30 s:\n{self.log_tail()}")

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 40.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        if self._log:
            self._log.close()

    def log_tail(self, n: int = 60) -> str:
        return tail(self.log_path, n)


def run_mirror_expect_exit(workdir: Path, text: str, timeout: float = 15.0) -> tuple[int, str]:
    cfg = Path(workdir) / "bad.properties"
    cfg.write_text(text)
    p = subprocess.run([str(MIRROR_BIN), "--config", str(cfg), f"--metrics.listener=127.0.0.1:{free_port()}"],
                       capture_output=True, timeout=timeout, env=broker_env(), stdin=subprocess.DEVNULL)
    return p.returncode, p.stderr.decode() + p.stdout.decode()


# ------------------------------------------------------------ MM2's schemas (Kafka protocol types)
def _string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from(">h", buf, pos)
    return buf[pos + 2: pos + 2 + n].decode(), pos + 2 + n


def decode_heartbeat(key: bytes, value: bytes) -> dict:
    src, pos = _string(key, 0)
    tgt, pos = _string(key, pos)
    assert pos == len(key), "trailing bytes in a heartbeat key"
    version, ts = struct.unpack(">hq", value)
    return {"sourceClusterAlias": src, "targetClusterAlias": tgt, "version": version, "timestamp": ts}


def decode_checkpoint(key: bytes, value: bytes) -> dict:
    group, pos = _string(key, 0)
    topic, pos = _string(key, pos)
    (partition,) = struct.unpack_from(">i", key, pos)
    assert pos + 4 == len(key), "trailing bytes in a checkpoint key"
    version, upstream, downstream = struct.unpack_from(">hqq", value, 0)
    metadata, end = _string(value, 18)
    assert end == len(value), "trailing bytes in a checkpoint value"
    return {"group": group, "topic": topic, "partition": partition, "version": version,
            "upstreamOffset": upstream, "offset": downstream, "metadata": metadata}


def decode_offset_sync(key: bytes, value: bytes) -> dict:
    topic, pos = _string(key, 0)
    (partition,) = struct.unpack_from(">i", key, pos)
    upstream, downstream = struct.unpack(">qq", value)
    return {"topic": topic, "partition": partition, "upstreamOffset": upstream, "offset": downstream}


class MirrorPrometheus:
    """Debian's Prometheus scraping one mirror every 2 s as job="lantern-mirror",
    instance="mirror-1" (what deploy/prometheus/prometheus.yml names it)."""

    def __init__(self, workdir: Path, mirror: Mirror):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(
            "global: {scrape_interval: 2s, evaluation_interval: 2s}\n"
            "scrape_configs:\n"
            "  - job_name: lantern-mirror\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{mirror.port}'], labels: {{instance: mirror-1}}}}]\n")
        self.log = open(self.workdir / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, start_new_session=True)
        self.started = time.time()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("prometheus not ready after 30 s")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.close()
