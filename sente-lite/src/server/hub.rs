//! The server's shared state: connections, users with presence, and channels.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::broadcast;
use tungstenite::Message;

use crate::connection::CloseSignal;
use crate::protocol::{ConnId, StreamPosition, SubscribeReply, UserId};
use crate::stats::Counters;
use crate::{Codec, Ctx, EncodeError, Event, RouteTable};

use super::config::ServerConfig;
use super::{ChannelAuth, Presence};

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One open connection, as the rest of the server sees it.
pub(crate) struct ConnEntry {
    pub(crate) ctx: Ctx,
    pub(crate) signal: Arc<CloseSignal>,
    pub(crate) channels: HashSet<String>,
    /// The connection's telemetry budget, made at its first batch.
    pub(crate) telemetry: Option<Arc<crate::telemetry::Budget>>,
}

#[derive(Default)]
struct UserEntry {
    conns: HashSet<ConnId>,
    /// Bumped whenever the user gains a connection; an offline timer that finds
    /// another generation than the one it started with does nothing.
    generation: u64,
    online: bool,
}

/// A channel: its subscribers and its stream position.
pub(crate) struct Channel {
    pub(crate) name: String,
    epoch: String,
    state: Mutex<ChannelState>,
}

struct ChannelState {
    offset: u64,
    subscribers: HashMap<ConnId, Ctx>,
}

impl Channel {
    fn position(state: &ChannelState, epoch: &str) -> StreamPosition {
        StreamPosition {
            epoch: epoch.to_owned(),
            offset: state.offset,
        }
    }
}

/// Encodes an event at most once per codec and shares the bytes.
pub(crate) struct Fanout<'a, E: Event> {
    event: &'a E,
    channel: Option<(&'a str, Option<&'a StreamPosition>)>,
    json: Option<Message>,
    postcard: Option<Message>,
}

impl<'a, E: Event> Fanout<'a, E> {
    pub(crate) fn event(event: &'a E) -> Self {
        Self {
            event,
            channel: None,
            json: None,
            postcard: None,
        }
    }

    fn publication(event: &'a E, channel: &'a str, position: Option<&'a StreamPosition>) -> Self {
        Self {
            event,
            channel: Some((channel, position)),
            json: None,
            postcard: None,
        }
    }

    pub(crate) fn message(&mut self, codec: Codec) -> Result<Message, EncodeError> {
        let slot = match codec {
            Codec::Json => &mut self.json,
            Codec::Postcard => &mut self.postcard,
        };
        if let Some(message) = slot {
            return Ok(message.clone());
        }
        let message = match self.channel {
            None => codec.encode_event(self.event)?,
            Some((channel, position)) => codec.encode_publication(channel, position, self.event)?,
        };
        *slot = Some(message.clone());
        Ok(message)
    }
}

/// Everything a server's connections share.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) routes: RouteTable,
    pub(crate) auth: Option<super::AuthHook>,
    pub(crate) channel_rules: Vec<(String, ChannelAuth)>,
    pub(crate) pages: HashMap<String, (String, bytes::Bytes)>,
    pub(crate) health_checks: Vec<(String, super::HealthCheck)>,
    pub(crate) state: crate::ctx::AppState,
    pub(crate) counters: Counters,
    pub(crate) next_conn: AtomicU64,
    pub(crate) draining: AtomicBool,
    pub(crate) conns: Mutex<HashMap<ConnId, ConnEntry>>,
    users: Mutex<HashMap<UserId, UserEntry>>,
    channels: RwLock<HashMap<String, Arc<Channel>>>,
    pub(crate) presence: broadcast::Sender<Presence>,
    pub(crate) closed: tokio::sync::Notify,
    pub(crate) stop_accepting: tokio::sync::Notify,
    pub(crate) local_addr: Mutex<Option<std::net::SocketAddr>>,
    pub(crate) requested_addr: Mutex<Option<String>>,
    pub(crate) secure: Mutex<bool>,
    /// Connections open per remote address (standalone listener).
    pub(crate) per_address: Arc<super::per_address::PerAddress>,
}

impl Shared {
    pub(crate) fn new(
        config: ServerConfig,
        routes: RouteTable,
        auth: Option<super::AuthHook>,
        channel_rules: Vec<(String, ChannelAuth)>,
        pages: HashMap<String, (String, bytes::Bytes)>,
        health_checks: Vec<(String, super::HealthCheck)>,
        state: crate::ctx::AppState,
    ) -> Self {
        let counters = Counters::for_routes(&routes);
        Self {
            health_checks,
            state,
            config,
            routes,
            auth,
            channel_rules,
            pages,
            counters,
            next_conn: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            channels: RwLock::new(HashMap::new()),
            presence: broadcast::channel(1024).0,
            closed: tokio::sync::Notify::new(),
            stop_accepting: tokio::sync::Notify::new(),
            local_addr: Mutex::new(None),
            requested_addr: Mutex::new(None),
            secure: Mutex::new(false),
            per_address: Arc::default(),
        }
    }

