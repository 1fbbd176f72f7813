//! JSON text frames: Sente-style arrays led by the event id or an `sl/` control name.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tungstenite::Message;

use super::json_read::Reader;
use super::{EventRef, Inbound, Payload, encode_error};
use crate::protocol::{CloseReason, Control, ErrorReply, Handshake, RequestId, StreamPosition};
use crate::{EncodeError, ProtocolError};

const ENCODING: &str = "json";

pub(super) const OK: &str = "sl/ok";
pub(super) const ERR: &str = "sl/err";
pub(super) const PUB: &str = "sl/pub";
pub(super) const HANDSHAKE: &str = "sl/handshake";
pub(super) const PING: &str = "sl/ping";
pub(super) const PONG: &str = "sl/pong";
pub(super) const SUB: &str = "sl/sub";
pub(super) const UNSUB: &str = "sl/unsub";
pub(super) const ERROR: &str = "sl/error";
pub(super) const CLOSE: &str = "sl/close";
pub(super) const PRESENCE: &str = "sl/presence";
pub(super) const PRESENCE_DIFF: &str = "sl/presence-diff";
pub(super) const RESUB: &str = "sl/resub";
pub(super) const CANCEL: &str = "sl/cancel";
pub(super) const EXTENSIONS: &str = "sl/extensions";

/// The object of `sl/resub`: `{"channel": ...}` (unknown fields are ignored).
#[derive(serde::Serialize, serde::Deserialize)]
struct ResubBody<'a> {
    #[serde(borrow)]
    channel: Cow<'a, str>,
}

fn text(buf: Vec<u8>) -> Message {
    // serde_json writes UTF-8 and every literal written here is ASCII.
    super::text_frame(String::from_utf8(buf).unwrap_or_default())
}

/// Serializes a frame (a tuple is a JSON array) straight into a `String`, so the
/// payload is written once and no UTF-8 check follows; long strings in it are
/// escaped with SIMD (see `json_str`).
fn frame<T: Serialize>(what: &'static str, value: &T) -> Result<Message, EncodeError> {
    super::json_str::to_string(value)
        .map(super::text_frame)
        .map_err(|e| encode_error(what, ENCODING, e))
}

/// `["id",payload]`, `["id",payload,req_id]` or `["id",payload,req_id,deadline_ms]`.
pub(super) fn event<T: Serialize>(
    id: &'static str,
    request: Option<(RequestId, Option<u32>)>,
    payload: &T,
) -> Result<Message, EncodeError> {
    match request {
        None => frame(id, &(id, payload)),
        Some((req_id, None)) => frame(id, &(id, payload, req_id)),
        Some((req_id, Some(ms))) => frame(id, &(id, payload, req_id, ms)),
    }
}

/// `["sl/ok",req_id,payload]`.
pub(super) fn reply_ok<T: Serialize + ?Sized>(
    req_id: RequestId,
    payload: &T,
) -> Result<Message, EncodeError> {
    frame("reply", &(OK, req_id, payload))
}

/// `["sl/err",req_id,{"code":...,"message":...}]`.
pub(super) fn reply_err(req_id: RequestId, error: &ErrorReply) -> Message {
    let mut buf = Vec::with_capacity(64);
    let _ = write!(buf, "[\"{ERR}\",{req_id},");
    put_infallible(&mut buf, error);
    buf.push(b']');
    text(buf)
}

/// `["sl/pub","channel","id",payload]`, with `,{"epoch":...,"offset":...}` when positioned.
pub(super) fn publication<T: Serialize>(
    channel: &str,
    id: &'static str,
    position: Option<&StreamPosition>,
    payload: &T,
) -> Result<Message, EncodeError> {
    match position {
        None => frame(id, &(PUB, channel, id, payload)),
        Some(position) => frame(id, &(PUB, channel, id, payload, position)),
    }
}

