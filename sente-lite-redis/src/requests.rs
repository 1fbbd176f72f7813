//! Requests to a user on another server: the asking server sends the request
//! to one server that holds the user (on that server's own Redis channel),
//! which asks one of the user's connections there and sends the reply back
//! the same way.
//!
//! On a server's channel (after the kind byte `q` or `r`):
//! - `q` `req:from:timeout_ms:len:user` then the packed request;
//! - `r` `req:outcome:body`, where the outcome is the reply's encoding
//!   (`json`, `postcard`: the body is the payload), `remote` (the body is the
//!   peer's error reply as JSON), or a [`RequestError::code`] (the body is
//!   the message).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sente_lite::engine::{OutgoingEvent, ReplyFuture};
use sente_lite::protocol::{ErrorReply, UserId};
use sente_lite::{Codec, RawReply, RequestError};
use tokio::sync::oneshot;

use crate::engine::Inner;
use crate::link::bump;
use crate::queue::Pending;
use crate::wire;

/// How long past its timeout the asking server waits for a reply that the
/// answering server should have sent (a lost one counts as a timeout).
const GRACE: Duration = Duration::from_secs(1);

/// Where a reply goes, and the request's timeout.
type Waiter = (oneshot::Sender<Result<RawReply, RequestError>>, Duration);

/// The requests this server waits for, bounded.
pub(crate) struct Requests {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiter>>,
    max: usize,
}

impl Requests {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            next: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            max: max.max(1),
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiter>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes the waiter when the asker stops waiting.
struct Forget<'a> {
    requests: &'a Requests,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.requests.waiting().remove(&self.id);
    }
}

/// Sends the request to a server that holds `user` and waits for its reply.
pub(crate) fn ask(
    inner: &Arc<Inner>,
    user: &UserId,
    event: &OutgoingEvent<'_>,
    timeout: Duration,
) -> ReplyFuture {
    let fail = |e| -> ReplyFuture { Box::pin(std::future::ready(Err(e))) };
    let requests = &inner.requests;
    let id = requests.next.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    {
        let mut waiting = requests.waiting();
        if waiting.len() >= requests.max {
            return fail(RequestError::TooManyInFlight { max: requests.max });
        }
        waiting.insert(id, (tx, timeout));
    }
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let mut message = format!(
        "q{id}:{}:{timeout_ms}:{}:{}",
        inner.id,
        user.0.len(),
        user.0
    )
    .into_bytes();
    message.extend_from_slice(&wire::pack(event));
    let (sent_tx, sent_rx) = oneshot::channel();
    let queued = inner.queue.push(Pending::Route {
        user: user.0.clone(),
        message,
        one: Some(sent_tx),
    });
    if queued.is_err() {
        requests.waiting().remove(&id);
        bump(&inner.link.counters.publish_failures);
        return fail(RequestError::Unavailable(
            "too many sends wait for Redis".into(),
        ));
    }
    let inner = Arc::clone(inner);
    Box::pin(async move {
        let _forget = Forget {
            requests: &inner.requests,
            id,
        };
        match sent_rx.await {
            Ok(Ok(0)) => return Err(RequestError::NotConnected),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(RequestError::Unavailable(e)),
            Err(_) => return Err(RequestError::Unavailable("the engine stopped".into())),
        }
        match tokio::time::timeout(timeout + GRACE, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RequestError::Closed),
            Err(_) => Err(RequestError::Timeout(timeout)),
        }
    })
}

/// A request from another server for a user of this one: asked here, the
/// reply sent back.
pub(crate) fn asked(inner: &Arc<Inner>, body: &[u8]) {
    let Some(node) = inner.node.get() else {
        return;
    };
    let parsed = (|| {
        let (id, rest) = wire::split_field(body)?;
        let (from, rest) = wire::split_field(rest)?;
        let (timeout_ms, rest) = wire::split_field(rest)?;
        let (len, rest) = wire::split_field(rest)?;
        let len: usize = len.parse().ok()?;
        let user = std::str::from_utf8(rest.get(..len)?).ok()?;
        let packed = wire::unpack(&rest[len..])?;
        Some((
            id.parse::<u64>().ok()?,
            from.to_owned(),
            Duration::from_millis(timeout_ms.parse().ok()?),
            UserId(user.to_owned()),
            packed,
        ))
    })();
    let Some((id, from, timeout, user, packed)) = parsed else {
        bump(&inner.link.counters.malformed);
        return;
    };
    let reply = OutgoingEvent::with_payloads(packed.id, packed.json, packed.postcard, |event| {
        node.request_user(&user, event, timeout)
    });
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let result = reply.await;
        let mut message = format!("r{id}:").into_bytes();
        match result {
            Ok(reply) => {
                message.extend_from_slice(reply.codec.name().as_bytes());
                message.push(b':');
                message.extend_from_slice(&reply.payload);
            }
            Err(RequestError::Remote(error)) => {
                message.extend_from_slice(b"remote:");
                message.extend_from_slice(&serde_json::to_vec(&error).unwrap_or_default());
            }
            Err(e) => {
                message.extend_from_slice(e.code().as_bytes());
                message.push(b':');
                message.extend_from_slice(e.to_string().as_bytes());
            }
        }
        let channel = inner.keys.node(&from);
        if inner
            .queue
            .push(Pending::Send { channel, message })
            .is_err()
        {
            bump(&inner.link.counters.publish_failures);
        }
    });
}

/// The reply to a request this server sent.
pub(crate) fn answered(inner: &Inner, body: &[u8]) {
    let parsed = (|| {
        let (id, rest) = wire::split_field(body)?;
        let (outcome, payload) = wire::split_field(rest)?;
        Some((id.parse::<u64>().ok()?, outcome, payload))
    })();
    let Some((id, outcome, payload)) = parsed else {
        bump(&inner.link.counters.malformed);
        return;
    };
    let Some((waiter, timeout)) = inner.requests.waiting().remove(&id) else {
        return;
    };
    let text = || String::from_utf8_lossy(payload).into_owned();
    let result = match outcome {
        "json" | "postcard" => Ok(RawReply {
            codec: if outcome == "json" {
                Codec::Json
            } else {
                Codec::Postcard
            },
            payload: payload.to_vec().into(),
        }),
        "remote" => Err(match serde_json::from_slice::<ErrorReply>(payload) {
            Ok(error) => RequestError::Remote(error),
            Err(_) => RequestError::Unavailable(text()),
        }),
        "not-connected" => Err(RequestError::NotConnected),
        sente_lite::protocol::codes::DEADLINE_EXCEEDED => Err(RequestError::Timeout(timeout)),
        "closed" => Err(RequestError::Closed),
        _ => Err(RequestError::Unavailable(text())),
    };
    let _ = waiter.send(result);
}
