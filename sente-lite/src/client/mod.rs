//! The native client: one WebSocket connection to a sente-lite server, kept
//! open across network failures, with typed events, requests and channels.
//!
//! A [`Client`] gives what Sente's `make-channel-socket-client!` gives, typed:
//!
//! - **one-way events** with [`Client::send`], queued in one bounded queue that
//!   outlives each connection, so events sent while reconnecting go out, in
//!   order, as soon as the next connection is up;
//! - **requests** with [`Client::request`], answered with the request's reply
//!   type or a [`RequestError`];
//! - **channels** with [`Client::subscribe`], restored after every reconnect
//!   from the last position seen, so a missed publication is never a silent gap
//!   ([`ClientBuilder::on_gap`]);
//! - **presence** with [`Client::presence`] and [`Client::watch_presence`]:
//!   who is in a channel, and who joins and leaves it;
//! - **server events, requests and publications** handled by the same
//!   `#[handler]` functions a server uses, routed with [`ClientBuilder::router`];
//! - **reconnection** with exponential backoff and full jitter
//!   ([`ReconnectPolicy`]), honouring a server's "come back later";
//! - **dead-server detection**: a server silent for longer than its announced
//!   heartbeat (interval + timeout) is taken for dead even when TCP stays up;
//! - its [`ConnectionState`], observable by polling, watching or callback.
//!
//! ```no_run,standalone_crate
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//! use sente_lite::{Client, ConnectionState, Ctx, ReconnectPolicy, Router};
//!
//! #[sente_lite::event("chat/send")]
//! #[derive(Serialize, Deserialize)]
//! struct ChatSend { text: String }
//!
//! #[sente_lite::event("user/get", reply = User)]
//! #[derive(Serialize, Deserialize)]
//! struct UserGet { id: u64 }
//!
//! #[derive(Serialize, Deserialize, schemars::JsonSchema)]
//! struct User { name: String }
//!
//! /// Runs for every `chat/send` the server publishes on a channel we joined.
//! #[sente_lite::handler]
//! async fn on_chat(_ctx: Ctx, msg: ChatSend) {
//!     println!("someone said {}", msg.text);
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder("ws://127.0.0.1:3000/ws?token=secret")
//!     .router(Router::new().handler(on_chat))
//!     .reconnect(ReconnectPolicy::default().with_max_delay(Duration::from_secs(10)))
//!     .on_state(|state| println!("connection is {state}"))
//!     .connect()
//!     .await?;
//!
//! client.subscribe("room/lobby").await?;
//! client.send(&ChatSend { text: "hello".into() })?;
//! let user = client.request(&UserGet { id: 1 }).await?;
//! println!("user 1 is {}", user.name);
//!
//! assert_eq!(client.state(), ConnectionState::Open);
//! client.disconnect().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Delivery
//!
//! Events are delivered at most once: one queued while no connection is open
//! waits in the queue, but one already written to a connection that then dies
//! is lost with it. A request whose connection dies fails with
//! [`RequestError::Closed`]; the server may or may not have handled it.
//!
//! # Positions and gaps
//!
//! The server numbers each channel's publications (a
//! [`StreamPosition`]: an epoch and an offset). The client keeps, per
//! channel, the largest position it has seen (from publications, which may
//! arrive before the answer to their subscription, and from that answer), and
//! after a reconnect subscribes again with it as `since` (and likewise when
//! the server ends a subscription that may have missed publications and asks
//! the client to subscribe again, `sl/resub`). A server that kept
//! the channel's history replays what was missed (`recovered: true`). When it
//! cannot, publications were lost: the client reports the **gap** to
//! [`ClientBuilder::on_gap`], and the application reloads the channel's state
//! (for example with a request) before it trusts its publications again.
//! Publications are delivered as the server sends them: the client does not
//! drop duplicates (the server sends none).
//!
//! ```no_run
//! # async fn run() -> Result<(), sente_lite::ClientError> {
//! let (reload_tx, mut reload_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
//! let client = sente_lite::Client::builder("ws://127.0.0.1:3000/ws")
//!     .on_gap(move |channel, _reply| {
//!         let _ = reload_tx.send(channel.to_owned());
//!     })
//!     .connect()
//!     .await?;
//! while let Some(channel) = reload_rx.recv().await {
//!     println!("{channel}: publications were missed, reloading its state");
//! }
//! # Ok(())
//! # }
//! ```

