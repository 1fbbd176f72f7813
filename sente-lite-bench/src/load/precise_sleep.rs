//! Sleeping to a deadline with microsecond precision inside the Tokio runtime.
//!
//! Tokio's timer ticks in milliseconds, far too coarse for an open loop that
//! sends requests tens of microseconds apart. A `timerfd` registered with the
//! runtime's reactor wakes the task at the exact time, without a thread of its
//! own (a thread switch per request would cost more than the request) and
//! without spinning (a spinning load generator loses the CPU to any other
//! process for whole time slices, which shows up as milliseconds of tail).

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use tokio::io::unix::AsyncFd;

/// Below this, waiting is done by yielding to the runtime instead of arming the timer.
const YIELD_BELOW: Duration = Duration::from_micros(15);

/// A one-shot timer on `CLOCK_MONOTONIC`, the clock of [`Instant`].
pub(crate) struct PreciseSleep {
    timer: AsyncFd<OwnedFd>,
}

impl PreciseSleep {
    /// A new timer; needs a Tokio runtime with I/O enabled.
    pub(crate) fn new() -> std::io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // `AsyncFd::new` is deprecated because it would also take a borrowed
        // descriptor it cannot keep alive; this one owns its `OwnedFd`, and the
        // replacement (`AsyncFd::register`) is `unsafe`, which this crate forbids.
        #[allow(deprecated)]
        let timer = AsyncFd::new(fd)?;
        Ok(Self { timer })
    }

    /// Waits until `deadline` (at once when it has passed).
    pub(crate) async fn until(&mut self, deadline: Instant) -> std::io::Result<()> {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        if wait < YIELD_BELOW {
            while Instant::now() < deadline {
                tokio::task::yield_now().await;
            }
            return Ok(());
        }
        let value = Timespec {
            tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        timerfd_settime(
            self.timer.get_ref(),
            TimerfdTimerFlags::empty(),
            &Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: value,
            },
        )?;
        loop {
            let mut guard = self.timer.readable().await?;
            let mut expirations = [0u8; 8];
            match rustix::io::read(guard.get_inner(), &mut expirations) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::AGAIN) => guard.clear_ready(),
                Err(err) => return Err(err.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn wakes_at_the_deadline_not_a_millisecond_later() {
        let mut sleep = PreciseSleep::new().expect("timerfd");
        let mut worst = Duration::ZERO;
        for _ in 0..50 {
            let deadline = Instant::now() + Duration::from_micros(200);
            sleep.until(deadline).await.expect("sleeps");
            let now = Instant::now();
            assert!(now >= deadline);
            worst = worst.max(now - deadline);
        }
        // Generous: a loaded test machine may be late now and then.
        assert!(worst < Duration::from_millis(50), "{worst:?}");
    }
}
