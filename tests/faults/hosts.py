"""Test hosts for the fault suite: one network namespace per broker, on a bridge of their own.

`Network(["n1", "n2", "n3", "c"])` makes a namespace per name plus a switch namespace holding
a bridge, joins each host to the bridge with a veth pair and gives it 10.213.0.<i>/24. Nothing
is added to the root namespace (no address, no route, no rule): the addresses exist only
inside these namespaces, so the suite's own processes (brokers, and the clients in host "c")
are the only ones that can reach them.

Network faults are nftables rules inside the hosts: every host has a table `lantern_fault`
whose input and output chains drop packets from and to the addresses in its set `blocked`.
Dropping (not rejecting) is what a real partition does: established TCP connections hang
until their timeouts, new ones time out. `cut(a, b)` blocks both directions between two
hosts, `heal()` empties every set.

Requires root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and the `ip` and `nft` commands;
`available()` says whether this machine can, and why not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SUBNET = "10.213.0"
NETNS_DIR = Path("/run/netns")
TABLE = "lantern_fault"


def available() -> tuple[bool, str]:
    """(True, "") when namespaces and nftables can be used here, else (False, why not): tried
    for real (root in a container without CAP_SYS_ADMIN / CAP_NET_ADMIN cannot)."""
    if os.geteuid() != 0:
        return False, "not root: network namespaces and nftables rules need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return False, f"the `{tool}` command is missing (Debian: apt-get install {'iproute2' if tool == 'ip' else 'nftables'})"
    probe = f"lntfprobe{os.getpid()}"
    try:
        made = _run("ip", "netns", "add", probe, check=False)
        if made.returncode != 0:
            return False, f"cannot create a network namespace: {made.stderr.strip()}"
        nft = _run("ip", "netns", "exec", probe, "nft", "add", "table", "inet", TABLE, check=False)
        if nft.returncode != 0:
            return False, f"cannot add nftables rules in a namespace: {nft.stderr.strip()}"
        return True, ""
    finally:
        _run("ip", "netns", "del", probe, check=False)


def kill_processes_in(ns: str) -> None:
    """SIGKILLs whatever still runs in namespace `ns` (a broker a crashed run left behind)."""
    pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass


def _run(*cmd: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(list(cmd), input=input, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def remove_stale(prefix: str = "lntf") -> list[str]:
    """Deletes namespaces a previous run left behind (its process is gone): names are
    `<prefix><pid>-<host>`. Returns the names removed."""
    removed = []
    if not NETNS_DIR.is_dir():
        return removed
    for entry in NETNS_DIR.iterdir():
        name = entry.name
        if not name.startswith(prefix) or "-" not in name:
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            kill_processes_in(name)
            _run("ip", "netns", "del", name, check=False)
            removed.append(name)
    return removed


class Network:
    """Hosts on one bridge. Use as a context manager, or create() then destroy()."""

    def __init__(self, hosts: list[str], prefix: str = "lntf"):
        self.hosts = list(hosts)
        tag = f"{prefix}{os.getpid()}"
        self.switch = f"{tag}-sw"
        self.ns = {h: f"{tag}-{h}" for h in self.hosts}
        self.address = {h: f"{SUBNET}.{i + 1}" for i, h in enumerate(self.hosts)}
        # veth names are limited to 15 characters.
        self._veth = {h: f"lf{os.getpid() % 100000}{h}"[:15] for h in self.hosts}
        self.created = False

    def describe(self) -> dict:
        return {"hosts": self.hosts, "switch": self.switch, "ns": self.ns, "address": self.address, "veth": self._veth}

    @classmethod
    def attach(cls, described: dict) -> "Network":
        """The Network another process created (from its `describe()`), to inject faults
        into; it is not destroyed by this process."""
        net = cls.__new__(cls)
        net.hosts = list(described["hosts"])
        net.switch = described["switch"]
        net.ns = dict(described["ns"])
        net.address = dict(described["address"])
        net._veth = dict(described["veth"])
        net.created = False
        return net

    # ------------------------------------------------------------ lifecycle
    def create(self) -> "Network":
        remove_stale()
        try:
            _run("ip", "netns", "add", self.switch)
            self.created = True
            _run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
            _run("ip", "-n", self.switch, "link", "set", "br0", "up")
            for h in self.hosts:
                ns, veth = self.ns[h], self._veth[h]
                _run("ip", "netns", "add", ns)
                _run("ip", "-n", ns, "link", "set", "lo", "up")
                _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                _run("ip", "link", "set", veth, "netns", self.switch)
                _run("ip", "-n", self.switch, "link", "set", veth, "master", "br0", "up")
                _run("ip", "-n", ns, "addr", "add", f"{self.address[h]}/24", "dev", "eth0")
                _run("ip", "-n", ns, "link", "set", "eth0", "up")
                _run("ip", "netns", "exec", ns, "nft", "-f", "-", input=(
                    f"table inet {TABLE} {{\n"
                    f"  set blocked {{ type ipv4_addr; }}\n"
                    f"  chain input {{ type filter hook input priority 0; ip saddr @blocked drop; }}\n"
                    f"  chain output {{ type filter hook output priority 0; ip daddr @blocked drop; }}\n"
                    f"}}\n"))
        except Exception:
            self.destroy()
            raise
        return self

    def destroy(self) -> None:
        """Kills what still runs in them, deletes every namespace (their veths and rules go
        with them)."""
        for name in [*self.ns.values(), self.switch]:
            if (NETNS_DIR / name).exists():
                kill_processes_in(name)
                _run("ip", "netns", "del", name, check=False)
        self.created = False

    def __enter__(self) -> "Network":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.destroy()

    def exec_prefix(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[host]]

    # ---------------------------------------------------------------- faults
    def _block(self, host: str, addresses: list[str]) -> None:
        if addresses:
            _run("ip", "netns", "exec", self.ns[host], "nft", "add", "element", "inet", TABLE, "blocked",
                 "{ " + ", ".join(addresses) + " }")

    def cut(self, a: str, b: str) -> None:
        """No packet passes between hosts a and b, either way."""
        self._block(a, [self.address[b]])
        self._block(b, [self.address[a]])

    def partition(self, *groups: list[str]) -> None:
        """Hosts talk only within their own group; hosts in no group are left alone."""
        for i, g in enumerate(groups):
            for other in groups[i + 1:]:
                for a in g:
                    for b in other:
                        self.cut(a, b)

    def blocked(self, host: str) -> list[str]:
        """The addresses `host` currently drops."""
        out = _run("ip", "netns", "exec", self.ns[host], "nft", "-j", "list", "set", "inet", TABLE, "blocked").stdout
        import json

        for item in json.loads(out).get("nftables", []):
            if "set" in item:
                return [e if isinstance(e, str) else str(e) for e in item["set"].get("elem", [])]
        return []

    def heal(self) -> None:
        for h in self.hosts:
            _run("ip", "netns", "exec", self.ns[h], "nft", "flush", "set", "inet", TABLE, "blocked", check=False)
