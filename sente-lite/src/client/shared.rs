//! The state a client's handles, its background task and its connections share:
//! the connection state, the live connection, the subscriptions and the queue.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::Instrument as _;
use tungstenite::Message;

use super::dial::Target;
use super::members::Registry;
use super::subscribing::{Subscribing, Unanswered};
use super::{ClientError, ConnectionState, ReconnectPolicy};
use crate::connection::Side;
use crate::ctx::{Hub, HubFuture};
use crate::pending::{self, PendingGuard, RequestError};
use crate::protocol::{CloseReason, Control, Handshake, RequestId, StreamPosition, SubscribeReply};
use crate::router::DispatchFuture;
use crate::stats::Counters;
use crate::{Ctx, EventRef, Outbound, Payload, ProtocolError, RouteTable, SendError};

/// Called on every state change.
pub(crate) type StateCallback = Arc<dyn Fn(ConnectionState) + Send + Sync>;
/// Called with the server's answer to each subscription restored after a
/// reconnect or an `sl/resub`.
pub(crate) type ResubscribeCallback =
    Arc<dyn Fn(&str, &Result<SubscribeReply, RequestError>) + Send + Sync>;
/// Called with a channel on which publications were missed.
pub(crate) type GapCallback = Arc<dyn Fn(&str, &SubscribeReply) + Send + Sync>;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Settings fixed when the client is built.
pub(crate) struct Settings {
    pub(crate) policy: ReconnectPolicy,
    pub(crate) request_timeout: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) max_concurrent_handlers: usize,
    /// The bound of each typed subscription's queue: publications and bytes.
    pub(crate) channel_queue: (usize, usize),
    pub(crate) on_state: Option<StateCallback>,
    pub(crate) on_resubscribe: Option<ResubscribeCallback>,
    pub(crate) on_gap: Option<GapCallback>,
    pub(crate) on_schema_mismatch: Option<super::schema::SchemaCallback>,
    pub(crate) on_rejected: Option<super::credentials::RejectionCallback>,
    pub(crate) state: crate::ctx::AppState,
}

/// The open connection.
#[derive(Clone)]
pub(crate) struct Live {
    pub(crate) ctx: Ctx,
    pub(crate) handshake: Handshake,
    /// The channels with an `sl/sub` unanswered on this connection.
    pub(crate) subscribing: Subscribing,
}

/// Commands from the handles to the background task.
#[derive(Default)]
pub(crate) struct Commands {
    stop: AtomicBool,
    reconnect: AtomicBool,
    wake: Notify,
}

/// What the handles asked the background task to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// Close and stop for good.
    Stop,
    /// Drop the connection (or skip the backoff delay) and connect again now.
    Reconnect,
}

