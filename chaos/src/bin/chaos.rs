//! The chaos orchestrator: runs sente-lite servers and their clients (native
//! Rust and Node.js) as separate processes, SIGKILLs and restarts the servers
//! at random moments (seeded) while traffic flows, then stops the traffic,
//! lets it settle, collects every client's ledger and every server run's
//! records, and prints what became of each message. Exits with 1 when
//! anything is unexplained, duplicated or out of order.
//!
//! Two modes: `memory`, one server (memory engine) killed and restarted on
//! the same port; `redis`, several nodes on one `redis-server` sharing one
//! port (SO_REUSEPORT), killed and restarted one at a time while the others
//! run, every node once a round in a seeded order.
//!
//! ```sh
//! cargo build -p sente-lite-chaos --bins
//! cargo run -p sente-lite-chaos --bin chaos -- --mode memory   # or --mode redis
//! ```
//!
//! (`--help` for the kills, clients, pace and seed). The server and client
//! binaries are found beside this one. Needs `node` and `js/node_modules`
//! (`npm ci --prefix js`) for the Node clients, and `redis-server` on the
//! PATH for `--mode redis`. Documented in `docs/reliability-chaos.md`.

#[path = "../../../tests/ports.rs"]
mod ports;
#[path = "../../../tests/redis_process.rs"]
#[allow(dead_code)]
mod redis_process;

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use redis_process::{RedisProcess, free_port};
use sente_lite_chaos::audit::audit;
use sente_lite_chaos::ledger::Ledger;
use sente_lite_chaos::pace::Pace;
use sente_lite_chaos::records::RunRecords;
use sente_lite_chaos::report::render;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};

/// Which servers the clients talk to.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One server, memory engine.
    Memory,
    /// Several nodes on one Redis, sharing one port.
    Redis,
}

/// Chaos across processes.
#[derive(Parser)]
struct Args {
    /// Which servers.
    #[arg(long, value_enum, default_value = "memory")]
    mode: Mode,
    /// Server kills (SIGKILL, then a restart) during traffic.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// Native client processes (codecs alternate: JSON, postcard).
    #[arg(long, default_value_t = 3)]
    native: usize,
    /// Node.js client processes.
    #[arg(long, default_value_t = 2)]
    node: usize,
    /// Server nodes in `redis` mode.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The seed of the kills' moments (random when not given; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Least time between kills, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    min_between_ms: u64,
    /// Most time between kills, in milliseconds.
    #[arg(long, default_value_t = 9000)]
    max_between_ms: u64,
    /// Most time a killed server stays down, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    max_down_ms: u64,
    /// Traffic after the last restart, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    tail_ms: u64,
    /// Quiet time after traffic stopped, before the ledgers are collected.
    #[arg(long, default_value_t = 2000)]
    settle_ms: u64,
    #[command(flatten)]
    pace: Pace,
    /// Where records, ledgers and the processes' stderr go (by default a
    /// fresh folder, removed after a clean run).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// The Node client script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/node_client.mjs"))]
    node_script: PathBuf,
}

/// How long a process may take to say it is ready, stopped or reporting.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// The lines a process prints, read as they come.
fn lines_of(child: &mut Child) -> mpsc::UnboundedReceiver<String> {
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line of `lines` that `wanted` accepts, within [`PROCESS_TIMEOUT`].
async fn expect_line<T>(
    who: &str,
    lines: &mut mpsc::UnboundedReceiver<String>,
    wanted: impl Fn(&str) -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Err(_) => {
                return Err(format!(
                    "{who}: nothing expected within {PROCESS_TIMEOUT:?}"
                ));
            }
            Ok(None) => return Err(format!("{who}: exited early")),
            Ok(Some(line)) => {
                if let Some(found) = wanted(&line) {
                    return Ok(found);
                }
            }
        }
    }
}

/// A file for a process's stderr.
fn stderr_file(workdir: &Path, name: &str) -> Stdio {
    std::fs::File::create(workdir.join(format!("{name}.stderr")))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::inherit())
}

/// One server node: its address, and its process while it runs.
struct Node {
    name: String,
    addr: String,
    starts: usize,
    child: Option<Child>,
}

/// Where servers are started from, and what every start is recorded as.
struct Servers {
    bin: PathBuf,
    workdir: PathBuf,
    redis: Option<String>,
    /// Every run started, in order: its id and record file.
    runs: Vec<(String, PathBuf)>,
}

