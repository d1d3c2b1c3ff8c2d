//! IncrementalAlterConfigs (SET and DELETE) for topic configs and the dynamic broker configs
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

/// The SET and DELETE operations of one resource; APPEND/SUBTRACT (list-valued configs) are
/// not honoured.
fn parse_ops(configs: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig]) -> Result<Vec<ConfigOp>, String> {
    configs
        .iter()
        .map(|c| {
            let name = c.name.to_string();
            match (c.config_operation, &c.value) {
                (OP_SET, Some(v)) => Ok(ConfigOp::Set(name, v.to_string())),
                (OP_SET, None) => Err(format!("SET of '{name}' needs a value")),
                (OP_DELETE, _) => Ok(ConfigOp::Delete(name)),
                (op, _) => Err(format!("operation {op} (APPEND/SUBTRACT) is not supported for '{name}': no list-valued config is honoured yet")),
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
                    Err(msg) => return fail(error_code::INVALID_CONFIG, msg),
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
