//! Latency recording (`hdrhistogram`, nanoseconds) and the summary a load
//! generator process hands back to the run.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The percentiles kept in a [`LatencySummary`], for the tables and the chart.
pub(crate) const PERCENTILES: [f64; 9] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0];

/// A latency histogram: 1 ns to 100 s at three significant digits.
#[derive(Debug, Clone)]
pub(crate) struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latencies {
    /// Records one latency (saturating at the histogram's bounds).
    pub(crate) fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.0.saturating_record(nanos.max(1));
    }

    /// Adds another histogram's counts.
    pub(crate) fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// The recorded counts, `(nanoseconds, count)` per non-empty bucket: what
    /// a load generator hands back so that the run can merge the histograms
    /// of several processes ([`Latencies::from_counts`]).
    pub(crate) fn counts(&self) -> Vec<(u64, u64)> {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// A histogram of [`Latencies::counts`].
    pub(crate) fn from_counts(counts: &[(u64, u64)]) -> Self {
        let mut latencies = Self::default();
        for &(nanos, count) in counts {
            // Within the bounds: the counts come from a histogram like this one.
            let _ = latencies.0.record_n(nanos.max(1), count);
        }
        latencies
    }

    /// Percentiles in microseconds.
    pub(crate) fn summary(&self) -> LatencySummary {
        let us = |nanos: u64| nanos as f64 / 1_000.0;
        LatencySummary {
            count: self.0.len(),
            mean_us: self.0.mean() / 1_000.0,
            percentiles_us: PERCENTILES
                .iter()
                .map(|p| (*p, us(self.0.value_at_percentile(*p))))
                .collect(),
        }
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct LatencySummary {
    /// How many latencies were recorded.
    pub(crate) count: u64,
    /// Their mean.
    pub(crate) mean_us: f64,
    /// `(percentile, value)` for each of [`PERCENTILES`].
    pub(crate) percentiles_us: Vec<(f64, f64)>,
}

impl LatencySummary {
    /// The value at percentile `p` (one of [`PERCENTILES`]), if recorded.
    pub(crate) fn at(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        self.percentiles_us
            .iter()
            .find(|(q, _)| (q - p).abs() < 1e-9)
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_microseconds() {
        let mut latencies = Latencies::default();
        for us in 1..=1000u64 {
            latencies.record(Duration::from_micros(us));
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 1000);
        let p50 = summary.at(50.0).expect("p50");
        assert!((p50 - 500.0).abs() < 1.0, "{p50}");
        let max = summary.at(100.0).expect("max");
        assert!((max - 1000.0).abs() < 1.0, "{max}");
        assert_eq!(LatencySummary::default().at(50.0), None);
        let mut merged = Latencies::from_counts(&latencies.counts());
        merged.merge(&Latencies::from_counts(&latencies.counts()));
        let twice = merged.summary();
        assert_eq!(twice.count, 2000);
        assert!((twice.at(99.0).expect("p99") - summary.at(99.0).expect("p99")).abs() < 1.0);
    }
}
