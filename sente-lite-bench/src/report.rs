//! The figures of a run and their Markdown: tables with ratios to the floor
//! (the plain tokio-tungstenite server), the targets with hit or miss, and the section of `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

mod cluster;

use crate::latency::LatencySummary;
use crate::machine::{Machine, Pinning};
use crate::run::{Layout, Plan, System};
use crate::wire::BoxError;

/// The system every ratio (`×`) is to.
pub(crate) const BASELINE: System = System::Floor;

/// Marks the start of this tool's section in `BENCHMARKS.md`.
const BEGIN: &str = "<!-- sente-lite-bench:begin -->";
/// Marks its end. Text outside the two marks is never touched.
const END: &str = "<!-- sente-lite-bench:end -->";

/// Scenario 1, closed loop: one system, client count and payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClosedCell {
    pub(crate) system: System,
    pub(crate) clients: usize,
    pub(crate) payload: usize,
    pub(crate) requests_per_s: f64,
    pub(crate) server_cpu_us_per_request: f64,
    /// Server CPU seconds per second of the measurement (1.0 = one core busy).
    pub(crate) server_cpu_share: f64,
    /// The same for the load generator.
    pub(crate) load_cpu_share: f64,
    /// The same for every other process on the machine (other work sharing it).
    #[serde(default)]
    pub(crate) others_cpu_share: f64,
    pub(crate) errors: u64,
    pub(crate) latency: LatencySummary,
    /// Server CPU µs per request of each round, in the order measured (the
    /// fields above are the medians, or the median round's).
    #[serde(default)]
    pub(crate) cpu_rounds: Vec<f64>,
    /// Requests/s of each round, in the order measured.
    #[serde(default)]
    pub(crate) rps_rounds: Vec<f64>,
    /// p99 latency of each round, µs, in the order measured (none in
    /// results saved before it was kept).
    #[serde(default)]
    pub(crate) p99_rounds: Vec<f64>,
}

impl ClosedCell {
    /// Server CPU per request against `base`'s in the same cell: the median
    /// of the rounds' ratios, each to `base` in the same round, when both
    /// were measured in the same rounds; else the ratio of the two.
    pub(crate) fn cpu_ratio(&self, base: &ClosedCell) -> f64 {
        paired_ratio(&self.cpu_rounds, &base.cpu_rounds).unwrap_or_else(|| {
            self.server_cpu_us_per_request / base.server_cpu_us_per_request.max(1e-9)
        })
    }

    /// p99 at saturation against `base`'s in the same cell: the median of
    /// the rounds' ratios, each to `base` in the same round, when both were
    /// measured in the same rounds; else the ratio of the median rounds'.
    pub(crate) fn p99_ratio(&self, base: &ClosedCell) -> Option<f64> {
        paired_ratio(&self.p99_rounds, &base.p99_rounds)
            .or_else(|| Some(self.latency.at(99.0)? / base.latency.at(99.0)?.max(1e-9)))
    }
}

/// Scenario 1, open loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OpenCell {
    pub(crate) system: System,
    pub(crate) clients: usize,
    pub(crate) payload: usize,
    pub(crate) offered_per_s: f64,
    /// This system's closed-loop requests/s in the same cell.
    pub(crate) own_saturation_per_s: f64,
    pub(crate) completed: u64,
    pub(crate) errors: u64,
    pub(crate) lost: u64,
    /// The median round's latencies (by p99), when measured in rounds.
    pub(crate) latency: LatencySummary,
    /// p99 of each round, µs, in the order measured.
    #[serde(default)]
    pub(crate) p99_rounds: Vec<f64>,
    /// Server CPU time per answered request of each round at the offered
    /// rate, µs, in the order measured (none in results saved before it was
    /// measured).
    #[serde(default)]
    pub(crate) cpu_rounds: Vec<f64>,
    /// The load generator's CPU time over the measured part of each round,
    /// in cores (1.0 = one core all the time), in the order measured.
    #[serde(default)]
    pub(crate) load_cpu_rounds: Vec<f64>,
}

impl OpenCell {
    /// p99 against `base`'s in the same cell: the median of the rounds'
    /// ratios, each to `base` in the same round, when both were measured in
    /// the same rounds; else the ratio of the two.
    pub(crate) fn p99_ratio(&self, base: &OpenCell) -> Option<f64> {
        paired_ratio(&self.p99_rounds, &base.p99_rounds)
            .or_else(|| Some(self.latency.at(99.0)? / base.latency.at(99.0)?.max(1e-9)))
    }

    /// Server CPU time per answered request at the offered rate, µs: the
    /// median of the rounds; `None` when it was not measured.
    pub(crate) fn server_cpu_us_per_request(&self) -> Option<f64> {
        (!self.cpu_rounds.is_empty()).then(|| median(&self.cpu_rounds))
    }

    /// Server CPU per request at the offered rate against `base`'s in the
    /// same cell: the median of the rounds' paired ratios, else the ratio of
    /// the medians; `None` when either was not measured.
    pub(crate) fn cpu_ratio(&self, base: &OpenCell) -> Option<f64> {
        paired_ratio(&self.cpu_rounds, &base.cpu_rounds).or_else(|| {
            Some(self.server_cpu_us_per_request()? / base.server_cpu_us_per_request()?.max(1e-9))
        })
    }
}

/// The median of the rounds' ratios, each round's figure to `base`'s of the
/// same round; `None` unless both have the same rounds, more than one.
fn paired_ratio(rounds: &[f64], base: &[f64]) -> Option<f64> {
    if rounds.len() < 2 || rounds.len() != base.len() {
        return None;
    }
    let ratios: Vec<f64> = rounds
        .iter()
        .zip(base)
        .map(|(s, b)| s / b.max(1e-9))
        .collect();
    Some(median(&ratios))
}

/// Scenario 2.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FanoutCell {
    pub(crate) system: System,
    pub(crate) subscribers: usize,
    pub(crate) processes: usize,
    /// Per single message: ms from publishing until the last subscriber has it.
    pub(crate) all_have_it_ms: Vec<f64>,
    pub(crate) messages_per_s: f64,
    pub(crate) deliveries_per_s: f64,
    pub(crate) server_cpu_us_per_delivery: f64,
    pub(crate) server_cpu_share: f64,
    pub(crate) lost_connections: u64,
}

/// Scenario 3.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdleCell {
    pub(crate) system: System,
    pub(crate) connections: usize,
    pub(crate) open: u64,
    pub(crate) processes: usize,
    pub(crate) rss_before: u64,
    pub(crate) rss_after: u64,
    /// The second reading, `Plan::idle_later_ms` after the first.
    #[serde(default)]
    pub(crate) rss_later: Option<u64>,
}

impl IdleCell {
    /// Server memory per connection, KiB.
    pub(crate) fn per_connection_kib(&self) -> f64 {
        self.kib_over_before(self.rss_after)
    }

    /// Server memory per connection at the second reading, KiB.
    pub(crate) fn later_per_connection_kib(&self) -> Option<f64> {
        self.rss_later.map(|rss| self.kib_over_before(rss))
    }

    /// The larger of the two readings per connection, KiB.
    pub(crate) fn worst_per_connection_kib(&self) -> f64 {
        self.later_per_connection_kib()
            .map_or(self.per_connection_kib(), |later| {
                later.max(self.per_connection_kib())
            })
    }

    fn kib_over_before(&self, rss: u64) -> f64 {
        rss.saturating_sub(self.rss_before) as f64 / 1024.0 / self.connections.max(1) as f64
    }
}

/// Scenario 4: one kill and restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StormRound {
    /// From the kill until the new server listens.
    pub(crate) restart_s: f64,
    /// From listening until the first client is back.
    pub(crate) first_back_s: f64,
    /// From listening until the last client is back and subscribed.
    pub(crate) all_back_s: f64,
    pub(crate) back: u64,
    pub(crate) open: u64,
    /// CPU time of the restarted server until the last client was back.
    #[serde(default)]
    pub(crate) server_cpu_s: f64,
}

/// Scenario 4.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StormCell {
    pub(crate) system: System,
    pub(crate) clients: usize,
    pub(crate) processes: usize,
    pub(crate) rounds: Vec<StormRound>,
}

