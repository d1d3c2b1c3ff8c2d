//! `cluster describe`: brokers with racks, replica and leader counts and disks; the controller;
//! partitions that are under-replicated, offline or being reassigned.
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::print_json;
use crate::client::Client;
use crate::output::{bytes, ids, Table};
use crate::view::View;
use crate::Output;

pub fn run(client: &mut Client, output: Output) -> Result<ExitCode> {
    let view = View::gather(client)?;
    let urp = view.under_replicated();
    let offline: Vec<_> = view.partitions.iter().filter(|p| p.leader < 0).collect();
    let brokers: Vec<serde_json::Value> = view
        .brokers
        .iter()
        .map(|b| {
            json!({
                "id": b.id, "address": b.address, "rack": b.rack, "fault_domain": b.fault_domain, "update_domain": b.update_domain,
                "replicas": view.replicas_on(b.id).len(), "leaders": view.leaders_on(b.id),
                "disks": view.disks.iter().filter(|d| d.broker == b.id).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = json!({
        "cluster_id": view.cluster_id, "controller": view.controller, "brokers": brokers,
        "topics": view.partitions.iter().map(|p| &p.topic).collect::<std::collections::BTreeSet<_>>().len(),
        "partitions": view.partitions.len(), "under_replicated_partitions": urp, "offline_partitions": offline,
        "reassignments": view.reassignments, "rack_topology": format!("{:?}", view.topology()),
    });
    if print_json(output, &doc)? {
        return Ok(ExitCode::SUCCESS);
    }
    println!("Cluster {}  controller {}  {} brokers  {} partitions  racks: {}",
        view.cluster_id.as_deref().unwrap_or("?"), view.controller, view.brokers.len(), view.partitions.len(),
        match view.topology() { lantern_broker::controller::racks::Topology::Grid => "fault x update domains", _ => "one dimension" });
    let mut t = Table::new(&["BROKER", "ADDRESS", "RACK", "FD", "UD", "REPLICAS", "LEADERS", "DISKS", "OFFLINE DISKS", "SIZE"]);
    for b in &view.brokers {
        let disks: Vec<_> = view.disks.iter().filter(|d| d.broker == b.id).collect();
        t.row(vec![
            b.id.to_string(),
            b.address.clone(),
            b.rack.clone().unwrap_or_else(|| "-".into()),
            b.fault_domain.map_or("-".into(), |f| f.to_string()),
            b.update_domain.map_or("-".into(), |u| u.to_string()),
            view.replicas_on(b.id).len().to_string(),
            view.leaders_on(b.id).to_string(),
            disks.len().to_string(),
            disks.iter().filter(|d| d.error.is_some()).count().to_string(),
            bytes(disks.iter().map(|d| d.bytes).sum()),
        ]);
    }
    print!("{}", t.render());
    let mut d = Table::new(&["BROKER", "LOG DIR", "STATE", "REPLICAS", "SIZE", "FREE"]);
    for disk in &view.disks {
        d.row(vec![
            disk.broker.to_string(),
            disk.path.clone(),
            disk.error.clone().unwrap_or_else(|| "online".into()),
            disk.replicas.to_string(),
            bytes(disk.bytes),
            disk.usable_bytes.map_or("-".into(), |u| bytes(u as u64)),
        ]);
    }
    println!();
    print!("{}", d.render());
    println!();
    if urp.is_empty() && offline.is_empty() {
        println!("Under-replicated partitions: none");
    } else {
        let mut u = Table::new(&["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"]);
        for p in urp.iter().chain(offline.iter().filter(|p| p.isr.len() >= p.replicas.len())) {
            u.row(vec![p.topic.clone(), p.partition.to_string(), p.leader.to_string(), ids(&p.replicas), ids(&p.isr)]);
        }
        println!("Under-replicated partitions: {} (offline: {})", urp.len(), offline.len());
        print!("{}", u.render());
    }
    if !view.reassignments.is_empty() {
        println!("Reassignments in progress: {} (lantern-admin rebalance status)", view.reassignments.len());
    }
    Ok(ExitCode::SUCCESS)
}
