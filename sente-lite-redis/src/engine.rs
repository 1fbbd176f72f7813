//! [`RedisEngine`]: the engine trait on Redis, and the tasks that keep this
//! server in step with it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};

use redis::{PushInfo, PushKind, Value};
use sente_lite::RequestError;
use sente_lite::engine::{
    ChannelOptions, Engine, EngineError, EngineFuture, EngineMetric, Node, OutgoingEvent,
    Publication, Published, Recovery, ReplyFuture,
};
use sente_lite::protocol::{CloseReason, ConnId, PresenceMember, StreamPosition, UserId};
use tokio::sync::oneshot;

use crate::config::Keys;
use crate::link::{ConnectError, Link, OnPush, bump};
use crate::members::{self, Members};
use crate::queue::{Pending, Publish, PublishQueue};
use crate::requests::{self, Requests};
use crate::streams::{self, Streams, millis};
use crate::{RedisConfig, scripts, wire};

/// The engine that lets several server processes act as one through Redis:
/// a publication on any server reaches the subscribers of every server, the
/// history and positions live in Redis (a client resumes on whichever server
/// it reconnects to), presence and users are the union of all servers, and
/// `send_to_user` reaches a user's connections wherever they are. See the
/// [crate documentation](crate).
#[derive(Clone)]
pub struct RedisEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("node", &self.inner.id)
            .field("url", &self.inner.config.url)
            .field("prefix", &self.inner.config.prefix)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: RedisConfig,
    pub(crate) keys: Keys,
    /// This server's id among the servers on the Redis: 16 hex digits.
    pub(crate) id: String,
    pub(crate) link: Link,
    pub(crate) node: OnceLock<Node>,
    pub(crate) streams: Streams,
    pub(crate) members: Arc<Members>,
    pub(crate) queue: PublishQueue,
    pub(crate) requests: Requests,
    /// Itself, for what Redis pushes that starts a task.
    this: OnceLock<Weak<Inner>>,
}

/// A new epoch: 16 hex digits, random.
pub(crate) fn new_epoch() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// Loads every script into Redis (after a restart it has forgotten them).
pub(crate) async fn load_scripts(
    commands: &mut redis::aio::ConnectionManager,
) -> Result<(), redis::RedisError> {
    for script in [
        &*scripts::PUBLISH,
        &*scripts::RECOVER,
        &*scripts::MEMBER_SYNC,
        &*scripts::USER_SYNC,
        &*scripts::HEARTBEAT,
        &*scripts::REAP,
        &*scripts::ROUTE,
    ] {
        script.load_async(commands).await?;
    }
    Ok(())
}

impl RedisEngine {
    /// Connects to Redis with `config`. Fails when Redis cannot be reached
    /// now; once connected, the engine rides out Redis going away (see the
    /// [crate documentation](crate)). Call it inside the Tokio runtime that
    /// runs the server.
    pub async fn connect(config: RedisConfig) -> Result<Self, ConnectError> {
        let target: Arc<OnceLock<Weak<dyn OnPush>>> = Arc::new(OnceLock::new());
        let link = Link::connect(&config, Arc::clone(&target)).await?;
        load_scripts(&mut link.commands())
            .await
            .map_err(|source| ConnectError::new(&config.url, source))?;
        let inner = Arc::new(Inner {
            keys: Keys::new(&config.prefix),
            id: new_epoch(),
            link,
            node: OnceLock::new(),
            streams: Streams::default(),
            members: Arc::new(Members::default()),
            queue: PublishQueue::new(&config),
            requests: Requests::new(config.max_pending),
            this: OnceLock::new(),
            config,
        });
        let _ = inner.this.set(Arc::downgrade(&inner));
        let weak: Weak<dyn OnPush> = Arc::downgrade(&inner) as Weak<dyn OnPush>;
        let _ = target.set(weak);
        Ok(Self { inner })
    }

    /// This server's id among the servers on the Redis (random, new at
    /// every start).
    pub fn node_id(&self) -> &str {
        &self.inner.id
    }

    /// Whether Redis answered the last check.
    pub fn is_connected(&self) -> bool {
        self.inner.link.health().is_ok()
    }
}

