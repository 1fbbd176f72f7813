//! The chat's events, shared by the chat server, the chat client and the
//! TypeScript export (`ts_export`).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Join a room: subscribe to its channel and get who is there (a client
/// keeps up with who comes and goes through the channel's presence).
#[sente_lite::event("chat/join", reply = Joined)]
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub(crate) struct Join {
    /// The room's name.
    pub(crate) room: String,
}

/// The answer to [`Join`].
#[derive(Debug, Clone, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub(crate) struct Joined {
    /// The room's name.
    pub(crate) room: String,
    /// Who is in the room, sorted.
    pub(crate) members: Vec<String>,
}

/// Leave a room.
#[sente_lite::event("chat/leave", reply = ())]
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub(crate) struct Leave {
    /// The room's name.
    pub(crate) room: String,
}

/// Say something in a room.
#[sente_lite::event("chat/say")]
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub(crate) struct Say {
    /// The room's name.
    pub(crate) room: String,
    /// What to say.
    pub(crate) text: String,
}

/// A message said in a room (published on the room's channel).
#[sente_lite::event("chat/message")]
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub(crate) struct ChatMessage {
    /// The room's name.
    pub(crate) room: String,
    /// Who said it.
    pub(crate) from: String,
    /// What was said.
    pub(crate) text: String,
    /// When, in milliseconds since the Unix epoch.
    pub(crate) at_ms: u64,
}

/// A room's channel: `room/lobby` is `Room { name: "lobby" }`. What is said
/// in the room is published on it.
#[sente_lite::channel("room/{name}", events(ChatMessage))]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Room {
    /// The room's name.
    pub(crate) name: String,
}

/// The channel name of a room.
pub(crate) fn channel(room: &str) -> String {
    use sente_lite::Channel;
    Room { name: room.into() }.name()
}
