//! Counters kept by servers and clients, and their [`StatsSnapshot`].

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;

use crate::ProtocolError;

/// The label of per-event metrics: a routed event id, or `unknown`, or the kind
/// of protocol frame (`sl/reply`, `sl/pub`, `sl/control`, `invalid`). Only ids
/// known at build time appear, so the label set stays bounded.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EventLabel {
    pub(crate) event: &'static str,
}

fn handler_histogram() -> Histogram {
    // 50 µs .. ~26 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// Per-event metrics, exported by a server at `/metrics`.
#[derive(Debug, Clone)]
pub(crate) struct EventMetrics {
    pub(crate) messages_in: Family<EventLabel, Counter>,
    pub(crate) bytes_in: Family<EventLabel, Counter>,
    pub(crate) handler_seconds: Family<EventLabel, Histogram, fn() -> Histogram>,
    /// The handles of every label known when the metrics were made (the routed
    /// ids and the frame kinds), so the hot path skips the families' locked maps.
    known: Arc<HashMap<&'static str, EventHandles, BuildHasherDefault<LabelHasher>>>,
}

/// Hashes the labels of [`EventMetrics`]' known handles: a few short names,
/// all of them the program's own (never a peer's), which their length and
/// first and last eight bytes tell apart well enough. Two reads and a
/// multiplication, where a byte-at-a-time hash would walk every label twice a
/// request (once as it arrives, once as its handler ends).
#[derive(Default)]
struct LabelHasher(u64);

impl std::hash::Hasher for LabelHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Whole words where there are eight bytes (no call to copy a
        // slice of unknown length), else the bytes one by one.
        let (head, tail) = match (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
            (Some(head), Some(tail)) => (u64::from_le_bytes(*head), u64::from_le_bytes(*tail)),
            _ => (
                bytes.iter().fold(0, |word, &b| (word << 8) | u64::from(b)),
                0,
            ),
        };
        self.0 = (self.0 ^ head ^ tail.rotate_left(29) ^ bytes.len() as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u8(&mut self, byte: u8) {
        self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// One label's metrics (clones share the values with the families).
#[derive(Debug)]
struct EventHandles {
    messages_in: Counter,
    bytes_in: Counter,
    handler_seconds: Option<Histogram>,
}

/// Labels of frames that are not routed events.
const FRAME_KINDS: [&str; 5] = ["unknown", "invalid", "sl/reply", "sl/pub", "sl/control"];

impl Default for EventMetrics {
    fn default() -> Self {
        Self::new([])
    }
}

impl EventMetrics {
    /// Metrics whose series for `routed` ids (and for the frame kinds) exist
    /// from the start, at zero.
    pub(crate) fn new(routed: impl IntoIterator<Item = &'static str>) -> Self {
        let messages_in = Family::<EventLabel, Counter>::default();
        let bytes_in = Family::<EventLabel, Counter>::default();
        let handler_seconds: Family<EventLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(handler_histogram);
        let mut known = HashMap::default();
        let labels = routed
            .into_iter()
            .map(|id| (id, true))
            .chain(FRAME_KINDS.map(|kind| (kind, false)));
        for (event, is_routed) in labels {
            let label = EventLabel { event };
            known.insert(
                event,
                EventHandles {
                    messages_in: messages_in.get_or_create(&label).clone(),
                    bytes_in: bytes_in.get_or_create(&label).clone(),
                    handler_seconds: is_routed
                        .then(|| handler_seconds.get_or_create(&label).clone()),
                },
            );
        }
        Self {
            messages_in,
            bytes_in,
            handler_seconds,
            known: Arc::new(known),
        }
    }

    pub(crate) fn inbound(&self, event: &'static str, size: usize) {
        if let Some(known) = self.known.get(event) {
            known.messages_in.inc();
            known.bytes_in.inc_by(size as u64);
            return;
        }
        let label = EventLabel { event };
        self.messages_in.get_or_create(&label).inc();
        self.bytes_in.get_or_create(&label).inc_by(size as u64);
    }

    pub(crate) fn handled(&self, timing: &crate::HandlerTiming) {
        let seconds = timing.elapsed.as_secs_f64();
        if let Some(histogram) = self
            .known
            .get(timing.event)
            .and_then(|known| known.handler_seconds.as_ref())
        {
            histogram.observe(seconds);
            return;
        }
        self.handler_seconds
            .get_or_create(&EventLabel {
                event: timing.event,
            })
            .observe(seconds);
    }
}

/// Live counters, updated with relaxed atomics on the hot path.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) events: EventMetrics,
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) handshakes_rejected: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) requests_handled: AtomicU64,
    pub(crate) handler_errors: AtomicU64,
    pub(crate) handler_panics: AtomicU64,
    pub(crate) bad_frames: AtomicU64,
    pub(crate) bad_events: AtomicU64,
    pub(crate) bad_payloads: AtomicU64,
    pub(crate) duplicate_requests: AtomicU64,
    pub(crate) too_many_requests: AtomicU64,
    pub(crate) deadlines_exceeded: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) too_large: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
    pub(crate) heartbeat_timeouts: AtomicU64,
    pub(crate) policy_closes: AtomicU64,
    pub(crate) protocol_closes: AtomicU64,
    pub(crate) refused_draining: AtomicU64,
    pub(crate) late_replies: AtomicU64,
    pub(crate) requests_cancelled: AtomicU64,
    pub(crate) api_requests: AtomicU64,
    pub(crate) frames_compressed: AtomicU64,
    pub(crate) compression_saved_bytes: AtomicU64,
    pub(crate) frames_inflated: AtomicU64,
    pub(crate) api_refused: AtomicU64,
    pub(crate) api_unauthorized: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) accept_failures: AtomicU64,
    pub(crate) http_timeouts: AtomicU64,
    pub(crate) host_refusals: AtomicU64,
    pub(crate) address_refusals: AtomicU64,
    pub(crate) telemetry_logged: AtomicU64,
    pub(crate) telemetry_dropped: AtomicU64,
    pub(crate) resumes_recovered: AtomicU64,
    pub(crate) resumes_not_recovered: AtomicU64,
    pub(crate) publications_replayed: AtomicU64,
    pub(crate) resubscribes_requested: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Counters {
    /// Counters whose per-event metrics know `routes` from the start.
    pub(crate) fn for_routes(routes: &crate::RouteTable) -> Self {
        Self {
            events: EventMetrics::new(routes.routes().map(|route| route.id)),
            ..Self::default()
        }
    }

    pub(crate) fn protocol_error(&self, err: &ProtocolError) {
        bump(match err {
            ProtocolError::BadFrame { .. } | ProtocolError::BadRequest { .. } => &self.bad_frames,
            ProtocolError::UnknownEvent { .. }
            | ProtocolError::ExpectedRequest { .. }
            | ProtocolError::NotARequest { .. } => &self.bad_events,
            ProtocolError::BadPayload { .. } => &self.bad_payloads,
            ProtocolError::DuplicateRequest { .. } => &self.duplicate_requests,
            ProtocolError::TooManyRequests { .. } => &self.too_many_requests,
        });
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections: get(&self.connections_open),
            connections_total: get(&self.connections_total),
            parks: get(&self.parks),
            users: 0,
            channels: 0,
            subscriptions: 0,
            handshakes_rejected: get(&self.handshakes_rejected),
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            requests_handled: get(&self.requests_handled),
            reconnects: get(&self.reconnects),
            late_replies: get(&self.late_replies),
            requests_cancelled: get(&self.requests_cancelled),
            api_requests: get(&self.api_requests),
            frames_compressed: get(&self.frames_compressed),
            compression_saved_bytes: get(&self.compression_saved_bytes),
            frames_inflated: get(&self.frames_inflated),
            api_refused: get(&self.api_refused),
            api_unauthorized: get(&self.api_unauthorized),
            telemetry_logged: get(&self.telemetry_logged),
            telemetry_dropped: get(&self.telemetry_dropped),
            resumes_recovered: get(&self.resumes_recovered),
            resumes_not_recovered: get(&self.resumes_not_recovered),
            publications_replayed: get(&self.publications_replayed),
            resubscribes_requested: get(&self.resubscribes_requested),
            errors: ErrorCounts {
                bad_frame: get(&self.bad_frames),
                bad_event: get(&self.bad_events),
                bad_payload: get(&self.bad_payloads),
                duplicate_request: get(&self.duplicate_requests),
                too_many_requests: get(&self.too_many_requests),
                deadline_exceeded: get(&self.deadlines_exceeded),
                rate_limited: get(&self.rate_limited),
                too_large: get(&self.too_large),
                handler_error: get(&self.handler_errors),
                handler_panic: get(&self.handler_panics),
                slow_consumer: get(&self.slow_consumers),
                heartbeat_timeout: get(&self.heartbeat_timeouts),
                policy_close: get(&self.policy_closes),
                protocol_close: get(&self.protocol_closes),
                shutting_down: get(&self.refused_draining),
                accept_failed: get(&self.accept_failures),
                http_timeout: get(&self.http_timeouts),
                host_refused: get(&self.host_refusals),
                address_refused: get(&self.address_refusals),
            },
            requested_addr: None,
            local_addr: None,
        }
    }
}

