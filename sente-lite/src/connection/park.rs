//! Idle server connections that hold no WebSocket buffers.
//!
//! tungstenite allocates its read buffer (`Limits::read_buffer_size`) when a
//! WebSocket is made and keeps it, with its write buffer, for the
//! connection's life: on a server holding many quiet connections that is
//! most of their memory. A [`Parkable`] WebSocket is made only when there is
//! traffic, and let go again when the connection is idle:
//!
//! - *Parked*, only the byte stream is kept. Reading waits on the stream
//!   itself with a few bytes of room. When what came is one or more whole
//!   small text or binary frames (a heartbeat's `sl/pong`, a short event),
//!   they are handed up as tungstenite would hand them up, and the
//!   connection stays parked; else a WebSocket with its read buffer is made
//!   and reads them first.
//! - Open, a connection reads whole text and binary frames straight from the
//!   stream whenever tungstenite holds nothing (see [`super::direct`]):
//!   small ones into a buffer on the stack, longer ones into a buffer of
//!   their own. tungstenite reads the rest (control frames, fragments,
//!   anything it refuses).
//! - Text and binary frames (a heartbeat's `sl/ping`, a publication, a reply)
//!   are written without tungstenite (see [`super::outgoing`]), so a parked
//!   connection writes them as it is. Any other frame (a close) makes a
//!   WebSocket without a read buffer, which is let go as soon as the write is
//!   out ([`Transport::park`] with `reading: false`).
//! - A WebSocket that reads is let go when the engine has heard nothing for
//!   `Limits::idle_park_after` and holds nothing in flight.
//!
//! Letting go is safe only when tungstenite holds nothing: no bytes of a
//! frame it has not parsed, no part of a fragmented message, nothing
//! unwritten. The stream under it ([`Tracked`]) follows the frame boundaries
//! in the bytes it hands up, so the WebSocket is let go only when they end
//! on a frame boundary outside a fragmented message, after tungstenite last
//! found nothing more to read, and once a flush finished.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures_util::{FutureExt as _, Sink, SinkExt as _, Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::{Role, WebSocketConfig};

use super::close::{Transport, discard_from};
use super::direct::{self, LargeFrame};
use super::outgoing::Outgoing;

/// Bytes a parked connection reads when its peer speaks: room for a whole
/// `["sl/pong", n]` frame (19 bytes for small `n`), which is then read
/// without making a WebSocket. What is not read that way is read first by
/// the WebSocket made then.
const PEEK: usize = 32;

/// A byte stream that can tell, without reading, that a read would find
/// nothing.
pub(crate) trait ReadReady {
    /// `Pending` when a read now would find nothing, the task to be woken
    /// when that may have changed; `Ready` when a read may find something,
    /// or the stream cannot tell without reading.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Where the bytes handed up to tungstenite stand in the WebSocket framing.
#[derive(Debug, Default)]
struct FrameTrack {
    /// The header of the next frame, as far as it has come.
    header: [u8; 14],
    /// Bytes of `header` so far.
    have: u8,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// Inside a fragmented data message (a data frame without FIN came, its
    /// last continuation has not).
    fragmented: bool,
    /// The current frame, once whole, ends a message (a control frame, or a
    /// data frame with FIN).
    ends_message: bool,
    /// Messages whose last frame was handed up whole: what tungstenite hands
    /// over, one message each, once it has read them.
    messages: u64,
}

/// The length of a frame header whose second byte is `second` (the mask
/// bit and the 7-bit length say how many bytes follow the first two).
fn header_len(second: u8) -> usize {
    let extended = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

impl FrameTrack {
    /// The length of the header being gathered, as far as it is known.
    fn want(&self) -> usize {
        if self.have < 2 {
            2
        } else {
            header_len(self.header[1])
        }
    }

    /// Follows `bytes`, the next ones handed up.
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.payload_left -= n as u64;
                bytes = &bytes[n..];
                if self.payload_left == 0 {
                    self.frame_done();
                }
                continue;
            }
            if self.have == 0 && bytes.len() >= 2 {
                // The usual case: a whole header at hand, taken at once.
                let want = header_len(bytes[1]);
                if bytes.len() >= want {
                    self.header[..want].copy_from_slice(&bytes[..want]);
                    bytes = &bytes[want..];
                    self.header_done();
                    continue;
                }
            }
            let have = usize::from(self.have);
            let n = (self.want() - have).min(bytes.len());
            self.header[have..have + n].copy_from_slice(&bytes[..n]);
            self.have += n as u8;
            bytes = &bytes[n..];
            if self.have >= 2 && usize::from(self.have) == self.want() {
                self.header_done();
            }
        }
    }

    fn header_done(&mut self) {
        let fin = self.header[0] & 0x80 != 0;
        let opcode = self.header[0] & 0x0F;
        let len = match self.header[1] & 0x7F {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(be)
            }
            short => u64::from(short),
        };
        match opcode {
            // Text or binary: fragmented until a continuation with FIN.
            1 | 2 => self.fragmented = !fin,
            0 if fin => self.fragmented = false,
            // Control frames come whole, between fragments or not.
            _ => {}
        }
        self.ends_message = fin || opcode & 0x08 != 0;
        self.payload_left = len;
        self.have = 0;
        if len == 0 {
            self.frame_done();
        }
    }

    /// The current frame was handed up whole.
    fn frame_done(&mut self) {
        if self.ends_message {
            self.messages += 1;
        }
    }

    /// Whether what was handed up ends on a frame boundary (inside a
    /// fragmented message or not).
    fn between_frames(&self) -> bool {
        self.have == 0 && self.payload_left == 0
    }

    /// Whether what was handed up ends on a frame boundary, outside a
    /// fragmented message.
    fn at_boundary(&self) -> bool {
        self.between_frames() && !self.fragmented
    }
}

