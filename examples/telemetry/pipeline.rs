//! The sink in front of the disk: filters by level (per source), samples,
//! and queues what is left for the writer, within a bound in records and in
//! bytes; what does not fit is counted against its session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use sente_lite::telemetry::{
    TelemetryEntry, TelemetryLevel, TelemetryLosses, TelemetryOrigin, TelemetrySink,
};
use serde::Serialize;

use crate::line::{LossesLine, RecordLine};

/// Sessions whose losses wait for the writer at most; the losses of others
/// are added to the session `x-overflow`.
const MAX_PENDING_SESSIONS: usize = 10_000;

/// What is kept: a level per source, a default level, and a sampling rate
/// per level.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// Records below this level are filtered out.
    pub(crate) min_level: TelemetryLevel,
    /// A level of its own for a source (exact match), before `min_level`.
    pub(crate) source_levels: Vec<(String, TelemetryLevel)>,
    /// The share of each level's records kept, 0 to 1, in the order error,
    /// warn, info, debug, trace. Kept records are spread evenly: a rate of
    /// 0.25 keeps every fourth.
    pub(crate) sample: [f64; 5],
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            min_level: TelemetryLevel::Info,
            source_levels: Vec::new(),
            sample: [1.0; 5],
        }
    }
}

/// 0 for errors up to 4 for traces.
pub(crate) fn rank(level: TelemetryLevel) -> usize {
    match level {
        TelemetryLevel::Error => 0,
        TelemetryLevel::Warn => 1,
        TelemetryLevel::Info => 2,
        TelemetryLevel::Debug => 3,
        TelemetryLevel::Trace => 4,
    }
}

impl Rules {
    fn passes(&self, source: &str, level: TelemetryLevel) -> bool {
        let min = self
            .source_levels
            .iter()
            .find(|(s, _)| s == source)
            .map_or(self.min_level, |(_, l)| *l);
        rank(level) <= rank(min)
    }
}

/// The pipeline's counters, as `tail/stats` reports them.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Counters {
    /// Records the server admitted into the pipeline.
    pub(crate) received: AtomicU64,
    /// Left out by the level rules.
    pub(crate) filtered: AtomicU64,
    /// Left out by sampling.
    pub(crate) sampled_out: AtomicU64,
    /// Dropped: the queue to the disk was full.
    pub(crate) queue_full: AtomicU64,
    /// Lost before the pipeline (over budget, over batch size, refused, by the client).
    pub(crate) lost_upstream: AtomicU64,
    /// Lines written to disk.
    pub(crate) written: AtomicU64,
    /// Files rotated.
    pub(crate) rotated: AtomicU64,
    /// Files deleted to keep the disk bound, and their bytes.
    pub(crate) evicted_files: AtomicU64,
    pub(crate) evicted_bytes: AtomicU64,
    /// Bytes the directory holds.
    pub(crate) disk_bytes: AtomicU64,
}

/// What the writer is sent.
pub(crate) struct Batch {
    pub(crate) key: String,
    pub(crate) lines: Vec<RecordLine>,
    pub(crate) weight: usize,
}

/// The losses of each session not yet written, shared with the writer.
pub(crate) type PendingLosses = Arc<Mutex<HashMap<String, LossesLine>>>;

/// The [`TelemetrySink`] of this server.
pub(crate) struct Pipeline {
    rules: Rules,
    /// Where each level's sampling stands: a record is kept when this
    /// passes a whole number.
    sampling: Mutex<[f64; 5]>,
    tx: SyncSender<Batch>,
    /// Bytes queued now, and the most there may be.
    queued_bytes: Arc<AtomicUsize>,
    max_queued_bytes: usize,
    pending: PendingLosses,
    counters: Arc<Counters>,
}

