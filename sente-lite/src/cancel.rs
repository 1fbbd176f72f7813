//! Cancellation of a request's handler.
//!
//! A handler that answers a request runs until it returns, unless the
//! request stops being wanted first: the peer cancelled it (`sl/cancel`,
//! extension `cancel`: it dropped its request future, or aborted it), its
//! deadline passed, or the connection ended. The handler's future is then
//! dropped at its next `.await`, as any Rust future is cancelled, and no reply
//! is sent for a peer's cancel.
//!
//! Dropping is enough for most handlers: what they hold is released, and a
//! drop guard runs its clean-up. Work that outlives the future (a task the
//! handler spawned, a blocking job) watches the request's [`Cancellation`],
//! taken with [`Cancellation::current`] inside the handler:
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use sente_lite::{Cancellation, Ctx};
//!
//! #[sente_lite::event("report/build", reply = String)]
//! #[derive(Serialize, Deserialize)]
//! struct BuildReport {
//!     rows: u32,
//! }
//!
//! #[sente_lite::handler]
//! async fn build_report(_ctx: Ctx, req: BuildReport) -> String {
//!     let cancel = Cancellation::current().expect("inside a request's handler");
//!     let job = tokio::task::spawn_blocking(move || {
//!         let mut report = String::new();
//!         for row in 0..req.rows {
//!             if cancel.is_cancelled() {
//!                 break; // nobody waits for the report any more
//!             }
//!             report.push_str(&format!("row {row}\n"));
//!         }
//!         report
//!     });
//!     job.await.unwrap_or_default()
//! }
//! ```

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

tokio::task_local! {
    static CURRENT: Cancellation;
}

/// The cancellation of one request's handler: set when the request stops
/// being wanted before its handler finished (the peer cancelled it, its
/// deadline passed, or the connection ended).
///
/// Cheap to clone; clones watch the same request. See the
/// [module documentation](self) for when a handler needs one.
#[derive(Clone, Debug, Default)]
pub struct Cancellation {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    /// Whether the request is in its connection's set of requests in flight,
    /// where the peer's `sl/cancel` finds it (a handler that finishes at its
    /// first poll never is).
    held: AtomicBool,
    /// The task polling the handler, woken so that it drops the handler.
    handler: AtomicWaker,
    /// Whoever waits in [`Cancellation::cancelled`].
    watchers: Notify,
}

impl Cancellation {
    /// A cancellation not yet set.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The cancellation of the request whose handler is running on this task,
    /// or `None` outside a request's handler (a one-way event's handler, a
    /// task spawned by a handler: take it before spawning and move it in).
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Whether the request stopped being wanted.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Resolves once the request stops being wanted (at once if it already
    /// has). Cancel-safe: dropping it and calling it again misses nothing.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.watchers.notified();
            let mut notified = pin!(notified);
            // Registered before the check, so a cancel between them wakes it.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Whether `other` is this very cancellation (not a copy of its state).
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Records that the request was put in its connection's set of requests
    /// in flight.
    pub(crate) fn mark_held(&self) {
        self.inner.held.store(true, Ordering::Release);
    }

    /// Whether the request was put in its connection's set of requests in
    /// flight.
    pub(crate) fn is_held(&self) -> bool {
        self.inner.held.load(Ordering::Acquire)
    }

    /// Sets the cancellation; `true` when this call set it.
    pub(crate) fn cancel(&self) -> bool {
        if self.inner.cancelled.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.inner.handler.wake();
        self.inner.watchers.notify_waiters();
        true
    }

    /// Runs `handler` with this cancellation as [`Cancellation::current`],
    /// until it finishes (`Some`) or the cancellation is set (`None`, the
    /// handler dropped). If the returned future is itself dropped before
    /// the handler finished, the cancellation is set.
    pub(crate) async fn run<F: Future>(self, handler: F) -> Option<F::Output> {
        let on_drop = SetOnDrop(Some(&self));
        let mut handler = pin!(CURRENT.scope(self.clone(), handler));
        let inner = &self.inner;
        let done = std::future::poll_fn(|cx| {
            if inner.cancelled.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            if let Poll::Ready(output) = handler.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            // Registered only for a handler that waits (most finish at
            // their first poll, and need no waking).
            inner.handler.register(cx.waker());
            // Checked again: a cancel before the registration woke nobody.
            if inner.cancelled.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        if done.is_some() {
            on_drop.disarm();
        }
        done
    }
}

/// Sets a cancellation when dropped, unless disarmed.
struct SetOnDrop<'a>(Option<&'a Cancellation>);

impl SetOnDrop<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(cancellation) = self.0.take() {
            cancellation.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_drops_the_handler_and_wakes_watchers() {
        let cancellation = Cancellation::new();
        let watcher = tokio::spawn({
            let c = cancellation.clone();
            async move { c.cancelled().await }
        });
        let dropped = Arc::new(AtomicBool::new(false));
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let running = tokio::spawn({
            let flag = Flag(Arc::clone(&dropped));
            cancellation.clone().run(async move {
                let _flag = flag;
                assert!(Cancellation::current().is_some());
                std::future::pending::<()>().await;
            })
        });
        tokio::task::yield_now().await;
        assert!(cancellation.cancel());
        assert!(!cancellation.cancel(), "set once");
        assert_eq!(running.await.unwrap(), None);
        assert!(dropped.load(Ordering::SeqCst));
        watcher.await.unwrap();
    }

    #[tokio::test]
    async fn a_finished_handler_leaves_it_unset_and_a_dropped_one_sets_it() {
        let finished = Cancellation::new();
        assert_eq!(finished.clone().run(async { 7 }).await, Some(7));
        assert!(!finished.is_cancelled());

        let dropped = Cancellation::new();
        let run = dropped.clone().run(std::future::pending::<()>());
        let _ = tokio::time::timeout(std::time::Duration::from_millis(1), run).await;
        assert!(dropped.is_cancelled());
        // Already set: resolves at once.
        dropped.cancelled().await;
        assert!(Cancellation::current().is_none());
    }
}
