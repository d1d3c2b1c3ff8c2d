//! `broker drain ID` and `broker remove ID`: scale down safely. Drain moves every replica off
//! the broker (a rebalance with the broker excluded, replication factors kept); remove
//! unregisters a broker that holds nothing. A removal that would lose replicas or leave too few
//! brokers or fault domains is refused with the managed service's error name,
//! InvalidKafkaScaleDownRequestErrorCode, and exit code 2; nothing is changed.
use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{bail, Result};
use kafka_protocol::messages::{ApiKey, BrokerId, UnregisterBrokerRequest, UnregisterBrokerResponse};
use serde_json::json;

use super::print_json;
use crate::client::Client;
use crate::view::{error_name, View};
use crate::Output;

pub const SCALE_DOWN_REFUSED: &str = "InvalidKafkaScaleDownRequestErrorCode";

pub fn drain(client: &mut Client, output: Output, id: i32, wait: bool, throttle: Option<u64>) -> Result<ExitCode> {
    let view = View::gather(client)?;
    let holds = view.replicas_on(id).len();
    if !view.broker_ids().contains(&id) && holds == 0 {
        bail!("broker {id} is neither live nor holds any replica");
    }
    super::rebalance::execute(client, output, &BTreeSet::from([id]), wait, throttle)
}

/// Why removing `id` is unsafe, one line per reason; empty when it is safe.
pub fn removal_problems(view: &View, id: i32) -> Vec<String> {
    let mut problems = Vec::new();
    let held: Vec<String> = view.replicas_on(id).iter().map(|p| format!("{}-{}", p.topic, p.partition)).collect();
    let adding: Vec<String> = view.reassignments.iter().filter(|r| r.adding.contains(&id)).map(|r| format!("{}-{}", r.topic, r.partition)).collect();
    if !held.is_empty() || !adding.is_empty() {
        let mut names: Vec<String> = held.iter().chain(adding.iter()).cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let more = names.len().saturating_sub(20);
        names.truncate(20);
        problems.push(format!(
            "broker {id} still holds {} replicas ({}{}); run `lantern-admin broker drain {id} --wait` first",
            held.len().max(adding.len()),
            names.join(", "),
            if more > 0 { format!(", and {more} more") } else { String::new() }
        ));
    }
    let remaining: Vec<_> = view.brokers.iter().filter(|b| b.id != id).collect();
    if let Some(widest) = view.partitions.iter().max_by_key(|p| p.replicas.len()) {
        let rf = widest.replicas.len();
        if rf > remaining.len() {
            problems.push(format!(
                "topic {} has replication factor {rf} but only {} brokers would remain",
                widest.topic,
                remaining.len()
            ));
        }
    }
    // Fault domains: a partition spread over k fault domains must still find k after removal.
    let fds_now: BTreeSet<u32> = view.brokers.iter().filter_map(|b| b.fault_domain).collect();
    let fds_after: BTreeSet<u32> = remaining.iter().filter_map(|b| b.fault_domain).collect();
    if !fds_now.is_empty() && fds_after.len() < fds_now.len() {
        let short: Vec<String> = view
            .partitions
            .iter()
            .filter(|p| p.replicas.len().min(fds_now.len()) > fds_after.len())
            .map(|p| format!("{}-{}", p.topic, p.partition))
            .take(20)
            .collect();
        if !short.is_empty() {
            problems.push(format!(
                "removing broker {id} leaves {} fault domains, fewer than partitions spread over {} need ({})",
                fds_after.len(),
                fds_now.len(),
                short.join(", ")
            ));
        }
    }
    problems
}

pub fn remove(client: &mut Client, output: Output, id: i32) -> Result<ExitCode> {
    let view = View::gather(client)?;
    let problems = removal_problems(&view, id);
    if !problems.is_empty() {
        if !print_json(output, &json!({"removed": false, "error": SCALE_DOWN_REFUSED, "problems": problems}))? {
            eprintln!("lantern-admin: {SCALE_DOWN_REFUSED}: broker {id} cannot be removed safely; nothing was changed:");
            for p in &problems {
                eprintln!("  - {p}");
            }
        }
        return Ok(ExitCode::from(2));
    }
    let response: UnregisterBrokerResponse = client.send_any(ApiKey::UnregisterBroker, 0, &UnregisterBrokerRequest::default().with_broker_id(BrokerId(id)))?;
    if response.error_code != 0 {
        bail!(
            "UnregisterBroker {id} failed: {} {}",
            error_name(response.error_code),
            response.error_message.map(|m| m.to_string()).unwrap_or_default()
        );
    }
    if !print_json(output, &json!({"removed": true, "broker": id}))? {
        println!("Broker {id} is unregistered; if its process is still running it shuts itself down.");
    }
    Ok(ExitCode::SUCCESS)
}
