//! Channel streams of the memory engine: positions, histories, and how long
//! a channel without subscribers is kept.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::MemoryEngineConfig;
use crate::engine::{
    ChannelOptions, EngineError, Node, OutgoingEvent, Publication, Published, Recovery,
};
use crate::protocol::StreamPosition;

/// How often idle channels and expired publications are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every channel the engine keeps.
#[derive(Default)]
pub(super) struct Streams {
    pub(super) config: MemoryEngineConfig,
    map: RwLock<HashMap<Arc<str>, Arc<Stream>>>,
    /// Bytes held by every history together.
    bytes: AtomicUsize,
    sweeping: AtomicBool,
}

struct Stream {
    name: Arc<str>,
    epoch: Arc<str>,
    state: Mutex<State>,
}

struct State {
    offset: u64,
    history: VecDeque<Kept>,
    /// Bytes held by `history`.
    bytes: usize,
    /// Servers (here: local channels) with subscribers.
    interest: usize,
    last_active: Instant,
    /// The history bounds of the last publication or recovery.
    size: usize,
    max_bytes: usize,
    ttl: Duration,
    /// Forgotten: whoever still holds it looks the channel up again.
    dead: bool,
}

struct Kept {
    publication: Arc<Publication>,
    at: Instant,
    size: usize,
}

