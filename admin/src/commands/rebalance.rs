//! `rebalance plan|execute|status|cancel`, and the execution `broker drain` shares: the plan
//! comes from the broker's own planner (`controller::rebalance`), the moves go to the
//! controller as one AlterPartitionReassignments, progress is read back with
//! ListPartitionReassignments and DescribeLogDirs. The reassignment state lives in the
//! cluster's metadata, so stopping this tool (Ctrl-C) leaves it consistent: the moves go on,
//! and `status` or `cancel` pick them up.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use lantern_broker::controller::rebalance::{self, Move, Plan};
use serde_json::json;

use super::print_json;
use crate::client::Client;
use crate::output::{bytes, ids, Table};
use crate::view::{error_name, list_reassignments, View};
use crate::{Output, RebalanceCommand};

pub const ALTER_REASSIGNMENTS_VERSION: i16 = 0;

pub fn run(client: &mut Client, output: Output, command: RebalanceCommand) -> Result<ExitCode> {
    match command {
        RebalanceCommand::Plan { reassignment_json } => {
            let view = View::gather(client)?;
            let plan = plan_for(&view, &BTreeSet::new())?;
            if let Some(path) = reassignment_json {
                std::fs::write(&path, serde_json::to_string_pretty(&kafka_reassignment_json(&plan.moves))?)
                    .with_context(|| format!("writing {}", path.display()))?;
                if output == Output::Table {
                    println!("Wrote Kafka's reassignment JSON to {}", path.display());
                }
            }
            print_plan(output, &plan)?;
            Ok(ExitCode::SUCCESS)
        }
        RebalanceCommand::Execute { wait, throttle } => execute(client, output, &BTreeSet::new(), wait, throttle),
        RebalanceCommand::Status => status(client, output),
        RebalanceCommand::Cancel => cancel(client, output),
    }
}

/// The plan over the live brokers, moving everything off `drain`. Partitions being
/// reassigned already are planned at their target. Refused when a broker that is not live
/// holds replicas (a rebalance would copy all of them; drain it explicitly if it is gone).
pub fn plan_for(view: &View, drain: &BTreeSet<i32>) -> Result<Plan> {
    let live = view.broker_ids();
    let absent: BTreeSet<i32> = view.partitions.iter().flat_map(|p| p.replicas.iter().copied()).filter(|r| !live.contains(r) && !drain.contains(r)).collect();
    if !absent.is_empty() {
        bail!("brokers {absent:?} hold replicas but are not live; start them, or move everything off one with `lantern-admin broker drain ID`");
    }
    let brokers: Vec<rebalance::Broker> = view.brokers.iter().map(|b| rebalance::Broker { id: b.id, rack: b.rack.clone() }).collect();
    let moving: BTreeMap<(&str, i32), &Vec<i32>> = view.reassignments.iter().map(|r| ((r.topic.as_str(), r.partition), &r.removing)).collect();
    let loads: Vec<rebalance::PartitionLoad> = view
        .partitions
        .iter()
        .map(|p| {
            let removing = moving.get(&(p.topic.as_str(), p.partition));
            let replicas = p.replicas.iter().copied().filter(|r| removing.is_none_or(|rm| !rm.contains(r))).collect();
            rebalance::PartitionLoad { topic: p.topic.clone(), partition: p.partition, replicas, bytes: p.bytes }
        })
        .collect();
    Ok(rebalance::plan(&brokers, drain, &loads))
}

