//! Compressed frames (extension `compression`) over real sockets: a server
//! that compresses sends large frames compressed to clients that read them
//! (both clients, both encodings), reads compressed frames, stops a
//! decompression bomb at its size limit, and answers a malformed one.

mod support;

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt as _, StreamExt as _};
use sente_lite::protocol::{Control, EXTENSION_COMPRESSION};
use sente_lite::server::CompressionConfig;
use sente_lite::{Client, Codec, Ctx, Message, Router, Server};
use serde::{Deserialize, Serialize};
use support::{Frame, Raw};

#[sente_lite::event("zip/echo", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Echo(String);

#[sente_lite::event("zip/news")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct News(String);

#[sente_lite::handler]
async fn echo(req: Echo) -> String {
    req.0
}

#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<usize>>>);

#[sente_lite::handler]
async fn hear(ctx: Ctx, news: News) {
    ctx.state::<Heard>()
        .unwrap()
        .0
        .lock()
        .unwrap()
        .push(news.0.len());
}

/// A realistic large text: words that repeat, as chat and JSON do.
fn text(len: usize) -> String {
    let words = [
        "room",
        "lobby",
        "hello",
        "world",
        "typed",
        "events",
        "over",
        "websocket",
    ];
    let mut out = String::new();
    let mut i = 7usize;
    while out.len() < len {
        i = i.wrapping_mul(31).wrapping_add(17);
        out.push_str(words[i % words.len()]);
        out.push(' ');
    }
    out.truncate(len);
    out
}

async fn server(compression: bool) -> Server {
    let mut builder = Server::builder()
        .router(Router::new().handler(echo))
        .channel("news/*", sente_lite::server::allow_all)
        .configure(|c| c.limits.max_message_size = 256 << 10);
    if compression {
        builder = builder.configure(|c| {
            let mut compression = CompressionConfig::default();
            compression.min_bytes = 1024;
            c.compression = Some(compression);
        });
    }
    builder.bind("127.0.0.1:0").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frames_travel_compressed_to_clients_that_read_them() {
    for compression in [true, false] {
        let server = server(compression).await;
        let mut clients = Vec::new();
        for codec in [Codec::Json, Codec::Postcard] {
            let heard = Heard::default();
            let client = Client::builder(server.ws_url())
                .codec(codec)
                .router(Router::new().handler(hear))
                .state(heard.clone())
                .connect()
                .await
                .unwrap();
            assert_eq!(
                client
                    .handshake()
                    .unwrap()
                    .extensions
                    .iter()
                    .any(|e| e == EXTENSION_COMPRESSION),
                compression
            );
            client.subscribe("news/big").await.unwrap();
            let big = text(16 << 10);
            assert_eq!(client.request(&Echo(big.clone())).await.unwrap(), big);
            assert_eq!(
                client.request(&Echo("small".into())).await.unwrap(),
                "small"
            );
            clients.push((client, heard));
        }
        server.broadcast("news/big", &News(text(20_000))).unwrap();
        for (client, heard) in &clients {
            support::until("the news arrived", || *heard.0.lock().unwrap() == [20_000]).await;
            // The echo's reply and the publication, inflated.
            assert_eq!(
                client.stats().frames_inflated,
                if compression { 2 } else { 0 }
            );
        }
        let stats = server.stats();
        if compression {
            assert_eq!(
                stats.frames_compressed, 4,
                "two replies and two publications"
            );
            // 16 KiB of words shrink to well under a quarter.
            assert!(
                stats.compression_saved_bytes > 4 * 12_000,
                "{}",
                stats.compression_saved_bytes
            );
        } else {
            assert_eq!(
                (stats.frames_compressed, stats.compression_saved_bytes),
                (0, 0)
            );
        }
    }
}

/// Raw DEFLATE of `bytes` in a compressed frame (`inner`: 0 JSON, 1 postcard).
fn compressed(inner: u8, bytes: &[u8]) -> Message {
    use std::io::Write as _;
    let mut encoder =
        flate2::write::DeflateEncoder::new(vec![0x11, inner], flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    Message::binary(encoder.finish().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_frames_seen_from_a_raw_client() {
    let server = server(true).await;
    for codec in [Codec::Json, Codec::Postcard] {
        // Not opted in: large frames come as they are.
        let mut plain = Raw::connect(&server.ws_url(), "", codec).await;
        let big = text(8 << 10);
        let id = plain.req_id();
        plain
            .send_message(codec.encode_request(id, None, &Echo(big.clone())).unwrap())
            .await;
        let message = plain
            .next_message_within(support::PATIENCE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            message.is_text(),
            codec == Codec::Json,
            "{codec:?}: not compressed"
        );

        // Opted in: the reply is a compressed frame, kind 17, on either encoding.
        let mut raw = Raw::connect(&server.ws_url(), "", codec).await;
        raw.send(&Control::Extensions(vec![EXTENSION_COMPRESSION.into()]))
            .await;
        let id = raw.req_id();
        let request = codec.encode_request(id, None, &Echo(big.clone())).unwrap();
        // Sent compressed too: the server reads compressed frames.
        let inner = u8::from(codec == Codec::Postcard);
        raw.send_message(compressed(inner, &request.into_data()))
            .await;
        let message = raw
            .next_message_within(support::PATIENCE)
            .await
            .unwrap()
            .unwrap();
        let Message::Binary(bytes) = &message else {
            panic!("a binary message");
        };
        assert_eq!(bytes[..2], [0x11, inner], "{codec:?}");
        assert!(bytes.len() < big.len() / 3);
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::DeflateDecoder::new(&bytes[2..]),
            &mut inflated,
        )
        .unwrap();
        let inner_message = match codec {
            Codec::Json => Message::text(String::from_utf8(inflated).unwrap()),
            Codec::Postcard => Message::binary(inflated),
        };
        let reply = codec.encode_reply(id, &big).unwrap();
        assert_eq!(inner_message, reply, "{codec:?}: the reply inside");

        // A malformed compressed frame: `bad-frame`, and the connection goes on.
        raw.send_message(Message::binary(vec![0x11, 0, 0xff, 0xff]))
            .await;
        let Frame::Control(Control::Error(error)) = raw.next::<News>().await else {
            panic!("an `sl/error`");
        };
        assert_eq!(error.code, "bad-frame");
        // A bomb: 10 MiB of zeros in a few KiB, over the 256 KiB limit.
        raw.send_message(compressed(inner, &vec![b' '; 10 << 20]))
            .await;
        let Frame::Control(Control::Error(error)) = raw.next::<News>().await else {
            panic!("an `sl/error`");
        };
        assert_eq!(error.code, "too-large");
        assert_eq!(raw.next::<News>().await, Frame::Closed(Some(1009)));
    }
    assert_eq!(server.stats().frames_inflated, 2);
}

/// A compressed frame to a server that does not offer the extension is an
/// unknown frame kind.
#[tokio::test]
async fn without_the_extension_a_compressed_frame_is_a_bad_frame() {
    let server = server(false).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let _handshake = ws.next().await.unwrap().unwrap();
    ws.send(compressed(0, br#"["sl/ping",1]"#)).await.unwrap();
    let answer = ws.next().await.unwrap().unwrap();
    assert!(
        answer
            .to_text()
            .unwrap()
            .starts_with(r#"["sl/error",{"code":"bad-frame""#),
        "{answer}"
    );
}
