//! Properties of the two wire encodings: every frame survives a round trip through
//! both codecs, the decoders never panic whatever they are given, and a few exact
//! frames pin the wire format that other peers are written against.

use std::borrow::Cow;
use std::fmt::Debug;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use sente_lite::protocol::{
    CloseReason, Control, ErrorReply, Handshake, Heartbeat, PeerLimits, PresenceDiff,
    PresenceMember, StreamPosition, SubscribeReply,
};
use sente_lite::{
    Codec, ConnId, Event, EventKey, EventRef, Inbound, Payload, ProtocolError, RequestId, UserId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use tungstenite::Message;

const CODECS: [Codec; 2] = [Codec::Json, Codec::Postcard];

/// The largest request id a JavaScript peer reads exactly (2^53 - 1).
const MAX_JSON_REQUEST_ID: RequestId = (1 << 53) - 1;

// ---------------------------------------------------------------------------
// Events of the tests
// ---------------------------------------------------------------------------

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ChatSend {
    text: String,
}

#[sente_lite::event("user/get", reply = User)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct UserGet {
    id: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
struct User {
    id: u64,
    name: String,
}

/// A payload with every shape serde has: nested structs, vectors, options,
/// an enum of each variant kind, signed and unsigned integers and floats.
#[sente_lite::event("props/rich")]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Rich {
    text: String,
    count: u64,
    delta: i64,
    small: u8,
    score: f64,
    flag: bool,
    tags: Vec<String>,
    note: Option<String>,
    mood: Mood,
    attachments: Vec<Attachment>,
    matrix: Vec<Vec<i32>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
enum Mood {
    Calm,
    Named(String),
    Pair(i32, Option<u16>),
    Excited { level: u8, why: Option<String> },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
struct Attachment {
    name: String,
    bytes: Vec<u8>,
    ratio: f64,
}

#[sente_lite::event("props/search", reply = SearchResults)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Search {
    query: String,
    limit: u32,
    filter: Option<Filter>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
struct Filter {
    tags: Vec<String>,
    min_score: Option<f64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
struct SearchResults {
    total: u64,
    hits: Vec<Rich>,
}

/// A unit struct: `null` in JSON, zero bytes in postcard.
#[sente_lite::event("props/nudge")]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Nudge;

/// An event that is an enum rather than a struct.
#[sente_lite::event("props/presence")]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Presence {
    Online,
    Away { since_ms: u64 },
    Status(String),
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Characters that stress escaping: quotes, backslashes, control characters,
/// line separators, a byte-order mark, multi-byte and astral characters.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => proptest::char::range('a', 'z'),
        2 => select(vec![
            '"', '\\', '/', '\n', '\r', '\t', '\u{0}', '\u{8}', '\u{c}', '\u{1f}', '\u{7f}',
            '\u{2028}', '\u{2029}', '\u{feff}', 'é', '漢', '🦀',
        ]),
    ]
}

fn text() -> impl Strategy<Value = String> {
    vec(tricky_char(), 0..24).prop_map(String::from_iter)
}

/// Request ids as the protocol allows them (`0 ..= 2^53 - 1`), with the edges.
fn request_id() -> impl Strategy<Value = RequestId> {
    prop_oneof![
        Just(0),
        Just(MAX_JSON_REQUEST_ID),
        0..1_000u64,
        0..=MAX_JSON_REQUEST_ID,
    ]
}

/// Every finite float, with the edges. (NaN never equals itself; neither it nor the
/// infinities have a JSON form.)
fn any_finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        select(vec![
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            5e-324,
            0.1,
            -0.0
        ]),
        proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
    ]
}

fn mood() -> impl Strategy<Value = Mood> {
    prop_oneof![
        Just(Mood::Calm),
        text().prop_map(Mood::Named),
        (any::<i32>(), any::<Option<u16>>()).prop_map(|(a, b)| Mood::Pair(a, b)),
        (any::<u8>(), option::of(text())).prop_map(|(level, why)| Mood::Excited { level, why }),
    ]
}

fn attachment() -> impl Strategy<Value = Attachment> {
    (text(), vec(any::<u8>(), 0..16), any_finite_f64())
        .prop_map(|(name, bytes, ratio)| Attachment { name, bytes, ratio })
}

fn rich() -> impl Strategy<Value = Rich> {
    (
        text(),
        any::<u64>(),
        any::<i64>(),
        any::<u8>(),
        any_finite_f64(),
        any::<bool>(),
        vec(text(), 0..4),
        option::of(text()),
        mood(),
        vec(attachment(), 0..3),
        vec(vec(any::<i32>(), 0..4), 0..3),
    )
        .prop_map(
            |(text, count, delta, small, score, flag, tags, note, mood, attachments, matrix)| {
                Rich {
                    text,
                    count,
                    delta,
                    small,
                    score,
                    flag,
                    tags,
                    note,
                    mood,
                    attachments,
                    matrix,
                }
            },
        )
}

fn search() -> impl Strategy<Value = Search> {
    let filter = (vec(text(), 0..3), option::of(any_finite_f64()))
        .prop_map(|(tags, min_score)| Filter { tags, min_score });
    (text(), any::<u32>(), option::of(filter)).prop_map(|(query, limit, filter)| Search {
        query,
        limit,
        filter,
    })
}

fn search_results() -> impl Strategy<Value = SearchResults> {
    (any::<u64>(), vec(rich(), 0..3)).prop_map(|(total, hits)| SearchResults { total, hits })
}

fn presence() -> impl Strategy<Value = Presence> {
    prop_oneof![
        Just(Presence::Online),
        any::<u64>().prop_map(|since_ms| Presence::Away { since_ms }),
        text().prop_map(Presence::Status),
    ]
}

/// Any JSON value.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any_finite_f64().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map(text(), inner, 0..5).prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Error details. A top-level `null` is left out: JSON cannot tell `"data":null`
/// from no data, so it reads back as `None`.
fn error_data() -> impl Strategy<Value = Value> {
    json_value().prop_filter("data is not null", |v| !v.is_null())
}

fn error_reply() -> impl Strategy<Value = ErrorReply> {
    (text(), text(), option::of(error_data())).prop_map(|(code, message, data)| ErrorReply {
        code: Cow::Owned(code),
        message,
        data,
    })
}

fn position() -> impl Strategy<Value = StreamPosition> {
    (text(), any::<u64>()).prop_map(|(epoch, offset)| StreamPosition { epoch, offset })
}

fn handshake() -> impl Strategy<Value = Handshake> {
    (
        any::<u16>(),
        any::<u64>(),
        option::of(text()),
        any::<u32>(),
        any::<u32>(),
        text(),
        any::<u32>(),
        vec(text(), 0..4),
        any::<[u32; 5]>(),
    )
        .prop_map(
            |(
                version,
                conn_id,
                user_id,
                interval_ms,
                timeout_ms,
                schema_hash,
                max_message_size,
                extensions,
                [
                    max_in_flight,
                    rate_per_sec,
                    rate_burst,
                    max_subscriptions,
                    max_channel_name,
                ],
            )| {
                Handshake {
                    version,
                    conn_id: ConnId(conn_id),
                    user_id: user_id.map(UserId),
                    heartbeat: Heartbeat {
                        interval_ms,
                        timeout_ms,
                    },
                    schema_hash,
                    max_message_size,
                    extensions,
                    limits: PeerLimits {
                        max_in_flight,
                        rate_per_sec,
                        rate_burst,
                        max_subscriptions,
                        max_channel_name,
                    },
                }
            },
        )
}

