//! The tracing spans a server emits, collected from the real pipeline by a
//! subscriber layer: `connection`, `handler` and `request`, with their ids.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sente_lite::{Client, Router, Server};
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};

#[sente_lite::event("spans/double", reply = u32)]
#[derive(Debug, Serialize, Deserialize)]
struct Double(u32);

#[sente_lite::event("spans/ask", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Ask;

#[sente_lite::handler]
async fn double(req: Double) -> u32 {
    req.0 * 2
}

#[sente_lite::handler]
async fn answer(_req: Ask) -> String {
    "here".into()
}

/// Spans by id: name and fields (as recorded so far).
type Spans = Arc<Mutex<BTreeMap<u64, (String, BTreeMap<String, String>)>>>;

#[derive(Clone, Default)]
struct Collect(Spans);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        if attrs.metadata().target() != "sente_lite" {
            return;
        }
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .insert(id.into_u64(), (attrs.metadata().name().to_owned(), fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some((_, fields)) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

fn find(spans: &Spans, name: &str) -> Vec<BTreeMap<String, String>> {
    spans
        .lock()
        .unwrap()
        .values()
        .filter(|(n, _)| n == name)
        .map(|(_, f)| f.clone())
        .collect()
}

#[tokio::test]
async fn connections_handlers_and_requests_have_spans_with_their_ids() {
    let collect = Collect::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with(collect.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let server = Server::builder()
        .router(Router::new().handler(double))
        .auth(|_req| async { Ok(Some("ada".into())) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::builder(server.ws_url())
        .router(Router::new().handler(answer))
        .connect()
        .await
        .unwrap();
    assert_eq!(client.request(&Double(21)).await.unwrap(), 42);
    let conn_id = client.conn_id().unwrap();
    assert_eq!(server.request(conn_id, &Ask).await.unwrap(), "here");

    let connections = find(&collect.0, "connection");
    let conn = connections
        .iter()
        .find(|f| f.get("conn_id") == Some(&conn_id.0.to_string()))
        .expect("a connection span for the client's connection");
    assert_eq!(conn.get("user_id").map(String::as_str), Some("ada"));
    assert_eq!(conn.get("codec").map(String::as_str), Some("json"));
    assert!(
        conn.get("remote")
            .is_some_and(|r| r.starts_with("127.0.0.1:")),
        "{conn:?}"
    );

    let handlers = find(&collect.0, "handler");
    let handler = handlers
        .iter()
        .find(|f| f.get("event").map(String::as_str) == Some("spans/double"))
        .expect("a handler span for the request");
    assert!(
        handler.contains_key("req_id") && handler.contains_key("size"),
        "{handler:?}"
    );

    let requests = find(&collect.0, "request");
    let request = requests
        .iter()
        .find(|f| f.get("event").map(String::as_str) == Some("spans/ask"))
        .expect("a request span for the server's request");
    assert_eq!(request.get("outcome").map(String::as_str), Some("ok"));
    assert_eq!(
        request.get("deadline_ms").map(String::as_str),
        Some("10000")
    );
}