fn print_plan(output: Output, plan: &Plan) -> Result<()> {
    let doc = json!({
        "moves": plan.moves.iter().map(|m| json!({"topic": m.topic, "partition": m.partition, "from": m.from, "to": m.to, "bytes_to_copy": m.bytes_to_copy})).collect::<Vec<_>>(),
        "bytes_to_copy": plan.bytes_to_copy(),
        "unspread": plan.unspread.iter().map(|p| json!({"topic": p.topic, "partition": p.partition, "reason": p.reason})).collect::<Vec<_>>(),
        "blocked": plan.blocked.iter().map(|p| json!({"topic": p.topic, "partition": p.partition, "reason": p.reason})).collect::<Vec<_>>(),
    });
    if print_json(output, &doc)? {
        return Ok(());
    }
    if plan.moves.is_empty() {
        println!("Nothing to move: every partition is placed as the plan would place it.");
    } else {
        let mut t = Table::new(&["TOPIC", "PARTITION", "FROM", "TO", "TO COPY"]);
        for m in &plan.moves {
            t.row(vec![m.topic.clone(), m.partition.to_string(), ids(&m.from), ids(&m.to), bytes(m.bytes_to_copy)]);
        }
        print!("{}", t.render());
        let copies = plan.moves.iter().filter(|m| m.bytes_to_copy > 0 || m.to.iter().any(|r| !m.from.contains(r))).count();
        println!("{} partitions change ({} copy data, the others only reorder replicas); {} to copy.", plan.moves.len(), copies, bytes(plan.bytes_to_copy()));
    }
    for p in &plan.unspread {
        println!("warning: {}-{} is not fully spread: {}", p.topic, p.partition, p.reason);
    }
    for p in &plan.blocked {
        println!("cannot place {}-{}: {}", p.topic, p.partition, p.reason);
    }
    Ok(())
}

/// Kafka's reassignment JSON (`kafka-reassign-partitions.sh --reassignment-json-file`).
fn kafka_reassignment_json(moves: &[Move]) -> serde_json::Value {
    json!({
        "version": 1,
        "partitions": moves.iter().map(|m| json!({
            "topic": m.topic, "partition": m.partition, "replicas": m.to, "log_dirs": vec!["any"; m.to.len()],
        })).collect::<Vec<_>>(),
    })
}

