//! Channels across servers: this server's subscriptions to Redis channels,
//! publications arriving from Redis in order (a gap or a repeat is caught
//! here, never passed on), and recovery from the history kept in Redis.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use redis::Value;
use sente_lite::engine::{ChannelOptions, EngineError, Publication};
use sente_lite::protocol::StreamPosition;
use tokio::sync::{Notify, oneshot};

use crate::engine::Inner;
use crate::link::bump;
use crate::{scripts, wire};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The channels this server has subscribers of.
#[derive(Default)]
pub(crate) struct Streams {
    chans: Mutex<HashMap<Arc<str>, Chan>>,
    /// Channels whose Redis subscription may need to change.
    dirty: Mutex<HashSet<Arc<str>>>,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct Chan {
    /// Calls of `subscribe` not yet matched by `unsubscribe`.
    interest: usize,
    /// Subscribed on Redis, and the last publication delivered here known.
    on_redis: bool,
    /// An UNSUBSCRIBE is on its way.
    leaving: bool,
    waiters: Vec<oneshot::Sender<Result<(), EngineError>>>,
    /// The last publication delivered here (or the channel's position when
    /// this server subscribed).
    epoch: Option<Arc<str>>,
    offset: u64,
    /// Whether `epoch`/`offset` are the channel's position as read from
    /// Redis after subscribing (until then, publications are taken as they come).
    known: bool,
    /// The push link dropped: publications may have been missed.
    suspect: bool,
    /// A position read at a check that the live path must reach by the next one.
    expect: Option<u64>,
    /// Recoveries waiting for the live path to reach their position.
    reaching: Vec<(StreamPosition, oneshot::Sender<()>)>,
}

/// What to do with a publication that arrived.
enum Arrival {
    Deliver(Arc<str>),
    Repeat,
    Gap,
    Ignore,
}

impl Streams {
    /// This server has its first subscriber of `channel`.
    pub(crate) fn subscribe(&self, channel: &str) -> oneshot::Receiver<Result<(), EngineError>> {
        let (tx, rx) = oneshot::channel();
        let mut chans = lock(&self.chans);
        let name: Arc<str> = match chans.get_key_value(channel) {
            Some((name, _)) => Arc::clone(name),
            None => Arc::from(channel),
        };
        let chan = chans.entry(Arc::clone(&name)).or_default();
        chan.interest += 1;
        if chan.on_redis && !chan.leaving {
            let _ = tx.send(Ok(()));
        } else {
            chan.waiters.push(tx);
            drop(chans);
            self.touch(name);
        }
        rx
    }

    /// This server has no subscriber of `channel` any more.
    pub(crate) fn unsubscribe(&self, channel: &str) {
        let mut chans = lock(&self.chans);
        let Some((name, chan)) = named(&mut chans, channel) else {
            return;
        };
        chan.interest = chan.interest.saturating_sub(1);
        if chan.interest == 0 {
            drop(chans);
            self.touch(name);
        }
    }

    fn touch(&self, name: Arc<str>) {
        lock(&self.dirty).insert(name);
        self.notify.notify_one();
    }

    /// Marks `name` for the next round (the caller wakes the task).
    fn dirty_later(&self, name: &Arc<str>) {
        lock(&self.dirty).insert(Arc::clone(name));
    }

    /// The channels subscribed on Redis now.
    pub(crate) fn subscribed(&self) -> Vec<Arc<str>> {
        lock(&self.chans)
            .iter()
            .filter(|(_, c)| c.on_redis)
            .map(|(name, _)| Arc::clone(name))
            .collect()
    }