/// Scenario 5.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplayCell {
    pub(crate) system: System,
    pub(crate) clients: usize,
    /// Publications each client missed.
    pub(crate) missed: u64,
    /// The history's size on the server.
    pub(crate) history: usize,
    pub(crate) processes: usize,
    /// From `go` until the last client had every missed publication.
    pub(crate) all_caught_up_s: f64,
    /// Per client, from `go` until it had every missed publication.
    pub(crate) each_p50_ms: f64,
    /// See `each_p50_ms`.
    pub(crate) each_p99_ms: f64,
    /// See `each_p50_ms`.
    pub(crate) each_max_ms: f64,
    /// Server CPU time from `go` until every client had everything.
    pub(crate) server_cpu_s: f64,
    /// Publications delivered by the replay (clients × missed) per second.
    pub(crate) publications_per_s: f64,
}

/// Scenario 6: one layout of histories filled in a process of its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HistoryMemoryCell {
    /// Channels the publications were spread over.
    pub(crate) channels: usize,
    /// Publications kept in all.
    pub(crate) publications: usize,
    /// Each channel's `history_size`.
    pub(crate) per_channel: usize,
    /// Mean bytes of a publication's payload, as JSON.
    pub(crate) payload_bytes: f64,
    /// Mean bytes of a kept `sl/pub` frame in JSON.
    pub(crate) json_frame_bytes: f64,
    /// The same in postcard.
    pub(crate) postcard_frame_bytes: f64,
    /// `MemoryEngine::history_bytes()` after the fill.
    pub(crate) history_bytes: usize,
    /// `MemoryEngine::channel_count()` after the fill.
    pub(crate) channel_count: usize,
    /// The process's resident memory before the first publication.
    pub(crate) rss_before: u64,
    /// And after the last.
    pub(crate) rss_after: u64,
}

impl HistoryMemoryCell {
    /// Resident memory grown per publication kept, bytes.
    pub(crate) fn rss_per_publication(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.publications.max(1) as f64
    }

    /// `history_bytes` per publication kept.
    pub(crate) fn history_bytes_per_publication(&self) -> f64 {
        self.history_bytes as f64 / self.publications.max(1) as f64
    }
}

/// Scenarios 7 and 8: a paced publisher on one server, subscribers measuring
/// every delivery's latency on another (or the same).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PacedCell {
    pub(crate) layout: Layout,
    pub(crate) subscribers: usize,
    /// Load-generator processes the subscribers are spread over.
    pub(crate) processes: usize,
    /// Publications a second, offered.
    pub(crate) rate: f64,
    /// Publications of the measured part.
    pub(crate) published: u64,
    /// Deliveries of those that arrived.
    pub(crate) delivered: u64,
    /// Seconds of the measured part.
    pub(crate) elapsed_s: f64,
    /// Every delivery's latency from the time its publication was due.
    pub(crate) latency: LatencySummary,
    /// CPU seconds of each server during the measured part.
    pub(crate) server_cpu_s: Vec<f64>,
    /// Redis's, when there is one.
    pub(crate) redis_cpu_s: Option<f64>,
    pub(crate) lost_connections: u64,
    /// Cores the publisher and the subscribers' processes kept busy, summed.
    #[serde(default)]
    pub(crate) load_cpu_share: f64,
}

impl PacedCell {
    /// The share of the deliveries due that arrived.
    pub(crate) fn delivered_share(&self) -> f64 {
        let due = self.published * self.subscribers as u64;
        self.delivered as f64 / due.max(1) as f64
    }

    /// The servers' CPU time per delivery, ns.
    fn server_ns_per_delivery(&self) -> f64 {
        self.server_cpu_s.iter().sum::<f64>() * 1e9 / self.delivered.max(1) as f64
    }
}

/// One server of scenario 9.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerMemory {
    pub(crate) rss_before: u64,
    pub(crate) rss_after: u64,
    /// Files it opened meanwhile (its connections).
    pub(crate) connections: usize,
}

/// Scenario 9: idle connections across several servers on one Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterIdleCell {
    /// Connections asked for.
    pub(crate) connections: usize,
    /// Connections the load generators held at the end.
    pub(crate) open: u64,
    pub(crate) processes: usize,
    /// Each connection subscribed to a channel of its own.
    pub(crate) channels: bool,
    /// Seconds until every connection was open (and subscribed).
    pub(crate) open_s: f64,
    pub(crate) servers: Vec<ServerMemory>,
    pub(crate) redis_rss_before: u64,
    pub(crate) redis_rss_after: u64,
}

impl ClusterIdleCell {
    /// The servers' memory growth per connection held, KiB.
    pub(crate) fn per_connection_kib(&self) -> f64 {
        let grown: u64 = self
            .servers
            .iter()
            .map(|s| s.rss_after.saturating_sub(s.rss_before))
            .sum();
        grown as f64 / 1024.0 / self.open.max(1) as f64
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) machine: Machine,
    pub(crate) server_cpus: Option<String>,
    pub(crate) load_cpus: Option<String>,
    pub(crate) unpinned_because: Option<String>,
    pub(crate) command: String,
    pub(crate) plan: Plan,
    pub(crate) closed: Vec<ClosedCell>,
    pub(crate) open: Vec<OpenCell>,
    pub(crate) fanout: Vec<FanoutCell>,
    pub(crate) idle: Vec<IdleCell>,
    pub(crate) storm: Vec<StormCell>,
    #[serde(default)]
    pub(crate) replay: Vec<ReplayCell>,
    #[serde(default)]
    pub(crate) history_memory: Vec<HistoryMemoryCell>,
    #[serde(default)]
    pub(crate) cross_node: Vec<PacedCell>,
    #[serde(default)]
    pub(crate) redis_throughput: Vec<PacedCell>,
    #[serde(default)]
    pub(crate) cluster_idle: Vec<ClusterIdleCell>,
    pub(crate) notes: Vec<String>,
}

/// The median of `values` (0 when empty).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The value below which `p` percent of `values` lie (nearest rank; 0 when empty).
pub(crate) fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .copied()
        .unwrap_or(0.0)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

/// `12,345`.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in µs, or ms from 10 ms up.
fn duration_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.0} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// The head of a request/reply table: the cell's columns, `first` (more
/// columns, or nothing), then a column a system.
fn table_header(out: &mut String, systems: &[System], first: &str) {
    let _ = write!(out, "| clients | payload |{first}");
    for s in systems {
        let _ = write!(out, " {} |", s.label());
    }
    let _ = write!(
        out,
        "\n|---|---|{}",
        if first.is_empty() { "" } else { "---|" }
    );
    for _ in systems {
        let _ = write!(out, "---|");
    }
    out.push('\n');
}

/// Every round's figure, shown by `show`, with its ratio to `base`'s of the
/// same round: `12.0 (1.10×), 9.5 (0.95×)`.
fn each_round(rounds: &[f64], base: Option<&[f64]>, show: impl Fn(f64) -> String) -> String {
    let each: Vec<String> = rounds
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let floor = base.and_then(|b| b.get(i).copied());
            format!("{} ({})", show(*value), ratio(*value, floor))
        })
        .collect();
    each.join(", ")
}

fn ratio(value: f64, base: Option<f64>) -> String {
    match base {
        Some(base) if base > 0.0 && value.is_finite() => format!("{:.2}×", value / base),
        _ => "–".to_owned(),
    }
}

fn payload_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// Hit or miss against a target, with the margin.
struct Verdict {
    target: String,
    measured: String,
    outcome: String,
}

