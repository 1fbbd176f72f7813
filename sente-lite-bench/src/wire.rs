//! What the load generator says on the wire to each system: how to open a
//! connection, frame an echo request, recognise its reply, subscribe, publish,
//! read a publication, and answer the server's keep-alive pings.
//!
//! Every system is driven over the same raw tokio-tungstenite client, so the
//! load generator spends about the same effort on each. The sente-lite frames
//! follow `docs/PROTOCOL.md`; the socket.io frames are engine.io v4 packets
//! (`0` open, `2`/`3` ping/pong, `4` message) carrying socket.io packets
//! (`0` connect, `2` event, `3` ack) with the default (JSON) parser.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sente_lite::protocol::{Control, StreamPosition, SubscribeReply};
use sente_lite::{Codec, EventKey, Inbound};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::client::IntoClientRequest as _;
use tungstenite::protocol::WebSocketConfig;

use crate::events::{Publish, PublishMany, ROOM, Tick};

/// A load generator's connection.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// Errors of the load generator and the run: they end the scenario with a message.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request id of a load generator's subscribe (its only one on a connection).
const SUBSCRIBE_REQ: u64 = 1;

/// How long opening a connection (TCP, upgrade, the protocol's own handshake) may take.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The protocols the load generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Protocol {
    /// The plain servers' echo and broadcast (floor and engine-like).
    Bare,
    /// sente-lite, JSON text frames.
    SenteJson,
    /// sente-lite, postcard binary frames.
    SentePostcard,
    /// socket.io 4 (engine.io v4) over WebSocket.
    SocketIo,
    /// The shipped `echo` example: sente-lite JSON frames, its `echo/say`
    /// request (`{"text": ...}`, answered with the text).
    EchoExample,
}

/// The load generator's own tungstenite settings, the same for every system.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 << 10)
        .write_buffer_size(4 << 10)
        .max_message_size(Some(16 << 20))
}

fn bad(what: impl Into<String>) -> BoxError {
    what.into().into()
}

/// What a received frame is, for the request/reply scenario.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The reply to request `id`, `len` bytes long on the wire.
    Ok { id: u64, len: usize },
    /// An error answered to request `id` (or to no request in particular).
    Err { id: Option<u64> },
    /// A keep-alive ping that must be answered with this frame.
    Answer(Message),
    /// Something else (a pong, a handshake, a close reason...).
    Other,
}

/// Precomputed parts of an echo request, so that framing costs a copy.
#[derive(Debug, Clone)]
pub(crate) struct EchoFrames {
    protocol: Protocol,
    payload: String,
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn leading_number(text: &str) -> Option<u64> {
    let end = text
        .as_bytes()
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    text[..end].parse().ok()
}

/// A sente-lite JSON request: `head`, the payload, `tail`, the request id
/// and the closing bracket.
fn json_request(head: &str, payload: &str, tail: &str, id: u64) -> Message {
    let mut out = String::with_capacity(head.len() + payload.len() + tail.len() + 24);
    out.push_str(head);
    out.push_str(payload);
    out.push_str(tail);
    out.push_str(&id.to_string());
    out.push(']');
    Message::text(out)
}

/// A payload of `len` ASCII bytes (no JSON escaping needed).
pub(crate) fn payload_of(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|i| char::from(ALPHABET[i % ALPHABET.len()]))
        .collect()
}

impl EchoFrames {
    /// Frames for echo requests carrying `payload` (ASCII letters and digits).
    pub(crate) fn new(protocol: Protocol, payload: String) -> Self {
        Self { protocol, payload }
    }

    /// The payload's length in bytes.
    pub(crate) fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// The request frame with id `id`.
    pub(crate) fn request(&self, id: u64) -> Message {
        let payload = &self.payload;
        match self.protocol {
            Protocol::Bare => {
                let mut out = Vec::with_capacity(8 + payload.len());
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(payload.as_bytes());
                Message::binary(out)
            }
            Protocol::SenteJson => json_request("[\"bench/echo\",\"", payload, "\",", id),
            Protocol::EchoExample => {
                json_request("[\"echo/say\",{\"text\":\"", payload, "\"},", id)
            }
            Protocol::SentePostcard => {
                let mut out = Vec::with_capacity(payload.len() + 24);
                out.push(1);
                push_varint(&mut out, u64::from(EventKey::of("bench/echo").get()));
                push_varint(&mut out, id);
                out.push(0);
                push_varint(&mut out, payload.len() as u64);
                out.extend_from_slice(payload.as_bytes());
                Message::binary(out)
            }
            Protocol::SocketIo => {
                let mut out = String::with_capacity(payload.len() + 32);
                out.push_str("42");
                out.push_str(&id.to_string());
                out.push_str("[\"echo\",\"");
                out.push_str(payload);
                out.push_str("\"]");
                Message::text(out)
            }
        }
    }
}