/// A payload alone, as JSON text (what goes in a frame's payload place).
pub(super) fn payload<T: Serialize + ?Sized>(
    what: &'static str,
    payload: &T,
) -> Result<String, EncodeError> {
    super::json_str::to_string(payload).map_err(|e| encode_error(what, ENCODING, e))
}

/// `sl/pub` around a payload already encoded as JSON text: the same bytes as
/// [`publication`] writes for the value it came from.
pub(super) fn publication_of_payload(
    channel: &str,
    id: &str,
    position: &StreamPosition,
    payload: &str,
) -> Result<Message, EncodeError> {
    let raw: &RawValue = serde_json::from_str(payload).map_err(|e| EncodeError {
        what: "publication",
        encoding: ENCODING,
        detail: format!("the payload is not JSON: {e}"),
    })?;
    super::json_str::to_string(&(PUB, channel, id, raw, position))
        .map(super::text_frame)
        .map_err(|e| encode_error("publication", ENCODING, e))
}

/// A one-way event around a payload already encoded as JSON text: the same
/// bytes as [`event`] writes for the value it came from.
pub(super) fn event_of_payload(id: &str, payload: &str) -> Result<Message, EncodeError> {
    frame_of_payload("event", payload, |raw| {
        super::json_str::to_string(&(id, raw))
    })
}

/// A request around a payload already encoded as JSON text: the same bytes
/// as [`event`] writes for the value it came from.
pub(super) fn request_of_payload(
    id: &str,
    req_id: RequestId,
    deadline_ms: Option<u32>,
    payload: &str,
) -> Result<Message, EncodeError> {
    frame_of_payload("request", payload, |raw| match deadline_ms {
        None => super::json_str::to_string(&(id, raw, req_id)),
        Some(ms) => super::json_str::to_string(&(id, raw, req_id, ms)),
    })
}

fn frame_of_payload<E: std::fmt::Display>(
    what: &'static str,
    payload: &str,
    write: impl FnOnce(&RawValue) -> Result<String, E>,
) -> Result<Message, EncodeError> {
    let raw: &RawValue = serde_json::from_str(payload).map_err(|e| EncodeError {
        what,
        encoding: ENCODING,
        detail: format!("the payload is not JSON: {e}"),
    })?;
    write(raw)
        .map(super::text_frame)
        .map_err(|e| encode_error(what, ENCODING, e))
}

/// Protocol types serialize infallibly: strings, numbers, options and a JSON value.
fn put_infallible<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    if serde_json::to_writer(&mut *buf, value).is_err() {
        buf.extend_from_slice(b"null");
    }
}

pub(super) fn control(control: &Control) -> Message {
    let mut buf = Vec::with_capacity(64);
    let mut head = |name: &str| {
        let _ = write!(buf, "[\"{name}\",");
    };
    match control {
        Control::Handshake(h) => {
            head(HANDSHAKE);
            put_infallible(&mut buf, h);
        }
        Control::Ping(n) => {
            head(PING);
            let _ = write!(buf, "{n}");
        }
        Control::Pong(n) => {
            head(PONG);
            let _ = write!(buf, "{n}");
        }
        Control::Subscribe {
            req_id,
            channel,
            since,
        } => {
            head(SUB);
            let _ = write!(buf, "{req_id},");
            put_infallible(&mut buf, channel);
            if let Some(since) = since {
                buf.push(b',');
                put_infallible(&mut buf, since);
            }
        }
        Control::Unsubscribe { req_id, channel } => {
            head(UNSUB);
            let _ = write!(buf, "{req_id},");
            put_infallible(&mut buf, channel);
        }
        Control::Presence {
            req_id,
            channel,
            watch,
        } => {
            head(PRESENCE);
            let _ = write!(buf, "{req_id},");
            put_infallible(&mut buf, channel);
            let _ = write!(buf, ",{watch}");
        }
        Control::PresenceDiff { channel, diff } => {
            head(PRESENCE_DIFF);
            put_infallible(&mut buf, channel);
            buf.push(b',');
            put_infallible(&mut buf, diff);
        }
        Control::Resubscribe { channel } => {
            head(RESUB);
            put_infallible(
                &mut buf,
                &ResubBody {
                    channel: Cow::Borrowed(channel),
                },
            );
        }
        Control::Error(e) => {
            head(ERROR);
            put_infallible(&mut buf, e);
        }
        Control::Close(c) => {
            head(CLOSE);
            put_infallible(&mut buf, c);
        }
        Control::Cancel { req_id } => {
            head(CANCEL);
            let _ = write!(buf, "{req_id}");
        }
        Control::Extensions(names) => {
            head(EXTENSIONS);
            put_infallible(&mut buf, names);
        }
    }
    buf.push(b']');
    text(buf)
}

