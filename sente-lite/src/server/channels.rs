//! This server's channel subscriptions: who is subscribed here, delivery of
//! the engine's publications to them, the resubscribe that replays what a
//! client missed, in order, once, and `sl/resub`, which ends subscriptions
//! that may have missed publications so that their clients resubscribe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tungstenite::Message;

use crate::codec::ControlFrames;
use crate::engine::{ChannelOptions, OutgoingEvent, Publication};
use crate::protocol::{
    ConnId, Control, PresenceMember, StreamPosition, SubscribeReply, UserId, codes,
};
use crate::{Ctx, EncodeError, ErrorReply};

use super::hub::{Shared, lock};
use crate::stats::{add, bump};

/// The channels with subscribers on this server.
#[derive(Default)]
pub(crate) struct Channels {
    map: RwLock<HashMap<Arc<str>, Arc<LocalChannel>>>,
}

/// One channel's subscribers here.
struct LocalChannel {
    options: Arc<ChannelOptions>,
    /// Set once the engine delivers this channel here.
    engine_ready: tokio::sync::OnceCell<()>,
    /// The engine was told this server left the channel (exactly once).
    engine_left: AtomicBool,
    state: std::sync::Mutex<LocalState>,
}

#[derive(Default)]
struct LocalState {
    subscribers: HashMap<ConnId, Subscriber>,
    /// No longer in the map: the last subscriber left.
    removed: bool,
}

struct Subscriber {
    ctx: Ctx,
    /// Publications held while the subscription catches up (its recovery is
    /// being read), released in order when it has.
    catching_up: Option<Held>,
    /// A resubscribe ended the subscription while it caught up: it takes no
    /// more publications, sends what it holds and `sl/resub`, and leaves
    /// instead of turning live.
    ended: bool,
}

/// What a subscriber catching up does next.
enum CatchUp {
    /// Sends these publications, held while it caught up, then looks again.
    Send(Vec<(Arc<Publication>, Message)>),
    /// Nothing is held: it is live.
    Live,
    /// Nothing is held and a resubscribe ended it: it leaves.
    Ended,
}

#[derive(Default)]
struct Held {
    publications: Vec<(Arc<Publication>, Message)>,
    bytes: usize,
    /// More arrived than the connection's outbound queue could have held.
    overflowed: bool,
}

/// `sl/resub` of channel `name`.
fn resub(name: &str) -> Control {
    Control::Resubscribe {
        channel: name.to_owned(),
    }
}

fn closing() -> ErrorReply {
    ErrorReply::new(codes::FORBIDDEN, "the connection is closing")
}

impl Channels {
    fn get(&self, name: &str) -> Option<Arc<LocalChannel>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Adds `ctx` to channel `name`, catching up; `None` when it was
    /// subscribed already.
    fn add(
        &self,
        ctx: &Ctx,
        name: &str,
        options: &Arc<ChannelOptions>,
    ) -> (Arc<LocalChannel>, bool) {
        loop {
            let channel = self.get(name).unwrap_or_else(|| {
                let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
                Arc::clone(map.entry(Arc::from(name)).or_insert_with(|| {
                    Arc::new(LocalChannel {
                        options: Arc::clone(options),
                        engine_ready: tokio::sync::OnceCell::new(),
                        engine_left: AtomicBool::new(false),
                        state: std::sync::Mutex::default(),
                    })
                }))
            });
            let mut state = lock(&channel.state);
            if state.removed {
                continue;
            }
            let new = !state.subscribers.contains_key(&ctx.conn_id());
            if new {
                state.subscribers.insert(
                    ctx.conn_id(),
                    Subscriber {
                        ctx: ctx.clone(),
                        catching_up: Some(Held::default()),
                        ended: false,
                    },
                );
            }
            drop(state);
            return (channel, new);
        }
    }

