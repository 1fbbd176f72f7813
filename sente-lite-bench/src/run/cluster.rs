//! Scenarios 7 to 9: several sente-lite servers on one Redis
//! (`sente-lite-redis`). A real `redis-server` is started on a free loopback
//! port (no persistence) and stopped by its PID at the end; every server and
//! Redis are processes of their own, pinned to the servers' CPUs.
//!
//! - 7, cross-node delivery: a paced publisher (one connection, a fixed rate,
//!   each publication stamped with the time it was due) on server 1,
//!   subscribers on server 2 measuring every delivery's latency; against one
//!   server with the memory engine and one server on Redis.
//! - 8, throughput through one Redis: the same with a few subscribers, at
//!   rising rates until the deliveries fall behind; CPU per delivery of the
//!   servers and of Redis.
//! - 9, idle connections across servers: many server processes on one port
//!   (`SO_REUSEPORT`) and one Redis, each connection subscribed to a channel
//!   of its own; memory per connection and Redis's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

use super::processes::{ServerProcess, Workers, command};
use super::{Context, shares};
use crate::latency::Latencies;
use crate::load::{Job, JobResult, Target};
use crate::machine::{cpu_time, open_fds, rss_bytes};
use crate::report::{ClusterIdleCell, PacedCell, Report, ServerMemory};
use crate::serve::SenteSetup;
use crate::wire::{BoxError, Protocol};

/// How long `redis-server` may take to answer.
const REDIS_START: Duration = Duration::from_secs(10);

/// A p99 above this (or deliveries missing) ends the throughput ladder.
pub(crate) const BEHIND_P99_US: f64 = 100_000.0;

/// A running `redis-server`, killed (by its PID) when stopped or dropped.
pub(crate) struct RedisProcess {
    child: Child,
    pid: u32,
    port: u16,
    ticks: f64,
}

