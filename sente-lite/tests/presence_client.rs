//! The native client's side of recovery and presence, against a real server
//! over real sockets: channel positions across a reconnect, presence
//! snapshots, watches that follow joins and leaves, and watches restored
//! after the client reconnects.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sente_lite::client::PresenceEvent;
use sente_lite::protocol::{PresenceMember, SubscribeReply, codes};
use sente_lite::server::{ChannelOptions, Rejection, allow_all};
use sente_lite::{
    Client, ClientBuilder, Codec, ConnectionState, Ctx, PresenceWatch, ReconnectPolicy,
    RequestError, Router, Server, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// How long any single expected thing may take before a test fails.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long a leave may take: the server's presence grace (5 s by default),
/// its 100 ms gathering, and margin.
const LEAVE_PATIENCE: Duration = Duration::from_secs(10);

/// Published on channels, numbered by the test.
#[sente_lite::event("pc/tick")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tick {
    seq: u64,
}

/// What a client's handler received, in arrival order.
#[derive(Clone, Default)]
struct Ticks(Arc<Mutex<Vec<u64>>>);

impl Ticks {
    fn seen(&self) -> Vec<u64> {
        self.0.lock().unwrap().clone()
    }
}

#[sente_lite::handler]
async fn on_tick(ctx: Ctx, tick: Tick) {
    if let Some(ticks) = ctx.state::<Ticks>() {
        ticks.0.lock().unwrap().push(tick.seq);
    }
}

/// A server whose `room/*` channels keep 100 publications of history and
/// their presence; a member's info is its name in capitals. Users come from
/// the `?name=` query.
async fn server() -> Server {
    Server::builder()
        .auth(|req| async move { Ok::<_, Rejection>(req.query("name").map(UserId::from)) })
        .channel("room/*", allow_all)
        .channel_options(
            "room/*",
            ChannelOptions {
                history_size: 100,
                presence: true,
                ..Default::default()
            },
        )
        .presence_info(|ctx: &Ctx, _channel: &str| {
            ctx.user_id()
                .map(|user| json!({ "name": user.0.to_uppercase() }))
        })
        .bind("127.0.0.1:0")
        .await
        .expect("server binds")
}

fn builder(server: &Server, name: Option<&str>) -> ClientBuilder {
    let url = match name {
        Some(name) => format!("{}?name={name}", server.ws_url()),
        None => server.ws_url(),
    };
    Client::builder(url)
        .router(Router::new().handler(on_tick))
        .reconnect(
            ReconnectPolicy::default()
                .with_initial_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_millis(200)),
        )
        .request_timeout(PATIENCE)
}

async fn connect(server: &Server, name: &str) -> Client {
    builder(server, Some(name)).connect().await.unwrap()
}

fn member(name: &str) -> PresenceMember {
    PresenceMember {
        user_id: name.into(),
        info: Some(json!({ "name": name.to_uppercase() })),
    }
}

fn ids(members: &[PresenceMember]) -> Vec<String> {
    members.iter().map(|m| m.user_id.0.clone()).collect()
}

/// The next change of `watch`, within `patience`.
async fn next_change(watch: &mut PresenceWatch, patience: Duration) -> PresenceEvent {
    timeout(patience, watch.changed())
        .await
        .unwrap_or_else(|_| panic!("no presence change on {} in time", watch.channel()))
        .expect("the client is running")
}