mod backoff;
mod credentials;
mod describe;
mod dial;
mod error;
mod joined;
mod members;
mod presence;
mod resub;
mod schema;
mod shared;
mod state;
mod subscribing;
mod supervisor;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use backoff::ReconnectPolicy;
pub use credentials::{AfterRejection, Credentials, Rejection};
pub use error::{ClientError, WaitTimeout};
pub use joined::{ChannelMessage, Joined};
pub use presence::{PresenceEvent, PresenceWatch};
pub use schema::SchemaMismatch;
pub use state::ConnectionState;

use dial::Target;
use shared::{GapCallback, ResubscribeCallback, Settings, Shared, StateCallback, lock};

use crate::protocol::{ConnId, Handshake, PresenceSnapshot, StreamPosition, SubscribeReply};
use crate::{
    Codec, DEFAULT_REQUEST_TIMEOUT, OneWay, Outbound, Request, RequestError, RouteTable, Router,
    SendError, StatsSnapshot,
};

/// The default capacity of a client's outbound queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// The default bound of a typed subscription's queue, in publications
/// ([`ClientBuilder::channel_queue`]).
pub const DEFAULT_CHANNEL_QUEUE: usize = 1024;
/// The default bound of a typed subscription's queue, in payload bytes
/// ([`ClientBuilder::channel_queue`]).
pub const DEFAULT_CHANNEL_QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// The default time to open the TCP connection and finish the WebSocket upgrade.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time the server's handshake frame may take after the upgrade.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a sente-lite server that reconnects by itself.
///
/// Cheap to clone; clones share the connection. When the last clone is dropped
/// the client closes its connection and stops (call [`Client::disconnect`] to
/// wait for that).
///
/// Methods that send need a Tokio runtime; the client's background task runs on
/// the runtime it was built on.
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

/// Owned by the clones of a client; stops the background task when the last goes.
struct Handle {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.commands.stop();
    }
}

