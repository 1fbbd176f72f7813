//! The sente-lite server under test: `bench/echo` answers with its payload,
//! `bench/publish` broadcasts a `bench/tick` on the bench channel,
//! `bench/publish-many` publishes many in one go. With `--history N` the bench
//! channels keep a history of N publications; with `--redis URL` the server
//! runs on the Redis engine (`sente-lite-redis`), one of several servers on
//! that Redis; with `--shared` it listens with `SO_REUSEPORT`, so that several
//! server processes share one port.
//!
//! Default settings, unchanged (the inbound rate limit is off by default,
//! which a closed-loop connection sending tens of thousands of requests a
//! second needs).

use sente_lite::protocol::codes;
use sente_lite::server::{ChannelOptions, allow_all, shared_listener};
use sente_lite::{Ctx, ErrorReply, Router, Server};
use sente_lite_redis::{RedisConfig, RedisEngine};

use crate::events::{Echo, Publish, PublishMany, ROOM, Tick};

#[sente_lite::handler]
async fn echo(request: Echo) -> String {
    request.0
}

#[sente_lite::handler]
async fn publish_tick(ctx: Ctx, request: Publish) {
    if let Some(server) = ctx.server() {
        let _ = server.broadcast(
            ROOM,
            &Tick {
                seq: request.seq,
                pad: request.pad,
            },
        );
    }
}

#[sente_lite::handler]
async fn publish_many(ctx: Ctx, request: PublishMany) -> Result<u64, ErrorReply> {
    let server = ctx
        .server()
        .ok_or_else(|| ErrorReply::new(codes::INTERNAL, "no server"))?;
    let mut last = 0;
    for seq in 1..=request.count {
        let tick = Tick {
            seq,
            pad: request.pad.clone(),
        };
        let published = server
            .publish(ROOM, &tick)
            .await
            .map_err(|e| ErrorReply::new(codes::INTERNAL, e.to_string()))?;
        last = published.position.map_or(last, |p| p.offset);
    }
    Ok(last)
}

/// The options of the bench channels when they keep `history` publications:
/// the defaults otherwise, with room in bytes for that many publications of up
/// to 1 KiB of frames each when the default bound (1 MiB) is smaller.
fn history_options(history: usize) -> ChannelOptions {
    let default = ChannelOptions::default();
    ChannelOptions {
        history_size: history,
        history_max_bytes: default
            .history_max_bytes
            .max(history.saturating_mul(1 << 10)),
        ..default
    }
}

/// How a sente-lite server under test runs besides its routes.
#[derive(Debug, Clone, Default)]
pub(crate) struct SenteSetup {
    /// Publications kept in each bench channel's history (0: none).
    pub(crate) history: usize,
    /// The Redis the server joins (`redis://host:port`); the in-memory
    /// engine when `None`.
    pub(crate) redis: Option<String>,
    /// Listen with `SO_REUSEPORT`, sharing the port with other processes.
    pub(crate) shared: bool,
}

/// Serves until the process is killed.
pub(crate) async fn serve(addr: &str, setup: SenteSetup) -> std::io::Result<()> {
    let mut builder = Server::builder()
        .router(
            Router::new()
                .handler(echo)
                .handler(publish_tick)
                .handler(publish_many),
        )
        .channel("bench/*", allow_all);
    if setup.history > 0 {
        builder = builder.channel_options("bench/*", history_options(setup.history));
    }
    if let Some(url) = &setup.redis {
        let engine = RedisEngine::connect(RedisConfig::new(url.as_str()))
            .await
            .map_err(std::io::Error::other)?;
        builder = builder.engine(engine);
    }
    let server = if setup.shared {
        let addr = addr.parse().map_err(std::io::Error::other)?;
        builder.listen(shared_listener(addr)?)
    } else {
        builder.bind(addr).await
    }
    .map_err(std::io::Error::other)?;
    let local = server
        .local_addr()
        .ok_or_else(|| std::io::Error::other("the server has no local address"))?;
    super::announce(local);
    std::future::pending::<()>().await;
    Ok(())
}
