"""One run of the fault suite: a cluster on its own hosts, clients, the nemesis, the checker.

    python tests/faults/suite.py --duration 150 --seed 7 --out /tmp/faults-run

As root, it makes a network namespace per broker plus one for the clients (hosts.py) and runs
itself again inside the clients' namespace; elsewhere it says why not and runs on loopback
with the faults that need no network control (kill, pause). The run:

1. starts `--nodes` real lantern-broker processes (each broker and controller), creates the
   topic (`--partitions`, replication factor 3, min.insync.replicas=2; `--broken` is the
   configuration that must lose writes: acks=1, min.insync.replicas=1, unclean election on);
2. runs the producers and readers (workload.py) for `--duration` seconds while the nemesis
   injects faults on the seeded schedule (`--seed`, printed so a failure can be replayed);
3. heals everything, lets the producers run on a little, drains them, reads every partition
   from the start with a fresh consumer;
4. waits for the replicas to converge and compares their log bytes, looks for panics in the
   brokers' logs, runs the checker, writes `history.jsonl`, `summary.md`, `result.json` and
   `timeline.png` into `--out`.

Exit status 0 when nothing is wrong (no anomaly, no panic, identical replicas), 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import hosts  # noqa: E402

TOPIC = "queue"
KAFKA_PORT, CONTROLLER_PORT, HTTP_PORT = 9092, 9093, 8080

# Kafka's defaults except where a fault would otherwise take longer than the suite can wait:
# a follower cut away leaves the ISR after 6 s (Kafka: 30 s), so acks=all resumes sooner.
CLUSTER_PROPS = {
    "replica.lag.time.max.ms": 6000,
    "offsets.topic.num.partitions": 3,
    "offsets.topic.replication.factor": 3,
    "default.replication.factor": 3,
    "replica.high.watermark.checkpoint.interval.ms": 1000,
    # The table topic is compacted often, so that crashes land in compactions.
    "log.cleaner.backoff.ms": 1000,
}
TABLE = "table"
# Small segments: the queue rolls every few seconds, the table has something to clean.
QUEUE_CONFIGS = {"segment.bytes": str(32 * 1024)}
TABLE_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": str(16 * 1024), "min.cleanable.dirty.ratio": "0.01",
                 "min.compaction.lag.ms": "0"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=150, help="seconds of faults (default 150)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    ap.add_argument("--out", type=Path, required=True, help="directory for the history, summary and plot")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=150, help="records per second per producer")
    ap.add_argument("--every", default="6,12", help="seconds between faults, min,max")
    ap.add_argument("--hold", default="4,9", help="seconds a fault lasts, min,max")
    ap.add_argument("--kinds", default="", help="comma-separated fault kinds (default: every kind available)")
    ap.add_argument("--broken", action="store_true", help="acks=1, min.insync.replicas=1, unclean election: must lose writes")
    ap.add_argument("--loopback", action="store_true", help="no namespaces even as root (process faults only)")
    ap.add_argument("--disk-mb", type=int, default=256,
                    help="as root, each broker's log directory is a tmpfs of this size (the disk-full fault fills it); 0: no tmpfs")
    ap.add_argument("--report", type=Path, default=None,
                    help="also put this run's summary into FILE between its run markers (docs/reliability.md)")
    ap.add_argument("--inside", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1 << 31)
    return args


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- outer
def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    # SIGTERM (a test's time-out, kill) unwinds like Ctrl-C, so the brokers are stopped, the
    # tmpfs unmounted and the namespaces deleted on the way out.
    import signal

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    args = parse_args(argv)
    # Absolute: brokers run in their own working directories, and the tmpfs, the crash files
    # and the data directories must be the same paths for them and for the suite.
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.inside:
        return run(args, hosts.Network.attach(json.loads(args.inside)))
    ok, why = hosts.available()
    if args.loopback or not ok:
        log(f"fault suite: no network namespaces ({why or '--loopback'}); running on loopback with kill and pause only")
        return run(args, None)
    names = [f"n{i}" for i in range(1, args.nodes + 1)] + ["c"]
    with hosts.Network(names) as net:
        log(f"fault suite: hosts {', '.join(f'{h}={a}' for h, a in net.address.items())} (namespaces {net.ns['c'].rsplit('-', 1)[0]}-*)")
        cmd = [*net.exec_prefix("c"), sys.executable, str(Path(__file__).resolve()), *(argv if argv is not None else sys.argv[1:]),
               "--seed", str(args.seed), "--inside", json.dumps(net.describe())]
        inner = subprocess.Popen(cmd)
        try:
            return inner.wait()
        except KeyboardInterrupt:
            inner.terminate()
            try:
                inner.wait(60)
            except subprocess.TimeoutExpired:
                inner.kill()
            raise


# --------------------------------------------------------------------------- inside
def place_on_hosts(cluster, net) -> None:
    """Each node listens on its own host's address with Kafka's usual ports."""
    for i, node in cluster.nodes.items():
        host = f"n{i}"
        node.host, node.netns = net.address[host], net.ns[host]
        node.port = node.advertised_port = KAFKA_PORT
        node.http_port, node.controller_port = HTTP_PORT, CONTROLLER_PORT
    cluster.voters = ",".join(f"{i}@{cluster.nodes[i].controller_address}" for i in cluster.voter_ids)


def mount_small_disks(cluster, size_mb: int) -> list[Path]:
    """Each broker's log directory becomes a tmpfs of `size_mb` (the disk-full fault fills
    it); the metadata log stays on the real disk (`metadata.log.dir`), as production setups
    keep it apart. Returns the mount points."""
    mounted = []
    for node in cluster.nodes.values():
        d = node.data_dirs[0]
        d.mkdir(parents=True, exist_ok=True)
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "lantern-fault-disk", str(d)],
                           capture_output=True, text=True)
        if m.returncode != 0:
            log(f"fault suite: no small disks (mount failed: {m.stderr.strip()}); the disk-full fault is left out")
            for done in mounted:
                subprocess.run(["umount", str(done)], check=False)
            return []
        mounted.append(d)
        node.props["metadata.log.dir"] = str(node.workdir / "metadata")
    return mounted


def log_digests(cluster, partitions: int) -> dict[int, dict[int, str]]:
    """{partition: {node: sha256 of its .log segment files in offset order}}."""
    out: dict[int, dict[int, str]] = {}
    for p in range(partitions):
        for i, node in cluster.nodes.items():
            h = hashlib.sha256()
            dirs = [d / f"{TOPIC}-{p}" for d in node.data_dirs if (d / f"{TOPIC}-{p}").is_dir()]
            if not dirs:
                continue  # not a replica of this partition
            for pdir in dirs:
                for seg in sorted(pdir.glob("*.log")):
                    h.update(seg.read_bytes())
            out.setdefault(p, {})[i] = h.hexdigest()[:16]
    return out


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    """A zigzag varint (Kafka's record fields) at `at`: (value, next position)."""
    shift = result = 0
    while True:
        b = buf[at]
        at += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), at
        shift += 7


