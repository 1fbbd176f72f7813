//! Where admitted records go: the [`TelemetrySink`] seam, the records as a
//! sink sees them, and the default sink, the server's tracing output.

use std::borrow::Cow;

use super::sanitize::sanitize;
use super::{
    MAX_FIELD_KEY_CHARS, MAX_FIELD_VALUE_CHARS, MAX_FIELDS, MAX_MESSAGE_CHARS, MAX_SOURCE_CHARS,
    TelemetryLevel, TelemetryRecord,
};
use crate::protocol::ConnId;

/// Where a server sends the telemetry records it admits.
///
/// The server calls [`accept`](TelemetrySink::accept) once per batch with the
/// records that passed the connection's budget, already escaped and cut (see
/// the [module](super) docs), oldest first, and [`lost`](TelemetrySink::lost)
/// with what the batch lost on the way. Both run on the sending connection's
/// handler task: a sink must not block. One that writes somewhere slow queues
/// the records (with a bound, counting what it drops) and writes them from a
/// task of its own.
///
/// The default sink is [`TracingSink`]; install another with
/// `ServerBuilder::telemetry_sink`. A sink that also wants the tracing lines
/// calls `TracingSink.accept(origin, records)` itself.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use sente_lite::telemetry::{TelemetryEntry, TelemetryLevel, TelemetryOrigin, TelemetrySink};
///
/// /// Counts the errors clients report.
/// #[derive(Default)]
/// struct ErrorCounter(AtomicU64);
///
/// impl TelemetrySink for ErrorCounter {
///     fn accept(&self, _origin: &TelemetryOrigin<'_>, records: &[TelemetryEntry<'_>]) {
///         let errors = records.iter().filter(|r| r.level() == TelemetryLevel::Error).count();
///         self.0.fetch_add(errors as u64, Ordering::Relaxed);
///     }
/// }
///
/// let server = sente_lite::Server::builder().telemetry_sink(ErrorCounter::default());
/// ```
pub trait TelemetrySink: Send + Sync + 'static {
    /// Takes the admitted records of one batch, in order (never empty).
    fn accept(&self, origin: &TelemetryOrigin<'_>, records: &[TelemetryEntry<'_>]);

    /// Hears what one batch lost before reaching the sink (never all zero).
    /// The server logs a summary line of its losses anyway; the default does
    /// nothing more.
    fn lost(&self, origin: &TelemetryOrigin<'_>, losses: &TelemetryLosses) {
        let _ = (origin, losses);
    }
}

/// Who sent a batch of records.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TelemetryOrigin<'a> {
    /// The sending connection.
    pub conn_id: ConnId,
    /// Its user (escaped), empty when anonymous.
    pub user_id: &'a str,
    /// The client's telemetry session (escaped and cut to
    /// [`MAX_SESSION_CHARS`](super::MAX_SESSION_CHARS)): the client's own
    /// name for the run it reports on, which outlives its connections (a
    /// page keeps one from load to unload). A batch without one is given
    /// `conn-<conn_id>`.
    pub session: &'a str,
}

/// Records lost on their way to the sink, by cause.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TelemetryLosses {
    /// Over the connection's budget (`TelemetryConfig`'s rates and bursts).
    pub over_budget: u64,
    /// Past [`MAX_RECORDS_PER_BATCH`](super::MAX_RECORDS_PER_BATCH) in one batch.
    pub over_batch_size: u64,
    /// Refused: the server takes telemetry from authenticated users only.
    pub refused: u64,
    /// Dropped by the client itself, its buffer full (the batch's `dropped`).
    pub dropped_by_client: u64,
}

impl TelemetryLosses {
    /// Whether nothing was lost.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// All the records lost.
    pub fn total(&self) -> u64 {
        self.over_budget
            .saturating_add(self.over_batch_size)
            .saturating_add(self.refused)
            .saturating_add(self.dropped_by_client)
    }

    pub(super) fn add(&mut self, other: &TelemetryLosses) {
        self.over_budget = self.over_budget.saturating_add(other.over_budget);
        self.over_batch_size = self.over_batch_size.saturating_add(other.over_batch_size);
        self.refused = self.refused.saturating_add(other.refused);
        self.dropped_by_client = self
            .dropped_by_client
            .saturating_add(other.dropped_by_client);
    }

    /// The summary line, `telemetry records lost`.
    pub(super) fn log(&self, conn_id: u64, user_id: &str) {
        tracing::warn!(
            target: "sente_lite::telemetry",
            conn_id,
            user_id,
            over_budget = self.over_budget,
            over_batch_size = self.over_batch_size,
            refused = self.refused,
            dropped_by_client = self.dropped_by_client,
            "telemetry records lost"
        );
    }
}

/// A record's fields as logged: `{"key": "value", ...}`, escaped and cut.
struct LoggedFields<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl std::fmt::Display for LoggedFields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "\"{key}\": \"{value}\"")?;
        }
        f.write_str("}")
    }
}

