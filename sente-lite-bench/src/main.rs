//! `sente-lite-bench`: measures sente-lite against plain tokio-tungstenite
//! servers and two socket.io servers (socketioxide, socket.io on Node.js).
//!
//! ```text
//! cargo run --release -p sente-lite-bench -- run --quick          # smoke run, seconds
//! cargo build --profile release-lto -p sente-lite-examples --example echo
//! cargo run --profile release-lto -p sente-lite-bench -- run --write BENCHMARKS.md --chart docs/bench-latency.svg
//! ```
//!
//! `run` starts every server and load generator as a process of its own (the
//! same binary's `serve`, `load` and `fill` subcommands), pinned with
//! `taskset` to separate CPUs when it can, and prints the tables. Scenarios:
//! request/reply throughput and latency, broadcast fan-out, idle connections'
//! memory, a reconnection storm, recovery replay, the memory of a channel
//! history, and several servers on one Redis (`sente-lite-redis`): delivery
//! latency across servers, throughput through one Redis, idle connections
//! across many server processes. The shipped `echo` example, when built by
//! the same profile, is measured as it is in request/reply. See `BENCHMARKS.md` for the figures and how
//! they are made.

mod chart;
mod events;
mod latency;
mod load;
mod machine;
mod report;
mod run;
mod serve;
mod wire;

use clap::{Parser, Subcommand};

/// Load benchmarks of sente-lite.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the scenarios and prints (or writes) the report.
    Run(Box<run::RunArgs>),
    /// Writes the report again from figures saved with `run --results`.
    Render(run::RenderArgs),
    /// Runs one server under test (started by `run`).
    Serve {
        /// Which server.
        #[arg(long, value_enum)]
        kind: serve::ServerKind,
        /// Where to listen; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: String,
        /// Tokio runtime workers.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// sente-lite: publications kept in the bench channels' history (0: none).
        #[arg(long, default_value_t = 0)]
        history: usize,
        /// sente-lite: run on the Redis engine, on the Redis at this URL
        /// (`redis://127.0.0.1:6379`), one of the servers sharing it.
        #[arg(long)]
        redis: Option<String>,
        /// sente-lite: listen with `SO_REUSEPORT`, so that several server
        /// processes share the port.
        #[arg(long)]
        shared: bool,
    },
    /// Fills a history in a process of its own and reports its memory
    /// (started by `run`).
    #[command(hide = true)]
    Fill {
        /// Publications kept in all.
        #[arg(long)]
        publications: usize,
        /// Channels they are spread over, in turn.
        #[arg(long, default_value_t = 1)]
        channels: usize,
        /// Bytes of each publication's payload, as JSON.
        #[arg(long, default_value_t = 100)]
        payload: usize,
    },
    /// Runs one load generator (started by `run`): a JSON job.
    #[command(hide = true)]
    Load {
        /// The job, as JSON.
        #[arg(long)]
        job: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Render(args) => run::render(args),
        Command::Serve {
            kind,
            addr,
            threads,
            history,
            redis,
            shared,
        } => serve::run(
            kind,
            &addr,
            threads,
            serve::SenteSetup {
                history,
                redis,
                shared,
            },
        )
        .map_err(Into::into),
        Command::Fill {
            publications,
            channels,
            payload,
        } => serve::fill::run(publications, channels, payload),
        Command::Load { job } => serde_json::from_str(&job)
            .map_err(Into::into)
            .and_then(load::run),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sente-lite-bench: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
