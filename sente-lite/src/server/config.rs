//! Server settings: every knob with its documented default.

use std::time::Duration;

use crate::Codec;

/// Settings of a [`Server`](super::Server). `ServerConfig::default()` is what a
/// server uses unless told otherwise; every default is listed on its field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The WebSocket endpoint's path. Default `/ws`.
    pub path: String,
    /// How often the server sends `sl/ping`. Default 25 s (Sente's figure).
    pub ping_interval: Duration,
    /// How long past a ping a silent peer is kept before it is closed with 4000.
    /// Default 10 s.
    pub ping_timeout: Duration,
    /// How long a request the server sends to a client waits for the reply. Default 10 s.
    pub request_timeout: Duration,
    /// How long a user without connections still counts as online, so that a
    /// quick reconnect does not flap online/offline. Default 5 s.
    pub presence_grace: Duration,
    /// The codec a client gets when it asks for none. Default JSON.
    pub default_codec: Codec,
    /// Which browser origins may open a connection. Default [`OriginPolicy::SameHost`].
    pub origins: OriginPolicy,
    /// Per-connection and server-wide limits.
    pub limits: Limits,
    /// Client telemetry: whether it is accepted, from whom, and how much.
    pub telemetry: TelemetryConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            path: "/ws".into(),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            presence_grace: Duration::from_secs(5),
            default_codec: Codec::Json,
            origins: OriginPolicy::SameHost,
            limits: Limits::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// Client telemetry ([`crate::telemetry`]): whether the server routes
/// `telemetry/batch`, whether it needs an authenticated user, and the budget of
/// each connection.
///
/// The budget is two token buckets per connection, one counting records and one
/// counting bytes of logged text (message, source, field keys and values, after
/// escaping and cutting). A record is logged when both buckets hold a token;
/// otherwise it is dropped, counted in `StatsSnapshot::telemetry_dropped`, and
/// reported in a summary line (at most one per connection every
/// [`TelemetryConfig::summary_interval`]), never one line per record.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// Whether the server routes `telemetry/batch` into its tracing output.
    /// Default on. Off, the event is unknown to the server (`bad-event`).
    pub enabled: bool,
    /// Whether only connections with an authenticated user may send telemetry.
    /// Default off (anonymous pages may report their errors). On, a batch from
    /// an anonymous connection is refused: the client gets an `sl/error` frame
    /// with code `forbidden`, and its records are counted as dropped.
    pub require_user: bool,
    /// Records logged per second per connection, sustained. Default 50.
    pub records_per_sec: u32,
    /// Records a connection may send at once above the sustained rate (the
    /// bucket's size). Default 500, a reconnecting client's whole backlog.
    pub records_burst: u32,
    /// Bytes of logged text per second per connection, sustained. Default 64 KiB.
    pub bytes_per_sec: u32,
    /// Bytes of logged text a connection may send at once (the bucket's size).
    /// Default 256 KiB. A record is let through while the bucket is not empty,
    /// so one record is never too large to pass; the bucket then owes the rest.
    pub bytes_burst: u32,
    /// The shortest time between two summary lines of one connection (records
    /// dropped over the budget or the batch size, refused, or lost by the
    /// client). The first line comes this long after the first loss. Default 5 s.
    pub summary_interval: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            require_user: false,
            records_per_sec: 50,
            records_burst: 500,
            bytes_per_sec: 64 << 10,
            bytes_burst: 256 << 10,
            summary_interval: Duration::from_secs(5),
        }
    }
}

/// Which `Origin` headers are accepted at the WebSocket upgrade.
///
/// Browsers send `Origin` with every WebSocket upgrade and attach the site's
/// cookies, so a page on another site could open a connection as the user
/// (cross-site WebSocket hijacking). Requests without an `Origin` header come
/// from non-browser clients and are always accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// The default: the origin's `host[:port]` must equal the request's `Host` header.
    SameHost,
    /// Only these origins (`scheme://host[:port]`, compared case-insensitively).
    AllowList(Vec<String>),
    /// Any origin. Only for servers that authenticate without cookies.
    Any,
}

/// Limits. Every bound is enforced, and what happens when it is hit is said here.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest inbound message, in bytes. Default 1 MiB. A larger one is answered
    /// with a `too-large` error and the connection is closed with 1009.
    pub max_message_size: usize,
    /// Inbound messages larger than this are logged as a warning. Default 512 KiB.
    pub warn_message_size: usize,
    /// Connections open at once. Default 50 000. Past it, upgrades get HTTP 503.
    pub max_connections: usize,
    /// Messages waiting to be written to one connection. Default 1024. A send
    /// that finds the queue full fails with `SendError::QueueFull` and the
    /// connection is closed with 4001 (slow consumer); the client reconnects.
    pub outbound_queue: usize,
    /// Requests from one peer being handled at once. Default 64. Past it, a
    /// request is answered `too-many-requests`.
    pub max_in_flight_requests: usize,
    /// Handlers running at once for one connection. Default 64. At the bound the
    /// server stops reading that connection until one finishes (backpressure).
    pub max_concurrent_handlers: usize,
    /// Sustained inbound messages per second per connection. Default 200; `None`
    /// disables the limit. A message over the limit is dropped, the peer is told
    /// `rate-limited` (at most once a second) and it counts as a violation.
    pub rate_per_sec: Option<u32>,
    /// Burst above the sustained rate. Default 400.
    pub rate_burst: u32,
    /// Protocol violations (bad frames, unknown events, bad payloads, rate limit)
    /// tolerated in a burst. Default 20; the allowance grows back by one every
    /// [`Limits::violation_refill`]. One more closes the connection with 1008.
    pub max_violations: u32,
    /// How fast the violation allowance grows back. Default 5 s.
    pub violation_refill: Duration,
    /// Channels one connection may be subscribed to. Default 256. Past it,
    /// subscribe is answered `forbidden`.
    pub max_subscriptions: usize,
    /// Longest channel name, in bytes. Default 256.
    pub max_channel_name: usize,
    /// tungstenite's read buffer per connection, allocated eagerly. Default 4 KiB
    /// (tungstenite's own default is 128 KiB).
    ///
    /// It is half of an idle connection's memory (7.9 KiB in all with 4 KiB,
    /// in `BENCHMARKS.md`), and the most read from the socket in one system
    /// call: smaller saves memory on servers holding many quiet connections,
    /// at the cost of more reads per large message.
    pub read_buffer_size: usize,
    /// Bytes buffered before a write reaches the socket. Default 4 KiB.
    pub write_buffer_size: usize,
    /// How long a graceful close waits for a connection's running handlers. Default 5 s.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            warn_message_size: 512 << 10,
            max_connections: 50_000,
            outbound_queue: 1024,
            max_in_flight_requests: 64,
            max_concurrent_handlers: 64,
            rate_per_sec: Some(200),
            rate_burst: 400,
            max_violations: 20,
            violation_refill: Duration::from_secs(5),
            max_subscriptions: 256,
            max_channel_name: 256,
            read_buffer_size: 4 << 10,
            write_buffer_size: 4 << 10,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// tungstenite's settings for these limits: small buffers, a bounded write
    /// buffer, and the message size limit.
    pub(crate) fn websocket_config(&self) -> tungstenite::protocol::WebSocketConfig {
        tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_write_buffer_size(self.write_buffer_size + self.max_message_size + (64 << 10))
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}
