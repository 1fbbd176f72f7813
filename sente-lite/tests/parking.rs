//! Idle connections let go of their WebSocket buffers (`Limits::idle_park_after`)
//! and nothing of it shows on the wire: over real sockets, a raw client
//! splits frames and fragmented messages across the idle time, pings a
//! parked connection, and is sent publications and heartbeats while parked.
//!
//! A connection starts parked, and the text and binary frames the server
//! writes (its handshake, publications, heartbeats) leave it parked: only
//! reading more than a small frame makes a WebSocket, which parks again
//! (counted in `parks`) once idle.

mod support;

use std::time::Duration;

use sente_lite::server::{ServerConfig, allow_all};
use sente_lite::{Codec, Message, Router, Server};
use serde::{Deserialize, Serialize};
use support::{Frame, Raw, until};

#[sente_lite::event("park/echo", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    text: String,
}

#[sente_lite::event("park/note")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    n: u64,
}

#[sente_lite::handler]
async fn echo(req: Echo) -> String {
    req.text
}

/// How long a connection must be idle to park, in these tests.
const PARK_AFTER: Duration = Duration::from_millis(50);

async fn start(change: impl FnOnce(&mut ServerConfig)) -> Server {
    Server::builder()
        .router(Router::new().handler(echo))
        .channel("room/*", allow_all)
        .configure(|config| {
            config.limits.idle_park_after = PARK_AFTER;
            change(config);
        })
        .bind("127.0.0.1:0")
        .await
        .expect("server binds")
}

