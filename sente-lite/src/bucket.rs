//! The token bucket behind every rate in the crate: a connection's inbound rate
//! limit and violation allowance, a client's pace, a connection's telemetry
//! budget.

use std::time::Duration;

use tokio::time::Instant;

/// Holds at most `capacity` tokens, refilled at `per_sec`, full at the start.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(capacity: f64, per_sec: f64) -> Self {
        Self {
            capacity,
            tokens: capacity,
            per_sec,
            last: Instant::now(),
        }
    }

    /// The tokens held at `now`, after the refill since the last look.
    pub(crate) fn tokens(&mut self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.tokens
    }

    /// Takes `amount` tokens, which may leave the bucket owing.
    pub(crate) fn spend(&mut self, amount: f64) {
        self.tokens -= amount;
    }

    /// Takes one token at `now` if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let ready = self.tokens(now) >= 1.0;
        if ready {
            self.spend(1.0);
        }
        ready
    }

    /// When the bucket next holds a whole token (at most a minute ahead).
    pub(crate) fn next_token_at(&self) -> Instant {
        let wait = ((1.0 - self.tokens).max(0.0) / self.per_sec).min(60.0);
        self.last + Duration::from_secs_f64(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn a_bucket_holds_its_burst_then_refills_at_its_rate() {
        let mut bucket = TokenBucket::new(2.0, 10.0);
        let start = Instant::now();
        assert!(bucket.take(start));
        assert!(bucket.take(start));
        assert!(!bucket.take(start));
        assert_eq!(bucket.next_token_at(), start + Duration::from_millis(100));
        assert!(bucket.take(start + Duration::from_millis(100)));
        // Never more than the capacity, however long it waited.
        assert_eq!(bucket.tokens(start + Duration::from_secs(60)), 2.0);
        bucket.spend(5.0);
        assert_eq!(bucket.tokens(start + Duration::from_secs(60)), -3.0);
    }
}