fn close_reason() -> impl Strategy<Value = CloseReason> {
    (text(), text(), any::<Option<u32>>()).prop_map(|(code, message, reconnect_after_ms)| {
        CloseReason {
            code: Cow::Owned(code),
            message,
            reconnect_after_ms,
        }
    })
}

/// A presence member, with and without info.
fn presence_member() -> impl Strategy<Value = PresenceMember> {
    (
        text(),
        option::of(prop_oneof![
            text().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (text(), any::<bool>()).prop_map(|(k, v)| serde_json::json!({ k: v })),
        ]),
    )
        .prop_map(|(user, info)| PresenceMember {
            user_id: UserId(user),
            info,
        })
}

fn presence_diff() -> impl Strategy<Value = PresenceDiff> {
    (
        proptest::collection::vec(presence_member(), 0..4),
        proptest::collection::vec(text().prop_map(UserId), 0..4),
    )
        .prop_map(|(joined, left)| PresenceDiff { joined, left })
}

/// Every control frame, each variant with and without its optional parts.
fn control() -> impl Strategy<Value = Control> {
    prop_oneof![
        handshake().prop_map(Control::Handshake),
        any::<u64>().prop_map(Control::Ping),
        any::<u64>().prop_map(Control::Pong),
        (request_id(), text(), option::of(position())).prop_map(|(req_id, channel, since)| {
            Control::Subscribe {
                req_id,
                channel,
                since,
            }
        }),
        (request_id(), text())
            .prop_map(|(req_id, channel)| Control::Unsubscribe { req_id, channel }),
        (request_id(), text(), any::<bool>()).prop_map(|(req_id, channel, watch)| {
            Control::Presence {
                req_id,
                channel,
                watch,
            }
        }),
        (text(), presence_diff())
            .prop_map(|(channel, diff)| Control::PresenceDiff { channel, diff }),
        text().prop_map(|channel| Control::Resubscribe { channel }),
        request_id().prop_map(|req_id| Control::Cancel { req_id }),
        proptest::collection::vec(text(), 0..4).prop_map(Control::Extensions),
        error_reply().prop_map(Control::Error),
        close_reason().prop_map(Control::Close),
    ]
}

// ---------------------------------------------------------------------------
// Frames and their checks
// ---------------------------------------------------------------------------

/// One frame of each kind the codecs encode, with the typed values it carries.
#[derive(Debug, Clone)]
enum Frame {
    Event(Rich),
    Nudge,
    Presence(Presence),
    Request {
        req_id: RequestId,
        deadline_ms: Option<u32>,
        search: Search,
    },
    Reply {
        req_id: RequestId,
        results: SearchResults,
    },
    UnitReply {
        req_id: RequestId,
    },
    ErrorReply {
        req_id: RequestId,
        error: ErrorReply,
    },
    Publication {
        channel: String,
        position: Option<StreamPosition>,
        event: Rich,
    },
    Control(Control),
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        rich().prop_map(Frame::Event),
        Just(Frame::Nudge),
        presence().prop_map(Frame::Presence),
        (request_id(), any::<Option<u32>>(), search()).prop_map(|(req_id, deadline_ms, search)| {
            Frame::Request {
                req_id,
                deadline_ms,
                search,
            }
        }),
        (request_id(), search_results())
            .prop_map(|(req_id, results)| Frame::Reply { req_id, results }),
        request_id().prop_map(|req_id| Frame::UnitReply { req_id }),
        (request_id(), error_reply())
            .prop_map(|(req_id, error)| Frame::ErrorReply { req_id, error }),
        (text(), option::of(position()), rich()).prop_map(|(channel, position, event)| {
            Frame::Publication {
                channel,
                position,
                event,
            }
        }),
        control().prop_map(Frame::Control),
    ]
}

impl Frame {
    fn encode(&self, codec: Codec) -> Result<Message, TestCaseError> {
        Ok(match self {
            Self::Event(event) => codec.encode_event(event)?,
            Self::Nudge => codec.encode_event(&Nudge)?,
            Self::Presence(event) => codec.encode_event(event)?,
            Self::Request {
                req_id,
                deadline_ms,
                search,
            } => codec.encode_request(*req_id, *deadline_ms, search)?,
            Self::Reply { req_id, results } => codec.encode_reply(*req_id, results)?,
            Self::UnitReply { req_id } => codec.encode_reply(*req_id, &())?,
            Self::ErrorReply { req_id, error } => codec.encode_error_reply(*req_id, error),
            Self::Publication {
                channel,
                position,
                event,
            } => codec.encode_publication(channel, position.as_ref(), event)?,
            Self::Control(control) => codec.encode_control(control),
        })
    }

    /// Checks, field by field, that `inbound` is this frame as `codec` sent it.
    fn check(&self, codec: Codec, inbound: &Inbound<'_>) -> Result<(), TestCaseError> {
        match (self, inbound) {
            (Self::Event(sent), Inbound::Event { event, payload }) => {
                names::<Rich>(codec, event)?;
                carries(codec, payload, sent, Rich::ID)
            }
            (Self::Nudge, Inbound::Event { event, payload }) => {
                names::<Nudge>(codec, event)?;
                carries(codec, payload, &Nudge, Nudge::ID)
            }
            (Self::Presence(sent), Inbound::Event { event, payload }) => {
                names::<Presence>(codec, event)?;
                carries(codec, payload, sent, Presence::ID)
            }
            (
                Self::Request {
                    req_id,
                    deadline_ms,
                    search,
                },
                Inbound::Request {
                    event,
                    req_id: got_id,
                    deadline_ms: got_deadline,
                    payload,
                },
            ) => {
                names::<Search>(codec, event)?;
                prop_assert_eq!(got_id, req_id);
                prop_assert_eq!(got_deadline, deadline_ms);
                carries(codec, payload, search, Search::ID)
            }
            (
                Self::Reply { req_id, results },
                Inbound::Reply {
                    req_id: got_id,
                    result: Ok(payload),
                },
            ) => {
                prop_assert_eq!(got_id, req_id);
                carries(codec, payload, results, "reply")
            }
            (
                Self::UnitReply { req_id },
                Inbound::Reply {
                    req_id: got_id,
                    result: Ok(payload),
                },
            ) => {
                prop_assert_eq!(got_id, req_id);
                carries(codec, payload, &(), "reply")
            }
            (
                Self::ErrorReply { req_id, error },
                Inbound::Reply {
                    req_id: got_id,
                    result: Err(got_error),
                },
            ) => {
                prop_assert_eq!(got_id, req_id);
                prop_assert_eq!(got_error, error);
                Ok(())
            }
            (
                Self::Publication {
                    channel,
                    position,
                    event: sent,
                },
                Inbound::Publication {
                    channel: got_channel,
                    event,
                    position: got_position,
                    payload,
                },
            ) => {
                prop_assert_eq!(got_channel.as_ref(), channel.as_str());
                names::<Rich>(codec, event)?;
                prop_assert_eq!(got_position, position);
                carries(codec, payload, sent, Rich::ID)
            }
            (Self::Control(sent), Inbound::Control(got)) => {
                prop_assert_eq!(got, sent);
                Ok(())
            }
            (sent, got) => Err(TestCaseError::fail(format!(
                "{codec}: sent {sent:?}, decoded {got:?}"
            ))),
        }
    }

