//! The connection context handed to every handler, and the connection's bounded outbound queue.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use tungstenite::Message;

use crate::protocol::{ConnId, RequestId, UserId};
use crate::{Codec, Event, NoReply, ProtocolError, SendError};

/// The connection a handler runs for: who the peer is, and a handle to send to it.
///
/// Cheap to clone (one reference count); clones share the connection.
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<CtxInner>,
}

struct CtxInner {
    conn_id: ConnId,
    user_id: Option<UserId>,
    codec: Codec,
    outbound: Outbound,
    in_flight: InFlight,
}

impl Ctx {
    /// A context for connection `conn_id` of `user_id`, sending with `codec`
    /// through `outbound`, accepting at most `max_in_flight` concurrent requests
    /// from the peer.
    pub fn new(
        conn_id: ConnId,
        user_id: Option<UserId>,
        codec: Codec,
        outbound: Outbound,
        max_in_flight: usize,
    ) -> Self {
        Self {
            inner: Arc::new(CtxInner {
                conn_id,
                user_id,
                codec,
                outbound,
                in_flight: InFlight::new(max_in_flight),
            }),
        }
    }

    /// The connection's id.
    pub fn conn_id(&self) -> ConnId {
        self.inner.conn_id
    }

    /// The authenticated user, if the connection has one.
    pub fn user_id(&self) -> Option<&UserId> {
        self.inner.user_id.as_ref()
    }

    /// The codec the connection sends with.
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// Sends a one-way event to the peer.
    ///
    /// The message is queued, not awaited: it fails with [`SendError::QueueFull`]
    /// when the peer is too slow to keep its queue below capacity, and with
    /// [`SendError::Closed`] when the connection is gone.
    pub fn send<E: Event<Reply = NoReply>>(&self, event: &E) -> Result<(), SendError> {
        let message = self.inner.codec.encode_event(event)?;
        self.inner.outbound.try_send(message)
    }

    /// Queues an already encoded message (for example a shared broadcast frame).
    pub fn send_message(&self, message: Message) -> Result<(), SendError> {
        self.inner.outbound.try_send(message)
    }

    /// Marks request `req_id` from the peer as in flight until the guard drops.
    pub(crate) fn begin_request(&self, req_id: RequestId) -> Result<InFlightGuard, ProtocolError> {
        self.inner.in_flight.begin(&self.inner, req_id)
    }
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("conn_id", &self.inner.conn_id)
            .field("user_id", &self.inner.user_id)
            .field("codec", &self.inner.codec)
            .finish_non_exhaustive()
    }
}

/// The sending half of a connection's bounded outbound queue.
///
/// The connection's task owns the socket and drains the receiving half; every
/// other part of the program sends through clones of this handle. When the queue
/// is full the message is refused ([`SendError::QueueFull`]), never buffered
/// elsewhere: the caller decides, and the server's slow-consumer policy closes
/// connections that stay full.
#[derive(Clone)]
pub struct Outbound {
    conn_id: ConnId,
    tx: mpsc::Sender<Message>,
}

impl Outbound {
    /// A queue of `capacity` messages (at least 1) for connection `conn_id`.
    pub fn channel(conn_id: ConnId, capacity: usize) -> (Self, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { conn_id, tx }, rx)
    }

    /// Queues `message` without waiting.
    pub fn try_send(&self, message: Message) -> Result<(), SendError> {
        self.tx.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::QueueFull {
                conn_id: self.conn_id,
                capacity: self.tx.max_capacity(),
            },
            mpsc::error::TrySendError::Closed(_) => SendError::Closed { conn_id: self.conn_id },
        })
    }

    /// Messages queued and not yet taken by the connection's task.
    pub fn len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ids of the peer's requests still being handled, bounded.
struct InFlight {
    max: usize,
    ids: Mutex<HashSet<RequestId>>,
}

impl InFlight {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            ids: Mutex::new(HashSet::new()),
        }
    }

    fn begin(&self, owner: &Arc<CtxInner>, req_id: RequestId) -> Result<InFlightGuard, ProtocolError> {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if ids.len() >= self.max {
            return Err(ProtocolError::TooManyRequests { max: self.max });
        }
        if !ids.insert(req_id) {
            return Err(ProtocolError::DuplicateRequest { req_id });
        }
        Ok(InFlightGuard {
            owner: Arc::clone(owner),
            req_id,
        })
    }
}

/// Removes a request from the in-flight set when dropped.
pub(crate) struct InFlightGuard {
    owner: Arc<CtxInner>,
    req_id: RequestId,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut ids = self.owner.in_flight.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.remove(&self.req_id);
    }
}