    /// Subscribes `ctx` to `name` (authorisation and bounds checked by the
    /// caller), replaying from `since` what the engine still has.
    pub(crate) async fn join(
        &self,
        shared: &Arc<Shared>,
        ctx: &Ctx,
        name: &str,
        since: Option<StreamPosition>,
    ) -> Result<SubscribeReply, ErrorReply> {
        let options = shared.channel_options(name);
        let conn = ctx.conn_id();
        let (channel, new) = self.add(ctx, name, &options);
        // The connection may have closed meanwhile; its cleanup ran before
        // this insert, so undo it here rather than keep a dead subscriber.
        if !shared.is_open(conn) {
            self.leave(shared, name, conn, None);
            return Err(closing());
        }
        let engine = &shared.engine;
        let ready = channel
            .engine_ready
            .get_or_try_init(|| engine.subscribe(name))
            .await;
        if ready.is_ok() && lock(&channel.state).removed {
            channel.tell_engine_left(shared, name);
        }
        let recovery = match ready {
            Ok(()) => engine.recover(name, since.as_ref(), &options).await,
            Err(e) => Err(e),
        };
        let recovery = match recovery {
            Ok(recovery) => recovery,
            Err(e) => {
                if new {
                    self.leave(shared, name, conn, None);
                }
                return Err(ErrorReply::new(codes::INTERNAL, e.to_string()));
            }
        };
        if !lock(&channel.state).subscribers.contains_key(&conn) {
            return Err(closing());
        }
        if !new {
            // Subscribed already (or catching up under an earlier `sl/sub`):
            // it stays as it is.
            let recovered = since.as_ref() == Some(&recovery.position);
            return Ok(SubscribeReply {
                position: Some(recovery.position),
                recovered,
            });
        }
        let epoch = recovery.position.epoch;
        let mut last = recovery.position.offset;
        let replay = recovery.publications.filter(|_| since.is_some());
        let recovered = replay.is_some();
        let counters = &shared.counters;
        if since.is_some() {
            bump(if recovered {
                &counters.resumes_recovered
            } else {
                &counters.resumes_not_recovered
            });
        }
        // The replay paces itself on the peer's reading (it may be larger
        // than the outbound queue); what is published meanwhile is held.
        let codec = ctx.codec();
        if let Some(replay) = replay {
            add(&counters.publications_replayed, replay.len());
            for publication in replay {
                match publication.message(codec, None) {
                    Ok(message) => {
                        if ctx.send_when_room(message).await.is_err() {
                            return Err(closing());
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target: "sente_lite", error = %e, "replay skipped a publication")
                    }
                }
            }
        }
        // Then what was held, batch by batch, only what the replay and the
        // position do not cover already, until none is left: then live.
        loop {
            let batch = match self.take_held(shared, &channel, ctx, name, conn, &options)? {
                CatchUp::Send(batch) => batch,
                CatchUp::Live => break,
                CatchUp::Ended => {
                    // Answered as it stands: the client subscribes again
                    // from there.
                    shared.forget_subscription(ctx, name);
                    let frame = ctx.codec().encode_control(&resub(name));
                    if ctx.send_when_room(frame).await.is_err() {
                        return Err(closing());
                    }
                    break;
                }
            };
            for (publication, message) in batch {
                if publication.epoch() == epoch && publication.offset() > last {
                    last = publication.offset();
                    if ctx.send_when_room(message).await.is_err() {
                        return Err(closing());
                    }
                }
            }
        }
        Ok(SubscribeReply {
            position: Some(StreamPosition {
                epoch,
                offset: last,
            }),
            recovered,
        })
    }

    /// The publications held for a subscriber catching up, taken; when none
    /// is left, the subscriber turns live (and joins the presence), unless a
    /// resubscribe ended it.
    fn take_held(
        &self,
        shared: &Shared,
        channel: &LocalChannel,
        ctx: &Ctx,
        name: &str,
        conn: ConnId,
        options: &ChannelOptions,
    ) -> Result<CatchUp, ErrorReply> {
        let mut state = lock(&channel.state);
        let Some(subscriber) = state.subscribers.get_mut(&conn) else {
            return Err(closing());
        };
        let held = subscriber
            .catching_up
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        if held.overflowed {
            drop(state);
            shared.slow_consumer(conn);
            return Err(closing());
        }
        if !held.publications.is_empty() {
            return Ok(CatchUp::Send(held.publications));
        }
        if subscriber.ended {
            return Ok(CatchUp::Ended);
        }
        subscriber.catching_up = None;
        // Joined under the channel's lock, as `leave` leaves under it: the
        // engine sees a connection's join and leave in their order.
        if options.presence
            && let Some(user) = ctx.user_id()
        {
            let member = PresenceMember {
                user_id: user.clone(),
                info: shared.presence_info(ctx, name),
            };
            shared.engine.presence_join(name, member, conn);
        }
        Ok(CatchUp::Live)
    }

    /// Removes connection `conn` from channel `name`; `user` leaves its
    /// presence (when the channel keeps one).
    pub(crate) fn leave(&self, shared: &Shared, name: &str, conn: ConnId, user: Option<&UserId>) {
        let Some(channel) = self.get(name) else {
            return;
        };
        let now_empty = {
            let mut state = lock(&channel.state);
            let removed = state.subscribers.remove(&conn);
            // A subscriber still catching up has not joined the presence yet.
            let joined = removed.is_some_and(|s| s.catching_up.is_none());
            if joined
                && channel.options.presence
                && let Some(user) = user
            {
                shared.engine.presence_leave(name, user, conn);
            }
            state.subscribers.is_empty()
        };
        if now_empty {
            let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
            let mut state = lock(&channel.state);
            let current = map.get(name).is_some_and(|c| Arc::ptr_eq(c, &channel));
            if current && state.subscribers.is_empty() && !state.removed {
                state.removed = true;
                map.remove(name);
                drop(state);
                drop(map);
                if channel.engine_ready.initialized() {
                    channel.tell_engine_left(shared, name);
                }
            }
        }
        shared.watchers.unwatch(name, conn);
    }