/// Plans and submits the moves; with `wait`, follows them to the end.
pub fn execute(client: &mut Client, output: Output, drain: &BTreeSet<i32>, wait: bool, throttle: Option<u64>) -> Result<ExitCode> {
    let view = View::gather(client)?;
    if !view.reassignments.is_empty() {
        bail!(
            "{} partitions are being reassigned already; wait for them (`lantern-admin rebalance status`) or cancel them (`lantern-admin rebalance cancel`)",
            view.reassignments.len()
        );
    }
    let plan = plan_for(&view, drain)?;
    if !drain.is_empty() && !plan.blocked.is_empty() {
        print_plan(output, &plan)?;
        eprintln!(
            "lantern-admin: InvalidKafkaScaleDownRequestErrorCode: draining {drain:?} would leave {} partitions with fewer usable brokers than replicas; nothing was changed",
            plan.blocked.len()
        );
        return Ok(ExitCode::from(2));
    }
    print_plan(output, &plan)?;
    if plan.moves.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(rate) = throttle {
        super::throttle::set(client, &plan.moves, rate)?;
        if output == Output::Table {
            println!("Replication throttled to {}/s on the moving replicas.", bytes(rate));
        }
    }
    submit(client, &plan.moves)?;
    if output == Output::Table {
        println!("Started {} reassignments.", plan.moves.len());
    }
    if !wait {
        if output == Output::Table {
            println!(
                "Follow them with `lantern-admin rebalance status`{}.",
                if throttle.is_some() { "; once they are done, `lantern-admin rebalance cancel` removes the throttle" } else { "" }
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let code = follow(client, output, &plan.moves)?;
    if throttle.is_some() && code == ExitCode::SUCCESS {
        let topics: BTreeSet<String> = plan.moves.iter().map(|m| m.topic.clone()).collect();
        let brokers: BTreeSet<i32> = plan.moves.iter().flat_map(|m| m.from.iter().chain(m.to.iter()).copied()).collect();
        super::throttle::clear(client, &topics, &brokers)?;
        if output == Output::Table {
            println!("Replication throttle removed.");
        }
    }
    Ok(code)
}

fn submit(client: &mut Client, moves: &[Move]) -> Result<()> {
    let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for m in moves {
        by_topic.entry(m.topic.as_str()).or_default().push(
            ReassignablePartition::default().with_partition_index(m.partition).with_replicas(Some(m.to.iter().map(|b| BrokerId(*b)).collect())),
        );
    }
    alter(client, by_topic)
}

fn alter(client: &mut Client, by_topic: BTreeMap<&str, Vec<ReassignablePartition>>) -> Result<()> {
    let request = AlterPartitionReassignmentsRequest::default().with_timeout_ms(60_000).with_topics(
        by_topic
            .into_iter()
            .map(|(t, ps)| ReassignableTopic::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
            .collect(),
    );
    let response: AlterPartitionReassignmentsResponse = client.send_any(ApiKey::AlterPartitionReassignments, ALTER_REASSIGNMENTS_VERSION, &request)?;
    if response.error_code != 0 {
        bail!(
            "AlterPartitionReassignments failed: {} {}",
            error_name(response.error_code),
            response.error_message.map(|m| m.to_string()).unwrap_or_default()
        );
    }
    let failed: Vec<String> = response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().filter(|p| p.error_code != 0).map(move |p| {
                format!("{}-{}: {} {}", t.name.0.as_str(), p.partition_index, error_name(p.error_code), p.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default())
            })
        })
        .collect();
    if !failed.is_empty() {
        bail!("{} partitions were refused (the others were accepted):\n  {}", failed.len(), failed.join("\n  "));
    }
    Ok(())
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    // A second Ctrl-C ends the process at once. SAFETY: signal() is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// Follows `moves` until none is in progress: a progress bar on a terminal, a line every few
/// seconds otherwise. Ctrl-C stops following, not the moves.
fn follow(client: &mut Client, output: Output, moves: &[Move]) -> Result<ExitCode> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    let tty = output == Output::Table && unsafe { libc::isatty(1) } == 1;
    let total: u64 = moves.iter().map(|m| m.bytes_to_copy).sum();
    let started = Instant::now();
    let mut last_line = Instant::now() - Duration::from_secs(60);
    loop {
        let ongoing = list_reassignments(client)?;
        let pending: BTreeSet<(&str, i32)> = ongoing.iter().map(|r| (r.topic.as_str(), r.partition)).collect();
        let ours_pending: Vec<&Move> = moves.iter().filter(|m| pending.contains(&(m.topic.as_str(), m.partition))).collect();
        let copied = copied_bytes(client, moves, &pending)?;
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        let rate = copied as f64 / elapsed;
        let left = if rate > 0.0 { (total.saturating_sub(copied)) as f64 / rate } else { f64::NAN };
        let done = ours_pending.is_empty();
        if output == Output::Table && (tty || done || last_line.elapsed() >= Duration::from_secs(5)) {
            let pct = if total == 0 { 100.0 } else { copied as f64 * 100.0 / total as f64 };
            let filled = ((pct / 100.0) * 30.0).round().clamp(0.0, 30.0) as usize;
            let line = format!(
                "[{}{}] {:5.1}%  {} of {}  {}/s  {} left  {} of {} partitions done",
                "#".repeat(filled),
                ".".repeat(30 - filled),
                pct,
                bytes(copied),
                bytes(total),
                bytes(rate as u64),
                if left.is_finite() { format!("{}s", left.round() as u64) } else { "?".into() },
                moves.len() - ours_pending.len(),
                moves.len()
            );
            if tty {
                print!("\r{line}");
                let _ = std::io::stdout().flush();
            } else {
                println!("{line}");
            }
            last_line = Instant::now();
        }
        if done {
            if tty {
                println!();
            }
            let doc = json!({"done": moves.len(), "bytes_copied": total, "seconds": started.elapsed().as_secs_f64()});
            if !print_json(output, &doc)? {
                println!("All {} reassignments done in {:.1}s.", moves.len(), started.elapsed().as_secs_f64());
            }
            return Ok(ExitCode::SUCCESS);
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            if tty {
                println!();
            }
            eprintln!(
                "Interrupted: {} reassignments are still running in the cluster (their state is in its metadata, so nothing is half-done). \
                 Follow them with `lantern-admin rebalance status`, or stop them with `lantern-admin rebalance cancel` \
                 (which also removes a replication throttle; run it once they are done if you set one).",
                ours_pending.len()
            );
            return Ok(ExitCode::from(130));
        }
        std::thread::sleep(Duration::from_millis(if tty { 500 } else { 1000 }));
    }
}

/// Bytes the new replicas of `moves` hold so far: the whole size for finished moves, what
/// DescribeLogDirs reports on each new replica's broker for the others.
fn copied_bytes(client: &mut Client, moves: &[Move], pending: &BTreeSet<(&str, i32)>) -> Result<u64> {
    let mut copied = 0u64;
    let mut per_broker: BTreeMap<i32, BTreeMap<(String, i32), u64>> = BTreeMap::new();
    for m in moves {
        let new: Vec<i32> = m.to.iter().copied().filter(|r| !m.from.contains(r)).collect();
        if new.is_empty() {
            continue;
        }
        let each = m.bytes_to_copy / new.len() as u64;
        if !pending.contains(&(m.topic.as_str(), m.partition)) {
            copied += m.bytes_to_copy;
            continue;
        }
        for b in new {
            if !per_broker.contains_key(&b) {
                per_broker.insert(b, replica_sizes(client, b).unwrap_or_default());
            }
            copied += per_broker[&b].get(&(m.topic.clone(), m.partition)).copied().unwrap_or(0).min(each);
        }
    }
    Ok(copied)
}

fn replica_sizes(client: &mut Client, broker: i32) -> Result<BTreeMap<(String, i32), u64>> {
    use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
    let response: DescribeLogDirsResponse =
        client.send_to_broker(broker, ApiKey::DescribeLogDirs, crate::view::DESCRIBE_LOG_DIRS_VERSION, &DescribeLogDirsRequest::default().with_topics(None))?;
    let mut out = BTreeMap::new();
    for d in response.results {
        for t in d.topics {
            for p in t.partitions {
                *out.entry((t.name.0.to_string(), p.partition_index)).or_default() += p.partition_size.max(0) as u64;
            }
        }
    }
    Ok(out)
}

fn status(client: &mut Client, output: Output) -> Result<ExitCode> {
    let view = View::gather(client)?;
    let rows: Vec<serde_json::Value> = view
        .reassignments
        .iter()
        .map(|r| {
            let size = view.partitions.iter().find(|p| p.topic == r.topic && p.partition == r.partition).map_or(0, |p| p.bytes);
            let copied: u64 = r.adding.iter().map(|b| view.replica_bytes.get(&(*b, r.topic.clone(), r.partition)).copied().unwrap_or(0).min(size)).sum();
            json!({"topic": r.topic, "partition": r.partition, "replicas": r.replicas, "adding": r.adding, "removing": r.removing,
                   "bytes_copied": copied, "bytes_to_copy": size * r.adding.len() as u64})
        })
        .collect();
    if print_json(output, &json!({"reassignments": rows}))? {
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("No reassignment in progress.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING", "COPIED"]);
    for (r, row) in view.reassignments.iter().zip(&rows) {
        t.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            ids(&r.replicas),
            ids(&r.adding),
            ids(&r.removing),
            format!("{} of {}", bytes(row["bytes_copied"].as_u64().unwrap_or(0)), bytes(row["bytes_to_copy"].as_u64().unwrap_or(0))),
        ]);
    }
    print!("{}", t.render());
    println!("{} reassignments in progress.", rows.len());
    Ok(ExitCode::SUCCESS)
}

