#!/usr/bin/env python3
"""Builds Lantern's Grafana dashboards (dashboards/*.json) from the panel lists below.

    python3 dashboards/build.py           # rewrite the JSON files
    python3 dashboards/build.py --check   # exit 1 if a JSON file differs from what this builds

The JSON files are what Grafana provisions (deploy/grafana/provisioning/dashboards/lantern.yml);
they are committed so Grafana needs no build step. Every panel has a title, a description, a
unit and thresholds; every query uses the provisioned datasource uid `lantern-prometheus`.
Broker metrics use the default `metrics.naming=strimzi` names (docs/metrics.md), node metrics
node_exporter's, log metrics lantern-exporter's pipeline. `cluster` and `instance` come from
prometheus.yml's relabelling: a broker and its exporter share the instance name.
Stdlib only.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "lantern-prometheus"}
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x

B = 'job="lantern-broker",cluster=~"$cluster",instance=~"$instance"'
E = 'job="lantern-exporter",cluster=~"$cluster",instance=~"$instance"'
FS = 'fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.*|devtmpfs"'
RI = "$__rate_interval"

GREEN, YELLOW, ORANGE, RED = "green", "yellow", "orange", "red"


def steps(*pairs):
    """thresholds: steps(GREEN, (RED, 1)) -> base colour then (colour, from value)."""
    base, rest = pairs[0], pairs[1:]
    return {"mode": "absolute", "steps": [{"color": base, "value": None}] + [{"color": c, "value": v} for c, v in rest]}


OK = steps(GREEN)  # informational panels: no alerting level


def target(expr, legend="", ref="A", instant=False, fmt=None):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto", "range": not instant, "instant": instant}
    if fmt:
        t["format"] = fmt
    return t


def panel(kind, title, description, targets, unit, thresholds=OK, w=12, h=8, min=None, max=None, options=None, custom=None):
    if isinstance(targets, (tuple, str)):
        targets = [targets]
    tlist = []
    for i, t in enumerate(targets):
        if isinstance(t, str):
            t = target(t)
        elif isinstance(t, tuple):
            t = target(*t)
        t = dict(t, refId=chr(ord("A") + i))
        tlist.append(t)
    defaults = {"unit": unit, "thresholds": thresholds, "color": {"mode": "palette-classic" if kind == "timeseries" else "thresholds"}}
    if min is not None:
        defaults["min"] = min
    if max is not None:
        defaults["max"] = max
    if kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                              "spanNulls": False, "thresholdsStyle": {"mode": "off" if thresholds is OK else "line"}}
        if custom:
            defaults["custom"].update(custom)
    opts = {
        "timeseries": {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True, "calcs": ["lastNotNull", "max"]},
                       "tooltip": {"mode": "multi", "sort": "desc"}},
        "stat": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background",
                 "graphMode": "area", "justifyMode": "auto", "orientation": "auto", "textMode": "auto"},
        "table": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
        "bargauge": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "orientation": "horizontal",
                     "displayMode": "gradient", "showUnfilled": True},
    }[kind]
    if options:
        opts.update(options)
    p = {"type": kind, "title": title, "description": description, "datasource": DS,
         "fieldConfig": {"defaults": defaults, "overrides": []}, "options": opts, "targets": tlist,
         "gridPos": {"w": w, "h": h}}
    if kind == "table":
        p["transformations"] = [{"id": "merge", "options": {}}, {"id": "organize", "options": {"excludeByName": {"Time": True}}}]
    return p


def ts(title, description, targets, unit, **kw):
    return panel("timeseries", title, description, targets, unit, **kw)


def stat(title, description, targets, unit="short", thresholds=OK, **kw):
    return panel("stat", title, description, targets, unit, thresholds, w=kw.pop("w", 4), h=kw.pop("h", 4), **kw)


def table(title, description, expr, unit, thresholds=OK, **kw):
    return panel("table", title, description, [target(expr, instant=True, fmt="table")], unit, thresholds, **kw)


def variable(name, label, query, multi=True):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": f"PrometheusVariableQueryEditor-{name}"}, "definition": query,
        "refresh": 2, "includeAll": True, "multi": multi, "allValue": ".*", "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [], "hide": 0,
    }


V_CLUSTER = variable("cluster", "Cluster", 'label_values(up{job="lantern-broker"}, cluster)')
V_INSTANCE = variable("instance", "Instance", 'label_values(up{job="lantern-broker", cluster=~"$cluster"}, instance)')
V_TOPIC = variable("topic", "Topic", 'label_values(kafka_log_log_size{job="lantern-broker", cluster=~"$cluster", instance=~"$instance"}, topic)')
V_GROUP = variable("group", "Consumer group", 'label_values(kafka_consumergroup_members{job="lantern-broker", cluster=~"$cluster", instance=~"$instance"}, consumergroup)')


def layout(panels):
    """Places panels left to right in a 24-column grid and numbers them."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        p["id"] = i
        x += w
        row_h = max(row_h, h)
    return panels


def dashboard(uid, title, description, variables, panels):
    return {
        "uid": uid, "title": title, "description": description, "tags": ["lantern"],
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": False, "graphTooltip": 1,
        "timezone": "browser", "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "timepicker": {}, "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                                   "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"type": "dashboards", "tags": ["lantern"], "asDropdown": True, "title": "Lantern dashboards",
                   "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False, "tooltip": "", "url": ""}],
        "templating": {"list": variables},
        "panels": layout(panels),
    }