impl OnPush for Inner {
    fn push(&self, info: PushInfo) {
        match info.kind {
            PushKind::Message => {
                let mut data = info.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(message))) =
                    (data.next(), data.next())
                else {
                    bump(&self.link.counters.malformed);
                    return;
                };
                if channel == self.keys.presence_events().as_bytes() {
                    members::arrived(self, &message);
                } else if channel == self.keys.node(&self.id).as_bytes() {
                    match message.split_first() {
                        Some((b'e', body)) => self.user_event(body),
                        Some((b'k', body)) => self.user_kick(body),
                        Some((b'q', body)) => {
                            if let Some(inner) = self.this.get().and_then(Weak::upgrade) {
                                requests::asked(&inner, body);
                            }
                        }
                        Some((b'r', body)) => requests::answered(self, body),
                        _ => bump(&self.link.counters.malformed),
                    }
                } else if let Some(name) = self.keys.channel_of(&channel) {
                    self.streams.arrived(self, name, &message);
                }
            }
            PushKind::Disconnection => {
                self.link.mark_down("the link for publications dropped");
                self.streams.link_lost();
            }
            _ => {}
        }
    }
}

impl Inner {
    /// An event for a user of this server, sent by another: `len:user` then
    /// the packed event (after the kind byte `e`).
    fn user_event(&self, message: &[u8]) {
        let Some(node) = self.node.get() else {
            return;
        };
        let parsed = wire::split_field(message).and_then(|(len, rest)| {
            let len: usize = len.parse().ok()?;
            let user = std::str::from_utf8(rest.get(..len)?).ok()?;
            Some((user, wire::unpack(&rest[len..])?))
        });
        let Some((user, packed)) = parsed else {
            bump(&self.link.counters.malformed);
            return;
        };
        let user = UserId(user.to_owned());
        let delivered =
            OutgoingEvent::with_payloads(packed.id, packed.json, packed.postcard, |e| {
                node.deliver_to_user(&user, e)
            });
        if let Err(e) = delivered {
            tracing::warn!(target: "sente_lite_redis", user = %user, error = %e, "an event for a user could not be framed for some connections");
        }
    }

    /// Sends `kind` and `body` to the other servers that hold `user`
    /// (`len:user` first), queued with the publications, so that what is
    /// sent to one user keeps its order.
    fn route_to_user(&self, user: &UserId, kind: u8, body: &[u8], what: &str) {
        let mut message = vec![kind];
        message.extend_from_slice(format!("{}:{}", user.0.len(), user.0).as_bytes());
        message.extend_from_slice(body);
        let route = Pending::Route {
            user: user.0.clone(),
            message,
            one: None,
        };
        if self.queue.push(route).is_err() {
            bump(&self.link.counters.publish_failures);
            tracing::warn!(target: "sente_lite_redis", user = %user, "too many sends wait for Redis: {what} did not reach the other servers");
        }
    }

    /// A disconnect of a user of this server, asked by another: `len:user`
    /// then the close reason as JSON (after the kind byte `k`).
    fn user_kick(&self, message: &[u8]) {
        let Some(node) = self.node.get() else {
            return;
        };
        let parsed = wire::split_field(message).and_then(|(len, rest)| {
            let len: usize = len.parse().ok()?;
            let user = std::str::from_utf8(rest.get(..len)?).ok()?;
            let reason: CloseReason = serde_json::from_slice(&rest[len..]).ok()?;
            Some((user, reason))
        });
        let Some((user, reason)) = parsed else {
            bump(&self.link.counters.malformed);
            return;
        };
        node.disconnect_user(&UserId(user.to_owned()), &reason);
    }

