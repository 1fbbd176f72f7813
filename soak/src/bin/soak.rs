//! The soak orchestrator: starts `soak_server`, measures it idle, starts the
//! `soak_load` processes, reads the server's memory, open files and CPU at
//! the end of every window, stops the load, waits for every client to have
//! left, and prints (or writes) the report and its chart.
//!
//! ```text
//! cargo build --release -p sente-lite-soak --bins
//! target/release/soak --seconds 600 --conns 4000 --check \
//!     --write docs/reliability-soak.md --chart docs/reliability-soak.svg
//! target/release/soak --quick      # the test command's minute
//! ```
//!
//! With `--check` it exits with an error when a verdict fails (memory
//! growth after the warm-up, open files once every client left, a request
//! failed or a connection was refused or closed by the server); the p99
//! verdict is reported, never a reason to fail (it is a matter of time). The server
//! and the load run on separate cores when `taskset` and two cores are there.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use sente_lite_soak::report::{Run, Settings};
use sente_lite_soak::sample::{self, Sample};
use sente_lite_soak::window::{DONE, LoadWindow, WINDOW};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Soak a sente-lite server.
#[derive(Parser)]
struct Args {
    /// Length of the load, seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Connections open at once, over all load processes.
    #[arg(long, default_value_t = 4000)]
    conns: usize,
    /// Load processes.
    #[arg(long, default_value_t = 2)]
    loads: usize,
    /// Rooms the connections are spread over.
    #[arg(long, default_value_t = 200)]
    rooms: usize,
    /// Shortest connection lifetime, ms.
    #[arg(long, default_value_t = 10_000)]
    min_life_ms: u64,
    /// Longest connection lifetime, ms.
    #[arg(long, default_value_t = 60_000)]
    max_life_ms: u64,
    /// Mean time between a connection's requests, ms.
    #[arg(long, default_value_t = 4_000)]
    request_every_ms: u64,
    /// Mean time between a connection's publications, ms.
    #[arg(long, default_value_t = 15_000)]
    publish_every_ms: u64,
    /// A window (one sample of the server, one line of each load), seconds.
    #[arg(long, default_value_t = 10)]
    window: u64,
    /// A row of the table, seconds.
    #[arg(long, default_value_t = 60)]
    row: u64,
    /// The warm-up, seconds: memory growth is measured after it (the
    /// channels' histories fill, and connections' ages spread out).
    #[arg(long, default_value_t = 120)]
    warmup: u64,
    /// Write the report (Markdown) here as well as printing it.
    #[arg(long)]
    write: Option<PathBuf>,
    /// Draw the curves (SVG) here.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Exit with an error when a verdict fails.
    #[arg(long)]
    check: bool,
    /// The test command's minute: `--seconds 60 --conns 2000 --rooms 20
    /// --min-life-ms 2000 --max-life-ms 10000 --window 5 --row 10 --warmup 30
    /// --check` (shorter lives and fewer rooms, so that the warm-up is short).
    #[arg(long)]
    quick: bool,
}

impl Args {
    fn quick(mut self) -> Self {
        if self.quick {
            self.seconds = 60;
            self.conns = 2000;
            self.rooms = 20;
            self.min_life_ms = 2000;
            self.max_life_ms = 10_000;
            self.window = 5;
            self.row = 10;
            self.warmup = 30;
            self.check = true;
        }
        self
    }
}

/// `taskset -c <cpu>` in front of `program`, when it can pin.
fn command(program: PathBuf, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpu.to_string()).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Whether the server and the load can have a core each.
fn can_pin() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        && std::process::Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// A binary beside this one.
fn sibling(name: &str) -> Result<PathBuf, BoxError> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build the crate's binaries (cargo build -p sente-lite-soak --bins)",
            path.display()
        )
        .into())
    }
}

