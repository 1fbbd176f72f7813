//! Procedural macros of sente-lite: [`#[event]`](macro@event), [`#[handler]`](macro@handler)
//! and [`#[channel]`](macro@channel).
//!
//! Use them through the `sente_lite` crate, which re-exports both as
//! `sente_lite::event` and `sente_lite::handler`. The code they generate names the
//! runtime as `::sente_lite`; a crate that depends on `sente-lite` under another
//! name, or reaches it through a facade crate, says where it is with
//! `crate = "path"` (`#[event("chat/send", crate = "my_facade::sente_lite")]`,
//! `#[handler(crate = "my_facade::sente_lite")]`), as serde's
//! `#[serde(crate = "...")]`.

use proc_macro::TokenStream;

mod args;
mod channel;
mod errors;
mod event;
mod handler;
mod krate;
#[cfg(feature = "typescript")]
mod typescript;

/// Makes a struct or an enum a sente-lite event, or a request when it names a reply.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// /// A chat message, sent one way.
/// #[sente_lite::event("chat/send")]
/// #[derive(Serialize, Deserialize)]
/// struct ChatSend {
///     text: String,
/// }
///
/// /// Asks for a user; answered with a `User`.
/// #[sente_lite::event("user/get", reply = User)]
/// #[derive(Serialize, Deserialize)]
/// struct GetUser {
///     id: u64,
/// }
///
/// #[derive(Serialize, Deserialize, schemars::JsonSchema)]
/// struct User {
///     name: String,
/// }
///
/// use sente_lite::Event;
/// assert_eq!(ChatSend::ID, "chat/send");
/// assert!(!ChatSend::IS_REQUEST);
/// assert_eq!(GetUser::KEY, sente_lite::EventKey::of("user/get"));
/// assert!(GetUser::IS_REQUEST);
/// ```
///
/// # The id
///
/// The first argument is the event id, a string literal `namespace/name`: exactly one
/// `/`, both sides non-empty, made of lowercase ASCII letters, digits, `_`, `-` and
/// `.`, at most 128 bytes. The namespace `sl` is reserved for the protocol's own
/// frames. A bad id is a compile error on the literal, with the same rules as
/// `sente_lite::validate_event_id`.
///
/// The id's key (32-bit FNV-1a of its bytes, see `sente_lite::EventKey`) is computed
/// while compiling. Two events in one module with the same id, or with ids whose keys
/// collide, fail to compile with an error naming
/// `__sente_lite_event_key_<key>__give_each_event_its_own_id` and pointing at both
/// ids. Clashes across modules are reported when the registry or a router is built.
///
/// # Options
///
/// - `reply = Type`: the event is a request answered with a `Type`; it also
///   implements `sente_lite::Request`. Without it the event is one-way and its
///   reply type is `sente_lite::NoReply`.
/// - `crate = "path"`: the path of the sente-lite crate, for a crate that
///   depends on it under another name (`sl = { package = "sente-lite", ... }`:
///   `crate = "sl"`) or reaches it through a re-export
///   (`crate = "my_facade::sente_lite"`). Without it the generated code names
///   `::sente_lite`.
///
/// # The item
///
/// The struct or enum must derive (or implement) `serde::Serialize` and
/// `serde::Deserialize` itself, and be `Send + Sync + 'static`. It cannot be
/// generic: an id names exactly one type. The macro adds one derive,
/// `schemars::JsonSchema` (through sente-lite's re-export), which gives the schema
/// hash the payload's shape; it is left out when the item's own derive list already
/// names `JsonSchema`. The types its fields use, and a request's reply type, must
/// implement `schemars::JsonSchema` too: derive it beside `Serialize`.
/// `#[serde(...)]` attributes (renames, tags, `skip`) shape the schema as they
/// shape the wire.
///
/// # What it generates
///
/// - `impl sente_lite::Event` with `ID`, `KEY`, `Reply` and `IS_REQUEST`;
/// - `impl sente_lite::Request` for a request;
/// - a compile-time assertion that `KEY` equals the runtime's hash of `ID`;
/// - a registration in the process-wide registry (`sente_lite::registry`), with the
///   type's name, the reply type as written and the module path;
/// - a registration of the payload's and reply's shapes for the schema hash and
///   the published description (`sente_lite::schema`);
/// - hidden checks that report a missing `Serialize`, `Deserialize`, `Send` or `Sync`
///   on the type's name;
/// - with sente-lite's `typescript` feature, a registration of the payload's and
///   reply's TypeScript declarations, for types that implement `ts_rs::TS` (see
///   `sente_lite::typescript`).
///
/// Everything generated compiles in a crate with `#![deny(missing_docs)]` and
/// `#![forbid(unsafe_code)]`.
#[proc_macro_attribute]
pub fn event(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, event::expand, args::keep_item)
}

