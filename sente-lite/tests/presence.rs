//! Channel presence over real sockets, in both encodings: snapshots, diffs to
//! watchers, the grace that keeps a reload from flapping, the refusals, and a
//! storm of joins that costs each watcher a few frames.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use sente_lite::engine::{Engine as _, MemoryEngine};
use sente_lite::protocol::{PresenceMember, UserId, codes};
use sente_lite::server::{ChannelOptions, allow_all};
use sente_lite::{Codec, ConnId, Server};
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::{Frame, Raw};

#[sente_lite::event("presence/item")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item;

const GRACE: Duration = Duration::from_millis(300);

async fn start(engine: MemoryEngine) -> Server {
    Server::builder()
        .auth(|req| async move { Ok(req.query("name").map(UserId::from)) })
        .channel("room/*", allow_all)
        .channel("quiet/*", allow_all)
        .channel_options(
            "room/*",
            ChannelOptions {
                presence: true,
                ..ChannelOptions::default()
            },
        )
        .presence_info(|ctx, channel| {
            ctx.user_id()
                .map(|user| json!({ "name": user.0.to_uppercase(), "channel": channel }))
        })
        .configure(|config| config.presence_grace = GRACE)
        .engine(engine)
        .bind("127.0.0.1:0")
        .await
        .expect("server binds")
}

fn member(user: &str, channel: &str) -> PresenceMember {
    PresenceMember {
        user_id: UserId::from(user),
        info: Some(json!({ "name": user.to_uppercase(), "channel": channel })),
    }
}

/// A connection of `user` subscribed to `channel`.
async fn join(server: &Server, user: &str, channel: &str, codec: Codec) -> Raw {
    let mut raw = Raw::connect(&server.ws_url(), &format!("?name={user}"), codec).await;
    let (_, reply) = raw.subscribe::<Item>(channel, None).await;
    reply.expect("subscribed");
    raw
}

/// The next presence diff, as (joined users, left users).
async fn diff(raw: &mut Raw) -> (Vec<PresenceMember>, Vec<UserId>) {
    match raw.next::<Item>().await {
        Frame::PresenceDiff { diff, .. } => (diff.joined, diff.left),
        other => panic!("expected a presence diff, got {other:?}"),
    }
}

async fn nothing_within(raw: &mut Raw, wait: Duration) {
    if let Some(frame) = raw.next_within::<Item>(wait).await {
        panic!("unexpected frame {frame:?}");
    }
}

#[tokio::test]
async fn a_watcher_gets_the_snapshot_then_each_join_and_leave() {
    for codec in [Codec::Json, Codec::Postcard] {
        let server = start(MemoryEngine::new()).await;
        let _ada = join(&server, "ada", "room/a", codec).await;
        let mut bob = join(&server, "bob", "room/a", codec).await;
        let (before, snapshot) = bob.presence::<Item>("room/a", true).await;
        assert!(before.is_empty());
        assert_eq!(
            snapshot.expect("a snapshot").members,
            [member("ada", "room/a"), member("bob", "room/a")]
        );

        let mut cy = join(&server, "cy", "room/a", codec).await;
        assert_eq!(diff(&mut bob).await, (vec![member("cy", "room/a")], vec![]));

        let req_id = cy.req_id();
        cy.send(&sente_lite::protocol::Control::Unsubscribe {
            req_id,
            channel: "room/a".into(),
        })
        .await;
        // The leave waits for the grace: nothing for a while, then the diff.
        nothing_within(&mut bob, GRACE / 2).await;
        assert_eq!(diff(&mut bob).await, (vec![], vec![UserId::from("cy")]));
        assert_eq!(
            server.channel_presence("room/a").await.unwrap(),
            [member("ada", "room/a"), member("bob", "room/a")]
        );
    }
}

#[tokio::test]
async fn a_reload_within_the_grace_does_not_flap() {
    let server = start(MemoryEngine::new()).await;
    let mut watcher = join(&server, "bob", "room/r", Codec::Json).await;
    watcher
        .presence::<Item>("room/r", true)
        .await
        .1
        .expect("watching");
    let ada = join(&server, "ada", "room/r", Codec::Json).await;
    assert_eq!(diff(&mut watcher).await.0, [member("ada", "room/r")]);
    ada.drop_connection();
    tokio::time::sleep(GRACE / 3).await;
    let _ada = join(&server, "ada", "room/r", Codec::Postcard).await;
    nothing_within(&mut watcher, GRACE * 2).await;
    assert_eq!(
        server.channel_presence("room/r").await.unwrap(),
        [member("ada", "room/r"), member("bob", "room/r")]
    );
}

