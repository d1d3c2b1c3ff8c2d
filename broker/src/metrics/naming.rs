//! Prometheus names for catalogue entries, as the Prometheus JMX exporter produces them from
//! Kafka's MBeans under two published rule sets:
//!
//! - `strimzi`: Strimzi's kafka-metrics.yaml (lowercased names, `_total` for meters,
//!   `_percent` for idle ratios), e.g. `kafka_server_brokertopicmetrics_messagesin_total`.
//! - `confluent`: confluentinc/jmx-monitoring-stacks kafka_broker.yml and kafka_controller.yml
//!   (names keep `PerSec`, label names lowercased, untyped series), e.g.
//!   `kafka_server_brokertopicmetrics_messagesinpersec`, `kafka_server_raft_metrics_current_leader`.
//!   Its rules have none for `raft-channel-metrics` and `broker-metadata-metrics` and drop the
//!   string attribute `current-state`; Lantern names those by analogy with its `raft-metrics`
//!   rule (the type with `-` as `_`).
use super::catalogue::{MetricDef, Shape};

/// Which published rule set names the metrics (property `metrics.naming`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    #[default]
    Strimzi,
    Confluent,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "strimzi" => Some(Profile::Strimzi),
            "confluent" => Some(Profile::Confluent),
            _ => None,
        }
    }
}

/// The Prometheus type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromType {
    Counter,
    Gauge,
    Summary,
    Untyped,
}

impl PromType {
    pub fn as_str(self) -> &'static str {
        match self {
            PromType::Counter => "counter",
            PromType::Gauge => "gauge",
            PromType::Summary => "summary",
            PromType::Untyped => "untyped",
        }
    }
}

/// A family's rendered identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    pub prom_type: PromType,
    pub labels: Vec<String>,
}

/// What the JMX exporter does to names: lowercase and anything outside `[a-zA-Z0-9_:]` -> `_`.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// `kafka.coordinator.group` -> `coordinator_group`; `kafka.server` -> `server`.
fn domain_part(domain: &str) -> String {
    sanitize(domain.strip_prefix("kafka.").unwrap_or(domain))
}

/// The type part of a Kafka-metrics attribute's name.
fn attribute_type_part(bean_type: &str, profile: Profile) -> String {
    match (profile, bean_type) {
        // Strimzi: socket-server-metrics falls under the generic listener rule (`kafka_server_$1_$4`,
        // sanitised); the KRaft beans have their own rules that drop the dashes.
        (Profile::Strimzi, "socket-server-metrics") => sanitize(bean_type),
        (Profile::Strimzi, t) => t.replace('-', "").to_lowercase(),
        (Profile::Confluent, "socket-server-metrics") => "socketservermetrics".to_string(),
        (Profile::Confluent, t) => sanitize(t),
    }
}

