//! The client's background task: keeps one connection open, reconnects with
//! backoff when it is lost, and closes when asked.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::OutboundReceiver;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::ClientError;
use super::ConnectionState;
use super::backoff::Backoff;
use super::credentials::{AfterRejection, Rejection};
use super::dial::Socket;
use super::shared::{ClientHub, ClientSide, Command, Live, Shared};
use super::subscribing::Subscribing;
use crate::Ctx;
use crate::connection::{self, CloseSignal, Ended, EngineConfig};
use crate::protocol::{CloseReason, Control, Handshake};
use crate::stats::bump;

/// How long running handlers may finish when the client closes a connection.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a connection we close may take to go, before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// The shortest silence taken for a dead server, whatever the handshake says.
const MIN_SILENCE_LIMIT: Duration = Duration::from_millis(100);
/// Frames from the server waiting for a handler slot before reading pauses.
const MAX_WAITING: usize = 256;
/// Bytes of frames from the server waiting for a handler slot before reading pauses.
const MAX_WAITING_BYTES: usize = 1 << 20;
/// Inbound messages larger than this are logged.
const WARN_MESSAGE_SIZE: usize = 1 << 20;
/// The most a compressed frame from the server inflates to: the WebSocket
/// layer's own limit on one message (64 MiB).
const MAX_INFLATED: usize = 64 << 20;

/// What to do after a connection ended or an attempt failed.
enum Next {
    /// Connect again now.
    Retry,
    /// The client was stopped.
    Stop,
}

/// How a connection ended.
struct ConnectionEnd {
    /// Why, for the logs.
    reason: String,
    /// The server asked us to wait at least this long.
    floor: Option<Duration>,
    /// `Client::reconnect` asked for it: reconnect without delay.
    forced: bool,
}

/// Runs the client until it is stopped. `opened` is the connection
/// `ClientBuilder::connect` already opened, if any.
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    mut queue: OutboundReceiver,
    mut opened: Option<(Socket, Handshake)>,
) {
    let span = tracing::info_span!(
        target: "sente_lite",
        "client",
        url = %shared.target.display,
        codec = shared.target.codec.name(),
    );
    async move {
        let mut backoff = Backoff::new(shared.settings.policy.clone());
        let mut previous: Option<Ctx> = None;
        let mut first_attempt = opened.is_none();
        let mut connected_before = false;
        'run: loop {
            let (ws, handshake) = match opened.take() {
                Some(pair) => pair,
                None => {
                    shared.set_state(if first_attempt {
                        ConnectionState::Connecting
                    } else {
                        ConnectionState::Reconnecting
                    });
                    first_attempt = false;
                    let attempt = tokio::select! {
                        result = shared.target.open() => result,
                        command = shared.commands.next() => match command {
                            Command::Stop => break 'run,
                            // Already connecting: start this attempt over.
                            Command::Reconnect => continue 'run,
                        },
                    };
                    match attempt {
                        Ok(pair) => pair,
                        Err(err) => {
                            let retry = match (&err, &shared.settings.on_rejected) {
                                (ClientError::Rejected { status, body }, Some(decide)) => {
                                    let rejection = Rejection {
                                        status: *status,
                                        body: body.clone(),
                                        attempt: backoff.attempts(),
                                    };
                                    decide(&rejection) == AfterRejection::Retry
                                }
                                _ => err.is_retryable(),
                            };
                            tracing::warn!(
                                target: "sente_lite",
                                attempt = backoff.attempts(),
                                error = %err,
                                retry,
                                "connection attempt failed"
                            );
                            let reason = err.to_string();
                            shared.set_last_error(err);
                            let next = if retry {
                                pause(&shared, &mut backoff, None, &reason).await
                            } else {
                                None
                            };
                            let next = match next {
                                Some(next) => next,
                                None => give_up(&shared, &mut backoff).await,
                            };
                            match next {
                                Next::Retry => continue 'run,
                                Next::Stop => break 'run,
                            }
                        }
                    }
                }
            };
            backoff.reset();
            if connected_before {
                bump(&shared.counters.reconnects);
            }
            connected_before = true;
            let end = run_connection(&shared, ws, handshake, &mut queue, &mut previous).await;
            if shared.commands.stopping() {
                break;
            }
            if end.forced {
                tracing::info!(target: "sente_lite", "reconnecting now, as asked");
                continue;
            }
            let next = match pause(&shared, &mut backoff, end.floor, &end.reason).await {
                Some(next) => next,
                None => give_up(&shared, &mut backoff).await,
            };
            if let Next::Stop = next {
                break;
            }
        }
        shared.set_state(ConnectionState::Closing);
        shared.set_state(ConnectionState::Closed);
        tracing::debug!(target: "sente_lite", "client stopped");
    }
    .instrument(span)
    .await;
}