pub(super) fn decode(text: &str) -> Result<Inbound<'_>, ProtocolError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let frame = Frame::deserialize(&mut de).and_then(|f| de.end().map(|()| f));
    match frame {
        Ok(Frame(Decoded::Frame(inbound))) => Ok(inbound),
        Ok(Frame(Decoded::BadRequest { req_id, detail })) => Err(ProtocolError::BadRequest {
            req_id,
            encoding: ENCODING,
            detail,
        }),
        Err(e) => Err(ProtocolError::BadFrame {
            encoding: ENCODING,
            detail: e.to_string(),
        }),
    }
}

/// A request id as JSON frames carry it: an integer in `0 ..= 2^53 - 1`.
struct WireReqId(RequestId);

impl<'de> Deserialize<'de> for WireReqId {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let id = RequestId::deserialize(de)?;
        if id > crate::protocol::MAX_JSON_REQ_ID {
            return Err(de::Error::custom(format_args!(
                "request id {id} is over 2^53 - 1 ({})",
                crate::protocol::MAX_JSON_REQ_ID
            )));
        }
        Ok(Self(id))
    }
}

/// A frame, or a request whose id could be read but whose rest is wrong (so
/// the answer can name the request).
enum Decoded<'a> {
    Frame(Inbound<'a>),
    BadRequest { req_id: RequestId, detail: String },
}

/// A string that borrows from the frame unless it had escapes.
#[derive(serde::Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

struct Frame<'a>(Decoded<'a>);

impl<'de> Deserialize<'de> for Frame<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_seq(FrameVisitor).map(Frame)
    }
}

struct FrameVisitor;

/// Reads the next required element, naming it in the error.
fn need<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
    seq: &mut A,
    what: &str,
) -> Result<T, A::Error> {
    seq.next_element()?
        .ok_or_else(|| de::Error::custom(format_args!("missing {what}")))
}

