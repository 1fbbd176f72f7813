//! The server the JavaScript client's tests run against: echo, errors, slow
//! requests, numbered notes, channels (and the server asking their
//! subscribers to subscribe again), requests from the server to the client,
//! and requests held until cancelled (in both directions).
//!
//! Run with `cargo run -p sente-lite-examples --example js_test_server -- --addr 127.0.0.1:4200`;
//! it prints `listening ws://...` once it accepts connections, and drains on
//! SIGINT or SIGTERM, asking clients to come back after `--reconnect-spread-ms`
//! at most. Users come from the `?name=` query; the name `intruder` is refused
//! with HTTP 401. Channels `news/*` are open to
//! all, keep a history of 100 publications and presence (each member's info is
//! `{"name": USER}`); `plain/*` are open to all and keep neither; `secret/*`
//! are refused. The protocol conformance suite
//! (`tests/conformance/`) lowers the limits it exercises with the flags below.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use clap::Parser;
use sente_lite::server::{ChannelAccess, ChannelOptions, Rejection, Shutdown};
use sente_lite::{Ctx, ErrorReply, Router, Server};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// The JavaScript client's test server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4200")]
    addr: String,
    /// Milliseconds between the server's pings.
    #[arg(long, default_value_t = 25_000)]
    ping_interval_ms: u64,
    /// Milliseconds a client may stay silent past a ping.
    #[arg(long, default_value_t = 10_000)]
    ping_timeout_ms: u64,
    /// On shutdown, clients are asked to wait up to this long before reconnecting.
    #[arg(long, default_value_t = 1_000)]
    reconnect_spread_ms: u64,
    /// How long a user without connections (or subscriptions) stays present.
    #[arg(long, default_value_t = 500)]
    presence_grace_ms: u64,
    /// Inbound data frames per second per connection (0: no limit).
    #[arg(long, default_value_t = 200)]
    rate_per_sec: u32,
    /// Inbound data frames per connection in a burst above the rate.
    #[arg(long, default_value_t = 400)]
    rate_burst: u32,
    /// Largest message a peer may send, in bytes (default: the library's).
    #[arg(long)]
    max_message_size: Option<usize>,
    /// Requests a connection may have in flight (default: the library's).
    #[arg(long)]
    max_in_flight_requests: Option<usize>,
    /// Handlers running at once per connection (default: the library's).
    #[arg(long)]
    max_concurrent_handlers: Option<usize>,
    /// Channels a connection may join (default: the library's).
    #[arg(long)]
    max_subscriptions: Option<usize>,
    /// Longest channel name, in bytes (default: the library's).
    #[arg(long)]
    max_channel_name: Option<usize>,
    /// Violations a connection may commit in a burst (default: the library's).
    #[arg(long)]
    max_violations: Option<u32>,
    /// Milliseconds for one violation of the allowance to grow back (default: the library's).
    #[arg(long)]
    violation_refill_ms: Option<u64>,
    /// TCP connections open at once from one IP address (default: no bound).
    #[arg(long)]
    max_connections_per_address: Option<usize>,
    /// On shutdown, how long running handlers may take to finish.
    #[arg(long, default_value_t = 2_000)]
    drain_deadline_ms: u64,
    /// Do not publish the schema description at `/schema`.
    #[arg(long)]
    no_schema: bool,
    /// Offer compressed frames (extension `compression`), compressing frames
    /// of at least this many bytes to the clients that read them.
    #[arg(long)]
    compress_min_bytes: Option<usize>,
    /// Accept only connections whose `token` query parameter equals this
    /// file's contents (trimmed), read at every upgrade: rewriting the file
    /// rotates the token.
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
}

/// Echo `text` back, with who asked.
#[sente_lite::event("test/echo", reply = Echoed)]
#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    text: String,
}

/// The answer to [`Echo`].
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Echoed {
    text: String,
    conn_id: u64,
    user_id: Option<String>,
}