impl Commands {
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub(crate) fn reconnect(&self) {
        self.reconnect.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Forgets a pending reconnect request (it is being carried out).
    pub(crate) fn clear_reconnect(&self) {
        self.reconnect.store(false, Ordering::Release);
    }

    /// Waits for the next command. Cancel-safe: a command is taken only when returned.
    pub(crate) async fn next(&self) -> Command {
        loop {
            let woken = self.wake.notified();
            if self.stop.load(Ordering::Acquire) {
                return Command::Stop;
            }
            if self.reconnect.swap(false, Ordering::AcqRel) {
                return Command::Reconnect;
            }
            woken.await;
        }
    }
}

/// A subscription to restore on a new connection, waiting for the server's answer.
struct Restore {
    channel: String,
    since: Option<StreamPosition>,
    guard: PendingGuard,
    reply: tokio::sync::oneshot::Receiver<Result<SubscribeReply, RequestError>>,
    /// Marks the channel answered once its answer was taken in.
    unanswered: Unanswered,
}

/// The subscriptions restored on a new connection, waiting for the server's answers.
pub(crate) struct Restores(Vec<Restore>);

impl Restores {
    /// How many subscriptions are restored.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) struct Shared {
    pub(crate) target: Target,
    pub(crate) routes: RouteTable,
    pub(crate) settings: Settings,
    /// The client's one outbound queue, shared by all its connections in turn.
    pub(crate) outbound: Outbound,
    pub(crate) counters: Counters,
    pub(crate) commands: Commands,
    state: watch::Sender<ConnectionState>,
    live: Mutex<Option<Live>>,
    /// Channels to keep subscribed, with the last position seen in each.
    subscriptions: Mutex<BTreeMap<String, Option<StreamPosition>>>,
    /// Channels whose presence is watched or asked for.
    presence: Mutex<Registry>,
    /// Typed subscriptions ([`super::Client::join`]), by channel.
    pub(crate) joins: Mutex<super::joined::Joins>,
    last_error: Mutex<Option<Arc<ClientError>>>,
    /// The server's last `sl/close`: why it closed a connection.
    pub(crate) last_close: Mutex<Option<CloseReason>>,
    /// What is known of the server's schema.
    pub(crate) schema: Mutex<super::schema::SchemaCheck>,
    /// How to fetch the server's description, when its schema hash differs.
    pub(crate) describe: Option<super::describe::Fetch>,
}

impl Shared {
    pub(crate) fn new(
        target: Target,
        routes: RouteTable,
        settings: Settings,
        outbound: Outbound,
        describe: Option<super::describe::Fetch>,
    ) -> Self {
        let counters = Counters::for_routes(&routes);
        Self {
            target,
            routes,
            settings,
            outbound,
            counters,
            commands: Commands::default(),
            state: watch::Sender::new(ConnectionState::Closed),
            live: Mutex::new(None),
            subscriptions: Mutex::new(BTreeMap::new()),
            presence: Mutex::new(Registry::default()),
            joins: Mutex::new(super::joined::Joins::default()),
            last_error: Mutex::new(None),
            last_close: Mutex::new(None),
            schema: Mutex::new(super::schema::SchemaCheck::default()),
            describe,
        }
    }

    pub(crate) fn state(&self) -> ConnectionState {
        *self.state.borrow()
    }

    pub(crate) fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }

    /// Moves to `state`, telling watchers and the callback when it changed.
    pub(crate) fn set_state(&self, state: ConnectionState) {
        let mut previous = state;
        let changed = self.state.send_if_modified(|current| {
            previous = *current;
            let changed = *current != state;
            *current = state;
            changed
        });
        if changed {
            tracing::debug!(target: "sente_lite", from = %previous, to = %state, "client state changed");
            if let Some(callback) = &self.settings.on_state {
                callback(state);
            }
            if state == ConnectionState::Closed {
                // Presence watches waiting for a change learn that none will come.
                self.presence().wake_all();
                // Typed subscriptions end.
                lock(&self.joins).close(None);
            }
        }
    }