# ---------------------------------------------------------------------------------------------
def cluster_overview():
    idle = steps(RED, (ORANGE, 0.3), (GREEN, 0.5))
    return dashboard(
        "lantern-cluster-overview", "Lantern / Cluster overview",
        "Brokers, controller, partition health, throughput, request rates, errors, latency and broker saturation.",
        [V_CLUSTER, V_INSTANCE],
        [
            stat("Brokers up", "Brokers whose /metrics answered the last scrape (Prometheus `up`). Fewer than expected means a broker is down: see the LanternBrokerDown alert.",
                 (f'sum by (cluster) (up{{{B}}})', "{{cluster}}"), thresholds=steps(RED, (GREEN, 1))),
            stat("Active controllers", "Brokers acting as controller, per cluster. Exactly 1 is healthy; 0 means no controller, more than 1 a split brain.",
                 (f'sum by (cluster) (kafka_controller_kafkacontroller_activecontrollercount{{{B}}})', "{{cluster}}"), thresholds=steps(RED, (GREEN, 1), (RED, 2))),
            stat("Under-replicated partitions", "Partitions led by these brokers whose ISR is smaller than their replica set (ReplicaManager UnderReplicatedPartitions). Should be 0.",
                 f'sum(kafka_server_replicamanager_underreplicatedpartitions{{{B}}})', thresholds=steps(GREEN, (ORANGE, 1))),
            stat("Under-min-ISR partitions", "Partitions whose ISR is below min.insync.replicas: acks=all producers to them fail. Should be 0.",
                 f'sum(kafka_server_replicamanager_underminisrpartitioncount{{{B}}})', thresholds=steps(GREEN, (RED, 1))),
            stat("Offline partitions", "Partitions without a leader (KafkaController OfflinePartitionsCount; every controller reports the cluster's count, so the worst one is shown): unavailable for produce and fetch. Should be 0.",
                 f'max(kafka_controller_kafkacontroller_offlinepartitionscount{{{B}}})', thresholds=steps(GREEN, (RED, 1))),
            stat("Offline log directories", "Data directories taken offline after I/O errors (LogManager OfflineLogDirectoryCount). Should be 0.",
                 f'sum(kafka_log_logmanager_offlinelogdirectorycount{{{B}}})', thresholds=steps(GREEN, (RED, 1))),
            stat("Partitions", "Partitions hosted by the selected brokers, internal topics included.", f'sum(kafka_server_replicamanager_partitioncount{{{B}}})'),
            stat("Topics", "Topics in each selected cluster (KafkaController GlobalTopicCount, reported by every controller).", (f'max by (cluster) (kafka_controller_kafkacontroller_globaltopiccount{{{B}}})', "{{cluster}}")),
            stat("Open connections", "Client connections currently open on the selected brokers.", f'sum(kafka_server_socket_server_metrics_connection_count{{{B}}})'),
            stat("Consumer groups", "Consumer groups known to the group coordinators of the selected brokers.", f'sum(kafka_coordinator_group_groupmetadatamanager_numgroups{{{B}}})'),
            stat("Broker state", "Kafka's BrokerState: 3 is running; 1 starting, 2 recovering logs, 7 shutting down.",
                 (f'kafka_server_kafkaserver_brokerstate{{{B}}}', "{{instance}}"), thresholds=steps(ORANGE, (GREEN, 3), (RED, 4))),
            stat("Uptime", "Time since each broker process started.", (f'time() - process_start_time_seconds{{{B}}}', "{{instance}}"), unit="s"),
            # The cluster: membership, the controller, the metadata quorum.
            stat("Live brokers", "Brokers registered with the controller and not fenced (KafkaController ActiveBrokerCount): the brokers clients see in Metadata.",
                 (f'max by (cluster) (kafka_controller_kafkacontroller_activebrokercount{{{B}}})', "{{cluster}}"), thresholds=steps(RED, (GREEN, 1))),
            stat("Fenced brokers", "Registered brokers that missed their session or have not caught up with the metadata (KafkaController FencedBrokerCount): out of Metadata, leading nothing. The LanternFencedBrokers alert fires after 90 seconds.",
                 (f'max by (cluster) (kafka_controller_kafkacontroller_fencedbrokercount{{{B}}})', "{{cluster}}"), thresholds=steps(GREEN, (ORANGE, 1))),
            ts("Active controller", "1 on the broker that is the active controller (the metadata quorum's leader while a majority acknowledges it). A step from one broker to another is a controller election; no broker at 1 means no controller (LanternNoActiveController).",
               (f'max by (instance) (kafka_controller_kafkacontroller_activecontrollercount{{{B}}})', "{{instance}}"), "short", min=0, max=1,
               custom={"drawStyle": "line", "lineInterpolation": "stepAfter"}),
            panel("bargauge", "Partitions and leaders per broker", "Partitions each broker hosts and how many it leads (ReplicaManager PartitionCount, LeaderCount): placement spreads leaders over the live brokers.",
                  [(f'sum by (instance) (kafka_server_replicamanager_partitioncount{{{B}}})', "partitions {{instance}}"),
                   (f'sum by (instance) (kafka_server_replicamanager_leadercount{{{B}}})', "leaders {{instance}}")], "short", w=8),
            # A running rebalance (lantern-admin rebalance execute / broker drain).
            ts("Reassigning partitions", "Partitions with a reassignment in progress, by leader (ReplicaManager ReassigningPartitions): replicas being added catch up, then the replaced ones leave. LanternReassignmentStuck fires when this stays above 0 with no bytes moving.",
               (f'sum by (instance) (kafka_server_replicamanager_reassigningpartitions{{{B}}})', "{{instance}}"), "short", min=0, w=8),
            ts("Reassignment traffic", "Bytes per second copied into replicas a reassignment is adding (BrokerTopicMetrics ReassignmentBytesInPerSec on the receiving brokers, ReassignmentBytesOutPerSec on the leaders sending them).",
               [(f'sum by (instance) (rate(kafka_server_brokertopicmetrics_reassignmentbytesin_total{{{B},topic=""}}[{RI}]))', "in {{instance}}"),
                (f'sum by (instance) (rate(kafka_server_brokertopicmetrics_reassignmentbytesout_total{{{B},topic=""}}[{RI}]))', "out {{instance}}")], "Bps", w=8),
            stat("Partitions sharing a fault or update domain", "Led partitions with two replicas in one fault domain, update domain or rack while another usable one has none (ReplicaManager SharedDomainPartitionCount). `lantern-admin rebalance execute` spreads them; LanternReplicasShareDomain fires after 10 minutes.",
                 f'sum(kafka_server_replicamanager_shareddomainpartitioncount{{{B}}})', thresholds=steps(GREEN, (ORANGE, 1)), w=8),
            ts("Metadata lag", "Metadata records each broker has not applied yet: the most advanced broker's last-applied-record-offset minus its own (broker-metadata-metrics, served by every broker, controller or not). A broker that stays behind serves stale Metadata.",
               (f'max by (cluster) (kafka_server_brokermetadatametrics_last_applied_record_offset{{job="lantern-broker",cluster=~"$cluster"}}) - on (cluster) group_right kafka_server_brokermetadatametrics_last_applied_record_offset{{{B}}}', "{{instance}}"),
               "short", thresholds=steps(GREEN, (ORANGE, 100)), min=0, w=8),
            ts("Age of the last metadata record", "Time since the last metadata record each broker applied was written (broker-metadata-metrics last-applied-record-lag-ms). Lantern writes no no-op records, so on a cluster without metadata changes this grows steadily; brokers that differ from the rest are behind.",
               (f'kafka_server_brokermetadatametrics_last_applied_record_lag_ms{{{B}}}', "{{instance}}"), "ms", w=8),
            ts("Quorum commit latency", "Time for the active controller to commit a batch of metadata records through the quorum and apply it, average and maximum over the last 30-60 s (raft-metrics commit-latency-avg/-max; only the leader reports values).",
               [(f'max by (instance) (kafka_server_raftmetrics_commit_latency_avg{{{B}}})', "avg {{instance}}"),
                (f'max by (instance) (kafka_server_raftmetrics_commit_latency_max{{{B}}})', "max {{instance}}")], "ms",
               thresholds=steps(GREEN, (ORANGE, 100), (RED, 1000)), w=8),
            ts("Messages in", "Messages appended per second per broker, all topics (BrokerTopicMetrics MessagesInPerSec).",
               (f'sum by (instance) (rate(kafka_server_brokertopicmetrics_messagesin_total{{{B},topic=""}}[{RI}]))', "{{instance}}"), "suffix: msg/s"),
            ts("Bytes in and out", "Record batch bytes received from producers (in) and sent to consumers (out) per broker, all topics.",
               [(f'sum by (instance) (rate(kafka_server_brokertopicmetrics_bytesin_total{{{B},topic=""}}[{RI}]))', "in {{instance}}"),
                (f'sum by (instance) (rate(kafka_server_brokertopicmetrics_bytesout_total{{{B},topic=""}}[{RI}]))', "out {{instance}}")], "Bps"),
            ts("Request rate by type", "Requests per second by Kafka API (RequestMetrics RequestsPerSec), all versions.",
               (f'sum by (request) (rate(kafka_network_requestmetrics_requests_total{{{B}}}[{RI}]))', "{{request}}"), "reqps"),
            ts("Error responses by type and code", "Error codes other than NONE in responses per second, by API and error name (RequestMetrics ErrorsPerSec).",
               (f'sum by (request, error) (rate(kafka_network_requestmetrics_errors_total{{{B},error!="NONE"}}[{RI}]))', "{{request}} {{error}}"), "cps"),
            ts("Error ratio by type", "Share of error codes in responses that are not NONE, per API. The LanternRequestErrorRateHigh alert fires above 5%.",
               (f'sum by (request) (rate(kafka_network_requestmetrics_errors_total{{{B},error!="NONE"}}[{RI}])) / sum by (request) (rate(kafka_network_requestmetrics_errors_total{{{B}}}[{RI}]))', "{{request}}"),
               "percentunit", thresholds=steps(GREEN, (ORANGE, 0.01), (RED, 0.05)), min=0),
            ts("p99 request latency by type", "99th percentile of TotalTimeMs (request read to response sent) per API, worst broker. Fetch includes the long-poll wait.",
               (f'max by (request) (kafka_network_requestmetrics_totaltimems{{{B},quantile="0.99"}})', "{{request}}"), "ms",
               thresholds=steps(GREEN, (ORANGE, 100), (RED, 1000))),
            ts("Produce time breakdown (p99)", "Where Produce time goes: waiting for a handler, handling (append), waiting on others (fsync with flush.messages=1), waiting to send, sending.",
               [(f'max(kafka_network_requestmetrics_requestqueuetimems{{{B},request="Produce",quantile="0.99"}})', "request queue"),
                (f'max(kafka_network_requestmetrics_localtimems{{{B},request="Produce",quantile="0.99"}})', "local"),
                (f'max(kafka_network_requestmetrics_remotetimems{{{B},request="Produce",quantile="0.99"}})', "remote"),
                (f'max(kafka_network_requestmetrics_responsequeuetimems{{{B},request="Produce",quantile="0.99"}})', "response queue"),
                (f'max(kafka_network_requestmetrics_responsesendtimems{{{B},request="Produce",quantile="0.99"}})', "response send")], "ms"),
            ts("Request handler idle", "Share of request handler capacity that was idle. Below 30% the broker is close to saturation (LanternRequestHandlerIdleLow).",
               (f'kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent{{{B}}}', "{{instance}}"), "percentunit",
               thresholds=idle, min=0, max=1),
            ts("Network processor idle", "Share of time the network layer was not reading or writing. Below 30% the network threads are saturated (LanternNetworkProcessorIdleLow).",
               (f'kafka_network_socketserver_networkprocessoravgidle_percent{{{B}}}', "{{instance}}"), "percentunit",
               thresholds=idle, min=0, max=1),
            ts("Request queue and purgatory", "Requests read and waiting for a handler, and requests parked in purgatory (Fetch long polls, Produce fsync waits, rebalances).",
               [(f'sum by (instance) (kafka_network_requestchannel_requestqueuesize{{{B}}})', "queue {{instance}}"),
                (f'sum by (instance, delayedOperation) (kafka_server_delayedoperationpurgatory_purgatorysize{{{B}}})', "purgatory {{delayedOperation}} {{instance}}")], "short"),
            ts("Log flush time (p99)", "99th percentile of segment fsync duration (LogFlushStats LogFlushRateAndTimeMs). Rising values point at a slow disk.",
               (f'kafka_log_logflushstats_logflushrateandtimems{{{B},quantile="0.99"}}', "{{instance}}"), "ms", thresholds=steps(GREEN, (ORANGE, 50), (RED, 500))),
            ts("Broker CPU and memory", "CPU of the broker process in cores (left) and its resident memory (right axis).",
               [(f'rate(process_cpu_seconds_total{{{B}}}[{RI}])', "cpu {{instance}}"),
                (f'process_resident_memory_bytes{{{B}}}', "rss {{instance}}")], "short",
               options=None),
            ts("Connections by client software", "Open connections by the client software name and version they announced (ApiVersions v3+); unknown until announced.",
               (f'sum by (clientSoftwareName, clientSoftwareVersion) (kafka_server_socket_server_metrics_connections_software{{{B}}})', "{{clientSoftwareName}} {{clientSoftwareVersion}}"), "short"),
            ts("Connection churn", "Connections accepted and closed per second: a high rate means clients reconnect instead of reusing connections.",
               [(f'sum by (instance) (rate(kafka_server_socket_server_metrics_connection_creation_total{{{B}}}[{RI}]))', "created {{instance}}"),
                (f'sum by (instance) (rate(kafka_server_socket_server_metrics_connection_close_total{{{B}}}[{RI}]))', "closed {{instance}}")], "cps"),
        ],
    )


