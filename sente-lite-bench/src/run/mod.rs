//! `run`: starts the servers and load generators of every scenario, collects
//! the figures, prints the tables, and writes the report and chart on request.

mod cluster;
mod fanout;
mod history_memory;
mod idle;
mod processes;
mod replay;
mod reqrep;
mod storm;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::machine::{Machine, Pinning};
use crate::report::Report;
use crate::wire::{BoxError, Protocol};
pub(crate) use cluster::{BEHIND_P99_US, Layout};
pub(crate) use processes::NodePeer;
use processes::ServerProcess;

/// A system under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub(crate) enum System {
    /// The plain tokio-tungstenite server that reads and writes straight
    /// back: the floor every ratio is to.
    Floor,
    /// tokio-tungstenite with no framework, built like sente-lite's engine
    /// (queue, batched flushes): a second reference.
    #[value(name = "engine-like", alias = "bare")]
    Bare,
    /// sente-lite, JSON.
    SenteJson,
    /// sente-lite, postcard.
    SentePostcard,
    /// sente-lite, JSON, with a history on the bench channel.
    SenteJsonHistory,
    /// sente-lite, postcard, with a history on the bench channel.
    SentePostcardHistory,
    /// socketioxide (Rust, socket.io protocol).
    Socketioxide,
    /// socket.io 4 on Node.js.
    SocketIoNode,
    /// The shipped `echo` example (`examples/echo.rs`), built and run as it
    /// is: request/reply only.
    EchoExample,
}

impl System {
    /// Every system, in table order.
    pub(crate) const ALL: [System; 9] = [
        Self::Floor,
        Self::Bare,
        Self::SenteJson,
        Self::SentePostcard,
        Self::SenteJsonHistory,
        Self::SentePostcardHistory,
        Self::Socketioxide,
        Self::SocketIoNode,
        Self::EchoExample,
    ];

    /// The name in tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::Bare => "engine-like",
            Self::SenteJson => "sente-lite json",
            Self::SentePostcard => "sente-lite postcard",
            Self::SenteJsonHistory => "sente-lite json + history",
            Self::SentePostcardHistory => "sente-lite postcard + history",
            Self::Socketioxide => "socketioxide",
            Self::SocketIoNode => "socket.io (Node.js)",
            Self::EchoExample => "echo example",
        }
    }

    /// What the load generator speaks to it.
    pub(crate) fn protocol(self) -> Protocol {
        match self {
            Self::Floor | Self::Bare => Protocol::Bare,
            Self::SenteJson | Self::SenteJsonHistory => Protocol::SenteJson,
            Self::SentePostcard | Self::SentePostcardHistory => Protocol::SentePostcard,
            Self::Socketioxide | Self::SocketIoNode => Protocol::SocketIo,
            Self::EchoExample => Protocol::EchoExample,
        }
    }

    /// Publications its server keeps in the bench channel's history (0: none).
    pub(crate) fn history_size(self) -> usize {
        match self {
            Self::SenteJsonHistory | Self::SentePostcardHistory => HISTORY_SIZE,
            _ => 0,
        }
    }
}

/// The history of the `+ history` systems' bench channel, in publications
/// (the other channel options are the defaults).
pub(crate) const HISTORY_SIZE: usize = 1000;

fn one_round() -> usize {
    1
}