    pub(crate) fn register(&self, ctx: &Ctx, signal: Arc<CloseSignal>) {
        lock(&self.conns).insert(
            ctx.conn_id(),
            ConnEntry {
                ctx: ctx.clone(),
                signal,
                channels: HashSet::new(),
                telemetry: None,
            },
        );
        if let Some(user) = ctx.user_id() {
            let mut users = lock(&self.users);
            let entry = users.entry(user.clone()).or_default();
            entry.conns.insert(ctx.conn_id());
            entry.generation += 1;
            if !entry.online {
                entry.online = true;
                let _ = self.presence.send(Presence::Online(user.clone()));
            }
        }
    }

    /// Forgets a closed connection: its subscriptions, its user's entry (offline
    /// after the grace period), its waiting requests.
    pub(crate) fn unregister(self: &Arc<Self>, ctx: &Ctx) {
        let entry = lock(&self.conns).remove(&ctx.conn_id());
        if let Some(entry) = entry {
            for channel in &entry.channels {
                self.leave_channel(channel, ctx.conn_id());
            }
        }
        ctx.pending().fail_all();
        if let Some(user) = ctx.user_id() {
            let generation = {
                let mut users = lock(&self.users);
                let Some(entry) = users.get_mut(user) else {
                    return;
                };
                entry.conns.remove(&ctx.conn_id());
                if !entry.conns.is_empty() {
                    return;
                }
                entry.generation
            };
            let shared = Arc::clone(self);
            let user = user.clone();
            let grace = self.config.presence_grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let mut users = lock(&shared.users);
                if let Some(entry) = users.get(&user)
                    && entry.conns.is_empty()
                    && entry.generation == generation
                {
                    users.remove(&user);
                    let _ = shared.presence.send(Presence::Offline(user));
                }
            });
        }
    }

    pub(crate) fn ctx(&self, conn_id: ConnId) -> Option<Ctx> {
        lock(&self.conns).get(&conn_id).map(|e| e.ctx.clone())
    }

    pub(crate) fn conn_count(&self) -> usize {
        lock(&self.conns).len()
    }

    pub(crate) fn signals(&self) -> Vec<Arc<CloseSignal>> {
        lock(&self.conns)
            .values()
            .map(|e| Arc::clone(&e.signal))
            .collect()
    }

    pub(crate) fn user_conns(&self, user: &UserId) -> Vec<Ctx> {
        let ids: Vec<ConnId> = lock(&self.users)
            .get(user)
            .map(|e| e.conns.iter().copied().collect())
            .unwrap_or_default();
        let conns = lock(&self.conns);
        ids.iter()
            .filter_map(|id| conns.get(id).map(|e| e.ctx.clone()))
            .collect()
    }

    pub(crate) fn users_online(&self) -> Vec<UserId> {
        let mut users: Vec<UserId> = lock(&self.users)
            .iter()
            .filter(|(_, e)| !e.conns.is_empty())
            .map(|(u, _)| u.clone())
            .collect();
        users.sort();
        users
    }

    pub(crate) fn all_conns(&self) -> Vec<Ctx> {
        lock(&self.conns).values().map(|e| e.ctx.clone()).collect()
    }

    /// Adds a connection to a channel (no authorisation: callers check first).
    pub(crate) fn join_channel(
        &self,
        ctx: &Ctx,
        name: &str,
        since: Option<&StreamPosition>,
    ) -> Result<SubscribeReply, crate::ErrorReply> {
        let limits = &self.config.limits;
        if name.is_empty() || name.len() > limits.max_channel_name {
            return Err(crate::ErrorReply::new(
                crate::protocol::codes::FORBIDDEN,
                format!(
                    "a channel name is 1 to {} bytes long",
                    limits.max_channel_name
                ),
            ));
        }
        {
            let mut conns = lock(&self.conns);
            let Some(entry) = conns.get_mut(&ctx.conn_id()) else {
                return Err(crate::ErrorReply::new(
                    crate::protocol::codes::FORBIDDEN,
                    "the connection is closing",
                ));
            };
            if !entry.channels.contains(name) && entry.channels.len() >= limits.max_subscriptions {
                return Err(crate::ErrorReply::new(
                    crate::protocol::codes::FORBIDDEN,
                    format!(
                        "at most {} subscriptions per connection",
                        limits.max_subscriptions
                    ),
                ));
            }
            entry.channels.insert(name.to_owned());
        }
        let channel = {
            let read = self.channels.read().unwrap_or_else(PoisonError::into_inner);
            read.get(name).cloned()
        };
        let channel = channel.unwrap_or_else(|| {
            let mut write = self
                .channels
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(write.entry(name.to_owned()).or_insert_with(|| {
                Arc::new(Channel {
                    name: name.to_owned(),
                    epoch: format!("{:016x}", fastrand::u64(..)),
                    state: Mutex::new(ChannelState {
                        offset: 0,
                        subscribers: HashMap::new(),
                    }),
                })
            }))
        });
        let mut state = lock(&channel.state);
        state.subscribers.insert(ctx.conn_id(), ctx.clone());
        let position = Channel::position(&state, &channel.epoch);
        drop(state);
        // The connection may have closed meanwhile; its cleanup ran before this
        // insert, so undo it here rather than keep a dead subscriber.
        if !lock(&self.conns).contains_key(&ctx.conn_id()) {
            self.leave_channel(name, ctx.conn_id());
            return Err(crate::ErrorReply::new(
                crate::protocol::codes::FORBIDDEN,
                "the connection is closing",
            ));
        }
        // Nothing is replayed: a resume is complete only if nothing was missed.
        let recovered = since.is_some_and(|since| *since == position);
        Ok(SubscribeReply {
            position: Some(position),
            recovered,
        })
    }

    pub(crate) fn leave_channel(&self, name: &str, conn_id: ConnId) {
        let channel = {
            let read = self.channels.read().unwrap_or_else(PoisonError::into_inner);
            read.get(name).cloned()
        };
        let Some(channel) = channel else { return };
        let now_empty = {
            let mut state = lock(&channel.state);
            state.subscribers.remove(&conn_id);
            state.subscribers.is_empty()
        };
        if now_empty {
            let mut write = self
                .channels
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(current) = write.get(name)
                && Arc::ptr_eq(current, &channel)
                && lock(&channel.state).subscribers.is_empty()
            {
                write.remove(name);
            }
        }
    }

    pub(crate) fn forget_subscription(&self, conn_id: ConnId, name: &str) -> bool {
        let removed = lock(&self.conns)
            .get_mut(&conn_id)
            .is_some_and(|entry| entry.channels.remove(name));
        if removed {
            self.leave_channel(name, conn_id);
        }
        removed
    }

    /// Publishes on a channel: one encoding per codec, shared by every subscriber.
    /// Returns how many subscribers it was queued for.
    pub(crate) fn publish<E: Event>(&self, name: &str, event: &E) -> Result<usize, EncodeError> {
        let channel = {
            let read = self.channels.read().unwrap_or_else(PoisonError::into_inner);
            read.get(name).cloned()
        };
        let Some(channel) = channel else { return Ok(0) };
        // The lock orders publications: every subscriber queues them in offset order.
        let mut state = lock(&channel.state);
        state.offset += 1;
        let position = Channel::position(&state, &channel.epoch);
        let mut fanout = Fanout::publication(event, &channel.name, Some(&position));
        let mut delivered = 0;
        for ctx in state.subscribers.values() {
            if ctx.send_message(fanout.message(ctx.codec())?).is_ok() {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    pub(crate) fn channel_counts(&self) -> (u64, u64) {
        let channels = self.channels.read().unwrap_or_else(PoisonError::into_inner);
        let subs: usize = channels
            .values()
            .map(|c| lock(&c.state).subscribers.len())
            .sum();
        (channels.len() as u64, subs as u64)
    }

    pub(crate) fn channel_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    pub(crate) fn subscribers(&self, name: &str) -> Vec<(ConnId, Option<UserId>)> {
        let channel = {
            let read = self.channels.read().unwrap_or_else(PoisonError::into_inner);
            read.get(name).cloned()
        };
        let Some(channel) = channel else {
            return Vec::new();
        };
        let mut subs: Vec<(ConnId, Option<UserId>)> = lock(&channel.state)
            .subscribers
            .values()
            .map(|ctx| (ctx.conn_id(), ctx.user_id().cloned()))
            .collect();
        subs.sort();
        subs
    }

    pub(crate) fn queued_messages(&self) -> u64 {
        lock(&self.conns)
            .values()
            .map(|e| e.ctx.queued() as u64)
            .sum()
    }

    pub(crate) fn user_count(&self) -> u64 {
        lock(&self.users)
            .values()
            .filter(|e| !e.conns.is_empty())
            .count() as u64
    }

    pub(crate) fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }
}