/// The byte stream under a [`Parkable`] WebSocket: follows the frame
/// boundaries in what it hands up, and holds what a parked connection read.
#[derive(Debug)]
pub(crate) struct Tracked<IO> {
    io: IO,
    frames: FrameTrack,
    peeked: [u8; PEEK],
    peeked_len: u8,
    peeked_at: u8,
    /// The stream ended while parked.
    ended: bool,
    /// Reading failed while parked.
    failed: Option<io::Error>,
    /// Messages tungstenite handed over (compared with
    /// `FrameTrack::messages`).
    handed_over: u64,
    /// tungstenite handed over a ping, whose pong it may not have written yet
    /// (it writes it on its next read or flush).
    pong_owed: bool,
    /// tungstenite handed over a close frame: it is read to its end.
    closing: bool,
    /// Bytes read straight from the stream (by a reading connection) and
    /// not yet handed up, from `spill_at`; let go once handed up.
    spill: Vec<u8>,
    spill_at: usize,
    /// The last bytes read straight did not begin with a data frame (or
    /// one could not be finished): read through tungstenite until it hands
    /// over a data message again.
    large: bool,
    /// A long data frame being read straight from the stream (boxed: an
    /// idle connection holds only the pointer).
    partial: Option<Box<LargeFrame>>,
    /// The buffer of the last long data frame, for the next one: its memory
    /// is taken again once the message read into it is let go, so that a
    /// connection reading long frames one after another does not allocate
    /// and free a buffer for each (which makes the allocator give memory
    /// back to the system and fault it in again). Let go when parked; a
    /// buffer larger than [`direct::FIRST_ROOM`] is not kept. Boxed, and the
    /// box kept too, so that the parked state is no larger.
    spare: Option<Box<BytesMut>>,
    /// Text and binary frames written without tungstenite, written before
    /// anything tungstenite writes.
    out: Outgoing,
}

impl<IO: AsyncRead + Unpin> Tracked<IO> {
    fn new(io: IO) -> Self {
        Self {
            io,
            frames: FrameTrack::default(),
            peeked: [0; PEEK],
            peeked_len: 0,
            peeked_at: 0,
            ended: false,
            failed: None,
            handed_over: 0,
            pong_owed: false,
            closing: false,
            spill: Vec::new(),
            spill_at: 0,
            large: false,
            partial: None,
            spare: None,
            out: Outgoing::default(),
        }
    }

    /// Whether bytes (or the stream's end, or an error) wait to be handed up.
    fn has_peeked(&self) -> bool {
        !self.held().is_empty() || self.ended || self.failed.is_some()
    }

