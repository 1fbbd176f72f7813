//! The schema hash across processes: a server process (`bin/schema_server.rs`)
//! and this test declare some events alike (`schema/shared.rs`) and others
//! with other shapes. The native client, on the handshake, reads the server's
//! description at `/schema` and reports exactly the events whose shapes
//! differ; the description read from outside hashes to the handshake's hash.

#[path = "listening.rs"]
mod listening;
#[path = "ports.rs"]
mod ports;
// Only its events' shapes are used here.
#[allow(dead_code)]
#[path = "schema/shared.rs"]
mod shared;

use std::sync::Arc;
use std::time::Duration;

use listening::spawn_listening;
use ports::free_port;
use sente_lite::Client;
use sente_lite::client::SchemaMismatch;
use sente_lite::schema::{Description, Difference};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A greeting: here with two fields (the server's has one).
#[sente_lite::event("shape/greet")]
#[derive(Debug, Serialize, Deserialize)]
struct Greet {
    name: String,
    loud: bool,
}

/// Asks for a profile: the same payload as the server's, another reply.
#[sente_lite::event("shape/get", reply = Profile)]
#[derive(Debug, Serialize, Deserialize)]
struct GetProfile {
    id: u64,
}

/// The reply of `shape/get`: here the age is a text.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Profile {
    name: String,
    age: String,
}

/// Declared by this side only.
#[sente_lite::event("shape/client-only")]
#[derive(Debug, Serialize, Deserialize)]
struct ClientOnly {
    n: i8,
}

/// The server process (killed when dropped) and its WebSocket url.
async fn server(args: &[&str]) -> (Child, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_schema_server"));
    command.args(["--addr", &addr]).args(args);
    let (child, _output, at) = spawn_listening(&mut command).await;
    (child, format!("ws://{at}/ws"))
}

/// `GET /schema` over a plain TCP connection: the status line and the body.
async fn get_schema(ws_url: &str) -> (String, Vec<u8>) {
    let host = ws_url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .expect("ws://host/path");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!("GET /schema HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, response[split + 4..].to_vec())
}

/// A client whose schema mismatches come out of the returned receiver.
async fn client(url: &str) -> (Client, mpsc::UnboundedReceiver<SchemaMismatch>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = Client::builder(url)
        .on_schema_mismatch(move |mismatch| {
            let _ = tx.send(mismatch.clone());
        })
        .connect()
        .await
        .expect("connects");
    (client, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<SchemaMismatch>) -> SchemaMismatch {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a mismatch within 10 s")
        .expect("the client is alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_names_exactly_the_events_whose_shapes_differ() {
    let (_server, url) = server(&[]).await;
    let (client, mut mismatches) = client(&url).await;
    let handshake_hash = client.handshake().expect("open").schema_hash;

    let mismatch = next(&mut mismatches).await;
    assert_eq!(mismatch.ours, sente_lite::schema::schema_hash_hex());
    assert_eq!(mismatch.theirs, handshake_hash);
    assert_ne!(mismatch.ours, mismatch.theirs);
    assert_eq!(
        mismatch.differences,
        Ok(vec![
            Difference::OnlyOurs {
                id: "shape/client-only".into()
            },
            Difference::Shape {
                id: "shape/get".into(),
                payload: false,
                reply: true
            },
            Difference::Shape {
                id: "shape/greet".into(),
                payload: true,
                reply: false
            },
            Difference::OnlyTheirs {
                id: "shape/server-only".into()
            },
        ]),
        "{mismatch}"
    );
    assert_eq!(client.schema_mismatch(), Some(Arc::new(mismatch)));

    // The description, read from outside, hashes to the handshake's hash, and
    // the events declared alike have the same shapes in both processes.
    let (status, body) = get_schema(&url).await;
    assert!(status.ends_with("200 OK"), "{status}");
    let theirs = Description::from_json(&body).expect("a description");
    assert_eq!(format!("{:016x}", theirs.hash()), handshake_hash);
    assert_eq!(theirs.schema_hash, handshake_hash);
    let ours = Description::of_this_program();
    assert!(theirs.event("shape/same").is_some());
    assert_eq!(theirs.event("shape/same"), ours.event("shape/same"));
    assert!(
        theirs
            .events
            .iter()
            .all(|event| event.id.starts_with("shape/")),
        "library events are left out: {:?}",
        theirs.events.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_published_description_the_mismatch_says_why() {
    let (_server, url) = server(&["--no-schema"]).await;
    let (status, _) = get_schema(&url).await;
    assert!(status.ends_with("404 Not Found"), "{status}");

    let (client, mut mismatches) = client(&url).await;
    let mismatch = next(&mut mismatches).await;
    assert_eq!(
        mismatch.theirs,
        client.handshake().expect("open").schema_hash
    );
    let why = mismatch.differences.clone().expect_err("no description");
    assert!(why.contains("does not publish its schema"), "{why}");
    assert!(
        mismatch.to_string().contains("which events: unknown"),
        "{mismatch}"
    );
    client.disconnect().await;
}