    /// Decodes `payload` as the type this frame carries; `None` for frames
    /// that carry no payload.
    fn decode_payload(&self, payload: &Payload<'_>) -> Option<Result<(), ProtocolError>> {
        let result = match self {
            Self::Event(_) | Self::Publication { .. } => payload.decode::<Rich>(Rich::ID).map(drop),
            Self::Nudge => payload.decode::<Nudge>(Nudge::ID).map(drop),
            Self::Presence(_) => payload.decode::<Presence>(Presence::ID).map(drop),
            Self::Request { .. } => payload.decode::<Search>(Search::ID).map(drop),
            Self::Reply { .. } => payload.decode::<SearchResults>("reply").map(drop),
            Self::UnitReply { .. } => payload.decode::<()>("reply").map(drop),
            Self::ErrorReply { .. } | Self::Control(_) => return None,
        };
        Some(result)
    }
}

/// Decodes `message`, checking first that `codec` sent the right kind of WebSocket message.
fn decode(codec: Codec, message: &Message) -> Result<Inbound<'_>, TestCaseError> {
    match (codec, message) {
        (Codec::Json, Message::Text(_)) | (Codec::Postcard, Message::Binary(_)) => {}
        _ => return Err(TestCaseError::fail(format!("{codec} sent {message:?}"))),
    }
    Ok(Codec::decode(message)?)
}

/// Checks that `got` names the event `E` the way `codec` names events.
fn names<E: Event>(codec: Codec, got: &EventRef<'_>) -> Result<(), TestCaseError> {
    let want = match codec {
        Codec::Json => EventRef::Id(Cow::Borrowed(E::ID)),
        Codec::Postcard => EventRef::Key(E::KEY),
    };
    prop_assert_eq!(got, &want);
    prop_assert!(got.is(E::ID, E::KEY));
    prop_assert_eq!(got.key(), E::KEY);
    Ok(())
}

/// Checks that `payload` holds `value` exactly as the bare serializer writes it,
/// and that it decodes back to `value`.
fn carries<T>(
    codec: Codec,
    payload: &Payload<'_>,
    value: &T,
    what: &'static str,
) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    match (codec, payload) {
        (Codec::Json, Payload::Json(raw)) => {
            prop_assert_eq!(raw.get(), serde_json::to_string(value)?)
        }
        (Codec::Postcard, Payload::Postcard(bytes)) => {
            let bare = postcard::to_allocvec(value)?;
            prop_assert_eq!(*bytes, bare.as_slice());
        }
        _ => {
            return Err(TestCaseError::fail(format!(
                "a {codec} frame carries {payload:?}"
            )));
        }
    }
    prop_assert_eq!(&payload.decode::<T>(what)?, value);
    Ok(())
}

fn round_trip(frame: &Frame) -> Result<(), TestCaseError> {
    for codec in CODECS {
        let message = frame.encode(codec)?;
        let inbound = decode(codec, &message)?;
        frame.check(codec, &inbound)?;
    }
    Ok(())
}

