//! The frame decoders of both encodings: whatever they accept must mean the
//! same after it is written again, in its own encoding and (for the frames
//! both encodings carry alike) in the other one.

use sente_lite::codec::EventRef;
use sente_lite::protocol::Control;
use sente_lite::{Codec, EventKey, Inbound, Message, Payload};

/// Fuzz target `json_frame`: a text message, decoded as JSON.
pub fn json_frame(data: &[u8]) {
    // WebSocket text messages are UTF-8: the transport refuses the rest.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(inbound) = Codec::decode_json(text) {
        same_after_reencoding(Codec::Json, &inbound);
    }
}

/// Fuzz target `postcard_frame`: a binary message, decoded as postcard.
pub fn postcard_frame(data: &[u8]) {
    if let Ok(inbound) = Codec::decode_postcard(data) {
        same_after_reencoding(Codec::Postcard, &inbound);
    }
}

/// The largest request id a JSON frame carries (PROTOCOL.md section 3).
const MAX_JSON_REQ_ID: u64 = (1 << 53) - 1;

/// Writes `inbound` again with `codec`'s encoders and checks the decoder reads
/// back the same frame; controls are also carried through the other encoding.
fn same_after_reencoding(codec: Codec, inbound: &Inbound<'_>) {
    let Some(message) = reencode(codec, inbound) else {
        return;
    };
    let again = Codec::decode(&message).unwrap_or_else(|e| {
        panic!("{codec:?} cannot read back what it wrote for {inbound:?}: {e}")
    });
    assert_eq!(
        &again, inbound,
        "{codec:?} read back another frame than it wrote"
    );
    if let Inbound::Control(control) = inbound {
        // The request id a control answers to or names (a cancel names one).
        let req_id = match control {
            Control::Cancel { req_id } => Some(*req_id),
            other => other.req_id(),
        };
        if req_id.is_some_and(|id| id > MAX_JSON_REQ_ID) {
            // Request ids above 2^53 - 1 are postcard's alone (section 3).
            return;
        }
        let other = match codec {
            Codec::Json => Codec::Postcard,
            Codec::Postcard => Codec::Json,
        };
        let message = other.encode_control(control);
        let crossed = Codec::decode(&message)
            .unwrap_or_else(|e| panic!("{other:?} cannot read back the control {control:?}: {e}"));
        assert_eq!(
            crossed,
            Inbound::Control(control.clone()),
            "a control means something else in {other:?}"
        );
    }
}

/// The frame `inbound` written with `codec`'s public encoders, or `None` when
/// it has no writer there: a postcard reply carries its payload as the
/// application's value, which only the application can write again, and a
/// publication without a position is written from the value likewise.
fn reencode(codec: Codec, inbound: &Inbound<'_>) -> Option<Message> {
    match inbound {
        Inbound::Event { event, payload } => {
            let id = id_of(codec, event)?;
            codec.encode_event_of_payload(&id, bytes(payload)).ok()
        }
        Inbound::Request {
            event,
            req_id,
            deadline_ms,
            payload,
        } => {
            let id = id_of(codec, event)?;
            codec
                .encode_request_of_payload(&id, *req_id, *deadline_ms, bytes(payload))
                .ok()
        }
        Inbound::Publication {
            channel,
            event,
            position: Some(position),
            payload,
        } => {
            let id = id_of(codec, event)?;
            codec
                .encode_publication_of_payload(channel, &id, position, bytes(payload))
                .ok()
        }
        Inbound::Reply {
            req_id,
            result: Ok(Payload::Json(raw)),
        } => codec.encode_reply(*req_id, *raw).ok(),
        Inbound::Reply {
            req_id,
            result: Err(error),
        } => Some(codec.encode_error_reply(*req_id, error)),
        Inbound::Control(control) => Some(codec.encode_control(control)),
        Inbound::Publication { position: None, .. }
        | Inbound::Reply {
            result: Ok(Payload::Postcard(_)),
            ..
        } => None,
    }
}

/// An id that encodes to the frame's event reference: the id itself in JSON;
/// in postcard, where frames carry only the key, the one id this target knows
/// for each key it can name (keys of no known id are not written again).
fn id_of(codec: Codec, event: &EventRef<'_>) -> Option<String> {
    match (codec, event) {
        (Codec::Json, EventRef::Id(id)) => Some(id.to_string()),
        (Codec::Postcard, EventRef::Key(key)) => KNOWN_IDS
            .iter()
            .find(|id| EventKey::of(id) == *key)
            .map(|id| (*id).to_owned()),
        _ => None,
    }
}

/// Event ids of the protocol's examples, whose keys postcard seeds carry.
const KNOWN_IDS: &[&str] = &["chat/send", "user/get", "fuzz/echo", "fuzz/note"];

fn bytes<'a>(payload: &Payload<'a>) -> &'a [u8] {
    match *payload {
        Payload::Json(raw) => raw.get().as_bytes(),
        Payload::Postcard(bytes) => bytes,
    }
}
