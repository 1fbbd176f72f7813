//! Server settings: every knob with its documented default.

use std::time::Duration;

use serde::Deserialize;

use crate::Codec;
use crate::engine::{ChannelOptions, MemoryEngineConfig};

/// Settings of a [`Server`](super::Server). `ServerConfig::default()` is what a
/// server uses unless told otherwise; every default is listed on its field.
///
/// It reads the `[server]` table of a [settings file](crate::settings), a
/// duration as whole milliseconds under its name with `_ms` appended
/// (`ping_interval_ms`). Deserialized on its own, its values are not checked:
/// [`Settings::load`](crate::settings::Settings::load) checks them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The WebSocket endpoint's path. Default `/ws`.
    pub path: String,
    /// How often the server sends `sl/ping`. Default 25 s (Sente's figure).
    #[serde(rename = "ping_interval_ms", with = "crate::settings::de::millis")]
    pub ping_interval: Duration,
    /// How long past a ping a silent peer is kept before it is closed with 4000.
    /// Default 10 s.
    #[serde(rename = "ping_timeout_ms", with = "crate::settings::de::millis")]
    pub ping_timeout: Duration,
    /// How long a request the server sends to a client waits for the reply. Default 10 s.
    #[serde(rename = "request_timeout_ms", with = "crate::settings::de::millis")]
    pub request_timeout: Duration,
    /// How long a user without connections still counts as online (and a
    /// user without a subscription still counts as a channel's member), so
    /// that a quick reconnect does not flap. Default 5 s.
    #[serde(rename = "presence_grace_ms", with = "crate::settings::de::millis")]
    pub presence_grace: Duration,
    /// The codec a client gets when it asks for none. Default JSON.
    #[serde(deserialize_with = "crate::settings::de::codec")]
    pub default_codec: Codec,
    /// Which browser origins may open a connection. Default [`OriginPolicy::SameHost`].
    #[serde(deserialize_with = "crate::settings::de::origins")]
    pub origins: OriginPolicy,
    /// Which `Host` headers the server answers. Default [`HostPolicy::Auto`]:
    /// a server bound to a loopback address answers only `localhost`,
    /// `127.0.0.1` (any `127.x.y.z`) and `[::1]`, on any port, which stops DNS
    /// rebinding; a server bound to another address answers any host (list
    /// the names it serves with [`HostPolicy::AllowList`] to be protected too).
    #[serde(deserialize_with = "crate::settings::de::hosts")]
    pub hosts: HostPolicy,
    /// Per-connection and server-wide limits.
    pub limits: Limits,
    /// Client telemetry: whether it is accepted, from whom, and how much.
    pub telemetry: TelemetryConfig,
    /// Channel patterns (an exact name, or a prefix ending in `*`) with their
    /// history and presence; the first matching pattern decides, and a
    /// channel that matches none keeps neither. Default none.
    #[serde(deserialize_with = "crate::settings::de::channels")]
    pub channels: Vec<(String, ChannelOptions)>,
    /// The bounds of the default in-memory engine (unused when another
    /// engine is given to [`super::ServerBuilder::engine`]).
    pub memory_engine: MemoryEngineConfig,
    /// Whether `GET /schema` answers with the shapes of the application's
    /// events ([`crate::schema::Description`]), from which clients name the
    /// events they disagree on when the schema hashes differ. Default on; off,
    /// `/schema` is not found (404) and clients learn only that the hashes differ.
    pub publish_schema: bool,
    /// The HTTP API for other services (`/api/publish`, `/api/send`,
    /// `/api/disconnect`, `/api/presence`), with the keys that open it.
    /// Default `None`: off, its paths are not found (404).
    pub http_api: Option<super::HttpApiConfig>,
    /// Compressed frames (extension `compression`): large frames go out
    /// compressed to the clients that read them, and clients may send
    /// compressed frames. Default `None`: off (compressing costs far more CPU
    /// than a frame's handling; see [`CompressionConfig`]).
    pub compression: Option<CompressionConfig>,
}

/// When the server compresses what it sends ([`ServerConfig::compression`],
/// `[server.compression]` in the settings file).
///
/// A frame is compressed with raw DEFLATE for each connection that reads
/// compressed frames, when it is at least `min_bytes`; the compressed form is
/// sent when it is smaller. JSON text of realistic payloads shrinks to a
/// fifth or a quarter, at a cost of the order of 10 µs per KiB at level 1:
/// worth it where bandwidth costs more than CPU (mobile clients, metered
/// links), not on a local network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CompressionConfig {
    /// The smallest frame compressed, in bytes. Default 4096.
    pub min_bytes: usize,
    /// The DEFLATE level, 1 (fastest) to 9 (smallest). Default 1.
    pub level: u32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            min_bytes: 4096,
            level: 1,
        }
    }
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
            hosts: HostPolicy::Auto,
            limits: Limits::default(),
            telemetry: TelemetryConfig::default(),
            channels: Vec::new(),
            memory_engine: MemoryEngineConfig::default(),
            publish_schema: true,
            http_api: None,
            compression: None,
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
///
/// It reads `[server.telemetry]` of a [settings file](crate::settings).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    #[serde(rename = "summary_interval_ms", with = "crate::settings::de::millis")]
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

