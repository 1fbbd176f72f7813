//! The router: handlers collected into a dispatch table keyed by [`EventKey`].

use std::any::type_name;
use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt as _;
use tungstenite::Message;

use crate::cancel::Cancellation;
use crate::ctx::InFlightGuard;
use crate::middleware::Middleware;
use crate::protocol::{Control, ErrorReply, RequestId, codes};
use crate::registry::{self, ClashError, EventRecord};
use crate::{Codec, Ctx, Event, EventKey, EventRef, Handler, Payload, ProtocolError};

/// Hashes an [`EventKey`] (already an FNV-1a hash) by spreading it over 64 bits
/// with one multiplication, so that the table's probe tags (the top bits) differ
/// between keys and a miss is found without comparing keys.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u32(&mut self, key: u32) {
        self.0 = u64::from(key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// What is known of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The event id.
    pub id: &'static str,
    /// The event key.
    pub key: EventKey,
    /// Whether the event is a request.
    pub is_request: bool,
    /// The event's Rust type.
    pub event_type: &'static str,
    /// The handler function's name.
    pub handler: &'static str,
    /// The module the handler is defined in.
    pub module: &'static str,
}

impl RouteInfo {
    fn handler_path(&self) -> String {
        format!("{}::{}", self.module, self.handler)
    }
}

/// A router that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// Two handlers are routed for one event.
    #[error(
        "event `{id}` is routed twice: to `{first}` and to `{second}`; keep one handler per event"
    )]
    DuplicateRoute {
        /// The event id.
        id: &'static str,
        /// The first handler, with its module path.
        first: String,
        /// The second handler, with its module path.
        second: String,
    },
    /// Two events clash by id or key.
    #[error(transparent)]
    Clash(#[from] ClashError),
}

/// Collects handlers; [`Router::build`] turns them into a [`RouteTable`].
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use sente_lite::{Ctx, Router};
///
/// #[sente_lite::event("room/post")]
/// #[derive(Serialize, Deserialize)]
/// struct RoomPost { text: String }
///
/// #[sente_lite::event("profile/get", reply = Profile)]
/// #[derive(Serialize, Deserialize)]
/// struct ProfileGet { id: u64 }
///
/// #[derive(Serialize, Deserialize, schemars::JsonSchema)]
/// struct Profile { name: String }
///
/// #[sente_lite::handler]
/// async fn on_post(_ctx: Ctx, _msg: RoomPost) {}
///
/// #[sente_lite::handler]
/// async fn get_profile(req: ProfileGet) -> Profile {
///     Profile { name: format!("user {}", req.id) }
/// }
///
/// let table = Router::new().handler(on_post).handler(get_profile).build().unwrap();
/// assert_eq!(table.len(), 2);
/// ```
#[derive(Default)]
#[must_use = "a router does nothing until it is built and given to a server or client"]
pub struct Router {
    routes: Vec<Route>,
    layers: Vec<Arc<dyn Middleware>>,
}

struct Route {
    info: RouteInfo,
    record: EventRecord,
    call: Arc<dyn ErasedRoute>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `H::Event` to `handler`.
    pub fn handler<H: Handler>(mut self, handler: H) -> Self {
        let info = RouteInfo {
            id: <H::Event as Event>::ID,
            key: <H::Event as Event>::KEY,
            is_request: <H::Event as Event>::IS_REQUEST,
            event_type: type_name::<H::Event>(),
            handler: H::NAME,
            module: H::MODULE,
        };
        let (module_path, short_name) = split_type_name(info.event_type);
        let record = EventRecord {
            id: info.id,
            key: info.key,
            type_name: short_name,
            reply_type: info
                .is_request
                .then(type_name::<<H::Event as Event>::Reply>),
            module_path,
        };
        self.routes.push(Route {
            info,
            record,
            call: Arc::new(HandlerRoute(handler, PhantomData)),
        });
        self
    }

    /// Runs `middleware` around every handler of this router (those routed
    /// before and after this call, the library's own `telemetry/batch`
    /// included: pick events with [`Middleware::only`]). The last layer added
    /// runs first, around the others. See [`crate::middleware`].
    pub fn layer(mut self, middleware: impl Middleware) -> Self {
        self.layers.push(Arc::new(middleware));
        self
    }

