//! postcard binary frames: a header enum whose variant index is the frame kind,
//! followed by the payload's own postcard bytes for frames that carry one.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use tungstenite::Message;

use super::{EventRef, Inbound, Payload, encode_error};
use crate::protocol::{
    CloseReason, Control, ErrorReply, Handshake, PresenceDiff, RequestId, StreamPosition,
};
use crate::{EncodeError, EventKey, ProtocolError};

const ENCODING: &str = "postcard";

/// The frame header. Variant indexes are the wire's frame kinds and never change;
/// new kinds are appended.
#[derive(Debug, Serialize, Deserialize)]
enum Header<'a> {
    /// 0: one-way event; payload follows.
    Event { key: EventKey },
    /// 1: request; payload follows.
    Request {
        key: EventKey,
        req_id: RequestId,
        deadline_ms: Option<u32>,
    },
    /// 2: successful reply; payload follows.
    ReplyOk { req_id: RequestId },
    /// 3: error reply.
    ReplyErr {
        req_id: RequestId,
        #[serde(borrow)]
        error: WireError<'a>,
    },
    /// 4: channel publication; payload follows.
    Publication {
        #[serde(borrow)]
        channel: Cow<'a, str>,
        key: EventKey,
        position: Option<StreamPosition>,
    },
    /// 5: handshake.
    Handshake(Handshake),
    /// 6: ping.
    Ping(u64),
    /// 7: pong.
    Pong(u64),
    /// 8: subscribe.
    Subscribe {
        req_id: RequestId,
        #[serde(borrow)]
        channel: Cow<'a, str>,
        since: Option<StreamPosition>,
    },
    /// 9: unsubscribe.
    Unsubscribe {
        req_id: RequestId,
        #[serde(borrow)]
        channel: Cow<'a, str>,
    },
    /// 10: standalone error.
    Error(#[serde(borrow)] WireError<'a>),
    /// 11: close reason.
    Close(CloseReason),
    /// 12: presence request.
    Presence {
        req_id: RequestId,
        #[serde(borrow)]
        channel: Cow<'a, str>,
        watch: bool,
    },
    /// 13: presence change.
    PresenceDiff {
        #[serde(borrow)]
        channel: Cow<'a, str>,
        diff: PresenceDiff,
    },
    /// 14: subscribe again.
    Resubscribe {
        #[serde(borrow)]
        channel: Cow<'a, str>,
    },
    /// 15: cancel a request.
    Cancel { req_id: RequestId },
    /// 16: the extensions a client takes frames of.
    Extensions(#[serde(borrow)] Vec<Cow<'a, str>>),
}

/// [`ErrorReply`] on the binary wire: `data` travels as JSON text.
#[derive(Debug, Serialize, Deserialize)]
struct WireError<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[serde(borrow)]
    data: Option<Cow<'a, str>>,
}

impl<'a> WireError<'a> {
    fn from_reply(e: &'a ErrorReply) -> Self {
        Self {
            code: Cow::Borrowed(&e.code),
            message: Cow::Borrowed(&e.message),
            // `null` data is no data, as in JSON frames.
            data: e
                .data
                .as_ref()
                .filter(|d| !d.is_null())
                .map(|d| Cow::Owned(d.to_string())),
        }
    }

    fn into_reply(self) -> Result<ErrorReply, String> {
        let data = match self.data {
            None => None,
            Some(text) => Some(
                serde_json::from_str(&text).map_err(|e| format!("error data is not JSON: {e}"))?,
            ),
        };
        Ok(ErrorReply {
            code: Cow::Owned(self.code.into_owned()),
            message: self.message.into_owned(),
            data,
        })
    }
}

fn header(header: &Header<'_>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    // Headers hold only integers, strings and options: serializing them cannot fail.
    let _ = postcard::to_io(header, &mut buf);
    buf
}

fn with_payload<T: Serialize + ?Sized>(
    head: &Header<'_>,
    what: &'static str,
    payload: &T,
) -> Result<Message, EncodeError> {
    // postcard writes a tuple as its elements one after the other: the header,
    // then the payload. One pass into one buffer (appending the payload through
    // `Extend<u8>` went byte by byte).
    let buf =
        postcard::to_allocvec(&(head, payload)).map_err(|e| encode_error(what, ENCODING, e))?;
    Ok(super::binary_frame(buf))
}

