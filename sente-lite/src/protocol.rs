//! The wire protocol's vocabulary: versions, subprotocols, control frames and error codes.
//!
//! `docs/PROTOCOL.md` is the normative description; this module is its Rust form.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks, sent in [`Handshake::version`].
pub const PROTOCOL_VERSION: u16 = 1;

/// WebSocket subprotocol that selects the JSON text encoding.
pub const SUBPROTOCOL_JSON: &str = "sente-lite.json.v1";

/// WebSocket subprotocol that selects the postcard binary encoding.
pub const SUBPROTOCOL_POSTCARD: &str = "sente-lite.postcard.v1";

/// The largest request id a JSON frame may carry: 2^53 - 1, the largest
/// integer every JSON peer (JavaScript's numbers included) holds exactly. A
/// JSON frame with a larger id is a `bad-frame`.
pub const MAX_JSON_REQ_ID: u64 = (1 << 53) - 1;

/// The protocol extension that replays missed publications from `since`
/// (`sl/sub` with `since`, and the server's `sl/resub`).
pub const EXTENSION_RECOVERY: &str = "recovery";

/// The protocol extension of channel presence (`sl/presence`, `sl/presence-diff`).
pub const EXTENSION_PRESENCE: &str = "presence";

/// The protocol extension of request cancellation (`sl/cancel`): a
/// requester that stops waiting tells the peer, which drops the handler.
/// A client takes the server's `sl/cancel` only after naming the extension
/// in its `sl/extensions` frame.
pub const EXTENSION_CANCEL: &str = "cancel";

/// The protocol extension of compressed frames (frame kind 17): a server
/// that offers it sends large frames compressed to a client that named it in
/// `sl/extensions`, and reads compressed frames from any client.
pub const EXTENSION_COMPRESSION: &str = "compression";

/// The namespace of the protocol's own frames (`sl/ping`, `sl/ok`, ...). No event may use it.
pub const RESERVED_NAMESPACE: &str = "sl";

/// Identifies one connection on one server. Unique for the server process's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifies a user; one user may hold many connections (tabs, devices).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub String);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for UserId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Identifies a request in flight in one direction on one connection.
///
/// Chosen by the sender, unique among its own requests still in flight; at most
/// 2^53 - 1 so that JavaScript peers read it exactly.
pub type RequestId = u64;

/// Heartbeat settings the server announces in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// How often the server sends `sl/ping`, in milliseconds.
    pub interval_ms: u32,
    /// How long a peer may stay silent before it is considered dead, in milliseconds.
    pub timeout_ms: u32,
}

/// The first frame on every connection, sent by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// Protocol version, [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The connection's id on this server.
    pub conn_id: ConnId,
    /// The authenticated user, if any.
    pub user_id: Option<UserId>,
    /// Ping interval and silence timeout.
    pub heartbeat: Heartbeat,
    /// The server's [schema hash](crate::registry::schema_hash), 16 lowercase hex digits.
    pub schema_hash: String,
    /// The largest message the server accepts, in bytes.
    pub max_message_size: u32,
    /// Protocol extensions the server offers (for example `"recovery"`, `"presence"`).
    /// A peer uses an extension only when it is listed here.
    pub extensions: Vec<String>,
    /// The limits the client must keep to (absent in a handshake from a server
    /// that does not announce them: no limit is known then).
    #[serde(default)]
    pub limits: PeerLimits,
}

/// The per-connection limits a server announces in its handshake, so that a
/// client keeps to them instead of learning them from refusals. Zero means
/// "no limit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLimits {
    /// Requests the server accepts in flight at once; past it a request is
    /// answered `too-many-requests`.
    #[serde(default)]
    pub max_in_flight: u32,
    /// Data frames per second the server reads, sustained; past it a frame is
    /// dropped, answered `rate-limited` and counted as a violation.
    #[serde(default)]
    pub rate_per_sec: u32,
    /// Data frames the server reads in a burst above the sustained rate.
    #[serde(default)]
    pub rate_burst: u32,
    /// Channels one connection may be subscribed to.
    #[serde(default)]
    pub max_subscriptions: u32,
    /// The longest channel name, in bytes.
    #[serde(default)]
    pub max_channel_name: u32,
}

