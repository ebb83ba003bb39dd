//! Time as the actors read it: a monotonic axis for the scheduler, wall time for the
//! store.
//!
//! The monotonic axis is tokio's clock: the same as the system's monotonic clock in a
//! running node, and frozen or advanced at will in tests on paused time
//! (`tokio::time::pause`, `advance`), so that leases, timeouts and backoff are tested
//! to the millisecond without sleeping. Wall time stays the system's.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Milliseconds since the actor started, never going backwards.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock starting now.
    pub fn start() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }

    /// Milliseconds since [`MonotonicClock::start`].
    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

/// Wall-clock Unix time in milliseconds, for timestamps users read.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