/// Always answered with the error `test/refused`, with `data`.
#[sente_lite::event("test/fail", reply = ())]
#[derive(Debug, Serialize, Deserialize)]
struct Fail {
    reason: String,
}

/// Answered after `ms` milliseconds.
#[sente_lite::event("test/slow", reply = u64)]
#[derive(Debug, Serialize, Deserialize)]
struct Slow {
    ms: u64,
}

/// A numbered note from a client; the server records it.
#[sente_lite::event("test/note")]
#[derive(Debug, Serialize, Deserialize)]
struct Note {
    client: String,
    seq: u64,
}

/// The notes recorded from `client`, in arrival order.
#[sente_lite::event("test/notes", reply = Vec<u64>)]
#[derive(Debug, Serialize, Deserialize)]
struct Notes {
    client: String,
}

/// Publish `text` on `channel` as [`News`]; the reply is how many subscribers it reached.
#[sente_lite::event("test/publish", reply = usize)]
#[derive(Debug, Serialize, Deserialize)]
struct Publish {
    channel: String,
    text: String,
}

/// Publish `text` on `channel` as [`News`] to every subscriber but this
/// connection; the reply is how many subscribers it reached.
#[sente_lite::event("test/publish-others", reply = usize)]
#[derive(Debug, Serialize, Deserialize)]
struct PublishOthers {
    channel: String,
    text: String,
}

/// End every subscription to `channel` and ask their clients to subscribe
/// again (`sl/resub`), as an engine does when publications may have been
/// missed, then publish `then_publish` as [`News`] on the channel, if given,
/// before any client can be back; the reply is how many connections were told.
#[sente_lite::event("test/resub", reply = usize)]
#[derive(Debug, Serialize, Deserialize)]
struct Resub {
    channel: String,
    then_publish: Option<String>,
}

/// What [`Publish`] publishes, and what [`Push`] sends.
#[sente_lite::event("test/news")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct News {
    text: String,
}

/// A team's desk, a typed channel: `desk/{team}/{id}` carries [`News`];
/// desks numbered 1,000 and above are refused.
#[sente_lite::channel("desk/{team}/{id}", events(News))]
struct Desk {
    team: String,
    id: u32,
}

/// Ask the server to send [`News`] to this connection directly.
#[sente_lite::event("test/push")]
#[derive(Debug, Serialize, Deserialize)]
struct Push {
    text: String,
}

/// Ask the server to ask this client a [`Question`] and return the client's answer.
#[sente_lite::event("test/ask", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    text: String,
}

/// A request from the server to the client.
#[sente_lite::event("test/question", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Question {
    text: String,
}

/// Held until cancelled (or past its deadline): never answered. Its state
/// is kept under `tag` for [`Held`].
#[sente_lite::event("test/hold", reply = ())]
#[derive(Debug, Serialize, Deserialize)]
struct Hold {
    tag: String,
}

/// The state of the [`Hold`] request tagged `tag`: `unknown` (it never
/// ran), `running`, or `dropped` (its handler was dropped).
#[sente_lite::event("test/held", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Held {
    tag: String,
}

/// Ask this client a [`Question`] with a deadline of `deadline_ms`, and stop
/// waiting after `give_up_ms`: the reply is the client's answer, `gave up`,
/// or `failed: ...`.
#[sente_lite::event("test/ask-within", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct AskWithin {
    text: String,
    deadline_ms: u64,
    give_up_ms: u64,
}

static NOTES: LazyLock<Mutex<HashMap<String, Vec<u64>>>> = LazyLock::new(Default::default);

static HELD: LazyLock<Mutex<HashMap<String, &'static str>>> = LazyLock::new(Default::default);

fn held() -> std::sync::MutexGuard<'static, HashMap<String, &'static str>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks a [`Hold`] dropped when its handler is.
struct MarkDropped(String);

impl Drop for MarkDropped {
    fn drop(&mut self) {
        held().insert(std::mem::take(&mut self.0), "dropped");
    }
}

