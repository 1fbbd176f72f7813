//! `load`: one load-generator process, started by `run` with a [`Job`].
//!
//! The process talks to `run` in lines. On standard output: `ready` once its
//! connections are open (or `failed MESSAGE`), then, for fan-out, `got SEQ NS`
//! each time every one of its subscribers has message `SEQ` (NS: wall-clock
//! nanoseconds of the last arrival; not when the subscribers measure each
//! delivery's latency instead), and finally `result JSON`. On standard
//! input: `go` starts the measured part, `stop` ends a job that runs until told.

mod fanout;
mod idle;
mod pace;
mod precise_sleep;
mod replay;
mod reqrep;
mod storm;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::latency::LatencySummary;
use crate::wire::{BoxError, Protocol};

/// Connections opened at once by one load generator.
const OPEN_CONCURRENCY: usize = 64;

/// Where and how to connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Target {
    /// The protocol to speak.
    pub(crate) protocol: Protocol,
    /// The server's address.
    pub(crate) addr: SocketAddr,
}

/// What one load-generator process does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub(crate) enum Job {
    /// Closed loop: each connection keeps one echo request in flight.
    Closed {
        target: Target,
        conns: usize,
        payload: usize,
        warmup_ms: u64,
        duration_ms: u64,
    },
    /// Open loop: `rate` requests a second over all connections, sent on a
    /// schedule; latency counts from each request's scheduled time.
    Open {
        target: Target,
        conns: usize,
        payload: usize,
        rate: f64,
        warmup_ms: u64,
        duration_ms: u64,
    },
    /// Fan-out subscribers: join the room and report each message once all
    /// have it; with `latency_from`, record instead the latency of every
    /// delivery of the stamped publications numbered from it on (a [`Job::Pace`]
    /// publisher's), reported in the result.
    Subscribe {
        target: Target,
        conns: usize,
        source: Option<IpAddr>,
        #[serde(default)]
        latency_from: Option<u64>,
    },
    /// Idle connections held open until `stop`; each subscribed to a channel
    /// of its own, `channels` followed by its number, when `channels` is given.
    Idle {
        target: Target,
        conns: usize,
        source: Option<IpAddr>,
        #[serde(default)]
        channels: Option<String>,
    },
    /// A paced publisher: after `go`, `rate` stamped publications a second
    /// for `duration_ms`, `pad` bytes of filler each.
    Pace {
        target: Target,
        rate: f64,
        duration_ms: u64,
        pad: usize,
    },
    /// Reconnection storm: `clients` subscribed clients; after each `go`,
    /// report when every one of them is back and subscribed again.
    Storm {
        target: Target,
        clients: usize,
        deadline_ms: u64,
    },
    /// Recovery replay: `clients` clients subscribe and leave; after `go` they
    /// resubscribe with `since` and must each get the `missed` publications.
    Replay {
        target: Target,
        clients: usize,
        missed: u64,
        deadline_ms: u64,
    },
}

/// What a load generator reports at the end of a job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct JobResult {
    /// Requests answered (request/reply) or messages delivered (fan-out).
    pub(crate) completed: u64,
    /// Open loop: every request answered in full since `go`, the warm-up's
    /// included (the server's CPU time is taken over all of them).
    #[serde(default)]
    pub(crate) answered: u64,
    /// Error replies, connections that failed, replies shorter than the payload.
    pub(crate) errors: u64,
    /// Open loop: requests still unanswered at the end of the drain time.
    pub(crate) lost: u64,
    /// Seconds of the measured part.
    pub(crate) elapsed_s: f64,
    /// Latencies of the measured part.
    pub(crate) latency: LatencySummary,
    /// The same as counts per histogram bucket, to merge the latencies of
    /// several processes (stamped fan-out only).
    #[serde(default)]
    pub(crate) latency_counts: Vec<(u64, u64)>,
    /// Connections (clients) that were open at the end.
    pub(crate) open: u64,
    /// Storm: clients that were back and subscribed again.
    pub(crate) resubscribed: u64,
    /// Storm: wall-clock nanoseconds when the first and the last came back.
    pub(crate) first_back_ns: u64,
    /// See `first_back_ns`.
    pub(crate) last_back_ns: u64,
    /// Replay: per client, ms from `go` until it had every missed publication.
    #[serde(default)]
    pub(crate) each_ms: Vec<f64>,
    /// This process's CPU seconds during the measured part.
    pub(crate) cpu_s: f64,
}

