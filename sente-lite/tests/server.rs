//! The server over real sockets, driven by a raw WebSocket client so that every
//! frame, good or bad, is exactly what a test writes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sente_lite::protocol::{Control, Handshake, codes};
use sente_lite::server::{OriginPolicy, Presence, Rejection, Shutdown};
use sente_lite::{Codec, Ctx, ErrorReply, Inbound, Message, Router, Server};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[sente_lite::event("srv/add", reply = i64)]
#[derive(Debug, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[sente_lite::event("srv/slow", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Slow {
    ms: u64,
}

#[sente_lite::event("srv/boom", reply = ())]
#[derive(Debug, Serialize, Deserialize)]
struct Boom;

#[sente_lite::event("srv/note")]
#[derive(Debug, Serialize, Deserialize)]
struct Note {
    text: String,
}

#[sente_lite::event("srv/whoami", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct WhoAmI;

#[sente_lite::event("srv/ask", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    question: String,
}

#[sente_lite::event("srv/join", reply = ())]
#[derive(Debug, Serialize, Deserialize)]
struct Join {
    room: String,
}

/// A one-way event whose handler takes a while, then leaves its tag in `LATER`.
#[sente_lite::event("srv/later")]
#[derive(Debug, Serialize, Deserialize)]
struct Later {
    tag: String,
}

static LATER: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

#[sente_lite::handler]
async fn later(req: Later) {
    tokio::time::sleep(Duration::from_millis(150)).await;
    LATER.lock().unwrap().push(req.tag);
}

#[sente_lite::handler]
async fn add(req: Add) -> i64 {
    req.a + req.b
}

#[sente_lite::handler]
async fn slow(req: Slow) -> String {
    tokio::time::sleep(Duration::from_millis(req.ms)).await;
    format!("slept {} ms", req.ms)
}

#[sente_lite::handler]
async fn boom(_req: Boom) {
    panic!("a bug in a handler");
}

#[sente_lite::handler]
async fn note(ctx: Ctx, n: Note) {
    // Echo to every connection of the same user.
    if let (Some(server), Some(user)) = (ctx.server(), ctx.user_id()) {
        server.send_to_user(user, &n).unwrap();
    }
}

#[sente_lite::handler]
async fn whoami(ctx: Ctx, _req: WhoAmI) -> String {
    format!(
        "{}:{}",
        ctx.user_id().map_or("anonymous", |u| u.0.as_str()),
        ctx.conn_id()
    )
}

#[sente_lite::handler]
async fn join(ctx: Ctx, req: Join) -> Result<(), ErrorReply> {
    ctx.subscribe(format!("room/{}", req.room))
        .await
        .map(|_| ())
        .map_err(|e| ErrorReply::new("room/join-failed", e.to_string()))
}

fn router() -> Router {
    Router::new()
        .handler(add)
        .handler(slow)
        .handler(boom)
        .handler(note)
        .handler(whoami)
        .handler(join)
        .handler(later)
}

async fn start(change: impl FnOnce(&mut sente_lite::server::ServerConfig)) -> Server {
    Server::builder()
        .router(router())
        .configure(change)
        .auth(|req| async move {
            match req.query("token").as_deref() {
                None => Ok(None),
                Some("bad") => Err(Rejection::unauthorized("bad token")),
                Some(token) => Ok(Some(token.strip_prefix("user-").unwrap_or(token).into())),
            }
        })
        .channel("room/*", sente_lite::server::allow_all)
        .channel(
            "vip/*",
            |access: sente_lite::server::ChannelAccess| async move {
                if access.user_id.as_ref().is_some_and(|u| u.0 == "ada") {
                    Ok(())
                } else {
                    Err(ErrorReply::new(codes::FORBIDDEN, "vip only"))
                }
            },
        )
        .bind("127.0.0.1:0")
        .await
        .expect("server binds")
}

