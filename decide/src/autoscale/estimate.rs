//! Small estimators a caller can keep per pool to fill a [`super::PoolObservation`]:
//! the arrival rate and the mean run time, both with time passed in.

/// Length of one counting bucket of [`ArrivalRate`].
const BUCKET_MS: u64 = 1000;
/// A second's count above this many times the current rate is a batch, not a rate.
const BURST_FACTOR: f64 = 3.0;
/// ... as long as it is above this many jobs (so a rate can rise from zero).
const BURST_FLOOR: f64 = 4.0;
/// The rate is smoothed over at least this many arrivals' worth of time.
const MIN_EVENTS: f64 = 100.0;
/// ... but never over more than this long.
const MAX_TIME_CONSTANT_MS: f64 = 600_000.0;

/// Jobs arriving per second, smoothed, with batches kept out.
///
/// Arrivals are counted in one-second buckets and folded into an exponentially
/// weighted mean whose time constant is `time_constant_ms`, stretched when arrivals
/// are rare so that it always spans about a hundred of them (up to ten minutes). A bucket holding more than
/// three times the current rate (and more than four jobs) counts only up to that: a
/// batch of 500 jobs submitted at once is backlog, which the policy sees in the queue,
/// not a new rate to provision for. A genuine rise still gets through, tripling per
/// bucket at most. The mean is corrected for its start from zero, so the first
/// seconds already read the rate they saw rather than a fraction of it.
#[derive(Clone, Debug)]
pub struct ArrivalRate {
    time_constant_ms: f64,
    bucket_start_ms: u64,
    bucket: u64,
    /// The weighted mean, biased towards zero until `weight` reaches 1.
    raw: f64,
    /// The total weight folded in so far: dividing by it removes the start-up bias.
    weight: f64,
}

impl ArrivalRate {
    /// An estimator starting at `now_ms` with a 60 s time constant.
    pub fn new(now_ms: u64) -> Self {
        ArrivalRate::with_time_constant(now_ms, 60_000)
    }

    /// An estimator with the given time constant, in milliseconds.
    pub fn with_time_constant(now_ms: u64, time_constant_ms: u64) -> Self {
        ArrivalRate {
            time_constant_ms: time_constant_ms.max(1) as f64,
            bucket_start_ms: now_ms,
            bucket: 0,
            raw: 0.0,
            weight: 0.0,
        }
    }

    /// Counts `jobs` arrivals at `now_ms`.
    pub fn record(&mut self, now_ms: u64, jobs: u64) {
        self.roll(now_ms);
        self.bucket = self.bucket.saturating_add(jobs);
    }

    /// The smoothed rate at `now_ms`, jobs per second.
    pub fn per_second(&mut self, now_ms: u64) -> f64 {
        self.roll(now_ms);
        self.rate()
    }

    fn rate(&self) -> f64 {
        if self.weight > 0.0 {
            self.raw / self.weight
        } else {
            0.0
        }
    }

    /// Folds one bucket of `count` arrivals.
    fn fold(&mut self, count: f64) {
        let alpha = self.alpha();
        self.raw += alpha * (count - self.raw);
        self.weight += alpha * (1.0 - self.weight);
    }

    fn alpha(&self) -> f64 {
        let rate = self.rate();
        let stretched = if rate > 0.0 {
            (MIN_EVENTS * 1000.0 / rate).min(MAX_TIME_CONSTANT_MS)
        } else {
            0.0
        };
        let tau = self.time_constant_ms.max(stretched);
        1.0 - (-(BUCKET_MS as f64) / tau).exp()
    }

    fn roll(&mut self, now_ms: u64) {
        if now_ms < self.bucket_start_ms.saturating_add(BUCKET_MS) {
            return;
        }
        let cap = (BURST_FACTOR * self.rate()).max(BURST_FLOOR);
        self.fold((self.bucket as f64).min(cap));
        self.bucket = 0;
        self.bucket_start_ms += BUCKET_MS;
        // Whole empty buckets since: fold them one by one while the rate matters.
        while now_ms >= self.bucket_start_ms.saturating_add(BUCKET_MS) {
            if self.raw < 1e-6 {
                self.raw = 0.0;
                let empty = (now_ms - self.bucket_start_ms) / BUCKET_MS;
                self.bucket_start_ms += empty * BUCKET_MS;
                break;
            }
            self.fold(0.0);
            self.bucket_start_ms += BUCKET_MS;
        }
    }
}

