//! The connection context handed to every handler, and the connection's bounded outbound queue.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tungstenite::Message;

use crate::cancel::Cancellation;
use crate::pending::{self, PendingRequests, RequestError};
use crate::protocol::Control;
use crate::protocol::{ConnId, RequestId, SubscribeReply, UserId};
use crate::queue::{OutboundReceiver, PushError, Queue};
use crate::{Codec, OneWay, ProtocolError, Request, SendError};

/// Application values handlers reach through [`Ctx::state`]: one value per type,
/// set on the server or client builder.
#[derive(Clone, Default)]
pub(crate) struct AppState(
    Arc<std::collections::HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>>,
);

impl AppState {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.0).insert(std::any::TypeId::of::<T>(), Arc::new(value));
    }

    fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.get(&std::any::TypeId::of::<T>())?.downcast_ref()
    }
}

/// The default time a request waits for its reply.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A boxed future of the hub's subscribe and unsubscribe.
pub(crate) type HubFuture<T> = Pin<Box<dyn Future<Output = Result<T, RequestError>> + Send>>;

/// What a context can do beyond its own connection: the server (channels, other
/// connections) or the client (subscriptions sent to the server).
pub(crate) trait Hub: Send + Sync + 'static {
    fn subscribe(&self, ctx: &Ctx, channel: String) -> HubFuture<SubscribeReply>;
    fn unsubscribe(&self, ctx: &Ctx, channel: String) -> HubFuture<()>;
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The connection a handler runs for: who the peer is, and a handle to send to it.
///
/// Cheap to clone (one reference count); clones share the connection.
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<CtxInner>,
}

struct CtxInner {
    conn_id: ConnId,
    user_id: Option<UserId>,
    codec: Codec,
    outbound: Outbound,
    in_flight: InFlight,
    pending: PendingRequests,
    /// Whether the peer takes `sl/cancel` (extension `cancel`): a server
    /// that offered it, a client that named it in `sl/extensions`.
    peer_cancels: AtomicBool,
    /// Whether the peer reads compressed frames (extension `compression`).
    peer_inflates: AtomicBool,
    request_timeout: Duration,
    hub: Option<Arc<dyn Hub>>,
    state: AppState,
}