def latest_per_key(segments: list[Path]) -> dict[bytes, tuple[int, bytes | None]]:
    """{key: (offset, value)} of the last record of each key in these segment files
    (uncompressed magic-2 batches, as the suite's producers send them)."""
    out: dict[bytes, tuple[int, bytes | None]] = {}
    for seg in segments:
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base = int.from_bytes(data[pos:pos + 8], "big", signed=True)
            length = int.from_bytes(data[pos + 8:pos + 12], "big", signed=True)
            if length <= 0 or pos + 12 + length > len(data):
                break
            attributes = int.from_bytes(data[pos + 21:pos + 23], "big")
            count = int.from_bytes(data[pos + 57:pos + 61], "big", signed=True)
            if attributes & 0x07 or attributes & 0x20:  # compressed, or a control batch
                pos += 12 + length
                continue
            at = pos + 61
            for _ in range(count):
                _, at = _varint(data, at)  # record length
                at += 1  # attributes
                _, at = _varint(data, at)  # timestamp delta
                delta, at = _varint(data, at)
                klen, at = _varint(data, at)
                key = data[at:at + klen] if klen >= 0 else None
                at += max(klen, 0)
                vlen, at = _varint(data, at)
                value = data[at:at + vlen] if vlen >= 0 else None
                at += max(vlen, 0)
                headers, at = _varint(data, at)
                for _ in range(headers):
                    hk, at = _varint(data, at)
                    at += hk
                    hv, at = _varint(data, at)
                    at += max(hv, 0)
                if key is not None:
                    out[key] = (base + delta, value)
            pos += 12 + length
    return out