    /// Takes in a publication pushed by Redis on `channel`: `epoch:offset:packed`.
    pub(crate) fn arrived(&self, inner: &Inner, channel: &str, message: &[u8]) {
        let Some(node) = inner.node.get() else {
            return;
        };
        let parsed = wire::split_field(message).and_then(|(epoch, rest)| {
            let (offset, packed) = wire::split_field(rest)?;
            Some((epoch, offset.parse::<u64>().ok()?, packed))
        });
        let Some((epoch, offset, packed)) = parsed else {
            bump(&inner.link.counters.malformed);
            return;
        };
        let (name, arrival) = {
            let mut chans = lock(&self.chans);
            let Some((name, chan)) = named(&mut chans, channel) else {
                return;
            };
            (name, chan.arrive(epoch, offset))
        };
        match arrival {
            Arrival::Deliver(epoch) => {
                match wire::publication(&name, &epoch, offset, packed, Some(&inner.id)) {
                    Some(publication) => {
                        if let Err(e) = node.deliver(&Arc::new(publication), None) {
                            tracing::warn!(target: "sente_lite_redis", channel, error = %e, "a publication could not be framed for some subscribers");
                        }
                    }
                    None => bump(&inner.link.counters.malformed),
                }
            }
            Arrival::Repeat => bump(&inner.link.counters.duplicates),
            Arrival::Gap => {
                bump(&inner.link.counters.gaps);
                tracing::warn!(target: "sente_lite_redis", channel, epoch, offset, "publications were missed here: subscribers resubscribe");
                node.resubscribe(channel);
            }
            Arrival::Ignore => {}
        }
    }

    /// Waits until the publications of `channel` up to `position` have been
    /// delivered here (at most `limit`): a recovery read through the command
    /// link may be ahead of what the push link has brought, and what it
    /// replays must not arrive live again afterwards.
    pub(crate) async fn reach(
        &self,
        channel: &str,
        position: &StreamPosition,
        limit: std::time::Duration,
    ) {
        let rx = {
            let mut chans = lock(&self.chans);
            let Some(chan) = chans.get_mut(channel) else {
                return;
            };
            if !chan.on_redis || chan.has_reached(position) {
                return;
            }
            let (tx, rx) = oneshot::channel();
            chan.reaching.push((position.clone(), tx));
            rx
        };
        let _ = tokio::time::timeout(limit, rx).await;
    }

    /// The push link dropped: every channel may have missed publications.
    pub(crate) fn link_lost(&self) {
        for chan in lock(&self.chans).values_mut() {
            chan.suspect = true;
        }
    }

    /// After the links are up: compares each channel that may have missed
    /// publications with its position in Redis, and makes the subscribers of
    /// those that did resubscribe.
    pub(crate) async fn check(&self, inner: &Inner) -> Result<(), redis::RedisError> {
        let names: Vec<(Arc<str>, bool)> = lock(&self.chans)
            .iter()
            .filter(|(_, c)| c.on_redis && (c.suspect || c.expect.is_some()))
            .map(|(name, c)| (Arc::clone(name), c.suspect))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let mut commands = inner.link.commands();
        let mut gaps = Vec::new();
        for chunk in names.chunks(512) {
            let mut pipe = redis::pipe();
            for (name, _) in chunk {
                pipe.cmd("HMGET")
                    .arg(inner.keys.position(name))
                    .arg("epoch")
                    .arg("offset");
            }
            let positions: Vec<(Option<String>, Option<u64>)> =
                pipe.query_async(&mut commands).await?;
            let mut chans = lock(&self.chans);
            for ((name, suspect), (epoch, offset)) in chunk.iter().zip(positions) {
                let Some(chan) = chans.get_mut(name) else {
                    continue;
                };
                let now = epoch.map(|e| (e, offset.unwrap_or(0)));
                if chan.checked(*suspect, now) {
                    gaps.push(Arc::clone(name));
                }
                chan.wake_reached();
            }
        }
        if let Some(node) = inner.node.get() {
            for name in gaps {
                bump(&inner.link.counters.gaps);
                tracing::warn!(target: "sente_lite_redis", channel = %name, "publications were missed while Redis was away: subscribers resubscribe");
                node.resubscribe(&name);
            }
        }
        Ok(())
    }

