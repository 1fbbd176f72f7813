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

#[cfg(feature = "axum")]
mod axum;
mod config;
mod http;
mod hub;
mod metrics;
mod per_address;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderMap, StatusCode, Uri};
use tokio::sync::broadcast;

pub use config::{HostPolicy, Limits, OriginPolicy, ServerConfig, TelemetryConfig};

use crate::connection::{self, CloseSignal, EngineConfig, Side};
use crate::ctx::{Hub, HubFuture};
use crate::pending::RequestError;
use crate::protocol::{
    CloseReason, ConnId, Control, Handshake, Heartbeat, StreamPosition, SubscribeReply, UserId,
    codes,
};
use crate::router::DispatchFuture;
use crate::stats::StatsSnapshot;
use crate::{
    Codec, Ctx, Dispatched, EncodeError, ErrorReply, Event, EventRef, NoReply, Outbound, Outcome,
    Payload, ProtocolError, Request, RouteTable, Router, RouterError, SendError,
};
use hub::{Fanout, Shared};

/// A server could not be built or bound.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The router did not build (an event routed twice, a clash).
    #[error(transparent)]
    Router(#[from] RouterError),
    /// The TLS certificate or key could not be used.
    #[error("TLS setup failed: {0}")]
    Tls(String),
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

/// What the authentication hook sees of an upgrade request.
#[derive(Debug, Clone)]
pub struct HandshakeRequest {
    /// The request's URI (path and query).
    pub uri: Uri,
    /// The request's headers (cookies, authorization, origin, ...).
    pub headers: HeaderMap,
    /// The peer's address, when known.
    pub remote_addr: Option<SocketAddr>,
}

impl HandshakeRequest {
    /// The first value of query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.uri.query()?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then(|| value.to_owned())
            })
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An upgrade refused by the authentication hook: the HTTP status and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status, typically 401 or 403.
    pub status: StatusCode,
    /// A short explanation, sent as the response body.
    pub message: String,
}

impl Rejection {
    /// 401 Unauthorized with `message`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    /// 403 Forbidden with `message`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(crate) type AuthHook =
    Arc<dyn Fn(HandshakeRequest) -> BoxFuture<Result<Option<UserId>, Rejection>> + Send + Sync>;

/// What a channel's authorisation hook sees.
#[derive(Debug, Clone)]
pub struct ChannelAccess {
    /// The connection asking.
    pub conn_id: ConnId,
    /// Its user, if authenticated.
    pub user_id: Option<UserId>,
    /// The channel it asks for.
    pub channel: String,
}

pub(crate) type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What `/health` answers: a status and the named checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// `ok`, `failing` (a check failed) or `draining` (shutting down).
    pub status: &'static str,
    /// Connections open now.
    pub connections: u64,
    /// Each check by name: `ok`, or the failure's message.
    pub checks: std::collections::BTreeMap<String, String>,
}

pub(crate) type ChannelAuth =
    Arc<dyn Fn(ChannelAccess) -> BoxFuture<Result<(), ErrorReply>> + Send + Sync>;

/// A channel authorisation that lets every connection in.
pub async fn allow_all(_access: ChannelAccess) -> Result<(), ErrorReply> {
    Ok(())
}

/// How [`Server::shutdown`] drains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    /// How long running handlers may take, and how long the whole drain may take
    /// before the remaining connections are dropped. Default 10 s.
    pub deadline: Duration,
    /// Connections told to go away at once. Default: all of them.
    pub batch_size: usize,
    /// Pause between batches. Default 0.
    pub batch_interval: Duration,
    /// Clients are asked to wait a random time up to this before reconnecting,
    /// so they do not all return in the same instant. Default 5 s.
    pub reconnect_spread: Duration,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            batch_size: usize::MAX,
            batch_interval: Duration::ZERO,
            reconnect_spread: Duration::from_secs(5),
        }
    }
}

