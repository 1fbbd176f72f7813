//! Client-to-server telemetry: log records that browsers and native clients
//! send in batches, recorded by the server with the sender's user, connection
//! and session.
//!
//! A server routes [`TelemetryBatch`] by itself (turn it off with
//! `ServerBuilder::telemetry(false)`). The records that pass go to the
//! server's [`TelemetrySink`]: by default [`TracingSink`], which emits them as
//! tracing events with target `sente_lite::telemetry` at the record's level,
//! with the fields `conn_id`, `user_id`, `session`, `source` (the client's own
//! target), `at_ms`, `fields` and, when some were cut, `fields_dropped`. A sink
//! of the application's (`ServerBuilder::telemetry_sink`) can file them
//! elsewhere: the `telemetry` example writes them as JSON lines per session,
//! with a live tail page.
//!
//! A batch names its client's **session** (at most [`MAX_SESSION_CHARS`]),
//! chosen by the client and kept across reconnections: the JavaScript client
//! picks a random one per `Client` (or takes `telemetry.session`), and
//! [`forward_to`] one per layer. A batch without one belongs to the session
//! `conn-<conn_id>`.
//!
//! # What a client cannot do to the log
//!
//! Everything a client sends is untrusted, so before a record is logged:
//!
//! - **Control characters are escaped** in the message, the source, and the
//!   keys and values of the fields (and in the user id): `\n`, `\r` and `\t` are
//!   written as those two characters, a backslash as `\\`, and every other C0
//!   control, DEL, C1 control, line or paragraph separator (U+2028, U+2029) and
//!   bidirectional formatting character as `\u{hex}` (ESC is `\u{1b}`). A
//!   record is always one line, even in plain-text log formats, and a logged
//!   text cannot pass for another. Inside `fields`, which is rendered as
//!   `{"key": "value", ...}`, a double quote is escaped as `\"` too.
//! - **Every text is cut** to a limit of escaped characters (an escape is never
//!   split): the message to [`MAX_MESSAGE_CHARS`], the source to
//!   [`MAX_SOURCE_CHARS`], a field key to [`MAX_FIELD_KEY_CHARS`], a field value
//!   to [`MAX_FIELD_VALUE_CHARS`]. A cut text ends with `…`. At most
//!   [`MAX_FIELDS`] fields are kept (the first, in key order); the number of
//!   the others is logged as `fields_dropped`. A batch's records past
//!   [`MAX_RECORDS_PER_BATCH`] are dropped.
//! - **Each connection has a budget** of records and of bytes of logged text
//!   per second (two token buckets, configured with
//!   [`TelemetryConfig`]: by default 50 records
//!   and 64 KiB a second, bursts of 500 records and 256 KiB). Records over it
//!   are dropped and counted in `StatsSnapshot::telemetry_dropped` (metric
//!   `sente_lite_telemetry_dropped`).
//! - **Losses are summed up, not logged one by one**: one warning
//!   `telemetry records lost` per connection at most every
//!   `TelemetryConfig::summary_interval` (default 5 s), with the counts
//!   `over_budget`, `over_batch_size`, `refused` and `dropped_by_client` (what
//!   the client itself could not keep).
//! - **Anonymous telemetry can be refused**: with
//!   `ServerBuilder::telemetry_require_user(true)` a batch from a connection
//!   without a user is answered with an `sl/error` frame of code `forbidden`
//!   (its `data` is `{"event": "telemetry/batch"}`) and nothing of it is logged.
//!   Off by default, so that anonymous pages can report their errors.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::{ConnId, codes};
use crate::server::TelemetryConfig;
use crate::{Ctx, ErrorReply, Event as _};

mod budget;
#[cfg(feature = "logging")]
mod forward;
mod sanitize;
mod sink;

pub(crate) use budget::Budget;
use budget::{count, report};
#[cfg(feature = "logging")]
pub use forward::{ForwardLayer, forward_to};
pub(crate) use sanitize::sanitize;
pub use sink::{TelemetryEntry, TelemetryLosses, TelemetryOrigin, TelemetrySink, TracingSink};

/// Records a batch holds at most; the rest of a larger batch is dropped and counted.
pub const MAX_RECORDS_PER_BATCH: usize = 100;

/// Characters of a record's message logged, after escaping; the rest is cut
/// and marked with `…`.
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// Characters of a record's source logged, after escaping; the rest is cut
/// and marked with `…`.
pub const MAX_SOURCE_CHARS: usize = 256;

/// Fields of a record logged (the first, in key order); the number of the
/// others is logged as `fields_dropped`.
pub const MAX_FIELDS: usize = 16;

