//! The sente-lite server under test: `bench/echo` answers with its payload,
//! `bench/publish` broadcasts a `bench/tick` on the bench channel. With
//! `--history N` the bench channels keep a history of N publications.
//!
//! Default settings, except the one a load test must change: the inbound rate
//! limit (200 messages/s per connection by default) is off, since one
//! connection of the closed-loop scenario sends tens of thousands a second.

use sente_lite::server::{ChannelOptions, allow_all};
use sente_lite::{Ctx, Router, Server};

use crate::events::{Echo, Publish, ROOM, Tick};

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

/// The limits the bench changes from [`sente_lite::server::Limits::default`],
/// each with its reason, as the report lists them.
pub(crate) const RAISED_LIMITS: &[(&str, &str, &str)] = &[(
    "rate_per_sec",
    "200/s (burst 400) per connection",
    "off: one closed-loop connection sends far more than 200 requests/s",
)];

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

/// Serves until the process is killed; the bench channels keep `history`
/// publications (none when 0).
pub(crate) async fn serve(addr: &str, history: usize) -> std::io::Result<()> {
    let mut builder = Server::builder()
        .router(Router::new().handler(echo).handler(publish_tick))
        .channel("bench/*", allow_all)
        .configure(|config| config.limits.rate_per_sec = None);
    if history > 0 {
        builder = builder.channel_options("bench/*", history_options(history));
    }
    let server = builder.bind(addr).await.map_err(std::io::Error::other)?;
    let local = server
        .local_addr()
        .ok_or_else(|| std::io::Error::other("the server has no local address"))?;
    super::announce(local);
    std::future::pending::<()>().await;
    Ok(())
}