impl Client {
    /// A builder for a client of the server at `url`
    /// (`ws://host:port/path?query`, for example `ws://127.0.0.1:3000/ws?token=...`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            routes: RoutesSource::Empty,
            codec: Codec::Json,
            policy: ReconnectPolicy::default(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            #[cfg(feature = "tls")]
            tls: None,
            state: crate::ctx::AppState::default(),
            max_in_flight: 64,
            max_concurrent_handlers: 64,
            channel_queue: (DEFAULT_CHANNEL_QUEUE, DEFAULT_CHANNEL_QUEUE_BYTES),
            headers: Vec::new(),
            on_state: None,
            on_resubscribe: None,
            on_gap: None,
            on_schema_mismatch: None,
            schema_url: None,
            credentials: None,
            on_rejected: None,
        }
    }

    /// Connects to `url` with the default settings: JSON, no handlers, reconnect
    /// forever. Same as `Client::builder(url).connect()`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sente_lite::ClientError> {
    /// let client = sente_lite::Client::connect("ws://127.0.0.1:3000/ws").await?;
    /// println!("connected as {:?}", client.handshake().map(|h| h.conn_id));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: impl Into<String>) -> Result<Client, ClientError> {
        Self::builder(url).connect().await
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The connection's state now.
    pub fn state(&self) -> ConnectionState {
        self.shared().state()
    }

    /// A receiver of the connection's state: `borrow()` is the state now,
    /// `changed().await` waits for the next change. A watch keeps only the
    /// latest state: to see every transition use [`ClientBuilder::on_state`].
    ///
    /// ```no_run
    /// # async fn run(client: sente_lite::Client) {
    /// use sente_lite::ConnectionState;
    ///
    /// let mut states = client.state_changes();
    /// while states.changed().await.is_ok() {
    ///     if *states.borrow() == ConnectionState::Reconnecting {
    ///         println!("lost the server, reconnecting");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.shared().state_changes()
    }

    /// Waits until the client is in `state`, at most `timeout`.
    ///
    /// ```no_run
    /// # async fn run(client: sente_lite::Client) -> Result<(), sente_lite::WaitTimeout> {
    /// use std::time::Duration;
    /// use sente_lite::ConnectionState;
    ///
    /// client.reconnect();
    /// client.wait_for(ConnectionState::Open, Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for(
        &self,
        state: ConnectionState,
        timeout: Duration,
    ) -> Result<(), WaitTimeout> {
        let mut changes = self.state_changes();
        match tokio::time::timeout(timeout, changes.wait_for(|s| *s == state)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(WaitTimeout {
                wanted: state,
                current: self.state(),
                timeout,
            }),
        }
    }

    /// The open connection's handshake (connection id, user, heartbeat, the
    /// server's schema hash), or `None` while no connection is open.
    pub fn handshake(&self) -> Option<Handshake> {
        self.shared().live().map(|live| live.handshake)
    }

    /// The open connection's id on the server, or `None` while no connection is open.
    pub fn conn_id(&self) -> Option<ConnId> {
        self.shared().live().map(|live| live.ctx.conn_id())
    }

    /// The codec this client sends with.
    pub fn codec(&self) -> Codec {
        self.shared().target.codec
    }

    /// The error of the last failed connection attempt, if any.
    pub fn last_error(&self) -> Option<Arc<ClientError>> {
        self.shared().last_error()
    }

    /// Why the server last closed a connection of this client (its
    /// `sl/close`: a code such as `going-away` or `policy`, a message, and
    /// when to come back), kept across reconnects; `None` until it did.
    pub fn last_close(&self) -> Option<crate::protocol::CloseReason> {
        shared::lock(&self.shared().last_close).clone()
    }

    /// How the server's schema differs from this program's, or `None` when
    /// their schema hashes agree (or no difference was reported yet).
    ///
    /// Set once the server's description was fetched (or failed to be) after
    /// a handshake with another hash, when
    /// [`ClientBuilder::on_schema_mismatch`] is called; cleared by a handshake
    /// with the same hash. See [`crate::schema`].
    pub fn schema_mismatch(&self) -> Option<Arc<SchemaMismatch>> {
        schema::SchemaCheck::mismatch(&self.shared().schema)
    }

    /// Sends a one-way event.
    ///
    /// The event is encoded at once and queued; it goes out on the open
    /// connection, or on the next one (after restored subscriptions) when the
    /// client is reconnecting. Fails with [`SendError::QueueFull`] when the
    /// queue holds [`ClientBuilder::queue_capacity`] messages (the event is
    /// dropped: retry later or shed load), and with [`SendError::Closed`]
    /// once the client was disconnected.
    ///
    /// Delivered at most once: an event already written to a connection that
    /// then dies is lost with it, and nothing says which. Send what must be
    /// accounted for as a request (a reply of `()` is enough).
    ///
    /// ```no_run,standalone_crate
    /// # use serde::{Deserialize, Serialize};
    /// #[sente_lite::event("chat/send")]
    /// #[derive(Serialize, Deserialize)]
    /// struct ChatSend { text: String }
    ///
    /// # fn run(client: sente_lite::Client) -> Result<(), sente_lite::SendError> {
    /// client.send(&ChatSend { text: "hi".into() })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send<E: OneWay>(&self, event: &E) -> Result<(), SendError> {
        let message = self.codec().encode_event(event)?;
        self.shared().send_message(message)
    }

    /// Sends a request and waits for its reply, at most the client's request
    /// timeout ([`ClientBuilder::request_timeout`], 10 s by default).
    ///
    /// While the client is reconnecting, the request waits for the next
    /// connection (within the same timeout). It fails with
    /// [`RequestError::Remote`] when the server's handler answers an error,
    /// [`RequestError::Timeout`] when no reply comes in time, and
    /// [`RequestError::Closed`] when the connection is lost before the reply
    /// (the server may have handled it) or the client stopped or gave up.
    /// Dropping the future stops waiting; a late reply is ignored. A server
    /// that offers the `cancel` extension (this crate's does) is told
    /// (`sl/cancel`) and drops the request's handler.
    ///
    /// ```no_run,standalone_crate
    /// # use serde::{Deserialize, Serialize};
    /// #[sente_lite::event("user/get", reply = User)]
    /// #[derive(Serialize, Deserialize)]
    /// struct UserGet { id: u64 }
    ///
    /// #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    /// struct User { name: String }
    ///
    /// # async fn run(client: sente_lite::Client) -> Result<(), sente_lite::RequestError> {
    /// let user: User = client.request(&UserGet { id: 1 }).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request<E: Request>(&self, request: &E) -> Result<E::Reply, RequestError> {
        self.request_within(request, self.shared().settings.request_timeout)
            .await
    }

    /// Like [`Client::request`], waiting at most `timeout` (for a connection and
    /// for the reply together). The remaining time travels with the request as
    /// its deadline, so the server does not work past it; the server's
    /// `deadline-exceeded` answer is reported as [`RequestError::Timeout`] too.
    pub async fn request_within<E: Request>(
        &self,
        request: &E,
        timeout: Duration,
    ) -> Result<E::Reply, RequestError> {
        let deadline = Instant::now() + timeout;
        let ctx = self.shared().open_ctx(deadline, timeout).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        ctx.request_within(request, left)
            .await
            .map_err(|err| match err {
                // The server enforces the same deadline and may say so first.
                RequestError::Timeout(_) => RequestError::Timeout(timeout),
                RequestError::Remote(remote)
                    if remote.code == crate::protocol::codes::DEADLINE_EXCEEDED =>
                {
                    RequestError::Timeout(timeout)
                }
                other => other,
            })
    }

    /// Subscribes to `channel` and keeps it subscribed: after every reconnect
    /// the subscription is restored, resuming from the last position seen.
    ///
    /// Waits for a connection (within the request timeout) and returns the
    /// server's answer. When no connection opens in time nothing changes. When
    /// the server refuses (`forbidden`, [`RequestError::Remote`]) the channel
    /// is forgotten. When the server's answer does not come in time or the
    /// connection is lost after asking, the channel stays wanted and is asked
    /// for again on the next connection. Publications on the channel go to the
    /// client's handlers.
    ///
    /// ```no_run
    /// # async fn run(client: sente_lite::Client) -> Result<(), sente_lite::RequestError> {
    /// let reply = client.subscribe("room/lobby").await?;
    /// println!("joined at {:?}", reply.position);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe(
        &self,
        channel: impl Into<String>,
    ) -> Result<SubscribeReply, RequestError> {
        let timeout = self.shared().settings.request_timeout;
        self.shared().subscribe(channel.into(), timeout).await
    }

    /// Joins a [typed channel](mod@crate::channel): subscribes to it as
    /// [`Client::subscribe`] does (kept across reconnects, resumed from the
    /// last position seen) and returns its publications as a stream of the
    /// channel's event enum ([`Joined`]).
    ///
    /// Publications on a joined channel go to its [`Joined`] streams, not to
    /// the client's handlers; a publication of an event the channel does not
    /// carry is counted as an unknown event and logged. Fails as
    /// [`Client::subscribe`] fails.
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[sente_lite::event("doc.join/said")]
    /// # #[derive(Serialize, Deserialize)]
    /// # struct Said { text: String }
    /// # #[sente_lite::event("doc.join/joined")]
    /// # #[derive(Serialize, Deserialize)]
    /// # struct Joined { user: String }
    /// # #[sente_lite::channel("room/{name}", events(Said, Joined))]
    /// # struct Room { name: String }
    /// # async fn run(client: sente_lite::Client) -> Result<(), sente_lite::RequestError> {
    /// use sente_lite::client::ChannelMessage;
    ///
    /// let mut lobby = client.join(Room { name: "lobby".into() }).await?;
    /// while let Some(message) = lobby.recv().await {
    ///     match message {
    ///         ChannelMessage::Event(RoomEvent::Said(said)) => println!("{}", said.text),
    ///         ChannelMessage::Event(RoomEvent::Joined(joined)) => println!("{} is here", joined.user),
    ///         ChannelMessage::Gap(_) | ChannelMessage::Lagged(_) => println!("missed some; reloading"),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn join<C: crate::Channel>(&self, channel: C) -> Result<Joined<C>, RequestError> {
        self.shared().join(channel).await
    }

    /// Leaves `channel`: it is no longer restored, and the server is told when a
    /// connection is open (waiting at most the request timeout for its answer).
    /// Its [`Joined`] streams end.
    pub async fn unsubscribe(&self, channel: impl Into<String>) -> Result<(), RequestError> {
        let timeout = self.shared().settings.request_timeout;
        self.shared().unsubscribe(channel.into(), timeout).await
    }

    /// The channels the client keeps subscribed, sorted.
    pub fn subscriptions(&self) -> Vec<String> {
        self.shared().subscriptions()
    }

    /// The largest stream position seen on `channel` (from publications and
    /// the server's subscribe answers), when the channel keeps positions: the
    /// `since` of the next subscription to it.
    pub fn position(&self, channel: &str) -> Option<StreamPosition> {
        self.shared().position(channel)
    }

    /// The members of `channel` (protocol extension `presence`), sorted by
    /// user id: the users with a connection subscribed to it.
    ///
    /// The client must be subscribed to the channel, and the channel
    /// configured for presence on the server, or the server refuses
    /// ([`RequestError::Remote`], `forbidden`). A server that does not offer
    /// presence fails it with [`RequestError::Unsupported`]. Waits for a
    /// connection, and for the channel's subscription to be restored on it,
    /// within the request timeout. When the client watches the channel the
    /// watch's member set is returned without asking the server.
    ///
    /// ```no_run
    /// # async fn run(client: sente_lite::Client) -> Result<(), sente_lite::RequestError> {
    /// client.subscribe("room/lobby").await?;
    /// for member in client.presence("room/lobby").await?.members {
    ///     println!("{} ({:?})", member.user_id, member.info);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn presence(
        &self,
        channel: impl Into<String>,
    ) -> Result<PresenceSnapshot, RequestError> {
        let timeout = self.shared().settings.request_timeout;
        self.shared().presence_of(channel.into(), timeout).await
    }

    /// Watches the members of `channel` (protocol extension `presence`):
    /// resolves with a [`PresenceWatch`] once the server's snapshot arrived,
    /// which then follows every join and leave, also across reconnects.
    ///
    /// Fails like [`Client::presence`]. Several watches of one channel share
    /// the server's watch; the server is told to stop when the last is dropped.
    ///
    /// ```no_run
    /// # async fn run(client: sente_lite::Client) -> Result<(), sente_lite::RequestError> {
    /// use sente_lite::client::PresenceEvent;
    ///
    /// client.subscribe("room/lobby").await?;
    /// let mut watch = client.watch_presence("room/lobby").await?;
    /// while let Some(change) = watch.changed().await {
    ///     if let PresenceEvent::Joined(member) = change {
    ///         println!("{} joined", member.user_id);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn watch_presence(
        &self,
        channel: impl Into<String>,
    ) -> Result<PresenceWatch, RequestError> {
        let timeout = self.shared().settings.request_timeout;
        self.shared().watch_presence(channel.into(), timeout).await
    }

    /// Drops the current connection and connects again at once; while waiting
    /// between attempts, skips the wait; when [`Failed`](ConnectionState::Failed),
    /// starts trying again with a fresh backoff. Does nothing once the client
    /// was disconnected.
    pub fn reconnect(&self) {
        self.shared().commands.reconnect();
    }

    /// Closes the connection gracefully (`Closing`, then `Closed`) and stops
    /// reconnecting. Events still queued are written before the close. Resolves
    /// when the client has stopped; a disconnected client stays closed.
    pub async fn disconnect(&self) {
        let shared = self.shared();
        shared.commands.stop();
        let task = lock(&self.handle.task).take();
        match task {
            Some(task) => {
                let _ = task.await;
            }
            None => {
                let mut changes = shared.state_changes();
                let _ = changes.wait_for(|s| *s == ConnectionState::Closed).await;
            }
        }
        // Also when the task ended abnormally.
        shared.set_state(ConnectionState::Closed);
    }

    /// The client's counters: messages and bytes each way, errors by kind,
    /// reconnections (`reconnects`), connections opened (`connections_total`),
    /// the open connection (`connections`, 0 or 1) and subscribed channels
    /// (`channels` and `subscriptions`).
    pub fn stats(&self) -> StatsSnapshot {
        let shared = self.shared();
        let mut snapshot = shared.counters.snapshot();
        let channels = shared.subscriptions().len() as u64;
        snapshot.connections = u64::from(shared.live().is_some());
        snapshot.users = 0;
        snapshot.channels = channels;
        snapshot.subscriptions = channels;
        snapshot
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared();
        f.debug_struct("Client")
            .field("url", &shared.target.display)
            .field("codec", &shared.target.codec)
            .field("state", &shared.state())
            .field("conn_id", &self.conn_id())
            .finish_non_exhaustive()
    }
}

