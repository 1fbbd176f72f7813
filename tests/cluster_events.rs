//! Events shared by the cluster test server processes and their tests.

use serde::{Deserialize, Serialize};

/// Publish `text` on `channel` through the engine; the reply is the
/// publication's position as `epoch:offset`.
#[sente_lite::event("cluster/publish", reply = String)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Publish {
    pub(crate) channel: String,
    pub(crate) text: String,
}

/// Publish `text` on `channel` through the engine to every subscriber but
/// the connection asking; the reply is how many subscribers of this server
/// it reached (0 through Redis: delivery comes later).
#[sente_lite::event("cluster/publish-others", reply = usize)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PublishOthers {
    pub(crate) channel: String,
    pub(crate) text: String,
}

/// What `cluster/publish` publishes.
#[sente_lite::event("cluster/news")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct News {
    pub(crate) text: String,
}

/// Send `text` to every connection of `user`, on every server; the reply is
/// how many connections of this server it reached.
#[sente_lite::event("cluster/tell", reply = usize)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tell {
    pub(crate) user: String,
    pub(crate) text: String,
}

/// What `cluster/tell` sends.
#[sente_lite::event("cluster/note")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Note {
    pub(crate) text: String,
}

/// The members of `channel` as this server's engine knows them: user ids, sorted.
#[sente_lite::event("cluster/members", reply = Vec<String>)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Members {
    pub(crate) channel: String,
}

/// This server's `/health` status and its `engine` check.
#[sente_lite::event("cluster/health", reply = (String, String))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HealthOf;

/// Which server process answers: its `--name`.
#[sente_lite::event("cluster/name", reply = String)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NameOf;

/// Ask `user` (one of its connections, on any server) `text`; the reply is
/// its answer.
#[sente_lite::event("cluster/ask", reply = String)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ask {
    pub(crate) user: String,
    pub(crate) text: String,
}

/// What `cluster/ask` asks a client; it answers.
#[sente_lite::event("cluster/question", reply = String)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Question {
    pub(crate) text: String,
}

/// Asks the server to close every connection of `user`, on every server.
#[sente_lite::event("cluster/kick", reply = usize)]
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Kick {
    pub(crate) user: String,
    pub(crate) message: String,
}
