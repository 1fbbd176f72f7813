//! The floor: the least a WebSocket server on tokio-tungstenite can do per
//! message. Each connection's task reads a message and writes the answer
//! straight back (`send`: one frame, one flush), with 4 KiB read and write
//! buffers and nothing else: no framework, no queue of its own to batch from,
//! no protocol. Every ratio in the report is to this server.
//!
//! Its protocol is the engine-like server's ([`super::bare`]): a binary
//! message is echoed; the text `sub` joins the broadcast (answered `subbed`);
//! `pub ` and a body sends the body as a text message to every subscriber.
//! Broadcast is as plain: each subscriber has a channel of messages (bounded
//! as the engine-like server's; a subscriber whose channel is full is
//! dropped), and its task writes and flushes each one as it comes.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::WebSocketConfig;

/// 4 KiB read and write buffers, and tungstenite's defaults otherwise.
pub(crate) fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 << 10)
        .write_buffer_size(4 << 10)
}

/// Messages waiting for one subscriber, as the engine-like server.
const CHANNEL: usize = 1024;

use super::{Subscribers, lock};

/// Serves one connection until it ends.
pub(crate) async fn connection(
    mut ws: WebSocketStream<TcpStream>,
    id: u64,
    subscribers: Subscribers,
) {
    // Read and write back until the connection subscribes.
    loop {
        let Some(Ok(message)) = ws.next().await else {
            return;
        };
        match message {
            Message::Binary(_) => {
                if ws.send(message).await.is_err() {
                    return;
                }
            }
            Message::Text(text) if text.as_str() == "sub" => break,
            Message::Text(text) => {
                if let Some(body) = text.as_str().strip_prefix("pub ") {
                    broadcast(&subscribers, Message::text(body));
                }
            }
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    let (tx, mut rx) = mpsc::channel(CHANNEL);
    lock(&subscribers).insert(id, tx);
    if ws.send(Message::text("subbed")).await.is_ok() {
        // A subscriber: write each message as it comes; reading only ends it.
        loop {
            tokio::select! {
                queued = rx.recv() => {
                    let Some(message) = queued else { break };
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
                frame = ws.next() => match frame {
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    lock(&subscribers).remove(&id);
}

fn broadcast(subscribers: &Subscribers, message: Message) {
    lock(subscribers).retain(|_, sender| sender.try_send(message.clone()).is_ok());
}