    /// One beat: tells Redis this server is alive, checks the links, removes
    /// dead servers, looks for publications missed while the link was down.
    async fn beat(self: &Arc<Self>, beats: u64) {
        let (up, back) = self.link.check().await;
        if !up {
            return;
        }
        let mut commands = self.link.commands();
        if back {
            if let Err(e) = load_scripts(&mut commands).await {
                self.link.mark_down(&e);
                return;
            }
            members::wake(self);
        }
        let heard: Result<i64, _> = scripts::HEARTBEAT
            .key(self.keys.nodes())
            .key(self.keys.beat(&self.id))
            .arg(&self.id)
            .invoke_async(&mut commands)
            .await;
        match heard {
            Ok(1) if beats > 0 => {
                tracing::warn!(target: "sente_lite_redis", node = %self.id, "Redis did not know this server (it lost its data, or took the server for dead): presence told again");
                self.members.all_dirty();
            }
            Ok(_) => {}
            Err(e) => {
                self.link.mark_down(&e);
                return;
            }
        }
        let reaped: Result<u64, _> = scripts::REAP
            .key(self.keys.nodes())
            .arg(millis(self.config.node_timeout))
            .arg(self.keys.prefix())
            .arg(self.keys.presence_events())
            .invoke_async(&mut commands)
            .await;
        if let Ok(n) = reaped
            && n > 0
        {
            self.link
                .counters
                .nodes_reaped
                .fetch_add(n, Ordering::Relaxed);
            tracing::info!(target: "sente_lite_redis", servers = n, "removed servers not heard from");
        }
        if let Err(e) = self.streams.check(self).await {
            self.link.mark_down(&e);
            return;
        }
        let every = (self.config.retention.as_millis() / 4)
            .checked_div(self.config.heartbeat.as_millis().max(1))
            .unwrap_or(1)
            .max(1);
        if u128::from(beats) % every == 0
            && let Err(e) = self.streams.refresh(self).await
        {
            self.link.mark_down(&e);
        }
    }
}

/// Beats until the engine is dropped.
async fn heartbeat(engine: Weak<Inner>) {
    let Some(every) = engine.upgrade().map(|inner| inner.config.heartbeat) else {
        return;
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for beats in 0.. {
        ticks.tick().await;
        let Some(inner) = engine.upgrade() else {
            return;
        };
        inner.beat(beats).await;
    }
}

fn failed<T: Send + 'static>(error: EngineError) -> EngineFuture<T> {
    Box::pin(std::future::ready(Err(error)))
}