/// A point-in-time copy of a server's or client's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted (or opened) since start.
    pub connections_total: u64,
    /// Times a server's idle connection let go of its WebSocket buffers
    /// (`Limits::idle_park_after`); it makes them again when it next reads
    /// or writes.
    pub parks: u64,
    /// Users with at least one open connection.
    pub users: u64,
    /// Channels with at least one subscriber.
    pub channels: u64,
    /// Subscriptions, over all channels.
    pub subscriptions: u64,
    /// Upgrades refused (authentication, origin, limits).
    pub handshakes_rejected: u64,
    /// Data frames received.
    pub messages_in: u64,
    /// Data frames sent.
    pub messages_out: u64,
    /// Bytes of data frames received.
    pub bytes_in: u64,
    /// Bytes of data frames sent.
    pub bytes_out: u64,
    /// Requests answered by a handler.
    pub requests_handled: u64,
    /// Reconnections (clients).
    pub reconnects: u64,
    /// Replies that arrived after their request stopped waiting.
    pub late_replies: u64,
    /// The peer's requests it cancelled (`sl/cancel`) while they waited for a
    /// handler or ran: their handlers were dropped, no reply was sent.
    pub requests_cancelled: u64,
    /// HTTP API requests answered 200 (servers with the API on).
    pub api_requests: u64,
    /// Data frames sent compressed (extension `compression`).
    pub frames_compressed: u64,
    /// Bytes the compressed frames saved: their size before, less after.
    pub compression_saved_bytes: u64,
    /// Compressed frames received and inflated.
    pub frames_inflated: u64,
    /// HTTP API requests refused (any status but 200).
    pub api_refused: u64,
    /// HTTP API requests refused 401: no key, or a wrong one.
    pub api_unauthorized: u64,
    /// Client telemetry records written to the server's log.
    pub telemetry_logged: u64,
    /// Client telemetry records the server did not log: over the connection's
    /// budget, past a batch's record limit, or refused (anonymous connection
    /// while telemetry requires a user).
    pub telemetry_dropped: u64,
    /// Subscribes with `since` answered `recovered: true` (servers).
    pub resumes_recovered: u64,
    /// Subscribes with `since` answered `recovered: false`: the client was
    /// told of a gap (servers).
    pub resumes_not_recovered: u64,
    /// Publications replayed to resuming subscribers (servers).
    pub publications_replayed: u64,
    /// Subscriptions the server ended with `sl/resub`, asking the client to
    /// subscribe again because it may have missed publications (servers).
    pub resubscribes_requested: u64,
    /// Errors, by kind.
    pub errors: ErrorCounts,
    /// The address the server was asked to bind.
    pub requested_addr: Option<String>,
    /// The address it is bound to (the actual port when asked for port 0).
    pub local_addr: Option<String>,
}