impl Streams {
    pub(super) fn new(config: MemoryEngineConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub(super) fn history_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(super) fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn get(&self, name: &str) -> Option<Arc<Stream>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn get_or_create(&self, name: &str) -> Arc<Stream> {
        if let Some(stream) = self.get(name) {
            return stream;
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let stream = map.entry(Arc::from(name)).or_insert_with_key(|name| {
            Arc::new(Stream {
                name: Arc::clone(name),
                epoch: Arc::from(format!("{:016x}", fastrand::u64(..)).as_str()),
                state: Mutex::new(State {
                    offset: 0,
                    history: VecDeque::new(),
                    bytes: 0,
                    interest: 0,
                    last_active: Instant::now(),
                    size: 0,
                    max_bytes: 0,
                    ttl: Duration::ZERO,
                    dead: false,
                }),
            })
        });
        Arc::clone(stream)
    }

    /// Runs `f` on the live state of channel `name`, made if missing
    /// (looked up again if the sweeper forgets it meanwhile).
    fn with_created<T>(&self, name: &str, mut f: impl FnMut(&Stream, &mut State) -> T) -> T {
        loop {
            let stream = self.get_or_create(name);
            let mut state = lock(&stream.state);
            if !state.dead {
                return f(&stream, &mut state);
            }
        }
    }

    /// Runs `f` on the live state of channel `name`, if the engine keeps it.
    fn with_existing<T>(
        &self,
        name: &str,
        mut f: impl FnMut(&Stream, &mut State) -> T,
    ) -> Option<T> {
        loop {
            let stream = self.get(name)?;
            let mut state = lock(&stream.state);
            if !state.dead {
                return Some(f(&stream, &mut state));
            }
        }
    }

    pub(super) fn publish(
        &self,
        channel: &str,
        event: &OutgoingEvent<'_>,
        options: &ChannelOptions,
        node: Option<&Node>,
    ) -> Result<Published, EngineError> {
        let keep = options.keeps_history();
        let publish = |stream: &Stream, state: &mut State| {
            state.offset += 1;
            let now = Instant::now();
            state.last_active = now;
            let publication = Arc::new(Publication::new(
                Arc::clone(&stream.name),
                Arc::clone(&stream.epoch),
                state.offset,
                event,
            ));
            if keep {
                publication.encode_all(event);
                state.bounds(options);
                let size = publication.encoded_size();
                state.history.push_back(Kept {
                    publication: Arc::clone(&publication),
                    at: now,
                    size,
                });
                state.bytes += size;
                self.bytes.fetch_add(size, Ordering::Relaxed);
                self.trim(state, now);
                // Over the engine's bound: this channel gives up its oldest.
                while self.bytes.load(Ordering::Relaxed) > self.config.max_history_bytes
                    && state.history.len() > 1
                {
                    self.pop_oldest(state);
                }
            }
            // Delivered under the lock: every server gets a channel's
            // publications in offset order.
            let delivered = match node {
                Some(node) if state.interest > 0 => node.deliver(&publication, Some(event)),
                _ => Ok(0),
            };
            delivered.map(|delivered_here| Published {
                position: Some(publication.position()),
                delivered_here,
            })
        };
        let published = if keep {
            Some(self.with_created(channel, publish))
        } else {
            self.with_existing(channel, publish)
        };
        match published {
            Some(result) => result.map_err(EngineError::from),
            None => Ok(Published {
                position: None,
                delivered_here: 0,
            }),
        }
    }

    /// A server gained (`true`) or lost its subscribers of `channel`.
    pub(super) fn interest(self: &Arc<Self>, channel: &str, gained: bool) {
        self.start_sweeper();
        self.with_created(channel, |_, state| {
            if gained {
                state.interest += 1;
            } else {
                state.interest = state.interest.saturating_sub(1);
                state.last_active = Instant::now();
            }
        });
    }

    pub(super) fn recover(
        &self,
        channel: &str,
        since: Option<&StreamPosition>,
        options: &ChannelOptions,
    ) -> Recovery {
        self.with_created(channel, |stream, state| {
            if options.keeps_history() {
                state.bounds(options);
            }
            self.trim(state, Instant::now());
            let position = StreamPosition {
                epoch: stream.epoch.to_string(),
                offset: state.offset,
            };
            let publications = since
                .filter(|since| *since.epoch == *stream.epoch && since.offset <= state.offset)
                .and_then(|since| {
                    let first = state
                        .history
                        .front()
                        .map_or(state.offset + 1, |kept| kept.publication.offset());
                    // Covered when every publication after `since` is kept.
                    (since.offset + 1 >= first).then(|| {
                        state
                            .history
                            .iter()
                            .filter(|kept| kept.publication.offset() > since.offset)
                            .map(|kept| Arc::clone(&kept.publication))
                            .collect()
                    })
                });
            Recovery {
                position,
                publications,
            }
        })
    }

    pub(super) fn history(&self, channel: &str, options: &ChannelOptions) -> Vec<Arc<Publication>> {
        self.with_existing(channel, |_, state| {
            if options.keeps_history() {
                state.bounds(options);
            }
            self.trim(state, Instant::now());
            state
                .history
                .iter()
                .map(|kept| Arc::clone(&kept.publication))
                .collect()
        })
        .unwrap_or_default()
    }

    fn pop_oldest(&self, state: &mut State) {
        if let Some(kept) = state.history.pop_front() {
            state.bytes -= kept.size;
            self.bytes.fetch_sub(kept.size, Ordering::Relaxed);
        }
    }

    /// Drops what the channel's bounds no longer allow, oldest first.
    fn trim(&self, state: &mut State, now: Instant) {
        while let Some(front) = state.history.front() {
            let over = state.history.len() > state.size
                || state.bytes > state.max_bytes
                || now.duration_since(front.at) >= state.ttl;
            if !over {
                break;
            }
            self.pop_oldest(state);
        }
    }

    pub(super) fn start_sweeper(self: &Arc<Self>) {
        if self.sweeping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let streams: Weak<Self> = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut tick = crate::timers::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(streams) = streams.upgrade() else {
                    return;
                };
                streams.sweep(Instant::now());
            }
        });
    }

    /// Expires publications, and forgets channels without subscribers that
    /// were idle past the retention or past the bound on idle channels.
    pub(super) fn sweep(&self, now: Instant) {
        let all: Vec<Arc<Stream>> = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut forget = Vec::new();
        let mut idle = Vec::new();
        for stream in all {
            let mut state = lock(&stream.state);
            self.trim(&mut state, now);
            if state.interest > 0 {
                continue;
            }
            let quiet = now.duration_since(state.last_active);
            if state.history.is_empty() && quiet >= self.config.retention {
                forget.push(Arc::clone(&stream.name));
            } else {
                idle.push((state.last_active, Arc::clone(&stream.name)));
            }
        }
        if idle.len() > self.config.max_idle_channels {
            idle.sort_unstable();
            let excess = idle.len() - self.config.max_idle_channels;
            forget.extend(idle.into_iter().take(excess).map(|(_, name)| name));
        }
        if forget.is_empty() {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        for name in forget {
            let Some(stream) = map.get(&name) else {
                continue;
            };
            let mut state = lock(&stream.state);
            if state.interest > 0 {
                continue;
            }
            state.dead = true;
            self.bytes.fetch_sub(state.bytes, Ordering::Relaxed);
            state.bytes = 0;
            state.history.clear();
            drop(state);
            map.remove(&name);
        }
    }
}

impl State {
    fn bounds(&mut self, options: &ChannelOptions) {
        self.size = options.history_size;
        self.max_bytes = options.history_max_bytes;
        self.ttl = options.history_ttl;
    }
}