    /// Builds the dispatch table.
    ///
    /// Fails when an event is routed twice, when two routed events share an id
    /// or a key, or when the program's [registry](crate::registry) has a clash.
    pub fn build(self) -> Result<RouteTable, RouterError> {
        let mut table: HashMap<EventKey, Route, BuildHasherDefault<KeyHasher>> =
            HashMap::with_capacity_and_hasher(self.routes.len(), BuildHasherDefault::default());
        for route in self.routes {
            if let Some(prev) = table.get(&route.info.key) {
                if prev.record == route.record {
                    return Err(RouterError::DuplicateRoute {
                        id: route.info.id,
                        first: prev.info.handler_path(),
                        second: route.info.handler_path(),
                    });
                }
                registry::find_clash([&prev.record, &route.record])?;
            }
            table.insert(route.info.key, route);
        }
        registry::check()?;
        // Outermost first: the last layer added.
        let layers: Vec<Arc<dyn Middleware>> = self.layers.into_iter().rev().collect();
        Ok(RouteTable {
            routes: Arc::new(table),
            layers: layers.into(),
        })
    }
}

fn split_type_name(full: &'static str) -> (&'static str, &'static str) {
    match full.rfind("::") {
        Some(at) if !full[..at].contains('<') => (&full[..at], &full[at + 2..]),
        _ => ("", full),
    }
}

/// The future of one dispatched event or request.
pub type DispatchFuture = Pin<Box<dyn Future<Output = Dispatched> + Send + 'static>>;

/// What a dispatched handler produced.
#[derive(Debug)]
pub struct Dispatched {
    /// The frame to send back: the reply of a request, or an `sl/error` frame
    /// when a one-way handler failed. `None` when nothing is due.
    pub message: Option<Message>,
    /// How the handler ended.
    pub outcome: Outcome,
    /// Which handler ran and for how long (`None` for frames the protocol answers itself).
    pub timing: Option<HandlerTiming>,
}

/// Which event a handler ran for, and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerTiming {
    /// The event id.
    pub event: &'static str,
    /// From the frame's arrival (the call, for [`RouteTable::dispatch`])
    /// until the handler's future finished: decoding, the handler, and
    /// encoding its reply.
    pub elapsed: std::time::Duration,
}

/// How a handler ended, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It returned normally (a reply, or nothing for a one-way event).
    Ok,
    /// It returned an error, sent to the peer with this code.
    Error(String),
    /// It panicked; the peer got an `internal` error.
    Panicked,
    /// The peer cancelled the request (`sl/cancel`): the handler was dropped
    /// and no reply sent.
    Cancelled,
}

/// The built dispatch table: O(1) lookup of a route by event key. Cheap to clone.
#[derive(Clone)]
pub struct RouteTable {
    routes: Arc<HashMap<EventKey, Route, BuildHasherDefault<KeyHasher>>>,
    /// The router's middleware, outermost first.
    layers: Arc<[Arc<dyn Middleware>]>,
}

impl RouteTable {
    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes, in no particular order.
    pub fn routes(&self) -> impl Iterator<Item = &RouteInfo> {
        self.routes.values().map(|r| &r.info)
    }

    /// The route of an event, if any.
    pub fn route(&self, event: &EventRef<'_>) -> Option<&RouteInfo> {
        self.lookup(event).map(|r| &r.info)
    }

    fn lookup(&self, event: &EventRef<'_>) -> Option<&Route> {
        let route = self.routes.get(&event.key())?;
        event.is(route.info.id, route.info.key).then_some(route)
    }

    /// Starts the handler of an inbound event (`req_id` is `None`) or request.
    ///
    /// Decoding happens here, synchronously, so that a frame's payload is never
    /// kept past this call: an unknown event, a request sent as an event (or the
    /// reverse), a payload that does not fit the type, or a request id already in
    /// flight is returned as a [`ProtocolError`] for the caller to tell the peer
    /// (see [`RouteTable::error_message`]). Otherwise the returned future runs the
    /// handler and resolves to the reply to send, catching a panic as an
    /// `internal` error so the connection goes on.
    pub fn dispatch(
        &self,
        ctx: &Ctx,
        event: &EventRef<'_>,
        payload: Payload<'_>,
        req_id: Option<RequestId>,
    ) -> Result<DispatchFuture, ProtocolError> {
        self.dispatch_held(ctx, event, payload, req_id, false, Instant::now())
            .map(|(running, _)| running)
    }

