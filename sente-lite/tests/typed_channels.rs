//! Typed channels over real sockets, in both encodings: the server publishes
//! on a channel value, authorises with the parsed channel, and the native
//! client's `join` yields the channel's event enum, in order, bounded, with
//! what was missed.

mod support;

use std::time::Duration;

use sente_lite::client::ChannelMessage;
use sente_lite::engine::ChannelOptions;
use sente_lite::protocol::codes;
use sente_lite::server::{ChannelAccess, allow_all};
use sente_lite::{Channel, Client, ClientBuilder, Codec, ErrorReply, RequestError, Server};
use serde::{Deserialize, Serialize};
use support::{PATIENCE, until};

const CODECS: [Codec; 2] = [Codec::Json, Codec::Postcard];

/// Something said in a room.
#[sente_lite::event("typed/said")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Said {
    n: u64,
    text: String,
}

/// Someone typing.
#[sente_lite::event("typed/typing")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Typing {
    user: String,
}

/// Not a room event.
#[sente_lite::event("typed/other")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Other {
    n: u64,
}

/// A room of an organisation; only organisation 7's may be joined.
#[sente_lite::channel(
    "org/{org}/room/{name}",
    events(Said, Typing),
    derive(Debug, Clone, PartialEq)
)]
#[derive(Debug, Clone, PartialEq)]
struct Room {
    org: u32,
    name: String,
}

fn room(name: &str) -> Room {
    Room {
        org: 7,
        name: name.into(),
    }
}

async fn start() -> Server {
    Server::builder()
        .typed_channel(|room: Room, access: ChannelAccess| async move {
            assert_eq!(Room::parse(&access.channel).as_ref(), Some(&room));
            if room.org == 7 {
                Ok(())
            } else {
                Err(ErrorReply::new(codes::FORBIDDEN, "not your organisation"))
            }
        })
        .typed_channel_options::<Room>(ChannelOptions {
            history_size: 0,
            ..ChannelOptions::default()
        })
        .channel("plain/*", allow_all)
        .bind("127.0.0.1:0")
        .await
        .expect("server binds")
}

fn client(server: &Server, codec: Codec) -> ClientBuilder {
    Client::builder(server.ws_url())
        .codec(codec)
        .request_timeout(PATIENCE)
}

/// The next message of `joined`, at most [`PATIENCE`] away.
async fn next(joined: &mut sente_lite::client::Joined<Room>) -> ChannelMessage<RoomEvent> {
    tokio::time::timeout(PATIENCE, joined.recv())
        .await
        .expect("a message in time")
        .expect("the stream goes on")
}

/// Asserts that the next message of `joined` is `said(n)`.
async fn expect_said(joined: &mut sente_lite::client::Joined<Room>, n: u64) {
    assert_eq!(
        next(joined).await,
        ChannelMessage::Event(RoomEvent::Said(said(n)))
    );
}

fn said(n: u64) -> Said {
    Said {
        n,
        text: format!("#{n}"),
    }
}

/// Publications sent before a subscribe's answer are read before it: the
/// answer is a barrier behind everything the server queued first.
async fn barrier(client: &Client, n: u32) {
    client
        .subscribe(format!("plain/barrier-{n}"))
        .await
        .expect("the barrier's answer");
}

#[tokio::test]
async fn a_joined_channel_yields_its_events_in_order() {
    for codec in CODECS {
        let server = start().await;
        let client = client(&server, codec).connect().await.unwrap();
        let lobby = room("lobby/main");
        let mut joined = client.join(lobby.clone()).await.unwrap();
        assert_eq!(joined.name(), "org/7/room/lobby%2Fmain");
        assert_eq!(joined.channel(), &lobby);
        assert_eq!(client.subscriptions(), ["org/7/room/lobby%2Fmain"]);

        for n in 1..=20 {
            // Typed, and by name: the same channel.
            if n % 2 == 0 {
                server.broadcast(&lobby, &said(n)).unwrap();
            } else {
                server.broadcast(&lobby.name(), &said(n)).unwrap();
            }
        }
        server
            .broadcast(&lobby, &Typing { user: "ada".into() })
            .unwrap();
        for n in 1..=20 {
            assert_eq!(
                next(&mut joined).await,
                ChannelMessage::Event(RoomEvent::Said(said(n))),
                "{codec:?}"
            );
        }
        assert_eq!(
            next(&mut joined).await,
            ChannelMessage::Event(RoomEvent::Typing(Typing { user: "ada".into() }))
        );
        client.disconnect().await;
        // The stream ends with the client.
        assert_eq!(joined.recv().await, None);
    }
}

#[tokio::test]
async fn the_authorisation_is_given_the_parsed_channel() {
    for codec in CODECS {
        let server = start().await;
        let client = client(&server, codec).connect().await.unwrap();
        let refused = client
            .join(Room {
                org: 8,
                name: "x".into(),
            })
            .await
            .expect_err("organisation 8 is refused");
        match refused {
            RequestError::Remote(error) => {
                assert_eq!(error.code, codes::FORBIDDEN);
                assert_eq!(error.message, "not your organisation");
            }
            other => panic!("{other:?}"),
        }
        assert!(client.subscriptions().is_empty(), "{codec:?}");
        // A name no typed channel parses matches no rule.
        for name in ["org/7/room", "org/seven/room/x", "org/7/room/a%41"] {
            match client.subscribe(name).await {
                Err(RequestError::Remote(error)) => assert_eq!(error.code, codes::FORBIDDEN),
                other => panic!("{name}: {other:?}"),
            }
        }
        // The same name, subscribed as a string, passes the typed rule.
        client.subscribe("org/7/room/x").await.unwrap();
        assert_eq!(server.subscribers("org/7/room/x").len(), 1);
        client.disconnect().await;
    }
}