pub(super) fn event<T: Serialize>(
    key: EventKey,
    request: Option<(RequestId, Option<u32>)>,
    payload: &T,
) -> Result<Message, EncodeError> {
    let head = match request {
        None => Header::Event { key },
        Some((req_id, deadline_ms)) => Header::Request {
            key,
            req_id,
            deadline_ms,
        },
    };
    with_payload(&head, "event", payload)
}

pub(super) fn reply_ok<T: Serialize + ?Sized>(
    req_id: RequestId,
    payload: &T,
) -> Result<Message, EncodeError> {
    with_payload(&Header::ReplyOk { req_id }, "reply", payload)
}

pub(super) fn reply_err(req_id: RequestId, error: &ErrorReply) -> Message {
    super::binary_frame(header(&Header::ReplyErr {
        req_id,
        error: WireError::from_reply(error),
    }))
}

pub(super) fn publication<T: Serialize>(
    channel: &str,
    key: EventKey,
    position: Option<&StreamPosition>,
    payload: &T,
) -> Result<Message, EncodeError> {
    let head = Header::Publication {
        channel: Cow::Borrowed(channel),
        key,
        position: position.cloned(),
    };
    with_payload(&head, "publication", payload)
}

/// A payload alone, as postcard bytes.
pub(super) fn payload<T: Serialize + ?Sized>(
    what: &'static str,
    payload: &T,
) -> Result<Vec<u8>, EncodeError> {
    postcard::to_allocvec(payload).map_err(|e| encode_error(what, ENCODING, e))
}

/// `sl/pub` around a payload already encoded: the same bytes as
/// [`publication`] writes for the value it came from.
pub(super) fn publication_of_payload(
    channel: &str,
    key: EventKey,
    position: &StreamPosition,
    payload: &[u8],
) -> Message {
    let mut buf = header(&Header::Publication {
        channel: Cow::Borrowed(channel),
        key,
        position: Some(position.clone()),
    });
    buf.extend_from_slice(payload);
    super::binary_frame(buf)
}

/// A one-way event around a payload already encoded: the same bytes as
/// [`event`] writes for the value it came from.
pub(super) fn event_of_payload(key: EventKey, payload: &[u8]) -> Message {
    let mut buf = header(&Header::Event { key });
    buf.extend_from_slice(payload);
    super::binary_frame(buf)
}

/// A request around a payload already encoded: the same bytes as [`event`]
/// writes for the value it came from.
pub(super) fn request_of_payload(
    key: EventKey,
    req_id: RequestId,
    deadline_ms: Option<u32>,
    payload: &[u8],
) -> Message {
    let mut buf = header(&Header::Request {
        key,
        req_id,
        deadline_ms,
    });
    buf.extend_from_slice(payload);
    super::binary_frame(buf)
}

pub(super) fn control(control: &Control) -> Message {
    let head = match control {
        Control::Handshake(h) => Header::Handshake(h.clone()),
        Control::Ping(n) => Header::Ping(*n),
        Control::Pong(n) => Header::Pong(*n),
        Control::Subscribe {
            req_id,
            channel,
            since,
        } => Header::Subscribe {
            req_id: *req_id,
            channel: Cow::Borrowed(channel),
            since: since.clone(),
        },
        Control::Unsubscribe { req_id, channel } => Header::Unsubscribe {
            req_id: *req_id,
            channel: Cow::Borrowed(channel),
        },
        Control::Presence {
            req_id,
            channel,
            watch,
        } => Header::Presence {
            req_id: *req_id,
            channel: Cow::Borrowed(channel),
            watch: *watch,
        },
        Control::PresenceDiff { channel, diff } => Header::PresenceDiff {
            channel: Cow::Borrowed(channel),
            diff: diff.clone(),
        },
        Control::Resubscribe { channel } => Header::Resubscribe {
            channel: Cow::Borrowed(channel),
        },
        Control::Error(e) => Header::Error(WireError::from_reply(e)),
        Control::Close(c) => Header::Close(c.clone()),
        Control::Cancel { req_id } => Header::Cancel { req_id: *req_id },
        Control::Extensions(names) => {
            Header::Extensions(names.iter().map(|n| Cow::Borrowed(n.as_str())).collect())
        }
    };
    super::binary_frame(header(&head))
}

