//! Each connection's telemetry budget, and the summary line of what it lost.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::TelemetryRecord;
use super::sink::{TelemetryEntry, TelemetryLosses};
use crate::bucket::TokenBucket;
use crate::server::TelemetryConfig;

/// Losses not yet logged, and whether a summary line is already due.
#[derive(Debug, Default)]
pub(super) struct Unreported {
    losses: TelemetryLosses,
    scheduled: bool,
}

/// The two token buckets of a connection.
#[derive(Debug)]
struct Buckets {
    records: TokenBucket,
    bytes: TokenBucket,
}

/// A connection's telemetry budget and its losses waiting for the summary line.
#[derive(Debug)]
pub(crate) struct Budget {
    buckets: Mutex<Buckets>,
    pub(super) unreported: Arc<Mutex<Unreported>>,
}

impl Budget {
    /// A full budget.
    pub(crate) fn new(config: &TelemetryConfig) -> Self {
        Self {
            buckets: Mutex::new(Buckets {
                records: TokenBucket::new(
                    f64::from(config.records_burst),
                    f64::from(config.records_per_sec),
                ),
                bytes: TokenBucket::new(
                    f64::from(config.bytes_burst),
                    f64::from(config.bytes_per_sec),
                ),
            }),
            unreported: Arc::default(),
        }
    }

    /// The records (in order) that fit the budget, made safe to log; the
    /// rest are over it. A record passes while both buckets hold a token; it
    /// then takes one record and its bytes, which may leave the byte bucket
    /// owing.
    pub(super) fn admit<'a>(&self, records: &'a [TelemetryRecord]) -> Vec<TelemetryEntry<'a>> {
        let mut b = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        let mut admitted = Vec::new();
        for record in records {
            if b.records.tokens(now) < 1.0 || b.bytes.tokens(now) <= 0.0 {
                break;
            }
            let logged = TelemetryEntry::new(record);
            b.records.spend(1.0);
            b.bytes.spend(logged.text_bytes() as f64);
            admitted.push(logged);
        }
        admitted
    }
}

/// Adds `losses` to what `unreported` holds and makes sure a summary line is
/// due within `interval`; without `unreported` (no server), logs them now.
pub(super) fn report(
    unreported: Option<&Arc<Mutex<Unreported>>>,
    losses: TelemetryLosses,
    interval: Duration,
    conn_id: u64,
    user_id: &str,
) {
    if losses.is_empty() {
        return;
    }
    let Some(unreported) = unreported else {
        losses.log(conn_id, user_id);
        return;
    };
    let mut pending = unreported.lock().unwrap_or_else(PoisonError::into_inner);
    pending.losses.add(&losses);
    if pending.scheduled {
        return;
    }
    pending.scheduled = true;
    let unreported = Arc::clone(unreported);
    let user_id = user_id.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(interval).await;
        let losses = {
            let mut pending = unreported.lock().unwrap_or_else(PoisonError::into_inner);
            pending.scheduled = false;
            std::mem::take(&mut pending.losses)
        };
        if !losses.is_empty() {
            losses.log(conn_id, &user_id);
        }
    });
}

pub(super) fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
