//! The two encodings of the protocol envelope: JSON text frames and postcard binary frames.
//!
//! A connection encodes with the [`Codec`] chosen by the WebSocket subprotocol
//! ([`Codec::negotiate`]). Inbound frames are decoded by their frame type: a text
//! frame as JSON, a binary frame as postcard, so either kind of peer is understood.
//! Decoding borrows from the frame and never panics: any input gives an
//! [`Inbound`] or a [`ProtocolError`].

pub mod compressed;
mod json;
mod json_read;
mod json_str;
mod postcard;

pub(crate) use json::{decode_event as decode_json_event, event_head as json_event_head};

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tungstenite::Message;

use crate::protocol::{
    Control, ErrorReply, RequestId, SUBPROTOCOL_JSON, SUBPROTOCOL_POSTCARD, StreamPosition,
};
use crate::{EncodeError, Event, EventKey, ProtocolError, Request};

/// The encoding a connection sends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    /// JSON text frames (`sente-lite.json.v1`), readable with `JSON.parse`. The default.
    #[default]
    Json,
    /// postcard binary frames (`sente-lite.postcard.v1`), compact, for Rust peers.
    Postcard,
}

impl Codec {
    /// Both codecs, in the server's order of preference when a client offers both.
    pub const ALL: [Codec; 2] = [Codec::Postcard, Codec::Json];

