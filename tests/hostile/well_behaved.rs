//! The well-behaved client that stays connected through every hostile case:
//! it asks an echo request every [`EVERY`] and records how long each answer
//! took. It must never be disconnected and must never miss an answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sente_lite::{Client, ConnectionState, ReconnectPolicy};

use super::setup::Echo;

/// How often the client asks.
pub(crate) const EVERY: Duration = Duration::from_millis(20);
/// The liveness bound: every answer arrives within this (an answer slower than
/// this fails the request, and the test).
pub(crate) const LIVENESS: Duration = Duration::from_secs(5);

/// The latency of the client's answers over the suite.
#[derive(Debug)]
pub(crate) struct Latency {
    /// Answers received.
    pub(crate) count: usize,
    /// Median.
    pub(crate) p50: Duration,
    /// 99th percentile.
    pub(crate) p99: Duration,
    /// Slowest.
    pub(crate) max: Duration,
}

/// What the asking task records.
#[derive(Default)]
struct Record {
    latencies: Vec<Duration>,
    failures: Vec<String>,
}

/// A connected client asking all the time.
pub(crate) struct WellBehaved {
    client: Client,
    record: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
    asking: tokio::task::JoinHandle<()>,
    watching: tokio::task::JoinHandle<()>,
}

impl WellBehaved {
    /// Connects to `url` and starts asking.
    pub(crate) async fn connect(url: &str) -> Self {
        let client = Client::builder(url)
            .request_timeout(LIVENESS)
            .reconnect(ReconnectPolicy::default().with_initial_delay(Duration::from_millis(50)))
            .connect()
            .await
            .expect("the well-behaved client connects");
        let record = Arc::new(Mutex::new(Record::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut changes = client.state_changes();
        let watching = tokio::spawn({
            let record = record.clone();
            async move {
                while changes.changed().await.is_ok() {
                    let state = *changes.borrow_and_update();
                    if state != ConnectionState::Open {
                        let mut record = record.lock().unwrap_or_else(|e| e.into_inner());
                        record
                            .failures
                            .push(format!("the connection left open: {state:?}"));
                    }
                }
            }
        });
        let asking = tokio::spawn({
            let (client, record, stop) = (client.clone(), record.clone(), stop.clone());
            async move {
                let mut every = tokio::time::interval(EVERY);
                for n in 0u64.. {
                    every.tick().await;
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let answer = ask(&client, n).await;
                    let mut record = record.lock().unwrap_or_else(|e| e.into_inner());
                    match answer {
                        Ok(took) => record.latencies.push(took),
                        Err(failure) => record.failures.push(failure),
                    }
                }
            }
        });
        Self {
            client,
            record,
            stop,
            asking,
            watching,
        }
    }

    /// Asks once more now; panics unless answered (within [`LIVENESS`]).
    pub(crate) async fn check(&self, after: &str) {
        if let Err(failure) = ask(&self.client, u64::MAX).await {
            panic!("after {after}, the well-behaved client got no answer: {failure}");
        }
        let record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            record.failures.is_empty(),
            "after {after}, the well-behaved client failed: {:?}",
            record.failures
        );
    }

    /// Stops asking; panics if the client ever failed or reconnected, and
    /// returns the latency of its answers.
    pub(crate) async fn finish(self) -> Latency {
        self.stop.store(true, Ordering::Relaxed);
        self.asking.await.expect("the asking task ends");
        self.watching.abort();
        assert_eq!(
            self.client.stats().reconnects,
            0,
            "the well-behaved client reconnected"
        );
        let record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        assert!(record.failures.is_empty(), "{:?}", record.failures);
        let mut sorted = record.latencies.clone();
        sorted.sort();
        let at = |q: f64| {
            let last = sorted.len().saturating_sub(1);
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let index = ((last as f64) * q).round() as usize;
            sorted.get(index).copied().unwrap_or_default()
        };
        Latency {
            count: sorted.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: sorted.last().copied().unwrap_or_default(),
        }
    }
}

/// One echo request; how long its answer took.
async fn ask(client: &Client, n: u64) -> Result<Duration, String> {
    let text = format!("steady {n}");
    let started = Instant::now();
    match client.request(&Echo { text: text.clone() }).await {
        Ok(echoed) if echoed == text => Ok(started.elapsed()),
        Ok(other) => Err(format!("request {n} answered {other:?}")),
        Err(err) => Err(format!(
            "request {n} failed after {:?}: {err}",
            started.elapsed()
        )),
    }
}