def _fix_cpu_memory(d):
    # The CPU/memory panel puts memory on a second axis with its own unit.
    for p in d["panels"]:
        if p["title"] == "Broker CPU and memory":
            p["fieldConfig"]["overrides"] = [{"matcher": {"id": "byFrameRefID", "options": "B"},
                                              "properties": [{"id": "unit", "value": "bytes"}, {"id": "custom.axisPlacement", "value": "right"}]}]
    return d


def topics():
    T = f'{B},topic=~"$topic"'
    return dashboard(
        "lantern-topics", "Lantern / Topics",
        "Per-topic throughput, request rates and failures, size on disk, offsets and partitions.",
        [V_CLUSTER, V_INSTANCE, V_TOPIC],
        [
            ts("Messages in per topic", "Messages appended per second, by topic (BrokerTopicMetrics MessagesInPerSec{topic}).",
               (f'sum by (topic) (rate(kafka_server_brokertopicmetrics_messagesin_total{{{T}}}[{RI}]))', "{{topic}}"), "suffix: msg/s"),
            ts("Bytes in per topic", "Record batch bytes received from producers per second, by topic.",
               (f'sum by (topic) (rate(kafka_server_brokertopicmetrics_bytesin_total{{{T}}}[{RI}]))', "{{topic}}"), "Bps"),
            ts("Bytes out per topic", "Record batch bytes sent to consumers per second, by topic.",
               (f'sum by (topic) (rate(kafka_server_brokertopicmetrics_bytesout_total{{{T}}}[{RI}]))', "{{topic}}"), "Bps"),
            ts("Produce and fetch requests per topic", "Produce and Fetch requests per second, counted per topic-partition they address.",
               [(f'sum by (topic) (rate(kafka_server_brokertopicmetrics_totalproducerequests_total{{{T}}}[{RI}]))', "produce {{topic}}"),
                (f'sum by (topic) (rate(kafka_server_brokertopicmetrics_totalfetchrequests_total{{{T}}}[{RI}]))', "fetch {{topic}}")], "reqps"),
            ts("Failed produce and fetch per topic", "Produce and fetch partitions answered with an error, per second. Should stay at 0.",
               [(f'sum by (topic) (rate(kafka_server_brokertopicmetrics_failedproducerequests_total{{{T}}}[{RI}]))', "produce {{topic}}"),
                (f'sum by (topic) (rate(kafka_server_brokertopicmetrics_failedfetchrequests_total{{{T}}}[{RI}]))', "fetch {{topic}}")], "reqps",
               thresholds=steps(GREEN, (RED, 0.1))),
            ts("Bytes rejected per topic", "Record batch bytes refused (too large, corrupt CRC, out-of-order sequence) per second.",
               (f'sum by (topic) (rate(kafka_server_brokertopicmetrics_bytesrejected_total{{{T}}}[{RI}]))', "{{topic}}"), "Bps",
               thresholds=steps(GREEN, (RED, 1))),
            ts("Size on disk per topic", "Bytes on disk of each topic's partition logs, summed (Log Size).",
               (f'sum by (topic) (kafka_log_log_size{{{T}}})', "{{topic}}"), "bytes"),
            ts("Segments per topic", "Log segments of each topic, summed over partitions; retention deletes whole segments.",
               (f'sum by (topic) (kafka_log_log_numlogsegments{{{T}}})', "{{topic}}"), "short"),
            ts("Log end offset per partition", "Offset after the last record of each partition (Log LogEndOffset).",
               (f'kafka_log_log_logendoffset{{{T}}}', "{{topic}}/{{partition}}"), "short"),
            ts("Records retained per topic", "Log end offset minus log start offset, summed over partitions: records still on disk (compaction makes this an upper bound).",
               (f'sum by (topic) (kafka_log_log_logendoffset{{{T}}} - kafka_log_log_logstartoffset{{{T}}})', "{{topic}}"), "short"),
            table("Partitions per topic", "Partition count of each topic (kafka_exporter kafka_topic_partitions).",
                  f'sum by (topic) (kafka_topic_partitions{{{T}}})', "short"),
            table("Partition offsets", "Latest offset (kafka_topic_partition_current_offset) of every partition of the selected topics.",
                  f'sum by (topic, partition) (kafka_topic_partition_current_offset{{{T}}})', "short"),
            ts("Under-replicated partitions per topic", "Partitions of the topic whose ISR is smaller than their replicas (Partition UnderReplicated). Should be 0.",
               (f'sum by (topic) (kafka_cluster_partition_underreplicated{{{T}}})', "{{topic}}"), "short", thresholds=steps(GREEN, (RED, 1))),
            table("In-sync replicas per partition", "Replicas in the ISR of every partition of the selected topics, from its leader (Partition InSyncReplicasCount; followers report 0).",
                  f'sum by (topic, partition) (kafka_cluster_partition_insyncreplicascount{{{T}}})', "short"),
            ts("Replication lag per broker", "The largest lag, in messages, of any partition the broker follows behind its leader's high watermark (ReplicaFetcherManager MaxLag). Near 0 when followers keep up.",
               (f'max by (instance) (kafka_server_replicafetchermanager_maxlag{{{B}}})', "{{instance}}"), "short", thresholds=steps(GREEN, (ORANGE, 1000), (RED, 100000))),
            ts("Replication bytes in per topic", "Bytes followers fetched from leaders per second, by topic (BrokerTopicMetrics ReplicationBytesInPerSec).",
               (f'sum by (topic) (rate(kafka_server_brokertopicmetrics_replicationbytesin_total{{{T}}}[{RI}]))', "{{topic}}"), "Bps"),
            ts("Oldest offset per partition", "First offset still in each partition's log; it moves forward as retention deletes segments.",
               (f'kafka_topic_partition_oldest_offset{{{T}}}', "{{topic}}/{{partition}}"), "short"),
        ],
    )


