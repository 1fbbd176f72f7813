//! `sl/resub` over real sockets, in both encodings: the server ends a
//! channel's subscriptions and asks their clients to subscribe again; a
//! client that does, from the largest position it holds, gets what it
//! missed replayed or is told of the gap. First with a raw client that
//! checks the frames, then with the native client.

mod feed;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use feed::{Item, items, publish};
use sente_lite::client::PresenceEvent;
use sente_lite::engine::{
    ChannelOptions, Engine, EngineFuture, MemoryEngine, Node, OutgoingEvent, Publication,
    Published, Recovery,
};
use sente_lite::protocol::{
    CloseReason, Control, PresenceMember, StreamPosition, SubscribeReply, codes,
};
use sente_lite::server::{Rejection, allow_all};
use sente_lite::{
    Client, ClientBuilder, Codec, ConnId, Ctx, Message, ReconnectPolicy, Router, Server, UserId,
};
use support::{Frame, PATIENCE, Raw, until};
use tokio::sync::Semaphore;

const CODECS: [Codec; 2] = [Codec::Json, Codec::Postcard];

/// `feed/*` keeps 100 publications; `plain/*` keeps none; `room/*` keeps
/// history and presence. Users come from the `?name=` query.
async fn start(engine: impl Engine) -> Server {
    let history = ChannelOptions {
        history_size: 100,
        ..ChannelOptions::default()
    };
    Server::builder()
        .auth(|req| async move { Ok::<_, Rejection>(req.query("name").map(UserId::from)) })
        .channel("feed/*", allow_all)
        .channel("plain/*", allow_all)
        .channel("room/*", allow_all)
        .channel_options("feed/*", history.clone())
        .channel_options(
            "room/*",
            ChannelOptions {
                presence: true,
                ..history
            },
        )
        .engine(engine)
        .bind("127.0.0.1:0")
        .await
        .expect("server binds")
}