/// A header that does not decode: answered to its request when the frame is a
/// request whose key and id could be read, as an `sl/error` otherwise.
fn bad_header(bytes: &[u8], detail: String) -> ProtocolError {
    const REQUEST: u8 = 1;
    const SUBSCRIBE: u8 = 8;
    const UNSUBSCRIBE: u8 = 9;
    const PRESENCE: u8 = 12;
    let req_id = match bytes.split_first() {
        Some((&REQUEST, rest)) => postcard::take_from_bytes::<(EventKey, RequestId)>(rest)
            .ok()
            .map(|((_key, req_id), _)| req_id),
        Some((&(SUBSCRIBE | UNSUBSCRIBE | PRESENCE), rest)) => {
            postcard::take_from_bytes::<RequestId>(rest)
                .ok()
                .map(|(req_id, _)| req_id)
        }
        _ => None,
    };
    match req_id {
        Some(req_id) => ProtocolError::BadRequest {
            req_id,
            encoding: ENCODING,
            detail,
        },
        None => ProtocolError::BadFrame {
            encoding: ENCODING,
            detail,
        },
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<Inbound<'_>, ProtocolError> {
    let bad = |detail: String| ProtocolError::BadFrame {
        encoding: ENCODING,
        detail,
    };
    let (head, rest) = match postcard::take_from_bytes::<Header<'_>>(bytes) {
        Ok(decoded) => decoded,
        Err(e) => return Err(bad_header(bytes, e.to_string())),
    };
    // One encoding per header: varints in their shortest form, nothing else.
    let used = bytes.len() - rest.len();
    if postcard::experimental::serialized_size(&head).ok() != Some(used) {
        return Err(bad_header(
            bytes,
            "the header is not in its shortest encoding (an overlong varint)".into(),
        ));
    }
    let payload = Payload::Postcard(rest);
    let no_rest = |inbound: Inbound<'static>| {
        if rest.is_empty() {
            Ok(inbound)
        } else {
            Err(bad_header(
                bytes,
                format!("{} unexpected bytes after the frame", rest.len()),
            ))
        }
    };
    match head {
        Header::Event { key } => Ok(Inbound::Event {
            event: EventRef::Key(key),
            payload,
        }),
        Header::Request {
            key,
            req_id,
            deadline_ms,
        } => Ok(Inbound::Request {
            event: EventRef::Key(key),
            req_id,
            deadline_ms,
            payload,
        }),
        Header::ReplyOk { req_id } => Ok(Inbound::Reply {
            req_id,
            result: Ok(payload),
        }),
        Header::Publication {
            channel,
            key,
            position,
        } => Ok(Inbound::Publication {
            channel,
            event: EventRef::Key(key),
            position,
            payload,
        }),
        Header::ReplyErr { req_id, error } => no_rest(Inbound::Reply {
            req_id,
            result: Err(error.into_reply().map_err(bad)?),
        }),
        // A handshake may gain fields at its end in later versions: what
        // follows the fields known here is ignored.
        Header::Handshake(h) => Ok(Inbound::Control(Control::Handshake(h))),
        Header::Ping(n) => no_rest(Inbound::Control(Control::Ping(n))),
        Header::Pong(n) => no_rest(Inbound::Control(Control::Pong(n))),
        Header::Subscribe {
            req_id,
            channel,
            since,
        } => no_rest(Inbound::Control(Control::Subscribe {
            req_id,
            channel: channel.into_owned(),
            since,
        })),
        Header::Unsubscribe { req_id, channel } => {
            no_rest(Inbound::Control(Control::Unsubscribe {
                req_id,
                channel: channel.into_owned(),
            }))
        }
        Header::Error(e) => no_rest(Inbound::Control(Control::Error(
            e.into_reply().map_err(bad)?,
        ))),
        Header::Close(c) => no_rest(Inbound::Control(Control::Close(c))),
        Header::Cancel { req_id } => no_rest(Inbound::Control(Control::Cancel { req_id })),
        Header::Extensions(names) => no_rest(Inbound::Control(Control::Extensions(
            names.into_iter().map(Cow::into_owned).collect(),
        ))),
        Header::Presence {
            req_id,
            channel,
            watch,
        } => no_rest(Inbound::Control(Control::Presence {
            req_id,
            channel: channel.into_owned(),
            watch,
        })),
        Header::PresenceDiff { channel, diff } => {
            no_rest(Inbound::Control(Control::PresenceDiff {
                channel: channel.into_owned(),
                diff,
            }))
        }
        Header::Resubscribe { channel } => no_rest(Inbound::Control(Control::Resubscribe {
            channel: channel.into_owned(),
        })),
    }
}
