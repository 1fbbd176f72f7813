//! Recovery over real sockets, in both encodings: a resubscribe with `since`
//! gets every missed publication, in order, once, before the reply and before
//! anything new, or is told `recovered: false`; never a silent gap.

mod feed;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use feed::{Item, items, publish};
use sente_lite::engine::{MemoryEngine, MemoryEngineConfig};
use sente_lite::protocol::{StreamPosition, SubscribeReply};
use sente_lite::server::{ChannelOptions, allow_all};
use sente_lite::{Codec, Server};
use support::{Frame, Raw, until};

const CODECS: [Codec; 2] = [Codec::Json, Codec::Postcard];

fn history(size: usize) -> ChannelOptions {
    ChannelOptions {
        history_size: size,
        ..ChannelOptions::default()
    }
}

/// A server with `feed/*` keeping `options` and `plain/*` keeping nothing.
async fn start(options: ChannelOptions) -> Server {
    start_with(options, MemoryEngine::new()).await
}

async fn start_with(options: ChannelOptions, engine: MemoryEngine) -> Server {
    Server::builder()
        .channel("feed/*", allow_all)
        .channel("plain/*", allow_all)
        .channel_options("feed/*", options)
        .engine(engine)
        .bind("127.0.0.1:0")
        .await
        .expect("server binds")
}

/// Connects, subscribes to `channel` and returns the connection and the reply.
async fn subscribed(server: &Server, codec: Codec, channel: &str) -> (Raw, SubscribeReply) {
    let mut raw = Raw::connect(&server.ws_url(), "", codec).await;
    let (before, reply) = raw.subscribe::<Item>(channel, None).await;
    assert!(
        before.is_empty(),
        "nothing comes before a first subscribe's reply"
    );
    let reply = reply.expect("subscribed");
    assert!(
        !reply.recovered,
        "a subscribe without since is not a recovery"
    );
    (raw, reply)
}

/// Asserts that nothing more arrives for a while.
async fn nothing_more(raw: &mut Raw) {
    if let Some(frame) = raw.next_within::<Item>(Duration::from_millis(200)).await {
        panic!("unexpected frame {frame:?}");
    }
}

#[tokio::test]
async fn the_offers_of_the_handshake_name_recovery_and_presence() {
    let server = start(history(10)).await;
    let raw = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    assert_eq!(raw.handshake.extensions, ["recovery", "presence", "cancel"]);
}

#[tokio::test]
async fn a_channel_s_only_subscriber_that_missed_nothing_is_recovered() {
    for channel in ["feed/alone", "plain/alone"] {
        for codec in CODECS {
            let server = start(history(10)).await;
            let (raw, reply) = subscribed(&server, codec, channel).await;
            let position = reply.position.expect("a position");
            raw.drop_connection();
            // The channel empties: its epoch stays.
            until("the channel empties", || server.channels().is_empty()).await;
            let mut raw = Raw::connect(&server.ws_url(), "", codec).await;
            let (before, reply) = raw.subscribe::<Item>(channel, Some(position.clone())).await;
            let reply = reply.expect("subscribed again");
            assert!(before.is_empty());
            assert!(reply.recovered, "{channel} in {codec:?}: a false gap");
            assert_eq!(reply.position, Some(position));
        }
    }
}

