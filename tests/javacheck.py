"""Running tests/java/LanternClientCheck (the official Apache Kafka Java clients) from the
end-to-end tests: `setup_classpaths()` runs tests/java/setup.sh (fetch and verify the jars,
compile the program; a no-op when everything is in place) and `run_java` runs one mode of the
program against a broker or a cluster and returns its `LANTERN_RESULT` summary.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

from lantern import REPO_ROOT

JAVA_DIR = REPO_ROOT / "tests" / "java"
JAVA_TIMEOUT_S = 150

# The kafka-clients versions tests/java/setup.sh provides, by major version.
CLIENTS = {"3.x": "3.9.0", "4.x": "4.1.1"}


def setup_classpaths() -> dict[str, str]:
    """{kafka-clients version: classpath}."""
    assert shutil.which("java") and shutil.which("javac"), (
        "java/javac not found: tests/run installs openjdk-17-jdk-headless (apt) when javac is missing")
    r = subprocess.run(["bash", str(JAVA_DIR / "setup.sh")], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"tests/java/setup.sh failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    cps = {}
    for line in r.stdout.splitlines():
        if line.startswith("classpath "):
            _, ver, cp = line.split(" ", 2)
            cps[ver] = cp
    missing = set(CLIENTS.values()) - set(cps)
    assert not missing, f"setup.sh made no classpath for {missing}; its output:\n{r.stdout}"
    return cps


def _stderr_for_report(stderr: str, n: int = 80) -> str:
    """The Java program's stderr minus the (long) negotiated-versions lines."""
    lines = [ln for ln in stderr.splitlines() if "finalized features" not in ln]
    return "\n".join(lines[-n:])


def run_java(cp: str, broker, *args: str) -> tuple[dict, str]:
    """Run LanternClientCheck against `broker` (anything with `bootstrap` and `log_tail(n)`:
    a lantern.Broker or a cluster); returns (summary, stderr). Fails with the Java error
    output, the summary's errors and the broker's log tail unless it exited 0 with ok=true."""
    cmd = ["java", "-Xmx512m", f"-Dlog4j2.configurationFile={JAVA_DIR / 'log4j2.xml'}", "-cp", cp,
           "LanternClientCheck", f"--bootstrap={broker.bootstrap}", *args]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=JAVA_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise AssertionError(f"LanternClientCheck {args} still running after {JAVA_TIMEOUT_S}s; Java stderr tail:\n"
                             f"{_stderr_for_report(err)}\nbroker log tail:\n{broker.log_tail(40)}")
    took = time.monotonic() - t0
    result_lines = [ln for ln in p.stdout.splitlines() if ln.startswith("LANTERN_RESULT ")]
    summary = json.loads(result_lines[-1].split(" ", 1)[1]) if result_lines else None
    print(f"LanternClientCheck {' '.join(args)}: exit {p.returncode} in {took:.1f}s\n{result_lines[-1] if result_lines else p.stdout[-2000:]}")
    if p.returncode != 0 or not summary or not summary.get("ok"):
        raise AssertionError(
            f"LanternClientCheck {' '.join(args)} exited {p.returncode}; "
            f"errors: {json.dumps(summary.get('errors') if summary else None, indent=1)}\n"
            f"Java stderr tail:\n{_stderr_for_report(p.stderr)}\n"
            f"broker log tail:\n{broker.log_tail(40)}")
    return summary, p.stderr
