#!/usr/bin/env python3
"""Writes lantern-alerts.test.yml, the `promtool test rules` unit tests of
../rules/lantern-alerts.yml, from the scenarios below.

promtool compares the annotations of a firing alert exactly, so the expected annotations are
rendered here from the rule file's own templates ({{ $labels.x }}, {{ $value }} and
{{ $value | humanizePercentage }}) with the value each scenario states; promtool then checks
that rendering against Prometheus' own. Each scenario has a failing series (the alert must
fire after its `for`, and not before) and healthy series beside it (which must never fire).

    python3 deploy/prometheus/tests/make_alert_tests.py           # rewrites lantern-alerts.test.yml
    python3 deploy/prometheus/tests/make_alert_tests.py --check   # exit 1 if it is out of date
    promtool test rules deploy/prometheus/tests/lantern-alerts.test.yml
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "rules" / "lantern-alerts.yml"
OUT = HERE / "lantern-alerts.test.yml"

B1 = 'job="lantern-broker",cluster="lantern-1",instance="broker-1"'
B2 = 'job="lantern-broker",cluster="lantern-2",instance="broker-2"'
E1 = 'job="lantern-exporter",cluster="lantern-1",instance="broker-1"'
E2 = 'job="lantern-exporter",cluster="lantern-2",instance="broker-2"'
BROKER1 = {"job": "lantern-broker", "cluster": "lantern-1", "instance": "broker-1"}
EXP1 = {"job": "lantern-exporter", "cluster": "lantern-1", "instance": "broker-1"}
CI1 = {"cluster": "lantern-1", "instance": "broker-1"}

# alert -> (input series, [(eval minute, [(labels, $value as rendered)])])
# Every list of expected alerts is complete: a healthy series that fired would fail the test.
# "Alert/what" is a further scenario (its own promtool test group) of the alert before the "/".
# A value "_" is a missing sample (the series does not exist then).
SCENARIOS: dict[str, tuple[list[tuple[str, str]], list[tuple[int, list[tuple[dict, str]]]]]] = {
    "LanternBrokerDown": (
        [(f"up{{{B1}}}", "1 1 0x8"), (f"up{{{B2}}}", "1x10")],
        [(1, []), (2, []), (4, [(BROKER1, "0")])],
    ),
    "LanternScrapeTargetDown": (
        [(f"up{{{E1}}}", "1 0x9"), (f"up{{{E2}}}", "1x10"),
         ('up{job="prometheus",cluster="monitoring",instance="prometheus"}', "1x10"),
         (f"up{{{B1}}}", "0x10")],  # a broker down is LanternBrokerDown's, not this alert's
        [(2, []), (4, [(EXP1, "0")])],
    ),
    "LanternUnderReplicatedPartitions": (
        [(f"kafka_server_replicamanager_underreplicatedpartitions{{{B1}}}", "0 0 2x10"),
         (f"kafka_server_replicamanager_underreplicatedpartitions{{{B2}}}", "0x12")],
        [(5, []), (8, [(CI1, "2")])],
    ),
    "LanternReassignmentStuck": (
        # lantern-1: reassigning from minute 0, bytes flow for 5 minutes then stop: fires 15
        # minutes after the 10-minute rate window saw none. lantern-2: reassigning while bytes move.
        [(f"kafka_server_replicamanager_reassigningpartitions{{{B1}}}", "2x40"),
         (f'kafka_server_brokertopicmetrics_reassignmentbytesin_total{{{B1},topic=""}}', "0+1000x5 5000x35"),
         (f"kafka_server_replicamanager_reassigningpartitions{{{B2}}}", "3x40"),
         (f'kafka_server_brokertopicmetrics_reassignmentbytesin_total{{{B2},topic=""}}', "0+1000x40")],
        [(10, []), (20, []), (31, [({"cluster": "lantern-1"}, "2")])],
    ),
    "LanternReplicasShareDomain": (
        [(f"kafka_server_replicamanager_shareddomainpartitioncount{{{B1}}}", "0 4x12"),
         (f"kafka_server_replicamanager_shareddomainpartitioncount{{{B2}}}", "0x13")],
        [(5, []), (12, [({"cluster": "lantern-1"}, "4")])],
    ),
    "LanternUnderMinIsrPartitions": (
        [(f"kafka_server_replicamanager_underminisrpartitioncount{{{B1}}}", "0 1x8"),
         (f"kafka_server_replicamanager_underminisrpartitioncount{{{B2}}}", "0x9")],
        [(1, []), (3, [(CI1, "1")])],
    ),
    "LanternOfflinePartitions": (
        [(f"kafka_controller_kafkacontroller_offlinepartitionscount{{{B1}}}", "0 3x8"),
         (f"kafka_controller_kafkacontroller_offlinepartitionscount{{{B2}}}", "0x9")],
        [(1, []), (3, [({"cluster": "lantern-1"}, "3")])],
    ),
    "LanternOfflinePartitions/every-controller-reports": (
        # Three controllers of one cluster each report the same 2 offline partitions: 2, not 6.
        [(f'kafka_controller_kafkacontroller_offlinepartitionscount{{job="lantern-broker",cluster="lantern-1",instance="broker-{i}"}}', "0 2x8")
         for i in (1, 2, 3)],
        [(1, []), (3, [({"cluster": "lantern-1"}, "2")])],
    ),
    "LanternNoActiveController": (
        # lantern-1: the controller (broker-1) loses its quorum at minute 1: every broker reports
        # 0. lantern-2: the controller moves from broker-a to broker-b at minute 3 (always one).
        # lantern-3: healthy.
        [(f'kafka_controller_kafkacontroller_activecontrollercount{{job="lantern-broker",cluster="lantern-1",instance="broker-{i}"}}',
          "1 0x8" if i == 1 else "0x9") for i in (1, 2, 3)]
        + [('kafka_controller_kafkacontroller_activecontrollercount{job="lantern-broker",cluster="lantern-2",instance="broker-a"}', "1 1 1 0x6"),
           ('kafka_controller_kafkacontroller_activecontrollercount{job="lantern-broker",cluster="lantern-2",instance="broker-b"}', "0 0 0 1x6"),
           ('kafka_controller_kafkacontroller_activecontrollercount{job="lantern-broker",cluster="lantern-3",instance="broker-3"}', "1x9")],
        [(1, []), (2, [({"cluster": "lantern-1"}, "0")]), (5, [({"cluster": "lantern-1"}, "0")])],
    ),
    "LanternMultipleActiveControllers": (
        # lantern-1: a second broker claims the controller from minute 1 on (split brain);
        # lantern-2: exactly one; lantern-3: none (LanternNoActiveController's, not this alert's).
        [(f"kafka_controller_kafkacontroller_activecontrollercount{{{B1}}}", "1x9"),
         ('kafka_controller_kafkacontroller_activecontrollercount{job="lantern-broker",cluster="lantern-1",instance="broker-1b"}', "0 1x8"),
         (f"kafka_controller_kafkacontroller_activecontrollercount{{{B2}}}", "1x9"),
         ('kafka_controller_kafkacontroller_activecontrollercount{job="lantern-broker",cluster="lantern-3",instance="broker-3"}', "0x9")],
        [(1, []), (4, [({"cluster": "lantern-1"}, "2")])],
    ),
    "LanternFencedBrokers": (
        # lantern-1: broker-3 is killed at minute 1; the two live controllers report it fenced (1
        # each: 1, not 2) and broker-3's own series stop. lantern-2: a broker fenced for one
        # scrape while it restarts (shorter than the `for`).
        [(f'kafka_controller_kafkacontroller_fencedbrokercount{{job="lantern-broker",cluster="lantern-1",instance="broker-{i}"}}',
          "0 1x8" if i < 3 else "0 _x8") for i in (1, 2, 3)]
        + [('kafka_controller_kafkacontroller_fencedbrokercount{job="lantern-broker",cluster="lantern-2",instance="broker-a"}', "0 1 0x7")],
        [(1, []), (3, [({"cluster": "lantern-1"}, "1")]), (8, [({"cluster": "lantern-1"}, "1")])],
    ),
    "LanternOfflineLogDirectories": (
        [(f"kafka_log_logmanager_offlinelogdirectorycount{{{B1}}}", "0 1x8"),
         (f"kafka_log_logmanager_offlinelogdirectorycount{{{B2}}}", "0x9")],
        [(1, []), (3, [(CI1, "1")])],
    ),
    "LanternDiskSpaceLow": (
        [(f'node_filesystem_avail_bytes{{{E1},device="/dev/vdb",fstype="ext4",mountpoint="/data"}}', "50e9 5e9x10"),
         (f'node_filesystem_size_bytes{{{E1},device="/dev/vdb",fstype="ext4",mountpoint="/data"}}', "100e9x11"),
         (f'node_filesystem_avail_bytes{{{E1},device="/dev/vda1",fstype="ext4",mountpoint="/"}}', "50e9x11"),
         (f'node_filesystem_size_bytes{{{E1},device="/dev/vda1",fstype="ext4",mountpoint="/"}}', "100e9x11"),
         (f'node_filesystem_avail_bytes{{{E1},device="tmpfs",fstype="tmpfs",mountpoint="/run"}}', "0x11"),
         (f'node_filesystem_size_bytes{{{E1},device="tmpfs",fstype="tmpfs",mountpoint="/run"}}', "1e9x11")],
        [(4, []), (8, [({**EXP1, "device": "/dev/vdb", "fstype": "ext4", "mountpoint": "/data"}, "0.05")])],
    ),
    "LanternDiskWillFillIn24h": (
        # /data (100 GB) loses 100 MB a minute from 10 GB free: empty in under 2 hours; / is
        # steady; /ro drains as fast and is as full but is mounted read-only.
        [(f'node_filesystem_avail_bytes{{{E1},device="/dev/vdb",fstype="ext4",mountpoint="/data"}}', "10e9-1e8x50"),
         (f'node_filesystem_size_bytes{{{E1},device="/dev/vdb",fstype="ext4",mountpoint="/data"}}', "100e9x50"),
         (f'node_filesystem_readonly{{{E1},device="/dev/vdb",fstype="ext4",mountpoint="/data"}}', "0x50"),
         (f'node_filesystem_avail_bytes{{{E1},device="/dev/vda1",fstype="ext4",mountpoint="/"}}', "50e9x50"),
         (f'node_filesystem_size_bytes{{{E1},device="/dev/vda1",fstype="ext4",mountpoint="/"}}', "100e9x50"),
         (f'node_filesystem_readonly{{{E1},device="/dev/vda1",fstype="ext4",mountpoint="/"}}', "0x50"),
         (f'node_filesystem_avail_bytes{{{E1},device="/dev/vdc",fstype="ext4",mountpoint="/ro"}}', "10e9-1e8x50"),
         (f'node_filesystem_size_bytes{{{E1},device="/dev/vdc",fstype="ext4",mountpoint="/ro"}}', "100e9x50"),
         (f'node_filesystem_readonly{{{E1},device="/dev/vdc",fstype="ext4",mountpoint="/ro"}}', "1x50")],
        [(20, []), (40, [({**EXP1, "device": "/dev/vdb", "fstype": "ext4", "mountpoint": "/data"}, "")])],
    ),
    "LanternDiskWillFillIn24h/burst-on-empty-disk": (
        # /data (1 TB, 90% free) loses 5 GB a minute for 40 minutes, then stays at 70% free: the
        # 6h linear prediction is below 0 for well over 30 minutes, but the disk is mostly empty.
        [(f'node_filesystem_avail_bytes{{{E1},device="/dev/vdb",fstype="ext4",mountpoint="/data"}}', "900e9x60 895e9-5e9x39 700e9x60"),
         (f'node_filesystem_size_bytes{{{E1},device="/dev/vdb",fstype="ext4",mountpoint="/data"}}', "1000e9x160"),
         (f'node_filesystem_readonly{{{E1},device="/dev/vdb",fstype="ext4",mountpoint="/data"}}', "0x160")],
        [(60, []), (100, []), (130, []), (160, [])],
    ),
    "LanternConsumerLagHighAndGrowing": (
        # g1: high and growing; g2: high but steady; g3: growing but low.
        [(f'kafka_consumergroup_lag_sum{{{B1},consumergroup="g1",topic="orders"}}', "20000+100x30"),
         (f'kafka_consumergroup_lag_sum{{{B1},consumergroup="g2",topic="orders"}}', "50000x30"),
         (f'kafka_consumergroup_lag_sum{{{B1},consumergroup="g3",topic="orders"}}', "10+5x30")],
        [(5, []), (20, [({"cluster": "lantern-1", "consumergroup": "g1", "topic": "orders"}, "22000")])],
    ),
    "LanternTopicNoMessages": (
        # orders stops at minute 60; events keeps going; internal and never-used topics are left alone.
        [(f'kafka_server_brokertopicmetrics_messagesin_total{{{B1},topic="orders"}}', "0+60x60 3600x120"),
         (f'kafka_server_brokertopicmetrics_messagesin_total{{{B1},topic="events"}}', "0+60x180"),
         (f'kafka_server_brokertopicmetrics_messagesin_total{{{B1},topic="__consumer_offsets"}}', "0+6x60 360x120"),
         (f'kafka_server_brokertopicmetrics_messagesin_total{{{B1},topic="unused"}}', "0x180"),
         (f"kafka_server_brokertopicmetrics_messagesin_total{{{B1}}}", "0+120x180")],
        [(60, []), (90, []), (120, [({"cluster": "lantern-1", "topic": "orders"}, "0")])],
    ),
    "LanternProduceLatencyHigh": (
        [(f'kafka_network_requestmetrics_totaltimems{{{B1},request="Produce",quantile="0.99"}}', "5 250x15"),
         (f'kafka_network_requestmetrics_totaltimems{{{B1},request="Produce",quantile="0.50"}}', "5x16"),
         (f'kafka_network_requestmetrics_totaltimems{{{B2},request="Produce",quantile="0.99"}}', "20x16"),
         (f'kafka_network_requestmetrics_totaltimems{{{B2},request="Fetch",quantile="0.99"}}', "600x16")],
        [(5, []), (15, [(CI1, "250")])],
    ),
    "LanternFetchLatencyHigh": (
        [(f'kafka_network_requestmetrics_totaltimems{{{B1},request="Fetch",quantile="0.99"}}', "500 1500x15"),
         (f'kafka_network_requestmetrics_totaltimems{{{B2},request="Fetch",quantile="0.99"}}', "510x16"),
         (f'kafka_network_requestmetrics_totaltimems{{{B2},request="Produce",quantile="0.99"}}', "20x16")],
        [(5, []), (15, [(CI1, "1500")])],
    ),
    "LanternRequestHandlerIdleLow": (
        [(f"kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent{{{B1}}}", "0.9 0.2x10"),
         (f"kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent{{{B2}}}", "0.8x11")],
        [(3, []), (8, [(CI1, "20%")])],
    ),
    "LanternNetworkProcessorIdleLow": (
        [(f"kafka_network_socketserver_networkprocessoravgidle_percent{{{B1}}}", "0.9 0.1x10"),
         (f"kafka_network_socketserver_networkprocessoravgidle_percent{{{B2}}}", "0.7x11")],
        [(3, []), (8, [(CI1, "10%")])],
    ),
    "LanternRequestErrorRateHigh": (
        # Produce: 10 of every 100 error codes are errors; Fetch: 1 in 101; Metadata: all errors
        # but too few requests to mean anything.
        [(f'kafka_network_requestmetrics_errors_total{{{B1},request="Produce",error="NONE"}}', "0+90x30"),
         (f'kafka_network_requestmetrics_errors_total{{{B1},request="Produce",error="NOT_LEADER_OR_FOLLOWER"}}', "0+10x30"),
         (f'kafka_network_requestmetrics_errors_total{{{B1},request="Fetch",error="NONE"}}', "0+100x30"),
         (f'kafka_network_requestmetrics_errors_total{{{B1},request="Fetch",error="OFFSET_OUT_OF_RANGE"}}', "0+1x30"),
         (f'kafka_network_requestmetrics_errors_total{{{B1},request="Metadata",error="UNKNOWN_TOPIC_OR_PARTITION"}}', "0+1x30")],
        [(8, []), (20, [({**CI1, "request": "Produce"}, "10%")])],
    ),
    "LanternErrorLogSpike": (
        # broker-1: no errors for an hour, then 20 a minute; broker-2: a steady 5 a minute.
        [(f'lantern_log_events_total{{{E1},level="ERROR",logger="kafka.log.LogManager"}}', "0x60 20+20x20"),
         (f'lantern_log_events_total{{{E1},level="INFO",logger="kafka.server.KafkaServer"}}', "0+100x80"),
         (f'lantern_log_events_total{{{E2},level="ERROR",logger="kafka.network.Processor"}}', "0+5x80")],
        [(60, []), (66, [(CI1, "")])],
    ),
    "LanternErrorLogSpike/new-logger": (
        # A logger's first ERRORs: its series does not exist for an hour, then appears at 500
        # and stays flat. broker-1 has no other ERROR series; broker-2 also has a logger with a
        # steady 1 a minute. broker-3's new logger appears at 5 (under the threshold); broker-4's
        # old one misses 8 scrapes and comes back at the same count (not new).
        [(f'lantern_log_events_total{{{E1},level="ERROR",logger="kafka.log.LogManager"}}', "_x60 500x20"),
         (f'lantern_log_events_total{{{E2},level="ERROR",logger="kafka.network.Processor"}}', "0+1x80"),
         (f'lantern_log_events_total{{{E2},level="ERROR",logger="kafka.log.LogManager"}}', "_x60 500x20"),
         ('lantern_log_events_total{job="lantern-exporter",cluster="lantern-3",instance="broker-3",level="ERROR",logger="kafka.log.LogManager"}', "_x60 5x20"),
         ('lantern_log_events_total{job="lantern-exporter",cluster="lantern-4",instance="broker-4",level="ERROR",logger="kafka.log.LogManager"}', "300x52 _x8 300x20")],
        [(59, []), (61, []), (63, [(CI1, ""), ({"cluster": "lantern-2", "instance": "broker-2"}, "")]), (70, [])],
    ),
    "LanternExporterCollectorFailing": (
        [(f'node_scrape_collector_success{{{E1},collector="diskstats"}}', "1 0x10"),
         (f'node_scrape_collector_success{{{E1},collector="cpu"}}', "1x11"),
         (f'node_scrape_collector_success{{{E2},collector="diskstats"}}', "1x11"),
         # the same metric from another job (a node_exporter scraped beside it) is not this alert's
         ('node_scrape_collector_success{job="node",cluster="monitoring",instance="host-1",collector="diskstats"}', "1 0x10")],
        [(4, []), (8, [({**EXP1, "collector": "diskstats"}, "0")])],
    ),
    "LanternMirrorStopped": (
        # primary->backup: records wait and none is copied from minute 2 on; primary->dr: lag but
        # copying; backup->primary: caught up and idle.
        [('lantern_mirror_lag_records{job="lantern-mirror",instance="mirror-1",source="primary",target="backup",topic="orders",partition="0"}', "0 0 500x20"),
         ('kafka_connect_mirror_mirrorsourceconnector_record_count{job="lantern-mirror",instance="mirror-1",source="primary",target="backup",topic="primary.orders",partition="0"}', "0+100x2 200x20"),
         ('lantern_mirror_lag_records{job="lantern-mirror",instance="mirror-1",source="primary",target="dr",topic="orders",partition="0"}', "300x22"),
         ('kafka_connect_mirror_mirrorsourceconnector_record_count{job="lantern-mirror",instance="mirror-1",source="primary",target="dr",topic="primary.orders",partition="0"}', "0+100x22"),
         ('lantern_mirror_lag_records{job="lantern-mirror",instance="mirror-1",source="backup",target="primary",topic="orders",partition="0"}', "0x22"),
         ('kafka_connect_mirror_mirrorsourceconnector_record_count{job="lantern-mirror",instance="mirror-1",source="backup",target="primary",topic="backup.orders",partition="0"}', "50x22")],
        [(5, []), (14, [({"source": "primary", "target": "backup"}, "500")])],
    ),
    "LanternMirrorLagHigh": (
        # orders falls behind by a minute more every minute from minute 1; events stays 10 s behind.
        [('lantern_mirror_lag_seconds{job="lantern-mirror",instance="mirror-1",source="primary",target="backup",topic="orders",partition="0"}', "0+60x20"),
         ('lantern_mirror_lag_seconds{job="lantern-mirror",instance="mirror-1",source="primary",target="backup",topic="events",partition="0"}', "10x20")],
        [(10, []), (17, [({"source": "primary", "target": "backup", "topic": "orders"}, "1020")])],
    ),
    "LanternMirrorCheckpointStale": (
        # primary->backup checkpoints every minute until minute 10, then stops; backup->primary
        # keeps checkpointing; primary->dr never checkpointed (checkpoints disabled or no groups).
        [('lantern_mirror_last_checkpoint_timestamp_seconds{job="lantern-mirror",instance="mirror-1",source="primary",target="backup"}', "0+60x10 600x20"),
         ('lantern_mirror_last_checkpoint_timestamp_seconds{job="lantern-mirror",instance="mirror-1",source="backup",target="primary"}', "0+60x30"),
         ('lantern_mirror_last_checkpoint_timestamp_seconds{job="lantern-mirror",instance="mirror-1",source="primary",target="dr"}', "0x30")],
        [(20, []), (24, []), (27, [({"source": "primary", "target": "backup"}, "1020")])],
    ),
}

TEMPLATE = re.compile(r"\{\{\s*(\$labels\.(\w+)|\$value(\s*\|\s*humanizePercentage)?)\s*\}\}")


def render(text: str, labels: dict, value: str) -> str:
    def sub(m: re.Match) -> str:
        if m.group(2):
            return labels.get(m.group(2), "")
        return value
    return TEMPLATE.sub(sub, text)


def main() -> int:
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    scenario_alerts = {name.split("/", 1)[0] for name in SCENARIOS}
    missing = sorted(set(rules) - scenario_alerts)
    extra = sorted(scenario_alerts - set(rules))
    if missing or extra:
        print(f"scenarios missing for {missing}, scenarios for unknown alerts {extra}", file=sys.stderr)
        return 1
    tests = []
    for name, (series, evals) in SCENARIOS.items():
        alert = name.split("/", 1)[0]
        rule = rules[alert]
        cases = []
        for minute, firing in evals:
            exp = []
            for labels, value in firing:
                full = {**labels, "severity": rule["labels"]["severity"]}
                exp.append({
                    "exp_labels": full,
                    "exp_annotations": {k: render(v, full, value) for k, v in rule["annotations"].items()},
                })
            cases.append({"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": exp})
        tests.append({
            "name": name,
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": cases,
        })
    header = ("# Generated by make_alert_tests.py from its scenarios and ../rules/lantern-alerts.yml's\n"
              "# annotations; edit the scenarios there and rerun it. Run: promtool test rules <this file>\n")
    doc = {"rule_files": ["../rules/lantern-alerts.yml"], "evaluation_interval": "1m", "tests": tests}
    text = header + yaml.safe_dump(doc, sort_keys=False, width=200, allow_unicode=True)
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.name} is out of date: run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(tests)} scenarios of {len(rules)} alerts, {sum(len(t['alert_rule_test']) for t in tests)} evaluations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
