//! Several server processes on one real Redis act as one: publications cross
//! servers in both encodings, `send_to_user` reaches a user on another
//! server, presence is the union, a client resumes on another server, and a
//! server killed with SIGKILL under traffic loses its clients nothing.

#[path = "cluster_events.rs"]
mod cluster_events;
#[path = "listening.rs"]
mod listening;
#[path = "ports.rs"]
mod ports;
#[path = "redis_process.rs"]
mod redis_process;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use cluster_events::{
    Ask, Kick, Members, NameOf, News, Note, Publish, PublishOthers, Question, Tell,
};
use futures_util::{SinkExt, StreamExt};
use listening::spawn_listening;
use redis_process::{RedisProcess, free_port};
use sente_lite::{Client, Codec, ConnectionState, Ctx, ReconnectPolicy, Router};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

/// A server process, killed (SIGKILL) when dropped.
struct Node {
    child: Child,
    url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn node(name: &str, addr: &str, redis: &RedisProcess, shared_port: bool) -> Node {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cluster_server"));
    command.args(["--addr", addr, "--redis", &redis.url(), "--name", name]);
    if shared_port {
        command.arg("--shared-port");
    }
    let (child, mut lines, url) = spawn_listening(&mut command).await;
    // The rest of its output is not read; keep the pipe drained.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Node { child, url }
}

/// What each client received, by its label: news texts, notes, gaps.
#[derive(Default)]
struct Seen {
    news: Vec<String>,
    notes: Vec<String>,
    gaps: usize,
}

static SEEN: LazyLock<Mutex<HashMap<String, Seen>>> = LazyLock::new(Default::default);

fn seen<T>(label: &str, f: impl FnOnce(&mut Seen) -> T) -> T {
    f(SEEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(label.to_owned())
        .or_default())
}

/// A client's label, kept in its state.
struct Label(String);

#[sente_lite::handler]
async fn on_news(ctx: Ctx, news: News) {
    if let Some(Label(label)) = ctx.state::<Label>() {
        seen(label, |s| s.news.push(news.text));
    }
}

#[sente_lite::handler]
async fn on_note(ctx: Ctx, note: Note) {
    if let Some(Label(label)) = ctx.state::<Label>() {
        seen(label, |s| s.notes.push(note.text));
    }
}

#[sente_lite::handler]
async fn on_question(ctx: Ctx, question: Question) -> String {
    let label = ctx.state::<Label>().map_or("?", |l| l.0.as_str());
    format!("{label} answers {}", question.text)
}

async fn client(label: &str, url: &str, user: Option<&str>, codec: Codec) -> Client {
    let url = match user {
        Some(user) => format!("{url}?user={user}"),
        None => url.to_owned(),
    };
    let gap_label = label.to_owned();
    Client::builder(url)
        .router(
            Router::new()
                .handler(on_news)
                .handler(on_note)
                .handler(on_question),
        )
        .state(Label(label.to_owned()))
        .codec(codec)
        .reconnect(
            ReconnectPolicy::default()
                .with_initial_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_millis(300)),
        )
        .on_gap(move |_, _| seen(&gap_label, |s| s.gaps += 1))
        .connect()
        .await
        .expect("client connects")
}

