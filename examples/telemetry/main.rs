//! A telemetry pipeline: browsers, Node programs and Rust services send their
//! logs and errors over their sente-lite connection (`telemetry/batch`); the
//! server filters them by level (with levels per source), samples them,
//! batches them and writes them as JSON lines, one file per client session,
//! rotated and held to a bound on disk. A tail page follows one session live.
//!
//! Run with `cargo run -p sente-lite-examples --example telemetry` (defaults:
//! `127.0.0.1:3003`, files under `telemetry-logs/`; `-- --help` lists the
//! settings), then open `http://127.0.0.1:3003/`: the page reports its
//! errors, and links to `/tail?session=...`, which follows them. Send from
//! Rust with `cargo run -p sente-lite-examples --example telemetry_client`.
//! `js/test/telemetry.test.js` drives it all: a page's error found in the
//! file and on the tail page, Node and Rust clients, a flood, rotation.
//!
//! # What is kept, and what is lost
//!
//! Below these rates nothing is lost:
//!
//! - each connection: 50 records a second, bursts of 500, and 64 KiB of text
//!   a second, bursts of 256 KiB (the server's telemetry budget:
//!   `--records-per-sec`, `--records-burst`, `--bytes-per-sec`,
//!   `--bytes-burst`);
//! - all connections together: what the writer puts on disk, with 1024
//!   batches or 8 MiB waiting for it (`--queue-batches`, `--queue-bytes`).
//!   BENCHMARKS.md measures 35,000 records a second written without a loss,
//!   at 5.4 µs of server CPU a record (`scripts/bench-telemetry`).
//!
//! Above them, records are dropped and counted, never silently: each
//! session's file gets a `"type":"losses"` line within a flush (200 ms) with
//! the counts by cause (`over_budget`, `over_batch_size`, `refused`,
//! `dropped_by_client`, `queue_full`), which the tail page shows, and
//! `tail/stats` sums them up. Records left out on purpose (below `--level`
//! or a `--source-level`, or sampled out with `--sample`) are counted there
//! too. Each file holds at most `--max-file-bytes` (1 MiB) before it is
//! rotated, a session keeps `--max-files` (5), and the directory
//! `--max-disk-bytes` (64 MiB): past it the files written to longest ago are
//! deleted (counted as `evicted_files`).
//!
//! The tail is not access-controlled here: anyone who can reach the server
//! can read every session. A real deployment authorises `tail/*` with
//! `ServerBuilder::channel` and the `tail/*` requests with its users.

mod line;
mod pipeline;
mod store;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use clap::Parser;
use sente_lite::server::{Shutdown, TelemetryConfig};
use sente_lite::telemetry::TelemetryLevel;
use sente_lite::{Ctx, ErrorReply, Router, Server};
use serde::{Deserialize, Serialize};

use line::Line;
use pipeline::{Counters, Pipeline, Rules, rank};
use store::{Limits, Store};

/// Telemetry pipeline server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3003")]
    addr: String,
    /// Directory of the session files.
    #[arg(long, default_value = "telemetry-logs")]
    dir: PathBuf,
    /// Records below this level are left out: error, warn, info, debug or trace.
    #[arg(long, default_value = "info", value_parser = parse_level)]
    level: TelemetryLevel,
    /// A level of its own for one source, as SOURCE=LEVEL (`console=warn`); repeatable.
    #[arg(long = "source-level", value_parser = parse_source_level)]
    source_levels: Vec<(String, TelemetryLevel)>,
    /// The share of a level's records kept, as LEVEL=RATE (`debug=0.1`); repeatable.
    #[arg(long = "sample", value_parser = parse_sample)]
    samples: Vec<(TelemetryLevel, f64)>,
    /// A session's file is rotated before it passes this many bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_file_bytes: u64,
    /// Files kept per session, the current one included.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    max_files: u32,
    /// Bytes of the whole directory.
    #[arg(long, default_value_t = 64 << 20)]
    max_disk_bytes: u64,
    /// Batches waiting for the writer at most.
    #[arg(long, default_value_t = 1024)]
    queue_batches: usize,
    /// Bytes (about, in memory) waiting for the writer at most.
    #[arg(long, default_value_t = 8 << 20)]
    queue_bytes: usize,
    /// Milliseconds between flushes to disk.
    #[arg(long, default_value_t = 200)]
    flush_ms: u64,
    /// Records per second each connection may send, sustained.
    #[arg(long, default_value_t = 50)]
    records_per_sec: u32,
    /// Records each connection may send at once.
    #[arg(long, default_value_t = 500)]
    records_burst: u32,
    /// Bytes of text per second each connection may send, sustained.
    #[arg(long, default_value_t = 64 << 10)]
    bytes_per_sec: u32,
    /// Bytes of text each connection may send at once.
    #[arg(long, default_value_t = 256 << 10)]
    bytes_burst: u32,
}

