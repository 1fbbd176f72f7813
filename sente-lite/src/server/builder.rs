//! [`ServerBuilder`]: routes, hooks, channels, pages and settings, then bind.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::engine::{ChannelOptions, Engine, MemoryEngine};
use crate::protocol::UserId;
use crate::{Channel, Ctx, ErrorReply, Router};

use super::auth::{AuthHook, ChannelAccess, ChannelAuth, HandshakeRequest, Rejection};
use super::health::HealthCheck;
use super::hub::{self, Setup, Shared};
use super::{
    ChannelMatch, HttpApiConfig, OriginPolicy, PresenceInfo, Server, ServerConfig, ServerError,
    TelemetryConfig, http,
};

/// Builds a [`Server`].
#[must_use = "a builder does nothing until `bind` or `build` is called"]
pub struct ServerBuilder {
    config: ServerConfig,
    router: Router,
    auth: Option<AuthHook>,
    channel_rules: Vec<(ChannelMatch, ChannelAuth)>,
    typed_options: Vec<(ChannelMatch, ChannelOptions)>,
    pages: HashMap<String, (String, bytes::Bytes)>,
    health_checks: Vec<(String, HealthCheck)>,
    state: crate::ctx::AppState,
    engine: Option<Arc<dyn Engine>>,
    presence_info: Option<PresenceInfo>,
    telemetry_sink: Option<Arc<dyn crate::telemetry::TelemetrySink>>,
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