impl Ctx {
    /// A context for connection `conn_id` of `user_id`, sending with `codec`
    /// through `outbound`, accepting at most `max_in_flight` concurrent requests
    /// from the peer.
    ///
    /// A context made this way belongs to no server or client: [`Ctx::subscribe`]
    /// fails. Servers and clients make their own; this one is for driving a
    /// [`RouteTable`](crate::RouteTable) by hand, as in tests.
    pub fn new(
        conn_id: ConnId,
        user_id: Option<UserId>,
        codec: Codec,
        outbound: Outbound,
        max_in_flight: usize,
    ) -> Self {
        Self::with_hub(
            conn_id,
            user_id,
            codec,
            outbound,
            max_in_flight,
            DEFAULT_REQUEST_TIMEOUT,
            None,
            AppState::default(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn with_hub(
        conn_id: ConnId,
        user_id: Option<UserId>,
        codec: Codec,
        outbound: Outbound,
        max_in_flight: usize,
        request_timeout: Duration,
        hub: Option<Arc<dyn Hub>>,
        state: AppState,
    ) -> Self {
        Self {
            inner: Arc::new(CtxInner {
                conn_id,
                user_id,
                codec,
                outbound,
                in_flight: InFlight::new(max_in_flight),
                pending: PendingRequests::new(max_in_flight),
                peer_cancels: AtomicBool::new(false),
                peer_inflates: AtomicBool::new(false),
                request_timeout,
                hub,
                state,
            }),
        }
    }

    /// The application value of type `T` given to the server's (or client's)
    /// builder with `.state(value)`, if any.
    ///
    /// ```no_run
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use serde::{Deserialize, Serialize};
    /// use sente_lite::{Ctx, Router, Server};
    ///
    /// struct Visits(AtomicU64);
    ///
    /// #[sente_lite::event("state/visit", reply = u64)]
    /// #[derive(Serialize, Deserialize)]
    /// struct Visit;
    ///
    /// #[sente_lite::handler]
    /// async fn visit(ctx: Ctx, _req: Visit) -> u64 {
    ///     let visits = ctx.state::<Visits>().expect("set on the builder");
    ///     visits.0.fetch_add(1, Ordering::Relaxed) + 1
    /// }
    ///
    /// # async fn run() -> Result<(), sente_lite::server::ServerError> {
    /// let server = Server::builder()
    ///     .router(Router::new().handler(visit))
    ///     .state(Visits(AtomicU64::new(0)))
    ///     .bind("127.0.0.1:0")
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner.state.get()
    }

    /// The connection's id.
    pub fn conn_id(&self) -> ConnId {
        self.inner.conn_id
    }

    /// The authenticated user, if the connection has one.
    pub fn user_id(&self) -> Option<&UserId> {
        self.inner.user_id.as_ref()
    }

    /// The codec the connection sends with.
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// Sends a one-way event to the peer.
    ///
    /// The message is queued, not awaited: it fails with [`SendError::QueueFull`]
    /// when the peer is too slow to keep its queue below capacity, and with
    /// [`SendError::Closed`] when the connection is gone.
    pub fn send<E: OneWay>(&self, event: &E) -> Result<(), SendError> {
        let message = self.inner.codec.encode_event(event)?;
        self.inner.outbound.try_send(message)
    }

    /// Sends a request to the peer and waits for its reply, at most the
    /// connection's request timeout (10 s unless configured).
    ///
    /// Dropping the returned future stops waiting; a reply that arrives later is
    /// ignored. When the peer takes cancels (extension `cancel`), it is told
    /// (`sl/cancel`) and drops the request's handler.
    pub async fn request<E: Request>(&self, request: &E) -> Result<E::Reply, RequestError> {
        self.request_within(request, self.inner.request_timeout)
            .await
    }

    /// Sends a request to the peer and waits for its reply, at most `timeout`.
    /// The deadline travels with the request so the peer does not work past it.
    pub async fn request_within<E: Request>(
        &self,
        request: &E,
        timeout: Duration,
    ) -> Result<E::Reply, RequestError> {
        use tracing::Instrument as _;
        let span = tracing::debug_span!(
            target: "sente_lite",
            "request",
            event = E::ID,
            conn_id = self.inner.conn_id.0,
            deadline_ms = pending::deadline_ms(timeout),
            outcome = tracing::field::Empty,
        );
        async {
            let (guard, reply) = self.inner.pending.register::<E::Reply>()?;
            let message = self.inner.codec.encode_request(
                guard.req_id(),
                Some(pending::deadline_ms(timeout)),
                request,
            )?;
            self.inner.outbound.try_send(message)?;
            let cancel = CancelOnDrop::new(self, guard.req_id());
            let result = pending::wait_reply(guard, reply, timeout).await;
            cancel.disarm();
            tracing::Span::current().record(
                "outcome",
                result.as_ref().map_or_else(RequestError::code, |_| "ok"),
            );
            result
        }
        .instrument(span)
        .await
    }

    /// Sends `event` to the peer as a request and waits for its reply, at most
    /// `timeout`, keeping the reply as it came (an engine carries it to the
    /// server that asked). The request is sent before this returns.
    pub(crate) fn request_raw(
        &self,
        event: &crate::engine::OutgoingEvent<'_>,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<crate::pending::RawReply, RequestError>> + Send + 'static
    {
        let sent = (|| {
            let (guard, reply) = self.inner.pending.register_raw()?;
            let message = event.request_message(
                self.inner.codec,
                guard.req_id(),
                Some(pending::deadline_ms(timeout)),
            )?;
            self.inner.outbound.try_send(message)?;
            Ok::<_, RequestError>((guard, reply))
        })();
        let ctx = self.clone();
        async move {
            let (guard, reply) = sent?;
            let cancel = CancelOnDrop::new(&ctx, guard.req_id());
            let result = pending::wait_reply(guard, reply, timeout).await;
            cancel.disarm();
            result
        }
    }

    /// Subscribes this connection to `channel` (on a server: directly, after the
    /// channel's authorisation; on a client: by asking the server).
    pub async fn subscribe(
        &self,
        channel: impl Into<String>,
    ) -> Result<SubscribeReply, RequestError> {
        match &self.inner.hub {
            Some(hub) => hub.subscribe(self, channel.into()).await,
            None => Err(RequestError::Closed),
        }
    }

    /// Unsubscribes this connection from `channel`.
    pub async fn unsubscribe(&self, channel: impl Into<String>) -> Result<(), RequestError> {
        match &self.inner.hub {
            Some(hub) => hub.unsubscribe(self, channel.into()).await,
            None => Err(RequestError::Closed),
        }
    }

    /// Messages waiting in the connection's outbound queue.
    pub fn queued(&self) -> usize {
        self.inner.outbound.len()
    }

    /// Our requests to the peer still waiting for a reply.
    pub(crate) fn pending(&self) -> &PendingRequests {
        &self.inner.pending
    }

    pub(crate) fn hub(&self) -> Option<&dyn std::any::Any> {
        self.inner.hub.as_deref().map(Hub::as_any)
    }

    /// Queues an already encoded message (for example a shared broadcast frame).
    pub fn send_message(&self, message: Message) -> Result<(), SendError> {
        self.inner.outbound.try_send(message)
    }

    /// Queues `message`, waiting for room in a full queue (see
    /// `Outbound::send_when_room`).
    pub(crate) async fn send_when_room(&self, message: Message) -> Result<(), SendError> {
        self.inner.outbound.send_when_room(message).await
    }

    /// Marks request `req_id` from the peer as in flight until the guard drops.
    pub(crate) fn begin_request(&self, req_id: RequestId) -> Result<InFlightGuard, ProtocolError> {
        self.inner.in_flight.begin(&self.inner, req_id, false)
    }

    /// [`Ctx::begin_request`] for the connection's own dispatch, which holds
    /// off while nothing is in flight: the request then goes into the set only
    /// when the connection calls [`Ctx::hold_request`], which it does before
    /// it reads the next frame unless the handler finished at its first poll.
    /// Until then no other request can be in flight, so there is nothing to
    /// check it against, and a handler that finishes at once never touches
    /// the set.
    pub(crate) fn begin_request_lazily(
        &self,
        req_id: RequestId,
    ) -> Result<InFlightGuard, ProtocolError> {
        self.inner.in_flight.begin(&self.inner, req_id, true)
    }

    /// Puts request `req_id`, begun by [`Ctx::begin_request_lazily`] and not
    /// yet in the set, into the set of requests in flight.
    pub(crate) fn hold_request(&self, req_id: RequestId, cancellation: &Cancellation) {
        let in_flight = &self.inner.in_flight;
        let mut ids = in_flight.lock();
        if let std::collections::hash_map::Entry::Vacant(entry) = ids.entry(req_id) {
            entry.insert(cancellation.clone());
            cancellation.mark_held();
            in_flight.held.store(ids.len(), Ordering::Release);
        }
    }

    /// Cancels the peer's request `req_id` (its `sl/cancel`): its handler is
    /// dropped, and its place among the requests in flight is free at once
    /// (before the handler's task has seen it). `false` when no such request
    /// is in flight.
    pub(crate) fn cancel_request(&self, req_id: RequestId) -> bool {
        let in_flight = &self.inner.in_flight;
        let mut ids = in_flight.lock();
        let cancellation = ids.remove(&req_id);
        in_flight.held.store(ids.len(), Ordering::Release);
        drop(ids);
        cancellation.is_some_and(|c| c.cancel())
    }

    /// Records that the peer takes `sl/cancel` (extension `cancel`).
    pub(crate) fn set_peer_cancels(&self) {
        self.inner.peer_cancels.store(true, Ordering::Relaxed);
    }

    /// Whether the peer takes `sl/cancel`.
    pub(crate) fn peer_cancels(&self) -> bool {
        self.inner.peer_cancels.load(Ordering::Relaxed)
    }

    /// Records that the peer reads compressed frames (extension `compression`).
    pub(crate) fn set_peer_inflates(&self) {
        self.inner.peer_inflates.store(true, Ordering::Relaxed);
    }

    /// Whether the peer reads compressed frames.
    pub(crate) fn peer_inflates(&self) -> bool {
        self.inner.peer_inflates.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("conn_id", &self.inner.conn_id)
            .field("user_id", &self.inner.user_id)
            .field("codec", &self.inner.codec)
            .finish_non_exhaustive()
    }
}

/// The sending half of a connection's bounded outbound queue.
///
/// The connection's task owns the socket and drains the receiving half; every
/// other part of the program sends through clones of this handle. When the queue
/// is full the message is refused ([`SendError::QueueFull`]), never buffered
/// elsewhere: the caller decides, and the server's slow-consumer policy closes
/// connections that stay full.
pub struct Outbound {
    conn_id: ConnId,
    queue: Arc<Queue>,
    signal: Option<Arc<crate::connection::CloseSignal>>,
}

impl Outbound {
    /// A queue of `capacity` messages (at least 1) for connection `conn_id`,
    /// without a bound in bytes (see [`Outbound::bounded`]).
    ///
    /// The queue allocates as messages arrive and gives the room back once
    /// emptied, so an idle connection's queue holds no memory.
    pub fn channel(conn_id: ConnId, capacity: usize) -> (Self, OutboundReceiver) {
        Self::bounded(conn_id, capacity, usize::MAX)
    }

    /// A queue of at most `capacity` messages (at least 1) and `max_bytes`
    /// bytes for connection `conn_id`. A message that would take the queue past
    /// either bound is refused ([`SendError::QueueFull`]); one message is always
    /// taken into an empty queue, however large.
    pub fn bounded(conn_id: ConnId, capacity: usize, max_bytes: usize) -> (Self, OutboundReceiver) {
        let queue = Queue::new(capacity, max_bytes);
        let receiver = OutboundReceiver::new(Arc::clone(&queue));
        (
            Self {
                conn_id,
                queue,
                signal: None,
            },
            receiver,
        )
    }

    /// A queue whose connection closes as a slow consumer when a send finds it full.
    pub(crate) fn with_signal(
        conn_id: ConnId,
        capacity: usize,
        max_bytes: usize,
        signal: Arc<crate::connection::CloseSignal>,
    ) -> (Self, OutboundReceiver) {
        let (mut outbound, rx) = Self::bounded(conn_id, capacity, max_bytes);
        outbound.signal = Some(signal);
        (outbound, rx)
    }

    /// The same queue, naming connection `conn_id` in its errors (a client hands
    /// its one queue to each of its connections in turn).
    pub(crate) fn for_conn(&self, conn_id: ConnId) -> Self {
        let mut outbound = self.clone();
        outbound.conn_id = conn_id;
        outbound
    }

    /// Queues `message` without waiting, and without counting the
    /// connection a slow consumer when the queue is full: for a frame that
    /// may be lost (an `sl/cancel`).
    pub(crate) fn try_send_quiet(&self, message: Message) -> Result<(), PushError> {
        self.queue.push(message)
    }

    /// Queues `message` without waiting.
    pub fn try_send(&self, message: Message) -> Result<(), SendError> {
        self.queue.push(message).map_err(|e| match e {
            PushError::Full => {
                if let Some(signal) = &self.signal {
                    signal.slow_consumer();
                }
                SendError::QueueFull {
                    conn_id: self.conn_id,
                    capacity: self.queue.capacity(),
                    max_bytes: self.queue.max_bytes(),
                }
            }
            PushError::Closed => SendError::Closed {
                conn_id: self.conn_id,
            },
        })
    }

    /// Queues `message`, waiting while the queue is full instead of failing
    /// (and without counting the connection a slow consumer): for a sender
    /// that paces itself on the peer's reading, such as a replay. The
    /// connection's own checks still close a peer that stops reading.
    pub(crate) async fn send_when_room(&self, message: Message) -> Result<(), SendError> {
        self.queue
            .push_when_room(message)
            .await
            .map_err(|_| SendError::Closed {
                conn_id: self.conn_id,
            })
    }

    /// Messages queued and not yet taken by the connection's task.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Clone for Outbound {
    fn clone(&self) -> Self {
        self.queue.add_sender();
        Self {
            conn_id: self.conn_id,
            queue: Arc::clone(&self.queue),
            signal: self.signal.clone(),
        }
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.queue.drop_sender();
    }
}

/// Tells the peer, when dropped before [`CancelOnDrop::disarm`], that we
/// stopped waiting for request `req_id` (if it takes `sl/cancel`).
struct CancelOnDrop<'a> {
    ctx: Option<&'a Ctx>,
    req_id: RequestId,
}

impl<'a> CancelOnDrop<'a> {
    fn new(ctx: &'a Ctx, req_id: RequestId) -> Self {
        Self {
            ctx: Some(ctx),
            req_id,
        }
    }

    /// The wait ended (a reply, an error, the deadline): nothing to tell.
    fn disarm(mut self) {
        self.ctx = None;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let Some(ctx) = self.ctx.take() else { return };
        if !ctx.peer_cancels() {
            return;
        }
        let message = ctx.codec().encode_control(&Control::Cancel {
            req_id: self.req_id,
        });
        // Best effort: a queue that is full or closed has a connection that
        // is going anyway, and a cancel is never worth closing one for.
        if ctx.inner.outbound.try_send_quiet(message).is_err() {
            tracing::debug!(target: "sente_lite", conn_id = %ctx.conn_id(), req_id = self.req_id, "`sl/cancel` not queued");
        }
    }
}

/// The peer's requests still being handled, bounded, each with the
/// cancellation that drops its handler.
struct InFlight {
    max: usize,
    /// Hashed with foldhash, seeded per process: the ids are the peer's, and
    /// at most `max` of them are here, so speed matters more than SipHash's
    /// resistance to crafted keys.
    ids: Mutex<HashMap<RequestId, Cancellation, foldhash::fast::RandomState>>,
    /// How many `ids` holds, written under its lock: read without it, to
    /// skip the set while it is empty.
    held: AtomicUsize,
}

impl InFlight {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            ids: Mutex::new(HashMap::default()),
            held: AtomicUsize::new(0),
        }
    }