/// The body of `GET path` on the server of WebSocket URL `ws_url`.
async fn http_get(ws_url: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let host = ws_url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .expect("a ws:// URL");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

/// The members of `channel` once `done` holds of them (asked again every
/// 20 ms, for 15 s at most), or the last answer.
async fn members_until(
    client: &Client,
    channel: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let members = members_of(client, channel).await;
        if done(&members) || tokio::time::Instant::now() >= deadline {
            return members;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next change a presence watch sees, within 10 s.
async fn next_change(
    watch: &mut sente_lite::client::PresenceWatch,
) -> sente_lite::client::PresenceEvent {
    tokio::time::timeout(Duration::from_secs(10), watch.changed())
        .await
        .expect("a change within 10 s")
        .expect("watching")
}

/// Waits (at most 15 s) until `check` holds.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn members_of(client: &Client, channel: &str) -> Vec<String> {
    client
        .request(&Members {
            channel: channel.into(),
        })
        .await
        .expect("members answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_on_one_redis_act_as_one() {
    let redis = RedisProcess::start().await;
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let addr = format!("127.0.0.1:{}", free_port());
        nodes.push(node(name, &addr, &redis, false).await);
    }
    let publisher = client("t1-publisher", &nodes[0].url, Some("pat"), Codec::Json).await;
    let json = client("t1-json", &nodes[1].url, Some("alice"), Codec::Json).await;
    let postcard = client("t1-postcard", &nodes[2].url, Some("bob"), Codec::Postcard).await;
    json.subscribe("news/x").await.expect("subscribed on b");
    postcard.subscribe("news/x").await.expect("subscribed on c");

    // A publication on a reaches the subscribers on b and c, in order, once.
    let texts: Vec<String> = (1..=50).map(|i| format!("n{i}")).collect();
    for text in &texts {
        publisher
            .request(&Publish {
                channel: "news/x".into(),
                text: text.clone(),
            })
            .await
            .expect("published");
    }
    for label in ["t1-json", "t1-postcard"] {
        until(&format!("{label} receives 50"), || {
            seen(label, |s| s.news.len()) >= 50
        })
        .await;
        assert_eq!(seen(label, |s| s.news.clone()), texts, "{label}");
    }

    // A publication to everyone but its sender skips the sender on a, and
    // only there: alice on b holds the same connection id as pat on a (each
    // server numbers its own connections) and receives it.
    assert_eq!(
        publisher.conn_id(),
        json.conn_id(),
        "both first on their server"
    );
    publisher
        .subscribe("news/y")
        .await
        .expect("pat subscribes on a");
    json.subscribe("news/y")
        .await
        .expect("alice subscribes on b");
    publisher
        .request(&PublishOthers {
            channel: "news/y".into(),
            text: "o1".into(),
        })
        .await
        .expect("published to the others");
    publisher
        .request(&Publish {
            channel: "news/y".into(),
            text: "o2".into(),
        })
        .await
        .expect("published to all");
    until("alice hears both", || {
        seen("t1-json", |s| s.news.len()) == texts.len() + 2
    })
    .await;
    assert_eq!(
        seen("t1-json", |s| s.news[texts.len()..].to_vec()),
        ["o1", "o2"]
    );
    until("pat hears the second", || {
        seen("t1-publisher", |s| !s.news.is_empty())
    })
    .await;
    assert_eq!(seen("t1-publisher", |s| s.news.clone()), ["o2"]);
    assert_eq!(
        publisher.position("news/y").map(|p| p.offset),
        Some(2),
        "pat's position moved past the one it was left out of"
    );

    // send_to_user from a reaches bob's connection on c (none on a).
    let here = publisher
        .request(&Tell {
            user: "bob".into(),
            text: "hello bob".into(),
        })
        .await
        .expect("told");
    assert_eq!(here, 0, "bob has no connection on a");
    until("bob gets the note", || {
        seen("t1-postcard", |s| s.notes.len()) == 1
    })
    .await;
    assert_eq!(seen("t1-postcard", |s| s.notes.clone()), vec!["hello bob"]);
    assert!(seen("t1-json", |s| s.notes.is_empty()));

    // A request from a reaches bob on c and comes back, in either encoding;
    // alice is asked on b; a user with no connection anywhere is told so.
    for (user, label) in [("bob", "t1-postcard"), ("alice", "t1-json")] {
        let answer = publisher
            .request(&Ask {
                user: user.into(),
                text: "ready?".into(),
            })
            .await
            .expect("asked across servers");
        assert_eq!(answer, format!("{label} answers ready?"));
    }
    let nobody = publisher
        .request(&Ask {
            user: "nobody".into(),
            text: "there?".into(),
        })
        .await
        .expect_err("nobody to ask");
    assert_eq!(nobody.code(), "not-connected", "{nobody}");

    // disconnect_user from a closes bob's connection on c, with the reason,
    // and nobody else's; bob's client comes back by itself.
    let bob_before = postcard.conn_id();
    let alice_before = json.conn_id();
    let here = publisher
        .request(&Kick {
            user: "bob".into(),
            message: "signed out everywhere".into(),
        })
        .await
        .expect("kicked");
    assert_eq!(here, 0, "bob has no connection on a");
    until("bob is told why", || {
        postcard
            .last_close()
            .is_some_and(|r| r.message == "signed out everywhere")
    })
    .await;
    assert_eq!(
        postcard
            .last_close()
            .map(|r| r.code.into_owned())
            .as_deref(),
        Some("policy")
    );
    until("bob is back", || {
        postcard.state() == sente_lite::ConnectionState::Open && postcard.conn_id() != bob_before
    })
    .await;
    assert_eq!(json.conn_id(), alice_before, "alice stays");
    assert!(json.last_close().is_none());

    // Presence is the union: alice (on b) and bob (on c), seen from a.
    let members = members_until(&publisher, "news/x", |m| m == ["alice", "bob"]).await;
    assert_eq!(members, ["alice", "bob"]);
    // A watcher on a sees carol join on c and leave, with her info.
    publisher
        .subscribe("news/x")
        .await
        .expect("pat subscribes on a");
    // pat's own join reaches Redis asynchronously: the watch starts once it
    // is there, so that the next change it sees is carol's.
    let members = members_until(&publisher, "news/x", |m| m == ["alice", "bob", "pat"]).await;
    assert_eq!(members, ["alice", "bob", "pat"]);
    let mut watch = publisher.watch_presence("news/x").await.expect("watching");
    let carol = client("t1-carol", &nodes[2].url, Some("carol"), Codec::Json).await;
    carol
        .subscribe("news/x")
        .await
        .expect("carol subscribes on c");
    match next_change(&mut watch).await {
        sente_lite::client::PresenceEvent::Joined(member) => {
            assert_eq!(member.user_id.0, "carol");
        }
        other => panic!("{other:?}"),
    }
    drop(carol);
    assert_eq!(
        next_change(&mut watch).await,
        sente_lite::client::PresenceEvent::Left("carol".into())
    );
    // alice leaves on b: after the grace, a no longer lists her.
    json.unsubscribe("news/x").await.expect("unsubscribed");
    let members = members_until(&publisher, "news/x", |m| m == ["bob", "pat"]).await;
    assert_eq!(members, ["bob", "pat"]);

    // A client that held a position on c resumes on a and b: every
    // publication it missed is replayed there, from Redis.
    let position = postcard.position("news/x").expect("a position");
    assert_eq!(position.offset, 50);
    drop(postcard);
    for i in 51..=55 {
        publisher
            .request(&Publish {
                channel: "news/x".into(),
                text: format!("n{i}"),
            })
            .await
            .expect("published");
    }
    for node in &nodes[..2] {
        let (mut raw, _) = tokio_tungstenite::connect_async(node.url.as_str())
            .await
            .expect("raw connects");
        let _handshake = raw.next().await.expect("handshake").expect("frame");
        let sub = format!(
            r#"["sl/sub",1,"news/x",{{"epoch":"{}","offset":50}}]"#,
            position.epoch
        );
        raw.send(Message::text(sub)).await.expect("sent");
        let mut replayed = Vec::new();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), raw.next())
                .await
                .expect("a frame within 10 s")
                .expect("open")
                .expect("a frame");
            let text = frame.to_text().expect("JSON").to_owned();
            if text.starts_with(r#"["sl/ok",1,"#) {
                assert!(text.contains(r#""recovered":true"#), "{text}");
                break;
            }
            replayed.push(text);
        }
        assert_eq!(replayed.len(), 5, "{replayed:?}");
        for (i, frame) in replayed.iter().enumerate() {
            let offset = 51 + i;
            assert!(
                frame.contains(&format!(r#"{{"text":"n{offset}"}}"#))
                    && frame.contains(&format!(r#""offset":{offset}}}"#)),
                "{frame}"
            );
        }
    }

    // Many channels at once (subscribed on Redis together): a publication
    // on each reaches its subscriber across servers.
    let many = client("t1-many", &nodes[1].url, None, Codec::Postcard).await;
    let channels: Vec<String> = (0..200).map(|i| format!("news/many-{i}")).collect();
    // 50 at a time: the client keeps at most 64 requests in flight.
    for chunk in channels.chunks(50) {
        let subscribed =
            futures_util::future::join_all(chunk.iter().map(|c| many.subscribe(c.clone()))).await;
        assert!(subscribed.iter().all(Result::is_ok), "{subscribed:?}");
    }
    for channel in &channels {
        publisher
            .request(&Publish {
                channel: channel.clone(),
                text: channel.clone(),
            })
            .await
            .expect("published");
    }
    until("a publication on each of 200 channels", || {
        seen("t1-many", |s| s.news.len()) == 200
    })
    .await;
    let mut got = seen("t1-many", |s| s.news.clone());
    got.sort();
    let mut want = channels.clone();
    want.sort();
    assert_eq!(got, want);
    drop(nodes);
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_traffic_loses_its_clients_nothing() {
    let redis = RedisProcess::start().await;
    let shared = format!("127.0.0.1:{}", free_port());
    // The victim first, alone on the shared port: every subscriber lands on it.
    let victim = node("victim", &shared, &redis, true).await;
    let shared_url = victim.url.clone();
    let mut subscribers = Vec::new();
    for i in 0..6 {
        let codec = if i % 2 == 0 {
            Codec::Json
        } else {
            Codec::Postcard
        };
        let label = format!("t2-sub{i}");
        let sub = client(&label, &shared_url, Some(&format!("s{i}")), codec).await;
        sub.subscribe("news/k").await.expect("subscribed");
        assert_eq!(sub.request(&NameOf).await.expect("named"), "victim");
        subscribers.push((label, sub));
    }
    // A member that will not come back: its user leaves when the victim is
    // found dead.
    let (mut ghost, _) =
        tokio_tungstenite::connect_async(format!("{shared_url}?user=ghost").as_str())
            .await
            .expect("ghost connects");
    let _ = ghost.next().await;
    ghost
        .send(Message::text(r#"["sl/sub",1,"news/k"]"#))
        .await
        .expect("ghost subscribes");
    // Two more servers on the shared port, and one of its own for the publisher.
    let _b = node("b", &shared, &redis, true).await;
    let _c = node("c", &shared, &redis, true).await;
    let own = format!("127.0.0.1:{}", free_port());
    let p = node("p", &own, &redis, false).await;
    let publisher = Arc::new(client("t2-publisher", &p.url, None, Codec::Json).await);
    let members = members_until(&publisher, "news/k", |m| m.iter().any(|u| u == "ghost")).await;
    assert!(members.contains(&"ghost".to_owned()), "{members:?}");

    let total = 400;
    let publishing = {
        let publisher = Arc::clone(&publisher);
        tokio::spawn(async move {
            for i in 1..=total {
                publisher
                    .request(&Publish {
                        channel: "news/k".into(),
                        text: format!("k{i}"),
                    })
                    .await
                    .expect("published");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    until("some publications arrive", || {
        seen("t2-sub0", |s| s.news.len()) >= 100
    })
    .await;
    drop(victim);
    publishing.await.expect("publisher done");

    let expected: Vec<String> = (1..=total).map(|i| format!("k{i}")).collect();
    for (label, sub) in &subscribers {
        until(&format!("{label} receives all {total}"), || {
            seen(label, |s| s.news.len()) >= total
        })
        .await;
        assert_eq!(seen(label, |s| s.news.clone()), expected, "{label}");
        assert_eq!(seen(label, |s| s.gaps), 0, "{label}");
        assert_eq!(sub.state(), ConnectionState::Open);
        assert_ne!(sub.request(&NameOf).await.expect("named"), "victim");
        assert!(sub.stats().reconnects >= 1);
    }
    // The ghost's server is found dead: the ghost leaves; the others are members still.
    let members = members_until(&publisher, "news/k", |m| !m.iter().any(|u| u == "ghost")).await;
    assert_eq!(members, ["s0", "s1", "s2", "s3", "s4", "s5"]);
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_traffic_is_told_and_survived() {
    use cluster_events::HealthOf;

    let redis = RedisProcess::start().await;
    let a = node("a", &format!("127.0.0.1:{}", free_port()), &redis, false).await;
    let b = node("b", &format!("127.0.0.1:{}", free_port()), &redis, false).await;
    let publisher = client("t3-publisher", &a.url, None, Codec::Json).await;
    let subs = [
        (
            "t3-json",
            client("t3-json", &b.url, Some("u1"), Codec::Json).await,
        ),
        (
            "t3-postcard",
            client("t3-postcard", &b.url, Some("u2"), Codec::Postcard).await,
        ),
    ];
    for (_, sub) in &subs {
        sub.subscribe("news/r").await.expect("subscribed");
    }
    let publish = |text: String| {
        let publisher = &publisher;
        async move {
            publisher
                .request(&Publish {
                    channel: "news/r".into(),
                    text,
                })
                .await
        }
    };
    for i in 1..=20 {
        publish(format!("r{i}")).await.expect("published");
    }
    for (label, _) in &subs {
        until(&format!("{label} receives 20"), || {
            seen(label, |s| s.news.len()) == 20
        })
        .await;
    }
    let health = || publisher.request(&HealthOf);
    assert_eq!(health().await.unwrap(), ("ok".to_owned(), "ok".to_owned()));

    // Redis goes away: the servers stay up, say so, and refuse publications.
    let port = redis.kill().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut told = health().await.unwrap();
    while told.0 != "failing" && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        told = health().await.unwrap();
    }
    assert_eq!(told.0, "failing");
    assert!(told.1.contains("unreachable"), "{told:?}");
    let refused = publish("lost".into())
        .await
        .expect_err("no Redis, no publication");
    assert!(refused.to_string().contains("unavailable"), "{refused}");

    // It comes back empty: the subscribers are told their history is gone.
    let redis = RedisProcess::start_on(port).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while told.0 != "ok" && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        told = health().await.unwrap();
    }
    assert_eq!(told, ("ok".to_owned(), "ok".to_owned()));
    let metrics = http_get(&a.url, "/metrics").await;
    assert!(
        metrics.contains("sente_lite_engine_redis_up 1\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("sente_lite_engine_redis_reconnects_total 0\n"),
        "{metrics}"
    );
    let health_body = http_get(&a.url, "/health").await;
    assert!(health_body.contains(r#""engine":"ok""#), "{health_body}");
    for (label, sub) in &subs {
        until(&format!("{label} is told of the gap"), || {
            seen(label, |s| s.gaps) >= 1
        })
        .await;
        assert_eq!(
            sub.state(),
            ConnectionState::Open,
            "{label} kept its connection"
        );
    }
    // Publications flow again, each once.
    for i in 21..=40 {
        publish(format!("r{i}"))
            .await
            .expect("published after the restart");
    }
    for (label, _) in &subs {
        until(&format!("{label} receives r40"), || {
            seen(label, |s| s.news.last().map(String::as_str) == Some("r40"))
        })
        .await;
        let news = seen(label, |s| s.news.clone());
        let mut unique = news.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            news.len(),
            "{label} got a publication twice: {news:?}"
        );
        assert!(!news.contains(&"lost".to_owned()));
        let expected: Vec<String> = (1..=20).map(|i| format!("r{i}")).collect();
        assert_eq!(news[..20], expected[..], "{label}");
    }
    // Presence is announced again to the new Redis.
    let members = members_until(&publisher, "news/r", |m| m == ["u1", "u2"]).await;
    assert_eq!(members, ["u1", "u2"]);
    drop((a, b));
    drop(redis);
}
