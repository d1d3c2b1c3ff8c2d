//! DescribeCluster: cluster id, the active controller and the live brokers.
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, RequestContext};
use crate::broker::Broker;

pub fn handle(broker: &Broker, ctx: &RequestContext, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let image = broker.image();
    let brokers = image
        .live_endpoints(&ctx.listener)
        .map(|(b, e)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(&e.host))
                .with_port(e.port as i32)
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(&image.cluster_id))
        .with_controller_id(BrokerId(broker.controller.client_controller_id()))
        .with_brokers(brokers)
}
