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

pub async fn handle(broker: &Broker, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut changed = false;
    let mut responses = Vec::with_capacity(request.resources.len());
    for res in request.resources {
        let response = async {
            let r = AlterConfigsResourceResponse::default().with_resource_type(res.resource_type).with_resource_name(res.resource_name.clone());
            let fail = |code: i16, msg: String| r.clone().with_error_code(code).with_error_message(Some(str_bytes(&msg)));
            match res.resource_type {
                RESOURCE_TOPIC => {
                    let mut ops = Vec::with_capacity(res.configs.len());
                    for c in &res.configs {
                        let name = c.name.to_string();
                        match (c.config_operation, &c.value) {
                            (OP_SET, Some(v)) => ops.push(ConfigOp::Set(name, v.to_string())),
                            (OP_SET, None) => return fail(error_code::INVALID_CONFIG, format!("SET of '{name}' needs a value")),
                            (OP_DELETE, _) => ops.push(ConfigOp::Delete(name)),
                            (op, _) => return fail(error_code::INVALID_CONFIG, format!("operation {op} (APPEND/SUBTRACT) is not supported for '{name}': no list-valued topic config is honoured yet")),
                        }
                    }
                    let asked = ControllerRequest::AlterTopicConfigs { name: res.resource_name.to_string(), ops, validate_only: request.validate_only };
                    match broker.controller.submit(asked).await {
                        Ok(_) => {
                            changed |= !request.validate_only;
                            r
                        }
                        Err(e) => fail(e.code(), e.to_string()),
                    }
                }
                RESOURCE_BROKER => {
                    let mut ops = Vec::with_capacity(res.configs.len());
                    for c in &res.configs {
                        let name = c.name.to_string();
                        match (c.config_operation, &c.value) {
                            (OP_SET, Some(v)) => ops.push(ConfigOp::Set(name, v.to_string())),
                            (OP_SET, None) => return fail(error_code::INVALID_CONFIG, format!("SET of '{name}' needs a value")),
                            (OP_DELETE, _) => ops.push(ConfigOp::Delete(name)),
                            (op, _) => return fail(error_code::INVALID_CONFIG, format!("operation {op} (APPEND/SUBTRACT) is not supported for '{name}'")),
                        }
                    }
                    let asked = ControllerRequest::AlterBrokerConfigs { name: res.resource_name.to_string(), ops, validate_only: request.validate_only };
                    match broker.controller.submit(asked).await {
                        Ok(_) => {
                            changed |= !request.validate_only;
                            r
                        }
                        Err(e) => fail(e.code(), e.to_string()),
                    }
                }
                other => fail(error_code::INVALID_REQUEST, format!("resource type {other} is not supported")),
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