/// Whether a decoder's answer is one it may give for hostile input.
fn is_ok_or_bad_frame(result: &Result<Inbound<'_>, ProtocolError>, encoding: &str) -> bool {
    match result {
        Ok(_) => true,
        Err(
            ProtocolError::BadFrame { encoding: got, .. }
            | ProtocolError::BadRequest { encoding: got, .. },
        ) => *got == encoding,
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

proptest! {
    #[test]
    fn events_round_trip(event in rich()) {
        round_trip(&Frame::Event(event))?;
    }

    #[test]
    fn unit_and_enum_events_round_trip(event in presence()) {
        round_trip(&Frame::Nudge)?;
        round_trip(&Frame::Presence(event))?;
    }

    #[test]
    fn requests_round_trip(
        req_id in request_id(),
        deadline_ms in any::<Option<u32>>(),
        search in search(),
    ) {
        round_trip(&Frame::Request { req_id, deadline_ms, search: search.clone() })?;
        // Both shapes, whatever the strategy drew.
        round_trip(&Frame::Request { req_id, deadline_ms: None, search: search.clone() })?;
        round_trip(&Frame::Request { req_id, deadline_ms: Some(deadline_ms.unwrap_or(0)), search })?;
    }

    #[test]
    fn replies_round_trip(req_id in request_id(), results in search_results()) {
        round_trip(&Frame::Reply { req_id, results })?;
        round_trip(&Frame::UnitReply { req_id })?;
    }

    #[test]
    fn error_replies_round_trip(req_id in request_id(), error in error_reply(), data in error_data()) {
        round_trip(&Frame::ErrorReply { req_id, error: ErrorReply { data: None, ..error.clone() } })?;
        round_trip(&Frame::ErrorReply { req_id, error: error.with_data(data) })?;
    }

    #[test]
    fn publications_round_trip(channel in text(), position in position(), event in rich()) {
        round_trip(&Frame::Publication { channel: channel.clone(), position: None, event: event.clone() })?;
        round_trip(&Frame::Publication { channel, position: Some(position), event })?;
    }

    /// A publication framed from its payload alone (as an engine that carries
    /// publications between processes does) is byte for byte the one
    /// encoded from the value.
    #[test]
    fn publications_framed_from_payloads_are_the_same_bytes(
        channel in text(),
        position in position(),
        event in rich(),
    ) {
        for codec in [Codec::Json, Codec::Postcard] {
            let payload = codec.encode_payload(Rich::ID, &event)?;
            let framed =
                codec.encode_publication_of_payload(&channel, Rich::ID, &position, &payload)?;
            let direct = codec.encode_publication(&channel, Some(&position), &event)?;
            prop_assert_eq!(framed, direct);
        }
        let json = Codec::Json.encode_payload(Rich::ID, &event)?;
        let postcard = Codec::Postcard.encode_payload(Rich::ID, &event)?;
        let publication = sente_lite::engine::Publication::from_payloads(
            channel.as_str().into(),
            position.epoch.as_str().into(),
            position.offset,
            Rich::ID,
            Some(&json),
            Some(&postcard),
        );
        for codec in [Codec::Json, Codec::Postcard] {
            prop_assert_eq!(
                publication.message(codec, None)?,
                codec.encode_publication(&channel, Some(&position), &event)?
            );
        }
        prop_assert_eq!(publication.decode::<Rich>(), Some(event));
    }

    /// A one-way event framed from its payloads (as an engine carries an
    /// event for a user to another process) is byte for byte the one
    /// encoded from the value, in each encoding and as a publication.
    #[test]
    fn events_framed_from_payloads_are_the_same_bytes(
        channel in text(),
        position in position(),
        event in rich(),
    ) {
        let json = Codec::Json.encode_payload(Rich::ID, &event)?;
        let postcard = Codec::Postcard.encode_payload(Rich::ID, &event)?;
        for (codec, payload) in [(Codec::Json, &json), (Codec::Postcard, &postcard)] {
            prop_assert_eq!(
                codec.encode_event_of_payload(Rich::ID, payload)?,
                codec.encode_event(&event)?
            );
        }
        let typed = sente_lite::engine::OutgoingEvent::new(&event);
        sente_lite::engine::OutgoingEvent::with_payloads(
            Rich::ID,
            Some(&json),
            Some(&postcard),
            |outgoing| {
                prop_assert_eq!(outgoing.id(), Rich::ID);
                prop_assert_eq!(outgoing.key(), typed.key());
                for codec in [Codec::Json, Codec::Postcard] {
                    prop_assert_eq!(outgoing.message(codec)?, typed.message(codec)?);
                    prop_assert_eq!(outgoing.payload(codec)?, typed.payload(codec)?);
                }
                let publication = sente_lite::engine::Publication::new(
                    channel.as_str().into(),
                    position.epoch.as_str().into(),
                    position.offset,
                    outgoing,
                );
                for codec in [Codec::Json, Codec::Postcard] {
                    prop_assert_eq!(
                        publication.message(codec, Some(outgoing))?,
                        codec.encode_publication(&channel, Some(&position), &event)?
                    );
                }
                Ok(())
            },
        )?;
    }

    /// A request framed from its payload (as an engine carries a request to
    /// a user on another server) is byte for byte the one encoded from the
    /// value; a reply kept as it came decodes as the typed one would.
    #[test]
    fn requests_framed_from_payloads_are_the_same_bytes(
        search in search(),
        req_id in 1u64..(1 << 53),
        deadline_ms in proptest::option::of(any::<u32>()),
    ) {
        for codec in [Codec::Json, Codec::Postcard] {
            let payload = codec.encode_payload(Search::ID, &search)?;
            prop_assert_eq!(
                codec.encode_request_of_payload(Search::ID, req_id, deadline_ms, &payload)?,
                codec.encode_request(req_id, deadline_ms, &search)?
            );
            let kept = sente_lite::RawReply { codec, payload };
            prop_assert_eq!(kept.decode::<Search>(), Ok(search.clone()));
        }
    }

    #[test]
    fn controls_round_trip(control in control()) {
        round_trip(&Frame::Control(control))?;
    }

    #[test]
    fn postcard_keeps_every_float_exactly(score in any_finite_f64()) {
        let message = Codec::Postcard.encode_event(&float_event(score))?;
        let inbound = decode(Codec::Postcard, &message)?;
        Frame::Event(float_event(score)).check(Codec::Postcard, &inbound)?;
    }

    /// serde_json's default float parser is not correctly rounded (about 3 in 10
    /// arbitrary floats came back a unit or two off); the workspace enables its
    /// `float_roundtrip` feature so that JSON payloads keep every float exactly.
    #[test]
    fn json_keeps_every_float_exactly(score in any_finite_f64()) {
        let message = Codec::Json.encode_event(&float_event(score))?;
        let inbound = decode(Codec::Json, &message)?;
        Frame::Event(float_event(score)).check(Codec::Json, &inbound)?;
    }
}

/// An event whose only interesting field is a float.
fn float_event(score: f64) -> Rich {
    Rich {
        text: String::new(),
        count: 0,
        delta: 0,
        small: 0,
        score,
        flag: false,
        tags: vec![],
        note: None,
        mood: Mood::Calm,
        attachments: vec![],
        matrix: vec![],
    }
}

// ---------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------

/// A JSON element as raw text: any value, or a token a Rust integer cannot hold.
fn raw_json_element() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => json_value().prop_map(|v| v.to_string()),
        1 => select(vec![
            "-1", "-0", "1.5", "1e400", "-1e400", "4294967296", "9007199254740992",
            "18446744073709551615", "18446744073709551616", "-9223372036854775809",
            "123456789012345678901234567890", "[]", "{}", "null", "true", "\"\"",
        ])
        .prop_map(String::from),
        1 => (1usize..300).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth))),
        1 => (1usize..300).prop_map(|depth| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))),
    ]
}

/// A frame name: every `sl/` name, unknown `sl/` names, event ids, and non-strings.
fn frame_head() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "sl/ok", "sl/err", "sl/pub", "sl/handshake", "sl/ping", "sl/pong", "sl/sub",
            "sl/unsub", "sl/error", "sl/close", "sl/", "sl/nope", "sl/presence", "SL/ping",
            "sl/presence-diff", "sl/resub",
            "chat/send", "user/get", "", "not an id",
        ])
        .prop_map(|name| Value::from(name).to_string()),
        1 => text().prop_map(|name| Value::from(name).to_string()),
        1 => raw_json_element(),
    ]
}

/// JSON arrays shaped like frames but with wrong element types or counts.
fn wrong_shape() -> impl Strategy<Value = String> {
    (frame_head(), vec(raw_json_element(), 0..6)).prop_map(|(head, rest)| {
        let elements: Vec<String> = std::iter::once(head).chain(rest).collect();
        format!("[{}]", elements.join(","))
    })
}

