//! What a connection writes, and in which order.
//!
//! Two sources feed the socket: the shared outbound queue (events, publications,
//! requests that other parts of the program send) and the engine's own frames
//! (replies, pongs, pings, error reports). An own frame that answers something
//! goes out after whatever was queued before it, so the events a handler sent
//! before returning precede its reply; pings, pongs and error reports go out at
//! the next write. Both sources are bounded: the queue by its capacity, the own
//! frames by the engine, which stops reading and completing handlers while
//! they are over [`OWN_MESSAGES`] or [`OWN_BYTES`].

use std::collections::VecDeque;
use std::task::{Context, Poll, ready};

use futures_util::{Sink, SinkExt as _};
use tokio::time::Instant;
use tungstenite::Message;

use crate::OutboundReceiver;
use crate::bucket::TokenBucket;
use crate::stats::{Counters, add, bump};

/// Messages one write takes before it flushes.
const BATCH_MESSAGES: usize = 64;
/// Bytes one write takes before it flushes (the first message is always taken).
const BATCH_BYTES: usize = 256 << 10;
/// Own frames held before the engine waits for the socket to take them.
const OWN_MESSAGES: usize = 64;
/// Bytes of own frames held before the engine waits for the socket to take them.
const OWN_BYTES: usize = 1 << 20;

/// An own frame, and how many queued messages must be written before it.
struct Own {
    after: u64,
    message: Message,
    /// Nothing is written after this frame (`sl/close`).
    last: bool,
}

/// Keeps this side's data frames within the rate its peer announced: a token
/// bucket refilled at the peer's sustained rate, holding half the peer's
/// burst (the other half is margin for frames the network delivers bunched).
#[derive(Debug)]
pub(super) struct Pacer(TokenBucket);

impl Pacer {
    pub(super) fn new(per_sec: u32, burst: u32) -> Self {
        Self(TokenBucket::new(
            f64::from((burst / 2).max(1)),
            f64::from(per_sec.max(1)),
        ))
    }

    fn ready(&mut self, now: Instant) -> bool {
        self.0.tokens(now) >= 1.0
    }

    fn spend(&mut self) {
        self.0.spend(1.0);
    }

    /// When the next frame may go.
    fn next_at(&self) -> Instant {
        self.0.next_token_at()
    }
}

/// The write side of a connection.
#[derive(Default)]
pub(super) struct Writer {
    /// Taken for the write in progress, not yet handed to the socket.
    batch: VecDeque<Message>,
    /// Handed to the socket and not yet flushed.
    unflushed: bool,
    /// When the write in progress first waited for the socket (a write the
    /// socket takes at once never reads the clock).
    since: Option<Instant>,
    /// The engine's own frames, in order.
    own: VecDeque<Own>,
    own_bytes: usize,
    /// Messages taken from the queue so far.
    taken: u64,
    /// The pace the peer asked for, if any.
    pacer: Option<Pacer>,
    /// The last frame was taken: nothing more is written.
    sealed: bool,
    /// The loop was told that the pace holds a waiting message back (it
    /// arms its timer for the pace); cleared when a frame is sent.
    hold_reported: bool,
    /// Data frames this large or more go out compressed.
    compress: Option<super::Compress>,
}

impl Writer {
    /// Starts with `first` (a handshake, restored subscriptions), before
    /// anything else; paced by `pacer` when the peer announced a rate.
    pub(super) fn new(first: Vec<Message>, pacer: Option<Pacer>) -> Self {
        let mut writer = Self {
            pacer,
            ..Self::default()
        };
        for message in first {
            writer.push_now(message);
        }
        writer
    }

    /// Whether the pace allows another frame now.
    pub(super) fn may_send(&mut self) -> bool {
        self.pacer
            .as_mut()
            .is_none_or(|pacer| pacer.ready(Instant::now()))
    }

    /// When the pace allows the next frame, if it holds frames back now.
    pub(super) fn paced_until(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let pacer = self.pacer.as_mut()?;
        (!pacer.ready(now)).then(|| pacer.next_at())
    }

    fn spend(&mut self) {
        if let Some(pacer) = &mut self.pacer {
            pacer.spend();
        }
        self.hold_reported = false;
    }

    /// `true` the first time it is asked since the last frame was sent: the
    /// loop must hear once that the pace holds a message back.
    pub(super) fn hold_unreported(&mut self) -> bool {
        !std::mem::replace(&mut self.hold_reported, true)
    }

    /// Whether a write is in progress.
    pub(super) fn busy(&self) -> bool {
        !self.batch.is_empty() || self.unflushed
    }

    /// When the write in progress first waited for the socket.
    pub(super) fn busy_since(&self) -> Option<Instant> {
        self.since
    }

    /// Whether own frames may be added without waiting for the socket.
    pub(super) fn has_room(&self) -> bool {
        self.own.len() < OWN_MESSAGES && self.own_bytes < OWN_BYTES
    }

    /// Whether nothing of our own waits to be written.
    pub(super) fn own_is_empty(&self) -> bool {
        self.own.is_empty()
    }

    /// Adds a frame that goes out at the next write (a ping, a pong, an error report).
    pub(super) fn push_now(&mut self, message: Message) {
        self.push(0, message);
    }