impl Engine for RedisEngine {
    fn start(&self, node: Node) {
        if self.inner.node.set(node).is_err() {
            tracing::error!(target: "sente_lite_redis", "a RedisEngine serves one server: this one is already started");
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(target: "sente_lite_redis", "the RedisEngine must be started inside a Tokio runtime");
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        runtime.spawn(crate::queue::run(weak.clone()));
        runtime.spawn(streams::run(weak.clone()));
        runtime.spawn(members::run(weak.clone()));
        runtime.spawn(heartbeat(weak));
        let inner = Arc::clone(&self.inner);
        runtime.spawn(async move {
            let mut pushes = inner.link.pushes.clone();
            let channels = [inner.keys.presence_events(), inner.keys.node(&inner.id)];
            if let Err(e) = pushes.subscribe(&channels).await {
                // Subscribed again by the link once Redis answers.
                inner.link.mark_down(&e);
            }
        });
    }

    fn publish(
        &self,
        channel: &str,
        event: &OutgoingEvent<'_>,
        options: &ChannelOptions,
    ) -> EngineFuture<Published> {
        let inner = &self.inner;
        let (tx, rx) = oneshot::channel();
        let keeps = options.keeps_history();
        let pending = Pending::Publish(Publish {
            position_key: inner.keys.position(channel),
            history_key: inner.keys.history(channel),
            redis_channel: inner.keys.publications(channel),
            packed: wire::pack_publication(event, &inner.id),
            epoch: new_epoch(),
            history_size: if keeps { options.history_size } else { 0 },
            history_ttl_ms: millis(options.history_ttl),
            history_max_bytes: options.history_max_bytes,
            retention_ms: millis(inner.config.retention.max(options.history_ttl)),
            reply: tx,
        });
        if inner.queue.push(pending).is_err() {
            bump(&inner.link.counters.publish_failures);
            return failed(EngineError::Unavailable(
                "too many publications wait for Redis".into(),
            ));
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(EngineError::Unavailable("the engine stopped".into())))
        })
    }

    fn subscribe(&self, channel: &str) -> EngineFuture<()> {
        let rx = self.inner.streams.subscribe(channel);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(EngineError::Unavailable("the engine stopped".into())))
        })
    }

    fn unsubscribe(&self, channel: &str) {
        self.inner.streams.unsubscribe(channel);
    }

    fn recover(
        &self,
        channel: &str,
        since: Option<&StreamPosition>,
        options: &ChannelOptions,
    ) -> EngineFuture<Recovery> {
        let (inner, channel, since, options) = (
            Arc::clone(&self.inner),
            channel.to_owned(),
            since.cloned(),
            options.clone(),
        );
        Box::pin(async move {
            let (position, publications) =
                streams::recover(&inner, &channel, since.as_ref(), &options, false).await?;
            inner
                .streams
                .reach(&channel, &position, inner.config.command_timeout)
                .await;
            Ok(Recovery {
                position,
                publications,
            })
        })
    }

    fn history(
        &self,
        channel: &str,
        options: &ChannelOptions,
    ) -> EngineFuture<Vec<Arc<Publication>>> {
        let (inner, channel, options) =
            (Arc::clone(&self.inner), channel.to_owned(), options.clone());
        Box::pin(async move {
            let (_, publications) =
                streams::recover(&inner, &channel, None, &options, true).await?;
            Ok(publications.unwrap_or_default())
        })
    }

    fn presence_join(&self, channel: &str, member: PresenceMember, conn: ConnId) {
        self.inner.members.join(channel, member, conn);
    }

    fn presence_leave(&self, channel: &str, user: &UserId, conn: ConnId) {
        self.inner.members.leave(&self.inner, channel, user, conn);
    }

    fn presence(&self, channel: &str) -> EngineFuture<Vec<PresenceMember>> {
        let (inner, channel) = (Arc::clone(&self.inner), channel.to_owned());
        Box::pin(async move { members::list(&inner, &channel).await })
    }

    fn user_join(&self, user: &UserId, conn: ConnId) {
        self.inner.members.user_join(user, conn);
    }

    fn user_leave(&self, user: &UserId, conn: ConnId) {
        self.inner.members.user_leave(&self.inner, user, conn);
    }

    fn request_user(
        &self,
        user: &UserId,
        event: &OutgoingEvent<'_>,
        timeout: std::time::Duration,
    ) -> ReplyFuture {
        let Some(node) = self.inner.node.get() else {
            return Box::pin(std::future::ready(Err(RequestError::NotConnected)));
        };
        if node.has_user(user) {
            node.request_user(user, event, timeout)
        } else {
            requests::ask(&self.inner, user, event, timeout)
        }
    }

    fn send_to_user(&self, user: &UserId, event: &OutgoingEvent<'_>) -> EngineFuture<usize> {
        let inner = &self.inner;
        let here = match inner.node.get() {
            Some(node) => match node.deliver_to_user(user, event) {
                Ok(n) => n,
                Err(e) => return failed(e.into()),
            },
            None => 0,
        };
        inner.route_to_user(user, b'e', &wire::pack(event), "an event for a user");
        Box::pin(std::future::ready(Ok(here)))
    }

    fn disconnect_user(&self, user: &UserId, reason: &CloseReason) -> EngineFuture<usize> {
        let inner = &self.inner;
        let here = inner
            .node
            .get()
            .map_or(0, |node| node.disconnect_user(user, reason));
        let reason = serde_json::to_vec(reason).unwrap_or_default();
        inner.route_to_user(user, b'k', &reason, "a disconnect of a user");
        Box::pin(std::future::ready(Ok(here)))
    }

    fn health(&self) -> Option<Result<(), String>> {
        Some(self.inner.link.health())
    }

    fn metrics(&self) -> Vec<EngineMetric> {
        let c = &self.inner.link.counters;
        let counter = |name, help, value: &std::sync::atomic::AtomicU64| EngineMetric {
            name,
            help,
            counter: true,
            value: value.load(Ordering::Relaxed),
        };
        vec![
            EngineMetric {
                name: "redis_up",
                help: "1 when Redis answered the last check, 0 when it did not",
                counter: false,
                value: u64::from(self.inner.link.health().is_ok()),
            },
            counter(
                "redis_reconnects",
                "Times Redis became reachable again after being away",
                &c.reconnects,
            ),
            counter(
                "redis_publish_failures",
                "Publications that failed: Redis away, refused, or too many waiting",
                &c.publish_failures,
            ),
            counter(
                "redis_gaps",
                "Channels whose publications were missed here; their subscribers were told to resubscribe",
                &c.gaps,
            ),
            counter(
                "redis_duplicates",
                "Publications that arrived twice from Redis (dropped)",
                &c.duplicates,
            ),
            counter(
                "redis_malformed",
                "Messages from Redis that were not understood (dropped)",
                &c.malformed,
            ),
            counter(
                "redis_nodes_reaped",
                "Servers this one found dead and removed",
                &c.nodes_reaped,
            ),
        ]
    }
}