    /// Ready once the peer sent something (or the stream ended or failed),
    /// holding it for the next read.
    fn poll_peek(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.has_peeked() {
            return Poll::Ready(());
        }
        let mut buf = ReadBuf::new(&mut self.peeked);
        match ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)) {
            Ok(()) => {
                let n = buf.filled().len();
                self.peeked_len = n as u8;
                self.peeked_at = 0;
                self.ended = n == 0;
            }
            Err(err) => self.failed = Some(err),
        }
        Poll::Ready(())
    }

    /// The bytes read but not yet handed up.
    fn held(&self) -> &[u8] {
        if self.spill_at < self.spill.len() {
            &self.spill[self.spill_at..]
        } else {
            &self.peeked[usize::from(self.peeked_at)..usize::from(self.peeked_len)]
        }
    }

    /// Takes `n` bytes off the front of [`Self::held`].
    fn consume_held(&mut self, n: usize) {
        if self.spill_at < self.spill.len() {
            self.spill_at += n;
            if self.spill_at == self.spill.len() {
                self.spill = Vec::new();
                self.spill_at = 0;
            }
        } else {
            self.peeked_at += n as u8;
        }
    }

    /// The message of a whole small frame at the front of what was read and
    /// not yet handed up (see [`direct::small_frame`]), taken off it. Only
    /// where tungstenite is outside a message and holds nothing (a parked
    /// connection; see [`Self::may_read_direct`]): such a frame then means
    /// the same to tungstenite whatever came before it.
    fn take_small_message(&mut self, config: &WebSocketConfig) -> Option<Message> {
        let (message, used) = direct::small_frame(self.held(), config)?;
        self.consume_held(used);
        Some(message)
    }

    /// Reads straight from the stream, into a buffer on the stack, what a
    /// connection whose tungstenite holds nothing reads next: the message
    /// of a whole small frame at its front; or, when a longer data frame
    /// begins there, that frame read on ([`Self::poll_read_large`]); or
    /// `None` when neither (the bytes, the stream's end or its error then
    /// wait for tungstenite). What follows a message read so waits too
    /// (taken by [`Self::take_small_message`] or tungstenite). A read that
    /// begins with no data frame turns these reads off until tungstenite
    /// hands over a data message again.
    fn poll_read_direct(
        &mut self,
        cx: &mut Context<'_>,
        config: &WebSocketConfig,
    ) -> Poll<Option<Message>> {
        let mut storage = [MaybeUninit::<u8>::uninit(); direct::DIRECT];
        let mut buf = ReadBuf::uninit(&mut storage);
        if let Err(err) = ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)) {
            self.failed = Some(err);
            return Poll::Ready(None);
        }
        let bytes = buf.filled();
        if bytes.is_empty() {
            self.ended = true;
            return Poll::Ready(None);
        }
        let (message, used) = match direct::small_frame(bytes, config) {
            Some((message, used)) => (Some(message), used),
            None => match LargeFrame::begin(bytes, config, self.take_spare()) {
                Some((frame, used)) => {
                    self.partial = Some(Box::new(frame));
                    (None, used)
                }
                None => {
                    self.large = true;
                    (None, 0)
                }
            },
        };
        if used < bytes.len() {
            self.spill = bytes[used..].to_vec();
            self.spill_at = 0;
        }
        if self.partial.is_some() {
            return self.poll_read_large(cx);
        }
        Poll::Ready(message)
    }

    /// Begins a long data frame from what was read and not yet handed up
    /// (see [`LargeFrame::begin`]), where tungstenite could read it; whether
    /// one was begun.
    fn begin_large(&mut self, config: &WebSocketConfig) -> bool {
        if self.large || self.ended || self.failed.is_some() {
            return false;
        }
        let spare = self.take_spare();
        let Some((frame, used)) = LargeFrame::begin(self.held(), config, spare) else {
            return false;
        };
        self.consume_held(used);
        self.partial = Some(Box::new(frame));
        true
    }

    /// Reads the long data frame begun ([`Self::partial`]) on, straight from
    /// the stream: its message once whole. `None` once it cannot be
    /// finished: the stream ended or failed in it, or its text is not
    /// UTF-8. Its bytes, as they came, then wait for tungstenite, which
    /// answers as it would have, and reading goes through tungstenite until
    /// it hands over a data message.
    fn poll_read_large(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        while let Some(frame) = self.partial.as_mut()
            && !frame.whole()
        {
            let mut room = frame.room();
            match ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut self.io),
                cx,
                &mut room
            )) {
                Ok(0) => self.ended = true,
                Ok(_) => continue,
                Err(err) => self.failed = Some(err),
            }
            self.give_back_large();
            return Poll::Ready(None);
        }
        let Some(frame) = self.partial.take() else {
            return Poll::Ready(None);
        };
        match frame.finish() {
            Ok((message, mut after)) => {
                if !after.is_empty() {
                    self.hold_first(after.to_vec());
                    after.clear();
                }
                match &mut self.spare {
                    Some(spare) => **spare = after,
                    None => self.spare = Some(Box::new(after)),
                }
                Poll::Ready(Some(message))
            }
            Err(bytes) => {
                self.hold_first(bytes);
                self.large = true;
                Poll::Ready(None)
            }
        }
    }

    /// The buffer of the last long data frame (see [`Self::spare`]), or a
    /// new one.
    fn take_spare(&mut self) -> BytesMut {
        self.spare
            .as_deref_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Hands the long data frame begun back, as the bytes that came, for
    /// tungstenite to read.
    fn give_back_large(&mut self) {
        if let Some(frame) = self.partial.take() {
            self.hold_first(frame.into_bytes());
        }
        self.large = true;
    }

    /// Puts `bytes` in front of what is held and not yet handed up.
    fn hold_first(&mut self, mut bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        bytes.extend_from_slice(self.held());
        self.peeked_at = self.peeked_len;
        self.spill = bytes;
        self.spill_at = 0;
    }

    /// Whether the next frame may be read without tungstenite: it holds no
    /// byte it was handed and is outside a fragmented message (so a whole
    /// text or binary frame is a message of its own to it too), owes no
    /// pong and has not read a close frame.
    fn may_read_direct(&self) -> bool {
        self.holds_nothing() && !self.frames.fragmented
    }

    /// Whether tungstenite holds no byte it was handed: what was handed up
    /// ends between frames and tungstenite handed over every message in it.
    /// A read then could only find what the stream has, so a stream that
    /// has nothing need not be read (tungstenite zeroes its read buffer's
    /// free room, 4 KiB by default, before each read).
    fn holds_nothing(&self) -> bool {
        self.frames.between_frames()
            && self.frames.messages == self.handed_over
            && !self.pong_owed
            && !self.closing
    }

    /// Counts what tungstenite handed over.
    fn handed(&mut self, polled: &Poll<Option<Result<Message, tungstenite::Error>>>) {
        if let Poll::Ready(Some(Ok(message))) = polled {
            self.handed_over += 1;
            match message {
                Message::Ping(_) => self.pong_owed = true,
                Message::Close(_) => self.closing = true,
                // Data messages again: read them straight.
                Message::Text(_) | Message::Binary(_) => self.large = false,
                _ => {}
            }
        }
    }

    /// Whether tungstenite may be let go: everything handed up ends on a
    /// frame boundary and nothing waits to be handed up.
    fn at_boundary(&self) -> bool {
        self.frames.at_boundary() && !self.has_peeked() && self.partial.is_none()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let held = this.held();
        if !held.is_empty() {
            let n = held.len().min(buf.remaining());
            buf.put_slice(&held[..n]);
            this.consume_held(n);
        } else if let Some(err) = this.failed.take() {
            return Poll::Ready(Err(err));
        } else if this.ended {
            return Poll::Ready(Ok(()));
        } else {
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        }
        this.frames.feed(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

/// What tungstenite writes goes after the frames written without it.
impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.out.poll_write(&mut this.io, cx))?;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.out.poll_write(&mut this.io, cx))?;
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.out.poll_write(&mut this.io, cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.out.poll_write(&mut this.io, cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// What a [`Parkable`] holds now.
#[derive(Debug)]
enum State<IO> {
    /// The byte stream alone.
    Parked(Tracked<IO>),
    /// A WebSocket; `reading` when it has its read buffer (made for bytes
    /// that came), not when made to write.
    Open {
        ws: Box<WebSocketStream<Tracked<IO>>>,
        reading: bool,
        /// tungstenite's last read found nothing more (so it holds no
        /// complete frame it has not yet handed over).
        drained: bool,
    },
    /// Making a WebSocket failed; the connection is over.
    Gone,
}

/// A server's WebSocket that lets go of tungstenite's buffers while idle
/// (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Parkable<IO> {
    state: State<IO>,
    config: WebSocketConfig,
    /// tungstenite was given a message it may not have written yet (it has
    /// not flushed since).
    unflushed: bool,
    /// tungstenite was given a close frame: whatever follows is its to refuse.
    closed: bool,
}

impl<IO> Parkable<IO>
where
    IO: AsyncRead + AsyncWrite + ReadReady + Unpin + Send,
{
    /// A connection over `io` (after the upgrade), parked until it has
    /// something to read or write.
    pub(crate) fn new(io: IO, config: WebSocketConfig) -> Self {
        Self {
            state: State::Parked(Tracked::new(io)),
            config,
            unflushed: false,
            closed: false,
        }
    }

    /// The stream under the WebSocket, if the connection is not over.
    fn tracked(&mut self) -> Option<&mut Tracked<IO>> {
        match &mut self.state {
            State::Parked(io) => Some(io),
            State::Open { ws, .. } => Some(ws.get_mut()),
            State::Gone => None,
        }
    }

    /// Whether a text or binary frame may be written without tungstenite:
    /// tungstenite holds nothing it may have started to write (no message
    /// since its last flush, no pong or close reply it owes) and neither
    /// side has closed. It is then written before whatever tungstenite
    /// writes next, which is the order in which they came.
    fn writes_itself(&self) -> bool {
        let io = match &self.state {
            State::Parked(io) => io,
            State::Open { ws, .. } => ws.get_ref(),
            State::Gone => return false,
        };
        !self.unflushed && !self.closed && !io.pong_owed && !io.closing
    }

    /// Makes the WebSocket of a parked connection: with its read buffer when
    /// `reading`, without when made to write.
    fn open(&mut self, reading: bool) -> Result<(), tungstenite::Error> {
        if !matches!(self.state, State::Parked(_)) {
            return Ok(());
        }
        let State::Parked(io) = std::mem::replace(&mut self.state, State::Gone) else {
            return Ok(());
        };
        let config = if reading {
            self.config
        } else {
            self.config.read_buffer_size(0)
        };
        // Only wraps the stream: ready at its first poll.
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config))
            .now_or_never()
            .ok_or_else(|| {
                tungstenite::Error::Io(io::Error::other("the WebSocket could not be made"))
            })?;
        self.state = State::Open {
            ws: Box::new(ws),
            reading,
            drained: true,
        };
        Ok(())
    }

    /// The open WebSocket, made to write if the connection is parked.
    fn writer(&mut self) -> Result<&mut WebSocketStream<Tracked<IO>>, tungstenite::Error> {
        self.open(false)?;
        match &mut self.state {
            State::Open { ws, .. } => Ok(ws),
            State::Parked(_) | State::Gone => Err(tungstenite::Error::AlreadyClosed),
        }
    }
}

