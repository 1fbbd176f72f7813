//! The server under load and at its edges, over real sockets, driven by a raw
//! WebSocket client: a busy server keeps answering pings and refusing work it
//! cannot take, requests keep their deadlines while they wait, a reader that
//! stops reading is bounded in bytes and closed, a drain answers what it
//! refuses, and every close reaches the peer with its code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sente_lite::protocol::{Control, Handshake};
use sente_lite::server::{ServerConfig, Shutdown};
use sente_lite::{Codec, Ctx, Inbound, Message, Router, Server};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[sente_lite::event("load/slow", reply = u64)]
#[derive(Debug, Serialize, Deserialize)]
struct Slow {
    ms: u64,
}

#[sente_lite::event("load/count", reply = usize)]
#[derive(Debug, Serialize, Deserialize)]
struct Count;

#[sente_lite::event("load/blob")]
#[derive(Debug, Serialize, Deserialize)]
struct Blob {
    text: String,
}

/// How many `load/count` handlers ran.
#[derive(Default)]
struct Ran(AtomicUsize);

#[sente_lite::handler]
async fn slow(req: Slow) -> u64 {
    tokio::time::sleep(Duration::from_millis(req.ms)).await;
    req.ms
}

#[sente_lite::handler]
async fn count(ctx: Ctx, _req: Count) -> usize {
    ctx.state::<Arc<Ran>>()
        .map_or(0, |ran| ran.0.fetch_add(1, Ordering::SeqCst) + 1)
}

async fn start(ran: Arc<Ran>, change: impl FnOnce(&mut ServerConfig)) -> Server {
    Server::builder()
        .router(Router::new().handler(slow).handler(count))
        .state(ran)
        .configure(change)
        .channel("room/*", sente_lite::server::allow_all)
        .bind("127.0.0.1:0")
        .await
        .expect("server binds")
}

/// Waits (5 s at most) until `condition` holds.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Heartbeats short enough that a wrongly counted silence shows within a second.
fn quick_heartbeat(config: &mut ServerConfig) {
    config.ping_interval = Duration::from_millis(300);
    config.ping_timeout = Duration::from_millis(400);
}

async fn handshake(ws: &mut Ws) -> Handshake {
    let first = next(ws).await.expect("a handshake");
    let Inbound::Control(Control::Handshake(handshake)) = Codec::decode(&first).unwrap() else {
        panic!("first frame is not a handshake: {first:?}");
    };
    handshake
}

async fn connect(server: &Server) -> Ws {
    let mut ws = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap()
        .0;
    handshake(&mut ws).await;
    ws
}

/// The next data or close frame within 5 s; `None` when the stream ended
/// without a close frame (a reset, or a close without one).
async fn next(ws: &mut Ws) -> Option<Message> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s");
        match frame {
            None | Some(Err(_)) => return None,
            Some(Ok(message)) if message.is_text() || message.is_binary() || message.is_close() => {
                return Some(message);
            }
            Some(Ok(_)) => {}
        }
    }
}

/// A JSON frame as a value.
fn value(message: &Message) -> serde_json::Value {
    serde_json::from_str(message.to_text().unwrap()).unwrap()
}

