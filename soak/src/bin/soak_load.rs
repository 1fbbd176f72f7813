//! The soak's load: `--conns` connection slots, each opening a connection,
//! subscribing to a room, sending requests and publications at a steady
//! pace with jitter, and after a random lifetime leaving (and opening the
//! next one). Three slots in four use the native client and close
//! gracefully; the fourth speaks the JSON protocol on a bare WebSocket and
//! drops its socket without a close frame, at times with a request in flight.
//!
//! Prints one `window {...}` line (see `sente_lite_soak::window`) per window,
//! and on `stop` (or the end of stdin) lets every slot leave, prints
//! `done {...}` with the last partial window and exits.
//!
//! Started by the `soak` orchestrator; by hand:
//! `cargo run --release -p sente-lite-soak --bin soak_load -- --url ws://127.0.0.1:4200/ws --conns 500`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use sente_lite::{Client, Ctx, ReconnectPolicy, Router};
use sente_lite_soak::events::{Echo, Said, Say, room};
use sente_lite_soak::window::{DONE, Latencies, LoadWindow, WINDOW};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Soak load.
#[derive(Parser, Clone)]
struct Args {
    /// The server's WebSocket URL.
    #[arg(long)]
    url: String,
    /// This load's number, part of its users' names.
    #[arg(long, default_value_t = 0)]
    id: usize,
    /// Connection slots (connections open at once).
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// Rooms the connections are spread over.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Length of a window, ms.
    #[arg(long, default_value_t = 10_000)]
    window_ms: u64,
    /// Shortest connection lifetime, ms.
    #[arg(long, default_value_t = 10_000)]
    min_life_ms: u64,
    /// Longest connection lifetime, ms.
    #[arg(long, default_value_t = 60_000)]
    max_life_ms: u64,
    /// Mean time between a connection's requests, ms (±50%).
    #[arg(long, default_value_t = 2_000)]
    request_every_ms: u64,
    /// Mean time between a connection's publications, ms (±50%).
    #[arg(long, default_value_t = 10_000)]
    publish_every_ms: u64,
    /// The first connections are spread over this long, ms.
    #[arg(long, default_value_t = 10_000)]
    ramp_ms: u64,
    /// How long a request may wait for its answer, ms.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
}

/// The counters of the current window.
#[derive(Default)]
struct Tally {
    live: AtomicU64,
    connects: AtomicU64,
    graceful: AtomicU64,
    dropped: AtomicU64,
    abandoned: AtomicU64,
    reconnects: AtomicU64,
    connect_errors: AtomicU64,
    requests: AtomicU64,
    request_errors: AtomicU64,
    publishes: AtomicU64,
    received: AtomicU64,
    latency: Mutex<Latencies>,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Tally {
    fn latency(&self, since: Instant) {
        let us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(us);
        bump(&self.requests);
    }

    /// Takes the window's figures, starting the next window at zero.
    fn take(&self, index: u64) -> LoadWindow {
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        let latency = std::mem::take(
            &mut *self
                .latency
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        LoadWindow {
            index,
            live: self.live.load(Ordering::Relaxed),
            connects: take(&self.connects),
            graceful: take(&self.graceful),
            dropped: take(&self.dropped),
            abandoned: take(&self.abandoned),
            reconnects: take(&self.reconnects),
            connect_errors: take(&self.connect_errors),
            requests: take(&self.requests),
            request_errors: take(&self.request_errors),
            publishes: take(&self.publishes),
            received: take(&self.received),
            latency_us: latency.counts(),
        }
    }
}

#[sente_lite::handler]
async fn on_said(ctx: Ctx, _said: Said) {
    if let Some(tally) = ctx.state::<Arc<Tally>>() {
        bump(&tally.received);
    }
}

/// `mean` ±50%.
fn jitter(mean: u64) -> Duration {
    Duration::from_millis(mean / 2 + fastrand::u64(0..=mean.max(1)))
}

/// One connection's life.
struct Life<'a> {
    args: &'a Args,
    tally: &'a Tally,
    user: String,
    room: String,
    until: Instant,
    stop: watch::Receiver<bool>,
}

impl Life<'_> {
    fn text(&self, seq: u64) -> String {
        format!(
            "{} says {seq}: the quick brown fox jumps over the lazy dog",
            self.user
        )
    }