    /// Queues `publication` for this server's subscribers of its channel.
    pub(crate) fn deliver(
        &self,
        shared: &Shared,
        publication: &Arc<Publication>,
        event: Option<&OutgoingEvent<'_>>,
    ) -> Result<usize, EncodeError> {
        let Some(channel) = self.get(publication.channel()) else {
            return Ok(0);
        };
        let limits = &shared.config.limits;
        let mut state = lock(&channel.state);
        let mut delivered = 0;
        let mut failed = None;
        let excluded = publication.excluded();
        for (conn, subscriber) in &mut state.subscribers {
            if subscriber.ended || excluded == Some(*conn) {
                continue;
            }
            let message = match publication.message(subscriber.ctx.codec(), event) {
                Ok(message) => message,
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            };
            match &mut subscriber.catching_up {
                None => {
                    if subscriber.ctx.send_message(message).is_ok() {
                        delivered += 1;
                    }
                }
                Some(held) => {
                    held.bytes += message.len();
                    if held.publications.len() >= limits.outbound_queue
                        || held.bytes > limits.outbound_queue_bytes
                    {
                        held.overflowed = true;
                        held.publications.clear();
                    } else if !held.overflowed {
                        held.publications.push((Arc::clone(publication), message));
                        delivered += 1;
                    }
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(delivered),
        }
    }

    /// Ends every subscription to channel `name` on this server, because its
    /// subscribers may have missed publications, and has `sl/resub` sent for
    /// each, so that its client subscribes again from the position it holds.
    ///
    /// A live subscription leaves as `sl/unsub` leaves (its user's presence
    /// too, and the engine is told when it was the last) and `sl/resub` is
    /// queued at once: a connection whose queue is full closes as a slow
    /// consumer instead (its client subscribes again after reconnecting). One
    /// still catching up takes no more publications, sends what it holds and
    /// `sl/resub` at the pace of the peer's reading, then leaves and is
    /// answered. A presence watch of the channel ends with the subscription.
    /// Returns how many subscriptions were ended.
    pub(crate) fn resubscribe(&self, shared: &Shared, name: &str) -> usize {
        let Some(channel) = self.get(name) else {
            return 0;
        };
        let (live, catching_up) = {
            let mut state = lock(&channel.state);
            let mut live = Vec::new();
            let mut catching_up = 0;
            for subscriber in state.subscribers.values_mut() {
                if subscriber.catching_up.is_none() {
                    live.push(subscriber.ctx.clone());
                } else if !std::mem::replace(&mut subscriber.ended, true) {
                    catching_up += 1;
                }
            }
            (live, catching_up)
        };
        let control = resub(name);
        let mut frames = ControlFrames::new(&control);
        let mut told = catching_up;
        for ctx in live {
            // Left first, so that no publication follows the `sl/resub`.
            if !shared.forget_subscription(&ctx, name) {
                continue;
            }
            told += 1;
            if let Err(e) = ctx.send_message(frames.get(ctx.codec())) {
                tracing::debug!(target: "sente_lite", conn_id = %ctx.conn_id(), channel = name, error = %e, "`sl/resub` not queued");
            }
        }
        add(&shared.counters.resubscribes_requested, told);
        tracing::info!(target: "sente_lite", channel = name, subscriptions = told, "subscriptions ended: their clients subscribe again");
        told
    }

    pub(crate) fn counts(&self) -> (u64, u64) {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        let subscriptions: usize = map.values().map(|c| lock(&c.state).subscribers.len()).sum();
        (map.len() as u64, subscriptions as u64)
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .map(|name| name.to_string())
            .collect();
        names.sort();
        names
    }

    pub(crate) fn subscribers(&self, name: &str) -> Vec<(ConnId, Option<UserId>)> {
        let Some(channel) = self.get(name) else {
            return Vec::new();
        };
        let mut subscribers: Vec<(ConnId, Option<UserId>)> = lock(&channel.state)
            .subscribers
            .values()
            .map(|s| (s.ctx.conn_id(), s.ctx.user_id().cloned()))
            .collect();
        subscribers.sort();
        subscribers
    }
}

impl LocalChannel {
    fn tell_engine_left(&self, shared: &Shared, name: &str) {
        if !self.engine_left.swap(true, Ordering::AcqRel) {
            shared.engine.unsubscribe(name);
        }
    }
}
