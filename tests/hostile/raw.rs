//! A WebSocket peer written by hand over a TCP stream, so that a test can send
//! any frame at all: reserved bits and opcodes, unmasked or fragmented frames,
//! lengths that lie. What the server sends back is read as frames and turned
//! into short answers (`sl/error bad-frame`, `close 1002`) by [`super::answer`].

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opcodes of RFC 6455 §5.2.
pub(crate) mod op {
    /// Continuation of a fragmented message.
    pub(crate) const CONTINUATION: u8 = 0x0;
    /// A text message (or its first fragment).
    pub(crate) const TEXT: u8 = 0x1;
    /// A binary message (or its first fragment).
    pub(crate) const BINARY: u8 = 0x2;
    /// Close.
    pub(crate) const CLOSE: u8 = 0x8;
    /// Ping.
    pub(crate) const PING: u8 = 0x9;
    /// Pong.
    pub(crate) const PONG: u8 = 0xA;
}

/// A valid `Sec-WebSocket-Key`: the base64 encoding of 16 bytes (RFC 6455's example).
pub(crate) const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// How long a read waits for the server before it counts as nothing.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);

/// One frame as a client writes it, with every field under the test's control.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// The FIN bit: the last fragment of a message.
    pub(crate) fin: bool,
    /// RSV1..RSV3 as the three bits `0b100`..`0b001`.
    pub(crate) rsv: u8,
    /// The opcode (four bits).
    pub(crate) opcode: u8,
    /// Whether the payload is masked (RFC 6455 requires it of clients).
    pub(crate) masked: bool,
    /// The payload actually written.
    pub(crate) payload: Vec<u8>,
    /// The length the header declares, when it lies about the payload.
    pub(crate) declared: Option<u64>,
}

impl Frame {
    /// A whole, masked frame.
    pub(crate) fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            fin: true,
            rsv: 0,
            opcode,
            masked: true,
            payload: payload.into(),
            declared: None,
        }
    }

    /// A text message in one frame.
    pub(crate) fn text(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(op::TEXT, payload)
    }

    /// A binary message in one frame.
    pub(crate) fn binary(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(op::BINARY, payload)
    }

    /// This frame, not the last of its message.
    pub(crate) fn unfinished(self) -> Self {
        Self { fin: false, ..self }
    }

    /// The frame's bytes on the wire.
    pub(crate) fn encode(&self) -> Vec<u8> {
        const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
        let mut out =
            vec![(u8::from(self.fin) << 7) | ((self.rsv & 0b111) << 4) | (self.opcode & 0x0f)];
        let len = self
            .declared
            .unwrap_or(u64::try_from(self.payload.len()).expect("a payload fits in u64"));
        let mask_bit = u8::from(self.masked) << 7;
        match len {
            0..=125 => out.push(mask_bit | u8::try_from(len).expect("under 126")),
            126..=0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&u16::try_from(len).expect("under 2^16").to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        if self.masked {
            out.extend_from_slice(&MASK);
            out.extend(
                self.payload
                    .iter()
                    .zip(MASK.iter().cycle())
                    .map(|(b, m)| b ^ m),
            );
        } else {
            out.extend_from_slice(&self.payload);
        }
        out
    }
}

/// What the server sent, as the client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A frame: its opcode and payload.
    Frame(u8, Vec<u8>),
    /// The stream ended.
    Eof,
    /// The connection was reset.
    Reset,
    /// Nothing arrived in time.
    Silence,
}

/// An HTTP upgrade request for `/ws` on `addr`, offering `protocol` if any.
pub(crate) fn upgrade_request(addr: &str, protocol: Option<&str>) -> String {
    let protocol =
        protocol.map_or_else(String::new, |p| format!("Sec-WebSocket-Protocol: {p}\r\n"));
    format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{protocol}\r\n"
    )
}

/// A client connection below the WebSocket layer.
pub(crate) struct RawWs {
    stream: TcpStream,
    /// Bytes read and not yet taken as a frame.
    buf: Vec<u8>,
}