/// Mean run time of a pool's jobs: an average of finished runs weighted by how
/// recently they finished (time constant five minutes by default).
#[derive(Clone, Debug)]
pub struct RunTime {
    time_constant_ms: f64,
    last_ms: u64,
    weighted_sum: f64,
    weight: f64,
}

impl Default for RunTime {
    fn default() -> Self {
        RunTime::with_time_constant(300_000)
    }
}

impl RunTime {
    /// An estimator whose samples lose weight with this time constant, milliseconds.
    pub fn with_time_constant(time_constant_ms: u64) -> Self {
        RunTime {
            time_constant_ms: time_constant_ms.max(1) as f64,
            last_ms: 0,
            weighted_sum: 0.0,
            weight: 0.0,
        }
    }

    /// Records a run that finished at `now_ms` after `run_ms`.
    pub fn record(&mut self, now_ms: u64, run_ms: u64) {
        let age = now_ms.saturating_sub(self.last_ms) as f64;
        let keep = (-age / self.time_constant_ms).exp();
        self.weighted_sum = self.weighted_sum * keep + run_ms as f64;
        self.weight = self.weight * keep + 1.0;
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// The mean, or `None` before the first run finished.
    pub fn mean_ms(&self) -> Option<u64> {
        (self.weight > 0.0).then(|| (self.weighted_sum / self.weight).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_rate_is_measured() {
        let mut rate = ArrivalRate::new(0);
        for second in 0..300u64 {
            rate.record(second * 1000, 10);
        }
        let measured = rate.per_second(300_000);
        assert!((measured - 10.0).abs() < 0.2, "{measured}");
    }

    #[test]
    fn a_batch_is_backlog_not_rate() {
        let mut rate = ArrivalRate::new(0);
        for second in 0..120u64 {
            rate.record(second * 1000, 2);
        }
        rate.record(120_500, 500);
        let after = rate.per_second(122_000);
        assert!(after < 2.5, "a batch of 500 moved the rate to {after}");
    }

    #[test]
    fn a_real_rise_gets_through() {
        let mut rate = ArrivalRate::new(0);
        for second in 0..180u64 {
            rate.record(second * 1000, 20);
        }
        let measured = rate.per_second(180_000);
        assert!(measured > 18.0, "{measured}");
    }

    #[test]
    fn the_first_seconds_read_the_rate_already() {
        let mut rate = ArrivalRate::new(0);
        for second in 0..5u64 {
            rate.record(second * 1000, 3);
        }
        let measured = rate.per_second(5_000);
        assert!((measured - 3.0).abs() < 0.3, "{measured}");
    }

    #[test]
    fn the_rate_decays_in_silence() {
        let mut rate = ArrivalRate::new(0);
        for second in 0..60u64 {
            rate.record(second * 1000, 10);
        }
        assert!(rate.per_second(3_600_000) < 0.01);
        assert_eq!(rate.per_second(90_000_000), 0.0);
    }

    #[test]
    fn rare_arrivals_are_averaged_over_more_time() {
        let mut rate = ArrivalRate::new(0);
        // One job every 25 s for an hour: 0.04 jobs/s.
        for i in 0..144u64 {
            rate.record(i * 25_000, 1);
        }
        let measured = rate.per_second(3_600_000);
        assert!((measured - 0.04).abs() < 0.015, "{measured}");
    }

    #[test]
    fn run_time_is_a_recent_mean() {
        let mut runs = RunTime::default();
        assert_eq!(runs.mean_ms(), None);
        runs.record(1000, 2000);
        runs.record(2000, 4000);
        let mean = runs.mean_ms().unwrap_or(0);
        assert!((3_000..=3_005).contains(&mean), "{mean}");
        // An hour later, new runs outweigh the old ones.
        for i in 0..10 {
            runs.record(3_600_000 + i, 10_000);
        }
        let mean = runs.mean_ms().unwrap_or(0);
        assert!(mean > 9_900, "{mean}");
    }
}
