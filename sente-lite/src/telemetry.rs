//! Client-to-server telemetry: log records that browsers and native clients
//! send in batches, recorded by the server in its tracing output with the
//! sender's user and connection id.
//!
//! A server routes [`TelemetryBatch`] by itself (turn it off with
//! `ServerBuilder::telemetry(false)`). Records are emitted as tracing events with
//! target `sente_lite::telemetry` at the record's level, with the fields
//! `conn_id`, `user_id`, `source` (the client's own target), `at_ms`, `fields`
//! and, when some were cut, `fields_dropped`.
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

use crate::bucket::TokenBucket;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::protocol::{ConnId, codes};
use crate::server::TelemetryConfig;
use crate::{Ctx, ErrorReply, Event as _};

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

/// The mark that ends a cut text.
const CUT_MARK: char = '…';

/// Whether `c` is written as an escape: C0 and C1 controls, DEL, the
/// backslash, line and paragraph separators, bidirectional formatting
/// characters, and the double quote when `quote` is set.
fn must_escape(c: char, quote: bool) -> bool {
    c.is_control()
        || c == '\\'
        || (quote && c == '"')
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Writes the escape of `c` (ASCII) to `out`.
fn push_escape(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\\' => out.push_str("\\\\"),
        '"' => out.push_str("\\\""),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

/// `text` with control characters escaped (see the [module](self) docs), at
/// most `max` characters of it (an escape is never split), ending with `…`
/// when something was cut. Borrows when nothing changes.
pub(crate) fn sanitize(text: &str, max: usize, quote: bool) -> Cow<'_, str> {
    for (kept, (at, c)) in text.char_indices().enumerate() {
        if kept == max || must_escape(c, quote) {
            return Cow::Owned(sanitize_from(text, at, kept, max, quote));
        }
    }
    Cow::Borrowed(text)
}

fn sanitize_from(text: &str, at: usize, mut kept: usize, max: usize, quote: bool) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(4)) + 8);
    out.push_str(&text[..at]);
    let mut escape = String::new();
    for c in text[at..].chars() {
        let escaped = must_escape(c, quote);
        if escaped {
            escape.clear();
            push_escape(&mut escape, c);
        }
        let piece = escaped.then_some(escape.as_str());
        let width = piece.map_or(1, str::len);
        if kept.saturating_add(width) > max {
            out.push(CUT_MARK);
            break;
        }
        match piece {
            Some(piece) => out.push_str(piece),
            None => out.push(c),
        }
        kept += width;
    }
    out
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

/// A record made safe to log.
struct Logged<'a> {
    level: TelemetryLevel,
    message: Cow<'a, str>,
    source: Cow<'a, str>,
    at_ms: u64,
    fields: LoggedFields<'a>,
    fields_dropped: usize,
}

impl<'a> Logged<'a> {
    fn new(record: &'a TelemetryRecord) -> Self {
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

    /// Bytes of text this record puts in the log.
    fn bytes(&self) -> usize {
        self.message.len()
            + self.source.len()
            + self
                .fields
                .0
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    fn emit(&self, conn_id: u64, user_id: &str) {
        let message = &self.message;
        let source = self.source.as_ref();
        let at_ms = self.at_ms;
        let fields = &self.fields;
        let fields_dropped = (self.fields_dropped > 0).then_some(self.fields_dropped);
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "sente_lite::telemetry",
                    $level,
                    conn_id,
                    user_id,
                    source,
                    at_ms,
                    %fields,
                    fields_dropped,
                    "{message}"
                )
            };
        }
        match self.level {
            TelemetryLevel::Error => emit!(tracing::Level::ERROR),
            TelemetryLevel::Warn => emit!(tracing::Level::WARN),
            TelemetryLevel::Info => emit!(tracing::Level::INFO),
            TelemetryLevel::Debug => emit!(tracing::Level::DEBUG),
            TelemetryLevel::Trace => emit!(tracing::Level::TRACE),
        }
    }
}

