//! The engine: where a server keeps what its connections share across the
//! process (or across processes): channel positions and history, channel
//! presence, user presence and user routing.
//!
//! The server keeps its own connections and, for each channel, which of them
//! are subscribed. Everything else goes through one [`Engine`]:
//!
//! - [`Engine::publish`] numbers a publication, keeps it in the channel's
//!   history when the channel has one, and hands it to every server with
//!   subscribers ([`Node::deliver`]);
//! - [`Engine::recover`] answers a resubscribe: the channel's position and the
//!   publications after `since`, when the history still has them all;
//! - presence ([`Engine::presence_join`], [`Engine::presence_leave`],
//!   [`Engine::presence`]) and user presence ([`Engine::user_join`],
//!   [`Engine::user_leave`]) with a grace period, told back through
//!   [`Node::presence_changed`] and [`Node::user_presence`];
//! - [`Engine::send_to_user`] reaches a user's connections wherever they are.
//!
//! An engine whose delivery to this server broke (a lost link to its
//! service, a channel that changed epoch) calls [`Node::resubscribe`]: the
//! channel's subscribers here subscribe again from the position they hold,
//! and so get what they missed replayed, or are told of the gap.
//!
//! [`MemoryEngine`] is the default: everything in this process, nothing to run
//! beside it. Its history and positions are lost when the process exits, so
//! every channel starts a new epoch after a restart and resuming clients are
//! told `recovered: false`.
//!
//! An engine that talks to a remote service answers through [`EngineFuture`]s.
//! What decides order happens during the call itself: a publication takes its
//! place when [`Engine::publish`] is called, whether or not its future is
//! awaited.

mod memory;
mod publication;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

pub use memory::{MemoryEngine, MemoryEngineConfig};
pub use publication::{OutgoingEvent, Publication};

use crate::pending::RawReply;
use crate::protocol::{CloseReason, ConnId, PresenceMember, StreamPosition, UserId};
use crate::server::{Presence, hub::Shared};
use crate::{EncodeError, RequestError};

/// What an engine answers, later: a boxed future, so that [`Engine`] stays a
/// trait object.
pub type EngineFuture<T> = Pin<Box<dyn Future<Output = Result<T, EngineError>> + Send>>;

/// The reply to a request sent to a user ([`Engine::request_user`]), later.
pub type ReplyFuture = Pin<Box<dyn Future<Output = Result<RawReply, RequestError>> + Send>>;

/// An engine could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The engine's service cannot be reached now.
    #[error("the engine is unavailable: {0}")]
    Unavailable(String),
    /// The event could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// How a channel behaves: its history and its presence. Set per channel
/// pattern with [`crate::server::ServerBuilder::channel_options`] or the
/// `[[server.channels]]` tables of the settings file (beside the table's
/// `pattern`, with `history_ttl_ms` in milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelOptions {
    /// Publications kept for recovery: the last this many. Default 0 (no
    /// history: a resubscribe recovers only when nothing was published since).
    pub history_size: usize,
    /// How long a publication stays in the history. Default 5 minutes.
    #[serde(rename = "history_ttl_ms", with = "crate::settings::de::millis")]
    pub history_ttl: Duration,
    /// The most the history of one channel holds, in bytes of encoded frames
    /// (both encodings counted); the oldest publications go first. Default 1 MiB.
    pub history_max_bytes: usize,
    /// Whether the channel keeps presence: which users are subscribed, a
    /// snapshot on request and join/leave diffs to watchers. Default off.
    pub presence: bool,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        Self {
            history_size: 0,
            history_ttl: Duration::from_secs(300),
            history_max_bytes: 1 << 20,
            presence: false,
        }
    }
}

impl ChannelOptions {
    /// Whether publications are kept at all.
    pub fn keeps_history(&self) -> bool {
        self.history_size > 0 && self.history_max_bytes > 0 && !self.history_ttl.is_zero()
    }
}

/// What [`Engine::publish`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The publication's position in its channel; `None` when the channel is
    /// not kept at all (no subscriber anywhere and no history), so that no
    /// client can hold a position of it.
    pub position: Option<StreamPosition>,
    /// Subscribers on this server it was queued for during the call (an engine
    /// that delivers through a remote service delivers later, and reports 0).
    pub delivered_here: usize,
}

