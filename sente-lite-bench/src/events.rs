//! The events the sente-lite bench server routes, and the names every system shares.

use serde::{Deserialize, Serialize};

/// The channel (sente-lite) or room (socket.io) that fan-out publishes on.
pub(crate) const ROOM: &str = "bench/room";

/// Echo request: the reply is the payload itself.
#[sente_lite::event("bench/echo", reply = String)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Echo(pub(crate) String);

/// Asks the server to publish a [`Tick`] with the same fields on [`ROOM`].
#[sente_lite::event("bench/publish")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Publish {
    /// The message's number, counted by the publisher.
    pub(crate) seq: u64,
    /// Filler that makes the message the size the scenario asks for.
    pub(crate) pad: String,
}

/// What the fan-out scenario delivers to every subscriber.
#[sente_lite::event("bench/tick")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tick {
    /// The message's number, counted by the publisher.
    pub(crate) seq: u64,
    /// Filler.
    pub(crate) pad: String,
}

/// Asks the server to publish `count` [`Tick`]s on [`ROOM`] in one go,
/// numbered from 1; the reply is the offset of the last one in the channel.
#[sente_lite::event("bench/publish-many", reply = u64)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PublishMany {
    /// How many.
    pub(crate) count: u64,
    /// Filler of each.
    pub(crate) pad: String,
}
