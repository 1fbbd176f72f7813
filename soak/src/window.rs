//! What a load process reports at the end of each window: one JSON line on
//! its stdout, `window {...}`, and `done {...}` once its clients are gone.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The prefix of a window's line.
pub const WINDOW: &str = "window ";
/// The prefix of the last line, after every client left.
pub const DONE: &str = "done ";

/// One window of one load process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadWindow {
    /// The window's number, from 0 at the load's start.
    pub index: u64,
    /// Connections open at the window's end.
    pub live: u64,
    /// Connections opened (subscribed) during the window.
    pub connects: u64,
    /// Connections closed with a close frame.
    pub graceful: u64,
    /// Connections dropped without one (the socket closed under the server).
    pub dropped: u64,
    /// Dropped connections that had a request in flight (never answered).
    pub abandoned: u64,
    /// Times a native client connected again by itself: the server closed a
    /// connection it should have kept.
    pub reconnects: u64,
    /// Connections that could not be opened or subscribed.
    pub connect_errors: u64,
    /// Requests answered.
    pub requests: u64,
    /// Requests that failed (an error reply, the connection lost, a timeout).
    pub request_errors: u64,
    /// Publications asked for (and answered).
    pub publishes: u64,
    /// Publications received.
    pub received: u64,
    /// Request latencies, µs: (value, count), as [`Latencies::counts`] gives them.
    pub latency_us: Vec<(u64, u64)>,
}

impl LoadWindow {
    /// Adds another load's figures for the same window.
    pub fn merge(&mut self, other: &Self) {
        self.live += other.live;
        self.connects += other.connects;
        self.graceful += other.graceful;
        self.dropped += other.dropped;
        self.abandoned += other.abandoned;
        self.reconnects += other.reconnects;
        self.connect_errors += other.connect_errors;
        self.requests += other.requests;
        self.request_errors += other.request_errors;
        self.publishes += other.publishes;
        self.received += other.received;
        let mut latencies = Latencies::from_counts(&self.latency_us);
        latencies.add_counts(&other.latency_us);
        self.latency_us = latencies.counts();
    }
}

/// Latencies in µs, from 1 µs to 100 s at 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid bounds"))
    }
}

impl Latencies {
    /// A histogram holding `counts`.
    pub fn from_counts(counts: &[(u64, u64)]) -> Self {
        let mut latencies = Self::default();
        latencies.add_counts(counts);
        latencies
    }

    /// Adds (value, count) pairs.
    pub fn add_counts(&mut self, counts: &[(u64, u64)]) {
        for &(value, count) in counts {
            let _ = self.0.record_n(value.clamp(1, 100_000_000), count);
        }
    }

    /// Records one latency in µs.
    pub fn record(&mut self, us: u64) {
        let _ = self.0.record(us.clamp(1, 100_000_000));
    }

    /// The recorded values and their counts.
    pub fn counts(&self) -> Vec<(u64, u64)> {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The latency at percentile `p` (0 to 100), in ms; `None` when empty.
    pub fn ms_at(&self, p: f64) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        (!self.is_empty()).then(|| self.0.value_at_percentile(p) as f64 / 1000.0)
    }
}