/// What a run measures and for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// Quick (smoke) or full.
    pub(crate) quick: bool,
    /// Systems compared in every scenario that has them.
    pub(crate) systems: Vec<System>,
    /// Scenarios to run.
    pub(crate) scenarios: Vec<Scenario>,
    /// Request/reply: concurrent clients.
    pub(crate) clients: Vec<usize>,
    /// Request/reply: payload sizes, bytes.
    pub(crate) payloads: Vec<usize>,
    /// Request/reply: warm-up before each measurement, ms.
    pub(crate) warmup_ms: u64,
    /// Request/reply: each measurement, ms.
    pub(crate) duration_ms: u64,
    /// Request/reply: closed-loop rounds (each round measures every cell,
    /// and in each cell every system once, in an order turned by one each
    /// round), and as many open-loop rounds a cell; the report gives the
    /// medians.
    #[serde(default = "one_round")]
    pub(crate) rounds: usize,
    /// Open loop: offered rate as a fraction of sente-lite json's saturation.
    pub(crate) open_fraction: f64,
    /// Fan-out: subscriber counts.
    pub(crate) subscribers: Vec<usize>,
    /// Fan-out: single messages timed until every subscriber has them.
    pub(crate) fanout_samples: usize,
    /// Fan-out: sustained publishing, ms.
    pub(crate) fanout_duration_ms: u64,
    /// Fan-out: messages published but not yet everywhere, at most.
    pub(crate) fanout_window: u64,
    /// Fan-out: payload filler, bytes.
    pub(crate) fanout_pad: usize,
    /// Idle: connection counts.
    pub(crate) idle: Vec<usize>,
    /// Idle: how long the server is left alone before each memory reading, ms.
    pub(crate) idle_settle_ms: u64,
    /// Idle: how long after the first reading with the connections open a
    /// second is taken, ms: past every connection's first heartbeat (a
    /// sente-lite server pings each connection 25 s after it opened).
    #[serde(default)]
    pub(crate) idle_later_ms: u64,
    /// Storm: clients.
    pub(crate) storm_clients: usize,
    /// Storm: kills and restarts.
    pub(crate) storm_rounds: usize,
    /// Storm: how long to wait for every client, ms.
    pub(crate) storm_deadline_ms: u64,
    /// Connections per load-generator process (the open-files limit is per process).
    pub(crate) conns_per_process: usize,
    /// Storm: native clients per load-generator process.
    pub(crate) clients_per_process: usize,
    /// Replay: clients that leave and come back.
    #[serde(default)]
    pub(crate) replay_clients: usize,
    /// Replay: publications each of them missed.
    #[serde(default)]
    pub(crate) replay_missed: u64,
    /// Replay: how long to wait for every client to catch up, ms.
    #[serde(default)]
    pub(crate) replay_deadline_ms: u64,
    /// History memory: publications kept in all, in each layout.
    #[serde(default)]
    pub(crate) memory_publications: usize,
    /// History memory: the layouts, as channel counts (the publications are
    /// spread over them evenly).
    #[serde(default)]
    pub(crate) memory_channels: Vec<usize>,
    /// History memory: bytes of each publication's payload, as JSON.
    #[serde(default)]
    pub(crate) memory_payload: usize,
    /// Cross-node delivery: subscriber counts (on the second server).
    #[serde(default)]
    pub(crate) cluster_subscribers: Vec<usize>,
    /// Cross-node delivery: load-generator processes they are spread over.
    #[serde(default)]
    pub(crate) cluster_processes: usize,
    /// Cross-node delivery: publications a second.
    #[serde(default)]
    pub(crate) cluster_rate: f64,
    /// Paced scenarios: publishing before the measured part, ms.
    #[serde(default)]
    pub(crate) cluster_warmup_ms: u64,
    /// Cross-node delivery: the measured part, ms.
    #[serde(default)]
    pub(crate) cluster_duration_ms: u64,
    /// Paced scenarios: how long deliveries may still arrive after the last
    /// publication, ms.
    #[serde(default)]
    pub(crate) cluster_drain_ms: u64,
    /// Throughput through one Redis: subscribers.
    #[serde(default)]
    pub(crate) throughput_subscribers: usize,
    /// Throughput through one Redis: the rates tried in turn, until one falls
    /// behind.
    #[serde(default)]
    pub(crate) throughput_rates: Vec<f64>,
    /// Throughput through one Redis: each rate's measured part, ms.
    #[serde(default)]
    pub(crate) throughput_duration_ms: u64,
    /// Idle across servers: server processes on one port and one Redis.
    #[serde(default)]
    pub(crate) cluster_servers: usize,
    /// Idle across servers: connections in all.
    #[serde(default)]
    pub(crate) cluster_connections: usize,
    /// Idle across servers: each connection subscribed to a channel of its own.
    #[serde(default)]
    pub(crate) cluster_idle_channels: bool,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// 1: request/reply throughput and latency.
    Reqrep,
    /// 2: broadcast fan-out.
    Fanout,
    /// 3: idle connections' memory.
    Idle,
    /// 4: reconnection storm.
    Storm,
    /// 5: recovery replay after a reconnection.
    Replay,
    /// 6: memory per publication kept in a channel history.
    HistoryMemory,
    /// 7: delivery latency across two servers on one Redis.
    CrossNode,
    /// 8: publications per second through one Redis.
    RedisThroughput,
    /// 9: idle connections across several servers on one Redis.
    ClusterIdle,
}

