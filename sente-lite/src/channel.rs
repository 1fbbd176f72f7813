//! Typed channels: a channel declared as a Rust type, with its name pattern,
//! its parameters and the events that may be published on it.
//!
//! [`#[channel]`](macro@crate::channel) on a struct makes it a [`Channel`]: the
//! struct's fields are the parameters of the name pattern, so a value of the
//! struct *is* one channel (`Room { name: "lobby" }` is `room/lobby`). The
//! macro also declares the enum of the events the channel carries, and says
//! which events may be published on it ([`Carries`]):
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! /// Something said in a room.
//! #[sente_lite::event("doc.channel/said")]
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Said {
//!     text: String,
//! }
//!
//! /// Someone came in.
//! #[sente_lite::event("doc.channel/joined")]
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Joined {
//!     user: String,
//! }
//!
//! /// A chat room.
//! #[sente_lite::channel("room/{name}", events(Said, Joined))]
//! #[derive(Debug, Clone, PartialEq)]
//! struct Room {
//!     name: String,
//! }
//!
//! use sente_lite::Channel;
//! let lobby = Room { name: "lobby".into() };
//! assert_eq!(lobby.name(), "room/lobby");
//! assert_eq!(Room::parse("room/lobby"), Some(lobby));
//! assert_eq!(Room::parse("room/lobby/side"), None);
//!
//! // `RoomEvent` was declared by the macro: one variant per event.
//! let event: RoomEvent = Said { text: "hi".into() }.into();
//! assert!(matches!(event, RoomEvent::Said(_)));
//! ```
//!
//! What the compiler then checks:
//!
//! - [`Server::broadcast`](crate::Server::broadcast) and
//!   [`Server::publish`](crate::Server::publish) take a channel value or a
//!   channel name; given a channel value, only an event the channel carries
//!   compiles (`server.broadcast(&lobby, &said)`);
//! - [`Client::join`](crate::Client::join) subscribes to a channel value and
//!   yields the channel's event enum, so a `match` names exactly the events
//!   the channel can deliver;
//! - [`ServerBuilder::typed_channel`](crate::server::ServerBuilder::typed_channel)
//!   attaches the authorisation to the channel type: it receives the parsed
//!   channel (`Room { name }`), never a name to take apart.
//!
//! String channels stay available for names chosen at run time: every API that
//! takes a channel value also takes a `&str` or a `String`.
//!
//! # Names
//!
//! A pattern is segments separated by `/`; a segment is literal text or one
//! parameter `{field}` standing alone. A channel's name is the pattern with
//! each parameter replaced by its field's `Display` text, in which `%` is
//! written `%25` and `/` is written `%2F`, so any text can be a parameter
//! and a name always parses back ([`Channel::parse`], with the fields'
//! `FromStr`). Only names written this way parse: `room/a%41` is not a
//! `Room`.

use std::borrow::Cow;
use std::fmt::{self, Display, Write as _};
use std::rc::Rc;
use std::sync::Arc;

use crate::codec::{EventRef, Payload};
use crate::{OneWay, ProtocolError};

/// A channel declared as a type: put [`#[channel]`](macro@crate::channel) on a
/// struct whose fields are the pattern's parameters.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a typed channel",
    label = "not a channel",
    note = "declare it with `#[sente_lite::channel(\"room/{{name}}\", events(Said, Joined))]` on a struct whose fields are the pattern's parameters; a channel named at run time is subscribed with `subscribe(name)` and authorised with `ServerBuilder::channel(pattern, ...)`"
)]
pub trait Channel: Sized + Send + Sync + 'static {
    /// The name pattern as declared, such as `room/{name}`.
    const PATTERN: &'static str;
    /// The enum of the events this channel carries, declared by `#[channel]`.
    type Event: ChannelEvent;
    /// This channel's name: the pattern with the parameters filled in.
    fn name(&self) -> String;
    /// The channel a name stands for, when it is one of this type's.
    fn parse(name: &str) -> Option<Self>;
}

/// The enum of the events a [`Channel`] carries, declared by `#[channel]`.
pub trait ChannelEvent: Sized + Send + 'static {
    /// The ids of the events, in the order declared.
    const IDS: &'static [&'static str];
    /// Decodes a publication, when its event is one of the enum's (`None`
    /// otherwise).
    fn decode(event: &EventRef<'_>, payload: Payload<'_>) -> Option<Result<Self, ProtocolError>>;
}

/// Where a one-way event `E` may be published: a typed channel that carries
/// it (implemented by `#[channel]` for each of its events), or a channel name
/// (`str`, `String`, ...), which may carry any event.
#[diagnostic::on_unimplemented(
    message = "channel `{Self}` does not carry `{E}`",
    label = "`{E}` is not one of this channel's events",
    note = "a typed channel carries the events listed in its `#[sente_lite::channel(..., events(...))]`: add `{E}` there, or publish on a channel that carries it"
)]
pub trait Carries<E> {
    /// The channel's name.
    fn channel_name(&self) -> Cow<'_, str>;
}

