//! Typed subscriptions: a [`Channel`] joined with [`Client::join`](super::Client::join),
//! its publications decoded into the channel's event enum and queued, bounded,
//! for the application to read.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use super::shared::{Shared, lock};
use crate::codec::{EventRef, Payload};
use crate::protocol::SubscribeReply;
use crate::{Channel, ChannelEvent, ProtocolError};

/// What a joined channel yields: its events, in the order the server sent
/// them, and what was missed.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelMessage<E> {
    /// A publication on the channel, decoded into the channel's event enum.
    Event(E),
    /// Publications were missed while the connection was down and the
    /// channel's history no longer held them (the subscribe answer that said
    /// so): reload what the channel's events build up before trusting them
    /// again. Also reported to [`ClientBuilder::on_gap`](super::ClientBuilder::on_gap).
    Gap(SubscribeReply),
    /// This subscription's queue was full ([`ClientBuilder::channel_queue`](super::ClientBuilder::channel_queue)):
    /// this many publications were dropped here, unread. The others of the
    /// channel's subscriptions and handlers are not affected.
    Lagged(u64),
}

/// One typed subscription's side of the client: takes the channel's
/// publications and gaps as they arrive.
pub(crate) trait Sink: Send + Sync {
    /// Decodes and queues a publication. `Ok(false)`: its event is not one
    /// the channel carries.
    fn deliver(&self, event: &EventRef<'_>, payload: Payload<'_>) -> Result<bool, ProtocolError>;
    /// Queues a gap.
    fn gap(&self, reply: &SubscribeReply);
    /// Ends the subscription: the reader gets what is queued, then `None`.
    fn close(&self);
}

/// One typed subscription, with its id.
type Entry = (u64, Arc<dyn Sink>);

/// The typed subscriptions of a client, by channel name.
#[derive(Default)]
pub(crate) struct Joins {
    next_id: u64,
    by_channel: HashMap<String, Vec<Entry>>,
}

impl Joins {
    /// Adds a subscription of `channel`; its id.
    pub(crate) fn add(&mut self, channel: &str, sink: Arc<dyn Sink>) -> u64 {
        self.next_id += 1;
        self.by_channel
            .entry(channel.to_owned())
            .or_default()
            .push((self.next_id, sink));
        self.next_id
    }

    /// Removes subscription `id` of `channel`; whether it was the last one.
    pub(crate) fn remove(&mut self, channel: &str, id: u64) -> bool {
        let Some(sinks) = self.by_channel.get_mut(channel) else {
            return false;
        };
        let before = sinks.len();
        sinks.retain(|(other, _)| *other != id);
        let removed = sinks.len() < before;
        if sinks.is_empty() {
            self.by_channel.remove(channel);
        }
        removed && !self.by_channel.contains_key(channel)
    }

    /// The subscriptions of `channel`.
    pub(crate) fn sinks(&self, channel: &str) -> Option<impl Iterator<Item = &dyn Sink>> {
        self.by_channel
            .get(channel)
            .map(|sinks| sinks.iter().map(|(_, sink)| &**sink))
    }

    /// Ends every subscription of `channel` (it was left), or of every
    /// channel (`None`: the client stopped).
    pub(crate) fn close(&mut self, channel: Option<&str>) {
        let closed: Vec<Vec<Entry>> = match channel {
            Some(channel) => self.by_channel.remove(channel).into_iter().collect(),
            None => self.by_channel.drain().map(|(_, sinks)| sinks).collect(),
        };
        for (_, sink) in closed.into_iter().flatten() {
            sink.close();
        }
    }
}

/// A bounded queue of one typed subscription: a count and a byte bound (the
/// publications' payload bytes as they came off the wire).
struct Mailbox<E> {
    state: Mutex<MailState<E>>,
    reader: AtomicWaker,
    capacity: usize,
    max_bytes: usize,
}

struct MailState<E> {
    items: VecDeque<(ChannelMessage<E>, usize)>,
    bytes: usize,
    closed: bool,
}

impl<E> Mailbox<E> {
    fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(MailState {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            reader: AtomicWaker::new(),
            capacity: capacity.max(1),
            max_bytes,
        }
    }