/// The family a catalogue entry renders as under a profile.
pub fn family(def: &MetricDef, profile: Profile) -> Family {
    let keys = |lower: bool| -> Vec<String> {
        def.keys.iter().map(|k| if lower { sanitize(k) } else { k.to_string() }).collect()
    };
    let d = domain_part(def.domain);
    let t = sanitize(def.bean_type);
    match (def.shape, profile) {
        (Shape::NativeCounter, _) => Family { name: def.name.to_string(), prom_type: PromType::Counter, labels: keys(false) },
        (Shape::NativeGauge, _) => Family { name: def.name.to_string(), prom_type: PromType::Gauge, labels: keys(false) },
        (Shape::Meter, Profile::Strimzi) => {
            let base = def.name.strip_suffix("PerSec").unwrap_or(def.name);
            Family { name: format!("kafka_{d}_{t}_{}_total", sanitize(base)), prom_type: PromType::Counter, labels: keys(false) }
        }
        (Shape::Gauge, Profile::Strimzi) if def.name.contains("Percent") => {
            let base = &def.name[..def.name.find("Percent").unwrap_or(def.name.len())];
            Family { name: format!("kafka_{d}_{t}_{}_percent", sanitize(base)), prom_type: PromType::Gauge, labels: keys(false) }
        }
        (Shape::Gauge, Profile::Strimzi) => Family { name: format!("kafka_{d}_{t}_{}", sanitize(def.name)), prom_type: PromType::Gauge, labels: keys(false) },
        (Shape::Histogram, Profile::Strimzi) => Family { name: format!("kafka_{d}_{t}_{}", sanitize(def.name)), prom_type: PromType::Summary, labels: keys(false) },
        (Shape::Attribute, Profile::Strimzi) => {
            let t = attribute_type_part(def.bean_type, profile);
            let (name, prom_type) = if def.name == "connections" {
                (format!("kafka_{d}_{t}_connections_software"), PromType::Gauge)
            } else if def.name.ends_with("-total") {
                (format!("kafka_{d}_{t}_{}", sanitize(def.name)), PromType::Counter)
            } else {
                (format!("kafka_{d}_{t}_{}", sanitize(def.name)), PromType::Gauge)
            };
            Family { name, prom_type, labels: keys(false) }
        }
        (Shape::StateAttribute, _) => {
            let t = attribute_type_part(def.bean_type, profile);
            let attr = sanitize(def.name);
            Family { name: format!("kafka_{d}_{t}_{attr}"), prom_type: PromType::Untyped, labels: vec![attr] }
        }
        (Shape::Meter | Shape::Gauge, Profile::Confluent) => {
            let name = if def.name == "RequestHandlerAvgIdlePercent" {
                // kafka_broker.yml reads this meter's OneMinuteRate (the idle share) under its
                // own rule, as kafka-cluster-kraft.json selects it.
                "kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_oneminuterate".to_string()
            } else {
                format!("kafka_{d}_{t}_{}", sanitize(def.name))
            };
            Family { name, prom_type: PromType::Untyped, labels: keys(true) }
        }
        (Shape::Histogram, Profile::Confluent) => Family { name: format!("kafka_{d}_{t}_{}", sanitize(def.name)), prom_type: PromType::Summary, labels: keys(true) },
        (Shape::Attribute, Profile::Confluent) => {
            // Confluent's socket-server rules: type name without dashes, snake_case labels.
            let labels = def
                .keys
                .iter()
                .map(|k| match *k {
                    "clientSoftwareName" => "client_software_name".to_string(),
                    "clientSoftwareVersion" => "client_software_version".to_string(),
                    "networkProcessor" => "network_processor".to_string(),
                    other => sanitize(other),
                })
                .collect();
            let t = attribute_type_part(def.bean_type, profile);
            Family { name: format!("kafka_{d}_{t}_{}", sanitize(def.name)), prom_type: PromType::Gauge, labels }
        }
    }
}

