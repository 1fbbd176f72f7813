//! What the hostile-input server runs with, shared by the server process
//! (`bin/hostile_server.rs`) and its test: the events it routes, its channels
//! and the small limits that make every flood quick to reach.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Largest inbound message: 64 KiB (the library's default is 1 MiB).
pub(crate) const MAX_MESSAGE_SIZE: usize = 64 << 10;
/// Inbound data frames per second per connection, sustained.
pub(crate) const RATE_PER_SEC: u32 = 100;
/// Inbound data frames per connection at once above the sustained rate.
pub(crate) const RATE_BURST: u32 = 200;
/// Requests in flight per connection.
pub(crate) const MAX_IN_FLIGHT: usize = 8;
/// Channels one connection may be subscribed to.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 4;
/// Longest channel name, in bytes.
pub(crate) const MAX_CHANNEL_NAME: usize = 64;
/// Violations a connection may commit in a burst (the library's default).
pub(crate) const MAX_VIOLATIONS: u32 = 20;
/// Messages waiting to be written to one connection.
pub(crate) const OUTBOUND_QUEUE: usize = 64;
/// Bytes waiting to be written to one connection.
pub(crate) const OUTBOUND_QUEUE_BYTES: usize = 256 << 10;
/// How often the server pings; a peer silent for twice this is closed with 4000.
pub(crate) const PING_INTERVAL: Duration = Duration::from_millis(500);
/// How long past a ping a silent peer is kept.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a request head may take to arrive, and how long an HTTP
/// connection may stay idle before it upgrades.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_millis(500);
/// The channel the server publishes on all the time, while it has subscribers.
pub(crate) const BUSY_CHANNEL: &str = "busy/feed";
/// How often the server publishes a [`Tick`] on [`BUSY_CHANNEL`].
pub(crate) const BUSY_EVERY: Duration = Duration::from_millis(4);
/// The size of each [`Tick`]'s padding, in bytes (2 MB a second in all).
pub(crate) const BUSY_PAD: usize = 8 << 10;
/// Channels open to all, with presence (`open/*`).
pub(crate) const OPEN_CHANNELS: &str = "open/*";
/// Channels whose authorisation refuses everyone (`secret/*`).
pub(crate) const SECRET_CHANNELS: &str = "secret/*";

/// Echo `text` back.
#[sente_lite::event("hostile/echo", reply = String)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Echo {
    pub(crate) text: String,
}

/// Answered after `ms` milliseconds.
#[sente_lite::event("hostile/slow", reply = u64)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Slow {
    pub(crate) ms: u64,
}

/// A one-way note; the server drops it.
#[sente_lite::event("hostile/note")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Note {
    pub(crate) text: String,
}

/// What the server publishes on [`BUSY_CHANNEL`].
#[sente_lite::event("hostile/tick")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tick {
    pub(crate) seq: u64,
    pub(crate) pad: String,
}