impl Report {
    /// An empty report of a run about to start.
    pub(crate) fn new(machine: Machine, pinning: &Pinning, command: String, plan: Plan) -> Self {
        Self {
            machine,
            server_cpus: pinning.server.clone(),
            load_cpus: pinning.load.clone(),
            unpinned_because: pinning.unpinned_because.clone(),
            command,
            plan,
            closed: Vec::new(),
            open: Vec::new(),
            fanout: Vec::new(),
            idle: Vec::new(),
            storm: Vec::new(),
            replay: Vec::new(),
            history_memory: Vec::new(),
            cross_node: Vec::new(),
            redis_throughput: Vec::new(),
            cluster_idle: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Records something the reader must know (a failure, a cap).
    pub(crate) fn note(&mut self, note: String) {
        eprintln!("sente-lite-bench: note: {note}");
        self.notes.push(note);
    }

    fn systems_in<'a>(&self, cells: impl Iterator<Item = &'a System>) -> Vec<System> {
        let present: Vec<System> = cells.copied().collect();
        System::ALL
            .into_iter()
            .filter(|s| present.contains(s))
            .collect()
    }

    fn closed_cell(&self, system: System, clients: usize, payload: usize) -> Option<&ClosedCell> {
        self.closed
            .iter()
            .find(|c| c.system == system && c.clients == clients && c.payload == payload)
    }

    /// One table row per closed-loop cell: what `figure` makes of each
    /// system's cell (given the floor's in the same cell), `–` where a system
    /// has none.
    fn closed_rows(
        &self,
        out: &mut String,
        systems: &[System],
        figure: impl Fn(&ClosedCell, Option<&ClosedCell>) -> String,
    ) {
        for (clients, payload) in self.cells() {
            let base = self.closed_cell(BASELINE, clients, payload);
            let _ = write!(out, "| {clients} | {} |", payload_label(payload));
            for s in systems {
                match self.closed_cell(*s, clients, payload) {
                    Some(c) => {
                        let _ = write!(out, " {} |", figure(c, base));
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
    }

    /// One row per cell of the open loop: `figure` of each system's cell
    /// (with the floor's), or `–` where it has none.
    fn open_rows(
        &self,
        out: &mut String,
        systems: &[System],
        figure: impl Fn(&OpenCell, Option<&OpenCell>) -> Option<String>,
    ) {
        for (clients, payload) in self.cells() {
            let base = self.open_cell(BASELINE, clients, payload);
            let _ = write!(out, "| {clients} | {} |", payload_label(payload));
            for s in systems {
                match self
                    .open_cell(*s, clients, payload)
                    .and_then(|c| figure(c, base))
                {
                    Some(shown) => {
                        let _ = write!(out, " {shown} |");
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
    }

    fn open_cell(&self, system: System, clients: usize, payload: usize) -> Option<&OpenCell> {
        self.open
            .iter()
            .find(|c| c.system == system && c.clients == clients && c.payload == payload)
    }

    fn cells(&self) -> Vec<(usize, usize)> {
        let mut cells: Vec<(usize, usize)> = Vec::new();
        for cell in &self.closed {
            if !cells.contains(&(cell.clients, cell.payload)) {
                cells.push((cell.clients, cell.payload));
            }
        }
        cells
    }

    fn setup(&self, out: &mut String, chart_link: Option<&str>) {
        let m = &self.machine;
        let _ = writeln!(
            out,
            "Measured on {} with {} cores (`nproc`), {:.0} GiB of memory, CPU model `{}`, \
             Linux {}, {} open files per process at most{}. Command:\n\n```sh\n{}\n```\n",
            m.date,
            m.cores,
            m.memory_gib,
            m.cpu_model,
            m.kernel,
            m.open_files,
            m.node
                .as_ref()
                .map(|v| format!(", Node.js {v}"))
                .unwrap_or_default(),
            self.command
        );
        match (&self.server_cpus, &self.load_cpus, &self.unpinned_because) {
            (Some(server), Some(load), _) => {
                let _ = writeln!(
                    out,
                    "Each server runs as its own process pinned with `taskset -c {server}` \
                     (a Tokio runtime with as many workers as it has CPUs there); the load \
                     generators and the run itself are separate processes pinned with \
                     `taskset -c {load}`. With one core a side, the load generator (which \
                     does as much WebSocket work per message as the server, plus masking) is \
                     usually the first to saturate: the closed-loop requests/s are therefore \
                     a floor for every system, and the server's CPU time per request (from \
                     `/proc/PID/stat`, utime + stime) is the fairer comparison of cost.\n"
                );
            }
            (_, _, why) => {
                let _ = writeln!(
                    out,
                    "Servers and load generators run unpinned ({}): they share every CPU, so \
                     the server's CPU time per request is the figure to compare.\n",
                    why.as_deref().unwrap_or("no pinning")
                );
            }
        }
        let _ = writeln!(
            out,
            "Servers: **floor** is plain tokio-tungstenite that reads a message and writes the \
             answer straight back (`send`: one frame, one flush), one task per connection, \
             4 KiB read and write buffers, nothing else: the least a tokio-tungstenite server \
             can do, and the baseline of every ratio. **engine-like** is tokio-tungstenite \
             with no framework built like sente-lite's connection engine (1024-message \
             outbound queue, batched flushes), a second reference. **sente-lite** serves a `bench/echo` request (reply = payload) and a \
             `bench/publish` event that broadcasts on a channel, with `ServerConfig::default()` \
             unchanged (no inbound rate limit: the library's default).\n"
        );
        let _ = writeln!(
            out,
            "\n**sente-lite json + history** and **sente-lite postcard + history** are the same \
             server with a history on the bench channel (`ChannelOptions {{ history_size: {}, \
             ..ChannelOptions::default() }}`: each publication is numbered, encoded in both \
             codecs and kept for recovery); they are measured in fan-out and recovery replay \
             only, since a history changes nothing for requests or idle connections.",
            crate::run::HISTORY_SIZE
        );
        if self.plan.systems.contains(&System::EchoExample) {
            let _ = writeln!(
                out,
                "\n**echo example** is the shipped `examples/echo.rs`, built by the same \
                 profile (`cargo build{} -p sente-lite-examples --example echo`) and run as it \
                 is, with `--addr` only: it answers `[\"echo/say\",{{\"text\":...}},id]` with the \
                 text, on the library's defaults. It is measured in request/reply only.",
                crate::run::profile_arg()
            );
        }
        let _ = writeln!(
            out,
            "\n**socketioxide** (Rust, on axum) and **socket.io 4 on Node.js** \
             (`sente-lite-bench/node`) serve the same echo (an event acknowledged with its \
             payload) and room broadcast, with their default settings (WebSocket transport only). \
             The load generator speaks each protocol over the same raw tokio-tungstenite \
             client: sente-lite frames as in `docs/PROTOCOL.md`, engine.io v4 / socket.io v5 \
             packets (`0`, `40`, `42`, `43`, `2`/`3`) for both socket.io servers. Every ratio \
             (`×`) is to the floor measured in the same run; for costs and latencies \
             lower is better.\n"
        );
        if let Some(link) = chart_link {
            let _ = writeln!(
                out,
                "![Latency percentiles per system, open loop]({link})\n"
            );
        }
    }

    fn reqrep(&self, out: &mut String) {
        if self.closed.is_empty() {
            return;
        }
        let systems = self.systems_in(self.closed.iter().map(|c| &c.system));
        let header = |out: &mut String, first: &str| table_header(out, &systems, first);
        let _ = writeln!(
            out,
            "### 1. Request/reply\n\n\
             **Throughput at saturation** (closed loop: every client keeps one request in \
             flight for {:.1} s after {:.1} s of warm-up), requests/s (× floor):\n",
            self.plan.duration_ms as f64 / 1000.0,
            self.plan.warmup_ms as f64 / 1000.0
        );
        header(out, "");
        self.closed_rows(out, &systems, |c, base| {
            let errors = if c.errors > 0 {
                format!(" ({} errors)", c.errors)
            } else {
                String::new()
            };
            format!(
                "{} ({}){errors}",
                grouped(c.requests_per_s),
                ratio(c.requests_per_s, base.map(|b| b.requests_per_s))
            )
        });
        let rounds = self.plan.rounds;
        if rounds > 1 {
            let _ = writeln!(
                out,
                "\n**Server CPU time per request**, µs, the median of {rounds} rounds (each \
                 round measures every cell, and in each cell every system once, in an order \
                 turned by one each round; a round ends before the next begins), \
                 and × floor as the median of the rounds' ratios, each to the floor in the \
                 same round:\n"
            );
        } else {
            let _ = writeln!(out, "\n**Server CPU time per request**, µs (× floor):\n");
        }
        header(out, "");
        self.closed_rows(out, &systems, |c, base| {
            let versus = base.map_or_else(|| "–".to_owned(), |b| format!("{:.2}×", c.cpu_ratio(b)));
            format!("{:.1} ({versus})", c.server_cpu_us_per_request)
        });
        if rounds > 1 {
            let _ = writeln!(
                out,
                "\n**Each round**, server CPU µs per request (× the floor in the same round), \
                 in the order measured:\n"
            );
            header(out, "");
            self.closed_rows(out, &systems, |c, base| {
                each_round(&c.cpu_rounds, base.map(|b| &b.cpu_rounds[..]), |us| {
                    format!("{us:.1}")
                })
            });
        }
        let _ = writeln!(
            out,
            "\n**Who was busy** during each closed-loop measurement, in cores (1.00 = one \
             core all the time): server / load generator / every other process on the \
             machine. A side near its CPU count is the bottleneck; other processes' share \
             is work that shared the machine with the run:\n"
        );
        header(out, "");
        self.closed_rows(out, &systems, |c, _| {
            format!(
                "{:.2} / {:.2} / {:.2}",
                c.server_cpu_share, c.load_cpu_share, c.others_cpu_share
            )
        });
        self.closed_latency(out, &systems);
        if self.open.is_empty() {
            return;
        }
        let rounds_note = if rounds > 1 {
            format!(
                " Measured in {rounds} rounds like the closed loop (every system once a \
                 round, in a turned order): each cell shows the round of median p99, and the \
                 p99 × floor is the median of the rounds' ratios, each to the floor in the \
                 same round."
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\n**Latency at a fixed offered rate** (open loop: requests are sent on a clock \
             at {:.0}% of sente-lite json's saturation in the same cell, the same rate for \
             every system, and each latency counts from the request's scheduled send time, \
             so a stall is not hidden by the requests it delays; recorded with `hdrhistogram`). \
             p50 / p99 / p99.9, and the p99 × floor. A system whose own saturation is below \
             the offered rate is not measured (its latencies would only grow with the length \
             of the run, and the system measured after it was seen to show a tail ten times \
             its own; the notes name it), and in results saved before that is marked ⚠; \
             lost requests (unanswered 2 s after the last send, \
             counted over every round) count in the tail at their age then.{rounds_note}\n",
            self.plan.open_fraction * 100.0
        );
        header(out, " offered req/s |");
        for (clients, payload) in self.cells() {
            let base = self.open_cell(BASELINE, clients, payload);
            let offered = systems
                .iter()
                .find_map(|s| self.open_cell(*s, clients, payload))
                .map_or(0.0, |c| c.offered_per_s);
            let _ = write!(
                out,
                "| {clients} | {} | {} |",
                payload_label(payload),
                grouped(offered)
            );
            for s in &systems {
                match self.open_cell(*s, clients, payload) {
                    Some(c) => {
                        let p = |q| c.latency.at(q).map_or("–".to_owned(), duration_us);
                        let warn = if c.own_saturation_per_s > 0.0
                            && c.offered_per_s > c.own_saturation_per_s
                        {
                            " ⚠"
                        } else {
                            ""
                        };
                        let lost = if c.lost + c.errors > 0 {
                            format!(", {} lost/errors", c.lost + c.errors)
                        } else {
                            String::new()
                        };
                        let versus = base
                            .and_then(|b| c.p99_ratio(b))
                            .filter(|r| r.is_finite())
                            .map_or("–".to_owned(), |r| format!("{r:.2}×"));
                        let _ = write!(
                            out,
                            " {} / {} / {} ({versus}){warn}{lost} |",
                            p(50.0),
                            p(99.0),
                            p(99.9),
                        );
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
        if rounds > 1 {
            let _ = writeln!(
                out,
                "\n**Each round's p99** (× the floor in the same round), in the order measured:\n"
            );
            header(out, "");
            self.open_rows(out, &systems, |c, base| {
                Some(each_round(
                    &c.p99_rounds,
                    base.map(|b| &b.p99_rounds[..]),
                    duration_us,
                ))
            });
        }
        self.open_busy(out, &systems);
        self.open_cpu(out, &systems);
        out.push('\n');
    }

    /// Latency in the closed loop: every core busy, so the tail is the
    /// servers' order of work more than the machine's wake-ups.
    fn closed_latency(&self, out: &mut String, systems: &[System]) {
        if !self.closed.iter().any(|c| c.latency.at(99.0).is_some()) {
            return;
        }
        let rounds = self.plan.rounds;
        let how = if rounds > 1 {
            "of the round of median CPU, and the p99 × floor as the median of the rounds' \
             ratios, each to the floor in the same round"
        } else {
            "and the p99 × floor"
        };
        let _ = writeln!(
            out,
            "\n**Latency at saturation** (the closed loop above: each client sends its next \
             request when the last is answered, so a request waits behind the other clients' \
             and its latency is about clients ÷ requests/s; the tail says how evenly a server \
             takes turns between connections). p50 / p99 / p99.9 {how}:\n"
        );
        table_header(out, systems, "");
        self.closed_rows(out, systems, |c, base| {
            let p = |q| c.latency.at(q).map_or("–".to_owned(), duration_us);
            let versus = base
                .and_then(|b| c.p99_ratio(b))
                .filter(|r| r.is_finite())
                .map_or("–".to_owned(), |r| format!("{r:.2}×"));
            format!("{} / {} / {} ({versus})", p(50.0), p(99.0), p(99.9))
        });
        if rounds > 1 && self.closed.iter().any(|c| c.p99_rounds.len() > 1) {
            let _ = writeln!(
                out,
                "\n**Each round's p99 at saturation** (× the floor in the same round), in the \
                 order measured:\n"
            );
            table_header(out, systems, "");
            self.closed_rows(out, systems, |c, base| {
                each_round(&c.p99_rounds, base.map(|b| &b.p99_rounds[..]), duration_us)
            });
        }
    }

    /// Server CPU per request in the open loop: every system served the
    /// same requests at the same times, so its cost per request does not
    /// depend on how far it was from its own saturation.
    fn open_cpu(&self, out: &mut String, systems: &[System]) {
        if !self.open.iter().any(|c| !c.cpu_rounds.is_empty()) {
            return;
        }
        let rounds = self.plan.rounds;
        let how = if rounds > 1 {
            format!(
                "the median of {rounds} rounds, and × floor as the median of the rounds' \
                 ratios, each to the floor in the same round"
            )
        } else {
            "and × floor".to_owned()
        };
        let header = |out: &mut String, first: &str| table_header(out, systems, first);
        let _ = writeln!(
            out,
            "\n**Server CPU time per request at the offered rate**, µs, {how}. The closed \
             loop's figure depends on how busy each server was: the load generator sets \
             the pace there, and a server that finishes sooner sleeps and wakes more \
             often for the same requests. Here every system is sent the same requests \
             at the same times, so the figure is its cost at that load (over the warm-up \
             and the measured part, per request answered):\n"
        );
        header(out, "");
        self.open_rows(out, systems, |c, base| {
            let us = c.server_cpu_us_per_request()?;
            let versus = base
                .and_then(|b| c.cpu_ratio(b))
                .filter(|r| r.is_finite())
                .map_or("–".to_owned(), |r| format!("{r:.2}×"));
            Some(format!("{us:.1} ({versus})"))
        });
        if rounds > 1 {
            let _ = writeln!(
                out,
                "\n**Each round**, server CPU µs per request at the offered rate (× the \
                 floor in the same round), in the order measured:\n"
            );
            header(out, "");
            self.open_rows(out, systems, |c, base| {
                (!c.cpu_rounds.is_empty()).then(|| {
                    each_round(&c.cpu_rounds, base.map(|b| &b.cpu_rounds[..]), |us| {
                        format!("{us:.1}")
                    })
                })
            });
        }
    }

    /// Who was busy in the open loop: the server at the offered rate, and
    /// the load generator, whose own queueing is in every system's tail
    /// when it is near its core.
    fn open_busy(&self, out: &mut String, systems: &[System]) {
        if !self.open.iter().any(|c| !c.load_cpu_rounds.is_empty()) {
            return;
        }
        let _ = writeln!(
            out,
            "\n**Who was busy at the offered rate**, in cores (1.00 = one core all the \
             time), medians of the rounds: server (its CPU time per request × the offered \
             rate) / load generator (its CPU time over the measured part). The load \
             generator sends every request on a timer and does as much WebSocket work per \
             message as a server; near 1.00 it is late to send and to read, and its own \
             queueing is in every system's tail:\n"
        );
        table_header(out, systems, "");
        self.open_rows(out, systems, |c, _| {
            if c.load_cpu_rounds.is_empty() {
                return None;
            }
            let server = c.server_cpu_us_per_request().map_or("–".to_owned(), |us| {
                format!("{:.2}", us * c.offered_per_s / 1e6)
            });
            Some(format!("{server} / {:.2}", median(&c.load_cpu_rounds)))
        });
    }

    fn fanout(&self, out: &mut String) {
        if self.fanout.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### 2. Broadcast fan-out\n\n\
             All subscribers join one channel (room); the subscribers live in load-generator \
             processes of at most {} connections each, the publisher in the run's process. \
             *All have it*: {} single messages, each timed from the moment it is published \
             until the last subscriber has it (median / max). *Sustained*: {:.1} s of \
             publishing with at most {} messages on their way, deliveries/s = messages \
             that reached every subscriber × subscribers / s. Server CPU per delivery from \
             `/proc/PID/stat`.\n",
            self.plan.conns_per_process,
            self.plan.fanout_samples,
            self.plan.fanout_duration_ms as f64 / 1000.0,
            self.plan.fanout_window
        );
        let _ = writeln!(
            out,
            "| subscribers | system | all have it, median / max | × floor (median) | deliveries/s | × floor | server CPU per delivery | × floor |\n|---|---|---|---|---|---|---|---|"
        );
        let mut counts: Vec<usize> = self.fanout.iter().map(|c| c.subscribers).collect();
        counts.dedup();
        for subscribers in counts {
            let base = self
                .fanout
                .iter()
                .find(|c| c.system == BASELINE && c.subscribers == subscribers);
            for c in self.fanout.iter().filter(|c| c.subscribers == subscribers) {
                let lost = if c.lost_connections > 0 {
                    format!(" ({} connections lost)", c.lost_connections)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "| {} | {}{lost} | {:.1} / {:.1} ms | {} | {} | {} | {:.0} ns | {} |",
                    grouped(subscribers as f64),
                    c.system.label(),
                    median(&c.all_have_it_ms),
                    max(&c.all_have_it_ms),
                    ratio(
                        median(&c.all_have_it_ms),
                        base.map(|b| median(&b.all_have_it_ms))
                    ),
                    grouped(c.deliveries_per_s),
                    ratio(c.deliveries_per_s, base.map(|b| b.deliveries_per_s)),
                    c.server_cpu_us_per_delivery * 1000.0,
                    ratio(
                        c.server_cpu_us_per_delivery,
                        base.map(|b| b.server_cpu_us_per_delivery)
                    ),
                );
            }
        }
        out.push('\n');
        self.history_cost(out);
    }

    /// What a history adds to the server's CPU per delivery: each `+ history`
    /// system against the same codec without one, at each subscriber count.
    fn history_cost(&self, out: &mut String) {
        let pairs = [
            (System::SenteJson, System::SenteJsonHistory),
            (System::SentePostcard, System::SentePostcardHistory),
        ];
        let mut lines = Vec::new();
        for with in &self.fanout {
            let Some((without, _)) = pairs.iter().find(|(_, h)| *h == with.system) else {
                continue;
            };
            let Some(base) = self
                .fanout
                .iter()
                .find(|c| c.system == *without && c.subscribers == with.subscribers)
            else {
                continue;
            };
            lines.push(format!(
                "{} at {} subscribers: {:.0} ns with, {:.0} ns without ({})",
                without.label(),
                grouped(with.subscribers as f64),
                with.server_cpu_us_per_delivery * 1000.0,
                base.server_cpu_us_per_delivery * 1000.0,
                ratio(
                    with.server_cpu_us_per_delivery,
                    Some(base.server_cpu_us_per_delivery)
                )
            ));
        }
        if !lines.is_empty() {
            let _ = writeln!(
                out,
                "**History on vs off**, server CPU per delivery: {}.\n",
                lines.join("; ")
            );
        }
    }

    fn idle(&self, out: &mut String) {
        if self.idle.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### 3. Idle connections\n\n\
             The server's resident memory (`VmRSS` in `/proc/PID/status`) {:.1} s after it \
             started, {:.1} s after the last connection opened, and {:.1} s after that (*later*: \
             past every connection's first heartbeat, which the clients answer); the clients \
             come from several \
             load-generator processes bound to several `127.0.0.x` source addresses. One \
             process may hold at most {} open files, so one server cannot hold 50,000 \
             connections here: the largest count is what one server process can hold.\n",
            self.plan.idle_settle_ms as f64 / 1000.0,
            self.plan.idle_settle_ms as f64 / 1000.0,
            self.plan.idle_later_ms as f64 / 1000.0,
            grouped(self.machine.open_files as f64)
        );
        let _ = writeln!(
            out,
            "| connections | system | RSS before → after → later | per connection | × floor | later, per connection | × floor |\n|---|---|---|---|---|---|---|"
        );
        let mut counts: Vec<usize> = self.idle.iter().map(|c| c.connections).collect();
        counts.dedup();
        for connections in counts {
            let base = self
                .idle
                .iter()
                .find(|c| c.system == BASELINE && c.connections == connections)
                .map(IdleCell::per_connection_kib);
            let base_later = self
                .idle
                .iter()
                .find(|c| c.system == BASELINE && c.connections == connections)
                .and_then(IdleCell::later_per_connection_kib);
            let mib = |rss: u64| format!("{:.1}", rss as f64 / (1 << 20) as f64);
            for c in self.idle.iter().filter(|c| c.connections == connections) {
                let later = c.later_per_connection_kib();
                let _ = writeln!(
                    out,
                    "| {} | {} | {} → {} → {} MiB | {:.2} KiB | {} | {} | {} |",
                    grouped(connections as f64),
                    c.system.label(),
                    mib(c.rss_before),
                    mib(c.rss_after),
                    c.rss_later.map_or("–".into(), mib),
                    c.per_connection_kib(),
                    ratio(c.per_connection_kib(), base),
                    later.map_or("–".into(), |kib| format!("{kib:.2} KiB")),
                    later.map_or("–".into(), |kib| ratio(kib, base_later)),
                );
            }
        }
        out.push('\n');
    }

    fn storm(&self, out: &mut String) {
        if self.storm.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### 4. Reconnection storm\n\n\
             Clients with one subscription each, spread over load-generator processes of at \
             most {} clients; the server is killed with SIGKILL and started again on the same \
             port, {} times. sente-lite: native `sente_lite::Client`s with the default \
             `ReconnectPolicy` (250 ms doubling to 30 s, full jitter). floor and engine-like: \
             hand-written clients that follow the same policy (wait, connect, subscribe). Times from the \
             moment the new server listens until the first and the last client is open and \
             subscribed again (the restart itself, kill to listening, is shown apart).\n",
            self.plan.clients_per_process, self.plan.storm_rounds
        );
        let _ = writeln!(
            out,
            "| system | clients | restart | first back | all back (each round) | worst × floor | server CPU until all back (median) | × floor |\n|---|---|---|---|---|---|---|---|"
        );
        let worst = |c: &StormCell| c.rounds.iter().map(|r| r.all_back_s).fold(0.0, f64::max);
        let cpu =
            |c: &StormCell| median(&c.rounds.iter().map(|r| r.server_cpu_s).collect::<Vec<_>>());
        let base = self.storm.iter().find(|c| c.system == BASELINE).map(worst);
        let base_cpu = self.storm.iter().find(|c| c.system == BASELINE).map(cpu);
        for c in &self.storm {
            let rounds: Vec<String> = c
                .rounds
                .iter()
                .map(|r| {
                    if r.back as usize == c.clients {
                        format!("{:.2} s", r.all_back_s)
                    } else {
                        format!("{} of {} back", r.back, c.clients)
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                c.system.label(),
                grouped(c.clients as f64),
                c.rounds
                    .iter()
                    .map(|r| format!("{:.0} ms", r.restart_s * 1000.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                c.rounds
                    .iter()
                    .map(|r| format!("{:.0} ms", r.first_back_s * 1000.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                rounds.join(", "),
                ratio(worst(c), base),
                if cpu(c) > 0.0 {
                    format!("{:.2} s", cpu(c))
                } else {
                    "–".to_owned()
                },
                ratio(cpu(c), base_cpu)
            );
        }
        out.push('\n');
    }

    fn replay(&self, out: &mut String) {
        if self.replay.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### 5. Recovery replay\n\n\
             Clients in load-generator processes of at most {} connections subscribe to the \
             bench channel of a `+ history` server, keep the position of the subscribe reply \
             and disconnect; while they are away the server publishes the missed messages \
             ({} B of filler each; one `bench/publish-many` request). Then all of them \
             reconnect at once and resubscribe with `since` (`[\"sl/sub\", id, channel, \
             {{\"epoch\": …, \"offset\": …}}]`): each must receive exactly the missed \
             publications as `sl/pub`, in order, then `sl/ok` with `recovered: true`; \
             anything else fails the run. *All caught up*: from the moment the run says go \
             until the last client has everything; *per client*: from go until that client \
             has everything (connect, handshake, subscribe, replay). Server CPU over the same \
             span, from `/proc/PID/stat`; publications/s = clients × missed / all caught up.\n",
            self.plan.conns_per_process, self.plan.fanout_pad
        );
        let _ = writeln!(
            out,
            "| system | clients | missed each (history) | all caught up | per client p50 / p99 / max | server CPU | per replayed publication | publications/s |\n|---|---|---|---|---|---|---|---|"
        );
        for c in &self.replay {
            let replayed = (c.clients as f64 * c.missed as f64).max(1.0);
            let _ = writeln!(
                out,
                "| {} | {} | {} ({}) | {:.0} ms | {:.0} / {:.0} / {:.0} ms | {:.0} ms | {:.0} ns | {} |",
                c.system.label(),
                grouped(c.clients as f64),
                grouped(c.missed as f64),
                grouped(c.history as f64),
                c.all_caught_up_s * 1000.0,
                c.each_p50_ms,
                c.each_p99_ms,
                c.each_max_ms,
                c.server_cpu_s * 1000.0,
                c.server_cpu_s * 1e9 / replayed,
                grouped(c.publications_per_s)
            );
        }
        out.push('\n');
    }

    fn history_memory(&self, out: &mut String) {
        let Some(first) = self.history_memory.first() else {
            return;
        };
        let _ = writeln!(
            out,
            "### 6. Memory per stored publication\n\n\
             A process of its own (pinned like the servers) builds a sente-lite server with \
             the in-memory engine (`MemoryEngine`) and no connection, and publishes {} \
             messages (`bench/tick`, {:.0} B of JSON payload each) in turn on the channels of \
             a layout, each keeping its share (`history_size` = publications / channels; \
             `history_max_bytes` and the engine's `max_history_bytes` out of reach). *RSS*: \
             the process's `VmRSS` (`/proc/self/status`) before the first publication and \
             after the last, the growth divided by the publications. *Frames*: \
             `MemoryEngine::history_bytes()` per publication, the encoded `sl/pub` frames \
             the histories hold (every publication is kept in both codecs, JSON + \
             postcard). *Overhead*: RSS growth beyond the frames (the publication's \
             record, the history's slot, the allocator's rounding).\n",
            grouped(first.publications as f64),
            first.payload_bytes
        );
        let _ = writeln!(
            out,
            "| channels × kept each | payload (JSON) | frames: json + postcard | RSS growth | RSS per publication | frames per publication | overhead | RSS ÷ frames |\n|---|---|---|---|---|---|---|---|"
        );
        for c in &self.history_memory {
            let rss = c.rss_per_publication();
            let frames = c.history_bytes_per_publication();
            let _ = writeln!(
                out,
                "| {} × {} | {:.0} B | {:.0} + {:.0} B | {:.1} MiB | {:.0} B | {:.0} B | {:.0} B | {} |",
                grouped(c.channels as f64),
                grouped(c.per_channel as f64),
                c.payload_bytes,
                c.json_frame_bytes,
                c.postcard_frame_bytes,
                c.rss_after.saturating_sub(c.rss_before) as f64 / (1 << 20) as f64,
                rss,
                frames,
                rss - frames,
                ratio(rss, Some(frames))
            );
        }
        out.push('\n');
    }

    fn verdicts(&self) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        let sente = System::SenteJson;
        // Throughput: >= 80% of the floor and ahead of both peers, in every cell.
        let cells = self.cells();
        if !cells.is_empty() {
            let mut worst: Option<(f64, usize, usize)> = None;
            let mut behind_peers = Vec::new();
            for &(clients, payload) in &cells {
                let (Some(s), Some(b)) = (
                    self.closed_cell(sente, clients, payload),
                    self.closed_cell(BASELINE, clients, payload),
                ) else {
                    continue;
                };
                let r = s.requests_per_s / b.requests_per_s.max(1e-9);
                if worst.is_none_or(|(w, _, _)| r < w) {
                    worst = Some((r, clients, payload));
                }
                for peer in [System::Socketioxide, System::SocketIoNode] {
                    if let Some(p) = self.closed_cell(peer, clients, payload)
                        && p.requests_per_s >= s.requests_per_s
                    {
                        behind_peers.push(format!(
                            "{} at {clients} clients / {}",
                            peer.label(),
                            payload_label(payload)
                        ));
                    }
                }
            }
            if let Some((r, clients, payload)) = worst {
                let hit = r >= 0.8 && behind_peers.is_empty();
                verdicts.push(Verdict {
                    target: "request/reply throughput ≥ 80% of the floor and ahead of both peers"
                        .into(),
                    measured: format!(
                        "sente-lite json: worst cell {:.0}% of the floor ({clients} clients, {}){}",
                        r * 100.0,
                        payload_label(payload),
                        if behind_peers.is_empty() {
                            "; ahead of both peers in every cell".to_owned()
                        } else {
                            format!("; not ahead of {}", behind_peers.join(", "))
                        }
                    ),
                    outcome: if hit {
                        format!("hit (by {:.0} points)", (r - 0.8) * 100.0)
                    } else if r < 0.8 {
                        format!("**miss** by {:.0} points", (0.8 - r) * 100.0)
                    } else {
                        "**miss** (behind a peer)".into()
                    },
                });
            }
        }
        verdicts.extend(self.cost_verdicts());
        // p99 < 1 ms at half of saturation.
        let p99s: Vec<(f64, usize, usize)> = self
            .open
            .iter()
            .filter(|c| c.system == sente)
            .filter_map(|c| c.latency.at(99.0).map(|p| (p, c.clients, c.payload)))
            .collect();
        if let Some(&(p, clients, payload)) = p99s.iter().max_by(|a, b| a.0.total_cmp(&b.0)) {
            let under = p99s.iter().filter(|(p, _, _)| *p < 1000.0).count();
            verdicts.push(Verdict {
                target: format!(
                    "p99 < 1 ms at {:.0}% of saturation",
                    self.plan.open_fraction * 100.0
                ),
                measured: format!(
                    "sente-lite json: {under} of {} cells under 1 ms; worst p99 {} ({clients} clients, {})",
                    p99s.len(),
                    duration_us(p),
                    payload_label(payload)
                ),
                outcome: if p < 1000.0 {
                    format!("hit (by {})", duration_us(1000.0 - p))
                } else {
                    format!("**miss** by {}", duration_us(p - 1000.0))
                },
            });
        }
        // Broadcast to 10,000 within 50 ms.
        if let Some(c) = self
            .fanout
            .iter()
            .filter(|c| c.system == sente)
            .max_by_key(|c| c.subscribers)
        {
            let m = median(&c.all_have_it_ms);
            let worst = max(&c.all_have_it_ms);
            let server_ms = c.server_cpu_us_per_delivery * c.subscribers as f64 / 1000.0;
            let floor = self
                .fanout
                .iter()
                .find(|b| b.system == BASELINE && b.subscribers == c.subscribers)
                .map(|b| format!("; the floor: median {:.1} ms", median(&b.all_have_it_ms)))
                .unwrap_or_default();
            verdicts.push(Verdict {
                target: "broadcast to 10,000 subscribers within 50 ms".into(),
                measured: format!(
                    "{} subscribers: median {m:.1} ms, max {worst:.1} ms{floor}; the server's \
                     own CPU time per message to all of them (sustained phase): {server_ms:.1} ms",
                    grouped(c.subscribers as f64)
                ),
                outcome: if c.subscribers < 10_000 {
                    "not measured at 10,000".into()
                } else if worst <= 50.0 {
                    format!("hit (max, by {:.1} ms)", 50.0 - worst)
                } else if m <= 50.0 {
                    format!(
                        "hit at the median (by {:.1} ms); **miss** at the max by {:.1} ms",
                        50.0 - m,
                        worst - 50.0
                    )
                } else {
                    format!("**miss** by {:.1} ms (median)", m - 50.0)
                },
            });
        }
        // Idle <= 4 KiB per connection.
        if let Some(c) = self
            .idle
            .iter()
            .filter(|c| c.system == sente)
            .max_by_key(|c| c.connections)
        {
            // The larger of the two readings: after the connections opened,
            // and after their first heartbeat.
            let kib = c.worst_per_connection_kib();
            verdicts.push(Verdict {
                target: "idle ≤ 4 KiB per connection".into(),
                measured: format!(
                    "{kib:.2} KiB at {} connections (the larger reading)",
                    grouped(c.connections as f64)
                ),
                outcome: if kib <= 4.0 {
                    format!("hit (by {:.2} KiB)", 4.0 - kib)
                } else {
                    format!("**miss** by {:.2} KiB", kib - 4.0)
                },
            });
        }
        // Storm of 10,000 back within 5 s.
        if let Some(c) = self.storm.iter().find(|c| c.system == sente) {
            let all = c.rounds.iter().all(|r| r.back as usize == c.clients);
            let worst = c.rounds.iter().map(|r| r.all_back_s).fold(0.0, f64::max);
            let from_kill = c
                .rounds
                .iter()
                .map(|r| r.all_back_s + r.restart_s)
                .fold(0.0, f64::max);
            verdicts.push(Verdict {
                target: "storm of 10,000 back within 5 s".into(),
                measured: format!(
                    "{} clients: worst round {worst:.2} s after the restart ({from_kill:.2} s after the kill){}",
                    grouped(c.clients as f64),
                    if all { "" } else { "; not every client came back" }
                ),
                outcome: if c.clients < 10_000 {
                    "not measured at 10,000".into()
                } else if all && worst <= 5.0 {
                    format!("hit (by {:.2} s)", 5.0 - worst)
                } else if all {
                    format!("**miss** by {:.2} s", worst - 5.0)
                } else {
                    "**miss** (clients missing)".into()
                },
            });
        }
        verdicts.extend(self.cross_node_verdicts());
        verdicts
    }

    /// The cost targets, as ratios to the floor: server CPU per request ≤
    /// 1.15× in every cell for both encodings, and per broadcast delivery ≤
    /// 0.7× at every subscriber count.
    fn cost_verdicts(&self) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        for system in [System::SenteJson, System::SentePostcard] {
            let worst = self
                .cells()
                .into_iter()
                .filter_map(|(clients, payload)| {
                    let s = self.closed_cell(system, clients, payload)?;
                    let b = self.closed_cell(BASELINE, clients, payload)?;
                    Some((s.cpu_ratio(b), clients, payload))
                })
                .max_by(|a, b| a.0.total_cmp(&b.0));
            verdicts.extend(cpu_verdict(system, "", worst));
            // The same target at the open loop's offered rate, where every
            // system served the same requests at the same times.
            let worst = self
                .open
                .iter()
                .filter(|c| c.system == system)
                .filter_map(|c| {
                    let b = self.open_cell(BASELINE, c.clients, c.payload)?;
                    Some((c.cpu_ratio(b)?, c.clients, c.payload))
                })
                .filter(|(r, _, _)| r.is_finite())
                .max_by(|a, b| a.0.total_cmp(&b.0));
            verdicts.extend(cpu_verdict(system, " at the offered rate", worst));
            // The p99 at 100 clients was 1.26-1.32x the floor's when this
            // target was set, by a closed loop: no worse than that, there
            // and at the open loop's offered rate.
            let p99_verdict = |ratios: Vec<(Option<f64>, usize)>, how: &str| {
                let (r, payload) = ratios
                    .into_iter()
                    .filter_map(|(r, payload)| Some((r?, payload)))
                    .filter(|(r, _)| r.is_finite())
                    .max_by(|a, b| a.0.total_cmp(&b.0))?;
                Some(ratio_verdict(
                    format!(
                        "{}: p99 at 100 clients ≤ 1.32× the floor {how} (no regression)",
                        system.label()
                    ),
                    format!("worst {r:.2}× ({})", payload_label(payload)),
                    r,
                    1.32,
                ))
            };
            let closed = self
                .closed
                .iter()
                .filter(|c| c.system == system && c.clients == 100)
                .map(|c| {
                    let b = self.closed_cell(BASELINE, c.clients, c.payload);
                    (b.and_then(|b| c.p99_ratio(b)), c.payload)
                })
                .collect();
            verdicts.extend(p99_verdict(closed, "at saturation"));
            let open = self
                .open
                .iter()
                .filter(|c| c.system == system && c.clients == 100)
                .map(|c| {
                    let b = self.open_cell(BASELINE, c.clients, c.payload);
                    (b.and_then(|b| c.p99_ratio(b)), c.payload)
                })
                .collect();
            verdicts.extend(p99_verdict(open, "at the offered rate"));
            let worst = self
                .fanout
                .iter()
                .filter(|c| c.system == system)
                .filter_map(|c| {
                    let b = self
                        .fanout
                        .iter()
                        .find(|b| b.system == BASELINE && b.subscribers == c.subscribers)?;
                    let r = c.server_cpu_us_per_delivery / b.server_cpu_us_per_delivery.max(1e-9);
                    Some((r, c.subscribers))
                })
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((r, subscribers)) = worst {
                verdicts.push(ratio_verdict(
                    format!(
                        "{}: server CPU per broadcast delivery ≤ 0.7× the floor",
                        system.label()
                    ),
                    format!(
                        "worst {r:.2}× ({} subscribers)",
                        grouped(subscribers as f64)
                    ),
                    r,
                    0.7,
                ));
            }
        }
        verdicts
    }

    /// The Markdown section: setup, targets, one table per scenario, notes.
    pub(crate) fn markdown(&self, chart_link: Option<&str>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## Load benchmarks: sente-lite against plain tokio-tungstenite and socket.io\n\n\
             Made by `sente-lite-bench` (its own crate). To rebuild and rerun everything and \
             write this section and its chart again (about 40 minutes on two cores):\n\n\
             ```sh\n\
             (cd sente-lite-bench/node && npm ci)   # socket.io on Node.js; left out if missing\n\
             cargo build --profile release-lto -p sente-lite-examples --example echo   # the shipped example; left out if missing\n\
             cargo run --profile release-lto -p sente-lite-bench -- run --write BENCHMARKS.md --chart docs/bench-latency.svg\n\
             ```\n\n\
             The `release-lto` profile (the workspace's `Cargo.toml`: release with \
             `lto = \"fat\"` and `codegen-units = 1`) builds every Rust server measured here \
             alike, since they are one binary (the echo example is built by the same \
             profile); the command of each run below says which \
             profile built it. `--quick` runs every scenario with tiny counts in a few seconds (a smoke test, \
             also run by `cargo test -p sente-lite-bench`); `--only \
             reqrep,fanout,idle,storm,replay,history-memory,cross-node,redis-throughput,cluster-idle` \
             and `--systems floor,sente-json,...` narrow a run (the last three need \
             `redis-server`, and measure sente-lite alone); `--results FILE` saves the raw \
             figures and `render --results FILE ...` writes the tables again. On a machine \
             shared with other work, `--nice -10` gives the measured processes the CPUs first \
             and `--quiet-wait SECS` waits (bounded) for the machine to be idle before each \
             measurement; what other processes used anyway is shown with the figures.\n"
        );
        if self.plan.quick {
            let _ = writeln!(
                out,
                "**This is a quick (smoke) run: its figures are too small to mean anything.**\n"
            );
        }
        self.setup(&mut out, chart_link);
        let verdicts = self.verdicts();
        if !verdicts.is_empty() {
            let _ = writeln!(
                out,
                "### Targets\n\n| target | measured | verdict |\n|---|---|---|"
            );
            for v in verdicts {
                let _ = writeln!(out, "| {} | {} | {} |", v.target, v.measured, v.outcome);
            }
            out.push('\n');
        }
        self.reqrep(&mut out);
        self.fanout(&mut out);
        self.idle(&mut out);
        self.storm(&mut out);
        self.replay(&mut out);
        self.history_memory(&mut out);
        self.cross_node(&mut out);
        self.redis_throughput(&mut out);
        self.cluster_idle(&mut out);
        if !self.notes.is_empty() {
            let _ = writeln!(out, "### Notes of this run\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
            out.push('\n');
        }
        out
    }

    /// Prints the tables, and writes the report section and the chart when asked.
    pub(crate) fn render_outputs(
        &self,
        write: Option<&Path>,
        chart: Option<&Path>,
    ) -> Result<(), BoxError> {
        if let Some(chart) = chart {
            crate::chart::latency_chart(self, chart)?;
        }
        let link = chart.map(|chart| relative_link(write, chart));
        let markdown = self.markdown(link.as_deref());
        println!("{markdown}");
        if let Some(path) = write {
            write_section(path, &markdown)?;
        }
        Ok(())
    }
}

/// The chart's path as a link from the report's folder.
fn relative_link(report: Option<&Path>, chart: &Path) -> String {
    let folder = report
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty());
    let relative = match folder {
        Some(folder) => chart.strip_prefix(folder).unwrap_or(chart),
        None => chart,
    };
    relative.to_string_lossy().replace('\\', "/")
}

/// Replaces this tool's section of the Markdown file at `path` (between the
/// marks), or appends it; everything else in the file stays as it is.
pub(crate) fn write_section(path: &Path, section: &str) -> Result<(), BoxError> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err.into()),
    };
    let block = format!(
        "{BEGIN}\n<!-- Written by `sente-lite-bench run --write`: edits between these marks are replaced. -->\n\n{}\n{END}\n",
        section.trim_end()
    );
    let updated = match (existing.find(BEGIN), existing.find(END)) {
        (Some(start), Some(end)) if end > start => format!(
            "{}{block}{}",
            &existing[..start],
            existing[end + END.len()..].trim_start_matches('\n')
        ),
        _ if existing.trim().is_empty() => format!("# Benchmarks\n\n{block}"),
        _ => format!("{}\n\n{block}", existing.trim_end()),
    };
    std::fs::write(path, updated)?;
    Ok(())
}

/// The CPU-per-request target (≤ 1.15× the floor in every cell) for
/// `system`, measured `how`, from its worst cell: ratio, clients, payload.
fn cpu_verdict(system: System, how: &str, worst: Option<(f64, usize, usize)>) -> Option<Verdict> {
    let (r, clients, payload) = worst?;
    Some(ratio_verdict(
        format!(
            "{}: server CPU per request{how} ≤ 1.15× the floor",
            system.label()
        ),
        format!(
            "worst cell {r:.2}× ({clients} clients, {})",
            payload_label(payload)
        ),
        r,
        1.15,
    ))
}

/// A target on a ratio that must not exceed `limit`.
fn ratio_verdict(target: String, measured: String, ratio: f64, limit: f64) -> Verdict {
    Verdict {
        target,
        measured,
        outcome: if ratio <= limit {
            format!("hit (by {:.2}×)", limit - ratio)
        } else {
            format!("**miss** by {:.2}×", ratio - limit)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(p99: f64, rounds: &[f64]) -> OpenCell {
        OpenCell {
            system: System::SenteJson,
            clients: 100,
            payload: 20,
            offered_per_s: 1000.0,
            own_saturation_per_s: 2000.0,
            completed: 5000,
            errors: 0,
            lost: 0,
            latency: LatencySummary {
                count: 5000,
                mean_us: p99 / 2.0,
                percentiles_us: vec![(50.0, p99 / 4.0), (99.0, p99)],
            },
            p99_rounds: rounds.to_vec(),
            cpu_rounds: Vec::new(),
            load_cpu_rounds: Vec::new(),
        }
    }

    #[test]
    fn p99_against_the_floor_pairs_rounds() {
        // Round by round 2x, 0.5x and 1.5x the floor: the median is 1.5x,
        // whatever the ratio of the median rounds' p99 (100 / 200).
        let sente = open(100.0, &[200.0, 100.0, 300.0]);
        let floor = open(200.0, &[100.0, 200.0, 200.0]);
        assert_eq!(sente.p99_ratio(&floor), Some(1.5));
        // Measured once each: the ratio of the two.
        assert_eq!(open(300.0, &[]).p99_ratio(&open(200.0, &[])), Some(1.5));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(1234567.4), "1,234,567");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(duration_us(512.3), "512 µs");
        assert_eq!(duration_us(2500.0), "2.50 ms");
        assert_eq!(ratio(8.0, Some(10.0)), "0.80×");
        assert_eq!(ratio(8.0, None), "–");
        assert_eq!(payload_label(16384), "16 KiB");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 50.0), 50.0);
        assert_eq!(percentile(&hundred, 99.0), 99.0);
        assert_eq!(percentile(&hundred, 100.0), 100.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    fn cell(cpu_rounds: Vec<f64>) -> ClosedCell {
        ClosedCell {
            system: BASELINE,
            clients: 1,
            payload: 20,
            requests_per_s: 1.0,
            server_cpu_us_per_request: median(&cpu_rounds),
            server_cpu_share: 0.0,
            load_cpu_share: 0.0,
            others_cpu_share: 0.0,
            errors: 0,
            latency: LatencySummary::default(),
            rps_rounds: vec![1.0; cpu_rounds.len()],
            p99_rounds: Vec::new(),
            cpu_rounds,
        }
    }

    #[test]
    fn closed_loop_p99_pairs_rounds() {
        let with_p99 = |rounds: &[f64]| ClosedCell {
            p99_rounds: rounds.to_vec(),
            ..cell(vec![1.0; rounds.len()])
        };
        // 1.2x, 0.8x and 1.0x round by round: 1.0x, whatever the medians.
        let floor = with_p99(&[1000.0, 2000.0, 1000.0]);
        let system = with_p99(&[1200.0, 1600.0, 1000.0]);
        assert_eq!(system.p99_ratio(&floor), Some(1.0));
        // Results saved before the rounds were kept: no ratio without a p99.
        assert_eq!(cell(vec![1.0]).p99_ratio(&cell(vec![1.0])), None);
    }

    #[test]
    fn ratios_of_rounds_pair_each_round_with_the_floor_s() {
        // The floor drifts (10, 20, 10); the system is 1.1x it in every round.
        let floor = cell(vec![10.0, 20.0, 10.0]);
        let system = cell(vec![11.0, 22.0, 11.0]);
        assert!((system.cpu_ratio(&floor) - 1.1).abs() < 1e-9);
        // A round far off either way does not move the median of the ratios.
        let system = cell(vec![22.0, 11.0, 11.0]);
        assert!((system.cpu_ratio(&floor) - 1.1).abs() < 1e-9);
        // One round each: the plain ratio.
        assert!((cell(vec![12.0]).cpu_ratio(&cell(vec![10.0])) - 1.2).abs() < 1e-9);
    }

    #[test]
    fn open_loop_cpu_pairs_rounds_and_needs_both() {
        let with_cpu = |rounds: &[f64]| OpenCell {
            cpu_rounds: rounds.to_vec(),
            ..open(100.0, &[100.0; 3])
        };
        // 1.3x, 0.9x and 1.1x the floor round by round: the median is 1.1x.
        let floor = with_cpu(&[10.0, 20.0, 10.0]);
        let system = with_cpu(&[13.0, 18.0, 11.0]);
        let r = system.cpu_ratio(&floor).expect("both measured");
        assert!((r - 1.1).abs() < 1e-9);
        // Results saved before the open loop's CPU was measured have none.
        assert_eq!(open(100.0, &[100.0]).cpu_ratio(&floor), None);
        assert_eq!(system.cpu_ratio(&open(100.0, &[100.0])), None);
    }

    #[test]
    fn the_section_replaces_only_itself() {
        let dir = std::env::temp_dir().join(format!("bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("BENCHMARKS.md");
        std::fs::write(&path, "# Benchmarks\n\n## Codec\n\nfigures\n").expect("write");
        write_section(&path, "## Load\n\nfirst").expect("first write");
        write_section(&path, "## Load\n\nsecond").expect("second write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# Benchmarks\n\n## Codec\n\nfigures\n"));
        assert!(text.contains("second") && !text.contains("first"));
        assert_eq!(text.matches(BEGIN).count(), 1);
        std::fs::write(&path, format!("{text}\n## After\n")).expect("append");
        write_section(&path, "## Load\n\nthird").expect("third write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("third") && text.contains("## After") && text.contains("## Codec"));
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(
            relative_link(Some(Path::new("BENCHMARKS.md")), Path::new("docs/a.svg")),
            "docs/a.svg"
        );
        assert_eq!(
            relative_link(
                Some(Path::new("x/BENCHMARKS.md")),
                Path::new("x/docs/a.svg")
            ),
            "docs/a.svg"
        );
    }
}