enum RoutesSource {
    Empty,
    Router(Router),
    Table(RouteTable),
}

/// Builds a [`Client`]: where to connect, its handlers, codec, reconnection
/// policy, bounds and callbacks. Every setting has a documented default.
///
/// ```no_run
/// use std::time::Duration;
/// use sente_lite::{Client, Codec, ReconnectPolicy};
///
/// # async fn run() -> Result<(), sente_lite::ClientError> {
/// let client = Client::builder("ws://127.0.0.1:3000/ws")
///     .codec(Codec::Postcard)
///     .header("Cookie", "session=abc")
///     .reconnect(ReconnectPolicy::default().with_max_attempts(Some(20)))
///     .queue_capacity(256)
///     .request_timeout(Duration::from_secs(5))
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until `connect` or `start` is called"]
pub struct ClientBuilder {
    url: String,
    routes: RoutesSource,
    codec: Codec,
    policy: ReconnectPolicy,
    queue_capacity: usize,
    request_timeout: Duration,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    state: crate::ctx::AppState,
    max_in_flight: usize,
    max_concurrent_handlers: usize,
    channel_queue: (usize, usize),
    headers: Vec<(String, String)>,
    on_state: Option<StateCallback>,
    on_resubscribe: Option<ResubscribeCallback>,
    on_gap: Option<GapCallback>,
    on_schema_mismatch: Option<schema::SchemaCallback>,
    schema_url: Option<String>,
    credentials: Option<credentials::CredentialsSource>,
    on_rejected: Option<credentials::RejectionCallback>,
}

