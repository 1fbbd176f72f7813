//! `/metrics`: the server's counters, gauges and histograms in the OpenMetrics
//! text format (which Prometheus scrapes), encoded by `prometheus-client`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::hub::Shared;
use crate::StatsSnapshot;
use crate::engine::EngineMetric;

/// The content type of [`render`]'s output.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Values read once per scrape.
#[derive(Debug)]
struct Snapshot {
    stats: StatsSnapshot,
    queued: u64,
    engine: Vec<EngineMetric>,
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let e = &s.errors;
        let gauges: [(&str, &str, u64); 5] = [
            ("connections", "Connections open now", s.connections),
            ("users", "Users with at least one open connection", s.users),
            (
                "channels",
                "Channels with at least one subscriber",
                s.channels,
            ),
            (
                "subscriptions",
                "Subscriptions over all channels",
                s.subscriptions,
            ),
            (
                "outbound_queued_messages",
                "Messages waiting in outbound queues, all connections",
                self.queued,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let counters: [(&str, &str, u64); 41] = [
            (
                "connections_opened",
                "Connections accepted",
                s.connections_total,
            ),
            (
                "parks",
                "Times an idle connection let go of its WebSocket buffers",
                s.parks,
            ),
            (
                "handshakes_rejected",
                "Upgrades refused (auth, origin, limits)",
                s.handshakes_rejected,
            ),
            ("messages_out", "Data frames sent", s.messages_out),
            ("bytes_out", "Bytes of data frames sent", s.bytes_out),
            (
                "requests_handled",
                "Requests dispatched to a handler",
                s.requests_handled,
            ),
            (
                "resumes_recovered",
                "Subscribes with since answered recovered: true",
                s.resumes_recovered,
            ),
            (
                "resumes_not_recovered",
                "Subscribes with since answered recovered: false (a gap told)",
                s.resumes_not_recovered,
            ),
            (
                "publications_replayed",
                "Publications replayed to resuming subscribers",
                s.publications_replayed,
            ),
            (
                "resubscribes_requested",
                "Subscriptions ended with sl/resub: the client subscribes again",
                s.resubscribes_requested,
            ),
            (
                "late_replies",
                "Replies that arrived after their request stopped waiting",
                s.late_replies,
            ),
            (
                "requests_cancelled",
                "Requests the client cancelled while they waited or ran",
                s.requests_cancelled,
            ),
            (
                "api_requests",
                "HTTP API requests answered 200",
                s.api_requests,
            ),
            (
                "frames_compressed",
                "Data frames sent compressed",
                s.frames_compressed,
            ),
            (
                "compression_saved_bytes",
                "Bytes saved by compressing frames (size before less after)",
                s.compression_saved_bytes,
            ),
            (
                "frames_inflated",
                "Compressed frames received",
                s.frames_inflated,
            ),
            ("api_refused", "HTTP API requests refused", s.api_refused),
            (
                "api_unauthorized",
                "HTTP API requests refused 401 (no key or a wrong one)",
                s.api_unauthorized,
            ),
            ("errors_bad_frame", "Undecodable frames", e.bad_frame),
            (
                "errors_bad_event",
                "Unknown events or events of the wrong kind",
                e.bad_event,
            ),
            (
                "errors_bad_payload",
                "Payloads that did not fit their type",
                e.bad_payload,
            ),
            (
                "errors_duplicate_request",
                "Reused request ids",
                e.duplicate_request,
            ),
            (
                "errors_too_many_requests",
                "Requests past the in-flight bound",
                e.too_many_requests,
            ),
            (
                "errors_deadline_exceeded",
                "Requests whose deadline passed",
                e.deadline_exceeded,
            ),
            (
                "errors_rate_limited",
                "Frames dropped by the rate limit",
                e.rate_limited,
            ),
            (
                "errors_too_large",
                "Messages over the size limit",
                e.too_large,
            ),
            (
                "errors_handler_error",
                "Handlers that returned an error",
                e.handler_error,
            ),
            (
                "errors_handler_panic",
                "Handlers that panicked",
                e.handler_panic,
            ),
            (
                "closed_slow_consumer",
                "Connections closed as slow consumers",
                e.slow_consumer,
            ),
            (
                "closed_heartbeat_timeout",
                "Connections closed because the peer fell silent",
                e.heartbeat_timeout,
            ),
            (
                "closed_policy",
                "Connections closed for repeated violations",
                e.policy_close,
            ),
            (
                "closed_protocol_error",
                "Connections closed for a WebSocket protocol error or invalid UTF-8",
                e.protocol_close,
            ),
            (
                "errors_shutting_down",
                "Frames refused with shutting-down during a drain",
                e.shutting_down,
            ),
            (
                "errors_accept_failed",
                "Connections the listener failed to accept (file descriptor limit)",
                e.accept_failed,
            ),
            (
                "closed_http_timeout",
                "HTTP connections closed by the header or idle timeout before upgrading",
                e.http_timeout,
            ),
            (
                "errors_address_refused",
                "Connections refused because their address had too many open",
                e.address_refused,
            ),
            (
                "errors_host_refused",
                "HTTP requests refused for a Host the server does not answer",
                e.host_refused,
            ),
            (
                "telemetry_logged",
                "Client telemetry records logged",
                s.telemetry_logged,
            ),
            (
                "telemetry_dropped",
                "Client telemetry records dropped (over budget, over the batch limit, or refused)",
                s.telemetry_dropped,
            ),
            ("messages_in", "Data frames received", s.messages_in),
            ("bytes_in", "Bytes of data frames received", s.bytes_in),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        for metric in &self.engine {
            let name = format!("engine_{}", metric.name);
            if metric.counter {
                let counter = ConstCounter::new(metric.value);
                counter.encode(encoder.encode_descriptor(
                    &name,
                    metric.help,
                    None,
                    counter.metric_type(),
                )?)?;
            } else {
                let gauge = ConstGauge::new(i64::try_from(metric.value).unwrap_or(i64::MAX));
                gauge.encode(encoder.encode_descriptor(
                    &name,
                    metric.help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

/// Renders every metric of the server.
pub(crate) fn render(shared: &Shared, stats: StatsSnapshot) -> String {
    let mut registry = Registry::with_prefix("sente_lite");
    let events = shared.counters.events.clone();
    registry.register(
        "event_messages_in",
        "Data frames received, by event id (or frame kind)",
        events.messages_in,
    );
    registry.register(
        "event_bytes_in",
        "Bytes of data frames received, by event id (or frame kind)",
        events.bytes_in,
    );
    registry.register(
        "handler_duration_seconds",
        "Time from the frame's arrival to the handler's end (its reply encoded), by event id",
        events.handler_seconds,
    );
    registry.register_collector(Box::new(Snapshot {
        stats,
        queued: shared.queued_messages(),
        engine: shared.engine.metrics(),
    }));
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        text = "# EOF\n".into();
    }
    text
}
