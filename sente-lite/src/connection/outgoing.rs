//! A server's text and binary frames written without tungstenite.
//!
//! A server's data frames are not masked: each is a header of 2 to 10 bytes
//! and the payload as it is. tungstenite copies every frame into its write
//! buffer before writing it out; a server connection whose tungstenite holds
//! nothing unwritten (see [`super::park`] for when) keeps the header and the
//! message's own bytes instead (shared with every other subscriber of a
//! broadcast) and writes them to the socket with one vectored write a batch
//! (small frames are copied together for a plain write).
//! What tungstenite writes later goes after them: the stream under it writes
//! these first.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tungstenite::Message;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// Slices handed to one vectored write: a header and a payload a frame.
const SLICES: usize = 64;
/// Frames that add up to no more than this are copied together and written
/// with a plain write, which costs the kernel less than a vectored one.
const GATHER: usize = 512;

/// One frame: its header and its payload.
#[derive(Debug)]
struct Frame {
    head: [u8; 10],
    head_len: u8,
    payload: Bytes,
}

impl Frame {
    /// A final, unmasked text or binary frame of `payload`.
    fn new(text: bool, payload: Bytes) -> Self {
        let header = FrameHeader {
            opcode: OpCode::Data(if text { Data::Text } else { Data::Binary }),
            ..FrameHeader::default()
        };
        let len = payload.len() as u64;
        let mut head = [0u8; 10];
        // An unmasked header is at most 10 bytes: writing it cannot fail.
        let _ = header.format(len, &mut &mut head[..]);
        Self {
            head,
            head_len: header.len(len) as u8,
            payload,
        }
    }

    fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    fn len(&self) -> usize {
        usize::from(self.head_len) + self.payload.len()
    }
}

/// Frames waiting for the socket, in order.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    frames: VecDeque<Frame>,
    /// Bytes of the front frame already written.
    written: usize,
    /// Bytes not yet written.
    unwritten: usize,
}

impl Outgoing {
    /// Takes `message` to write if it is a text or binary message; gives
    /// anything else back.
    pub(super) fn push(&mut self, message: Message) -> Result<(), Message> {
        let frame = match message {
            Message::Text(text) => Frame::new(true, Bytes::from(text)),
            Message::Binary(payload) => Frame::new(false, payload),
            other => return Err(other),
        };
        self.unwritten += frame.len();
        self.frames.push_back(frame);
        Ok(())
    }

    /// Bytes not yet written.
    pub(super) fn unwritten(&self) -> usize {
        self.unwritten
    }

    /// Lets go of the room kept for frames (nothing waits).
    pub(super) fn release(&mut self) {
        if self.frames.is_empty() {
            self.frames = VecDeque::new();
        }
    }

    /// Writes the frames to `io`, in order, until all are written (`Ready`),
    /// the socket takes no more (`Pending`) or it fails.
    pub(super) fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.frames.is_empty() {
            let mut total = 0;
            self.each_part(|part| {
                total += part.len();
                total <= GATHER
            });
            let polled = if total <= GATHER {
                // Copied together into uninitialised room, filled through
                // tokio's `ReadBuf` (no zeroing), for one plain write.
                let mut room = [std::mem::MaybeUninit::<u8>::uninit(); GATHER];
                let mut gathered = tokio::io::ReadBuf::uninit(&mut room);
                self.each_part(|part| {
                    gathered.put_slice(part);
                    true
                });
                Pin::new(&mut *io).poll_write(cx, gathered.filled())
            } else {
                let mut slices = [IoSlice::new(&[]); SLICES];
                let mut count = 0;
                self.each_part(|part| {
                    slices[count] = IoSlice::new(part);
                    count += 1;
                    count < SLICES
                });
                if io.is_write_vectored() {
                    Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count])
                } else {
                    Pin::new(&mut *io).poll_write(cx, &slices[0])
                }
            };
            let n = match polled {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            };
            self.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    /// Hands `f` what is left to write, part by part (a header, a payload),
    /// in order, while it returns `true`.
    fn each_part<'a>(&'a self, mut f: impl FnMut(&'a [u8]) -> bool) {
        let mut skip = self.written;
        for frame in &self.frames {
            for part in [frame.head(), &frame.payload[..]] {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                if !f(&part[skip..]) {
                    return;
                }
                skip = 0;
            }
        }
    }

    /// Takes `n` written bytes off the front.
    fn advance(&mut self, mut n: usize) {
        self.unwritten -= n;
        while let Some(front) = self.frames.front() {
            let left = front.len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            self.frames.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Poll;

    use futures_util::StreamExt as _;
    use tokio_tungstenite::WebSocketStream;
    use tungstenite::Message;
    use tungstenite::protocol::Role;

    use super::Outgoing;

    /// Writes `messages` through an [`Outgoing`] into a pipe of `room`
    /// bytes, reading the other end as it fills, and returns what a client
    /// reads of it.
    async fn through(messages: Vec<Message>, room: usize) -> Vec<Message> {
        let (mut server, client) = tokio::io::duplex(room);
        let count = messages.len();
        let mut outgoing = Outgoing::default();
        for message in messages {
            outgoing.push(message).expect("a data message");
        }
        let reader = tokio::spawn(async move {
            let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
            let mut got = Vec::new();
            while got.len() < count {
                got.push(client.next().await.expect("a message").expect("valid"));
            }
            got
        });
        std::future::poll_fn(|cx| outgoing.poll_write(&mut server, cx))
            .await
            .expect("written");
        assert_eq!(outgoing.unwritten(), 0);
        reader.await.expect("read")
    }

    fn messages() -> Vec<Message> {
        let mut messages = Vec::new();
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 200_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            messages.push(Message::Binary(bytes.into()));
            let text: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            messages.push(Message::text(text));
        }
        messages
    }

    #[tokio::test]
    async fn frames_of_every_length_read_back_whole_and_in_order() {
        let sent = messages();
        assert_eq!(through(sent.clone(), 1 << 20).await, sent);
    }

    #[tokio::test]
    async fn a_socket_that_takes_a_few_bytes_at_a_time_gets_them_all_in_order() {
        let sent = messages();
        assert_eq!(through(sent.clone(), 7).await, sent);
    }

    #[tokio::test]
    async fn more_frames_than_one_write_takes_go_in_several() {
        let sent: Vec<Message> = (0..200).map(|i| Message::text(format!("m{i}"))).collect();
        assert_eq!(through(sent.clone(), 1 << 20).await, sent);
    }

    #[test]
    fn control_messages_are_given_back() {
        let mut outgoing = Outgoing::default();
        assert!(matches!(
            outgoing.push(Message::Ping(vec![1].into())),
            Err(Message::Ping(_))
        ));
        assert!(matches!(
            outgoing.push(Message::Close(None)),
            Err(Message::Close(None))
        ));
        assert_eq!(outgoing.unwritten(), 0);
    }

    #[tokio::test]
    async fn a_failed_socket_fails_the_write() {
        let (mut server, client) = tokio::io::duplex(64);
        drop(client);
        let mut outgoing = Outgoing::default();
        outgoing
            .push(Message::text("hello"))
            .expect("a data message");
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(outgoing.poll_write(&mut server, cx))).await;
        assert!(matches!(polled, Poll::Ready(Err(_))));
    }
}
