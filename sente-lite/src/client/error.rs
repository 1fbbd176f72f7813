//! What can go wrong when a client connects, and waiting for a state that does not come.

use std::time::Duration;

use crate::protocol::PROTOCOL_VERSION;
use crate::{ProtocolError, RouterError};

use super::ConnectionState;

/// Why a client could not be built or could not connect.
///
/// [`ClientBuilder::connect`](super::ClientBuilder::connect) returns the error
/// of its first attempt; a running client keeps the last one
/// ([`Client::last_error`](super::Client::last_error)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The url does not parse.
    #[error("invalid url `{url}`: {source}")]
    InvalidUrl {
        /// The url as given.
        url: String,
        /// The parser's complaint.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The url names no host.
    #[error("url `{url}` names no host")]
    MissingHost {
        /// The url as given.
        url: String,
    },
    /// The url's scheme is not `ws` (or `wss` with the `tls` feature).
    #[error("url `{url}` has scheme `{scheme}`: use `ws://`, or `wss://` with the `tls` feature")]
    UnsupportedScheme {
        /// The url as given.
        url: String,
        /// Its scheme (empty when it has none).
        scheme: String,
    },
    /// A header given to [`ClientBuilder::header`](super::ClientBuilder::header)
    /// is not a valid HTTP header name or value.
    #[error("invalid HTTP header `{name}`")]
    InvalidHeader {
        /// The header's name as given.
        name: String,
    },
    /// The client's router did not build (an event routed twice, a clash).
    #[error(transparent)]
    Router(#[from] RouterError),
    /// The TCP connection could not be opened.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The server's url, without its query.
        url: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection and WebSocket upgrade took longer than the connect timeout.
    #[error("no WebSocket connection to {url} within {timeout:?}")]
    ConnectTimeout {
        /// The server's url, without its query.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The server answered the upgrade with an HTTP error (authentication, origin,
    /// connection limit, wrong path...).
    #[error("the server refused the WebSocket upgrade with HTTP {status}")]
    Rejected {
        /// The HTTP status.
        status: http::StatusCode,
        /// The response body (the server's explanation), lossily decoded.
        body: String,
    },
    /// The server did not select the subprotocol this client's codec asked for.
    #[error("the server did not accept subprotocol `{requested}` (it answered {answered:?})")]
    SubprotocolRefused {
        /// What the client asked for.
        requested: &'static str,
        /// What the server echoed, if anything.
        answered: Option<String>,
    },
    /// The WebSocket upgrade failed for another reason.
    #[error("the WebSocket upgrade failed: {0}")]
    Upgrade(#[source] tungstenite::Error),
    /// The credentials callback failed (see
    /// [`ClientBuilder::credentials`](super::ClientBuilder::credentials)); its
    /// message. Retried, as a token service may be back later.
    #[error("no credentials for the connection: {0}")]
    Credentials(String),
    /// The server's `sl/handshake` frame did not arrive within the handshake timeout.
    #[error("no handshake from the server within {timeout:?}")]
    HandshakeTimeout {
        /// The timeout.
        timeout: Duration,
    },
    /// The connection ended before the server's handshake arrived.
    #[error("the connection ended before the server's handshake (close code {code:?}: {reason})")]
    ClosedBeforeHandshake {
        /// The close code, when the server sent a close frame.
        code: Option<u16>,
        /// The close reason, or what failed.
        reason: String,
    },
    /// The server's first frame does not decode.
    #[error("the server's first frame does not decode: {0}")]
    InvalidHandshake(#[source] ProtocolError),
    /// The server's first frame is a valid frame, but not `sl/handshake`.
    #[error("the server's first frame is {got}, not `sl/handshake`")]
    NotAHandshake {
        /// What kind of frame it was.
        got: &'static str,
    },
    /// The server speaks another protocol version.
    #[error("the server speaks protocol version {version}; this client speaks {PROTOCOL_VERSION}")]
    UnsupportedVersion {
        /// The server's version.
        version: u16,
    },
}

impl ClientError {
    /// Whether trying again later may succeed: network failures, timeouts, a
    /// server that closed early or answered 408, 429 or 5xx. A bad url or header,
    /// a refused subprotocol, another protocol version, a malformed handshake
    /// and other HTTP 4xx answers (authentication, origin) are not retried: the
    /// client enters [`Failed`](super::ConnectionState::Failed) at once.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::HandshakeTimeout { .. }
            | Self::ClosedBeforeHandshake { .. }
            | Self::Credentials(_)
            | Self::Upgrade(_) => true,
            Self::Rejected { status, .. } => {
                status.is_server_error()
                    || *status == http::StatusCode::REQUEST_TIMEOUT
                    || *status == http::StatusCode::TOO_MANY_REQUESTS
            }
            Self::InvalidUrl { .. }
            | Self::MissingHost { .. }
            | Self::UnsupportedScheme { .. }
            | Self::InvalidHeader { .. }
            | Self::Router(_)
            | Self::SubprotocolRefused { .. }
            | Self::InvalidHandshake(_)
            | Self::NotAHandshake { .. }
            | Self::UnsupportedVersion { .. } => false,
        }
    }
}

/// [`Client::wait_for`](super::Client::wait_for) gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client did not reach state `{wanted}` within {timeout:?} (it is `{current}`)")]
pub struct WaitTimeout {
    /// The state waited for.
    pub wanted: ConnectionState,
    /// The state when the wait ended.
    pub current: ConnectionState,
    /// How long it waited.
    pub timeout: Duration,
}
