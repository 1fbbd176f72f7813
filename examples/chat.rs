//! The chat server: rooms are channels, users come from the `?name=` query.
//! Each room keeps its last 200 messages for 10 minutes, so a page or client
//! that loses its connection gets what was said meanwhile when it is back, in
//! order, once; and each room keeps its presence, so everyone sees who is
//! there (a reload within 5 s does not make anyone leave).
//!
//! Run with `cargo run -p sente-lite-examples --example chat` (defaults:
//! `127.0.0.1:3000`, endpoint `/ws`; `-- --addr 127.0.0.1:4000` to change).
//! Open `http://127.0.0.1:3000/` in a browser: pick a name, join a room, talk,
//! and see who is in the room and the connection's state. The page (`chat_page/`)
//! and the JavaScript client (`/sente-lite.js`) are served from the binary.
//! Or join from a terminal with
//! `cargo run -p sente-lite-examples --example chat_client -- --name ada --room lobby`,
//! and from a second terminal as another user. Each line typed is said in the
//! room; everyone in it sees it. `GET /health` tells how the server is doing,
//! `GET /metrics` gives its metrics. Ctrl-C or SIGTERM drains it gracefully.
//!
//! With `-- --config chat.toml` the server is built from a settings file (the
//! keys of `sente_lite::settings`: `[server]` with its `addr`, `path`,
//! heartbeat, `[server.limits]`, `[[server.channels]]` and so on), with
//! `SENTE_LITE__SECTION__KEY` environment variables over the file (they apply
//! without a file too), and the flags given on the command line over both. A
//! `[[server.channels]]` pattern matching `room/*` replaces the rooms' own
//! history and presence below. The page connects to `/ws`: a file that moves
//! `path` leaves it for other clients. For example, a `chat.toml` of
//!
//! ```toml
//! [server]
//! addr = "127.0.0.1:4000"
//! ping_interval_ms = 10000
//!
//! [server.limits]
//! max_connections = 1000
//! ```
//!
//! serves at `127.0.0.1:4000`, and `--config chat.toml --addr 127.0.0.1:5000`
//! at `127.0.0.1:5000` with the rest of the file.
//!
//! Clustered: with `--redis redis://127.0.0.1:6379`, rooms, their history and
//! presence live in Redis, and several chat servers act as one. Start Redis
//! (`redis-server --port 6379`), then two servers:
//! `cargo run -p sente-lite-examples --example chat -- --redis redis://127.0.0.1:6379 --addr 127.0.0.1:3000`
//! and the same with `--addr 127.0.0.1:3001`; open `http://127.0.0.1:3000/`
//! and `http://127.0.0.1:3001/` in two windows, join the same room, and watch
//! messages and presence cross. With `--shared-port`, the servers share one
//! address (SO_REUSEPORT): stop one and its pages reconnect to the others and
//! get what they missed.

#[path = "chat_events.rs"]
mod chat_events;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_events::{ChatMessage, Join, Joined, Leave, Room, Say, channel};
use clap::Parser;
use sente_lite::server::{ChannelOptions, Rejection, Shutdown};
use sente_lite::settings::Settings;
use sente_lite::{Ctx, ErrorReply, Router, Server};
use sente_lite_redis::{RedisConfig, RedisEngine};

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// The chat server.
#[derive(Parser)]
struct Args {
    /// Settings file (TOML, the keys of `sente_lite::settings`); the flags
    /// below override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: the file's `server.addr`, or 127.0.0.1:3000].
    #[arg(long)]
    addr: Option<String>,
    /// Keep rooms in this Redis, shared with other chat servers
    /// (`redis://127.0.0.1:6379`); without it, everything stays in this process.
    #[arg(long)]
    redis: Option<String>,
    /// Listen beside other processes on the same address (SO_REUSEPORT).
    #[arg(long)]
    shared_port: bool,
}

/// Who is in `room`: its presence's members, by name.
async fn members(server: &Server, room: &str) -> Vec<String> {
    server
        .channel_presence(&channel(room))
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|member| member.user_id.0)
        .collect()
}

fn valid_room(room: &str) -> Result<(), ErrorReply> {
    let ok = !room.is_empty()
        && room.len() <= 64
        && room
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ErrorReply::new(
            "chat/bad-room",
            "a room name is 1 to 64 letters, digits, `-` or `_`",
        ))
    }
}

