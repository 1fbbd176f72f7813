//! Publications as engines carry them: numbered, encoded at most once per
//! codec, the bytes shared by every subscriber.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use serde::de::IgnoredAny;
use tungstenite::Message;

use crate::protocol::{ConnId, StreamPosition};
use crate::{Codec, EncodeError, Event, EventKey};

/// An event on its way out, before it is numbered: what [`super::Engine::publish`]
/// and [`super::Engine::send_to_user`] take. It encodes the event when a
/// subscriber needs it, once per codec.
pub struct OutgoingEvent<'a> {
    id: Id<'a>,
    key: EventKey,
    value: &'a dyn ErasedEvent,
    frames: [OnceLock<Result<Message, EncodeError>>; 2],
    except: Option<ConnId>,
}

impl std::fmt::Debug for OutgoingEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingEvent")
            .field("id", &self.id.as_str())
            .finish_non_exhaustive()
    }
}

/// An event whose type is forgotten, still able to encode itself.
trait ErasedEvent: Send + Sync {
    fn event(&self, codec: Codec) -> Result<Message, EncodeError>;
    fn payload(&self, codec: Codec) -> Result<Bytes, EncodeError>;
    fn publication(
        &self,
        codec: Codec,
        channel: &str,
        position: &StreamPosition,
    ) -> Result<Message, EncodeError>;
}

impl<E: Event> ErasedEvent for E {
    fn event(&self, codec: Codec) -> Result<Message, EncodeError> {
        codec.encode_event(self)
    }

    fn payload(&self, codec: Codec) -> Result<Bytes, EncodeError> {
        codec.encode_payload(E::ID, self)
    }

    fn publication(
        &self,
        codec: Codec,
        channel: &str,
        position: &StreamPosition,
    ) -> Result<Message, EncodeError> {
        codec.encode_publication(channel, Some(position), self)
    }
}

/// An event's id: the type's own, or one read off the wire.
#[derive(Clone, Copy)]
enum Id<'a> {
    Static(&'static str),
    Read(&'a str),
}

impl Id<'_> {
    fn as_str(&self) -> &str {
        match self {
            Self::Static(id) => id,
            Self::Read(id) => id,
        }
    }

    fn to_cow(self) -> Cow<'static, str> {
        match self {
            Self::Static(id) => Cow::Borrowed(id),
            Self::Read(id) => Cow::Owned(id.to_owned()),
        }
    }
}

/// An event already encoded, as payloads (another process encoded it).
struct Payloads<'a> {
    id: &'a str,
    json: Option<&'a [u8]>,
    postcard: Option<&'a [u8]>,
}

impl Payloads<'_> {
    fn get(&self, codec: Codec) -> Result<&[u8], EncodeError> {
        match codec {
            Codec::Json => self.json,
            Codec::Postcard => self.postcard,
        }
        .ok_or_else(|| EncodeError {
            what: "event",
            encoding: codec.name(),
            detail: "the event could not be encoded in this encoding where it was sent".into(),
        })
    }
}

impl ErasedEvent for Payloads<'_> {
    fn event(&self, codec: Codec) -> Result<Message, EncodeError> {
        codec.encode_event_of_payload(self.id, self.get(codec)?)
    }

    fn payload(&self, codec: Codec) -> Result<Bytes, EncodeError> {
        self.get(codec).map(Bytes::copy_from_slice)
    }

    fn publication(
        &self,
        codec: Codec,
        channel: &str,
        position: &StreamPosition,
    ) -> Result<Message, EncodeError> {
        codec.encode_publication_of_payload(channel, self.id, position, self.get(codec)?)
    }
}

fn slot(codec: Codec) -> usize {
    match codec {
        Codec::Json => 0,
        Codec::Postcard => 1,
    }
}

impl<'a> OutgoingEvent<'a> {
    /// Wraps `event`; nothing is encoded yet.
    pub fn new<E: Event>(event: &'a E) -> Self {
        Self {
            id: Id::Static(E::ID),
            key: E::KEY,
            value: event,
            frames: Default::default(),
            except: None,
        }
    }

    /// The same event, published to every subscriber but connection `conn`
    /// of this server ([`crate::Server::broadcast_except`]).
    #[must_use]
    pub fn excluding(mut self, conn: ConnId) -> Self {
        self.except = Some(conn);
        self
    }

    /// The connection of the publishing server that does not receive it.
    pub fn excluded(&self) -> Option<ConnId> {
        self.except
    }

