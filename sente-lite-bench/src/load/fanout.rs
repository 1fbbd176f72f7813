//! Fan-out subscribers: every connection joins the room; each published message
//! is reported once all of this process's subscribers have it, or, when the
//! publications carry their send time ([`crate::wire::stamped_pad`]), each
//! delivery's latency is recorded instead.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};

use super::reqrep::{Join, open_all};
use super::{Commands, JobResult, Target, every_one, own_cpu, say, say_result};
use crate::latency::Latencies;
use crate::machine::wall_ns;
use crate::wire::{BoxError, Protocol, Ws};

/// Per message: how many subscribers have it, and when the last one got it;
/// or, for stamped publications, each delivery's latency.
#[derive(Default)]
struct Arrivals {
    pending: HashMap<u64, (usize, u64)>,
    delivered: u64,
    lost_connections: u64,
    latencies: Latencies,
}

impl Arrivals {
    /// A stamped publication `seq` arrived at `now`: counted and its latency
    /// recorded from publication `from` on.
    fn stamped(&mut self, seq: u64, stamp: u64, now: u64, from: u64) {
        if seq >= from {
            self.delivered += 1;
            self.latencies
                .record(std::time::Duration::from_nanos(now.saturating_sub(stamp)));
        }
    }

    /// Publication `seq` arrived at `now` at one of `subscribers`: reported
    /// once all of them have it.
    fn arrived(&mut self, seq: u64, now: u64, subscribers: usize) -> Option<u64> {
        self.delivered += 1;
        let entry = self.pending.entry(seq).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(now);
        if entry.0 == subscribers {
            let last = entry.1;
            self.pending.remove(&seq);
            Some(last)
        } else {
            None
        }
    }
}

type Shared = Arc<Mutex<Arrivals>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Arrivals> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn read(
    mut ws: Ws,
    protocol: Protocol,
    subscribers: usize,
    latency_from: Option<u64>,
    shared: Shared,
) {
    while let Some(Ok(message)) = ws.next().await {
        if let Some(from) = latency_from
            && let Some((seq, stamp)) = protocol.publication_stamp(&message)
        {
            lock(&shared).stamped(seq, stamp, wall_ns(), from);
        } else if latency_from.is_none()
            && let Some(seq) = protocol.publication_seq(&message)
        {
            let last = lock(&shared).arrived(seq, wall_ns(), subscribers);
            if let Some(last) = last {
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

/// Opens and subscribes `conns` connections, reports arrivals until `stop`;
/// with `latency_from`, records the latency of every delivery of the stamped
/// publications numbered from it on, and reports them at the end.
pub(super) async fn subscribe(
    target: &Target,
    conns: usize,
    source: Option<IpAddr>,
    latency_from: Option<u64>,
    commands: &mut Commands,
) -> Result<(), BoxError> {
    let sockets = every_one(
        "subscribers",
        conns,
        open_all(target, conns, source, Join::Room).await,
    )?;
    let shared: Shared = Arc::default();
    let subscribers = sockets.len();
    for ws in sockets {
        tokio::spawn(read(
            ws,
            target.protocol,
            subscribers,
            latency_from,
            Arc::clone(&shared),
        ));
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
        latency: arrivals.latencies.summary(),
        latency_counts: arrivals.latencies.counts(),
        ..JobResult::default()
    });
    Ok(())
}
