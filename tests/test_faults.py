"""The fault suite's short schedule, run by tests/run (the long one: tests/faults/run).

Each test runs tests/faults/suite.py as its own process: as root it puts every broker in a
network namespace of its own (so partitions cut real TCP connections) and the clients in
another; elsewhere the suite says so and runs the faults that need no network control.
Seeds are fixed so that a failure replays with the command the test prints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parent / "faults" / "suite.py"


def run_suite(out: Path, *args: str, timeout: float = 600) -> tuple[int, dict, str]:
    cmd = [sys.executable, str(SUITE), "--out", str(out), *args]
    print("replay with:", " ".join(cmd))
    log = out.parent / f"{out.name}.suite.log"
    with open(log, "w") as fh:
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True)
        try:
            code = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.terminate()  # the suite stops its brokers and removes its namespaces
            p.wait(90)
            raise
    result_file = out / "result.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    text = log.read_text(errors="replace")
    return code, result, "\n".join(line for line in text.splitlines() if not line.startswith("%"))[-8000:]


@pytest.mark.timeout(900)
def test_no_acknowledged_write_is_lost_under_a_short_fault_schedule(tmp_path):
    """About a dozen faults of every kind (kill -9, pauses, an isolated node, a leader cut
    from the quorum, majority/minority and bridge partitions, a split with a restart inside
    it) under acks=all idempotent producers, RF 3, min.insync.replicas=2: no lost,
    duplicated, reordered or inconsistent record, identical replicas, no panic."""
    code, result, output = run_suite(tmp_path, "--duration", "70", "--seed", "20261207", "--every", "2,4", "--hold", "3,5")
    print(output)
    assert result, f"the suite wrote no result:\n{output}"
    assert sum(result["faults"].values()) >= 8, result["faults"]
    if result["network_faults"]:
        assert {"isolate", "leader-cut", "split", "bridge"} & set(result["faults"]), result["faults"]
    assert result["counts"]["sends_acknowledged"] > 5000, result["counts"]
    assert all(v == 0 for v in result["anomalies"].values()), (result["anomalies"], (tmp_path / "summary.md").read_text())
    assert result["replicas_identical"], result.get("convergence")
    assert not result["panics"], result["panics"]
    assert code == 0, output
    assert (tmp_path / "timeline.png").stat().st_size > 10_000


@pytest.mark.timeout(600)
def test_the_checker_catches_the_writes_a_broken_configuration_loses(tmp_path):
    """The honesty check: acks=1, min.insync.replicas=1 and unclean election, with a leader
    cut from the other brokers while clients still reach it. That leader acknowledges writes
    its followers never get; a new leader is elected on the other side, and the old one
    truncates them when the partition heals. The suite must report them lost (and fail)."""
    code, result, output = run_suite(tmp_path, "--broken", "--duration", "30", "--seed", "7", "--every", "2,4",
                                     "--hold", "6,8", "--kinds", "leader-cut" if _network_faults() else "kill")
    print(output)
    assert result, f"the suite wrote no result:\n{output}"
    assert result["anomalies"]["lost"] > 0, (result["anomalies"], (tmp_path / "summary.md").read_text())
    assert code == 1, "a run with lost writes must fail"


def _network_faults() -> bool:
    sys.path.insert(0, str(SUITE.parent))
    import hosts

    return hosts.available()[0]
