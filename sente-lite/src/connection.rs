//! The connection engine shared by servers and clients: one task owns the socket,
//! drains the bounded outbound queue, reads and dispatches frames, answers pings,
//! watches for silence, and enforces the per-connection limits.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::Notify;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::codec::{EventRef, Payload};
use crate::protocol::{CloseReason, Control, ErrorReply, RequestId, StreamPosition, codes};
use crate::router::DispatchFuture;
use crate::stats::{Counters, add, bump};
use crate::{
    Codec, Ctx, Dispatched, Inbound, OutboundReceiver, Outcome, ProtocolError, RouteTable,
};

/// Close code sent when the peer stayed silent past the heartbeat timeout.
pub(crate) const CLOSE_HEARTBEAT_TIMEOUT: u16 = 4000;
/// Close code sent when the peer's outbound queue stayed full (slow consumer).
pub(crate) const CLOSE_SLOW_CONSUMER: u16 = 4001;

/// The per-connection limits and timings the engine enforces.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    /// Handlers (and control tasks) running at once; reading pauses at the bound.
    pub(crate) max_concurrent_handlers: usize,
    /// Send `sl/ping` this often (servers); `None` never pings (clients).
    pub(crate) ping_interval: Option<Duration>,
    /// Close (or, for a client, give up on) a peer silent for this long.
    pub(crate) silence_limit: Duration,
    /// Inbound data frames per second allowed (sustained), `None` for no limit.
    pub(crate) rate_per_sec: Option<u32>,
    /// Burst above the sustained rate.
    pub(crate) rate_burst: u32,
    /// Violations (bad frames, unknown events, rate limit) allowed in a burst
    /// before the connection is closed with 1008; one more is allowed every
    /// `violation_refill`.
    pub(crate) max_violations: u32,
    /// How fast the violation allowance comes back.
    pub(crate) violation_refill: Duration,
    /// Log a warning for inbound messages larger than this.
    pub(crate) warn_message_size: usize,
    /// How long a graceful close waits for running handlers.
    pub(crate) drain_timeout: Duration,
}

/// Why the engine stopped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ended {
    /// The peer closed (or the socket failed): `code` and `reason` of its close frame, if any.
    PeerClosed { code: Option<u16>, reason: String },
    /// We closed: our code and reason.
    WeClosed { code: u16, reason: String },
}

/// Asks a running engine to close gracefully.
#[derive(Debug, Default)]
pub(crate) struct CloseSignal {
    requested: AtomicBool,
    slow: AtomicBool,
    notify: Notify,
    slow_notify: Notify,
    reason: std::sync::Mutex<Option<CloseReason>>,
}