impl ClientBuilder {
    /// The handlers of the server's events, requests and publications, written
    /// with `#[handler]` exactly as on a server; their [`Ctx`](crate::Ctx) is the
    /// client's connection. Built when the client connects. Default: none (an
    /// event without a handler is answered `bad-event`).
    pub fn router(mut self, router: Router) -> Self {
        self.routes = RoutesSource::Router(router);
        self
    }

    /// Like [`ClientBuilder::router`], with a table already built.
    pub fn routes(mut self, routes: RouteTable) -> Self {
        self.routes = RoutesSource::Table(routes);
        self
    }

    /// The encoding: [`Codec::Json`] (the default) or [`Codec::Postcard`]. The
    /// client asks for the codec's subprotocol and refuses a server that does
    /// not select it ([`ClientError::SubprotocolRefused`]).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// How to reconnect. Default [`ReconnectPolicy::default`]: forever, 250 ms
    /// doubling up to 30 s, with full jitter.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Messages the outbound queue holds (at least 1). Default 1024. The queue
    /// outlives connections; when it is full, [`Client::send`] and requests fail
    /// with [`SendError::QueueFull`].
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// How long [`Client::request`], [`Client::subscribe`] and a handler's
    /// [`Ctx::request`](crate::Ctx::request) wait (for a connection and the
    /// reply). Default 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long opening the TCP connection and the WebSocket upgrade may take.
    /// Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the server's handshake frame may take after the upgrade.
    /// Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Our requests waiting for a reply at once (at least 1). Default 64, and
    /// never more than the server announces in its handshake
    /// (`limits.max_in_flight`); past it a request fails with
    /// [`RequestError::TooManyInFlight`]. The server's requests to this client
    /// are bounded by the same number (`too-many-requests`).
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Handlers running at once (at least 1). Default 64; at the bound the
    /// client stops reading until one finishes.
    pub fn max_concurrent_handlers(mut self, max: usize) -> Self {
        self.max_concurrent_handlers = max;
        self
    }