impl<IO> Stream for Parkable<IO>
where
    IO: AsyncRead + AsyncWrite + ReadReady + Unpin + Send,
{
    type Item = Result<Message, tungstenite::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Parked(io) => {
                    ready!(io.poll_peek(cx));
                    if let Some(message) = io.take_small_message(&this.config) {
                        return Poll::Ready(Some(Ok(message)));
                    }
                    if let Err(err) = this.open(true) {
                        return Poll::Ready(Some(Err(err)));
                    }
                }
                State::Open {
                    ws,
                    reading: true,
                    drained,
                } => {
                    if ws.get_ref().pong_owed
                        && matches!(ws.poll_flush_unpin(cx), Poll::Ready(Ok(())))
                    {
                        // The pong is out (tungstenite writes it on a flush
                        // as on a read): tungstenite need not be asked.
                        ws.get_mut().pong_owed = false;
                    }
                    let io = ws.get_mut();
                    if io.partial.is_none() && !io.held().is_empty() && io.may_read_direct() {
                        if let Some(message) = io.take_small_message(&this.config) {
                            *drained = false;
                            return Poll::Ready(Some(Ok(message)));
                        }
                        io.begin_large(&this.config);
                    }
                    if io.partial.is_some() {
                        match io.poll_read_large(cx) {
                            Poll::Ready(Some(message)) => {
                                *drained = false;
                                return Poll::Ready(Some(Ok(message)));
                            }
                            // Its bytes wait for tungstenite.
                            Poll::Ready(None) => {}
                            Poll::Pending => {
                                *drained = true;
                                return Poll::Pending;
                            }
                        }
                    }
                    if io.holds_nothing() && !io.has_peeked() {
                        if io.io.poll_read_ready(cx).is_pending() {
                            // Nothing to read, and tungstenite holds nothing:
                            // asking it would only zero its buffer to find so.
                            *drained = true;
                            return Poll::Pending;
                        }
                        if io.may_read_direct() && !io.large {
                            match io.poll_read_direct(cx, &this.config) {
                                Poll::Ready(Some(message)) => {
                                    *drained = false;
                                    return Poll::Ready(Some(Ok(message)));
                                }
                                // What was read waits for tungstenite.
                                Poll::Ready(None) => {}
                                Poll::Pending => {
                                    *drained = true;
                                    return Poll::Pending;
                                }
                            }
                        }
                    }
                    let polled = ws.poll_next_unpin(cx);
                    ws.get_mut().handed(&polled);
                    *drained = polled.is_pending();
                    return polled;
                }
                State::Open {
                    ws,
                    reading: false,
                    drained,
                } => {
                    // Made to write, it has no read buffer: once its writes
                    // are out it gives way to one that has, and until then
                    // it reads (a little at a time) so that a peer which
                    // writes before it reads is not stalled.
                    ready!(ws.get_mut().poll_peek(cx));
                    match ws.poll_flush_unpin(cx) {
                        Poll::Ready(Ok(())) => {
                            this.unflushed = false;
                            if let State::Open { ws, .. } =
                                std::mem::replace(&mut this.state, State::Gone)
                            {
                                let mut io = ws.into_inner();
                                io.out.release();
                                this.state = State::Parked(io);
                            }
                        }
                        Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err))),
                        Poll::Pending => {
                            let polled = ws.poll_next_unpin(cx);
                            ws.get_mut().handed(&polled);
                            *drained = polled.is_pending();
                            return polled;
                        }
                    }
                }
                State::Gone => return Poll::Ready(None),
            }
        }
    }
}

