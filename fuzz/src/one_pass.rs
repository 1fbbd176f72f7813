//! The one-pass JSON decoder against the general one: the server reads every
//! JSON event frame with the first and falls back to the second, so the first
//! may refuse what the second takes, never the other way round, and where both
//! take a frame they must agree on all of it.

use std::fmt::Debug;

use sente_lite::{Codec, EventRef, Inbound, RequestId};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Fuzz target `json_one_pass`: the first byte picks the payload type, the
/// rest is the frame's text.
pub fn json_one_pass(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match pick % 6 {
        0 => agree::<serde_json::Value>(text),
        1 => agree::<Message>(text),
        2 => agree::<Unit>(text),
        3 => agree::<Shape>(text),
        4 => agree::<(u8, Option<String>)>(text),
        _ => agree::<Vec<i64>>(text),
    }
}

/// A chat-like payload: strings, numbers, options, nesting.
#[derive(Debug, PartialEq, Deserialize)]
struct Message {
    text: String,
    n: i64,
    #[serde(default)]
    tags: Vec<String>,
    reply_to: Option<u64>,
    ratio: f64,
    shape: Shape,
}

/// A one-way event without data (payload `null`).
#[derive(Debug, PartialEq, Deserialize)]
struct Unit;

/// An enum in each of serde's representations.
#[derive(Debug, PartialEq, Deserialize)]
enum Shape {
    Dot,
    Circle(f32),
    Rect { w: u32, h: u32 },
    Path(Vec<(i16, i16)>),
}

type Frame<T> = (String, T, Option<RequestId>, Option<u32>);

fn agree<T: DeserializeOwned + PartialEq + Debug>(text: &str) {
    let fast: Option<Frame<T>> = sente_lite::fuzzing::one_pass_json_event::<T>(text)
        .map(|(id, payload, req_id, deadline)| (id.to_owned(), payload, req_id, deadline));
    let general = general::<T>(text);
    match (fast, general) {
        (Some(fast), Some(general)) => {
            assert_eq!(fast, general, "the two decoders read {text:?} differently");
        }
        (Some(fast), None) => {
            panic!("only the one-pass decoder takes {text:?}: {fast:?}");
        }
        (None, _) => {}
    }
}

/// What the general decoder makes of `text`, the payload read as `T`.
fn general<T: DeserializeOwned>(text: &str) -> Option<Frame<T>> {
    let (event, payload, req_id, deadline) = match Codec::decode_json(text).ok()? {
        Inbound::Event { event, payload } => (event, payload, None, None),
        Inbound::Request {
            event,
            req_id,
            deadline_ms,
            payload,
        } => (event, payload, Some(req_id), deadline_ms),
        _ => return None,
    };
    let EventRef::Id(id) = event else {
        return None;
    };
    let payload = payload.decode::<T>("fuzz").ok()?;
    Some((id.into_owned(), payload, req_id, deadline))
}