#[sente_lite::handler]
async fn join(ctx: Ctx, req: Join) -> Result<Joined, ErrorReply> {
    valid_room(&req.room)?;
    let server = ctx
        .server()
        .ok_or_else(|| ErrorReply::new("chat/no-server", "not on a server"))?;
    ctx.subscribe(channel(&req.room))
        .await
        .map_err(|e| ErrorReply::new("chat/join-failed", e.to_string()))?;
    let members = members(&server, &req.room).await;
    Ok(Joined {
        room: req.room,
        members,
    })
}

#[sente_lite::handler]
async fn leave(ctx: Ctx, req: Leave) -> Result<(), ErrorReply> {
    let server = ctx
        .server()
        .ok_or_else(|| ErrorReply::new("chat/no-server", "not on a server"))?;
    server.unsubscribe(ctx.conn_id(), &channel(&req.room));
    Ok(())
}

#[sente_lite::handler]
async fn say(ctx: Ctx, msg: Say) -> Result<(), ErrorReply> {
    let server = ctx
        .server()
        .ok_or_else(|| ErrorReply::new("chat/no-server", "not on a server"))?;
    let from = ctx
        .user_id()
        .map(|u| u.0.clone())
        .unwrap_or_else(|| format!("guest-{}", ctx.conn_id()));
    if msg.text.len() > 2000 {
        return Err(ErrorReply::new(
            "chat/too-long",
            "a message is at most 2000 bytes",
        ));
    }
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let message = ChatMessage {
        room: msg.room.clone(),
        from,
        text: msg.text,
        at_ms,
    };
    let room = Room { name: msg.room };
    server
        .broadcast(&room, &message)
        .map_err(|e| ErrorReply::new("chat/failed", e.to_string()))?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sente_lite=info".into()),
        )
        .init();
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref())?;
    let addr = args.addr.unwrap_or(settings.server.addr.clone());
    let mut builder = Server::builder().settings(&settings.server)?;
    if let Some(url) = &args.redis {
        let engine = RedisEngine::connect(RedisConfig::new(url.as_str())).await?;
        tracing::info!(node = engine.node_id(), "rooms are kept in Redis at {url}");
        builder = builder.engine(engine);
    }
    let builder = builder
        .router(Router::new().handler(join).handler(leave).handler(say))
        .auth(|req| async move {
            match req.query("name") {
                None => Ok(None),
                Some(name) if !name.is_empty() && name.len() <= 32 => Ok(Some(name.into())),
                Some(_) => Err(Rejection::unauthorized("a name is 1 to 32 bytes")),
            }
        })
        .typed_channel(|room: Room, _access| async move { valid_room(&room.name) })
        .typed_channel_options::<Room>(ChannelOptions {
            history_size: 200,
            history_ttl: Duration::from_secs(600),
            presence: true,
            ..ChannelOptions::default()
        })
        .presence_info(|ctx, _channel| {
            ctx.user_id()
                .map(|user| serde_json::json!({ "name": user.0 }))
        })
        .page("/", HTML, include_str!("chat_page/index.html"))
        .page("/chat.css", CSS, include_str!("chat_page/chat.css"))
        .page("/chat.js", JS, include_str!("chat_page/chat.js"))
        .page("/sente-lite.js", JS, sente_lite::JS_CLIENT);
    let server = if args.shared_port {
        builder.listen(sente_lite::server::shared_listener(addr.parse()?)?)?
    } else {
        builder.bind(addr).await?
    };
    tracing::info!("chat server listening at {}", server.ws_url());
    if let Some(addr) = server.local_addr() {
        tracing::info!("open http://{addr}/ in a browser");
    }

    // Log users coming and going (rooms learn it from their presence).
    let watcher = server.clone();
    tokio::spawn(async move {
        let mut presence = watcher.presence();
        while let Ok(change) = presence.recv().await {
            tracing::info!(?change, "presence");
        }
    });

    // SIGTERM or Ctrl-C: tell clients to go away (spread over 5 s), finish
    // running handlers, then exit.
    server
        .shutdown_on_signal(Shutdown {
            deadline: Duration::from_secs(5),
            ..Shutdown::default()
        })
        .await?;
    Ok(())
}
