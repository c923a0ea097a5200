//! Waiting for a condition to hold: the one polling loop of the launcher and the tests. On
//! tokio's clock, so a paused-time test runs it without waiting.

use std::time::Duration;

use tokio::time::Instant;

/// How long to wait for something, and how often to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    pub timeout: Duration,
    pub every: Duration,
}

impl Poll {
    pub const fn new(timeout: Duration, every: Duration) -> Self {
        Self { timeout, every }
    }

    /// Looks (at once, then every `every`) until `check` yields a value; `None` once `timeout`
    /// has passed without one. The last look is at the deadline, not a period before it.
    pub async fn until<T>(self, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(value) = check().await {
                return Some(value);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            tokio::time::sleep(self.every.min(deadline - now)).await;
        }
    }

    /// [`Self::until`] for a yes-or-no condition: whether it held in time.
    pub async fn holds(self, mut check: impl AsyncFnMut() -> bool) -> bool {
        self.until(async || check().await.then_some(())).await.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_condition_is_checked_at_once_then_every_period_until_it_holds() {
        let started = Instant::now();
        let mut looks = 0;
        let poll = Poll::new(Duration::from_secs(10), Duration::from_millis(100));
        let found = poll
            .until(async || {
                looks += 1;
                (looks == 4).then_some(looks)
            })
            .await;
        assert_eq!(found, Some(4));
        // Looks at 0, 100, 200 and 300 ms.
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_condition_that_never_holds_gives_up_at_the_deadline_after_a_last_look() {
        let started = Instant::now();
        let mut looks = 0;
        let poll = Poll::new(Duration::from_millis(250), Duration::from_millis(100));
        let held = poll
            .holds(async || {
                looks += 1;
                false
            })
            .await;
        assert!(!held);
        // 0, 100, 200, and the deadline itself.
        assert_eq!(looks, 4);
        assert_eq!(started.elapsed(), Duration::from_millis(250));
    }
}