impl Plan {
    /// The figures of the report.
    pub(crate) fn full() -> Self {
        Self {
            quick: false,
            systems: System::ALL.to_vec(),
            scenarios: vec![
                Scenario::Reqrep,
                Scenario::Fanout,
                Scenario::Idle,
                Scenario::Storm,
                Scenario::Replay,
                Scenario::HistoryMemory,
                Scenario::CrossNode,
                Scenario::RedisThroughput,
                Scenario::ClusterIdle,
            ],
            clients: vec![1, 100, 1000],
            payloads: vec![20, 16 << 10],
            warmup_ms: 1_000,
            duration_ms: 5_000,
            rounds: 3,
            open_fraction: 0.5,
            subscribers: vec![1_000, 10_000],
            fanout_samples: 20,
            fanout_duration_ms: 5_000,
            fanout_window: 16,
            fanout_pad: 20,
            idle: vec![10_000, 19_000],
            idle_settle_ms: 2_000,
            idle_later_ms: 30_000,
            storm_clients: 10_000,
            storm_rounds: 3,
            storm_deadline_ms: 60_000,
            conns_per_process: 5_000,
            clients_per_process: 2_500,
            replay_clients: 1_000,
            replay_missed: 1_000,
            replay_deadline_ms: 60_000,
            memory_publications: 100_000,
            memory_channels: vec![1, 1_000],
            memory_payload: 100,
            cluster_subscribers: vec![10, 100],
            cluster_processes: 4,
            cluster_rate: 1_000.0,
            cluster_warmup_ms: 1_000,
            cluster_duration_ms: 10_000,
            cluster_drain_ms: 1_000,
            throughput_subscribers: 4,
            throughput_rates: vec![
                5_000.0, 10_000.0, 15_000.0, 20_000.0, 25_000.0, 30_000.0, 40_000.0, 60_000.0,
                80_000.0,
            ],
            throughput_duration_ms: 3_000,
            cluster_servers: 7,
            cluster_connections: 100_000,
            cluster_idle_channels: true,
        }
    }

    /// The systems of `scenario`, in table order: a history changes nothing in
    /// request/reply and idle connections, so the `+ history` systems are in
    /// fan-out and replay only; the storm needs a client that reconnects.
    pub(crate) fn systems_for(&self, scenario: Scenario) -> Vec<System> {
        let wanted = |system: &System| match scenario {
            Scenario::Reqrep => system.history_size() == 0,
            // The echo example serves `echo/say` and nothing else.
            Scenario::Idle => system.history_size() == 0 && *system != System::EchoExample,
            Scenario::Fanout => *system != System::EchoExample,
            Scenario::Storm => matches!(system, System::Floor | System::Bare | System::SenteJson),
            Scenario::Replay => system.history_size() > 0,
            // sente-lite's engines on their own, no system to compare.
            Scenario::HistoryMemory
            | Scenario::CrossNode
            | Scenario::RedisThroughput
            | Scenario::ClusterIdle => false,
        };
        self.systems.iter().copied().filter(wanted).collect()
    }

    /// A smoke run: every scenario with tiny counts, a few seconds in all.
    pub(crate) fn quick() -> Self {
        Self {
            quick: true,
            clients: vec![2],
            payloads: vec![20, 16 << 10],
            warmup_ms: 100,
            duration_ms: 300,
            rounds: 1,
            subscribers: vec![20],
            fanout_samples: 3,
            fanout_duration_ms: 300,
            idle: vec![50],
            idle_settle_ms: 100,
            idle_later_ms: 300,
            storm_clients: 20,
            storm_rounds: 1,
            storm_deadline_ms: 10_000,
            conns_per_process: 30,
            clients_per_process: 10,
            replay_clients: 40,
            replay_missed: 100,
            replay_deadline_ms: 10_000,
            memory_publications: 2_000,
            memory_channels: vec![1, 20],
            cluster_subscribers: vec![10],
            cluster_processes: 2,
            cluster_rate: 200.0,
            cluster_warmup_ms: 200,
            cluster_duration_ms: 500,
            cluster_drain_ms: 300,
            throughput_subscribers: 2,
            throughput_rates: vec![500.0, 1_000.0],
            throughput_duration_ms: 300,
            cluster_servers: 3,
            cluster_connections: 60,
            ..Self::full()
        }
    }
}