    /// The bound of each typed subscription's queue ([`Client::join`]): at
    /// most `capacity` publications (at least 1) and `max_bytes` of their
    /// payloads as they came off the wire (one publication of any size is
    /// always taken into an empty queue). Past it a publication is dropped
    /// from that subscription and counted, and the reader gets
    /// [`ChannelMessage::Lagged`] with the count before what follows.
    /// Default 1,024 publications and 8 MiB.
    pub fn channel_queue(mut self, capacity: usize, max_bytes: usize) -> Self {
        self.channel_queue = (capacity.max(1), max_bytes);
        self
    }

    /// Adds an HTTP header to the upgrade request, such as `Cookie`,
    /// `Authorization` or `Origin`. An invalid name or value makes
    /// `connect`/`start` fail with [`ClientError::InvalidHeader`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Credentials fetched before every connection attempt, the first and
    /// each reconnect: headers and query parameters added to the builder's,
    /// so a token that expired or was rotated is replaced when the client
    /// connects again. An `Err` fails that attempt with
    /// [`ClientError::Credentials`], which the reconnection policy retries.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sente_lite::ClientError> {
    /// use sente_lite::client::{AfterRejection, Credentials};
    ///
    /// async fn fresh_token() -> Result<String, String> {
    ///     // Ask the identity provider, read a refreshed file, ...
    ///     Ok("eyJhbGciOi...".into())
    /// }
    ///
    /// let client = sente_lite::Client::builder("wss://chat.example/ws")
    ///     .credentials(|| async { fresh_token().await.map(Credentials::bearer) })
    ///     // A refused token: try again (with a fresh one) instead of failing.
    ///     .on_rejected(|rejection| match rejection.status.as_u16() {
    ///         401 if rejection.attempt < 3 => AfterRejection::Retry,
    ///         _ => AfterRejection::Stop,
    ///     })
    ///     .start()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn credentials<F, Fut>(mut self, fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Credentials, String>> + Send + 'static,
    {
        self.credentials = Some(Arc::new(move || Box::pin(fetch())));
        self
    }