/// Errors counted by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// Undecodable frames.
    pub bad_frame: u64,
    /// Unknown events, or events sent as the wrong kind.
    pub bad_event: u64,
    /// Payloads that did not fit their type.
    pub bad_payload: u64,
    /// Reused request ids.
    pub duplicate_request: u64,
    /// Requests past the in-flight bound.
    pub too_many_requests: u64,
    /// Requests whose deadline passed.
    pub deadline_exceeded: u64,
    /// Frames dropped by the rate limit.
    pub rate_limited: u64,
    /// Messages over the size limit.
    pub too_large: u64,
    /// Handlers that returned an error.
    pub handler_error: u64,
    /// Handlers that panicked.
    pub handler_panic: u64,
    /// Connections closed because their outbound queue was full.
    pub slow_consumer: u64,
    /// Connections closed because the peer fell silent.
    pub heartbeat_timeout: u64,
    /// Connections closed for repeated protocol violations.
    pub policy_close: u64,
    /// Connections closed for a WebSocket protocol error (1002) or a text
    /// message that is not UTF-8 (1007).
    pub protocol_close: u64,
    /// Events, requests and subscriptions refused with `shutting-down` while
    /// the connection drained.
    pub shutting_down: u64,
    /// Connections the listener failed to accept, most often because the
    /// process ran out of file descriptors (servers).
    pub accept_failed: u64,
    /// HTTP connections closed before upgrading because the request head did
    /// not arrive in time or nothing moved for too long (servers: see
    /// `Limits::http_header_timeout` and `Limits::http_idle_timeout`).
    pub http_timeout: u64,
    /// HTTP requests refused because their `Host` is not one the server
    /// answers (servers: see `HostPolicy`).
    pub host_refused: u64,
    /// Connections refused with 429 because their remote address already had
    /// `Limits::max_connections_per_address` open (servers).
    pub address_refused: u64,
}