#[tokio::test]
async fn a_full_queue_drops_and_says_how_many() {
    for codec in CODECS {
        let server = start().await;
        let client = client(&server, codec)
            .channel_queue(4, 1 << 20)
            .connect()
            .await
            .unwrap();
        let lobby = room("full");
        let mut joined = client.join(lobby.clone()).await.unwrap();
        for n in 1..=10 {
            server.broadcast(&lobby, &said(n)).unwrap();
        }
        barrier(&client, 1).await;
        for n in 1..=4 {
            expect_said(&mut joined, n).await;
        }
        assert_eq!(
            next(&mut joined).await,
            ChannelMessage::Lagged(6),
            "{codec:?}"
        );
        // Room again: the next one is kept.
        server.broadcast(&lobby, &said(11)).unwrap();
        expect_said(&mut joined, 11).await;
        client.disconnect().await;
    }
}

#[tokio::test]
async fn the_byte_bound_counts_payloads() {
    let server = start().await;
    let client = client(&server, Codec::Json)
        .channel_queue(1000, 3000)
        .connect()
        .await
        .unwrap();
    let lobby = room("bytes");
    let mut joined = client.join(lobby.clone()).await.unwrap();
    let big = |n| Said {
        n,
        text: "x".repeat(1000),
    };
    for n in 1..=5 {
        server.broadcast(&lobby, &big(n)).unwrap();
    }
    barrier(&client, 1).await;
    // Each payload is just over 1,000 bytes: two fit in 3,000.
    for n in 1..=2 {
        assert_eq!(
            next(&mut joined).await,
            ChannelMessage::Event(RoomEvent::Said(big(n)))
        );
    }
    assert_eq!(next(&mut joined).await, ChannelMessage::Lagged(3));
    client.disconnect().await;
}

#[tokio::test]
async fn an_event_the_channel_does_not_carry_is_counted_and_skipped() {
    for codec in CODECS {
        let server = start().await;
        let client = client(&server, codec).connect().await.unwrap();
        let lobby = room("mixed");
        let mut joined = client.join(lobby.clone()).await.unwrap();
        // By name a channel may be sent anything; the joined stream skips it.
        server.broadcast(&lobby.name(), &Other { n: 1 }).unwrap();
        server.broadcast(&lobby, &said(2)).unwrap();
        expect_said(&mut joined, 2).await;
        assert_eq!(client.stats().errors.bad_event, 1, "{codec:?}");
        client.disconnect().await;
    }
}

#[tokio::test]
async fn a_gap_is_told_to_the_stream() {
    for codec in CODECS {
        let server = start().await;
        let client = client(&server, codec)
            .reconnect(
                sente_lite::ReconnectPolicy::default()
                    .with_initial_delay(Duration::from_millis(20)),
            )
            .connect()
            .await
            .unwrap();
        let lobby = room("gap");
        let mut joined = client.join(lobby.clone()).await.unwrap();
        server.broadcast(&lobby, &said(1)).unwrap();
        expect_said(&mut joined, 1).await;
        assert_eq!(server.resubscribe(&lobby.name()), 1);
        // Before the client is back, and no history holds it: a gap.
        server.broadcast(&lobby, &said(2)).unwrap();
        match next(&mut joined).await {
            ChannelMessage::Gap(reply) => assert!(!reply.recovered, "{codec:?}"),
            other => panic!("{other:?}"),
        }
        until("subscribed again", || {
            server.subscribers(&lobby.name()).len() == 1
        })
        .await;
        server.broadcast(&lobby, &said(3)).unwrap();
        expect_said(&mut joined, 3).await;
        client.disconnect().await;
    }
}

#[tokio::test]
async fn leaving_ends_the_stream_and_the_subscription() {
    for codec in CODECS {
        let server = start().await;
        let client = client(&server, codec).connect().await.unwrap();
        let (a, b, c) = (room("a"), room("b"), room("c"));

        let joined = client.join(a.clone()).await.unwrap();
        joined.leave().await.unwrap();
        assert!(server.subscribers(&a.name()).is_empty(), "{codec:?}");

        // Dropping the last subscription of a channel leaves it.
        let first = client.join(b.clone()).await.unwrap();
        let second = client.join(b.clone()).await.unwrap();
        drop(first);
        barrier(&client, 1).await;
        assert_eq!(server.subscribers(&b.name()).len(), 1);
        drop(second);
        until("b is left", || server.subscribers(&b.name()).is_empty()).await;
        assert!(
            client
                .subscriptions()
                .iter()
                .all(|s| s.starts_with("plain/"))
        );

        // Unsubscribing by name ends the stream.
        let mut joined = client.join(c.clone()).await.unwrap();
        client.unsubscribe(c.name()).await.unwrap();
        assert_eq!(
            tokio::time::timeout(PATIENCE, joined.recv()).await.unwrap(),
            None
        );
        client.disconnect().await;
    }
}
