//! Request/reply load: closed loop for throughput, open loop for latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::precise_sleep::PreciseSleep;
use super::{Commands, JobResult, Target, gather, own_cpu, positive_rate, say, say_result};
use crate::events::ROOM;
use crate::latency::Latencies;
use crate::wire::{BoxError, EchoFrames, Protocol, Reply, Ws, payload_of};

/// How long one reply may take in the closed loop before the connection is
/// counted as failed.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the open loop waits for outstanding replies after its last send.
const DRAIN: Duration = Duration::from_secs(2);

/// What each connection joins once open.
#[derive(Debug, Clone, Copy)]
pub(super) enum Join<'a> {
    /// Nothing.
    Nothing,
    /// The bench channel (room).
    Room,
    /// A channel of its own: this prefix and the connection's number (from 0).
    OwnChannel(&'a str),
}

/// Opens `conns` connections, `OPEN_CONCURRENCY` at a time, each joining what
/// `join` says.
pub(super) async fn open_all(
    target: &Target,
    conns: usize,
    source: Option<std::net::IpAddr>,
    join: Join<'_>,
) -> (Vec<Ws>, Vec<String>) {
    open_each(target, conns, source, join, |ws| ws).await
}

/// Like [`open_all`], handing each connection to `keep` as soon as it is
/// open (so that it answers pings while the others open).
pub(super) async fn open_each<T>(
    target: &Target,
    conns: usize,
    source: Option<std::net::IpAddr>,
    join: Join<'_>,
    keep: impl Fn(Ws) -> T,
) -> (Vec<T>, Vec<String>) {
    let protocol = target.protocol;
    let addr = target.addr;
    let next = AtomicUsize::new(0);
    let keep = &keep;
    gather(conns, || {
        let channel = match join {
            Join::Nothing => None,
            Join::Room => Some(ROOM.to_owned()),
            Join::OwnChannel(prefix) => {
                Some(format!("{prefix}{}", next.fetch_add(1, Ordering::Relaxed)))
            }
        };
        async move {
            let mut ws = protocol.open(addr, source).await?;
            if let Some(channel) = channel {
                tokio::time::timeout(
                    crate::wire::OPEN_TIMEOUT,
                    protocol.subscribe_on(&mut ws, &channel),
                )
                .await
                .map_err(|_| BoxError::from("subscribing timed out"))??;
            }
            Ok(keep(ws))
        }
    })
    .await
}

#[derive(Default)]
struct ConnStats {
    completed: u64,
    /// Open loop: requests answered in full, the warm-up's included.
    answered: u64,
    errors: u64,
    lost: u64,
    latencies: Latencies,
}

/// One connection of the closed loop until `until`: send, wait for the reply, again.
async fn closed_conn(
    mut ws: Ws,
    protocol: Protocol,
    frames: EchoFrames,
    until: Instant,
) -> (Option<Ws>, ConnStats) {
    let mut stats = ConnStats::default();
    let mut id = 0u64;
    while Instant::now() < until {
        id += 1;
        let sent = Instant::now();
        if ws.send(frames.request(id)).await.is_err() {
            stats.errors += 1;
            return (None, stats);
        }
        loop {
            let message = match tokio::time::timeout(REPLY_TIMEOUT, ws.next()).await {
                Ok(Some(Ok(message))) => message,
                _ => {
                    stats.errors += 1;
                    return (None, stats);
                }
            };
            match protocol.reply(&message) {
                Reply::Ok { id: got, len } if got == id => {
                    stats.latencies.record(sent.elapsed());
                    if len < frames.payload_len() {
                        stats.errors += 1;
                    } else {
                        stats.completed += 1;
                    }
                    break;
                }
                Reply::Err { id: got } if got.is_none() || got == Some(id) => {
                    stats.errors += 1;
                    break;
                }
                Reply::Answer(answer) => {
                    if ws.send(answer).await.is_err() {
                        stats.errors += 1;
                        return (None, stats);
                    }
                }
                Reply::Ok { .. } | Reply::Err { .. } | Reply::Other => {}
            }
        }
    }
    (Some(ws), stats)
}

