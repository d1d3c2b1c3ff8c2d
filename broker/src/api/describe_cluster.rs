//! DescribeCluster: cluster id, controller and brokers.
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::broker::Broker;

pub fn handle(broker: &Broker, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let l = &broker.config.advertised_listeners[0];
    let brokers = vec![DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.node_id()))
        .with_host(str_bytes(&l.host))
        .with_port(l.port as i32)
        .with_rack(broker.config.rack.as_deref().map(str_bytes))];
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(&broker.image().cluster_id))
        .with_controller_id(BrokerId(broker.controller.controller_id()))
        .with_brokers(brokers)
}