impl CloseSignal {
    /// Requests a graceful close with `reason` (sent as `sl/close`, then 1001).
    pub(crate) fn close(&self, reason: CloseReason) {
        *self
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
        self.requested.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Marks the connection as a slow consumer: the engine closes it with 4001.
    pub(crate) fn slow_consumer(&self) {
        if !self.slow.swap(true, Ordering::AcqRel) {
            self.slow_notify.notify_one();
        }
    }

    /// Resolves once the connection is marked a slow consumer.
    async fn slow(&self) {
        while !self.slow.load(Ordering::Acquire) {
            self.slow_notify.notified().await;
        }
    }

    fn take_reason(&self) -> Option<CloseReason> {
        self.reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// What differs between the server's and the client's side of a connection.
pub(crate) trait Side: Send {
    /// A control frame other than ping/pong/error/close. Returns a task whose
    /// result (a frame to send, if any) the engine awaits like a handler's, or an
    /// error when this side does not accept the frame.
    fn control(
        &mut self,
        ctx: &Ctx,
        control: Control,
    ) -> Result<Option<DispatchFuture>, ProtocolError>;

    /// A publication on a channel.
    fn publication(
        &mut self,
        ctx: &Ctx,
        routes: &RouteTable,
        channel: Cow<'_, str>,
        event: EventRef<'_>,
        position: Option<StreamPosition>,
        payload: Payload<'_>,
    ) -> Result<Option<DispatchFuture>, ProtocolError>;

    /// The peer's `sl/close` reason arrived.
    fn close_reason(&mut self, _reason: CloseReason) {}
}

struct Bucket {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    fn new(capacity: u32, per_sec: f64) -> Self {
        Self {
            capacity: f64::from(capacity),
            tokens: f64::from(capacity),
            per_sec,
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn close_frame(code: u16, reason: &str) -> Message {
    // A close reason is at most 123 bytes; cut at a char boundary.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].to_owned().into(),
    }))
}

/// Runs one connection until it closes. The `first` frames (a handshake, restored
/// subscriptions) go out before anything else.
///
/// The `queue` is taken by value or borrowed (`&mut`): a client lends its one
/// queue to each connection in turn, so what is queued survives a reconnect.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<S, Q>(
    mut ws: S,
    ctx: Ctx,
    routes: RouteTable,
    mut queue: Q,
    side: &mut dyn Side,
    config: &EngineConfig,
    counters: &Counters,
    signal: &CloseSignal,
    first: Vec<Message>,
) -> Ended
where
    S: Stream<Item = Result<Message, tungstenite::Error>>
        + Sink<Message, Error = tungstenite::Error>
        + Unpin,
    Q: std::borrow::BorrowMut<OutboundReceiver>,
{
    let queue: &mut OutboundReceiver = queue.borrow_mut();
    let codec = ctx.codec();
    let mut tasks: FuturesUnordered<DispatchFuture> = FuturesUnordered::new();
    let mut last_heard = Instant::now();
    let mut ping_seq: u64 = 0;
    // A pinging side ticks once per ping; a listening side checks often enough
    // to notice silence within a quarter of the limit.
    let tick_every = config
        .ping_interval
        .unwrap_or(config.silence_limit / 4)
        .max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + tick_every, tick_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rate = config
        .rate_per_sec
        .map(|r| Bucket::new(config.rate_burst.max(r), f64::from(r)));
    let mut violations = Bucket::new(
        config.max_violations.max(1),
        1.0 / config.violation_refill.as_secs_f64().max(0.001),
    );
    let mut rate_told = Instant::now() - Duration::from_secs(2);

    // The two signals are waited on across every round of the loop below, so
    // each registers with its `Notify` once, not once per round.
    let mut slow = std::pin::pin!(signal.slow());
    let mut close_requested = std::pin::pin!(signal.notify.notified());

    // Every write races the slow-consumer signal: a peer that stops reading
    // blocks the write, and only dropping the connection frees it.
    macro_rules! io {
        ($op:expr) => {{
            tokio::select! {
                biased;
                () = &mut slow => {
                    bump(&counters.slow_consumers);
                    return Ended::WeClosed { code: CLOSE_SLOW_CONSUMER, reason: "slow consumer: the outbound queue stayed full".into() };
                }
                result = $op => if result.is_err() {
                    return Ended::PeerClosed { code: None, reason: "write failed".into() };
                },
            }
        }};
    }
    macro_rules! send {
        ($msg:expr) => {{
            let msg: Message = $msg;
            add(&counters.bytes_out, msg.len());
            bump(&counters.messages_out);
            io!(ws.send(msg));
        }};
    }
    // Closing is rare: its futures live in their own allocation, not in every
    // idle connection's task.
    macro_rules! close {
        ($code:expr, $reason:expr) => {{
            let code: u16 = $code;
            let reason: String = $reason;
            Box::pin(close_with(&mut ws, code, &reason)).await;
            return Ended::WeClosed { code, reason };
        }};
    }

    for message in first {
        send!(message);
    }

    loop {
        tokio::select! {
            biased;

            () = &mut slow => {
                bump(&counters.slow_consumers);
                close!(CLOSE_SLOW_CONSUMER, "slow consumer: the outbound queue stayed full".into());
            }

            () = &mut close_requested => {
                close_requested.set(signal.notify.notified());
                if signal.requested.load(Ordering::Acquire) {
                    let reason = Box::pin(drain(&mut ws, &mut tasks, queue, codec, signal, config.drain_timeout)).await;
                    close!(1001, reason);
                }
            }

            Some(message) = queue.recv() => {
                add(&counters.bytes_out, message.len());
                bump(&counters.messages_out);
                io!(ws.feed(message));
                // Batch what is already queued into one flush.
                for _ in 0..64 {
                    let Some(message) = queue.try_recv() else { break };
                    add(&counters.bytes_out, message.len());
                    bump(&counters.messages_out);
                    io!(ws.feed(message));
                }
                io!(ws.flush());
            }

            Some(done) = tasks.next(), if !tasks.is_empty() => {
                let Dispatched { message, outcome, timing } = done;
                if let Some(timing) = &timing {
                    counters.events.handled(timing);
                    tracing::trace!(
                        target: "sente_lite",
                        event = timing.event,
                        elapsed_us = u64::try_from(timing.elapsed.as_micros()).unwrap_or(u64::MAX),
                        ?outcome,
                        "handled"
                    );
                }
                match outcome {
                    Outcome::Ok => {}
                    // A request answered `deadline-exceeded`, on arrival or
                    // when its handler ran past the deadline.
                    Outcome::Error(code) if code == codes::DEADLINE_EXCEEDED => {
                        bump(&counters.deadlines_exceeded);
                    }
                    Outcome::Error(_) => bump(&counters.handler_errors),
                    Outcome::Panicked => bump(&counters.handler_panics),
                }
                if let Some(message) = message {
                    send!(message);
                }
            }

            _ = ticker.tick() => {
                let now = Instant::now();
                if now.saturating_duration_since(last_heard) > config.silence_limit {
                    bump(&counters.heartbeat_timeouts);
                    close!(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout: the peer stayed silent".into());
                }
                if config.ping_interval.is_some() {
                    ping_seq += 1;
                    send!(codec.encode_control(&Control::Ping(ping_seq)));
                }
            }

            frame = ws.next(), if tasks.len() < config.max_concurrent_handlers => {
                let message = match frame {
                    None => return Ended::PeerClosed { code: None, reason: "connection lost".into() },
                    Some(Err(tungstenite::Error::Capacity(err))) => {
                        bump(&counters.too_large);
                        let _ = ws.send(codec.encode_control(&Control::Error(ErrorReply::new(codes::TOO_LARGE, err.to_string())))).await;
                        close!(1009, format!("message too big: {err}"));
                    }
                    Some(Err(err)) => return Ended::PeerClosed { code: None, reason: err.to_string() },
                    Some(Ok(message)) => message,
                };
                last_heard = Instant::now();
                match &message {
                    Message::Close(frame) => {
                        let (code, reason) = frame
                            .as_ref()
                            .map(|f| (Some(u16::from(f.code)), f.reason.to_string()))
                            .unwrap_or((None, String::new()));
                        let _ = ws.close().await;
                        return Ended::PeerClosed { code, reason };
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                    Message::Text(_) | Message::Binary(_) => {}
                }
                bump(&counters.messages_in);
                add(&counters.bytes_in, message.len());
                if message.len() > config.warn_message_size {
                    tracing::warn!(target: "sente_lite", conn_id = %ctx.conn_id(), size = message.len(), "large inbound message");
                }
                if let Some(rate) = &mut rate
                    && !rate.take(last_heard)
                {
                    bump(&counters.rate_limited);
                    if last_heard.saturating_duration_since(rate_told) >= Duration::from_secs(1) {
                        rate_told = last_heard;
                        send!(codec.encode_control(&Control::Error(ErrorReply::new(
                            codes::RATE_LIMITED,
                            "too many messages: this one was dropped",
                        ))));
                    }
                    if !violations.take(last_heard) {
                        bump(&counters.policy_closes);
                        close!(1008, "too many protocol violations".into());
                    }
                    continue;
                }
                match handle_frame(&message, &ctx, &routes, side, counters) {
                    Ok(Some(task)) => tasks.push(task),
                    Ok(None) => {}
                    Err((err, req_id)) => {
                        counters.protocol_error(&err);
                        tracing::debug!(target: "sente_lite", conn_id = %ctx.conn_id(), error = %err, "rejected inbound frame");
                        send!(RouteTable::error_message(codec, req_id, &err));
                        if !violations.take(last_heard) {
                            bump(&counters.policy_closes);
                            close!(1008, "too many protocol violations".into());
                        }
                    }
                }
            }
        }
    }
}

/// Sends a close frame, then waits (bounded) for the peer's.
async fn close_with<S>(ws: &mut S, code: u16, reason: &str)
where
    S: Stream<Item = Result<Message, tungstenite::Error>>
        + Sink<Message, Error = tungstenite::Error>
        + Unpin,
{
    let _ = ws.send(close_frame(code, reason)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await;
}

/// A graceful close: lets running handlers finish (bounded), sends what they
/// and the queue hold, then `sl/close`. Returns the close reason's message.
async fn drain<S>(
    ws: &mut S,
    tasks: &mut FuturesUnordered<DispatchFuture>,
    queue: &mut OutboundReceiver,
    codec: Codec,
    signal: &CloseSignal,
    drain_timeout: Duration,
) -> String
where
    S: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let _ = tokio::time::timeout(drain_timeout, async {
        while let Some(done) = tasks.next().await {
            if let Some(message) = done.message {
                let _ = ws.feed(message).await;
            }
        }
    })
    .await;
    while let Some(message) = queue.try_recv() {
        let _ = ws.feed(message).await;
    }
    let reason = signal.take_reason().unwrap_or_else(|| CloseReason {
        code: Cow::Borrowed("going-away"),
        message: "closing".into(),
        reconnect_after_ms: None,
    });
    let _ = ws
        .feed(codec.encode_control(&Control::Close(reason.clone())))
        .await;
    reason.message
}

/// Runs a handler inside a `handler` span (event id, request id), so that what
/// the handler logs carries them; no wrapping at all when the span is disabled.
fn traced(
    running: DispatchFuture,
    event: &'static str,
    req_id: Option<RequestId>,
    size: usize,
) -> DispatchFuture {
    use tracing::Instrument as _;
    let span = tracing::debug_span!(target: "sente_lite", "handler", event, req_id, size);
    if span.is_disabled() {
        running
    } else {
        Box::pin(running.instrument(span))
    }
}

/// Wraps a started handler: its span, and for a request its count and deadline
/// (`deadline_ms` is never 0 here: such a request is answered without running).
fn started(
    running: DispatchFuture,
    ctx: &Ctx,
    counters: &Counters,
    event: &'static str,
    req_id: Option<RequestId>,
    deadline_ms: Option<u32>,
    size: usize,
) -> DispatchFuture {
    let running = traced(running, event, req_id, size);
    let Some(req_id) = req_id else {
        return running;
    };
    bump(&counters.requests_handled);
    let Some(ms) = deadline_ms else {
        return running;
    };
    let codec = ctx.codec();
    Box::pin(async move {
        match tokio::time::timeout(Duration::from_millis(u64::from(ms)), running).await {
            Ok(done) => done,
            Err(_) => {
                deadline_exceeded(codec, req_id, "the handler ran past the request's deadline")
            }
        }
    })
}

/// The `deadline-exceeded` answer to request `req_id`.
fn deadline_exceeded(codec: Codec, req_id: RequestId, why: &'static str) -> Dispatched {
    Dispatched {
        message: Some(
            codec.encode_error_reply(req_id, &ErrorReply::new(codes::DEADLINE_EXCEEDED, why)),
        ),
        outcome: Outcome::Error(codes::DEADLINE_EXCEEDED.into()),
        timing: None,
    }
}

/// Decodes one data frame and starts what it asks for.
fn handle_frame(
    message: &Message,
    ctx: &Ctx,
    routes: &RouteTable,
    side: &mut dyn Side,
    counters: &Counters,
) -> Result<Option<DispatchFuture>, (ProtocolError, Option<RequestId>)> {
    // Routed JSON events and requests decode in one pass; everything else, and
    // anything wrong with them, takes the general path below.
    if let Message::Text(text) = message
        && let Some(fast) = routes.dispatch_json(ctx, text.as_str())
    {
        counters.events.inbound(fast.id, message.len());
        return fast
            .started
            .map(|running| {
                Some(started(
                    running,
                    ctx,
                    counters,
                    fast.id,
                    fast.req_id,
                    fast.deadline_ms,
                    message.len(),
                ))
            })
            .map_err(|e| (e, fast.req_id));
    }
    let inbound = match Codec::decode(message) {
        Ok(inbound) => inbound,
        Err(err) => {
            counters.events.inbound("invalid", message.len());
            return Err((err, None));
        }
    };
    let label = match &inbound {
        Inbound::Event { event, .. } | Inbound::Request { event, .. } => {
            routes.route(event).map_or("unknown", |route| route.id)
        }
        Inbound::Reply { .. } => "sl/reply",
        Inbound::Publication { .. } => "sl/pub",
        Inbound::Control(_) => "sl/control",
    };
    counters.events.inbound(label, message.len());
    let size = message.len();
    let route = |event: EventRef<'_>, payload, req_id, deadline_ms| {
        routes
            .dispatch(ctx, &event, payload, req_id)
            .map(|running| {
                let running = started(running, ctx, counters, label, req_id, deadline_ms, size);
                Some(running)
            })
            .map_err(|e| (e, req_id))
    };
    match inbound {
        Inbound::Event { event, payload } => route(event, payload, None, None),
        Inbound::Request {
            event,
            req_id,
            deadline_ms,
            payload,
        } => {
            if deadline_ms == Some(0) {
                let answer = deadline_exceeded(
                    ctx.codec(),
                    req_id,
                    "the request's deadline had passed on arrival",
                );
                return Ok(Some(Box::pin(std::future::ready(answer))));
            }
            route(event, payload, Some(req_id), deadline_ms)
        }
        Inbound::Reply { req_id, result } => {
            if !ctx.pending().complete(req_id, result) {
                bump(&counters.late_replies);
            }
            Ok(None)
        }
        Inbound::Publication {
            channel,
            event,
            position,
            payload,
        } => side
            .publication(ctx, routes, channel, event, position, payload)
            .map_err(|e| (e, None)),
        Inbound::Control(Control::Ping(n)) => {
            let pong = ctx.codec().encode_control(&Control::Pong(n));
            Ok(Some(Box::pin(async move {
                Dispatched {
                    message: Some(pong),
                    outcome: Outcome::Ok,
                    timing: None,
                }
            })))
        }
        Inbound::Control(Control::Pong(_)) => Ok(None),
        Inbound::Control(Control::Error(error)) => {
            tracing::debug!(target: "sente_lite", conn_id = %ctx.conn_id(), code = %error.code, message = %error.message, "the peer reported an error");
            Ok(None)
        }
        Inbound::Control(Control::Close(reason)) => {
            side.close_reason(reason);
            Ok(None)
        }
        Inbound::Control(control) => side.control(ctx, control).map_err(|e| (e, None)),
    }
}