/// Reads until `until`, answering every `sl/ping` with its `sl/pong`; returns
/// the other frames (a close frame ends the reading).
async fn read_answering_pings(ws: &mut Ws, until: Instant) -> Vec<Message> {
    let mut seen = Vec::new();
    while let Ok(frame) = tokio::time::timeout_at(until, ws.next()).await {
        let Some(Ok(message)) = frame else { break };
        if message.is_close() {
            seen.push(message);
            break;
        }
        if !message.is_text() {
            continue;
        }
        let frame = value(&message);
        if frame[0] == "sl/ping" {
            let pong = format!(r#"["sl/pong",{}]"#, frame[1]);
            ws.send(Message::text(pong)).await.unwrap();
        } else {
            seen.push(message);
        }
    }
    seen
}

#[tokio::test]
async fn a_busy_connection_answers_pings_and_refuses_past_the_in_flight_bound() {
    let server = start(Arc::default(), quick_heartbeat).await;
    let mut ws = connect(&server).await;
    // 70 requests that each hold a handler for 1.5 s: 64 run, 6 are refused.
    for id in 1..=70 {
        ws.send(Message::text(format!(
            r#"["load/slow",{{"ms":1500}},{id}]"#
        )))
        .await
        .unwrap();
    }
    let seen = read_answering_pings(&mut ws, Instant::now() + Duration::from_millis(3500)).await;
    assert!(
        !seen.iter().any(Message::is_close),
        "a peer that answered every ping was closed: {seen:?}"
    );
    let mut answers: BTreeMap<u64, String> = BTreeMap::new();
    for message in &seen {
        let frame = value(message);
        let id = frame[1].as_u64().unwrap();
        let answer = match frame[0].as_str().unwrap() {
            "sl/ok" => "ok".to_owned(),
            "sl/err" => frame[2]["code"].as_str().unwrap().to_owned(),
            other => panic!("unexpected frame {other}"),
        };
        assert!(
            answers.insert(id, answer).is_none(),
            "request {id} answered twice"
        );
    }
    assert_eq!(
        answers.len(),
        70,
        "every request answered once: {answers:?}"
    );
    let refused: Vec<u64> = answers
        .iter()
        .filter(|(_, a)| *a == "too-many-requests")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(refused, (65..=70).collect::<Vec<_>>());
    assert_eq!(answers.values().filter(|a| *a == "ok").count(), 64);
    let stats = server.stats();
    assert_eq!(stats.errors.too_many_requests, 6);
    assert_eq!(stats.errors.heartbeat_timeout, 0);
}

#[tokio::test]
async fn a_waiting_request_is_answered_at_its_deadline_and_never_runs() {
    let ran = Arc::new(Ran::default());
    let server = start(Arc::clone(&ran), |config| {
        config.limits.max_concurrent_handlers = 2;
    })
    .await;
    let mut ws = connect(&server).await;
    for id in 1..=2 {
        ws.send(Message::text(format!(
            r#"["load/slow",{{"ms":1200}},{id}]"#
        )))
        .await
        .unwrap();
    }
    // Both handler slots are taken: this one waits, with 200 ms to live.
    ws.send(Message::text(r#"["load/count",null,3,200]"#))
        .await
        .unwrap();
    let first = value(&next(&mut ws).await.unwrap());
    assert_eq!(first[0], "sl/err", "{first}");
    assert_eq!(first[1], 3, "{first}");
    assert_eq!(first[2]["code"], "deadline-exceeded", "{first}");
    for _ in 0..2 {
        assert_eq!(value(&next(&mut ws).await.unwrap())[0], "sl/ok");
    }
    assert_eq!(ran.0.load(Ordering::SeqCst), 0, "the expired request ran");
    // A request without a deadline waits its turn and runs.
    for id in 4..=5 {
        ws.send(Message::text(format!(r#"["load/slow",{{"ms":300}},{id}]"#)))
            .await
            .unwrap();
    }
    ws.send(Message::text(r#"["load/count",null,6]"#))
        .await
        .unwrap();
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(value(&next(&mut ws).await.unwrap()));
    }
    // It runs once a slot frees: after one of the two, and before or after
    // the other, as their timers fall (handlers start as their frames arrive,
    // so the two sleeps may end a timer tick apart).
    let waited = answers
        .iter()
        .position(|a| a[1] == 6)
        .unwrap_or_else(|| panic!("no answer to 6: {answers:?}"));
    assert!(waited > 0, "answered before a slot freed: {answers:?}");
    assert_eq!(
        answers[waited],
        serde_json::json!(["sl/ok", 6, 1]),
        "{answers:?}"
    );
    assert_eq!(server.stats().errors.deadline_exceeded, 1);
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_bounded_in_bytes_and_closed() {
    let server = start(Arc::default(), quick_heartbeat).await;
    // A subscriber with a small receive buffer that subscribes, then never
    // reads or writes again.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.local_addr().unwrap()).await.unwrap();
    let request = server.ws_url().into_client_request().unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    handshake(&mut ws).await;
    ws.send(Message::text(r#"["sl/sub",1,"room/big"]"#))
        .await
        .unwrap();
    assert_eq!(value(&next(&mut ws).await.unwrap())[0], "sl/ok");

    let blob = Blob {
        text: "x".repeat(900 << 10),
    };
    let mut queued = 0;
    for _ in 0..200 {
        queued += server.broadcast("room/big", &blob).unwrap();
        tokio::task::yield_now().await;
    }
    // The queue holds 4 MiB (about 5 of these); the rest went into the
    // kernel's socket buffers, which autotune up to a few MiB a side. Without
    // the byte bound all 200 (180 MB) were queued.
    assert!(
        queued <= 40,
        "{queued} publications of 900 KiB were queued for a reader that reads nothing"
    );
    until("the silent reader is closed", || {
        server.stats().connections == 0
    })
    .await;
    let errors = server.stats().errors;
    assert_eq!(
        errors.slow_consumer + errors.heartbeat_timeout,
        1,
        "{errors:?}"
    );
    drop(ws);
}

#[tokio::test]
async fn a_drain_answers_new_work_with_shutting_down() {
    let server = start(Arc::default(), |_| {}).await;
    let mut ws = connect(&server).await;
    ws.send(Message::text(r#"["load/slow",{"ms":800},1]"#))
        .await
        .unwrap();
    until("the slow request runs", || {
        server.stats().requests_handled == 1
    })
    .await;
    let draining = tokio::spawn({
        let server = server.clone();
        async move { server.shutdown(Shutdown::default()).await }
    });
    // One thread: once the drain shows, every connection has been told.
    until("the server drains", || server.is_draining()).await;
    ws.send(Message::text(r#"["load/count",null,2]"#))
        .await
        .unwrap();
    ws.send(Message::text(r#"["sl/sub",3,"room/late"]"#))
        .await
        .unwrap();
    ws.send(Message::text(r#"["sl/ping",9]"#)).await.unwrap();
    ws.send(Message::text(r#"["load/blob",{"text":"late"}]"#))
        .await
        .unwrap();
    let mut frames = Vec::new();
    loop {
        let message = next(&mut ws).await.expect("a close frame, not a reset");
        if message.is_close() {
            let Message::Close(Some(close)) = &message else {
                panic!("{message:?}")
            };
            assert_eq!(u16::from(close.code), 1001);
            break;
        }
        frames.push(value(&message));
    }
    let shutting_down = |id: u64| {
        frames
            .iter()
            .any(|f| f[0] == "sl/err" && f[1] == id && f[2]["code"] == "shutting-down")
    };
    assert!(shutting_down(2), "{frames:?}");
    assert!(shutting_down(3), "{frames:?}");
    assert!(
        frames
            .iter()
            .any(|f| *f == serde_json::json!(["sl/pong", 9])),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f[0] == "sl/error" && f[1]["code"] == "shutting-down"),
        "{frames:?}"
    );
    // The work accepted before the drain finished, and `sl/close` came last.
    assert!(
        frames
            .iter()
            .any(|f| *f == serde_json::json!(["sl/ok", 1, 800])),
        "{frames:?}"
    );
    assert_eq!(frames.last().unwrap()[0], "sl/close", "{frames:?}");
    assert_eq!(server.stats().errors.shutting_down, 3);
    draining.await.unwrap();
}

#[tokio::test]
async fn unknown_events_are_answered_but_not_held_against_the_peer() {
    let server = start(Arc::default(), |_| {}).await;
    let mut ws = connect(&server).await;
    for n in 0..60 {
        ws.send(Message::text(format!(r#"["newer/event-{n}",null]"#)))
            .await
            .unwrap();
        let answer = value(&next(&mut ws).await.unwrap());
        assert_eq!(answer[0], "sl/error", "{answer}");
        assert_eq!(answer[1]["code"], "bad-event", "{answer}");
    }
    ws.send(Message::text(r#"["load/count",null,1]"#))
        .await
        .unwrap();
    assert_eq!(value(&next(&mut ws).await.unwrap())[0], "sl/ok");
    assert_eq!(server.stats().errors.policy_close, 0);
}

/// Connects, sends `message`, and returns the code of the close frame that
/// answers it (`None` when the stream ended without one).
async fn send_and_read_close(server: &Server, message: Message) -> Option<u16> {
    let ws = connect(server).await;
    let (mut sink, mut stream) = ws.split();
    let sending = tokio::spawn(async move { sink.send(message).await.is_ok() });
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an answer within 5 s")
        {
            Some(Ok(Message::Close(close))) => break close.map(|c| u16::from(c.code)),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => break None,
        }
    };
    assert!(sending.await.unwrap(), "the frame was sent");
    code
}

/// Opens a WebSocket by hand on a plain TCP stream and reads the 101 answer.
async fn raw_upgrade(server: &Server) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

#[tokio::test]
async fn a_message_over_the_limit_is_told_and_closed_with_1009_not_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(Arc::default(), |config| {
        config.limits.max_message_size = 64 << 10;
    })
    .await;
    let stream = raw_upgrade(&server).await;
    let (mut read, mut write) = stream.into_split();
    // One binary frame of 32 MiB, masked with a zero key, written whole while
    // the server's answer is read.
    let size: u64 = 32 << 20;
    let writing = tokio::spawn(async move {
        let mut header = vec![0x82, 0xff];
        header.extend_from_slice(&size.to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 0]);
        write.write_all(&header).await?;
        let chunk = vec![0u8; 64 << 10];
        for _ in 0..size / chunk.len() as u64 {
            write.write_all(&chunk).await?;
        }
        // Our close frame answers the server's (masked, zero key, code 1000).
        write.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]).await
    });
    let mut received = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut received))
        .await
        .expect("the server closes within 10 s");
    assert!(ended.is_ok(), "the connection was reset: {ended:?}");
    writing
        .await
        .unwrap()
        .expect("the whole message was written, not cut off by a reset");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.contains(r#"["sl/error",{"code":"too-large""#),
        "{text}"
    );
    // The server's close frame: opcode 8, code 1009 (0x03f1).
    let close = received
        .windows(4)
        .any(|w| w[0] == 0x88 && w[2] == 0x03 && w[3] == 0xf1);
    assert!(close, "no close frame with 1009 in {received:?}");
    assert_eq!(server.stats().errors.too_large, 1);
}

#[tokio::test]
async fn websocket_protocol_errors_close_with_1002_and_1007() {
    let server = start(Arc::default(), |_| {}).await;
    let not_utf8 = Frame::message(vec![0xff, 0xfe, 0xfd], OpCode::Data(Data::Text), true);
    let code = send_and_read_close(&server, Message::Frame(not_utf8)).await;
    assert_eq!(code, Some(1007));
    let reserved = Frame::message(vec![1, 2, 3], OpCode::Data(Data::Reserved(3)), true);
    let code = send_and_read_close(&server, Message::Frame(reserved)).await;
    assert_eq!(code, Some(1002));
    assert_eq!(server.stats().errors.protocol_close, 2);
}

#[tokio::test]
async fn a_publication_larger_than_the_server_s_own_inbound_limit_is_delivered() {
    let server = start(Arc::default(), |_| {}).await;
    let mut ws = connect(&server).await;
    ws.send(Message::text(r#"["sl/sub",1,"room/large"]"#))
        .await
        .unwrap();
    assert_eq!(value(&next(&mut ws).await.unwrap())[0], "sl/ok");
    // 3 MiB: over the server's 1 MiB inbound limit, under the client's.
    let text = "y".repeat(3 << 20);
    assert_eq!(
        server
            .broadcast("room/large", &Blob { text: text.clone() })
            .unwrap(),
        1
    );
    let publication = value(&next(&mut ws).await.expect("the publication, not a drop"));
    assert_eq!(publication[0], "sl/pub");
    assert_eq!(
        publication[3]["text"].as_str().map(str::len),
        Some(text.len())
    );
}

#[tokio::test]
async fn a_slow_consumer_that_reads_again_gets_the_4001_close_not_a_reset() {
    let server = start(Arc::default(), |config| {
        config.limits.outbound_queue_bytes = 1 << 20;
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.local_addr().unwrap()).await.unwrap();
    let request = server.ws_url().into_client_request().unwrap();
    let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    let (mut sink, mut stream) = ws.split();
    let Some(Ok(first)) = stream.next().await else {
        panic!("no handshake")
    };
    assert!(first.to_text().unwrap().starts_with(r#"["sl/handshake""#));
    sink.send(Message::text(r#"["sl/sub",1,"room/slow"]"#))
        .await
        .unwrap();
    let Some(Ok(subscribed)) = stream.next().await else {
        panic!("no answer")
    };
    assert_eq!(value(&subscribed)[0], "sl/ok");

    // The client stops reading but keeps writing (pings) while the server
    // fills its queue.
    let pinging = tokio::spawn(async move {
        for n in 0..u64::MAX {
            if sink
                .send(Message::text(format!(r#"["sl/ping",{n}]"#)))
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let blob = Blob {
        text: "z".repeat(200 << 10),
    };
    let mut published = 0;
    while server.broadcast("room/slow", &blob).unwrap() == 1 {
        published += 1;
        assert!(published < 1000, "the queue never filled");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Reading again: what was sent, then the close frame that says why.
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the close within 5 s")
        {
            Some(Ok(Message::Close(close))) => break close.map(|c| u16::from(c.code)),
            Some(Ok(_)) => {}
            Some(Err(err)) => panic!("the connection failed instead of closing: {err}"),
            None => panic!("the stream ended without a close frame"),
        }
    };
    assert_eq!(code, Some(4001));
    pinging.abort();
    assert_eq!(server.stats().errors.slow_consumer, 1);
}
