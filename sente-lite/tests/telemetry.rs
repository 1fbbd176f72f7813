//! Client telemetry reaches the server's tracing output with the sender's ids.

use std::sync::{Arc, Mutex};

use sente_lite::telemetry::{TelemetryBatch, TelemetryLevel, TelemetryRecord};
use sente_lite::{Client, Server};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Collects the events of target `sente_lite::telemetry` as `field=value` lists.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<(tracing::Level, Vec<(String, String)>)>>>);

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

#[tokio::test]
async fn a_clients_records_are_logged_with_its_user_and_connection() {
    let collect = Collect::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(collect.clone()))
        .unwrap();

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

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while collect.0.lock().unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let seen = collect.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (level, fields) = &seen[0];
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
    assert_eq!(seen[1].0, tracing::Level::INFO);
}
