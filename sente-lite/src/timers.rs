//! The thread the server's long-lived timers run on.
//!
//! Each connection keeps one timer (its next ping, silence check, request
//! deadline or drain; see `connection::run`), almost always due seconds
//! away, and a server with streams keeps one more for their sweeper. Were
//! they on the server's runtime, every worker that waits for its sockets
//! would wait with a timeout, and on Linux each such wait arms a kernel timer
//! and takes it down again when the worker wakes: a cost paid for every
//! message a quiet worker wakes for, though the timer is seconds off. On a
//! runtime of their own, on one thread that sleeps until the earliest of
//! them, the workers wait without one. A timer that fires wakes its task on
//! the server's runtime as any waker does; the thread starts with the first
//! timer and sleeps while none is due.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio::time::{Instant, Interval, Sleep};

/// A timer due at `at`, driven by the timer thread.
pub(crate) fn sleep_until(at: Instant) -> Sleep {
    on_timer_thread(|| tokio::time::sleep_until(at))
}

/// An interval ticking every `period` (the first tick at once), driven by
/// the timer thread.
pub(crate) fn interval(period: Duration) -> Interval {
    on_timer_thread(|| tokio::time::interval(period))
}

/// Runs `make` with the timer runtime entered, so the timer it makes is
/// that runtime's; where the thread could not be started, with whatever
/// runtime is current.
fn on_timer_thread<T>(make: impl FnOnce() -> T) -> T {
    match handle() {
        Some(handle) => {
            let _entered = handle.enter();
            make()
        }
        None => make(),
    }
}

/// The timer runtime's handle, `None` if its thread could not be started.
fn handle() -> Option<&'static Handle> {
    static TIMERS: OnceLock<Option<Handle>> = OnceLock::new();
    TIMERS
        .get_or_init(|| {
            let runtime = Builder::new_current_thread().enable_time().build().ok()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("sente-lite-timers".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .ok()?;
            Some(handle)
        })
        .as_ref()
}