/// Records lost, by cause.
#[derive(Debug, Default, Clone, Copy)]
struct Losses {
    over_budget: u64,
    over_batch_size: u64,
    refused: u64,
    dropped_by_client: u64,
}

impl Losses {
    fn is_empty(&self) -> bool {
        self.over_budget == 0
            && self.over_batch_size == 0
            && self.refused == 0
            && self.dropped_by_client == 0
    }

    fn add(&mut self, other: &Losses) {
        self.over_budget = self.over_budget.saturating_add(other.over_budget);
        self.over_batch_size = self.over_batch_size.saturating_add(other.over_batch_size);
        self.refused = self.refused.saturating_add(other.refused);
        self.dropped_by_client = self
            .dropped_by_client
            .saturating_add(other.dropped_by_client);
    }

    fn log(&self, conn_id: u64, user_id: &str) {
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

/// Losses not yet logged, and whether a summary line is already due.
#[derive(Debug, Default)]
struct Unreported {
    losses: Losses,
    scheduled: bool,
}

/// The two token buckets of a connection.
#[derive(Debug)]
struct Buckets {
    records: TokenBucket,
    bytes: TokenBucket,
}

/// A connection's telemetry budget and its losses waiting for the summary line.
#[derive(Debug)]
pub(crate) struct Budget {
    buckets: Mutex<Buckets>,
    unreported: Arc<Mutex<Unreported>>,
}

impl Budget {
    /// A full budget.
    pub(crate) fn new(config: &TelemetryConfig) -> Self {
        Self {
            buckets: Mutex::new(Buckets {
                records: TokenBucket::new(
                    f64::from(config.records_burst),
                    f64::from(config.records_per_sec),
                ),
                bytes: TokenBucket::new(
                    f64::from(config.bytes_burst),
                    f64::from(config.bytes_per_sec),
                ),
            }),
            unreported: Arc::default(),
        }
    }

    /// The records (in order) that fit the budget, made safe to log; the
    /// rest are over it. A record passes while both buckets hold a token; it
    /// then takes one record and its bytes, which may leave the byte bucket
    /// owing.
    fn admit<'a>(&self, records: &'a [TelemetryRecord]) -> Vec<Logged<'a>> {
        let mut b = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        let mut admitted = Vec::new();
        for record in records {
            if b.records.tokens(now) < 1.0 || b.bytes.tokens(now) <= 0.0 {
                break;
            }
            let logged = Logged::new(record);
            b.records.spend(1.0);
            b.bytes.spend(logged.bytes() as f64);
            admitted.push(logged);
        }
        admitted
    }
}