def consumer_groups():
    G = f'{B},consumergroup=~"$group",topic=~"$topic"'
    return dashboard(
        "lantern-consumer-groups", "Lantern / Consumer groups",
        "Consumer lag per group, topic and partition, consumption rates, time to catch up, members and group states.",
        [V_CLUSTER, V_INSTANCE, V_GROUP,
         variable("topic", "Topic", 'label_values(kafka_consumergroup_lag{job="lantern-broker", cluster=~"$cluster", consumergroup=~"$group"}, topic)')],
        [
            ts("Lag per group and topic", "Messages the group has not consumed yet, summed over the topic's partitions (kafka_exporter kafka_consumergroup_lag).",
               (f'sum by (consumergroup, topic) (kafka_consumergroup_lag{{{G}}})', "{{consumergroup}} {{topic}}"), "short",
               thresholds=steps(GREEN, (ORANGE, 1000), (RED, 10000))),
            table("Lag per partition", "Current lag of every partition the selected groups have committed offsets for.",
                  f'sum by (consumergroup, topic, partition) (kafka_consumergroup_lag{{{G}}})', "short", thresholds=steps(GREEN, (ORANGE, 1000), (RED, 10000))),
            ts("Consumption rate", "Messages per second the group commits past, by topic (rate of its committed offsets).",
               (f'sum by (consumergroup, topic) (rate(kafka_consumergroup_current_offset{{{G}}}[{RI}]))', "{{consumergroup}} {{topic}}"), "suffix: msg/s"),
            ts("Production rate of the groups' topics", "Messages per second appended to the selected topics (rate of their latest offsets), to compare with the consumption rate.",
               (f'sum by (topic) (rate(kafka_topic_partition_current_offset{{{B},topic=~"$topic"}}[{RI}]))', "{{topic}}"), "suffix: msg/s"),
            ts("Time to catch up", "Lag divided by the current consumption rate: how long the group needs to reach the end if producers stopped. Empty while the group consumes nothing.",
               (f'sum by (consumergroup, topic) (kafka_consumergroup_lag{{{G}}}) / (sum by (consumergroup, topic) (rate(kafka_consumergroup_current_offset{{{G}}}[{RI}])) > 0)', "{{consumergroup}} {{topic}}"), "s",
               thresholds=steps(GREEN, (ORANGE, 300), (RED, 3600))),
            ts("Lag trend", "Change of each group's lag over the last 10 minutes: positive means the group falls further behind (LanternConsumerLagHighAndGrowing).",
               (f'sum by (consumergroup, topic) (delta(kafka_consumergroup_lag_sum{{{G}}}[10m]))', "{{consumergroup}} {{topic}}"), "short",
               thresholds=steps(GREEN, (ORANGE, 1))),
            ts("Members per group", "Consumers in each group (kafka_exporter kafka_consumergroup_members). A drop to 0 stops consumption.",
               (f'sum by (consumergroup) (kafka_consumergroup_members{{{B},consumergroup=~"$group"}})', "{{consumergroup}}"), "short"),
            ts("Groups by state", "Groups in each state on the coordinator. Groups stuck in PreparingRebalance or CompletingRebalance are not consuming.",
               [(f'sum(kafka_coordinator_group_groupmetadatamanager_numgroupsstable{{{B}}})', "Stable"),
                (f'sum(kafka_coordinator_group_groupmetadatamanager_numgroupspreparingrebalance{{{B}}})', "PreparingRebalance"),
                (f'sum(kafka_coordinator_group_groupmetadatamanager_numgroupscompletingrebalance{{{B}}})', "CompletingRebalance"),
                (f'sum(kafka_coordinator_group_groupmetadatamanager_numgroupsempty{{{B}}})', "Empty"),
                (f'sum(kafka_coordinator_group_groupmetadatamanager_numgroupsdead{{{B}}})', "Dead")], "short"),
            ts("Rebalances waiting", "JoinGroup/SyncGroup requests parked in the rebalance purgatory; non-zero for long means a rebalance waits on a slow member.",
               (f'sum by (instance) (kafka_server_delayedoperationpurgatory_purgatorysize{{{B},delayedOperation="Rebalance"}})', "{{instance}}"), "short"),
            stat("Committed offsets", "Committed offsets held by the group coordinator (GroupMetadataManager NumOffsets).",
                 f'sum(kafka_coordinator_group_groupmetadatamanager_numoffsets{{{B}}})', w=6),
            stat("Total lag", "Lag of the selected groups and topics, summed.", f'sum(kafka_consumergroup_lag{{{G}}})',
                 thresholds=steps(GREEN, (ORANGE, 1000), (RED, 10000)), w=6),
        ],
    )