    /// The WebSocket subprotocol that selects this codec.
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Self::Json => SUBPROTOCOL_JSON,
            Self::Postcard => SUBPROTOCOL_POSTCARD,
        }
    }

    /// The codec a subprotocol name selects, if any.
    pub fn from_subprotocol(name: &str) -> Option<Self> {
        match name.trim() {
            SUBPROTOCOL_JSON => Some(Self::Json),
            SUBPROTOCOL_POSTCARD => Some(Self::Postcard),
            _ => None,
        }
    }

    /// Picks the codec for a connection from the subprotocols a client offered
    /// (the `Sec-WebSocket-Protocol` values, in the client's order): the first one
    /// this crate knows, or `None` when the client offered subprotocols but none
    /// of ours. A client that offers none gets JSON (`Some(Codec::Json)` with no
    /// subprotocol echoed).
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut any = false;
        for name in offered.into_iter().flat_map(|v| v.split(',')) {
            any = true;
            if let Some(codec) = Self::from_subprotocol(name) {
                return Some(codec);
            }
        }
        if any { None } else { Some(Self::Json) }
    }

    /// `"json"` or `"postcard"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Postcard => "postcard",
        }
    }

    /// Encodes a one-way event.
    pub fn encode_event<E: Event>(self, event: &E) -> Result<Message, EncodeError> {
        match self {
            Self::Json => json::event(E::ID, None, event),
            Self::Postcard => postcard::event(E::KEY, None, event),
        }
    }

    /// Encodes a request with its id and an optional deadline (milliseconds from now).
    pub fn encode_request<E: Request>(
        self,
        req_id: RequestId,
        deadline_ms: Option<u32>,
        request: &E,
    ) -> Result<Message, EncodeError> {
        match self {
            Self::Json => json::event(E::ID, Some((req_id, deadline_ms)), request),
            Self::Postcard => postcard::event(E::KEY, Some((req_id, deadline_ms)), request),
        }
    }

    /// Encodes the successful reply to request `req_id`.
    pub fn encode_reply<R: Serialize + ?Sized>(
        self,
        req_id: RequestId,
        reply: &R,
    ) -> Result<Message, EncodeError> {
        match self {
            Self::Json => json::reply_ok(req_id, reply),
            Self::Postcard => postcard::reply_ok(req_id, reply),
        }
    }

    /// Encodes the error reply to request `req_id`.
    pub fn encode_error_reply(self, req_id: RequestId, error: &ErrorReply) -> Message {
        match self {
            Self::Json => json::reply_err(req_id, error),
            Self::Postcard => postcard::reply_err(req_id, error),
        }
    }

    /// Encodes a publication of `event` on `channel`, with its stream position if the
    /// channel keeps one.
    ///
    /// Broadcast encodes once per codec and shares the resulting [`Message`]
    /// (cloning it only bumps a reference count).
    pub fn encode_publication<E: Event>(
        self,
        channel: &str,
        position: Option<&StreamPosition>,
        event: &E,
    ) -> Result<Message, EncodeError> {
        match self {
            Self::Json => json::publication(channel, E::ID, position, event),
            Self::Postcard => postcard::publication(channel, E::KEY, position, event),
        }
    }

    /// Encodes a value alone, as it stands in a frame's payload place: JSON
    /// text, or postcard bytes. With [`Codec::encode_publication_of_payload`],
    /// a publication can be encoded once where it is published and framed
    /// where it is delivered (another process, say).
    pub fn encode_payload<T: Serialize + ?Sized>(
        self,
        what: &'static str,
        value: &T,
    ) -> Result<bytes::Bytes, EncodeError> {
        match self {
            Self::Json => json::payload(what, value).map(bytes::Bytes::from),
            Self::Postcard => postcard::payload(what, value).map(bytes::Bytes::from),
        }
    }

    /// Frames a payload from [`Codec::encode_payload`] (of the same codec)
    /// as the `sl/pub` of event `id` on `channel` at `position`: the same
    /// bytes as [`Codec::encode_publication`] of the value. A JSON payload
    /// that is not JSON text is an error.
    pub fn encode_publication_of_payload(
        self,
        channel: &str,
        id: &str,
        position: &StreamPosition,
        payload: &[u8],
    ) -> Result<Message, EncodeError> {
        match self {
            Self::Json => {
                let text = json_text("publication", payload)?;
                json::publication_of_payload(channel, id, position, text)
            }
            Self::Postcard => Ok(postcard::publication_of_payload(
                channel,
                EventKey::of(id),
                position,
                payload,
            )),
        }
    }

    /// Frames a payload from [`Codec::encode_payload`] (of the same codec)
    /// as the one-way event `id`: the same bytes as [`Codec::encode_event`]
    /// of the value. A JSON payload that is not JSON text is an error.
    pub fn encode_event_of_payload(self, id: &str, payload: &[u8]) -> Result<Message, EncodeError> {
        match self {
            Self::Json => {
                let text = json_text("event", payload)?;
                json::event_of_payload(id, text)
            }
            Self::Postcard => Ok(postcard::event_of_payload(EventKey::of(id), payload)),
        }
    }

    /// Frames a payload from [`Codec::encode_payload`] (of the same codec) as
    /// request `req_id` of event `id`: the same bytes as
    /// [`Codec::encode_request`] of the value.
    pub fn encode_request_of_payload(
        self,
        id: &str,
        req_id: RequestId,
        deadline_ms: Option<u32>,
        payload: &[u8],
    ) -> Result<Message, EncodeError> {
        match self {
            Self::Json => {
                let text = json_text("request", payload)?;
                json::request_of_payload(id, req_id, deadline_ms, text)
            }
            Self::Postcard => Ok(postcard::request_of_payload(
                EventKey::of(id),
                req_id,
                deadline_ms,
                payload,
            )),
        }
    }

    /// Encodes a control frame.
    pub fn encode_control(self, control: &Control) -> Message {
        match self {
            Self::Json => json::control(control),
            Self::Postcard => postcard::control(control),
        }
    }

    /// Decodes an inbound WebSocket message: text as JSON, binary as postcard.
    ///
    /// WebSocket-level ping, pong and close messages are not protocol frames and
    /// give [`ProtocolError::BadFrame`]; the connection handles them before decoding.
    pub fn decode(message: &Message) -> Result<Inbound<'_>, ProtocolError> {
        match message {
            Message::Text(text) => json::decode(text.as_str()),
            Message::Binary(bytes) => postcard::decode(bytes),
            other => Err(ProtocolError::BadFrame {
                encoding: "websocket",
                detail: format!(
                    "expected a text or binary message, got {}",
                    message_kind(other)
                ),
            }),
        }
    }

    /// Decodes a JSON text frame.
    pub fn decode_json(text: &str) -> Result<Inbound<'_>, ProtocolError> {
        json::decode(text)
    }

    /// Decodes a postcard binary frame.
    pub fn decode_postcard(bytes: &[u8]) -> Result<Inbound<'_>, ProtocolError> {
        postcard::decode(bytes)
    }
}

/// Unused room an encoded frame's buffer may keep; more is given back.
const FRAME_SLACK: usize = 1024;

/// A text frame of `text`, its buffer cut down as [`binary_frame`]'s.
fn text_frame(mut text: String) -> Message {
    if text.capacity() - text.len() > FRAME_SLACK {
        text.shrink_to_fit();
    }
    Message::Text(text.into())
}

/// A binary frame of `bytes`. An encoder's buffer grows by doubling, so it
/// may be twice what it holds, while a queued frame is counted by its length
/// and a publication's frame may be kept by a channel's history: a buffer
/// with more than [`FRAME_SLACK`] bytes unused is cut to its length (in
/// place: the allocator keeps the block and frees its tail), so a frame
/// holds at most its length and 1 KiB. A small frame keeps its buffer:
/// freeing a tail of a few bytes costs the allocator more than it saves.
fn binary_frame(mut bytes: Vec<u8>) -> Message {
    if bytes.capacity() - bytes.len() > FRAME_SLACK {
        bytes.shrink_to_fit();
    }
    Message::Binary(bytes.into())
}

