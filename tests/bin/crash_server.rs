//! A server process for the crash-recovery test: records notes, publishes
//! news (channels `news/*` keep a history of 100), disconnects subscribers.
//!
//! `cargo run -p sente-lite-tests --bin crash_server -- --addr 127.0.0.1:4100`
//! prints `listening ws://...` once it accepts connections.

#[path = "../events.rs"]
mod events;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use std::time::Duration;

use clap::Parser;
use events::{Kick, News, Note, Publish, Received};
use sente_lite::server::Shutdown;
use sente_lite::{Ctx, ErrorReply, Router, Server};
use tokio::io::AsyncWriteExt;

/// Crash-recovery test server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    addr: String,
}

static NOTES: LazyLock<Mutex<HashMap<String, Vec<u64>>>> = LazyLock::new(Default::default);

#[sente_lite::handler]
async fn note(n: Note) {
    NOTES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(n.client)
        .or_default()
        .push(n.seq);
}

#[sente_lite::handler]
async fn received(req: Received) -> Vec<u64> {
    NOTES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&req.client)
        .cloned()
        .unwrap_or_default()
}

#[sente_lite::handler]
async fn publish(ctx: Ctx, req: Publish) -> Result<usize, ErrorReply> {
    let server = ctx
        .server()
        .ok_or_else(|| ErrorReply::new("crash/no-server", "no server"))?;
    server
        .broadcast(&req.channel, &News { text: req.text })
        .map_err(|e| ErrorReply::new("crash/encode", e.to_string()))
}

#[sente_lite::handler]
async fn kick(ctx: Ctx, req: Kick) -> Result<usize, ErrorReply> {
    let server = ctx
        .server()
        .ok_or_else(|| ErrorReply::new("crash/no-server", "no server"))?;
    let mut kicked = 0;
    for (conn_id, _) in server.subscribers(&req.channel) {
        let reason = sente_lite::protocol::CloseReason {
            code: "going-away".into(),
            message: "disconnected by the server".into(),
            reconnect_after_ms: Some(req.reconnect_after_ms),
        };
        if server.disconnect(conn_id, reason) {
            kicked += 1;
        }
    }
    for text in req.texts {
        server
            .broadcast(&req.channel, &News { text })
            .map_err(|e| ErrorReply::new("crash/encode", e.to_string()))?;
    }
    Ok(kicked)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let server = Server::builder()
        .router(
            Router::new()
                .handler(note)
                .handler(received)
                .handler(publish)
                .handler(kick),
        )
        .channel("news/*", sente_lite::server::allow_all)
        .channel_options(
            "news/*",
            sente_lite::server::ChannelOptions {
                history_size: 100,
                ..Default::default()
            },
        )
        .bind(args.addr)
        .await?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening {}\n", server.ws_url()).as_bytes())
        .await?;
    out.flush().await?;
    server
        .shutdown_on_signal(Shutdown {
            deadline: Duration::from_secs(5),
            reconnect_spread: Duration::from_millis(500),
            ..Shutdown::default()
        })
        .await?;
    let mut out = tokio::io::stdout();
    out.write_all(b"drained\n").await?;
    out.flush().await?;
    Ok(())
}
