//! Client telemetry reaches the server's tracing output with the sender's ids.

use std::sync::{Arc, Mutex};

use sente_lite::telemetry::{TelemetryBatch, TelemetryLevel, TelemetryRecord};
use sente_lite::{Client, Server};
use tracing::field::{Field, Visit};
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

/// The process-wide collector (installed once; every test reads it).
fn collector() -> Collect {
    static COLLECT: std::sync::OnceLock<Collect> = std::sync::OnceLock::new();
    COLLECT
        .get_or_init(|| {
            let collect = Collect::default();
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(collect.clone()),
            )
            .unwrap();
            collect
        })
        .clone()
}

/// Waits until the collector has seen a record whose message is `message`.
async fn seen(collect: &Collect, message: &str) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
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
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_clients_records_are_logged_with_its_user_and_connection() {
    let collect = collector();

    let server = Server::builder()
        .auth(|_req| async { Ok(Some("ada".into())) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.ws_url()).await.unwrap();
    let conn_id = client.conn_id().unwrap();
    let record = |level, message: &str| TelemetryRecord {
        level,
        message: message.into(),
        source: "window.onerror".into(),
        at_ms: 1,
        fields: [("line".to_owned(), "42".to_owned())].into(),
    };
    client
        .send(&TelemetryBatch {
            records: vec![
                record(TelemetryLevel::Error, "boom in the page"),
                record(TelemetryLevel::Info, "clicked"),
            ],
            dropped: 0,
        })
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
    assert_eq!(all[position("clicked")].0, tracing::Level::INFO);
}

#[tokio::test]
async fn a_native_clients_own_tracing_events_are_forwarded() {
    let collect = collector();
    let server = Server::builder()
        .auth(|_req| async { Ok(Some("bob".into())) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.ws_url()).await.unwrap();
    let (layer, _task) = sente_lite::telemetry::forward_to(&client, tracing::Level::INFO);
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
    let all = collect.0.lock().unwrap().clone();
    assert!(
        !all.iter()
            .any(|(_, f)| f.iter().any(|(_, v)| v == "below the level: not forwarded"))
    );
}