/// Characters of a field's key logged, after escaping; the rest is cut and
/// marked with `…`.
pub const MAX_FIELD_KEY_CHARS: usize = 64;

/// Characters of a field's value logged, after escaping; the rest is cut and
/// marked with `…`.
pub const MAX_FIELD_VALUE_CHARS: usize = 2048;

/// Characters of a batch's session kept, after escaping; the rest is cut and
/// marked with `…`.
pub const MAX_SESSION_CHARS: usize = 128;

/// A batch of log records from a client.
#[crate::event("telemetry/batch")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct TelemetryBatch {
    /// The records, oldest first.
    pub records: Vec<TelemetryRecord>,
    /// Records the client dropped because its buffer was full.
    #[serde(default)]
    pub dropped: u32,
    /// The client's telemetry session: its own name for the run it reports
    /// on, the same across its reconnections. Empty: the connection's,
    /// `conn-<conn_id>`.
    #[serde(default)]
    pub session: String,
}

/// One log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct TelemetryRecord {
    /// Its level.
    pub level: TelemetryLevel,
    /// What happened.
    pub message: String,
    /// Where it happened on the client (`console`, `window.onerror`, a module path).
    #[serde(default)]
    pub source: String,
    /// When, in milliseconds since the Unix epoch, by the client's clock.
    #[serde(default)]
    pub at_ms: u64,
    /// Extra key/value details.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// The level of a [`TelemetryRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub enum TelemetryLevel {
    /// An error.
    Error,
    /// A warning.
    Warn,
    /// Information.
    Info,
    /// Debugging detail.
    Debug,
    /// Fine-grained tracing.
    Trace,
}

/// The server's route for [`TelemetryBatch`]: hands the records that fit the
/// connection's budget, escaped and cut (see the [module](self) docs), to the
/// server's [`TelemetrySink`].
///
/// Fails with `forbidden` when the server requires a user for telemetry and
/// the connection has none.
#[crate::handler]
pub async fn record_telemetry(ctx: Ctx, batch: TelemetryBatch) -> Result<(), ErrorReply> {
    let server = ctx.server();
    let default_config;
    let config = match &server {
        Some(server) => server.telemetry_config(),
        None => {
            default_config = TelemetryConfig::default();
            &default_config
        }
    };
    let sink: Arc<dyn TelemetrySink> = match &server {
        Some(server) => server.telemetry_sink(),
        None => Arc::new(TracingSink),
    };
    let conn = ctx.conn_id();
    let ConnId(conn_id) = conn;
    let user_id = ctx
        .user_id()
        .map_or(Cow::Borrowed(""), |u| sanitize(&u.0, usize::MAX, false));
    let session = if batch.session.is_empty() {
        Cow::Owned(format!("conn-{conn_id}"))
    } else {
        sanitize(&batch.session, MAX_SESSION_CHARS, false)
    };
    let origin = TelemetryOrigin {
        conn_id: conn,
        user_id: &user_id,
        session: &session,
    };
    let budget = server
        .as_ref()
        .and_then(|server| server.telemetry_budget(conn));
    let unreported = budget.as_ref().map(|b| &b.unreported);
    let mut losses = TelemetryLosses {
        dropped_by_client: u64::from(batch.dropped),
        ..TelemetryLosses::default()
    };
    let refused = config.require_user && ctx.user_id().is_none();
    let admitted = if refused {
        losses.refused = count(batch.records.len());
        Vec::new()
    } else {
        let kept = batch.records.len().min(MAX_RECORDS_PER_BATCH);
        let records = &batch.records[..kept];
        let admitted = match &budget {
            Some(budget) => budget.admit(records),
            None => records.iter().map(TelemetryEntry::new).collect(),
        };
        losses.over_batch_size = count(batch.records.len() - kept);
        losses.over_budget = count(kept - admitted.len());
        admitted
    };
    if !admitted.is_empty() {
        sink.accept(&origin, &admitted);
    }
    if !losses.is_empty() {
        sink.lost(&origin, &losses);
    }
    if let Some(server) = &server {
        server.count_telemetry(admitted.len(), batch.records.len() - admitted.len());
    }
    report(
        unreported,
        losses,
        config.summary_interval,
        conn_id,
        &user_id,
    );
    if refused {
        return Err(ErrorReply::new(
            codes::FORBIDDEN,
            "this server takes telemetry from authenticated users only",
        )
        .with_data(serde_json::json!({ "event": TelemetryBatch::ID })));
    }
    Ok(())
}
