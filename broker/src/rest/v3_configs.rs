//! Confluent's v3 config resources: a topic's configs, a broker's, and the cluster-wide
//! defaults of the broker configs (`broker-configs`), read with DescribeConfigs (synonyms
//! included) and changed with IncrementalAlterConfigs, one config (`PUT`/`DELETE
//! .../configs/{name}`) or several at once (`POST .../configs:alter`, with `validate_only`).
//! As Confluent's proxy, a change to a config the resource does not have is refused with 404
//! before anything is sent; what Kafka refuses (a static broker config, a bad value) is 400
//! with 40002. Each body is a `KafkaTopicConfig`, `KafkaBrokerConfig` or `KafkaClusterConfig`.
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use super::error::RestError;
use super::v3::{admin_error, base_url, cluster, list, number, ok};
use super::{admin, body, Shared};
use crate::error_code;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
pub(super) const OP_SET: i8 = 0;
pub(super) const OP_DELETE: i8 = 1;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v3/clusters/{cluster_id}/broker-configs", get(list_cluster_configs))
        .route("/v3/clusters/{cluster_id}/broker-configs/{name}", get(get_cluster_config).put(update_cluster_config).delete(reset_cluster_config))
        .route("/v3/clusters/{cluster_id}/brokers/{broker_id}/configs", get(list_broker_configs))
        .route("/v3/clusters/{cluster_id}/brokers/{broker_id}/configs:alter", post(alter_broker_configs))
        .route(
            "/v3/clusters/{cluster_id}/brokers/{broker_id}/configs/{name}",
            get(get_broker_config).put(update_broker_config).delete(reset_broker_config),
        )
        .route("/v3/clusters/{cluster_id}/topics/{topic_name}/configs", get(list_topic_configs))
        .route("/v3/clusters/{cluster_id}/topics/{topic_name}/configs:alter", post(alter_topic_configs))
        .route(
            "/v3/clusters/{cluster_id}/topics/{topic_name}/configs/{name}",
            get(get_topic_config).put(update_topic_config).delete(reset_topic_config),
        )
}

/// Whose configs: a topic's, a broker's, or the cluster-wide broker defaults (Kafka's broker
/// resource named "").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Resource {
    Topic(String),
    Broker(i32),
    ClusterBrokerDefaults,
}

impl Resource {
    pub(super) fn kafka(&self) -> (i8, String) {
        match self {
            Resource::Topic(t) => (RESOURCE_TOPIC, t.clone()),
            Resource::Broker(b) => (RESOURCE_BROKER, b.to_string()),
            Resource::ClusterBrokerDefaults => (RESOURCE_BROKER, String::new()),
        }
    }

    /// The broker the requests go to: a broker describes only its own configs.
    fn node(&self, state: &Shared) -> i32 {
        match self {
            Resource::Broker(b) => *b,
            _ => state.broker.node_id(),
        }
    }

    /// The collection's URL under `{base}/v3/clusters/{c}`.
    fn path(&self) -> String {
        match self {
            Resource::Topic(t) => format!("/topics/{t}/configs"),
            Resource::Broker(b) => format!("/brokers/{b}/configs"),
            Resource::ClusterBrokerDefaults => "/broker-configs".to_string(),
        }
    }

    fn crn(&self, cluster_id: &str, name: &str) -> String {
        match self {
            Resource::Topic(t) => format!("crn:///kafka={cluster_id}/topic={t}/config={name}"),
            Resource::Broker(b) => format!("crn:///kafka={cluster_id}/broker={b}/config={name}"),
            Resource::ClusterBrokerDefaults => format!("crn:///kafka={cluster_id}/broker-config={name}"),
        }
    }

    pub(super) fn kinds(&self) -> (&'static str, &'static str) {
        match self {
            Resource::Topic(_) => ("KafkaTopicConfig", "KafkaTopicConfigList"),
            Resource::Broker(_) => ("KafkaBrokerConfig", "KafkaBrokerConfigList"),
            Resource::ClusterBrokerDefaults => ("KafkaClusterConfig", "KafkaClusterConfigList"),
        }
    }

    /// Confluent's words for "Config x cannot be found for TOPIC t in cluster c."
    fn describe(&self) -> String {
        match self {
            Resource::Topic(t) => format!("TOPIC {t}"),
            Resource::Broker(b) => format!("BROKER {b}"),
            Resource::ClusterBrokerDefaults => "BROKER ".to_string(),
        }
    }

    fn topic_name(&self) -> &str {
        match self {
            Resource::Topic(t) => t,
            _ => "",
        }
    }
}

/// Kafka's ConfigSource names (DescribeConfigs numbers them), as Confluent writes them.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        8 => "DYNAMIC_GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

