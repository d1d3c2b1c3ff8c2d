//! Confluent's v3 config routes over every broker or several topics at once (`-` in place of
//! the id, as Confluent's paths have it): `GET .../brokers/-/configs` (each live broker's
//! configs, by broker id, each asked of its broker), `GET .../topics/-/configs` (every topic's
//! but the internal ones, in one DescribeConfigs) and `POST .../topics/-/configs:alter`
//! (several topics' changes in one IncrementalAlterConfigs: 204, or 207 with `failures` naming
//! the topics Kafka refused). As for one resource (`v3_configs`), an unknown topic or config name
//! is refused before anything changes.
use std::collections::HashSet;

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
use super::v3::{admin_error, base_url, cluster, json_response, list, ok};
use super::v3_configs::{changes_of, config_json, describe, not_found, validate_only_of, Change, Resource};
use super::{admin, body, Shared};
use crate::error_code;

/// Topics one `configs:alter` may name.
const MAX_TOPICS: usize = 1000;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v3/clusters/{cluster_id}/brokers/-/configs", get(list_all_brokers_configs))
        .route("/v3/clusters/{cluster_id}/topics/-/configs", get(list_all_topics_configs))
        .route("/v3/clusters/{cluster_id}/topics/-/configs:alter", post(alter_topics_configs))
}

async fn list_all_brokers_configs(State(state): State<Shared>, headers: HeaderMap, Path(c): Path<String>) -> Result<Response, RestError> {
    let brokers: Vec<i32> = {
        let image = cluster(&state, &c)?;
        let mut ids: Vec<i32> = image.live_brokers().map(|b| b.id).collect();
        ids.sort_unstable();
        ids
    };
    let base = base_url(&headers);
    let resources: Vec<Resource> = brokers.into_iter().map(Resource::Broker).collect();
    let answers = futures_util::future::join_all(resources.iter().map(|res| describe(&state, &c, res))).await;
    let mut data = Vec::new();
    for (res, configs) in resources.iter().zip(answers) {
        data.extend(configs?.iter().map(|cfg| config_json(&base, &c, res, cfg)));
    }
    Ok(ok(list("KafkaBrokerConfigList", format!("{base}/v3/clusters/{c}/brokers/-/configs"), data)))
}

/// One topic's describe result: its configs sorted by name, or Kafka's error.
type Described = (String, Result<Vec<DescribeConfigsResourceResult>, (i16, Option<String>)>);

/// Topics per DescribeConfigs: a topic's configs with synonyms are a few KiB, so a request
/// for thousands of topics would answer more than the proxy's client reads in one response.
const TOPICS_PER_DESCRIBE: usize = 200;

/// The configs of `topics`, in DescribeConfigs requests to this broker (which answers for every
/// topic from its metadata image) of at most TOPICS_PER_DESCRIBE topics each.
async fn describe_topics(state: &Shared, topics: &[String]) -> Result<Vec<Described>, RestError> {
    let mut all = Vec::with_capacity(topics.len());
    for chunk in topics.chunks(TOPICS_PER_DESCRIBE) {
        all.extend(describe_topic_chunk(state, chunk).await?);
    }
    Ok(all)
}

async fn describe_topic_chunk(state: &Shared, topics: &[String]) -> Result<Vec<Described>, RestError> {
    let request = DescribeConfigsRequest::default()
        .with_resources(
            topics
                .iter()
                .map(|t| DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_string(t.clone())).with_configuration_keys(None))
                .collect(),
        )
        .with_include_synonyms(true);
    let response: DescribeConfigsResponse = admin::call(state, state.broker.node_id(), ApiKey::DescribeConfigs, 4, &request).await?;
    Ok(response
        .results
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            if r.error_code != 0 {
                return (name, Err((r.error_code, r.error_message.map(|m| m.to_string()))));
            }
            let mut configs = r.configs;
            configs.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
            (name, Ok(configs))
        })
        .collect())
}

async fn list_all_topics_configs(State(state): State<Shared>, headers: HeaderMap, Path(c): Path<String>) -> Result<Response, RestError> {
    // Not the internal topics, as Confluent's listTopics(cluster, false).
    let topics: Vec<String> = cluster(&state, &c)?.topics.keys().filter(|t| !t.starts_with("__")).cloned().collect();
    let base = base_url(&headers);
    let mut described = describe_topics(&state, &topics).await?;
    described.sort_by(|a, b| a.0.cmp(&b.0));
    let mut data = Vec::new();
    for (t, configs) in described {
        match configs {
            Ok(configs) => {
                let res = Resource::Topic(t);
                data.extend(configs.iter().map(|cfg| config_json(&base, &c, &res, cfg)));
            }
            // Deleted since the metadata image was read.
            Err((error_code::UNKNOWN_TOPIC_OR_PARTITION, _)) => {}
            Err((code, message)) => return Err(admin_error(code, message, &t)),
        }
    }
    Ok(ok(list("KafkaTopicConfigList", format!("{base}/v3/clusters/{c}/topics/-/configs"), data)))
}

