//! The connection engine shared by servers and clients: one task owns the socket,
//! writes what the bounded outbound queue and the engine itself have to send,
//! reads and dispatches frames, answers pings, watches for silence and for
//! writes that do not progress, and enforces the per-connection limits.
//!
//! Reading, writing and the timers run side by side: a write the peer does not
//! take never stops the engine from reading its frames or noticing its silence,
//! and a backlog of the engine's own (every handler slot taken) never stops it
//! from answering pings and reading the peer's pongs until the waiting line is
//! full. While the engine does not read, the peer's silence is not counted.

mod close;
mod direct;
mod frame;
mod line;
mod outgoing;
mod park;
mod writer;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;
use tokio::time::Instant;
use tungstenite::Message;

use crate::bucket::TokenBucket;
use crate::codec::compressed::{self, InflateError};
use crate::codec::{EventRef, Payload};
use crate::protocol::{CloseReason, Control, ErrorReply, StreamPosition, codes};
use crate::router::DispatchFuture;
use crate::stats::{Counters, add, bump};
use crate::{Codec, Ctx, Dispatched, OutboundReceiver, Outcome, ProtocolError, RouteTable};

pub(crate) use close::Transport;
use close::{CLOSE_LINGER, acknowledge_close, close_with};
use frame::{Action, handle_frame};
use line::Line;
pub(crate) use park::{Parkable, ReadReady};
use writer::{Pacer, Writer};

/// Close code sent when the peer stayed silent past the heartbeat timeout.
pub(crate) const CLOSE_HEARTBEAT_TIMEOUT: u16 = 4000;
/// Close code sent when the peer read too slowly: its outbound queue filled, or
/// a write to it made no progress for the silence limit (slow consumer).
pub(crate) const CLOSE_SLOW_CONSUMER: u16 = 4001;
/// Close code for a frame that breaks the WebSocket protocol (RFC 6455).
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a text message that is not UTF-8.
const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code for too many protocol violations.
const CLOSE_POLICY: u16 = 1008;
/// Close code for a message over the size limit.
const CLOSE_TOO_BIG: u16 = 1009;
/// Runs what was started or waiting when the connection ended, for
/// `drain_timeout` at most; their answers have nowhere to go.
async fn finish_handlers(
    tasks: &mut FuturesUnordered<DispatchFuture>,
    line: &mut Line,
    config: &EngineConfig,
) {
    let all = async {
        loop {
            while tasks.len() < config.max_concurrent_handlers
                && let Some(job) = line.pop()
            {
                tasks.push(job.running);
            }
            if tasks.next().await.is_none() && line.is_empty() {
                return;
            }
        }
    };
    if tokio::time::timeout(config.drain_timeout, all)
        .await
        .is_err()
    {
        tracing::warn!(target: "sente_lite", "handlers still running when the connection ended were dropped");
    }
}

/// When the handlers of frames already read run to completion as the
/// connection ends, instead of being dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// At every end: a client's, so that a publication it has read (and
    /// whose position it holds) is handled.
    Always,
    /// When the peer ends the connection (its close frame, or the connection
    /// lost): a server's, so that an event sent just before a close is
    /// handled. A close this side decides (a violation, a slow consumer,
    /// silence) gives them up; a drain has waited for them already.
    WhenThePeerEnds,
}

/// Close code of a graceful close (drain).
const CLOSE_GOING_AWAY: u16 = 1001;