def table_replicas_agree(cluster) -> tuple[bool, str]:
    """Every replica of the compacted table holds the same latest record per key (compaction
    runs on each replica on its own, so their bytes differ; their latest values must not)."""
    views = {}
    for i, node in cluster.nodes.items():
        segs = [seg for d in node.data_dirs for seg in sorted((d / f"{TABLE}-0").glob("*.log"))]
        if segs:
            views[i] = latest_per_key(segs)
    first = next(iter(views.values()), {})
    differing = sorted({k for v in views.values() for k in set(v) ^ set(first)} |
                       {k for v in views.values() for k in v if k in first and v[k] != first[k]})
    return (len(views) >= 1 and not differing and len(first) > 0,
            f"{len(views)} replicas, {len(first)} keys, differing keys: {[k.decode() for k in differing[:5]]}")


def wait_converged(cluster, topics: dict[str, int], timeout: float) -> tuple[bool, str]:
    """Every replica of `topics` ({name: partitions}) in the ISR and at the same log end
    offset (a follower stuck behind its leader never converges)."""
    from cluster import log_end_offsets, metadata

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            md = metadata(cluster.running_brokers()[0], list(topics)).topics
            full = all(sorted(pm.isr) == sorted(pm.replicas) for t in topics for pm in md[t].partitions.values())
            leos = {}
            for i, node in cluster.nodes.items():
                for (topic, p), v in log_end_offsets(node).items():
                    if topic in topics:
                        leos.setdefault((topic, p), {})[i] = v
            replicas = min(3, len(cluster.nodes))
            same = len(leos) == sum(topics.values()) and all(len(set(v.values())) == 1 and len(v) == replicas for v in leos.values())
            last = f"isr full: {full}, log end offsets: {leos}"
            if full and same:
                return True, last
        except Exception as e:  # a node still starting
            last = repr(e)
        time.sleep(0.5)
    return False, last


def panics(cluster) -> list[str]:
    found = []
    for node in cluster.nodes.values():
        text = node.log_path.read_text(errors="replace") if node.log_path.exists() else ""
        found += [f"node {node.node_id}: {line.strip()}" for line in text.splitlines() if "panicked at" in line]
    return found


BEGIN, END = "<!-- fault-run:begin -->", "<!-- fault-run:end -->"


def user_args(argv: list[str]) -> list[str]:
    """The arguments a person gave tests/faults/run: without those it adds (--out, --report)
    or the re-exec inside the client namespace adds (--inside and its network, a second
    --seed with the seed drawn)."""
    out: list[str] = []
    seed = None
    it = iter(argv)
    for a in it:
        name, eq, value = a.partition("=")
        if name in ("--inside", "--out", "--report"):
            if not eq:
                next(it, None)
            continue
        if name == "--seed":
            seed = value if eq else next(it, None)
            continue
        out.append(a)
    return out + (["--seed", seed] if seed is not None else [])