fn parse_level(text: &str) -> Result<TelemetryLevel, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("`{text}` is not one of error, warn, info, debug, trace"))
}

fn parse_source_level(text: &str) -> Result<(String, TelemetryLevel), String> {
    let (source, level) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write SOURCE=LEVEL"))?;
    Ok((source.to_owned(), parse_level(level)?))
}

fn parse_sample(text: &str) -> Result<(TelemetryLevel, f64), String> {
    let (level, rate) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write LEVEL=RATE"))?;
    let rate: f64 = rate
        .parse()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("`{rate}`: a rate is a number from 0 to 1"))?;
    Ok((parse_level(level)?, rate))
}

/// The channel that shows session `key`'s lines as they are written.
fn tail_channel(key: &str) -> String {
    format!("tail/{key}")
}

/// Lines just written to session `key`'s file.
#[sente_lite::event("tail/lines")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TailLines {
    /// The session's file key (see `tail/recent`).
    key: String,
    lines: Vec<Line>,
}

/// The last lines of a session, oldest first.
#[sente_lite::event("tail/recent", reply = Vec<Line>)]
#[derive(Debug, Serialize, Deserialize)]
struct Recent {
    /// The session as the client named it.
    session: String,
    /// At most this many (at most 1000).
    max: u32,
}

/// The sessions with files, the one written to last first.
#[sente_lite::event("tail/sessions", reply = Vec<SessionInfo>)]
#[derive(Debug, Serialize, Deserialize)]
struct Sessions;

/// A session with files.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct SessionInfo {
    key: String,
    files: u32,
    bytes: u64,
    modified_ms: u64,
}

/// What the pipeline has done since the server started.
#[sente_lite::event("tail/stats", reply = serde_json::Value)]
#[derive(Debug, Serialize, Deserialize)]
struct Stats;

/// Where the pipeline writes.
struct Dir(PathBuf);

fn unavailable(e: impl std::fmt::Display) -> ErrorReply {
    ErrorReply::new("tail/unavailable", e.to_string())
}

#[sente_lite::handler]
async fn recent(ctx: Ctx, req: Recent) -> Result<Vec<Line>, ErrorReply> {
    let dir = ctx.state::<Dir>().map(|d| d.0.clone()).unwrap_or_default();
    let key = line::file_key(&req.session);
    let max = usize::try_from(req.max.min(1000)).unwrap_or(1000);
    tokio::task::spawn_blocking(move || store::recent(&dir, &key, max))
        .await
        .map_err(unavailable)?
        .map_err(unavailable)
}

#[sente_lite::handler]
async fn sessions(ctx: Ctx, _req: Sessions) -> Result<Vec<SessionInfo>, ErrorReply> {
    let dir = ctx.state::<Dir>().map(|d| d.0.clone()).unwrap_or_default();
    tokio::task::spawn_blocking(move || {
        let mut by_key: std::collections::HashMap<String, SessionInfo> = Default::default();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(key) = name.to_str().and_then(store::key_of) else {
                continue;
            };
            let meta = entry.metadata()?;
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let info = by_key.entry(key.to_owned()).or_insert(SessionInfo {
                key: key.to_owned(),
                files: 0,
                bytes: 0,
                modified_ms: 0,
            });
            info.files += 1;
            info.bytes += meta.len();
            info.modified_ms = info.modified_ms.max(modified_ms);
        }
        let mut list: Vec<SessionInfo> = by_key.into_values().collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.modified_ms));
        list.truncate(200);
        Ok::<_, std::io::Error>(list)
    })
    .await
    .map_err(unavailable)?
    .map_err(unavailable)
}

