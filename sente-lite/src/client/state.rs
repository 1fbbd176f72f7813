//! The states a client's connection goes through.

use std::fmt;

/// Where a [`Client`](super::Client)'s connection stands.
///
/// ```text
/// Connecting ──► Open ──► Reconnecting ──► Open ──► ...
///     │            │           │
///     │            │           └──► Failed   (attempts used up, or an error retrying cannot fix)
///     └──► Reconnecting (start() only: the first attempt failed)
///
/// any state ──► Closing ──► Closed          (disconnect(), or the last Client handle dropped)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Not connected and not trying to: the client was disconnected.
    Closed,
    /// Opening the first connection.
    Connecting,
    /// Connected: the server's handshake arrived, sends go out at once.
    Open,
    /// [`Client::disconnect`](super::Client::disconnect) was called (or every
    /// handle was dropped): the connection closes gracefully.
    Closing,
    /// The connection was lost: waiting for the backoff delay, or opening a new one.
    /// Sends are queued meanwhile and requests wait for the next connection.
    Reconnecting,
    /// The client gave up: its [`ReconnectPolicy`](super::ReconnectPolicy) allows
    /// no more attempts, or the server refused in a way retrying cannot fix (see
    /// [`ClientError::is_retryable`](super::ClientError::is_retryable)).
    /// [`Client::reconnect`](super::Client::reconnect) starts trying again.
    Failed,
}

impl ConnectionState {
    /// The state's name in lowercase (`"open"`, `"reconnecting"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Connecting => "connecting",
            Self::Open => "open",
            Self::Closing => "closing",
            Self::Reconnecting => "reconnecting",
            Self::Failed => "failed",
        }
    }

    /// Whether a connection is open.
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Open)
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