fn notes() -> std::sync::MutexGuard<'static, HashMap<String, Vec<u64>>> {
    NOTES.lock().unwrap_or_else(|e| e.into_inner())
}

fn server_of(ctx: &Ctx) -> Result<Server, ErrorReply> {
    ctx.server()
        .ok_or_else(|| ErrorReply::new("test/no-server", "not on a server"))
}

#[sente_lite::handler]
async fn echo(ctx: Ctx, req: Echo) -> Echoed {
    Echoed {
        text: req.text,
        conn_id: ctx.conn_id().0,
        user_id: ctx.user_id().map(|u| u.0.clone()),
    }
}

#[sente_lite::handler]
async fn fail(req: Fail) -> Result<(), ErrorReply> {
    Err(
        ErrorReply::new("test/refused", format!("refused: {}", req.reason))
            .with_data(serde_json::json!({ "reason": req.reason })),
    )
}

#[sente_lite::handler]
async fn slow(req: Slow) -> u64 {
    tokio::time::sleep(Duration::from_millis(req.ms)).await;
    req.ms
}

#[sente_lite::handler]
async fn note(n: Note) {
    notes().entry(n.client).or_default().push(n.seq);
}

#[sente_lite::handler]
async fn list_notes(req: Notes) -> Vec<u64> {
    notes().get(&req.client).cloned().unwrap_or_default()
}

#[sente_lite::handler]
async fn publish(ctx: Ctx, req: Publish) -> Result<usize, ErrorReply> {
    server_of(&ctx)?
        .broadcast(&req.channel, &News { text: req.text })
        .map_err(|e| ErrorReply::new("test/encode", e.to_string()))
}

#[sente_lite::handler]
async fn publish_others(ctx: Ctx, req: PublishOthers) -> Result<usize, ErrorReply> {
    server_of(&ctx)?
        .broadcast_except(&req.channel, &News { text: req.text }, ctx.conn_id())
        .map_err(|e| ErrorReply::new("test/encode", e.to_string()))
}

#[sente_lite::handler]
async fn resub(ctx: Ctx, req: Resub) -> Result<usize, ErrorReply> {
    let server = server_of(&ctx)?;
    let told = server.resubscribe(&req.channel);
    if let Some(text) = req.then_publish {
        server
            .broadcast(&req.channel, &News { text })
            .map_err(|e| ErrorReply::new("test/encode", e.to_string()))?;
    }
    Ok(told)
}

#[sente_lite::handler]
async fn push(ctx: Ctx, req: Push) -> Result<(), ErrorReply> {
    let _ = ctx.send(&News { text: req.text });
    Ok(())
}

#[sente_lite::handler]
async fn ask(ctx: Ctx, req: Ask) -> Result<String, ErrorReply> {
    server_of(&ctx)?
        .request(ctx.conn_id(), &Question { text: req.text })
        .await
        .map_err(|e| ErrorReply::new("test/ask-failed", e.to_string()))
}

#[sente_lite::handler]
async fn hold(req: Hold) {
    held().insert(req.tag.clone(), "running");
    let _mark = MarkDropped(req.tag);
    std::future::pending::<()>().await;
}

#[sente_lite::handler]
async fn held_state(req: Held) -> String {
    held()
        .get(&req.tag)
        .copied()
        .unwrap_or("unknown")
        .to_owned()
}

#[sente_lite::handler]
async fn ask_within(ctx: Ctx, req: AskWithin) -> String {
    let question = Question { text: req.text };
    let asked = ctx.request_within(&question, Duration::from_millis(req.deadline_ms));
    match tokio::time::timeout(Duration::from_millis(req.give_up_ms), asked).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => format!("failed: {err}"),
        Err(_) => "gave up".to_owned(),
    }
}

