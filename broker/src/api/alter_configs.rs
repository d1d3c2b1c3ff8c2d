//! AlterConfigs, the legacy non-incremental API (still sent by many admin tools and by the
//! Java AdminClient's deprecated `alterConfigs`): the request gives a resource's whole set of
//! dynamic configs; every config it leaves out goes back to its default. Topic configs and
//! the dynamic broker configs, as IncrementalAlterConfigs.
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::broker::Broker;
use crate::controller::{ConfigOp, ControllerRequest};
use crate::error_code;

/// The resource's new set, plus the instruction to drop what it does not list. A name twice
/// is INVALID_REQUEST, as Kafka; a null value resets the config like leaving it out.
fn replacement(configs: &[kafka_protocol::messages::alter_configs_request::AlterableConfig]) -> Result<Vec<ConfigOp>, (i16, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut ops = Vec::with_capacity(configs.len() + 1);
    for c in configs {
        let name = c.name.to_string();
        if !seen.insert(name.clone()) {
            return Err((error_code::INVALID_REQUEST, format!("config '{name}' appears more than once in the request")));
        }
        if let Some(value) = &c.value {
            ops.push(ConfigOp::Set(name, value.to_string()));
        }
    }
    ops.push(ConfigOp::DeleteUnlisted);
    Ok(ops)
}

pub async fn handle(broker: &Broker, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut changed = false;
    let mut responses = Vec::with_capacity(request.resources.len());
    for res in request.resources {
        let r = AlterConfigsResourceResponse::default().with_resource_type(res.resource_type).with_resource_name(res.resource_name.clone());
        let fail = |code: i16, msg: String| r.clone().with_error_code(code).with_error_message(Some(str_bytes(&msg)));
        let name = res.resource_name.to_string();
        let ops = match replacement(&res.configs) {
            Ok(ops) => ops,
            Err((code, msg)) => {
                responses.push(fail(code, msg));
                continue;
            }
        };
        let asked = match res.resource_type {
            RESOURCE_TOPIC => ControllerRequest::AlterTopicConfigs { name, ops, validate_only: request.validate_only },
            RESOURCE_BROKER => ControllerRequest::AlterBrokerConfigs { name, ops, validate_only: request.validate_only },
            other => {
                responses.push(fail(error_code::INVALID_REQUEST, format!("resource type {other} is not supported by AlterConfigs")));
                continue;
            }
        };
        responses.push(match broker.controller.submit(asked).await {
            Ok(_) => {
                changed |= !request.validate_only;
                r
            }
            Err(e) => fail(e.code(), e.to_string()),
        });
    }
    if changed {
        broker.apply_metadata_now().await;
    }
    AlterConfigsResponse::default().with_responses(responses)
}
