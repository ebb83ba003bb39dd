//! A smoothed events-per-second meter with time passed in.

/// Exponentially weighted rate of events per second, updated once per window.
#[derive(Clone, Debug, Default)]
pub struct RateMeter {
    window_start_ms: u64,
    count: u64,
    rate: f64,
}

/// Shortest window over which a rate is computed.
const WINDOW_MS: u64 = 1000;

impl RateMeter {
    /// Counts `n` events.
    pub fn record(&mut self, n: u64) {
        self.count += n;
    }

    /// Folds the current window into the rate once it is at least a second long.
    pub fn roll(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.window_start_ms);
        if elapsed < WINDOW_MS {
            return;
        }
        let current = self.count as f64 * 1000.0 / elapsed as f64;
        self.rate = 0.5 * self.rate + 0.5 * current;
        self.count = 0;
        self.window_start_ms = now_ms;
    }

    /// The smoothed rate, events per second.
    pub fn per_second(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_a_steady_rate() {
        let mut meter = RateMeter::default();
        for second in 1..=10 {
            meter.record(100);
            meter.roll(second * 1000);
        }
        assert!(
            (meter.per_second() - 100.0).abs() < 1.0,
            "{}",
            meter.per_second()
        );
    }

    #[test]
    fn decays_when_events_stop() {
        let mut meter = RateMeter::default();
        meter.record(100);
        meter.roll(1000);
        for second in 2..=10 {
            meter.roll(second * 1000);
        }
        assert!(meter.per_second() < 1.0);
    }
}