    /// Decides, when the server refuses an attempt's upgrade with an HTTP
    /// error (401 and 403 for refused credentials), whether to retry after the
    /// reconnection policy's delay or to stop in
    /// [`Failed`](ConnectionState::Failed). Called from the client's task for
    /// every refused attempt after the first connection (the first attempt of
    /// [`ClientBuilder::connect`] returns its error instead; use
    /// [`ClientBuilder::start`] to have it decided too). Without it, 408, 429
    /// and 5xx are retried and every other status stops the client.
    pub fn on_rejected<F>(mut self, decide: F) -> Self
    where
        F: Fn(&Rejection) -> AfterRejection + Send + Sync + 'static,
    {
        self.on_rejected = Some(Arc::new(decide));
        self
    }

    /// Called with each new state, in order, from the client's task. Keep it
    /// short; it must not block.
    pub fn on_state<F>(mut self, callback: F) -> Self
    where
        F: Fn(ConnectionState) + Send + Sync + 'static,
    {
        self.on_state = Some(Arc::new(callback));
        self
    }

    /// Called with the server's answer to each subscription restored after a
    /// reconnect, or after the server ended it and asked the client to
    /// subscribe again (`sl/resub`). `Ok(reply)` with `recovered == false` after a position was
    /// known means publications were missed (also reported to
    /// [`ClientBuilder::on_gap`]). An `Err(RequestError::Remote(_))` means the server now refuses the
    /// channel, which the client then forgets; `Err(RequestError::Timeout(_))`
    /// that the server did not answer (the channel stays wanted and is asked
    /// for again on the next connection). A connection lost before the answer
    /// is not reported: the next connection restores the channel again.
    ///
    /// ```no_run
    /// # fn run(builder: sente_lite::ClientBuilder) -> sente_lite::ClientBuilder {
    /// builder.on_resubscribe(|channel, result| match result {
    ///     Ok(reply) if !reply.recovered => println!("{channel}: missed messages, reloading"),
    ///     Ok(_) => {}
    ///     Err(err) => println!("{channel}: lost ({err})"),
    /// })
    /// # }
    /// ```
    pub fn on_resubscribe<F>(mut self, callback: F) -> Self
    where
        F: Fn(&str, &Result<SubscribeReply, RequestError>) + Send + Sync + 'static,
    {
        self.on_resubscribe = Some(Arc::new(callback));
        self
    }

    /// Called when publications on a channel were missed: the client
    /// subscribed with the position it had seen (after a reconnect, when the
    /// server asked it to subscribe again, or subscribing again to a channel
    /// it keeps) and the server answered
    /// `recovered: false` (it lost the channel, or no longer holds what came
    /// after that position). The application must reload the channel's state;
    /// publications after the reply's position follow. Called with the
    /// channel and the server's answer, from the client's task: keep it short
    /// (send the channel to a task that reloads).
    ///
    /// ```no_run
    /// # fn run(builder: sente_lite::ClientBuilder) -> sente_lite::ClientBuilder {
    /// builder.on_gap(|channel, reply| {
    ///     println!("{channel}: missed publications, reload from {:?}", reply.position);
    /// })
    /// # }
    /// ```
    pub fn on_gap<F>(mut self, callback: F) -> Self
    where
        F: Fn(&str, &SubscribeReply) + Send + Sync + 'static,
    {
        self.on_gap = Some(Arc::new(callback));
        self
    }

    /// Called when the server's schema hash differs from this program's, once
    /// per server schema, with the events that differ (from the server's
    /// description at `GET /schema`) or why they are unknown. The connection
    /// goes on either way. The difference is also logged as a warning and kept
    /// in [`Client::schema_mismatch`].
    ///
    /// ```
    /// # fn run(builder: sente_lite::ClientBuilder) -> sente_lite::ClientBuilder {
    /// builder.on_schema_mismatch(|mismatch| {
    ///     if let Ok(differences) = &mismatch.differences {
    ///         for difference in differences {
    ///             eprintln!("upgrade this client: {difference}");
    ///         }
    ///     }
    /// })
    /// # }
    /// ```
    pub fn on_schema_mismatch<F>(mut self, callback: F) -> Self
    where
        F: Fn(&SchemaMismatch) + Send + Sync + 'static,
    {
        self.on_schema_mismatch = Some(Arc::new(callback));
        self
    }