impl Protocol {
    fn path(self) -> &'static str {
        match self {
            Self::Bare => "/",
            Self::SenteJson | Self::EchoExample | Self::SentePostcard => "/ws",
            Self::SocketIo => "/socket.io/?EIO=4&transport=websocket",
        }
    }

    fn codec(self) -> Option<Codec> {
        match self {
            Self::SenteJson | Self::EchoExample => Some(Codec::Json),
            Self::SentePostcard => Some(Codec::Postcard),
            Self::Bare | Self::SocketIo => None,
        }
    }

    /// Opens a connection to `addr`, from `source` when given (bound before
    /// connecting, to spread many connections over several source addresses),
    /// and completes the protocol's own handshake.
    pub(crate) async fn open(
        self,
        addr: SocketAddr,
        source: Option<IpAddr>,
    ) -> Result<Ws, BoxError> {
        tokio::time::timeout(OPEN_TIMEOUT, self.open_now(addr, source))
            .await
            .map_err(|_| bad(format!("opening a connection took over {OPEN_TIMEOUT:?}")))?
    }

    async fn open_now(self, addr: SocketAddr, source: Option<IpAddr>) -> Result<Ws, BoxError> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut request = format!("ws://{addr}{}", self.path()).into_client_request()?;
        if let Some(codec) = self.codec() {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", codec.subprotocol().parse()?);
        }
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(client_config()))
                .await?;
        match self {
            Self::Bare => {}
            Self::SenteJson | Self::EchoExample | Self::SentePostcard => {
                let first = next_data(&mut ws).await?;
                match Codec::decode(&first) {
                    Ok(Inbound::Control(Control::Handshake(_))) => {}
                    other => return Err(bad(format!("expected sl/handshake, got {other:?}"))),
                }
            }
            Self::SocketIo => {
                let open = next_data(&mut ws).await?;
                if !open.to_text().is_ok_and(|t| t.starts_with('0')) {
                    return Err(bad(format!(
                        "expected an engine.io open packet, got {open:?}"
                    )));
                }
                ws.send(Message::text("40")).await?;
                loop {
                    let message = next_data(&mut ws).await?;
                    let text = message.to_text().unwrap_or_default();
                    if text.starts_with("40") {
                        break;
                    }
                    if text.starts_with("44") {
                        return Err(bad(format!("socket.io refused to connect: {text}")));
                    }
                }
            }
        }
        Ok(ws)
    }

    /// Classifies a received frame of the request/reply scenario.
    pub(crate) fn reply(self, message: &Message) -> Reply {
        match (self, message) {
            (Self::Bare, Message::Binary(bytes)) if bytes.len() >= 8 => {
                let mut id = [0u8; 8];
                id.copy_from_slice(&bytes[..8]);
                Reply::Ok {
                    id: u64::from_le_bytes(id),
                    len: bytes.len(),
                }
            }
            (Self::SenteJson | Self::EchoExample, Message::Text(text)) => {
                let text = text.as_str();
                if let Some(rest) = text.strip_prefix("[\"sl/ok\",") {
                    return leading_number(rest).map_or(Reply::Err { id: None }, |id| Reply::Ok {
                        id,
                        len: text.len(),
                    });
                }
                if let Some(rest) = text.strip_prefix("[\"sl/err\",") {
                    return Reply::Err {
                        id: leading_number(rest),
                    };
                }
                if let Some(rest) = text.strip_prefix("[\"sl/ping\",") {
                    let n = leading_number(rest).unwrap_or(0);
                    return Reply::Answer(Codec::Json.encode_control(&Control::Pong(n)));
                }
                if text.starts_with("[\"sl/error\",") {
                    return Reply::Err { id: None };
                }
                Reply::Other
            }
            (Self::SentePostcard, Message::Binary(bytes)) => match bytes.first() {
                Some(2) => {
                    read_varint(&bytes[1..]).map_or(Reply::Err { id: None }, |(id, _)| Reply::Ok {
                        id,
                        len: bytes.len(),
                    })
                }
                Some(3) => Reply::Err {
                    id: read_varint(&bytes[1..]).map(|(id, _)| id),
                },
                Some(10) => Reply::Err { id: None },
                Some(6) => {
                    let n = read_varint(&bytes[1..]).map_or(0, |(n, _)| n);
                    Reply::Answer(Codec::Postcard.encode_control(&Control::Pong(n)))
                }
                _ => Reply::Other,
            },
            (Self::SocketIo, Message::Text(text)) => {
                let text = text.as_str();
                if let Some(rest) = text.strip_prefix("43") {
                    return leading_number(rest).map_or(Reply::Err { id: None }, |id| Reply::Ok {
                        id,
                        len: text.len(),
                    });
                }
                if text == "2" {
                    return Reply::Answer(Message::text("3"));
                }
                if text.starts_with("44") {
                    return Reply::Err { id: None };
                }
                Reply::Other
            }
            _ => Reply::Other,
        }
    }

    /// The answer to a keep-alive ping, if `message` is one.
    pub(crate) fn keepalive(self, message: &Message) -> Option<Message> {
        match self.reply(message) {
            Reply::Answer(answer) => Some(answer),
            _ => None,
        }
    }

    /// The frame that joins the bench channel (room); sente-lite resumes after
    /// `since` when given.
    pub(crate) fn subscribe_frame(self, since: Option<StreamPosition>) -> Message {
        self.subscribe_frame_on(ROOM, since)
    }

    /// The frame that joins `channel` (sente-lite; the other systems have the
    /// room only).
    fn subscribe_frame_on(self, channel: &str, since: Option<StreamPosition>) -> Message {
        match self {
            Self::Bare => Message::text("sub"),
            Self::SenteJson | Self::EchoExample | Self::SentePostcard => {
                let codec = self.codec().unwrap_or_default();
                codec.encode_control(&Control::Subscribe {
                    req_id: SUBSCRIBE_REQ,
                    channel: channel.into(),
                    since,
                })
            }
            Self::SocketIo => Message::text("421[\"join\"]"),
        }
    }

    /// sente-lite's answer to [`Protocol::subscribe_frame`], if `message` is it:
    /// the subscribe reply, or the refusal as an error.
    pub(crate) fn subscribe_reply(
        self,
        message: &Message,
    ) -> Option<Result<SubscribeReply, BoxError>> {
        // Only sente-lite answers a subscribe with a reply of its own.
        self.codec()?;
        match Codec::decode(message) {
            Ok(Inbound::Reply {
                req_id: SUBSCRIBE_REQ,
                result,
            }) => Some(match result {
                Ok(payload) => payload
                    .decode::<SubscribeReply>("sl/sub")
                    .map_err(|e| bad(format!("bad subscribe reply: {e}"))),
                Err(e) => Err(bad(format!("subscribe refused: {e:?}"))),
            }),
            _ => None,
        }
    }

    /// Joins the bench channel (room) and waits for the server's answer: with
    /// sente-lite, the position where the subscription starts.
    pub(crate) async fn subscribe(self, ws: &mut Ws) -> Result<Option<StreamPosition>, BoxError> {
        self.subscribe_on(ws, ROOM).await
    }

    /// Joins `channel` (sente-lite; the other systems join the room) and
    /// waits for the server's answer, as [`Protocol::subscribe`].
    pub(crate) async fn subscribe_on(
        self,
        ws: &mut Ws,
        channel: &str,
    ) -> Result<Option<StreamPosition>, BoxError> {
        ws.send(self.subscribe_frame_on(channel, None)).await?;
        loop {
            let message = next_data(ws).await?;
            if let Some(answer) = self.keepalive(&message) {
                ws.send(answer).await?;
                continue;
            }
            match self {
                Self::Bare if message.to_text().is_ok_and(|t| t == "subbed") => return Ok(None),
                Self::SenteJson | Self::EchoExample | Self::SentePostcard => {
                    if let Some(reply) = self.subscribe_reply(&message) {
                        return Ok(reply?.position);
                    }
                }
                Self::SocketIo if message.to_text().is_ok_and(|t| t.starts_with("431")) => {
                    return Ok(None);
                }
                _ => {}
            }
        }
    }

    /// The sente-lite request (id `req_id`) that asks the server to publish
    /// `count` messages with `pad` to the room in one go.
    pub(crate) fn publish_many(
        self,
        req_id: u64,
        count: u64,
        pad: &str,
    ) -> Result<Message, BoxError> {
        let codec = self
            .codec()
            .ok_or("only sente-lite publishes many at once")?;
        let request = PublishMany {
            count,
            pad: pad.to_owned(),
        };
        Ok(codec.encode_request(req_id, None, &request)?)
    }

    /// The offset in its channel of the sente-lite publication `message`
    /// carries, if it is one and has a position.
    pub(crate) fn publication_offset(self, message: &Message) -> Option<u64> {
        match (self, message) {
            (Self::SenteJson | Self::EchoExample, Message::Text(text)) => {
                // `["sl/pub",channel,id,payload,{"epoch":..,"offset":N}]`
                let text = text.as_str();
                if !text.starts_with("[\"sl/pub\",") {
                    return None;
                }
                let at = text.rfind("\"offset\":")?;
                leading_number(&text[at + 9..])
            }
            (Self::SentePostcard, Message::Binary(_)) => match Codec::decode(message) {
                Ok(Inbound::Publication { position, .. }) => position.map(|p| p.offset),
                _ => None,
            },
            _ => None,
        }
    }

    /// The frame that asks the server to publish message `seq` with `pad` to the room.
    pub(crate) fn publish(self, seq: u64, pad: &str) -> Result<Message, BoxError> {
        let tick = Tick {
            seq,
            pad: pad.to_owned(),
        };
        Ok(match self {
            Self::Bare => Message::text(format!("pub {}", serde_json::to_string(&tick)?)),
            Self::SenteJson | Self::EchoExample | Self::SentePostcard => {
                self.codec().unwrap_or_default().encode_event(&Publish {
                    seq,
                    pad: pad.to_owned(),
                })?
            }
            Self::SocketIo => {
                Message::text(format!("42[\"publish\",{}]", serde_json::to_string(&tick)?))
            }
        })
    }

    /// The number of the published message `message` carries, if it is one.
    pub(crate) fn publication_seq(self, message: &Message) -> Option<u64> {
        match (self, message) {
            (Self::SentePostcard, Message::Binary(_)) => match Codec::decode(message) {
                Ok(Inbound::Publication { payload, .. }) => {
                    payload.decode::<Tick>("bench/tick").ok().map(|t| t.seq)
                }
                _ => None,
            },
            (
                Self::Bare | Self::SenteJson | Self::EchoExample | Self::SocketIo,
                Message::Text(text),
            ) => {
                let text = text.as_str();
                // Object keys may come in any order (a map sorted by key, say).
                let at = text.find("\"seq\":")?;
                leading_number(&text[at + 6..])
            }
            _ => None,
        }
    }
}

