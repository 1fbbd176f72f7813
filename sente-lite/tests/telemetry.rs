//! Client telemetry reaches the server's tracing output with the sender's ids,
//! and a client cannot forge log lines, flood the log, or (when the server says
//! so) send it anonymously.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use sente_lite::server::TelemetryConfig;
use sente_lite::telemetry::{
    MAX_FIELDS, MAX_SOURCE_CHARS, TelemetryBatch, TelemetryEntry, TelemetryLevel, TelemetryLosses,
    TelemetryOrigin, TelemetryRecord, TelemetrySink,
};
use sente_lite::{Client, Server};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Collects the events of target `sente_lite::telemetry` as `field=value` lists.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Seen>>>);

/// One event: its level and its fields as `(name, value)`.
type Seen = (tracing::Level, Vec<(String, String)>);

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name().to_owned(), value.to_string()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == "sente_lite::telemetry" {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            self.0
                .lock()
                .unwrap()
                .push((*event.metadata().level(), fields.0));
        }
    }
}

/// What the plain-text formatter wrote: the log as an operator reads it.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines holding every one of `parts`.
    fn lines_with(&self, parts: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| parts.iter().all(|p| line.contains(p)))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until some line holds every one of `parts`.
    async fn wait_for(&self, parts: &[&str], within: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let lines = self.lines_with(parts);
            if !lines.is_empty() {
                return lines;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no line with {parts:?} in:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl std::io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide collector and plain-text output (installed once; every
/// test reads them, and tells its own lines apart by connection id or text).
fn collector() -> (Collect, Output) {
    static INSTALLED: std::sync::OnceLock<(Collect, Output)> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let collect = Collect::default();
            let output = Output::default();
            let writer = output.clone();
            let fmt = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target("sente_lite::telemetry", tracing::Level::TRACE),
                );
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry()
                    .with(collect.clone())
                    .with(fmt),
            )
            .unwrap();
            (collect, output)
        })
        .clone()
}

