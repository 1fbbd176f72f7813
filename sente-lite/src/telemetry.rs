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

#[cfg(feature = "logging")]
pub use forward::{ForwardLayer, forward_to};

#[cfg(feature = "logging")]
mod forward {
    //! A client's own tracing events, forwarded to its server in batches.

    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use tokio::sync::mpsc;
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::Context;

    use super::{TelemetryBatch, TelemetryLevel, TelemetryRecord};
    use crate::Client;

    /// Records waiting to be sent; past it, new records are dropped and counted.
    const BUFFER: usize = 1024;
    /// Records per batch.
    const BATCH: usize = 50;
    /// A partial batch waits at most this long.
    const FLUSH_EVERY: Duration = Duration::from_secs(1);

    /// A `tracing` layer that forwards the application's events (not sente-lite's
    /// own, to avoid loops) at `min_level` or above to the server as
    /// [`TelemetryBatch`]es. Build it with [`forward_to`].
    #[derive(Debug)]
    pub struct ForwardLayer {
        tx: mpsc::Sender<TelemetryRecord>,
        dropped: Arc<AtomicU32>,
        min_level: tracing::Level,
    }

    /// A layer forwarding to `client`, and the task that batches and sends.
    ///
    /// Records are batched by size (50) and time (1 s). At most 1024 wait; more
    /// are dropped and the count is sent with the next batch. While the client is
    /// away, batches wait in its bounded send queue; when that is full they are
    /// dropped and counted too.
    pub fn forward_to(
        client: &Client,
        min_level: tracing::Level,
    ) -> (ForwardLayer, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<TelemetryRecord>(BUFFER);
        let dropped = Arc::new(AtomicU32::new(0));
        let layer = ForwardLayer {
            tx,
            dropped: Arc::clone(&dropped),
            min_level,
        };
        let client = client.clone();
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let closed = match tokio::time::timeout(FLUSH_EVERY, rx.recv()).await {
                    Ok(Some(record)) => {
                        batch.push(record);
                        if batch.len() < BATCH {
                            continue;
                        }
                        false
                    }
                    Ok(None) => true,
                    Err(_) => false,
                };
                if !batch.is_empty() {
                    let records = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
                    let lost = dropped.swap(0, Ordering::Relaxed);
                    if client
                        .send(&TelemetryBatch {
                            records,
                            dropped: lost,
                        })
                        .is_err()
                    {
                        dropped.fetch_add(lost.saturating_add(count), Ordering::Relaxed);
                    }
                }
                if closed {
                    break;
                }
            }
        });
        (layer, task)
    }

    #[derive(Default)]
    struct Fields {
        message: String,
        fields: BTreeMap<String, String>,
    }

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.message, "{value:?}");
            } else {
                self.fields
                    .insert(field.name().to_owned(), format!("{value:?}"));
            }
        }

        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                self.message.push_str(value);
            } else {
                self.fields
                    .insert(field.name().to_owned(), value.to_owned());
            }
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ForwardLayer {
        fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
            let meta = event.metadata();
            if *meta.level() > self.min_level || meta.target().starts_with("sente_lite") {
                return;
            }
            let mut fields = Fields::default();
            event.record(&mut fields);
            let level = match *meta.level() {
                tracing::Level::ERROR => TelemetryLevel::Error,
                tracing::Level::WARN => TelemetryLevel::Warn,
                tracing::Level::INFO => TelemetryLevel::Info,
                tracing::Level::DEBUG => TelemetryLevel::Debug,
                _ => TelemetryLevel::Trace,
            };
            let record = TelemetryRecord {
                level,
                message: fields.message,
                source: meta.target().to_owned(),
                at_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                fields: fields.fields,
            };
            if self.tx.try_send(record).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