    /// Adds a frame that goes out after everything queued now (a reply).
    pub(super) fn push_after_queue(&mut self, queue: &OutboundReceiver, message: Message) {
        let queued = queue.len() as u64;
        self.push(self.taken + queued, message);
    }

    /// Adds the last frame (`sl/close`): it goes out after everything queued
    /// now, and nothing goes out after it.
    pub(super) fn push_last(&mut self, queue: &OutboundReceiver, message: Message) {
        self.push_after_queue(queue, message);
        if let Some(own) = self.own.back_mut() {
            own.last = true;
        }
    }

    fn push(&mut self, after: u64, message: Message) {
        self.own_bytes += message.len();
        self.own.push_back(Own {
            after,
            message,
            last: false,
        });
    }

    /// Gives back the memory of the (empty) batch and own frames' queues: the
    /// connection is parked.
    pub(super) fn shrink(&mut self) {
        if self.batch.is_empty() {
            self.batch = VecDeque::new();
        }
        if self.own.is_empty() {
            self.own = VecDeque::new();
        }
    }

    /// Whether the last frame was taken (nothing more may be written).
    pub(super) fn sealed(&self) -> bool {
        self.sealed
    }

    /// Sends data frames of `compress.min_bytes` or more compressed from now on.
    pub(super) fn compress_with(&mut self, compress: super::Compress) {
        self.compress = Some(compress);
    }

    /// Whether frames are compressed.
    pub(super) fn compressing(&self) -> bool {
        self.compress.is_some()
    }

    /// Adds `message` to the write in progress, compressed if it should be,
    /// and counts it.
    fn add(&mut self, message: Message, counters: &Counters) {
        let message = match self.compress {
            Some(c) if message.len() >= c.min_bytes => {
                match crate::codec::compressed::compress(&message, c.level) {
                    Some(smaller) => {
                        bump(&counters.frames_compressed);
                        add(
                            &counters.compression_saved_bytes,
                            message.len() - smaller.len(),
                        );
                        smaller
                    }
                    None => message,
                }
            }
            _ => message,
        };
        Self::count(&message, counters);
        self.batch.push_back(message);
    }

    /// Records that `message` was taken from the queue, and starts a write with it.
    pub(super) fn start_with(&mut self, message: Message, counters: &Counters) {
        self.taken += 1;
        self.spend();
        self.add(message, counters);
    }

    /// Fills the next write from the own frames and the queue, in order. Returns
    /// whether a write is now in progress.
    pub(super) fn refill(&mut self, queue: &mut OutboundReceiver, counters: &Counters) -> bool {
        let mut bytes: usize = self.batch.iter().map(Message::len).sum();
        while !self.sealed
            && self.batch.len() < BATCH_MESSAGES
            && (bytes < BATCH_BYTES || self.batch.is_empty())
            && self.may_send()
        {
            let own_due = self.own.front().is_some_and(|own| own.after <= self.taken);
            let message = if own_due {
                self.pop_own()
            } else if let Some(message) = queue.try_recv() {
                self.taken += 1;
                Some(message)
            } else {
                // The queue is empty: every own frame is due.
                self.pop_own()
            };
            let Some(message) = message else { break };
            self.spend();
            bytes += message.len();
            self.add(message, counters);
        }
        self.busy()
    }

    /// Gives up everything not yet handed to the socket (closing a slow
    /// consumer); nothing more is written but the close frame.
    pub(super) fn abandon(&mut self) {
        self.batch.clear();
        self.own.clear();
        self.own_bytes = 0;
        self.sealed = true;
    }

    /// Moves every own frame into the write in progress (when closing).
    pub(super) fn take_all_own(&mut self, counters: &Counters) {
        while !self.sealed
            && let Some(message) = self.pop_own()
        {
            self.add(message, counters);
        }
    }

    fn pop_own(&mut self) -> Option<Message> {
        let own = self.own.pop_front()?;
        self.own_bytes -= own.message.len();
        if own.last {
            self.sealed = true;
            self.own.clear();
            self.own_bytes = 0;
        }
        Some(own.message)
    }

    fn count(message: &Message, counters: &Counters) {
        add(&counters.bytes_out, message.len());
        bump(&counters.messages_out);
    }

    /// Drives the write in progress: hands the batch to the socket, then flushes.
    /// Ready once all of it is flushed (or the socket failed).
    pub(super) fn poll_write<S>(
        &mut self,
        ws: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), tungstenite::Error>>
    where
        S: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let polled = self.poll_write_batch(ws, cx);
        if polled.is_pending() {
            self.since.get_or_insert_with(Instant::now);
        }
        polled
    }

    fn poll_write_batch<S>(
        &mut self,
        ws: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), tungstenite::Error>>
    where
        S: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        while !self.batch.is_empty() {
            ready!(ws.poll_ready_unpin(cx))?;
            let Some(message) = self.batch.pop_front() else {
                break;
            };
            ws.start_send_unpin(message)?;
            self.unflushed = true;
        }
        if self.unflushed {
            ready!(ws.poll_flush_unpin(cx))?;
            self.unflushed = false;
        }
        self.since = None;
        Poll::Ready(Ok(()))
    }
}
