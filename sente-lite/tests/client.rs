//! The native client against real sockets: a real server for the protocol's
//! happy and unhappy paths, and small raw WebSocket servers for what a real
//! server never does (fall silent, forget the subprotocol).

use std::sync::LazyLock;
use std::time::Duration;

use futures_util::SinkExt;
use sente_lite::protocol::{Control, Handshake, Heartbeat, SubscribeReply, codes};
use sente_lite::server::{Rejection, Shutdown};
use sente_lite::{
    Client, ClientBuilder, ClientError, Codec, ConnectionState, Ctx, ErrorReply, ReconnectPolicy,
    RequestError, Router, SendError, Server,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, timeout};

/// How long any single expected thing may take before a test fails.
const PATIENCE: Duration = Duration::from_secs(5);

// ---- events -----------------------------------------------------------------

/// Client → server; the server echoes it back as an [`Echo`].
#[sente_lite::event("cl/note")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    tag: String,
    seq: u32,
}

/// Server → client, answering a [`Note`].
#[sente_lite::event("cl/echo")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Echo {
    tag: String,
    seq: u32,
}

#[sente_lite::event("cl/add", reply = i64)]
#[derive(Debug, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[sente_lite::event("cl/fail", reply = ())]
#[derive(Debug, Serialize, Deserialize)]
struct Fail;

#[sente_lite::event("cl/slow", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Slow {
    ms: u64,
}

/// Published on channels.
#[sente_lite::event("cl/chat")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chat {
    tag: String,
    text: String,
}

/// Published, but the client routes no handler for it.
#[sente_lite::event("cl/unrouted")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Unrouted {
    tag: String,
}

/// Server → client request, answered by a client handler.
#[sente_lite::event("cl/ask", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    question: String,
}

/// Server → client: asks the client to join a channel from its handler.
#[sente_lite::event("cl/join-please")]
#[derive(Debug, Serialize, Deserialize)]
struct JoinPlease {
    tag: String,
    channel: String,
}

// ---- an inbox the client's handlers report to, filtered by test -------------

#[derive(Debug, Clone)]
struct Delivery {
    tag: String,
    what: String,
}

static INBOX: LazyLock<broadcast::Sender<Delivery>> = LazyLock::new(|| broadcast::channel(4096).0);

fn deliver(tag: &str, what: String) {
    let _ = INBOX.send(Delivery {
        tag: tag.to_owned(),
        what,
    });
}

/// What the client's handlers received for one test (each test uses its own tag).
struct Inbox {
    tag: String,
    rx: broadcast::Receiver<Delivery>,
}

impl Inbox {
    fn new(tag: &str) -> Self {
        Self {
            tag: tag.to_owned(),
            rx: INBOX.subscribe(),
        }
    }

