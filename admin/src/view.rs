//! The cluster as the commands see it: brokers and racks, partitions, disks and sizes, and the
//! reassignments in progress, gathered with Metadata, DescribeLogDirs and
//! ListPartitionReassignments.
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use lantern_broker::controller::racks::{Cell, Topology};
use serde::Serialize;

use crate::client::Client;

pub const DESCRIBE_LOG_DIRS_VERSION: i16 = 4;
pub const LIST_REASSIGNMENTS_VERSION: i16 = 0;

#[derive(Debug, Clone, Serialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub address: String,
    pub rack: Option<String>,
    pub fault_domain: Option<u32>,
    pub update_domain: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionInfo {
    pub topic: String,
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The largest copy's size in bytes (DescribeLogDirs).
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    pub broker: i32,
    pub path: String,
    /// Kafka's error name when the directory is offline (KAFKA_STORAGE_ERROR), else null.
    pub error: Option<String>,
    pub total_bytes: Option<i64>,
    pub usable_bytes: Option<i64>,
    pub replicas: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub cluster_id: Option<String>,
    pub controller: i32,
    pub brokers: Vec<BrokerInfo>,
    pub partitions: Vec<PartitionInfo>,
    pub disks: Vec<Disk>,
    pub reassignments: Vec<Reassignment>,
    /// (broker, topic, partition) -> bytes of that replica.
    #[serde(skip)]
    pub replica_bytes: BTreeMap<(i32, String, i32), u64>,
}

impl View {
    pub fn gather(client: &mut Client) -> Result<View> {
        let md = client.metadata()?;
        let mut brokers: Vec<BrokerInfo> = md
            .brokers
            .iter()
            .map(|b| {
                let rack = b.rack.as_ref().map(|r| r.to_string());
                let cell = rack.as_deref().and_then(Cell::parse);
                BrokerInfo {
                    id: b.node_id.0,
                    address: format!("{}:{}", b.host.as_str(), b.port),
                    rack,
                    fault_domain: cell.map(|c| c.fault_domain),
                    update_domain: cell.map(|c| c.update_domain),
                }
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        let mut partitions = Vec::new();
        for t in &md.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else { continue };
            if t.error_code != 0 {
                bail!("Metadata for topic {name} failed with error code {}", t.error_code);
            }
            for p in &t.partitions {
                partitions.push(PartitionInfo {
                    topic: name.clone(),
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    bytes: 0,
                });
            }
        }
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        let mut disks = Vec::new();
        let mut replica_bytes = BTreeMap::new();
        for b in &brokers {
            let response: DescribeLogDirsResponse =
                match client.send_to_broker(b.id, ApiKey::DescribeLogDirs, DESCRIBE_LOG_DIRS_VERSION, &DescribeLogDirsRequest::default().with_topics(None)) {
                    Ok(r) => r,
                    Err(e) => {
                        disks.push(Disk { broker: b.id, path: "?".into(), error: Some(format!("unreachable: {e:#}")), total_bytes: None, usable_bytes: None, replicas: 0, bytes: 0 });
                        continue;
                    }
                };
            for dir in response.results {
                let mut replicas = 0;
                let mut bytes = 0u64;
                for t in &dir.topics {
                    for p in &t.partitions {
                        if p.is_future_key {
                            continue;
                        }
                        replicas += 1;
                        let size = p.partition_size.max(0) as u64;
                        bytes += size;
                        replica_bytes.insert((b.id, t.name.0.to_string(), p.partition_index), size);
                    }
                }
                disks.push(Disk {
                    broker: b.id,
                    path: dir.log_dir.to_string(),
                    error: (dir.error_code != 0).then(|| error_name(dir.error_code)),
                    total_bytes: (dir.total_bytes >= 0).then_some(dir.total_bytes),
                    usable_bytes: (dir.usable_bytes >= 0).then_some(dir.usable_bytes),
                    replicas,
                    bytes,
                });
            }
        }
        for p in &mut partitions {
            p.bytes = p.replicas.iter().filter_map(|r| replica_bytes.get(&(*r, p.topic.clone(), p.partition))).copied().max().unwrap_or(0);
        }
        let reassignments = list_reassignments(client)?;
        Ok(View {
            cluster_id: md.cluster_id.map(|c| c.to_string()),
            controller: md.controller_id.0,
            brokers,
            partitions,
            disks,
            reassignments,
            replica_bytes,
        })
    }

    pub fn topology(&self) -> Topology {
        Topology::of(self.brokers.iter().map(|b| b.rack.as_deref()))
    }

    /// Partitions whose ISR is smaller than their replication factor (replicas a reassignment
    /// is removing not counted, as Kafka counts).
    pub fn under_replicated(&self) -> Vec<&PartitionInfo> {
        self.partitions
            .iter()
            .filter(|p| {
                let removing = self.reassignments.iter().find(|r| r.topic == p.topic && r.partition == p.partition).map_or(0, |r| r.removing.len());
                p.isr.len() < p.replicas.len() - removing.min(p.replicas.len())
            })
            .collect()
    }

    pub fn replicas_on(&self, broker: i32) -> Vec<&PartitionInfo> {
        self.partitions.iter().filter(|p| p.replicas.contains(&broker)).collect()
    }

    pub fn leaders_on(&self, broker: i32) -> usize {
        self.partitions.iter().filter(|p| p.leader == broker).count()
    }

    pub fn broker_ids(&self) -> BTreeSet<i32> {
        self.brokers.iter().map(|b| b.id).collect()
    }
}

pub fn list_reassignments(client: &mut Client) -> Result<Vec<Reassignment>> {
    let response: ListPartitionReassignmentsResponse =
        client.send_any(ApiKey::ListPartitionReassignments, LIST_REASSIGNMENTS_VERSION, &ListPartitionReassignmentsRequest::default().with_topics(None))?;
    if response.error_code != 0 {
        bail!(
            "ListPartitionReassignments failed: {} {}",
            error_name(response.error_code),
            response.error_message.map(|m| m.to_string()).unwrap_or_default()
        );
    }
    let mut out = Vec::new();
    for t in response.topics {
        for p in t.partitions {
            out.push(Reassignment {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                replicas: p.replicas.iter().map(|b| b.0).collect(),
                adding: p.adding_replicas.iter().map(|b| b.0).collect(),
                removing: p.removing_replicas.iter().map(|b| b.0).collect(),
            });
        }
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// Kafka's name for an error code (kafka-protocol's), e.g. "KAFKA_STORAGE_ERROR".
pub fn error_name(code: i16) -> String {
    lantern_broker::error_code::ALL
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| format!("error code {code}"))
}
