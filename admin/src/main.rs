//! lantern-admin: operate a Lantern cluster from the command line. Talks to any broker with
//! Kafka's own APIs (Metadata, DescribeLogDirs, AlterPartitionReassignments,
//! ListPartitionReassignments, ElectLeaders, UnregisterBroker), so most commands work against
//! Kafka too.
//!
//! Exit codes: 0 done, 1 failed (a broker error, unreachable cluster), 2 refused as unsafe
//! (nothing was changed), 130 interrupted while following a rebalance (the moves go on).
mod client;
mod commands;
mod output;
mod view;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "lantern-admin", version, about = "Describe a Lantern cluster, rebalance it, drain and remove brokers.")]
struct Cli {
    /// A broker to start from (host:port[,host:port...]).
    #[arg(long, global = true, default_value = "127.0.0.1:9092", env = "LANTERN_BOOTSTRAP_SERVER")]
    bootstrap_server: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Seconds to wait for one broker's answer.
    #[arg(long, global = true, default_value_t = 30)]
    request_timeout_s: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The cluster: brokers, racks, controller, disks, partitions, under-replicated partitions.
    Cluster {
        #[command(subcommand)]
        what: ClusterCommand,
    },
    /// Spread partitions evenly over the brokers and racks (fault and update domains).
    Rebalance {
        #[command(subcommand)]
        what: RebalanceCommand,
    },
    /// Partition leadership.
    Leaders {
        #[command(subcommand)]
        what: LeadersCommand,
    },
    /// Scale down: move everything off a broker, then unregister it.
    Broker {
        #[command(subcommand)]
        what: BrokerCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Brokers, racks, controller, disks, partition counts and under-replicated partitions.
    Describe,
}

#[derive(Subcommand)]
pub enum RebalanceCommand {
    /// Print the moves a rebalance would make and the bytes it would copy; changes nothing.
    Plan {
        /// Also write the moves as Kafka's reassignment JSON (kafka-reassign-partitions.sh --execute).
        #[arg(long)]
        reassignment_json: Option<std::path::PathBuf>,
    },
    /// Plan and start the moves.
    Execute {
        /// Wait until every move is done, showing progress (bytes moved, rate, time left);
        /// a throttle is removed at the end.
        #[arg(long)]
        wait: bool,
        /// Cap the copying at this many bytes a second per broker (replication throttles on
        /// the replicas that move only; in-sync replicas and clients are not held back).
        #[arg(long, value_name = "BYTES_PER_SEC")]
        throttle: Option<u64>,
    },
    /// The reassignments in progress and how far they are.
    Status,
    /// Cancel every reassignment in progress (replicas being added are removed again) and
    /// remove replication throttles.
    Cancel,
}

#[derive(Subcommand)]
enum LeadersCommand {
    /// Give every partition's leadership back to its preferred (first) replica where it is in sync.
    Elect {
        /// Preferred-leader election (the only kind offered here; unclean elections lose data).
        #[arg(long, required = true)]
        preferred: bool,
    },
}

#[derive(Subcommand)]
enum BrokerCommand {
    /// Move every replica (and so every leadership) off broker ID, keeping replication factors.
    Drain {
        id: i32,
        /// Wait until the broker holds nothing.
        #[arg(long)]
        wait: bool,
        /// Cap the copying at this many bytes a second per broker.
        #[arg(long, value_name = "BYTES_PER_SEC")]
        throttle: Option<u64>,
    },
    /// Unregister broker ID once it holds no replica. Refused (exit 2) if it holds replicas, or
    /// if the brokers or fault domains left are fewer than some topic needs.
    Remove { id: i32 },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut client = client::Client::new(&cli.bootstrap_server, Duration::from_secs(cli.request_timeout_s.max(1)));
    let result = match cli.command {
        Command::Cluster { what: ClusterCommand::Describe } => commands::describe::run(&mut client, cli.output),
        Command::Rebalance { what } => commands::rebalance::run(&mut client, cli.output, what),
        Command::Leaders { what: LeadersCommand::Elect { .. } } => commands::leaders::elect_preferred(&mut client, cli.output),
        Command::Broker { what: BrokerCommand::Drain { id, wait, throttle } } => commands::broker::drain(&mut client, cli.output, id, wait, throttle),
        Command::Broker { what: BrokerCommand::Remove { id } } => commands::broker::remove(&mut client, cli.output, id),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lantern-admin: {e:#}");
            ExitCode::from(1)
        }
    }
}
