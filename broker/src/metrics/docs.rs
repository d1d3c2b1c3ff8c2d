//! The metric table of docs/metrics.md, generated from the catalogue; a test fails when the
//! committed file drifts from it.
use super::catalogue::{Shape, Status, CATALOGUE, NOT_SERVED};
use super::naming::{aliases, family, Profile};

/// The whole docs/metrics.md.
pub fn metrics_markdown() -> String {
    let mut out = String::from(
        "# Lantern broker metrics\n\n\
         Generated from `broker/src/metrics/catalogue.rs` (a test fails when this file drifts: \
         regenerate with `cargo run -p lantern-broker --example metrics_doc > docs/metrics.md`).\n\n\
         `/metrics` on `http.listener` serves these. `metrics.naming=strimzi` (default) names them as the \
         Prometheus JMX exporter does with Strimzi's kafka-metrics.yaml; `metrics.naming=confluent` as with \
         confluentinc/jmx-monitoring-stacks (whose rules name no `raft-channel-metrics` or \
         `broker-metadata-metrics` attribute and drop the string `current-state`: Lantern names those by analogy with \
         its `raft-metrics` rule). Planned metrics are not exported until the work they depend on lands.\n\n\
         Every controller reports the `KafkaController` cluster-wide counts (topics, partitions, offline partitions, \
         active and fenced brokers) from the metadata it has applied, as Kafka's KRaft controllers do: aggregate them \
         across nodes with `max`, not `sum`. `ActiveControllerCount` is 1 on the active controller only. A \
         broker that is not a controller (`process.roles=broker`) serves no `kafka.controller` metric, as in Kafka; its \
         `raft-metrics` describe it as an `observer`.\n\n\
         Requests are handled in `num.io.threads` request handler slots (default 8), as Kafka handles them in that \
         many request handler threads. A request read from a client waits for a free slot (`RequestQueueSize` counts \
         the requests waiting, `RequestQueueTimeMs` is the wait), holds it while it is handled, including the fsyncs \
         that `flush.messages` demands and blocking log reads (a Kafka handler thread blocks on them too), and gives \
         it back while it waits on others, as Kafka's purgatories free the handler thread: a long-polling Fetch, \
         JoinGroup and SyncGroup waiting for the group, an acks=all Produce or an offset commit waiting for the \
         followers, DeleteRecords waiting for the low watermark (`RemoteTimeMs`, which includes taking a slot again \
         to finish). `RequestHandlerAvgIdlePercent` is 1 - slot time held / (elapsed time x `num.io.threads`): 0 means \
         every slot was busy all the time and requests queue. `NetworkProcessorAvgIdlePercent` is 1 - the time the \
         runtime's worker threads (one per CPU; every connection's socket work runs on them) spent inside socket reads \
         and writes and decoding requests / (elapsed time x worker threads); waiting for a client's socket is not busy \
         time. Both are taken over the time since the previous scrape (at least one second).\n\n\
         | MBean | Strimzi name | Confluent name | type | labels | status | meaning |\n|---|---|---|---|---|---|---|\n",
    );
    for def in CATALOGUE {
        let s = family(def, Profile::Strimzi);
        let c = family(def, Profile::Confluent);
        let mbean = match def.shape {
            Shape::NativeCounter | Shape::NativeGauge => "(native)".to_string(),
            Shape::Attribute | Shape::StateAttribute => format!("`{}:type={}` attribute `{}`", def.domain, def.bean_type, def.name),
            _ => format!("`{}:type={},name={}`", def.domain, def.bean_type, def.name),
        };
        let status = match def.status {
            Status::Exported => "exported".to_string(),
            Status::Planned(why) => format!("planned ({why})"),
        };
        let confluent: Vec<String> = std::iter::once(c.name.as_str()).chain(aliases(def, Profile::Confluent).iter().copied()).map(|n| format!("`{n}`")).collect();
        out.push_str(&format!(
            "| {mbean} | `{}` | {} | {} | {} | {status} | {} |\n",
            s.name,
            confluent.join(" "),
            s.prom_type.as_str(),
            s.labels.join(", "),
            def.help
        ));
    }
    out.push_str(
        "\n## Not served\n\n\
         What Confluent's jmx-monitoring-stacks KRaft dashboards (`kafka-cluster-kraft.json`, `kafka-topics-kraft.json`, \
         `kraft.json`, and their `dashboards-old-exporter` versions) query under `metrics.naming=confluent` and Lantern leaves out, because the thing measured does \
         not exist here. Neither is ZooKeeper's (the `zookeeper` job and `SessionExpireListener` meters of the \
         ZooKeeper-era dashboards): Lantern keeps its metadata in its own Raft quorum (KRaft) and runs no ZooKeeper.\n\n\
         | name | why |\n|---|---|\n",
    );
    for (name, why) in NOT_SERVED {
        out.push_str(&format!("| `{name}` | {why} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_metrics_md_matches_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == super::metrics_markdown(),
            "docs/metrics.md is out of date: run `cargo run -p lantern-broker --example metrics_doc > docs/metrics.md`"
        );
    }
}
