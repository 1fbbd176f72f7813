//! The byte stream of an upgraded connection.
//!
//! hyper hands an upgrade over as its own `Upgraded`: a boxed stream behind
//! a trait object, with the bytes it read past the request in front, read
//! through hyper's and then tokio's I/O traits. On the server's own plain
//! TCP listener the socket under it is known, so it is taken back: every
//! read and write then goes straight to the socket, without those layers on
//! each call. Any other stream (TLS, a host's own server) keeps hyper's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::http::Watched;
use crate::connection::ReadReady;

/// An upgraded connection's byte stream.
#[derive(Debug)]
pub(crate) enum UpgradedIo {
    /// The server's own TCP socket, with what hyper read of it past the
    /// request (the peer's first frames, if it sent them at once).
    Tcp {
        /// The socket.
        stream: TcpStream,
        /// Read before the socket (empty, not holding hyper's buffer, once
        /// read).
        prefix: Bytes,
    },
    /// Any other stream, through hyper.
    Hyper(TokioIo<Upgraded>),
}

impl UpgradedIo {
    /// Takes the socket back from hyper when it is the server's own plain TCP.
    pub(crate) fn new(upgraded: Upgraded) -> Self {
        match upgraded.downcast::<TokioIo<Watched<TcpStream>>>() {
            Ok(parts) => Self::Tcp {
                stream: parts.io.into_inner().into_inner(),
                prefix: kept(parts.read_buf),
            },
            Err(upgraded) => Self::Hyper(TokioIo::new(upgraded)),
        }
    }
}

/// `bytes`, or nothing once it is empty: a slice of hyper's read buffer
/// holds all of that buffer (8 KiB) for as long as it lives.
fn kept(bytes: Bytes) -> Bytes {
    if bytes.is_empty() {
        Bytes::new()
    } else {
        bytes
    }
}

impl AsyncRead for UpgradedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp { stream, prefix } => {
                if prefix.is_empty() {
                    Pin::new(stream).poll_read(cx, buf)
                } else {
                    let n = prefix.len().min(buf.remaining());
                    buf.put_slice(&prefix[..n]);
                    prefix.advance(n);
                    *prefix = kept(std::mem::take(prefix));
                    Poll::Ready(Ok(()))
                }
            }
            Self::Hyper(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl ReadReady for UpgradedIo {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            // Errors are left for the read to report.
            Self::Tcp { stream, prefix } if prefix.is_empty() => {
                stream.poll_read_ready(cx).map(drop)
            }
            // Bytes held before the socket; or a stream through hyper (TLS
            // among them), which may hold bytes it read: only reading tells.
            Self::Tcp { .. } | Self::Hyper(_) => Poll::Ready(()),
        }
    }
}

impl AsyncWrite for UpgradedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp { stream, .. } => Pin::new(stream).poll_write(cx, buf),
            Self::Hyper(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp { stream, .. } => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Hyper(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp { stream, .. } => stream.is_write_vectored(),
            Self::Hyper(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp { stream, .. } => Pin::new(stream).poll_flush(cx),
            Self::Hyper(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp { stream, .. } => Pin::new(stream).poll_shutdown(cx),
            Self::Hyper(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
