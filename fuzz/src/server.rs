//! An in-process server fed raw bytes: the real HTTP parser (hyper), the
//! server's upgrade checks, the WebSocket framing (tungstenite), the
//! connection's decoding, routing, handlers and replies. The bytes go through
//! an in-memory stream instead of a socket, one connection an input, on one
//! runtime thread whose clock only moves when every task waits, so a run
//! depends only on its input, and waiting costs nothing.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sente_lite::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::runtime::Runtime;

/// How long the client waits after its input before it ends the stream:
/// time in which the server answers what it read (the runtime's clock jumps
/// ahead once every task waits, so this costs no real time).
const QUIET: Duration = Duration::from_secs(1);

/// How long a connection may take to end once its peer ended the stream: the
/// server reads the end and closes; a connection still open after this (on
/// the runtime's clock) is a hang, reported as a crash.
const END_WITHIN: Duration = Duration::from_secs(10);

struct Harness {
    runtime: Runtime,
    server: Server,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let server = runtime
        .block_on(async { crate::routes::server().build() })
        .expect("the fuzz server builds");
    Harness { runtime, server }
});

/// Feeds `input` to a new connection of the server, waits until the server
/// has nothing left to do, then ends the stream and reads everything the
/// server answers until it closes. Returns the answer.
pub(crate) fn serve(input: &[u8]) -> Vec<u8> {
    let harness = &*HARNESS;
    harness.runtime.block_on(async {
        let (mut client, server_io) = tokio::io::duplex(256 * 1024);
        let connection = tokio::spawn(serve_connection(harness.server.clone(), server_io));
        let exchange = async {
            // The server answers while the input arrives; read both at once so
            // that neither side waits on a full buffer.
            let (mut reader, mut writer) = tokio::io::split(&mut client);
            let write = async {
                let _ = writer.write_all(input).await;
                tokio::time::sleep(QUIET).await;
                let _ = writer.shutdown().await;
            };
            let mut answer = Vec::new();
            let read = reader.read_to_end(&mut answer);
            let ((), _) = tokio::join!(write, read);
            answer
        };
        let answer = tokio::time::timeout(END_WITHIN, exchange)
            .await
            .unwrap_or_else(|_| panic!("the server kept a connection open after its input ended"));
        let _ = connection.await;
        answer
    })
}

async fn serve_connection(server: Server, io: DuplexStream) {
    let remote = SocketAddr::from(([127, 0, 0, 1], 40_000));
    let service = service_fn(move |request| {
        let server = server.clone();
        async move { Ok::<_, Infallible>(server.handle_http(request, Some(remote)).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

/// Fuzz target `upgrade`: raw bytes on a new connection, from the first byte
/// of the HTTP request on.
pub fn upgrade(data: &[u8]) {
    serve(data);
}

/// What separates frames in a `session` input.
pub const FRAME_SEPARATOR: &[u8] = b"\xfe\xfd";

/// Fuzz target `session`: an open connection's frames, routed to the
/// application's handlers. The first byte picks the encoding the client offers
/// (bit 0: postcard) and whether it names a user (bit 1); the rest is frames
/// separated by [`FRAME_SEPARATOR`], each sent as one masked WebSocket message:
/// text when it is UTF-8 starting with `[`, binary otherwise.
pub fn session(data: &[u8]) {
    let Some((&flags, frames)) = data.split_first() else {
        return;
    };
    serve(&session_bytes(flags, frames));
}

/// The bytes of a `session` input as they go on the wire: the upgrade
/// request, then the frames.
pub fn session_bytes(flags: u8, frames: &[u8]) -> Vec<u8> {
    let subprotocol = if flags & 1 == 0 {
        "sente-lite.json.v1"
    } else {
        "sente-lite.postcard.v1"
    };
    let query = if flags & 2 == 0 { "" } else { "?user=ada" };
    let mut wire = format!(
        "GET /ws{query} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
    )
    .into_bytes();
    for frame in split(frames, FRAME_SEPARATOR) {
        let text = frame.first() == Some(&b'[') && std::str::from_utf8(frame).is_ok();
        put_frame(&mut wire, if text { 0x1 } else { 0x2 }, frame);
    }
    wire
}

/// Writes one final, masked client frame (RFC 6455 §5.2).
fn put_frame(wire: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    wire.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => wire.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            wire.push(0x80 | 126);
            wire.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            wire.push(0x80 | 127);
            wire.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    wire.extend_from_slice(&MASK);
    wire.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
}

/// The pieces of `data` between occurrences of `separator`.
fn split<'a>(data: &'a [u8], separator: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let data = rest?;
        match data.windows(separator.len()).position(|w| w == separator) {
            Some(at) => {
                rest = Some(&data[at + separator.len()..]);
                Some(&data[..at])
            }
            None => {
                rest = None;
                Some(data)
            }
        }
    })
}