/// Which `Host` headers the server answers, on every HTTP request it serves
/// (the WebSocket upgrade, `/health`, `/metrics`, `/schema` and pages).
///
/// [`OriginPolicy::SameHost`] alone does not stop DNS rebinding: a page on
/// `http://evil.example:3000` whose name its owner then points at 127.0.0.1
/// sends `Host: evil.example:3000` and `Origin: http://evil.example:3000`,
/// which match. Checking `Host` against the names the server really has
/// refuses it. A refused request gets HTTP 403 and counts as a rejected
/// handshake when it was an upgrade. A request without a `Host` header does
/// not come from a browser and is answered.
///
/// Names are compared case-insensitively, without the port and without a
/// trailing dot; IPv6 addresses are written in brackets, as in the header
/// (`[::1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// The default: [`HostPolicy::Loopback`] when the server is bound to a
    /// loopback address, [`HostPolicy::Any`] otherwise (and when it is mounted
    /// in another HTTP stack, whose address it does not know). A server bound
    /// to 127.0.0.1 behind a reverse proxy that passes the public `Host` on
    /// must list that name with [`HostPolicy::AllowList`].
    Auto,
    /// `localhost`, any IPv4 loopback address (`127.x.y.z`) and `[::1]`.
    Loopback,
    /// These names (or IP addresses), on any port. Add `localhost` and
    /// `127.0.0.1` to reach the server directly as well.
    AllowList(Vec<String>),
    /// Any host: no check.
    Any,
}

impl HostPolicy {
    /// Whether every host is answered by a server bound to `bound`.
    pub(crate) fn allows_any(&self, bound: Option<std::net::SocketAddr>) -> bool {
        match self {
            Self::Any => true,
            Self::Auto => !bound.is_some_and(|addr| addr.ip().is_loopback()),
            Self::Loopback | Self::AllowList(_) => false,
        }
    }

    /// Whether a request with this `Host` header value is answered by a server
    /// bound to `bound` (unknown when mounted in another HTTP stack).
    pub(crate) fn allows(&self, host: &str, bound: Option<std::net::SocketAddr>) -> bool {
        let name = host_name(host);
        match self {
            Self::Any => true,
            Self::Auto if !bound.is_some_and(|addr| addr.ip().is_loopback()) => true,
            Self::Auto | Self::Loopback => is_loopback_name(name),
            Self::AllowList(names) => names
                .iter()
                .any(|allowed| host_name(allowed).eq_ignore_ascii_case(name)),
        }
    }
}

