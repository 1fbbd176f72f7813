//! Errors of decoding, encoding, routing and sending.

use crate::protocol::{ErrorReply, RequestId, codes};

/// An inbound frame that cannot be handled. Each variant maps to a protocol
/// error code ([`ProtocolError::code`]) that is told to the peer; none of them
/// is a reason to drop the connection on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The frame is not a valid frame of the encoding (bad JSON or postcard, wrong shape).
    #[error("malformed {encoding} frame: {detail}")]
    BadFrame {
        /// `"json"` or `"postcard"`.
        encoding: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A request whose id could be read but whose frame is otherwise malformed
    /// (a deadline out of range, extra elements): answered to that request.
    #[error("malformed {encoding} request {req_id}: {detail}")]
    BadRequest {
        /// The request's id.
        req_id: RequestId,
        /// `"json"` or `"postcard"`.
        encoding: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// No handler is routed for the event.
    #[error("unknown event `{event}`: no handler is routed for it")]
    UnknownEvent {
        /// The id, or the key in hex for a binary frame.
        event: String,
    },
    /// A request-type event arrived as a one-way event.
    #[error("`{event}` is a request: send it with a request id")]
    ExpectedRequest {
        /// The event id.
        event: &'static str,
    },
    /// A one-way event arrived as a request.
    #[error("`{event}` is a one-way event: it cannot be sent as a request")]
    NotARequest {
        /// The event id.
        event: &'static str,
    },
    /// The event is known but its payload does not decode into its type.
    #[error("payload of `{event}` does not match its type: {detail}")]
    BadPayload {
        /// The event id.
        event: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// A request reused the id of a request still in flight.
    #[error("request id {req_id} is already in flight")]
    DuplicateRequest {
        /// The reused id.
        req_id: RequestId,
    },
    /// The connection has as many requests in flight as it may.
    #[error("too many requests in flight (at most {max})")]
    TooManyRequests {
        /// The limit.
        max: usize,
    },
}

impl ProtocolError {
    /// The protocol error code told to the peer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadFrame { .. } | Self::BadRequest { .. } => codes::BAD_FRAME,
            Self::UnknownEvent { .. } | Self::ExpectedRequest { .. } | Self::NotARequest { .. } => {
                codes::BAD_EVENT
            }
            Self::BadPayload { .. } => codes::BAD_PAYLOAD,
            Self::DuplicateRequest { .. } => codes::DUPLICATE_REQUEST,
            Self::TooManyRequests { .. } => codes::TOO_MANY_REQUESTS,
        }
    }
}

impl ProtocolError {
    /// The request the error is about, when the frame named one that can be
    /// answered (a malformed request whose id was read, a reused id).
    pub fn req_id(&self) -> Option<RequestId> {
        match self {
            Self::BadRequest { req_id, .. } | Self::DuplicateRequest { req_id } => Some(*req_id),
            _ => None,
        }
    }
}

impl From<&ProtocolError> for ErrorReply {
    fn from(err: &ProtocolError) -> Self {
        ErrorReply::new(err.code(), err.to_string())
    }
}

impl From<ProtocolError> for ErrorReply {
    fn from(err: ProtocolError) -> Self {
        ErrorReply::from(&err)
    }
}

/// A value that could not be encoded (its `Serialize` implementation failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {what} as {encoding}: {detail}")]
pub struct EncodeError {
    /// What was being encoded: an event id or a frame kind.
    pub what: &'static str,
    /// `"json"` or `"postcard"`.
    pub encoding: &'static str,
    /// The serializer's message.
    pub detail: String,
}

/// Why a message could not be queued for a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The peer's outbound queue is full: it reads slower than it is sent to.
    #[error(
        "the outbound queue of connection {conn_id} is full (at most {capacity} messages and {max_bytes} bytes)"
    )]
    QueueFull {
        /// The slow connection.
        conn_id: crate::ConnId,
        /// The queue's capacity in messages.
        capacity: usize,
        /// The queue's capacity in bytes (`usize::MAX` when unbounded).
        max_bytes: usize,
    },
    /// The connection is closed.
    #[error("connection {conn_id} is closed")]
    Closed {
        /// The closed connection.
        conn_id: crate::ConnId,
    },
}