    /// Keeps the positions of the channels subscribed here from expiring.
    pub(crate) async fn refresh(&self, inner: &Inner) -> Result<(), redis::RedisError> {
        let names = self.subscribed();
        let mut commands = inner.link.commands();
        let ms = millis(inner.config.retention);
        for chunk in names.chunks(512) {
            let mut pipe = redis::pipe();
            for name in chunk {
                pipe.cmd("PEXPIRE")
                    .arg(inner.keys.position(name))
                    .arg(ms)
                    .ignore();
            }
            pipe.query_async::<()>(&mut commands).await?;
        }
        Ok(())
    }
}

/// The channel `channel` with its shared name.
fn named<'a>(
    chans: &'a mut HashMap<Arc<str>, Chan>,
    channel: &str,
) -> Option<(Arc<str>, &'a mut Chan)> {
    let name = Arc::clone(chans.get_key_value(channel)?.0);
    let chan = chans.get_mut(&name)?;
    Some((name, chan))
}

impl Chan {
    fn has_reached(&self, position: &StreamPosition) -> bool {
        position.offset == 0
            || (self.epoch.as_deref() == Some(position.epoch.as_str())
                && self.offset >= position.offset)
    }

    fn wake_reached(&mut self) {
        if self.reaching.is_empty() {
            return;
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reaching)
            .into_iter()
            .partition(|(position, _)| self.has_reached(position));
        self.reaching = waiting;
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }

    fn arrive(&mut self, epoch: &str, offset: u64) -> Arrival {
        if self.interest == 0 && !self.on_redis {
            return Arrival::Ignore;
        }
        let same = self.epoch.as_deref() == Some(epoch);
        if same && offset <= self.offset {
            return Arrival::Repeat;
        }
        // Until the position is read from Redis after subscribing, what
        // arrives is taken as it comes: the server's subscribers start from
        // the position they were answered.
        let next = !self.known
            || (same && offset == self.offset + 1)
            || (self.epoch.is_none() && offset == 1);
        let epoch = match &self.epoch {
            Some(e) if same => Arc::clone(e),
            _ => Arc::from(epoch),
        };
        self.epoch = Some(Arc::clone(&epoch));
        self.offset = offset;
        if next {
            Arrival::Deliver(epoch)
        } else {
            self.wake_reached();
            Arrival::Gap
        }
    }

    /// Takes in the channel's position read at a check; whether publications
    /// were missed.
    fn checked(&mut self, suspect: bool, now: Option<(String, u64)>) -> bool {
        if suspect {
            self.suspect = false;
        }
        let Some((epoch, offset)) = now else {
            // Redis lost the channel: whoever holds a position of it missed.
            let lost = self.epoch.is_some();
            self.epoch = None;
            self.offset = 0;
            self.expect = None;
            return lost;
        };
        if self.epoch.as_deref() != Some(epoch.as_str()) {
            let lost = self.epoch.is_some() || offset > 0;
            self.epoch = Some(Arc::from(epoch));
            self.offset = offset;
            self.expect = None;
            return lost;
        }
        match self.expect.take() {
            // Published before the link came back and never arrived.
            Some(expected) if self.offset < expected => {
                self.offset = self.offset.max(offset);
                true
            }
            _ => {
                if suspect && offset > self.offset {
                    // May be on its way still: looked at again next time.
                    self.expect = Some(offset);
                }
                false
            }
        }
    }
}

/// Subscribes and unsubscribes on Redis as the channels' interest changes,
/// until the engine is dropped: what changed meanwhile goes in one command
/// each way (at most [`BATCH`] channels), and the new channels' positions in
/// one pipeline.
pub(crate) async fn run(engine: Weak<Inner>) {
    loop {
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let names: Vec<Arc<str>> = {
            let mut dirty = lock(&inner.streams.dirty);
            let names: Vec<Arc<str>> = dirty.iter().take(BATCH).cloned().collect();
            for name in &names {
                dirty.remove(name);
            }
            names
        };
        if names.is_empty() {
            // A wake-up given meanwhile is kept as a permit.
            let notify = Arc::clone(&inner.streams.notify);
            drop(inner);
            notify.notified().await;
            continue;
        }
        reconcile(&inner, names).await;
    }
}

