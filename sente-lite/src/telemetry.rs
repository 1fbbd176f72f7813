//! Client-to-server telemetry: log records that browsers and native clients
//! send in batches, recorded by the server in its tracing output with the
//! sender's user and connection id.
//!
//! A server routes [`TelemetryBatch`] by itself (turn it off with
//! `ServerBuilder::telemetry(false)`). Records are emitted as tracing events with
//! target `sente_lite::telemetry` at the record's level, with the fields
//! `conn_id`, `user_id`, `source` (the client's own target) and `fields`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Ctx;

/// Records a batch holds at most; the rest of a larger batch is dropped and counted.
pub const MAX_RECORDS_PER_BATCH: usize = 100;

/// Characters of a record's message kept; the rest is cut.
pub const MAX_MESSAGE_CHARS: usize = 4096;

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
}

/// One log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

fn cut(message: &str) -> &str {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => &message[..at],
        None => message,
    }
}

/// The server's route for [`TelemetryBatch`].
#[crate::handler]
pub async fn record_telemetry(ctx: Ctx, batch: TelemetryBatch) {
    let conn_id = ctx.conn_id().0;
    let user_id = ctx.user_id().map(|u| u.0.as_str()).unwrap_or("");
    let skipped = batch.records.len().saturating_sub(MAX_RECORDS_PER_BATCH);
    for record in batch.records.iter().take(MAX_RECORDS_PER_BATCH) {
        let message = cut(&record.message);
        let source = record.source.as_str();
        let fields = &record.fields;
        let at_ms = record.at_ms;
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "sente_lite::telemetry", $level, conn_id, user_id, source, at_ms, ?fields, "{message}")
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
    if skipped > 0 || batch.dropped > 0 {
        tracing::warn!(
            target: "sente_lite::telemetry",
            conn_id,
            user_id,
            skipped,
            dropped_by_client = batch.dropped,
            "telemetry records lost"
        );
    }
}
