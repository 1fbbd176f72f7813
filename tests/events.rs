//! Events shared by the crash-recovery server process and its test.

use serde::{Deserialize, Serialize};

/// A numbered note from a client; the server records it.
#[sente_lite::event("crash/note")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Note {
    pub(crate) client: String,
    pub(crate) seq: u64,
}

/// Which notes has the server recorded from `client`, in arrival order?
#[sente_lite::event("crash/received", reply = Vec<u64>)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Received {
    pub(crate) client: String,
}

/// Publish `text` on `channel`; the reply is how many subscribers it reached.
#[sente_lite::event("crash/publish", reply = usize)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Publish {
    pub(crate) channel: String,
    pub(crate) text: String,
}

/// What `crash/publish` publishes.
#[sente_lite::event("crash/news")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct News {
    pub(crate) text: String,
}

/// Disconnects every subscriber of `channel` (asking them back after
/// `reconnect_after_ms`), then publishes each of `texts` there; the reply is
/// how many connections were disconnected.
#[sente_lite::event("crash/kick", reply = usize)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Kick {
    pub(crate) channel: String,
    pub(crate) reconnect_after_ms: u32,
    pub(crate) texts: Vec<String>,
}