/// Waits until the collector has seen a record whose message is `message`.
async fn seen(collect: &Collect, message: &str) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let found = collect
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|(_, fields)| fields.iter().any(|(k, v)| k == "message" && v == message))
            .map(|(_, fields)| fields.clone());
        if let Some(fields) = found {
            return fields;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no record {message:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn record(level: TelemetryLevel, message: &str) -> TelemetryRecord {
    TelemetryRecord {
        level,
        message: message.into(),
        source: "window.onerror".into(),
        at_ms: 1,
        fields: [("line".to_owned(), "42".to_owned())].into(),
    }
}

fn batch(records: Vec<TelemetryRecord>) -> TelemetryBatch {
    TelemetryBatch {
        session: String::new(),
        records,
        dropped: 0,
    }
}

#[tokio::test]
async fn a_clients_records_are_logged_with_its_user_and_connection() {
    let (collect, _) = collector();

    let server = Server::builder()
        .auth(|_req| async { Ok(Some("ada".into())) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.ws_url()).await.unwrap();
    let conn_id = client.conn_id().unwrap();
    client
        .send(&batch(vec![
            record(TelemetryLevel::Error, "boom in the page"),
            record(TelemetryLevel::Info, "clicked"),
        ]))
        .unwrap();

    seen(&collect, "clicked").await;
    let all = collect.0.lock().unwrap().clone();
    let position = |m: &str| {
        all.iter()
            .position(|(_, f)| f.iter().any(|(k, v)| k == "message" && v == m))
            .unwrap()
    };
    let (level, fields) = &all[position("boom in the page")];
    assert_eq!(*level, tracing::Level::ERROR);
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("message").as_deref(), Some("boom in the page"));
    assert_eq!(get("user_id").as_deref(), Some("ada"));
    assert_eq!(get("conn_id"), Some(conn_id.0.to_string()));
    assert_eq!(get("source").as_deref(), Some("window.onerror"));
    assert_eq!(get("fields").as_deref(), Some(r#"{"line": "42"}"#));
    assert_eq!(get("session"), Some(format!("conn-{}", conn_id.0)));
    assert_eq!(all[position("clicked")].0, tracing::Level::INFO);
    assert_eq!(server.stats().telemetry_logged, 2);
    assert_eq!(server.stats().telemetry_dropped, 0);
}

#[tokio::test]
async fn a_native_clients_own_tracing_events_are_forwarded() {
    let (collect, _) = collector();
    let server = Server::builder()
        .auth(|_req| async { Ok(Some("bob".into())) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.ws_url()).await.unwrap();
    let (layer, _task) = sente_lite::telemetry::forward_to(&client, tracing::Level::INFO);
    let layer_session = layer.session().to_owned();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(target: "app::disk", free_mb = 12, "disk almost full");
        tracing::debug!(target: "app::disk", "below the level: not forwarded");
    });
    let fields = seen(&collect, "disk almost full").await;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("user_id").as_deref(), Some("bob"));
    assert_eq!(get("source").as_deref(), Some("app::disk"));
    assert!(get("fields").unwrap().contains("free_mb"), "{fields:?}");
    let session = layer_session.clone();
    assert_eq!(session.len(), 16);
    assert!(session.bytes().all(|b| b.is_ascii_hexdigit()), "{session}");
    assert_eq!(get("session"), Some(session));
    let all = collect.0.lock().unwrap().clone();
    assert!(
        !all.iter()
            .any(|(_, f)| f.iter().any(|(_, v)| v == "below the level: not forwarded"))
    );
}

#[tokio::test]
async fn a_newline_in_a_message_is_one_line_with_the_newline_escaped() {
    let (collect, output) = collector();
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let client = Client::connect(server.ws_url()).await.unwrap();
    let forged = "2030-01-01T00:00:00Z ERROR sente_lite: admin-logged-in-5e1";
    let mut injected = record(
        TelemetryLevel::Info,
        &format!("newline-probe-5e1\n{forged}\r\n\u{1b}[31mred\u{7f}\u{85}\u{2028}"),
    );
    injected.source = "src\nforged-source-5e1".into();
    injected.fields = [(
        "key\nforged-key-5e1".to_owned(),
        "value\r\nforged-value-5e1\"".to_owned(),
    )]
    .into();
    client.send(&batch(vec![injected])).unwrap();

    let lines = output
        .wait_for(&["newline-probe-5e1"], Duration::from_secs(5))
        .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(
        line.contains(&format!(
            r"newline-probe-5e1\n{forged}\r\n\u{{1b}}[31mred\u{{7f}}\u{{85}}\u{{2028}}"
        )),
        "{line}"
    );
    assert!(
        line.contains(r#"{"key\nforged-key-5e1": "value\r\nforged-value-5e1\""}"#),
        "{line}"
    );
    // What a subscriber is handed is escaped, whatever its format.
    let fields = seen(
        &collect,
        &format!(r"newline-probe-5e1\n{forged}\r\n\u{{1b}}[31mred\u{{7f}}\u{{85}}\u{{2028}}"),
    )
    .await;
    assert!(
        fields
            .iter()
            .any(|(k, v)| k == "source" && v == r"src\nforged-source-5e1"),
        "{fields:?}"
    );
    // Nothing the client sent starts a line of its own.
    let text = output.text();
    for forged in [
        "2030-01-01",
        "forged-source-5e1",
        "forged-key-5e1",
        "forged-value-5e1",
        "[31mred",
    ] {
        assert!(
            text.lines()
                .filter(|l| l.contains(forged))
                .all(|l| l.contains("newline-probe-5e1")),
            "{forged} on a line of its own:\n{text}"
        );
    }
    assert!(!text.contains('\u{1b}'), "a raw ESC reached the log");
}

#[tokio::test]
async fn a_200_kb_source_and_other_oversized_texts_are_cut() {
    let (collect, output) = collector();
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let client = Client::connect(server.ws_url()).await.unwrap();
    let mut huge = record(TelemetryLevel::Warn, "oversized-probe-b07");
    huge.source = "s".repeat(200_000);
    huge.fields = (0..40)
        .map(|i| (format!("{i:02}{}", "k".repeat(1000)), "v".repeat(10_000)))
        .collect();
    client.send(&batch(vec![huge])).unwrap();

    let fields = seen(&collect, "oversized-probe-b07").await;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        get("source"),
        format!("{}…", "s".repeat(MAX_SOURCE_CHARS)),
        "the source is cut and marked"
    );
    assert_eq!(get("fields_dropped"), (40 - MAX_FIELDS).to_string());
    let logged_fields = get("fields");
    assert_eq!(logged_fields.matches("…\": \"").count(), MAX_FIELDS);
    assert!(logged_fields.contains(&format!("00{}…", "k".repeat(62))));
    assert!(logged_fields.contains(&format!("{}…", "v".repeat(2048))));
    assert!(!logged_fields.contains(&"v".repeat(2049)));

    let lines = output.lines_with(&["oversized-probe-b07"]);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].len() < 40_000,
        "the line is {} bytes long",
        lines[0].len()
    );
}