def node():
    NV = f'{E},{FS}'
    return dashboard(
        "lantern-node", "Lantern / Node",
        "The machines under the brokers, from lantern-exporter (node_exporter's metric names): CPU, memory, disks, filesystems, network, TCP retransmits and listen drops, pressure stall.",
        [V_CLUSTER, V_INSTANCE],
        [
            ts("CPU busy", "Share of CPU time not idle, all CPUs of the node.",
               (f'1 - avg by (instance) (rate(node_cpu_seconds_total{{{E},mode="idle"}}[{RI}]))', "{{instance}}"), "percentunit",
               thresholds=steps(GREEN, (ORANGE, 0.8), (RED, 0.95)), min=0, max=1),
            ts("CPU by mode", "CPU time per mode (user, system, iowait, ...) as a share of all CPUs; high iowait means processes wait on disk.",
               (f'sum by (instance, mode) (rate(node_cpu_seconds_total{{{E},mode!="idle"}}[{RI}])) / on (instance) group_left count by (instance) (node_cpu_seconds_total{{{E},mode="idle"}})', "{{instance}} {{mode}}"),
               "percentunit", min=0),
            ts("Load average", "1, 5 and 15 minute load averages; compare with the number of CPUs.",
               [(f'node_load1{{{E}}}', "1m {{instance}}"), (f'node_load5{{{E}}}', "5m {{instance}}"), (f'node_load15{{{E}}}', "15m {{instance}}")], "short"),
            ts("Memory", "Memory in use (total minus available), available, page cache and buffers. The broker relies on page cache for reads.",
               [(f'node_memory_MemTotal_bytes{{{E}}} - node_memory_MemAvailable_bytes{{{E}}}', "used {{instance}}"),
                (f'node_memory_MemAvailable_bytes{{{E}}}', "available {{instance}}"),
                (f'node_memory_Cached_bytes{{{E}}}', "cached {{instance}}"),
                (f'node_memory_Buffers_bytes{{{E}}}', "buffers {{instance}}")], "bytes"),
            ts("Memory used", "Share of memory not available for new allocations (1 - MemAvailable / MemTotal).",
               (f'1 - node_memory_MemAvailable_bytes{{{E}}} / node_memory_MemTotal_bytes{{{E}}}', "{{instance}}"), "percentunit",
               thresholds=steps(GREEN, (ORANGE, 0.85), (RED, 0.95)), min=0, max=1),
            ts("Disk throughput", "Bytes read and written per second, by block device.",
               [(f'rate(node_disk_read_bytes_total{{{E}}}[{RI}])', "read {{instance}} {{device}}"),
                (f'rate(node_disk_written_bytes_total{{{E}}}[{RI}])', "write {{instance}} {{device}}")], "Bps"),
            ts("Disk IOPS", "Reads and writes completed per second, by block device.",
               [(f'rate(node_disk_reads_completed_total{{{E}}}[{RI}])', "read {{instance}} {{device}}"),
                (f'rate(node_disk_writes_completed_total{{{E}}}[{RI}])', "write {{instance}} {{device}}")], "iops"),
            ts("Disk latency", "Average time per completed read and write (time spent / operations), by device. Slow writes slow fsync and Produce.",
               [(f'rate(node_disk_read_time_seconds_total{{{E}}}[{RI}]) / rate(node_disk_reads_completed_total{{{E}}}[{RI}])', "read {{instance}} {{device}}"),
                (f'rate(node_disk_write_time_seconds_total{{{E}}}[{RI}]) / rate(node_disk_writes_completed_total{{{E}}}[{RI}])', "write {{instance}} {{device}}")], "s",
               thresholds=steps(GREEN, (ORANGE, 0.02), (RED, 0.1))),
            ts("Disk utilisation", "Share of time each device had I/O in flight (io_time); near 100% the device is saturated.",
               (f'rate(node_disk_io_time_seconds_total{{{E}}}[{RI}])', "{{instance}} {{device}}"), "percentunit",
               thresholds=steps(GREEN, (ORANGE, 0.8), (RED, 0.95)), min=0, max=1),
            ts("Filesystem space used", "Share of each filesystem in use (1 - available / size). LanternDiskSpaceLow fires above 90%.",
               (f'1 - node_filesystem_avail_bytes{{{NV}}} / node_filesystem_size_bytes{{{NV}}}', "{{instance}} {{mountpoint}}"), "percentunit",
               thresholds=steps(GREEN, (ORANGE, 0.8), (RED, 0.9)), min=0, max=1),
            ts("Filesystem space available", "Bytes available to unprivileged users on each filesystem.",
               (f'node_filesystem_avail_bytes{{{NV}}}', "{{instance}} {{mountpoint}}"), "bytes"),
            ts("Free space predicted in 24 hours", "Linear prediction of available bytes one day ahead from the last 6 hours; below 0 the disk fills within a day (LanternDiskWillFillIn24h).",
               (f'predict_linear(node_filesystem_avail_bytes{{{NV}}}[6h], 24 * 3600)', "{{instance}} {{mountpoint}}"), "bytes",
               thresholds=steps(RED, (GREEN, 0))),
            ts("Network throughput", "Bytes received and transmitted per second by interface (loopback excluded).",
               [(f'rate(node_network_receive_bytes_total{{{E},device!="lo"}}[{RI}])', "rx {{instance}} {{device}}"),
                (f'rate(node_network_transmit_bytes_total{{{E},device!="lo"}}[{RI}])', "tx {{instance}} {{device}}")], "Bps"),
            ts("Network errors and drops", "Receive and transmit errors and dropped packets per second by interface. Should stay at 0.",
               [(f'rate(node_network_receive_errs_total{{{E}}}[{RI}])', "rx errors {{instance}} {{device}}"),
                (f'rate(node_network_transmit_errs_total{{{E}}}[{RI}])', "tx errors {{instance}} {{device}}"),
                (f'rate(node_network_receive_drop_total{{{E}}}[{RI}])', "rx drops {{instance}} {{device}}"),
                (f'rate(node_network_transmit_drop_total{{{E}}}[{RI}])', "tx drops {{instance}} {{device}}")], "pps",
               thresholds=steps(GREEN, (RED, 1))),
            ts("TCP retransmits", "TCP segments retransmitted per second, SYNs retransmitted and retransmission timeouts (netstat Tcp_RetransSegs, TcpExt_TCPSynRetrans, TcpExt_TCPTimeouts). Retransmits slow Produce and replication; a rise with no rise in traffic points at loss on the network.",
               [(f'rate(node_netstat_Tcp_RetransSegs{{{E}}}[{RI}])', "retransmitted {{instance}}"),
                (f'rate(node_netstat_TcpExt_TCPSynRetrans{{{E}}}[{RI}])', "SYN retransmitted {{instance}}"),
                (f'rate(node_netstat_TcpExt_TCPTimeouts{{{E}}}[{RI}])', "timeouts {{instance}}")], "pps",
               thresholds=steps(GREEN, (ORANGE, 10), (RED, 100))),
            ts("TCP listen overflows and drops", "Connections the kernel dropped per second because a listening socket's accept queue was full (TcpExt_ListenOverflows) or for any reason at listen (TcpExt_ListenDrops). Non-zero means clients' connects to the broker are refused or retried: raise the backlog or look at a stalled acceptor.",
               [(f'rate(node_netstat_TcpExt_ListenOverflows{{{E}}}[{RI}])', "overflows {{instance}}"),
                (f'rate(node_netstat_TcpExt_ListenDrops{{{E}}}[{RI}])', "drops {{instance}}")], "cps",
               thresholds=steps(GREEN, (RED, 0.01))),
            ts("Pressure stall (PSI)", "Share of wall time in which some task waited for CPU, I/O or memory (some), and in which no task could progress for I/O or memory (full), from /proc/pressure. Sustained I/O pressure on a broker means the disks cannot keep up with fsync and reads.",
               [(f'rate(node_pressure_cpu_waiting_seconds_total{{{E}}}[{RI}])', "cpu some {{instance}}"),
                (f'rate(node_pressure_io_waiting_seconds_total{{{E}}}[{RI}])', "io some {{instance}}"),
                (f'rate(node_pressure_io_stalled_seconds_total{{{E}}}[{RI}])', "io full {{instance}}"),
                (f'rate(node_pressure_memory_waiting_seconds_total{{{E}}}[{RI}])', "memory some {{instance}}"),
                (f'rate(node_pressure_memory_stalled_seconds_total{{{E}}}[{RI}])', "memory full {{instance}}")], "percentunit",
               thresholds=steps(GREEN, (ORANGE, 0.1), (RED, 0.3)), min=0),
            table("Exporter collectors", "Whether each lantern-exporter collector succeeded on the last scrape (1) and how long it took. A failing collector raises LanternExporterCollectorFailing.",
                  f'node_scrape_collector_success{{{E}}}', "short", thresholds=steps(RED, (GREEN, 1))),
            ts("Collector duration", "Time each collector took on the last scrape.",
               (f'node_scrape_collector_duration_seconds{{{E}}}', "{{instance}} {{collector}}"), "s"),
        ],
    )