/// A publication's filler that carries `stamp` (wall-clock nanoseconds, see
/// [`crate::machine::wall_ns`]) in its first 19 digits, `len` bytes long at
/// least.
pub(crate) fn stamped_pad(stamp: u64, len: usize) -> String {
    let mut pad = format!("{stamp:019}");
    if len > pad.len() {
        pad.push_str(&payload_of(len - pad.len()));
    }
    pad
}

impl Protocol {
    /// The number and the stamp ([`stamped_pad`]) of the sente-lite
    /// publication `message` carries, if it is one.
    pub(crate) fn publication_stamp(self, message: &Message) -> Option<(u64, u64)> {
        match (self, message) {
            (Self::SentePostcard, Message::Binary(_)) => match Codec::decode(message) {
                Ok(Inbound::Publication { payload, .. }) => {
                    let tick: Tick = payload.decode("bench/tick").ok()?;
                    Some((tick.seq, leading_number(&tick.pad)?))
                }
                _ => None,
            },
            (Self::SenteJson | Self::EchoExample, Message::Text(text)) => {
                let text = text.as_str();
                let at = text.find("\"pad\":\"")?;
                let stamp = leading_number(&text[at + 7..])?;
                Some((self.publication_seq(message)?, stamp))
            }
            _ => None,
        }
    }
}