#[tokio::test]
async fn a_flood_is_cut_to_the_budget_counted_and_summed_up_in_one_line() {
    let (_, output) = collector();
    let mut telemetry = TelemetryConfig::default();
    telemetry.records_per_sec = 5;
    telemetry.records_burst = 30;
    telemetry.bytes_per_sec = 16 << 10;
    telemetry.bytes_burst = 64 << 10;
    telemetry.summary_interval = Duration::from_secs(3);
    let server = Server::builder()
        .telemetry_config(telemetry)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.ws_url()).await.unwrap();
    let conn_id = client.conn_id().unwrap().0;
    let conn = format!("conn_id={conn_id} ");

    // 40 batches of 100 records of 2.5 KB: 10 MB of messages at once.
    let started = tokio::time::Instant::now();
    let message = format!("flood-probe-31c {}", "x".repeat(2500));
    for _ in 0..40 {
        client
            .send(&batch(vec![record(TelemetryLevel::Error, &message); 100]))
            .unwrap();
    }
    let deadline = started + Duration::from_secs(20);
    while {
        let stats = server.stats();
        stats.telemetry_logged + stats.telemetry_dropped < 4000
    } {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            server.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = server.stats();
    let logged = output.lines_with(&[&conn, "flood-probe-31c"]);
    assert_eq!(logged.len() as u64, stats.telemetry_logged);
    assert_eq!(stats.telemetry_dropped, 4000 - stats.telemetry_logged);
    // What was logged fits the budget: the byte bucket (64 KiB, then 16 KiB a
    // second) lets ~26 records of 2.5 KB through, plus the one that empties it.
    let logged_text: usize = logged.iter().map(|l| l.len()).sum();
    let allowed = (64 << 10) as f64 + (16 << 10) as f64 * elapsed + 2.0 * message.len() as f64;
    assert!(
        (logged_text as f64) < allowed + 200.0 * logged.len() as f64,
        "{logged_text} bytes logged in {elapsed:.1} s"
    );
    assert!(stats.telemetry_logged >= 20, "{stats:?}");
    assert!(
        (stats.telemetry_logged as f64) <= 30.0 + 5.0 * elapsed + 1.0,
        "{stats:?} in {elapsed:.1} s"
    );

    // One summary line, after the interval, with every loss in it.
    let summaries = output
        .wait_for(&["telemetry records lost", &conn], Duration::from_secs(10))
        .await;
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert!(
        summaries[0].contains(&format!("over_budget={}", stats.telemetry_dropped)),
        "{summaries:?} {stats:?}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        output.lines_with(&["telemetry records lost", &conn]).len(),
        1,
        "one summary line, not one per dropped record or batch"
    );
    assert!(
        server.metrics_text().contains(&format!(
            "sente_lite_telemetry_dropped_total {}",
            stats.telemetry_dropped
        )),
        "{}",
        server.metrics_text()
    );
}

#[tokio::test]
async fn anonymous_telemetry_is_refused_when_a_user_is_required() {
    let (_, output) = collector();
    let server = Server::builder()
        .auth(|req| async move { Ok(req.query("name").map(Into::into)) })
        .telemetry_require_user(true)
        .bind("127.0.0.1:0")
        .await
        .unwrap();

    // An anonymous connection, speaking the JSON protocol by hand.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let _handshake = ws.next().await.unwrap().unwrap();
    let frame = serde_json::json!([
        "telemetry/batch",
        { "records": [{ "level": "error", "message": "anonymous-probe-a11" }] }
    ]);
    ws.send(tungstenite::Message::text(frame.to_string()))
        .await
        .unwrap();
    let error = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let message = ws.next().await.unwrap().unwrap();
            let Ok(text) = message.to_text() else {
                continue;
            };
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            if value[0] == "sl/error" {
                return value[1].clone();
            }
        }
    })
    .await
    .expect("an sl/error frame");
    assert_eq!(error["code"], "forbidden", "{error}");
    assert_eq!(error["data"]["event"], "telemetry/batch", "{error}");
    assert_eq!(server.stats().telemetry_dropped, 1);

    // The same server logs a named user's records.
    let client = Client::connect(format!("{}?name=ada", server.ws_url()))
        .await
        .unwrap();
    client
        .send(&batch(vec![record(
            TelemetryLevel::Error,
            "authenticated-probe-a11",
        )]))
        .unwrap();
    output
        .wait_for(&["authenticated-probe-a11"], Duration::from_secs(5))
        .await;
    assert!(output.lines_with(&["anonymous-probe-a11"]).is_empty());
    assert_eq!(server.stats().telemetry_logged, 1);
}

