//! Closing a connection so that the peer sees why.
//!
//! A socket closed while the peer's bytes sit unread in it is reset by the
//! kernel, and the peer then loses the close frame we sent (Node's `ws` reports
//! 1006 instead of our code). So after our close frame the engine keeps reading,
//! briefly and bounded in time, until the peer's close frame or the end of its
//! stream; when the WebSocket layer can no longer parse the peer's input (a
//! message over the size limit, a protocol error) the bytes are read and dropped
//! below it, until the peer goes quiet.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use super::writer::Writer;
use crate::stats::Counters;

/// How long closing may take in all: finishing the write in progress, the close
/// frame, and reading what the peer still sends.
pub(super) const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Input is read and dropped until the peer has sent nothing for this long.
const QUIET: Duration = Duration::from_millis(100);

/// A WebSocket whose underlying byte stream can be read directly.
pub(crate) trait Transport:
    Stream<Item = Result<Message, tungstenite::Error>>
    + Sink<Message, Error = tungstenite::Error>
    + Unpin
    + Send
{
    /// Reads bytes under the WebSocket layer and drops them; `Ok(0)` at the end
    /// of the stream.
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>>;

    /// Lets go of the WebSocket layer's buffers if it holds nothing (see
    /// `park`): one made to write once its writes are out, and one that reads
    /// too when `reading`. Returns whether it did.
    fn park(&mut self, _cx: &mut Context<'_>, _reading: bool) -> bool {
        false
    }

    /// Whether the WebSocket layer's buffers are let go.
    fn parked(&self) -> bool {
        false
    }
}

impl<T> Transport for WebSocketStream<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        discard_from(self.get_mut(), cx)
    }
}

/// Reads from `io` and drops what came; `Ok(0)` at the end of the stream.
pub(super) fn discard_from<R: AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    let mut bytes = [0u8; 4096];
    let mut buf = ReadBuf::new(&mut bytes);
    ready!(Pin::new(io).poll_read(cx, &mut buf))?;
    Poll::Ready(Ok(buf.filled().len()))
}

impl<T: Transport> Transport for Pin<Box<T>> {
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        Pin::get_mut(self.as_mut()).poll_discard(cx)
    }

    fn park(&mut self, cx: &mut Context<'_>, reading: bool) -> bool {
        Pin::get_mut(self.as_mut()).park(cx, reading)
    }

    fn parked(&self) -> bool {
        self.as_ref().get_ref().parked()
    }
}

/// A close frame; the reason is cut to the 123 bytes a close frame holds, at a
/// char boundary.
fn close_frame(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].to_owned().into(),
    }))
}

/// Closes with `code`: finishes the write in progress and our own frames (an
/// error that says why goes before the close), sends the close frame, then
/// reads until the peer's close or the end of its stream. `readable` is false
/// when the WebSocket layer already failed on the peer's input: its bytes are
/// then dropped below that layer. `abandon` gives up what was not yet handed
/// to the socket (a slow consumer's backlog), so the close frame follows only
/// what the socket already holds. Writing takes at most half of
/// [`CLOSE_LINGER`], everything together at most all of it.
pub(super) async fn close_with<S: Transport>(
    ws: &mut S,
    writer: &mut Writer,
    counters: &Counters,
    code: u16,
    reason: &str,
    readable: bool,
    abandon: bool,
) {
    let started = Instant::now();
    let deadline = started + CLOSE_LINGER;
    if abandon {
        writer.abandon();
    } else {
        writer.take_all_own(counters);
    }
    let _ = timeout_at(started + CLOSE_LINGER / 2, async {
        std::future::poll_fn(|cx| writer.poll_write(ws, cx)).await?;
        ws.send(close_frame(code, reason)).await
    })
    .await;
    if readable {
        let ended_cleanly = timeout_at(deadline, async {
            loop {
                match ws.next().await {
                    None => return true,
                    Some(Ok(_)) => {}
                    Some(Err(_)) => return false,
                }
            }
        })
        .await;
        if ended_cleanly != Ok(false) {
            return;
        }
    }
    discard(ws, deadline).await;
}

/// Answers the peer's close (the WebSocket layer queued the reply; this
/// flushes it), bounded by [`CLOSE_LINGER`].
pub(super) async fn acknowledge_close<S: Transport>(ws: &mut S) {
    let _ = timeout_at(Instant::now() + CLOSE_LINGER, ws.close()).await;
}

/// Reads and drops the peer's bytes until its stream ends, it stays quiet for
/// [`QUIET`], or `deadline`.
async fn discard<S: Transport>(ws: &mut S, deadline: Instant) {
    loop {
        let quiet_until = (Instant::now() + QUIET).min(deadline);
        match timeout_at(quiet_until, std::future::poll_fn(|cx| ws.poll_discard(cx))).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}
