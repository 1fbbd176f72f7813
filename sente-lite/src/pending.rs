//! Requests we sent and wait for: a bounded table from request id to the waiting caller.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::protocol::{ErrorReply, RequestId};
use crate::{EncodeError, Payload, ProtocolError, SendError};

/// Why a request got no reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// The deadline passed before a reply arrived.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The connection closed (or was replaced by a reconnect) before the reply arrived.
    #[error("the connection closed before the reply arrived")]
    Closed,
    /// The peer answered with an error.
    #[error("the peer answered with an error: {0}")]
    Remote(ErrorReply),
    /// The reply did not decode into the expected type.
    #[error("the reply does not match its type: {0}")]
    BadReply(ProtocolError),
    /// The request could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The request could not be queued (queue full or connection gone).
    #[error(transparent)]
    Send(#[from] SendError),
    /// As many requests are in flight as the connection allows.
    #[error("too many requests in flight (at most {max})")]
    TooManyInFlight {
        /// The bound.
        max: usize,
    },
    /// The server does not offer the protocol extension the request needs
    /// (it is not listed in its handshake's `extensions`).
    #[error("the server does not offer the `{extension}` extension")]
    Unsupported {
        /// The extension, for example [`EXTENSION_PRESENCE`](crate::protocol::EXTENSION_PRESENCE).
        extension: &'static str,
    },
    /// The user has no open connection, on this server or any other of the
    /// engine ([`Server::request_user`](crate::Server::request_user)).
    #[error("the user has no open connection")]
    NotConnected,
    /// The engine could not carry the request to the server holding the
    /// user (its service is unreachable).
    #[error("the engine is unavailable: {0}")]
    Unavailable(String),
}