/// Runs `open` `count` times, [`OPEN_CONCURRENCY`] at a time: what succeeded,
/// and the errors of what failed.
pub(crate) async fn gather<T, F, Fut>(count: usize, open: F) -> (Vec<T>, Vec<String>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, BoxError>>,
{
    let opened: Vec<Result<T, BoxError>> = futures_util::stream::iter(0..count)
        .map(|_| open())
        .buffer_unordered(OPEN_CONCURRENCY)
        .collect()
        .await;
    let mut done = Vec::with_capacity(count);
    let mut failures = Vec::new();
    for result in opened {
        match result {
            Ok(value) => done.push(value),
            Err(err) => failures.push(err.to_string()),
        }
    }
    (done, failures)
}

/// What [`gather`] gave, or an error naming the first failure when any of the
/// `wanted` `what`s failed.
pub(crate) fn every_one<T>(
    what: &str,
    wanted: usize,
    (done, failures): (Vec<T>, Vec<String>),
) -> Result<Vec<T>, BoxError> {
    match failures.first() {
        None => Ok(done),
        Some(first) => Err(format!(
            "{} of {wanted} {what} failed; first: {first}",
            failures.len()
        )
        .into()),
    }
}

/// An error unless `rate` (per second) is a positive number.
pub(crate) fn positive_rate(rate: f64) -> Result<(), BoxError> {
    if rate.is_finite() && rate > 0.0 {
        Ok(())
    } else {
        Err(format!("the rate must be positive, not {rate}").into())
    }
}

/// Writes one line to `run` and flushes it.
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn say_result(result: &JobResult) {
    say(&format!(
        "result {}",
        serde_json::to_string(result).unwrap_or_else(|_| "{}".into())
    ));
}

/// Commands from `run` on standard input.
pub(crate) struct Commands {
    lines: tokio::io::Lines<BufReader<tokio::io::Stdin>>,
}

impl Commands {
    fn new() -> Self {
        Self {
            lines: BufReader::new(tokio::io::stdin()).lines(),
        }
    }

    /// The next command; `stop` when standard input closed (the run is gone).
    pub(crate) async fn next(&mut self) -> String {
        match self.lines.next_line().await {
            Ok(Some(line)) => line.trim().to_owned(),
            _ => "stop".to_owned(),
        }
    }

    /// Waits for `go`; `false` when told to stop instead.
    pub(crate) async fn go(&mut self) -> bool {
        loop {
            match self.next().await.as_str() {
                "go" => return true,
                "stop" => return false,
                _ => {}
            }
        }
    }
}

/// This process's CPU time.
fn own_cpu() -> Duration {
    crate::machine::cpu_time(std::process::id(), crate::machine::clock_ticks()).unwrap_or_default()
}

/// Runs `job` to its end on a single-threaded runtime.
pub(crate) fn run(job: Job) -> Result<(), BoxError> {
    crate::machine::raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async move {
        let mut commands = Commands::new();
        match job {
            Job::Closed {
                target,
                conns,
                payload,
                warmup_ms,
                duration_ms,
            } => {
                reqrep::closed(
                    &target,
                    conns,
                    payload,
                    Duration::from_millis(warmup_ms),
                    Duration::from_millis(duration_ms),
                    &mut commands,
                )
                .await
            }
            Job::Open {
                target,
                conns,
                payload,
                rate,
                warmup_ms,
                duration_ms,
            } => {
                reqrep::open(
                    &target,
                    conns,
                    payload,
                    rate,
                    Duration::from_millis(warmup_ms),
                    Duration::from_millis(duration_ms),
                    &mut commands,
                )
                .await
            }
            Job::Subscribe {
                target,
                conns,
                source,
                latency_from,
            } => fanout::subscribe(&target, conns, source, latency_from, &mut commands).await,
            Job::Idle {
                target,
                conns,
                source,
                channels,
            } => idle::hold(&target, conns, source, channels.as_deref(), &mut commands).await,
            Job::Pace {
                target,
                rate,
                duration_ms,
                pad,
            } => {
                pace::publish(
                    &target,
                    rate,
                    Duration::from_millis(duration_ms),
                    pad,
                    &mut commands,
                )
                .await
            }
            Job::Storm {
                target,
                clients,
                deadline_ms,
            } => {
                storm::watch(
                    &target,
                    clients,
                    Duration::from_millis(deadline_ms),
                    &mut commands,
                )
                .await
            }
            Job::Replay {
                target,
                clients,
                missed,
                deadline_ms,
            } => {
                replay::resume(
                    &target,
                    clients,
                    missed,
                    Duration::from_millis(deadline_ms),
                    &mut commands,
                )
                .await
            }
        }
    });
    match outcome {
        Ok(()) => Ok(()),
        Err(err) => {
            say(&format!("failed {}", err.to_string().replace('\n', " ")));
            Err(err)
        }
    }
}