#[sente_lite::handler]
async fn stats(ctx: Ctx, _req: Stats) -> Result<serde_json::Value, ErrorReply> {
    let counters = ctx
        .state::<Arc<Counters>>()
        .ok_or_else(|| unavailable("no pipeline"))?;
    serde_json::to_value(&**counters).map_err(unavailable)
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

    let mut rules = Rules {
        min_level: args.level,
        source_levels: args.source_levels.clone(),
        ..Rules::default()
    };
    for (level, rate) in &args.samples {
        rules.sample[rank(*level)] = *rate;
    }
    let counters = Arc::<Counters>::default();
    let store = Store::open(
        &args.dir,
        Limits {
            max_file_bytes: args.max_file_bytes,
            max_files: args.max_files,
            max_disk_bytes: args.max_disk_bytes,
            max_open: 256,
        },
        Arc::clone(&counters),
    )?;
    let (tx, rx) = std::sync::mpsc::sync_channel(args.queue_batches.max(1));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let pending = pipeline::PendingLosses::default();
    let sink = Pipeline::new(
        rules,
        tx,
        Arc::clone(&queued_bytes),
        args.queue_bytes,
        Arc::clone(&pending),
        Arc::clone(&counters),
    );
    let mut telemetry = TelemetryConfig::default();
    telemetry.records_per_sec = args.records_per_sec;
    telemetry.records_burst = args.records_burst;
    telemetry.bytes_per_sec = args.bytes_per_sec;
    telemetry.bytes_burst = args.bytes_burst;

    let server = Server::builder()
        .router(
            Router::new()
                .handler(recent)
                .handler(sessions)
                .handler(stats),
        )
        .telemetry_config(telemetry)
        .telemetry_sink(sink)
        .state(Dir(args.dir.clone()))
        .state(Arc::clone(&counters))
        .channel("tail/*", sente_lite::server::allow_all)
        .page("/", HTML, include_str!("../telemetry_page/index.html"))
        .page("/app.js", JS, include_str!("../telemetry_page/app.js"))
        .page("/tail", HTML, include_str!("../telemetry_page/tail.html"))
        .page("/tail.js", JS, include_str!("../telemetry_page/tail.js"))
        .page("/sente-lite.js", JS, sente_lite::JS_CLIENT)
        .bind(&args.addr)
        .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = writer::Writer {
        store,
        rx,
        queued_bytes,
        pending,
        counters: Arc::clone(&counters),
        flush_every: Duration::from_millis(args.flush_ms.max(1)),
        flush_lines: 4096,
        server: server.clone(),
        stop: Arc::clone(&stop),
    };
    let runtime = tokio::runtime::Handle::current();
    let writing = std::thread::Builder::new()
        .name("telemetry-writer".into())
        .spawn(move || {
            let _entered = runtime.enter();
            writer.run();
        })?;

    tracing::info!(
        "telemetry pipeline listening at {}, writing to {}",
        server.ws_url(),
        args.dir.display()
    );
    if let Some(addr) = server.local_addr() {
        tracing::info!("open http://{addr}/ in a browser");
    }
    server
        .shutdown_on_signal(Shutdown {
            deadline: Duration::from_secs(2),
            ..Shutdown::default()
        })
        .await?;
    // The writer writes what is left, then ends.
    stop.store(true, Ordering::Release);
    tokio::task::spawn_blocking(move || writing.join())
        .await?
        .map_err(|_| "the writer panicked")?;
    tracing::info!("{} lines written", counters.written.load(Ordering::Relaxed));
    Ok(())
}