/// A position in a channel's stream of publications, for missed-message recovery.
///
/// `offset` counts publications in the channel; `epoch` changes whenever the
/// channel's history is lost (for example a restart without persistence), so an
/// offset is only meaningful together with the epoch it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    /// The stream's generation.
    pub epoch: String,
    /// The number of the last publication seen in that epoch.
    pub offset: u64,
}

/// What the server answers to a subscribe request (the payload of its `sl/ok` reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeReply {
    /// The channel's current position, when the channel keeps positions.
    pub position: Option<StreamPosition>,
    /// `true` when the subscribe asked to resume from a position and every
    /// publication since then was delivered. `false` means a gap: the client
    /// must reload the channel's state instead of assuming continuity.
    pub recovered: bool,
}

/// One member of a channel's presence: a user with at least one connection
/// subscribed to the channel (anonymous connections are not members).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceMember {
    /// The user.
    pub user_id: UserId,
    /// What the server attaches to the user in this channel (a name, an
    /// avatar), or `None`. JSON on the JSON wire; JSON text on the postcard wire.
    #[serde(with = "json_text")]
    pub info: Option<serde_json::Value>,
}

/// What the server answers to a presence request (the payload of its `sl/ok`
/// reply): the channel's members, sorted by user id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceSnapshot {
    /// Every member, sorted by user id.
    pub members: Vec<PresenceMember>,
}

/// A change to a channel's presence, sent as `sl/presence-diff` to the
/// connections that watch it. Apply `left` before `joined`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceDiff {
    /// Users that became members (or whose info changed).
    pub joined: Vec<PresenceMember>,
    /// Users that are no longer members.
    pub left: Vec<UserId>,
}

/// `Option<serde_json::Value>` as JSON in human-readable formats and as JSON
/// text (`Option<String>`) in binary ones, where a self-describing value cannot travel.
mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<serde_json::Value>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return value.serialize(serializer);
        }
        let text = match value {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(value.to_string()),
        };
        text.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<serde_json::Value>, D::Error> {
        if deserializer.is_human_readable() {
            let value = Option::<serde_json::Value>::deserialize(deserializer)?;
            return Ok(value.filter(|v| !v.is_null()));
        }
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("presence info is not JSON: {e}"))),
        }
    }
}

/// Why a peer is closing the connection, sent as `sl/close` just before the
/// WebSocket close frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseReason {
    /// A machine-readable code: `going-away`, `policy`, `too-large`, `timeout`, ...
    pub code: Cow<'static, str>,
    /// A sentence for people.
    pub message: String,
    /// When the peer should reconnect, in milliseconds from now (drain in batches);
    /// `None` means "use your own backoff".
    pub reconnect_after_ms: Option<u32>,
}

/// An error told to the peer: the error half of a reply, or a standalone `sl/error` frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorReply {
    /// Machine-readable code: one of [`codes`] for protocol errors, or an
    /// application's own (`namespace/name` style is recommended, e.g. `user/not-found`).
    pub code: Cow<'static, str>,
    /// A sentence for people.
    pub message: String,
    /// Optional structured details. `null` counts as no data: it travels as an
    /// absent field, and comes back as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl ErrorReply {
    /// An error with a code and a message and no data.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            data: None,
        }
    }

    /// Attaches structured details.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// The protocol's own error codes.