fn cancel(client: &mut Client, output: Output) -> Result<ExitCode> {
    let view = View::gather(client)?;
    let ongoing = view.reassignments.clone();
    if ongoing.is_empty() {
        // Nothing moves: remove any replication throttle left behind (an `execute --throttle`
        // without --wait, or one interrupted), on every topic and broker.
        let topics: BTreeSet<String> = view.partitions.iter().map(|p| p.topic.clone()).collect();
        super::throttle::clear(client, &topics, &view.broker_ids())?;
        if !print_json(output, &json!({"cancelled": 0, "throttles_removed": true}))? {
            println!("No reassignment in progress; replication throttles removed.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for r in &ongoing {
        by_topic.entry(r.topic.as_str()).or_default().push(ReassignablePartition::default().with_partition_index(r.partition).with_replicas(None));
    }
    alter(client, by_topic)?;
    let topics: BTreeSet<String> = ongoing.iter().map(|r| r.topic.clone()).collect();
    let brokers: BTreeSet<i32> = ongoing.iter().flat_map(|r| r.replicas.iter().copied()).collect();
    super::throttle::clear(client, &topics, &brokers)?;
    if !print_json(output, &json!({"cancelled": ongoing.len()}))? {
        println!("Cancelled {} reassignments: the replicas being added were removed, the original ones kept.", ongoing.len());
    }
    Ok(ExitCode::SUCCESS)
}
