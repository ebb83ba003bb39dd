//! When the Supervisor decides: every tick, and at once when the CapacityManager wakes
//! it because new jobs could not start.

/// How often the Supervisor decides by default (`supervisor.tick_ms`), ms.
pub const SUPERVISOR_TICK_MS: u64 = 250;

/// The CapacityManager wakes the Supervisor for a pool at most this often, ms.
pub const WAKE_EVERY_MS: u64 = 50;

/// Whether new jobs for a pool should wake the Supervisor now rather than at its next
/// tick: the pool has no executor taking work, or jobs are left waiting for a slot — and
/// it was not woken for this pool in the last [`WAKE_EVERY_MS`].
pub fn should_wake(
    has_ready_executor: bool,
    pending: u64,
    since_last_wake_ms: Option<u64>,
) -> bool {
    (!has_ready_executor || pending > 0) && since_last_wake_ms.is_none_or(|ms| ms >= WAKE_EVERY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supervisor_is_woken_for_an_empty_pool_or_a_backlog_at_most_every_50_ms() {
        assert!(should_wake(false, 0, None), "a pool at zero");
        assert!(should_wake(true, 3, None), "jobs left waiting");
        assert!(!should_wake(true, 0, None), "every job found a slot");
        assert!(!should_wake(true, 3, Some(10)), "woken 10 ms ago");
        assert!(should_wake(true, 3, Some(50)));
    }
}
