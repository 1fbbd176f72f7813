//! The HTTP API from outside, over real sockets: a service publishes on a
//! channel (its JSON payload checked against the event's type and delivered
//! to subscribers in both encodings), sends to a user, disconnects a user and
//! reads presence, with a bearer key; everything else is refused with the
//! documented status and code.

mod support;

use std::sync::{Arc, Mutex};

use sente_lite::server::{ChannelOptions, HttpApiConfig, ServerError};
use sente_lite::{Client, Codec, Ctx, Router, Server};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "k-0123456789abcdef";
const NEXT_KEY: &str = "k-fedcba9876543210";

/// Published by the API in the test.
#[sente_lite::event("api.test/said")]
#[derive(Debug, Serialize, Deserialize)]
struct Said {
    text: String,
    votes: u32,
}

/// A request: not something the API publishes.
#[sente_lite::event("api.test/ask", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    text: String,
}

/// What the clients heard.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<String>>>);

#[sente_lite::handler]
async fn hear(ctx: Ctx, said: Said) {
    if let Some(heard) = ctx.state::<Heard>() {
        heard
            .0
            .lock()
            .unwrap()
            .push(format!("{} ({})", said.text, said.votes));
    }
}

/// One HTTP/1.1 request to the server; its status and JSON body (or text).
async fn call(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let addr = server.local_addr().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    if status == 401 {
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{head}"
        );
    }
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    (status, body)
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

async fn post(server: &Server, path: &str, key: &str, body: Value) -> (u16, Value) {
    let auth = bearer(key);
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    call(server, "POST", path, &headers, &body.to_string()).await
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or_default()
}