#[tokio::test]
async fn missed_publications_are_replayed_in_order_once_before_the_reply() {
    for codec in CODECS {
        let server = start(history(100)).await;
        let (mut raw, _) = subscribed(&server, codec, "feed/a").await;
        publish(&server, "feed/a", 1);
        let seen = raw.next::<Item>().await;
        let Frame::Pub {
            position: Some(since),
            ..
        } = seen
        else {
            panic!("expected the first publication, got {seen:?}");
        };
        raw.drop_connection();
        for n in 2..=6 {
            publish(&server, "feed/a", n);
        }
        let mut raw = Raw::connect(&server.ws_url(), "", codec).await;
        let (before, reply) = raw.subscribe::<Item>("feed/a", Some(since.clone())).await;
        let reply = reply.expect("resubscribed");
        assert!(reply.recovered);
        assert_eq!(
            items(&before),
            [(2, 2), (3, 3), (4, 4), (5, 5), (6, 6)],
            "{codec:?}"
        );
        assert_eq!(
            reply.position,
            Some(StreamPosition {
                epoch: since.epoch.clone(),
                offset: 6
            })
        );
        publish(&server, "feed/a", 7);
        assert_eq!(items(&[raw.next::<Item>().await]), [(7, 7)]);
        nothing_more(&mut raw).await;
        let stats = server.stats();
        assert_eq!(
            (
                stats.resumes_recovered,
                stats.resumes_not_recovered,
                stats.publications_replayed
            ),
            (1, 0, 5)
        );
        assert!(
            server
                .metrics_text()
                .contains("sente_lite_publications_replayed_total 5")
        );
    }
}

#[tokio::test]
async fn a_history_that_no_longer_covers_since_answers_not_recovered() {
    for codec in CODECS {
        let server = start(history(3)).await;
        let (raw, reply) = subscribed(&server, codec, "feed/b").await;
        let since = reply.position.expect("a position");
        raw.drop_connection();
        for n in 1..=5 {
            publish(&server, "feed/b", n);
        }
        let mut raw = Raw::connect(&server.ws_url(), "", codec).await;
        let (before, reply) = raw.subscribe::<Item>("feed/b", Some(since)).await;
        let reply = reply.expect("resubscribed");
        assert!(before.is_empty(), "nothing replayed past a gap: {before:?}");
        assert!(!reply.recovered);
        assert_eq!(server.stats().resumes_not_recovered, 1);
        assert_eq!(reply.position.map(|p| p.offset), Some(5));
        // What follows starts right after the reply's position.
        publish(&server, "feed/b", 6);
        assert_eq!(items(&[raw.next::<Item>().await]), [(6, 6)]);
    }
}

#[tokio::test]
async fn a_history_bounded_in_bytes_drops_its_oldest() {
    let server = start(ChannelOptions {
        history_size: 1000,
        history_max_bytes: 400,
        ..ChannelOptions::default()
    })
    .await;
    let (raw, reply) = subscribed(&server, Codec::Json, "feed/bytes").await;
    let since = reply.position.expect("a position");
    raw.drop_connection();
    for n in 1..=40 {
        publish(&server, "feed/bytes", n);
    }
    let kept = server.history("feed/bytes").await.expect("history");
    let bytes: usize = kept.iter().map(|p| p.encoded_size()).sum();
    assert!(
        !kept.is_empty() && bytes <= 400,
        "{} kept, {bytes} bytes",
        kept.len()
    );
    assert_eq!(kept.last().map(|p| p.offset()), Some(40));
    let mut raw = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    let (before, reply) = raw.subscribe::<Item>("feed/bytes", Some(since)).await;
    assert!(before.is_empty());
    assert!(!reply.expect("answered").recovered);
}

#[tokio::test]
async fn expired_history_answers_not_recovered() {
    let server = start(ChannelOptions {
        history_size: 100,
        history_ttl: Duration::from_millis(300),
        ..ChannelOptions::default()
    })
    .await;
    let (raw, reply) = subscribed(&server, Codec::Json, "feed/ttl").await;
    let since = reply.position.expect("a position");
    raw.drop_connection();
    publish(&server, "feed/ttl", 1);
    publish(&server, "feed/ttl", 2);
    assert_eq!(server.history("feed/ttl").await.unwrap().len(), 2);
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    while !server.history("feed/ttl").await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the history never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut raw = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    let (before, reply) = raw.subscribe::<Item>("feed/ttl", Some(since)).await;
    assert!(before.is_empty());
    let reply = reply.expect("answered");
    assert!(!reply.recovered);
    assert_eq!(reply.position.map(|p| p.offset), Some(2));
}