impl<IO> Sink<Message> for Parkable<IO>
where
    IO: AsyncRead + AsyncWrite + ReadReady + Unpin + Send,
{
    type Error = tungstenite::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let write_buffer_size = this.config.write_buffer_size;
        if let Some(io) = this.tracked()
            && io.out.unwritten() >= write_buffer_size
        {
            // As tungstenite does with its write buffer.
            ready!(io.out.poll_write(&mut io.io, cx))?;
        }
        match &mut this.state {
            State::Open { ws, .. } => ws.poll_ready_unpin(cx),
            State::Parked(_) => Poll::Ready(Ok(())),
            State::Gone => Poll::Ready(Err(tungstenite::Error::AlreadyClosed)),
        }
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        let this = self.get_mut();
        let writes_itself = this.writes_itself();
        let item = match this.tracked() {
            Some(io) if writes_itself => match io.out.push(item) {
                Ok(()) => return Ok(()),
                Err(other) => other,
            },
            _ => item,
        };
        if matches!(item, Message::Close(_)) {
            this.closed = true;
        }
        this.unflushed = true;
        this.writer()?.start_send_unpin(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let tungstenite_holds = !this.writes_itself();
        match &mut this.state {
            // tungstenite's flush writes the frames written without it first.
            State::Open { ws, .. } if tungstenite_holds => {
                ready!(ws.poll_flush_unpin(cx))?;
                this.unflushed = false;
                Poll::Ready(Ok(()))
            }
            State::Open { ws, .. } => Pin::new(ws.get_mut()).poll_flush(cx).map_err(Into::into),
            State::Parked(io) => {
                ready!(Pin::new(&mut *io).poll_flush(cx))?;
                io.out.release();
                Poll::Ready(Ok(()))
            }
            State::Gone => Poll::Ready(Err(tungstenite::Error::AlreadyClosed)),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().writer()?.poll_close_unpin(cx)
    }
}

impl<IO> Transport for Parkable<IO>
where
    IO: AsyncRead + AsyncWrite + ReadReady + Unpin + Send,
{
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match &mut self.state {
            // Under the WebSocket layer, without following the framing:
            // the connection is closing.
            State::Parked(io) => discard_from(io, cx),
            State::Open { ws, .. } => ws.poll_discard(cx),
            State::Gone => Poll::Ready(Ok(0)),
        }
    }

    fn park(&mut self, cx: &mut Context<'_>, reading: bool) -> bool {
        let State::Open {
            ws,
            reading: made_to_read,
            drained,
        } = &mut self.state
        else {
            return false;
        };
        if (*made_to_read && !reading) || !*drained || !ws.get_ref().at_boundary() {
            return false;
        }
        if !matches!(ws.poll_flush_unpin(cx), Poll::Ready(Ok(()))) {
            return false;
        }
        self.unflushed = false;
        if let State::Open { ws, .. } = std::mem::replace(&mut self.state, State::Gone) {
            let mut io = ws.into_inner();
            io.out.release();
            io.spare = None;
            self.state = State::Parked(io);
        }
        true
    }

    fn parked(&self) -> bool {
        matches!(self.state, State::Parked(_))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
    use tungstenite::Message;
    use tungstenite::protocol::WebSocketConfig;

    use super::super::direct::tests::frame;
    use super::{FrameTrack, Parkable, ReadReady, State, Transport as _};

    impl ReadReady for tokio::io::DuplexStream {
        fn poll_read_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
            std::task::Poll::Ready(())
        }
    }

    fn fed_in_pieces(bytes: &[u8], piece: usize) -> Vec<bool> {
        let mut track = FrameTrack::default();
        bytes
            .chunks(piece)
            .map(|chunk| {
                track.feed(chunk);
                track.at_boundary()
            })
            .collect()
    }

    #[test]
    fn a_whole_frame_ends_on_a_boundary_however_it_is_split() {
        for len in [0, 5, 125, 126, 300, 65_535, 65_536, 70_000] {
            let bytes = frame(0x81, &vec![b'a'; len]);
            for piece in [1, 2, 3, 7, 16, 4096, bytes.len()] {
                let seen = fed_in_pieces(&bytes, piece);
                assert_eq!(seen.last(), Some(&true), "len {len}, pieces of {piece}");
                assert!(
                    seen[..seen.len() - 1].iter().all(|at| !at),
                    "len {len}, pieces of {piece}: a boundary inside the frame"
                );
            }
        }
    }

    #[test]
    fn a_fragmented_message_is_not_a_boundary_until_its_last_continuation() {
        let mut track = FrameTrack::default();
        track.feed(&frame(0x01, b"first"));
        assert!(!track.at_boundary());
        // A ping between the fragments.
        track.feed(&frame(0x89, b"p"));
        assert!(!track.at_boundary());
        track.feed(&frame(0x00, b"middle"));
        assert!(!track.at_boundary());
        track.feed(&frame(0x80, b"last"));
        assert!(track.at_boundary());
        // Control frames alone, binary whole.
        track.feed(&frame(0x8A, b""));
        track.feed(&frame(0x82, &[0; 200]));
        assert!(track.at_boundary());
    }

    #[test]
    fn messages_are_counted_when_their_last_frame_is_whole() {
        let mut bytes = frame(0x81, b"one");
        bytes.extend(frame(0x01, b"two, "));
        bytes.extend(frame(0x89, b"ping between"));
        bytes.extend(frame(0x00, b"in "));
        bytes.extend(frame(0x80, b"parts"));
        bytes.extend(frame(0x82, b""));
        bytes.extend(frame(0x8A, &[]));
        bytes.extend(frame(0x82, &[5; 70_000]));
        // one, the ping, two in parts, the empty binary, the pong, the long one
        for piece in [1, 5, 4096, bytes.len()] {
            let mut track = FrameTrack::default();
            let mut counts = Vec::new();
            for chunk in bytes.chunks(piece) {
                track.feed(chunk);
                counts.push(track.messages);
            }
            assert_eq!(track.messages, 6, "pieces of {piece}");
            assert!(track.between_frames());
            assert!(counts.windows(2).all(|w| w[0] <= w[1]));
            if piece == 1 {
                // Not before the last byte of the long frame.
                assert_eq!(counts[counts.len() - 2], 5);
            }
        }
    }

    #[test]
    fn several_frames_in_one_read_are_followed() {
        let mut bytes = frame(0x81, b"one");
        bytes.extend(frame(0x82, &[7; 1000]));
        bytes.extend(frame(0x81, b"three"));
        let mut track = FrameTrack::default();
        track.feed(&bytes[..bytes.len() - 1]);
        assert!(!track.at_boundary());
        track.feed(&bytes[bytes.len() - 1..]);
        assert!(track.at_boundary());
    }

    #[tokio::test]
    async fn a_small_frame_is_read_and_the_connection_stays_parked() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut parkable = Parkable::new(server, WebSocketConfig::default());
        client
            .write_all(&frame(0x81, br#"["sl/pong",7]"#))
            .await
            .unwrap();
        let message = parkable.next().await.unwrap().unwrap();
        assert_eq!(message, Message::text(r#"["sl/pong",7]"#));
        assert!(parkable.parked(), "read without a WebSocket");
        // A longer one makes the WebSocket, which reads it whole.
        let long = "z".repeat(300);
        client
            .write_all(&frame(0x81, long.as_bytes()))
            .await
            .unwrap();
        let message = parkable.next().await.unwrap().unwrap();
        assert_eq!(message, Message::text(long));
        assert!(!parkable.parked());
    }

    /// A connection whose client writes `bytes`, `piece` bytes at a time
    /// (letting the reader run between them), and the task that writes
    /// them, which ends with the client's stream.
    fn written_in_pieces(
        bytes: Vec<u8>,
        piece: usize,
    ) -> (
        Parkable<DuplexStream>,
        tokio::task::JoinHandle<DuplexStream>,
    ) {
        let (server, mut client) = tokio::io::duplex(1 << 20);
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(piece) {
                client.write_all(chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        });
        (Parkable::new(server, WebSocketConfig::default()), writer)
    }

    #[tokio::test]
    async fn an_open_connection_reads_small_frames_itself_in_order() {
        let long = "l".repeat(3000);
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        let mut add = |frame_bytes: Vec<u8>, message: Option<Message>| {
            bytes.extend(frame_bytes);
            expected.extend(message);
        };
        // A long one first: the WebSocket is made.
        add(
            frame(0x81, long.as_bytes()),
            Some(Message::text(long.clone())),
        );
        add(frame(0x81, b"small 1"), Some(Message::text("small 1")));
        add(frame(0x89, b"ping"), Some(Message::Ping("ping".into())));
        add(frame(0x82, &[7; 40]), Some(Message::binary(vec![7; 40])));
        add(frame(0x01, b"frag-"), None);
        add(frame(0x80, b"mented"), Some(Message::text("frag-mented")));
        for n in 0..30 {
            let text = format!("[\"chat/send\",{{\"n\":{n}}}]");
            add(frame(0x81, text.as_bytes()), Some(Message::text(text)));
        }
        add(
            frame(0x81, long.as_bytes()),
            Some(Message::text(long.clone())),
        );
        add(frame(0x82, &[1; 200]), Some(Message::binary(vec![1; 200])));
        add(frame(0x81, b"last"), Some(Message::text("last")));
        for piece in [1, 7, 100, 513, bytes.len()] {
            let (mut parkable, writer) = written_in_pieces(bytes.clone(), piece);
            for (i, message) in expected.iter().enumerate() {
                let got = parkable.next().await.unwrap().unwrap();
                assert_eq!(&got, message, "message {i}, pieces of {piece}");
            }
            let mut client = writer.await.unwrap();
            // The ping's pong went out.
            let mut pong = [0; 6];
            client.read_exact(&mut pong).await.unwrap();
            assert_eq!(&pong, b"\x8a\x04ping", "pieces of {piece}");
        }
    }

    /// Writes `bytes` from the client, and checks the message read.
    async fn exchange(
        parkable: &mut Parkable<DuplexStream>,
        client: &mut DuplexStream,
        bytes: Vec<u8>,
        message: Message,
    ) {
        client.write_all(&bytes).await.unwrap();
        assert_eq!(parkable.next().await.unwrap().unwrap(), message);
    }

    #[tokio::test]
    async fn small_frames_one_at_a_time_are_read_without_tungstenite() {
        let (server, mut client) = tokio::io::duplex(1 << 20);
        let mut parkable = Parkable::new(server, WebSocketConfig::default());
        let handed_over = |parkable: &Parkable<_>| match &parkable.state {
            State::Open { ws, .. } => ws.get_ref().handed_over,
            _ => panic!("open"),
        };
        let long = "l".repeat(3000);
        exchange(
            &mut parkable,
            &mut client,
            frame(0x81, long.as_bytes()),
            Message::text(long),
        )
        .await;
        for n in 0..10 {
            let text = format!("small {n}");
            exchange(
                &mut parkable,
                &mut client,
                frame(0x81, text.as_bytes()),
                Message::text(text),
            )
            .await;
        }
        assert_eq!(
            handed_over(&parkable),
            0,
            "all read straight, the long one too"
        );
        // A ping goes through tungstenite, and the next message; then small
        // ones are read straight again.
        exchange(
            &mut parkable,
            &mut client,
            frame(0x89, b"p"),
            Message::Ping("p".into()),
        )
        .await;
        for n in 0..10 {
            let text = format!("after {n}");
            exchange(
                &mut parkable,
                &mut client,
                frame(0x82, text.as_bytes()),
                Message::binary(text),
            )
            .await;
        }
        assert_eq!(handed_over(&parkable), 2);
        let mut pong = [0; 3];
        client.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"\x8a\x01p");
    }

    #[tokio::test]
    async fn frames_written_without_tungstenite_keep_their_order_with_its_own() {
        use futures_util::SinkExt as _;
        use tokio_tungstenite::WebSocketStream;
        use tungstenite::protocol::Role;
        use tungstenite::protocol::frame::coding::CloseCode;

        // A pipe of a few bytes: every write is cut short.
        let (server, client) = tokio::io::duplex(5);
        let mut parkable = Parkable::new(server, WebSocketConfig::default());
        let big = "b".repeat(70_000);
        let close = Message::Close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        }));
        let sent = vec![
            Message::text("one"),
            Message::binary(vec![2; 300]),
            Message::Ping("p".into()),
            Message::text(big.clone()),
            Message::text("after the ping"),
            close.clone(),
        ];
        let reader = tokio::spawn(async move {
            let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
            let mut got = Vec::new();
            while let Some(Ok(message)) = client.next().await {
                let closing = matches!(message, Message::Close(_));
                got.push(message);
                if closing {
                    break;
                }
            }
            got
        });
        let mut sending = sent.clone().into_iter();
        for message in sending.by_ref().take(2) {
            parkable.feed(message).await.unwrap();
        }
        assert!(parkable.parked(), "data frames need no WebSocket");
        // The ping goes through tungstenite, after the frames before it.
        parkable.feed(sending.next().unwrap()).await.unwrap();
        parkable.flush().await.unwrap();
        // Then data frames without it again, and its close after them.
        for message in sending {
            parkable.feed(message).await.unwrap();
        }
        parkable.flush().await.unwrap();
        // Written after the close, a data frame is refused as tungstenite refuses it.
        assert!(parkable.send(Message::text("late")).await.is_err());
        assert_eq!(reader.await.unwrap(), sent);
    }

    #[tokio::test]
    async fn long_frames_are_read_straight_however_they_come() {
        let text = "\u{e9}t\u{e9} \u{1f600} ".repeat(2000);
        let binary: Vec<u8> = (0..=255).cycle().take(70_000).collect();
        let mut bytes = frame(0x81, text.as_bytes());
        bytes.extend(frame(0x82, &binary));
        bytes.extend(frame(0x81, b"small"));
        bytes.extend(frame(0x81, text.as_bytes()));
        let expected = [
            Message::text(text.clone()),
            Message::binary(binary),
            Message::text("small"),
            Message::text(text),
        ];
        // Pieces of 3 cut headers in two; 4099 cut a multi-byte character.
        for piece in [3, 517, 4099, bytes.len()] {
            let (mut parkable, writer) = written_in_pieces(bytes.clone(), piece);
            for (i, message) in expected.iter().enumerate() {
                let got = parkable.next().await.unwrap().unwrap();
                assert_eq!(&got, message, "message {i}, pieces of {piece}");
            }
            // Written at once, every frame is read straight (in pieces, a
            // header cut in two goes through tungstenite).
            let State::Open { ws, .. } = &parkable.state else {
                panic!("open");
            };
            if piece == bytes.len() {
                assert_eq!(ws.get_ref().handed_over, 0);
            }
            drop(writer.await.unwrap());
        }
    }

    /// What a WebSocket reads from `bytes`, written at once and the stream
    /// then ended: through a [`Parkable`] when `parkable`, else tungstenite's
    /// own.
    async fn read_all(bytes: &[u8], parkable: bool) -> Vec<String> {
        use tokio_tungstenite::WebSocketStream;
        use tungstenite::protocol::Role;

        let (server, mut client) = tokio::io::duplex(1 << 20);
        client.write_all(bytes).await.unwrap();
        drop(client);
        let mut got = Vec::new();
        let mut push = |item: Option<Result<Message, tungstenite::Error>>| match item {
            Some(Ok(message)) => {
                got.push(format!("{message:?}"));
                true
            }
            Some(Err(err)) => {
                got.push(format!("error: {err}"));
                false
            }
            None => false,
        };
        if parkable {
            let mut ws = Parkable::new(server, WebSocketConfig::default());
            while push(ws.next().await) {}
        } else {
            let mut ws = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
            while push(ws.next().await) {}
        }
        got
    }

    #[tokio::test]
    async fn a_long_frame_that_cannot_be_finished_is_answered_as_tungstenite_answers_it() {
        let long = "x".repeat(20_000);
        let whole = frame(0x81, long.as_bytes());
        let mut not_utf8 = frame(0x81, b"first");
        let mut bad = long.clone().into_bytes();
        bad[15_000] = 0xff;
        not_utf8.extend(frame(0x81, &bad));
        not_utf8.extend(frame(0x81, b"never read"));
        let cases = [
            ("cut in its payload", whole[..12_000].to_vec()),
            ("cut in its header", whole[..3].to_vec()),
            ("text that is not UTF-8", not_utf8),
        ];
        for (what, bytes) in cases {
            let expected = read_all(&bytes, false).await;
            assert!(
                expected
                    .last()
                    .is_some_and(|last| last.starts_with("error")),
                "{what}: {expected:?}"
            );
            assert_eq!(read_all(&bytes, true).await, expected, "{what}");
        }
    }
}