impl<E: OneWay> Carries<E> for str {
    fn channel_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<E: OneWay> Carries<E> for String {
    fn channel_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<E: OneWay> Carries<E> for Cow<'_, str> {
    fn channel_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<E: OneWay> Carries<E> for Box<str> {
    fn channel_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<E: OneWay> Carries<E> for Arc<str> {
    fn channel_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<E: OneWay> Carries<E> for Rc<str> {
    fn channel_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<E: OneWay, T: Carries<E> + ?Sized> Carries<E> for &T {
    fn channel_name(&self) -> Cow<'_, str> {
        (**self).channel_name()
    }
}

/// What the code `#[channel]` generates calls. Not a public API.
#[doc(hidden)]
pub mod support {
    use super::*;

    /// Appends a parameter's text to a name, with `%` as `%25` and `/` as `%2F`.
    pub fn push_param(name: &mut String, value: &dyn Display) {
        struct Escaped<'a>(&'a mut String);
        impl fmt::Write for Escaped<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for c in s.chars() {
                    match c {
                        '%' => self.0.push_str("%25"),
                        '/' => self.0.push_str("%2F"),
                        c => self.0.push(c),
                    }
                }
                Ok(())
            }
        }
        // Writing into a String cannot fail; a Display that fails leaves
        // what it wrote.
        let _ = write!(Escaped(name), "{value}");
    }

    /// A parameter's text from its segment of a name: `%25` and `%2F` read
    /// back, any other `%` refused.
    pub fn param_text(segment: &str) -> Option<Cow<'_, str>> {
        if !segment.contains('%') {
            return Some(Cow::Borrowed(segment));
        }
        let mut text = String::with_capacity(segment.len());
        let mut rest = segment;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            let escape = rest.get(at..at + 3)?;
            text.push(match escape {
                "%25" => '%',
                "%2F" => '/',
                _ => return None,
            });
            rest = &rest[at + 3..];
        }
        text.push_str(rest);
        Some(Cow::Owned(text))
    }

    /// Splits `name` into exactly `N` segments at `/`.
    pub fn segments<const N: usize>(name: &str) -> Option<[&str; N]> {
        let mut parts = name.split('/');
        let mut out = [""; N];
        for slot in &mut out {
            *slot = parts.next()?;
        }
        parts.next().is_none().then_some(out)
    }

    /// What a channel parameter must be: written into the name with
    /// `Display`, read back with `FromStr`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a channel parameter",
        label = "a parameter is written into the name and read back",
        note = "a channel parameter is written with `Display` and parsed with `FromStr`: implement both for `{Self}`, or use a `String` or a number"
    )]
    pub trait Param: Display + std::str::FromStr {}

    impl<T: Display + std::str::FromStr> Param for T {}

    /// An event that is never published (it has no value): `#[channel]`
    /// says each channel carries it too, so that a channel of one event does
    /// not make the compiler infer that event where another was given.
    #[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
    pub enum NeverPublished {}

    #[diagnostic::do_not_recommend]
    impl crate::Event for NeverPublished {
        const ID: &'static str = "sente-lite.never/published";
        const KEY: crate::EventKey = crate::EventKey::of(Self::ID);
        type Reply = crate::NoReply;
        const IS_REQUEST: bool = false;
    }

    #[diagnostic::do_not_recommend]
    impl OneWay for NeverPublished {}

    /// Decodes `payload` as the event `E` when `event` names it.
    pub fn decode_as<E: crate::Event>(
        event: &EventRef<'_>,
        payload: Payload<'_>,
    ) -> Option<Result<E, ProtocolError>> {
        event.is(E::ID, E::KEY).then(|| payload.decode::<E>(E::ID))
    }
}

#[cfg(test)]
mod tests {
    use super::support::*;

    fn name_of(params: &[&str]) -> String {
        let mut name = String::from("x");
        for p in params {
            name.push('/');
            push_param(&mut name, p);
        }
        name
    }

    #[test]
    fn any_parameter_text_round_trips() {
        for text in ["lobby", "a/b", "100%", "%2F", "", "é/%/"] {
            let name = name_of(&[text]);
            let [x, segment] = segments::<2>(&name).expect("two segments");
            assert_eq!(x, "x");
            assert_eq!(param_text(segment).as_deref(), Some(text), "{name}");
        }
    }

    #[test]
    fn only_the_written_escapes_parse() {
        assert_eq!(param_text("a%41"), None);
        assert_eq!(param_text("a%2"), None);
        assert_eq!(param_text("a%2f"), None);
        assert_eq!(param_text("a%25b").as_deref(), Some("a%b"));
    }

    #[test]
    fn a_name_has_exactly_the_pattern_s_segments() {
        assert_eq!(segments::<2>("room/lobby"), Some(["room", "lobby"]));
        assert_eq!(segments::<2>("room"), None);
        assert_eq!(segments::<2>("room/a/b"), None);
        assert_eq!(segments::<1>("lobby"), Some(["lobby"]));
    }
}