/// Builds a [`Server`].
#[must_use = "a builder does nothing until `bind` or `build` is called"]
pub struct ServerBuilder {
    config: ServerConfig,
    router: Router,
    auth: Option<AuthHook>,
    channel_rules: Vec<(String, ChannelAuth)>,
    pages: HashMap<String, (String, bytes::Bytes)>,
    health_checks: Vec<(String, HealthCheck)>,
    state: crate::ctx::AppState,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl ServerBuilder {
    /// Serves `wss://` (and `https://` for `/health`, `/metrics` and pages) with
    /// this rustls configuration (feature `tls`).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Serves `wss://` with a certificate chain and private key read from PEM
    /// files (feature `tls`).
    #[cfg(feature = "tls")]
    pub fn tls_pem_files(
        self,
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> Result<Self, ServerError> {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let tls_error = |what: String| ServerError::Tls(what);
        let cert = cert.as_ref();
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| tls_error(format!("{}: {e}", cert.display())))?;
        let key = key.as_ref();
        let private = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| tls_error(format!("{}: {e}", key.display())))?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| tls_error(e.to_string()))?;
        Ok(self.tls(Arc::new(config)))
    }

    /// Makes `value` available to every handler as `ctx.state::<T>()` (one value
    /// per type; a second value of the same type replaces the first).
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Adds a named check to `/health`: `Ok(())` when healthy, or the reason it
    /// is not. A failing check makes `/health` answer 503 with status `failing`.
    /// Checks run on every request to `/health`: keep them cheap.
    pub fn health_check<F>(mut self, name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Result<(), String> + Send + Sync + 'static,
    {
        self.health_checks.push((name.into(), Arc::new(check)));
        self
    }

    /// Whether the server routes client telemetry ([`crate::telemetry`]) into its
    /// tracing output. Default on ([`TelemetryConfig::enabled`]).
    pub fn telemetry(mut self, enabled: bool) -> Self {
        self.config.telemetry.enabled = enabled;
        self
    }

    /// Replaces the telemetry settings: on or off, whether a user is required,
    /// the per-connection budget. Defaults on [`TelemetryConfig`].
    ///
    /// ```no_run
    /// use sente_lite::server::TelemetryConfig;
    ///
    /// let mut telemetry = TelemetryConfig::default();
    /// telemetry.records_per_sec = 10;
    /// telemetry.bytes_per_sec = 16 << 10;
    /// let builder = sente_lite::Server::builder().telemetry_config(telemetry);
    /// ```
    pub fn telemetry_config(mut self, config: TelemetryConfig) -> Self {
        self.config.telemetry = config;
        self
    }

    /// Whether only connections with an authenticated user (see
    /// [`ServerBuilder::auth`]) may send telemetry. Default off. On, a batch
    /// from an anonymous connection is refused with an `sl/error` frame of code
    /// `forbidden` and nothing of it is logged.
    pub fn telemetry_require_user(mut self, required: bool) -> Self {
        self.config.telemetry.require_user = required;
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Applies loaded [settings](crate::settings::ServerSettings): the
    /// configuration and, when given, the TLS files (which need the `tls`
    /// feature). Bind to `settings.addr` afterwards.
    pub fn settings(self, settings: &crate::settings::ServerSettings) -> Result<Self, ServerError> {
        let builder = self.config(settings.config.clone());
        match &settings.tls {
            None => Ok(builder),
            #[cfg(feature = "tls")]
            Some(files) => builder.tls_pem_files(&files.cert, &files.key),
            #[cfg(not(feature = "tls"))]
            Some(_) => Err(ServerError::Tls(
                "server.tls is set but this build has no `tls` feature".into(),
            )),
        }
    }

    /// Changes the configuration in place.
    pub fn configure(mut self, change: impl FnOnce(&mut ServerConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// The handlers of client events and requests.
    pub fn router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// The WebSocket endpoint's path (default `/ws`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.path = path.into();
        self
    }

    /// The authentication hook: sees each upgrade request and returns the
    /// connection's user (or `None` for an anonymous connection), or a
    /// [`Rejection`] with the HTTP status to answer. Without a hook every
    /// connection is anonymous.
    pub fn auth<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(HandshakeRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<UserId>, Rejection>> + Send + 'static,
    {
        self.auth = Some(Arc::new(move |req| Box::pin(hook(req))));
        self
    }

    /// Which browser origins may connect (default: same host only).
    pub fn origins(mut self, policy: OriginPolicy) -> Self {
        self.config.origins = policy;
        self
    }

    /// Allows subscriptions to channels matching `pattern` (an exact name, or a
    /// prefix ending in `*`, such as `room/*`; `*` alone matches every channel),
    /// when `authorize` says yes. Channels that match no pattern are refused
    /// (`forbidden`). The first matching pattern decides.
    pub fn channel<F, Fut>(mut self, pattern: impl Into<String>, authorize: F) -> Self
    where
        F: Fn(ChannelAccess) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ErrorReply>> + Send + 'static,
    {
        self.channel_rules.push((
            pattern.into(),
            Arc::new(move |access| Box::pin(authorize(access))),
        ));
        self
    }

    /// Serves `body` with `content_type` at `path` over plain HTTP (a page, a script).
    pub fn page(
        mut self,
        path: impl Into<String>,
        content_type: impl Into<String>,
        body: impl Into<bytes::Bytes>,
    ) -> Self {
        self.pages
            .insert(path.into(), (content_type.into(), body.into()));
        self
    }

    /// Builds the server without a listener, to mount it in another HTTP stack
    /// (see [`Server::handle_http`]).
    pub fn build(self) -> Result<Server, ServerError> {
        let router = if self.config.telemetry.enabled {
            self.router.handler(crate::telemetry::record_telemetry)
        } else {
            self.router
        };
        let routes = router.build()?;
        Ok(Server {
            shared: Arc::new(Shared::new(
                self.config,
                routes,
                self.auth,
                self.channel_rules,
                self.pages,
                self.health_checks,
                self.state,
            )),
        })
    }

    /// Builds the server and starts listening on `addr` (`"127.0.0.1:0"` picks a free port).
    pub async fn bind(self, addr: impl Into<String>) -> Result<Server, ServerError> {
        let addr = addr.into();
        #[cfg(feature = "tls")]
        let self_tls = self.tls.clone();
        let server = self.build()?;
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.clone(),
                source,
            })?;
        *hub::lock(&server.shared.requested_addr) = Some(addr);
        *hub::lock(&server.shared.local_addr) = listener.local_addr().ok();
        #[cfg(feature = "tls")]
        let acceptor = self_tls.map(tokio_rustls::TlsAcceptor::from);
        #[cfg(not(feature = "tls"))]
        let acceptor = None;
        *hub::lock(&server.shared.secure) = acceptor.is_some();
        tokio::spawn(http::accept_loop(
            listener,
            Arc::clone(&server.shared),
            acceptor,
        ));
        Ok(server)
    }
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
    /// A builder with the default [`ServerConfig`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: ServerConfig::default(),
            router: Router::new(),
            auth: None,
            channel_rules: Vec::new(),
            pages: HashMap::new(),
            health_checks: Vec::new(),
            state: crate::ctx::AppState::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

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
    pub fn send_to<E: Event<Reply = NoReply>>(
        &self,
        conn_id: ConnId,
        event: &E,
    ) -> Result<(), SendError> {
        match self.shared.ctx(conn_id) {
            Some(ctx) => ctx.send(event),
            None => Err(SendError::Closed { conn_id }),
        }
    }

    /// Sends a one-way event to every connection of `user` (every tab, every
    /// device), encoding once per codec. Returns how many connections it was
    /// queued for.
    pub fn send_to_user<E: Event<Reply = NoReply>>(
        &self,
        user: &UserId,
        event: &E,
    ) -> Result<usize, EncodeError> {
        fan_out(self.shared.user_conns(user), event)
    }

    /// Sends a one-way event to every connection, encoding once per codec.
    pub fn send_to_all<E: Event<Reply = NoReply>>(&self, event: &E) -> Result<usize, EncodeError> {
        fan_out(self.shared.all_conns(), event)
    }

    /// Publishes a one-way event on `channel`: encoded once per codec, the bytes
    /// shared by every subscriber. Returns how many subscribers it was queued for.
    pub fn broadcast<E: Event<Reply = NoReply>>(
        &self,
        channel: &str,
        event: &E,
    ) -> Result<usize, EncodeError> {
        self.shared.publish(channel, event)
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

    /// Subscribes a connection to a channel, without the channel's authorisation
    /// (the server trusts itself).
    pub fn subscribe(&self, conn_id: ConnId, channel: &str) -> Result<SubscribeReply, ErrorReply> {
        let ctx = self
            .shared
            .ctx(conn_id)
            .ok_or_else(|| ErrorReply::new(codes::FORBIDDEN, "no such connection"))?;
        self.shared.join_channel(&ctx, channel, None)
    }

    /// Removes a connection from a channel. Returns whether it was subscribed.
    pub fn unsubscribe(&self, conn_id: ConnId, channel: &str) -> bool {
        self.shared.forget_subscription(conn_id, channel)
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

    /// Channels with at least one subscriber, sorted.
    pub fn channels(&self) -> Vec<String> {
        self.shared.channel_names()
    }

    /// The connections subscribed to `channel`, with their users, sorted by connection id.
    pub fn subscribers(&self, channel: &str) -> Vec<(ConnId, Option<UserId>)> {
        self.shared.subscribers(channel)
    }

    /// User online/offline notifications. The channel keeps the last 1024; a
    /// receiver that falls further behind gets `RecvError::Lagged` and goes on.
    pub fn presence(&self) -> broadcast::Receiver<Presence> {
        self.shared.presence.subscribe()
    }

    /// The server's counters.
    pub fn stats(&self) -> StatsSnapshot {
        let mut snapshot = self.shared.counters.snapshot();
        let (channels, subscriptions) = self.shared.channel_counts();
        snapshot.connections = self.shared.conn_count() as u64;
        snapshot.users = self.shared.user_count();
        snapshot.channels = channels;
        snapshot.subscriptions = subscriptions;
        snapshot.requested_addr = hub::lock(&self.shared.requested_addr).clone();
        snapshot.local_addr = self.local_addr().map(|a| a.to_string());
        snapshot
    }

    /// The server's health, as served at `/health`.
    pub fn health(&self) -> Health {
        let checks: std::collections::BTreeMap<String, String> = self
            .shared
            .health_checks
            .iter()
            .map(|(name, check)| (name.clone(), check().err().unwrap_or_else(|| "ok".into())))
            .collect();
        let status = if self.is_draining() {
            "draining"
        } else if checks.values().any(|v| v != "ok") {
            "failing"
        } else {
            "ok"
        };
        Health {
            status,
            connections: self.shared.conn_count() as u64,
            checks,
        }
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
    pub async fn handle_http<B: Send + 'static>(
        &self,
        request: ::http::Request<B>,
        remote_addr: Option<SocketAddr>,
    ) -> ::http::Response<http_body_util::Full<bytes::Bytes>> {
        http::handle(request, Arc::clone(&self.shared), remote_addr).await
    }

    /// Shuts down gracefully: stops accepting, tells clients to go away (`sl/close`
    /// with a spread-out `reconnect_after_ms`, then close 1001) in batches, lets
    /// running handlers finish up to the deadline, then drops what is left.
    pub async fn shutdown(&self, options: Shutdown) {
        let shared = &self.shared;
        shared
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        shared.stop_accepting.notify_waiters();
        let started = tokio::time::Instant::now();
        let signals = shared.signals();
        let spread = u32::try_from(options.reconnect_spread.as_millis()).unwrap_or(u32::MAX);
        for (i, batch) in signals.chunks(options.batch_size.max(1)).enumerate() {
            if i > 0 && !options.batch_interval.is_zero() {
                tokio::time::sleep(options.batch_interval).await;
            }
            for signal in batch {
                signal.close(CloseReason {
                    code: "going-away".into(),
                    message: "server shutting down".into(),
                    reconnect_after_ms: Some(if spread == 0 {
                        0
                    } else {
                        fastrand::u32(0..=spread)
                    }),
                });
            }
        }
        let wait_closed = async {
            while shared.conn_count() > 0 {
                let notified = shared.closed.notified();
                if shared.conn_count() == 0 {
                    break;
                }
                notified.await;
            }
        };
        let left = options.deadline.saturating_sub(started.elapsed());
        let _ = tokio::time::timeout(left + Duration::from_secs(1), wait_closed).await;
        tracing::info!(target: "sente_lite", remaining = shared.conn_count(), "server shut down");
    }

    /// Waits for SIGTERM or Ctrl-C (SIGINT), then shuts down gracefully with
    /// `options`. The usual last line of a server's `main`.
    pub async fn shutdown_on_signal(&self, options: Shutdown) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => tracing::info!(target: "sente_lite", "SIGTERM: draining"),
                result = tokio::signal::ctrl_c() => {
                    result?;
                    tracing::info!(target: "sente_lite", "interrupt: draining");
                }
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await?;
        self.shutdown(options).await;
        Ok(())
    }

    /// Resolves when the server has shut down and every connection is closed.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.closed.notified();
            if self.is_draining() && self.shared.conn_count() == 0 {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn from_ctx(ctx: &Ctx) -> Option<Server> {
        ctx.hub()?.downcast_ref::<Server>().cloned()
    }

    /// The server's telemetry settings.
    pub(crate) fn telemetry_config(&self) -> &TelemetryConfig {
        &self.shared.config.telemetry
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

fn fan_out<E: Event>(conns: Vec<Ctx>, event: &E) -> Result<usize, EncodeError> {
    let mut fanout = Fanout::event(event);
    let mut delivered = 0;
    for ctx in conns {
        if ctx.send_message(fanout.message(ctx.codec())?).is_ok() {
            delivered += 1;
        }
    }
    Ok(delivered)
}

impl Ctx {
    /// The server this connection belongs to, when the handler runs on a server.
    pub fn server(&self) -> Option<Server> {
        Server::from_ctx(self)
    }
}

impl Hub for Server {
    fn subscribe(&self, ctx: &Ctx, channel: String) -> HubFuture<SubscribeReply> {
        let result = self
            .shared
            .join_channel(ctx, &channel, None)
            .map_err(RequestError::Remote);
        Box::pin(async move { result })
    }

    fn unsubscribe(&self, ctx: &Ctx, channel: String) -> HubFuture<()> {
        self.shared.forget_subscription(ctx.conn_id(), &channel);
        Box::pin(async { Ok(()) })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The server's side of a connection: it accepts subscribe and unsubscribe,
/// and refuses what only servers send.
struct ServerSide {
    shared: Arc<Shared>,
}

fn pattern_matches(pattern: &str, channel: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => pattern == channel,
    }
}

impl Side for ServerSide {
    fn control(
        &mut self,
        ctx: &Ctx,
        control: Control,
    ) -> Result<Option<DispatchFuture>, ProtocolError> {
        let codec = ctx.codec();
        match control {
            Control::Subscribe {
                req_id,
                channel,
                since,
            } => {
                // A name out of bounds is refused before any hook sees it.
                let max = self.shared.config.limits.max_channel_name;
                let rule = if channel.is_empty() || channel.len() > max {
                    None
                } else {
                    self.shared
                        .channel_rules
                        .iter()
                        .find(|(pattern, _)| pattern_matches(pattern, &channel))
                        .map(|(_, auth)| Arc::clone(auth))
                };
                let shared = Arc::clone(&self.shared);
                let ctx = ctx.clone();
                Ok(Some(Box::pin(async move {
                    let result = match rule {
                        None if channel.is_empty() || channel.len() > max => Err(ErrorReply::new(
                            codes::FORBIDDEN,
                            format!("a channel name is 1 to {max} bytes long"),
                        )),
                        None => Err(ErrorReply::new(
                            codes::FORBIDDEN,
                            format!("no channel pattern of this server matches `{channel}`"),
                        )),
                        Some(authorize) => match authorize(ChannelAccess {
                            conn_id: ctx.conn_id(),
                            user_id: ctx.user_id().cloned(),
                            channel: channel.clone(),
                        })
                        .await
                        {
                            Ok(()) => shared.join_channel(&ctx, &channel, since.as_ref()),
                            Err(err) => Err(err),
                        },
                    };
                    reply_message(codec, req_id, result)
                })))
            }
            Control::Unsubscribe { req_id, channel } => {
                self.shared.forget_subscription(ctx.conn_id(), &channel);
                let reply = codec.encode_reply(req_id, &());
                Ok(Some(Box::pin(async move {
                    Dispatched {
                        message: reply.ok(),
                        outcome: Outcome::Ok,
                        timing: None,
                    }
                })))
            }
            Control::Handshake(_) => Err(ProtocolError::BadFrame {
                encoding: codec.name(),
                detail: "only a server sends `sl/handshake`".into(),
            }),
            other => Err(ProtocolError::BadFrame {
                encoding: codec.name(),
                detail: format!("unexpected control frame {other:?}"),
            }),
        }
    }

    fn publication(
        &mut self,
        ctx: &Ctx,
        _routes: &RouteTable,
        _channel: std::borrow::Cow<'_, str>,
        _event: EventRef<'_>,
        _position: Option<StreamPosition>,
        _payload: Payload<'_>,
    ) -> Result<Option<DispatchFuture>, ProtocolError> {
        Err(ProtocolError::BadFrame {
            encoding: ctx.codec().name(),
            detail: "clients do not publish: send an event and let a handler broadcast".into(),
        })
    }
}

fn reply_message<T: serde::Serialize>(
    codec: Codec,
    req_id: u64,
    result: Result<T, ErrorReply>,
) -> Dispatched {
    match result {
        Ok(value) => Dispatched {
            message: Some(codec.encode_reply(req_id, &value).unwrap_or_else(|e| {
                codec.encode_error_reply(req_id, &ErrorReply::new(codes::INTERNAL, e.to_string()))
            })),
            outcome: Outcome::Ok,
            timing: None,
        },
        Err(err) => Dispatched {
            outcome: Outcome::Error(err.code.to_string()),
            message: Some(codec.encode_error_reply(req_id, &err)),
            timing: None,
        },
    }
}

/// Runs an upgraded connection until it closes, then forgets it.
///
/// The setup runs now, synchronously; the returned future holds only what the
/// connection needs while it is open (it is the bulk of an idle connection's
/// memory, so nothing is kept in it twice).
pub(crate) fn run_connection<S>(
    ws: S,
    shared: Arc<Shared>,
    codec: Codec,
    user_id: Option<UserId>,
    remote_addr: Option<SocketAddr>,
) -> impl Future<Output = ()> + Send + 'static
where
    S: connection::Transport + 'static,
{
    use tracing::Instrument as _;

    let conn_id = shared.next_conn_id();
    let span = tracing::info_span!(
        target: "sente_lite",
        "connection",
        conn_id = conn_id.0,
        user_id = user_id.as_ref().map(|u| u.0.as_str()),
        remote = remote_addr.map(tracing::field::display),
        codec = codec.name(),
    );
    let config = &shared.config;
    let limits = &config.limits;
    let signal = Arc::new(CloseSignal::default());
    let (outbound, queue) = Outbound::with_signal(
        conn_id,
        limits.outbound_queue,
        limits.outbound_queue_bytes,
        Arc::clone(&signal),
    );
    let server = Server {
        shared: Arc::clone(&shared),
    };
    let ctx = Ctx::with_hub(
        conn_id,
        user_id.clone(),
        codec,
        outbound,
        limits.max_in_flight_requests,
        config.request_timeout,
        Some(Arc::new(server)),
        shared.state.clone(),
    );
    shared.register(&ctx, Arc::clone(&signal));
    crate::stats::bump(&shared.counters.connections_total);
    span.in_scope(|| tracing::debug!(target: "sente_lite", "connection open"));
    let handshake = codec.encode_control(&Control::Handshake(Handshake {
        version: crate::protocol::PROTOCOL_VERSION,
        conn_id,
        user_id,
        heartbeat: Heartbeat {
            interval_ms: millis(config.ping_interval),
            timeout_ms: millis(config.ping_timeout),
        },
        schema_hash: crate::registry::schema_hash_hex(),
        max_message_size: u32::try_from(limits.max_message_size).unwrap_or(u32::MAX),
        extensions: Vec::new(),
        limits: limits.announced(),
    }));
    let engine = EngineConfig {
        max_concurrent_handlers: limits.max_concurrent_handlers,
        max_waiting: limits.max_waiting,
        max_waiting_bytes: limits.max_waiting_bytes,
        ping_interval: Some(config.ping_interval),
        silence_limit: config.ping_interval + config.ping_timeout,
        rate_per_sec: limits.rate_per_sec,
        rate_burst: limits.rate_burst,
        max_violations: limits.max_violations,
        violation_refill: limits.violation_refill,
        warn_message_size: limits.warn_message_size,
        drain_timeout: limits.drain_timeout,
        send_rate: None,
    };
    let routes = shared.routes.clone();
    let mut side = ServerSide {
        shared: Arc::clone(&shared),
    };
    async move {
        let ended = connection::run(
            ws,
            ctx.clone(),
            routes,
            queue,
            &mut side,
            &engine,
            &shared.counters,
            &signal,
            vec![handshake],
        )
        .await;
        tracing::debug!(target: "sente_lite", ?ended, "connection closed");
        shared.unregister(&ctx);
        shared
            .counters
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        shared.closed.notify_waiters();
    }
    .instrument(span)
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