def logs():
    L = E
    return dashboard(
        "lantern-logs", "Lantern / Logs",
        "The brokers' logs as metrics (lantern-exporter's pipeline): events by level and logger, request-log analytics, top clients, slowest requests, and the pipeline itself.",
        [V_CLUSTER, V_INSTANCE],
        [
            ts("Log events by level", "Broker log events per second by level, from the JSON log the exporter tails.",
               (f'sum by (level) (rate(lantern_log_events_total{{{L}}}[{RI}]))', "{{level}}"), "cps"),
            ts("Log events by logger", "Broker log events per second by Kafka logger name (kafka.server.KafkaServer, kafka.log.LogCleaner, ...).",
               (f'sum by (logger) (rate(lantern_log_events_total{{{L}}}[{RI}]))', "{{logger}}"), "cps"),
            ts("Error events", "ERROR log events per second per broker (0 when there are none). A spike raises LanternErrorLogSpike.",
               (f'sum by (instance) (rate(lantern_log_events_total{{{L},level=~"(?i)error"}}[{RI}])) or sum by (instance) (rate(lantern_log_events_total{{{L}}}[{RI}])) * 0', "{{instance}}"), "cps",
               thresholds=steps(GREEN, (RED, 0.1))),
            table("Events in range by logger and level", "Log events in the selected time range, by logger and level.",
                  f'sum by (logger, level) (increase(lantern_log_events_total{{{L}}}[$__range]))', "short"),
            ts("Requests by API (request log)", "Requests per second by Kafka API, from the request log.",
               (f'sum by (request) (rate(lantern_requestlog_requests_total{{{L}}}[{RI}]))', "{{request}}"), "reqps"),
            ts("Request errors by API and code (request log)", "Responses per second carrying an error code, by API and error name, from the request log.",
               (f'sum by (request, error) (rate(lantern_requestlog_errors_total{{{L}}}[{RI}]))', "{{request}} {{error}}"), "cps"),
            ts("p99 request time by API (request log)", "99th percentile of the request log's total time per API, from its histogram.",
               (f'histogram_quantile(0.99, sum by (le, request) (rate(lantern_requestlog_total_time_ms_bucket{{{L}}}[{RI}])))', "{{request}}"), "ms",
               thresholds=steps(GREEN, (ORANGE, 100), (RED, 1000))),
            ts("Average request time by API (request log)", "Mean total time per request by API: histogram sum over count.",
               (f'sum by (request) (rate(lantern_requestlog_total_time_ms_sum{{{L}}}[{RI}])) / sum by (request) (rate(lantern_requestlog_total_time_ms_count{{{L}}}[{RI}]))', "{{request}}"), "ms"),
            ts("Request and response bytes by API (request log)", "Request and response bytes per second by API.",
               [(f'sum by (request) (rate(lantern_requestlog_request_bytes_total{{{L}}}[{RI}]))', "request {{request}}"),
                (f'sum by (request) (rate(lantern_requestlog_response_bytes_total{{{L}}}[{RI}]))', "response {{request}}")], "Bps"),
            table("Top clients by requests", "The 10 client ids (with the software they announced) that sent the most requests in the selected range.",
                  f'topk(10, sum by (client_id, client_software_name, client_software_version) (increase(lantern_requestlog_client_requests_total{{{L}}}[$__range])))', "short"),
            table("Top clients by bytes", "The 10 client ids that moved the most bytes in the selected range, by direction.",
                  f'topk(10, sum by (client_id, client_software_name, direction) (increase(lantern_requestlog_client_bytes_total{{{L}}}[$__range])))', "bytes"),
            table("Slowest requests (last 5 minutes)", "The exporter's ranking of the slowest requests of the last 5 minutes: API, client id and correlation id, to look up in the request log.",
                  f'max by (instance, rank, request, client_id, correlation_id) (lantern_requestlog_slowest_request_ms{{{L}}})', "ms",
                  thresholds=steps(GREEN, (ORANGE, 100), (RED, 1000))),
            ts("Pipeline lines read", "Log lines read per second by file, and invalid (unparseable) lines.",
               [(f'sum by (file) (rate(lantern_pipeline_lines_read_total{{{L}}}[{RI}]))', "read {{file}}"),
                (f'sum by (file) (rate(lantern_log_lines_invalid_total{{{L}}}[{RI}]))', "invalid {{file}}")], "cps"),
            ts("Pipeline shipping", "Events shipped to the log topic, failed ship attempts and events dropped (queue full while the broker was unreachable), per second.",
               [(f'sum by (instance) (rate(lantern_pipeline_events_shipped_total{{{L}}}[{RI}]))', "shipped {{instance}}"),
                (f'sum by (instance) (rate(lantern_pipeline_ship_errors_total{{{L}}}[{RI}]))', "ship errors {{instance}}"),
                (f'sum by (instance) (rate(lantern_pipeline_events_dropped_total{{{L}}}[{RI}]))', "dropped {{instance}}")], "cps"),
            ts("Pipeline queue", "Events waiting to be shipped (bounded); a growing queue means the broker does not take them.",
               (f'lantern_pipeline_queue_events{{{L}}}', "{{instance}}"), "short"),
            stat("Pipeline connected to broker", "1 when the pipeline's Kafka producer reaches its broker, 0 when shipping is failing.",
                 (f'lantern_pipeline_broker_up{{{L}}}', "{{instance}}"), thresholds=steps(RED, (GREEN, 1)), w=6),
            stat("Log file rotations", "Rotations and truncations of the tailed files the pipeline followed in the selected range.",
                 (f'sum by (file) (increase(lantern_pipeline_file_rotations_total{{{L}}}[$__range]))', "{{file}}"), w=6),
        ],
    )


