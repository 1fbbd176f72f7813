//! When to reconnect: the [`ReconnectPolicy`] and its exponential backoff with full jitter.

use std::time::Duration;

/// How a [`Client`](super::Client) reconnects after losing its connection.
///
/// The delay before reconnection attempt `n` (counted from 0 since the last
/// successful handshake) is drawn uniformly from `0 ..
/// min(max_delay, initial_delay × multiplier^n)` ("full jitter"), so that many
/// clients dropped at once by a restarting server do not all come back in the
/// same instant. A server's `sl/close` frame with `reconnect_after_ms` raises
/// the next delay to at least that long.
///
/// ```
/// use std::time::Duration;
/// use sente_lite::ReconnectPolicy;
///
/// let policy = ReconnectPolicy::default()
///     .with_initial_delay(Duration::from_millis(100))
///     .with_max_delay(Duration::from_secs(5))
///     .with_max_attempts(Some(10));
/// assert_eq!(policy.ceiling(0), Duration::from_millis(100));
/// assert_eq!(policy.ceiling(2), Duration::from_millis(400));
/// assert_eq!(policy.ceiling(20), Duration::from_secs(5));
/// ```
///
/// It reads `[client.reconnect]` of a [settings file](crate::settings), the
/// delays in milliseconds (`initial_delay_ms`, `max_delay_ms`) and
/// `max_attempts` absent for "forever".
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// The ceiling of the first delay. Default 250 ms.
    #[serde(rename = "initial_delay_ms", with = "crate::settings::de::millis")]
    pub initial_delay: Duration,
    /// How much the ceiling grows per attempt. Default 2.0; values below 1 (or
    /// not finite) count as 1.
    pub multiplier: f64,
    /// The largest ceiling. Default 30 s.
    #[serde(rename = "max_delay_ms", with = "crate::settings::de::millis")]
    pub max_delay: Duration,
    /// Attempts in a row before the client gives up and enters
    /// [`Failed`](super::ConnectionState::Failed); `None` (the default) tries forever.
    /// `Some(0)` never reconnects.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(250),
            multiplier: 2.0,
            max_delay: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// A policy that never reconnects: a lost connection makes the client
    /// [`Failed`](super::ConnectionState::Failed).
    pub fn never() -> Self {
        Self::default().with_max_attempts(Some(0))
    }

    /// Sets [`ReconnectPolicy::initial_delay`].
    pub fn with_initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Sets [`ReconnectPolicy::multiplier`].
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets [`ReconnectPolicy::max_delay`].
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets [`ReconnectPolicy::max_attempts`].
    pub fn with_max_attempts(mut self, attempts: Option<u32>) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The upper bound of the delay before attempt `attempt` (0-based):
    /// `min(max_delay, initial_delay × multiplier^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let multiplier = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let secs = self.initial_delay.as_secs_f64() * multiplier.powi(exponent);
        // `!(a < b)` also catches an infinite product.
        if secs < self.max_delay.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.max_delay
        }
    }
}