pub(super) fn config_json(base: &str, cluster_id: &str, res: &Resource, c: &DescribeConfigsResourceResult) -> Value {
    let name = c.name.to_string();
    let mut v = json!({
        "kind": res.kinds().0,
        "metadata": {
            "self": format!("{base}/v3/clusters/{cluster_id}{}/{name}", res.path()),
            "resource_name": res.crn(cluster_id, &name),
        },
        "cluster_id": cluster_id,
        "name": name,
        "value": c.value.as_ref().map(|v| v.to_string()),
        // Kafka's ConfigEntry.isDefault(): the value comes from the default.
        "is_default": c.config_source == 5,
        "is_read_only": c.read_only,
        "is_sensitive": c.is_sensitive,
        "source": source_name(c.config_source),
        "synonyms": c.synonyms.iter().map(|s| json!({
            "name": s.name.to_string(),
            "value": s.value.as_ref().map(|v| v.to_string()),
            "source": source_name(s.source),
        })).collect::<Vec<_>>(),
    });
    if let Some(o) = v.as_object_mut() {
        match res {
            Resource::Topic(t) => o.insert("topic_name".into(), json!(t)),
            Resource::Broker(b) => o.insert("broker_id".into(), json!(b)),
            Resource::ClusterBrokerDefaults => o.insert("config_type".into(), json!("BROKER")),
        };
    }
    v
}

/// The resource's configs, sorted by name (as Confluent lists them).
pub(super) async fn describe(state: &Shared, cluster_id: &str, res: &Resource) -> Result<Vec<DescribeConfigsResourceResult>, RestError> {
    let image = cluster(state, cluster_id)?;
    match res {
        Resource::Topic(t) if image.topic(t).is_none() => return Err(RestError::unknown_topic(t)),
        Resource::Broker(b) if !image.brokers.contains_key(b) => return Err(RestError::not_found(format!("Broker {b} cannot be found."))),
        _ => {}
    }
    drop(image);
    let (resource_type, resource_name) = res.kafka();
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(resource_name))
            .with_configuration_keys(None)])
        .with_include_synonyms(true);
    let response: DescribeConfigsResponse = admin::call(state, res.node(state), ApiKey::DescribeConfigs, 4, &request).await?;
    let result = response
        .results
        .into_iter()
        .next()
        .ok_or_else(|| RestError::from_kafka(error_code::UNKNOWN_SERVER_ERROR, res.topic_name(), -1, Some("no result")))?;
    if result.error_code != 0 {
        return Err(admin_error(result.error_code, result.error_message.map(|m| m.to_string()), res.topic_name()));
    }
    let mut configs = result.configs;
    configs.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    Ok(configs)
}

pub(super) fn not_found(cluster_id: &str, res: &Resource, name: &str) -> RestError {
    RestError::not_found(format!("Config {name} cannot be found for {} in cluster {cluster_id}.", res.describe()))
}

/// One change of a batch: SET with a value (None: Kafka's null) or DELETE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    pub name: String,
    pub operation: i8,
    pub value: Option<String>,
}

/// Applies `changes` together (IncrementalAlterConfigs), after checking that the resource has
/// every config named, as Confluent's proxy does.
async fn alter(state: &Shared, cluster_id: &str, res: &Resource, changes: Vec<Change>, validate_only: bool) -> Result<Response, RestError> {
    let known = describe(state, cluster_id, res).await?;
    if let Some(unknown) = changes.iter().find(|c| !known.iter().any(|k| k.name.as_str() == c.name)) {
        return Err(not_found(cluster_id, res, &unknown.name));
    }
    let (resource_type, resource_name) = res.kafka();
    let configs = changes
        .into_iter()
        .map(|c| AlterableConfig::default().with_name(StrBytes::from_string(c.name)).with_config_operation(c.operation).with_value(c.value.map(StrBytes::from_string)))
        .collect();
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(resource_name))
            .with_configs(configs)])
        .with_validate_only(validate_only);
    let response: IncrementalAlterConfigsResponse = admin::call(state, res.node(state), ApiKey::IncrementalAlterConfigs, 1, &request).await?;
    match response.responses.first() {
        Some(r) if r.error_code != 0 => Err(admin_error(r.error_code, r.error_message.as_ref().map(|m| m.to_string()), res.topic_name())),
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(RestError::from_kafka(error_code::UNKNOWN_SERVER_ERROR, res.topic_name(), -1, Some("no result"))),
    }
}

/// `{"value": "..."}` (a null or absent value is Kafka's null, which it refuses for SET).
fn update_body(v: &Value) -> Result<Option<String>, RestError> {
    let obj = v.as_object().ok_or_else(|| RestError::invalid("body", "expected a JSON object"))?;
    match obj.get("value") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RestError::invalid("value", "expected a string or null")),
    }
}