impl<'de> Visitor<'de> for FrameVisitor {
    type Value = Decoded<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array led by an event id or an `sl/` frame name")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Str(head) = need(&mut seq, "event id")?;
        let inbound = match head.as_ref() {
            OK => Inbound::Reply {
                req_id: need::<_, WireReqId>(&mut seq, "request id")?.0,
                result: Ok(Payload::Json(need::<_, &RawValue>(
                    &mut seq,
                    "reply payload",
                )?)),
            },
            ERR => Inbound::Reply {
                req_id: need::<_, WireReqId>(&mut seq, "request id")?.0,
                result: Err(need(&mut seq, "error")?),
            },
            PUB => {
                let Str(channel) = need(&mut seq, "channel")?;
                let Str(id) = need(&mut seq, "event id")?;
                Inbound::Publication {
                    channel,
                    event: EventRef::Id(id),
                    payload: Payload::Json(need(&mut seq, "payload")?),
                    position: seq.next_element()?,
                }
            }
            HANDSHAKE => Inbound::Control(Control::Handshake(need::<_, Handshake>(
                &mut seq,
                "handshake",
            )?)),
            PING => Inbound::Control(Control::Ping(need(&mut seq, "ping number")?)),
            PONG => Inbound::Control(Control::Pong(need(&mut seq, "pong number")?)),
            SUB | UNSUB | PRESENCE => {
                // The id is known from here on: what is wrong with the rest is
                // answered to this frame.
                let req_id = need::<_, WireReqId>(&mut seq, "request id")?.0;
                let mut rest = Vec::new();
                while let Some(element) = seq.next_element::<serde_json::Value>()? {
                    rest.push(element);
                }
                return Ok(request_control(head.as_ref(), req_id, rest));
            }
            PRESENCE_DIFF => Inbound::Control(Control::PresenceDiff {
                channel: need(&mut seq, "channel")?,
                diff: need(&mut seq, "presence diff")?,
            }),
            RESUB => {
                let body: ResubBody<'_> = need(&mut seq, "resubscribe")?;
                Inbound::Control(Control::Resubscribe {
                    channel: body.channel.into_owned(),
                })
            }
            CANCEL => Inbound::Control(Control::Cancel {
                req_id: need::<_, WireReqId>(&mut seq, "request id")?.0,
            }),
            EXTENSIONS => Inbound::Control(Control::Extensions(need(&mut seq, "extensions")?)),
            ERROR => Inbound::Control(Control::Error(need(&mut seq, "error")?)),
            CLOSE => Inbound::Control(Control::Close(need::<_, CloseReason>(
                &mut seq,
                "close reason",
            )?)),
            name if name.starts_with("sl/") => {
                return Err(de::Error::custom(format_args!("unknown frame `{name}`")));
            }
            _ => {
                let payload = Payload::Json(need(&mut seq, "payload")?);
                let event = EventRef::Id(head);
                match seq.next_element::<WireReqId>()? {
                    None => Inbound::Event { event, payload },
                    Some(WireReqId(req_id)) => {
                        // The id is known from here on: what is wrong with the
                        // rest is answered to this request.
                        let deadline = seq.next_element::<serde_json::Value>()?;
                        let extra = seq.next_element::<IgnoredAny>()?.is_some();
                        let deadline_ms = match deadline
                            .as_ref()
                            .map(|d| d.as_u64().map(u32::try_from))
                        {
                            None => None,
                            Some(Some(Ok(ms))) => Some(ms),
                            Some(_) => {
                                return Ok(Decoded::BadRequest {
                                    req_id,
                                    detail: "the deadline must be an integer in 0..=4294967295 (milliseconds)".into(),
                                });
                            }
                        };
                        if extra {
                            return Ok(Decoded::BadRequest {
                                req_id,
                                detail: "unexpected extra elements".into(),
                            });
                        }
                        return Ok(Decoded::Frame(Inbound::Request {
                            event,
                            req_id,
                            deadline_ms,
                            payload,
                        }));
                    }
                }
            }
        };
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("unexpected extra elements"));
        }
        Ok(Decoded::Frame(inbound))
    }
}

/// `sl/sub`, `sl/unsub` or `sl/presence` after its id: the channel, then
/// what the frame takes after it (a subscribe's optional `since`, a presence
/// request's `watch`); anything else is answered to the id.
fn request_control<'a>(head: &str, req_id: RequestId, rest: Vec<serde_json::Value>) -> Decoded<'a> {
    let bad = |detail: &str| Decoded::BadRequest {
        req_id,
        detail: detail.into(),
    };
    let mut rest = rest.into_iter();
    let Some(serde_json::Value::String(channel)) = rest.next() else {
        return bad("the channel must be a string");
    };
    let control = match head {
        SUB => {
            let since = match rest.next() {
                None | Some(serde_json::Value::Null) => None,
                Some(value) => match serde_json::from_value::<StreamPosition>(value) {
                    Ok(position) => Some(position),
                    Err(e) => return bad(&format!("`since` is not a position: {e}")),
                },
            };
            Control::Subscribe {
                req_id,
                channel,
                since,
            }
        }
        UNSUB => Control::Unsubscribe { req_id, channel },
        _ => {
            let Some(serde_json::Value::Bool(watch)) = rest.next() else {
                return bad("`watch` must be true or false");
            };
            Control::Presence {
                req_id,
                channel,
                watch,
            }
        }
    };
    if rest.next().is_some() {
        return bad("unexpected extra elements");
    }
    Decoded::Frame(Inbound::Control(control))
}

