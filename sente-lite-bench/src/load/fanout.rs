//! Fan-out subscribers: every connection joins the room; each published message
//! is reported once all of this process's subscribers have it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};

use super::reqrep::open_all;
use super::{Commands, JobResult, Target, every_one, own_cpu, say, say_result};
use crate::machine::wall_ns;
use crate::wire::{BoxError, Protocol, Ws};

/// Per message: how many subscribers have it, and when the last one got it.
#[derive(Default)]
struct Arrivals {
    pending: HashMap<u64, (usize, u64)>,
    delivered: u64,
    lost_connections: u64,
}

type Shared = Arc<Mutex<Arrivals>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Arrivals> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn read(mut ws: Ws, protocol: Protocol, subscribers: usize, shared: Shared) {
    while let Some(Ok(message)) = ws.next().await {
        if let Some(seq) = protocol.publication_seq(&message) {
            let now = wall_ns();
            let mut arrivals = lock(&shared);
            arrivals.delivered += 1;
            let entry = arrivals.pending.entry(seq).or_insert((0, 0));
            entry.0 += 1;
            entry.1 = entry.1.max(now);
            if entry.0 == subscribers {
                let last = entry.1;
                arrivals.pending.remove(&seq);
                drop(arrivals);
                say(&format!("got {seq} {last}"));
            }
        } else if let Some(answer) = protocol.keepalive(&message)
            && ws.send(answer).await.is_err()
        {
            break;
        }
    }
    lock(&shared).lost_connections += 1;
}

/// Opens and subscribes `conns` connections, reports arrivals until `stop`.
pub(super) async fn subscribe(
    target: &Target,
    conns: usize,
    source: Option<IpAddr>,
    commands: &mut Commands,
) -> Result<(), BoxError> {
    let sockets = every_one(
        "subscribers",
        conns,
        open_all(target, conns, source, true).await,
    )?;
    let shared: Shared = Arc::default();
    let subscribers = sockets.len();
    for ws in sockets {
        tokio::spawn(read(ws, target.protocol, subscribers, Arc::clone(&shared)));
    }
    say("ready");
    let cpu = own_cpu();
    let started = std::time::Instant::now();
    while commands.next().await != "stop" {}
    let arrivals = lock(&shared);
    say_result(&JobResult {
        completed: arrivals.delivered,
        errors: arrivals.lost_connections,
        elapsed_s: started.elapsed().as_secs_f64(),
        open: (subscribers as u64).saturating_sub(arrivals.lost_connections),
        cpu_s: own_cpu().saturating_sub(cpu).as_secs_f64(),
        ..JobResult::default()
    });
    Ok(())
}