/// `{"data": [{"name", "value", "operation": "SET" | "DELETE"}], "validate_only": bool}`;
/// the operation defaults to SET.
fn alter_body(v: &Value) -> Result<(Vec<Change>, bool), RestError> {
    let obj = v.as_object().ok_or_else(|| RestError::invalid("body", "expected a JSON object"))?;
    let changes = changes_of(obj.get("data"), "data")?;
    Ok((changes, validate_only_of(obj)?))
}

/// `validate_only`: absent is false.
pub(super) fn validate_only_of(obj: &serde_json::Map<String, Value>) -> Result<bool, RestError> {
    match obj.get("validate_only") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(RestError::invalid("validate_only", "expected true or false")),
    }
}

/// `[{"name", "value", "operation"}]` at `at` (for the errors' field names).
pub(super) fn changes_of(list: Option<&Value>, at: &str) -> Result<Vec<Change>, RestError> {
    let data = list.and_then(Value::as_array).ok_or_else(|| RestError::invalid(at, "expected an array"))?;
    let mut changes = Vec::with_capacity(data.len());
    for (i, entry) in data.iter().enumerate() {
        let field = |f: &str| format!("{at}[{i}].{f}");
        let name = entry.get("name").and_then(Value::as_str).ok_or_else(|| RestError::invalid(&field("name"), "expected a string"))?;
        let value = match entry.get("value") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(RestError::invalid(&field("value"), "expected a string or null")),
        };
        let operation = match entry.get("operation") {
            None | Some(Value::Null) => OP_SET,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("SET") => OP_SET,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("DELETE") => OP_DELETE,
            Some(_) => return Err(RestError::invalid(&field("operation"), "expected SET or DELETE")),
        };
        changes.push(Change { name: name.to_string(), operation, value });
    }
    Ok(changes)
}

async fn list_configs(state: &Shared, headers: &HeaderMap, cluster_id: &str, res: Resource) -> Result<Response, RestError> {
    let base = base_url(headers);
    let configs = describe(state, cluster_id, &res).await?;
    let data = configs.iter().map(|c| config_json(&base, cluster_id, &res, c)).collect();
    Ok(ok(list(res.kinds().1, format!("{base}/v3/clusters/{cluster_id}{}", res.path()), data)))
}

async fn get_config(state: &Shared, headers: &HeaderMap, cluster_id: &str, res: Resource, name: &str) -> Result<Response, RestError> {
    let configs = describe(state, cluster_id, &res).await?;
    let c = configs.iter().find(|c| c.name.as_str() == name).ok_or_else(|| not_found(cluster_id, &res, name))?;
    Ok(ok(config_json(&base_url(headers), cluster_id, &res, c)))
}

async fn update_config(state: &Shared, headers: &HeaderMap, cluster_id: &str, res: Resource, name: String, request: Body) -> Result<Response, RestError> {
    cluster(state, cluster_id)?;
    let value = update_body(&body::read_json(headers, request, &state.config).await?)?;
    alter(state, cluster_id, &res, vec![Change { name, operation: OP_SET, value }], false).await
}

async fn reset_config(state: &Shared, cluster_id: &str, res: Resource, name: String) -> Result<Response, RestError> {
    alter(state, cluster_id, &res, vec![Change { name, operation: OP_DELETE, value: None }], false).await
}

async fn alter_configs(state: &Shared, headers: &HeaderMap, cluster_id: &str, res: Resource, request: Body) -> Result<Response, RestError> {
    cluster(state, cluster_id)?;
    let (changes, validate_only) = alter_body(&body::read_json(headers, request, &state.config).await?)?;
    alter(state, cluster_id, &res, changes, validate_only).await
}

async fn list_cluster_configs(State(state): State<Shared>, headers: HeaderMap, Path(c): Path<String>) -> Result<Response, RestError> {
    list_configs(&state, &headers, &c, Resource::ClusterBrokerDefaults).await
}

async fn get_cluster_config(State(state): State<Shared>, headers: HeaderMap, Path((c, n)): Path<(String, String)>) -> Result<Response, RestError> {
    get_config(&state, &headers, &c, Resource::ClusterBrokerDefaults, &n).await
}

async fn update_cluster_config(State(state): State<Shared>, headers: HeaderMap, Path((c, n)): Path<(String, String)>, request: Body) -> Result<Response, RestError> {
    update_config(&state, &headers, &c, Resource::ClusterBrokerDefaults, n, request).await
}

async fn reset_cluster_config(State(state): State<Shared>, Path((c, n)): Path<(String, String)>) -> Result<Response, RestError> {
    reset_config(&state, &c, Resource::ClusterBrokerDefaults, n).await
}

async fn list_broker_configs(State(state): State<Shared>, headers: HeaderMap, Path((c, b)): Path<(String, String)>) -> Result<Response, RestError> {
    list_configs(&state, &headers, &c, Resource::Broker(number(&b)?)).await
}