/// A client frame (masked, as a client's must be): FIN, opcode, payload.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | u8::try_from(n).unwrap()),
        n if n <= usize::from(u16::MAX) => {
            out.push(0x80 | 126);
            out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The JSON text of a `park/echo` request.
fn echo_request(req_id: u64, text: &str) -> Vec<u8> {
    let message = Codec::Json
        .encode_request(req_id, None, &Echo { text: text.into() })
        .unwrap();
    message.into_data().to_vec()
}

/// Sends `req_id`'s request and checks its echo.
async fn echoes(raw: &mut Raw, text: &str) {
    let req_id = raw.req_id();
    raw.send_bytes(&client_frame(true, 1, &echo_request(req_id, text)))
        .await;
    let (_, reply) = raw.until_reply::<Note>(req_id).await;
    let said: String = raw.payload(&reply.expect("an echo"));
    assert_eq!(said, text);
}

/// Lets a connection stay idle well past `PARK_AFTER`, so that one holding
/// a WebSocket would have parked (and been counted) by the end.
async fn idle() {
    tokio::time::sleep(PARK_AFTER * 6).await;
}

/// Waits until the server has parked `more` more times than `before`.
async fn parks(server: &Server, before: u64, more: u64) {
    until("the connection parks", || {
        server.stats().parks >= before + more
    })
    .await;
}

#[tokio::test]
async fn a_parked_connection_answers_when_spoken_to_and_parks_again() {
    let server = start(|_| {}).await;
    let mut raw = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    // The handshake went out without making a WebSocket.
    idle().await;
    assert_eq!(server.stats().parks, 0, "the handshake made a WebSocket");
    for round in 0..3 {
        let before = server.stats().parks;
        echoes(&mut raw, &format!("round {round}")).await;
        // Having read, it keeps its buffers until it has been idle a while.
        parks(&server, before, 1).await;
    }
    // A large message (several reads) into a parked connection.
    echoes(&mut raw, &"x".repeat(100_000)).await;
}

#[tokio::test]
async fn a_frame_split_across_the_idle_time_arrives_whole() {
    let server = start(|_| {}).await;
    let mut raw = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    let text = "y".repeat(300);
    // Cut inside the header, inside the extended length, inside the mask,
    // inside the payload.
    for cut in [1, 3, 6, 40] {
        let req_id = raw.req_id();
        let frame = client_frame(true, 1, &echo_request(req_id, &text));
        let before = server.stats().parks;
        // A ping first, so that the server has just heard something whole
        // and looks again once it has been quiet long enough.
        let mut bytes = client_frame(true, 9, b"tick");
        bytes.extend_from_slice(&frame[..cut]);
        raw.send_bytes(&bytes).await;
        tokio::time::sleep(PARK_AFTER * 6).await;
        assert_eq!(
            server.stats().parks,
            before,
            "parked in the middle of a frame (cut at {cut})"
        );
        raw.send_bytes(&frame[cut..]).await;
        let (_, reply) = raw.until_reply::<Note>(req_id).await;
        let said: String = raw.payload(&reply.expect("an echo"));
        assert_eq!(said, text, "cut at {cut}");
        parks(&server, before, 1).await;
    }
}

#[tokio::test]
async fn a_fragmented_message_spread_over_the_idle_time_arrives_whole() {
    let server = start(|_| {}).await;
    let mut raw = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    let req_id = raw.req_id();
    let message = echo_request(req_id, "in three parts");
    let (first, rest) = message.split_at(5);
    let (middle, last) = rest.split_at(7);
    let before = server.stats().parks;
    raw.send_bytes(&client_frame(false, 1, first)).await;
    tokio::time::sleep(PARK_AFTER * 6).await;
    // A ping between the fragments is answered, and the message still waits.
    raw.send_bytes(&client_frame(true, 9, b"between")).await;
    raw.send_bytes(&client_frame(false, 0, middle)).await;
    tokio::time::sleep(PARK_AFTER * 6).await;
    assert_eq!(
        server.stats().parks,
        before,
        "parked inside a fragmented message"
    );
    raw.send_bytes(&client_frame(true, 0, last)).await;
    let (_, reply) = raw.until_reply::<Note>(req_id).await;
    let said: String = raw.payload(&reply.expect("an echo"));
    assert_eq!(said, "in three parts");
}

#[tokio::test]
async fn a_websocket_ping_to_a_parked_connection_is_answered() {
    let server = start(|_| {}).await;
    let mut raw = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    let before = server.stats().parks;
    echoes(&mut raw, "wake").await;
    parks(&server, before, 1).await;
    raw.send_bytes(&client_frame(true, 9, b"are you there"))
        .await;
    let pong = tokio::time::timeout(support::PATIENCE, async {
        loop {
            match raw.next_frame().await {
                Some(Message::Pong(data)) => return data,
                Some(_) => {}
                None => panic!("the connection closed"),
            }
        }
    })
    .await
    .expect("a pong");
    assert_eq!(&pong[..], b"are you there");
    echoes(&mut raw, "still here").await;
}

#[tokio::test]
async fn publications_reach_a_parked_subscriber_in_order() {
    let server = start(|_| {}).await;
    let mut raw = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    // A subscription is a small frame: read, and answered, parked.
    let (_, reply) = raw.subscribe::<Note>("room/a", None).await;
    reply.expect("subscribed");
    // Publications to the parked connection, some while it writes the ones
    // before, go out in order without making a WebSocket (one made would
    // park again once idle, and be counted).
    for n in 0..20 {
        server.publish("room/a", &Note { n }).await.unwrap();
        if n % 5 == 0 {
            idle().await;
        }
    }
    for n in 0..20 {
        match raw.next::<Note>().await {
            Frame::Pub { event, .. } => assert_eq!(event, Note { n }),
            other => panic!("expected publication {n}, got {other:?}"),
        }
    }
    idle().await;
    assert_eq!(server.stats().parks, 0, "a publication made a WebSocket");
}

#[tokio::test]
async fn a_parked_connection_keeps_its_heartbeat() {
    let server = start(|config| {
        config.ping_interval = Duration::from_millis(200);
        config.ping_timeout = Duration::from_millis(300);
    })
    .await;
    let mut raw = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    // Pings go out and the pongs are read, parked throughout: ten rounds of
    // the silence limit later the connection is still open, and it never
    // made a WebSocket (one would have parked again within a ping interval).
    let before = server.stats().parks;
    assert!(
        raw.next_message_within(Duration::from_secs(5))
            .await
            .is_none()
    );
    assert_eq!(
        server.stats().parks,
        before,
        "a ping or a pong made a WebSocket"
    );
    assert_eq!(server.stats().errors.heartbeat_timeout, 0);
    echoes(&mut raw, "alive").await;
}