#[tokio::test]
async fn a_user_with_two_connections_leaves_with_the_last() {
    let server = start(MemoryEngine::new()).await;
    let mut watcher = join(&server, "bob", "room/t", Codec::Json).await;
    watcher
        .presence::<Item>("room/t", true)
        .await
        .1
        .expect("watching");
    let tab1 = join(&server, "ada", "room/t", Codec::Json).await;
    let tab2 = join(&server, "ada", "room/t", Codec::Json).await;
    assert_eq!(diff(&mut watcher).await.0, [member("ada", "room/t")]);
    tab1.drop_connection();
    nothing_within(&mut watcher, GRACE * 2).await;
    tab2.drop_connection();
    assert_eq!(diff(&mut watcher).await.1, [UserId::from("ada")]);
}

#[tokio::test]
async fn presence_is_refused_where_it_is_not_kept_or_not_subscribed() {
    let server = start(MemoryEngine::new()).await;
    let mut raw = join(&server, "ada", "quiet/q", Codec::Json).await;
    let refused = raw.presence::<Item>("quiet/q", false).await.1.unwrap_err();
    assert_eq!(refused.code, codes::FORBIDDEN);
    assert!(refused.message.contains("keeps no presence"), "{refused:?}");
    let refused = raw
        .presence::<Item>("room/other", true)
        .await
        .1
        .unwrap_err();
    assert_eq!(refused.code, codes::FORBIDDEN);
    assert!(refused.message.contains("subscribe to"), "{refused:?}");
}

#[tokio::test]
async fn anonymous_connections_are_not_members() {
    let server = start(MemoryEngine::new()).await;
    let mut anonymous = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    anonymous
        .subscribe::<Item>("room/n", None)
        .await
        .1
        .expect("subscribed");
    let (_, snapshot) = anonymous.presence::<Item>("room/n", true).await;
    assert!(snapshot.expect("a snapshot").members.is_empty());
    let _ada = join(&server, "ada", "room/n", Codec::Json).await;
    assert_eq!(diff(&mut anonymous).await.0, [member("ada", "room/n")]);
}

#[tokio::test]
async fn a_watch_ends_when_asked_or_unsubscribed() {
    let server = start(MemoryEngine::new()).await;
    let mut watcher = join(&server, "bob", "room/w", Codec::Json).await;
    watcher
        .presence::<Item>("room/w", true)
        .await
        .1
        .expect("watching");
    let (_, snapshot) = watcher.presence::<Item>("room/w", false).await;
    assert_eq!(snapshot.unwrap().members, [member("bob", "room/w")]);
    let _ada = join(&server, "ada", "room/w", Codec::Json).await;
    nothing_within(&mut watcher, Duration::from_millis(300)).await;

    watcher
        .presence::<Item>("room/w", true)
        .await
        .1
        .expect("watching");
    let req_id = watcher.req_id();
    watcher
        .send(&sente_lite::protocol::Control::Unsubscribe {
            req_id,
            channel: "room/w".into(),
        })
        .await;
    let (_, unsubscribed) = watcher.until_reply::<Item>(req_id).await;
    unsubscribed.expect("unsubscribed");
    let _cy = join(&server, "cy", "room/w", Codec::Json).await;
    nothing_within(&mut watcher, Duration::from_millis(300)).await;
}

/// 10,000 users join at once: a watcher gets them in a handful of frames of
/// at most 500 users each, not 10,000 frames, and is not closed as slow.
#[tokio::test]
async fn a_storm_of_joins_costs_a_watcher_a_few_frames() {
    let engine = MemoryEngine::new();
    let server = start(engine.clone()).await;
    let mut watcher = join(&server, "watcher", "room/storm", Codec::Postcard).await;
    watcher
        .presence::<Item>("room/storm", true)
        .await
        .1
        .expect("watching");
    for i in 0..10_000u64 {
        let member = PresenceMember {
            user_id: UserId(format!("user-{i:05}")),
            info: None,
        };
        engine.presence_join("room/storm", member, ConnId(1_000_000 + i));
    }
    let mut joined = BTreeSet::new();
    let mut frames = 0;
    while joined.len() < 10_000 {
        let (members, left) = diff(&mut watcher).await;
        assert!(members.len() <= 500 && left.is_empty());
        frames += 1;
        joined.extend(members.into_iter().map(|m| m.user_id));
    }
    assert!(frames <= 40, "{frames} frames for 10,000 joins");
    assert_eq!(
        server.stats().connections,
        1,
        "the watcher is still connected"
    );
    assert_eq!(
        server.channel_presence("room/storm").await.unwrap().len(),
        10_001
    );
}