/// Other names a family is also served under, the same series: the names of an older rule set
/// that published dashboards still select. Confluent's dashboards-old-exporter
/// (kafka-cluster-kraft.json among them) read RequestHandlerAvgIdlePercent's OneMinuteRate as
/// `..._total`; its current kafka_broker.yml as `..._oneminuterate`.
pub fn aliases(def: &MetricDef, profile: Profile) -> &'static [&'static str] {
    match (profile, def.domain, def.bean_type, def.name) {
        (Profile::Confluent, "kafka.server", "KafkaRequestHandlerPool", "RequestHandlerAvgIdlePercent") => {
            &["kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_total"]
        }
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalogue::*;
    use super::*;

    #[test]
    fn strimzi_names_match_the_published_rules() {
        let f = family(&MESSAGES_IN, Profile::Strimzi);
        assert_eq!((f.name.as_str(), f.prom_type, f.labels.clone()), ("kafka_server_brokertopicmetrics_messagesin_total", PromType::Counter, vec!["topic".to_string()]));
        assert_eq!(family(&REQUESTS, Profile::Strimzi).name, "kafka_network_requestmetrics_requests_total");
        assert_eq!(family(&TOTAL_TIME, Profile::Strimzi).name, "kafka_network_requestmetrics_totaltimems");
        assert_eq!(family(&HANDLER_IDLE, Profile::Strimzi).name, "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent");
        assert_eq!(family(&NETWORK_IDLE, Profile::Strimzi).name, "kafka_network_socketserver_networkprocessoravgidle_percent");
        assert_eq!(family(&LOG_SIZE, Profile::Strimzi).name, "kafka_log_log_size");
        assert_eq!(family(&CONNECTION_COUNT, Profile::Strimzi).name, "kafka_server_socket_server_metrics_connection_count");
        assert_eq!(family(&CONNECTION_CREATION_TOTAL, Profile::Strimzi).prom_type, PromType::Counter);
        assert_eq!(family(&CONNECTIONS_BY_SOFTWARE, Profile::Strimzi).name, "kafka_server_socket_server_metrics_connections_software");
        assert_eq!(family(&ACTIVE_CONTROLLER_COUNT, Profile::Strimzi).name, "kafka_controller_kafkacontroller_activecontrollercount");
        assert_eq!(family(&NUM_GROUPS, Profile::Strimzi).name, "kafka_coordinator_group_groupmetadatamanager_numgroups");
        assert_eq!(family(&DISK_READ_BYTES, Profile::Strimzi).name, "kafka_server_kafkaserver_linux_disk_read_bytes");
        // Strimzi's KRaft rules (as strimzi-kraft.json selects them)
        assert_eq!(family(&RAFT_CURRENT_LEADER, Profile::Strimzi).name, "kafka_server_raftmetrics_current_leader");
        assert_eq!(family(&RAFT_APPEND_RECORDS_RATE, Profile::Strimzi).name, "kafka_server_raftmetrics_append_records_rate");
        assert_eq!(family(&RAFT_APPEND_RECORDS_RATE, Profile::Strimzi).prom_type, PromType::Gauge);
        let state = family(&RAFT_CURRENT_STATE, Profile::Strimzi);
        assert_eq!((state.name.as_str(), state.prom_type, state.labels.clone()), ("kafka_server_raftmetrics_current_state", PromType::Untyped, vec!["current_state".to_string()]));
        let bytes = family(&RAFT_CHANNEL_INCOMING_BYTES, Profile::Strimzi);
        assert_eq!((bytes.name.as_str(), bytes.prom_type), ("kafka_server_raftchannelmetrics_incoming_byte_total", PromType::Counter));
        assert_eq!(family(&RAFT_COMMIT_LATENCY_MAX, Profile::Strimzi).prom_type, PromType::Gauge);
        assert_eq!(family(&BROKER_METADATA_APPLY_ERRORS, Profile::Strimzi).name, "kafka_server_brokermetadatametrics_metadata_apply_error_count");
        assert_eq!(family(&LAST_APPLIED_RECORD_LAG_MS, Profile::Strimzi).name, "kafka_controller_kafkacontroller_lastappliedrecordlagms");
        let blocked = family(&ACCEPTOR_BLOCKED, Profile::Strimzi);
        assert_eq!((blocked.name.as_str(), blocked.labels.clone()), ("kafka_network_acceptor_acceptorblocked_percent", vec!["listener".to_string()]));
    }

    #[test]
    fn confluent_names_match_the_published_rules() {
        assert_eq!(family(&MESSAGES_IN, Profile::Confluent).name, "kafka_server_brokertopicmetrics_messagesinpersec");
        assert_eq!(family(&REQUESTS, Profile::Confluent).name, "kafka_network_requestmetrics_requestspersec");
        assert_eq!(family(&CONNECTION_COUNT, Profile::Confluent).name, "kafka_server_socketservermetrics_connection_count");
        assert_eq!(family(&CONNECTIONS_BY_SOFTWARE, Profile::Confluent).labels[0], "client_software_name");
        // kafka_controller.yml's raft-metrics rule and generic name=(.+) rule (as kraft.json selects them)
        assert_eq!(family(&RAFT_HIGH_WATERMARK, Profile::Confluent).name, "kafka_server_raft_metrics_high_watermark");
        assert_eq!(family(&RAFT_ELECTION_LATENCY_MAX, Profile::Confluent).name, "kafka_server_raft_metrics_election_latency_max");
        assert_eq!(family(&METADATA_ERROR_COUNT, Profile::Confluent).name, "kafka_controller_kafkacontroller_metadataerrorcount");
        assert_eq!(family(&EVENT_QUEUE_TIME, Profile::Confluent).name, "kafka_controller_controllereventmanager_eventqueuetimems");
        assert_eq!(family(&RAFT_CHANNEL_REQUESTS, Profile::Confluent).name, "kafka_server_raft_channel_metrics_request_total");
        assert_eq!(family(&BROKER_LAST_APPLIED_LAG_MS, Profile::Confluent).name, "kafka_server_broker_metadata_metrics_last_applied_record_lag_ms");
        assert_eq!(family(&ACCEPTOR_BLOCKED, Profile::Confluent).name, "kafka_network_acceptor_acceptorblockedpercent");
        // kafka-cluster-kraft.json's names
        assert_eq!(family(&HANDLER_IDLE, Profile::Confluent).name, "kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_oneminuterate");
        assert_eq!(family(&RESPONSE_QUEUE_SIZE, Profile::Confluent).name, "kafka_network_requestchannel_responsequeuesize");
        let rate = family(&CONNECTION_CREATION_RATE, Profile::Confluent);
        assert_eq!((rate.name.as_str(), rate.labels.clone()), ("kafka_server_socketservermetrics_connection_creation_rate", vec!["listener".to_string(), "network_processor".to_string()]));
        assert_eq!(family(&CONNECTION_CLOSE_RATE, Profile::Confluent).name, "kafka_server_socketservermetrics_connection_close_rate");
        let min = family(&FETCHER_MIN_FETCH_RATE, Profile::Confluent);
        assert_eq!((min.name.as_str(), min.labels.clone()), ("kafka_server_replicafetchermanager_minfetchrate", vec!["clientid".to_string()]));
        assert_eq!(family(&FETCH_SESSIONS, Profile::Confluent).name, "kafka_server_fetchsessioncache_numincrementalfetchsessions");
        assert_eq!(family(&FETCH_SESSION_EVICTIONS, Profile::Confluent).name, "kafka_server_fetchsessioncache_incrementalfetchsessionevictionspersec");
        assert_eq!(family(&STRAY_PARTITIONS, Profile::Confluent).name, "kafka_server_replicamanager_straypartitionscount");
        assert_eq!(family(&STRAY_PARTITIONS_SIZE, Profile::Confluent).name, "kafka_server_replicamanager_straypartitionstotalsize");
        assert_eq!(family(&STRAY_PARTITIONS_MISCLASSIFIED, Profile::Confluent).name, "kafka_server_replicamanager_straypartitionsmisclassifiedcount");
    }

    #[test]
    fn what_is_listed_as_not_served_is_not_served() {
        let served: std::collections::HashSet<String> = CATALOGUE.iter().map(|d| family(d, Profile::Confluent).name).collect();
        for (name, why) in NOT_SERVED {
            assert!(!served.contains(*name), "{name} is served but listed as not served");
            assert!(!why.is_empty());
        }
    }

    #[test]
    fn every_exported_family_name_is_unique_per_profile() {
        for profile in [Profile::Strimzi, Profile::Confluent] {
            let mut seen = std::collections::HashSet::new();
            for def in CATALOGUE {
                assert!(seen.insert(family(def, profile).name), "{} twice under {profile:?}", def.name);
            }
            for def in CATALOGUE {
                for alias in aliases(def, profile) {
                    assert!(seen.insert(alias.to_string()), "alias {alias} twice under {profile:?}");
                }
            }
        }
    }
}
