//! The storage of a connection's bounded outbound queue.
//!
//! Many senders ([`Outbound`](crate::Outbound) handles), one receiver (the
//! connection's task). Unlike a channel that allocates its storage up front, the
//! queue holds no memory while it is empty and idle: most connections of a busy
//! server are idle at any moment, and a queue's first block would otherwise be a
//! fifth of each one's memory.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tungstenite::Message;

/// A queue emptied with more room than this gives the room back.
const KEEP_CAPACITY: usize = 64;

pub(crate) struct Queue {
    state: Mutex<State>,
    receiver: AtomicWaker,
    capacity: usize,
    max_bytes: usize,
    /// Senders waiting for room ([`Queue::push_when_room`]); told when the
    /// queue is half empty again.
    room: tokio::sync::Notify,
    room_wanted: AtomicBool,
    /// How many messages `state` holds, written under its lock: the receiver
    /// reads it without the lock to pass an empty queue by.
    queued: AtomicUsize,
    /// Whether no sender is left, written under the lock as `queued` is.
    orphaned: AtomicBool,
}

struct State {
    items: VecDeque<Message>,
    /// The bytes of the messages in `items`.
    bytes: usize,
    senders: usize,
    receiver_alive: bool,
}

/// Why a message was not queued.
pub(crate) enum PushError {
    /// The queue holds `capacity` messages, or the message would take it past
    /// `max_bytes`.
    Full,
    /// The receiver is gone.
    Closed,
}

impl Queue {
    /// A queue of `capacity` messages (at least 1) and `max_bytes` bytes, with
    /// one sender counted. A message is always taken into an empty queue, however
    /// large, so that one message never blocks a queue for good.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                senders: 1,
                receiver_alive: true,
            }),
            receiver: AtomicWaker::new(),
            capacity: capacity.max(1),
            max_bytes,
            room: tokio::sync::Notify::new(),
            room_wanted: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            orphaned: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Records how many messages `state` holds (see `queued`).
    fn count(&self, state: &State) {
        self.queued.store(state.items.len(), Ordering::Release);
    }

    pub(crate) fn push(&self, message: Message) -> Result<(), PushError> {
        self.push_or_return(message).map_err(|(error, _)| error)
    }

    /// [`Queue::push`], giving the message back when it is refused.
    fn push_or_return(&self, message: Message) -> Result<(), (PushError, Message)> {
        {
            let mut state = self.lock();
            if !state.receiver_alive {
                return Err((PushError::Closed, message));
            }
            let size = message.len();
            let over_bytes =
                !state.items.is_empty() && state.bytes.saturating_add(size) > self.max_bytes;
            if state.items.len() >= self.capacity || over_bytes {
                return Err((PushError::Full, message));
            }
            state.bytes += size;
            state.items.push_back(message);
            self.count(&state);
        }
        self.receiver.wake();
        Ok(())
    }

    /// Queues `message`, waiting while the queue is full (until it is half
    /// empty again) instead of refusing it: for a sender that paces itself on
    /// the reader, such as a replay. Fails only when the receiver is gone.
    pub(crate) async fn push_when_room(&self, mut message: Message) -> Result<(), PushError> {
        loop {
            let room = self.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            self.room_wanted.store(true, Ordering::SeqCst);
            match self.push_or_return(message) {
                Ok(()) => return Ok(()),
                Err((PushError::Closed, _)) => return Err(PushError::Closed),
                Err((PushError::Full, back)) => {
                    message = back;
                    room.await;
                }
            }
        }
    }

    /// After a message was taken: wakes the senders waiting for room once the
    /// queue is half empty (one relaxed load when none waits).
    fn taken(&self, state: &State) {
        if self.room_wanted.load(Ordering::Relaxed)
            && (state.items.len() <= self.capacity / 2 && state.bytes <= self.max_bytes / 2)
            && self.room_wanted.swap(false, Ordering::SeqCst)
        {
            self.room.notify_waiters();
        }
    }

    /// Counts one more sender.
    pub(crate) fn add_sender(&self) {
        let mut state = self.lock();
        state.senders += 1;
        self.orphaned.store(false, Ordering::Release);
    }

    /// Counts one sender less; the receiver learns when none is left.
    pub(crate) fn drop_sender(&self) {
        let last = {
            let mut state = self.lock();
            state.senders -= 1;
            self.orphaned.store(state.senders == 0, Ordering::Release);
            state.senders == 0
        };
        if last {
            self.receiver.wake();
        }
    }

    fn pop(state: &mut State) -> Option<Message> {
        let message = state.items.pop_front()?;
        state.bytes -= message.len();
        if state.items.is_empty() && state.items.capacity() > KEEP_CAPACITY {
            state.items = VecDeque::new();
        }
        Some(message)
    }
}

/// The receiving half of a connection's outbound queue (see
/// [`Outbound::channel`](crate::Outbound::channel)): the connection's task takes
/// the messages to send from it. Dropping it makes every send fail with
/// [`SendError::Closed`](crate::SendError::Closed).
pub struct OutboundReceiver {
    queue: Arc<Queue>,
}

impl OutboundReceiver {
    pub(crate) fn new(queue: Arc<Queue>) -> Self {
        Self { queue }
    }