    /// Whether the life is over (its time, or the load's end).
    fn over(&self) -> bool {
        Instant::now() >= self.until || *self.stop.borrow()
    }

    /// Sleeps until `at`, the end of the life or the load's end, whichever first.
    async fn wait(&mut self, at: Instant) {
        let at = at.min(self.until);
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            _ = self.stop.changed() => {}
        }
    }

    /// The native client: subscribe, requests and publications, then a
    /// graceful close.
    async fn native(mut self, tally_handle: Arc<Tally>) {
        let args = self.args;
        let client = Client::builder(format!("{}?user={}", args.url, self.user))
            .router(Router::new().handler(on_said))
            .state(tally_handle)
            .request_timeout(Duration::from_millis(args.request_timeout_ms))
            .reconnect(ReconnectPolicy::default().with_initial_delay(Duration::from_millis(100)))
            .start();
        let Ok(client) = client else {
            bump(&self.tally.connect_errors);
            return;
        };
        if client.subscribe(self.room.clone()).await.is_err() {
            bump(&self.tally.connect_errors);
            client.disconnect().await;
            return;
        }
        bump(&self.tally.connects);
        self.tally.live.fetch_add(1, Ordering::Relaxed);
        let mut next_request = Instant::now() + jitter(args.request_every_ms);
        let mut next_publish = Instant::now() + jitter(args.publish_every_ms);
        let mut seq = 0;
        while !self.over() {
            self.wait(next_request.min(next_publish)).await;
            if self.over() {
                break;
            }
            seq += 1;
            let now = Instant::now();
            if now >= next_publish {
                next_publish = now + jitter(args.publish_every_ms);
                let say = Say {
                    room: self.room.clone(),
                    text: self.text(seq),
                };
                match client.request(&say).await {
                    Ok(_) => bump(&self.tally.publishes),
                    Err(_) => bump(&self.tally.request_errors),
                }
            } else if now >= next_request {
                next_request = now + jitter(args.request_every_ms);
                let text = self.text(seq);
                match client.request(&Echo { text: text.clone() }).await {
                    Ok(echoed) if echoed == text => self.tally.latency(now),
                    _ => bump(&self.tally.request_errors),
                }
            }
        }
        self.tally.live.fetch_sub(1, Ordering::Relaxed);
        self.tally
            .reconnects
            .fetch_add(client.stats().reconnects, Ordering::Relaxed);
        client.disconnect().await;
        bump(&self.tally.graceful);
    }

    /// A bare WebSocket speaking the JSON protocol, dropped at the end of
    /// its life without a close frame.
    async fn bare(mut self) {
        let args = self.args;
        let url = format!("{}?user={}", args.url, self.user);
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            bump(&self.tally.connect_errors);
            return;
        };
        let subscribe = json!(["sl/sub", 1, self.room]).to_string();
        if ws.send(Message::text(subscribe)).await.is_err() {
            bump(&self.tally.connect_errors);
            return;
        }
        let mut subscribed = false;
        let mut pending: Option<(u64, Instant, bool)> = None;
        let mut next_id = 2;
        let mut next_request = Instant::now() + jitter(args.request_every_ms);
        let mut next_publish = Instant::now() + jitter(args.publish_every_ms);
        let deadline = Duration::from_millis(args.request_timeout_ms);
        loop {
            if self.over() {
                break;
            }
            let due = if subscribed && pending.is_none() {
                next_request.min(next_publish)
            } else {
                pending.map_or(self.until, |(_, at, _)| at + deadline)
            };
            let frame = tokio::select! {
                () = tokio::time::sleep_until(due.min(self.until)) => None,
                _ = self.stop.changed() => None,
                frame = ws.next() => match frame {
                    Some(Ok(frame)) => Some(frame),
                    // The server closed: only a misbehaving server would.
                    _ => break,
                },
            };
            if frame.is_none() && self.over() {
                break;
            }
            let now = Instant::now();
            match frame {
                None if pending.is_some() => {
                    // No answer within the request timeout.
                    bump(&self.tally.request_errors);
                    pending = None;
                }
                None if subscribed && now >= next_request.min(next_publish) => {
                    let id = next_id;
                    next_id += 1;
                    let publish = now >= next_publish;
                    let text = self.text(id);
                    let request = if publish {
                        next_publish = now + jitter(args.publish_every_ms);
                        json!(["soak/say", {"room": self.room, "text": text}, id])
                    } else {
                        next_request = now + jitter(args.request_every_ms);
                        json!(["soak/echo", {"text": text}, id])
                    };
                    if ws.send(Message::text(request.to_string())).await.is_err() {
                        break;
                    }
                    pending = Some((id, now, publish));
                }
                None => {}
                Some(Message::Text(text)) => {
                    let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    match (parts.first().and_then(Value::as_str), parts.get(1)) {
                        (Some("sl/ping"), Some(n)) => {
                            let pong = json!(["sl/pong", n]).to_string();
                            if ws.send(Message::text(pong)).await.is_err() {
                                break;
                            }
                        }
                        (Some("sl/pub"), _) => bump(&self.tally.received),
                        (Some(kind @ ("sl/ok" | "sl/err")), Some(id)) => {
                            let ok = kind == "sl/ok";
                            if id.as_u64() == Some(1) && !subscribed {
                                if !ok {
                                    bump(&self.tally.connect_errors);
                                    return;
                                }
                                subscribed = true;
                                bump(&self.tally.connects);
                                self.tally.live.fetch_add(1, Ordering::Relaxed);
                            } else if let Some((want, at, publish)) = pending
                                && id.as_u64() == Some(want)
                            {
                                pending = None;
                                match (ok, publish) {
                                    (false, _) => bump(&self.tally.request_errors),
                                    (true, true) => bump(&self.tally.publishes),
                                    (true, false) => self.tally.latency(at),
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Some(_) => {}
            }
        }
        if subscribed {
            self.tally.live.fetch_sub(1, Ordering::Relaxed);
            if pending.is_some() {
                bump(&self.tally.abandoned);
            }
            bump(&self.tally.dropped);
        }
        // Dropped: the socket closes under the server, no close frame.
        drop(ws);
    }
}

/// One slot: lives one after the other until the load stops.
async fn slot(args: Arc<Args>, tally: Arc<Tally>, index: usize, stop: watch::Receiver<bool>) {
    let ramp = args.ramp_ms * u64::try_from(index).unwrap_or(0)
        / u64::try_from(args.conns.max(1)).unwrap_or(1);
    tokio::time::sleep(Duration::from_millis(ramp)).await;
    let mut generation = 0u64;
    while !*stop.borrow() {
        generation += 1;
        let life = Life {
            args: &args,
            tally: &tally,
            user: format!("u{}-{index}-{generation}", args.id),
            room: room(fastrand::usize(0..args.rooms.max(1))),
            until: Instant::now()
                + Duration::from_millis(fastrand::u64(args.min_life_ms..=args.max_life_ms)),
            stop: stop.clone(),
        };
        if index % 4 == 3 {
            life.bare().await;
        } else {
            life.native(Arc::clone(&tally)).await;
        }
    }
}

fn print(prefix: &str, window: &LoadWindow) {
    println!(
        "{prefix}{}",
        serde_json::to_string(window).expect("a window is JSON")
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // Each connection is a socket; the default soft limit is often 1024.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(run(Arc::new(args)))
}

async fn run(args: Arc<Args>) -> Result<(), Box<dyn std::error::Error>> {
    let tally = Arc::new(Tally::default());
    let (stop_tx, stop) = watch::channel(false);
    let mut slots = tokio::task::JoinSet::new();
    for index in 0..args.conns {
        slots.spawn(slot(
            Arc::clone(&args),
            Arc::clone(&tally),
            index,
            stop.clone(),
        ));
    }
    let windows = {
        let tally = Arc::clone(&tally);
        let every = Duration::from_millis(args.window_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            let mut index = 0;
            loop {
                tick.tick().await;
                print(WINDOW, &tally.take(index));
                index += 1;
            }
        })
    };
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim() == "stop" {
            break;
        }
    }
    windows.abort();
    let _ = stop_tx.send(true);
    while slots.join_next().await.is_some() {}
    print(DONE, &tally.take(u64::MAX));
    Ok(())
}