impl Servers {
    /// Starts `node` (again); returns its WebSocket URL.
    async fn start(&mut self, node: &mut Node) -> Result<String, String> {
        let run = format!("{}-{}", node.name, node.starts);
        node.starts += 1;
        let record = self.workdir.join(format!("{run}.records"));
        let mut command = Command::new(&self.bin);
        command.args(["--addr", &node.addr, "--run", &run]);
        command.arg("--record").arg(&record);
        if let Some(redis) = &self.redis {
            command.args(["--redis", redis, "--shared-port"]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr_file(&self.workdir, &run))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{run}: {e}"))?;
        let mut lines = lines_of(&mut child);
        let url = expect_line(&run, &mut lines, |l| {
            l.strip_prefix("listening ").map(str::to_owned)
        })
        .await?;
        self.runs.push((run, record));
        node.child = Some(child);
        Ok(url)
    }

    /// SIGKILLs `node` and waits for it to exit.
    async fn kill(node: &mut Node) {
        if let Some(mut child) = node.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// A client process: its commands in, its lines out.
struct ClientProcess {
    name: String,
    _child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
}

impl ClientProcess {
    async fn tell(&mut self, command: &str) -> Result<(), String> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(|e| format!("{}: {e}", self.name))
    }

    async fn expect(&mut self, wanted: &str) -> Result<(), String> {
        expect_line(&self.name, &mut self.lines, |l| (l == wanted).then_some(())).await
    }
}

/// Starts a client: native (`chaos_client`) or Node (`node_client.mjs`).
fn spawn_client(mut command: Command, name: &str, workdir: &Path) -> Result<ClientProcess, String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr_file(workdir, name))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    let stdin = child.stdin.take().expect("piped stdin");
    let lines = lines_of(&mut child);
    Ok(ClientProcess {
        name: name.to_owned(),
        _child: child,
        stdin,
        lines,
    })
}

/// Every client, started: who publishes, and the arguments each shares.
fn clients(args: &Args, url: &str, workdir: &Path) -> Result<Vec<ClientProcess>, String> {
    let native: Vec<String> = (0..args.native).map(|i| format!("n{i}")).collect();
    let node: Vec<String> = (0..args.node).map(|i| format!("j{i}")).collect();
    // One publisher of each kind (two natives when there is no Node client).
    let mut publishers: Vec<String> = native
        .iter()
        .take(if node.is_empty() { 2 } else { 1 })
        .cloned()
        .collect();
    publishers.extend(node.first().cloned());
    let feeds = publishers.join(",");
    let client_bin = sibling("chaos_client")?;
    let mut started = Vec::new();
    for (i, name) in native.iter().chain(&node).enumerate() {
        let mut command = if i < native.len() {
            let mut c = Command::new(&client_bin);
            c.args(["--codec", if i % 2 == 0 { "json" } else { "postcard" }]);
            c
        } else {
            let mut c = Command::new("node");
            c.arg(&args.node_script);
            c
        };
        command.args(["--url", url, "--name", name, "--feeds", &feeds]);
        command.args(args.pace.to_args());
        if publishers.contains(name) {
            command.arg("--publish");
        }
        started.push(spawn_client(command, name, workdir)?);
    }
    Ok(started)
}

/// A binary built beside this one.
fn sibling(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = me.with_file_name(name);
    path.exists().then_some(path).ok_or_else(|| {
        format!("{name} is not built beside chaos: cargo build -p sente-lite-chaos --bins")
    })
}

