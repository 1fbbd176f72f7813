//! A server process for the cluster tests: one of several on one Redis.
//! Channels `news/*` keep a history of 1,000 and presence; the user is the
//! `user` query parameter.
//!
//! `cargo run -p sente-lite-tests --bin cluster_server -- --addr 127.0.0.1:4100 --redis redis://127.0.0.1:6379 --name a`
//! prints `listening ws://...` once it accepts connections. With
//! `--shared-port`, several processes listen on the same address.

#[path = "../cluster_events.rs"]
mod cluster_events;

use std::time::Duration;

use clap::Parser;
use cluster_events::{
    Ask, HealthOf, Kick, Members, NameOf, News, Note, Publish, PublishOthers, Question, Tell,
};
use sente_lite::server::{ChannelOptions, Shutdown};
use sente_lite::{Ctx, ErrorReply, Router, Server, UserId};
use sente_lite_redis::{RedisConfig, RedisEngine};
use tokio::io::AsyncWriteExt;

/// Cluster test server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    addr: std::net::SocketAddr,
    /// The Redis all servers share.
    #[arg(long)]
    redis: String,
    /// This server's name, answered to `cluster/name`.
    #[arg(long)]
    name: String,
    /// Listen with SO_REUSEPORT, beside other processes on the same address.
    #[arg(long)]
    shared_port: bool,
    /// The engine's heartbeat, in milliseconds.
    #[arg(long, default_value_t = 200)]
    heartbeat_ms: u64,
    /// How long a silent server is kept, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    node_timeout_ms: u64,
}

static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn server_of(ctx: &Ctx) -> Result<Server, ErrorReply> {
    ctx.server()
        .ok_or_else(|| ErrorReply::new("cluster/no-server", "no server"))
}

#[sente_lite::handler]
async fn do_publish(ctx: Ctx, req: Publish) -> Result<String, ErrorReply> {
    let published = server_of(&ctx)?
        .publish(&req.channel, &News { text: req.text })
        .await
        .map_err(|e| ErrorReply::new("cluster/engine", e.to_string()))?;
    Ok(published
        .position
        .map(|p| format!("{}:{}", p.epoch, p.offset))
        .unwrap_or_default())
}

#[sente_lite::handler]
async fn do_publish_others(ctx: Ctx, req: PublishOthers) -> Result<usize, ErrorReply> {
    server_of(&ctx)?
        .broadcast_except(&req.channel, &News { text: req.text }, ctx.conn_id())
        .map_err(|e| ErrorReply::new("cluster/encode", e.to_string()))
}

#[sente_lite::handler]
async fn do_tell(ctx: Ctx, req: Tell) -> Result<usize, ErrorReply> {
    server_of(&ctx)?
        .send_to_user(&UserId(req.user), &Note { text: req.text })
        .map_err(|e| ErrorReply::new("cluster/encode", e.to_string()))
}

#[sente_lite::handler]
async fn do_ask(ctx: Ctx, req: Ask) -> Result<String, ErrorReply> {
    server_of(&ctx)?
        .request_user(&UserId(req.user), &Question { text: req.text })
        .await
        .map_err(|e| ErrorReply::new(e.code().to_owned(), e.to_string()))
}

#[sente_lite::handler]
async fn do_members(ctx: Ctx, req: Members) -> Result<Vec<String>, ErrorReply> {
    let members = server_of(&ctx)?
        .channel_presence(&req.channel)
        .await
        .map_err(|e| ErrorReply::new("cluster/engine", e.to_string()))?;
    Ok(members.into_iter().map(|m| m.user_id.0).collect())
}

#[sente_lite::handler]
async fn do_health(ctx: Ctx, _req: HealthOf) -> Result<(String, String), ErrorReply> {
    let health = server_of(&ctx)?.health();
    let engine = health.checks.get("engine").cloned().unwrap_or_default();
    Ok((health.status.to_owned(), engine))
}

#[sente_lite::handler]
async fn do_kick(ctx: Ctx, req: Kick) -> Result<usize, ErrorReply> {
    let reason = sente_lite::protocol::CloseReason {
        code: "policy".into(),
        message: req.message,
        reconnect_after_ms: None,
    };
    Ok(server_of(&ctx)?.disconnect_user(&UserId(req.user), reason))
}

#[sente_lite::handler]
async fn do_name(_req: NameOf) -> String {
    NAME.get().cloned().unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let _ = NAME.set(args.name.clone());
    let engine = RedisEngine::connect(RedisConfig {
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        node_timeout: Duration::from_millis(args.node_timeout_ms),
        command_timeout: Duration::from_millis(500),
        max_backoff: Duration::from_millis(500),
        ..RedisConfig::new(args.redis)
    })
    .await?;
    let builder = Server::builder()
        .configure(|c| c.presence_grace = Duration::from_millis(300))
        .engine(engine)
        .router(
            Router::new()
                .handler(do_publish)
                .handler(do_publish_others)
                .handler(do_tell)
                .handler(do_ask)
                .handler(do_members)
                .handler(do_health)
                .handler(do_kick)
                .handler(do_name),
        )
        .auth(|req| async move { Ok(req.query("user").map(Into::into)) })
        .channel("news/*", sente_lite::server::allow_all)
        .channel_options(
            "news/*",
            ChannelOptions {
                history_size: 1000,
                presence: true,
                ..Default::default()
            },
        );
    let server = if args.shared_port {
        builder.listen(sente_lite::server::shared_listener(args.addr)?)?
    } else {
        builder.bind(args.addr.to_string()).await?
    };
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening {}\n", server.ws_url()).as_bytes())
        .await?;
    out.flush().await?;
    server
        .shutdown_on_signal(Shutdown {
            deadline: Duration::from_secs(2),
            ..Shutdown::default()
        })
        .await?;
    Ok(())
}
