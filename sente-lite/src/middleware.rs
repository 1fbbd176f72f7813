//! Handler middleware: code that runs around handlers, for every event of a
//! router or the ones it picks: authorisation checks, timeouts, rate limits,
//! logging, metrics.
//!
//! A [`Middleware`] sees a [`Call`] (the connection's [`Ctx`], the event id,
//! the request id of a request) and the [`Next`] step: it may refuse the call
//! with an [`ErrorReply`] (the peer gets it as the request's error reply, or
//! as `sl/error` for a one-way event, and the handler never runs), run it with
//! [`Next::run`] and look at how it [`Finished`], or wrap it (a timeout drops
//! the handler's future, as the peer's cancel does). [`from_fn`] makes one of
//! an async closure; [`Router::layer`](crate::Router::layer) applies it to
//! every route, the last layer added running first.
//!
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//! use sente_lite::middleware::{self, Call, Middleware as _, Next};
//! use sente_lite::{ErrorReply, Router};
//!
//! #[sente_lite::event("admin.mw/purge", reply = u32)]
//! #[derive(Serialize, Deserialize)]
//! struct Purge;
//!
//! #[sente_lite::handler]
//! async fn purge(_req: Purge) -> u32 {
//!     7
//! }
//!
//! let router = Router::new()
//!     .handler(purge)
//!     // Only `root` may call the `admin.mw` namespace.
//!     .layer(
//!         middleware::from_fn(|call: Call, next: Next| async move {
//!             if call.ctx().user_id().is_none_or(|user| user.0 != "root") {
//!                 return Err(ErrorReply::new("forbidden", "administrators only"));
//!             }
//!             next.run().await
//!         })
//!         .only(|event| event.starts_with("admin.mw/")),
//!     )
//!     // Every handler gets 5 seconds.
//!     .layer(middleware::from_fn(|call: Call, next: Next| async move {
//!         match tokio::time::timeout(Duration::from_secs(5), next.run()).await {
//!             Ok(finished) => finished,
//!             Err(_) => Err(ErrorReply::new("timeout", format!("`{}` took too long", call.event()))),
//!         }
//!     }));
//! # let _ = router.build().unwrap();
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::Ctx;
use crate::protocol::{Control, ErrorReply, RequestId};
use crate::router::{DispatchFuture, Dispatched, Outcome};

/// What a middleware answers: how the call [`Finished`], or the error the
/// peer is told instead.
pub type MiddlewareFuture = Pin<Box<dyn Future<Output = Result<Finished, ErrorReply>> + Send>>;

/// Code that runs around handlers (see the [module documentation](self)).
pub trait Middleware: Send + Sync + 'static {
    /// Handles `call`: refuse it (`Err`), or run `next` (at most once) and
    /// answer what it finished with.
    fn handle(&self, call: Call, next: Next) -> MiddlewareFuture;

    /// The same middleware, for the events whose id `pick` accepts only
    /// (`|event| event.starts_with("admin/")` for a namespace, `|event| event
    /// == "chat/send"` for one event); the others go straight on.
    fn only<P>(self, pick: P) -> Only<Self, P>
    where
        Self: Sized,
        P: Fn(&str) -> bool + Send + Sync + 'static,
    {
        Only { inner: self, pick }
    }
}

/// One dispatched event or request, as a middleware sees it.
#[derive(Clone, Debug)]
pub struct Call {
    ctx: Ctx,
    event: &'static str,
    req_id: Option<RequestId>,
}

impl Call {
    /// The connection it came on.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The event id (`namespace/name`).
    pub fn event(&self) -> &'static str {
        self.event
    }

    /// The request id, for a request; `None` for a one-way event.
    pub fn req_id(&self) -> Option<RequestId> {
        self.req_id
    }

    /// Whether it is a request (the peer waits for a reply).
    pub fn is_request(&self) -> bool {
        self.req_id.is_some()
    }
}

/// The rest of the chain: the middleware added before this one, then the
/// handler. Not run, nothing of it happens (the handler never starts).
pub struct Next {
    layers: Arc<[Arc<dyn Middleware>]>,
    /// Index of the next layer to run in `layers` (from the outermost).
    at: usize,
    call: Call,
    handler: DispatchFuture,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("event", &self.call.event)
            .field("layers_left", &(self.layers.len() - self.at))
            .finish_non_exhaustive()
    }
}

impl Next {
    /// Runs the rest of the chain and the handler.
    pub async fn run(self) -> Result<Finished, ErrorReply> {
        match self.layers.get(self.at).cloned() {
            Some(layer) => {
                let call = self.call.clone();
                let next = Next {
                    at: self.at + 1,
                    ..self
                };
                layer.handle(call, next).await
            }
            None => Ok(Finished(self.handler.await)),
        }
    }
}

/// How a handler ended: what [`Next::run`] answers. Opaque: the reply it
/// holds is already encoded for the peer.
#[derive(Debug)]
pub struct Finished(Dispatched);

impl Finished {
    /// How the handler ended: returned, returned an error (its code),
    /// panicked, or was cancelled by the peer.
    pub fn outcome(&self) -> &Outcome {
        &self.0.outcome
    }

    /// How long the handler ran, when it ran.
    pub fn elapsed(&self) -> Option<std::time::Duration> {
        self.0.timing.map(|t| t.elapsed)
    }
}

/// A [`Middleware`] made of an async function ([`from_fn`]).
pub struct FromFn<F>(F);

/// Makes a [`Middleware`] of `f(call, next)`.
pub fn from_fn<F, Fut>(f: F) -> FromFn<F>
where
    F: Fn(Call, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Finished, ErrorReply>> + Send + 'static,
{
    FromFn(f)
}

impl<F, Fut> Middleware for FromFn<F>
where
    F: Fn(Call, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Finished, ErrorReply>> + Send + 'static,
{
    fn handle(&self, call: Call, next: Next) -> MiddlewareFuture {
        Box::pin((self.0)(call, next))
    }
}

/// A middleware for some events only ([`Middleware::only`]).
pub struct Only<M, P> {
    inner: M,
    pick: P,
}

impl<M, P> Middleware for Only<M, P>
where
    M: Middleware,
    P: Fn(&str) -> bool + Send + Sync + 'static,
{
    fn handle(&self, call: Call, next: Next) -> MiddlewareFuture {
        if (self.pick)(call.event) {
            self.inner.handle(call, next)
        } else {
            Box::pin(next.run())
        }
    }
}

/// Runs `handler` (started by the router for `event`) through `layers`,
/// outermost first; a refusal becomes the peer's answer.
pub(crate) fn wrap(
    layers: &Arc<[Arc<dyn Middleware>]>,
    ctx: &Ctx,
    event: &'static str,
    req_id: Option<RequestId>,
    handler: DispatchFuture,
) -> DispatchFuture {
    let call = Call {
        ctx: ctx.clone(),
        event,
        req_id,
    };
    let codec = ctx.codec();
    let next = Next {
        layers: Arc::clone(layers),
        at: 0,
        call,
        handler,
    };
    Box::pin(async move {
        match next.run().await {
            Ok(Finished(dispatched)) => dispatched,
            Err(refusal) => Dispatched {
                outcome: Outcome::Error(refusal.code.to_string()),
                message: Some(match req_id {
                    Some(req_id) => codec.encode_error_reply(req_id, &refusal),
                    None => codec.encode_control(&Control::Error(refusal)),
                }),
                timing: None,
            },
        }
    })
}
