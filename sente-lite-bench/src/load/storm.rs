//! Reconnection storm: many subscribed clients; after each `go` (and the
//! server's kill and restart that follow), report when every client is back.
//!
//! sente-lite is driven by its own native [`Client`] with the default
//! reconnection policy. The bare baseline has no client library: its clients
//! follow the same policy by hand (wait a full-jitter delay under the policy's
//! exponential ceiling, connect, subscribe).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use sente_lite::{Client, Codec, ConnectionState, ReconnectPolicy};

use super::{Commands, JobResult, Target, say, say_result};
use crate::events::ROOM;
use crate::machine::wall_ns;
use crate::wire::{BoxError, Protocol};

/// Per client: wall-clock nanoseconds when it was last back and subscribed
/// since the last `go`, 0 while it is not.
type Backs = Arc<Vec<AtomicU64>>;

/// Clients connected at once while setting up.
const SETUP_CONCURRENCY: usize = 64;

/// Starts `clients` clients, then reports after each `go`.
pub(super) async fn watch(
    target: &Target,
    clients: usize,
    deadline: Duration,
    commands: &mut Commands,
) -> Result<(), BoxError> {
    let backs: Backs = Arc::new((0..clients).map(|_| AtomicU64::new(0)).collect());
    let states: Vec<Box<dyn Fn() -> bool>> = match target.protocol {
        Protocol::SenteJson | Protocol::EchoExample | Protocol::SentePostcard => {
            sente_clients(target, clients, &backs).await?
        }
        Protocol::Bare => bare_clients(target, clients, &backs).await?,
        Protocol::SocketIo => return Err("the storm scenario has no socket.io client".into()),
    };
    say("ready");
    while commands.go().await {
        for back in backs.iter() {
            back.store(0, Ordering::SeqCst);
        }
        say("armed");
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let done = backs.iter().all(|b| b.load(Ordering::SeqCst) != 0);
            if done || tokio::time::Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let times: Vec<u64> = backs
            .iter()
            .map(|b| b.load(Ordering::SeqCst))
            .filter(|t| *t != 0)
            .collect();
        say_result(&JobResult {
            resubscribed: times.len() as u64,
            first_back_ns: times.iter().copied().min().unwrap_or(0),
            last_back_ns: times.iter().copied().max().unwrap_or(0),
            open: states.iter().filter(|open| open()).count() as u64,
            ..JobResult::default()
        });
    }
    Ok(())
}

async fn sente_clients(
    target: &Target,
    clients: usize,
    backs: &Backs,
) -> Result<Vec<Box<dyn Fn() -> bool>>, BoxError> {
    let codec = if target.protocol == Protocol::SentePostcard {
        Codec::Postcard
    } else {
        Codec::Json
    };
    let url = format!("ws://{}/ws", target.addr);
    let started: Vec<Result<Client, BoxError>> = futures_util::stream::iter(0..clients)
        .map(|i| {
            let url = url.clone();
            let backs = Arc::clone(backs);
            async move {
                let client = Client::builder(url)
                    .codec(codec)
                    .on_resubscribe(move |_channel, result| {
                        if result.is_ok() {
                            backs[i].store(wall_ns(), Ordering::SeqCst);
                        }
                    })
                    .connect()
                    .await?;
                client.subscribe(ROOM).await?;
                Ok(client)
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let mut states: Vec<Box<dyn Fn() -> bool>> = Vec::with_capacity(clients);
    for client in started {
        let client = client?;
        states.push(Box::new(move || client.state() == ConnectionState::Open));
    }
    Ok(states)
}

async fn bare_clients(
    target: &Target,
    clients: usize,
    backs: &Backs,
) -> Result<Vec<Box<dyn Fn() -> bool>>, BoxError> {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(clients.max(1));
    let open: Arc<Vec<AtomicU64>> = Arc::new((0..clients).map(|_| AtomicU64::new(0)).collect());
    let gate = Arc::new(tokio::sync::Semaphore::new(SETUP_CONCURRENCY));
    for i in 0..clients {
        tokio::spawn(bare_client(
            target.addr,
            i,
            Arc::clone(backs),
            Arc::clone(&open),
            ready_tx.clone(),
            Arc::clone(&gate),
        ));
    }
    drop(ready_tx);
    for _ in 0..clients {
        tokio::time::timeout(crate::wire::OPEN_TIMEOUT, ready_rx.recv())
            .await
            .map_err(|_| BoxError::from("bare storm clients did not all connect"))?;
    }
    Ok((0..clients)
        .map(|i| {
            let open = Arc::clone(&open);
            Box::new(move || open[i].load(Ordering::SeqCst) == 1) as Box<dyn Fn() -> bool>
        })
        .collect())
}

async fn bare_client(
    addr: std::net::SocketAddr,
    index: usize,
    backs: Backs,
    open: Arc<Vec<AtomicU64>>,
    ready: tokio::sync::mpsc::Sender<()>,
    gate: Arc<tokio::sync::Semaphore>,
) {
    let policy = ReconnectPolicy::default();
    let mut rng = fastrand::Rng::new();
    let mut attempt = 0u32;
    let mut first = true;
    // Bounded: the process is ended by the run when the scenario is over.
    loop {
        let connected = {
            // Only the first connections are throttled, as the sente-lite setup is.
            let _permit = if first {
                gate.acquire().await.ok()
            } else {
                None
            };
            let opened = async {
                let mut ws = Protocol::Bare.open(addr, None).await?;
                Protocol::Bare.subscribe(&mut ws).await?;
                Ok::<_, BoxError>(ws)
            };
            tokio::time::timeout(Duration::from_secs(10), opened).await
        };
        if let Ok(Ok(mut ws)) = connected {
            attempt = 0;
            backs[index].store(wall_ns(), Ordering::SeqCst);
            open[index].store(1, Ordering::SeqCst);
            if first {
                first = false;
                let _ = ready.send(()).await;
            }
            while let Some(Ok(_)) = ws.next().await {}
            open[index].store(0, Ordering::SeqCst);
        }
        let delay = policy.ceiling(attempt).mul_f64(rng.f64());
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(delay).await;
    }
}
