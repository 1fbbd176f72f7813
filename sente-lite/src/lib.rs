//! Typed realtime events and RPC over WebSocket.
//!
#![doc = include_str!("../GUIDE.md")]

// Lets the macros' `::sente_lite::...` paths resolve inside this crate's own tests.
extern crate self as sente_lite;

mod bucket;
pub mod cancel;
pub mod channel;
pub mod client;
pub mod codec;
mod connection;
mod ctx;
pub mod engine;
mod error;
mod event;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handler;
#[cfg(feature = "logging")]
pub mod logging;
pub mod middleware;
mod pending;
pub mod protocol;
mod queue;
pub mod registry;
mod router;
pub mod schema;
pub mod server;
pub mod settings;
mod stats;
pub mod telemetry;
mod timers;
#[cfg(feature = "typescript")]
pub mod typescript;
#[doc(hidden)]
pub mod typescript_probe;

pub use cancel::Cancellation;
pub use channel::{Carries, Channel, ChannelEvent};
pub use client::{
    Client, ClientBuilder, ClientError, ConnectionState, PresenceEvent, PresenceWatch,
    ReconnectPolicy, WaitTimeout,
};
pub use codec::{Codec, EventRef, Inbound, Payload};
pub use ctx::{Ctx, DEFAULT_REQUEST_TIMEOUT, Outbound};
pub use error::{EncodeError, ProtocolError, SendError};
pub use event::{Event, EventKey, NoReply, OneWay, Request, validate_event_id};
pub use handler::{Handler, HandlerFuture, IntoReply};
pub use pending::{RawReply, RequestError};
pub use protocol::{ConnId, ErrorReply, RequestId, UserId};
pub use queue::OutboundReceiver;
pub use router::{
    DispatchFuture, Dispatched, HandlerTiming, Outcome, RouteInfo, RouteTable, Router, RouterError,
};
/// The crate that describes event shapes (`#[derive(schemars::JsonSchema)]`), as
/// the macros use it.
pub use schemars;
pub use server::Server;
pub use stats::{ErrorCounts, StatsSnapshot};
/// A WebSocket message, as the codecs produce and consume it.
pub use tungstenite::Message;

/// The JavaScript client: one ES module, no dependencies, for browsers and
/// Node.js, speaking the JSON encoding. Serve it to pages with
/// `ServerBuilder::page("/sente-lite.js", "text/javascript", sente_lite::JS_CLIENT)`;
/// a page then imports it with `import { Client } from "/sente-lite.js"`.
pub const JS_CLIENT: &str = include_str!("../js/sente-lite.js");

/// The TypeScript declarations of [`JS_CLIENT`] (`sente-lite.d.ts`), generic over
/// an event map such as the one the `typescript` feature writes.
pub const JS_CLIENT_TYPES: &str = include_str!("../js/sente-lite.d.ts");

/// Makes a struct a typed channel. See [`Channel`] and the [`channel`](mod@channel) module.
pub use sente_lite_macros::channel;
/// Makes a Rust type an event. See [`Event`].
pub use sente_lite_macros::event;
/// Makes an `async fn` a route. See [`Handler`].
pub use sente_lite_macros::handler;

#[doc(hidden)]
pub mod __private {
    pub use crate::channel::support as channel;
    pub use crate::handler::IntoReply;
    pub use crate::registry::{
        EventRecord, TranscodeEvent, TranscodeNothing, TranscodeProbe, TranscodeRecord,
    };
    pub use crate::schema::{ReplyShape, ShapeRecord, shape_of};
    pub use crate::typescript_probe as ts;
    pub use inventory;
    pub use schemars;
    pub use serde;
    pub use std::borrow::Cow;
    pub use std::boxed::Box;

    /// Used by `#[event]`: the key must equal the runtime's computation.
    pub const fn key_matches(id: &str, key: u32) -> bool {
        crate::EventKey::of(id).get() == key
    }
}