/// Waits until `condition` holds, checking every few milliseconds.
async fn eventually(what: &str, patience: Duration, condition: impl Fn() -> bool) {
    timeout(patience, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never happened: {what}"));
}

// ---- presence ---------------------------------------------------------------

async fn presence_lists_members(codec: Codec, channel: &str) {
    let server = server().await;
    let ada = builder(&server, Some("ada"))
        .codec(codec)
        .connect()
        .await
        .unwrap();
    let bob = connect(&server, "bob").await;
    let anonymous = builder(&server, None).connect().await.unwrap();
    for client in [&ada, &bob, &anonymous] {
        client.subscribe(channel).await.unwrap();
    }

    let snapshot = ada.presence(channel).await.unwrap();
    assert_eq!(
        snapshot.members,
        vec![member("ada"), member("bob")],
        "anonymous connections are not members"
    );
    assert_eq!(
        server.channel_presence(channel).await.unwrap(),
        snapshot.members
    );

    // Asking does not start a watch, and a channel not subscribed is refused.
    match ada.presence("room/elsewhere").await {
        Err(RequestError::Remote(err)) => assert_eq!(err.code, codes::FORBIDDEN),
        other => panic!("expected forbidden, got {other:?}"),
    }
    assert_eq!(ada.state(), ConnectionState::Open);
}

#[tokio::test]
async fn presence_lists_the_members_with_their_info_over_json() {
    presence_lists_members(Codec::Json, "room/members-json").await;
}

#[tokio::test]
async fn presence_lists_the_members_with_their_info_over_postcard() {
    presence_lists_members(Codec::Postcard, "room/members-postcard").await;
}

#[tokio::test]
async fn a_watch_sees_joins_and_leaves() {
    let server = server().await;
    let ada = connect(&server, "ada").await;
    ada.subscribe("room/watch").await.unwrap();
    let mut watch = ada.watch_presence("room/watch").await.unwrap();
    assert_eq!(watch.channel(), "room/watch");
    assert!(watch.is_current());
    assert_eq!(watch.members(), vec![member("ada")]);

    let bob = builder(&server, Some("bob"))
        .codec(Codec::Postcard)
        .connect()
        .await
        .unwrap();
    bob.subscribe("room/watch").await.unwrap();
    assert_eq!(
        next_change(&mut watch, PATIENCE).await,
        PresenceEvent::Joined(member("bob"))
    );
    assert_eq!(watch.members(), vec![member("ada"), member("bob")]);

    bob.unsubscribe("room/watch").await.unwrap();
    assert_eq!(
        next_change(&mut watch, LEAVE_PATIENCE).await,
        PresenceEvent::Left("bob".into())
    );
    assert_eq!(watch.members(), vec![member("ada")]);
    assert_eq!(
        ada.presence("room/watch").await.unwrap().members,
        watch.members()
    );

    // Once the client is disconnected, no change will come.
    ada.disconnect().await;
    assert_eq!(timeout(PATIENCE, watch.changed()).await, Ok(None));
}

#[tokio::test]
async fn watches_of_one_channel_share_the_server_s_and_stop_with_the_last() {
    let server = server().await;
    let ada = connect(&server, "ada").await;
    ada.subscribe("room/shared").await.unwrap();
    let first = ada.watch_presence("room/shared").await.unwrap();
    let mut second = ada.watch_presence("room/shared").await.unwrap();
    drop(first);

    let bob = connect(&server, "bob").await;
    bob.subscribe("room/shared").await.unwrap();
    assert_eq!(
        next_change(&mut second, PATIENCE).await,
        PresenceEvent::Joined(member("bob"))
    );
    drop(second);

    // A new watch after the last one stopped starts from a fresh snapshot.
    let cy = connect(&server, "cy").await;
    cy.subscribe("room/shared").await.unwrap();
    let mut third = ada.watch_presence("room/shared").await.unwrap();
    assert_eq!(
        third.members(),
        vec![member("ada"), member("bob"), member("cy")]
    );
    let dan = connect(&server, "dan").await;
    dan.subscribe("room/shared").await.unwrap();
    assert_eq!(
        next_change(&mut third, PATIENCE).await,
        PresenceEvent::Joined(member("dan"))
    );
}

#[tokio::test]
async fn a_watch_is_restored_after_the_client_reconnects() {
    let server = server().await;
    let ada = connect(&server, "ada").await;
    let bob = connect(&server, "bob").await;
    ada.subscribe("room/again").await.unwrap();
    bob.subscribe("room/again").await.unwrap();
    let mut watch = ada.watch_presence("room/again").await.unwrap();
    let before = ada.conn_id();

    ada.reconnect();
    // The new connection subscribes again, then asks for the members again.
    assert_eq!(
        next_change(&mut watch, PATIENCE).await,
        PresenceEvent::Reset(vec![member("ada"), member("bob")]),
        "ada came back within the grace: she never left"
    );
    assert_ne!(ada.conn_id(), before);
    assert!(watch.is_current());

    // The server watches for the new connection.
    let cy = connect(&server, "cy").await;
    cy.subscribe("room/again").await.unwrap();
    assert_eq!(
        next_change(&mut watch, PATIENCE).await,
        PresenceEvent::Joined(member("cy"))
    );
    assert_eq!(
        watch.members(),
        vec![member("ada"), member("bob"), member("cy")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_started_while_users_join_ends_with_the_server_s_members() {
    let server = server().await;
    let ada = connect(&server, "ada").await;
    ada.subscribe("room/busy").await.unwrap();
    let mut joiners = Vec::new();
    for n in 0..12 {
        joiners.push(connect(&server, &format!("j{n:02}")).await);
    }
    // Users join before, during and after the watch's request, so that some
    // diffs arrive before its snapshot and some after.
    let joining = tokio::spawn({
        let joiners = joiners.clone();
        async move {
            for client in &joiners {
                client.subscribe("room/busy").await.unwrap();
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(40)).await;
    let mut watch = ada.watch_presence("room/busy").await.unwrap();
    // A replica built from the watch's changes alone.
    let mut replica: BTreeMap<UserId, PresenceMember> = watch
        .members()
        .into_iter()
        .map(|m| (m.user_id.clone(), m))
        .collect();
    joining.await.unwrap();

    let mut expected = vec!["ada".to_owned()];
    expected.extend((0..12).map(|n| format!("j{n:02}")));
    while ids(&replica.values().cloned().collect::<Vec<_>>()) != expected {
        match next_change(&mut watch, PATIENCE).await {
            PresenceEvent::Joined(member) => {
                replica.insert(member.user_id.clone(), member);
            }
            PresenceEvent::Left(user) => {
                replica.remove(&user);
            }
            PresenceEvent::Reset(members) => {
                replica = members
                    .into_iter()
                    .map(|m| (m.user_id.clone(), m))
                    .collect();
            }
        }
    }
    assert_eq!(ids(&watch.members()), expected);
    assert_eq!(
        server.channel_presence("room/busy").await.unwrap(),
        watch.members()
    );
}

#[tokio::test]
async fn presence_waits_for_the_channel_to_be_restored_after_a_reconnect() {
    let server = server().await;
    let ada = connect(&server, "ada").await;
    ada.subscribe("room/restore").await.unwrap();
    let before = ada.conn_id();
    ada.reconnect();
    eventually("a new connection", PATIENCE, || {
        ada.conn_id().is_some_and(|id| Some(id) != before)
    })
    .await;
    // Asked as soon as the new connection is up: the request waits until the
    // channel was subscribed again there.
    let snapshot = ada.presence("room/restore").await.unwrap();
    assert_eq!(snapshot.members, vec![member("ada")]);
}

// ---- positions --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_keep_the_largest_and_a_resume_replays_each_publication_once() {
    let server = server().await;
    let (resubscribed_tx, mut resubscribed) = mpsc::unbounded_channel();
    let gaps = Arc::new(Mutex::new(Vec::<String>::new()));
    let ticks = Ticks::default();
    let client = builder(&server, Some("ada"))
        .state(ticks.clone())
        // One handler at a time: publications are recorded in arrival order.
        .max_concurrent_handlers(1)
        .on_resubscribe(
            move |channel: &str, result: &Result<SubscribeReply, RequestError>| {
                let _ = resubscribed_tx.send((channel.to_owned(), result.clone()));
            },
        )
        .on_gap({
            let gaps = Arc::clone(&gaps);
            move |channel, _reply| gaps.lock().unwrap().push(channel.to_owned())
        })
        .connect()
        .await
        .unwrap();

    // A publisher that keeps going while the client subscribes and reconnects.
    const TOTAL: u64 = 400;
    let publisher = tokio::spawn({
        let server = server.clone();
        async move {
            for seq in 0..TOTAL {
                server.broadcast("room/ticks", &Tick { seq }).unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reply = client.subscribe("room/ticks").await.unwrap();
    let start = reply.position.clone().expect("the server keeps positions");
    assert!(
        !reply.recovered,
        "a subscribe without `since` is not recovered"
    );
    // Publications that arrived before the answer are kept: never behind it.
    let held = client.position("room/ticks").unwrap();
    assert_eq!(held.epoch, start.epoch);
    assert!(held.offset >= start.offset, "{held:?} is behind {start:?}");

    eventually("some publications arrived", PATIENCE, || {
        ticks.seen().len() >= 20
    })
    .await;
    client.reconnect();
    let (channel, result) = timeout(PATIENCE, resubscribed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(channel, "room/ticks");
    assert!(
        result.unwrap().recovered,
        "the history held everything missed"
    );
    publisher.await.unwrap();

    // Every publication after the subscription's start arrived once, in
    // order, across the reconnect; the position is the last one's.
    let first = ticks.seen()[0];
    let expected: Vec<u64> = (first..TOTAL).collect();
    eventually("every publication arrived", PATIENCE, || {
        ticks.seen().len() >= expected.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ticks.seen(), expected, "no gap, no duplicate, in order");
    let last = client.position("room/ticks").unwrap();
    assert_eq!(last.epoch, start.epoch);
    assert_eq!(last.offset, start.offset + expected.len() as u64);
    assert!(gaps.lock().unwrap().is_empty(), "no gap was reported");
}
