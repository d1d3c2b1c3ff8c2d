"""Helpers for driving a real lantern-broker process from the end-to-end tests.

Nothing here mocks Kafka: the broker is the real binary, the clients are real
clients (librdkafka via kcat and confluent-kafka, and kafka-python).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
BROKER_BIN = Path(os.environ.get("LANTERN_BROKER_BIN", REPO_ROOT / "target" / "release" / "lantern-broker"))

READY_TIMEOUT_S = 30.0


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, chosen below the kernel's ephemeral range and
    never handed out before by this process.
    A port from that range (what binding to port 0 hands out) can be taken by any outgoing
    connection, a broker's to its peers included, between this check and the broker's own
    bind: a cluster test once failed on exactly that ("Address already in use"). And a port
    handed out for a node not started yet is free when the next node's ports are chosen: a
    cluster's node once got another node's controller port (CI: "cannot listen on
    127.0.0.1:32452: Address already in use"), hence the record of what was handed out."""
    lo, _ = _ephemeral_range()
    top = min(lo, 65536) - 1
    bottom = max(1024, top - 12000)
    for _ in range(500):
        port = random.randint(bottom, top)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise AssertionError(f"no free port in {bottom}-{top}")


def broker_env(extra: dict | None = None) -> dict:
    """The environment for a broker process: ours minus every LANTERN_* variable
    (the test runner's own LANTERN_SKIP_BUILD etc. must not leak into the broker's
    env-var configuration), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERN_")}
    env.setdefault("RUST_BACKTRACE", "1")
    if extra:
        env.update(extra)
    return env


def require_binary() -> None:
    if not BROKER_BIN.exists():
        raise AssertionError(
            f"broker binary {BROKER_BIN} does not exist: run `cargo build --release --workspace` "
            "(tests/run does this unless LANTERN_SKIP_BUILD=1)"
        )


def tail(path: Path, n_lines: int = 60) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return "<no log file>"
    lines = data.decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-n_lines:])


def run_broker_expect_exit(args: list[str], env: dict | None = None, timeout: float = 15.0):
    """Run the broker with `args` expecting it to exit by itself (a start-up error).
    Returns (returncode, stderr_text). Fails if it is still running after `timeout`."""
    require_binary()
    p = subprocess.Popen([str(BROKER_BIN), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=broker_env(env), stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(p)
        out, err = p.communicate()
        raise AssertionError(
            f"broker {args} was expected to exit at start-up but was still running after {timeout}s; "
            f"stderr tail:\n{err.decode('utf-8', 'replace')[-3000:]}"
        )
    return p.returncode, err.decode("utf-8", "replace") + out.decode("utf-8", "replace")


def _killpg(p: subprocess.Popen) -> None:
    """SIGKILL a child we started in its own session, and anything it spawned."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Broker:
    """One lantern-broker process with its own ports and data directories.

    The ports and data dirs are chosen once; restart() reuses them.
    """

    def __init__(self, workdir: Path, *, n_dirs: int = 1, props: dict | None = None,
                 env: dict | None = None, extra_args: list[str] | None = None,
                 advertised_port: int | None = None, name: str = "broker"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.http_port = free_port()
        # Every broker serves the REST proxy (docs/rest-proxy.md); the default port 8082 would be
        # shared by every broker a test starts.
        self.rest_port = free_port()
        self.advertised_port = advertised_port or self.port
        self.data_dirs = [self.workdir / f"data{i + 1}" for i in range(n_dirs)]
        self.props = dict(props or {})
        self.env = dict(env or {})
        self.extra_args = list(extra_args or [])
        self.log_path = self.workdir / f"{name}.stderr.log"
        # The address it listens on, and the network namespace it runs in (`ip netns exec`):
        # the fault suite gives each broker its own host; every other test uses loopback.
        self.host = "127.0.0.1"
        self.netns: str | None = None
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._log_fh = None

    # ----------------------------------------------------------------- config
    @property
    def bootstrap(self) -> str:
        """What clients should bootstrap from (the advertised address)."""
        return f"{self.host}:{self.advertised_port}"

    @property
    def direct_bootstrap(self) -> str:
        """The broker's own listener (differs from `bootstrap` only behind a proxy)."""
        return f"{self.host}:{self.port}"

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def rest_base(self) -> str:
        """The REST proxy's address (rest.listeners)."""
        return f"http://{self.host}:{self.rest_port}"

    def args(self) -> list[str]:
        base = {"node.id": "1"}
        if self.data_dirs:  # empty: leave log.dirs to the env var / config file
            base["log.dirs"] = ",".join(str(d) for d in self.data_dirs)
        base.update({
            "listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.advertised_port}",
            "http.listener": f"{self.host}:{self.http_port}",
            "rest.listeners": f"http://{self.host}:{self.rest_port}",
        })
        base.update(self.props)
        # A property set to None is left out (its default applies).
        return [f"--{k}={v}" for k, v in base.items() if v is not None] + self.extra_args

    # -------------------------------------------------------------- lifecycle
    def start(self, wait: bool = True) -> "Broker":
        require_binary()
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        for d in self.data_dirs:
            d.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self._log_fh = open(self.log_path, "ab")
        self._log_fh.write(f"\n===== start #{self.starts}: {BROKER_BIN} {' '.join(self.args())}\n".encode())
        self._log_fh.flush()
        # `ip netns exec` execs the broker in place, so the pid is still the broker's own.
        netns = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(
            [*netns, str(BROKER_BIN), *self.args()],
            stdout=self._log_fh, stderr=self._log_fh, stdin=subprocess.DEVNULL,
            env=broker_env(self.env), cwd=str(self.workdir), start_new_session=True,
        )
        if wait:
            self.wait_ready()
        return self

    def _http_status(self, path: str, timeout: float = 1.0) -> int | None:
        try:
            with urllib.request.urlopen(self.http_base + path, timeout=timeout) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
            return None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with code {self.proc.returncode} before becoming ready; "
                    f"log tail:\n{self.log_tail()}"
                )
            last = self._http_status("/health/ready")
            if last == 200:
                return
            time.sleep(0.05)
        raise AssertionError(
            f"{self.name} not ready after {timeout}s (last /health/ready status: {last}); "
            f"log tail:\n{self.log_tail()}"
        )

    def health(self, path: str = "/health/live") -> int | None:
        return self._http_status(path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self) -> int:
        return psutil.Process(self.pid).memory_info().rss

    def peak_rss_bytes(self) -> int:
        """VmHWM: the peak resident set size since the process started."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/pid/status")

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM; wait up to `timeout`; returns the exit code. If the broker does not
        exit in time it is killed and an AssertionError is raised."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _killpg(self.proc)
                self.proc.wait()
                self._close_log()
                raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM; "
                                     f"log tail:\n{self.log_tail()}")
        self._close_log()
        return self.proc.returncode

    def kill9(self) -> None:
        assert self.proc is not None
        _killpg(self.proc)
        self.proc.wait()
        self._close_log()

    def restart(self, wait: bool = True) -> "Broker":
        if self.alive():
            self.terminate()
        return self.start(wait=wait)

    def stop(self) -> None:
        """Teardown: always make sure the process is gone."""
        if self.proc is not None:
            _killpg(self.proc)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def _close_log(self):
        if self._log_fh is not None:
            try:
                self._log_fh.close()
            finally:
                self._log_fh = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n_lines: int = 60) -> str:
        return tail(self.log_path, n_lines)

    # ------------------------------------------------------------- data layout
    def partition_dirs(self, topic: str, partition: int) -> list[Path]:
        return [d / f"{topic}-{partition}" for d in self.data_dirs if (d / f"{topic}-{partition}").is_dir()]

    def partition_dir(self, topic: str, partition: int) -> Path:
        found = self.partition_dirs(topic, partition)
        assert len(found) == 1, (
            f"expected exactly one directory {topic}-{partition} across log.dirs {self.data_dirs}, found {found}"
        )
        return found[0]

    def segment_files(self, topic: str, partition: int) -> list[Path]:
        return sorted(self.partition_dir(topic, partition).glob("*.log"))


# ------------------------------------------------------------------ segments
#
# Kafka record batch (magic 2) header:
#   baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 |
#   crc uint32 (crc32c of everything after it) | attributes int16 | lastOffsetDelta int32 | ...
#   recordCount int32 at byte 57.
BATCH_HEADER_OVERHEAD = 12  # baseOffset + batchLength


class Batch:
    __slots__ = ("pos", "base_offset", "length", "magic", "crc", "last_offset_delta", "record_count")

    def __init__(self, pos, base_offset, length, magic, crc, last_offset_delta, record_count):
        self.pos, self.base_offset, self.length = pos, base_offset, length
        self.magic, self.crc = magic, crc
        self.last_offset_delta, self.record_count = last_offset_delta, record_count

    @property
    def total_size(self) -> int:
        return BATCH_HEADER_OVERHEAD + self.length

    @property
    def end(self) -> int:
        return self.pos + self.total_size

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    def __repr__(self):
        return (f"Batch(pos={self.pos}, base={self.base_offset}, len={self.length}, "
                f"records={self.record_count}, last_delta={self.last_offset_delta})")


def read_batches(path: Path) -> list[Batch]:
    """Parse the complete magic-2 batches at the start of a segment file; stops at the
    first incomplete or implausible header (so a torn tail is simply not listed)."""
    data = Path(path).read_bytes()
    out, pos = [], 0
    while pos + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        magic = data[pos + 16]
        if length < 49 or pos + 12 + length > len(data) or magic != 2:
            break
        (crc,) = struct.unpack_from(">I", data, pos + 17)
        (last_delta,) = struct.unpack_from(">i", data, pos + 23)
        (count,) = struct.unpack_from(">i", data, pos + 57)
        out.append(Batch(pos, base, length, magic, crc, last_delta, count))
        pos += 12 + length
    return out


def _crc32c_table():
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def batch_crc_ok(path: Path, batch: Batch) -> bool:
    data = Path(path).read_bytes()[batch.pos: batch.end]
    return crc32c(data[21:]) == batch.crc
