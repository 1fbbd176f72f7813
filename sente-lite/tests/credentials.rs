//! Credentials that refresh: a real server whose authentication hook accepts
//! one token at a time, rotated by the test, and a native client that fetches
//! its token before every attempt. A rotated token is picked up on the next
//! reconnect; a refused one is the application's to retry or to stop on; the
//! authentication probe answers what an upgrade would.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sente_lite::client::{AfterRejection, Credentials, Rejection as Refused};
use sente_lite::protocol::CloseReason;
use sente_lite::server::Rejection;
use sente_lite::{Client, ClientBuilder, ClientError, ConnectionState, ReconnectPolicy, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::PATIENCE;

/// A value both sides of a test read and the test changes.
#[derive(Clone, Default)]
struct Shared<T>(Arc<Mutex<T>>);

impl<T: Clone> Shared<T> {
    fn new(value: T) -> Self {
        Self(Arc::new(Mutex::new(value)))
    }
    fn get(&self) -> T {
        self.0.lock().unwrap().clone()
    }
    fn set(&self, value: T) {
        *self.0.lock().unwrap() = value;
    }
}

/// A server that accepts `Authorization: Bearer <accepted>` (or `?token=`),
/// recording every token it was shown.
async fn server(accepted: Shared<String>, seen: Shared<Vec<String>>) -> Server {
    Server::builder()
        .auth(move |request| {
            let (accepted, seen) = (accepted.clone(), seen.clone());
            async move {
                let token = request
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::to_owned)
                    .or_else(|| request.query("token"))
                    .unwrap_or_default();
                seen.0.lock().unwrap().push(token.clone());
                if token == accepted.get() {
                    Ok(Some(format!("holder of {token}").into()))
                } else {
                    Err(Rejection::unauthorized("token expired"))
                }
            }
        })
        .bind("127.0.0.1:0")
        .await
        .expect("binds")
}

/// A client whose credentials are the bearer token in `token`, fetched before
/// each attempt (counted in `fetches`).
fn client(server: &Server, token: Shared<String>, fetches: Shared<u32>) -> ClientBuilder {
    Client::builder(server.ws_url())
        .reconnect(
            ReconnectPolicy::default()
                .with_initial_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_millis(100)),
        )
        .credentials(move || {
            let (token, fetches) = (token.clone(), fetches.clone());
            async move {
                fetches.set(fetches.get() + 1);
                Ok(Credentials::bearer(token.get()))
            }
        })
}

