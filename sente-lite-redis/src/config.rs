//! [`RedisConfig`]: where Redis is and the bounds of the engine.

use std::time::Duration;

/// How a [`crate::RedisEngine`] reaches Redis, and its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// The Redis server: `redis://host:port[/db]`, `redis://:password@host:port`,
    /// `rediss://` for TLS. Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// Prepended to every key and Redis channel the engine uses, so that
    /// several systems can share one Redis. Servers of one system use the
    /// same prefix. Default `sente-lite`.
    pub prefix: String,
    /// How long a channel without publications keeps its position (and so its
    /// epoch) in Redis; servers with subscribers refresh it, and a history's
    /// ttl extends it. Default 10 minutes.
    pub retention: Duration,
    /// Publications waiting to be sent to Redis, at most; a publication past
    /// it fails at once with [`sente_lite::engine::EngineError::Unavailable`].
    /// Default 10,000.
    pub max_pending: usize,
    /// The bytes of those publications, at most (their packed payloads).
    /// Default 64 MiB.
    pub max_pending_bytes: usize,
    /// How often this server tells Redis it is alive, checks the links and
    /// refreshes what it holds. Default 1 second.
    pub heartbeat: Duration,
    /// A server not heard from for this long is taken for dead: its members,
    /// users and routes are removed by the others. Default 10 seconds.
    pub node_timeout: Duration,
    /// How long one command to Redis may take, and one connection attempt,
    /// before it fails. Default 2 seconds.
    pub command_timeout: Duration,
    /// The longest wait between two reconnection attempts (they start at
    /// 100 ms and double). Default 5 seconds.
    pub max_backoff: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "sente-lite".into(),
            retention: Duration::from_secs(600),
            max_pending: 10_000,
            max_pending_bytes: 64 << 20,
            heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RedisConfig {
    /// The default configuration for the Redis server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// The names of the engine's keys and Redis channels.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The hash of a channel's position.
    pub(crate) fn position(&self, channel: &str) -> String {
        format!("{}:ch:{channel}", self.prefix)
    }

    /// The list of a channel's history.
    pub(crate) fn history(&self, channel: &str) -> String {
        format!("{}:hist:{channel}", self.prefix)
    }

    /// The Redis channel a channel's publications are sent on.
    pub(crate) fn publications(&self, channel: &str) -> String {
        format!("{}:pub:{channel}", self.prefix)
    }

    /// The channel name of a Redis channel of [`Keys::publications`].
    pub(crate) fn channel_of<'a>(&self, redis_channel: &'a [u8]) -> Option<&'a str> {
        let rest = redis_channel.strip_prefix(self.prefix.as_bytes())?;
        std::str::from_utf8(rest.strip_prefix(b":pub:")?).ok()
    }

    /// The Redis channel of one server: users' events routed to it.
    pub(crate) fn node(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// The sorted set of live servers, scored by the time they were last heard from.
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// The set of what one server announced (members and users), for the
    /// others to remove if it dies.
    pub(crate) fn node_holds(&self, node: &str) -> String {
        format!("{}:holds:{node}", self.prefix)
    }

    /// The key that says one server's heartbeat is known.
    pub(crate) fn beat(&self, node: &str) -> String {
        format!("{}:beat:{node}", self.prefix)
    }

    /// The hash of a channel's members: user id to info.
    pub(crate) fn members(&self, channel: &str) -> String {
        format!("{}:pres:{channel}", self.prefix)
    }

    /// The sorted set of `user\0node` pairs of a channel's members.
    pub(crate) fn member_nodes(&self, channel: &str) -> String {
        format!("{}:presn:{channel}", self.prefix)
    }

    /// The sorted set of `user\0node` pairs of online users.
    pub(crate) fn user_nodes(&self) -> String {
        format!("{}:users", self.prefix)
    }

    /// The Redis channel presence changes are sent on (all channels).
    pub(crate) fn presence_events(&self) -> String {
        format!("{}:presence", self.prefix)
    }

    /// The prefix itself.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}
