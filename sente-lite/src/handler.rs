//! Handlers: the [`Handler`] trait that `#[handler]` implements, and what a handler may return.

use std::future::Future;
use std::pin::Pin;

use crate::{Ctx, ErrorReply, Event, NoReply};

/// The boxed future a [`Handler`] returns.
///
/// It resolves to `Ok(Some(reply))` for a request, `Ok(None)` for a one-way event
/// and `Err(error)` when the handler failed.
pub type HandlerFuture<R> =
    Pin<Box<dyn Future<Output = Result<Option<R>, ErrorReply>> + Send + 'static>>;

/// A route: an async function that handles one [`Event`].
///
/// Do not implement this trait by hand: put [`#[handler]`](crate::handler) on an
/// `async fn` that takes a [`Ctx`] and one event. The macro turns the function's
/// name into a unit value implementing `Handler`, which is what
/// [`Router::handler`](crate::Router::handler) takes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a sente-lite handler",
    label = "not a handler",
    note = "put `#[sente_lite::handler]` on an `async fn name(ctx: Ctx, event: YourEvent)` and pass `name` here (not `name::run`, which is the body, for calling it directly)"
)]
pub trait Handler: Send + Sync + 'static {
    /// The event this handler receives.
    type Event: Event;
    /// The function's name, for diagnostics and telemetry.
    const NAME: &'static str;
    /// The module the function was defined in.
    const MODULE: &'static str;
    /// Runs the handler.
    fn call(&self, ctx: Ctx, event: Self::Event) -> HandlerFuture<<Self::Event as Event>::Reply>;

    /// Runs the handler, its future not boxed: the router keeps it inside the
    /// one box it makes for each event, so a request costs one allocation for
    /// its handler instead of two. `#[handler]` writes it; by default it is
    /// [`call`](Handler::call)'s boxed future.
    #[doc(hidden)]
    fn call_inline(
        &self,
        ctx: Ctx,
        event: Self::Event,
    ) -> impl Future<Output = Result<Option<<Self::Event as Event>::Reply>, ErrorReply>> + Send + 'static
    {
        self.call(ctx, event)
    }
}

/// What a handler for an event whose reply type is `R` may return.
///
/// - a one-way event (`R` is [`NoReply`]): `()`, or `Result<(), E>` where
///   `E: Into<ErrorReply>` (an error goes to the peer as an `sl/error` frame);
/// - a request: `R`, or `Result<R, E>` where `E: Into<ErrorReply>` (an error
///   goes to the peer as the request's error reply).
#[diagnostic::on_unimplemented(
    message = "a handler returning `{Self}` does not fit an event whose reply is `{R}`",
    label = "wrong return type for this event",
    note = "a handler for a one-way event returns `()`; a handler for a request returns its reply type, or `Result<Reply, E>` where `E: Into<sente_lite::ErrorReply>`"
)]
pub trait IntoReply<R> {
    /// Converts the handler's output: `Ok(Some(reply))`, `Ok(None)` for a
    /// one-way event, or the error to tell the peer.
    fn into_reply(self) -> Result<Option<R>, ErrorReply>;
}

impl IntoReply<NoReply> for () {
    fn into_reply(self) -> Result<Option<NoReply>, ErrorReply> {
        Ok(None)
    }
}

impl<E: Into<ErrorReply>> IntoReply<NoReply> for Result<(), E> {
    fn into_reply(self) -> Result<Option<NoReply>, ErrorReply> {
        self.map(|()| None).map_err(Into::into)
    }
}

impl<R: serde::Serialize> IntoReply<R> for R {
    fn into_reply(self) -> Result<Option<R>, ErrorReply> {
        Ok(Some(self))
    }
}

impl<R: serde::Serialize, E: Into<ErrorReply>> IntoReply<R> for Result<R, E> {
    fn into_reply(self) -> Result<Option<R>, ErrorReply> {
        self.map(Some).map_err(Into::into)
    }
}
