//! The server's shared state: its connections and their users, its channel
//! subscriptions and presence watchers, and the engine behind them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

use crate::connection::CloseSignal;
use crate::engine::{ChannelOptions, Engine, OutgoingEvent};
use crate::protocol::{
    CloseReason, ConnId, PresenceSnapshot, StreamPosition, SubscribeReply, UserId, codes,
};
use crate::stats::Counters;
use crate::{Ctx, EncodeError, ErrorReply, RouteTable};

use super::channels::Channels;
use super::config::ServerConfig;
use super::watchers::Watchers;
use super::{ChannelAuth, Presence, PresenceInfo};

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

/// Everything a server's connections share.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) routes: RouteTable,
    pub(crate) auth: Option<super::AuthHook>,
    pub(crate) channel_rules: Vec<(super::ChannelMatch, ChannelAuth)>,
    pub(crate) pages: HashMap<String, (String, bytes::Bytes)>,
    pub(crate) health_checks: Vec<(String, super::HealthCheck)>,
    pub(crate) state: crate::ctx::AppState,
    pub(crate) counters: Counters,
    pub(crate) next_conn: AtomicU64,
    pub(crate) draining: AtomicBool,
    pub(crate) conns: Mutex<HashMap<ConnId, ConnEntry>>,
    /// This server's connections of each user.
    users: Mutex<HashMap<UserId, HashSet<ConnId>>>,
    pub(crate) channels: Channels,
    pub(crate) watchers: Watchers,
    pub(crate) engine: Arc<dyn Engine>,
    /// Channel patterns and their options, the first match deciding.
    channel_options: Vec<(super::ChannelMatch, Arc<ChannelOptions>)>,
    presence_info: Option<PresenceInfo>,
    /// Where admitted client telemetry goes.
    pub(crate) telemetry_sink: Arc<dyn crate::telemetry::TelemetrySink>,
    pub(crate) presence: broadcast::Sender<Presence>,
    pub(crate) closed: tokio::sync::Notify,
    pub(crate) stop_accepting: tokio::sync::Notify,
    pub(crate) local_addr: Mutex<Option<std::net::SocketAddr>>,
    pub(crate) requested_addr: Mutex<Option<String>>,
    pub(crate) secure: Mutex<bool>,
    /// Connections open per remote address (standalone listener).
    pub(crate) per_address: Arc<super::per_address::PerAddress>,
}

/// What a server is built from.
pub(crate) struct Setup {
    pub(crate) config: ServerConfig,
    pub(crate) routes: RouteTable,
    pub(crate) auth: Option<super::AuthHook>,
    pub(crate) channel_rules: Vec<(super::ChannelMatch, ChannelAuth)>,
    pub(crate) pages: HashMap<String, (String, bytes::Bytes)>,
    pub(crate) health_checks: Vec<(String, super::HealthCheck)>,
    pub(crate) state: crate::ctx::AppState,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) presence_info: Option<PresenceInfo>,
    pub(crate) telemetry_sink: Arc<dyn crate::telemetry::TelemetrySink>,
    /// The options of typed channels, after the configuration's patterns.
    pub(crate) typed_options: Vec<(super::ChannelMatch, ChannelOptions)>,
}