pub mod codes {
    /// The frame could not be decoded at all (not JSON / postcard, wrong shape, wrong frame type).
    pub const BAD_FRAME: &str = "bad-frame";
    /// The event id or key is not routed here, or was sent as the wrong kind (request vs event).
    pub const BAD_EVENT: &str = "bad-event";
    /// The event is known but its payload does not match its type.
    pub const BAD_PAYLOAD: &str = "bad-payload";
    /// A request reused the id of a request still in flight.
    pub const DUPLICATE_REQUEST: &str = "duplicate-request";
    /// Too many requests in flight on this connection.
    pub const TOO_MANY_REQUESTS: &str = "too-many-requests";
    /// The request's deadline passed before it was handled or answered.
    pub const DEADLINE_EXCEEDED: &str = "deadline-exceeded";
    /// The handler failed unexpectedly (for example it panicked).
    pub const INTERNAL: &str = "internal";
    /// The message is larger than the peer accepts.
    pub const TOO_LARGE: &str = "too-large";
    /// The peer sent faster than its rate limit.
    pub const RATE_LIMITED: &str = "rate-limited";
    /// The peer may not do this (for example subscribe to that channel).
    pub const FORBIDDEN: &str = "forbidden";
    /// The server is shutting down and takes no new work.
    pub const SHUTTING_DOWN: &str = "shutting-down";
}

/// A frame of the protocol's own (everything but events, requests, replies and
/// publications, which carry typed payloads).
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// `sl/handshake`: the server's first frame.
    Handshake(Handshake),
    /// `sl/ping`: answered by a `sl/pong` with the same number.
    Ping(u64),
    /// `sl/pong`: the answer to a ping.
    Pong(u64),
    /// `sl/sub`: subscribe to a channel, optionally resuming from a position.
    /// Answered by a reply carrying a [`SubscribeReply`].
    Subscribe {
        /// The request id the reply will carry.
        req_id: RequestId,
        /// The channel name.
        channel: String,
        /// Resume after this position (missed-message recovery).
        since: Option<StreamPosition>,
    },
    /// `sl/unsub`: leave a channel. Answered by an empty `sl/ok` reply.
    Unsubscribe {
        /// The request id the reply will carry.
        req_id: RequestId,
        /// The channel name.
        channel: String,
    },
    /// `sl/presence`: ask for a channel's presence (extension `presence`), and
    /// start (`watch: true`) or stop (`watch: false`) receiving its changes.
    /// Answered by a reply carrying a [`PresenceSnapshot`].
    Presence {
        /// The request id the reply will carry.
        req_id: RequestId,
        /// The channel name (the connection must be subscribed to it).
        channel: String,
        /// Whether to receive `sl/presence-diff` frames from now on.
        watch: bool,
    },
    /// `sl/presence-diff`: members joined or left a watched channel.
    PresenceDiff {
        /// The channel name.
        channel: String,
        /// What changed.
        diff: PresenceDiff,
    },
    /// `sl/resub`: the server ended the connection's subscription to
    /// `channel` because its subscribers here may have missed publications
    /// (part of the `recovery` extension). The client subscribes again with
    /// `since`, the largest position it holds for the channel, and so learns
    /// through the normal recovery whether it missed anything; a client that
    /// ignores it stops receiving the channel. Only a server sends it.
    Resubscribe {
        /// The channel name.
        channel: String,
    },
    /// `sl/cancel`: the sender of request `req_id` stopped waiting for its
    /// reply (extension `cancel`). The receiver drops the request's handler,
    /// or takes it out of the waiting line, and sends no reply; a cancel of a
    /// request it does not hold (finished, or never seen) is ignored.
    Cancel {
        /// The id of the sender's own request.
        req_id: RequestId,
    },
    /// `sl/extensions`: the extensions whose frames the client takes from the
    /// server (for example [`EXTENSION_CANCEL`]). Sent by a client, once,
    /// after the handshake and before anything else; the server ignores the
    /// names it does not offer.
    Extensions(Vec<String>),
    /// `sl/error`: something the peer sent was rejected and no reply can carry it.
    Error(ErrorReply),
    /// `sl/close`: the reason for the close that follows.
    Close(CloseReason),
}

impl Control {
    /// The request id of a frame that asks for an answer (`sl/sub`,
    /// `sl/unsub`, `sl/presence`), or `None`.
    pub fn req_id(&self) -> Option<RequestId> {
        match self {
            Self::Subscribe { req_id, .. }
            | Self::Unsubscribe { req_id, .. }
            | Self::Presence { req_id, .. } => Some(*req_id),
            _ => None,
        }
    }
}
