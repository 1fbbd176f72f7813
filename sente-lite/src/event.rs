//! Events: the [`Event`] trait that `#[event]` implements, and their numeric keys.

use std::fmt;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A typed message with a namespaced id, such as `"chat/send"`.
///
/// Do not implement this trait by hand: put [`#[event]`](crate::event) on a
/// struct or enum that derives `Serialize` and `Deserialize`. The macro checks
/// the id at compile time, derives its [`EventKey`], registers the event in the
/// process-wide [registry](crate::registry) and, for a request, names its reply.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[sente_lite::event("forum/post")]
/// #[derive(Serialize, Deserialize)]
/// struct ForumPost {
///     text: String,
/// }
///
/// use sente_lite::Event;
/// assert_eq!(ForumPost::ID, "forum/post");
/// assert_eq!(ForumPost::KEY, sente_lite::EventKey::of("forum/post"));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a sente-lite event",
    label = "not an event",
    note = "put `#[sente_lite::event(\"namespace/name\")]` on the type's definition (add `reply = ReplyType` for a request)"
)]
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The namespaced id, `namespace/name`, as it travels in JSON frames.
    const ID: &'static str;
    /// The compact key derived from [`Event::ID`], as it travels in binary frames.
    const KEY: EventKey;
    /// The reply type of a request, or [`NoReply`] for a one-way event.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// `true` when the event is a request (declared with `reply = ...`).
    const IS_REQUEST: bool;
}

/// A request: an [`Event`] declared with `#[event("ns/name", reply = Reply)]`.
///
/// Only requests can be sent with a request id and awaited for a reply.
/// `#[event]` implements it; do not implement it by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a request",
    label = "a request is awaited for its reply; this type has no reply type",
    note = "declare the reply: `#[sente_lite::event(\"ns/name\", reply = ReplyType)]`; or, for a one-way event, use `send(&event)`, which waits for nothing"
)]
pub trait Request: Event {}

/// A one-way event: an [`Event`] declared without `reply = ...`, whose
/// reply type is [`NoReply`].
///
/// Only one-way events can be sent without waiting (`send`), published on a
/// channel or broadcast. `#[event]` implements it; do not implement it by
/// hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a one-way event",
    label = "expected a one-way event",
    note = "a request (`reply = ...`) is sent with `request(&event).await`, which waits for its reply; a type that is not an event needs `#[sente_lite::event(\"ns/name\")]`"
)]
pub trait OneWay: Event<Reply = NoReply> {}

/// The reply type of a one-way event: it has no values, so no reply can exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoReply {}

/// The compact numeric key of an event id: 32-bit FNV-1a over the id's UTF-8 bytes.
///
/// The key is what binary (postcard) frames carry instead of the id string. It is a
/// pure function of the id, so it is the same on every build, platform and peer:
/// offset basis `0x811c9dc5`, prime `0x01000193`, each byte XORed in and then
/// multiplied (wrapping). Two ids whose keys collide are rejected when the
/// registry or a router is built.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventKey(u32);

impl EventKey {
    /// The key of `id`, computed as the documented FNV-1a hash; usable in `const`.
    pub const fn of(id: &str) -> Self {
        Self(fnv1a_32(id.as_bytes()))
    }

    /// A key from its raw value, as read off the wire.
    pub const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }

    /// The raw value as it travels on the wire.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventKey({:#010x})", self.0)
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

const fn fnv1a_32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
}

/// 64-bit FNV-1a, used for the schema hash.
pub(crate) const fn fnv1a_64(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Offset basis of 64-bit FNV-1a.
pub(crate) const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Checks an event id against the rules `#[event]` enforces at compile time.
///
/// An id is `namespace/name`: exactly one `/`, both sides non-empty, made of
/// lowercase ASCII letters, digits, `_`, `-` and `.`, at most 128 bytes, and the
/// namespace `sl` is reserved for the protocol's own frames.
pub fn validate_event_id(id: &str) -> Result<(), &'static str> {
    const MSG: &str = "an event id is `namespace/name` using lowercase ASCII letters, digits, `_`, `-` and `.`, such as \"chat/send\"";
    if id.len() > 128 {
        return Err("an event id is at most 128 bytes long");
    }
    let Some((ns, name)) = id.split_once('/') else {
        return Err(MSG);
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
            })
    };
    if !ok(ns) || !ok(name) {
        return Err(MSG);
    }
    if ns == crate::protocol::RESERVED_NAMESPACE {
        return Err("the namespace `sl` is reserved for the protocol's own frames; pick another");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Reference values of 32-bit FNV-1a.
        assert_eq!(EventKey::of("").get(), 0x811c_9dc5);
        assert_eq!(EventKey::of("a").get(), 0xe40c_292c);
        assert_eq!(EventKey::of("foobar").get(), 0xbf9c_f968);
    }

    #[test]
    fn ids_are_validated() {
        assert!(validate_event_id("chat/send").is_ok());
        assert!(validate_event_id("a.b-c_d/e9").is_ok());
        for bad in [
            "chat",
            "Chat/send",
            "chat/",
            "/send",
            "a/b/c",
            "chat/se nd",
            "sl/ping",
            "ch\u{e4}t/x",
        ] {
            assert!(validate_event_id(bad).is_err(), "{bad}");
        }
    }
}
