//! DescribeConfigs for topics (every Kafka topic config with its effective value, source and
//! synonyms) and for this broker (every property with its effective value).
use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{str_bytes};
use crate::error_code;
use crate::broker::Broker;
use crate::cluster::topic_config::{broker_default, ConfigType, TOPIC_CONFIGS};
use crate::config::{lookup as lookup_property, Kind, Origin, PROPERTIES};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Config sources as Kafka numbers them.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// One topic config with its effective value, where that came from, and the synonyms in
/// Kafka's order (the topic's override, the broker property as set, that property's default).
pub struct Entry {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    pub kind: ConfigType,
    pub synonyms: Vec<(&'static str, String, i8)>,
}

fn broker_source(broker: &Broker, property: &str) -> i8 {
    match broker.config.effective.get(property) {
        Some((_, origin)) if *origin != Origin::Default => SOURCE_STATIC_BROKER,
        _ => SOURCE_DEFAULT,
    }
}

/// Every topic config of a topic with the given overrides, as Kafka's ConfigHelper describes
/// it: the source is the first synonym's, DEFAULT_CONFIG when there is none.
pub fn topic_entries(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<Entry> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(def.name) {
                synonyms.push((def.name, v.clone(), SOURCE_TOPIC));
            }
            if let Some(property) = def.broker_synonym {
                if let Some((v, origin)) = broker.config.effective.get(property) {
                    if *origin != Origin::Default {
                        synonyms.push((property, v.clone(), SOURCE_STATIC_BROKER));
                    }
                }
                if let Some(default) = lookup_property(property).and_then(|p| p.default) {
                    synonyms.push((property, default.to_string(), SOURCE_DEFAULT));
                }
            }
            let value = overrides.get(def.name).cloned().unwrap_or_else(|| broker_default(&broker.config, def.name));
            let source = synonyms.first().map_or(SOURCE_DEFAULT, |s| s.2);
            Entry { name: def.name, value, source, kind: def.kind, synonyms }
        })
        .collect()
}

/// DescribeConfigs' type id of a broker property.
fn property_type(kind: Kind) -> i8 {
    match kind {
        Kind::Bool => ConfigType::Boolean as i8,
        Kind::Int | Kind::IntBetween(..) | Kind::GzipLevel => ConfigType::Int as i8,
        Kind::Long => ConfigType::Long as i8,
        Kind::Ratio => ConfigType::Double as i8,
        Kind::List => ConfigType::List as i8,
        Kind::Str | Kind::Choice(_) => ConfigType::String as i8,
    }
}

pub fn handle(broker: &Broker, request: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let image = broker.image();
    let results = request
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let keys: Option<Vec<String>> = res.configuration_keys.map(|k| k.iter().map(|s| s.to_string()).collect());
            let wanted = |n: &str| keys.as_ref().is_none_or(|k| k.iter().any(|x| x == n));
            let result = DescribeConfigsResult::default().with_resource_type(res.resource_type).with_resource_name(res.resource_name.clone());
            match res.resource_type {
                RESOURCE_TOPIC => match image.topic(&name) {
                    None => result.with_error_code(error_code::UNKNOWN_TOPIC_OR_PARTITION).with_error_message(Some(str_bytes(&format!("topic '{name}' does not exist")))),
                    Some(t) => {
                        let configs = topic_entries(broker, &t.configs)
                            .into_iter()
                            .filter(|e| wanted(e.name))
                            .map(|e| {
                                let synonyms = if request.include_synonyms {
                                    e.synonyms
                                        .iter()
                                        .map(|(n, v, src)| DescribeConfigsSynonym::default().with_name(str_bytes(n)).with_value(Some(str_bytes(v))).with_source(*src))
                                        .collect()
                                } else {
                                    Vec::new()
                                };
                                DescribeConfigsResourceResult::default()
                                    .with_name(str_bytes(e.name))
                                    .with_value(Some(str_bytes(&e.value)))
                                    .with_config_source(e.source)
                                    .with_config_type(e.kind as i8)
                                    .with_synonyms(synonyms)
                            })
                            .collect();
                        result.with_configs(configs)
                    }
                },
                RESOURCE_BROKER if name.is_empty() || name == broker.node_id().to_string() => {
                    let configs = PROPERTIES
                        .iter()
                        .filter(|d| wanted(d.name))
                        .map(|d| {
                            // Dynamic configs (the replication throttles): this broker's value, else the
                            // cluster default, else the static one.
                            let dynamic = crate::controller::DYNAMIC_BROKER_CONFIGS.contains(&d.name);
                            // The cluster-wide default resource (name "") shows the default level only.
                            let own = if name.is_empty() { None } else { image.broker_configs.get(&broker.node_id().to_string()).and_then(|c| c.get(d.name)) };
                            let default = image.broker_configs.get("").and_then(|c| c.get(d.name));
                            let (value, source) = match (own, default) {
                                (Some(v), _) => (Some(v.clone()), SOURCE_DYNAMIC_BROKER),
                                (None, Some(v)) => (Some(v.clone()), SOURCE_DYNAMIC_DEFAULT_BROKER),
                                _ => (broker.config.effective.get(d.name).map(|(v, _)| v.clone()), broker_source(broker, d.name)),
                            };
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(d.name))
                                .with_value(value.as_deref().map(str_bytes))
                                .with_read_only(!dynamic)
                                .with_config_type(property_type(d.kind))
                                .with_config_source(source)
                                .with_documentation(request.include_documentation.then(|| str_bytes(d.doc)))
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => result.with_error_code(error_code::INVALID_REQUEST).with_error_message(Some(str_bytes(&format!("this is broker {}, not '{name}'", broker.node_id())))),
                other => result.with_error_code(error_code::INVALID_REQUEST).with_error_message(Some(str_bytes(&format!("resource type {other} is not supported")))),
            }
        })
        .collect();
    let mut response = DescribeConfigsResponse::default().with_results(results);
    if version == 0 {
        mark_defaults(&mut response);
    }
    response
}

/// v0 has `is_default` where later versions have `config_source`. Kafka 2.x filled it from the
/// source; Kafka 3.9's broker leaves it false (its v0 answer regressed when the messages were
/// generated), which would tell a v0 client that every config is set: Lantern keeps 2.x's meaning.
fn mark_defaults(response: &mut DescribeConfigsResponse) {
    for config in response.results.iter_mut().flat_map(|r| r.configs.iter_mut()) {
        config.is_default = config.config_source == SOURCE_DEFAULT;
    }
}
