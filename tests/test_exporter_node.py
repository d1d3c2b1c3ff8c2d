"""lantern-exporter's node collectors beside Debian's real prometheus-node-exporter (1.5).

Both exporters run on this machine at once, on free 127.0.0.1 ports, with the same set of
collectors. The tests check that
  * every node_* family lantern-exporter emits exists in node_exporter with the same label
    names, and the reverse for the collectors lantern claims;
  * scraped together, the live counters agree: lo bytes (with traffic driven over lo between
    two rounds of scrapes), per-CPU seconds, disk counters, MemTotal, boot time;
  * on the fixture tree (exporter/tests/fixtures) the two print the same samples;
  * --no-collector.X drops a collector and a collector on a broken root reports
    node_scrape_collector_success 0 while the scrape still answers 200.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from lantern import REPO_ROOT, broker_env, free_port

EXPORTER_BIN = Path(os.environ.get("LANTERN_EXPORTER_BIN", REPO_ROOT / "target" / "release" / "lantern-exporter"))
FIXTURES = REPO_ROOT / "exporter" / "tests" / "fixtures"

# The collectors lantern-exporter implements; node_exporter is started with exactly these.
COLLECTORS = ["arp", "conntrack", "cpu", "diskstats", "entropy", "filefd", "filesystem", "hwmon", "loadavg",
              "meminfo", "netclass", "netdev", "netstat", "pressure", "sockstat", "softnet", "stat", "textfile",
              "thermal_zone", "time", "timex", "udp_queues", "uname", "vmstat"]

# Both read the fixture textfile directory (Debian's default is /var/lib/prometheus/node-exporter,
# upstream's and lantern's is none).
TEXTFILE_ARGS = [f"--collector.textfile.directory={FIXTURES / 'textfile'}"]

# Debian patches node_exporter's netdev default to exclude lo (upstream 1.5 excludes nothing,
# and lantern follows upstream); undo that so both see the same devices.
NODE_EXPORTER_ARGS = ["--collector.disable-defaults", *[f"--collector.{c}" for c in COLLECTORS],
                      "--collector.netdev.device-exclude=", *TEXTFILE_ARGS]


def node_exporter_bin() -> str:
    path = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if not path:
        pytest.fail("Debian's prometheus-node-exporter is not installed: `apt-get install "
                    "prometheus-node-exporter` (tests/run installs it)")
    return path


class Exporter:
    """One exporter process in its own session on a free port; killed at teardown."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict | None = None):
        self.name = name
        self.port = free_port()
        self.log_path = workdir / f"{name}.stderr.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([*argv, f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     env=broker_env({"TZ": "UTC", **(env or {})}), start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{name} exited at start-up ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} did not listen on {self.port}:\n{self.log_tail()}")
                time.sleep(0.05)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "<no log>"

    def scrape_raw(self) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=30) as r:
            return r.status, r.read().decode()

    def scrape(self) -> "Scrape":
        status, body = self.scrape_raw()
        assert status == 200, f"{self.name} /metrics answered {status}"
        return Scrape(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self._log.close()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Scrape:
    """A parsed text exposition: samples[name][frozenset(labels.items())] = value."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[str, dict[frozenset, float]] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            assert m, f"unparseable exposition line: {line!r}"
            labels = frozenset((k, bytes(v, "utf-8").decode("unicode_escape")) for k, v in _LABEL.findall(m[2] or ""))
            self.samples.setdefault(m[1], {})[labels] = float(m[3])

    def node_families(self) -> set[str]:
        return {n for n in self.samples if n.startswith("node_")}

    def label_names(self, name: str) -> set[frozenset]:
        return {frozenset(k for k, _ in labels) for labels in self.samples.get(name, {})}

    def value(self, name: str, **labels) -> float:
        key = frozenset(labels.items())
        series = self.samples.get(name, {})
        assert key in series, f"{name}{labels} missing; have {sorted(dict(k) for k in series)[:10]}"
        return series[key]


@pytest.fixture
def exporters(tmp_path):
    started: list[Exporter] = []

    def start(name: str, argv: list[str], env: dict | None = None) -> Exporter:
        e = Exporter(name, argv, tmp_path, env)
        started.append(e)
        return e

    yield start
    for e in started:
        e.stop()


def lantern_argv(*extra: str) -> list[str]:
    if not EXPORTER_BIN.exists():
        raise AssertionError(f"{EXPORTER_BIN} does not exist: run `cargo build --release --workspace`")
    return [str(EXPORTER_BIN), *extra]


# Families only one side has, and why. Both sides run on the same machine with the same
# collectors, so nothing else may differ.
ONLY_IN_NODE_EXPORTER = {
    "node_exporter_build_info": "node_exporter's own version, not a collector family",
}


def test_same_families_and_label_names_as_node_exporter(exporters):
    lantern = exporters("lantern-exporter", lantern_argv(*TEXTFILE_ARGS))
    real = exporters("node_exporter", [node_exporter_bin(), *NODE_EXPORTER_ARGS])
    ours, theirs = lantern.scrape(), real.scrape()

    # (a) everything lantern emits exists in node_exporter with the same label names
    for name in sorted(ours.node_families()):
        assert name in theirs.samples, f"{name} is not a node_exporter metric"
        assert ours.label_names(name) == theirs.label_names(name), \
            f"{name}: lantern labels {ours.label_names(name)} != node_exporter {theirs.label_names(name)}"
    # (b) and the reverse, for the collectors claimed (node_exporter runs only those)
    missing = sorted(theirs.node_families() - ours.node_families() - set(ONLY_IN_NODE_EXPORTER))
    assert not missing, f"node_exporter families lantern-exporter lacks: {missing}"
    # every collector succeeded on both, or (hwmon on a VM, conntrack without the module, PSI
    # off) found no data on both
    no_data = []
    for c in COLLECTORS:
        assert ours.value("node_scrape_collector_success", collector=c) == \
            theirs.value("node_scrape_collector_success", collector=c), f"{c}: {lantern.log_tail()}"
        if theirs.value("node_scrape_collector_success", collector=c) == 0:
            no_data.append(c)
    assert set(no_data) <= {"hwmon", "conntrack", "pressure"}, f"collectors failing on this machine: {no_data}"
    print(f"collectors with no data on this machine (on both): {no_data}")
    print(f"{len(ours.node_families())} node_* families, identical names and label names")


def _drive_lo_traffic(n_bytes: int) -> None:
    """Sends n_bytes over a TCP connection on 127.0.0.1 (so over lo) and waits until the
    receiver has read them all."""
    srv = socket.create_server(("127.0.0.1", 0))
    received = 0

    def sink():
        nonlocal received
        conn, _ = srv.accept()
        with conn:
            while chunk := conn.recv(1 << 20):
                received += len(chunk)

    t = threading.Thread(target=sink)
    t.start()
    with socket.create_connection(srv.getsockname()) as c:
        buf = b"\0" * (1 << 20)
        for _ in range(n_bytes // len(buf)):
            c.sendall(buf)
    t.join(30)
    srv.close()
    assert received == n_bytes


def test_live_counters_agree_with_node_exporter(exporters):
    lantern = exporters("lantern-exporter", lantern_argv(*TEXTFILE_ARGS))
    real = exporters("node_exporter", [node_exporter_bin(), *NODE_EXPORTER_ARGS])

    l1, r1 = lantern.scrape(), real.scrape()
    _drive_lo_traffic(64 << 20)
    l2, r2 = lantern.scrape(), real.scrape()

    # lo: read in the order l1 < r1 < l2 < r2, so the counters must interleave exactly, and
    # the byte deltas across the 64 MiB of traffic must agree. (Packets are compared only by
    # order: 64 MiB is ~1000 packets of lo's 64 KiB MTU, so other processes' traffic on this
    # shared machine moves their delta by a few percent.)
    lo = {"device": "lo"}
    for metric in ("node_network_receive_bytes_total", "node_network_transmit_bytes_total",
                   "node_network_receive_packets_total", "node_network_transmit_packets_total"):
        a1, b1, a2, b2 = (s.value(metric, **lo) for s in (l1, r1, l2, r2))
        assert a1 <= b1 <= a2 <= b2, f"{metric}: lantern {a1}, node_exporter {b1}, lantern {a2}, node_exporter {b2}"
        d_l, d_r = a2 - a1, b2 - b1
        rel = abs(d_l - d_r) / d_r
        print(f"{metric}{{device=lo}}: delta lantern {d_l:.0f}, node_exporter {d_r:.0f} ({rel:.3%} apart); "
              f"values read ms apart differ by {(b1 - a1) / b1:.1e} relative")
        if metric.endswith("_bytes_total"):
            assert rel < 0.03, f"{metric} deltas differ by {rel:.2%}"

    # per-CPU seconds: same keys, and values within 0.5 s (both read /proc/stat a few ms apart;
    # USER_HZ resolution is 0.01 s)
    cpu_keys = set(l1.samples["node_cpu_seconds_total"])
    assert cpu_keys == set(r1.samples["node_cpu_seconds_total"])
    worst = 0.0
    for key in cpu_keys:
        a, b = l1.samples["node_cpu_seconds_total"][key], r1.samples["node_cpu_seconds_total"][key]
        worst = max(worst, abs(a - b))
        assert abs(a - b) <= 0.5 + 0.01 * b, f"node_cpu_seconds_total{dict(key)}: lantern {a}, node_exporter {b}"
    print(f"node_cpu_seconds_total: {len(cpu_keys)} series, largest difference {worst:.2f} s")

    assert l1.value("node_memory_MemTotal_bytes") == r1.value("node_memory_MemTotal_bytes")
    assert l1.value("node_boot_time_seconds") == r1.value("node_boot_time_seconds")
    assert l1.samples["node_uname_info"] == r1.samples["node_uname_info"]
    # static per-NIC and per-disk properties are equal
    for name in ("node_network_mtu_bytes", "node_network_info", "node_network_iface_id", "node_disk_info",
                 "node_filesystem_size_bytes", "node_filesystem_files", "node_filesystem_readonly"):
        assert l1.samples.get(name) == r1.samples.get(name), f"{name} differs"

    # disk counters: monotonic, so l1 <= r1 <= l2 for every device and counter
    disk = [n for n in l1.node_families() if n.startswith("node_disk_") and n.endswith("_total")]
    assert disk, "no disk counters on this machine"
    for name in disk:
        for key, a1 in l1.samples[name].items():
            b1, a2 = r1.samples[name][key], l2.samples[name][key]
            assert a1 <= b1 <= a2, f"{name}{dict(key)}: lantern {a1}, node_exporter {b1}, lantern {a2}"
    print(f"{len(disk)} node_disk_*_total families interleave exactly")

    # PSI (/proc/pressure) and conntrack (the nf_conntrack module) depend on the host. Where
    # node_exporter serves them, lantern must serve the same families, compared below; where it
    # does not, lantern must not either: a check on both sides, never a silent skip.
    for what, prefix in (("pressure", "node_pressure_"), ("conntrack", "node_nf_conntrack_")):
        ours_f = {n for n in l1.node_families() if n.startswith(prefix)}
        theirs_f = {n for n in r1.node_families() if n.startswith(prefix)}
        assert ours_f == theirs_f, f"{what}: lantern serves {sorted(ours_f)}, node_exporter {sorted(theirs_f)}"
        print(f"{what}: " + (f"{len(ours_f)} families on both, compared below" if ours_f
                             else "absent on both (this host lacks it): checked absent, not compared"))

    # TCP/UDP/IP counters (netstat), PSI, softnet: monotonic, so they interleave exactly too;
    # the 64 MiB sent over a new TCP connection moves the TCP ones.
    gauges = {"node_netstat_Tcp_CurrEstab", "node_netstat_Ip_Forwarding"}
    counters = sorted(n for n in l1.node_families()
                      if (n.startswith("node_netstat_") and n not in gauges)
                      or n.startswith(("node_pressure_", "node_softnet_")))
    assert "node_netstat_Tcp_RetransSegs" in counters and "node_netstat_TcpExt_ListenDrops" in counters
    for name in counters:
        for key, a1 in l1.samples[name].items():
            b1, a2, b2 = r1.samples[name][key], l2.samples[name][key], r2.samples[name][key]
            assert a1 <= b1 <= a2 <= b2, f"{name}{dict(key)}: lantern {a1}, node_exporter {b1}, lantern {a2}, node_exporter {b2}"
    for name in ("node_netstat_Tcp_ActiveOpens", "node_netstat_Tcp_PassiveOpens", "node_netstat_Tcp_InSegs",
                 "node_netstat_Tcp_OutSegs", "node_netstat_IpExt_InOctets"):
        assert l2.value(name) > l1.value(name), f"{name} did not move with the traffic"
    d_in = l2.value("node_netstat_IpExt_InOctets") - l1.value("node_netstat_IpExt_InOctets")
    assert d_in >= 64 << 20, f"IpExt_InOctets moved {d_in} across 64 MiB over lo"
    print(f"{len(counters)} netstat/pressure/softnet counter families interleave exactly")

    # kernel settings and the clock discipline are the same for both
    for name in ("node_entropy_pool_size_bits", "node_nf_conntrack_entries_limit", "node_timex_tick_seconds",
                 "node_timex_status", "node_timex_sync_status", "node_timex_tai_offset_seconds",
                 "node_timex_loop_time_constant", "node_timex_frequency_adjustment_ratio", "node_arp_entries",
                 "node_thermal_zone_temp", "node_textfile_mtime_seconds", "node_textfile_scrape_error"):
        assert l1.samples.get(name) == r1.samples.get(name), f"{name} differs: {l1.samples.get(name)} {r1.samples.get(name)}"
    off = abs(l1.value("node_timex_offset_seconds") - r1.value("node_timex_offset_seconds"))
    assert off < 0.01, f"node_timex_offset_seconds differ by {off}"


# Series that differ between the two on a fixture tree by design: the clock, durations,
# uname (node_exporter calls uname(2) instead of reading the fixture's sys/kernel files) and
# the free space of the real disk the fixture rootfs lives on (it changes between scrapes),
# and rx_nohandler, which node_exporter only has over netlink (lantern reads it from sysfs;
# netlink must be off here for node_exporter to read the fixture's /proc/net/dev).
FIXTURE_SKIP_PREFIXES = ("node_timex_",)  # adjtimex(2) of the running kernel, read ms apart
FIXTURE_SKIP = {"node_time_seconds", "node_scrape_collector_duration_seconds", "node_uname_info",
                "node_exporter_build_info", "node_filesystem_free_bytes", "node_filesystem_avail_bytes",
                "node_filesystem_files_free", "node_network_receive_nohandler_total"}


def test_fixture_tree_gives_the_same_samples_as_node_exporter(exporters):
    paths = [f"--path.procfs={FIXTURES / 'proc'}", f"--path.sysfs={FIXTURES / 'sys'}",
             f"--path.rootfs={FIXTURES / 'rootfs'}", f"--path.udev.data={FIXTURES / 'udev' / 'data'}"]
    lantern = exporters("lantern-exporter", lantern_argv(*paths, *TEXTFILE_ARGS))
    # node_exporter's netdev reads netlink by default, which ignores --path.procfs
    real = exporters("node_exporter", [node_exporter_bin(), *NODE_EXPORTER_ARGS, *paths,
                                       "--no-collector.netdev.netlink"])
    ours, theirs = lantern.scrape(), real.scrape()
    compared, differing = 0, []
    for name in sorted((set(ours.samples) | set(theirs.samples)) - FIXTURE_SKIP):
        if name.startswith(FIXTURE_SKIP_PREFIXES) or name.startswith(("go_", "process_", "promhttp_")):
            continue
        a, b = ours.samples.get(name), theirs.samples.get(name)
        if a != b:
            differing.append(f"{name}:\n  lantern       {a}\n  node_exporter {b}")
        compared += len(a or {})
    assert not differing, "\n".join(differing)
    print(f"{compared} fixture samples identical in both")
    assert compared > 300, "the fixture tree should yield a few hundred samples"


def test_disabled_collector_and_broken_root(exporters, tmp_path):
    lantern = exporters("lantern-exporter", lantern_argv("--no-collector.meminfo"))
    s = lantern.scrape()
    assert not any(n.startswith("node_memory_") for n in s.samples)
    assert frozenset({("collector", "meminfo")}) not in s.samples["node_scrape_collector_success"]
    assert s.value("node_scrape_collector_success", collector="cpu") == 1

    empty = tmp_path / "empty-proc"
    empty.mkdir()
    broken = exporters("lantern-broken", lantern_argv(f"--path.procfs={empty}"))
    status, body = broken.scrape_raw()
    assert status == 200
    s = Scrape(body)
    assert s.value("node_scrape_collector_success", collector="cpu") == 0
    assert s.value("node_scrape_collector_success", collector="meminfo") == 0
    assert s.value("node_scrape_collector_success", collector="netclass") == 1
    assert "node_cpu_seconds_total" not in s.samples
    assert s.value("node_network_up", device="lo") in (0, 1)