/// The host part of a `Host` header value: without the port and a trailing dot;
/// an IPv6 address keeps its brackets.
fn host_name(value: &str) -> &str {
    let value = value.trim();
    let name = if value.starts_with('[') {
        value.find(']').map_or(value, |end| &value[..=end])
    } else {
        value.split_once(':').map_or(value, |(name, _port)| name)
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// `localhost`, a name under `.localhost` (browsers resolve those to loopback
/// themselves), `127.x.y.z` or `[::1]`.
fn is_loopback_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    if let Some(v6) = lower.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok_and(|ip| {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        });
    }
    lower
        .parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Limits. Every bound is enforced, and what happens when it is hit is said here.
///
/// It reads `[server.limits]` of a [settings file](crate::settings), where `0`
/// stands for `None` (`rate_per_sec = 0` turns the rate limit off).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Largest inbound message, in bytes. Default 1 MiB. A larger one is answered
    /// with a `too-large` error and the connection is closed with 1009.
    pub max_message_size: usize,
    /// Inbound messages larger than this are logged as a warning. Default 512 KiB.
    /// A connection logs them at most once every 10 s, with how many there
    /// were since its last line.
    pub warn_message_size: usize,
    /// Connections open at once. Default 50 000. Past it, upgrades get HTTP 503.
    pub max_connections: usize,
    /// TCP connections open at once from one remote IP address, before and
    /// after the upgrade, on the server's own listener. Default `None`: no
    /// limit, because many users may share one address behind NAT; set it on a
    /// public server so that one host cannot take every connection (or every
    /// file descriptor). Past it, a new connection is answered HTTP 429 and
    /// closed, and counted as `errors.address_refused`. A server mounted in
    /// another HTTP stack leaves this to that stack.
    #[serde(deserialize_with = "crate::settings::de::zero_is_none::deserialize")]
    pub max_connections_per_address: Option<usize>,
    /// Messages waiting to be written to one connection. Default 1024. A send
    /// that finds the queue full fails with `SendError::QueueFull` and the
    /// connection is closed with 4001 (slow consumer); the client reconnects.
    pub outbound_queue: usize,
    /// Bytes waiting to be written to one connection. Default 4 MiB. Counted
    /// like [`Limits::outbound_queue`] and with the same answer when a send
    /// would pass it; one message is always taken into an empty queue, however
    /// large. With the write in progress (at most 64 messages or 256 KiB, or
    /// one larger message, on top of [`Limits::write_buffer_size`]), this
    /// bounds what one slow reader can hold of the server's memory.
    pub outbound_queue_bytes: usize,
    /// Requests from one peer accepted and not yet answered (running, or
    /// waiting for a handler slot). Default 64. Past it, a request is answered
    /// `too-many-requests` at once.
    pub max_in_flight_requests: usize,
    /// Handlers running at once for one connection. Default 64. What arrives
    /// past the bound waits in line (see [`Limits::max_waiting`]); a waiting
    /// request keeps its deadline and is answered `deadline-exceeded` when it
    /// passes.
    pub max_concurrent_handlers: usize,
    /// Frames waiting for a handler slot, per connection. Default 256. At this
    /// bound, or at [`Limits::max_waiting_bytes`], the server stops reading the
    /// connection until a handler finishes (TCP backpressure). The time it does
    /// not read never counts as the peer's silence.
    pub max_waiting: usize,
    /// Bytes (as received) of the frames waiting for a handler slot, per
    /// connection. Default 1 MiB; one frame always fits in an empty line.
    pub max_waiting_bytes: usize,
    /// Sustained inbound messages per second per connection. Default `None`:
    /// no rate limit, as a game loop, a dashboard or a benchmark's closed loop
    /// sends far more than any fixed rate would guess. What a connection can
    /// make the server hold is bounded without it (the waiting line, requests
    /// in flight, the outbound queue: the server stops reading a connection
    /// whose handlers are behind). Set it to bound how many frames one
    /// connection may make the server handle: a message over the limit is
    /// dropped, the peer is told `rate-limited` (at most once a second) and it
    /// counts as a violation. Announced in the handshake (`0` when off), and
    /// both clients of this project pace what they send by it.
    #[serde(deserialize_with = "crate::settings::de::zero_is_none::deserialize")]
    pub rate_per_sec: Option<u32>,
    /// Burst above the sustained rate, when there is one (never less than
    /// the rate). Default 400.
    pub rate_burst: u32,
    /// Protocol violations (bad frames, events of the wrong kind, bad payloads,
    /// reused request ids, rate limit) tolerated in a burst. Default 20; the
    /// allowance grows back by one every [`Limits::violation_refill`]. One more
    /// closes the connection with 1008. An unknown event is answered
    /// `bad-event` but is not a violation: a newer peer may know more events.
    pub max_violations: u32,
    /// How fast the violation allowance grows back. Default 5 s.
    #[serde(rename = "violation_refill_ms", with = "crate::settings::de::millis")]
    pub violation_refill: Duration,
    /// Channels one connection may be subscribed to. Default 256. Past it,
    /// subscribe is answered `forbidden`.
    pub max_subscriptions: usize,
    /// Longest channel name, in bytes. Default 256.
    pub max_channel_name: usize,
    /// tungstenite's read buffer per connection while it reads. Default 4 KiB
    /// (tungstenite's own default is 128 KiB): the most read from the socket
    /// in one system call. A connection idle for
    /// [`Limits::idle_park_after`] gives it back.
    pub read_buffer_size: usize,
    /// Bytes buffered before a write reaches the socket. Default 4 KiB.
    pub write_buffer_size: usize,
    /// How long a connection must have read nothing, with no request in
    /// flight and nothing to write, before it lets go of its WebSocket
    /// buffers (the read buffer above, the write buffer, the write queues).
    /// Default 1 s. A parked connection is a byte stream and a task: it
    /// waits for the peer with 32 bytes of room, reads a whole small frame
    /// that arrives in them (a heartbeat's `sl/pong`) without its buffers,
    /// and makes them again when the peer says more; the text and binary
    /// frames the server sends it are written as it is, and any other frame
    /// (a close) through a WebSocket without a read buffer, let go as soon
    /// as the write is out.
    /// Nothing of this shows on the wire. Longer keeps busy connections'
    /// buffers between bursts, at the cost of memory.
    #[serde(rename = "idle_park_after_ms", with = "crate::settings::de::millis")]
    pub idle_park_after: Duration,
    /// How long a graceful close waits for a connection's running handlers. Default 5 s.
    #[serde(rename = "drain_timeout_ms", with = "crate::settings::de::millis")]
    pub drain_timeout: Duration,
    /// How long a request head (request line and headers) may take to arrive
    /// on an HTTP connection, counted from when the server starts waiting for
    /// it: from the accept (after TLS), and on a kept-alive connection from
    /// the end of the previous answer. Past it the connection is closed, so
    /// a socket that sends nothing, or half a request, holds no descriptor for
    /// longer, and neither does a kept-alive connection that sends no further
    /// request. Default 10 s: a client sends its request at once, and the
    /// native client gives up a handshake after 10 s anyway (the TLS handshake
    /// has its own 10 s before this starts). Does not apply after the upgrade,
    /// where heartbeats take over.
    #[serde(
        rename = "http_header_timeout_ms",
        with = "crate::settings::de::millis"
    )]
    pub http_header_timeout: Duration,
    /// How long an HTTP connection that has not upgraded may go without a
    /// byte read or written. Past it the connection is closed. This bounds
    /// what the header timeout does not: a peer that does not read its answer,
    /// a request body that stops, an authentication hook that does not return.
    /// Default 30 s. Does not apply after the upgrade.
    #[serde(rename = "http_idle_timeout_ms", with = "crate::settings::de::millis")]
    pub http_idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            warn_message_size: 512 << 10,
            max_connections: 50_000,
            max_connections_per_address: None,
            outbound_queue: 1024,
            outbound_queue_bytes: 4 << 20,
            max_in_flight_requests: 64,
            max_concurrent_handlers: 64,
            max_waiting: 256,
            max_waiting_bytes: 1 << 20,
            rate_per_sec: None,
            rate_burst: 400,
            max_violations: 20,
            violation_refill: Duration::from_secs(5),
            max_subscriptions: 256,
            max_channel_name: 256,
            read_buffer_size: 4 << 10,
            write_buffer_size: 4 << 10,
            idle_park_after: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(5),
            http_header_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// What the handshake announces of these limits (`0` for "none").
    pub(crate) fn announced(&self) -> crate::protocol::PeerLimits {
        let small = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        crate::protocol::PeerLimits {
            max_in_flight: small(self.max_in_flight_requests),
            rate_per_sec: self.rate_per_sec.unwrap_or(0),
            rate_burst: self
                .rate_per_sec
                .map_or(0, |rate| self.rate_burst.max(rate)),
            max_subscriptions: small(self.max_subscriptions),
            max_channel_name: small(self.max_channel_name),
        }
    }

    /// tungstenite's settings for these limits: small buffers and the message
    /// size limit. tungstenite's own bound on its write buffer is lifted: the
    /// connection engine hands it one batch at a time (at most 64 messages
    /// or 256 KiB, or one larger message) and waits for the flush, so the
    /// buffer never holds more than `write_buffer_size` and one batch. A
    /// bound there would make any message the server sends over it fail the
    /// connection without a close.
    pub(crate) fn websocket_config(&self) -> tungstenite::protocol::WebSocketConfig {
        tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}

