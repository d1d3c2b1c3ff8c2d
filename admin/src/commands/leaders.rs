//! `leaders elect --preferred`: every partition's first replica takes its leadership back
//! where it is in sync (ElectLeaders, as kafka-leader-election.sh --election-type preferred).
use std::process::ExitCode;

use anyhow::{bail, Result};
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse};
use serde_json::json;

use super::print_json;
use crate::client::Client;
use crate::output::Table;
use crate::view::error_name;
use crate::Output;

pub fn elect_preferred(client: &mut Client, output: Output) -> Result<ExitCode> {
    client.metadata()?;
    let request = ElectLeadersRequest::default().with_election_type(0).with_topic_partitions(None).with_timeout_ms(30_000);
    let response: ElectLeadersResponse = client.send_any(ApiKey::ElectLeaders, 2, &request)?;
    if response.error_code != 0 {
        bail!("ElectLeaders failed: {}", error_name(response.error_code));
    }
    let mut elected = Vec::new();
    let mut not_possible = Vec::new();
    let mut already = 0usize;
    for t in &response.replica_election_results {
        for p in &t.partition_result {
            let name = format!("{}-{}", t.topic.0.as_str(), p.partition_id);
            match p.error_code {
                0 => elected.push(name),
                84 => already += 1, // ELECTION_NOT_NEEDED
                code => not_possible.push((name, error_name(code), p.error_message.as_ref().map(|m| m.to_string()))),
            }
        }
    }
    let doc = json!({"elected": elected, "already_preferred": already,
        "not_possible": not_possible.iter().map(|(p, e, m)| json!({"partition": p, "error": e, "message": m})).collect::<Vec<_>>()});
    if !print_json(output, &doc)? {
        println!("Preferred leaders elected: {}; already led by their preferred replica: {already}", elected.len());
        if !not_possible.is_empty() {
            let mut t = Table::new(&["PARTITION", "ERROR", "MESSAGE"]);
            for (p, e, m) in &not_possible {
                t.row(vec![p.clone(), e.clone(), m.clone().unwrap_or_default()]);
            }
            println!("Not possible now ({}): the preferred replica is not live or not in sync", not_possible.len());
            print!("{}", t.render());
        }
    }
    Ok(ExitCode::SUCCESS)
}