#[tokio::test]
async fn another_epoch_or_a_position_not_reached_answers_not_recovered() {
    for codec in CODECS {
        let server = start(history(100)).await;
        let (mut raw, reply) = subscribed(&server, codec, "feed/c").await;
        let position = reply.position.expect("a position");
        publish(&server, "feed/c", 1);
        raw.next::<Item>().await;
        for since in [
            StreamPosition {
                epoch: format!("{}x", position.epoch),
                offset: 0,
            },
            StreamPosition {
                epoch: position.epoch.clone(),
                offset: 2,
            },
        ] {
            let mut other = Raw::connect(&server.ws_url(), "", codec).await;
            let (before, reply) = other.subscribe::<Item>("feed/c", Some(since)).await;
            assert!(before.is_empty());
            let reply = reply.expect("answered");
            assert!(!reply.recovered);
            assert_eq!(reply.position.map(|p| p.offset), Some(1));
        }
    }
}

#[tokio::test]
async fn a_channel_without_history_recovers_only_when_nothing_was_missed() {
    let server = start(history(100)).await;
    let (raw, reply) = subscribed(&server, Codec::Json, "plain/d").await;
    let since = reply.position.expect("a position");
    raw.drop_connection();
    until("the channel empties", || server.channels().is_empty()).await;
    // Nobody is subscribed: the publication reaches no one, but the channel
    // is kept, so it is numbered and a resume learns of it.
    let published = server.publish("plain/d", &Item { n: 1 }).await.unwrap();
    assert_eq!(published.position.map(|p| p.offset), Some(1));
    assert_eq!(published.delivered_here, 0);
    // A channel never subscribed to and without history is not kept at all.
    let published = server.publish("plain/never", &Item { n: 1 }).await.unwrap();
    assert_eq!(published.position, None);
    let (mut watcher, _) = subscribed(&server, Codec::Json, "plain/d").await;
    publish(&server, "plain/d", 2);
    watcher.next::<Item>().await;
    let mut raw = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    let (before, reply) = raw.subscribe::<Item>("plain/d", Some(since)).await;
    assert!(before.is_empty());
    assert!(!reply.expect("answered").recovered);
}

#[tokio::test]
async fn the_server_reads_a_channel_s_history() {
    let server = start(history(3)).await;
    for n in 1..=5 {
        publish(&server, "feed/e", n);
    }
    let kept = server.history("feed/e").await.unwrap();
    let read: Vec<(u64, u64)> = kept
        .iter()
        .map(|p| (p.offset(), p.decode::<Item>().expect("an item").n))
        .collect();
    assert_eq!(read, [(3, 3), (4, 4), (5, 5)]);
    assert!(server.history("feed/none").await.unwrap().is_empty());
}

#[tokio::test]
async fn an_idle_channel_is_forgotten_after_its_retention_and_resumes_are_told() {
    let engine = MemoryEngine::with_config(MemoryEngineConfig {
        retention: Duration::from_millis(100),
        ..MemoryEngineConfig::default()
    });
    let server = start_with(history(10), engine.clone()).await;
    let (raw, reply) = subscribed(&server, Codec::Json, "plain/idle").await;
    let since = reply.position.expect("a position");
    assert_eq!(engine.channel_count(), 1);
    raw.drop_connection();
    until("the idle channel is forgotten", || {
        engine.channel_count() == 0
    })
    .await;
    let mut raw = Raw::connect(&server.ws_url(), "", Codec::Json).await;
    let (_, reply) = raw
        .subscribe::<Item>("plain/idle", Some(since.clone()))
        .await;
    let reply = reply.expect("answered");
    assert!(!reply.recovered);
    assert_ne!(reply.position.map(|p| p.epoch), Some(since.epoch));
}