    /// [`RouteTable::dispatch`] for the connection's own loop: with `lazily`,
    /// a request begun while no other is in flight is not put in the set of
    /// requests in flight (see [`Ctx::begin_request_lazily`]); its
    /// cancellation comes back beside the handler for the connection to
    /// [`Ctx::hold_request`] it, if the handler does not finish at once.
    /// The handler's time ([`HandlerTiming`]) counts from `arrived`, when
    /// the frame was read.
    pub(crate) fn dispatch_held(
        &self,
        ctx: &Ctx,
        event: &EventRef<'_>,
        payload: Payload<'_>,
        req_id: Option<RequestId>,
        lazily: bool,
        arrived: Instant,
    ) -> Result<(DispatchFuture, Option<Cancellation>), ProtocolError> {
        let route = self
            .lookup(event)
            .ok_or_else(|| ProtocolError::UnknownEvent {
                event: event.to_string(),
            })?;
        match (route.info.is_request, req_id) {
            (true, None) => {
                return Err(ProtocolError::ExpectedRequest {
                    event: route.info.id,
                });
            }
            (false, Some(_)) => {
                return Err(ProtocolError::NotARequest {
                    event: route.info.id,
                });
            }
            _ => {}
        }
        let (running, unheld) = route.call.dispatch(ctx, payload, req_id, lazily, arrived)?;
        Ok((self.layered(ctx, route.info.id, req_id, running), unheld))
    }

    /// `running` inside the router's middleware, if it has any.
    fn layered(
        &self,
        ctx: &Ctx,
        event: &'static str,
        req_id: Option<RequestId>,
        running: DispatchFuture,
    ) -> DispatchFuture {
        if self.layers.is_empty() {
            running
        } else {
            crate::middleware::wrap(&self.layers, ctx, event, req_id, running)
        }
    }

    /// The one-pass path for a JSON event or request frame: the route is found
    /// from the frame's head and the payload is decoded straight into the
    /// handler's type, then the handler starts as in [`RouteTable::dispatch`].
    ///
    /// `None` when the frame is anything else, or anything about it is wrong
    /// (an unknown event, a payload that does not fit, a request sent as an
    /// event, a deadline already passed): the caller decodes it the general way,
    /// which names the problem. A `Some` holds what that way would have done.
    /// The handler's time counts from `arrived`, as in
    /// [`RouteTable::dispatch_held`].
    pub(crate) fn dispatch_json(
        &self,
        ctx: &Ctx,
        text: &str,
        arrived: Instant,
    ) -> Option<FastDispatch> {
        let id = crate::codec::json_event_head(text)?;
        let route = self.lookup(&EventRef::Id(std::borrow::Cow::Borrowed(id)))?;
        route
            .call
            .dispatch_json(ctx, text, id, arrived)
            .map(|(req_id, deadline_ms, started)| FastDispatch {
                id: route.info.id,
                req_id,
                deadline_ms,
                started: started.map(|(running, unheld)| {
                    (self.layered(ctx, route.info.id, req_id, running), unheld)
                }),
            })
    }

    /// The frame that tells the peer about `error`: the request's error reply when
    /// `req_id` is given, an `sl/error` frame otherwise.
    pub fn error_message(
        codec: Codec,
        req_id: Option<RequestId>,
        error: &ProtocolError,
    ) -> Message {
        let reply = ErrorReply::from(error);
        match req_id {
            Some(req_id) => codec.encode_error_reply(req_id, &reply),
            None => codec.encode_control(&Control::Error(reply)),
        }
    }
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.routes()).finish()
    }
}

/// A JSON event or request started by [`RouteTable::dispatch_json`].
pub(crate) struct FastDispatch {
    /// The event id.
    pub(crate) id: &'static str,
    /// The request id, for a request.
    pub(crate) req_id: Option<RequestId>,
    /// The request's deadline in milliseconds (never 0: those take the general path).
    pub(crate) deadline_ms: Option<u32>,
    /// The running handler and, for a request not yet among those in flight,
    /// its cancellation (see [`RouteTable::dispatch_held`]); or why it could
    /// not start (a request id already in flight, too many in flight).
    pub(crate) started: Result<(DispatchFuture, Option<Cancellation>), ProtocolError>,
}

type FastStart = (
    Option<RequestId>,
    Option<u32>,
    Result<(DispatchFuture, Option<Cancellation>), ProtocolError>,
);

trait ErasedRoute: Send + Sync {
    fn dispatch(
        &self,
        ctx: &Ctx,
        payload: Payload<'_>,
        req_id: Option<RequestId>,
        lazily: bool,
        arrived: Instant,
    ) -> Result<(DispatchFuture, Option<Cancellation>), ProtocolError>;