    /// Where the server publishes its schema description. Default: the
    /// connection url's host and port, scheme `http` (for `ws`) or `https`
    /// (for `wss`), path `/schema`. Set it when the server is mounted behind
    /// a path prefix.
    pub fn schema_url(mut self, url: impl Into<String>) -> Self {
        self.schema_url = Some(url.into());
        self
    }

    /// Makes `value` available to the client's handlers as `ctx.state::<T>()`.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// The rustls configuration for `wss://` urls (feature `tls`), for example
    /// with your own root certificates. Without it, `wss://` trusts the public
    /// web roots.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    fn build(self) -> Result<(Arc<Shared>, crate::OutboundReceiver), ClientError> {
        #[allow(unused_mut)]
        let mut target = Target::new(
            &self.url,
            &self.headers,
            self.codec,
            self.connect_timeout,
            self.handshake_timeout,
        )?;
        target.credentials = self.credentials;
        #[cfg(feature = "tls")]
        {
            target.tls = self.tls.clone();
        }
        let routes = match self.routes {
            RoutesSource::Empty => Router::new().build()?,
            RoutesSource::Router(router) => router.build()?,
            RoutesSource::Table(table) => table,
        };
        let (outbound, queue) = Outbound::channel(ConnId(0), self.queue_capacity);
        let settings = Settings {
            policy: self.policy,
            request_timeout: self.request_timeout,
            max_in_flight: self.max_in_flight.max(1),
            max_concurrent_handlers: self.max_concurrent_handlers.max(1),
            channel_queue: self.channel_queue,
            on_state: self.on_state,
            on_resubscribe: self.on_resubscribe,
            on_gap: self.on_gap,
            on_schema_mismatch: self.on_schema_mismatch,
            on_rejected: self.on_rejected,
            state: self.state,
        };
        let describe_uri = match &self.schema_url {
            Some(url) => Some(url.parse().map_err(|source| ClientError::InvalidUrl {
                url: url.clone(),
                source,
            })?),
            None => describe::description_uri(target.uri()),
        };
        let describe = describe_uri.map(|uri| describe::Fetch {
            uri,
            timeout: self.connect_timeout + self.handshake_timeout,
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
        });
        Ok((
            Arc::new(Shared::new(target, routes, settings, outbound, describe)),
            queue,
        ))
    }

    /// Connects, waiting for the server's handshake, and keeps the connection
    /// open in the background.
    ///
    /// The first attempt is made once: its error is returned as is (the
    /// reconnection policy applies only once a connection was made). To start
    /// offline and let the policy retry from the first attempt, use
    /// [`ClientBuilder::start`].
    pub async fn connect(self) -> Result<Client, ClientError> {
        let (shared, queue) = self.build()?;
        shared.set_state(ConnectionState::Connecting);
        let opened = match shared.target.open().await {
            Ok(opened) => opened,
            Err(err) => {
                tracing::warn!(target: "sente_lite", url = %shared.target.display, error = %err, "connection failed");
                shared.set_state(ConnectionState::Failed);
                return Err(err);
            }
        };
        let mut changes = shared.state_changes();
        let client = Self::spawn(shared, queue, Some(opened));
        // The task marks the connection open before its first await.
        let _ = changes
            .wait_for(|s| *s != ConnectionState::Connecting)
            .await;
        Ok(client)
    }

    /// Starts the client without waiting: it connects in the background, and
    /// every attempt, the first included, follows the reconnection policy.
    /// Sends are queued and requests wait until a connection is open.
    ///
    /// Fails only on a bad url, header or router. Must be called within a Tokio
    /// runtime.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sente_lite::{Client, ConnectionState};
    ///
    /// let client = Client::builder("ws://127.0.0.1:3000/ws").start()?;
    /// client.wait_for(ConnectionState::Open, Duration::from_secs(30)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(self) -> Result<Client, ClientError> {
        let (shared, queue) = self.build()?;
        shared.set_state(ConnectionState::Connecting);
        Ok(Self::spawn(shared, queue, None))
    }

    fn spawn(
        shared: Arc<Shared>,
        queue: crate::OutboundReceiver,
        opened: Option<(dial::Socket, Handshake)>,
    ) -> Client {
        let task = tokio::spawn(supervisor::supervise(Arc::clone(&shared), queue, opened));
        Client {
            handle: Arc::new(Handle {
                shared,
                task: Mutex::new(Some(task)),
            }),
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("codec", &self.codec)
            .field("policy", &self.policy)
            .field("queue_capacity", &self.queue_capacity)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}
