//! [`MemoryEngine`]: channels, history and presence in this process.

mod members;
mod streams;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::{
    ChannelOptions, Engine, EngineFuture, Node, OutgoingEvent, Publication, Published, Recovery,
    ReplyFuture,
};
use crate::RequestError;
use crate::protocol::{CloseReason, ConnId, PresenceMember, StreamPosition, UserId};

/// The bounds of a [`MemoryEngine`]; `[server.memory_engine]` of the
/// [settings file](crate::settings), with `retention_ms` in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryEngineConfig {
    /// The most all channels' histories hold together, in bytes of encoded
    /// frames. A publication that takes the total past it pushes out the
    /// oldest publications of its own channel. Default 64 MiB.
    pub max_history_bytes: usize,
    /// How long a channel without subscribers keeps its position (and so its
    /// epoch) after its last publication or subscriber, at least; a channel
    /// whose history has not expired yet is kept too. Default 10 minutes.
    #[serde(rename = "retention_ms", with = "crate::settings::de::millis")]
    pub retention: Duration,
    /// The most channels kept without subscribers; past it, the one idle
    /// longest is forgotten (checked every second). Default 100,000.
    pub max_idle_channels: usize,
}

impl Default for MemoryEngineConfig {
    fn default() -> Self {
        Self {
            max_history_bytes: 64 << 20,
            retention: Duration::from_secs(600),
            max_idle_channels: 100_000,
        }
    }
}

/// The engine that keeps everything in this process: the default, and what
/// one server needs. Positions and history are lost when the process exits
/// (every channel then starts a new epoch). One engine serves one server
/// (clones share it: keep one to read [`MemoryEngine::history_bytes`]).
#[derive(Clone, Default)]
pub struct MemoryEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryEngine")
            .field("config", &self.inner.streams.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    node: OnceLock<Node>,
    streams: Arc<streams::Streams>,
    members: members::Members,
}

impl MemoryEngine {
    /// An engine with the default [`MemoryEngineConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine with these bounds.
    pub fn with_config(config: MemoryEngineConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                node: OnceLock::new(),
                streams: Arc::new(streams::Streams::new(config)),
                members: members::Members::default(),
            }),
        }
    }

    /// The bytes of encoded frames all histories hold now.
    pub fn history_bytes(&self) -> usize {
        self.inner.streams.history_bytes()
    }

    /// The channels whose position the engine keeps now (with or without subscribers).
    pub fn channel_count(&self) -> usize {
        self.inner.streams.len()
    }

    fn node(&self) -> Option<&Node> {
        self.inner.node.get()
    }
}

fn ready<T: Send + 'static>(value: T) -> EngineFuture<T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl Engine for MemoryEngine {
    fn start(&self, node: Node) {
        if self.inner.node.set(node).is_err() {
            tracing::error!(
                target: "sente_lite",
                "a MemoryEngine serves one server: this one is already started, and the new server gets nothing from it"
            );
        }
        self.inner.streams.start_sweeper();
    }

    fn publish(
        &self,
        channel: &str,
        event: &OutgoingEvent<'_>,
        options: &ChannelOptions,
    ) -> EngineFuture<Published> {
        let result = self
            .inner
            .streams
            .publish(channel, event, options, self.node());
        Box::pin(std::future::ready(result))
    }

    fn subscribe(&self, channel: &str) -> EngineFuture<()> {
        self.inner.streams.interest(channel, true);
        ready(())
    }

    fn unsubscribe(&self, channel: &str) {
        self.inner.streams.interest(channel, false);
    }

    fn recover(
        &self,
        channel: &str,
        since: Option<&StreamPosition>,
        options: &ChannelOptions,
    ) -> EngineFuture<Recovery> {
        ready(self.inner.streams.recover(channel, since, options))
    }

    fn history(
        &self,
        channel: &str,
        options: &ChannelOptions,
    ) -> EngineFuture<Vec<Arc<Publication>>> {
        ready(self.inner.streams.history(channel, options))
    }

    fn presence_join(&self, channel: &str, member: PresenceMember, conn: ConnId) {
        if let Some(node) = self.node() {
            self.inner.members.join(node, channel, member, conn);
        }
    }

    fn presence_leave(&self, channel: &str, user: &UserId, conn: ConnId) {
        if let Some(node) = self.node() {
            self.inner.members.leave(node, channel, user, conn);
        }
    }

    fn presence(&self, channel: &str) -> EngineFuture<Vec<PresenceMember>> {
        ready(self.inner.members.list(channel))
    }

    fn user_join(&self, user: &UserId, conn: ConnId) {
        if let Some(node) = self.node() {
            self.inner.members.user_join(node, user, conn);
        }
    }

    fn user_leave(&self, user: &UserId, conn: ConnId) {
        if let Some(node) = self.node() {
            self.inner.members.user_leave(node, user, conn);
        }
    }

    fn request_user(
        &self,
        user: &UserId,
        event: &OutgoingEvent<'_>,
        timeout: Duration,
    ) -> ReplyFuture {
        match self.node() {
            Some(node) => node.request_user(user, event, timeout),
            None => Box::pin(std::future::ready(Err(RequestError::NotConnected))),
        }
    }

    fn send_to_user(&self, user: &UserId, event: &OutgoingEvent<'_>) -> EngineFuture<usize> {
        let result = match self.node() {
            Some(node) => node.deliver_to_user(user, event).map_err(Into::into),
            None => Ok(0),
        };
        Box::pin(std::future::ready(result))
    }

    fn disconnect_user(&self, user: &UserId, reason: &CloseReason) -> EngineFuture<usize> {
        let closed = self
            .node()
            .map_or(0, |node| node.disconnect_user(user, reason));
        Box::pin(std::future::ready(Ok(closed)))
    }
}