/// The most channels subscribed or unsubscribed in one command.
const BATCH: usize = 1_000;

async fn reconcile(inner: &Inner, names: Vec<Arc<str>>) {
    let streams = &inner.streams;
    let (mut join, mut leave) = (Vec::new(), Vec::new());
    {
        let mut chans = lock(&streams.chans);
        for name in names {
            let Some(chan) = chans.get_mut(&name) else {
                continue;
            };
            match (chan.interest > 0, chan.on_redis) {
                (true, false) => join.push(name),
                (false, true) => {
                    chan.leaving = true;
                    leave.push(name);
                }
                (false, false) => {
                    chans.remove(&name);
                }
                (true, true) => {
                    for waiter in chan.waiters.drain(..) {
                        let _ = waiter.send(Ok(()));
                    }
                }
            }
        }
    }
    if !join.is_empty() {
        subscribe_all(inner, &join).await;
    }
    if !leave.is_empty() {
        unsubscribe_all(inner, &leave).await;
    }
}

/// Subscribes to `names` and reads their positions, then answers their waiters.
async fn subscribe_all(inner: &Inner, names: &[Arc<str>]) {
    let streams = &inner.streams;
    let redis_channels: Vec<String> = names.iter().map(|n| inner.keys.publications(n)).collect();
    let mut pushes = inner.link.pushes.clone();
    let positions = async {
        pushes.subscribe(&redis_channels).await?;
        let mut pipe = redis::pipe();
        for name in names {
            pipe.cmd("HMGET")
                .arg(inner.keys.position(name))
                .arg("epoch")
                .arg("offset");
        }
        let mut commands = inner.link.commands();
        pipe.query_async::<Vec<(Option<String>, Option<u64>)>>(&mut commands)
            .await
    }
    .await;
    let mut chans = lock(&streams.chans);
    match positions {
        Ok(positions) => {
            for (name, (epoch, offset)) in names.iter().zip(positions) {
                let Some(chan) = chans.get_mut(name) else {
                    continue;
                };
                chan.on_redis = true;
                let offset = offset.unwrap_or(0);
                let newer = chan.epoch.as_deref() == epoch.as_deref() && chan.offset > offset;
                if !newer {
                    chan.epoch = epoch.map(Arc::from);
                    chan.offset = offset;
                }
                chan.known = true;
                for waiter in chan.waiters.drain(..) {
                    let _ = waiter.send(Ok(()));
                }
                if chan.interest == 0 {
                    // Left meanwhile: unsubscribed on the next round.
                    streams.dirty_later(name);
                }
            }
        }
        Err(e) => {
            inner.link.mark_down(&e);
            for name in names {
                let Some(chan) = chans.get_mut(name) else {
                    continue;
                };
                let failed = chan.waiters.len();
                chan.interest = chan.interest.saturating_sub(failed);
                for waiter in chan.waiters.drain(..) {
                    let _ = waiter.send(Err(EngineError::Unavailable(format!(
                        "cannot subscribe on Redis: {e}"
                    ))));
                }
                if chan.interest == 0 {
                    chans.remove(name);
                }
            }
        }
    }
    drop(chans);
    streams.notify.notify_one();
}