async fn client(server: &Server, user: &str, codec: Codec, heard: &Heard) -> Client {
    let client = Client::builder(format!("{}?user={user}", server.ws_url()))
        .codec(codec)
        .router(Router::new().handler(hear))
        .state(heard.clone())
        .connect()
        .await
        .unwrap();
    client.subscribe("room/a").await.unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_publishes_sends_disconnects_and_reads_presence() {
    let mut api = HttpApiConfig::with_key(KEY);
    api.keys.push(NEXT_KEY.into());
    let server = Server::builder()
        .auth(|request| async move { Ok(request.query("user").map(Into::into)) })
        .channel("room/*", sente_lite::server::allow_all)
        .channel_options(
            "room/*",
            ChannelOptions {
                presence: true,
                ..ChannelOptions::default()
            },
        )
        .http_api(api)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let (ada_heard, bob_heard) = (Heard::default(), Heard::default());
    let ada = client(&server, "ada", Codec::Json, &ada_heard).await;
    let bob = client(&server, "bob", Codec::Postcard, &bob_heard).await;

    // Published to both, each in its own encoding.
    let said = json!({"channel": "room/a", "event": "api.test/said", "payload": {"text": "hi", "votes": 3}});
    let (status, body) = post(&server, "/api/publish", KEY, said.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["position"]["offset"], 1, "{body}");
    for heard in [&ada_heard, &bob_heard] {
        support::until("heard", || *heard.0.lock().unwrap() == ["hi (3)"]).await;
    }
    // The second key opens it too (a key being replaced).
    let (status, _) = post(&server, "/api/publish", NEXT_KEY, said).await;
    assert_eq!(status, 200);

    // Presence, sorted by user.
    let auth = bearer(KEY);
    let (status, body) = call(
        &server,
        "GET",
        "/api/presence?channel=room%2Fa",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let users: Vec<&str> = body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["ada", "bob"]);

    // To one user's connections.
    let note =
        json!({"user": "ada", "event": "api.test/said", "payload": {"text": "psst", "votes": 0}});
    let (status, body) = post(&server, "/api/send", KEY, note).await;
    assert_eq!((status, &body), (200, &json!({"delivered_here": 1})));
    support::until("ada heard it", || ada_heard.0.lock().unwrap().len() == 3).await;
    assert_eq!(bob_heard.0.lock().unwrap().len(), 2, "only ada");

    // Disconnect bob, with a reason.
    let kick = json!({"user": "bob", "message": "account closed", "reconnect_after_ms": 60000});
    let (status, body) = post(&server, "/api/disconnect", KEY, kick).await;
    assert_eq!((status, &body), (200, &json!({"closed_here": 1})));
    support::until("bob told why", || bob.last_close().is_some()).await;
    let reason = bob.last_close().unwrap();
    assert_eq!(
        (reason.code.as_ref(), reason.message.as_str()),
        ("policy", "account closed")
    );
    assert!(ada.last_close().is_none());

    assert_eq!(server.stats().api_requests, 5);
    assert_eq!(server.stats().api_refused, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_code() {
    let mut api = HttpApiConfig::with_key(KEY);
    api.max_body_bytes = 256;
    let server = Server::builder()
        .http_api(api)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let said =
        |payload: Value| json!({"channel": "room/a", "event": "api.test/said", "payload": payload});

    // No key, a wrong key, another scheme.
    let json_only = [("Content-Type", "application/json")];
    let (status, body) = call(&server, "POST", "/api/publish", &json_only, "{}").await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let (status, _) = post(
        &server,
        "/api/publish",
        "k-0123456789abcdeX",
        said(json!({})),
    )
    .await;
    assert_eq!(status, 401);
    let basic = [
        ("Authorization", "Basic a2V5"),
        ("Content-Type", "application/json"),
    ];
    let (status, _) = call(&server, "POST", "/api/publish", &basic, "{}").await;
    assert_eq!(status, 401);
    assert_eq!(server.stats().api_unauthorized, 3);

    // The payload is checked against the event's type, with the field named.
    let (status, body) = post(&server, "/api/publish", KEY, said(json!({"text": "hi"}))).await;
    assert_eq!((status, code(&body)), (400, "bad-payload"), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("votes"),
        "{body}"
    );
    let (status, body) = post(
        &server,
        "/api/publish",
        KEY,
        said(json!({"text": 7, "votes": 1})),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "bad-payload"));
    assert!(body["message"].as_str().unwrap().contains("text"), "{body}");
    // Unknown events, requests, missing and unknown fields, bad channels.
    let unknown = json!({"channel": "room/a", "event": "api.test/nope", "payload": {}});
    let (status, body) = post(&server, "/api/publish", KEY, unknown).await;
    assert_eq!((status, code(&body)), (400, "bad-event"));
    let request = json!({"channel": "room/a", "event": "api.test/ask", "payload": {"text": "?"}});
    let (status, body) = post(&server, "/api/publish", KEY, request).await;
    assert_eq!((status, code(&body)), (400, "bad-event"));
    assert!(
        body["message"].as_str().unwrap().contains("request"),
        "{body}"
    );
    let (status, body) = post(
        &server,
        "/api/publish",
        KEY,
        json!({"event": "api.test/said", "payload": {}}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "bad-request"));
    let extra = json!({"channel": "room/a", "event": "api.test/said", "payload": {"text": "a", "votes": 1}, "x": 1});
    let (status, body) = post(&server, "/api/publish", KEY, extra).await;
    assert_eq!((status, code(&body)), (400, "bad-request"));
    let empty =
        json!({"channel": "", "event": "api.test/said", "payload": {"text": "a", "votes": 1}});
    let (status, body) = post(&server, "/api/publish", KEY, empty).await;
    assert_eq!((status, code(&body)), (400, "bad-channel"));

    // Body, type, method, path.
    let big = said(json!({"text": "x".repeat(300), "votes": 1}));
    let (status, body) = post(&server, "/api/publish", KEY, big).await;
    assert_eq!((status, code(&body)), (413, "too-large"));
    let auth = bearer(KEY);
    let text = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "text/plain"),
    ];
    let (status, body) = call(&server, "POST", "/api/publish", &text, "{}").await;
    assert_eq!((status, code(&body)), (415, "unsupported-media-type"));
    let (status, body) = call(
        &server,
        "GET",
        "/api/publish",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!((status, code(&body)), (405, "method-not-allowed"));
    let (status, body) = call(
        &server,
        "GET",
        "/api/nothing",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!((status, code(&body)), (404, "not-found"));
    let (status, body) = call(
        &server,
        "GET",
        "/api/presence",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!((status, code(&body)), (400, "bad-request"));
    assert_eq!(server.stats().api_refused, 15);
    assert_eq!(server.stats().api_requests, 0);

    // The server goes on.
    let (status, _) = post(
        &server,
        "/api/publish",
        KEY,
        said(json!({"text": "ok", "votes": 1})),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_api_is_off_unless_given_keys() {
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let auth = bearer(KEY);
    let (status, _) = call(
        &server,
        "GET",
        "/api/presence?channel=a",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(status, 404);
    for keys in [vec![], vec!["short".to_owned()]] {
        let mut api = HttpApiConfig::with_key(KEY);
        api.keys = keys;
        let refused = Server::builder().http_api(api).build();
        assert!(
            matches!(refused, Err(ServerError::Config(_))),
            "{refused:?}"
        );
    }
}
