//! The baseline: a WebSocket echo and broadcast server on tokio-tungstenite
//! with no framework, built the way sente-lite's connection engine is built
//! (one task per connection, a bounded outbound queue of 1024 messages,
//! batched flushes) and with the same tungstenite buffer settings, so the
//! difference to sente-lite is the framework's own cost.
//!
//! Its protocol: a binary message is echoed as it is; the text `sub` joins the
//! broadcast (answered `subbed`); the text `pub ` followed by a body sends the
//! body as a text message to every subscriber. A subscriber whose queue is full
//! is dropped, as sente-lite closes a slow consumer.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::WebSocketConfig;

/// Same buffer settings as `sente_lite::server::Limits::default()`.
pub(crate) fn websocket_config() -> WebSocketConfig {
    let max_message_size = 1 << 20;
    let write_buffer_size = 4 << 10;
    WebSocketConfig::default()
        .read_buffer_size(4 << 10)
        .write_buffer_size(write_buffer_size)
        .max_write_buffer_size(write_buffer_size + max_message_size + (64 << 10))
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// Messages waiting to be written to one subscriber, as sente-lite's default.
const OUTBOUND_QUEUE: usize = 1024;
/// Queued messages written before one flush, as sente-lite's engine.
const FLUSH_BATCH: usize = 64;

use super::{Subscribers, lock};

/// Serves one connection until it ends.
pub(crate) async fn connection(
    mut ws: WebSocketStream<TcpStream>,
    id: u64,
    subscribers: Subscribers,
) {
    let (tx, mut rx) = mpsc::channel::<Message>(OUTBOUND_QUEUE);
    // Kept until the connection subscribes, so the queue stays open.
    let mut own_sender = Some(tx);
    let mut subscribed = false;
    loop {
        tokio::select! {
            biased;
            queued = rx.recv(), if subscribed => {
                let Some(message) = queued else { break };
                if ws.feed(message).await.is_err() {
                    break;
                }
                for _ in 0..FLUSH_BATCH {
                    let Ok(message) = rx.try_recv() else { break };
                    if ws.feed(message).await.is_err() {
                        break;
                    }
                }
                if ws.flush().await.is_err() {
                    break;
                }
            }
            frame = ws.next() => {
                let message = match frame {
                    Some(Ok(message)) => message,
                    _ => break,
                };
                match message {
                    Message::Binary(_) => {
                        if ws.send(message).await.is_err() {
                            break;
                        }
                    }
                    Message::Text(text) => {
                        if text.as_str() == "sub" {
                            if let Some(sender) = own_sender.take() {
                                lock(&subscribers).insert(id, sender);
                                subscribed = true;
                            }
                            if ws.send(Message::text("subbed")).await.is_err() {
                                break;
                            }
                        } else if let Some(body) = text.as_str().strip_prefix("pub ") {
                            broadcast(&subscribers, Message::text(body));
                        }
                    }
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            }
        }
    }
    lock(&subscribers).remove(&id);
}

fn broadcast(subscribers: &Subscribers, message: Message) {
    let mut slow = Vec::new();
    {
        let subscribers = lock(subscribers);
        for (id, sender) in subscribers.iter() {
            if sender.try_send(message.clone()).is_err() {
                slow.push(*id);
            }
        }
    }
    if !slow.is_empty() {
        let mut subscribers = lock(subscribers);
        for id in slow {
            subscribers.remove(&id);
        }
    }
}
