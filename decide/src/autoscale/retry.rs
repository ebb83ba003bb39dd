//! When to try a platform again after it failed: exponential backoff with time passed in.

use crate::scheduling::backoff_ms;

/// The first wait after a failure of a declarative backend, ms.
pub const RETRY_BASE_MS: u64 = 250;

/// The longest wait between two tries, ms.
pub const RETRY_MAX_MS: u64 = 30_000;

/// Backoff for a platform that keeps failing: the first retry waits `base`, each later
/// one twice as long, at most `max`; one success starts it over.
#[derive(Clone, Debug)]
pub struct Retry {
    base_ms: u64,
    max_ms: u64,
    failures: u32,
    next_ms: u64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry::new(RETRY_BASE_MS, RETRY_MAX_MS)
    }
}

impl Retry {
    /// Backoff from `base_ms` doubling up to `max_ms`.
    pub fn new(base_ms: u64, max_ms: u64) -> Self {
        Retry {
            base_ms,
            max_ms,
            failures: 0,
            next_ms: 0,
        }
    }

    /// Whether a try is allowed at `now_ms`.
    pub fn ready(&self, now_ms: u64) -> bool {
        now_ms >= self.next_ms
    }

    /// A try failed at `now_ms`: answers how long to wait before the next one, ms.
    pub fn failed(&mut self, now_ms: u64) -> u64 {
        self.failures = self.failures.saturating_add(1);
        let wait = backoff_ms(self.failures, self.base_ms, self.max_ms);
        self.next_ms = now_ms.saturating_add(wait);
        wait
    }

    /// A try succeeded: the next failure waits `base` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.next_ms = 0;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn waits_double_from_250_ms_to_30_s_and_a_success_starts_over() {
        let mut retry = Retry::default();
        assert!(retry.ready(0));
        let waits: Vec<u64> = (0..10).map(|_| retry.failed(1_000)).collect();
        assert_eq!(
            waits,
            [
                250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000
            ]
        );
        assert!(!retry.ready(30_999));
        assert!(retry.ready(31_000));
        retry.succeeded();
        assert!(retry.ready(0));
        assert_eq!(retry.failed(5_000), 250);
    }

    proptest! {
        /// However many failures come, each wait lies within [base, max], never shrinks
        /// before a success, and the next try is allowed exactly when it has passed.
        #[test]
        fn waits_stay_within_their_bounds(
            base in 1..5_000u64,
            extra in 0..100_000u64,
            gaps in proptest::collection::vec(0..60_000u64, 1..60),
        ) {
            let max = base + extra;
            let mut retry = Retry::new(base, max);
            let mut now = 0;
            let mut last = 0;
            for gap in gaps {
                now += gap;
                let wait = retry.failed(now);
                prop_assert!((base..=max).contains(&wait));
                prop_assert!(wait >= last);
                prop_assert!(!retry.ready(now + wait - 1));
                prop_assert!(retry.ready(now + wait));
                last = wait;
            }
        }
    }
}