/// Waits before the next attempt. `None` when the policy allows no more attempts.
async fn pause(
    shared: &Shared,
    backoff: &mut Backoff,
    floor: Option<Duration>,
    reason: &str,
) -> Option<Next> {
    let jittered = backoff.next_delay()?;
    let delay = floor.map_or(jittered, |floor| jittered.max(floor));
    shared.set_state(ConnectionState::Reconnecting);
    tracing::info!(
        target: "sente_lite",
        attempt = backoff.attempts(),
        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        reason,
        "reconnecting"
    );
    Some(tokio::select! {
        () = tokio::time::sleep(delay) => Next::Retry,
        command = shared.commands.next() => match command {
            Command::Stop => Next::Stop,
            Command::Reconnect => Next::Retry,
        },
    })
}

/// Enters `Failed` and waits for `Client::reconnect` (try again) or a stop.
async fn give_up(shared: &Shared, backoff: &mut Backoff) -> Next {
    tracing::warn!(target: "sente_lite", attempts = backoff.attempts(), "gave up reconnecting");
    shared.set_state(ConnectionState::Failed);
    match shared.commands.next().await {
        Command::Stop => Next::Stop,
        Command::Reconnect => {
            backoff.reset();
            Next::Retry
        }
    }
}

/// Runs one open connection until it ends.
async fn run_connection(
    shared: &Arc<Shared>,
    ws: Socket,
    handshake: Handshake,
    queue: &mut OutboundReceiver,
    previous: &mut Option<Ctx>,
) -> ConnectionEnd {
    let conn_id = handshake.conn_id;
    let span = tracing::info_span!(target: "sente_lite", "connection", conn_id = conn_id.0);
    async move {
        super::schema::check_handshake(shared, &handshake.schema_hash);
        let settings = &shared.settings;
        // Never more requests in flight than the server said it takes.
        let max_in_flight = match usize::try_from(handshake.limits.max_in_flight) {
            Ok(0) | Err(_) => settings.max_in_flight,
            Ok(announced) => settings.max_in_flight.min(announced),
        };
        let ctx = Ctx::with_hub(
            conn_id,
            handshake.user_id.clone(),
            shared.target.codec,
            shared.outbound.for_conn(conn_id),
            max_in_flight,
            settings.request_timeout,
            Some(Arc::new(ClientHub(Arc::downgrade(shared)))),
            settings.state.clone(),
        );
        if let Some(previous) = previous.as_ref() {
            ctx.pending().continue_ids_from(previous.pending());
        }
        let heartbeat = handshake.heartbeat;
        let silence_limit = Duration::from_millis(
            u64::from(heartbeat.interval_ms) + u64::from(heartbeat.timeout_ms),
        )
        .max(MIN_SILENCE_LIMIT);
        let config = EngineConfig {
            max_concurrent_handlers: settings.max_concurrent_handlers,
            max_waiting: MAX_WAITING,
            max_waiting_bytes: MAX_WAITING_BYTES,
            // The server pings; the engine answers, and any frame is a sign of life.
            ping_interval: None,
            silence_limit,
            // The server is trusted not to flood its own clients.
            rate_per_sec: None,
            rate_burst: 0,
            max_violations: u32::MAX,
            violation_refill: Duration::from_secs(1),
            warn_message_size: WARN_MESSAGE_SIZE,
            drain_timeout: DRAIN_TIMEOUT,
            // A publication read is handled, even when the connection then ends.
            finish_handlers: connection::Finish::Always,
            // What the server reads per second: queued events go out no faster.
            send_rate: (handshake.limits.rate_per_sec > 0)
                .then_some((handshake.limits.rate_per_sec, handshake.limits.rate_burst)),
            // What a compressed frame may inflate to: the WebSocket layer's
            // own limit on a message.
            inflate_up_to: handshake
                .extensions
                .iter()
                .any(|e| e == crate::protocol::EXTENSION_COMPRESSION)
                .then_some(MAX_INFLATED),
            compress: None,
            // A client holds one connection: its buffers stay.
            park_after: None,
        };
        // Subscriptions are restored before anything queued goes out.
        let subscribing = Subscribing::new();
        let (mut first, restores) = shared.restore_frames(&ctx, &subscribing);
        // The extensions whose frames this client takes from the server, first.
        let offered = |name: &str| handshake.extensions.iter().any(|e| e == name);
        let mut taken = Vec::new();
        if offered(crate::protocol::EXTENSION_CANCEL) {
            ctx.set_peer_cancels();
            taken.push(crate::protocol::EXTENSION_CANCEL.to_owned());
        }
        let compression = offered(crate::protocol::EXTENSION_COMPRESSION);
        if compression {
            taken.push(crate::protocol::EXTENSION_COMPRESSION.to_owned());
        }
        if !taken.is_empty() {
            first.insert(0, ctx.codec().encode_control(&Control::Extensions(taken)));
        }
        tracing::info!(
            target: "sente_lite",
            user_id = handshake.user_id.as_ref().map(|u| u.0.as_str()),
            restored = restores.len(),
            queued = shared.outbound.len(),
            "connected"
        );
        let live = Live {
            ctx: ctx.clone(),
            handshake,
            subscribing,
        };
        shared.set_live(Some(live.clone()));
        bump(&shared.counters.connections_total);
        shared.set_state(ConnectionState::Open);
        if !restores.is_empty() {
            tokio::spawn(
                Arc::clone(shared)
                    .settle_restores(live, restores)
                    .in_current_span(),
            );
        }

        let signal = CloseSignal::default();
        let mut side = ClientSide::new(Arc::clone(shared));
        let mut forced = false;
        let ended = {
            let engine = connection::run(
                ws,
                ctx.clone(),
                shared.routes.clone(),
                &mut *queue,
                &mut side,
                &config,
                &shared.counters,
                &signal,
                first,
            );
            tokio::pin!(engine);
            let mut give_up_at: Option<Instant> = None;
            loop {
                tokio::select! {
                    ended = &mut engine => break Some(ended),
                    () = sleep_until(give_up_at) => break None,
                    command = shared.commands.next(), if give_up_at.is_none() => {
                        let message = match command {
                            Command::Stop => {
                                shared.set_state(ConnectionState::Closing);
                                "client disconnecting"
                            }
                            Command::Reconnect => {
                                forced = true;
                                "client reconnecting"
                            }
                        };
                        signal.close(CloseReason {
                            code: Cow::Borrowed("going-away"),
                            message: message.into(),
                            reconnect_after_ms: None,
                        });
                        give_up_at = Some(Instant::now() + CLOSE_GRACE);
                    }
                }
            }
        };
        shared.set_live(None);
        // The server forgot this connection's presence watches.
        shared.presence().connection_lost();
        ctx.pending().fail_all();
        // Requests of this connection that never went out were just failed:
        // they must not go out on the next one.
        queue.retain(|message| {
            !matches!(
                crate::Codec::decode(message),
                Ok(crate::Inbound::Request { .. })
            )
        });
        *previous = Some(ctx);
        if forced {
            shared.commands.clear_reconnect();
        }
        let reason = match &ended {
            Some(Ended::PeerClosed { code, reason }) => match code {
                Some(code) => format!("the server closed the connection ({code}: {reason})"),
                None => format!("the connection was lost ({reason})"),
            },
            Some(Ended::WeClosed { code, reason }) => {
                format!("closed by the client ({code}: {reason})")
            }
            None => "the connection did not close in time and was dropped".to_owned(),
        };
        tracing::info!(target: "sente_lite", reason = %reason, "connection ended");
        ConnectionEnd {
            reason,
            floor: side.reconnect_floor,
            forced,
        }
    }
    .instrument(span)
    .await
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