/// `sl/resub` of `channel` exactly as `codec` writes it.
fn resub_frame(codec: Codec, channel: &str) -> Message {
    match codec {
        Codec::Json => Message::text(format!(r#"["sl/resub",{{"channel":"{channel}"}}]"#)),
        Codec::Postcard => {
            let mut bytes = vec![0x0e, u8::try_from(channel.len()).unwrap()];
            bytes.extend_from_slice(channel.as_bytes());
            Message::binary(bytes)
        }
    }
}

/// Asserts that nothing arrives for a while.
async fn nothing_more(raw: &mut Raw) {
    if let Some(frame) = raw.next_within::<Item>(Duration::from_millis(200)).await {
        panic!("unexpected frame {frame:?}");
    }
}

// ---- the frames, with a raw client ---------------------------------------

#[tokio::test]
async fn a_resub_ends_the_subscription_and_since_replays_what_was_missed() {
    for codec in CODECS {
        let server = start(MemoryEngine::new()).await;
        let mut raw = Raw::connect(&server.ws_url(), "", codec).await;
        raw.subscribe::<Item>("feed/a", None)
            .await
            .1
            .expect("subscribed");
        publish(&server, "feed/a", 1);
        let Frame::Pub {
            position: Some(since),
            ..
        } = raw.next::<Item>().await
        else {
            panic!("expected the first publication");
        };

        assert_eq!(server.resubscribe("feed/a"), 1);
        let message = raw.next_message_within(PATIENCE).await.expect("a frame");
        assert_eq!(message, Ok(resub_frame(codec, "feed/a")), "{codec:?}");
        assert!(server.subscribers("feed/a").is_empty());
        assert_eq!(server.stats().resubscribes_requested, 1);
        assert!(
            server
                .metrics_text()
                .contains("sente_lite_resubscribes_requested_total 1")
        );

        // No longer subscribed: what is published now is kept, not sent.
        publish(&server, "feed/a", 2);
        publish(&server, "feed/a", 3);
        nothing_more(&mut raw).await;
        let (before, reply) = raw.subscribe::<Item>("feed/a", Some(since.clone())).await;
        let reply = reply.expect("subscribed again");
        assert!(reply.recovered);
        assert_eq!(items(&before), [(2, 2), (3, 3)], "{codec:?}");
        publish(&server, "feed/a", 4);
        assert_eq!(items(&[raw.next::<Item>().await]), [(4, 4)]);
        nothing_more(&mut raw).await;
    }
}

#[tokio::test]
async fn a_channel_without_subscribers_here_tells_nobody() {
    let server = start(MemoryEngine::new()).await;
    assert_eq!(server.resubscribe("feed/nobody"), 0);
    assert_eq!(server.stats().resubscribes_requested, 0);
}

#[tokio::test]
async fn a_client_that_sends_sl_resub_commits_a_bad_frame() {
    for codec in CODECS {
        let server = start(MemoryEngine::new()).await;
        let mut raw = Raw::connect(&server.ws_url(), "", codec).await;
        raw.send(&Control::Resubscribe {
            channel: "feed/a".into(),
        })
        .await;
        match raw.next::<Item>().await {
            Frame::Control(Control::Error(error)) => {
                assert_eq!(error.code, codes::BAD_FRAME, "{error:?}");
            }
            other => panic!("expected sl/error, got {other:?}"),
        }
        assert_eq!(server.stats().errors.bad_frame, 1);
    }
}

/// The in-memory engine, whose recoveries wait while the gate is closed:
/// a subscription then stays in its catching-up phase until the test opens it.
#[derive(Clone)]
struct Gated {
    inner: MemoryEngine,
    closed: Arc<AtomicBool>,
    gate: Arc<Semaphore>,
}

impl Gated {
    fn new() -> Self {
        Self {
            inner: MemoryEngine::new(),
            closed: Arc::new(AtomicBool::new(false)),
            gate: Arc::new(Semaphore::new(0)),
        }
    }

    fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

impl Engine for Gated {
    fn start(&self, node: Node) {
        self.inner.start(node);
    }

    fn publish(
        &self,
        channel: &str,
        event: &OutgoingEvent<'_>,
        options: &ChannelOptions,
    ) -> EngineFuture<Published> {
        self.inner.publish(channel, event, options)
    }

    fn subscribe(&self, channel: &str) -> EngineFuture<()> {
        self.inner.subscribe(channel)
    }

    fn unsubscribe(&self, channel: &str) {
        self.inner.unsubscribe(channel);
    }

    fn recover(
        &self,
        channel: &str,
        since: Option<&StreamPosition>,
        options: &ChannelOptions,
    ) -> EngineFuture<Recovery> {
        let wait = self
            .closed
            .load(Ordering::SeqCst)
            .then(|| Arc::clone(&self.gate));
        let (inner, channel, since, options) = (
            self.inner.clone(),
            channel.to_owned(),
            since.cloned(),
            options.clone(),
        );
        Box::pin(async move {
            if let Some(gate) = wait {
                drop(gate.acquire().await);
            }
            inner.recover(&channel, since.as_ref(), &options).await
        })
    }

    fn history(
        &self,
        channel: &str,
        options: &ChannelOptions,
    ) -> EngineFuture<Vec<Arc<Publication>>> {
        self.inner.history(channel, options)
    }

    fn presence_join(&self, channel: &str, member: PresenceMember, conn: ConnId) {
        self.inner.presence_join(channel, member, conn);
    }

    fn presence_leave(&self, channel: &str, user: &UserId, conn: ConnId) {
        self.inner.presence_leave(channel, user, conn);
    }

    fn presence(&self, channel: &str) -> EngineFuture<Vec<PresenceMember>> {
        self.inner.presence(channel)
    }

    fn user_join(&self, user: &UserId, conn: ConnId) {
        self.inner.user_join(user, conn);
    }

    fn user_leave(&self, user: &UserId, conn: ConnId) {
        self.inner.user_leave(user, conn);
    }

    fn send_to_user(&self, user: &UserId, event: &OutgoingEvent<'_>) -> EngineFuture<usize> {
        self.inner.send_to_user(user, event)
    }

    fn disconnect_user(&self, user: &UserId, reason: &CloseReason) -> EngineFuture<usize> {
        self.inner.disconnect_user(user, reason)
    }

    fn request_user(
        &self,
        user: &UserId,
        event: &OutgoingEvent<'_>,
        timeout: Duration,
    ) -> sente_lite::engine::ReplyFuture {
        self.inner.request_user(user, event, timeout)
    }
}

#[tokio::test]
async fn a_subscription_catching_up_is_answered_then_told_to_subscribe_again() {
    for codec in CODECS {
        let engine = Gated::new();
        let server = start(engine.clone()).await;
        let mut live = Raw::connect(&server.ws_url(), "", codec).await;
        let (_, reply) = live.subscribe::<Item>("feed/g", None).await;
        let live_since = reply.expect("subscribed").position.expect("a position");

        // The second subscription waits for its recovery.
        engine.closed.store(true, Ordering::SeqCst);
        let mut late = Raw::connect(&server.ws_url(), "", codec).await;
        let req_id = late.req_id();
        late.send(&Control::Subscribe {
            req_id,
            channel: "feed/g".into(),
            since: None,
        })
        .await;
        until("the second subscription is catching up", || {
            server.subscribers("feed/g").len() == 2
        })
        .await;

        assert_eq!(server.resubscribe("feed/g"), 2);
        assert_eq!(
            live.next_message_within(PATIENCE).await,
            Some(Ok(resub_frame(codec, "feed/g")))
        );
        // Neither takes this one: the first left, the second takes no more.
        publish(&server, "feed/g", 1);
        engine.open();

        // The second is answered as it stands (its recovery, read now, is
        // past that publication), after the `sl/resub`.
        assert_eq!(
            late.next_message_within(PATIENCE).await,
            Some(Ok(resub_frame(codec, "feed/g")))
        );
        let (before, reply) = late.until_reply::<Item>(req_id).await;
        assert!(before.is_empty(), "{before:?}");
        let reply: SubscribeReply = late.payload(&reply.expect("answered"));
        let late_since = reply.position.expect("a position");
        assert_eq!(late_since.offset, 1);
        assert!(server.subscribers("feed/g").is_empty());
        assert_eq!(server.stats().errors.slow_consumer, 0);

        // Each gets what came after the position it holds.
        publish(&server, "feed/g", 2);
        for (raw, since, missed) in [
            (&mut live, live_since, vec![(1, 1), (2, 2)]),
            (&mut late, late_since, vec![(2, 2)]),
        ] {
            let (before, reply) = raw.subscribe::<Item>("feed/g", Some(since)).await;
            assert!(reply.expect("subscribed again").recovered);
            assert_eq!(items(&before), missed, "{codec:?}");
        }
    }
}

// ---- the native client -----------------------------------------------------

/// What the client saw: the items its handler got, the gaps and the answers
/// to its subscribes again, in order.
#[derive(Clone, Default)]
struct Seen {
    items: Arc<Mutex<Vec<u64>>>,
    gaps: Arc<Mutex<Vec<String>>>,
    resubscribed: Arc<Mutex<Vec<(String, bool)>>>,
}

impl Seen {
    fn items(&self) -> Vec<u64> {
        self.items.lock().unwrap().clone()
    }

    fn gaps(&self) -> Vec<String> {
        self.gaps.lock().unwrap().clone()
    }

    fn resubscribed(&self) -> Vec<(String, bool)> {
        self.resubscribed.lock().unwrap().clone()
    }
}

#[sente_lite::handler]
async fn on_item(ctx: Ctx, item: Item) {
    if let Some(seen) = ctx.state::<Seen>() {
        seen.items.lock().unwrap().push(item.n);
    }
}

fn client(server: &Server, codec: Codec, name: &str, seen: &Seen) -> ClientBuilder {
    let (gaps, resubscribed) = (Arc::clone(&seen.gaps), Arc::clone(&seen.resubscribed));
    Client::builder(format!("{}?name={name}", server.ws_url()))
        .codec(codec)
        .router(Router::new().handler(on_item))
        .state(seen.clone())
        .reconnect(ReconnectPolicy::default().with_initial_delay(Duration::from_millis(20)))
        .request_timeout(PATIENCE)
        .on_gap(move |channel, _| gaps.lock().unwrap().push(channel.to_owned()))
        .on_resubscribe(move |channel, result| {
            let recovered = result.as_ref().is_ok_and(|reply| reply.recovered);
            resubscribed
                .lock()
                .unwrap()
                .push((channel.to_owned(), recovered));
        })
}

/// A server, and a client of it (user `ada`) subscribed to `channel`.
async fn subscribed_client(codec: Codec, channel: &str) -> (Server, Client, Seen) {
    let server = start(MemoryEngine::new()).await;
    let seen = Seen::default();
    let client = client(&server, codec, "ada", &seen)
        .connect()
        .await
        .unwrap();
    client.subscribe(channel).await.unwrap();
    (server, client, seen)
}

#[tokio::test]
async fn the_client_subscribes_again_and_misses_nothing() {
    for codec in CODECS {
        let (server, client, seen) = subscribed_client(codec, "feed/c").await;
        for n in 1..=3 {
            publish(&server, "feed/c", n);
        }
        until("the first items", || seen.items().len() == 3).await;

        assert_eq!(server.resubscribe("feed/c"), 1);
        // Published before the client is back: replayed from the history.
        for n in 4..=6 {
            publish(&server, "feed/c", n);
        }
        until("the client subscribed again", || {
            !seen.resubscribed().is_empty()
        })
        .await;
        for n in 7..=9 {
            publish(&server, "feed/c", n);
        }
        until("every item", || seen.items().len() >= 9).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(seen.items(), (1..=9).collect::<Vec<_>>(), "{codec:?}");
        assert_eq!(seen.gaps(), Vec::<String>::new());
        assert_eq!(seen.resubscribed(), [("feed/c".to_owned(), true)]);
        assert_eq!(client.position("feed/c").map(|p| p.offset), Some(9));
        assert_eq!(server.stats().errors.bad_frame, 0);
        client.disconnect().await;
    }
}

#[tokio::test]
async fn a_publication_missed_on_a_channel_without_history_is_a_gap() {
    for codec in CODECS {
        let (server, client, seen) = subscribed_client(codec, "plain/p").await;
        publish(&server, "plain/p", 1);
        until("the first item", || seen.items() == [1]).await;

        assert_eq!(server.resubscribe("plain/p"), 1);
        // Before the client can be back (nothing ran in between): missed,
        // and no history holds it.
        publish(&server, "plain/p", 2);
        until("the gap is reported", || !seen.gaps().is_empty()).await;
        assert_eq!(seen.gaps(), ["plain/p"], "{codec:?}");
        until("the client subscribed again", || {
            !seen.resubscribed().is_empty()
        })
        .await;
        assert_eq!(seen.resubscribed(), [("plain/p".to_owned(), false)]);
        publish(&server, "plain/p", 3);
        until("the next item", || seen.items().len() == 2).await;
        assert_eq!(seen.items(), [1, 3]);
        client.disconnect().await;
    }
}

#[tokio::test]
async fn a_resub_before_the_answer_to_the_client_s_subscribe_waits_for_it() {
    let engine = Gated::new();
    let server = start(engine.clone()).await;
    let seen = Seen::default();
    let client = client(&server, Codec::Json, "ada", &seen)
        .connect()
        .await
        .unwrap();
    engine.closed.store(true, Ordering::SeqCst);
    let subscribing = tokio::spawn({
        let client = client.clone();
        async move { client.subscribe("feed/r").await }
    });
    until("the subscription is catching up", || {
        server.subscribers("feed/r").len() == 1
    })
    .await;
    assert_eq!(server.resubscribe("feed/r"), 1);
    publish(&server, "feed/r", 1);
    engine.open();

    // The `sl/resub` came first; the answer's position is where the client
    // resumes from.
    let reply = subscribing.await.unwrap().expect("answered");
    assert_eq!(reply.position.map(|p| p.offset), Some(1));
    until("the client subscribed again", || {
        !seen.resubscribed().is_empty()
    })
    .await;
    assert_eq!(seen.resubscribed(), [("feed/r".to_owned(), true)]);
    assert_eq!(server.subscribers("feed/r").len(), 1);
    publish(&server, "feed/r", 2);
    until("the next item", || seen.items() == [2]).await;
    assert!(seen.gaps().is_empty());
}

#[tokio::test]
async fn a_presence_watch_is_watched_again_after_a_resub() {
    let (server, ada, _) = subscribed_client(Codec::Json, "room/w").await;
    let mut watch = ada.watch_presence("room/w").await.unwrap();
    let ada_member = watch.members();
    assert_eq!(ada_member.len(), 1);

    assert_eq!(server.resubscribe("room/w"), 1);
    // As after a reconnect: subscribed again, the members are asked for again.
    let change = tokio::time::timeout(PATIENCE, watch.changed())
        .await
        .expect("a change in time");
    assert_eq!(change, Some(PresenceEvent::Reset(ada_member.clone())));
    assert!(watch.is_current());

    let bob = client(&server, Codec::Postcard, "bob", &Seen::default())
        .connect()
        .await
        .unwrap();
    bob.subscribe("room/w").await.unwrap();
    let change = tokio::time::timeout(PATIENCE, watch.changed())
        .await
        .expect("a change in time");
    match change {
        Some(PresenceEvent::Joined(member)) => assert_eq!(member.user_id, UserId::from("bob")),
        other => panic!("expected bob to join, got {other:?}"),
    }
}

#[tokio::test]
async fn a_subscription_the_client_did_not_ask_for_is_not_taken_again() {
    let server = start(MemoryEngine::new()).await;
    let seen = Seen::default();
    let client = client(&server, Codec::Json, "ada", &seen)
        .connect()
        .await
        .unwrap();
    let conn = client.conn_id().expect("connected");
    server
        .subscribe(conn, "feed/made")
        .await
        .expect("subscribed by the server");
    publish(&server, "feed/made", 1);
    until("the item", || seen.items() == [1]).await;

    assert_eq!(server.resubscribe("feed/made"), 1);
    // The client keeps the channels it asked for: it does not ask for this one.
    client.subscribe("feed/asked").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.subscribers("feed/made").is_empty());
    assert_eq!(server.stats().errors.bad_frame, 0);
    publish(&server, "feed/made", 2);
    publish(&server, "feed/asked", 3);
    until("the item asked for", || seen.items().len() == 2).await;
    assert_eq!(seen.items(), [1, 3]);
    assert!(seen.resubscribed().is_empty());
}
