//! A live dashboard: the server's own figures (connections, messages per
//! second, memory, and how long its handlers run: median and 99th
//! percentile, timed by a handler middleware) and a simulated fleet of hosts,
//! published four times a
//! second on the channel `dash/metrics`, drawn as live charts by a page the
//! server serves. The channel keeps the last 10 minutes of samples: a page
//! that loads (or reloads) asks for them first (`dash/recent`) and starts
//! full instead of empty; a page whose connection drops resumes from its last
//! sample and gets what it missed. The page also measures its own round trip
//! to the server (`dash/ping`) and draws its median and 99th percentile.
//!
//! Run with `cargo run -p sente-lite-examples --example dashboard` (defaults:
//! `127.0.0.1:3001`; `-- --addr 127.0.0.1:4001` to change) and open
//! `http://127.0.0.1:3001/`. `js/test/dashboard.test.js` drives the page in
//! headless Chromium, across a restart of the server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use std::sync::{Arc, Mutex, PoisonError};

use sente_lite::middleware::{self, Call, Next};
use sente_lite::server::{ChannelOptions, Shutdown};
use sente_lite::{Ctx, ErrorReply, Router, Server};
use serde::{Deserialize, Serialize};

/// Dashboard server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3001")]
    addr: String,
    /// Milliseconds between samples.
    #[arg(long, default_value_t = 250)]
    every_ms: u64,
}

/// The channel the samples are published on.
const CHANNEL: &str = "dash/metrics";
/// How many hosts the simulated fleet has.
const HOSTS: usize = 8;

/// One sample of the server and its fleet.
#[sente_lite::event("dash/sample")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sample {
    /// When, in milliseconds since the Unix epoch.
    at_ms: u64,
    /// Open connections.
    connections: u64,
    /// Data frames in and out per second, over the last interval.
    messages_per_sec: f64,
    /// The server process's resident memory, in KiB.
    memory_kib: u64,
    /// How long the server's handlers ran over the last interval, in
    /// microseconds: the median and the 99th percentile (0 without calls).
    handler_p50_us: u64,
    handler_p99_us: u64,
    /// Each simulated host's CPU load, in percent.
    fleet_cpu: Vec<f64>,
}

/// The samples the channel's history holds, oldest first.
#[sente_lite::event("dash/recent", reply = Vec<Sample>)]
#[derive(Debug, Serialize, Deserialize)]
struct Recent;

/// A round trip, answered at once: the page times it.
#[sente_lite::event("dash/ping", reply = u64)]
#[derive(Debug, Serialize, Deserialize)]
struct Ping(u64);

#[sente_lite::handler]
async fn recent(ctx: Ctx, _req: Recent) -> Result<Vec<Sample>, ErrorReply> {
    let server = ctx
        .server()
        .ok_or_else(|| ErrorReply::new("dash/no-server", "not on a server"))?;
    let history = server
        .history(CHANNEL)
        .await
        .map_err(|e| ErrorReply::new("dash/unavailable", e.to_string()))?;
    Ok(history
        .iter()
        .filter_map(|p| p.decode::<Sample>())
        .collect())
}

#[sente_lite::handler]
async fn ping(req: Ping) -> u64 {
    req.0
}

/// The process's resident memory, in KiB (Linux; 0 elsewhere).
fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long each handler ran since the last sample, in microseconds (at most
/// `MAX_TIMINGS` of them; a busier interval keeps its first ones).
#[derive(Default)]
struct Timings(Mutex<Vec<u64>>);

const MAX_TIMINGS: usize = 100_000;

impl Timings {
    fn record(&self, elapsed: Duration) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if all.len() < MAX_TIMINGS {
            all.push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        }
    }

    /// The median and 99th percentile of what was recorded, which is cleared.
    fn take_percentiles(&self) -> (u64, u64) {
        let mut all = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        if all.is_empty() {
            return (0, 0);
        }
        all.sort_unstable();
        let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
        (at(0.5), at(0.99))
    }
}

/// Publishes a sample every `every` until the server stops.
async fn sample(server: Server, every: Duration, timings: Arc<Timings>) {
    let mut cpu: Vec<f64> = (0..HOSTS).map(|i| 20.0 + 7.0 * i as f64).collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut last = server.stats();
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let stats = server.stats();
        let messages = (stats.messages_in + stats.messages_out)
            .saturating_sub(last.messages_in + last.messages_out);
        last = stats.clone();
        // A random walk per host, kept within 0..100.
        for load in &mut cpu {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let step = ((seed >> 33) % 1000) as f64 / 100.0 - 5.0;
            *load = (*load + step).clamp(0.0, 100.0);
        }
        let (handler_p50_us, handler_p99_us) = timings.take_percentiles();
        let sample = Sample {
            at_ms: now_ms(),
            handler_p50_us,
            handler_p99_us,
            connections: stats.connections,
            messages_per_sec: messages as f64 / every.as_secs_f64(),
            memory_kib: memory_kib(),
            fleet_cpu: cpu.iter().map(|c| (c * 10.0).round() / 10.0).collect(),
        };
        if server.publish(CHANNEL, &sample).await.is_err() && server.is_draining() {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";
    let every = Duration::from_millis(args.every_ms.max(10));
    let timings = Arc::new(Timings::default());
    let server = Server::builder()
        .router(
            Router::new()
                .handler(recent)
                .handler(ping)
                // Every handler's time, for the samples' percentiles.
                .layer(middleware::from_fn({
                    let timings = Arc::clone(&timings);
                    move |_call: Call, next: Next| {
                        let timings = Arc::clone(&timings);
                        async move {
                            let finished = next.run().await?;
                            if let Some(elapsed) = finished.elapsed() {
                                timings.record(elapsed);
                            }
                            Ok(finished)
                        }
                    }
                })),
        )
        .channel(CHANNEL, sente_lite::server::allow_all)
        .channel_options(
            CHANNEL,
            ChannelOptions {
                // Ten minutes of samples.
                history_size: usize::try_from(600_000 / every.as_millis().max(1)).unwrap_or(2400),
                history_ttl: Duration::from_secs(600),
                ..ChannelOptions::default()
            },
        )
        .page("/", HTML, include_str!("dashboard_page/index.html"))
        .page(
            "/dashboard.js",
            JS,
            include_str!("dashboard_page/dashboard.js"),
        )
        .page("/sente-lite.js", JS, sente_lite::JS_CLIENT)
        .bind(&args.addr)
        .await?;
    tracing::info!("dashboard listening at {}", server.ws_url());
    if let Some(addr) = server.local_addr() {
        tracing::info!("open http://{addr}/ in a browser");
    }
    tokio::spawn(sample(server.clone(), every, timings));
    server
        .shutdown_on_signal(Shutdown {
            deadline: Duration::from_secs(2),
            reconnect_spread: Duration::from_millis(500),
            ..Shutdown::default()
        })
        .await?;
    Ok(())
}