async fn kick(server: &Server, client: &Client) {
    let conn = client.conn_id().expect("open");
    assert!(server.disconnect(
        conn,
        CloseReason {
            code: "policy".into(),
            message: "credentials rotated".into(),
            reconnect_after_ms: None,
        }
    ));
    // Gone, then back (or failed).
    support::until("the connection ends", || {
        client.conn_id() != Some(conn) || client.state() != ConnectionState::Open
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_fetched_again_on_reconnect() {
    let (accepted, seen) = (Shared::new("a".to_owned()), Shared::default());
    let server = server(accepted.clone(), seen.clone()).await;
    let (token, fetches) = (Shared::new("a".to_owned()), Shared::new(0));
    let client = client(&server, token.clone(), fetches.clone())
        .connect()
        .await
        .expect("token a is accepted");
    let first = client.conn_id();
    assert_eq!(
        client.handshake().unwrap().user_id.map(|u| u.to_string()),
        Some("holder of a".into())
    );

    accepted.set("b".into());
    token.set("b".into());
    kick(&server, &client).await;
    client
        .wait_for(ConnectionState::Open, PATIENCE)
        .await
        .expect("back with token b");
    assert_ne!(client.conn_id(), first);
    assert_eq!(
        client.handshake().unwrap().user_id.map(|u| u.to_string()),
        Some("holder of b".into())
    );
    assert_eq!(seen.get(), ["a", "b"]);
    assert_eq!(fetches.get(), 2);
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_the_applications_to_retry() {
    let (accepted, seen) = (Shared::new("a".to_owned()), Shared::default());
    let server = server(accepted.clone(), seen.clone()).await;
    let (token, fetches) = (Shared::new("a".to_owned()), Shared::new(0));
    let refusals: Shared<Vec<Refused>> = Shared::default();
    let seen_refusals = refusals.clone();
    let client = client(&server, token.clone(), fetches.clone())
        .on_rejected(move |rejection| {
            seen_refusals.0.lock().unwrap().push(rejection.clone());
            AfterRejection::Retry
        })
        .connect()
        .await
        .expect("token a is accepted");

    // The server moves on to c; the client still holds a, and is refused.
    accepted.set("c".into());
    kick(&server, &client).await;
    support::until("refused attempts are decided on", || {
        refusals.get().len() >= 2
    })
    .await;
    assert_ne!(client.state(), ConnectionState::Failed);
    let refusal = &refusals.get()[0];
    assert_eq!(refusal.status, http::StatusCode::UNAUTHORIZED);
    assert_eq!(refusal.body.trim(), "token expired");

    // The application gets token c: the next attempt is accepted.
    token.set("c".into());
    client
        .wait_for(ConnectionState::Open, PATIENCE)
        .await
        .expect("back with token c");
    assert_eq!(seen.get().last().map(String::as_str), Some("c"));
    assert!(
        fetches.get() >= 4,
        "fetched for every attempt: {}",
        fetches.get()
    );
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_decision_a_refused_token_stops_the_client() {
    let (accepted, seen) = (Shared::new("a".to_owned()), Shared::default());
    let server = server(accepted.clone(), seen).await;
    let (token, fetches) = (Shared::new("a".to_owned()), Shared::new(0));
    let client = client(&server, token, fetches.clone())
        .connect()
        .await
        .unwrap();
    accepted.set("b".into());
    kick(&server, &client).await;
    client
        .wait_for(ConnectionState::Failed, PATIENCE)
        .await
        .expect("refused: failed");
    let error = client.last_error().expect("kept");
    assert!(
        matches!(&*error, ClientError::Rejected { status, .. } if status.as_u16() == 401),
        "{error}"
    );
    assert_eq!(fetches.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_query_and_a_failing_source_is_retried() {
    let (accepted, seen) = (Shared::new("a b&c".to_owned()), Shared::default());
    let server = server(accepted, seen.clone()).await;
    let calls = Shared::new(0u32);
    let counted = calls.clone();
    let client = Client::builder(server.ws_url())
        .reconnect(ReconnectPolicy::default().with_initial_delay(Duration::from_millis(20)))
        .credentials(move || {
            let calls = counted.clone();
            async move {
                calls.set(calls.get() + 1);
                if calls.get() == 1 {
                    return Err("the identity provider is restarting".to_owned());
                }
                Ok(Credentials::new().query("token", "a b&c"))
            }
        })
        .start()
        .unwrap();
    client
        .wait_for(ConnectionState::Open, PATIENCE)
        .await
        .expect("the second fetch succeeds");
    assert_eq!(calls.get(), 2);
    assert_eq!(seen.get(), ["a b&c"], "percent-encoded and decoded");
    client.disconnect().await;
}

/// `GET /ws?sl_probe=1` with `headers`: the status line and the headers.
async fn probe(server: &Server, query: &str, headers: &str) -> (String, String) {
    let addr = server.local_addr().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws?sl_probe=1{query} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, _) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let (status, rest) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), rest.to_ascii_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_answers_what_an_upgrade_would() {
    let (accepted, seen) = (Shared::new("a".to_owned()), Shared::default());
    let server = server(accepted, seen.clone()).await;
    let addr = server.local_addr().unwrap();

    let (status, _) = probe(&server, "&token=a", "").await;
    assert_eq!(status, "HTTP/1.1 204 No Content");
    let (status, headers) = probe(&server, "&token=z", "").await;
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    assert!(headers.contains("cache-control: no-store"), "{headers}");

    // A page of the server's own origin may read the answer, with cookies.
    let origin = format!("Origin: http://{addr}\r\n");
    let (status, headers) = probe(&server, "&token=z", &origin).await;
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    assert!(
        headers.contains(&format!("access-control-allow-origin: http://{addr}")),
        "{headers}"
    );
    assert!(headers.contains("access-control-allow-credentials: true"));
    // Another origin is refused as its upgrade would be, and may not read it.
    let (status, headers) = probe(&server, "&token=a", "Origin: https://evil.example\r\n").await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert!(
        !headers.contains("access-control-allow-origin"),
        "{headers}"
    );
    assert_eq!(
        seen.get(),
        ["a", "z", "z"],
        "the hook ran for allowed origins only"
    );
    // Nothing was opened.
    assert_eq!(server.stats().connections, 0);
}