/// What [`Engine::recover`] answers.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The channel's position now.
    pub position: StreamPosition,
    /// The publications after `since`, oldest first, when the history holds
    /// every one of them (empty when nothing was published since); `None`
    /// when it does not, or when no `since` was given.
    pub publications: Option<Vec<Arc<Publication>>>,
}

/// A change of a channel's presence, told by the engine to each server
/// ([`Node::presence_changed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    /// The user became a member (or its info changed).
    Joined(PresenceMember),
    /// The user is no longer a member (after the grace period).
    Left(UserId),
}

/// Channels' shared state: positions, history, presence, users. See the
/// [module documentation](self).
pub trait Engine: Send + Sync + 'static {
    /// Connects the engine to the server it serves, before any other call.
    fn start(&self, node: Node);

    /// Publishes `event` on `channel`: gives it the next position, keeps it in
    /// the history if `options` ask for one, and delivers it to every server
    /// with subscribers. Publications on one channel keep the order of the
    /// calls.
    fn publish(
        &self,
        channel: &str,
        event: &OutgoingEvent<'_>,
        options: &ChannelOptions,
    ) -> EngineFuture<Published>;

    /// This server has its first subscriber of `channel`: deliver the
    /// channel's publications to it from now on. Resolves once they will be.
    fn subscribe(&self, channel: &str) -> EngineFuture<()>;

    /// This server has no subscriber of `channel` any more.
    fn unsubscribe(&self, channel: &str);

    /// The channel's position, and the publications after `since` when its
    /// history holds them all.
    fn recover(
        &self,
        channel: &str,
        since: Option<&StreamPosition>,
        options: &ChannelOptions,
    ) -> EngineFuture<Recovery>;

    /// Every publication the channel's history holds, oldest first.
    fn history(
        &self,
        channel: &str,
        options: &ChannelOptions,
    ) -> EngineFuture<Vec<Arc<Publication>>>;

    /// Connection `conn` of `member.user_id` subscribed to `channel`.
    fn presence_join(&self, channel: &str, member: PresenceMember, conn: ConnId);

    /// Connection `conn` of `user` left `channel`; the user leaves after the
    /// grace period unless another of its connections joins meanwhile.
    fn presence_leave(&self, channel: &str, user: &UserId, conn: ConnId);

    /// The channel's members, sorted by user id.
    fn presence(&self, channel: &str) -> EngineFuture<Vec<PresenceMember>>;

    /// Connection `conn` of `user` opened.
    fn user_join(&self, user: &UserId, conn: ConnId);

    /// Connection `conn` of `user` closed; the user goes offline after the
    /// grace period unless another of its connections opens meanwhile.
    fn user_leave(&self, user: &UserId, conn: ConnId);

    /// Sends `event` to every connection of `user`, on every server.
    fn send_to_user(&self, user: &UserId, event: &OutgoingEvent<'_>) -> EngineFuture<usize>;

    /// Closes every connection of `user`, on every server, gracefully with
    /// `reason` (as [`Server::disconnect`](crate::Server::disconnect) does
    /// one). Resolves to how many connections of this server it closed.
    fn disconnect_user(&self, user: &UserId, reason: &CloseReason) -> EngineFuture<usize>;

    /// Sends the request `event` to one connection of `user` (on this server
    /// when it has one, else on another server of the engine), waits for the
    /// reply at most `timeout`, and answers it as it came.
    /// [`RequestError::NotConnected`] when the user has no open connection.
    fn request_user(
        &self,
        user: &UserId,
        event: &OutgoingEvent<'_>,
        timeout: Duration,
    ) -> ReplyFuture;

    /// The engine's own health, served in `/health` as the check `engine`
    /// (a failing engine makes the status `failing`); `None` for an engine
    /// with nothing outside the process to fail, as the memory engine.
    fn health(&self) -> Option<Result<(), String>> {
        None
    }

    /// The engine's own metrics, served in `/metrics` beside the server's.
    fn metrics(&self) -> Vec<EngineMetric> {
        Vec::new()
    }
}

/// One of an engine's metrics ([`Engine::metrics`]), served with the prefix
/// `sente_lite_engine_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineMetric {
    /// The name, after the prefix (`redis_reconnects`, say).
    pub name: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// A counter (only goes up) or a gauge.
    pub counter: bool,
    /// Its value now.
    pub value: u64,
}