#[tokio::test]
async fn the_engine_bound_on_history_bytes_holds() {
    let engine = MemoryEngine::with_config(MemoryEngineConfig {
        max_history_bytes: 2_000,
        ..MemoryEngineConfig::default()
    });
    let server = start_with(history(1000), engine.clone()).await;
    for n in 0..200 {
        publish(&server, &format!("feed/{}", n % 7), n);
        assert!(
            engine.history_bytes() <= 2_000 + 200,
            "{}",
            engine.history_bytes()
        );
    }
    let kept: usize = futures_util::future::join_all((0..7).map(|c| {
        let server = server.clone();
        async move { server.history(&format!("feed/{c}")).await.unwrap().len() }
    }))
    .await
    .into_iter()
    .sum();
    assert!(kept > 0);
}

/// Many clients drop and resubscribe while the channel is published to
/// without pause: each sees every publication once, in order, or is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_racing_resubscribes_arrive_once_in_order() {
    let server = start(history(10_000)).await;
    let running = Arc::new(AtomicBool::new(true));
    let publisher = {
        let (server, running) = (server.clone(), Arc::clone(&running));
        tokio::spawn(async move {
            let mut n = 0;
            while running.load(Ordering::Relaxed) {
                n += 1;
                publish(&server, "feed/race", n);
                if n % 4 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            n
        })
    };
    let clients: Vec<_> = (0..12)
        .map(|i| {
            let url = server.ws_url();
            let codec = CODECS[i % 2];
            tokio::spawn(async move {
                let mut seen: Vec<u64> = Vec::new();
                let mut since: Option<StreamPosition> = None;
                for round in 0..6 {
                    let mut raw = Raw::connect(&url, "", codec).await;
                    let (before, reply) = raw.subscribe::<Item>("feed/race", since.clone()).await;
                    let reply = reply.expect("subscribed");
                    if round > 0 {
                        assert!(reply.recovered, "the history covers every resume");
                    } else {
                        // Everything after the reply's position follows.
                        seen.push(reply.position.as_ref().unwrap().offset);
                    }
                    let mut frames = before;
                    for _ in 0..20 + i * 3 {
                        frames.push(raw.next::<Item>().await);
                    }
                    for (offset, n) in items(&frames) {
                        assert_eq!(offset, n, "the item numbered {n} has offset {offset}");
                        if let Some(last) = seen.last() {
                            assert_eq!(offset, last + 1, "client {i}: after {last} came {offset}");
                        }
                        seen.push(offset);
                    }
                    since = seen.last().map(|&offset| StreamPosition {
                        epoch: reply.position.as_ref().unwrap().epoch.clone(),
                        offset,
                    });
                    raw.drop_connection();
                }
                seen.len() - 1
            })
        })
        .collect();
    for client in clients {
        assert!(client.await.expect("client ran") > 0);
    }
    running.store(false, Ordering::Relaxed);
    publisher.await.unwrap();
}

/// A replay larger than the connection's outbound queue (1024 messages)
/// paces itself on the reader instead of closing it as a slow consumer.
#[tokio::test]
async fn a_replay_larger_than_the_outbound_queue_is_paced_not_closed() {
    for codec in CODECS {
        let server = start(history(5_000)).await;
        let (raw, reply) = subscribed(&server, codec, "feed/long").await;
        let since = reply.position.expect("a position");
        raw.drop_connection();
        until("the dropped connection leaves", || {
            server.subscribers("feed/long").is_empty()
        })
        .await;
        for n in 1..=3_000 {
            publish(&server, "feed/long", n);
        }
        let mut raw = Raw::connect(&server.ws_url(), "", codec).await;
        let (before, reply) = raw.subscribe::<Item>("feed/long", Some(since)).await;
        assert!(reply.expect("resubscribed").recovered);
        let offsets: Vec<u64> = items(&before)
            .into_iter()
            .map(|(offset, _)| offset)
            .collect();
        assert_eq!(offsets, (1..=3_000).collect::<Vec<u64>>(), "{codec:?}");
        publish(&server, "feed/long", 3_001);
        assert_eq!(items(&[raw.next::<Item>().await]), [(3_001, 3_001)]);
        assert_eq!(server.stats().errors.slow_consumer, 0);
    }
}