/// Unsubscribes from `names`; those wanted again meanwhile are subscribed
/// again on the next round.
async fn unsubscribe_all(inner: &Inner, names: &[Arc<str>]) {
    let streams = &inner.streams;
    let redis_channels: Vec<String> = names.iter().map(|n| inner.keys.publications(n)).collect();
    let mut pushes = inner.link.pushes.clone();
    if let Err(e) = pushes.unsubscribe(&redis_channels).await {
        // The link is down: once back, it subscribes to what it still
        // tracks, and publications of a channel without subscribers here
        // are dropped.
        tracing::debug!(target: "sente_lite_redis", channels = names.len(), error = %e, "unsubscribe failed");
    }
    let mut chans = lock(&streams.chans);
    for name in names {
        match chans.get_mut(name) {
            Some(chan) if chan.interest > 0 => {
                chan.on_redis = false;
                chan.leaving = false;
                chan.known = false;
                streams.dirty_later(name);
            }
            Some(_) => {
                chans.remove(name);
            }
            None => {}
        }
    }
    drop(chans);
    streams.notify.notify_one();
}

/// `duration` in whole milliseconds, at least 1.
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Reads the answer of [`scripts::RECOVER`].
pub(crate) fn read_recovery(
    channel: &Arc<str>,
    value: Value,
) -> Result<(StreamPosition, bool, Vec<Arc<Publication>>), EngineError> {
    let bad =
        |what: &str| EngineError::Unavailable(format!("unexpected answer from Redis: {what}"));
    let Value::Array(items) = value else {
        return Err(bad("not an array"));
    };
    let mut items = items.into_iter();
    let epoch: String = items
        .next()
        .and_then(|v| redis::from_redis_value(v).ok())
        .ok_or_else(|| bad("no epoch"))?;
    let offset: u64 = items
        .next()
        .and_then(|v| redis::from_redis_value(v).ok())
        .ok_or_else(|| bad("no offset"))?;
    let found: u8 = items
        .next()
        .and_then(|v| redis::from_redis_value(v).ok())
        .ok_or_else(|| bad("no flag"))?;
    let epoch_arc: Arc<str> = Arc::from(epoch.as_str());
    let mut publications = Vec::new();
    for item in items {
        let entry: Vec<u8> = redis::from_redis_value(item).map_err(|_| bad("an entry"))?;
        let (offset, rest) = wire::split_field(&entry).ok_or_else(|| bad("an entry"))?;
        let (_at, packed) = wire::split_field(rest).ok_or_else(|| bad("an entry"))?;
        let offset: u64 = offset.parse().map_err(|_| bad("an entry's offset"))?;
        let publication = wire::publication(channel, &epoch_arc, offset, packed, None)
            .ok_or_else(|| bad("an entry's event"))?;
        publications.push(Arc::new(publication));
    }
    Ok((StreamPosition { epoch, offset }, found == 1, publications))
}

/// The [`Recovery`] for `since`, from Redis.
pub(crate) async fn recover(
    inner: &Inner,
    channel: &str,
    since: Option<&StreamPosition>,
    options: &ChannelOptions,
    all: bool,
) -> Result<(StreamPosition, Option<Vec<Arc<Publication>>>), EngineError> {
    let mut commands = inner.link.commands();
    let keeps = options.keeps_history();
    let value: Value = scripts::RECOVER
        .key(inner.keys.position(channel))
        .key(inner.keys.history(channel))
        .arg(crate::engine::new_epoch())
        .arg(millis(inner.config.retention.max(options.history_ttl)))
        .arg(millis(options.history_ttl))
        .arg(since.map_or("", |s| s.epoch.as_str()))
        .arg(since.map_or(0, |s| s.offset))
        .arg(if keeps { "1" } else { "0" })
        .arg(if all { "all" } else { "since" })
        .invoke_async(&mut commands)
        .await
        .map_err(|e| {
            inner.link.mark_down(&e);
            EngineError::Unavailable(format!("cannot read the channel from Redis: {e}"))
        })?;
    let name: Arc<str> = Arc::from(channel);
    let (position, found, publications) = read_recovery(&name, value)?;
    let recovered = (all || since.is_some()) && found;
    Ok((position, recovered.then_some(publications)))
}