#[tokio::test]
async fn the_forwarder_sends_a_trickle_within_a_second_of_its_first_record() {
    let (_, output) = collector();
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let client = Client::connect(server.ws_url()).await.unwrap();
    let (layer, _task) = sente_lite::telemetry::forward_to(&client, tracing::Level::INFO);

    // One record every 100 ms for 3 s: far from a full batch of 50.
    let trickle = std::thread::spawn(move || {
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..30 {
                tracing::info!(target: "app::trickle", "trickle-probe-e4f #{i}");
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    });
    let first_sent = tokio::time::Instant::now();
    output
        .wait_for(&["trickle-probe-e4f #0"], Duration::from_secs(5))
        .await;
    let waited = first_sent.elapsed();
    assert!(
        waited < Duration::from_millis(1500),
        "the first record arrived {waited:?} after it was sent"
    );
    assert!(
        !trickle.is_finished(),
        "it arrived before the trickle ended"
    );
    let arrived = output.lines_with(&["trickle-probe-e4f"]).len();
    assert!(arrived < 20, "{arrived} records arrived in the first batch");
    tokio::task::spawn_blocking(move || trickle.join().unwrap())
        .await
        .unwrap();
    output
        .wait_for(&["trickle-probe-e4f #29"], Duration::from_secs(3))
        .await;
}

/// A record as a sink filed it: session, user, level, message and fields.
type FiledRecord = (
    String,
    String,
    TelemetryLevel,
    String,
    Vec<(String, String)>,
);

/// What a sink was given: each record, and the losses of each batch.
#[derive(Default)]
struct Filed {
    records: Mutex<Vec<FiledRecord>>,
    losses: Mutex<Vec<(String, TelemetryLosses)>>,
}

#[derive(Clone, Default)]
struct FilingSink(Arc<Filed>);

impl TelemetrySink for FilingSink {
    fn accept(&self, origin: &TelemetryOrigin<'_>, records: &[TelemetryEntry<'_>]) {
        let mut filed = self.0.records.lock().unwrap();
        for r in records {
            let fields = r
                .fields()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            filed.push((
                origin.session.to_owned(),
                origin.user_id.to_owned(),
                r.level(),
                r.message().to_owned(),
                fields,
            ));
        }
    }

    fn lost(&self, origin: &TelemetryOrigin<'_>, losses: &TelemetryLosses) {
        self.0
            .losses
            .lock()
            .unwrap()
            .push((origin.session.to_owned(), *losses));
    }
}

#[tokio::test]
async fn a_sink_of_the_applications_gets_the_records_with_their_session_instead_of_the_log() {
    let (collect, _) = collector();
    let sink = FilingSink::default();
    let mut telemetry = TelemetryConfig::default();
    telemetry.records_burst = 3;
    telemetry.records_per_sec = 1;
    let server = Server::builder()
        .auth(|_req| async { Ok(Some("eve".into())) })
        .telemetry_config(telemetry)
        .telemetry_sink(sink.clone())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.ws_url()).await.unwrap();
    let mut first = batch(vec![
        record(TelemetryLevel::Error, "line one\nforged"),
        record(TelemetryLevel::Warn, "second"),
    ]);
    first.session = "page-7\u{1b}[31m".into();
    first.dropped = 4;
    client.send(&first).unwrap();
    let mut second = batch(vec![record(TelemetryLevel::Info, "third"); 5]);
    second.session = "page-7\u{1b}[31m".into();
    client.send(&second).unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sink.0.losses.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sink heard no losses"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let records = sink.0.records.lock().unwrap().clone();
    let session = r"page-7\u{1b}[31m";
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(
        records[0].0, session,
        "the session is escaped like any text"
    );
    assert_eq!(records[0].1, "eve");
    assert_eq!(records[0].2, TelemetryLevel::Error);
    assert_eq!(records[0].3, r"line one\nforged");
    assert_eq!(records[0].4, vec![("line".to_owned(), "42".to_owned())]);
    assert_eq!(records[2].3, "third");
    let losses = sink.0.losses.lock().unwrap().clone();
    assert_eq!(losses[0].0, session);
    assert_eq!(losses[0].1.dropped_by_client, 4);
    assert_eq!(losses[0].1.total(), 4);
    assert_eq!(
        losses[1].1.over_budget, 4,
        "a burst of 3 lets one of the five through"
    );
    // Nothing went to the tracing output but the summary line.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        collect
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|(_, f)| !f.iter().any(|(k, v)| k == "message" && v.contains("third"))),
        "records went to the sink, not the log"
    );
    assert_eq!(server.stats().telemetry_logged, 3);
    assert_eq!(server.stats().telemetry_dropped, 4);
}