/// The next text or binary frame (WebSocket pings are answered by tungstenite).
pub(crate) async fn next_data(ws: &mut Ws) -> Result<Message, BoxError> {
    loop {
        match ws.next().await {
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => return Ok(message),
            Some(Ok(Message::Close(frame))) => {
                return Err(bad(format!("the server closed the connection: {frame:?}")));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err.into()),
            None => return Err(bad("the connection ended")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Echo;

    #[test]
    fn sente_frames_decode_with_the_library_codec() {
        for protocol in [Protocol::SenteJson, Protocol::SentePostcard] {
            let frames = EchoFrames::new(protocol, payload_of(20));
            let request = frames.request(300);
            match Codec::decode(&request).expect("decodes") {
                Inbound::Request {
                    event,
                    req_id,
                    payload,
                    ..
                } => {
                    assert_eq!(req_id, 300);
                    assert_eq!(event.key(), EventKey::of("bench/echo"));
                    let echo: Echo = payload.decode("bench/echo").expect("payload");
                    assert_eq!(echo.0, payload_of(20));
                }
                other => panic!("not a request: {other:?}"),
            }
            let codec = protocol.codec().expect("sente codec");
            let reply = codec.encode_reply(300, &payload_of(20)).expect("reply");
            assert!(matches!(protocol.reply(&reply), Reply::Ok { id: 300, .. }));
            let ping = codec.encode_control(&Control::Ping(9));
            assert_eq!(
                protocol.keepalive(&ping),
                Some(codec.encode_control(&Control::Pong(9)))
            );
        }
    }

    #[test]
    fn echo_example_requests_are_the_example_s_event() {
        /// `examples/echo.rs`'s request, as the example declares it.
        #[derive(Debug, serde::Deserialize)]
        struct Say {
            text: String,
        }
        let frames = EchoFrames::new(Protocol::EchoExample, payload_of(20));
        match Codec::decode(&frames.request(41)).expect("decodes") {
            Inbound::Request {
                event,
                req_id,
                payload,
                ..
            } => {
                assert_eq!(req_id, 41);
                assert_eq!(event.key(), EventKey::of("echo/say"));
                let say: Say = payload.decode("echo/say").expect("payload");
                assert_eq!(say.text, payload_of(20));
            }
            other => panic!("not a request: {other:?}"),
        }
        let reply = Codec::Json
            .encode_reply(41, &payload_of(20))
            .expect("reply");
        assert!(matches!(
            Protocol::EchoExample.reply(&reply),
            Reply::Ok { id: 41, .. }
        ));
    }

    #[test]
    fn publications_carry_their_number() {
        for protocol in [Protocol::SenteJson, Protocol::SentePostcard] {
            let codec = protocol.codec().expect("sente codec");
            let tick = Tick {
                seq: 77,
                pad: "xy".into(),
            };
            let message = codec
                .encode_publication(ROOM, None, &tick)
                .expect("encodes");
            assert_eq!(protocol.publication_seq(&message), Some(77));
        }
        let io = Message::text("42[\"tick\",{\"pad\":\"\",\"seq\":5}]");
        assert_eq!(Protocol::SocketIo.publication_seq(&io), Some(5));
        assert_eq!(
            Protocol::SocketIo.reply(&Message::text("4312[\"abc\"]")),
            Reply::Ok { id: 12, len: 11 }
        );
    }

    #[test]
    fn publications_carry_their_stamp() {
        let pad = stamped_pad(1_234_567_890_123_456_789, 30);
        assert_eq!(pad.len(), 30);
        for protocol in [Protocol::SenteJson, Protocol::SentePostcard] {
            let codec = protocol.codec().expect("sente codec");
            let tick = Tick {
                seq: 8,
                pad: pad.clone(),
            };
            let message = codec
                .encode_publication(ROOM, None, &tick)
                .expect("encodes");
            assert_eq!(
                protocol.publication_stamp(&message),
                Some((8, 1_234_567_890_123_456_789))
            );
        }
        assert_eq!(stamped_pad(42, 5), "0000000000000000042");
    }

    #[test]
    fn replayed_publications_carry_their_offset() {
        let position = StreamPosition {
            epoch: "e1".into(),
            offset: 4_321,
        };
        let tick = Tick {
            seq: 9,
            pad: "\"offset\":1".into(),
        };
        for protocol in [Protocol::SenteJson, Protocol::SentePostcard] {
            let codec = protocol.codec().expect("sente codec");
            let message = codec
                .encode_publication(ROOM, Some(&position), &tick)
                .expect("encodes");
            assert_eq!(protocol.publication_offset(&message), Some(4_321));
            let reply = SubscribeReply {
                position: Some(position.clone()),
                recovered: true,
            };
            let ok = codec.encode_reply(SUBSCRIBE_REQ, &reply).expect("reply");
            assert_eq!(protocol.publication_offset(&ok), None);
            let got = protocol.subscribe_reply(&ok).expect("a reply").expect("ok");
            assert_eq!(got, reply);
            let frame = protocol.subscribe_frame(Some(position.clone()));
            assert!(matches!(
                Codec::decode(&frame),
                Ok(Inbound::Control(Control::Subscribe { since: Some(p), .. })) if p == position
            ));
        }
    }

    #[test]
    fn varints_round_trip() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            push_varint(&mut out, value);
            assert_eq!(read_varint(&out), Some((value, out.len())));
        }
    }
}