    /// Waits for the next message; `None` once the queue is empty and every
    /// sender is gone.
    pub async fn recv(&mut self) -> Option<Message> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next message, or registers `cx` to be woken when one is queued;
    /// `Ready(None)` once the queue is empty and every sender is gone.
    pub(crate) fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Option<Message>> {
        // Registered before looking, so a message queued in between (or the
        // last sender gone) is not missed: it wakes the task. An empty queue
        // with senders is passed by without the lock.
        self.queue.receiver.register(cx.waker());
        if self.queue.len() == 0 && !self.queue.orphaned.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        let mut state = self.queue.lock();
        match Queue::pop(&mut state) {
            Some(message) => {
                self.queue.count(&state);
                self.queue.taken(&state);
                Poll::Ready(Some(message))
            }
            None if state.senders == 0 => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// `Ready` when a message waits, without taking it; otherwise registers
    /// `cx` to be woken when one is queued.
    pub(crate) fn poll_queued(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        self.queue.receiver.register(cx.waker());
        if self.queue.len() > 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Keeps only the queued messages for which `keep` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Message) -> bool) {
        let mut state = self.queue.lock();
        let State { items, bytes, .. } = &mut *state;
        items.retain(|message| {
            let kept = keep(message);
            if !kept {
                *bytes -= message.len();
            }
            kept
        });
        self.queue.count(&state);
    }

    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Option<Message> {
        // Nothing queued: no lock. A message queued just after this look is
        // there for the next call, as if it had come just after the lock.
        if self.queue.len() == 0 {
            return None;
        }
        let mut state = self.queue.lock();
        let message = Queue::pop(&mut state);
        self.queue.count(&state);
        self.queue.taken(&state);
        message
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for OutboundReceiver {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.receiver_alive = false;
        state.items = VecDeque::new();
        state.bytes = 0;
        self.queue.count(&state);
        drop(state);
        // Senders waiting for room learn that none will come.
        self.queue.room.notify_waiters();
    }
}

impl fmt::Debug for OutboundReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundReceiver")
            .field("len", &self.len())
            .field("capacity", &self.queue.capacity)
            .field("max_bytes", &self.queue.max_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use tungstenite::Message;

    use crate::protocol::ConnId;
    use crate::{Outbound, SendError};

    /// A waker that records being woken.
    #[derive(Default)]
    struct Woken(AtomicBool);

    impl Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_waiting_receiver_learns_of_the_last_sender_going() {
        let (tx, mut rx) = Outbound::channel(ConnId(3), 2);
        let second = tx.clone();
        let woken = Arc::new(Woken::default());
        let waker = Waker::from(Arc::clone(&woken));
        let mut cx = Context::from_waker(&waker);
        let mut waiting = std::pin::pin!(rx.recv());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        drop(tx);
        assert!(!woken.0.load(Ordering::SeqCst), "a sender is left");
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        drop(second);
        assert!(
            woken.0.load(Ordering::SeqCst),
            "the last sender's going woke it"
        );
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(None));
    }

    #[tokio::test]
    async fn bounded_woken_and_closed_both_ways() {
        let (tx, mut rx) = Outbound::channel(ConnId(1), 2);
        assert!(rx.try_recv().is_none());
        tx.try_send(Message::text("a")).unwrap();
        tx.clone().try_send(Message::text("b")).unwrap();
        assert!(matches!(
            tx.try_send(Message::text("c")),
            Err(SendError::QueueFull { capacity: 2, .. })
        ));
        assert_eq!((tx.len(), rx.len()), (2, 2));
        assert_eq!(rx.recv().await, Some(Message::text("a")));
        assert_eq!(rx.try_recv(), Some(Message::text("b")));

        // A waiting receiver is woken by a send, then takes the message.
        let woken = Arc::new(Woken::default());
        let waker = Waker::from(Arc::clone(&woken));
        let mut cx = Context::from_waker(&waker);
        {
            let mut waiting = std::pin::pin!(rx.recv());
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
            assert!(!woken.0.load(Ordering::SeqCst));
            tx.clone().try_send(Message::text("d")).unwrap();
            assert!(woken.0.load(Ordering::SeqCst), "the send woke the receiver");
            assert_eq!(
                waiting.as_mut().poll(&mut cx),
                Poll::Ready(Some(Message::text("d")))
            );
        }

        // Every sender gone: what is queued is still delivered, then `None`.
        tx.try_send(Message::text("e")).unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(Message::text("e")));
        assert_eq!(rx.recv().await, None);

        // The receiver gone: sends fail as closed.
        let (tx, rx) = Outbound::channel(ConnId(2), 2);
        drop(rx);
        assert!(matches!(
            tx.try_send(Message::text("x")),
            Err(SendError::Closed { conn_id: ConnId(2) })
        ));
    }

    #[tokio::test]
    async fn a_paced_send_waits_for_half_the_room_and_learns_of_a_close() {
        let (tx, mut rx) = Outbound::channel(ConnId(1), 4);
        for n in 0..4 {
            tx.try_send(Message::text(n.to_string())).unwrap();
        }
        let paced = tx.clone();
        let waiting = tokio::spawn(async move { paced.send_when_room(Message::text("4")).await });
        tokio::task::yield_now().await;
        rx.try_recv().unwrap();
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "three of four taken is not half empty"
        );
        rx.try_recv().unwrap();
        waiting.await.unwrap().unwrap();
        assert_eq!(rx.len(), 3);
        // Still full, the receiver goes: the waiting send fails as closed.
        tx.try_send(Message::text("5")).unwrap();
        let paced = tx.clone();
        let waiting = tokio::spawn(async move { paced.send_when_room(Message::text("6")).await });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(matches!(
            waiting.await.unwrap(),
            Err(SendError::Closed { conn_id: ConnId(1) })
        ));
    }

    #[test]
    fn an_emptied_queue_gives_its_room_back() {
        let (tx, mut rx) = Outbound::channel(ConnId(1), 1000);
        for n in 0..500 {
            tx.try_send(Message::text(n.to_string())).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert_eq!(rx.queue.lock().items.capacity(), 0);
        tx.try_send(Message::text("small")).unwrap();
        rx.try_recv().unwrap();
        assert!(rx.queue.lock().items.capacity() <= super::KEEP_CAPACITY);
    }
}