/// Settings of `run`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunArgs {
    /// Smoke run: every scenario completes, tiny counts, a few seconds.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Only these scenarios (default: all).
    #[arg(long, value_delimiter = ',')]
    pub(crate) only: Vec<Scenario>,
    /// Only these systems (default: all that are installed).
    #[arg(long, value_delimiter = ',')]
    pub(crate) systems: Vec<System>,
    /// Leave out socket.io on Node.js even when it is installed.
    #[arg(long)]
    pub(crate) no_node: bool,
    /// Seconds of each request/reply measurement (full run default 5).
    #[arg(long)]
    pub(crate) duration: Option<f64>,
    /// Request/reply: closed-loop rounds, each measuring every cell, and in
    /// each cell every system once in a turned order (a round ends before the
    /// next begins, so a slow stretch of the machine falls on one round of
    /// several cells); the report gives each system's median
    /// and its ratio to the floor as the median of the rounds' ratios (full
    /// run default 3). Each cell's open loop then runs as many rounds, and
    /// the report gives the round of median p99.
    #[arg(long)]
    pub(crate) rounds: Option<usize>,
    /// Request/reply: the open loop's offered rate, as a fraction of
    /// sente-lite json's saturation in the same cell (default 0.5; above 0
    /// and at most 1).
    #[arg(long)]
    pub(crate) open_fraction: Option<f64>,
    /// Request/reply: only these client counts (full run: 1,100,1000).
    #[arg(long, value_delimiter = ',')]
    pub(crate) clients: Vec<usize>,
    /// Request/reply: only these payload sizes in bytes (full run: 20,16384).
    #[arg(long, value_delimiter = ',')]
    pub(crate) payloads: Vec<usize>,
    /// Fan-out: only these subscriber counts (full run: 1000,10000).
    #[arg(long, value_delimiter = ',')]
    pub(crate) subscribers: Vec<usize>,
    /// Write the report into this Markdown file (its own section is replaced,
    /// the rest of the file is kept).
    #[arg(long)]
    pub(crate) write: Option<PathBuf>,
    /// Write the latency chart (SVG) here.
    #[arg(long)]
    pub(crate) chart: Option<PathBuf>,
    /// Run the servers and load generators at this niceness (`-10` gives them
    /// the CPU before other work on a shared machine; needs the right to).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) nice: Option<i32>,
    /// Before each measurement, wait up to this many seconds for the machine
    /// to be nearly idle (other work below a quarter of a core). Default: 10
    /// for a full run, 0 for a quick one.
    #[arg(long)]
    pub(crate) quiet_wait: Option<f64>,
    /// Save the raw figures (JSON), to render again with `render`.
    #[arg(long)]
    pub(crate) results: Option<PathBuf>,
    /// Replay: clients that leave and come back (full run default 1,000).
    #[arg(long)]
    pub(crate) replay_clients: Option<usize>,
    /// Replay: publications each client misses while away (full run default
    /// 1,000). The server keeps at least 1,000 in the history, more when asked;
    /// a replay longer than a connection's outbound queue is paced on the
    /// client's reading.
    #[arg(long)]
    pub(crate) replay_missed: Option<u64>,
    /// History memory: publications kept in all, in each layout (full run
    /// default 100,000: on one channel, then on 1,000 channels of 100).
    #[arg(long)]
    pub(crate) memory_publications: Option<usize>,
    /// Cross-node delivery: subscriber counts (full run default 10,100).
    #[arg(long, value_delimiter = ',')]
    pub(crate) cluster_subscribers: Vec<usize>,
    /// Cross-node delivery: publications a second (full run default 1,000).
    #[arg(long)]
    pub(crate) cluster_rate: Option<f64>,
    /// Idle across servers: server processes on one Redis (full run default 7).
    #[arg(long)]
    pub(crate) cluster_servers: Option<usize>,
    /// Idle across servers: connections in all (full run default 100,000).
    #[arg(long)]
    pub(crate) cluster_connections: Option<usize>,
    /// Idle across servers: plain idle connections, not subscribed to a
    /// channel of their own.
    #[arg(long)]
    pub(crate) cluster_idle_plain: bool,
    /// The folder of the socket.io (Node.js) server (`server.js` with its
    /// `node_modules` installed by `npm ci`). Default: this crate's `node/`.
    #[arg(long)]
    pub(crate) node_dir: Option<PathBuf>,
}

