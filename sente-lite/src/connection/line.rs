//! The waiting line: frames decoded while every handler slot was taken.
//!
//! A connection runs at most `max_concurrent_handlers` handlers at once. What
//! arrives past that waits here, in order, bounded in messages and in bytes
//! (counted as the frames' size on the wire); while the line is full the engine
//! stops reading the socket, and the time it does not read never counts as the
//! peer's silence. A request keeps its deadline while it waits: one whose
//! deadline passes in the line is answered `deadline-exceeded` at that moment,
//! and its handler never runs.

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::router::DispatchFuture;
use crate::{Cancellation, Ctx, RequestId};

/// Work decoded from one frame, ready to run.
pub(super) struct Job {
    /// The handler (or control task), not yet polled.
    pub(super) running: DispatchFuture,
    /// The frame's size on the wire.
    pub(super) size: usize,
    /// The request's id, for a request.
    pub(super) req_id: Option<RequestId>,
    /// A request with a deadline: its id, and when the deadline passes.
    pub(super) deadline: Option<(RequestId, Instant)>,
    /// A request not yet among those in flight: its cancellation, for
    /// [`Job::hold`].
    pub(super) unheld: Option<Cancellation>,
}

impl Job {
    /// Puts a request begun lazily among the requests in flight, where the
    /// peer's `sl/cancel` finds it: done before the next frame is read, unless
    /// its handler finished at its first poll.
    pub(super) fn hold(&mut self, ctx: &Ctx) {
        if let (Some(req_id), Some(cancellation)) = (self.req_id, self.unheld.take()) {
            ctx.hold_request(req_id, &cancellation);
        }
    }
}

/// Jobs waiting for a handler slot.
#[derive(Default)]
pub(super) struct Line {
    jobs: VecDeque<Job>,
    bytes: usize,
}

impl Line {
    /// Whether another frame may be read: the line is empty (one frame always
    /// fits), or below both bounds.
    pub(super) fn has_room(&self, max_jobs: usize, max_bytes: usize) -> bool {
        self.jobs.is_empty() || (self.jobs.len() < max_jobs && self.bytes < max_bytes)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    pub(super) fn push(&mut self, job: Job) {
        self.bytes += job.size;
        self.jobs.push_back(job);
    }

    pub(super) fn pop(&mut self) -> Option<Job> {
        let job = self.jobs.pop_front()?;
        self.bytes -= job.size;
        Some(job)
    }

    /// The earliest deadline of a waiting request.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.jobs
            .iter()
            .filter_map(|job| job.deadline.map(|(_, at)| at))
            .min()
    }

    /// Removes the requests whose deadline has passed at `now` (their handlers
    /// never run) and returns their ids.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<RequestId> {
        let mut expired = Vec::new();
        let bytes = &mut self.bytes;
        self.jobs.retain(|job| match job.deadline {
            Some((req_id, at)) if at <= now => {
                *bytes -= job.size;
                expired.push(req_id);
                false
            }
            _ => true,
        });
        expired
    }

    /// Drops the waiting request `req_id` (the peer cancelled it): its
    /// handler never runs. Returns whether it was waiting.
    pub(super) fn remove(&mut self, req_id: RequestId) -> bool {
        let Some(at) = self.jobs.iter().position(|job| job.req_id == Some(req_id)) else {
            return false;
        };
        if let Some(job) = self.jobs.remove(at) {
            self.bytes -= job.size;
        }
        true
    }

    /// Drops every waiting job (a drain ran out of time).
    pub(super) fn clear(&mut self) {
        self.jobs.clear();
        self.bytes = 0;
    }
}