/// The per-connection limits and timings the engine enforces.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    /// Handlers (and control tasks) running at once; what arrives past the
    /// bound waits in line.
    pub(crate) max_concurrent_handlers: usize,
    /// Frames waiting for a handler slot; reading pauses at the bound.
    pub(crate) max_waiting: usize,
    /// Bytes (on the wire) of the frames waiting; reading pauses at the bound.
    pub(crate) max_waiting_bytes: usize,
    /// Send `sl/ping` this often (servers); `None` never pings (clients).
    pub(crate) ping_interval: Option<Duration>,
    /// Close (or, for a client, give up on) a peer silent for this long, or
    /// one that took none of a write for this long.
    pub(crate) silence_limit: Duration,
    /// Inbound data frames per second allowed (sustained), `None` for no limit.
    pub(crate) rate_per_sec: Option<u32>,
    /// Burst above the sustained rate.
    pub(crate) rate_burst: u32,
    /// Violations (bad frames, events of the wrong kind, bad payloads, rate limit) allowed in a burst
    /// before the connection is closed with 1008; one more is allowed every
    /// `violation_refill`.
    pub(crate) max_violations: u32,
    /// How fast the violation allowance comes back.
    pub(crate) violation_refill: Duration,
    /// Log a warning for inbound messages larger than this.
    pub(crate) warn_message_size: usize,
    /// How long a graceful close waits for running handlers.
    pub(crate) drain_timeout: Duration,
    /// When the handlers running or waiting as the connection ends are run
    /// to completion (for `drain_timeout` at most) instead of dropped.
    pub(crate) finish_handlers: Finish,
    /// The rate the peer reads at (data frames per second, burst), which this
    /// side keeps to: a client paces what it sends by the server's announced
    /// limits. `None` sends as fast as the socket takes.
    pub(crate) send_rate: Option<(u32, u32)>,
    /// Compressed frames (extension `compression`) are read, inflated to at
    /// most this many bytes; `None` refuses them (an unknown frame kind).
    pub(crate) inflate_up_to: Option<usize>,
    /// Data frames of at least `min_bytes` are sent compressed at `level`,
    /// once the peer takes compressed frames ([`Ctx::peer_inflates`]).
    pub(crate) compress: Option<Compress>,
    /// A connection that has read nothing for this long, with nothing in
    /// flight, lets go of its WebSocket buffers (a [`Parkable`] transport);
    /// `None` never checks.
    pub(crate) park_after: Option<Duration>,
}

/// When and how hard this side compresses what it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compress {
    /// The smallest frame compressed, in bytes.
    pub(crate) min_bytes: usize,
    /// The DEFLATE level, 0 (store) to 9 (smallest).
    pub(crate) level: u32,
}

/// Why the engine stopped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ended {
    /// The peer closed (or the socket failed): `code` and `reason` of its close frame, if any.
    PeerClosed { code: Option<u16>, reason: String },
    /// We closed: our code and reason.
    WeClosed { code: u16, reason: String },
}

/// A decision to close, made in the loop and carried out after it.
struct Closing {
    code: u16,
    reason: String,
    /// Whether the WebSocket layer can still read the peer's frames.
    readable: bool,
    /// Whether what waits to be written is given up, so that the close frame
    /// reaches a peer that reads too slowly as early as it can.
    abandon_writes: bool,
}

impl Closing {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            readable: true,
            abandon_writes: false,
        }
    }

    /// A slow consumer's close: what it did not take is given up.
    fn slow_consumer(reason: &str) -> Self {
        Self {
            abandon_writes: true,
            ..Self::new(CLOSE_SLOW_CONSUMER, reason)
        }
    }

    fn unreadable(code: u16, reason: impl Into<String>) -> Self {
        Self {
            readable: false,
            ..Self::new(code, reason)
        }
    }
}

/// A graceful close in progress.
struct Drain {
    /// Running and waiting handlers are given up at this instant.
    deadline: Instant,
    /// The `sl/close` frame is queued; its message.
    close_queued: Option<String>,
}

/// Asks a running engine to close gracefully.
///
/// The engine is its one waiter: a flag for each request and one waker,
/// which the engine's loop registers every round at the cost of a compare
/// (a `Notify` would take its lock on every poll).
#[derive(Debug, Default)]
pub(crate) struct CloseSignal {
    requested: AtomicBool,
    slow: AtomicBool,
    engine: AtomicWaker,
    reason: std::sync::Mutex<Option<CloseReason>>,
}

/// What a [`CloseSignal`] asks of the engine.
enum Signaled {
    /// The connection is a slow consumer: close it with 4001.
    Slow,
    /// Close gracefully.
    Close,
}

impl CloseSignal {
    /// Requests a graceful close with `reason` (sent as `sl/close`, then 1001).
    pub(crate) fn close(&self, reason: CloseReason) {
        *self
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
        self.requested.store(true, Ordering::Release);
        self.engine.wake();
    }

    /// Marks the connection as a slow consumer: the engine closes it with 4001.
    pub(crate) fn slow_consumer(&self) {
        if !self.slow.swap(true, Ordering::AcqRel) {
            self.engine.wake();
        }
    }

