//! The writer thread: takes the pipeline's batches, writes them a flush at a
//! time (with each session's losses since the last flush), and shows what it
//! wrote to the sessions' tail pages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use sente_lite::Server;

use crate::line::Line;
use crate::pipeline::{Batch, Counters, PendingLosses, now_ms};
use crate::store::Store;
use crate::{TailLines, tail_channel};

/// What the writer needs.
pub(crate) struct Writer {
    pub(crate) store: Store,
    pub(crate) rx: Receiver<Batch>,
    pub(crate) queued_bytes: Arc<AtomicUsize>,
    pub(crate) pending: PendingLosses,
    pub(crate) counters: Arc<Counters>,
    /// A flush happens this long after the first batch that waits.
    pub(crate) flush_every: Duration,
    /// Or once this many lines wait.
    pub(crate) flush_lines: usize,
    pub(crate) server: Server,
    /// Set when the server has stopped: the writer flushes and ends.
    pub(crate) stop: Arc<AtomicBool>,
}

impl Writer {
    /// Runs until told to stop (or every sender is gone).
    pub(crate) fn run(mut self) {
        let mut waiting: Vec<Batch> = Vec::new();
        let mut lines = 0;
        let mut first_at: Option<Instant> = None;
        loop {
            let timeout = first_at.map_or(self.flush_every, |at| {
                self.flush_every.saturating_sub(at.elapsed())
            });
            match self.rx.recv_timeout(timeout) {
                Ok(batch) => {
                    lines += batch.lines.len();
                    waiting.push(batch);
                    first_at.get_or_insert_with(Instant::now);
                    if lines < self.flush_lines {
                        continue;
                    }
                }
                Err(RecvTimeoutError::Timeout) if !self.stop.load(Ordering::Acquire) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    while let Ok(batch) = self.rx.try_recv() {
                        waiting.push(batch);
                    }
                    self.flush(std::mem::take(&mut waiting));
                    return;
                }
            }
            self.flush(std::mem::take(&mut waiting));
            lines = 0;
            first_at = None;
        }
    }

    /// Writes the batches, session by session in the order they came, then
    /// each session's losses, and broadcasts what was written to its tail.
    fn flush(&mut self, batches: Vec<Batch>) {
        let mut order: Vec<String> = Vec::new();
        let mut by_key: HashMap<String, Vec<Line>> = HashMap::new();
        for batch in batches {
            self.queued_bytes.fetch_sub(batch.weight, Ordering::AcqRel);
            let lines = by_key.entry(batch.key.clone()).or_insert_with(|| {
                order.push(batch.key.clone());
                Vec::new()
            });
            lines.extend(batch.lines.into_iter().map(Line::Record));
        }
        let losses =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        for (key, mut line) in losses {
            line.at_ms = now_ms();
            let lines = by_key.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                Vec::new()
            });
            lines.push(Line::Losses(line));
        }
        for key in order {
            let Some(mut lines) = by_key.remove(&key) else {
                continue;
            };
            if let Err(e) = self.store.append(&key, &mut lines) {
                tracing::error!(session = %key, "telemetry lines not written: {e}");
                continue;
            }
            let tail = TailLines { key, lines };
            if let Err(e) = self.server.broadcast(&tail_channel(&tail.key), &tail) {
                tracing::warn!("tail not shown: {e}");
            }
        }
        self.counters
            .disk_bytes
            .store(self.store.disk_bytes(), Ordering::Relaxed);
    }
}
