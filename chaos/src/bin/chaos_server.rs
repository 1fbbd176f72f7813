//! The chaos harness's server process: records every message it handles to
//! its record file before answering it, and publishes numbered messages on
//! the channels `feed/*` (history of 100,000 each). With `--redis` it is one
//! node of several sharing a Redis (the Redis engine); otherwise it keeps its
//! channels in memory and loses them with its life.
//!
//! Started by the `chaos` orchestrator; by hand:
//! `cargo run -p sente-lite-chaos --bin chaos_server -- --addr 127.0.0.1:4100 --run a-1 --record a-1.records`
//! prints `listening ws://...` once it accepts connections.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap::Parser;
use sente_lite::server::ChannelOptions;
use sente_lite::{Ctx, ErrorReply, Router, Server};
use sente_lite_chaos::events::{Ask, Mark, Note, Numbered, Publish, feed};
use sente_lite_chaos::records::RecordFile;
use sente_lite_redis::{RedisConfig, RedisEngine};
use tokio::io::AsyncWriteExt;

/// Chaos harness server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    addr: std::net::SocketAddr,
    /// This run's id, answered to `chaos/mark`.
    #[arg(long)]
    run: String,
    /// The file this run appends its records to.
    #[arg(long)]
    record: PathBuf,
    /// The Redis the nodes share; without it, the memory engine.
    #[arg(long)]
    redis: Option<String>,
    /// Listen with SO_REUSEPORT, beside other nodes on the same address.
    #[arg(long)]
    shared_port: bool,
}

/// This run's id and record file.
struct Run {
    id: String,
    records: RecordFile,
}

static RUN: OnceLock<Run> = OnceLock::new();

/// Records a message; a failure to record is answered as an error, so that
/// nothing is answered `ok` without its record.
fn record(kind: char, client: &str, seq: u64) -> Result<&'static Run, ErrorReply> {
    let run = RUN.get().expect("set before listening");
    run.records
        .append(kind, client, seq)
        .map_err(|e| ErrorReply::new("chaos/record", e.to_string()))?;
    Ok(run)
}

#[sente_lite::handler]
async fn on_note(note: Note) {
    if let Err(err) = record('E', &note.client, note.seq) {
        eprintln!("chaos_server: {}", err.message);
    }
}

#[sente_lite::handler]
async fn on_ask(ask: Ask) -> Result<u64, ErrorReply> {
    record('R', &ask.client, ask.seq)?;
    Ok(ask.seq)
}

#[sente_lite::handler]
async fn on_publish(ctx: Ctx, req: Publish) -> Result<(String, u64), ErrorReply> {
    let server = ctx
        .server()
        .ok_or_else(|| ErrorReply::new("chaos/no-server", "no server"))?;
    record('P', &req.client, req.seq)?;
    let numbered = Numbered {
        from: req.client.clone(),
        seq: req.seq,
    };
    let published = server
        .publish(&feed(&req.client), &numbered)
        .await
        .map_err(|e| ErrorReply::new("chaos/engine", e.to_string()))?;
    let position = published
        .position
        .ok_or_else(|| ErrorReply::new("chaos/no-position", "feed/* keeps positions"))?;
    Ok((position.epoch, position.offset))
}

#[sente_lite::handler]
async fn on_mark(mark: Mark) -> Result<String, ErrorReply> {
    let kind = if mark.last { 'F' } else { 'H' };
    Ok(record(kind, &mark.client, 0)?.id.clone())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let records = RecordFile::create(&args.record)?;
    let _ = RUN.set(Run {
        id: args.run.clone(),
        records,
    });
    let mut builder = Server::builder()
        .router(
            Router::new()
                .handler(on_note)
                .handler(on_ask)
                .handler(on_publish)
                .handler(on_mark),
        )
        .channel("feed/*", sente_lite::server::allow_all)
        .channel_options(
            "feed/*",
            ChannelOptions {
                history_size: 100_000,
                history_ttl: Duration::from_secs(3600),
                history_max_bytes: 8 * 1024 * 1024,
                ..Default::default()
            },
        );
    if let Some(redis) = args.redis {
        let engine = RedisEngine::connect(RedisConfig {
            heartbeat: Duration::from_millis(200),
            node_timeout: Duration::from_millis(2000),
            command_timeout: Duration::from_millis(1000),
            max_backoff: Duration::from_millis(500),
            ..RedisConfig::new(redis)
        })
        .await?;
        builder = builder.engine(engine);
    }
    let server = if args.shared_port {
        builder.listen(sente_lite::server::shared_listener(args.addr)?)?
    } else {
        builder.bind(args.addr.to_string()).await?
    };
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening {}\n", server.ws_url()).as_bytes())
        .await?;
    out.flush().await?;
    // Runs until it is killed.
    std::future::pending::<()>().await;
    Ok(())
}
