//! The server: WebSocket endpoint, HTTP routes, connections, users, channels, shutdown.
//!
//! ```no_run
//! use sente_lite::{Router, Server};
//!
//! # async fn run() -> Result<(), sente_lite::server::ServerError> {
//! let server = Server::builder()
//!     .router(Router::new())
//!     .channel("room/*", sente_lite::server::allow_all)
//!     .bind("127.0.0.1:3000")
//!     .await?;
//! println!("listening on {}", server.ws_url());
//! server.closed().await;
//! # Ok(())
//! # }
//! ```

mod auth;
#[cfg(feature = "axum")]
mod axum;
mod builder;
mod channel_api;
mod channels;
mod config;
mod health;
mod http;
mod http_api;
pub(crate) mod hub;
#[cfg(feature = "jwt")]
pub mod jwt;
mod metrics;
mod per_address;
mod run;
mod service;
mod shutdown;
mod side;
mod upgraded;
mod watchers;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::broadcast;

pub use crate::engine::ChannelOptions;
pub use auth::{ChannelAccess, HandshakeRequest, Rejection, allow_all};
pub use builder::ServerBuilder;
#[cfg(unix)]
pub use builder::shared_listener;
pub use config::{
    CompressionConfig, HostPolicy, Limits, OriginPolicy, ServerConfig, TelemetryConfig,
};
pub use health::Health;
pub use http_api::HttpApiConfig;
pub use service::{RemoteAddr, ServerLayer, ServerService, ServiceFuture, WithServer};
pub use shutdown::Shutdown;

pub(crate) use auth::{AuthHook, ChannelAuth};
pub(crate) use health::HealthCheck;
pub(crate) use run::run_connection;

use crate::ctx::{Hub, HubFuture};
use crate::pending::RequestError;
use crate::protocol::{CloseReason, ConnId, SubscribeReply, UserId};
use crate::stats::StatsSnapshot;
use crate::{Ctx, EncodeError, OneWay, Request, RouterError, SendError};
use futures_util::FutureExt as _;

use crate::engine::{EngineError, OutgoingEvent};
use hub::Shared;

/// What the application attaches to a user in a channel's presence.
pub(crate) type PresenceInfo = Arc<dyn Fn(&Ctx, &str) -> Option<serde_json::Value> + Send + Sync>;

/// Whether channel pattern `pattern` (an exact name, or a prefix ending in
/// `*`) matches `channel`.
pub(crate) fn pattern_matches(pattern: &str, channel: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => pattern == channel,
    }
}

/// Which channel names a rule or an option applies to.
#[derive(Clone)]
pub(crate) enum ChannelMatch {
    /// An exact name, or a prefix ending in `*`.
    Pattern(String),
    /// The names of one typed channel: those its `parse` accepts.
    Typed(fn(&str) -> bool),
}

impl ChannelMatch {
    /// The names of typed channel `C`.
    pub(crate) fn typed<C: crate::Channel>() -> Self {
        Self::Typed(|name| C::parse(name).is_some())
    }

    /// Whether `channel` is one of the names.
    pub(crate) fn matches(&self, channel: &str) -> bool {
        match self {
            Self::Pattern(pattern) => pattern_matches(pattern, channel),
            Self::Typed(parses) => parses(channel),
        }
    }
}

/// A server could not be built or bound.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The router did not build (an event routed twice, a clash).
    #[error(transparent)]
    Router(#[from] RouterError),
    /// The TLS certificate or key could not be used.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A setting is out of its bounds (the message says which).
    #[error("invalid server setting: {0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A user came online (first connection) or went offline (last connection
/// closed and the grace period passed without a new one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// The user's first connection opened.
    Online(UserId),
    /// The user has had no connection for the whole grace period.
    Offline(UserId),
}