    fn lock(
        &self,
    ) -> MutexGuard<'_, HashMap<RequestId, Cancellation, foldhash::fast::RandomState>> {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A guard for request `req_id`, in the set; when `lazily` and the set
    /// is empty, a guard not yet in it (see [`Ctx::begin_request_lazily`]).
    fn begin(
        &self,
        owner: &Arc<CtxInner>,
        req_id: RequestId,
        lazily: bool,
    ) -> Result<InFlightGuard, ProtocolError> {
        let cancellation = Cancellation::new();
        if !(lazily && self.held.load(Ordering::Acquire) == 0) {
            let mut ids = self.lock();
            if ids.len() >= self.max {
                return Err(ProtocolError::TooManyRequests { max: self.max });
            }
            let std::collections::hash_map::Entry::Vacant(entry) = ids.entry(req_id) else {
                return Err(ProtocolError::DuplicateRequest { req_id });
            };
            entry.insert(cancellation.clone());
            cancellation.mark_held();
            self.held.store(ids.len(), Ordering::Release);
        }
        Ok(InFlightGuard {
            owner: Arc::clone(owner),
            req_id,
            cancellation,
        })
    }
}

/// Removes a request from the in-flight set when dropped.
pub(crate) struct InFlightGuard {
    owner: Arc<CtxInner>,
    req_id: RequestId,
    cancellation: Cancellation,
}