    /// Sends the telemetry records the server admits to `sink` instead of
    /// its tracing output ([`crate::telemetry::TracingSink`], the default).
    /// The budget, the limits and the summary line of losses stay the
    /// server's; see [`crate::telemetry::TelemetrySink`].
    pub fn telemetry_sink(mut self, sink: impl crate::telemetry::TelemetrySink) -> Self {
        self.telemetry_sink = Some(Arc::new(sink));
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

    /// Opens the HTTP API for other services (`POST /api/publish`,
    /// `/api/send`, `/api/disconnect`, `GET /api/presence`) to callers
    /// presenting one of `config`'s keys; docs/HTTP_API.md describes it.
    /// Off unless called. [`ServerBuilder::build`] fails when no key is given
    /// or one is shorter than 16 bytes.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use sente_lite::server::HttpApiConfig;
    ///
    /// let key = std::env::var("SENTE_API_KEY")?;
    /// let server = sente_lite::Server::builder()
    ///     .http_api(HttpApiConfig::with_key(key))
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn http_api(mut self, config: HttpApiConfig) -> Self {
        self.config.http_api = Some(config);
        self
    }

    /// Whether the server publishes its schema description at `GET /schema`
    /// (default on; see [`crate::schema`]). Off, clients whose schema hash
    /// differs learn that it differs, not which events.
    pub fn publish_schema(mut self, publish: bool) -> Self {
        self.config.publish_schema = publish;
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
            ChannelMatch::Pattern(pattern.into()),
            Arc::new(move |access| Box::pin(authorize(access))),
        ));
        self
    }

    /// Allows subscriptions to the channels of typed channel `C` (the names
    /// [`Channel::parse`] accepts) when `authorize` says yes: it is given the
    /// parsed channel, such as `Room { name }`, and what it asks of the
    /// connection. Like [`ServerBuilder::channel`], rules are tried in the
    /// order they were added and the first whose names match decides.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use sente_lite::ErrorReply;
    /// use sente_lite::protocol::codes;
    /// use sente_lite::server::ChannelAccess;
    ///
    /// #[sente_lite::event("doc.team/note")]
    /// #[derive(Serialize, Deserialize)]
    /// struct Note {
    ///     text: String,
    /// }
    ///
    /// /// A team's channel; only its members may join.
    /// #[sente_lite::channel("team/{team}", events(Note))]
    /// struct Team {
    ///     team: u32,
    /// }
    ///
    /// let builder = sente_lite::Server::builder().typed_channel(
    ///     |team: Team, access: ChannelAccess| async move {
    ///         match access.user_id {
    ///             Some(user) if user.0.ends_with(&format!("@{}", team.team)) => Ok(()),
    ///             _ => Err(ErrorReply::new(codes::FORBIDDEN, "members only")),
    ///         }
    ///     },
    /// );
    /// ```
    pub fn typed_channel<C, F, Fut>(mut self, authorize: F) -> Self
    where
        C: Channel,
        F: Fn(C, ChannelAccess) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ErrorReply>> + Send + 'static,
    {
        let authorize = Arc::new(authorize);
        self.channel_rules.push((
            ChannelMatch::typed::<C>(),
            Arc::new(move |access: ChannelAccess| {
                let authorize = Arc::clone(&authorize);
                Box::pin(async move {
                    match C::parse(&access.channel) {
                        Some(channel) => authorize(channel, access).await,
                        None => Err(ErrorReply::new(
                            crate::protocol::codes::FORBIDDEN,
                            format!("`{}` is not a `{}` channel", access.channel, C::PATTERN),
                        )),
                    }
                })
            }),
        ));
        self
    }

    /// Gives the channels of typed channel `C` a history and/or presence, as
    /// [`ServerBuilder::channel_options`] does for a pattern. These options
    /// are looked up after the patterns (of the configuration and of
    /// `channel_options`), in the order they were added.
    pub fn typed_channel_options<C: Channel>(mut self, options: ChannelOptions) -> Self {
        self.typed_options
            .push((ChannelMatch::typed::<C>(), options));
        self
    }

    /// Gives channels matching `pattern` (an exact name, or a prefix ending in
    /// `*`) a history and/or presence. The first matching pattern decides; a
    /// channel that matches none keeps neither. Patterns added here come after
    /// those of the configuration ([`ServerConfig::channels`]).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use sente_lite::server::{ChannelOptions, allow_all};
    ///
    /// let builder = sente_lite::Server::builder()
    ///     .channel("room/*", allow_all)
    ///     .channel_options(
    ///         "room/*",
    ///         ChannelOptions {
    ///             history_size: 100,
    ///             history_ttl: Duration::from_secs(600),
    ///             presence: true,
    ///             ..ChannelOptions::default()
    ///         },
    ///     );
    /// ```
    pub fn channel_options(mut self, pattern: impl Into<String>, options: ChannelOptions) -> Self {
        self.config.channels.push((pattern.into(), options));
        self
    }

    /// What the server attaches to a user in a channel's presence (a display
    /// name, an avatar), asked when the user's connection subscribes. Without
    /// it, members carry no info.
    pub fn presence_info<F>(mut self, info: F) -> Self
    where
        F: Fn(&Ctx, &str) -> Option<serde_json::Value> + Send + Sync + 'static,
    {
        self.presence_info = Some(Arc::new(info));
        self
    }

    /// The engine that keeps channels, history and presence (default: a
    /// [`MemoryEngine`] with [`ServerConfig::memory_engine`]).
    pub fn engine(mut self, engine: impl Engine) -> Self {
        self.engine = Some(Arc::new(engine));
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
        if let Some(problem) = self
            .config
            .http_api
            .as_ref()
            .and_then(HttpApiConfig::problem)
        {
            return Err(ServerError::Config(format!("http_api: {problem}")));
        }
        let router = if self.config.telemetry.enabled {
            self.router.handler(crate::telemetry::record_telemetry)
        } else {
            self.router
        };
        let routes = router.build()?;
        let engine = self.engine.unwrap_or_else(|| {
            Arc::new(MemoryEngine::with_config(self.config.memory_engine.clone()))
        });
        Ok(Server {
            shared: Shared::start(Setup {
                config: self.config,
                routes,
                auth: self.auth,
                channel_rules: self.channel_rules,
                typed_options: self.typed_options,
                pages: self.pages,
                health_checks: self.health_checks,
                state: self.state,
                engine,
                presence_info: self.presence_info,
                telemetry_sink: self
                    .telemetry_sink
                    .unwrap_or_else(|| Arc::new(crate::telemetry::TracingSink)),
            }),
        })
    }

    /// Builds the server and starts listening on `addr` (`"127.0.0.1:0"` picks a free port).
    pub async fn bind(self, addr: impl Into<String>) -> Result<Server, ServerError> {
        let addr = addr.into();
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.clone(),
                source,
            })?;
        self.listen_as(listener, addr)
    }

    /// Builds the server and serves on `listener`, made by the application
    /// (with [`shared_listener`](super::shared_listener), say, so that several
    /// server processes share one port).
    pub fn listen(self, listener: tokio::net::TcpListener) -> Result<Server, ServerError> {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        self.listen_as(listener, addr)
    }

    fn listen_as(
        self,
        listener: tokio::net::TcpListener,
        addr: String,
    ) -> Result<Server, ServerError> {
        #[cfg(feature = "tls")]
        let self_tls = self.tls.clone();
        let server = self.build()?;
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

/// A listener on `addr` that other processes may bind too (`SO_REUSEPORT`;
/// the kernel spreads new connections over them): several server processes
/// on one port, on one machine. A process that exits leaves the others
/// serving; its clients reconnect to them. Unix only.
#[cfg(unix)]
pub fn shared_listener(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Server {
    /// A builder with the default [`ServerConfig`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: ServerConfig::default(),
            router: Router::new(),
            auth: None,
            channel_rules: Vec::new(),
            typed_options: Vec::new(),
            pages: HashMap::new(),
            health_checks: Vec::new(),
            state: crate::ctx::AppState::default(),
            engine: None,
            presence_info: None,
            telemetry_sink: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}
