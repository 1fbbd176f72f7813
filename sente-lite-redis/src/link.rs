//! The links to Redis: one connection for commands, one for what Redis pushes
//! (publications, presence changes, users' events), each reconnecting with
//! backoff; and what the engine tells of them (`/health`, metrics).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo};

use crate::RedisConfig;

/// Something that takes what Redis pushes.
pub(crate) trait OnPush: Send + Sync + 'static {
    fn push(&self, info: PushInfo);
}

/// The two connections.
pub(crate) struct Link {
    pub(crate) commands: ConnectionManager,
    pub(crate) pushes: ConnectionManager,
    state: Mutex<State>,
    pub(crate) counters: Counters,
}

struct State {
    /// Why the last check failed, while it does.
    down: Option<String>,
}

/// What the engine counts.
#[derive(Default)]
pub(crate) struct Counters {
    /// Times the links came back after being down.
    pub(crate) reconnects: AtomicU64,
    /// Publications Redis refused or that could not be sent.
    pub(crate) publish_failures: AtomicU64,
    /// Publications that arrived twice (dropped).
    pub(crate) duplicates: AtomicU64,
    /// Channels whose publications were missed here (subscribers told to resubscribe).
    pub(crate) gaps: AtomicU64,
    /// Messages from Redis that were not understood (dropped).
    pub(crate) malformed: AtomicU64,
    /// Servers found dead and cleaned up by this one.
    pub(crate) nodes_reaped: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Connecting failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis at {url}: {source}")]
pub struct ConnectError {
    url: String,
    #[source]
    source: redis::RedisError,
}

impl ConnectError {
    pub(crate) fn new(url: &str, source: redis::RedisError) -> Self {
        Self {
            url: url.to_owned(),
            source,
        }
    }
}

impl Link {
    /// Connects both links; what Redis pushes goes to whatever `target` holds
    /// by then.
    pub(crate) async fn connect(
        config: &RedisConfig,
        target: Arc<OnceLock<Weak<dyn OnPush>>>,
    ) -> Result<Self, ConnectError> {
        let fail = |source| ConnectError::new(&config.url, source);
        let info = config.url.as_str().into_connection_info().map_err(fail)?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.clone()).map_err(fail)?;
        let push_client = redis::Client::open(info.set_redis_settings(resp3)).map_err(fail)?;
        let managed = || {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.command_timeout))
                .set_response_timeout(Some(config.command_timeout))
                .set_min_delay(std::time::Duration::from_millis(100))
                .set_max_delay(config.max_backoff)
                .set_number_of_retries(3)
        };
        let commands = client
            .get_connection_manager_with_config(managed())
            .await
            .map_err(fail)?;
        let pushes = push_client
            .get_connection_manager_with_config(
                managed()
                    .set_automatic_resubscription()
                    .set_push_sender(move |info: PushInfo| {
                        if let Some(target) = target.get().and_then(Weak::upgrade) {
                            target.push(info);
                        }
                        Ok::<(), redis::aio::SendError>(())
                    }),
            )
            .await
            .map_err(fail)?;
        Ok(Self {
            commands,
            pushes,
            state: Mutex::new(State { down: None }),
            counters: Counters::default(),
        })
    }

    /// A clone of the command connection (cheap: they share one socket).
    pub(crate) fn commands(&self) -> ConnectionManager {
        self.commands.clone()
    }

    /// Why Redis cannot be used now, or `Ok`.
    pub(crate) fn health(&self) -> Result<(), String> {
        match &self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .down
        {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// Checks both links (a round trip each; a broken one reconnects).
    /// Returns whether they are up, and whether they just came back.
    pub(crate) async fn check(&self) -> (bool, bool) {
        let mut commands = self.commands();
        let mut pushes = self.pushes.clone();
        let result = async {
            redis::cmd("PING").query_async::<()>(&mut commands).await?;
            redis::cmd("PING").query_async::<()>(&mut pushes).await
        }
        .await;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) => {
                let back = state.down.take().is_some();
                if back {
                    bump(&self.counters.reconnects);
                    tracing::info!(target: "sente_lite_redis", "Redis is reachable again");
                }
                (true, back)
            }
            Err(e) => {
                if state.down.is_none() {
                    tracing::warn!(target: "sente_lite_redis", error = %e, "Redis is unreachable");
                }
                state.down = Some(format!("Redis is unreachable: {e}"));
                (false, false)
            }
        }
    }

    /// Marks the links down until the next successful check.
    pub(crate) fn mark_down(&self, why: impl std::fmt::Display) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.down.is_none() {
            state.down = Some(format!("Redis is unreachable: {why}"));
        }
    }
}