async fn get_broker_config(State(state): State<Shared>, headers: HeaderMap, Path((c, b, n)): Path<(String, String, String)>) -> Result<Response, RestError> {
    get_config(&state, &headers, &c, Resource::Broker(number(&b)?), &n).await
}

async fn update_broker_config(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((c, b, n)): Path<(String, String, String)>,
    request: Body,
) -> Result<Response, RestError> {
    update_config(&state, &headers, &c, Resource::Broker(number(&b)?), n, request).await
}

async fn reset_broker_config(State(state): State<Shared>, Path((c, b, n)): Path<(String, String, String)>) -> Result<Response, RestError> {
    reset_config(&state, &c, Resource::Broker(number(&b)?), n).await
}

async fn alter_broker_configs(State(state): State<Shared>, headers: HeaderMap, Path((c, b)): Path<(String, String)>, request: Body) -> Result<Response, RestError> {
    alter_configs(&state, &headers, &c, Resource::Broker(number(&b)?), request).await
}

async fn list_topic_configs(State(state): State<Shared>, headers: HeaderMap, Path((c, t)): Path<(String, String)>) -> Result<Response, RestError> {
    list_configs(&state, &headers, &c, Resource::Topic(t)).await
}

async fn get_topic_config(State(state): State<Shared>, headers: HeaderMap, Path((c, t, n)): Path<(String, String, String)>) -> Result<Response, RestError> {
    get_config(&state, &headers, &c, Resource::Topic(t), &n).await
}

async fn update_topic_config(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((c, t, n)): Path<(String, String, String)>,
    request: Body,
) -> Result<Response, RestError> {
    update_config(&state, &headers, &c, Resource::Topic(t), n, request).await
}

async fn reset_topic_config(State(state): State<Shared>, Path((c, t, n)): Path<(String, String, String)>) -> Result<Response, RestError> {
    reset_config(&state, &c, Resource::Topic(t), n).await
}

async fn alter_topic_configs(State(state): State<Shared>, headers: HeaderMap, Path((c, t)): Path<(String, String)>, request: Body) -> Result<Response, RestError> {
    alter_configs(&state, &headers, &c, Resource::Topic(t), request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alter_bodies_default_to_set_and_name_the_bad_field() {
        let (changes, validate_only) =
            alter_body(&json!({"data": [{"name": "a", "value": "1"}, {"name": "b", "operation": "DELETE"}], "validate_only": true})).unwrap();
        assert!(validate_only);
        assert_eq!(changes[0], Change { name: "a".into(), operation: OP_SET, value: Some("1".into()) });
        assert_eq!(changes[1], Change { name: "b".into(), operation: OP_DELETE, value: None });
        for (bad, field) in [
            (json!([]), "body"),
            (json!({}), "data"),
            (json!({"data": [{"value": "1"}]}), "data[0].name"),
            (json!({"data": [{"name": "a", "value": 1}]}), "data[0].value"),
            (json!({"data": [{"name": "a", "operation": "APPEND"}]}), "data[0].operation"),
            (json!({"data": [], "validate_only": "yes"}), "validate_only"),
        ] {
            let e = alter_body(&bad).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(e.message.contains(field), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn a_config_body_has_confluents_fields() {
        use kafka_protocol::messages::describe_configs_response::DescribeConfigsSynonym;
        let c = DescribeConfigsResourceResult::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("1000")))
            .with_config_source(1)
            .with_synonyms(vec![DescribeConfigsSynonym::default()
                .with_name(StrBytes::from_static_str("log.retention.ms"))
                .with_value(None)
                .with_source(5)]);
        let v = config_json("http://h", "c1", &Resource::Topic("t".into()), &c);
        assert_eq!(v["kind"], "KafkaTopicConfig");
        assert_eq!(v["metadata"]["self"], "http://h/v3/clusters/c1/topics/t/configs/retention.ms");
        assert_eq!(v["metadata"]["resource_name"], "crn:///kafka=c1/topic=t/config=retention.ms");
        assert_eq!((v["topic_name"].as_str(), v["is_default"].as_bool(), v["source"].as_str()), (Some("t"), Some(false), Some("DYNAMIC_TOPIC_CONFIG")));
        assert_eq!(v["synonyms"][0], json!({"name": "log.retention.ms", "value": null, "source": "DEFAULT_CONFIG"}));
        let b = config_json("http://h", "c1", &Resource::ClusterBrokerDefaults, &c);
        assert_eq!((b["kind"].as_str(), b["config_type"].as_str()), (Some("KafkaClusterConfig"), Some("BROKER")));
        assert_eq!(b["metadata"]["self"], "http://h/v3/clusters/c1/broker-configs/retention.ms");
    }
}