/// The event id of a frame written in the compact form `["id",...` with no
/// escapes and no control characters in the id, or `None` for any other
/// frame (controls, replies and publications included, as their names start
/// with `sl/`).
///
/// This only picks frames for [`decode_event`], which reads on from after
/// the id and so relies on this check of it; what it refuses still goes
/// through [`decode`], which accepts every valid spelling and names what is
/// wrong with the rest.
pub(crate) fn event_head(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("[\"")?;
    // A control character is not JSON inside a string: it stops the id as a
    // quote or a backslash does, and then no `",` follows.
    let end = rest
        .bytes()
        .position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
    let id = &rest[..end];
    let follows = rest.as_bytes().get(end..end + 2);
    (follows == Some(b"\",") && !id.starts_with("sl/")).then_some(id)
}

/// An event or request frame decoded in one pass, its payload typed.
#[derive(Debug, PartialEq)]
pub(crate) struct EventFrame<T> {
    pub(crate) payload: T,
    pub(crate) req_id: Option<RequestId>,
    pub(crate) deadline_ms: Option<u32>,
}

/// Decodes `["id",payload]`, `["id",payload,req_id]` or
/// `["id",payload,req_id,deadline_ms]` with the payload read straight into `T`,
/// so its bytes are scanned once (the general [`decode`] first finds the
/// payload's end, then [`Payload::decode`] parses it again), and by the fast
/// [`Reader`]. `id` is what [`event_head`] found at the start of `text`:
/// reading starts after it, so the id is not scanned a second time.
///
/// `None` when the frame is not such a frame or the payload does not fit `T`:
/// the caller then decodes it with [`decode`], which names what is wrong. Every
/// frame this accepts, [`decode`] accepts with the same meaning.
pub(crate) fn decode_event<T: de::DeserializeOwned>(text: &str, id: &str) -> Option<EventFrame<T>> {
    // `["`, the id, `"`: the comma after it comes next.
    let comma = 2 + id.len() + 1;
    if text.as_bytes().get(comma) != Some(&b',') {
        return None;
    }
    let mut reader = Reader::inside_array(text, comma);
    let frame = reader
        .rest_of_array(EventFrameVisitor(std::marker::PhantomData))
        .ok()?;
    reader.finish().then_some(frame)
}

/// Reads what follows the event id of an event frame.
struct EventFrameVisitor<T>(std::marker::PhantomData<fn() -> T>);

