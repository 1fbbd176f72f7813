//! The soak's server: sente-lite on its default limits, with `room/*`
//! channels that keep a history (100 publications) and presence, users named
//! by the `user` query parameter, and two events: `soak/echo` (answered with
//! its text) and `soak/say` (published on a room).
//!
//! Started by the `soak` orchestrator; by hand:
//! `cargo run --release -p sente-lite-soak --bin soak_server -- --addr 127.0.0.1:4200`
//! prints `listening ws://...` once it accepts connections, and runs until
//! it is stopped.

use std::time::Duration;

use clap::Parser;
use sente_lite::server::{ChannelOptions, allow_all};
use sente_lite::{Ctx, ErrorReply, Router, Server};
use sente_lite_soak::events::{Echo, Said, Say};
use tokio::io::AsyncWriteExt;

/// Soak server.
#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[sente_lite::handler]
async fn on_echo(echo: Echo) -> String {
    echo.text
}

#[sente_lite::handler]
async fn on_say(ctx: Ctx, say: Say) -> Result<u64, ErrorReply> {
    let server = ctx
        .server()
        .ok_or_else(|| ErrorReply::new("soak/no-server", "the server is gone"))?;
    let from = ctx.user_id().map(|u| u.0.clone()).unwrap_or_default();
    let published = server
        .publish(
            &say.room,
            &Said {
                from,
                text: say.text,
            },
        )
        .await
        .map_err(|e| ErrorReply::new("soak/publish", e.to_string()))?;
    Ok(published.position.map_or(0, |p| p.offset))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .router(Router::new().handler(on_echo).handler(on_say))
        .auth(|req| async move { Ok(req.query("user").map(Into::into)) })
        .channel("room/*", allow_all)
        .channel_options(
            "room/*",
            ChannelOptions {
                history_size: 100,
                history_ttl: Duration::from_secs(600),
                presence: true,
                ..ChannelOptions::default()
            },
        )
        .bind(args.addr)
        .await?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening {}\n", server.ws_url()).as_bytes())
        .await?;
    out.flush().await?;
    std::future::pending::<()>().await;
    Ok(())
}