    /// Calls `f` with the event `id` whose payloads were encoded elsewhere by
    /// [`OutgoingEvent::payload`] (an engine that carries events between
    /// processes delivers them so). A codec without a payload cannot be sent:
    /// its connections get an encoding error.
    pub fn with_payloads<R>(
        id: &str,
        json: Option<&[u8]>,
        postcard: Option<&[u8]>,
        f: impl FnOnce(&OutgoingEvent<'_>) -> R,
    ) -> R {
        let payloads = Payloads { id, json, postcard };
        f(&OutgoingEvent {
            id: Id::Read(id),
            key: EventKey::of(id),
            value: &payloads,
            frames: Default::default(),
            except: None,
        })
    }

    /// The event's id.
    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    /// The event's key.
    pub fn key(&self) -> EventKey {
        self.key
    }

    /// The event's payload alone in `codec` (JSON text or postcard bytes),
    /// for an engine that frames it elsewhere
    /// ([`Publication::from_payloads`]).
    pub fn payload(&self, codec: Codec) -> Result<Bytes, EncodeError> {
        self.value.payload(codec)
    }

    /// The event as request `req_id` in `codec`, with its deadline (not kept:
    /// a request goes to one connection).
    pub fn request_message(
        &self,
        codec: Codec,
        req_id: crate::protocol::RequestId,
        deadline_ms: Option<u32>,
    ) -> Result<Message, EncodeError> {
        codec.encode_request_of_payload(self.id(), req_id, deadline_ms, &self.payload(codec)?)
    }

    /// The event as a one-way event frame in `codec`, encoded at the first call.
    pub fn message(&self, codec: Codec) -> Result<Message, EncodeError> {
        self.frames[slot(codec)]
            .get_or_init(|| self.value.event(codec))
            .clone()
    }
}

/// A numbered publication on a channel. Its frames are encoded at most once
/// per codec and shared (cloning a [`Message`] only bumps a reference count).
pub struct Publication {
    channel: Arc<str>,
    epoch: Arc<str>,
    offset: u64,
    id: Cow<'static, str>,
    frames: [OnceLock<Result<Message, EncodeError>>; 2],
    except: Option<ConnId>,
}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication")
            .field("channel", &self.channel)
            .field("epoch", &self.epoch)
            .field("offset", &self.offset)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Publication {
    /// Publication number `offset` of `channel` in `epoch`, of `event`.
    /// Nothing is encoded yet: see [`Publication::encode_all`] and
    /// [`Publication::message`].
    /// It is not delivered to the connection the event excludes
    /// ([`OutgoingEvent::excluding`]).
    pub fn new(channel: Arc<str>, epoch: Arc<str>, offset: u64, event: &OutgoingEvent<'_>) -> Self {
        Self {
            channel,
            epoch,
            offset,
            id: event.id.to_cow(),
            frames: Default::default(),
            except: event.except,
        }
    }

    /// Publication number `offset` of `channel` in `epoch`, of event `id`,
    /// framed from its payloads as [`OutgoingEvent::payload`] encoded them
    /// (an engine that carries publications between processes builds them
    /// so). A codec without a payload has no frame: its subscribers get an
    /// encoding error.
    pub fn from_payloads(
        channel: Arc<str>,
        epoch: Arc<str>,
        offset: u64,
        id: impl Into<Cow<'static, str>>,
        json: Option<&[u8]>,
        postcard: Option<&[u8]>,
    ) -> Self {
        let publication = Self {
            channel,
            epoch,
            offset,
            id: id.into(),
            frames: Default::default(),
            except: None,
        };
        let position = publication.position();
        for (codec, payload) in [(Codec::Json, json), (Codec::Postcard, postcard)] {
            if let Some(payload) = payload {
                let frame = codec.encode_publication_of_payload(
                    &publication.channel,
                    &publication.id,
                    &position,
                    payload,
                );
                let _ = publication.frames[slot(codec)].set(frame);
            }
        }
        publication
    }

    /// The same publication, not delivered to connection `conn` of this
    /// server (an engine that carries publications between processes sets
    /// it on the server that published it, from [`OutgoingEvent::excluded`]).
    #[must_use]
    pub fn excluding(mut self, conn: Option<ConnId>) -> Self {
        self.except = conn;
        self
    }

    /// The connection of this server that live delivery skips: the one the
    /// publisher excluded. A replay from the history does not skip it.
    pub fn excluded(&self) -> Option<ConnId> {
        self.except
    }

    /// Encodes the publication in every codec now, as a history needs it
    /// (whoever resumes later may speak either).
    pub fn encode_all(&self, event: &OutgoingEvent<'_>) {
        for codec in [Codec::Json, Codec::Postcard] {
            let _ = self.message(codec, Some(event));
        }
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The channel's name, shared.
    pub fn channel_arc(&self) -> &Arc<str> {
        &self.channel
    }

    /// The epoch it was numbered in.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Its number in the epoch.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Its position.
    pub fn position(&self) -> StreamPosition {
        StreamPosition {
            epoch: self.epoch.to_string(),
            offset: self.offset,
        }
    }

    /// The event's id.
    pub fn event_id(&self) -> &str {
        &self.id
    }

    /// The `sl/pub` frame in `codec`: the one already encoded, or encoded now
    /// from `event`. Without `event`, a codec not encoded yet is an error.
    pub fn message(
        &self,
        codec: Codec,
        event: Option<&OutgoingEvent<'_>>,
    ) -> Result<Message, EncodeError> {
        let slot = &self.frames[slot(codec)];
        if let Some(frame) = slot.get() {
            return frame.clone();
        }
        let Some(event) = event else {
            return Err(EncodeError {
                what: "publication",
                encoding: codec.name(),
                detail: "the publication was not kept in this encoding".into(),
            });
        };
        slot.get_or_init(|| {
            event
                .value
                .publication(codec, &self.channel, &self.position())
        })
        .clone()
    }

    /// The bytes its encoded frames hold.
    pub fn encoded_size(&self) -> usize {
        self.frames
            .iter()
            .filter_map(|slot| match slot.get() {
                Some(Ok(message)) => Some(message.len()),
                _ => None,
            })
            .sum()
    }

    /// The event, decoded from its JSON frame as `E`, when it is an `E` and
    /// was kept in JSON (as every publication of a history is).
    pub fn decode<E: Event>(&self) -> Option<E> {
        if self.id != E::ID {
            return None;
        }
        let Some(Ok(Message::Text(text))) = self.frames[slot(Codec::Json)].get() else {
            return None;
        };
        serde_json::from_str::<(IgnoredAny, IgnoredAny, IgnoredAny, E, IgnoredAny)>(text.as_str())
            .ok()
            .map(|frame| frame.3)
    }
}
