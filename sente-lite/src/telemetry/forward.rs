//! A client's own tracing events, forwarded to its server in batches.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use super::{
    MAX_FIELD_KEY_CHARS, MAX_FIELD_VALUE_CHARS, MAX_FIELDS, MAX_MESSAGE_CHARS, MAX_SOURCE_CHARS,
    TelemetryBatch, TelemetryLevel, TelemetryRecord,
};
use crate::Client;

/// Records waiting to be sent; past it, new records are dropped and counted.
const BUFFER: usize = 1024;
/// Records per batch.
const BATCH: usize = 50;
/// Bytes of text (messages, sources, field keys and values) per batch:
/// a batch is sent once it holds this much, so it stays well below a
/// server's message size limit (1 MiB by default).
const BATCH_BYTES: usize = 64 << 10;
/// A partial batch is sent at most this long after its first record.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A `tracing` layer that forwards the application's events (not sente-lite's
/// own, to avoid loops) at `min_level` or above to the server as
/// [`TelemetryBatch`]es. Build it with [`forward_to`].
#[derive(Debug)]
pub struct ForwardLayer {
    tx: mpsc::Sender<TelemetryRecord>,
    dropped: Arc<AtomicU32>,
    min_level: tracing::Level,
    session: Arc<str>,
}

impl ForwardLayer {
    /// The telemetry session its batches name: 16 random hexadecimal digits
    /// chosen by [`forward_to`], the same across the client's reconnections.
    pub fn session(&self) -> &str {
        &self.session
    }
}

/// A layer forwarding to `client`, and the task that batches and sends.
/// Its batches name one telemetry session ([`ForwardLayer::session`]).
///
/// A batch is sent when it holds 50 records or 64 KiB of text, or 1 s after
/// its first record, whichever comes first. Texts are cut to the server's
/// limits ([`MAX_MESSAGE_CHARS`](super::MAX_MESSAGE_CHARS) and the others,
/// marked with `…`) and at most [`MAX_FIELDS`](super::MAX_FIELDS) fields
/// are kept. At most 1024 records wait; more are dropped and the count is
/// sent with the next batch. While the client is away, batches wait in its
/// bounded send queue; when that is full they are dropped and counted too.
pub fn forward_to(
    client: &Client,
    min_level: tracing::Level,
) -> (ForwardLayer, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<TelemetryRecord>(BUFFER);
    let dropped = Arc::new(AtomicU32::new(0));
    let session: Arc<str> = format!("{:016x}", fastrand::u64(..)).into();
    let layer = ForwardLayer {
        tx,
        dropped: Arc::clone(&dropped),
        min_level,
        session: Arc::clone(&session),
    };
    let client = client.clone();
    let task = tokio::spawn(forward(client, rx, dropped, session));
    (layer, task)
}

/// Text bytes of a record, as counted against [`BATCH_BYTES`].
fn text_bytes(record: &TelemetryRecord) -> usize {
    record.message.len()
        + record.source.len()
        + record
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// Sends batches until every layer is gone.
async fn forward(
    client: Client,
    mut rx: mpsc::Receiver<TelemetryRecord>,
    dropped: Arc<AtomicU32>,
    session: Arc<str>,
) {
    let mut closed = false;
    while !closed {
        // A batch starts with its first record, however long that takes;
        // from then on it waits at most FLUSH_EVERY.
        let Some(first) = rx.recv().await else {
            break;
        };
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        let mut bytes = text_bytes(&first);
        let mut records = Vec::with_capacity(BATCH);
        records.push(first);
        while records.len() < BATCH && bytes < BATCH_BYTES {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(record)) => {
                    bytes += text_bytes(&record);
                    records.push(record);
                }
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
        let lost = dropped.swap(0, Ordering::Relaxed);
        if client
            .send(&TelemetryBatch {
                records,
                dropped: lost,
                session: session.to_string(),
            })
            .is_err()
        {
            dropped.fetch_add(lost.saturating_add(count), Ordering::Relaxed);
        }
    }
}

/// `text` in at most `max` characters, ending with `…` when something was
/// cut (so the server, which allows `max`, does not cut it again).
fn cut(mut text: String, max: usize) -> String {
    if text.chars().nth(max).is_some() {
        let at = text
            .char_indices()
            .nth(max.saturating_sub(1))
            .map_or(text.len(), |(at, _)| at);
        text.truncate(at);
        text.push('…');
    }
    text
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
            message: cut(fields.message, MAX_MESSAGE_CHARS),
            source: cut(meta.target().to_owned(), MAX_SOURCE_CHARS),
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            fields: fields
                .fields
                .into_iter()
                .take(MAX_FIELDS)
                .map(|(k, v)| (cut(k, MAX_FIELD_KEY_CHARS), cut(v, MAX_FIELD_VALUE_CHARS)))
                .collect(),
        };
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