impl InFlightGuard {
    /// The cancellation that drops the request's handler.
    pub(crate) fn cancellation(&self) -> &Cancellation {
        &self.cancellation
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        // Never put in the set: nothing to take out.
        if !self.cancellation.is_held() {
            return;
        }
        let in_flight = &self.owner.in_flight;
        let mut ids = in_flight.lock();
        // Only its own entry: a cancelled request left the set already, and
        // its id may be in flight again.
        if ids
            .get(&self.req_id)
            .is_some_and(|c| c.same_as(&self.cancellation))
        {
            ids.remove(&self.req_id);
            in_flight.held.store(ids.len(), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(max_in_flight: usize) -> Ctx {
        let (outbound, _queue) = Outbound::channel(ConnId(1), 8);
        Ctx::new(ConnId(1), None, Codec::Json, outbound, max_in_flight)
    }

    fn held(ctx: &Ctx) -> usize {
        ctx.inner.in_flight.lock().len()
    }

    #[test]
    fn a_lazy_request_enters_the_set_only_when_held() {
        let ctx = ctx(2);
        // Finished at once: the set is never touched.
        let done = ctx.begin_request_lazily(5).unwrap();
        assert!(!done.cancellation().is_held());
        assert!(!ctx.cancel_request(5), "not in the set, not cancellable");
        drop(done);
        assert_eq!(held(&ctx), 0);

        // Still running after its first poll: held, then found as any other.
        let running = ctx.begin_request_lazily(5).unwrap();
        ctx.hold_request(5, running.cancellation());
        assert!(running.cancellation().is_held());
        assert_eq!(held(&ctx), 1);
        assert!(matches!(
            ctx.begin_request_lazily(5),
            Err(ProtocolError::DuplicateRequest { .. })
        ));
        let other = ctx.begin_request_lazily(6).unwrap();
        assert!(
            other.cancellation().is_held(),
            "checked against the set, and in it"
        );
        assert!(matches!(
            ctx.begin_request_lazily(7),
            Err(ProtocolError::TooManyRequests { max: 2 })
        ));
        drop(other);
        assert_eq!(held(&ctx), 1);

        // Cancelled: out of the set at once, and its guard leaves a new
        // request of the same id alone.
        assert!(ctx.cancel_request(5));
        assert!(running.cancellation().is_cancelled());
        let again = ctx.begin_request(5).unwrap();
        drop(running);
        assert_eq!(held(&ctx), 1);
        drop(again);
        assert_eq!(held(&ctx), 0);
        assert_eq!(ctx.inner.in_flight.held.load(Ordering::Acquire), 0);
    }
}