impl RequestError {
    /// The error code of a remote error, or a protocol-like code for local failures.
    pub fn code(&self) -> &str {
        match self {
            Self::Timeout(_) => crate::protocol::codes::DEADLINE_EXCEEDED,
            Self::Closed => "closed",
            Self::Remote(e) => &e.code,
            Self::BadReply(_) => crate::protocol::codes::BAD_PAYLOAD,
            Self::Encode(_) => "encode",
            Self::Send(_) => "send",
            Self::TooManyInFlight { .. } => crate::protocol::codes::TOO_MANY_REQUESTS,
            Self::Unsupported { .. } => "unsupported",
            Self::NotConnected => "not-connected",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

type Completer = Box<dyn FnOnce(Result<Payload<'_>, ErrorReply>) + Send>;

/// A reply kept as it came: its payload in the encoding of the connection
/// that answered. An engine carries it back to the server that asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReply {
    /// The encoding of `payload`.
    pub codec: crate::Codec,
    /// JSON text, or postcard bytes.
    pub payload: bytes::Bytes,
}

impl RawReply {
    fn of(payload: &Payload<'_>) -> Self {
        match payload {
            Payload::Json(raw) => Self {
                codec: crate::Codec::Json,
                payload: bytes::Bytes::copy_from_slice(raw.get().as_bytes()),
            },
            Payload::Postcard(bytes) => Self {
                codec: crate::Codec::Postcard,
                payload: bytes::Bytes::copy_from_slice(bytes),
            },
        }
    }

    /// Decodes the reply into `R`, as the reply of a request on a
    /// connection would be.
    pub fn decode<R: DeserializeOwned>(&self) -> Result<R, RequestError> {
        let bad = |detail: String| {
            RequestError::BadReply(ProtocolError::BadPayload {
                event: "reply",
                detail,
            })
        };
        let payload = match self.codec {
            crate::Codec::Json => {
                let text = std::str::from_utf8(&self.payload).map_err(|e| bad(e.to_string()))?;
                let raw: &serde_json::value::RawValue =
                    serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
                Payload::Json(raw)
            }
            crate::Codec::Postcard => Payload::Postcard(&self.payload),
        };
        payload.decode("reply").map_err(RequestError::BadReply)
    }
}

/// Our requests in flight on one connection (or one client across reconnects).
#[derive(Clone)]
pub(crate) struct PendingRequests {
    inner: Arc<PendingInner>,
}

struct PendingInner {
    next_id: AtomicU64,
    max: usize,
    /// Our own request ids, hashed with foldhash (faster than SipHash).
    waiting: Mutex<HashMap<RequestId, Completer, foldhash::fast::RandomState>>,
    /// Set by `fail_all` (under the `waiting` lock): the connection is gone.
    closed: AtomicBool,
}

impl PendingRequests {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(PendingInner {
                next_id: AtomicU64::new(1),
                max: max.max(1),
                waiting: Mutex::new(HashMap::default()),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Continues `previous`'s request ids in this table, so that a request
    /// frame of a closed connection that still goes out on its successor (a
    /// client's queue outlives its connections) can never match a new request.
    pub(crate) fn continue_ids_from(&self, previous: &PendingRequests) {
        let next = previous.inner.next_id.load(Ordering::Relaxed);
        self.inner.next_id.fetch_max(next, Ordering::Relaxed);
    }

    /// Reserves a request id whose reply decodes into `R`. The returned guard
    /// removes the entry when dropped (the caller gave up or timed out).
    pub(crate) fn register<R: DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<(PendingGuard, oneshot::Receiver<Result<R, RequestError>>), RequestError> {
        self.register_with(|payload| payload.decode::<R>("reply").map_err(RequestError::BadReply))
    }

    /// Reserves a request id whose reply is kept as it came, undecoded.
    pub(crate) fn register_raw(
        &self,
    ) -> Result<
        (
            PendingGuard,
            oneshot::Receiver<Result<RawReply, RequestError>>,
        ),
        RequestError,
    > {
        self.register_with(|payload| Ok(RawReply::of(&payload)))
    }

    fn register_with<T: Send + 'static>(
        &self,
        take: impl FnOnce(Payload<'_>) -> Result<T, RequestError> + Send + 'static,
    ) -> Result<(PendingGuard, oneshot::Receiver<Result<T, RequestError>>), RequestError> {
        let (tx, rx) = oneshot::channel();
        let complete: Completer = Box::new(move |result| {
            let value = match result {
                Ok(payload) => take(payload),
                Err(remote) => Err(RequestError::Remote(remote)),
            };
            let _ = tx.send(value);
        });
        let mut waiting = self
            .inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(RequestError::Closed);
        }
        if waiting.len() >= self.inner.max {
            return Err(RequestError::TooManyInFlight {
                max: self.inner.max,
            });
        }
        // Ids stay below 2^53 so JavaScript peers read them exactly; wrapping is
        // harmless because an id is only reused long after its request ended.
        let req_id = self.inner.next_id.fetch_add(1, Ordering::Relaxed) % ((1 << 53) - 1) + 1;
        waiting.insert(req_id, complete);
        Ok((
            PendingGuard {
                pending: self.clone(),
                req_id,
            },
            rx,
        ))
    }

    /// Hands a reply to its waiter. Returns `false` when nobody waits for `req_id`
    /// (a late reply after a timeout, or a reply we never asked for).
    pub(crate) fn complete(
        &self,
        req_id: RequestId,
        result: Result<Payload<'_>, ErrorReply>,
    ) -> bool {
        let waiter = self
            .inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&req_id);
        match waiter {
            Some(complete) => {
                complete(result);
                true
            }
            None => false,
        }
    }

    /// Fails every waiting request with [`RequestError::Closed`]; requests
    /// registered afterwards fail at once with the same error.
    pub(crate) fn fail_all(&self) {
        let drained: Vec<Completer> = {
            let mut waiting = self
                .inner
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.inner.closed.store(true, Ordering::Relaxed);
            waiting.drain().map(|(_, c)| c).collect()
        };
        // Dropping a completer drops its sender: the waiter sees `Closed`.
        drop(drained);
    }
}

/// Removes its request from the table when dropped.
pub(crate) struct PendingGuard {
    pending: PendingRequests,
    req_id: RequestId,
}

impl PendingGuard {
    pub(crate) fn req_id(&self) -> RequestId {
        self.req_id
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending
            .inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.req_id);
    }
}

/// Waits for the reply of a registered request, at most `deadline`.
pub(crate) async fn wait_reply<R>(
    guard: PendingGuard,
    rx: oneshot::Receiver<Result<R, RequestError>>,
    deadline: Duration,
) -> Result<R, RequestError> {
    let result = match tokio::time::timeout(deadline, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(RequestError::Closed),
        Err(_) => Err(RequestError::Timeout(deadline)),
    };
    drop(guard);
    result
}

/// A deadline in whole milliseconds for the wire, saturating at `u32::MAX`.
pub(crate) fn deadline_ms(deadline: Duration) -> u32 {
    u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX)
}