/// The server as an engine sees it: where publications, presence changes and
/// user events are delivered. Cheap to clone; it does not keep the server alive.
#[derive(Clone)]
pub struct Node {
    shared: Weak<Shared>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("running", &(self.shared.strong_count() > 0))
            .finish()
    }
}

impl Node {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        Self {
            shared: Arc::downgrade(shared),
        }
    }

    /// Queues `publication` for this server's subscribers of its channel, in
    /// the order of the calls; `event` encodes it when the publication does not
    /// hold the encoding a subscriber needs. Returns how many subscribers it
    /// was queued for, or the first encoding error (the other subscribers
    /// still get it).
    pub fn deliver(
        &self,
        publication: &Arc<Publication>,
        event: Option<&OutgoingEvent<'_>>,
    ) -> Result<usize, EncodeError> {
        match self.shared.upgrade() {
            Some(shared) => shared.channels.deliver(&shared, publication, event),
            None => Ok(0),
        }
    }

    /// This server's subscribers of `channel` may have missed publications:
    /// each is unsubscribed and told to subscribe again (`sl/resub`), which
    /// replays what it missed from the channel's history or tells it of the
    /// gap. Call it when delivery to this server broke (the link to the
    /// engine's service dropped, the channel's epoch changed), **before**
    /// delivering anything that came after the break: a client resumes from
    /// the largest position it holds. Returns how many connections were told
    /// (see [`crate::Server::resubscribe`]).
    pub fn resubscribe(&self, channel: &str) -> usize {
        match self.shared.upgrade() {
            Some(shared) => shared.channels.resubscribe(&shared, channel),
            None => 0,
        }
    }

    /// Sends the request `event` to one of this server's connections of
    /// `user` and waits for its reply, at most `timeout` (the request is sent
    /// before this returns). [`RequestError::NotConnected`] when the user has
    /// no connection here.
    pub fn request_user(
        &self,
        user: &UserId,
        event: &OutgoingEvent<'_>,
        timeout: Duration,
    ) -> ReplyFuture {
        let ctx = self
            .shared
            .upgrade()
            .and_then(|shared| shared.user_conns(user).into_iter().next());
        match ctx {
            Some(ctx) => Box::pin(ctx.request_raw(event, timeout)),
            None => Box::pin(std::future::ready(Err(RequestError::NotConnected))),
        }
    }

    /// Whether `user` has an open connection on this server.
    pub fn has_user(&self, user: &UserId) -> bool {
        self.shared
            .upgrade()
            .is_some_and(|shared| !shared.user_conns(user).is_empty())
    }

    /// Tells this server's watchers of `channel` about a presence change.
    pub fn presence_changed(&self, channel: &str, change: PresenceChange) {
        if let Some(shared) = self.shared.upgrade() {
            shared.watchers.changed(&shared, channel, change);
        }
    }

    /// Tells this server's presence listeners ([`crate::Server::presence`])
    /// that a user came online or went offline.
    pub fn user_presence(&self, presence: Presence) {
        if let Some(shared) = self.shared.upgrade() {
            let _ = shared.presence.send(presence);
        }
    }

    /// Sends `event` to this server's connections of `user`. Returns how many
    /// it was queued for.
    pub fn deliver_to_user(
        &self,
        user: &UserId,
        event: &OutgoingEvent<'_>,
    ) -> Result<usize, EncodeError> {
        match self.shared.upgrade() {
            Some(shared) => shared.send_to_user_here(user, event),
            None => Ok(0),
        }
    }

    /// Closes this server's connections of `user` gracefully with `reason`;
    /// how many there were.
    pub fn disconnect_user(&self, user: &UserId, reason: &CloseReason) -> usize {
        match self.shared.upgrade() {
            Some(shared) => shared.disconnect_user_here(user, reason),
            None => 0,
        }
    }

    /// Runs `expire` once the presence grace has passed (at once without a
    /// grace, or outside a Tokio runtime): how an engine lets a member or a
    /// user leave only if no connection of theirs came back meanwhile.
    pub fn after_grace(&self, expire: impl FnOnce() + Send + 'static) {
        let grace = self.presence_grace();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !grace.is_zero() => {
                runtime.spawn(async move {
                    tokio::time::sleep(grace).await;
                    expire();
                });
            }
            _ => expire(),
        }
    }

    /// How long a user without connections still counts as present.
    pub fn presence_grace(&self) -> Duration {
        self.shared
            .upgrade()
            .map_or(Duration::ZERO, |shared| shared.config.presence_grace)
    }
}