    /// Ready with what is asked, the slow consumer first; a graceful close
    /// only while `closing` is not yet under way.
    fn poll_signaled(&self, draining: bool, cx: &mut Context<'_>) -> Poll<Signaled> {
        self.engine.register(cx.waker());
        if self.slow.load(Ordering::Acquire) {
            Poll::Ready(Signaled::Slow)
        } else if !draining && self.requested.load(Ordering::Acquire) {
            Poll::Ready(Signaled::Close)
        } else {
            Poll::Pending
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

/// Slack added to timer deadlines so a check made at the deadline sees it passed.
const SLACK: Duration = Duration::from_millis(1);
/// A connection logs its large inbound messages at most this often.
const LARGE_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long the timer sleeps when nothing is due.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// What the socket did: a write finished (or failed), a frame arrived, or both.
struct IoReady {
    wrote: Option<Result<(), tungstenite::Error>>,
    read: Option<Option<Result<Message, tungstenite::Error>>>,
}

/// How many writes one poll of the socket may finish before the other
/// branches get their turn (a peer that takes everything at once must not
/// starve them).
const WRITES_PER_POLL: usize = 4;

/// Drives the socket: writes what is due (the write in progress, then the next
/// one from the engine's own frames and the queue, as long as the pace allows),
/// and, when `reading`, reads. Ready when a frame arrived, a write failed, or a
/// write finished and `report_writes` (the loop waits on the writer: own frames
/// over their bound, or the last frame of a drain).
fn poll_io<S: Transport>(
    ws: &mut S,
    writer: &mut Writer,
    queue: &mut OutboundReceiver,
    counters: &Counters,
    reading: bool,
    report_writes: bool,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<IoReady> {
    use std::task::Poll;
    let mut wrote = None;
    let mut wrote_any = false;
    let mut more = true;
    for _ in 0..WRITES_PER_POLL {
        if !writer.busy() && !writer.refill(queue, counters) {
            // Nothing due: wait for the queue, when another frame may go.
            if writer.sealed() {
                more = false;
                break;
            }
            if !writer.may_send() {
                // Held back by the pace: the loop arms the timer for it. It
                // goes round once to do so when a message waits (queued now,
                // or later: the queue wakes this task), not on every poll.
                if wrote_any || (queue.poll_queued(cx).is_ready() && writer.hold_unreported()) {
                    wrote = Some(Ok(()));
                }
                more = false;
                break;
            }
            match queue.poll_recv(cx) {
                Poll::Ready(Some(message)) => {
                    writer.start_with(message, counters);
                    writer.refill(queue, counters);
                }
                Poll::Ready(None) | Poll::Pending => {
                    more = false;
                    break;
                }
            }
        }
        match writer.poll_write(ws, cx) {
            Poll::Ready(Ok(())) => {
                wrote_any = true;
                if report_writes {
                    wrote = Some(Ok(()));
                }
            }
            Poll::Ready(Err(err)) => {
                wrote = Some(Err(err));
                more = false;
                break;
            }
            Poll::Pending => {
                more = false;
                break;
            }
        }
    }
    if more {
        // Still more to write: after the other branches had their turn.
        cx.waker().wake_by_ref();
    } else {
        // A WebSocket made to write is let go once its writes are out.
        park(ws, writer, queue, counters, false, cx);
    }
    let read = match reading {
        true => match ws.poll_next_unpin(cx) {
            Poll::Ready(frame) => Some(frame),
            Poll::Pending => None,
        },
        false => None,
    };
    if wrote.is_none() && read.is_none() {
        Poll::Pending
    } else {
        Poll::Ready(IoReady { wrote, read })
    }
}

/// What a failed read means: a close of ours that says why (the peer broke the
/// WebSocket protocol, sent invalid UTF-8 or too large a message), or the
/// connection is simply gone.
fn read_failure(
    err: tungstenite::Error,
    codec: Codec,
    writer: &mut Writer,
    counters: &Counters,
) -> Result<Closing, Ended> {
    use tungstenite::error::ProtocolError as WsProtocol;
    match err {
        tungstenite::Error::Capacity(err) => {
            bump(&counters.too_large);
            writer.push_now(codec.encode_control(&Control::Error(ErrorReply::new(
                codes::TOO_LARGE,
                err.to_string(),
            ))));
            Ok(Closing::unreadable(
                CLOSE_TOO_BIG,
                format!("message too big: {err}"),
            ))
        }
        tungstenite::Error::Protocol(WsProtocol::ResetWithoutClosingHandshake) => {
            Err(Ended::PeerClosed {
                code: None,
                reason: "connection lost".into(),
            })
        }
        tungstenite::Error::Protocol(err) => {
            bump(&counters.protocol_closes);
            Ok(Closing::unreadable(
                CLOSE_PROTOCOL_ERROR,
                format!("WebSocket protocol error: {err}"),
            ))
        }
        tungstenite::Error::Utf8(_) => {
            bump(&counters.protocol_closes);
            Ok(Closing::unreadable(
                CLOSE_INVALID_DATA,
                "a text message is not valid UTF-8",
            ))
        }
        other => Err(Ended::PeerClosed {
            code: None,
            reason: other.to_string(),
        }),
    }
}

/// Lets go of the WebSocket layer's buffers and the writer's queues when
/// nothing waits to be written (see [`Transport::park`]); counts it. A
/// connection that is parked already (its text and binary frames are written
/// without a WebSocket) lets go of the writer's queues all the same, so an
/// idle connection holds none after its writes.
fn park<S: Transport>(
    ws: &mut S,
    writer: &mut Writer,
    queue: &OutboundReceiver,
    counters: &Counters,
    reading: bool,
    cx: &mut Context<'_>,
) -> bool {
    if writer.busy() || !writer.own_is_empty() || !queue.is_empty() {
        return false;
    }
    if ws.parked() {
        writer.shrink();
        return true;
    }
    let parked = ws.park(cx, reading);
    if parked {
        writer.shrink();
        bump(&counters.parks);
    }
    parked
}

/// Counts a handler's end and queues its frame, if any (after what the
/// queue holds now: events the handler sent go first).
fn finished(done: Dispatched, counters: &Counters, writer: &mut Writer, queue: &OutboundReceiver) {
    let Dispatched {
        message,
        outcome,
        timing,
    } = done;
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
        // A request answered `deadline-exceeded`, on arrival or when its
        // handler ran past the deadline.
        Outcome::Error(code) if code == codes::DEADLINE_EXCEEDED => {
            bump(&counters.deadlines_exceeded);
        }
        Outcome::Error(_) => bump(&counters.handler_errors),
        Outcome::Panicked => bump(&counters.handler_panics),
        // Counted when the peer's `sl/cancel` arrived.
        Outcome::Cancelled => {}
    }
    if let Some(message) = message {
        writer.push_after_queue(queue, message);
    }
}

/// Runs one connection until it closes. The `first` frames (a handshake, restored
/// subscriptions) go out before anything else.
///
/// The `queue` is taken by value or borrowed (`&mut`): a client lends its one
/// queue to each connection in turn, so what is queued survives a reconnect.
#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
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
    S: Transport,
    Q: std::borrow::BorrowMut<OutboundReceiver>,
{
    let queue: &mut OutboundReceiver = queue.borrow_mut();
    let codec = ctx.codec();
    let pacer = config
        .send_rate
        .map(|(per_sec, burst)| Pacer::new(per_sec, burst));
    let mut writer = Writer::new(first, pacer);
    let mut tasks: FuturesUnordered<DispatchFuture> = FuturesUnordered::new();
    let mut line = Line::default();
    let opened = Instant::now();
    let mut last_heard = opened;
    let mut reading = true;
    let mut ping_seq: u64 = 0;
    let mut next_ping = config.ping_interval.map(|every| opened + every);
    let mut rate = config
        .rate_per_sec
        .map(|r| TokenBucket::new(f64::from(config.rate_burst.max(r)), f64::from(r)));
    let mut violations = TokenBucket::new(
        f64::from(config.max_violations.max(1)),
        1.0 / config.violation_refill.as_secs_f64().max(0.001),
    );
    let mut rate_told: Option<Instant> = None;
    let mut large_logged: Option<Instant> = None;
    let mut large_unlogged: u64 = 0;
    let mut drain: Option<Drain> = None;
    // When to see whether the connection is idle enough to park.
    let mut park_check: Option<Instant> = None;

    // One timer for everything due later: the next ping, the silence and
    // write-stall checks, the deadlines of waiting requests, the drain. It is
    // moved earlier when something new is due sooner (rarely: a ping is always
    // due within the silence limit), and otherwise reset only when it fires.
    let mut timer_at = next_ping.unwrap_or(opened + config.silence_limit + SLACK);
    let mut timer = std::pin::pin!(crate::timers::sleep_until(timer_at));
    macro_rules! arm {
        ($at:expr) => {{
            let at: Instant = $at;
            if at < timer_at {
                timer.as_mut().reset(at);
                timer_at = at;
            }
        }};
    }

    let exit: Result<Closing, Ended> = loop {
        // The peer asked for compressed frames (it says so once, early).
        if let Some(compress) = config.compress
            && !writer.compressing()
            && ctx.peer_inflates()
        {
            writer.compress_with(compress);
        }
        // Start what waits, as handler slots free up.
        while tasks.len() < config.max_concurrent_handlers
            && let Some(job) = line.pop()
        {
            tasks.push(job.running);
        }

        if let Some(drain) = &mut drain {
            let now = Instant::now();
            if drain.close_queued.is_none()
                && ((tasks.is_empty() && line.is_empty()) || now >= drain.deadline)
            {
                // What still runs past the deadline is given up.
                tasks.clear();
                line.clear();
                let reason = signal.take_reason().unwrap_or_else(|| CloseReason {
                    code: Cow::Borrowed("going-away"),
                    message: "closing".into(),
                    reconnect_after_ms: None,
                });
                writer.push_last(queue, codec.encode_control(&Control::Close(reason.clone())));
                drain.close_queued = Some(reason.message);
                drain.deadline = now.max(drain.deadline) + CLOSE_LINGER;
                arm!(drain.deadline);
            }
            if let Some(message) = &drain.close_queued
                && !writer.busy()
                && writer.own_is_empty()
            {
                break Ok(Closing::new(CLOSE_GOING_AWAY, message.clone()));
            }
        }

        if let Some(since) = writer.busy_since() {
            arm!(since + config.silence_limit + SLACK);
        } else if config.send_rate.is_some()
            && !(writer.own_is_empty() && queue.is_empty())
            && let Some(at) = writer.paced_until()
        {
            // Frames wait for the pace the peer asked for.
            arm!(at);
        }

        if let Some(after) = config.park_after
            && park_check.is_none()
            && !ws.parked()
        {
            let at = Instant::now() + after;
            park_check = Some(at);
            arm!(at);
        }

        let can_read = drain.as_ref().is_none_or(|d| d.close_queued.is_none())
            && line.has_room(config.max_waiting, config.max_waiting_bytes)
            && writer.has_room();
        if can_read && !reading {
            // The time we did not read is not the peer's silence.
            last_heard = Instant::now();
            arm!(last_heard + config.silence_limit + SLACK);
        }
        reading = can_read;
        // The loop needs to hear of finished writes only when it waits on them.
        let report_writes =
            !writer.has_room() || drain.as_ref().is_some_and(|d| d.close_queued.is_some());
        let draining = drain.is_some();

        tokio::select! {
            biased;

            signaled = std::future::poll_fn(|cx| signal.poll_signaled(draining, cx)) => match signaled {
                Signaled::Slow => {
                    bump(&counters.slow_consumers);
                    break Ok(Closing::slow_consumer("slow consumer: the outbound queue filled"));
                }
                Signaled::Close => {
                    let deadline = Instant::now() + config.drain_timeout;
                    drain = Some(Drain { deadline, close_queued: None });
                    arm!(deadline);
                }
            },

            io = std::future::poll_fn(|cx| poll_io(&mut ws, &mut writer, queue, counters, reading, report_writes, cx)) => {
                if let Some(Err(_)) = io.wrote {
                    break Err(Ended::PeerClosed { code: None, reason: "write failed".into() });
                }
                let Some(frame) = io.read else { continue };
                let message = match frame {
                    None => break Err(Ended::PeerClosed { code: None, reason: "connection lost".into() }),
                    Some(Ok(message)) => message,
                    Some(Err(err)) => match read_failure(err, codec, &mut writer, counters) {
                        Ok(closing) => break Ok(closing),
                        Err(ended) => break Err(ended),
                    },
                };
                last_heard = Instant::now();
                match &message {
                    Message::Close(frame) => {
                        let (code, reason) = frame
                            .as_ref()
                            .map(|f| (Some(u16::from(f.code)), f.reason.to_string()))
                            .unwrap_or((None, String::new()));
                        Box::pin(acknowledge_close(&mut ws)).await;
                        break Err(Ended::PeerClosed { code, reason });
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                    Message::Text(_) | Message::Binary(_) => {}
                }
                bump(&counters.messages_in);
                add(&counters.bytes_in, message.len());
                if message.len() > config.warn_message_size {
                    // One line per connection every 10 s at most, with a count:
                    // a peer must not be able to flood the log.
                    large_unlogged += 1;
                    if large_logged.is_none_or(|at| last_heard.saturating_duration_since(at) >= LARGE_LOG_EVERY) {
                        large_logged = Some(last_heard);
                        tracing::warn!(target: "sente_lite", conn_id = %ctx.conn_id(), size = message.len(), count = large_unlogged, "large inbound messages");
                        large_unlogged = 0;
                    }
                }
                if let Some(rate) = &mut rate
                    && !rate.take(last_heard)
                {
                    bump(&counters.rate_limited);
                    // A request or subscription is told by its own answer, so
                    // its sender does not wait out its timeout; anything else
                    // by one `sl/error` a second at most.
                    if let Some(answer) = frame::rate_limited_answer(&message, codec) {
                        writer.push_now(answer);
                    } else if rate_told.is_none_or(|told| last_heard.saturating_duration_since(told) >= Duration::from_secs(1)) {
                        rate_told = Some(last_heard);
                        writer.push_now(codec.encode_control(&Control::Error(ErrorReply::new(
                            codes::RATE_LIMITED,
                            "too many messages: this one was dropped",
                        ))));
                    }
                    if !violations.take(last_heard) {
                        bump(&counters.policy_closes);
                        break Ok(Closing::new(CLOSE_POLICY, "too many protocol violations"));
                    }
                    continue;
                }
                // A compressed frame is read as the frame inside it.
                let inflated = match &config.inflate_up_to {
                    Some(max) if compressed::is_compressed(&message) => {
                        match compressed::inflate(&message, *max) {
                            Ok(inner) => {
                                bump(&counters.frames_inflated);
                                Ok(Some(inner))
                            }
                            Err(InflateError::TooLarge { max }) => {
                                bump(&counters.too_large);
                                writer.push_now(codec.encode_control(&Control::Error(ErrorReply::new(
                                    codes::TOO_LARGE,
                                    format!("a compressed frame inflates to more than {max} bytes"),
                                ))));
                                break Ok(Closing::new(CLOSE_TOO_BIG, "a compressed frame over the size limit"));
                            }
                            Err(InflateError::Bad(detail)) => Err((
                                ProtocolError::BadFrame { encoding: "postcard", detail },
                                None,
                            )),
                        }
                    }
                    _ => Ok(None),
                };
                let handled = match inflated {
                    Ok(inner) => handle_frame(inner.as_ref().unwrap_or(&message), last_heard, &ctx, &routes, side, counters, drain.is_some()),
                    Err(refused) => Err(refused),
                };
                match handled {
                    Ok(Action::Nothing) => {}
                    Ok(Action::Send(answer)) => writer.push_now(answer),
                    Ok(Action::Cancel(req_id)) => {
                        // A request not held (finished, or never seen) is
                        // ignored: its reply may be on its way already.
                        if ctx.cancel_request(req_id) {
                            bump(&counters.requests_cancelled);
                            line.remove(req_id);
                        }
                    }
                    Ok(Action::Start(mut job)) => {
                        if line.is_empty() && tasks.len() < config.max_concurrent_handlers {
                            // Most handlers finish at their first poll: done
                            // here, they need no place among the running, and
                            // a request none among those in flight.
                            if writer.has_room()
                                && let Poll::Ready(done) = std::future::poll_fn(|cx| Poll::Ready(job.running.as_mut().poll(cx))).await
                            {
                                finished(done, counters, &mut writer, queue);
                            } else {
                                job.hold(&ctx);
                                tasks.push(job.running);
                            }
                        } else {
                            job.hold(&ctx);
                            if let Some((_, at)) = job.deadline {
                                arm!(at);
                            }
                            line.push(job);
                        }
                    }
                    Err((err, req_id)) => {
                        counters.protocol_error(&err);
                        tracing::debug!(target: "sente_lite", conn_id = %ctx.conn_id(), error = %err, "rejected inbound frame");
                        writer.push_now(RouteTable::error_message(codec, req_id, &err));
                        // An event this side does not know is answered, not held
                        // against the peer: a newer peer may know more events.
                        let violation = !matches!(err, ProtocolError::UnknownEvent { .. });
                        if violation && !violations.take(last_heard) {
                            bump(&counters.policy_closes);
                            break Ok(Closing::new(CLOSE_POLICY, "too many protocol violations"));
                        }
                    }
                }
            }

            Some(done) = tasks.next(), if !tasks.is_empty() && writer.has_room() => {
                finished(done, counters, &mut writer, queue);
            }

            () = &mut timer => {
                let now = Instant::now();
                if let (Some(every), Some(at)) = (config.ping_interval, next_ping)
                    && now >= at
                {
                    ping_seq += 1;
                    writer.push_now(codec.encode_control(&Control::Ping(ping_seq)));
                    next_ping = Some(now + every);
                }
                if reading && now.saturating_duration_since(last_heard) > config.silence_limit {
                    bump(&counters.heartbeat_timeouts);
                    break Ok(Closing::new(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout: the peer stayed silent"));
                }
                if let Some(since) = writer.busy_since()
                    && now.saturating_duration_since(since) > config.silence_limit
                {
                    bump(&counters.slow_consumers);
                    break Ok(Closing::slow_consumer("slow consumer: a write made no progress"));
                }
                for req_id in line.expire(now) {
                    bump(&counters.deadlines_exceeded);
                    writer.push_now(frame::deadline_exceeded(codec, req_id, "the request waited past its deadline"));
                }
                if let Some(drain) = &drain
                    && let Some(message) = &drain.close_queued
                    && now >= drain.deadline
                {
                    break Ok(Closing::new(CLOSE_GOING_AWAY, message.clone()));
                }
                if let (Some(after), Some(check)) = (config.park_after, park_check)
                    && now >= check
                {
                    park_check = None;
                    let idle = reading
                        && now.saturating_duration_since(last_heard) >= after
                        && tasks.is_empty()
                        && line.is_empty()
                        && drain.is_none();
                    // Parked already (a WebSocket made to write, let go), or
                    // parked now; else see again when it has been quiet long
                    // enough (heard from lately), or later (busy).
                    let parked = ws.parked()
                        || (idle && std::future::poll_fn(|cx| Poll::Ready(park(&mut ws, &mut writer, queue, counters, true, cx))).await);
                    if !parked {
                        let quiet_at = last_heard + after;
                        park_check = Some(if quiet_at > now { quiet_at } else { now + after });
                    }
                }
                let mut at = now + IDLE_WAKE;
                if let Some(check) = park_check {
                    at = at.min(check);
                }
                if let Some(ping) = next_ping {
                    at = at.min(ping);
                }
                if reading {
                    at = at.min(last_heard + config.silence_limit + SLACK);
                }
                if let Some(since) = writer.busy_since() {
                    at = at.min(since + config.silence_limit + SLACK);
                }
                if let Some(deadline) = line.next_deadline() {
                    at = at.min(deadline);
                }
                if let Some(drain) = &drain {
                    at = at.min(drain.deadline);
                }
                if let Some(paced) = writer.paced_until() {
                    at = at.min(paced);
                }
                timer.as_mut().reset(at);
                timer_at = at;
            }
        }
    };

    let finish = match config.finish_handlers {
        Finish::Always => true,
        Finish::WhenThePeerEnds => exit.is_err(),
    };
    if finish {
        // Closing is rare: this lives in its own allocation.
        Box::pin(finish_handlers(&mut tasks, &mut line, config)).await;
    }
    drop(tasks);
    line.clear();
    let closing = match exit {
        Ok(closing) => closing,
        Err(ended) => return ended,
    };
    // Closing is rare: its futures live in their own allocation, not in every
    // idle connection's task.
    Box::pin(close_with(
        &mut ws,
        &mut writer,
        counters,
        closing.code,
        &closing.reason,
        closing.readable,
        closing.abandon_writes,
    ))
    .await;
    Ended::WeClosed {
        code: closing.code,
        reason: closing.reason,
    }
}