fn message_kind(message: &Message) -> &'static str {
    match message {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(_) => "close",
        Message::Frame(_) => "raw frame",
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One control frame for many connections: encoded at most once per codec.
pub(crate) struct ControlFrames<'a> {
    control: &'a Control,
    frames: [Option<Message>; 2],
}

impl<'a> ControlFrames<'a> {
    pub(crate) fn new(control: &'a Control) -> Self {
        Self {
            control,
            frames: [None, None],
        }
    }

    /// The frame in `codec` (a cheap clone of the bytes encoded once).
    pub(crate) fn get(&mut self, codec: Codec) -> Message {
        let slot = &mut self.frames[usize::from(codec == Codec::Postcard)];
        slot.get_or_insert_with(|| codec.encode_control(self.control))
            .clone()
    }
}

/// How an inbound frame names its event: by id (JSON) or by key (postcard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRef<'a> {
    /// The id string, from a JSON frame.
    Id(Cow<'a, str>),
    /// The numeric key, from a binary frame.
    Key(EventKey),
}

impl EventRef<'_> {
    /// The event's key (computed from the id for JSON frames).
    pub fn key(&self) -> EventKey {
        match self {
            Self::Id(id) => EventKey::of(id),
            Self::Key(key) => *key,
        }
    }

    /// Whether this names the event `id` with key `key`.
    pub fn is(&self, id: &str, key: EventKey) -> bool {
        match self {
            Self::Id(got) => got == id,
            Self::Key(got) => *got == key,
        }
    }
}

impl fmt::Display for EventRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => f.write_str(id),
            Self::Key(key) => write!(f, "key {key}"),
        }
    }
}

/// An undecoded payload, borrowed from its frame; decoded once its type is known.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A JSON value.
    Json(&'a RawValue),
    /// postcard bytes (the rest of the binary frame).
    Postcard(&'a [u8]),
}

/// A JSON payload as text, or the error naming `what` it was for.
fn json_text<'a>(what: &'static str, payload: &'a [u8]) -> Result<&'a str, EncodeError> {
    std::str::from_utf8(payload).map_err(|e| EncodeError {
        what,
        encoding: "json",
        detail: format!("the payload is not UTF-8: {e}"),
    })
}

impl<'a> Payload<'a> {
    /// Decodes the payload into `T`. `event` names it in the error.
    pub fn decode<T: DeserializeOwned>(&self, event: &'static str) -> Result<T, ProtocolError> {
        let bad = |detail: String| ProtocolError::BadPayload { event, detail };
        match self {
            Self::Json(raw) => serde_json::from_str(raw.get()).map_err(|e| bad(e.to_string())),
            Self::Postcard(bytes) => match ::postcard::take_from_bytes::<T>(bytes) {
                Ok((value, [])) => Ok(value),
                Ok((_, rest)) => Err(bad(format!("{} trailing bytes", rest.len()))),
                Err(e) => Err(bad(e.to_string())),
            },
        }
    }

    /// The payload's size in bytes on the wire.
    pub fn len(&self) -> usize {
        match self {
            Self::Json(raw) => raw.get().len(),
            Self::Postcard(bytes) => bytes.len(),
        }
    }

    /// Whether the payload is zero bytes long (a unit struct in postcard).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for Payload<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Json(a), Self::Json(b)) => a.get() == b.get(),
            (Self::Postcard(a), Self::Postcard(b)) => a == b,
            _ => false,
        }
    }
}

/// A decoded inbound frame. Payloads stay undecoded until a route knows their type.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound<'a> {
    /// A one-way event.
    Event {
        /// Which event.
        event: EventRef<'a>,
        /// Its payload.
        payload: Payload<'a>,
    },
    /// A request awaiting a reply.
    Request {
        /// Which event.
        event: EventRef<'a>,
        /// The id the reply must carry.
        req_id: RequestId,
        /// Milliseconds the sender will wait, counted from when it sent the frame.
        deadline_ms: Option<u32>,
        /// Its payload.
        payload: Payload<'a>,
    },
    /// The reply to one of our requests.
    Reply {
        /// The request it answers.
        req_id: RequestId,
        /// The reply's payload, or the error.
        result: Result<Payload<'a>, ErrorReply>,
    },
    /// An event published on a channel we subscribed to.
    Publication {
        /// The channel.
        channel: Cow<'a, str>,
        /// Which event.
        event: EventRef<'a>,
        /// The publication's position in the channel's stream, if it keeps one.
        position: Option<StreamPosition>,
        /// Its payload.
        payload: Payload<'a>,
    },
    /// A control frame.
    Control(Control),
}

fn encode_error(what: &'static str, encoding: &'static str, err: impl fmt::Display) -> EncodeError {
    EncodeError {
        what,
        encoding,
        detail: err.to_string(),
    }
}
