//! `bench`: what does a sluis gateway cost compared with the bare stack it
//! is built on?
//!
//! A gateway every agency request passes through must cost almost nothing,
//! and absolute figures on a shared machine drift. So the main command,
//! `bench compare`, starts a real sluis node and a bare tonic server on the
//! same TLS 1.3 mTLS settings that answers with a response of the same size,
//! and loads them alternately, several rounds in one run, with the same load
//! generator: the ratios it prints are measured side by side.
//!
//! ```sh
//! cargo run --release -p sluis-bench -- compare            # ~1.5 min, prints the table
//! cargo run --release -p sluis-bench -- compare --json     # the same, machine-readable
//! cargo run --release -p sluis-bench -- scale --cases 10000,100000,1000000 --log-entries 10000000
//! cargo run --release -p sluis-bench -- setup --dir /tmp/n # a node with cases for `loadgen`
//! cargo run --release -p sluis-bench -- loadgen --workload /tmp/n/workload.json --rate 1000
//! cargo run --release -p sluis-bench -- audit-log --sizes 1000000,10000000
//! cargo run --release -p sluis-bench -- hot-path
//! cargo run --release -p sluis-bench -- soak               # 10 min: RSS, fds, threads, WAL under churn
//! ```
//!
//! All of sluis's performance tooling lives in this package, apart from the
//! gateway: what only measurements need (histograms, temporary folders,
//! bulk loading) never becomes a dependency of the node, and the figures in
//! BENCHMARKS.md all come from one program.
//!
//! Servers run as child processes of this binary (hidden `serve-*`
//! subcommands) so that they can be pinned to other CPUs than the load
//! generator and their peak memory read from `/proc`. Everything listens and
//! connects on 127.0.0.1 only.
#![forbid(unsafe_code)]

mod audit_log;
mod baseline;
mod bulk;
mod compare;
mod hot_path;
mod loadgen;
mod otlp_sink;
mod procs;
mod report;
mod scale;
mod setup;
mod soak;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Benchmarks for sluis: load generator, gateway vs bare tonic mTLS, scaling runs, access log, hot path"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a sluis node and a bare tonic mTLS server, load them alternately
    /// (closed loop and fixed rate) and print the table and the ratios.
    Compare(compare::Args),
    /// The load generator alone, against any node (see `setup`).
    Loadgen(loadgen::CliArgs),
    /// Write a dev node with cases and consents, and the workload file
    /// `loadgen --workload` reads.
    Setup(setup::Args),
    /// Latency and throughput of the gateway as cases and the access log
    /// grow (bulk-loaded), printed as a curve.
    Scale(scale::Args),
    /// The access log: durable appends per second, whole-log verification
    /// speed and inclusion-proof latency, at the log sizes given.
    AuditLog(audit_log::Args),
    /// Ten minutes of mixed load (reads, registrations, consents granted
    /// and withdrawn) with connection churn, sampling the gateway's RSS,
    /// file descriptors, threads and WAL: flat after warm-up or not.
    Soak(soak::Args),
    /// Micro-benchmarks of the request path's pieces (policy, consent,
    /// pseudonyms, AEAD, record encoding, store reads, durable appends).
    HotPath,
    /// (internal) Serve a sluis node as `sluis serve` does; prints
    /// `listening ADDR`, stops when stdin closes.
    #[command(hide = true)]
    ServeGateway {
        #[arg(long)]
        config: PathBuf,
        /// Export spans and metrics over OTLP to a sink in this process.
        #[arg(long)]
        otlp_sink: bool,
    },
    /// (internal) Serve the bare baseline; prints `listening ADDR`, stops
    /// when stdin closes.
    #[command(hide = true)]
    ServeBaseline {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        answers: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Pin the load generator before the runtime starts its threads, so
    // that every one of them inherits the CPU set.
    let cpus = match &cli.command {
        Command::Compare(a) => a.pinning.apply(),
        Command::Scale(a) => a.pinning.apply(),
        Command::Loadgen(a) => procs::Cpus {
            server: None,
            client: procs::pin_self(a.cpus.as_deref()),
        },
        _ => procs::Cpus::default(),
    };
    if matches!(cli.command, Command::ServeBaseline { .. }) {
        // The same logging as `sluis serve`: the servers should cost what
        // a real node costs, including its subscriber. The gateway sets up
        // its own from its configuration, as `sluis serve` does.
        sluis::cli::init_tracing();
    }
    // The servers run on the runtime `sluis serve` runs on; the load
    // generator too, so that both sides are tuned alike.
    let runtime = sluis::cli::runtime().context("cannot start the async runtime")?;
    match cli.command {
        Command::Compare(a) => runtime.block_on(compare::run(a, cpus)),
        Command::Loadgen(a) => runtime.block_on(loadgen::run_cli(a)),
        Command::Setup(a) => runtime.block_on(setup::run_cli(a)),
        Command::Scale(a) => runtime.block_on(scale::run(a, cpus)),
        Command::AuditLog(a) => runtime.block_on(audit_log::run(a)),
        Command::Soak(a) => runtime.block_on(soak::run(a)),
        // It times each async operation as one `block_on` of its own.
        Command::HotPath => {
            hot_path::run(&runtime);
            Ok(())
        }
        Command::ServeGateway { config, otlp_sink } => {
            runtime.block_on(procs::serve_gateway(&config, otlp_sink))
        }
        Command::ServeBaseline { config, answers } => {
            runtime.block_on(baseline::serve(&config, &answers))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command's arguments are consistent, including the defaults
    /// `compare` and `scale` set on the shared load options by name.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
