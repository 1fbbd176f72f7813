//! A model-based property test of recovery, over real sockets: random
//! schedules of publications, subscriptions, dropped connections and resumes
//! (with histories short enough to be trimmed). Every client's view of each
//! channel must be the exact sequence of its publications, or the client
//! was told `recovered: false` exactly when its history could not cover it.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use sente_lite::protocol::StreamPosition;
use sente_lite::server::{ChannelOptions, allow_all};
use sente_lite::{Codec, Server};
use serde::{Deserialize, Serialize};
use support::{Frame, Raw};

#[sente_lite::event("model/item")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    channel: u8,
    n: u64,
}

const CHANNELS: u8 = 2;
const CLIENTS: u8 = 3;
const HISTORY: u64 = 5;

#[derive(Debug, Clone)]
enum Op {
    /// The server publishes `count` items on a channel.
    Publish { channel: u8, count: u8 },
    /// A connected client subscribes to a channel it is not subscribed to.
    Subscribe { client: u8, channel: u8 },
    /// A client's connection drops (it keeps its subscriptions in mind).
    Drop { client: u8 },
    /// A dropped client reconnects and resubscribes from where it was.
    Resume { client: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CHANNELS, 1u8..=4).prop_map(|(channel, count)| Op::Publish { channel, count }),
        2 => (0..CLIENTS, 0..CHANNELS).prop_map(|(client, channel)| Op::Subscribe { client, channel }),
        2 => (0..CLIENTS).prop_map(|client| Op::Drop { client }),
        2 => (0..CLIENTS).prop_map(|client| Op::Resume { client }),
    ]
}

fn name(channel: u8) -> String {
    format!("model/{channel}")
}

/// What a client has seen: the last offset of each channel it keeps.
struct Client {
    codec: Codec,
    conn: Option<Raw>,
    last: BTreeMap<u8, StreamPosition>,
}

struct Model {
    server: Server,
    /// Publications made on each channel so far.
    published: [u64; CHANNELS as usize],
    clients: Vec<Client>,
}

impl Model {
    /// Reads the next frame of `client`, which must be publication
    /// `offset` of `channel`.
    async fn expect_pub(&mut self, client: usize, channel: u8, offset: u64) {
        let conn = self.clients[client].conn.as_mut().unwrap();
        let frame = conn.next::<Item>().await;
        let Frame::Pub {
            position: Some(position),
            event,
            ..
        } = frame
        else {
            panic!("client {client}: expected {channel}#{offset}, got {frame:?}");
        };
        assert_eq!(
            (event.channel, event.n, position.offset),
            (channel, offset, offset),
            "client {client}: a gap, a repeat or a reordering"
        );
        self.clients[client].last.insert(channel, position);
    }

    async fn run(&mut self, op: Op) {
        match op {
            Op::Publish { channel, count } => {
                for _ in 0..count {
                    self.published[channel as usize] += 1;
                    let n = self.published[channel as usize];
                    self.server
                        .broadcast(&name(channel), &Item { channel, n })
                        .unwrap();
                    for client in 0..self.clients.len() {
                        let c = &self.clients[client];
                        if c.conn.is_some() && c.last.contains_key(&channel) {
                            self.expect_pub(client, channel, n).await;
                        }
                    }
                }
            }
            Op::Subscribe { client, channel } => {
                let c = &mut self.clients[client as usize];
                let Some(conn) = c.conn.as_mut() else { return };
                if c.last.contains_key(&channel) {
                    return;
                }
                let (before, reply) = conn.subscribe::<Item>(&name(channel), None).await;
                let reply = reply.expect("subscribed");
                assert!(before.is_empty() && !reply.recovered);
                let position = reply.position.expect("a position");
                assert_eq!(position.offset, self.published[channel as usize]);
                c.last.insert(channel, position);
            }
            Op::Drop { client } => {
                if let Some(conn) = self.clients[client as usize].conn.take() {
                    conn.drop_connection();
                }
            }
            Op::Resume { client } => {
                let url = self.server.ws_url();
                let c = &mut self.clients[client as usize];
                if c.conn.is_some() {
                    return;
                }
                let mut conn = Raw::connect(&url, "", c.codec).await;
                for (&channel, since) in c.last.iter_mut() {
                    let current = self.published[channel as usize];
                    let (before, reply) = conn
                        .subscribe::<Item>(&name(channel), Some(since.clone()))
                        .await;
                    let reply = reply.expect("resubscribed");
                    let missed = current - since.offset;
                    assert_eq!(
                        reply.recovered,
                        missed <= HISTORY,
                        "client {client} missed {missed} of {channel}"
                    );
                    let replayed: Vec<(u8, u64, u64)> = before
                        .iter()
                        .map(|frame| match frame {
                            Frame::Pub {
                                position: Some(p),
                                event,
                                ..
                            } => (event.channel, event.n, p.offset),
                            other => panic!("unexpected {other:?}"),
                        })
                        .collect();
                    let expected: Vec<(u8, u64, u64)> = if reply.recovered {
                        (since.offset + 1..=current)
                            .map(|n| (channel, n, n))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    assert_eq!(replayed, expected, "client {client} on {channel}");
                    let position = reply.position.expect("a position");
                    assert_eq!(position.offset, current);
                    assert_eq!(position.epoch, since.epoch, "the epoch stays");
                    *since = position;
                }
                c.conn = Some(conn);
            }
        }
    }

    /// Nothing is left unread: no duplicate came after what was expected.
    async fn quiet(&mut self) {
        for (i, client) in self.clients.iter_mut().enumerate() {
            if let Some(conn) = client.conn.as_mut()
                && let Some(frame) = conn.next_within::<Item>(Duration::from_millis(50)).await
            {
                panic!("client {i}: unexpected {frame:?}");
            }
        }
    }
}

async fn check(ops: Vec<Op>) {
    let server = Server::builder()
        .channel("model/*", allow_all)
        .channel_options(
            "model/*",
            ChannelOptions {
                history_size: HISTORY as usize,
                ..ChannelOptions::default()
            },
        )
        .bind("127.0.0.1:0")
        .await
        .expect("server binds");
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let codec = if i % 2 == 0 {
            Codec::Json
        } else {
            Codec::Postcard
        };
        clients.push(Client {
            codec,
            conn: Some(Raw::connect(&server.ws_url(), "", codec).await),
            last: BTreeMap::new(),
        });
    }
    let mut model = Model {
        server,
        published: [0; CHANNELS as usize],
        clients,
    };
    for op in ops {
        model.run(op).await;
    }
    model.quiet().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_view_is_the_exact_sequence_or_told_of_its_gap(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(check(ops));
    }
}