/// `{"data": [{"topic_name", "configs": [{"name", "value", "operation"}]}], "validate_only"}`.
/// A topic named twice is refused (Confluent's proxy keeps the last entry).
fn multi_alter_body(v: &Value) -> Result<(Vec<(String, Vec<Change>)>, bool), RestError> {
    let obj = v.as_object().ok_or_else(|| RestError::invalid("body", "expected a JSON object"))?;
    let data = obj.get("data").and_then(Value::as_array).ok_or_else(|| RestError::invalid("data", "expected an array"))?;
    if data.len() > MAX_TOPICS {
        return Err(RestError::invalid("data", format!("at most {MAX_TOPICS} topics")));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(data.len());
    for (i, entry) in data.iter().enumerate() {
        let topic = entry
            .get("topic_name")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && t.len() <= 249)
            .ok_or_else(|| RestError::invalid(&format!("data[{i}].topic_name"), "expected a topic name"))?;
        if !seen.insert(topic) {
            return Err(RestError::invalid(&format!("data[{i}].topic_name"), format!("{topic} is named twice")));
        }
        out.push((topic.to_string(), changes_of(entry.get("configs"), &format!("data[{i}].configs"))?));
    }
    Ok((out, validate_only_of(obj)?))
}

async fn alter_topics_configs(State(state): State<Shared>, headers: HeaderMap, Path(c): Path<String>, request: Body) -> Result<Response, RestError> {
    cluster(&state, &c)?;
    let (entries, validate_only) = multi_alter_body(&body::read_json(&headers, request, &state.config).await?)?;
    if entries.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // Checked before anything is sent, as for one topic: every topic exists and has every
    // config named.
    let topics: Vec<String> = entries.iter().map(|(t, _)| t.clone()).collect();
    let described = describe_topics(&state, &topics).await?;
    for (t, changes) in &entries {
        let configs = match described.iter().find(|(name, _)| name == t).map(|(_, r)| r) {
            Some(Ok(configs)) => configs,
            Some(Err((code, message))) => return Err(admin_error(*code, message.clone(), t)),
            None => return Err(RestError::unknown_topic(t)),
        };
        if let Some(unknown) = changes.iter().find(|ch| !configs.iter().any(|k| k.name.as_str() == ch.name)) {
            return Err(not_found(&c, &Resource::Topic(t.clone()), &unknown.name));
        }
    }
    let resources = entries
        .into_iter()
        .map(|(t, changes)| {
            let (resource_type, name) = Resource::Topic(t).kafka();
            AlterConfigsResource::default().with_resource_type(resource_type).with_resource_name(StrBytes::from_string(name)).with_configs(
                changes
                    .into_iter()
                    .map(|ch| AlterableConfig::default().with_name(StrBytes::from_string(ch.name)).with_config_operation(ch.operation).with_value(ch.value.map(StrBytes::from_string)))
                    .collect(),
            )
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(resources).with_validate_only(validate_only);
    let response: IncrementalAlterConfigsResponse = admin::call(&state, state.broker.node_id(), ApiKey::IncrementalAlterConfigs, 1, &request).await?;
    let failures: Vec<Value> = response
        .responses
        .iter()
        .filter(|r| r.error_code != 0)
        .map(|r| {
            let t = r.resource_name.to_string();
            let e = admin_error(r.error_code, r.error_message.as_ref().map(|m| m.to_string()), &t);
            json!({ "topic_name": t, "error_code": e.error_code, "message": e.message })
        })
        .collect();
    if failures.is_empty() {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(json_response(StatusCode::MULTI_STATUS, &json!({ "failures": failures })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::v3_configs::{OP_DELETE, OP_SET};

    #[test]
    fn multi_topic_bodies_parse_and_errors_name_the_field() {
        let (entries, validate_only) = multi_alter_body(&json!({"data": [
            {"topic_name": "a", "configs": [{"name": "retention.ms", "value": "1"}]},
            {"topic_name": "b", "configs": [{"name": "cleanup.policy", "operation": "DELETE"}]},
        ], "validate_only": true}))
        .unwrap();
        assert!(validate_only);
        assert_eq!(entries[0], ("a".to_string(), vec![Change { name: "retention.ms".into(), operation: OP_SET, value: Some("1".into()) }]));
        assert_eq!(entries[1], ("b".to_string(), vec![Change { name: "cleanup.policy".into(), operation: OP_DELETE, value: None }]));
        let many: Vec<Value> = (0..=MAX_TOPICS).map(|i| json!({"topic_name": format!("t{i}"), "configs": []})).collect();
        for (bad, field) in [
            (json!([]), "body"),
            (json!({}), "data"),
            (json!({"data": [{"configs": []}]}), "data[0].topic_name"),
            (json!({"data": [{"topic_name": "a"}]}), "data[0].configs"),
            (json!({"data": [{"topic_name": "a", "configs": [{"value": "1"}]}]}), "data[0].configs[0].name"),
            (json!({"data": [{"topic_name": "a", "configs": []}, {"topic_name": "a", "configs": []}]}), "data[1].topic_name"),
            (json!({"data": [], "validate_only": 1}), "validate_only"),
            (json!({ "data": many }), "data"),
        ] {
            let e = multi_alter_body(&bad).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(e.message.contains(&format!("{field}:")), "{bad}: {}", e.message);
        }
    }
}