    /// The channels whose presence is watched.
    pub(crate) fn presence(&self) -> MutexGuard<'_, Registry> {
        lock(&self.presence)
    }

    pub(crate) fn last_error(&self) -> Option<Arc<ClientError>> {
        lock(&self.last_error).clone()
    }

    pub(crate) fn set_last_error(&self, error: ClientError) {
        *lock(&self.last_error) = Some(Arc::new(error));
    }

    pub(crate) fn live(&self) -> Option<Live> {
        lock(&self.live).clone()
    }

    pub(crate) fn set_live(&self, live: Option<Live>) {
        *lock(&self.live) = live;
    }

    /// Queues an encoded message on the client's queue (naming the open
    /// connection in errors, when there is one).
    pub(crate) fn send_message(&self, message: Message) -> Result<(), SendError> {
        match self.live() {
            Some(live) => live.ctx.send_message(message),
            None => self.outbound.try_send(message),
        }
    }

    /// The open connection, waiting for one until `deadline`. Fails with
    /// `Closed` when the client stopped or gave up, `Timeout(total)` at the deadline.
    pub(crate) async fn open_ctx(
        &self,
        deadline: Instant,
        total: Duration,
    ) -> Result<Ctx, RequestError> {
        self.open_live(deadline, total).await.map(|live| live.ctx)
    }

    /// Like [`Shared::open_ctx`], with the connection's handshake.
    pub(crate) async fn open_live(
        &self,
        deadline: Instant,
        total: Duration,
    ) -> Result<Live, RequestError> {
        let mut changes = self.state.subscribe();
        loop {
            if let Some(live) = self.live() {
                return Ok(live);
            }
            let state = *changes.borrow_and_update();
            if matches!(state, ConnectionState::Closed | ConnectionState::Failed)
                || self.commands.stopping()
            {
                return Err(RequestError::Closed);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Err(_) => return Err(RequestError::Timeout(total)),
                Ok(Err(_)) => return Err(RequestError::Closed),
                Ok(Ok(())) => {}
            }
        }
    }

    pub(crate) fn subscriptions(&self) -> Vec<String> {
        lock(&self.subscriptions).keys().cloned().collect()
    }

    pub(crate) fn position(&self, channel: &str) -> Option<StreamPosition> {
        lock(&self.subscriptions).get(channel).cloned().flatten()
    }

    /// Subscribes to `channel` on the open connection (waiting for one up to
    /// `timeout`) and keeps it subscribed across reconnects.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        channel: String,
        timeout: Duration,
    ) -> Result<SubscribeReply, RequestError> {
        let deadline = Instant::now() + timeout;
        let live = self.open_live(deadline, timeout).await?;
        let (since, added) = {
            let mut subscriptions = lock(&self.subscriptions);
            match subscriptions.get(&channel) {
                Some(since) => (since.clone(), false),
                None => {
                    subscriptions.insert(channel.clone(), None);
                    (None, true)
                }
            }
        };
        self.subscribe_on(&live, &channel, since, added, deadline, timeout)
            .await
    }

    /// Sends `sl/sub` for `channel` from `since` on `live` and takes in the
    /// answer (its position, a gap, the presence watch to restore) by
    /// `deadline`. `added`: the channel was not wanted before, and is
    /// forgotten again when the frame never went out.
    pub(super) async fn subscribe_on(
        self: &Arc<Self>,
        live: &Live,
        channel: &str,
        since: Option<StreamPosition>,
        added: bool,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<SubscribeReply, RequestError> {
        let _unanswered = live.subscribing.begin(channel);
        let frame = |req_id| Control::Subscribe {
            req_id,
            channel: channel.to_owned(),
            since: since.clone(),
        };
        let result = ask(&live.ctx, frame, deadline, timeout).await;
        match &result {
            Ok(reply) => {
                self.settle(channel, since.as_ref(), reply);
                // Subscribed again (after leaving, or as the server asked):
                // the server watches no more.
                if self.presence().is_watched(channel) {
                    tokio::spawn(
                        Arc::clone(self)
                            .rewatch(live.clone(), channel.to_owned())
                            .in_current_span(),
                    );
                }
            }
            // Refused: asking again on the next connection would be refused again.
            Err(RequestError::Remote(_)) => {
                lock(&self.subscriptions).remove(channel);
                lock(&self.joins).close(Some(channel));
            }
            // Never sent: a new channel is not kept.
            Err(
                RequestError::Send(_)
                | RequestError::Encode(_)
                | RequestError::TooManyInFlight { .. },
            ) if added => {
                lock(&self.subscriptions).remove(channel);
            }
            // A timeout or a lost connection: it stays wanted, and is restored
            // on the next connection.
            Err(_) => {}
        }
        result
    }

    /// Whether the client keeps `channel` subscribed, and then the largest
    /// position it has seen there (the `since` of its next subscribe).
    pub(super) fn wanted(&self, channel: &str) -> Option<Option<StreamPosition>> {
        lock(&self.subscriptions).get(channel).cloned()
    }

    /// Stops keeping `channel` subscribed and tells the server, when connected.
    pub(crate) async fn unsubscribe(
        &self,
        channel: String,
        timeout: Duration,
    ) -> Result<(), RequestError> {
        lock(&self.subscriptions).remove(&channel);
        lock(&self.joins).close(Some(&channel));
        // The server ends its presence watch of a channel left.
        self.presence().unwatched(&channel);
        // Not connected: the next connection simply does not restore it.
        let Some(live) = self.live() else {
            return Ok(());
        };
        let frame = |req_id| Control::Unsubscribe { req_id, channel };
        match ask(&live.ctx, frame, Instant::now() + timeout, timeout).await {
            // The connection went away: the server forgot the subscription with it.
            Err(RequestError::Closed) => Ok(()),
            other => other,
        }
    }

    /// Takes in the server's answer to a subscription that sent `since`: the
    /// position moves to the reply's when that is further, and a gap (a
    /// position was sent and the server could not recover from it) is reported.
    fn settle(&self, channel: &str, since: Option<&StreamPosition>, reply: &SubscribeReply) {
        if let Some(position) = &reply.position
            && let Some(held) = lock(&self.subscriptions).get_mut(channel)
        {
            advance(held, position);
        }
        if since.is_some() && !reply.recovered {
            tracing::warn!(target: "sente_lite", channel = %channel, "subscribed with a gap: publications were missed");
            if let Some(callback) = &self.settings.on_gap {
                callback(channel, reply);
            }
            self.gap_joined(channel, reply);
        }
    }

    /// Remembers the position of a publication on a channel we keep.
    fn note_position(&self, channel: &str, position: &StreamPosition) {
        if let Some(held) = lock(&self.subscriptions).get_mut(channel) {
            advance(held, position);
        }
    }

    /// The `sl/sub` frames that restore every subscription on a new connection,
    /// registered in its table of pending requests and marked unanswered in
    /// `subscribing`.
    pub(crate) fn restore_frames(
        &self,
        ctx: &Ctx,
        subscribing: &Subscribing,
    ) -> (Vec<Message>, Restores) {
        let subscriptions = lock(&self.subscriptions).clone();
        let mut frames = Vec::with_capacity(subscriptions.len());
        let mut restores = Vec::with_capacity(subscriptions.len());
        for (channel, since) in subscriptions {
            let (guard, reply) = match ctx.pending().register::<SubscribeReply>() {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::warn!(target: "sente_lite", channel = %channel, error = %err, "cannot restore subscription");
                    continue;
                }
            };
            frames.push(ctx.codec().encode_control(&Control::Subscribe {
                req_id: guard.req_id(),
                channel: channel.clone(),
                since: since.clone(),
            }));
            restores.push(Restore {
                unanswered: subscribing.begin(&channel),
                channel,
                since,
                guard,
                reply,
            });
        }
        (frames, Restores(restores))
    }

    /// Waits for the server's answers to the subscriptions restored on `live`.
    pub(crate) async fn settle_restores(self: Arc<Self>, live: Live, restores: Restores) {
        let timeout = self.settings.request_timeout;
        for restore in restores.0 {
            let Restore {
                channel,
                since,
                guard,
                reply,
                unanswered,
            } = restore;
            let result = pending::wait_reply(guard, reply, timeout).await;
            match &result {
                Ok(reply) => {
                    tracing::debug!(target: "sente_lite", channel = %channel, recovered = reply.recovered, "resubscribed");
                    self.settle(&channel, since.as_ref(), reply);
                    if self.presence().is_watched(&channel) {
                        tokio::spawn(
                            Arc::clone(&self)
                                .rewatch(live.clone(), channel.clone())
                                .in_current_span(),
                        );
                    }
                }
                Err(RequestError::Remote(err)) => {
                    tracing::warn!(target: "sente_lite", channel = %channel, code = %err.code, message = %err.message, "the server refused a restored subscription");
                    lock(&self.subscriptions).remove(&channel);
                }
                // The connection is gone already: the next one restores it again.
                Err(RequestError::Closed) => {}
                Err(err) => {
                    tracing::warn!(target: "sente_lite", channel = %channel, error = %err, "restoring a subscription got no answer");
                }
            }
            drop(unanswered);
            if matches!(result, Err(RequestError::Closed)) {
                continue;
            }
            if let Some(callback) = &self.settings.on_resubscribe {
                callback(&channel, &result);
            }
        }
    }
}