async fn run(args: Args, seed: u64) -> Result<bool, String> {
    let workdir = match &args.workdir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("sente-lite-chaos-{}", std::process::id())),
    };
    std::fs::create_dir_all(&workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
    let used = std::fs::read_dir(&workdir)
        .map_err(|e| format!("{}: {e}", workdir.display()))?
        .next()
        .is_some();
    if used {
        return Err(format!(
            "{} is not empty: give a new folder",
            workdir.display()
        ));
    }
    println!("records and stderr in {}", workdir.display());
    let began = Instant::now();
    let redis = match args.mode {
        Mode::Redis => Some(RedisProcess::start().await),
        Mode::Memory => None,
    };
    let mut servers = Servers {
        bin: sibling("chaos_server")?,
        workdir: workdir.clone(),
        redis: redis.as_ref().map(RedisProcess::url),
        runs: Vec::new(),
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let count = if args.mode == Mode::Redis {
        args.nodes.max(1)
    } else {
        1
    };
    let mut nodes: Vec<Node> = (0..count)
        .map(|i| Node {
            name: char::from(b'a' + u8::try_from(i % 26).expect("small")).to_string(),
            addr: addr.clone(),
            starts: 0,
            child: None,
        })
        .collect();
    let mut url = String::new();
    for node in &mut nodes {
        url = servers.start(node).await?;
    }
    let mut clients = clients(&args, &url, &workdir)?;
    for client in &mut clients {
        client.expect("ready").await?;
    }
    println!("{} clients ready on {url}; traffic starts", clients.len());
    for client in &mut clients {
        client.tell("start").await?;
    }

    let mut rng = fastrand::Rng::with_seed(seed);
    // Victims go round by round, each node once a round in a seeded order:
    // with at least as many kills as nodes, every node dies once, so every
    // client is dropped at least once wherever the kernel put it.
    let mut round: Vec<usize> = Vec::new();
    for kill in 1..=args.kills {
        let between = rng.u64(args.min_between_ms..=args.max_between_ms.max(args.min_between_ms));
        sleep(Duration::from_millis(between)).await;
        if round.is_empty() {
            round = (0..nodes.len()).collect();
            rng.shuffle(&mut round);
        }
        let victim = round.pop().expect("a round has every node");
        let down = rng.u64(0..=args.max_down_ms);
        Servers::kill(&mut nodes[victim]).await;
        println!(
            "kill {kill}/{}: node {} at {:.1} s, down {down} ms",
            args.kills,
            nodes[victim].name,
            began.elapsed().as_secs_f64()
        );
        sleep(Duration::from_millis(down)).await;
        servers.start(&mut nodes[victim]).await?;
    }
    sleep(Duration::from_millis(args.tail_ms)).await;
    for client in &mut clients {
        client.tell("stop").await?;
    }
    for client in &mut clients {
        client.expect("stopped").await?;
    }
    sleep(Duration::from_millis(args.settle_ms)).await;
    let mut ledgers = Vec::new();
    for client in &mut clients {
        client.tell("report").await?;
        let name = client.name.clone();
        let ledger = expect_line(&name, &mut client.lines, Ledger::from_line).await?;
        ledgers.push(ledger.map_err(|e| format!("{name}: bad ledger: {e}"))?);
    }
    let kept: String = ledgers.iter().map(|l| l.to_line() + "\n").collect();
    std::fs::write(workdir.join("ledgers"), kept).map_err(|e| e.to_string())?;
    for node in &mut nodes {
        Servers::kill(node).await;
    }
    drop(redis);
    let mut runs = Vec::new();
    for (run, path) in &servers.runs {
        runs.push(RunRecords::read(run, path).map_err(|e| e.to_string())?);
    }
    let audit = audit(&ledgers, &runs);
    if args.workdir.is_none() && audit.clean() {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    println!();
    println!(
        "mode {}, seed {seed}, kills {}, server runs {}, clients {} native + {} node, {:.0} s",
        match args.mode {
            Mode::Memory => "memory".to_owned(),
            Mode::Redis => format!("redis ({} nodes)", nodes.len()),
        },
        args.kills,
        runs.len(),
        args.native,
        args.node,
        began.elapsed().as_secs_f64()
    );
    println!();
    print!("{}", render(&audit));
    let t = audit.total();
    println!(
        "summary kills={} clients={} reconnects={} events={} requests={} publications={} received={} duplicates={} out_of_order={} unexplained={}",
        args.kills,
        audit.clients.len(),
        t.reconnects,
        t.events_sent,
        t.requests_sent,
        t.publishes_sent,
        t.received,
        t.duplicates,
        t.out_of_order,
        t.unexplained
    );
    let min_reconnects = audit
        .clients
        .iter()
        .map(|c| c.reconnects)
        .min()
        .unwrap_or(0);
    println!("min_reconnects={min_reconnects}");
    Ok(audit.clean())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    println!("seed {seed}");
    match run(args, seed).await {
        Ok(true) => {
            println!("every message is accounted for");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("UNEXPLAINED: see above");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("chaos: {err}");
            ExitCode::FAILURE
        }
    }
}