/// A running server. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr())
            .field("connections", &self.shared.conn_count())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *hub::lock(&self.shared.local_addr)
    }

    /// `ws://ADDR/PATH` of the bound server (`wss://` when it serves TLS).
    pub fn ws_url(&self) -> String {
        let addr = self
            .local_addr()
            .map_or_else(|| "unbound".to_owned(), |a| a.to_string());
        let scheme = if *hub::lock(&self.shared.secure) {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{addr}{}", self.shared.config.path)
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Sends a one-way event to one connection.
    pub fn send_to<E: OneWay>(&self, conn_id: ConnId, event: &E) -> Result<(), SendError> {
        match self.shared.ctx(conn_id) {
            Some(ctx) => ctx.send(event),
            None => Err(SendError::Closed { conn_id }),
        }
    }

    /// Sends a one-way event to every connection of `user` (every tab, every
    /// device, on every server of the engine), encoding once per codec.
    /// Returns how many connections of this server it was queued for.
    pub fn send_to_user<E: OneWay>(&self, user: &UserId, event: &E) -> Result<usize, EncodeError> {
        let event = OutgoingEvent::new(event);
        match self.shared.engine.send_to_user(user, &event).now_or_never() {
            Some(Err(EngineError::Encode(e))) => Err(e),
            Some(Ok(delivered)) => Ok(delivered),
            Some(Err(e)) => {
                tracing::warn!(target: "sente_lite", user = %user, error = %e, "send_to_user failed");
                Ok(0)
            }
            None => Ok(0),
        }
    }

    /// Sends a one-way event to every connection, encoding once per codec.
    pub fn send_to_all<E: OneWay>(&self, event: &E) -> Result<usize, EncodeError> {
        hub::fan_out(self.shared.all_conns(), &OutgoingEvent::new(event))
    }

    /// Closes connection `conn_id` gracefully: `reason` is sent as `sl/close`
    /// (its `reconnect_after_ms` tells the client when to come back; `None`
    /// leaves it to the client's backoff), running handlers may finish, then
    /// the WebSocket closes with 1001. Returns whether the connection was open.
    pub fn disconnect(&self, conn_id: ConnId, reason: CloseReason) -> bool {
        match hub::lock(&self.shared.conns).get(&conn_id) {
            Some(entry) => {
                entry.signal.close(reason);
                true
            }
            None => false,
        }
    }

    /// Closes every connection of `user`, on every server of the engine,
    /// gracefully with `reason` (each as [`Server::disconnect`] closes one):
    /// to sign a user out everywhere, or to make every device of theirs
    /// reconnect with fresh credentials. Returns how many connections of this
    /// server it closed.
    pub fn disconnect_user(&self, user: &UserId, reason: CloseReason) -> usize {
        match self
            .shared
            .engine
            .disconnect_user(user, &reason)
            .now_or_never()
        {
            Some(Ok(closed)) => closed,
            Some(Err(e)) => {
                tracing::warn!(target: "sente_lite", user = %user, error = %e, "disconnect_user failed");
                0
            }
            None => 0,
        }
    }

    /// Sends a request to a client connection and waits for its reply (at most
    /// the configured request timeout).
    pub async fn request<E: Request>(
        &self,
        conn_id: ConnId,
        request: &E,
    ) -> Result<E::Reply, RequestError> {
        match self.shared.ctx(conn_id) {
            Some(ctx) => ctx.request(request).await,
            None => Err(RequestError::Closed),
        }
    }

    /// Sends a request to one connection of `user` (on this server when it
    /// has one, else on another server of the engine) and waits for its reply
    /// (at most the configured request timeout).
    /// [`RequestError::NotConnected`] when the user has no open connection.
    pub async fn request_user<E: Request>(
        &self,
        user: &UserId,
        request: &E,
    ) -> Result<E::Reply, RequestError> {
        let event = OutgoingEvent::new(request);
        let reply =
            self.shared
                .engine
                .request_user(user, &event, self.shared.config.request_timeout);
        reply.await?.decode()
    }

    /// Users with at least one open connection, sorted.
    pub fn connected_users(&self) -> Vec<UserId> {
        self.shared.users_online()
    }

    /// The open connections of `user`.
    pub fn user_connections(&self, user: &UserId) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> = self
            .shared
            .user_conns(user)
            .iter()
            .map(Ctx::conn_id)
            .collect();
        ids.sort();
        ids
    }

    /// User online/offline notifications. The channel keeps the last 1024; a
    /// receiver that falls further behind gets `RecvError::Lagged` and goes on.
    pub fn presence(&self) -> broadcast::Receiver<Presence> {
        self.shared.presence.subscribe()
    }

    /// The server's counters.
    pub fn stats(&self) -> StatsSnapshot {
        let mut snapshot = self.shared.counters.snapshot();
        let (channels, subscriptions) = self.shared.channels.counts();
        snapshot.connections = self.shared.conn_count() as u64;
        snapshot.users = self.shared.user_count();
        snapshot.channels = channels;
        snapshot.subscriptions = subscriptions;
        snapshot.requested_addr = hub::lock(&self.shared.requested_addr).clone();
        snapshot.local_addr = self.local_addr().map(|a| a.to_string());
        snapshot
    }

    /// Every metric in the OpenMetrics text format, as served at `/metrics`.
    pub fn metrics_text(&self) -> String {
        metrics::render(&self.shared, self.stats())
    }

    /// Whether the server is draining (shutting down).
    pub fn is_draining(&self) -> bool {
        self.shared
            .draining
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Answers one HTTP request the way the standalone server does: the WebSocket
    /// endpoint, `/health`, and the pages. For mounting in another hyper-based
    /// stack; the request must carry hyper's upgrade extension.
    pub async fn handle_http<B>(
        &self,
        request: ::http::Request<B>,
        remote_addr: Option<SocketAddr>,
    ) -> ::http::Response<http_body_util::Full<bytes::Bytes>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        http::handle(request, Arc::clone(&self.shared), remote_addr).await
    }

    pub(crate) fn from_ctx(ctx: &Ctx) -> Option<Server> {
        ctx.hub()?.downcast_ref::<Server>().cloned()
    }

    /// The server's telemetry settings.
    pub(crate) fn telemetry_config(&self) -> &TelemetryConfig {
        &self.shared.config.telemetry
    }

    /// Where admitted client telemetry goes.
    pub(crate) fn telemetry_sink(&self) -> Arc<dyn crate::telemetry::TelemetrySink> {
        Arc::clone(&self.shared.telemetry_sink)
    }

    /// The telemetry budget of connection `conn_id`, made at its first use;
    /// `None` once the connection is closed.
    pub(crate) fn telemetry_budget(
        &self,
        conn_id: ConnId,
    ) -> Option<Arc<crate::telemetry::Budget>> {
        let mut conns = hub::lock(&self.shared.conns);
        let entry = conns.get_mut(&conn_id)?;
        let budget = entry.telemetry.get_or_insert_with(|| {
            Arc::new(crate::telemetry::Budget::new(&self.shared.config.telemetry))
        });
        Some(Arc::clone(budget))
    }

    /// Counts telemetry records logged and dropped.
    pub(crate) fn count_telemetry(&self, logged: usize, dropped: usize) {
        let counters = &self.shared.counters;
        crate::stats::add(&counters.telemetry_logged, logged);
        crate::stats::add(&counters.telemetry_dropped, dropped);
    }
}

impl Ctx {
    /// The server this connection belongs to, when the handler runs on a server.
    pub fn server(&self) -> Option<Server> {
        Server::from_ctx(self)
    }
}

impl Hub for Server {
    fn subscribe(&self, ctx: &Ctx, channel: String) -> HubFuture<SubscribeReply> {
        let shared = Arc::clone(&self.shared);
        let ctx = ctx.clone();
        Box::pin(async move {
            shared
                .join_channel(&ctx, &channel, None)
                .await
                .map_err(RequestError::Remote)
        })
    }

    fn unsubscribe(&self, ctx: &Ctx, channel: String) -> HubFuture<()> {
        self.shared.forget_subscription(ctx, &channel);
        Box::pin(async { Ok(()) })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