impl Pipeline {
    pub(crate) fn new(
        rules: Rules,
        tx: SyncSender<Batch>,
        queued_bytes: Arc<AtomicUsize>,
        max_queued_bytes: usize,
        pending: PendingLosses,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            rules,
            sampling: Mutex::new([0.0; 5]),
            tx,
            queued_bytes,
            max_queued_bytes,
            pending,
            counters,
        }
    }

    fn sampled(&self, level: TelemetryLevel) -> bool {
        let rate = self.rules.sample[rank(level)].clamp(0.0, 1.0);
        if rate >= 1.0 {
            return true;
        }
        let mut at = self.sampling.lock().unwrap_or_else(PoisonError::into_inner);
        let before = at[rank(level)];
        at[rank(level)] = before + rate;
        before.floor() != at[rank(level)].floor()
    }

    fn count_lost(&self, session: &str, key: &str, add: impl FnOnce(&mut LossesLine)) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let key = if pending.len() >= MAX_PENDING_SESSIONS && !pending.contains_key(key) {
            "x-overflow"
        } else {
            key
        };
        let line = pending.entry(key.to_owned()).or_default();
        if line.session.is_empty() {
            line.session = session.to_owned();
        }
        add(line);
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl TelemetrySink for Pipeline {
    fn accept(&self, origin: &TelemetryOrigin<'_>, records: &[TelemetryEntry<'_>]) {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        self.counters
            .received
            .fetch_add(count(records.len()), Ordering::Relaxed);
        let received_ms = now_ms();
        let mut lines = Vec::with_capacity(records.len());
        for entry in records {
            if !self.rules.passes(entry.source(), entry.level()) {
                self.counters.filtered.fetch_add(1, Ordering::Relaxed);
            } else if !self.sampled(entry.level()) {
                self.counters.sampled_out.fetch_add(1, Ordering::Relaxed);
            } else {
                lines.push(RecordLine::new(origin, entry, received_ms));
            }
        }
        if lines.is_empty() {
            return;
        }
        let key = crate::line::file_key(origin.session);
        let weight: usize = lines.iter().map(RecordLine::weight).sum();
        let n = count(lines.len());
        let fits = self
            .queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued + weight <= self.max_queued_bytes).then_some(queued + weight)
            })
            .is_ok();
        let sent = fits
            && match self.tx.try_send(Batch {
                key: key.clone(),
                lines,
                weight,
            }) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.queued_bytes.fetch_sub(weight, Ordering::AcqRel);
                    false
                }
            };
        if !sent {
            self.counters.queue_full.fetch_add(n, Ordering::Relaxed);
            self.count_lost(origin.session, &key, |l| l.queue_full += n);
        }
    }

    fn lost(&self, origin: &TelemetryOrigin<'_>, losses: &TelemetryLosses) {
        self.counters
            .lost_upstream
            .fetch_add(losses.total(), Ordering::Relaxed);
        let key = crate::line::file_key(origin.session);
        self.count_lost(origin.session, &key, |l| l.add(losses));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_of_its_own_level_is_filtered_by_it() {
        let rules = Rules {
            min_level: TelemetryLevel::Info,
            source_levels: vec![("console".into(), TelemetryLevel::Warn)],
            sample: [1.0; 5],
        };
        assert!(rules.passes("app", TelemetryLevel::Info));
        assert!(!rules.passes("app", TelemetryLevel::Debug));
        assert!(!rules.passes("console", TelemetryLevel::Info));
        assert!(rules.passes("console", TelemetryLevel::Error));
    }

    #[test]
    fn sampling_keeps_its_share_spread_evenly() {
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        let mut rules = Rules::default();
        rules.sample[rank(TelemetryLevel::Info)] = 0.25;
        let pipeline = Pipeline::new(
            rules,
            tx,
            Arc::default(),
            1 << 20,
            Arc::default(),
            Arc::default(),
        );
        let kept: Vec<bool> = (0..8)
            .map(|_| pipeline.sampled(TelemetryLevel::Info))
            .collect();
        assert_eq!(kept, [false, false, false, true, false, false, false, true]);
        assert!((0..5).all(|_| pipeline.sampled(TelemetryLevel::Error)));
    }
}