#[cfg(test)]
mod tests {
    use super::HostPolicy;

    #[test]
    fn host_policies_compare_the_name_without_port_case_or_trailing_dot() {
        let loopback: Option<std::net::SocketAddr> = "127.0.0.1:3000".parse().ok();
        let public: Option<std::net::SocketAddr> = "192.0.2.7:3000".parse().ok();
        for host in [
            "localhost",
            "LOCALHOST:3000",
            "localhost.:80",
            "chat.localhost:3000",
            "127.0.0.1",
            "127.8.9.10:3000",
            "[::1]",
            "[::1]:3000",
            "[::ffff:127.0.0.1]:3000",
        ] {
            assert!(HostPolicy::Loopback.allows(host, None), "{host}");
            assert!(HostPolicy::Auto.allows(host, loopback), "{host}");
        }
        for host in [
            "evil.example:3000",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "[::2]:3000",
            "192.0.2.7:3000",
            "",
        ] {
            assert!(!HostPolicy::Loopback.allows(host, None), "{host}");
            assert!(!HostPolicy::Auto.allows(host, loopback), "{host}");
            assert!(HostPolicy::Auto.allows(host, public), "{host}");
            assert!(HostPolicy::Auto.allows(host, None), "{host}");
            assert!(HostPolicy::Any.allows(host, loopback), "{host}");
        }
        let listed = HostPolicy::AllowList(vec!["App.Example".into(), "[2001:db8::1]".into()]);
        assert!(listed.allows("app.example:8443", loopback));
        assert!(listed.allows("[2001:db8::1]:80", public));
        assert!(!listed.allows("localhost:3000", loopback));
        assert!(!listed.allows("sub.app.example", public));
    }
}