async fn closed_round(
    sockets: Vec<Ws>,
    protocol: Protocol,
    frames: &EchoFrames,
    duration: Duration,
) -> (Vec<Ws>, ConnStats) {
    let until = Instant::now() + duration;
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(closed_conn(ws, protocol, frames.clone(), until)))
        .collect();
    let mut total = ConnStats::default();
    let mut kept = Vec::new();
    for task in tasks {
        if let Ok((ws, stats)) = task.await {
            kept.extend(ws);
            total.completed += stats.completed;
            total.errors += stats.errors;
            total.latencies.merge(&stats.latencies);
        } else {
            total.errors += 1;
        }
    }
    (kept, total)
}

fn fail_if_none_opened(sockets: &[Ws], failures: &[String]) -> Result<(), BoxError> {
    if sockets.is_empty() {
        return Err(format!(
            "no connection opened ({} failed; first: {})",
            failures.len(),
            failures.first().map_or("-", String::as_str)
        )
        .into());
    }
    Ok(())
}

/// The closed loop: warm up, say `ready`, wait for `go`, measure, report.
pub(super) async fn closed(
    target: &Target,
    conns: usize,
    payload: usize,
    warmup: Duration,
    duration: Duration,
    commands: &mut Commands,
) -> Result<(), BoxError> {
    let (sockets, failures) = open_all(target, conns, None, Join::Nothing).await;
    fail_if_none_opened(&sockets, &failures)?;
    let frames = EchoFrames::new(target.protocol, payload_of(payload));
    let (sockets, _) = closed_round(sockets, target.protocol, &frames, warmup).await;
    say("ready");
    if !commands.go().await {
        return Ok(());
    }
    let cpu = own_cpu();
    let started = Instant::now();
    let (sockets, stats) = closed_round(sockets, target.protocol, &frames, duration).await;
    let elapsed = started.elapsed();
    say_result(&JobResult {
        completed: stats.completed,
        errors: stats.errors + failures.len() as u64,
        elapsed_s: elapsed.as_secs_f64(),
        latency: stats.latencies.summary(),
        open: sockets.len() as u64,
        cpu_s: (own_cpu().saturating_sub(cpu)).as_secs_f64(),
        ..JobResult::default()
    });
    Ok(())
}

/// One connection of the open loop: sends request `k` when the pacer says so,
/// and measures each reply from the time request `k` was scheduled for.
async fn open_conn(
    mut ws: Ws,
    protocol: Protocol,
    frames: EchoFrames,
    mut due: mpsc::UnboundedReceiver<u64>,
    schedule: Schedule,
) -> (Option<Ws>, ConnStats) {
    let mut stats = ConnStats::default();
    let mut outstanding = std::collections::HashSet::new();
    let mut pacer_done = false;
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        if pacer_done && outstanding.is_empty() {
            return (Some(ws), stats);
        }
        let drain_deadline = async {
            match drain_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            next = due.recv(), if !pacer_done => {
                let Some(k) = next else {
                    pacer_done = true;
                    drain_until = Some(tokio::time::Instant::now() + DRAIN);
                    continue;
                };
                outstanding.insert(k);
                if ws.feed(frames.request(k)).await.is_err() {
                    break;
                }
                while let Ok(k) = due.try_recv() {
                    outstanding.insert(k);
                    if ws.feed(frames.request(k)).await.is_err() {
                        break;
                    }
                }
                if ws.flush().await.is_err() {
                    break;
                }
            }
            frame = ws.next() => {
                let Some(Ok(message)) = frame else { break };
                match protocol.reply(&message) {
                    Reply::Ok { id, len } => {
                        if outstanding.remove(&id) {
                            if schedule.counts(id) {
                                stats.latencies.record(schedule.late_by(id));
                            }
                            if len < frames.payload_len() {
                                stats.errors += 1;
                            } else {
                                stats.answered += 1;
                                if schedule.counts(id) {
                                    stats.completed += 1;
                                }
                            }
                        }
                    }
                    Reply::Err { id } => {
                        stats.errors += 1;
                        if let Some(id) = id {
                            outstanding.remove(&id);
                        }
                    }
                    Reply::Answer(answer) => {
                        if ws.send(answer).await.is_err() {
                            break;
                        }
                    }
                    Reply::Other => {}
                }
            }
            () = drain_deadline => break,
        }
    }
    // Requests never answered: lost, and counted in the tail at their age now,
    // a lower bound of their latency.
    for id in outstanding {
        if schedule.counts(id) {
            stats.lost += 1;
            stats.latencies.record(schedule.late_by(id));
        }
    }
    (None, stats)
}