def mirroring():
    """lantern-mirror (docs/mirroring.md): MM2's metric names as Strimzi's JMX rules write them,
    plus lantern_mirror_* lag series; every series carries the flow's source and target."""
    M = 'job="lantern-mirror",instance=~"$instance",source=~"$source",target=~"$target"'
    SRC = "kafka_connect_mirror_mirrorsourceconnector"
    flow = "{{source}} -> {{target}}"
    by_topic = "{{source}} -> {{target}} {{topic}}"
    return dashboard(
        "lantern-mirroring", "Lantern / Mirroring",
        "lantern-mirror's flows between clusters: lag in records and seconds, copy rates, replication latency and record age, checkpoints, progress commits and failures.",
        [variable("instance", "Mirror", 'label_values(up{job="lantern-mirror"}, instance)'),
         variable("source", "Source cluster", 'label_values(lantern_mirror_topics{job="lantern-mirror", instance=~"$instance"}, source)'),
         variable("target", "Target cluster", 'label_values(lantern_mirror_topics{job="lantern-mirror", instance=~"$instance", source=~"$source"}, target)')],
        [
            stat("Records copied/s", "Records copied to the target per second, all selected flows.",
                 f'sum(rate({SRC}_record_count{{{M}}}[{RI}]))', "suffix: rec/s", w=6),
            stat("Lag", "Records on the source not yet acknowledged by the target (LanternMirrorStopped when it stays above 0 with nothing copied).",
                 f'sum(lantern_mirror_lag_records{{{M}}})', thresholds=steps(GREEN, (ORANGE, 10000), (RED, 100000)), w=6),
            stat("Lag (time)", "How far the most-behind partition is behind: seconds since its newest copied record was written, while records wait (LanternMirrorLagHigh above 300 s).",
                 f'max(lantern_mirror_lag_seconds{{{M}}})', "s", thresholds=steps(GREEN, (ORANGE, 60), (RED, 300)), w=6),
            stat("Records refused", "Records the target refused for good; the flow stops at the first and must be fixed and restarted.",
                 f'sum(kafka_connect_task_error_total_record_failures{{{M}}})', thresholds=steps(GREEN, (RED, 1)), w=6),
            ts("Lag per topic (records)", "Records waiting per source topic.",
               (f'sum by (source, target, topic) (lantern_mirror_lag_records{{{M}}})', by_topic), "short",
               thresholds=steps(GREEN, (ORANGE, 10000), (RED, 100000))),
            ts("Lag per topic (seconds)", "Seconds the most-behind partition of each topic is behind; 0 when caught up.",
               (f'max by (source, target, topic) (lantern_mirror_lag_seconds{{{M}}})', by_topic), "s",
               thresholds=steps(GREEN, (ORANGE, 60), (RED, 300))),
            ts("Records copied per topic", "Records per second written to each remote topic (MM2 record-count).",
               (f'sum by (source, target, topic) (rate({SRC}_record_count{{{M}}}[{RI}]))', by_topic), "suffix: rec/s"),
            ts("Bytes copied per topic", "Key and value bytes per second written to each remote topic (MM2 byte-count).",
               (f'sum by (source, target, topic) (rate({SRC}_byte_count{{{M}}}[{RI}]))', by_topic), "Bps"),
            ts("Replication latency", "From sending a record to the target's acknowledgement: average and max over the last minute (MM2 replication-latency-ms).",
               [(f'max by (source, target, topic) ({SRC}_replication_latency_ms_avg{{{M}}})', "avg " + by_topic),
                (f'max by (source, target, topic) ({SRC}_replication_latency_ms_max{{{M}}})', "max " + by_topic)], "ms",
               thresholds=steps(GREEN, (ORANGE, 1000), (RED, 10000))),
            ts("Record age", "Age of records when sent to the target (now minus the record's timestamp; MM2 record-age-ms): how far behind the source the copy runs.",
               [(f'max by (source, target, topic) ({SRC}_record_age_ms_avg{{{M}}})', "avg " + by_topic),
                (f'max by (source, target, topic) ({SRC}_record_age_ms_max{{{M}}})', "max " + by_topic)], "ms",
               thresholds=steps(GREEN, (ORANGE, 60000), (RED, 300000))),
            ts("Checkpoint latency", "From reading a group's offsets on the source to its checkpoint acknowledged by the target (MM2 checkpoint-latency-ms).",
               (f'max by (source, target, group) (kafka_connect_mirror_mirrorcheckpointconnector_checkpoint_latency_ms_avg{{{M}}})', "{{source}} -> {{target}} {{group}}"), "ms"),
            ts("Time since the last checkpoint round", "Seconds since consumer group offsets were last translated (LanternMirrorCheckpointStale above 600 s).",
               (f'time() - max by (source, target) (lantern_mirror_last_checkpoint_timestamp_seconds{{{M}}} > 0)', flow), "s",
               thresholds=steps(GREEN, (ORANGE, 300), (RED, 600))),
            ts("Progress commits", "Time to commit the copied progress to the source cluster (average, ms) and failed commits per second (retried at the next interval).",
               [(f'max by (source, target) (kafka_connect_connector_task_offset_commit_avg_time_ms{{{M}}})', "avg ms " + flow),
                (f'sum by (source, target) (rate(lantern_mirror_offset_commit_failures_total{{{M}}}[{RI}]))', "failures/s " + flow)], "short"),
            ts("Records in flight", "Records sent to the target and not yet acknowledged; flat at a high value while the target is unreachable.",
               (f'sum by (source, target) (kafka_connect_source_task_source_record_active_count{{{M}}})', flow), "short"),
            ts("Heartbeats and checkpoints", "Heartbeats and checkpoints written to the target per second.",
               [(f'sum by (source, target) (rate(lantern_mirror_heartbeats_total{{{M}}}[{RI}]))', "heartbeats " + flow),
                (f'sum by (source, target) (rate(lantern_mirror_checkpoints_total{{{M}}}[{RI}]))', "checkpoints " + flow)], "short"),
            table("Lag per partition", "Records waiting in each source partition.",
                  f'sum by (source, target, topic, partition) (lantern_mirror_lag_records{{{M}}})', "short",
                  thresholds=steps(GREEN, (ORANGE, 10000), (RED, 100000))),
        ],
    )


DASHBOARDS = {
    "lantern-cluster-overview.json": lambda: _fix_cpu_memory(cluster_overview()),
    "lantern-topics.json": topics,
    "lantern-consumer-groups.json": consumer_groups,
    "lantern-node.json": node,
    "lantern-logs.json": logs,
    "lantern-mirroring.json": mirroring,
}


def render(build) -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv) -> int:
    check = "--check" in argv
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date (run python3 dashboards/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    if not check:
        print(f"wrote {len(DASHBOARDS)} dashboards to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