impl<'de, T: de::DeserializeOwned> Visitor<'de> for EventFrameVisitor<T> {
    type Value = EventFrame<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event frame")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let payload = need(&mut seq, "payload")?;
        let (req_id, deadline_ms) = match seq.next_element::<WireReqId>()? {
            None => (None, None),
            Some(WireReqId(req_id)) => (Some(req_id), seq.next_element::<u32>()?),
        };
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("unexpected extra elements"));
        }
        Ok(EventFrame {
            payload,
            req_id,
            deadline_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::{EventFrame, decode, decode_event, event_head};
    use crate::codec::{EventRef, Inbound};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Item {
        text: String,
        n: i64,
        xs: Vec<f64>,
    }

    #[test]
    fn event_head_takes_only_compact_event_frames() {
        assert_eq!(event_head(r#"["chat/send",{"a":1}]"#), Some("chat/send"));
        assert_eq!(event_head(r#"["x",1,7,100]"#), Some("x"));
        assert_eq!(event_head(r#"["x","#), Some("x"));
        assert_eq!(event_head(r#"["sl/ok",1,2]"#), None);
        assert_eq!(event_head(r#"["sl/ping",1]"#), None);
        assert_eq!(event_head(r#"[ "x",1]"#), None);
        assert_eq!(event_head(r#"["x" ,1]"#), None);
        assert_eq!(event_head(r#"["x\"y",1]"#), None);
        assert_eq!(event_head(r#"["x\u0041",1]"#), None);
        assert_eq!(event_head("[\"x\u{1}y\",1]"), None);
        assert_eq!(event_head("[\"x\u{0}\",1]"), None);
        assert_eq!(event_head(r#"["x"]"#), None);
        assert_eq!(event_head(r#"{"x":1}"#), None);
        assert_eq!(event_head(""), None);
    }

    /// What the general decoder makes of `text`, with the payload typed.
    fn general(text: &str) -> Option<EventFrame<Item>> {
        let (payload, req_id, deadline_ms) = match decode(text).ok()? {
            Inbound::Event {
                event: EventRef::Id(_),
                payload,
            } => (payload, None, None),
            Inbound::Request {
                event: EventRef::Id(_),
                req_id,
                deadline_ms,
                payload,
            } => (payload, Some(req_id), deadline_ms),
            _ => return None,
        };
        Some(EventFrame {
            payload: payload.decode("t").ok()?,
            req_id,
            deadline_ms,
        })
    }

    fn item() -> impl Strategy<Value = Item> {
        (
            ".{0,12}",
            any::<i64>(),
            proptest::collection::vec(proptest::num::f64::NORMAL, 0..4),
        )
            .prop_map(|(text, n, xs)| Item { text, n, xs })
    }

    /// One element of a frame's tail: the usual ones, and ones that are wrong.
    fn extra() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => any::<u32>().prop_map(|n| n.to_string()),
            1 => any::<u64>().prop_map(|n| n.to_string()),
            1 => Just("-1".to_owned()),
            1 => Just("null".to_owned()),
            1 => Just("\"7\"".to_owned()),
            1 => Just("1.5".to_owned()),
            1 => Just("{}".to_owned()),
        ]
    }

    proptest! {
        /// Whatever the one-pass decoder accepts, the general decoder accepts
        /// with the same meaning; well-formed frames are accepted by both.
        #[test]
        fn one_pass_agrees_with_the_general_decoder(
            id in "[a-z]{1,6}(/[a-z]{1,6})?",
            value in item(),
            tail in proptest::collection::vec(extra(), 0..4),
            mangle in 0usize..6,
            cut in any::<prop::sample::Index>(),
        ) {
            let payload = serde_json::to_string(&value).unwrap();
            let mut text = format!("[\"{id}\",{payload}");
            for element in &tail {
                text.push(',');
                text.push_str(element);
            }
            text.push(']');
            let text = match mangle {
                // Spaces where the one-pass head check refuses them.
                1 => text.replacen(',', " , ", 1),
                // A payload of the wrong shape.
                2 => format!("[\"{id}\",{{\"text\":1}}]"),
                // Cut anywhere (at a char boundary).
                3 => {
                    let mut at = cut.index(text.len() + 1);
                    while !text.is_char_boundary(at) {
                        at -= 1;
                    }
                    text[..at].to_owned()
                }
                // Trailing garbage after the array.
                4 => format!("{text}x"),
                _ => text,
            };
            let fast = event_head(&text).and_then(|id| decode_event::<Item>(&text, id));
            let slow = general(&text);
            match (&fast, &slow) {
                (Some(f), Some(s)) => prop_assert_eq!(f, s),
                (Some(f), None) => prop_assert!(false, "only the one-pass decoder took {text:?}: {f:?}"),
                // The head check refuses spaced frames the general decoder takes.
                (None, Some(_)) => prop_assert_eq!(mangle, 1, "{}", text),
                (None, None) => {}
            }
        }
    }
}