    async fn next(&mut self) -> String {
        let tag = self.tag.clone();
        timeout(PATIENCE, async {
            loop {
                let delivery = self.rx.recv().await.expect("inbox open");
                if delivery.tag == tag {
                    return delivery.what;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("nothing arrived for `{tag}`"))
    }
}

// ---- handlers ---------------------------------------------------------------

#[sente_lite::handler]
async fn server_note(ctx: Ctx, note: Note) {
    ctx.send(&Echo {
        tag: note.tag,
        seq: note.seq,
    })
    .expect("queue has room");
}

#[sente_lite::handler]
async fn server_add(req: Add) -> i64 {
    req.a + req.b
}

#[sente_lite::handler]
async fn server_fail(_req: Fail) -> Result<(), ErrorReply> {
    Err(ErrorReply::new("cl/nope", "this request always fails"))
}

#[sente_lite::handler]
async fn server_slow(req: Slow) -> String {
    tokio::time::sleep(Duration::from_millis(req.ms)).await;
    "done".into()
}

#[sente_lite::handler]
async fn client_echo(echo: Echo) {
    deliver(&echo.tag, format!("echo {}", echo.seq));
}

#[sente_lite::handler]
async fn client_chat(chat: Chat) {
    deliver(&chat.tag, format!("chat {}", chat.text));
}

#[sente_lite::handler]
async fn client_answer(ctx: Ctx, ask: Ask) -> String {
    format!("{} (conn {})", ask.question.to_uppercase(), ctx.conn_id())
}

#[sente_lite::handler]
async fn client_join(ctx: Ctx, join: JoinPlease) {
    let what = match ctx.subscribe(join.channel.clone()).await {
        Ok(_) => format!("joined {}", join.channel),
        Err(err) => format!("join failed: {err}"),
    };
    deliver(&join.tag, what);
}

fn server_router() -> Router {
    Router::new()
        .handler(server_note)
        .handler(server_add)
        .handler(server_fail)
        .handler(server_slow)
}

fn client_router() -> Router {
    Router::new()
        .handler(client_echo)
        .handler(client_chat)
        .handler(client_answer)
        .handler(client_join)
}

// ---- helpers ----------------------------------------------------------------

async fn bind_server(
    addr: &str,
    change: impl FnOnce(&mut sente_lite::server::ServerConfig),
) -> Server {
    Server::builder()
        .router(server_router())
        .configure(change)
        .auth(|req| async move {
            match req.query("token").as_deref() {
                None => Ok(None),
                Some("bad") => Err(Rejection::unauthorized("bad token")),
                Some(token) => Ok(Some(token.into())),
            }
        })
        .channel("room/*", sente_lite::server::allow_all)
        .bind(addr)
        .await
        .expect("server binds")
}

async fn server() -> Server {
    bind_server("127.0.0.1:0", |_| {}).await
}

/// Binds again on a port a stopped server just released.
async fn rebind(port: u16) -> Server {
    let started = Instant::now();
    loop {
        match Server::builder()
            .router(server_router())
            .channel("room/*", sente_lite::server::allow_all)
            .bind(format!("127.0.0.1:{port}"))
            .await
        {
            Ok(server) => return server,
            Err(err) if started.elapsed() < PATIENCE => {
                eprintln!("port {port} not free yet: {err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("cannot bind port {port} again: {err}"),
        }
    }
}

fn fast_policy() -> ReconnectPolicy {
    ReconnectPolicy::default()
        .with_initial_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(200))
}

fn builder(url: &str) -> ClientBuilder {
    Client::builder(url)
        .router(client_router())
        .reconnect(fast_policy())
        .connect_timeout(Duration::from_secs(2))
        .handshake_timeout(Duration::from_secs(2))
        .request_timeout(PATIENCE)
}

/// Every state a client goes through, in order (from its `on_state` callback).
struct States(mpsc::UnboundedReceiver<ConnectionState>);

impl States {
    fn attach(builder: ClientBuilder) -> (ClientBuilder, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            builder.on_state(move |state| {
                let _ = tx.send(state);
            }),
            Self(rx),
        )
    }

    /// Waits for `state`, returning the states seen on the way (itself included).
    async fn until(&mut self, state: ConnectionState) -> Vec<ConnectionState> {
        let mut seen = Vec::new();
        timeout(PATIENCE, async {
            while let Some(next) = self.0.recv().await {
                seen.push(next);
                if next == state {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("state {state} never came; saw {seen:?}"));
        seen
    }
}

/// Waits until `condition` holds, checking every few milliseconds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    timeout(PATIENCE, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never happened: {what}"));
}

/// A port nothing listens on.
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

// ---- connecting -------------------------------------------------------------

#[tokio::test]
async fn connects_and_reports_the_handshake() {
    let server = bind_server("127.0.0.1:0", |c| {
        c.ping_interval = Duration::from_secs(7);
        c.ping_timeout = Duration::from_secs(3);
    })
    .await;
    let client = builder(&format!("{}?token=ada", server.ws_url()))
        .connect()
        .await
        .unwrap();

    assert_eq!(client.state(), ConnectionState::Open);
    let handshake = client
        .handshake()
        .expect("open connections have a handshake");
    assert_eq!(handshake.version, sente_lite::protocol::PROTOCOL_VERSION);
    assert_eq!(Some(handshake.conn_id), client.conn_id());
    assert_eq!(handshake.user_id, Some("ada".into()));
    assert_eq!(
        handshake.heartbeat,
        Heartbeat {
            interval_ms: 7000,
            timeout_ms: 3000
        }
    );
    assert_eq!(
        handshake.schema_hash,
        sente_lite::registry::schema_hash_hex()
    );
    assert_eq!(
        server.user_connections(&"ada".into()),
        vec![handshake.conn_id]
    );
    let stats = client.stats();
    assert_eq!(
        (stats.connections, stats.connections_total, stats.reconnects),
        (1, 1, 0)
    );
    assert!(format!("{client:?}").contains("Open"));
    assert!(
        !format!("{client:?}").contains("token"),
        "the query may hold a secret"
    );

    client.disconnect().await;
    assert_eq!(client.state(), ConnectionState::Closed);
    assert_eq!(client.handshake(), None);
}

/// Handles and their futures move between tasks and threads.
#[tokio::test]
async fn client_handles_and_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Client>();
    is_send_sync::<ClientError>();
    let port = free_port().await;
    let client = builder(&format!("ws://127.0.0.1:{port}/ws"))
        .start()
        .unwrap();
    is_send(&client.request(&Add { a: 1, b: 1 }));
    is_send(&client.subscribe("room/x"));
    is_send(&client.unsubscribe("room/x"));
    is_send(&client.presence("room/x"));
    is_send(&client.watch_presence("room/x"));
    is_send_sync::<sente_lite::PresenceWatch>();
    is_send_sync::<sente_lite::PresenceEvent>();
    is_send(&client.wait_for(ConnectionState::Open, Duration::ZERO));
    is_send(&client.disconnect());
    is_send(&Client::builder("ws://127.0.0.1:1/ws").connect());
}

#[tokio::test]
async fn connect_shorthand_uses_json() {
    let server = server().await;
    let client = Client::connect(server.ws_url()).await.unwrap();
    assert_eq!(client.codec(), Codec::Json);
    assert_eq!(client.request(&Add { a: 2, b: 3 }).await, Ok(5));
}

#[tokio::test]
async fn bad_urls_and_headers_are_refused_before_connecting() {
    let err = Client::builder("http://127.0.0.1:1/ws")
        .start()
        .unwrap_err();
    assert!(
        matches!(err, ClientError::UnsupportedScheme { ref scheme, .. } if scheme == "http"),
        "{err}"
    );
    // wss:// needs the `tls` feature; without it the scheme is refused up front.
    #[cfg(not(feature = "tls"))]
    {
        let err = Client::builder("wss://example.com/ws").start().unwrap_err();
        assert!(
            matches!(err, ClientError::UnsupportedScheme { .. }),
            "{err}"
        );
    }
    let err = Client::builder("ws://exa mple/ws").start().unwrap_err();
    assert!(matches!(err, ClientError::InvalidUrl { .. }), "{err}");
    let err = Client::builder("/ws").start().unwrap_err();
    assert!(
        matches!(err, ClientError::UnsupportedScheme { .. }),
        "{err}"
    );
    let err = Client::builder("ws://127.0.0.1:1/ws")
        .header("bad header", "x")
        .start()
        .unwrap_err();
    assert!(
        matches!(err, ClientError::InvalidHeader { ref name } if name == "bad header"),
        "{err}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_refused_upgrade_is_a_typed_error_that_is_not_retried() {
    let server = server().await;
    let err = builder(&format!("{}?token=bad", server.ws_url()))
        .connect()
        .await
        .unwrap_err();
    match &err {
        ClientError::Rejected { status, body } => {
            assert_eq!(status.as_u16(), 401);
            assert!(body.contains("bad token"), "{body}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.is_retryable());

    // A started client gives up at once too.
    let (builder, mut states) = States::attach(builder(&format!("{}?token=bad", server.ws_url())));
    let client = builder.start().unwrap();
    states.until(ConnectionState::Failed).await;
    assert!(matches!(
        client.last_error().as_deref(),
        Some(ClientError::Rejected { .. })
    ));
}

#[tokio::test]
async fn the_first_connect_returns_its_error() {
    let port = free_port().await;
    let started = Instant::now();
    let err = builder(&format!("ws://127.0.0.1:{port}/ws"))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no retries on the first connect"
    );
}

// ---- events and requests ----------------------------------------------------

async fn send_and_request(codec: Codec, tag: &str) {
    let server = server().await;
    let mut inbox = Inbox::new(tag);
    let client = builder(&server.ws_url())
        .codec(codec)
        .connect()
        .await
        .unwrap();
    assert_eq!(client.codec(), codec);

    for seq in 0..3 {
        client
            .send(&Note {
                tag: tag.into(),
                seq,
            })
            .unwrap();
    }
    for seq in 0..3 {
        assert_eq!(inbox.next().await, format!("echo {seq}"));
    }
    assert_eq!(client.request(&Add { a: 40, b: 2 }).await, Ok(42));
    assert_eq!(
        client
            .request_within(&Add { a: -1, b: 1 }, Duration::from_secs(1))
            .await,
        Ok(0)
    );
    let stats = client.stats();
    assert!(
        stats.messages_out >= 5 && stats.messages_in >= 5,
        "{stats:?}"
    );
}

#[tokio::test]
async fn sends_and_requests_over_json() {
    send_and_request(Codec::Json, "json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_requests_over_postcard() {
    send_and_request(Codec::Postcard, "postcard").await;
}

#[tokio::test]
async fn a_remote_error_reply_is_typed() {
    let server = server().await;
    let client = builder(&server.ws_url()).connect().await.unwrap();
    match client.request(&Fail).await {
        Err(RequestError::Remote(err)) => {
            assert_eq!(err.code, "cl/nope");
            assert_eq!(err.message, "this request always fails");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    // The connection goes on.
    assert_eq!(client.request(&Add { a: 1, b: 1 }).await, Ok(2));
}

#[tokio::test]
async fn a_request_times_out_and_a_late_reply_is_ignored() {
    let server = server().await;
    let client = builder(&server.ws_url()).connect().await.unwrap();
    let started = Instant::now();
    let result = client
        .request_within(&Slow { ms: 300 }, Duration::from_millis(100))
        .await;
    assert_eq!(
        result,
        Err(RequestError::Timeout(Duration::from_millis(100)))
    );
    assert!(started.elapsed() < Duration::from_millis(290));
    // The server stops at the deadline that travelled with the request; either way
    // nothing answers a request nobody waits for, and the connection goes on.
    assert_eq!(client.request(&Add { a: 1, b: 2 }).await, Ok(3));
    assert_eq!(client.state(), ConnectionState::Open);
}

#[tokio::test]
async fn the_server_s_requests_are_answered_by_client_handlers() {
    let server = server().await;
    let client = builder(&server.ws_url()).connect().await.unwrap();
    let conn_id = client.conn_id().unwrap();
    let answer = server
        .request(
            conn_id,
            &Ask {
                question: "ping?".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(answer, format!("PING? (conn {conn_id})"));
}

#[tokio::test]
async fn the_server_s_requests_to_a_user_reach_one_of_its_connections() {
    let server = server().await;
    let client = builder(&format!("{}?token=ada", server.ws_url()))
        .codec(Codec::Postcard)
        .connect()
        .await
        .unwrap();
    let conn_id = client.conn_id().unwrap();
    let answer = server
        .request_user(
            &"ada".into(),
            &Ask {
                question: "there?".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(answer, format!("THERE? (conn {conn_id})"));
    let nobody = server
        .request_user(
            &"nobody".into(),
            &Ask {
                question: "there?".into(),
            },
        )
        .await;
    assert_eq!(nobody, Err(RequestError::NotConnected));
}

#[tokio::test]
async fn a_full_queue_refuses_sends() {
    // Nothing listens: everything stays queued.
    let port = free_port().await;
    let client = builder(&format!("ws://127.0.0.1:{port}/ws"))
        .queue_capacity(2)
        .start()
        .unwrap();
    client
        .send(&Note {
            tag: "q".into(),
            seq: 0,
        })
        .unwrap();
    client
        .send(&Note {
            tag: "q".into(),
            seq: 1,
        })
        .unwrap();
    let err = client
        .send(&Note {
            tag: "q".into(),
            seq: 2,
        })
        .unwrap_err();
    assert!(
        matches!(err, SendError::QueueFull { capacity: 2, .. }),
        "{err}"
    );
}

// ---- channels ---------------------------------------------------------------

#[tokio::test]
async fn subscribes_and_receives_broadcasts_over_json() {
    subscribe_and_receive(Codec::Json, "sub-json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_and_receives_broadcasts_over_postcard() {
    subscribe_and_receive(Codec::Postcard, "sub-postcard").await;
}

async fn subscribe_and_receive(codec: Codec, tag: &str) {
    let server = server().await;
    let mut inbox = Inbox::new(tag);
    let client = builder(&server.ws_url())
        .codec(codec)
        .connect()
        .await
        .unwrap();

    let reply = client.subscribe("room/a").await.unwrap();
    assert!(!reply.recovered);
    let start = reply.position.clone().expect("the server keeps positions");
    assert_eq!(client.subscriptions(), vec!["room/a".to_owned()]);
    assert_eq!(client.position("room/a"), Some(start.clone()));

    let chat = Chat {
        tag: tag.into(),
        text: "hello".into(),
    };
    assert_eq!(server.broadcast("room/a", &chat).unwrap(), 1);
    assert_eq!(inbox.next().await, "chat hello");
    let after = client.position("room/a").unwrap();
    assert_eq!(
        (after.epoch.as_str(), after.offset),
        (start.epoch.as_str(), start.offset + 1)
    );

    // A channel the server does not allow is refused and forgotten.
    match client.subscribe("secret/x").await {
        Err(RequestError::Remote(err)) => assert_eq!(err.code, codes::FORBIDDEN),
        other => panic!("expected forbidden, got {other:?}"),
    }
    assert_eq!(client.subscriptions(), vec!["room/a".to_owned()]);

    client.unsubscribe("room/a").await.unwrap();
    assert!(client.subscriptions().is_empty());
    assert_eq!(server.broadcast("room/a", &chat).unwrap(), 0);
    assert_eq!(client.stats().channels, 0);
}

#[tokio::test]
async fn an_unrouted_publication_is_counted_not_fatal() {
    let server = server().await;
    let mut inbox = Inbox::new("unrouted");
    let client = builder(&server.ws_url()).connect().await.unwrap();
    client.subscribe("room/u").await.unwrap();
    server
        .broadcast(
            "room/u",
            &Unrouted {
                tag: "unrouted".into(),
            },
        )
        .unwrap();
    server
        .broadcast(
            "room/u",
            &Chat {
                tag: "unrouted".into(),
                text: "still here".into(),
            },
        )
        .unwrap();
    assert_eq!(inbox.next().await, "chat still here");
    assert_eq!(client.stats().errors.bad_event, 1);
    assert_eq!(client.state(), ConnectionState::Open);
}

#[tokio::test]
async fn a_client_handler_subscribes_through_its_ctx() {
    let server = server().await;
    let mut inbox = Inbox::new("ctx-sub");
    let client = builder(&server.ws_url()).connect().await.unwrap();
    server
        .send_to(
            client.conn_id().unwrap(),
            &JoinPlease {
                tag: "ctx-sub".into(),
                channel: "room/ctx".into(),
            },
        )
        .unwrap();
    assert_eq!(inbox.next().await, "joined room/ctx");
    assert_eq!(client.subscriptions(), vec!["room/ctx".to_owned()]);
    assert_eq!(server.channels(), vec!["room/ctx".to_owned()]);
}

// ---- states and reconnection ------------------------------------------------

#[tokio::test]
async fn state_changes_are_observable() {
    let server = server().await;
    let (builder, mut states) = States::attach(builder(&server.ws_url()));
    let client = builder.connect().await.unwrap();
    assert_eq!(
        states.until(ConnectionState::Open).await,
        [ConnectionState::Connecting, ConnectionState::Open]
    );
    let mut watch = client.state_changes();
    assert_eq!(*watch.borrow_and_update(), ConnectionState::Open);

    client.disconnect().await;
    assert_eq!(
        states.until(ConnectionState::Closed).await,
        [ConnectionState::Closing, ConnectionState::Closed]
    );
    timeout(PATIENCE, watch.wait_for(|s| *s == ConnectionState::Closed))
        .await
        .unwrap()
        .unwrap();
    eventually("the server sees the connection go", || {
        server.stats().connections == 0
    })
    .await;

    // A disconnected client stays closed.
    assert!(matches!(
        client.send(&Note {
            tag: "x".into(),
            seq: 0
        }),
        Err(SendError::Closed { .. })
    ));
    assert_eq!(
        client.request(&Add { a: 1, b: 1 }).await,
        Err(RequestError::Closed)
    );
    client.reconnect();
    assert!(
        client
            .wait_for(ConnectionState::Open, Duration::from_millis(100))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_to_a_restarted_server_restoring_subscriptions_and_queued_events() {
    let first = server().await;
    let port = first.local_addr().unwrap().port();
    let mut inbox = Inbox::new("restart");
    let (resubscribed_tx, mut resubscribed) = mpsc::unbounded_channel();
    let (gap_tx, mut gaps) = mpsc::unbounded_channel();
    let (builder, mut states) = States::attach(
        builder(&first.ws_url())
            .on_resubscribe(
                move |channel: &str, result: &Result<SubscribeReply, RequestError>| {
                    let _ = resubscribed_tx.send((channel.to_owned(), result.clone()));
                },
            )
            .on_gap(move |channel, reply| {
                let _ = gap_tx.send((channel.to_owned(), reply.clone()));
            }),
    );
    let client = builder.connect().await.unwrap();
    states.until(ConnectionState::Open).await;

    client.subscribe("room/r").await.unwrap();
    first
        .broadcast(
            "room/r",
            &Chat {
                tag: "restart".into(),
                text: "before".into(),
            },
        )
        .unwrap();
    assert_eq!(inbox.next().await, "chat before");
    let seen = client.position("room/r").unwrap();

    first
        .shutdown(Shutdown {
            deadline: Duration::from_millis(500),
            reconnect_spread: Duration::ZERO,
            ..Shutdown::default()
        })
        .await;
    assert_eq!(
        states.until(ConnectionState::Reconnecting).await,
        [ConnectionState::Reconnecting]
    );

    // While away: events queue up in order, a request waits for the next connection.
    assert_ne!(client.state(), ConnectionState::Open);
    for seq in 0..5 {
        client
            .send(&Note {
                tag: "restart".into(),
                seq,
            })
            .unwrap();
    }
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.request(&Add { a: 20, b: 22 }).await }
    });

    let second = rebind(port).await;
    assert_eq!(
        states.until(ConnectionState::Open).await.last(),
        Some(&ConnectionState::Open)
    );
    for seq in 0..5 {
        assert_eq!(inbox.next().await, format!("echo {seq}"));
    }
    assert_eq!(waiting.await.unwrap(), Ok(42));

    // The subscription was restored, resuming from the last position seen: a new
    // server has another epoch, so it reports the gap.
    let (channel, result) = timeout(PATIENCE, resubscribed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(channel, "room/r");
    let reply = result.unwrap();
    assert!(
        !reply.recovered,
        "a restarted server cannot recover {seen:?}"
    );
    assert_eq!(
        gaps.try_recv().ok(),
        Some(("room/r".to_owned(), reply.clone())),
        "the gap was reported to on_gap"
    );
    let now = client.position("room/r").unwrap();
    assert_ne!(
        now.epoch, seen.epoch,
        "the new epoch's position replaced the old one"
    );
    assert_eq!(second.channels(), vec!["room/r".to_owned()]);
    second
        .broadcast(
            "room/r",
            &Chat {
                tag: "restart".into(),
                text: "after".into(),
            },
        )
        .unwrap();
    assert_eq!(inbox.next().await, "chat after");
    assert_eq!(client.subscriptions(), vec!["room/r".to_owned()]);

    let stats = client.stats();
    assert_eq!((stats.reconnects, stats.connections_total), (1, 2));
}

#[tokio::test]
async fn pending_requests_fail_when_their_connection_dies() {
    let server = server().await;
    let client = builder(&server.ws_url()).connect().await.unwrap();
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.request(&Slow { ms: 3000 }).await }
    });
    // Wait until the request is in the server's hands.
    eventually("the request reaches the server", || {
        server.stats().messages_in > 0
    })
    .await;
    client.reconnect();
    assert_eq!(
        timeout(PATIENCE, slow).await.unwrap().unwrap(),
        Err(RequestError::Closed)
    );
}

#[tokio::test]
async fn reconnect_forces_a_new_connection() {
    let server = server().await;
    let (builder, mut states) = States::attach(builder(&server.ws_url()));
    let client = builder.connect().await.unwrap();
    states.until(ConnectionState::Open).await;
    let before = client.conn_id().unwrap();
    client.subscribe("room/f").await.unwrap();

    client.reconnect();
    assert_eq!(
        states.until(ConnectionState::Open).await,
        [ConnectionState::Reconnecting, ConnectionState::Open]
    );
    assert_ne!(client.conn_id().unwrap(), before);
    assert_eq!(client.stats().reconnects, 1);
    assert_eq!(client.request(&Add { a: 1, b: 1 }).await, Ok(2));
    eventually("the subscription is restored on the new connection", || {
        !server.channels().is_empty()
    })
    .await;
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let port = free_port().await;
    let (builder, mut states) = States::attach(
        builder(&format!("ws://127.0.0.1:{port}/ws")).reconnect(
            fast_policy()
                .with_initial_delay(Duration::from_millis(5))
                .with_max_attempts(Some(2)),
        ),
    );
    let client = builder.start().unwrap();
    assert_eq!(
        states.until(ConnectionState::Failed).await,
        [
            ConnectionState::Connecting,
            ConnectionState::Reconnecting,
            ConnectionState::Failed
        ]
    );
    assert!(matches!(
        client.last_error().as_deref(),
        Some(ClientError::Connect { .. })
    ));
    assert_eq!(
        client.request(&Add { a: 1, b: 1 }).await,
        Err(RequestError::Closed)
    );

    // `reconnect` tries again: a server now listens there.
    let server = rebind(port).await;
    client.reconnect();
    client
        .wait_for(ConnectionState::Open, PATIENCE)
        .await
        .unwrap();
    assert_eq!(client.request(&Add { a: 1, b: 1 }).await, Ok(2));
    drop(server);
}

#[tokio::test]
async fn never_policy_fails_when_the_connection_is_lost() {
    let server = server().await;
    let (builder, mut states) =
        States::attach(builder(&server.ws_url()).reconnect(ReconnectPolicy::never()));
    let _client = builder.connect().await.unwrap();
    states.until(ConnectionState::Open).await;
    server
        .shutdown(Shutdown {
            deadline: Duration::from_millis(200),
            reconnect_spread: Duration::ZERO,
            ..Shutdown::default()
        })
        .await;
    assert_eq!(
        states.until(ConnectionState::Failed).await,
        [ConnectionState::Failed]
    );
}

#[tokio::test]
async fn disconnect_stops_retrying() {
    let port = free_port().await;
    let (builder, mut states) = States::attach(builder(&format!("ws://127.0.0.1:{port}/ws")));
    let client = builder.start().unwrap();
    states.until(ConnectionState::Reconnecting).await;

    client.disconnect().await;
    assert_eq!(
        states.until(ConnectionState::Closed).await.last(),
        Some(&ConnectionState::Closed)
    );

    // A server appears: the client does not come.
    let server = rebind(port).await;
    let came = timeout(Duration::from_millis(300), async {
        while server.stats().connections_total == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(came.is_err(), "a disconnected client must not reconnect");
    assert_eq!(client.state(), ConnectionState::Closed);
}

#[tokio::test]
async fn server_pings_keep_an_idle_connection_open() {
    let server = bind_server("127.0.0.1:0", |c| {
        c.ping_interval = Duration::from_millis(50);
        c.ping_timeout = Duration::from_millis(100);
    })
    .await;
    let client = builder(&server.ws_url()).connect().await.unwrap();
    let conn_id = client.conn_id();
    // The client's silence limit is 150 ms: several times over, pings keep it open
    // and its pongs keep the server from closing it.
    let mut changes = client.state_changes();
    assert!(
        timeout(Duration::from_millis(600), changes.changed())
            .await
            .is_err()
    );
    assert_eq!(client.conn_id(), conn_id);
    assert_eq!(client.stats().errors.heartbeat_timeout, 0);
    assert_eq!(server.stats().errors.heartbeat_timeout, 0);
}

// ---- raw servers: what a real server never does ----------------------------

type RawSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Completes a WebSocket upgrade as a server, echoing the JSON subprotocol when `echo`.
async fn raw_accept(
    stream: tokio::net::TcpStream,
    echo: bool,
) -> Result<RawSocket, tokio_tungstenite::tungstenite::Error> {
    if echo {
        tokio_tungstenite::accept_hdr_async(stream, echo_json_subprotocol).await
    } else {
        tokio_tungstenite::accept_async(stream).await
    }
}

#[allow(
    clippy::result_large_err,
    reason = "the signature of tungstenite's upgrade callback"
)]
fn echo_json_subprotocol(
    _request: &tokio_tungstenite::tungstenite::handshake::server::Request,
    mut response: tokio_tungstenite::tungstenite::handshake::server::Response,
) -> Result<
    tokio_tungstenite::tungstenite::handshake::server::Response,
    tokio_tungstenite::tungstenite::handshake::server::ErrorResponse,
> {
    response.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        Codec::Json
            .subprotocol()
            .parse()
            .expect("a valid header value"),
    );
    Ok(response)
}

/// A JSON `sl/handshake` frame with the given heartbeat.
fn raw_handshake(conn_id: u64, interval_ms: u32, timeout_ms: u32) -> sente_lite::Message {
    Codec::Json.encode_control(&Control::Handshake(Handshake {
        version: 1,
        conn_id: sente_lite::ConnId(conn_id),
        user_id: None,
        heartbeat: Heartbeat {
            interval_ms,
            timeout_ms,
        },
        schema_hash: sente_lite::registry::schema_hash_hex(),
        max_message_size: 1 << 20,
        extensions: Vec::new(),
        limits: Default::default(),
    }))
}

/// Answers the upgrade (echoing the JSON subprotocol when `echo`), sends a
/// handshake with a 100 + 100 ms heartbeat, then holds the socket without a
/// word. Reports each accepted connection.
async fn silent_server(echo: bool) -> (u16, mpsc::UnboundedReceiver<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted_tx, accepted) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut conn_id = 0;
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            conn_id += 1;
            let accepted_tx = accepted_tx.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = raw_accept(stream, echo).await else {
                    return;
                };
                let handshake = raw_handshake(conn_id, 100, 100);
                if ws.send(handshake).await.is_err() {
                    return;
                }
                let _ = accepted_tx.send(conn_id);
                // Silent from now on, with the TCP connection up.
                std::future::pending::<()>().await;
                drop(ws);
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn a_silent_server_is_taken_for_dead() {
    let (port, mut accepted) = silent_server(true).await;
    let (builder, mut states) = States::attach(builder(&format!("ws://127.0.0.1:{port}/ws")));
    let client = builder.connect().await.unwrap();
    assert_eq!(timeout(PATIENCE, accepted.recv()).await.unwrap(), Some(1));
    assert_eq!(client.handshake().unwrap().heartbeat.interval_ms, 100);
    states.until(ConnectionState::Open).await;

    // No ping, no frame at all for 200 ms: the client gives up on it and reconnects.
    let started = Instant::now();
    assert_eq!(
        states.until(ConnectionState::Reconnecting).await,
        [ConnectionState::Reconnecting]
    );
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(timeout(PATIENCE, accepted.recv()).await.unwrap(), Some(2));
    states.until(ConnectionState::Open).await;
    assert_eq!(client.conn_id(), Some(sente_lite::ConnId(2)));
    assert_eq!(client.stats().errors.heartbeat_timeout, 1);
}

#[tokio::test]
async fn a_server_that_ignores_the_subprotocol_is_refused() {
    let (port, _accepted) = silent_server(false).await;
    let err = builder(&format!("ws://127.0.0.1:{port}/ws"))
        .codec(Codec::Postcard)
        .connect()
        .await
        .unwrap_err();
    match err {
        ClientError::SubprotocolRefused { requested, .. } => {
            assert_eq!(requested, "sente-lite.postcard.v1")
        }
        other => panic!("expected SubprotocolRefused, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_handshake_times_out() {
    // A listener that upgrades and then says nothing at all.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let ws = raw_accept(stream, true).await;
        std::future::pending::<()>().await;
        drop(ws);
    });
    let err = builder(&format!("ws://127.0.0.1:{port}/ws"))
        .handshake_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::HandshakeTimeout { timeout } if timeout == Duration::from_millis(100)),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_server_s_come_back_later_sets_a_floor_under_the_delay() {
    // Each connection: handshake, `sl/close` asking to wait 300 ms, close.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted_tx, mut accepted) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for conn_id in 1.. {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = raw_accept(stream, true).await.unwrap();
            let _ = accepted_tx.send(Instant::now());
            ws.send(raw_handshake(conn_id, 25_000, 10_000))
                .await
                .unwrap();
            ws.send(Codec::Json.encode_control(&Control::Close(
                sente_lite::protocol::CloseReason {
                    code: "going-away".into(),
                    message: "deploying".into(),
                    reconnect_after_ms: Some(300),
                },
            )))
            .await
            .unwrap();
            let _ = ws.close(None).await;
        }
    });
    let _client = builder(&format!("ws://127.0.0.1:{port}/ws"))
        .connect()
        .await
        .unwrap();
    let first = timeout(PATIENCE, accepted.recv()).await.unwrap().unwrap();
    let second = timeout(PATIENCE, accepted.recv()).await.unwrap().unwrap();
    // The client's own backoff would wait at most 20 ms.
    assert!(
        second - first >= Duration::from_millis(300),
        "{:?}",
        second - first
    );
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_connection() {
    let server = server().await;
    let client = builder(&server.ws_url()).connect().await.unwrap();
    let clone = client.clone();
    drop(client);
    assert_eq!(
        clone.request(&Add { a: 1, b: 1 }).await,
        Ok(2),
        "a clone keeps it open"
    );
    drop(clone);
    eventually("the server sees the connection go", || {
        server.stats().connections == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_waited_in_the_queue_is_paced_to_the_server_s_announced_rate() {
    // Nothing listens yet: 600 events wait in the client's queue, more than
    // the server below reads in a burst.
    let port = free_port().await;
    let client = builder(&format!("ws://127.0.0.1:{port}/ws"))
        .start()
        .unwrap();
    let mut inbox = Inbox::new("paced");
    for seq in 0..600 {
        client
            .send(&Note {
                tag: "paced".into(),
                seq,
            })
            .unwrap();
    }
    let server = bind_server(&format!("127.0.0.1:{port}"), |config| {
        config.limits.rate_per_sec = Some(400);
        config.limits.rate_burst = 200;
    })
    .await;
    for seq in 0..600 {
        assert_eq!(inbox.next().await, format!("echo {seq}"));
    }
    let handshake = client.handshake().expect("connected");
    assert_eq!(handshake.limits.rate_per_sec, 400);
    assert_eq!(
        handshake.limits.rate_burst, 400,
        "the burst is at least the rate"
    );
    let errors = server.stats().errors;
    assert_eq!(errors.rate_limited, 0, "{errors:?}");
    assert_eq!(errors.policy_close, 0, "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_failed_with_its_connection_is_not_sent_on_the_next_one() {
    // A slow pace keeps frames in the queue: one goes at once, then two a second.
    let first = bind_server("127.0.0.1:0", |config| {
        config.limits.rate_per_sec = Some(2);
        config.limits.rate_burst = 2;
    })
    .await;
    let port = first.local_addr().unwrap().port();
    let client = builder(&first.ws_url()).connect().await.unwrap();
    let mut inbox = Inbox::new("purged");
    for seq in 0..3 {
        client
            .send(&Note {
                tag: "purged".into(),
                seq,
            })
            .unwrap();
    }
    // Queued behind the events, on this connection.
    let request = tokio::spawn({
        let client = client.clone();
        async move { client.request(&Add { a: 1, b: 2 }).await }
    });
    assert_eq!(inbox.next().await, "echo 0");
    first
        .shutdown(Shutdown {
            deadline: Duration::from_millis(200),
            reconnect_spread: Duration::ZERO,
            ..Shutdown::default()
        })
        .await;
    assert_eq!(request.await.unwrap(), Err(RequestError::Closed));

    let second = rebind(port).await;
    // The events queued before the request still arrive, in order...
    let mut echoes = Vec::new();
    while echoes.last().map(String::as_str) != Some("echo 2") {
        echoes.push(inbox.next().await);
    }
    assert!(echoes.windows(2).all(|w| w[0] < w[1]), "{echoes:?}");
    // ...and the failed request was never sent again.
    let answer = client.request(&Add { a: 20, b: 22 }).await;
    assert_eq!(answer, Ok(42));
    assert_eq!(second.stats().requests_handled, 1);
}

#[tokio::test]
async fn the_client_keeps_to_the_server_s_in_flight_bound() {
    let server = bind_server("127.0.0.1:0", |config| {
        config.limits.max_in_flight_requests = 2;
    })
    .await;
    let client = builder(&server.ws_url()).connect().await.unwrap();
    assert_eq!(client.handshake().unwrap().limits.max_in_flight, 2);
    let slow = |ms| {
        let client = client.clone();
        tokio::spawn(async move { client.request(&Slow { ms }).await })
    };
    let (first, second) = (slow(300), slow(300));
    // A request is in flight on the client before it is sent.
    eventually("both requests reach the server", || {
        server.stats().requests_handled == 2
    })
    .await;
    // The third fails here, without a round trip to be refused.
    let third = client.request(&Slow { ms: 1 }).await;
    assert!(
        matches!(third, Err(RequestError::TooManyInFlight { max: 2 })),
        "{third:?}"
    );
    assert_eq!(first.await.unwrap(), Ok("done".into()));
    assert_eq!(second.await.unwrap(), Ok("done".into()));
    assert_eq!(server.stats().errors.too_many_requests, 0);
}