    /// `id` is the event id [`crate::codec::json_event_head`] found in `text`.
    fn dispatch_json(&self, ctx: &Ctx, text: &str, id: &str, arrived: Instant)
    -> Option<FastStart>;
}

struct HandlerRoute<H>(H, PhantomData<fn() -> H>);

impl<H: Handler> ErasedRoute for HandlerRoute<H> {
    fn dispatch(
        &self,
        ctx: &Ctx,
        payload: Payload<'_>,
        req_id: Option<RequestId>,
        lazily: bool,
        arrived: Instant,
    ) -> Result<(DispatchFuture, Option<Cancellation>), ProtocolError> {
        let event: H::Event = payload.decode(<H::Event as Event>::ID)?;
        self.start(ctx, event, req_id, lazily, arrived)
    }

    fn dispatch_json(
        &self,
        ctx: &Ctx,
        text: &str,
        id: &str,
        arrived: Instant,
    ) -> Option<FastStart> {
        let frame = crate::codec::decode_json_event::<H::Event>(text, id)?;
        let kind_fits = frame.req_id.is_some() == <H::Event as Event>::IS_REQUEST;
        if !kind_fits || frame.deadline_ms == Some(0) {
            return None;
        }
        let started = self.start(ctx, frame.payload, frame.req_id, true, arrived);
        Some((frame.req_id, frame.deadline_ms, started))
    }
}

impl<H: Handler> HandlerRoute<H> {
    /// Starts the handler on a decoded event; `lazily` and `arrived`, as
    /// [`RouteTable::dispatch_held`] (the frame's arrival is the handler's
    /// start: one clock read a request fewer, and the decoding counted).
    fn start(
        &self,
        ctx: &Ctx,
        event: H::Event,
        req_id: Option<RequestId>,
        lazily: bool,
        arrived: Instant,
    ) -> Result<(DispatchFuture, Option<Cancellation>), ProtocolError> {
        let guard = match req_id {
            Some(id) if lazily => Some(ctx.begin_request_lazily(id)?),
            Some(id) => Some(ctx.begin_request(id)?),
            None => None,
        };
        let unheld = guard
            .as_ref()
            .map(InFlightGuard::cancellation)
            .filter(|c| !c.is_held())
            .cloned();
        let codec = ctx.codec();
        let running = AssertUnwindSafe(self.0.call_inline(ctx.clone(), event)).catch_unwind();
        let running: DispatchFuture = Box::pin(async move {
            let result = match &guard {
                // A request's handler is dropped when the request stops
                // being wanted (the peer's `sl/cancel`).
                Some(guard) => match guard.cancellation().clone().run(running).await {
                    Some(result) => result,
                    None => {
                        return Dispatched {
                            message: None,
                            outcome: Outcome::Cancelled,
                            timing: None,
                        };
                    }
                },
                None => running.await,
            };
            drop(guard);
            let (result, panicked) = match result {
                Ok(result) => (result, false),
                Err(_) => (
                    Err(ErrorReply::new(
                        codes::INTERNAL,
                        format!("the handler of `{}` failed", <H::Event as Event>::ID),
                    )),
                    true,
                ),
            };
            let outcome = match (&result, panicked) {
                (_, true) => Outcome::Panicked,
                (Ok(_), _) => Outcome::Ok,
                (Err(e), _) => Outcome::Error(e.code.to_string()),
            };
            let message = match (req_id, result) {
                (Some(req_id), Ok(Some(reply))) => {
                    Some(codec.encode_reply(req_id, &reply).unwrap_or_else(|e| {
                        codec.encode_error_reply(
                            req_id,
                            &ErrorReply::new(codes::INTERNAL, e.to_string()),
                        )
                    }))
                }
                (Some(req_id), Ok(None)) => Some(codec.encode_error_reply(
                    req_id,
                    &ErrorReply::new(codes::INTERNAL, "the handler produced no reply"),
                )),
                (Some(req_id), Err(e)) => Some(codec.encode_error_reply(req_id, &e)),
                (None, Ok(_)) => None,
                (None, Err(e)) => Some(codec.encode_control(&Control::Error(e))),
            };
            Dispatched {
                message,
                outcome,
                timing: Some(HandlerTiming {
                    event: <H::Event as Event>::ID,
                    elapsed: arrived.elapsed(),
                }),
            }
        });
        Ok((running, unheld))
    }
}