proptest! {
    #[test]
    fn json_decoder_never_panics_on_any_text(text in any::<String>()) {
        let result = Codec::decode_json(&text);
        prop_assert!(is_ok_or_bad_frame(&result, "json"), "{:?}", result);
    }

    #[test]
    fn json_decoder_never_panics_on_wrong_shapes(text in wrong_shape()) {
        let result = Codec::decode_json(&text);
        prop_assert!(is_ok_or_bad_frame(&result, "json"), "{:?}", result);
        let message = Message::text(text.clone());
        prop_assert_eq!(Codec::decode(&message), result);
    }

    #[test]
    fn postcard_decoder_never_panics_on_any_bytes(bytes in vec(any::<u8>(), 0..96)) {
        let result = Codec::decode_postcard(&bytes);
        prop_assert!(is_ok_or_bad_frame(&result, "postcard"), "{:?}", result);
    }

    /// Arbitrary bytes after a valid frame kind, to get past the first byte more often.
    #[test]
    fn postcard_decoder_never_panics_on_any_frame_body(kind in 0u8..15, body in vec(any::<u8>(), 0..96)) {
        let bytes: Vec<u8> = std::iter::once(kind).chain(body).collect();
        let result = Codec::decode_postcard(&bytes);
        prop_assert!(is_ok_or_bad_frame(&result, "postcard"), "{:?}", result);
    }

    #[test]
    fn postcard_payload_of_arbitrary_bytes_is_bad_payload(bytes in vec(any::<u8>(), 0..96)) {
        let payload = Payload::Postcard(&bytes);
        for result in [
            payload.decode::<Rich>(Rich::ID).map(drop),
            payload.decode::<Search>(Search::ID).map(drop),
            payload.decode::<Presence>(Presence::ID).map(drop),
            payload.decode::<Nudge>(Nudge::ID).map(drop),
        ] {
            prop_assert!(
                matches!(result, Ok(()) | Err(ProtocolError::BadPayload { .. })),
                "{:?}",
                result
            );
        }
        if !bytes.is_empty() {
            // A unit struct is zero bytes: anything more is left over.
            let nudge = payload.decode::<Nudge>(Nudge::ID);
            prop_assert!(
                matches!(nudge, Err(ProtocolError::BadPayload { event: "props/nudge", .. })),
                "{:?}",
                nudge
            );
        }
    }

    #[test]
    fn json_payload_of_arbitrary_values_is_bad_payload(value in json_value()) {
        let raw = RawValue::from_string(value.to_string())?;
        let payload = Payload::Json(&raw);
        for result in [
            payload.decode::<Rich>(Rich::ID).map(drop),
            payload.decode::<Search>(Search::ID).map(drop),
            payload.decode::<Presence>(Presence::ID).map(drop),
        ] {
            prop_assert!(
                matches!(result, Ok(()) | Err(ProtocolError::BadPayload { .. })),
                "{:?}",
                result
            );
        }
    }

    /// A strict prefix of a valid binary frame never decodes as a whole frame:
    /// either the header is cut (`BadFrame`) or the payload is (`BadPayload`).
    #[test]
    fn truncated_postcard_frames_are_rejected(frame in frame()) {
        let message = frame.encode(Codec::Postcard)?;
        let Message::Binary(bytes) = message else {
            return Err(TestCaseError::fail("postcard sent a text message"));
        };
        for len in 0..bytes.len() {
            match Codec::decode_postcard(&bytes[..len]) {
                Err(
                    ProtocolError::BadFrame { encoding: "postcard", .. }
                    | ProtocolError::BadRequest { encoding: "postcard", .. },
                ) => {}
                Ok(inbound) => {
                    let payload = match &inbound {
                        Inbound::Event { payload, .. }
                        | Inbound::Request { payload, .. }
                        | Inbound::Publication { payload, .. }
                        | Inbound::Reply { result: Ok(payload), .. } => payload,
                        other => return Err(TestCaseError::fail(format!(
                            "{len} of {} bytes decoded as {other:?}", bytes.len()
                        ))),
                    };
                    let decoded = frame.decode_payload(payload);
                    prop_assert!(
                        matches!(decoded, Some(Err(ProtocolError::BadPayload { .. }))),
                        "{} of {} bytes: payload gave {:?}", len, bytes.len(), decoded
                    );
                }
                Err(other) => return Err(TestCaseError::fail(format!("{len} bytes: {other:?}"))),
            }
        }
    }
}

#[test]
fn malformed_json_frames_are_bad_frames() {
    let deep = "[".repeat(100_000);
    let deep_payload = format!("[\"chat/send\",{deep}");
    let frames = [
        "",
        " ",
        "null",
        "{}",
        "[]",
        "[1,2]",
        "\"chat/send\"",
        "[\"chat/send\"]",
        "[\"chat/send\",{},1,2,3]",
        "[\"chat/send\",{}] x",
        "[\"chat/send\",{}][\"chat/send\",{}]",
        "[\"chat/send\",{\"text\":\"hi\"}",
        // request ids: negative, fractional, past u64, not a number
        "[\"user/get\",{\"id\":1},-1]",
        "[\"user/get\",{\"id\":1},7.5]",
        "[\"user/get\",{\"id\":1},18446744073709551616]",
        "[\"user/get\",{\"id\":1},1e400]",
        "[\"user/get\",{\"id\":1},\"7\"]",
        "[\"user/get\",{\"id\":1},null]",
        // deadlines past u32
        "[\"user/get\",{\"id\":1},7,4294967296]",
        "[\"user/get\",{\"id\":1},7,-1]",
        // protocol frames with missing, extra or mistyped elements
        "[\"sl/ok\"]",
        "[\"sl/ok\",7]",
        "[\"sl/ok\",\"7\",{}]",
        "[\"sl/ok\",-7,{}]",
        "[\"sl/err\",7]",
        "[\"sl/err\",7,\"boom\"]",
        "[\"sl/err\",7,{\"code\":1,\"message\":\"x\"}]",
        "[\"sl/err\",7,{\"message\":\"x\"}]",
        "[\"sl/ping\"]",
        "[\"sl/ping\",-1]",
        "[\"sl/ping\",1,2]",
        "[\"sl/ping\",1e400]",
        "[\"sl/pong\",\"3\"]",
        "[\"sl/sub\",8]",
        "[\"sl/sub\",8,7]",
        "[\"sl/sub\",8,\"room/lobby\",{\"epoch\":\"e\"}]",
        "[\"sl/unsub\",9]",
        "[\"sl/pub\",\"room/lobby\"]",
        "[\"sl/pub\",\"room/lobby\",\"chat/send\"]",
        "[\"sl/pub\",\"room/lobby\",\"chat/send\",{},{\"offset\":1}]",
        "[\"sl/handshake\",{}]",
        "[\"sl/error\",{}]",
        "[\"sl/close\",{\"code\":\"x\"}]",
        "[\"sl/resub\"]",
        "[\"sl/resub\",\"room/lobby\"]",
        "[\"sl/resub\",{}]",
        "[\"sl/resub\",{\"channel\":7}]",
        "[\"sl/resub\",{\"channel\":\"room/lobby\"},1]",
        // unknown protocol frames
        "[\"sl/nope\",1]",
        "[\"sl/\",1]",
        "[\"sl/presence\",{}]",
        // unclosed nesting, at the top and in the payload
        &deep,
        &deep_payload,
    ];
    for frame in frames {
        let result = Codec::decode_json(frame);
        assert!(
            matches!(
                result,
                Err(ProtocolError::BadFrame {
                    encoding: "json",
                    ..
                } | ProtocolError::BadRequest {
                    encoding: "json",
                    ..
                })
            ),
            "{:.80}: {:.200}",
            frame,
            format!("{result:?}")
        );
    }
}

