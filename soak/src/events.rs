//! The events of the soak, shared by its server and its load.

use serde::{Deserialize, Serialize};

/// A request answered with its own text.
#[sente_lite::event("soak/echo", reply = String)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Echo {
    /// Sent back as the reply.
    pub text: String,
}

/// Publishes [`Said`] on `room`; answered with the publication's offset in
/// the room's history.
#[sente_lite::event("soak/say", reply = u64)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Say {
    /// The channel, `room/<n>`.
    pub room: String,
    /// What is said.
    pub text: String,
}

/// What [`Say`] publishes.
#[sente_lite::event("soak/said")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Said {
    /// The user who said it.
    pub from: String,
    /// What was said.
    pub text: String,
}

/// The channel of room `n`.
pub fn room(n: usize) -> String {
    format!("room/{n}")
}