/// Makes an `async fn` a sente-lite handler: a route for one event.
///
/// ```
/// use sente_lite::{Ctx, ErrorReply};
/// use serde::{Deserialize, Serialize};
///
/// #[sente_lite::event("room/say")]
/// #[derive(Serialize, Deserialize)]
/// struct RoomSay {
///     text: String,
/// }
///
/// #[sente_lite::event("user/find", reply = User)]
/// #[derive(Serialize, Deserialize)]
/// struct FindUser {
///     id: u64,
/// }
///
/// #[derive(Serialize, Deserialize, schemars::JsonSchema)]
/// struct User {
///     name: String,
/// }
///
/// /// Handles a one-way event: returns `()`.
/// #[sente_lite::handler]
/// async fn on_say(_ctx: Ctx, event: RoomSay) {
///     let _ = event.text;
/// }
///
/// /// Answers a request; the context is left out.
/// #[sente_lite::handler]
/// async fn find_user(event: FindUser) -> Result<User, ErrorReply> {
///     match event.id {
///         1 => Ok(User { name: "ada".into() }),
///         _ => Err(ErrorReply::new("user/not-found", "no such user")),
///     }
/// }
///
/// // Each name is now a value that implements `Handler`.
/// let routes = sente_lite::Router::new()
///     .handler(on_say)
///     .handler(find_user)
///     .build()
///     .expect("no two routes for one event");
/// assert_eq!(routes.len(), 2);
///
/// use sente_lite::Handler;
/// assert_eq!(on_say::NAME, "on_say");
/// ```
///
/// # Options
///
/// `#[handler]` takes no arguments but `crate = "path"`, the path of the
/// sente-lite crate when it is not `::sente_lite` (see [`#[event]`](macro@event)).
///
/// # The function
///
/// The function must be a plain `async fn` (not `const`, `unsafe`, `extern` or
/// generic, no `self`) taking:
///
/// - optionally, the context: a parameter whose type's last path segment is `Ctx`
///   (`Ctx`, `sente_lite::Ctx`), taken by value;
/// - exactly one event: a type made with [`#[event]`](macro@event), taken by value.
///
/// Either may come first, and any pattern may bind them (`GetUser { id }: GetUser`).
///
/// It returns what fits its event (see `sente_lite::IntoReply`):
///
/// - for a one-way event: nothing (`()`), or `Result<(), E>`;
/// - for a request: its reply type, or `Result<Reply, E>`;
///
/// where `E: Into<sente_lite::ErrorReply>`. The future it returns must be `Send`.
///
/// # What it generates
///
/// The function is replaced by a unit struct of the same name and visibility, carrying
/// the function's doc comments, so `name` is a value that can be passed to
/// `Router::handler(name)`. It implements `sente_lite::Handler` (with `NAME`, the
/// function's name, and `MODULE`, its module path), `Clone`, `Copy`, `Debug` and
/// `Default`.
///
/// The body becomes `name::run`, an `async fn` with the parameters exactly as written
/// (so a handler written without a context is `name::run(event)`), for calling the
/// handler directly, such as in unit tests. Attributes other than doc comments and
/// `#[cfg]` (for example `#[allow(...)]` or `#[tracing::instrument]`) stay on `run`;
/// `#[cfg]` attributes apply to everything generated.
///
/// A misfit is reported on the user's own tokens: an event type that is not an event
/// on that type, a return type that does not fit the event on the return type (on the
/// name when none is written), a future that is not `Send` on the name.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, handler::expand, handler::fallback)
}

/// Makes a struct a typed channel: a name pattern whose parameters are the
/// struct's fields, and the events that may be published on it.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// /// Something said in a room.
/// #[sente_lite::event("room/said")]
/// #[derive(Serialize, Deserialize)]
/// struct Said {
///     text: String,
/// }
///
/// /// A chat room: `room/lobby` is `Room { name: "lobby".into() }`.
/// #[sente_lite::channel("room/{name}", events(Said))]
/// struct Room {
///     name: String,
/// }
///
/// use sente_lite::Channel;
/// assert_eq!(Room { name: "lobby".into() }.name(), "room/lobby");
/// ```
///
/// # Arguments
///
/// - The name pattern, a string literal: segments separated by `/`, each
///   literal text or one parameter `{field}` standing alone (`"room/{name}"`,
///   `"org/{org}/team/{team}"`, `"lobby"`). No segment is empty.
/// - `events(A, B, ...)`: the one-way events that may be published on the
///   channel, at least one, named by their types' paths, with distinct last
///   names.
/// - `derive(...)`: derives for the channel's event enum, such as
///   `derive(Debug, Clone, PartialEq)` (each event type must implement them
///   too). Without it the enum derives nothing.
/// - `crate = "path"`: the path of the sente-lite crate when it is not
///   `::sente_lite` (see [`#[event]`](macro@event)).
///
/// # The struct
///
/// A struct with named fields (or a unit struct, for a pattern without
/// parameters), not generic. Every parameter of the pattern names a field and
/// every field is a parameter; a field's type implements `Display` and
/// `FromStr`, which write and read its segment of the name. The struct is kept
/// as written.
///
/// # What it generates
///
/// - `impl sente_lite::Channel` with `PATTERN`, `name()` and `parse()`;
/// - `enum <Struct>Event`, with the struct's visibility: one variant per event,
///   named after the event type and holding it, with `From` for each, and
///   `impl sente_lite::ChannelEvent` to decode publications into it;
/// - `impl sente_lite::Carries<E>` for each event `E`, so the server publishes
///   exactly these events on the channel;
/// - hidden checks that report, on the user's tokens, an event that is not
///   one-way and a field type without `Display` or `FromStr`.
///
/// A mistake in the pattern or the fields is a compile error on the pattern
/// or the field, saying what to write instead.
#[proc_macro_attribute]
pub fn channel(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, channel::expand, args::keep_item)
}

/// Runs one macro's expansion, turning its errors into `compile_error!` invocations.
///
/// On error the macro's `fallback` of the item is emitted after the errors, so that
/// the rest of the crate still sees the item and reports no follow-on "cannot find"
/// errors.
fn expand(
    args: TokenStream,
    item: TokenStream,
    expansion: fn(
        proc_macro2::TokenStream,
        proc_macro2::TokenStream,
    ) -> syn::Result<proc_macro2::TokenStream>,
    fallback: fn(proc_macro2::TokenStream) -> proc_macro2::TokenStream,
) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match expansion(args.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let mut tokens = error.into_compile_error();
            tokens.extend(fallback(item));
            tokens.into()
        }
    }
}