/// The machine, in a line.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kib| format!(", {} GiB", kib / (1024 * 1024)));
    format!("{cores} cores ({cpu}){memory}, Linux")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse().quick();
    let pin = can_pin();
    let server_bin = sibling("soak_server")?;
    let load_bin = sibling("soak_load")?;

    // The server, alone on the second core.
    let mut server = command(server_bin, pin.then_some(1))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let server_pid = server.id().ok_or("the server exited")?;
    let mut server_out = BufReader::new(server.stdout.take().ok_or("no stdout")?).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), server_out.next_line())
            .await
            .map_err(|_| "the server did not say it listens")??
            .ok_or("the server exited before listening")?;
        if let Some(url) = line.strip_prefix("listening ") {
            break url.to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = server_out.next_line().await {} });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = sample::read(server_pid, 0.0).ok_or("cannot read the server")?;
    eprintln!(
        "soak: server at {url} ({:.1} MiB, {} open files); {} connections for {} s",
        before.rss as f64 / 1048576.0,
        before.open_files,
        args.conns,
        args.seconds
    );

    // The loads, on the first core.
    let (lines_tx, mut lines) = mpsc::unbounded_channel::<(usize, String)>();
    let mut loads: Vec<Child> = Vec::new();
    let loads_n = args.loads.max(1);
    for id in 0..loads_n {
        let conns = args.conns / loads_n + usize::from(id < args.conns % loads_n);
        let mut load = command(load_bin.clone(), pin.then_some(0))
            .args(["--url", &url])
            .args(["--id", &id.to_string()])
            .args(["--conns", &conns.to_string()])
            .args(["--rooms", &args.rooms.to_string()])
            .args(["--window-ms", &(args.window * 1000).to_string()])
            .args(["--min-life-ms", &args.min_life_ms.to_string()])
            .args(["--max-life-ms", &args.max_life_ms.to_string()])
            .args(["--request-every-ms", &args.request_every_ms.to_string()])
            .args(["--publish-every-ms", &args.publish_every_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut out = BufReader::new(load.stdout.take().ok_or("no stdout")?).lines();
        let tx = lines_tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let _ = tx.send((id, line));
            }
        });
        loads.push(load);
    }
    drop(lines_tx);

    // Sample the server at every window's end while the loads report theirs.
    let started = Instant::now();
    let windows_n = args.seconds / args.window.max(1);
    let mut samples: Vec<Sample> = Vec::new();
    let mut windows: Vec<LoadWindow> = Vec::new();
    let mut seen: Vec<usize> = Vec::new();
    let mut leaving = LoadWindow::default();
    let mut tick = tokio::time::interval_at(
        started + Duration::from_secs(args.window),
        Duration::from_secs(args.window),
    );
    while (samples.len() as u64) < windows_n {
        tokio::select! {
            _ = tick.tick() => {
                let at = started.elapsed().as_secs_f64();
                let sample = sample::read(server_pid, at).ok_or("the server died")?;
                eprintln!(
                    "soak: {:>4.0} s  RSS {:.1} MiB  open files {}  CPU {:.1} s",
                    at, sample.rss as f64 / 1048576.0, sample.open_files, sample.cpu_s
                );
                samples.push(sample);
            }
            line = lines.recv() => {
                let Some((_, line)) = line else { return Err("the loads exited".into()) };
                take_line(&line, &mut windows, &mut seen, &mut leaving)?;
            }
        }
    }

    // The last window of every load (they started a moment after the clock).
    let last = usize::try_from(windows_n.saturating_sub(1)).unwrap_or(usize::MAX);
    let waiting = Instant::now() + Duration::from_secs(args.window + 5);
    while seen.get(last).copied().unwrap_or(0) < loads_n {
        let Ok(line) = tokio::time::timeout_at(waiting, lines.recv()).await else {
            break;
        };
        let Some((_, line)) = line else {
            return Err("the loads exited".into());
        };
        take_line(&line, &mut windows, &mut seen, &mut leaving)?;
    }

    // Stop the loads; every client leaves.
    for load in &mut loads {
        if let Some(mut stdin) = load.stdin.take() {
            let _ = stdin.write_all(b"stop\n").await;
        }
    }
    while let Some((_, line)) = lines.recv().await {
        take_line(&line, &mut windows, &mut seen, &mut leaving)?;
    }
    for load in &mut loads {
        let status = load.wait().await?;
        if !status.success() {
            return Err(format!("a load process failed: {status}").into());
        }
    }
    // Windows past the run's length were cut short by the stop: they count
    // with the leaving.
    let keep = usize::try_from(windows_n).unwrap_or(usize::MAX);
    for late in windows.split_off(keep.min(windows.len())) {
        let mut counts = late;
        counts.latency_us.clear();
        leaving.merge(&counts);
    }

    // Until the server holds no more than before (at most 30 s).
    let waited = Instant::now();
    let mut after =
        sample::read(server_pid, started.elapsed().as_secs_f64()).ok_or("the server died")?;
    while after.open_files > before.open_files && waited.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after =
            sample::read(server_pid, started.elapsed().as_secs_f64()).ok_or("the server died")?;
    }
    server.kill().await?;

    let run = Run {
        settings: Settings {
            command: std::env::args()
                .enumerate()
                .map(|(i, a)| if i == 0 { "soak".to_owned() } else { a })
                .collect::<Vec<_>>()
                .join(" "),
            machine: machine(),
            seconds: args.seconds,
            conns: args.conns,
            loads: loads_n,
            rooms: args.rooms,
            life_ms: (args.min_life_ms, args.max_life_ms),
            every_ms: (args.request_every_ms, args.publish_every_ms),
            window_s: args.window,
            row_s: args.row,
            warmup_s: args.warmup,
        },
        windows,
        samples,
        before,
        after,
        leaving,
    };
    let chart_link = args.chart.as_ref().and_then(|chart| {
        let file = chart.file_name()?.to_string_lossy().into_owned();
        Some(file)
    });
    if let Some(chart) = &args.chart {
        sente_lite_soak::chart::draw(&run, chart).map_err(|e| e.to_string())?;
    }
    let report = run.markdown(chart_link.as_deref());
    println!("{report}");
    if let Some(path) = &args.write {
        std::fs::write(path, &report)?;
    }
    if args.check {
        let failed: Vec<String> = run
            .verdicts()
            .into_iter()
            .filter(|v| !v.holds && !v.timed)
            .map(|v| format!("{}: {}", v.what, v.figures))
            .collect();
        if !failed.is_empty() {
            return Err(format!("the soak fails: {}", failed.join("; ")).into());
        }
    }
    Ok(())
}

/// Adds a load's line to its window (merged over the loads, by index).
fn take_line(
    line: &str,
    windows: &mut Vec<LoadWindow>,
    seen: &mut Vec<usize>,
    leaving: &mut LoadWindow,
) -> Result<(), BoxError> {
    if let Some(json) = line.strip_prefix(WINDOW) {
        let window: LoadWindow = serde_json::from_str(json)?;
        let index = usize::try_from(window.index)?;
        if windows.len() <= index {
            windows.resize_with(index + 1, LoadWindow::default);
            seen.resize(index + 1, 0);
        }
        windows[index].index = window.index;
        windows[index].merge(&window);
        seen[index] += 1;
    } else if let Some(json) = line.strip_prefix(DONE) {
        let mut window: LoadWindow = serde_json::from_str(json)?;
        window.latency_us.clear();
        leaving.merge(&window);
    }
    Ok(())
}
