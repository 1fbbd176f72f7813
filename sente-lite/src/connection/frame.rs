//! One inbound data frame: decoded, then answered at once or turned into a job.

use std::time::Duration;

use tokio::time::Instant;
use tungstenite::Message;

use super::Side;
use super::line::Job;
use crate::cancel::Cancellation;
use crate::codec::EventRef;
use crate::protocol::{Control, ErrorReply, RequestId, codes};
use crate::router::DispatchFuture;
use crate::stats::{Counters, bump};
use crate::{Codec, Ctx, Dispatched, Inbound, Outcome, ProtocolError, RouteTable};

/// What a frame asks of the engine.
pub(super) enum Action {
    /// Nothing more (a pong, a reply to one of our requests).
    Nothing,
    /// A frame to send now (a pong, an answer that needs no handler).
    Send(Message),
    /// Work to run in a handler slot.
    Start(Job),
    /// The peer cancelled its request (`sl/cancel`): drop its handler, or
    /// take it out of the waiting line.
    Cancel(RequestId),
}

/// A frame that could not be handled, and the request it belongs to, if any.
pub(super) type Refused = (ProtocolError, Option<RequestId>);

/// Decodes one data frame, read at `arrived`, and says what to do with it.
/// While `draining`, new work (events, requests, subscriptions) is refused
/// with `shutting-down`.
pub(super) fn handle_frame(
    message: &Message,
    arrived: Instant,
    ctx: &Ctx,
    routes: &RouteTable,
    side: &mut dyn Side,
    counters: &Counters,
    draining: bool,
) -> Result<Action, Refused> {
    let size = message.len();
    // Routed JSON events and requests decode in one pass; everything else, and
    // anything wrong with them, takes the general path below.
    if !draining
        && let Message::Text(text) = message
        && let Some(fast) = routes.dispatch_json(ctx, text.as_str(), arrived.into_std())
    {
        counters.events.inbound(fast.id, size);
        let (running, unheld) = fast.started.map_err(|e| (e, fast.req_id))?;
        return Ok(Action::Start(started(
            running,
            unheld,
            ctx,
            counters,
            Start {
                event: fast.id,
                req_id: fast.req_id,
                deadline_ms: fast.deadline_ms,
                arrived,
                size,
            },
        )));
    }
    let inbound = match Codec::decode(message) {
        Ok(inbound) => inbound,
        Err(err) => {
            counters.events.inbound("invalid", size);
            let req_id = err.req_id();
            return Err((err, req_id));
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
    counters.events.inbound(label, size);
    let codec = ctx.codec();
    if draining && let Some(refusal) = refuse_while_draining(codec, &inbound) {
        bump(&counters.refused_draining);
        return Ok(Action::Send(refusal));
    }
    let job = |running: Option<DispatchFuture>| {
        Ok(running.map_or(Action::Nothing, |running| {
            Action::Start(Job {
                running,
                size,
                req_id: None,
                deadline: None,
                unheld: None,
            })
        }))
    };
    let route = |event: EventRef<'_>, payload, req_id, deadline_ms| {
        routes
            .dispatch_held(ctx, &event, payload, req_id, true, arrived.into_std())
            .map(|(running, unheld)| {
                Action::Start(started(
                    running,
                    unheld,
                    ctx,
                    counters,
                    Start {
                        event: label,
                        req_id,
                        deadline_ms,
                        arrived,
                        size,
                    },
                ))
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
                bump(&counters.deadlines_exceeded);
                return Ok(Action::Send(deadline_exceeded(
                    codec,
                    req_id,
                    "the request's deadline had passed on arrival",
                )));
            }
            route(event, payload, Some(req_id), deadline_ms)
        }
        Inbound::Reply { req_id, result } => {
            if !ctx.pending().complete(req_id, result) {
                bump(&counters.late_replies);
            }
            Ok(Action::Nothing)
        }
        Inbound::Publication {
            channel,
            event,
            position,
            payload,
        } => side
            .publication(ctx, routes, channel, event, position, payload)
            .map_err(|e| (e, None))
            .and_then(job),
        Inbound::Control(Control::Ping(n)) => {
            Ok(Action::Send(codec.encode_control(&Control::Pong(n))))
        }
        Inbound::Control(Control::Pong(_)) => Ok(Action::Nothing),
        Inbound::Control(Control::Error(error)) => {
            tracing::debug!(target: "sente_lite", conn_id = %ctx.conn_id(), code = %error.code, message = %error.message, "the peer reported an error");
            Ok(Action::Nothing)
        }
        Inbound::Control(Control::Close(reason)) => {
            side.close_reason(reason);
            Ok(Action::Nothing)
        }
        Inbound::Control(Control::Cancel { req_id }) => Ok(Action::Cancel(req_id)),
        Inbound::Control(control) => side
            .control(ctx, control)
            .map_err(|e| (e, None))
            .and_then(job),
    }
}

/// The `shutting-down` answer to a frame that asks for new work during a drain;
/// `None` for frames that are still handled (pings, replies, errors, closes).
fn refuse_while_draining(codec: Codec, inbound: &Inbound<'_>) -> Option<Message> {
    let error = || {
        ErrorReply::new(
            codes::SHUTTING_DOWN,
            "the server is shutting down and takes no new work",
        )
    };
    match inbound {
        Inbound::Request { req_id, .. } => Some(codec.encode_error_reply(*req_id, &error())),
        Inbound::Control(control) => control
            .req_id()
            .map(|req_id| codec.encode_error_reply(req_id, &error())),
        Inbound::Event { .. } => Some(codec.encode_control(&Control::Error(error()))),
        _ => None,
    }
}

/// The `rate-limited` answer to a request or subscription dropped by the
/// rate limit; `None` for other frames.
pub(super) fn rate_limited_answer(message: &Message, codec: Codec) -> Option<Message> {
    let req_id = match Codec::decode(message).ok()? {
        Inbound::Request { req_id, .. } => req_id,
        Inbound::Control(control) => control.req_id()?,
        _ => return None,
    };
    Some(codec.encode_error_reply(
        req_id,
        &ErrorReply::new(
            codes::RATE_LIMITED,
            "too many messages: this request was dropped",
        ),
    ))
}

/// What [`started`] needs to know of a frame.
struct Start {
    event: &'static str,
    req_id: Option<RequestId>,
    deadline_ms: Option<u32>,
    arrived: Instant,
    size: usize,
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

/// Wraps a decoded handler into a job: its span, and for a request its count
/// and deadline. The deadline counts from the frame's arrival: a request that
/// waited past it is answered `deadline-exceeded` without running, and one that
/// runs past it is cut off with the same answer.
fn started(
    running: DispatchFuture,
    unheld: Option<Cancellation>,
    ctx: &Ctx,
    counters: &Counters,
    start: Start,
) -> Job {
    let running = traced(running, start.event, start.req_id, start.size);
    let job = |running, deadline| Job {
        running,
        size: start.size,
        req_id: start.req_id,
        deadline,
        unheld,
    };
    let Some(req_id) = start.req_id else {
        return job(running, None);
    };
    bump(&counters.requests_handled);
    let Some(ms) = start.deadline_ms else {
        return job(running, None);
    };
    let deadline = start.arrived + Duration::from_millis(u64::from(ms));
    let codec = ctx.codec();
    let running: DispatchFuture = Box::pin(async move {
        if Instant::now() >= deadline {
            return expired(codec, req_id, "the request waited past its deadline");
        }
        match tokio::time::timeout_at(deadline, running).await {
            Ok(done) => done,
            Err(_) => expired(codec, req_id, "the handler ran past the request's deadline"),
        }
    });
    job(running, Some((req_id, deadline)))
}

/// The `deadline-exceeded` answer to request `req_id`, as a handler's result.
fn expired(codec: Codec, req_id: RequestId, why: &'static str) -> Dispatched {
    Dispatched {
        message: Some(deadline_exceeded(codec, req_id, why)),
        outcome: Outcome::Error(codes::DEADLINE_EXCEEDED.into()),
        timing: None,
    }
}

/// The `deadline-exceeded` reply to request `req_id`.
pub(super) fn deadline_exceeded(codec: Codec, req_id: RequestId, why: &'static str) -> Message {
    codec.encode_error_reply(req_id, &ErrorReply::new(codes::DEADLINE_EXCEEDED, why))
}
