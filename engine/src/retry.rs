//! Retry policy as data: capped exponential backoff with full jitter, for as long as a budget in
//! time allows (and, optionally, a number of attempts).
//!
//! Patience is measured in time, not attempts: four attempts with backoff from 100 ms give up
//! within half a second, shorter than any process restart, so a restart rolled orders back. A
//! budget in time (like Temporal's schedule-to-close timeout) rides out a restart or a rolling
//! deploy whatever the backoff, and compensation is left for refusals and long outages.
//!
//! Full jitter (a uniform delay between zero and the capped exponential) spreads the retries of
//! many sagas that failed together, so a participant coming back is not hit by a synchronized
//! wave.

use std::time::Duration;

/// How a step's attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1). `None`: no cap.
    pub max_attempts: Option<u32>,
    /// How long after the first attempt began another may start. `None`: no limit (the
    /// saga's deadline still applies to a compensatable step).
    pub budget: Option<Duration>,
    /// Cap of the delay before the second attempt.
    pub initial_backoff: Duration,
    /// Cap of any delay.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Checks the invariants: at least one attempt, `0 < initial <= max`.
    pub fn validate(&self, what: &str) -> anyhow::Result<()> {
        if self.max_attempts == Some(0) {
            anyhow::bail!("{what}: max attempts must be at least 1");
        }
        if self.budget.is_some_and(|budget| budget.is_zero()) {
            anyhow::bail!("{what}: the retry budget must be positive");
        }
        if self.initial_backoff.is_zero() || self.initial_backoff > self.max_backoff {
            anyhow::bail!(
                "{what}: backoff must satisfy 0 < initial ({:?}) <= max ({:?})",
                self.initial_backoff,
                self.max_backoff
            );
        }
        Ok(())
    }

    /// Whether another attempt may follow `attempts_made` attempts, the first of which began
    /// `elapsed` ago.
    pub fn may_retry(&self, attempts_made: u32, elapsed: Duration) -> bool {
        self.max_attempts.is_none_or(|max| attempts_made < max) && self.budget.is_none_or(|budget| elapsed < budget)
    }

    /// The cap of the delay after `attempts_made` failed attempts: `initial * 2^(n-1)`, at most `max`.
    pub fn backoff_cap(&self, attempts_made: u32) -> Duration {
        let doublings = attempts_made.saturating_sub(1).min(30);
        self.initial_backoff.saturating_mul(1 << doublings).min(self.max_backoff)
    }

    /// The delay before the next attempt: `jitter` (a uniform draw from `[0, 1]`, which the
    /// caller supplies so this stays a pure function) times the cap: full jitter.
    pub fn backoff(&self, attempts_made: u32, jitter: f64) -> Duration {
        self.backoff_cap(attempts_made).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: Some(4),
            budget: Some(Duration::from_secs(10)),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        }
    }

    #[test]
    fn the_backoff_cap_doubles_from_the_initial_value_up_to_the_maximum() {
        let caps: Vec<u128> = (1..=6).map(|n| policy().backoff_cap(n).as_millis()).collect();
        assert_eq!(caps, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy().backoff_cap(u32::MAX), Duration::from_millis(1000), "no overflow");
    }

    #[test]
    fn jittered_delays_stay_within_zero_and_the_cap() {
        for n in 1..=10 {
            assert_eq!(policy().backoff(n, 0.0), Duration::ZERO);
            assert_eq!(policy().backoff(n, 1.0), policy().backoff_cap(n));
            assert_eq!(policy().backoff(n, 0.5), policy().backoff_cap(n) / 2);
            assert_eq!(policy().backoff(n, 7.0), policy().backoff_cap(n), "out-of-range jitter is clamped");
        }
    }

    #[test]
    fn attempts_stop_at_the_maximum_unless_unbounded() {
        let early = Duration::from_secs(1);
        assert!(policy().may_retry(3, early));
        assert!(!policy().may_retry(4, early));
        let uncapped = RetryPolicy { max_attempts: None, ..policy() };
        assert!(uncapped.may_retry(1_000_000, early));
    }

    #[test]
    fn attempts_stop_when_the_budget_is_spent_unless_unbounded() {
        let uncapped = RetryPolicy { max_attempts: None, ..policy() };
        assert!(uncapped.may_retry(1, Duration::from_millis(9_999)));
        assert!(!uncapped.may_retry(1, Duration::from_secs(10)), "the budget's end is its last moment");
        let forever = RetryPolicy { budget: None, ..uncapped };
        assert!(forever.may_retry(u32::MAX, Duration::from_secs(86_400)));
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert!(RetryPolicy { max_attempts: Some(0), ..policy() }.validate("x").is_err());
        assert!(RetryPolicy { initial_backoff: Duration::ZERO, ..policy() }.validate("x").is_err());
        assert!(RetryPolicy { budget: Some(Duration::ZERO), ..policy() }.validate("x").is_err());
        assert!(RetryPolicy { initial_backoff: Duration::from_secs(5), ..policy() }.validate("x").is_err());
        assert!(policy().validate("x").is_ok());
    }
}
