//! One upgraded connection, from its handshake to its cleanup.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::{self, CloseSignal, Compress, EngineConfig};
use crate::protocol::{Control, Handshake, Heartbeat, UserId};
use crate::{Codec, Ctx, Outbound};

use super::Server;
use super::hub::Shared;
use super::side::ServerSide;

/// Runs an upgraded connection until it closes, then forgets it.
///
/// The setup runs now, synchronously; the returned future holds only what the
/// connection needs while it is open (it is the bulk of an idle connection's
/// memory, so nothing is kept in it twice).
pub(crate) fn run_connection<S>(
    ws: S,
    shared: Arc<Shared>,
    codec: Codec,
    user_id: Option<UserId>,
    remote_addr: Option<SocketAddr>,
) -> impl Future<Output = ()> + Send + 'static
where
    S: connection::Transport + 'static,
{
    use tracing::Instrument as _;

    let conn_id = shared.next_conn_id();
    let span = tracing::info_span!(
        target: "sente_lite",
        "connection",
        conn_id = conn_id.0,
        user_id = user_id.as_ref().map(|u| u.0.as_str()),
        remote = remote_addr.map(tracing::field::display),
        codec = codec.name(),
    );
    let config = &shared.config;
    let limits = &config.limits;
    let signal = Arc::new(CloseSignal::default());
    let (outbound, queue) = Outbound::with_signal(
        conn_id,
        limits.outbound_queue,
        limits.outbound_queue_bytes,
        Arc::clone(&signal),
    );
    let server = Server {
        shared: Arc::clone(&shared),
    };
    let ctx = Ctx::with_hub(
        conn_id,
        user_id.clone(),
        codec,
        outbound,
        limits.max_in_flight_requests,
        config.request_timeout,
        Some(Arc::new(server)),
        shared.state.clone(),
    );
    shared.register(&ctx, Arc::clone(&signal));
    crate::stats::bump(&shared.counters.connections_total);
    span.in_scope(|| tracing::debug!(target: "sente_lite", "connection open"));
    let handshake = codec.encode_control(&Control::Handshake(Handshake {
        version: crate::protocol::PROTOCOL_VERSION,
        conn_id,
        user_id,
        heartbeat: Heartbeat {
            interval_ms: millis(config.ping_interval),
            timeout_ms: millis(config.ping_timeout),
        },
        schema_hash: crate::registry::schema_hash_hex(),
        max_message_size: u32::try_from(limits.max_message_size).unwrap_or(u32::MAX),
        extensions: vec![
            crate::protocol::EXTENSION_RECOVERY.into(),
            crate::protocol::EXTENSION_PRESENCE.into(),
            crate::protocol::EXTENSION_CANCEL.into(),
        ]
        .into_iter()
        .chain(
            config
                .compression
                .map(|_| crate::protocol::EXTENSION_COMPRESSION.into()),
        )
        .collect(),
        limits: limits.announced(),
    }));
    let engine = EngineConfig {
        max_concurrent_handlers: limits.max_concurrent_handlers,
        max_waiting: limits.max_waiting,
        max_waiting_bytes: limits.max_waiting_bytes,
        ping_interval: Some(config.ping_interval),
        silence_limit: config.ping_interval + config.ping_timeout,
        rate_per_sec: limits.rate_per_sec,
        rate_burst: limits.rate_burst,
        max_violations: limits.max_violations,
        violation_refill: limits.violation_refill,
        warn_message_size: limits.warn_message_size,
        drain_timeout: limits.drain_timeout,
        finish_handlers: connection::Finish::WhenThePeerEnds,
        send_rate: None,
        inflate_up_to: config.compression.map(|_| limits.max_message_size),
        compress: config.compression.map(|c| Compress {
            min_bytes: c.min_bytes.max(1),
            level: c.level.clamp(1, 9),
        }),
        park_after: Some(limits.idle_park_after),
    };
    let routes = shared.routes.clone();
    let mut side = ServerSide {
        shared: Arc::clone(&shared),
    };
    async move {
        let ended = connection::run(
            ws,
            ctx.clone(),
            routes,
            queue,
            &mut side,
            &engine,
            &shared.counters,
            &signal,
            vec![handshake],
        )
        .await;
        tracing::debug!(target: "sente_lite", ?ended, "connection closed");
        shared.unregister(&ctx);
        shared
            .counters
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        shared.closed.notify_waiters();
    }
    .instrument(span)
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
