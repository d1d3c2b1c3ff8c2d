//! IncrementalAlterConfigs (SET, DELETE, and APPEND/SUBTRACT on list-valued configs) for topic
//! configs and the dynamic broker configs
//! (the replication throttle rates; every other broker config is static).
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{str_bytes};
use crate::error_code;
use crate::broker::Broker;
use crate::controller::{ConfigOp, ControllerRequest};

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The operations of one resource: SET, DELETE, and APPEND/SUBTRACT (list-valued configs, the
/// controller checks which). Errors as (Kafka error code, message).
fn parse_ops(configs: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig]) -> Result<Vec<ConfigOp>, (i16, String)> {
    let mut seen = std::collections::HashSet::new();
    configs
        .iter()
        .map(|c| {
            let name = c.name.to_string();
            if !seen.insert(name.clone()) {
                // Kafka: "Error due to duplicate config keys".
                return Err((error_code::INVALID_REQUEST, format!("config '{name}' appears more than once in the request")));
            }
            let invalid = |msg: String| Err((error_code::INVALID_CONFIG, msg));
            match (c.config_operation, &c.value) {
                (OP_SET, Some(v)) => Ok(ConfigOp::Set(name, v.to_string())),
                (OP_DELETE, _) => Ok(ConfigOp::Delete(name)),
                (OP_APPEND, Some(v)) => Ok(ConfigOp::Append(name, v.to_string())),
                (OP_SUBTRACT, Some(v)) => Ok(ConfigOp::Subtract(name, v.to_string())),
                (OP_SET | OP_APPEND | OP_SUBTRACT, None) => invalid(format!("operation {} of '{name}' needs a value", c.config_operation)),
                (op, _) => invalid(format!("unknown operation {op} for '{name}' (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT)")),
            }
        })
        .collect()
}

pub async fn handle(broker: &Broker, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut changed = false;
    let mut responses = Vec::with_capacity(request.resources.len());
    for res in request.resources {
        let response = async {
            let r = AlterConfigsResourceResponse::default().with_resource_type(res.resource_type).with_resource_name(res.resource_name.clone());
            let fail = |code: i16, msg: String| r.clone().with_error_code(code).with_error_message(Some(str_bytes(&msg)));
            let name = res.resource_name.to_string();
            let asked = match res.resource_type {
                RESOURCE_TOPIC | RESOURCE_BROKER => match parse_ops(&res.configs) {
                    Ok(ops) if res.resource_type == RESOURCE_TOPIC => ControllerRequest::AlterTopicConfigs { name, ops, validate_only: request.validate_only },
                    Ok(ops) => ControllerRequest::AlterBrokerConfigs { name, ops, validate_only: request.validate_only },
                    Err((code, msg)) => return fail(code, msg),
                },
                other => return fail(error_code::INVALID_REQUEST, format!("resource type {other} is not supported")),
            };
            match broker.controller.submit(asked).await {
                Ok(_) => {
                    changed |= !request.validate_only;
                    r
                }
                Err(e) => fail(e.code(), e.to_string()),
            }
        }
        .await;
        responses.push(response);
    }
    if changed {
        broker.apply_metadata_now().await;
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
