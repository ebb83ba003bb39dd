//! Rate limits on scaling: how far the count may move within a period, measured from
//! the count at the start of the period (as the HPA's scaling policies do).

use std::collections::VecDeque;

use super::settings::RateLimit;

/// The changes a policy made recently, to find the count at a period's start.
#[derive(Clone, Debug, Default)]
pub struct ScalingHistory {
    events: VecDeque<(u64, i64)>,
}

impl ScalingHistory {
    /// Records a change of `delta` executors at `now_ms`.
    pub fn record(&mut self, now_ms: u64, delta: i64) {
        if delta != 0 {
            self.events.push_back((now_ms, delta));
        }
    }

    /// Drops changes older than `keep_ms`.
    pub fn prune(&mut self, now_ms: u64, keep_ms: u64) {
        let Some(cutoff) = now_ms.checked_sub(keep_ms) else {
            return;
        };
        while self.events.front().is_some_and(|&(at, _)| at <= cutoff) {
            self.events.pop_front();
        }
    }

    /// The count `period_ms` ago: `current` minus what was added plus what was removed
    /// since.
    pub fn period_start(&self, now_ms: u64, current: u32, period_ms: u64) -> u32 {
        let cutoff = now_ms.checked_sub(period_ms);
        let moved: i64 = self
            .events
            .iter()
            .filter(|&&(at, _)| cutoff.is_none_or(|cutoff| at > cutoff))
            .map(|&(_, delta)| delta)
            .sum();
        let start = i64::from(current) - moved;
        u32::try_from(start.max(0)).unwrap_or(u32::MAX)
    }
}

/// The highest count a scale-up may reach this period.
pub fn up_to(limit: &RateLimit, start: u32) -> u32 {
    let by_count = start.saturating_add(limit.executors);
    let by_percent = (f64::from(start) * (1.0 + f64::from(limit.percent) / 100.0)).ceil() as u32;
    by_count.max(by_percent)
}

/// The lowest count a scale-down may reach this period.
pub fn down_to(limit: &RateLimit, start: u32) -> u32 {
    let by_count = start.saturating_sub(limit.executors);
    let by_percent =
        (f64::from(start) * (1.0 - f64::from(limit.percent.min(100)) / 100.0)).floor() as u32;
    by_count.min(by_percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(executors: u32, percent: u32) -> RateLimit {
        RateLimit {
            executors,
            percent,
            period_secs: 15,
        }
    }

    #[test]
    fn the_larger_change_wins() {
        // The HPA default: max(4 pods, 100 %).
        assert_eq!(up_to(&limit(4, 100), 0), 4);
        assert_eq!(up_to(&limit(4, 100), 3), 7);
        assert_eq!(up_to(&limit(4, 100), 10), 20);
        assert_eq!(down_to(&limit(0, 100), 10), 0);
        assert_eq!(down_to(&limit(1, 10), 30), 27);
        assert_eq!(down_to(&limit(2, 10), 5), 3);
    }

    #[test]
    fn the_period_start_undoes_recent_changes() {
        let mut changes = ScalingHistory::default();
        changes.record(1_000, 4);
        changes.record(10_000, 4);
        changes.record(20_000, -2);
        assert_eq!(changes.period_start(20_000, 7, 15_000), 5);
        assert_eq!(changes.period_start(30_000, 7, 15_000), 9);
        changes.prune(30_000, 15_000);
        assert_eq!(changes.period_start(30_000, 7, 60_000), 9);
    }
}
