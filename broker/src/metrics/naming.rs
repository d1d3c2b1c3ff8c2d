//! Prometheus names for catalogue entries, as the Prometheus JMX exporter produces them from
//! Kafka's MBeans under two published rule sets:
//!
//! - `strimzi`: Strimzi's kafka-metrics.yaml (lowercased names, `_total` for meters,
//!   `_percent` for idle ratios), e.g. `kafka_server_brokertopicmetrics_messagesin_total`.
//! - `confluent`: confluentinc/jmx-monitoring-stacks kafka_broker.yml (names keep `PerSec`,
//!   label names lowercased, untyped series), e.g. `kafka_server_brokertopicmetrics_messagesinpersec`.
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
            let (name, prom_type) = if def.name == "connections" {
                (format!("kafka_{d}_{t}_connections_software"), PromType::Gauge)
            } else if def.name.ends_with("-total") {
                (format!("kafka_{d}_{t}_{}", sanitize(def.name)), PromType::Counter)
            } else {
                (format!("kafka_{d}_{t}_{}", sanitize(def.name)), PromType::Gauge)
            };
            Family { name, prom_type, labels: keys(false) }
        }
        (Shape::Meter | Shape::Gauge, Profile::Confluent) => {
            let name = if def.name == "RequestHandlerAvgIdlePercent" {
                // Confluent reads this meter's OneMinuteRate under its own name.
                "kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_total".to_string()
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
            Family { name: format!("kafka_{d}_socketservermetrics_{}", sanitize(def.name)), prom_type: PromType::Gauge, labels }
        }
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
    }

    #[test]
    fn confluent_names_match_the_published_rules() {
        assert_eq!(family(&MESSAGES_IN, Profile::Confluent).name, "kafka_server_brokertopicmetrics_messagesinpersec");
        assert_eq!(family(&REQUESTS, Profile::Confluent).name, "kafka_network_requestmetrics_requestspersec");
        assert_eq!(family(&CONNECTION_COUNT, Profile::Confluent).name, "kafka_server_socketservermetrics_connection_count");
        assert_eq!(family(&CONNECTIONS_BY_SOFTWARE, Profile::Confluent).labels[0], "client_software_name");
    }

    #[test]
    fn every_exported_family_name_is_unique_per_profile() {
        for profile in [Profile::Strimzi, Profile::Confluent] {
            let mut seen = std::collections::HashSet::new();
            for def in CATALOGUE {
                assert!(seen.insert(family(def, profile).name), "{} twice under {profile:?}", def.name);
            }
        }
    }
}