/// Adds `losses` to what `unreported` holds and makes sure a summary line is
/// due within `interval`; without `unreported` (no server), logs them now.
fn report(
    unreported: Option<&Arc<Mutex<Unreported>>>,
    losses: Losses,
    interval: Duration,
    conn_id: u64,
    user_id: &str,
) {
    if losses.is_empty() {
        return;
    }
    let Some(unreported) = unreported else {
        losses.log(conn_id, user_id);
        return;
    };
    let mut pending = unreported.lock().unwrap_or_else(PoisonError::into_inner);
    pending.losses.add(&losses);
    if pending.scheduled {
        return;
    }
    pending.scheduled = true;
    let unreported = Arc::clone(unreported);
    let user_id = user_id.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(interval).await;
        let losses = {
            let mut pending = unreported.lock().unwrap_or_else(PoisonError::into_inner);
            pending.scheduled = false;
            std::mem::take(&mut pending.losses)
        };
        if !losses.is_empty() {
            losses.log(conn_id, &user_id);
        }
    });
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The server's route for [`TelemetryBatch`]: logs the records that fit the
/// connection's budget, escaped and cut (see the [module](self) docs).
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
    let ConnId(conn_id) = ctx.conn_id();
    let user_id = ctx
        .user_id()
        .map_or(Cow::Borrowed(""), |u| sanitize(&u.0, usize::MAX, false));
    let budget = server
        .as_ref()
        .and_then(|server| server.telemetry_budget(ctx.conn_id()));
    let unreported = budget.as_ref().map(|b| &b.unreported);
    let mut losses = Losses {
        dropped_by_client: u64::from(batch.dropped),
        ..Losses::default()
    };
    if config.require_user && ctx.user_id().is_none() {
        losses.refused = count(batch.records.len());
        if let Some(server) = &server {
            server.count_telemetry(0, batch.records.len());
        }
        report(
            unreported,
            losses,
            config.summary_interval,
            conn_id,
            &user_id,
        );
        return Err(ErrorReply::new(
            codes::FORBIDDEN,
            "this server takes telemetry from authenticated users only",
        )
        .with_data(serde_json::json!({ "event": TelemetryBatch::ID })));
    }
    let kept = batch.records.len().min(MAX_RECORDS_PER_BATCH);
    let records = &batch.records[..kept];
    let admitted = match &budget {
        Some(budget) => budget.admit(records),
        None => records.iter().map(Logged::new).collect(),
    };
    for record in &admitted {
        record.emit(conn_id, &user_id);
    }
    losses.over_batch_size = count(batch.records.len() - kept);
    losses.over_budget = count(kept - admitted.len());
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
    Ok(())
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

    use super::{
        MAX_FIELD_KEY_CHARS, MAX_FIELD_VALUE_CHARS, MAX_FIELDS, MAX_MESSAGE_CHARS,
        MAX_SOURCE_CHARS, TelemetryBatch, TelemetryLevel, TelemetryRecord,
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
    }

    /// A layer forwarding to `client`, and the task that batches and sends.
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
        let layer = ForwardLayer {
            tx,
            dropped: Arc::clone(&dropped),
            min_level,
        };
        let client = client.clone();
        let task = tokio::spawn(forward(client, rx, dropped));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_as_is() {
        assert!(matches!(
            sanitize("plain text, ünïcode ✓", 100, false),
            Cow::Borrowed("plain text, ünïcode ✓")
        ));
        assert!(matches!(sanitize("abc", 3, false), Cow::Borrowed("abc")));
    }

    #[test]
    fn controls_are_escaped_visibly() {
        assert_eq!(
            sanitize(
                "a\nb\rc\td\\e\u{1b}[0m\u{0}\u{7f}\u{85}\u{9f}\u{2028}\u{202e}",
                100,
                false
            ),
            r"a\nb\rc\td\\e\u{1b}[0m\u{0}\u{7f}\u{85}\u{9f}\u{2028}\u{202e}"
        );
        assert_eq!(sanitize("say \"hi\"", 100, false), "say \"hi\"");
        assert_eq!(sanitize("say \"hi\"", 100, true), r#"say \"hi\""#);
    }

    #[test]
    fn long_texts_are_cut_and_marked_without_splitting_an_escape() {
        assert_eq!(sanitize("abcdef", 4, false), "abcd…");
        assert_eq!(sanitize("ééééé", 3, false), "ééé…");
        // `\u{1b}` is 6 characters: it does not fit in the 2 left.
        assert_eq!(sanitize("abcd\u{1b}", 6, false), "abcd…");
        assert_eq!(sanitize("ab\ncd", 4, false), r"ab\n…");
        assert_eq!(sanitize("", 0, false), "");
        assert_eq!(sanitize("a", 0, false), "…");
    }

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
        let logged = Logged::new(&record);
        assert_eq!(logged.fields.0.len(), MAX_FIELDS);
        assert_eq!(logged.fields_dropped, 3);
        let text = logged.fields.to_string();
        assert!(text.starts_with(&format!(
            r#"{{"000\n": "{}…", "#,
            "v".repeat(MAX_FIELD_VALUE_CHARS)
        )));
    }
}