async fn news_or_secret(access: ChannelAccess) -> Result<(), ErrorReply> {
    if access.channel.starts_with("secret/") {
        Err(ErrorReply::new("forbidden", "secret channels are closed"))
    } else {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .init();
    let args = Args::parse();
    let token_file = args.token_file.clone();
    let server = Server::builder()
        .router(
            Router::new()
                .handler(echo)
                .handler(fail)
                .handler(slow)
                .handler(note)
                .handler(list_notes)
                .handler(publish)
                .handler(publish_others)
                .handler(resub)
                .handler(push)
                .handler(ask)
                .handler(hold)
                .handler(held_state)
                .handler(ask_within),
        )
        .publish_schema(!args.no_schema)
        .configure(|config| {
            config.ping_interval = Duration::from_millis(args.ping_interval_ms);
            config.ping_timeout = Duration::from_millis(args.ping_timeout_ms);
            config.presence_grace = Duration::from_millis(args.presence_grace_ms);
            config.limits.rate_per_sec = (args.rate_per_sec > 0).then_some(args.rate_per_sec);
            config.limits.rate_burst = args.rate_burst;
            if let Some(n) = args.max_message_size {
                config.limits.max_message_size = n;
            }
            if let Some(n) = args.max_in_flight_requests {
                config.limits.max_in_flight_requests = n;
            }
            if let Some(n) = args.compress_min_bytes {
                let mut compression = sente_lite::server::CompressionConfig::default();
                compression.min_bytes = n;
                config.compression = Some(compression);
            }
            if let Some(n) = args.max_concurrent_handlers {
                config.limits.max_concurrent_handlers = n;
            }
            if let Some(n) = args.max_subscriptions {
                config.limits.max_subscriptions = n;
            }
            if let Some(n) = args.max_channel_name {
                config.limits.max_channel_name = n;
            }
            if let Some(n) = args.max_violations {
                config.limits.max_violations = n;
            }
            if let Some(ms) = args.violation_refill_ms {
                config.limits.violation_refill = Duration::from_millis(ms);
            }
            if let Some(n) = args.max_connections_per_address {
                config.limits.max_connections_per_address = Some(n);
            }
            config.limits.drain_timeout = Duration::from_millis(args.drain_deadline_ms);
            // Losses are summed up quickly, for the tests to see them.
            config.telemetry.summary_interval = Duration::from_millis(200);
        })
        .auth(move |req| {
            let token_file = token_file.clone();
            async move {
                if let Some(path) = token_file {
                    // A few bytes, read when a connection opens.
                    let current = std::fs::read_to_string(&path).unwrap_or_default();
                    if req.query("token").as_deref() != Some(current.trim()) {
                        return Err(Rejection::unauthorized("token expired"));
                    }
                }
                match req.query("name") {
                    Some(name) if name == "intruder" => Err(Rejection::unauthorized("not you")),
                    name => Ok(name.map(Into::into)),
                }
            }
        })
        .channel("news/*", news_or_secret)
        .channel("secret/*", news_or_secret)
        .channel("plain/*", sente_lite::server::allow_all)
        .typed_channel(|desk: Desk, _access| async move {
            if desk.id < 1000 {
                Ok(())
            } else {
                Err(ErrorReply::new(
                    "forbidden",
                    format!("desk {} of {} is closed", desk.id, desk.team),
                ))
            }
        })
        .channel_options(
            "news/*",
            ChannelOptions {
                history_size: 100,
                presence: true,
                ..ChannelOptions::default()
            },
        )
        .presence_info(|ctx, _channel| {
            ctx.user_id()
                .map(|user| serde_json::json!({ "name": user.0 }))
        })
        .page("/sente-lite.js", "text/javascript", sente_lite::JS_CLIENT)
        .bind(args.addr)
        .await?;
    // Listening for SIGTERM before saying so: a test may send it as soon as it
    // reads the line below.
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening {}\n", server.ws_url()).as_bytes())
        .await?;
    out.flush().await?;

    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("draining");
    server
        .shutdown(Shutdown {
            deadline: Duration::from_millis(args.drain_deadline_ms),
            reconnect_spread: Duration::from_millis(args.reconnect_spread_ms),
            ..Shutdown::default()
        })
        .await;
    Ok(())
}