/// Moves `held` to `seen` when `seen` is further: a larger offset in the same
/// epoch, or any position in another epoch (the channel's history was lost,
/// and what the server reports now is what counts). A client keeps the
/// largest position it has seen: publications may arrive before the answer
/// to their subscription, which then reports a smaller one.
fn advance(held: &mut Option<StreamPosition>, seen: &StreamPosition) {
    match held {
        Some(position) if position.epoch == seen.epoch => {
            position.offset = position.offset.max(seen.offset);
        }
        _ => *held = Some(seen.clone()),
    }
}

/// Sends the control frame that `frame` builds with a request id, on `ctx`,
/// and waits for its reply until `deadline` (a timeout is reported as `total`).
pub(crate) async fn ask<R: DeserializeOwned + Send + 'static>(
    ctx: &Ctx,
    frame: impl FnOnce(RequestId) -> Control,
    deadline: Instant,
    total: Duration,
) -> Result<R, RequestError> {
    let (guard, reply) = ctx.pending().register::<R>()?;
    ctx.send_message(ctx.codec().encode_control(&frame(guard.req_id())))?;
    let left = deadline.saturating_duration_since(Instant::now());
    pending::wait_reply(guard, reply, left)
        .await
        .map_err(|e| match e {
            RequestError::Timeout(_) => RequestError::Timeout(total),
            other => other,
        })
}

