//! A raw protocol client for the tests that check what goes over the wire:
//! it speaks either encoding, sends exactly the frames it is told, and reads
//! frames one by one (answering the server's pings on its own).

// Each test file uses the part of this it needs.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sente_lite::protocol::{
    Control, ErrorReply, Handshake, PresenceDiff, PresenceSnapshot, StreamPosition, SubscribeReply,
};
use sente_lite::{Codec, Event, Inbound, Message, Payload};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for a frame it expects.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// A frame as a test looks at it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame<T> {
    /// `sl/pub` of a `T`.
    Pub {
        channel: String,
        position: Option<StreamPosition>,
        event: T,
    },
    /// An answer to one of our requests: the payload as JSON text or
    /// postcard bytes, or the error.
    Reply {
        req_id: u64,
        result: Result<Vec<u8>, ErrorReply>,
    },
    /// `sl/presence-diff`.
    PresenceDiff { channel: String, diff: PresenceDiff },
    /// A request of the server's, with its id.
    Request { req_id: u64 },
    /// Any other control frame.
    Control(Control),
    /// The connection closed (with this close code, if any).
    Closed(Option<u16>),
}

/// A raw connection.
pub(crate) struct Raw {
    ws: Ws,
    pub(crate) codec: Codec,
    pub(crate) handshake: Handshake,
    next_req: u64,
}

impl Raw {
    /// Opens `url` (with `query`, e.g. `?name=ada`, or empty) in `codec`,
    /// and reads the handshake.
    pub(crate) async fn connect(url: &str, query: &str, codec: Codec) -> Raw {
        let mut request = format!("{url}{query}").into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            codec.subprotocol().parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let first = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a handshake in time")
            .expect("a frame")
            .expect("a message");
        let Ok(Inbound::Control(Control::Handshake(handshake))) = Codec::decode(&first) else {
            panic!("first frame is not a handshake: {first:?}");
        };
        Raw {
            ws,
            codec,
            handshake,
            next_req: 1,
        }
    }

    /// Sends a control frame.
    pub(crate) async fn send(&mut self, control: &Control) {
        let frame = self.codec.encode_control(control);
        self.ws.send(frame).await.unwrap();
    }

    /// Sends a frame as it is.
    pub(crate) async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// Writes `bytes` to the socket as they are (frames a test builds itself,
    /// or a part of one).
    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt as _;
        self.ws.get_mut().write_all(bytes).await.unwrap();
        self.ws.get_mut().flush().await.unwrap();
    }

    /// The next message of any kind (pongs too), as it came; `None` once the
    /// connection is closed.
    pub(crate) async fn next_frame(&mut self) -> Option<Message> {
        self.ws.next().await?.ok()
    }

    /// A fresh request id.
    pub(crate) fn req_id(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    /// The next text or binary message within `wait`, as it came, pings
    /// answered; `None` when none came, `Some(Err(code))` when the connection
    /// closed (with this close code, if any).
    pub(crate) async fn next_message_within(
        &mut self,
        wait: Duration,
    ) -> Option<Result<Message, Option<u16>>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None | Some(Err(_))) => return Some(Err(None)),
                Ok(Some(Ok(message))) => message,
            };
            if let Message::Close(close) = &message {
                return Some(Err(close.as_ref().map(|c| u16::from(c.code))));
            }
            if !(message.is_text() || message.is_binary()) {
                continue;
            }
            if let Ok(Inbound::Control(Control::Ping(n))) = Codec::decode(&message) {
                self.send(&Control::Pong(n)).await;
                continue;
            }
            return Some(Ok(message));
        }
    }

    /// The next frame within `wait`, pings answered; `None` when none came.
    pub(crate) async fn next_within<T: Event>(&mut self, wait: Duration) -> Option<Frame<T>> {
        let message = match self.next_message_within(wait).await? {
            Ok(message) => message,
            Err(code) => return Some(Frame::Closed(code)),
        };
        Some(
            match Codec::decode(&message).expect("a frame the client can decode") {
                Inbound::Control(Control::PresenceDiff { channel, diff }) => {
                    Frame::PresenceDiff { channel, diff }
                }
                Inbound::Control(control) => Frame::Control(control),
                Inbound::Publication {
                    channel,
                    position,
                    payload,
                    ..
                } => Frame::Pub {
                    channel: channel.into_owned(),
                    position,
                    event: payload.decode::<T>(T::ID).expect("a publication of T"),
                },
                Inbound::Request { req_id, .. } => Frame::Request { req_id },
                Inbound::Reply { req_id, result } => Frame::Reply {
                    req_id,
                    result: result.map(|payload| match payload {
                        Payload::Json(raw) => raw.get().as_bytes().to_vec(),
                        Payload::Postcard(bytes) => bytes.to_vec(),
                    }),
                },
                other => panic!("unexpected frame {other:?}"),
            },
        )
    }

    /// The next frame (at most [`PATIENCE`] away).
    pub(crate) async fn next<T: Event>(&mut self) -> Frame<T> {
        self.next_within(PATIENCE)
            .await
            .expect("a frame within the patience")
    }

    /// Reads until the reply to `req_id`; returns it and the publications
    /// that came first.
    pub(crate) async fn until_reply<T: Event>(
        &mut self,
        req_id: u64,
    ) -> (Vec<Frame<T>>, Result<Vec<u8>, ErrorReply>) {
        let mut before = Vec::new();
        loop {
            match self.next::<T>().await {
                Frame::Reply { req_id: id, result } if id == req_id => return (before, result),
                Frame::Closed(code) => panic!("closed ({code:?}) before reply {req_id}"),
                frame => before.push(frame),
            }
        }
    }

    /// Sends the control frame `make(req_id)` and reads until its answer;
    /// returns the frames that came before and the answer as `R`.
    async fn ask<T: Event, R: DeserializeOwned>(
        &mut self,
        make: impl FnOnce(u64) -> Control,
    ) -> (Vec<Frame<T>>, Result<R, ErrorReply>) {
        let req_id = self.req_id();
        self.send(&make(req_id)).await;
        let (before, result) = self.until_reply(req_id).await;
        (before, result.map(|bytes| self.payload(&bytes)))
    }

    /// Subscribes to `channel` from `since`; returns the frames that came
    /// before the answer (replayed publications, most often) and the answer.
    pub(crate) async fn subscribe<T: Event>(
        &mut self,
        channel: &str,
        since: Option<StreamPosition>,
    ) -> (Vec<Frame<T>>, Result<SubscribeReply, ErrorReply>) {
        self.ask(|req_id| Control::Subscribe {
            req_id,
            channel: channel.into(),
            since,
        })
        .await
    }

    /// Asks for `channel`'s presence.
    pub(crate) async fn presence<T: Event>(
        &mut self,
        channel: &str,
        watch: bool,
    ) -> (Vec<Frame<T>>, Result<PresenceSnapshot, ErrorReply>) {
        self.ask(|req_id| Control::Presence {
            req_id,
            channel: channel.into(),
            watch,
        })
        .await
    }

    /// A reply payload in this connection's encoding, as `R`.
    pub(crate) fn payload<R: DeserializeOwned>(&self, bytes: &[u8]) -> R {
        match self.codec {
            Codec::Json => serde_json::from_slice(bytes).expect("a JSON reply"),
            Codec::Postcard => postcard::from_bytes(bytes).expect("a postcard reply"),
        }
    }

    /// Closes the connection without a goodbye (as a dropped network does).
    pub(crate) fn drop_connection(self) {
        drop(self.ws);
    }
}

/// Waits until `condition` holds ([`PATIENCE`] at most).
pub(crate) async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