/// When request `k` of the open loop is due.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    start: Instant,
    interval_ns: f64,
    /// Requests before this one are warm-up: sent but not measured.
    first_measured: u64,
}

impl Schedule {
    fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_nanos((k as f64 * self.interval_ns) as u64)
    }

    fn late_by(&self, k: u64) -> Duration {
        self.due(k).elapsed()
    }

    fn counts(&self, k: u64) -> bool {
        k >= self.first_measured
    }
}

/// The open loop: `ready`, `go`, then `rate` requests a second for
/// `warmup + duration`, of which the last `duration` are measured.
pub(super) async fn open(
    target: &Target,
    conns: usize,
    payload: usize,
    rate: f64,
    warmup: Duration,
    duration: Duration,
    commands: &mut Commands,
) -> Result<(), BoxError> {
    positive_rate(rate)?;
    let (sockets, failures) = open_all(target, conns, None, Join::Nothing).await;
    fail_if_none_opened(&sockets, &failures)?;
    let frames = EchoFrames::new(target.protocol, payload_of(payload));
    say("ready");
    if !commands.go().await {
        return Ok(());
    }
    let interval_ns = 1e9 / rate;
    let warmup_requests = (warmup.as_secs_f64() * rate) as u64;
    let total = warmup_requests + (duration.as_secs_f64() * rate) as u64;
    let schedule = Schedule {
        start: Instant::now() + Duration::from_millis(5),
        interval_ns,
        first_measured: warmup_requests,
    };
    let mut senders = Vec::with_capacity(sockets.len());
    let mut tasks = Vec::with_capacity(sockets.len());
    for ws in sockets {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        tasks.push(tokio::spawn(open_conn(
            ws,
            target.protocol,
            frames.clone(),
            rx,
            schedule,
        )));
    }
    // The pacer runs in the runtime, so that handing a request to its
    // connection costs no thread switch, and sleeps on a precise timer.
    let mut sleep = PreciseSleep::new()?;
    let pacer = tokio::spawn(async move {
        let n = senders.len() as u64;
        let mut k = 0u64;
        while k < total {
            let now = Instant::now();
            while k < total && schedule.due(k) <= now {
                // A connection that failed has dropped its receiver: its share is lost.
                if let Ok(index) = usize::try_from(k % n) {
                    let _ = senders[index].send(k);
                }
                k += 1;
            }
            if k < total && sleep.until(schedule.due(k)).await.is_err() {
                break;
            }
        }
    });
    let cpu_at_measure = {
        // CPU time is taken from the start of the measured part.
        let wait = schedule
            .due(warmup_requests)
            .saturating_duration_since(Instant::now());
        tokio::time::sleep(wait).await;
        own_cpu()
    };
    let measured_from = Instant::now();
    let mut total_stats = ConnStats::default();
    let mut open = 0u64;
    for task in tasks {
        if let Ok((ws, stats)) = task.await {
            open += u64::from(ws.is_some());
            total_stats.completed += stats.completed;
            total_stats.answered += stats.answered;
            total_stats.errors += stats.errors;
            total_stats.lost += stats.lost;
            total_stats.latencies.merge(&stats.latencies);
        }
    }
    let _ = pacer.await;
    let scheduled_end = schedule.due(total);
    let elapsed = scheduled_end.saturating_duration_since(measured_from);
    say_result(&JobResult {
        completed: total_stats.completed,
        answered: total_stats.answered,
        errors: total_stats.errors + failures.len() as u64,
        lost: total_stats.lost,
        elapsed_s: elapsed.as_secs_f64().max(duration.as_secs_f64()),
        latency: total_stats.latencies.summary(),
        open,
        cpu_s: own_cpu().saturating_sub(cpu_at_measure).as_secs_f64(),
        ..JobResult::default()
    });
    Ok(())
}