impl Shared {
    /// The server's shared state, its engine started.
    pub(crate) fn start(setup: Setup) -> Arc<Self> {
        let counters = Counters::for_routes(&setup.routes);
        let channel_options = setup
            .config
            .channels
            .iter()
            .map(|(pattern, options)| {
                (
                    super::ChannelMatch::Pattern(pattern.clone()),
                    Arc::new(options.clone()),
                )
            })
            .chain(
                setup
                    .typed_options
                    .into_iter()
                    .map(|(names, options)| (names, Arc::new(options))),
            )
            .collect();
        let shared = Arc::new(Self {
            health_checks: setup.health_checks,
            state: setup.state,
            config: setup.config,
            routes: setup.routes,
            auth: setup.auth,
            channel_rules: setup.channel_rules,
            pages: setup.pages,
            counters,
            next_conn: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            channels: Channels::default(),
            watchers: Watchers::default(),
            engine: setup.engine,
            channel_options,
            presence_info: setup.presence_info,
            telemetry_sink: setup.telemetry_sink,
            presence: broadcast::channel(1024).0,
            closed: tokio::sync::Notify::new(),
            stop_accepting: tokio::sync::Notify::new(),
            local_addr: Mutex::new(None),
            requested_addr: Mutex::new(None),
            secure: Mutex::new(false),
            per_address: Arc::default(),
        });
        shared.engine.start(crate::engine::Node::new(&shared));
        shared
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
            lock(&self.users)
                .entry(user.clone())
                .or_default()
                .insert(ctx.conn_id());
            self.engine.user_join(user, ctx.conn_id());
        }
    }

    /// Forgets a closed connection: its subscriptions and watches, its user's
    /// entry (offline after the grace period), its waiting requests.
    pub(crate) fn unregister(&self, ctx: &Ctx) {
        let entry = lock(&self.conns).remove(&ctx.conn_id());
        if let Some(entry) = entry {
            for channel in &entry.channels {
                self.channels
                    .leave(self, channel, ctx.conn_id(), ctx.user_id());
            }
        }
        ctx.pending().fail_all();
        if let Some(user) = ctx.user_id() {
            {
                let mut users = lock(&self.users);
                if let Some(conns) = users.get_mut(user) {
                    conns.remove(&ctx.conn_id());
                    if conns.is_empty() {
                        users.remove(user);
                    }
                }
            }
            self.engine.user_leave(user, ctx.conn_id());
        }
    }

    pub(crate) fn ctx(&self, conn_id: ConnId) -> Option<Ctx> {
        lock(&self.conns).get(&conn_id).map(|e| e.ctx.clone())
    }

    pub(crate) fn is_open(&self, conn_id: ConnId) -> bool {
        lock(&self.conns).contains_key(&conn_id)
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

    /// Marks connection `conn_id` a slow consumer (it closes with 4001).
    pub(crate) fn slow_consumer(&self, conn_id: ConnId) {
        if let Some(entry) = lock(&self.conns).get(&conn_id) {
            entry.signal.slow_consumer();
        }
    }

    /// The ids of this server's connections of `user`.
    fn user_conn_ids(&self, user: &UserId) -> Vec<ConnId> {
        lock(&self.users)
            .get(user)
            .map(|conns| conns.iter().copied().collect())
            .unwrap_or_default()
    }

    pub(crate) fn user_conns(&self, user: &UserId) -> Vec<Ctx> {
        let ids = self.user_conn_ids(user);
        let conns = lock(&self.conns);
        ids.iter()
            .filter_map(|id| conns.get(id).map(|e| e.ctx.clone()))
            .collect()
    }

    /// Sends `event` to this server's connections of `user`.
    pub(crate) fn send_to_user_here(
        &self,
        user: &UserId,
        event: &OutgoingEvent<'_>,
    ) -> Result<usize, EncodeError> {
        fan_out(self.user_conns(user), event)
    }

    /// Closes this server's connections of `user` gracefully; how many.
    pub(crate) fn disconnect_user_here(&self, user: &UserId, reason: &CloseReason) -> usize {
        let ids = self.user_conn_ids(user);
        let conns = lock(&self.conns);
        ids.iter()
            .filter_map(|id| conns.get(id))
            .map(|entry| entry.signal.close(reason.clone()))
            .count()
    }

    pub(crate) fn users_online(&self) -> Vec<UserId> {
        let mut users: Vec<UserId> = lock(&self.users).keys().cloned().collect();
        users.sort();
        users
    }

    pub(crate) fn all_conns(&self) -> Vec<Ctx> {
        lock(&self.conns).values().map(|e| e.ctx.clone()).collect()
    }

    /// The options of channel `name`: those of the first pattern that matches.
    pub(crate) fn channel_options(&self, name: &str) -> Arc<ChannelOptions> {
        static NONE: std::sync::LazyLock<Arc<ChannelOptions>> =
            std::sync::LazyLock::new(Arc::default);
        self.channel_options
            .iter()
            .find(|(pattern, _)| pattern.matches(name))
            .map_or_else(|| Arc::clone(&NONE), |(_, options)| Arc::clone(options))
    }

    /// What the application attaches to `ctx`'s user in `channel`'s presence.
    pub(crate) fn presence_info(&self, ctx: &Ctx, channel: &str) -> Option<serde_json::Value> {
        self.presence_info
            .as_ref()
            .and_then(|info| info(ctx, channel))
    }

    /// Adds a connection to a channel (no authorisation: callers check first),
    /// replaying what it missed since `since` when the engine still has it.
    pub(crate) async fn join_channel(
        self: &Arc<Self>,
        ctx: &Ctx,
        name: &str,
        since: Option<StreamPosition>,
    ) -> Result<SubscribeReply, ErrorReply> {
        let limits = &self.config.limits;
        if name.is_empty() || name.len() > limits.max_channel_name {
            return Err(ErrorReply::new(
                codes::FORBIDDEN,
                format!(
                    "a channel name is 1 to {} bytes long",
                    limits.max_channel_name
                ),
            ));
        }
        let added = {
            let mut conns = lock(&self.conns);
            let Some(entry) = conns.get_mut(&ctx.conn_id()) else {
                return Err(ErrorReply::new(
                    codes::FORBIDDEN,
                    "the connection is closing",
                ));
            };
            if !entry.channels.contains(name) && entry.channels.len() >= limits.max_subscriptions {
                return Err(ErrorReply::new(
                    codes::FORBIDDEN,
                    format!(
                        "at most {} subscriptions per connection",
                        limits.max_subscriptions
                    ),
                ));
            }
            entry.channels.insert(name.to_owned())
        };
        let joined = self.channels.join(self, ctx, name, since).await;
        if joined.is_err() && added {
            self.forget_subscription(ctx, name);
        }
        joined
    }

    /// Removes a connection from a channel. Returns whether it was subscribed.
    pub(crate) fn forget_subscription(&self, ctx: &Ctx, name: &str) -> bool {
        let removed = lock(&self.conns)
            .get_mut(&ctx.conn_id())
            .is_some_and(|entry| entry.channels.remove(name));
        if removed {
            self.channels
                .leave(self, name, ctx.conn_id(), ctx.user_id());
        }
        removed
    }

    /// Answers `sl/presence`: the channel's members, starting or stopping the
    /// connection's watch first (so that no change after the snapshot is missed).
    pub(crate) async fn presence_request(
        &self,
        ctx: &Ctx,
        channel: &str,
        watch: bool,
    ) -> Result<PresenceSnapshot, ErrorReply> {
        if !self.channel_options(channel).presence {
            return Err(ErrorReply::new(
                codes::FORBIDDEN,
                format!("channel `{channel}` keeps no presence"),
            ));
        }
        let subscribed = |shared: &Self| {
            lock(&shared.conns)
                .get(&ctx.conn_id())
                .is_some_and(|entry| entry.channels.contains(channel))
        };
        if !subscribed(self) {
            return Err(ErrorReply::new(
                codes::FORBIDDEN,
                format!("subscribe to `{channel}` before asking for its presence"),
            ));
        }
        if watch {
            self.watchers.watch(channel, ctx);
            // Unsubscribed meanwhile: its leave may have missed this watch.
            if !subscribed(self) {
                self.watchers.unwatch(channel, ctx.conn_id());
            }
        } else {
            self.watchers.unwatch(channel, ctx.conn_id());
        }
        let members = self
            .engine
            .presence(channel)
            .await
            .map_err(|e| ErrorReply::new(codes::INTERNAL, e.to_string()))?;
        Ok(PresenceSnapshot { members })
    }

    pub(crate) fn queued_messages(&self) -> u64 {
        lock(&self.conns)
            .values()
            .map(|e| e.ctx.queued() as u64)
            .sum()
    }

    pub(crate) fn user_count(&self) -> u64 {
        lock(&self.users).len() as u64
    }

    pub(crate) fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }
}

/// Sends `event` to each of `conns`, encoded once per codec.
pub(crate) fn fan_out(conns: Vec<Ctx>, event: &OutgoingEvent<'_>) -> Result<usize, EncodeError> {
    let mut delivered = 0;
    for ctx in conns {
        if ctx.send_message(event.message(ctx.codec())?).is_ok() {
            delivered += 1;
        }
    }
    Ok(delivered)
}