async fn connect_with(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

/// Connects and reads the handshake.
async fn connect(server: &Server, query: &str, codec: Codec) -> (Ws, Handshake) {
    let url = format!("{}{query}", server.ws_url());
    let mut ws = connect_with(&url, &[("sec-websocket-protocol", codec.subprotocol())])
        .await
        .unwrap();
    let first = next(&mut ws).await;
    let Inbound::Control(Control::Handshake(handshake)) = Codec::decode(&first).unwrap() else {
        panic!("first frame is not a handshake: {first:?}");
    };
    (ws, handshake)
}

/// The next data frame (skips WebSocket pings), within 5 s.
async fn next(ws: &mut Ws) -> Message {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("stream open")
            .expect("frame ok");
        if message.is_text() || message.is_binary() || message.is_close() {
            return message;
        }
    }
}

async fn json(ws: &mut Ws, text: &str) -> String {
    ws.send(Message::text(text)).await.unwrap();
    next(ws).await.to_text().unwrap().to_owned()
}

#[tokio::test]
async fn events_sent_just_before_the_peer_closes_are_still_handled() {
    let server = start(|_| {}).await;
    for (n, codec) in [Codec::Json, Codec::Postcard].into_iter().enumerate() {
        let (mut ws, _) = connect(&server, "", codec).await;
        let tag = format!("sent-then-closed-{n}");
        ws.send(codec.encode_event(&Later { tag: tag.clone() }).unwrap())
            .await
            .unwrap();
        // The close frame follows at once: the handler has not run yet.
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while !LATER.lock().unwrap().contains(&tag) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the event's handler was dropped with the connection"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn handshake_and_requests_in_both_codecs() {
    let server = start(|_| {}).await;
    let (mut ws, handshake) = connect(&server, "?token=user-ada", Codec::Json).await;
    assert_eq!(handshake.version, 1);
    assert_eq!(handshake.user_id, Some("ada".into()));
    assert_eq!(handshake.heartbeat.interval_ms, 25_000);
    assert_eq!(
        handshake.schema_hash,
        sente_lite::registry::schema_hash_hex()
    );
    assert_eq!(
        json(&mut ws, r#"["srv/add",{"a":2,"b":40},1]"#).await,
        r#"["sl/ok",1,42]"#
    );

    let (mut ws, _) = connect(&server, "", Codec::Postcard).await;
    ws.send(
        Codec::Postcard
            .encode_request(7, Some(1000), &Add { a: 1, b: 2 })
            .unwrap(),
    )
    .await
    .unwrap();
    let reply = next(&mut ws).await;
    assert!(reply.is_binary());
    let Inbound::Reply {
        req_id: 7,
        result: Ok(payload),
    } = Codec::decode(&reply).unwrap()
    else {
        panic!("{reply:?}")
    };
    assert_eq!(payload.decode::<i64>("reply").unwrap(), 3);
    let stats = server.stats();
    assert!(stats.requests_handled >= 2);
    assert!(stats.local_addr.unwrap().starts_with("127.0.0.1:"));
    assert_eq!(stats.requested_addr.as_deref(), Some("127.0.0.1:0"));
}

#[tokio::test]
async fn health_is_served_over_http_on_the_same_port() {
    let server = start(|_| {}).await;
    let mut stream = TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""status":"ok""#), "{response}");
}

#[tokio::test]
async fn auth_rejects_and_identifies() {
    let server = start(|_| {}).await;
    let err = connect_with(&format!("{}?token=bad", server.ws_url()), &[])
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 401),
        other => panic!("expected an HTTP rejection, got {other}"),
    }
    let (mut ws, _) = connect(&server, "?token=user-bob", Codec::Json).await;
    let reply = json(&mut ws, r#"["srv/whoami",null,1]"#).await;
    assert!(reply.starts_with(r#"["sl/ok",1,"bob:"#), "{reply}");
    assert_eq!(server.stats().handshakes_rejected, 1);
}

#[tokio::test]
async fn cross_site_origins_are_refused_by_default() {
    let server = start(|_| {}).await;
    let addr = server.local_addr().unwrap();
    let evil = connect_with(&server.ws_url(), &[("origin", "https://evil.example")])
        .await
        .unwrap_err();
    assert!(
        matches!(evil, tokio_tungstenite::tungstenite::Error::Http(ref r) if r.status() == 403),
        "{evil}"
    );
    let same = format!("http://{addr}");
    connect_with(&server.ws_url(), &[("origin", &same)])
        .await
        .expect("same host is fine");

    let listed = Server::builder()
        .origins(OriginPolicy::AllowList(vec!["https://app.example".into()]))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    connect_with(&listed.ws_url(), &[("origin", "https://app.example")])
        .await
        .expect("listed");
    assert!(
        connect_with(&listed.ws_url(), &[("origin", &same)])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bad_input_is_answered_and_the_connection_goes_on() {
    let server = start(|_| {}).await;
    let (mut ws, _) = connect(&server, "", Codec::Json).await;
    let answer = json(&mut ws, "{not json").await;
    assert!(
        answer.starts_with(r#"["sl/error",{"code":"bad-frame""#),
        "{answer}"
    );
    let answer = json(&mut ws, r#"["srv/nope",{}]"#).await;
    assert!(
        answer.starts_with(r#"["sl/error",{"code":"bad-event""#),
        "{answer}"
    );
    let answer = json(&mut ws, r#"["srv/add",{"a":"x"},5]"#).await;
    assert!(
        answer.starts_with(r#"["sl/err",5,{"code":"bad-payload""#),
        "{answer}"
    );
    let answer = json(&mut ws, r#"["srv/boom",null,6]"#).await;
    assert!(
        answer.starts_with(r#"["sl/err",6,{"code":"internal""#),
        "{answer}"
    );
    ws.send(Message::binary(vec![0xff, 0x00, 0x13]))
        .await
        .unwrap();
    let answer = next(&mut ws).await;
    assert!(answer.is_binary() || answer.is_text());
    // Still serving.
    assert_eq!(
        json(&mut ws, r#"["srv/add",{"a":1,"b":1},7]"#).await,
        r#"["sl/ok",7,2]"#
    );
    let errors = server.stats().errors;
    assert_eq!(
        (
            errors.bad_frame,
            errors.bad_event,
            errors.bad_payload,
            errors.handler_panic
        ),
        (2, 1, 1, 1)
    );
}

#[tokio::test]
async fn requests_are_checked_in_every_spelling_of_a_frame() {
    let server = start(|_| {}).await;
    let (mut ws, _) = connect(&server, "", Codec::Json).await;
    // The compact spelling and a spaced one mean the same.
    assert_eq!(
        json(&mut ws, r#"["srv/add",{"a":1,"b":2},1]"#).await,
        r#"["sl/ok",1,3]"#
    );
    assert_eq!(
        json(&mut ws, " [ \"srv/add\" , {\"b\":2, \"a\":5} , 2 ] ").await,
        r#"["sl/ok",2,7]"#
    );
    // An escaped id names the same event.
    assert_eq!(
        json(&mut ws, r#"["srv\/add",{"a":2,"b":2},3]"#).await,
        r#"["sl/ok",3,4]"#
    );
    // A request sent without its id, and an event sent with one.
    let answer = json(&mut ws, r#"["srv/add",{"a":1,"b":1}]"#).await;
    assert!(
        answer.starts_with(r#"["sl/error",{"code":"bad-event""#),
        "{answer}"
    );
    let answer = json(&mut ws, r#"["srv/note",{"text":"x"},4]"#).await;
    assert!(
        answer.starts_with(r#"["sl/err",4,{"code":"bad-event""#),
        "{answer}"
    );
    // A request id still in flight is refused, and the first request still ends.
    ws.send(Message::text(r#"["srv/slow",{"ms":300},9]"#))
        .await
        .unwrap();
    let answer = json(&mut ws, r#"["srv/slow",{"ms":0},9]"#).await;
    assert!(
        answer.starts_with(r#"["sl/err",9,{"code":"duplicate-request""#),
        "{answer}"
    );
    let answer = next(&mut ws).await.into_text().unwrap().to_string();
    assert!(answer.starts_with(r#"["sl/ok",9,"#), "{answer}");
    let errors = server.stats().errors;
    assert_eq!((errors.bad_event, errors.duplicate_request), (2, 1));
    assert_eq!(server.stats().requests_handled, 4);
}

#[tokio::test]
async fn a_deadline_that_passes_is_answered_deadline_exceeded() {
    let server = start(|_| {}).await;
    let (mut ws, _) = connect(&server, "", Codec::Json).await;
    let answer = json(&mut ws, r#"["srv/slow",{"ms":2000},1,50]"#).await;
    assert!(
        answer.starts_with(r#"["sl/err",1,{"code":"deadline-exceeded""#),
        "{answer}"
    );
    let answer = json(&mut ws, r#"["srv/slow",{"ms":0},2,0]"#).await;
    assert!(
        answer.starts_with(r#"["sl/err",2,{"code":"deadline-exceeded""#),
        "{answer}"
    );
    let errors = server.stats().errors;
    assert_eq!((errors.deadline_exceeded, errors.handler_error), (2, 0));
}

#[tokio::test]
async fn repeated_violations_close_with_1008() {
    let server = start(|c| {
        c.limits.max_violations = 3;
        c.limits.violation_refill = Duration::from_secs(60);
    })
    .await;
    let (mut ws, _) = connect(&server, "", Codec::Json).await;
    let mut closed = None;
    for _ in 0..10 {
        if ws.send(Message::text("garbage")).await.is_err() {
            break;
        }
        match next(&mut ws).await {
            Message::Close(frame) => {
                closed = frame;
                break;
            }
            _ => continue,
        }
    }
    let frame = closed.expect("closed after the allowance ran out");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(server.stats().errors.policy_close, 1);
}

#[tokio::test]
async fn an_oversize_message_closes_with_1009() {
    let server = start(|c| c.limits.max_message_size = 1024).await;
    let (mut ws, _) = connect(&server, "", Codec::Json).await;
    let big = format!(r#"["srv/note",{{"text":"{}"}}]"#, "x".repeat(4096));
    ws.send(Message::text(big)).await.unwrap();
    let mut code = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await
    {
        if let Message::Close(frame) = message {
            code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(1009));
    assert_eq!(server.stats().errors.too_large, 1);
}

#[tokio::test]
async fn a_flood_is_rate_limited() {
    let server = start(|c| {
        c.limits.rate_per_sec = Some(5);
        c.limits.rate_burst = 5;
        c.limits.max_violations = 1000;
    })
    .await;
    let (mut ws, _) = connect(&server, "", Codec::Json).await;
    for i in 0..20 {
        ws.send(Message::text(format!(
            r#"["srv/add",{{"a":{i},"b":0}},{}]"#,
            i + 1
        )))
        .await
        .unwrap();
    }
    // Every request is answered once, by its id: its sum, or `rate-limited`.
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..20 {
        let text = next(&mut ws).await.to_text().unwrap().to_owned();
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        let id = frame[1].as_u64().expect("an answer to a request id");
        let answer = match frame[0].as_str() {
            Some("sl/ok") => "ok",
            Some("sl/err") if frame[2]["code"] == "rate-limited" => "rate-limited",
            _ => panic!("unexpected {text}"),
        };
        assert!(answers.insert(id, answer).is_none(), "{id} answered twice");
    }
    assert_eq!(answers.len(), 20);
    let limited = answers.values().filter(|a| **a == "rate-limited").count();
    assert!(limited >= 10, "{answers:?}");
    assert_eq!(server.stats().errors.rate_limited, limited as u64);
}

#[tokio::test]
async fn a_silent_peer_is_closed_after_the_heartbeat_timeout() {
    let server = start(|c| {
        c.ping_interval = Duration::from_millis(100);
        c.ping_timeout = Duration::from_millis(100);
    })
    .await;
    let (mut ws, handshake) = connect(&server, "", Codec::Json).await;
    assert_eq!(handshake.heartbeat.interval_ms, 100);
    // Read without ever answering: pings arrive, then the close.
    let mut pings = 0;
    let code = loop {
        match next(&mut ws).await {
            Message::Close(frame) => break frame.map(|f| u16::from(f.code)),
            message => {
                if message.to_text().unwrap().starts_with(r#"["sl/ping","#) {
                    pings += 1;
                }
            }
        }
    };
    assert!(pings >= 1);
    assert_eq!(code, Some(4000));
    assert_eq!(server.stats().errors.heartbeat_timeout, 1);

    // A peer that answers stays.
    let (mut ws, _) = connect(&server, "", Codec::Json).await;
    for _ in 0..5 {
        let ping = next(&mut ws).await.to_text().unwrap().to_owned();
        let n = ping
            .trim_start_matches(r#"["sl/ping","#)
            .trim_end_matches(']');
        ws.send(Message::text(format!(r#"["sl/pong",{n}]"#)))
            .await
            .unwrap();
    }
    assert_eq!(server.stats().errors.heartbeat_timeout, 1);
}

#[tokio::test]
async fn channels_authorise_subscribe_and_broadcast_with_positions() {
    let server = start(|_| {}).await;
    let (mut ada, _) = connect(&server, "?token=user-ada", Codec::Json).await;
    let (mut bob, _) = connect(&server, "?token=user-bob", Codec::Postcard).await;
    assert!(
        json(&mut ada, r#"["sl/sub",1,"nowhere/x"]"#)
            .await
            .starts_with(r#"["sl/err",1,{"code":"forbidden""#)
    );
    let ok = json(&mut ada, r#"["sl/sub",2,"vip/lounge"]"#).await;
    assert!(ok.contains(r#""recovered":false"#), "{ok}");
    bob.send(Codec::Postcard.encode_control(&Control::Subscribe {
        req_id: 1,
        channel: "vip/lounge".into(),
        since: None,
    }))
    .await
    .unwrap();
    let Inbound::Reply {
        result: Err(err), ..
    } = Codec::decode(&next(&mut bob).await).unwrap()
    else {
        panic!()
    };
    assert_eq!(err.message, "vip only");
    bob.send(Codec::Postcard.encode_control(&Control::Subscribe {
        req_id: 2,
        channel: "room/lobby".into(),
        since: None,
    }))
    .await
    .unwrap();
    assert!(matches!(
        Codec::decode(&next(&mut bob).await).unwrap(),
        Inbound::Reply {
            req_id: 2,
            result: Ok(_)
        }
    ));
    // A handler can subscribe its connection too.
    assert_eq!(
        json(&mut ada, r#"["srv/join",{"room":"lobby"},3]"#).await,
        r#"["sl/ok",3,null]"#
    );
    assert_eq!(
        server.channels(),
        vec!["room/lobby".to_owned(), "vip/lounge".to_owned()]
    );

    assert_eq!(
        server
            .broadcast(
                "room/lobby",
                &Note {
                    text: "hello".into()
                }
            )
            .unwrap(),
        2
    );
    let to_ada = next(&mut ada).await;
    let text = to_ada.to_text().unwrap();
    assert!(
        text.starts_with(r#"["sl/pub","room/lobby","srv/note",{"text":"hello"},{"epoch":"#),
        "{text}"
    );
    assert!(text.ends_with(r#","offset":1}]"#), "{text}");
    match Codec::decode(&next(&mut bob).await).unwrap() {
        Inbound::Publication {
            channel,
            position,
            payload,
            ..
        } => {
            assert_eq!(channel, "room/lobby");
            assert_eq!(position.unwrap().offset, 1);
            assert_eq!(payload.decode::<Note>("srv/note").unwrap().text, "hello");
        }
        other => panic!("{other:?}"),
    }
    // Resuming from the current position is a complete recovery; from an old one it is not.
    let (mut carol, _) = connect(&server, "", Codec::Json).await;
    let epoch = text
        .split(r#""epoch":""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let resumed = json(
        &mut carol,
        &format!(r#"["sl/sub",1,"room/lobby",{{"epoch":"{epoch}","offset":1}}]"#),
    )
    .await;
    assert!(resumed.contains(r#""recovered":true"#), "{resumed}");
    let gap = json(
        &mut carol,
        &format!(r#"["sl/sub",2,"room/lobby",{{"epoch":"{epoch}","offset":0}}]"#),
    )
    .await;
    assert!(gap.contains(r#""recovered":false"#), "{gap}");

    assert_eq!(
        json(&mut ada, r#"["sl/unsub",4,"room/lobby"]"#).await,
        r#"["sl/ok",4,null]"#
    );
    assert_eq!(
        server
            .broadcast(
                "room/lobby",
                &Note {
                    text: "again".into()
                }
            )
            .unwrap(),
        2
    );
    let stats = server.stats();
    assert_eq!((stats.channels, stats.subscriptions), (2, 3));
}

#[tokio::test]
async fn one_user_many_connections_and_presence_without_flapping() {
    let server = start(|c| c.presence_grace = Duration::from_millis(300)).await;
    let mut presence = server.presence();
    let (mut tab1, h1) = connect(&server, "?token=user-ada", Codec::Json).await;
    let (mut tab2, h2) = connect(&server, "?token=user-ada", Codec::Postcard).await;
    let (mut other, _) = connect(&server, "?token=user-bob", Codec::Json).await;
    assert_eq!(server.connected_users(), vec!["ada".into(), "bob".into()]);
    assert_eq!(
        server.user_connections(&"ada".into()),
        vec![h1.conn_id, h2.conn_id]
    );
    assert_eq!(
        presence.recv().await.unwrap(),
        Presence::Online("ada".into())
    );
    assert_eq!(
        presence.recv().await.unwrap(),
        Presence::Online("bob".into())
    );

    // An event from one tab reaches every tab of the same user, and nobody else.
    tab1.send(Message::text(r#"["srv/note",{"text":"sync"}]"#))
        .await
        .unwrap();
    assert_eq!(
        next(&mut tab1).await.to_text().unwrap(),
        r#"["srv/note",{"text":"sync"}]"#
    );
    assert!(matches!(
        Codec::decode(&next(&mut tab2).await).unwrap(),
        Inbound::Event { .. }
    ));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), other.next())
            .await
            .is_err()
    );

    // Closing both tabs and reopening one within the grace period: no offline.
    tab1.close(None).await.unwrap();
    tab2.close(None).await.unwrap();
    drop((tab1, tab2));
    let (_tab3, _) = connect(&server, "?token=user-ada", Codec::Json).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        presence.try_recv().is_err(),
        "no presence change while ada reconnected"
    );
    // Bob leaves for good: offline after the grace period.
    other.close(None).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(3), presence.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event, Presence::Offline("bob".into()));
    assert_eq!(server.connected_users(), vec!["ada".into()]);
}

#[tokio::test]
async fn the_server_can_ask_a_client() {
    let server = start(|_| {}).await;
    let (mut ws, handshake) = connect(&server, "", Codec::Json).await;
    let asking = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .request(
                    handshake.conn_id,
                    &Ask {
                        question: "ready?".into(),
                    },
                )
                .await
        }
    });
    let request = next(&mut ws).await.to_text().unwrap().to_owned();
    assert!(
        request.starts_with(r#"["srv/ask",{"question":"ready?"},"#),
        "{request}"
    );
    let req_id: u64 = request.split(',').nth(2).unwrap().parse().unwrap();
    ws.send(Message::text(format!(r#"["sl/ok",{req_id},"yes"]"#)))
        .await
        .unwrap();
    assert_eq!(asking.await.unwrap().unwrap(), "yes");
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight_then_closes_1001() {
    let server = start(|_| {}).await;
    let (mut ws, _) = connect(&server, "", Codec::Json).await;
    ws.send(Message::text(r#"["srv/slow",{"ms":300},1]"#))
        .await
        .unwrap();
    // Shut down once the request's handler is running.
    let started = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.stats().requests_handled == 0 && tokio::time::Instant::now() < started {
        tokio::task::yield_now().await;
    }
    let stopping = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .shutdown(Shutdown {
                    deadline: Duration::from_secs(5),
                    reconnect_spread: Duration::from_millis(100),
                    ..Shutdown::default()
                })
                .await
        }
    });
    assert_eq!(
        next(&mut ws).await.to_text().unwrap(),
        r#"["sl/ok",1,"slept 300 ms"]"#
    );
    let close_reason = next(&mut ws).await.to_text().unwrap().to_owned();
    assert!(
        close_reason.starts_with(r#"["sl/close",{"code":"going-away""#),
        "{close_reason}"
    );
    let Message::Close(Some(frame)) = next(&mut ws).await else {
        panic!("no close frame")
    };
    assert_eq!(u16::from(frame.code), 1001);
    stopping.await.unwrap();
    assert!(server.is_draining());
    assert_eq!(server.stats().connections, 0);
    // New connections are refused.
    assert!(
        TcpStream::connect(server.local_addr().unwrap())
            .await
            .is_err()
            || connect_with(&server.ws_url(), &[]).await.is_err()
    );
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_closed_as_a_slow_consumer() {
    let server = start(|c| c.limits.outbound_queue = 4).await;
    let (_ws, handshake) = connect(&server, "", Codec::Json).await;
    // The peer never reads again: socket buffers fill, then the queue, then the
    // server gives up on the connection instead of buffering without bound.
    let big = Note {
        text: "x".repeat(256 << 10),
    };
    let mut refused = false;
    for _ in 0..2000 {
        if server.send_to(handshake.conn_id, &big).is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "the queue filled");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.stats().connections > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.stats().connections, 0);
    assert_eq!(server.stats().errors.slow_consumer, 1);
}

struct Greeting(String);

#[sente_lite::event("srv/greet", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Greet;

#[sente_lite::handler]
async fn greet(ctx: Ctx, _req: Greet) -> Result<String, ErrorReply> {
    ctx.state::<Greeting>()
        .map(|g| g.0.clone())
        .ok_or_else(|| ErrorReply::new("srv/no-state", "no greeting configured"))
}

#[tokio::test]
async fn handlers_reach_application_state_given_to_the_builder() {
    let server = Server::builder()
        .router(Router::new().handler(greet))
        .state(Greeting("hello from the state".into()))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let (mut ws, _) = connect(&server, "", Codec::Json).await;
    assert_eq!(
        json(&mut ws, r#"["srv/greet",null,1]"#).await,
        r#"["sl/ok",1,"hello from the state"]"#
    );
    let bare = Server::builder()
        .router(Router::new().handler(greet))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let (mut ws, _) = connect(&bare, "", Codec::Json).await;
    assert!(
        json(&mut ws, r#"["srv/greet",null,1]"#)
            .await
            .starts_with(r#"["sl/err",1,{"code":"srv/no-state""#)
    );
}

#[tokio::test]
async fn shutdown_drains_in_batches() {
    let server = start(|_| {}).await;
    let mut peers = Vec::new();
    for _ in 0..4 {
        peers.push(connect(&server, "", Codec::Json).await.0);
    }
    let started = tokio::time::Instant::now();
    let stopping = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .shutdown(Shutdown {
                    batch_size: 2,
                    batch_interval: Duration::from_millis(1500),
                    reconnect_spread: Duration::from_millis(1000),
                    ..Shutdown::default()
                })
                .await
        }
    });
    // Each peer reads on its own, so that each receipt time is its own.
    let readers: Vec<_> = peers
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let reason = next(&mut ws).await.to_text().unwrap().to_owned();
                (started.elapsed(), reason)
            })
        })
        .collect();
    let mut told_after = Vec::new();
    for reader in readers {
        let (at, reason) = reader.await.unwrap();
        assert!(
            reason.starts_with(r#"["sl/close",{"code":"going-away""#),
            "{reason}"
        );
        let after: u32 = reason
            .split(r#""reconnect_after_ms":"#)
            .nth(1)
            .unwrap()
            .trim_end_matches("}]")
            .parse()
            .unwrap();
        assert!(after <= 1000, "{after}");
        told_after.push(at);
    }
    told_after.sort();
    // Two are told at once, the other two no sooner than a batch interval later
    // (a lower bound that holds however slow the machine; the first batch is
    // told well before it).
    assert!(
        told_after[2] >= Duration::from_millis(1500),
        "{told_after:?}"
    );
    assert!(
        told_after[1] + Duration::from_millis(500) < told_after[2],
        "{told_after:?}"
    );
    stopping.await.unwrap();
}