impl RawWs {
    /// Opens a TCP connection to `addr` and nothing more.
    pub(crate) async fn connect(addr: &str) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("the server accepts"),
            buf: Vec::new(),
        }
    }

    /// Opens a TCP connection to `addr` with a receive buffer of 4 KiB, so
    /// that what the client does not read backs up into the server quickly.
    pub(crate) async fn connect_small(addr: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("a small receive buffer");
        let addr = addr.parse().expect("an IP address and port");
        Self {
            stream: socket.connect(addr).await.expect("the server accepts"),
            buf: Vec::new(),
        }
    }

    /// Upgrades to a WebSocket offering `protocol` (if any), and reads the 101
    /// answer but not the server's first frame.
    pub(crate) async fn upgrade(addr: &str, protocol: Option<&str>) -> Self {
        let mut ws = Self::connect(addr).await;
        ws.upgrade_here(protocol).await;
        ws
    }

    /// Upgrades this connection (see [`RawWs::upgrade`]).
    async fn upgrade_here(&mut self, protocol: Option<&str>) {
        let addr = self.stream.peer_addr().expect("connected").to_string();
        self.write(upgrade_request(&addr, protocol).as_bytes())
            .await;
        let head = self.http_head().await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    }

    /// Upgrades and reads the server's handshake frame.
    pub(crate) async fn open(addr: &str, protocol: Option<&str>) -> Self {
        let mut ws = Self::connect(addr).await;
        ws.handshake(protocol).await;
        ws
    }

    /// Upgrades this connection and reads the server's handshake frame.
    pub(crate) async fn handshake(&mut self, protocol: Option<&str>) {
        self.upgrade_here(protocol).await;
        match self.next().await {
            Incoming::Frame(op::TEXT | op::BINARY, _) => {}
            other => panic!("no handshake: {other:?}"),
        }
    }

    /// Writes raw bytes.
    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("the server reads");
    }

    /// Writes raw bytes; false when the server had already closed.
    pub(crate) async fn try_write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Writes `frames` in one go; false when the server had already closed.
    pub(crate) async fn send(&mut self, frames: &[Frame]) -> bool {
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        self.try_write(&bytes).await
    }

    /// Reads an HTTP response head (through the blank line); the rest stays buffered.
    pub(crate) async fn http_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            match self.fill(PATIENCE).await {
                Some(true) => {}
                _ => return String::from_utf8_lossy(&self.buf).into_owned(),
            }
        }
    }

    /// Reads more bytes: `Some(true)` when some came, `Some(false)` at the end
    /// of the stream, `None` after `within` of silence; `Err` on a reset.
    async fn fill(&mut self, within: Duration) -> Option<bool> {
        let mut chunk = [0u8; 16 << 10];
        match tokio::time::timeout(within, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) => Some(false),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(true)
            }
            Ok(Err(_)) => {
                self.buf.clear();
                Some(false)
            }
            Err(_) => None,
        }
    }

    /// The next frame of the server, within [`PATIENCE`].
    pub(crate) async fn next(&mut self) -> Incoming {
        self.next_within(PATIENCE).await
    }

    /// The next frame of the server, within `within`.
    pub(crate) async fn next_within(&mut self, within: Duration) -> Incoming {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(frame) = self.take_frame() {
                return frame;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let mut chunk = [0u8; 16 << 10];
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) => return Incoming::Eof,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(_)) => return Incoming::Reset,
                Err(_) => return Incoming::Silence,
            }
        }
    }

    /// A whole frame from the buffer, if one is there (server frames are not masked).
    fn take_frame(&mut self) -> Option<Incoming> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let (len, start) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let len = u64::from_be_bytes(b[2..10].try_into().expect("eight bytes"));
                (
                    usize::try_from(len).expect("a frame this test can hold"),
                    10,
                )
            }
            126 | 127 => return None,
            n => (usize::from(n), 2),
        };
        if b.len() < start + len {
            return None;
        }
        let opcode = b[0] & 0x0f;
        let payload = b[start..start + len].to_vec();
        self.buf.drain(..start + len);
        Some(Incoming::Frame(opcode, payload))
    }
}