fn node_peer(args: &RunArgs) -> Option<NodePeer> {
    if args.no_node {
        return None;
    }
    let dir = args
        .node_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/node")));
    let installed = dir.join("node_modules/socket.io/package.json").is_file()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    installed.then_some(NodePeer { dir })
}

/// What every scenario needs.
pub(crate) struct Context {
    pub(crate) plan: Plan,
    pub(crate) pinning: Pinning,
    pub(crate) node: Option<NodePeer>,
    pub(crate) ticks: f64,
    /// See [`RunArgs::quiet_wait`].
    pub(crate) quiet_wait: Duration,
}

impl Context {
    /// Waits (bounded) for the machine to be quiet before a measurement.
    pub(crate) async fn quiet(&self) {
        if !self.quiet_wait.is_zero() {
            crate::machine::wait_for_quiet(self.ticks, self.quiet_wait).await;
        }
    }

    /// Starts the server of `system` on any free port.
    pub(crate) async fn server(&self, system: System) -> Result<ServerProcess, BoxError> {
        self.server_on(system, "127.0.0.1:0").await
    }

    /// Starts the server of `system` on `addr`.
    pub(crate) async fn server_on(
        &self,
        system: System,
        addr: &str,
    ) -> Result<ServerProcess, BoxError> {
        self.start_server(system, addr, system.history_size()).await
    }

    /// Starts the server of `system` on any free port, keeping `history`
    /// publications of the bench channel (sente-lite only).
    pub(crate) async fn server_with_history(
        &self,
        system: System,
        history: usize,
    ) -> Result<ServerProcess, BoxError> {
        self.start_server(system, "127.0.0.1:0", history).await
    }

    async fn start_server(
        &self,
        system: System,
        addr: &str,
        history: usize,
    ) -> Result<ServerProcess, BoxError> {
        let node = self.node.as_ref();
        ServerProcess::start(system, addr, history, &self.pinning, node, self.ticks).await
    }

    /// How many load-generator processes `conns` connections need.
    pub(crate) fn processes_for(&self, conns: usize) -> usize {
        conns.div_ceil(self.plan.conns_per_process.max(1)).max(1)
    }
}

/// Splits `total` into `parts` nearly equal shares.
pub(crate) fn shares(total: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// The command line that reproduces this run, as a user types it, with the
/// build profile this binary was built with (the name of the folder it is
/// in: `release`, or `release-lto` as the published figures).
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "cargo run{} -p sente-lite-bench -- {}",
        profile_arg(),
        args.join(" ")
    )
}

/// The cargo option that selects the profile this binary was built with
/// (the name of the folder it is in), with a space before it: ` --release`,
/// ` --profile release-lto`, or nothing for the dev profile.
pub(crate) fn profile_arg() -> String {
    let profile = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.file_name()?.to_str()?.to_owned()))
        .unwrap_or_else(|| "release".to_owned());
    match profile.as_str() {
        "release" => " --release".to_owned(),
        "debug" => String::new(),
        other => format!(" --profile {other}"),
    }
}

/// Runs `run`.
pub(crate) fn run(args: RunArgs) -> Result<(), BoxError> {
    crate::machine::raise_open_files_limit();
    // Described before pinning, which narrows what this process sees.
    let machine = Machine::describe();
    if let Some(n) = args.nice
        && !crate::machine::renice_self(n)
    {
        return Err(format!("cannot set the niceness to {n}").into());
    }
    let pinning = Pinning::detect();
    pinning.pin_self_to_load();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args, machine, pinning))
}