/// The frame decoder only finds where a payload ends, however deeply it nests;
/// decoding it into a type then stops at `serde_json`'s recursion limit.
#[test]
fn deeply_nested_payloads_are_bad_payloads() {
    let nested = format!(
        "[\"chat/send\",{}{}]",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let Ok(Inbound::Event { payload, .. }) = Codec::decode_json(&nested) else {
        panic!("a deeply nested payload is still a well-formed frame");
    };
    for result in [
        payload.decode::<Value>(ChatSend::ID).map(drop),
        payload.decode::<ChatSend>(ChatSend::ID).map(drop),
    ] {
        assert!(
            matches!(
                result,
                Err(ProtocolError::BadPayload {
                    event: "chat/send",
                    ..
                })
            ),
            "{result:?}"
        );
    }
}

#[test]
fn malformed_postcard_frames_are_bad_frames() {
    let frames: &[&[u8]] = &[
        &[],
        // frame kinds that do not exist
        &[12],
        &[0xff, 0x01],
        // an event key past u32
        &[0x00, 0xff, 0xff, 0xff, 0xff, 0x1f],
        // a varint that never ends
        &[
            0x06, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        ],
        // a string longer than the frame
        &[0x09, 0x01, 0x7f, b'a'],
        // a string that is not UTF-8
        &[0x09, 0x01, 0x01, 0xff],
        // an option tag that is neither 0 nor 1
        &[0x01, 0x01, 0x07, 0x02],
        // error data that is not JSON
        &[0x03, 0x07, 0x01, b'c', 0x01, b'm', 0x01, 0x01, b'{'],
        // trailing bytes after frames that carry no payload
        &[0x06, 0x03, 0x00],
        &[0x09, 0x09, 0x00, 0x00],
        &[0x03, 0x07, 0x00, 0x00, 0x00, 0x00],
        &[0x0e, 0x01, b'a', 0x00],
        // a resubscribe without its channel
        &[0x0e],
    ];
    for &frame in frames {
        let result = Codec::decode_postcard(frame);
        assert!(
            matches!(
                result,
                Err(ProtocolError::BadFrame {
                    encoding: "postcard",
                    ..
                } | ProtocolError::BadRequest {
                    encoding: "postcard",
                    ..
                })
            ),
            "{frame:02x?}: {result:?}"
        );
    }
}

#[test]
fn websocket_control_messages_are_not_frames() {
    for message in [
        Message::Ping(Vec::new().into()),
        Message::Pong(Vec::new().into()),
        Message::Close(None),
    ] {
        let result = Codec::decode(&message);
        assert!(
            matches!(
                result,
                Err(ProtocolError::BadFrame {
                    encoding: "websocket",
                    ..
                })
            ),
            "{message:?}: {result:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The wire format, pinned
// ---------------------------------------------------------------------------

/// Bytes from the spaced hex used in `docs/PROTOCOL.md`.
fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).expect("hex byte"))
        .collect()
}

/// Checks that `encode` writes exactly `json` in JSON and `postcard_hex` in postcard.
fn pin(encode: impl Fn(Codec) -> Message, json: &str, postcard_hex: &str) {
    match encode(Codec::Json) {
        Message::Text(text) => assert_eq!(text.as_str(), json),
        other => panic!("JSON sent {other:?}"),
    }
    match encode(Codec::Postcard) {
        Message::Binary(bytes) => assert_eq!(
            bytes.as_ref(),
            hex(postcard_hex).as_slice(),
            "postcard of {json}: got {:02x?}",
            bytes.as_ref()
        ),
        other => panic!("postcard sent {other:?}"),
    }
}

fn raw(json: &str) -> &RawValue {
    serde_json::from_str(json).expect("valid JSON")
}

#[test]
fn event_keys_are_pinned() {
    assert_eq!(ChatSend::KEY, EventKey::from_raw(0x76f0_bc12));
    assert_eq!(UserGet::KEY, EventKey::from_raw(0xa17a_2151));
}

#[test]
fn events_are_pinned() {
    let hi = ChatSend { text: "hi".into() };
    // Kind 0, the key 0x76f0bc12 as a LEB128 varint, then the payload's own postcard bytes.
    pin(
        |c| c.encode_event(&hi).unwrap(),
        r#"["chat/send",{"text":"hi"}]"#,
        "00 92 f8 c2 b7 07 02 68 69",
    );
    assert_eq!(
        Codec::decode_json(r#"["chat/send",{"text":"hi"}]"#).unwrap(),
        Inbound::Event {
            event: EventRef::Id("chat/send".into()),
            payload: Payload::Json(raw(r#"{"text":"hi"}"#)),
        }
    );
    let bytes = hex("00 92 f8 c2 b7 07 02 68 69");
    assert_eq!(
        Codec::decode_postcard(&bytes).unwrap(),
        Inbound::Event {
            event: EventRef::Key(ChatSend::KEY),
            payload: Payload::Postcard(&[0x02, b'h', b'i']),
        }
    );
    // A unit struct is `null` in JSON and zero bytes in postcard.
    let nudge_key = postcard::to_allocvec(&Nudge::KEY).unwrap();
    let nudge_hex: Vec<String> = std::iter::once(0u8)
        .chain(nudge_key)
        .map(|b| format!("{b:02x}"))
        .collect();
    pin(
        |c| c.encode_event(&Nudge).unwrap(),
        r#"["props/nudge",null]"#,
        &nudge_hex.join(" "),
    );
}

#[test]
fn requests_are_pinned() {
    let get = UserGet { id: 1 };
    pin(
        |c| c.encode_request(7, Some(5000), &get).unwrap(),
        r#"["user/get",{"id":1},7,5000]"#,
        "01 d1 c2 e8 8b 0a 07 01 88 27 01",
    );
    pin(
        |c| c.encode_request(7, None, &get).unwrap(),
        r#"["user/get",{"id":1},7]"#,
        "01 d1 c2 e8 8b 0a 07 00 01",
    );
    assert_eq!(
        Codec::decode_json(r#"["user/get",{"id":1},7,5000]"#).unwrap(),
        Inbound::Request {
            event: EventRef::Id("user/get".into()),
            req_id: 7,
            deadline_ms: Some(5000),
            payload: Payload::Json(raw(r#"{"id":1}"#)),
        }
    );
    let bytes = hex("01 d1 c2 e8 8b 0a 07 01 88 27 01");
    assert_eq!(
        Codec::decode_postcard(&bytes).unwrap(),
        Inbound::Request {
            event: EventRef::Key(UserGet::KEY),
            req_id: 7,
            deadline_ms: Some(5000),
            payload: Payload::Postcard(&[0x01]),
        }
    );
    // The largest id a JavaScript peer reads exactly.
    let json = Codec::Json
        .encode_request(MAX_JSON_REQUEST_ID, None, &get)
        .unwrap();
    assert_eq!(
        json.to_text().unwrap(),
        r#"["user/get",{"id":1},9007199254740991]"#
    );
}

#[test]
fn replies_are_pinned() {
    let ada = User {
        id: 1,
        name: "ada".into(),
    };
    pin(
        |c| c.encode_reply(7, &ada).unwrap(),
        r#"["sl/ok",7,{"id":1,"name":"ada"}]"#,
        "02 07 01 03 61 64 61",
    );
    let recovered = SubscribeReply {
        position: Some(StreamPosition {
            epoch: "k3x9".into(),
            offset: 42,
        }),
        recovered: true,
    };
    pin(
        |c| c.encode_reply(8, &recovered).unwrap(),
        r#"["sl/ok",8,{"position":{"epoch":"k3x9","offset":42},"recovered":true}]"#,
        "02 08 01 04 6b 33 78 39 2a 01",
    );
    pin(
        |c| c.encode_reply(9, &()).unwrap(),
        r#"["sl/ok",9,null]"#,
        "02 09",
    );
    let bytes = hex("02 07 01 03 61 64 61");
    let Inbound::Reply {
        req_id: 7,
        result: Ok(payload),
    } = Codec::decode_postcard(&bytes).unwrap()
    else {
        panic!("not a reply to 7");
    };
    assert_eq!(payload.decode::<User>("reply").unwrap(), ada);
}

#[test]
fn error_replies_are_pinned() {
    let not_found = ErrorReply::new("user/not-found", "no user 1");
    pin(
        |c| c.encode_error_reply(7, &not_found),
        r#"["sl/err",7,{"code":"user/not-found","message":"no user 1"}]"#,
        "03 07 0e 75 73 65 72 2f 6e 6f 74 2d 66 6f 75 6e 64 09 6e 6f 20 75 73 65 72 20 31 00",
    );
    let bad_event = ErrorReply::new("bad-event", "unknown event `chat/sned`");
    assert_eq!(
        Codec::Json
            .encode_error_reply(7, &bad_event)
            .to_text()
            .unwrap(),
        r#"["sl/err",7,{"code":"bad-event","message":"unknown event `chat/sned`"}]"#
    );
    // Error data travels inline in JSON and as JSON text in postcard.
    let with_data =
        ErrorReply::new("bad-payload", "x").with_data(serde_json::json!({ "field": "id" }));
    pin(
        |c| c.encode_error_reply(7, &with_data),
        r#"["sl/err",7,{"code":"bad-payload","message":"x","data":{"field":"id"}}]"#,
        "03 07 0b 62 61 64 2d 70 61 79 6c 6f 61 64 01 78 01 0e 7b 22 66 69 65 6c 64 22 3a 22 69 64 22 7d",
    );
    assert_eq!(
        Codec::decode_json(
            r#"["sl/err",7,{"code":"bad-payload","message":"x","data":{"field":"id"}}]"#
        )
        .unwrap(),
        Inbound::Reply {
            req_id: 7,
            result: Err(with_data),
        }
    );
}

#[test]
fn publications_are_pinned() {
    let hi = ChatSend { text: "hi".into() };
    pin(
        |c| c.encode_publication("room/lobby", None, &hi).unwrap(),
        r#"["sl/pub","room/lobby","chat/send",{"text":"hi"}]"#,
        "04 0a 72 6f 6f 6d 2f 6c 6f 62 62 79 92 f8 c2 b7 07 00 02 68 69",
    );
    let position = StreamPosition {
        epoch: "k3x9".into(),
        offset: 42,
    };
    pin(
        |c| {
            c.encode_publication("room/lobby", Some(&position), &hi)
                .unwrap()
        },
        r#"["sl/pub","room/lobby","chat/send",{"text":"hi"},{"epoch":"k3x9","offset":42}]"#,
        "04 0a 72 6f 6f 6d 2f 6c 6f 62 62 79 92 f8 c2 b7 07 01 04 6b 33 78 39 2a 02 68 69",
    );
}

#[test]
fn controls_are_pinned() {
    pin(
        |c| c.encode_control(&Control::Ping(3)),
        r#"["sl/ping",3]"#,
        "06 03",
    );
    pin(
        |c| c.encode_control(&Control::Pong(3)),
        r#"["sl/pong",3]"#,
        "07 03",
    );
    let lobby = "room/lobby".to_owned();
    pin(
        |c| {
            c.encode_control(&Control::Subscribe {
                req_id: 8,
                channel: lobby.clone(),
                since: None,
            })
        },
        r#"["sl/sub",8,"room/lobby"]"#,
        "08 08 0a 72 6f 6f 6d 2f 6c 6f 62 62 79 00",
    );
    pin(
        |c| {
            c.encode_control(&Control::Subscribe {
                req_id: 8,
                channel: lobby.clone(),
                since: Some(StreamPosition {
                    epoch: "k3x9".into(),
                    offset: 42,
                }),
            })
        },
        r#"["sl/sub",8,"room/lobby",{"epoch":"k3x9","offset":42}]"#,
        "08 08 0a 72 6f 6f 6d 2f 6c 6f 62 62 79 01 04 6b 33 78 39 2a",
    );
    pin(
        |c| {
            c.encode_control(&Control::Unsubscribe {
                req_id: 9,
                channel: lobby.clone(),
            })
        },
        r#"["sl/unsub",9,"room/lobby"]"#,
        "09 09 0a 72 6f 6f 6d 2f 6c 6f 62 62 79",
    );
    pin(
        |c| {
            c.encode_control(&Control::Presence {
                req_id: 10,
                channel: lobby.clone(),
                watch: true,
            })
        },
        r#"["sl/presence",10,"room/lobby",true]"#,
        "0c 0a 0a 72 6f 6f 6d 2f 6c 6f 62 62 79 01",
    );
    pin(
        |c| {
            c.encode_control(&Control::PresenceDiff {
                channel: lobby.clone(),
                diff: PresenceDiff {
                    joined: vec![PresenceMember {
                        user_id: UserId("cy".into()),
                        info: None,
                    }],
                    left: vec![UserId("bob".into())],
                },
            })
        },
        r#"["sl/presence-diff","room/lobby",{"joined":[{"user_id":"cy","info":null}],"left":["bob"]}]"#,
        "0d 0a 72 6f 6f 6d 2f 6c 6f 62 62 79 01 02 63 79 00 01 03 62 6f 62",
    );
    pin(
        |c| {
            c.encode_control(&Control::Resubscribe {
                channel: lobby.clone(),
            })
        },
        r#"["sl/resub",{"channel":"room/lobby"}]"#,
        "0e 0a 72 6f 6f 6d 2f 6c 6f 62 62 79",
    );
    pin(
        |c| c.encode_control(&Control::Cancel { req_id: 7 }),
        r#"["sl/cancel",7]"#,
        "0f 07",
    );
    pin(
        |c| c.encode_control(&Control::Extensions(vec!["cancel".into()])),
        r#"["sl/extensions",["cancel"]]"#,
        "10 01 06 63 61 6e 63 65 6c",
    );
    let handshake = Handshake {
        version: 1,
        conn_id: ConnId(12),
        user_id: Some("ada".into()),
        heartbeat: Heartbeat {
            interval_ms: 25_000,
            timeout_ms: 10_000,
        },
        schema_hash: "9f3b2c1d4e5a6b7c".into(),
        max_message_size: 1_048_576,
        extensions: vec![],
        limits: PeerLimits {
            max_in_flight: 64,
            rate_per_sec: 200,
            rate_burst: 400,
            max_subscriptions: 256,
            max_channel_name: 256,
        },
    };
    pin(
        |c| c.encode_control(&Control::Handshake(handshake.clone())),
        r#"["sl/handshake",{"version":1,"conn_id":12,"user_id":"ada","heartbeat":{"interval_ms":25000,"timeout_ms":10000},"schema_hash":"9f3b2c1d4e5a6b7c","max_message_size":1048576,"extensions":[],"limits":{"max_in_flight":64,"rate_per_sec":200,"rate_burst":400,"max_subscriptions":256,"max_channel_name":256}}]"#,
        "05 01 0c 01 03 61 64 61 a8 c3 01 90 4e 10 39 66 33 62 32 63 31 64 34 65 35 61 36 62 37 63 80 80 40 00 40 c8 01 90 03 80 02 80 02",
    );
    let unknown = ErrorReply::new(
        "bad-event",
        "unknown event `chat/sned`: no handler is routed for it",
    );
    pin(
        |c| c.encode_control(&Control::Error(unknown.clone())),
        r#"["sl/error",{"code":"bad-event","message":"unknown event `chat/sned`: no handler is routed for it"}]"#,
        "0a 09 62 61 64 2d 65 76 65 6e 74 36 75 6e 6b 6e 6f 77 6e 20 65 76 65 6e 74 20 60 63 68 61 74 2f 73 6e 65 64 60 3a 20 6e 6f 20 68 61 6e 64 6c 65 72 20 69 73 20 72 6f 75 74 65 64 20 66 6f 72 20 69 74 00",
    );
    let going_away = CloseReason {
        code: "going-away".into(),
        message: "server shutting down".into(),
        reconnect_after_ms: Some(1500),
    };
    pin(
        |c| c.encode_control(&Control::Close(going_away.clone())),
        r#"["sl/close",{"code":"going-away","message":"server shutting down","reconnect_after_ms":1500}]"#,
        "0b 0a 67 6f 69 6e 67 2d 61 77 61 79 14 73 65 72 76 65 72 20 73 68 75 74 74 69 6e 67 20 64 6f 77 6e 01 dc 0b",
    );
    assert_eq!(
        Codec::decode_json(r#"["sl/ping",3]"#).unwrap(),
        Inbound::Control(Control::Ping(3))
    );
    assert_eq!(
        Codec::decode_postcard(&hex("0b 0a 67 6f 69 6e 67 2d 61 77 61 79 14 73 65 72 76 65 72 20 73 68 75 74 74 69 6e 67 20 64 6f 77 6e 01 dc 0b")).unwrap(),
        Inbound::Control(Control::Close(going_away))
    );
}

/// JSON peers may add object fields in later versions; the decoder ignores them.
#[test]
fn unknown_object_fields_are_ignored() {
    let inbound = Codec::decode_json(
        r#"["sl/close",{"code":"going-away","message":"bye","reconnect_after_ms":null,"later":[1,2]}]"#,
    )
    .unwrap();
    assert_eq!(
        inbound,
        Inbound::Control(Control::Close(CloseReason {
            code: "going-away".into(),
            message: "bye".into(),
            reconnect_after_ms: None,
        }))
    );
}

/// `sl/resub` is an object so that it may gain fields: unknown ones are ignored.
#[test]
fn unknown_resubscribe_fields_are_ignored() {
    let inbound =
        Codec::decode_json(r#"["sl/resub",{"reason":"epoch","channel":"room/lobby"}]"#).unwrap();
    assert_eq!(
        inbound,
        Inbound::Control(Control::Resubscribe {
            channel: "room/lobby".into(),
        })
    );
}

/// `null` error data is no data in both encodings.
#[test]
fn null_error_data_is_no_data_in_both_codecs() {
    let error = ErrorReply::new("app/x", "y").with_data(serde_json::Value::Null);
    for codec in [Codec::Json, Codec::Postcard] {
        let message = codec.encode_error_reply(3, &error);
        match Codec::decode(&message).unwrap() {
            Inbound::Reply {
                req_id: 3,
                result: Err(got),
            } => assert_eq!(got.data, None, "{codec}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn malformed_requests_with_a_readable_id_are_answered_to_that_id() {
    use sente_lite::protocol::MAX_JSON_REQ_ID;
    // A deadline out of range, extra elements: the request id was read.
    for frame in [
        r#"["chat/send",{},7,4294967296]"#,
        r#"["chat/send",{},7,-1]"#,
        r#"["chat/send",{},7,"soon"]"#,
        r#"["chat/send",{},7,1000,"extra"]"#,
    ] {
        let err = Codec::decode_json(frame).unwrap_err();
        assert_eq!(err.req_id(), Some(7), "{frame}: {err:?}");
        assert_eq!(err.code(), "bad-frame", "{frame}");
    }
    // Subscriptions whose id was read: answered to it too.
    for frame in [
        r#"["sl/sub",7]"#,
        r#"["sl/sub",7,"news/a",{"epoch":"e"}]"#,
        r#"["sl/sub",7,"news/a",null,1]"#,
        r#"["sl/unsub",7,"news/a",5]"#,
        r#"["sl/unsub",7,3]"#,
    ] {
        let err = Codec::decode_json(frame).unwrap_err();
        assert_eq!(err.req_id(), Some(7), "{frame}: {err:?}");
    }
    assert!(Codec::decode_json(r#"["sl/sub",7,"news/a",null]"#).is_ok());
    // postcard: unsubscribe 7 from `a` with a trailing byte.
    let err = Codec::decode_postcard(&[0x09, 0x07, 0x01, b'a', 0x00]).unwrap_err();
    assert_eq!(err.req_id(), Some(7), "{err:?}");
    // postcard: request 7 whose deadline varint does not fit a u32.
    let err = Codec::decode_postcard(&[0x01, 0x01, 0x07, 0x01, 0x80, 0x80, 0x80, 0x80, 0x10])
        .unwrap_err();
    assert_eq!(err.req_id(), Some(7), "{err:?}");
    // Request ids over 2^53 - 1 are refused in JSON, wherever they appear.
    let over = MAX_JSON_REQ_ID + 1;
    for frame in [
        format!(r#"["chat/send",{{}},{over}]"#),
        format!(r#"["sl/ok",{over},null]"#),
        format!(r#"["sl/sub",{over},"room/a"]"#),
    ] {
        let err = Codec::decode_json(&frame).unwrap_err();
        assert!(
            matches!(err, ProtocolError::BadFrame { .. }),
            "{frame}: {err:?}"
        );
    }
    let at_max = format!(r#"["chat/send",{{}},{MAX_JSON_REQ_ID}]"#);
    assert!(Codec::decode_json(&at_max).is_ok());
}

#[test]
fn postcard_headers_must_use_the_shortest_varints() {
    // ping 3, and ping 3 written with an overlong varint (0x83 0x00).
    assert!(Codec::decode_postcard(&[0x06, 0x03]).is_ok());
    let err = Codec::decode_postcard(&[0x06, 0x83, 0x00]).unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::BadFrame {
                encoding: "postcard",
                ..
            }
        ),
        "{err:?}"
    );
    // The frame kind itself, overlong: event kind 0 as 0x80 0x00.
    let err =
        Codec::decode_postcard(&[0x80, 0x00, 0x92, 0xf8, 0xc2, 0xb7, 0x07, 0x00]).unwrap_err();
    assert_eq!(err.code(), "bad-frame", "{err:?}");
}

#[test]
fn a_payload_that_is_not_json_text_is_not_framed() {
    let position = StreamPosition {
        epoch: "e".into(),
        offset: 1,
    };
    for bad in [&b"{not json"[..], &[0xff, 0xfe][..]] {
        let framed = Codec::Json.encode_publication_of_payload("room/a", "a/b", &position, bad);
        assert!(framed.is_err(), "{bad:?}");
    }
    // postcard payloads are bytes: framed as they are.
    assert!(
        Codec::Postcard
            .encode_publication_of_payload("room/a", "a/b", &position, &[1, 2, 3])
            .is_ok()
    );
    for bad in [&b"{not json"[..], &[0xff, 0xfe][..]] {
        assert!(
            Codec::Json.encode_event_of_payload("a/b", bad).is_err(),
            "{bad:?}"
        );
    }
    // An event without a payload in an encoding cannot be sent in it.
    sente_lite::engine::OutgoingEvent::with_payloads("a/b", Some(b"1"), None, |event| {
        assert!(event.message(Codec::Json).is_ok());
        assert!(event.message(Codec::Postcard).is_err());
    });
}