/// What a client connection's [`Ctx::subscribe`] goes through: the client's
/// subscriptions. Weak, so that contexts kept by handlers do not keep a
/// stopped client alive.
pub(crate) struct ClientHub(pub(crate) Weak<Shared>);

impl Hub for ClientHub {
    fn subscribe(&self, _ctx: &Ctx, channel: String) -> HubFuture<SubscribeReply> {
        let shared = self.0.upgrade();
        Box::pin(async move {
            match shared {
                Some(shared) => {
                    let timeout = shared.settings.request_timeout;
                    shared.subscribe(channel, timeout).await
                }
                None => Err(RequestError::Closed),
            }
        })
    }

    fn unsubscribe(&self, _ctx: &Ctx, channel: String) -> HubFuture<()> {
        let shared = self.0.upgrade();
        Box::pin(async move {
            match shared {
                Some(shared) => {
                    let timeout = shared.settings.request_timeout;
                    shared.unsubscribe(channel, timeout).await
                }
                None => Err(RequestError::Closed),
            }
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The client's side of a connection: publications go to the router (their
/// position is kept, also while their subscription's answer is on its way),
/// presence diffs to the watched channels, the server's close reason sets a
/// floor under the next reconnect delay, and frames only a client sends are
/// refused.
pub(crate) struct ClientSide {
    shared: Arc<Shared>,
    /// From the server's `sl/close`: wait at least this long before reconnecting.
    pub(crate) reconnect_floor: Option<Duration>,
    warned_unrouted: bool,
}

impl ClientSide {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            reconnect_floor: None,
            warned_unrouted: false,
        }
    }
}

impl ClientSide {
    /// A publication neither a typed subscription nor a handler took. Not the
    /// server's fault, and not a reason to tell it: counted and logged.
    fn unhandled(&mut self, ctx: &Ctx, channel: &str, event: &EventRef<'_>, err: &ProtocolError) {
        self.shared.counters.protocol_error(err);
        if std::mem::replace(&mut self.warned_unrouted, true) {
            tracing::debug!(target: "sente_lite", conn_id = %ctx.conn_id(), channel = %channel, event = %event, error = %err, "publication not handled");
        } else {
            tracing::warn!(target: "sente_lite", conn_id = %ctx.conn_id(), channel = %channel, event = %event, error = %err, "publication not handled (further ones are logged at debug level)");
        }
    }
}

impl Side for ClientSide {
    fn control(
        &mut self,
        ctx: &Ctx,
        control: Control,
    ) -> Result<Option<DispatchFuture>, ProtocolError> {
        let frame = match control {
            Control::PresenceDiff { channel, diff } => {
                self.shared.presence().diff(&channel, diff);
                return Ok(None);
            }
            Control::Resubscribe { channel } => {
                self.shared.resubscribe_asked(ctx, channel);
                return Ok(None);
            }
            Control::Handshake(_) => "`sl/handshake` after the first frame",
            Control::Subscribe { .. } => "`sl/sub`",
            Control::Unsubscribe { .. } => "`sl/unsub`",
            Control::Presence { .. } => "`sl/presence`",
            _ => "this control frame",
        };
        Err(ProtocolError::BadFrame {
            encoding: ctx.codec().name(),
            detail: format!("a client does not accept {frame}"),
        })
    }

    fn publication(
        &mut self,
        ctx: &Ctx,
        routes: &RouteTable,
        channel: Cow<'_, str>,
        event: EventRef<'_>,
        position: Option<StreamPosition>,
        payload: Payload<'_>,
    ) -> Result<Option<DispatchFuture>, ProtocolError> {
        if let Some(position) = &position {
            self.shared.note_position(&channel, position);
        }
        // A channel joined with its type: its subscriptions take it, not the router.
        match self.shared.deliver_joined(&channel, &event, payload) {
            None => {}
            Some(Ok(true)) => return Ok(None),
            Some(Ok(false)) => {
                let err = ProtocolError::UnknownEvent {
                    event: event.to_string(),
                };
                self.unhandled(ctx, &channel, &event, &err);
                return Ok(None);
            }
            Some(Err(err)) => {
                self.unhandled(ctx, &channel, &event, &err);
                return Ok(None);
            }
        }
        match routes.dispatch(ctx, &event, payload, None) {
            Ok(task) => Ok(Some(task)),
            Err(err) => {
                self.unhandled(ctx, &channel, &event, &err);
                Ok(None)
            }
        }
    }

    fn close_reason(&mut self, reason: CloseReason) {
        tracing::info!(
            target: "sente_lite",
            code = %reason.code,
            message = %reason.message,
            reconnect_after_ms = reason.reconnect_after_ms,
            "the server is closing the connection"
        );
        self.reconnect_floor = reason
            .reconnect_after_ms
            .map(|ms| Duration::from_millis(u64::from(ms)));
        *lock(&self.shared.last_close) = Some(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: &str, offset: u64) -> StreamPosition {
        StreamPosition {
            epoch: epoch.into(),
            offset,
        }
    }

    #[test]
    fn the_largest_position_of_an_epoch_is_kept() {
        let mut held = None;
        advance(&mut held, &at("e1", 7));
        assert_eq!(held, Some(at("e1", 7)));
        // Publications 8 and 9 arrived before the subscribe's answer, which says 7.
        advance(&mut held, &at("e1", 8));
        advance(&mut held, &at("e1", 9));
        advance(&mut held, &at("e1", 7));
        assert_eq!(held, Some(at("e1", 9)));
    }

    #[test]
    fn another_epoch_replaces_the_position() {
        let mut held = Some(at("e1", 42));
        // The server lost the channel: its new epoch starts lower.
        advance(&mut held, &at("e2", 3));
        assert_eq!(held, Some(at("e2", 3)));
        advance(&mut held, &at("e2", 4));
        assert_eq!(held, Some(at("e2", 4)));
    }
}