def write_report(args, result: dict, summary: str) -> None:
    """Replaces the text between the run markers of `args.report` with this run's figures
    (the rest of the file is written by people: anomalies found and what was done)."""
    commit = os.environ.get("LANTERN_FAULTS_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip() or "unknown"
    cmd = " ".join(["tests/faults/run", *user_args(sys.argv[1:])])
    block = "\n".join([
        BEGIN,
        f"Command: `{cmd}` at commit `{commit}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{'brokers on their own network namespaces' if result['network_faults'] else 'loopback (no network faults)'}; "
        f"verdict: **{'no anomaly' if result['ok'] else 'ANOMALIES'}**.",
        "",
        summary.replace("# Last long run", "### Last long run"),
        END,
    ])
    path = args.report
    text = path.read_text() if path.exists() else f"# Reliability\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


class GroupChurn(threading.Thread):
    """The group workload: members (member.py processes) of `churn-group` on the queue join,
    leave (SIGTERM: LeaveGroup) and die (SIGKILL) every few seconds, two or three at a time,
    each committing what it reads; their histories are merged into the run's at the end."""

    GROUP = "churn-group"

    def __init__(self, bootstrap: str, out: Path, start: float, rng: random.Random, record):
        super().__init__(name="group-churn", daemon=True)
        self.bootstrap, self.dir, self.start_at, self.rng = bootstrap, out / "members", start, rng
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record = record
        self.stop = threading.Event()
        self.members: dict[str, subprocess.Popen] = {}
        self.started = self.left = self.killed = 0

    def _join(self) -> None:
        name = f"m{self.started + 1}"
        self.started += 1
        self.members[name] = subprocess.Popen(
            [sys.executable, str(HERE / "member.py"), name, self.bootstrap, TOPIC, self.GROUP, str(self.dir / f"{name}.jsonl"),
             str(self.start_at)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def _leave(self, kill: bool) -> None:
        name = self.rng.choice(sorted(self.members))
        p = self.members.pop(name)
        if kill:
            p.kill()
            self.killed += 1
        else:
            p.terminate()
            self.left += 1
        self.record({"f": "member", "type": "kill" if kill else "leave", "process": name})

    def run(self) -> None:
        for _ in range(2):
            self._join()
        while not self.stop.wait(self.rng.uniform(3, 6)):
            n = len(self.members)
            if n < 2:
                action = "join"
            else:
                action = self.rng.choice(["leave", "kill"] if n >= 3 else ["join", "leave", "kill"])
            if action == "join":
                self._join()
            else:
                self._leave(kill=action == "kill")

    def finish(self, history) -> int:
        """Stops every member, merges their events into `history`; returns how many."""
        self.stop.set()
        self.join(10)
        for p in self.members.values():
            p.terminate()
        for p in self.members.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        merged = 0
        for f in sorted(self.dir.glob("*.jsonl")):
            for line in f.read_text().splitlines():
                try:
                    history.add(json.loads(line))
                    merged += 1
                except ValueError:
                    pass  # the torn last line of a killed member
        return merged


def run(args, net) -> int:
    from confluent_kafka.admin import AdminClient, NewTopic

    import checker
    from cluster import Cluster
    from nemesis import Nemesis
    from workload import History, Producer, Reader, final_read

    import logging

    import workload

    handler = logging.FileHandler(args.out / "clients.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    workload.CLIENT_LOG.addHandler(handler)
    workload.CLIENT_LOG.setLevel(logging.INFO)
    workload.CLIENT_LOG.propagate = False
    rng = random.Random(args.seed)
    log(f"fault suite: seed {args.seed} (replay: --seed {args.seed}), {args.duration:.0f}s of faults, "
        f"{args.nodes} brokers, {'broken configuration' if args.broken else 'acks=all, RF 3, min.insync.replicas=2'}")
    props = dict(CLUSTER_PROPS)
    if args.broken:
        props.update({"unclean.leader.election.enable": "true", "min.insync.replicas": 1})
    workdir = args.out / "cluster"
    cluster = Cluster(workdir, args.nodes, props=props)
    if net is not None:
        place_on_hosts(cluster, net)
    for node in cluster.nodes.values():
        node.env["FAULT_SUITE_CRASH_FILE"] = str(node.workdir / "crash-at")
    small_disks = mount_small_disks(cluster, args.disk_mb) if args.disk_mb and os.geteuid() == 0 else []
    history = History(args.out / "history.jsonl", time.monotonic())
    producers, readers = [], []
    churn = None
    nemesis_stop = threading.Event()
    result: dict = {"seed": args.seed, "duration": args.duration, "nodes": args.nodes, "broken": args.broken,
                    "network_faults": net is not None}
    try:
        cluster.start(timeout=60)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "logger": workload.CLIENT_LOG})
        configs = {"min.insync.replicas": "1" if args.broken else "2", **QUEUE_CONFIGS}
        if args.broken:
            configs["unclean.leader.election.enable"] = "true"
        table_configs = {"min.insync.replicas": "2", **TABLE_CONFIGS}
        created = admin.create_topics([NewTopic(TOPIC, args.partitions, 3, config=configs),
                                       NewTopic(TABLE, 1, 3, config=table_configs)], request_timeout=20)
        for f in created.values():
            f.result(30)
        from clients import wait_topic

        wait_topic(cluster.bootstrap, TOPIC, args.partitions)
        wait_topic(cluster.bootstrap, TABLE, 1)
        pconf = {"acks": "1", "enable.idempotence": False} if args.broken else {}
        producers = [Producer(n, cluster.bootstrap, TOPIC, args.partitions, history, rate=args.rate, config=pconf)
                     for n in range(1, args.producers + 1)]
        producers.append(Producer(1, cluster.bootstrap, TABLE, 1, history, rate=args.rate, key_space=50, process="t1"))
        readers = [Reader(1, cluster.bootstrap, TOPIC, args.partitions, history, mode="assign"),
                   Reader(2, cluster.bootstrap, TOPIC, args.partitions, history, mode="subscribe")]
        for t in [*producers, *readers]:
            t.start()
        churn = GroupChurn(cluster.bootstrap, args.out, history.start, rng, history.add)
        churn.start()
        time.sleep(3)
        nemesis = Nemesis(cluster, net, rng, history.add, topic=TOPIC, clock=history.now, log=log,
                          small_disks=bool(small_disks), crash_points=True)
        kinds = [k for k in args.kinds.split(",") if k] or None
        stop = nemesis_stop
        nt = threading.Thread(target=nemesis.run, args=(stop,), kwargs={
            "every": tuple(float(x) for x in args.every.split(",")),
            "hold": tuple(float(x) for x in args.hold.split(",")), "kinds": kinds}, daemon=True)
        nt.start()
        time.sleep(args.duration)
        stop.set()
        nt.join(60)
        nemesis.heal_everything(timeout=90)
        log(f"[suite {history.now():7.1f}s] healed: every broker running and ready")
        time.sleep(8)  # writes after the last fault show the cluster recovered
        for p in producers:
            p.stop.set()
        for p in producers:
            p.join(10)
            pending = p.drain(60)
            if pending:
                log(f"producer {p.process}: {pending} deliveries still pending after 60s")
        time.sleep(2)
        for r in readers:
            r.stop.set()
        for r in readers:
            r.join(15)
        merged = churn.finish(history)
        log(f"group churn: {churn.started} members started, {churn.left} left, {churn.killed} killed; {merged} events")
        result["group_churn"] = {"started": churn.started, "left": churn.left, "killed": churn.killed}
        final_read(cluster.bootstrap, TOPIC, args.partitions, history, log=log)
        final_read(cluster.bootstrap, TABLE, 1, history, log=log)
        converged, state = wait_converged(cluster, {TOPIC: args.partitions, TABLE: 1}, 90)
        digests = log_digests(cluster, args.partitions)
        table_agree, table_state = table_replicas_agree(cluster)
        identical = converged and table_agree and all(len(set(d.values())) == 1 for d in digests.values())
        result["table_replicas"] = table_state
        result.update(faults=nemesis.counts, crashes_at_points=nemesis.crashed, converged=converged, convergence=state,
                      log_digests=digests, replicas_identical=identical)
        if not identical:
            log(f"replicas differ: converged={converged} ({state}); digests {digests}; table: {table_state}")
    finally:
        # Nothing may start a broker or a member after this.
        nemesis_stop.set()
        for t in [*producers, *readers]:
            t.stop.set()
        if churn is not None:
            churn.stop.set()
            churn.join(10)
            for p in list(churn.members.values()):
                p.kill()
        cluster.stop()
        history.close()
        for d in small_disks:
            subprocess.run(["umount", str(d)], check=False)
    result["panics"] = panics(cluster)
    queue = [e for e in history.events if e.get("topic", TOPIC) == TOPIC]
    report = checker.check(queue)
    table = checker.check_table([e for e in history.events if e.get("topic") == TABLE])
    result["anomalies"] = {**report.anomalies, "table_latest_lost": table["latest_lost"], "table_moved": table["moved"]}
    result["table"] = table
    result["ok"] = bool(report.ok and not table["latest_lost"] and not table["moved"] and not result["panics"]
                        and result.get("replicas_identical"))
    result["counts"] = report.counts
    extra = {k: result[k] for k in ("faults", "crashes_at_points", "group_churn", "replicas_identical", "panics", "network_faults") if k in result}
    extra["compacted table"] = (f"{table['keys']} keys; latest value lost: {table['latest_lost']}, "
                                f"record at another's offset: {table['moved']}")
    (args.out / "summary.md").write_text(checker.summary_markdown(report, title="Lantern fault suite", seed=args.seed, extra=extra))
    try:
        import plot

        plot.plot(history.events, args.out / "timeline.png", title=f"seed {args.seed}")
    except Exception as e:
        log(f"no plot: {e}")
    (args.out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    if args.report is not None:
        write_report(args, result, checker.summary_markdown(report, title="Last long run", seed=args.seed, extra=extra))
    log(f"fault suite: {'OK' if result['ok'] else 'ANOMALIES'}: {report.anomalies}; faults {result.get('faults')}; "
        f"replicas identical: {result.get('replicas_identical')}; panics: {len(result['panics'])}; see {args.out}/summary.md")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