    /// Queues `message` of `size` bytes, or counts it dropped when the queue
    /// is full (an empty queue takes one message of any size).
    fn push(&self, message: ChannelMessage<E>, size: usize) {
        {
            let mut state = lock(&self.state);
            if state.closed {
                return;
            }
            let events = state.items.len();
            let full =
                events > 0 && (events >= self.capacity || state.bytes + size > self.max_bytes);
            let always = !matches!(message, ChannelMessage::Event(_));
            if full && !always {
                match state.items.back_mut() {
                    Some((ChannelMessage::Lagged(dropped), _)) => *dropped += 1,
                    _ => state.items.push_back((ChannelMessage::Lagged(1), 0)),
                }
            } else {
                state.bytes += size;
                state.items.push_back((message, size));
            }
        }
        self.reader.wake();
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.reader.wake();
    }

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<ChannelMessage<E>>> {
        let taken = |state: &mut MailState<E>| {
            state.items.pop_front().map(|(message, size)| {
                state.bytes -= size;
                message
            })
        };
        {
            let mut state = lock(&self.state);
            if let Some(message) = taken(&mut state) {
                return Poll::Ready(Some(message));
            }
            if state.closed {
                return Poll::Ready(None);
            }
        }
        self.reader.register(cx.waker());
        let mut state = lock(&self.state);
        match taken(&mut state) {
            Some(message) => Poll::Ready(Some(message)),
            None if state.closed => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

impl<E: ChannelEvent> Sink for Mailbox<E> {
    fn deliver(&self, event: &EventRef<'_>, payload: Payload<'_>) -> Result<bool, ProtocolError> {
        match E::decode(event, payload) {
            None => Ok(false),
            Some(Ok(decoded)) => {
                self.push(ChannelMessage::Event(decoded), payload.len());
                Ok(true)
            }
            Some(Err(error)) => Err(error),
        }
    }

    fn gap(&self, reply: &SubscribeReply) {
        self.push(ChannelMessage::Gap(reply.clone()), 0);
    }

    fn close(&self) {
        Mailbox::close(self);
    }
}

/// A typed channel joined with [`Client::join`](super::Client::join): the
/// channel's publications, decoded into its event enum, as a stream.
///
/// Read it with [`recv`](Self::recv) or as a `futures::Stream`. It ends
/// (`None`) when the channel is left ([`Joined::leave`],
/// [`Client::unsubscribe`](super::Client::unsubscribe)) or the client is
/// disconnected. The subscription is kept across reconnects as
/// [`Client::subscribe`](super::Client::subscribe) keeps it, resuming from the
/// last position seen; what could not be recovered comes as a
/// [`ChannelMessage::Gap`].
///
/// Dropping the last `Joined` of a channel leaves it (the server is told when
/// a connection is open).
pub struct Joined<C: Channel> {
    shared: Arc<Shared>,
    channel: C,
    name: String,
    id: u64,
    mailbox: Arc<Mailbox<C::Event>>,
    left: bool,
}

impl<C: Channel> Joined<C> {
    /// The channel joined.
    pub fn channel(&self) -> &C {
        &self.channel
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next event or gap, waiting for one; `None` once the subscription
    /// ended.
    pub async fn recv(&mut self) -> Option<ChannelMessage<C::Event>> {
        std::future::poll_fn(|cx| self.mailbox.poll_next(cx)).await
    }

    /// Leaves the channel, as [`Client::unsubscribe`](super::Client::unsubscribe)
    /// does when this is the client's last subscription of it, and waits for
    /// the server's answer when connected.
    pub async fn leave(mut self) -> Result<(), crate::RequestError> {
        self.left = true;
        let last = lock(&self.shared.joins).remove(&self.name, self.id);
        self.mailbox.close();
        if last {
            let timeout = self.shared.settings.request_timeout;
            self.shared.unsubscribe(self.name.clone(), timeout).await
        } else {
            Ok(())
        }
    }
}

impl<C: Channel> futures_util::Stream for Joined<C> {
    type Item = ChannelMessage<C::Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.mailbox.poll_next(cx)
    }
}

impl<C: Channel> Drop for Joined<C> {
    fn drop(&mut self) {
        if self.left {
            return;
        }
        let last = lock(&self.shared.joins).remove(&self.name, self.id);
        if !last {
            return;
        }
        // Best effort, as a dropped presence watch: without a runtime the
        // channel stays subscribed until the client stops.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = Arc::clone(&self.shared);
            let name = self.name.clone();
            runtime.spawn(async move {
                let timeout = shared.settings.request_timeout;
                let _ = shared.unsubscribe(name, timeout).await;
            });
        }
    }
}

impl<C: Channel + fmt::Debug> fmt::Debug for Joined<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Joined")
            .field("channel", &self.channel)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Joins typed channel `channel`: registers its queue, then subscribes.
    pub(crate) async fn join<C: Channel>(
        self: &Arc<Self>,
        channel: C,
    ) -> Result<Joined<C>, crate::RequestError> {
        let name = channel.name();
        let (capacity, max_bytes) = self.settings.channel_queue;
        let mailbox = Arc::new(Mailbox::<C::Event>::new(capacity, max_bytes));
        // Registered first: publications that come before the answer are kept.
        let id = lock(&self.joins).add(&name, Arc::clone(&mailbox) as Arc<dyn Sink>);
        let joined = Joined {
            shared: Arc::clone(self),
            channel,
            name,
            id,
            mailbox,
            left: false,
        };
        let timeout = self.settings.request_timeout;
        // On failure, dropping `joined` takes its queue out, and leaves the
        // channel when no other subscription of it wants it.
        self.subscribe(joined.name.clone(), timeout)
            .await
            .map(|_| joined)
    }

    /// Hands a publication on `channel` to its typed subscriptions; `None`
    /// when the channel has none (the router takes it then).
    pub(crate) fn deliver_joined(
        &self,
        channel: &str,
        event: &EventRef<'_>,
        payload: Payload<'_>,
    ) -> Option<Result<bool, ProtocolError>> {
        // Delivered under the lock: a queue's own lock never waits for it.
        let joins = lock(&self.joins);
        let sinks = joins.sinks(channel)?;
        let mut outcome = Ok(false);
        for sink in sinks {
            match sink.deliver(event, payload) {
                Ok(taken) => {
                    if let Ok(any) = &mut outcome {
                        *any |= taken;
                    }
                }
                Err(error) => outcome = Err(error),
            }
        }
        Some(outcome)
    }

    /// Tells `channel`'s typed subscriptions of a gap.
    pub(crate) fn gap_joined(&self, channel: &str, reply: &SubscribeReply) {
        if let Some(sinks) = lock(&self.joins).sinks(channel) {
            for sink in sinks {
                sink.gap(reply);
            }
        }
    }
}