async fn run_async(args: RunArgs, machine: Machine, pinning: Pinning) -> Result<(), BoxError> {
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(secs) = args.duration {
        plan.duration_ms = (secs * 1000.0) as u64;
    }
    if let Some(rounds) = args.rounds {
        plan.rounds = rounds.max(1);
    }
    if let Some(fraction) = args.open_fraction {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(
                format!("--open-fraction {fraction}: must be above 0 and at most 1").into(),
            );
        }
        plan.open_fraction = fraction;
    }
    if !args.clients.is_empty() {
        plan.clients.clone_from(&args.clients);
    }
    if !args.payloads.is_empty() {
        plan.payloads.clone_from(&args.payloads);
    }
    if !args.subscribers.is_empty() {
        plan.subscribers.clone_from(&args.subscribers);
    }
    if let Some(clients) = args.replay_clients {
        plan.replay_clients = clients.max(1);
    }
    if let Some(missed) = args.replay_missed {
        plan.replay_missed = missed;
    }
    if let Some(publications) = args.memory_publications {
        plan.memory_publications = publications.max(1);
    }
    if !args.cluster_subscribers.is_empty() {
        plan.cluster_subscribers = args
            .cluster_subscribers
            .iter()
            .map(|n| *n.max(&1))
            .collect();
    }
    if let Some(rate) = args.cluster_rate {
        plan.cluster_rate = rate.max(1.0);
    }
    if let Some(servers) = args.cluster_servers {
        plan.cluster_servers = servers.max(1);
    }
    if let Some(connections) = args.cluster_connections {
        plan.cluster_connections = connections.max(1);
    }
    if args.cluster_idle_plain {
        plan.cluster_idle_channels = false;
    }
    if !args.only.is_empty() {
        plan.scenarios = args.only.clone();
    }
    if !args.systems.is_empty() {
        plan.systems = args.systems.clone();
    }
    let node = node_peer(&args);
    let mut report = Report::new(machine, &pinning, command_line(), plan.clone());
    if node.is_none() && plan.systems.contains(&System::SocketIoNode) {
        plan.systems.retain(|s| *s != System::SocketIoNode);
        report.note(if args.no_node {
            "socket.io (Node.js) left out (`--no-node`).".to_owned()
        } else {
            "socket.io (Node.js) left out: `node` or its `node_modules` is not installed \
             (run `npm ci` in `sente-lite-bench/node`)."
                .to_owned()
        });
    }
    if plan.systems.contains(&System::EchoExample)
        && let Err(err) = processes::echo_example()
    {
        plan.systems.retain(|s| *s != System::EchoExample);
        report.note(format!("The echo example left out: {err}."));
    }
    let context = Context {
        plan: plan.clone(),
        pinning,
        node,
        ticks: crate::machine::clock_ticks(),
        quiet_wait: Duration::from_secs_f64(
            args.quiet_wait
                .unwrap_or(if plan.quick { 0.0 } else { 10.0 })
                .max(0.0),
        ),
    };
    eprintln!(
        "sente-lite-bench: {} run, systems: {}",
        if plan.quick { "quick" } else { "full" },
        plan.systems
            .iter()
            .map(|s| s.label())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for scenario in &plan.scenarios {
        let started = std::time::Instant::now();
        match scenario {
            Scenario::Reqrep => reqrep::run(&context, &mut report).await,
            Scenario::Fanout => fanout::run(&context, &mut report).await,
            Scenario::Idle => idle::run(&context, &mut report).await,
            Scenario::Storm => storm::run(&context, &mut report).await,
            Scenario::Replay => replay::run(&context, &mut report).await,
            Scenario::HistoryMemory => history_memory::run(&context, &mut report).await,
            Scenario::CrossNode => cluster::latency(&context, &mut report).await,
            Scenario::RedisThroughput => cluster::throughput(&context, &mut report).await,
            Scenario::ClusterIdle => cluster::idle(&context, &mut report).await,
        }
        eprintln!(
            "sente-lite-bench: {scenario:?} done in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    finish(&report, &args)
}

fn finish(report: &Report, args: &RunArgs) -> Result<(), BoxError> {
    if let Some(path) = &args.results {
        std::fs::write(path, serde_json::to_string_pretty(report)?)?;
    }
    report.render_outputs(args.write.as_deref(), args.chart.as_deref())
}

/// Settings of `render`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RenderArgs {
    /// Raw figures saved by `run --results`.
    #[arg(long)]
    pub(crate) results: PathBuf,
    /// See `run --write`.
    #[arg(long)]
    pub(crate) write: Option<PathBuf>,
    /// See `run --chart`.
    #[arg(long)]
    pub(crate) chart: Option<PathBuf>,
}

/// Renders saved figures again (tables, report section, chart).
pub(crate) fn render(args: RenderArgs) -> Result<(), BoxError> {
    let report: Report = serde_json::from_str(&std::fs::read_to_string(&args.results)?)?;
    report.render_outputs(args.write.as_deref(), args.chart.as_deref())
}

/// Sleeps a little between phases so that one phase's stragglers do not count
/// in the next.
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        assert_eq!(shares(10, 3), vec![4, 3, 3]);
        assert_eq!(shares(19_000, 4).iter().sum::<usize>(), 19_000);
        assert_eq!(shares(5, 0), vec![5]);
    }
}