impl RedisProcess {
    /// Starts one on a free loopback port, pinned to the servers' CPUs,
    /// without persistence.
    async fn start(context: &Context) -> Result<Self, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = command(context.pinning.server.as_deref(), "redis-server".as_ref())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("redis-server exited at once")?;
        let redis = Self {
            child,
            pid,
            port,
            ticks: context.ticks,
        };
        let until = Instant::now() + REDIS_START;
        while !redis.answers().await {
            if Instant::now() > until {
                return Err(format!("redis-server did not answer within {REDIS_START:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(redis)
    }

    async fn answers(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut pong = [0u8; 7];
        stream.write_all(b"PING\r\n").await.is_ok()
            && stream.read_exact(&mut pong).await.is_ok()
            && &pong == b"+PONG\r\n"
    }

    /// The URL the servers connect to.
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cpu(&self) -> Duration {
        cpu_time(self.pid, self.ticks).unwrap_or_default()
    }

    fn rss(&self) -> u64 {
        rss_bytes(self.pid).unwrap_or(0)
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Whether `redis-server` can be run here.
fn redis_installed() -> bool {
    std::process::Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where the publisher and the subscribers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Layout {
    /// One server with the in-memory engine: the baseline.
    Memory,
    /// One server on Redis, publisher and subscribers on it.
    RedisOneServer,
    /// Two servers on one Redis: the publisher on the first, the subscribers
    /// on the second.
    RedisTwoServers,
}

impl Layout {
    /// The name in tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Memory => "one server, memory engine",
            Self::RedisOneServer => "one server on Redis",
            Self::RedisTwoServers => "two servers on Redis, across",
        }
    }
}

/// The servers (and Redis) of one layout.
struct Cluster {
    redis: Option<RedisProcess>,
    servers: Vec<ServerProcess>,
}

impl Cluster {
    /// Starts `servers` sente-lite servers of `layout`, each on a port of
    /// its own, or all on one (`shared`).
    async fn start(
        context: &Context,
        layout: Layout,
        servers: usize,
        shared: bool,
    ) -> Result<Self, BoxError> {
        let redis = match layout {
            Layout::Memory => None,
            Layout::RedisOneServer | Layout::RedisTwoServers => {
                Some(RedisProcess::start(context).await?)
            }
        };
        let mut cluster = Self {
            redis,
            servers: Vec::new(),
        };
        let setup = SenteSetup {
            redis: cluster.redis.as_ref().map(RedisProcess::url),
            shared,
            ..SenteSetup::default()
        };
        let mut addr = "127.0.0.1:0".to_owned();
        for _ in 0..servers.max(1) {
            let server =
                ServerProcess::start_sente(&addr, &setup, &context.pinning, context.ticks).await;
            match server {
                Ok(server) => {
                    if shared {
                        addr = server.addr.to_string();
                    }
                    cluster.servers.push(server);
                }
                Err(err) => {
                    cluster.stop().await;
                    return Err(err);
                }
            }
        }
        Ok(cluster)
    }

    /// Where the publisher connects: the first server.
    fn publisher_addr(&self) -> Option<SocketAddr> {
        self.servers.first().map(|s| s.addr)
    }

    /// Where the subscribers connect: the last server.
    fn subscriber_addr(&self) -> Option<SocketAddr> {
        self.servers.last().map(|s| s.addr)
    }

    /// CPU time so far of each server, and of Redis.
    fn cpu(&self) -> (Vec<Duration>, Option<Duration>) {
        (
            self.servers.iter().map(ServerProcess::cpu).collect(),
            self.redis.as_ref().map(RedisProcess::cpu),
        )
    }

    async fn stop(self) {
        for mut server in self.servers {
            server.kill().await;
        }
        if let Some(redis) = self.redis {
            redis.stop().await;
        }
    }
}

/// What a paced measurement is asked for.
struct Paced {
    subscribers: usize,
    rate: f64,
    warmup: Duration,
    duration: Duration,
}

/// The CPU seconds between two readings of [`Cluster::cpu`].
fn cpu_spent(
    before: &(Vec<Duration>, Option<Duration>),
    after: &(Vec<Duration>, Option<Duration>),
) -> (Vec<f64>, Option<f64>) {
    let servers = after
        .0
        .iter()
        .zip(&before.0)
        .map(|(a, b)| a.saturating_sub(*b).as_secs_f64())
        .collect();
    let redis = after
        .1
        .zip(before.1)
        .map(|(a, b)| a.saturating_sub(b).as_secs_f64());
    (servers, redis)
}

/// A paced publisher on the cluster's first server, subscribers on its last;
/// every delivery's latency from the time its publication was due.
async fn paced(
    context: &Context,
    cluster: &Cluster,
    layout: Layout,
    asked: &Paced,
) -> Result<PacedCell, BoxError> {
    let plan = &context.plan;
    let protocol = Protocol::SenteJson;
    let (Some(publisher_addr), Some(subscriber_addr)) =
        (cluster.publisher_addr(), cluster.subscriber_addr())
    else {
        return Err("no server".into());
    };
    let warm = (asked.warmup.as_secs_f64() * asked.rate) as u64;
    let total = ((asked.warmup + asked.duration).as_secs_f64() * asked.rate) as u64;
    let processes = plan.cluster_processes.clamp(1, asked.subscribers.max(1));
    let jobs: Vec<Job> = shares(asked.subscribers, processes)
        .into_iter()
        .map(|conns| Job::Subscribe {
            target: Target {
                protocol,
                addr: subscriber_addr,
            },
            conns,
            source: None,
            latency_from: Some(warm + 1),
        })
        .collect();
    let mut subscribers = Workers::spawn(&jobs, &context.pinning)?;
    let outcome = async {
        subscribers
            .wait_all("ready", Duration::from_secs(120))
            .await?;
        let job = Job::Pace {
            target: Target {
                protocol,
                addr: publisher_addr,
            },
            rate: asked.rate,
            duration_ms: u64::try_from((asked.warmup + asked.duration).as_millis())?,
            pad: plan.fanout_pad,
        };
        let mut publisher = Workers::spawn(&[job], &context.pinning)?;
        let published = async {
            publisher.wait_all("ready", Duration::from_secs(60)).await?;
            context.quiet().await;
            publisher.send_all("go").await;
            tokio::time::sleep(asked.warmup).await;
            let before = cluster.cpu();
            let started = Instant::now();
            let results = publisher
                .results(asked.duration + Duration::from_secs(60))
                .await?;
            Ok::<_, BoxError>((before, cluster.cpu(), started.elapsed(), results))
        }
        .await;
        publisher.stop().await;
        let (before, after, elapsed, publisher) = published?;
        tokio::time::sleep(Duration::from_millis(plan.cluster_drain_ms)).await;
        subscribers.send_all("stop").await;
        let results = subscribers.results(Duration::from_secs(60)).await?;
        let (server_cpu_s, redis_cpu_s) = cpu_spent(&before, &after);
        Ok::<_, BoxError>(PacedCell {
            layout,
            subscribers: asked.subscribers,
            processes,
            rate: asked.rate,
            published: total.saturating_sub(warm),
            delivered: results.iter().map(|r| r.completed).sum(),
            elapsed_s: elapsed.as_secs_f64(),
            latency: merged(&results).summary(),
            server_cpu_s,
            redis_cpu_s,
            lost_connections: results.iter().map(|r| r.errors).sum(),
            load_cpu_share: results.iter().chain(&publisher).map(cpu_share).sum(),
        })
    }
    .await;
    subscribers.stop().await;
    outcome
}

/// The cores a load generator kept busy while it ran.
fn cpu_share(result: &JobResult) -> f64 {
    result.cpu_s / result.elapsed_s.max(1e-9)
}

/// The latencies of every load generator in one histogram.
fn merged(results: &[JobResult]) -> Latencies {
    let mut all = Latencies::default();
    for result in results {
        all.merge(&Latencies::from_counts(&result.latency_counts));
    }
    all
}

/// Notes that the Redis scenarios are left out, when `redis-server` is missing.
fn redis_or_note(report: &mut Report, scenario: &str) -> bool {
    let installed = redis_installed();
    if !installed {
        report.note(format!(
            "{scenario} left out: `redis-server` is not installed (Debian's `redis-server`)."
        ));
    }
    installed
}

/// Runs one layout's paced measurements at `rates` in turn, until one falls
/// behind (when `stop_behind`).
async fn layout_at_rates(
    context: &Context,
    layout: Layout,
    subscribers: usize,
    rates: &[f64],
    duration: Duration,
    stop_behind: bool,
) -> Result<Vec<PacedCell>, BoxError> {
    let servers = if layout == Layout::RedisTwoServers {
        2
    } else {
        1
    };
    let cluster = Cluster::start(context, layout, servers, false).await?;
    let mut cells = Vec::new();
    for &rate in rates {
        let asked = Paced {
            subscribers,
            rate,
            warmup: Duration::from_millis(context.plan.cluster_warmup_ms),
            duration,
        };
        super::settle().await;
        let cell = match paced(context, &cluster, layout, &asked).await {
            Ok(cell) => cell,
            Err(err) => {
                cluster.stop().await;
                return Err(format!("{} at {rate} publications/s: {err}", layout.label()).into());
            }
        };
        eprintln!(
            "  paced  {:<30} {rate:>8.0}/s × {subscribers}: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs, delivered {:.4}",
            layout.label(),
            cell.latency.at(50.0).unwrap_or(0.0),
            cell.latency.at(99.0).unwrap_or(0.0),
            cell.latency.at(100.0).unwrap_or(0.0),
            cell.delivered_share()
        );
        let behind = cell.delivered_share() < 0.999
            || cell.latency.at(99.0).unwrap_or(f64::MAX) > BEHIND_P99_US;
        cells.push(cell);
        if stop_behind && behind {
            break;
        }
    }
    cluster.stop().await;
    Ok(cells)
}

/// The paced measurements of one scenario: each layout at each rate in turn.
struct Ladder<'a> {
    /// The scenario, for notes.
    what: &'static str,
    layouts: &'a [Layout],
    subscribers: usize,
    rates: &'a [f64],
    duration: Duration,
    /// Stop a layout's rates at the first that falls behind.
    stop_behind: bool,
}

/// Runs `ladder`; its cells, and a note for each layout that failed.
async fn climb(context: &Context, report: &mut Report, ladder: &Ladder<'_>) -> Vec<PacedCell> {
    if !redis_or_note(report, ladder.what) {
        return Vec::new();
    }
    let mut cells = Vec::new();
    for &layout in ladder.layouts {
        match layout_at_rates(
            context,
            layout,
            ladder.subscribers,
            ladder.rates,
            ladder.duration,
            ladder.stop_behind,
        )
        .await
        {
            Ok(more) => cells.extend(more),
            Err(err) => report.note(format!("{}: {err}", ladder.what)),
        }
    }
    cells
}

/// Scenario 7: cross-node delivery latency at a fixed rate, three layouts,
/// each subscriber count.
pub(crate) async fn latency(context: &Context, report: &mut Report) {
    let plan = &context.plan;
    for &subscribers in &plan.cluster_subscribers {
        let ladder = Ladder {
            what: "Cross-node delivery",
            layouts: &[
                Layout::Memory,
                Layout::RedisOneServer,
                Layout::RedisTwoServers,
            ],
            subscribers,
            rates: &[plan.cluster_rate],
            duration: Duration::from_millis(plan.cluster_duration_ms),
            stop_behind: false,
        };
        let cells = climb(context, report, &ladder).await;
        report.cross_node.extend(cells);
    }
}

/// Scenario 8: rising rates through one Redis (two servers) and through one
/// server with the memory engine, a few subscribers.
pub(crate) async fn throughput(context: &Context, report: &mut Report) {
    let plan = &context.plan;
    let ladder = Ladder {
        what: "Throughput through one Redis",
        layouts: &[Layout::Memory, Layout::RedisTwoServers],
        subscribers: plan.throughput_subscribers,
        rates: &plan.throughput_rates,
        duration: Duration::from_millis(plan.throughput_duration_ms),
        stop_behind: true,
    };
    let cells = climb(context, report, &ladder).await;
    report.redis_throughput.extend(cells);
}

/// Scenario 9: idle connections spread over several servers on one port and
/// one Redis.
pub(crate) async fn idle(context: &Context, report: &mut Report) {
    if !redis_or_note(report, "Idle connections across servers") {
        return;
    }
    let plan = &context.plan;
    let limit = usize::try_from(crate::machine::open_files_limit()).unwrap_or(usize::MAX);
    // Room for the listener, Redis, the runtime; and for the kernel's uneven
    // spreading of connections over the servers sharing the port.
    let most = limit.saturating_sub(2_000).max(1) * plan.cluster_servers.max(1);
    let conns = plan.cluster_connections.min(most);
    if conns < plan.cluster_connections {
        report.note(format!(
            "Idle across servers: {} connections asked, {conns} measured: each of the {} server \
             processes may hold at most {limit} open files.",
            plan.cluster_connections, plan.cluster_servers
        ));
    }
    match idle_one(context, conns).await {
        Ok(cell) => {
            eprintln!(
                "  idle   {} servers on Redis, {} connections held: {:.2} KiB each",
                cell.servers.len(),
                cell.open,
                cell.per_connection_kib()
            );
            report.cluster_idle.push(cell);
        }
        Err(err) => report.note(format!("Idle across servers, {conns} connections: {err}")),
    }
}

async fn idle_one(context: &Context, conns: usize) -> Result<ClusterIdleCell, BoxError> {
    let plan = &context.plan;
    let settle = Duration::from_millis(plan.idle_settle_ms);
    context.quiet().await;
    let cluster =
        Cluster::start(context, Layout::RedisOneServer, plan.cluster_servers, true).await?;
    let outcome = async {
        let addr = cluster.publisher_addr().ok_or("no server")?;
        tokio::time::sleep(settle).await;
        let before: Vec<(u64, usize)> = cluster
            .servers
            .iter()
            .map(|s| (s.rss(), open_fds(s.pid)))
            .collect();
        let redis_before = cluster.redis.as_ref().map_or(0, RedisProcess::rss);
        let jobs: Vec<Job> = shares(conns, context.processes_for(conns))
            .into_iter()
            .enumerate()
            .map(|(i, share)| Job::Idle {
                target: Target {
                    protocol: Protocol::SenteJson,
                    addr,
                },
                conns: share,
                source: Some(IpAddr::V4(Ipv4Addr::new(
                    127,
                    0,
                    0,
                    2 + u8::try_from(i % 250).unwrap_or(0),
                ))),
                channels: plan
                    .cluster_idle_channels
                    .then(|| format!("bench/idle/{i}/")),
            })
            .collect();
        let started = Instant::now();
        let mut workers = Workers::spawn(&jobs, &context.pinning)?;
        let held = async {
            workers.wait_all("ready", Duration::from_secs(900)).await?;
            let open_s = started.elapsed().as_secs_f64();
            tokio::time::sleep(settle).await;
            let servers: Vec<ServerMemory> = cluster
                .servers
                .iter()
                .zip(&before)
                .map(|(s, &(rss_before, fds_before))| ServerMemory {
                    rss_before,
                    rss_after: s.rss(),
                    connections: open_fds(s.pid).saturating_sub(fds_before),
                })
                .collect();
            let redis_after = cluster.redis.as_ref().map_or(0, RedisProcess::rss);
            workers.send_all("stop").await;
            let results = workers.results(Duration::from_secs(120)).await?;
            Ok::<_, BoxError>(ClusterIdleCell {
                connections: conns,
                open: results.iter().map(|r| r.open).sum(),
                processes: jobs.len(),
                channels: plan.cluster_idle_channels,
                open_s,
                servers,
                redis_rss_before: redis_before,
                redis_rss_after: redis_after,
            })
        }
        .await;
        workers.stop().await;
        held
    }
    .await;
    cluster.stop().await;
    outcome
}
