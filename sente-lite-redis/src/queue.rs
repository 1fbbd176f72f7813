//! Publications on their way to Redis: bounded in count and bytes, sent in
//! the order of the calls, many to a round trip.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use redis::Value;
use sente_lite::engine::{EngineError, Published};
use sente_lite::protocol::StreamPosition;
use tokio::sync::{Notify, oneshot};

use crate::link::bump;
use crate::{RedisConfig, scripts};

/// The most publications sent in one round trip.
const BATCH: usize = 256;

/// What waits to be sent to Redis.
pub(crate) enum Pending {
    /// A publication, whose publisher waits for its position.
    Publish(Publish),
    /// A message for the other servers that hold a user: all of them, or
    /// (with `one`) the first, told how many it reached.
    Route {
        user: String,
        message: Vec<u8>,
        one: Option<oneshot::Sender<Result<u64, String>>>,
    },
    /// A message on a Redis channel.
    Send { channel: String, message: Vec<u8> },
}

impl Pending {
    fn size(&self) -> usize {
        match self {
            Self::Publish(p) => p.packed.len(),
            Self::Route { message, .. } | Self::Send { message, .. } => message.len(),
        }
    }
}

/// One publication waiting.
pub(crate) struct Publish {
    pub(crate) position_key: String,
    pub(crate) history_key: String,
    pub(crate) redis_channel: String,
    pub(crate) packed: Vec<u8>,
    pub(crate) epoch: String,
    pub(crate) history_size: usize,
    pub(crate) history_ttl_ms: u64,
    pub(crate) history_max_bytes: usize,
    pub(crate) retention_ms: u64,
    pub(crate) reply: oneshot::Sender<Result<Published, EngineError>>,
}

#[derive(Default)]
struct Waiting {
    items: VecDeque<Pending>,
    bytes: usize,
}

/// The queue was full: what was pushed is dropped.
#[derive(Debug)]
pub(crate) struct QueueFull;

/// The queue, and what it is bounded by.
pub(crate) struct PublishQueue {
    waiting: Mutex<Waiting>,
    notify: Arc<Notify>,
    max: usize,
    max_bytes: usize,
}

impl PublishQueue {
    pub(crate) fn new(config: &RedisConfig) -> Self {
        Self {
            waiting: Mutex::new(Waiting::default()),
            notify: Arc::new(Notify::new()),
            max: config.max_pending.max(1),
            max_bytes: config.max_pending_bytes,
        }
    }

    /// Queues `pending`, or drops it when the queue is full.
    pub(crate) fn push(&self, pending: Pending) -> Result<(), QueueFull> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let size = pending.size();
        if waiting.items.len() >= self.max
            || (!waiting.items.is_empty() && waiting.bytes + size > self.max_bytes)
        {
            return Err(QueueFull);
        }
        waiting.bytes += size;
        waiting.items.push_back(pending);
        drop(waiting);
        self.notify.notify_one();
        Ok(())
    }

    fn take(&self) -> Vec<Pending> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let n = waiting.items.len().min(BATCH);
        let batch: Vec<Pending> = waiting.items.drain(..n).collect();
        waiting.bytes -= batch.iter().map(Pending::size).sum::<usize>();
        batch
    }
}

/// Sends what the queue holds until the engine is dropped.
pub(crate) async fn run(engine: Weak<crate::engine::Inner>) {
    loop {
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let batch = inner.queue.take();
        if batch.is_empty() {
            // A wake-up given meanwhile is kept as a permit.
            let notify = Arc::clone(&inner.queue.notify);
            drop(inner);
            notify.notified().await;
            continue;
        }
        send(&inner, batch).await;
    }
}

async fn send(inner: &Arc<crate::engine::Inner>, batch: Vec<Pending>) {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for pending in &batch {
        match pending {
            Pending::Publish(p) => {
                pipe.cmd("EVALSHA")
                    .arg(scripts::PUBLISH.get_hash())
                    .arg(2)
                    .arg(&p.position_key)
                    .arg(&p.history_key)
                    .arg(&p.epoch)
                    .arg(&p.packed)
                    .arg(p.history_size)
                    .arg(p.history_ttl_ms)
                    .arg(p.history_max_bytes)
                    .arg(p.retention_ms)
                    .arg(&p.redis_channel);
            }
            Pending::Route { user, message, one } => {
                pipe.cmd("EVALSHA")
                    .arg(scripts::ROUTE.get_hash())
                    .arg(1)
                    .arg(inner.keys.user_nodes())
                    .arg(user)
                    .arg(&inner.id)
                    .arg(message)
                    .arg(inner.keys.prefix())
                    .arg(if one.is_some() { "one" } else { "all" });
            }
            Pending::Send { channel, message } => {
                pipe.cmd("PUBLISH").arg(channel).arg(message);
            }
        }
    }
    let mut commands = inner.link.commands();
    let mut results: Result<Vec<redis::RedisResult<Value>>, _> =
        pipe.query_async(&mut commands).await;
    // After a restart Redis has forgotten the scripts: nothing of the batch
    // ran, so it is sent again once they are loaded.
    if let Ok(values) = &results
        && values.iter().all(is_no_script)
    {
        results = match crate::engine::load_scripts(&mut commands).await {
            Ok(()) => pipe.query_async(&mut commands).await,
            Err(e) => Err(e),
        };
    }
    let failures = &inner.link.counters.publish_failures;
    match results {
        Ok(values) => {
            for (pending, value) in batch.into_iter().zip(values) {
                let value = value.map_err(|e| e.to_string());
                match pending {
                    Pending::Publish(p) => {
                        let result = value
                            .and_then(|v| {
                                redis::from_redis_value::<(String, u64)>(v)
                                    .map_err(|e| e.to_string())
                            })
                            .map(|(epoch, offset)| Published {
                                position: Some(StreamPosition { epoch, offset }),
                                delivered_here: 0,
                            })
                            .map_err(|e| {
                                bump(failures);
                                EngineError::Unavailable(format!(
                                    "Redis refused the publication: {e}"
                                ))
                            });
                        let _ = p.reply.send(result);
                    }
                    Pending::Route { user, one, .. } => {
                        let value = value.and_then(|v| {
                            redis::from_redis_value::<u64>(v).map_err(|e| e.to_string())
                        });
                        if let Err(e) = &value {
                            bump(failures);
                            tracing::warn!(target: "sente_lite_redis", user, error = %e, "a message for a user could not reach the other servers");
                        }
                        if let Some(one) = one {
                            let _ = one.send(value);
                        }
                    }
                    Pending::Send { channel, .. } => {
                        if let Err(e) = value {
                            bump(failures);
                            tracing::warn!(target: "sente_lite_redis", channel, error = %e, "a message could not be sent on Redis");
                        }
                    }
                }
            }
        }
        Err(e) => {
            inner.link.mark_down(&e);
            tracing::warn!(target: "sente_lite_redis", error = %e, sends = batch.len(), "publications and user events could not be sent to Redis");
            for pending in batch {
                bump(failures);
                match pending {
                    Pending::Publish(p) => {
                        let _ = p.reply.send(Err(EngineError::Unavailable(format!(
                            "Redis is unreachable (the publication may or may not have been made): {e}"
                        ))));
                    }
                    Pending::Route { one: Some(one), .. } => {
                        let _ = one.send(Err(format!("Redis is unreachable: {e}")));
                    }
                    Pending::Route { .. } | Pending::Send { .. } => {}
                }
            }
        }
    }
}

fn is_no_script(value: &redis::RedisResult<Value>) -> bool {
    matches!(value, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
}
