//! How long a job waits before its next attempt.

/// Exponential backoff: `base * 2^(attempts_done - 1)`, capped at `max`. The first
/// retry waits `base`.
pub fn backoff_ms(attempts_done: u32, base_ms: u64, max_ms: u64) -> u64 {
    let doublings = attempts_done.saturating_sub(1).min(32);
    base_ms.saturating_mul(1u64 << doublings).min(max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        assert_eq!(backoff_ms(1, 100, 1000), 100);
        assert_eq!(backoff_ms(2, 100, 1000), 200);
        assert_eq!(backoff_ms(3, 100, 1000), 400);
        assert_eq!(backoff_ms(5, 100, 1000), 1000);
        assert_eq!(backoff_ms(200, 100, 1000), 1000);
        assert_eq!(backoff_ms(0, 100, 1000), 100);
    }
}
