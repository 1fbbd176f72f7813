//! The application the in-process server runs for the fuzz targets: typed
//! payloads of several shapes, a request that fails, publications, channels
//! with history and presence, a channel family refused, an auth hook.

use sente_lite::server::{ChannelAccess, ChannelOptions, Rejection, ServerBuilder};
use sente_lite::{Ctx, ErrorReply, Router, Server};
use serde::{Deserialize, Serialize};

/// An enum in each of serde's representations.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) enum Shape {
    Dot,
    Circle(f32),
    Rect { w: u32, h: u32 },
    Path(Vec<(i16, i16)>),
}

/// Echoed back whole.
#[sente_lite::event("fuzz/echo", reply = Echo)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Echo {
    pub(crate) text: String,
    pub(crate) n: i64,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    pub(crate) reply_to: Option<u64>,
    pub(crate) shape: Shape,
}

/// A one-way note.
#[sente_lite::event("fuzz/note")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Note {
    pub(crate) seq: u64,
}

/// A one-way event without data.
#[sente_lite::event("fuzz/tick")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tick;

/// Always refused, with data.
#[sente_lite::event("fuzz/fail", reply = ())]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Fail {
    pub(crate) reason: String,
}

/// Publishes a note on `channel`; the reply is how many it reached.
#[sente_lite::event("fuzz/publish", reply = usize)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Publish {
    pub(crate) channel: String,
    pub(crate) seq: u64,
}

#[sente_lite::handler]
async fn echo(req: Echo) -> Echo {
    req
}

#[sente_lite::handler]
async fn note(_note: Note) {}

#[sente_lite::handler]
async fn tick(_tick: Tick) {}

#[sente_lite::handler]
async fn fail(req: Fail) -> Result<(), ErrorReply> {
    Err(ErrorReply::new("fuzz/refused", "refused").with_data(serde_json::json!(req.reason)))
}

#[sente_lite::handler]
async fn publish(ctx: Ctx, req: Publish) -> Result<usize, ErrorReply> {
    let server = ctx
        .server()
        .ok_or_else(|| ErrorReply::new("fuzz/no-server", "not on a server"))?;
    server
        .broadcast(&req.channel, &Note { seq: req.seq })
        .map_err(|e| ErrorReply::new("fuzz/encode", e.to_string()))
}

async fn rooms_only(access: ChannelAccess) -> Result<(), ErrorReply> {
    if access.channel.starts_with("secret/") {
        Err(ErrorReply::new("forbidden", "secret channels are closed"))
    } else {
        Ok(())
    }
}

/// The server the targets talk to, with small limits so that floods reach them.
pub(crate) fn server() -> ServerBuilder {
    Server::builder()
        .router(
            Router::new()
                .handler(echo)
                .handler(note)
                .handler(tick)
                .handler(fail)
                .handler(publish),
        )
        .configure(|config| {
            config.limits.max_message_size = 64 * 1024;
            config.limits.max_subscriptions = 8;
            config.limits.max_violations = 8;
        })
        .auth(|req| async move {
            let user = req.query("user");
            if user.as_deref() == Some("intruder") {
                Err(Rejection::unauthorized("not you"))
            } else {
                Ok(user.map(Into::into))
            }
        })
        .channel("room/*", rooms_only)
        .channel("secret/*", rooms_only)
        .channel_options(
            "room/*",
            ChannelOptions {
                history_size: 16,
                presence: true,
                ..ChannelOptions::default()
            },
        )
}