/// The backoff state of one client: attempts since the last success.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: ReconnectPolicy,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub(crate) fn new(policy: ReconnectPolicy) -> Self {
        Self::with_rng(policy, fastrand::Rng::new())
    }

    pub(crate) fn with_rng(policy: ReconnectPolicy, rng: fastrand::Rng) -> Self {
        Self {
            policy,
            attempt: 0,
            rng,
        }
    }

    /// The delay before the next attempt, or `None` when the policy allows no more.
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        if self
            .policy
            .max_attempts
            .is_some_and(|max| self.attempt >= max)
        {
            return None;
        }
        let ceiling = self.policy.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        Some(ceiling.mul_f64(self.rng.f64()))
    }

    /// Attempts made since the last reset.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over, after a successful handshake.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy::default()
            .with_initial_delay(Duration::from_millis(100))
            .with_multiplier(2.0)
            .with_max_delay(Duration::from_secs(1))
    }

    #[test]
    fn defaults_are_documented_ones() {
        let p = ReconnectPolicy::default();
        assert_eq!(p.initial_delay, Duration::from_millis(250));
        assert_eq!(p.multiplier, 2.0);
        assert_eq!(p.max_delay, Duration::from_secs(30));
        assert_eq!(p.max_attempts, None);
        assert_eq!(ReconnectPolicy::never().max_attempts, Some(0));
    }

    #[test]
    fn ceiling_grows_exponentially_then_caps() {
        let p = policy();
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
        assert_eq!(p.ceiling(1), Duration::from_millis(200));
        assert_eq!(p.ceiling(2), Duration::from_millis(400));
        assert_eq!(p.ceiling(3), Duration::from_millis(800));
        assert_eq!(p.ceiling(4), Duration::from_secs(1));
        assert_eq!(p.ceiling(1000), Duration::from_secs(1));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn odd_multipliers_do_not_shrink_or_explode() {
        for m in [0.0, 0.5, -3.0, f64::NAN, f64::NEG_INFINITY, f64::INFINITY] {
            let p = policy().with_multiplier(m);
            assert_eq!(p.ceiling(7), Duration::from_millis(100), "multiplier {m}");
        }
        // A product that overflows to infinity is capped, not a panic.
        let p = policy().with_multiplier(1e300);
        assert_eq!(p.ceiling(5), Duration::from_secs(1));
        let p = policy().with_initial_delay(Duration::from_secs(60));
        assert_eq!(
            p.ceiling(0),
            Duration::from_secs(1),
            "the cap holds from the first attempt"
        );
    }

    #[test]
    fn delays_stay_within_zero_and_the_ceiling() {
        let mut backoff = Backoff::with_rng(policy(), fastrand::Rng::with_seed(7));
        for attempt in 0..50 {
            let delay = backoff.next_delay().expect("no attempt limit");
            assert!(
                delay < policy().ceiling(attempt).max(Duration::from_nanos(1)),
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn jitter_spreads_over_the_whole_range() {
        // Full jitter: many draws for the same attempt cover [0, ceiling).
        let ceiling = policy().ceiling(3);
        let mut rng = fastrand::Rng::with_seed(42);
        let draws: Vec<Duration> = (0..2000)
            .map(|_| {
                let mut backoff = Backoff::with_rng(policy(), rng.fork());
                for _ in 0..3 {
                    backoff.next_delay();
                }
                backoff.next_delay().unwrap()
            })
            .collect();
        let min = draws.iter().min().unwrap();
        let max = draws.iter().max().unwrap();
        assert!(
            *min < ceiling / 20,
            "smallest draw {min:?} should be near 0"
        );
        assert!(
            *max > ceiling * 19 / 20,
            "largest draw {max:?} should be near {ceiling:?}"
        );
        assert!(draws.iter().all(|d| *d < ceiling));
        let mean = draws.iter().sum::<Duration>() / 2000;
        assert!(
            mean > ceiling * 2 / 5 && mean < ceiling * 3 / 5,
            "mean {mean:?} of a uniform draw"
        );
    }

    #[test]
    fn max_attempts_runs_out_and_reset_starts_over() {
        let mut backoff = Backoff::with_rng(
            policy().with_max_attempts(Some(3)),
            fastrand::Rng::with_seed(1),
        );
        assert!(backoff.next_delay().is_some());
        assert!(backoff.next_delay().is_some());
        let third = backoff.next_delay().unwrap();
        assert!(third < Duration::from_millis(400));
        assert_eq!(backoff.attempts(), 3);
        assert_eq!(backoff.next_delay(), None);
        assert_eq!(backoff.next_delay(), None);
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        let first = backoff.next_delay().unwrap();
        assert!(
            first < Duration::from_millis(100),
            "after a reset the ceiling is the initial delay again"
        );
    }

    #[test]
    fn never_allows_no_attempt() {
        let mut backoff = Backoff::new(ReconnectPolicy::never());
        assert_eq!(backoff.next_delay(), None);
    }
}