/// A record as a [`TelemetrySink`] gets it: every text escaped and cut (see
/// the [module](super) docs), so each is one safe line of text.
pub struct TelemetryEntry<'a> {
    level: TelemetryLevel,
    message: Cow<'a, str>,
    source: Cow<'a, str>,
    at_ms: u64,
    fields: LoggedFields<'a>,
    fields_dropped: usize,
}

impl std::fmt::Debug for TelemetryEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryEntry")
            .field("level", &self.level)
            .field("message", &self.message)
            .field("source", &self.source)
            .field("at_ms", &self.at_ms)
            .field("fields", &self.fields.0)
            .field("fields_dropped", &self.fields_dropped)
            .finish()
    }
}

impl<'a> TelemetryEntry<'a> {
    pub(super) fn new(record: &'a TelemetryRecord) -> Self {
        let fields = record
            .fields
            .iter()
            .take(MAX_FIELDS)
            .map(|(key, value)| {
                (
                    sanitize(key, MAX_FIELD_KEY_CHARS, true),
                    sanitize(value, MAX_FIELD_VALUE_CHARS, true),
                )
            })
            .collect();
        Self {
            level: record.level,
            message: sanitize(&record.message, MAX_MESSAGE_CHARS, false),
            source: sanitize(&record.source, MAX_SOURCE_CHARS, false),
            at_ms: record.at_ms,
            fields: LoggedFields(fields),
            fields_dropped: record.fields.len().saturating_sub(MAX_FIELDS),
        }
    }

    /// Its level.
    pub fn level(&self) -> TelemetryLevel {
        self.level
    }

    /// What happened.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where it happened on the client (`console`, `window.onerror`, a module path).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// When, in milliseconds since the Unix epoch, by the client's clock.
    pub fn at_ms(&self) -> u64 {
        self.at_ms
    }

    /// The fields kept (at most [`MAX_FIELDS`], in key order), keys and values
    /// escaped with `"` escaped too.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.fields.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// How many fields past [`MAX_FIELDS`] were left out.
    pub fn fields_dropped(&self) -> usize {
        self.fields_dropped
    }

    /// Bytes of text this record puts in the log: what the byte budget counts.
    pub fn text_bytes(&self) -> usize {
        self.message.len()
            + self.source.len()
            + self
                .fields
                .0
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

/// The default [`TelemetrySink`]: each record becomes a tracing event of
/// target `sente_lite::telemetry` at the record's level, with the fields
/// `conn_id`, `user_id`, `session`, `source`, `at_ms`, `fields` (rendered as
/// `{"key": "value", ...}`) and, when some were cut, `fields_dropped`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

impl TelemetrySink for TracingSink {
    fn accept(&self, origin: &TelemetryOrigin<'_>, records: &[TelemetryEntry<'_>]) {
        let ConnId(conn_id) = origin.conn_id;
        let user_id = origin.user_id;
        let session = origin.session;
        for record in records {
            let message = &record.message;
            let source = record.source.as_ref();
            let at_ms = record.at_ms;
            let fields = &record.fields;
            let fields_dropped = (record.fields_dropped > 0).then_some(record.fields_dropped);
            macro_rules! emit {
                ($level:expr) => {
                    tracing::event!(
                        target: "sente_lite::telemetry",
                        $level,
                        conn_id,
                        user_id,
                        session,
                        source,
                        at_ms,
                        %fields,
                        fields_dropped,
                        "{message}"
                    )
                };
            }
            match record.level {
                TelemetryLevel::Error => emit!(tracing::Level::ERROR),
                TelemetryLevel::Warn => emit!(tracing::Level::WARN),
                TelemetryLevel::Info => emit!(tracing::Level::INFO),
                TelemetryLevel::Debug => emit!(tracing::Level::DEBUG),
                TelemetryLevel::Trace => emit!(tracing::Level::TRACE),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{MAX_FIELD_VALUE_CHARS, MAX_FIELDS, TelemetryLevel, TelemetryRecord};

    #[test]
    fn fields_are_capped_in_number_and_length() {
        let record = TelemetryRecord {
            level: TelemetryLevel::Info,
            message: "m".into(),
            source: String::new(),
            at_ms: 0,
            fields: (0..MAX_FIELDS + 3)
                .map(|i| (format!("{i:03}\n"), "v".repeat(MAX_FIELD_VALUE_CHARS + 1)))
                .collect(),
        };
        let logged = TelemetryEntry::new(&record);
        assert_eq!(logged.fields.0.len(), MAX_FIELDS);
        assert_eq!(logged.fields_dropped, 3);
        let text = logged.fields.to_string();
        assert!(text.starts_with(&format!(
            r#"{{"000\n": "{}…", "#,
            "v".repeat(MAX_FIELD_VALUE_CHARS)
        )));
    }
}
