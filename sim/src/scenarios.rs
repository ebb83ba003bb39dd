//! Traffic scenarios for the simulator: a pool, its arrivals and run times, drawn
//! from a fixed seed so that every policy sees the very same jobs.

use marie_decide::autoscale::COLD_START_GUESS_MS;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// One job of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimJob {
    /// When it is queued, ms from the start.
    pub arrival_ms: u64,
    /// How long it runs once it has a slot, ms.
    pub run_ms: u64,
}

/// The simulated pool and the bounds every policy gets.
#[derive(Clone, Debug, PartialEq)]
pub struct SimPool {
    /// Slots per executor.
    pub slots: u32,
    /// Fewest executors (0: the pool may scale to zero).
    pub min: u32,
    /// Most executors.
    pub max: u32,
    /// Share of slots the policies aim to keep busy; the HPA and Ray Serve targets
    /// are `slots × target_utilization` jobs per executor.
    pub target_utilization: f64,
    /// Mean time from asking for an executor to its first free slot; each start
    /// draws uniformly within ±20 % of it.
    pub cold_start_ms: u64,
    /// What the Supervisor assumes the cold start is until it has measured one
    /// (`supervisor.cold_start_guess_ms`): the shipped default unless a scenario
    /// stands for an operator who configured it.
    pub cold_start_guess_ms: u64,
    /// Executors ready at time zero.
    pub initial_executors: u32,
    /// Whether the pool may go to zero when idle.
    pub scale_to_zero: bool,
}

/// How run times are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RunTimes {
    /// Every job runs this long (a sleep job), ms.
    Fixed {
        /// Run time, ms.
        ms: u64,
    },
    /// Exponential with this mean, ms.
    Exponential {
        /// Mean, ms.
        mean_ms: f64,
    },
    /// Log-normal with this mean (ms) and coefficient of variation.
    LogNormal {
        /// Mean, ms.
        mean_ms: f64,
        /// Standard deviation over mean.
        cv: f64,
    },
}

/// One component of a scenario's arrivals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Traffic {
    /// Poisson arrivals at a constant rate between two instants.
    Poisson {
        /// Start, ms.
        from_ms: u64,
        /// End, ms.
        to_ms: u64,
        /// Jobs per second.
        per_second: f64,
    },
    /// Poisson arrivals whose rate follows a day: `low` at the start, `high` half a
    /// period later, `low` again after a full period.
    Diurnal {
        /// Length of the day, ms.
        period_ms: u64,
        /// Night rate, jobs per second.
        low: f64,
        /// Noon rate, jobs per second.
        high: f64,
        /// End, ms.
        to_ms: u64,
    },
    /// A batch of jobs submitted within `spread_ms` from `at_ms`.
    Batch {
        /// When, ms.
        at_ms: u64,
        /// How many jobs.
        jobs: u32,
        /// Over how long, ms.
        spread_ms: u64,
    },
    /// `jobs` jobs whose rate grows linearly from zero at `from_ms` to its peak at
    /// `from_ms + over_ms`.
    Ramp {
        /// Start, ms.
        from_ms: u64,
        /// Length of the ramp, ms.
        over_ms: u64,
        /// How many jobs.
        jobs: u32,
    },
    /// `count` batches at uniformly drawn instants between two instants.
    RandomBatches {
        /// Number of batches.
        count: u32,
        /// Jobs per batch.
        jobs: u32,
        /// Each batch's spread, ms.
        spread_ms: u64,
        /// Earliest batch, ms.
        from_ms: u64,
        /// Latest batch, ms.
        to_ms: u64,
    },
}

/// A named traffic scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Short name, used in the table.
    pub name: &'static str,
    /// What it exercises.
    pub about: &'static str,
    /// Length of the run, ms; executor time is counted up to here.
    pub duration_ms: u64,
    /// A job waiting longer than this for a slot is an SLO miss.
    pub slo_wait_ms: u64,
    /// The pool.
    pub pool: SimPool,
    /// Arrivals, summed.
    pub traffic: Vec<Traffic>,
    /// Run times.
    pub run_times: RunTimes,
    /// Seed of every draw.
    pub seed: u64,
}

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// A CPU pool: 4 slots, 20 s cold start, 75 % target (the seed's 3 of 4 slots).
fn cpu_pool(min: u32, max: u32, initial_executors: u32) -> SimPool {
    SimPool {
        slots: 4,
        min,
        max,
        target_utilization: 0.75,
        cold_start_ms: 20 * SECOND,
        cold_start_guess_ms: COLD_START_GUESS_MS,
        initial_executors,
        scale_to_zero: false,
    }
}

impl Scenario {
    /// Every scenario, in table order.
    pub fn all() -> Vec<Scenario> {
        vec![
            Scenario::steady(),
            Scenario::bursty(),
            Scenario::diurnal(),
            Scenario::spike_then_silence(),
            Scenario::slow_cold_start(),
            Scenario::long_jobs(),
        ]
    }

    /// One hour of 10 jobs/s of 2 s (20 busy slots), from a pool already sized.
    pub fn steady() -> Scenario {
        Scenario {
            name: "steady",
            about: "1 h of Poisson 10 jobs/s, 2 s each, from 7 ready executors",
            duration_ms: HOUR,
            slo_wait_ms: 30 * SECOND,
            pool: cpu_pool(1, 20, 7),
            traffic: vec![Traffic::Poisson {
                from_ms: 0,
                to_ms: HOUR,
                per_second: 10.0,
            }],
            run_times: RunTimes::Exponential { mean_ms: 2_000.0 },
            seed: 1,
        }
    }

    /// A light background with twelve batches of 400 jobs at random instants.
    pub fn bursty() -> Scenario {
        Scenario {
            name: "bursty",
            about: "2 h of 1 job/s plus 12 batches of 400 jobs (2 s apart) at random times",
            duration_ms: 2 * HOUR,
            slo_wait_ms: 30 * SECOND,
            pool: cpu_pool(1, 30, 1),
            traffic: vec![
                Traffic::Poisson {
                    from_ms: 0,
                    to_ms: 2 * HOUR,
                    per_second: 1.0,
                },
                Traffic::RandomBatches {
                    count: 12,
                    jobs: 400,
                    spread_ms: 2 * SECOND,
                    from_ms: 5 * MINUTE,
                    to_ms: 2 * HOUR - 10 * MINUTE,
                },
            ],
            run_times: RunTimes::Exponential { mean_ms: 2_000.0 },
            seed: 2,
        }
    }

    /// A day compressed into two hours: 0.5 → 10 → 0.5 jobs/s.
    pub fn diurnal() -> Scenario {
        Scenario {
            name: "diurnal",
            about: "a day in 2 h: 0.5 → 10 → 0.5 jobs/s, 3 s each (log-normal, cv 1)",
            duration_ms: 2 * HOUR,
            slo_wait_ms: 30 * SECOND,
            pool: cpu_pool(1, 20, 1),
            traffic: vec![Traffic::Diurnal {
                period_ms: 2 * HOUR,
                low: 0.5,
                high: 10.0,
                to_ms: 2 * HOUR,
            }],
            run_times: RunTimes::LogNormal {
                mean_ms: 3_000.0,
                cv: 1.0,
            },
            seed: 3,
        }
    }

    /// Three spikes of 600 jobs in 10 s on a scale-to-zero pool, silence between.
    pub fn spike_then_silence() -> Scenario {
        let mut pool = cpu_pool(0, 30, 0);
        pool.scale_to_zero = true;
        Scenario {
            name: "spike then silence",
            about: "scale-to-zero pool from 0: 600 jobs in 10 s at 1, 40 and 80 min, nothing else",
            duration_ms: 2 * HOUR,
            slo_wait_ms: 30 * SECOND,
            pool,
            traffic: [MINUTE, 40 * MINUTE, 80 * MINUTE]
                .into_iter()
                .map(|at_ms| Traffic::Batch {
                    at_ms,
                    jobs: 600,
                    spread_ms: 10 * SECOND,
                })
                .collect(),
            run_times: RunTimes::Exponential { mean_ms: 2_000.0 },
            seed: 4,
        }
    }

    /// A GPU pool with a two-minute cold start and steps of load.
    pub fn slow_cold_start() -> Scenario {
        let mut pool = cpu_pool(1, 20, 1);
        pool.cold_start_ms = 120 * SECOND;
        let step = |from: u64, per_second: f64| Traffic::Poisson {
            from_ms: from * MINUTE,
            to_ms: (from + 20) * MINUTE,
            per_second,
        };
        Scenario {
            name: "slow cold start",
            about: "120 s cold start (model load); 0.5 / 2 / 0.5 / 2 jobs/s, 20 min each, 5 s jobs",
            duration_ms: 80 * MINUTE,
            slo_wait_ms: 180 * SECOND,
            pool,
            traffic: vec![step(0, 0.5), step(20, 2.0), step(40, 0.5), step(60, 2.0)],
            run_times: RunTimes::Exponential { mean_ms: 5_000.0 },
            seed: 5,
        }
    }

    /// Ten-minute jobs: a trickle plus a batch of 20 every half hour.
    pub fn long_jobs() -> Scenario {
        Scenario {
            name: "long jobs",
            about: "4 h of 0.04 jobs/s plus 20 jobs every 30 min; 10 min each (log-normal, cv 0.5)",
            duration_ms: 4 * HOUR,
            slo_wait_ms: 30 * SECOND,
            pool: cpu_pool(1, 20, 1),
            traffic: {
                let mut traffic = vec![Traffic::Poisson {
                    from_ms: 0,
                    to_ms: 4 * HOUR,
                    per_second: 0.04,
                }];
                traffic.extend((0..8).map(|i| Traffic::Batch {
                    at_ms: 10 * MINUTE + i * 30 * MINUTE,
                    jobs: 20,
                    spread_ms: SECOND,
                }));
                traffic
            },
            run_times: RunTimes::LogNormal {
                mean_ms: 600_000.0,
                cv: 0.5,
            },
            seed: 6,
        }
    }

    /// The scenario's jobs, sorted by arrival: the same list on every call.
    pub fn jobs(&self) -> Vec<SimJob> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut arrivals = Vec::new();
        for traffic in &self.traffic {
            arrivals_of(traffic, &mut rng, &mut arrivals);
        }
        arrivals.retain(|&at| at < self.duration_ms);
        arrivals.sort_unstable();
        arrivals
            .into_iter()
            .map(|arrival_ms| SimJob {
                arrival_ms,
                run_ms: draw_run_ms(self.run_times, &mut rng),
            })
            .collect()
    }
}

/// A uniform draw in [0, 1).
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    rng.random::<f64>()
}

/// An exponential draw with this mean.
fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -(1.0 - uniform(rng)).ln() * mean
}

fn draw_run_ms(run_times: RunTimes, rng: &mut ChaCha8Rng) -> u64 {
    let ms = match run_times {
        RunTimes::Fixed { ms } => return ms,
        RunTimes::Exponential { mean_ms } => exponential(rng, mean_ms),
        RunTimes::LogNormal { mean_ms, cv } => {
            let sigma2 = (1.0 + cv * cv).ln();
            let mu = mean_ms.ln() - sigma2 / 2.0;
            let radius = (-2.0 * (1.0 - uniform(rng)).ln()).sqrt();
            let normal = radius * (std::f64::consts::TAU * uniform(rng)).cos();
            (mu + sigma2.sqrt() * normal).exp()
        }
    };
    (ms.round() as u64).max(1)
}

fn arrivals_of(traffic: &Traffic, rng: &mut ChaCha8Rng, out: &mut Vec<u64>) {
    match *traffic {
        Traffic::Poisson {
            from_ms,
            to_ms,
            per_second,
        } => {
            if per_second <= 0.0 {
                return;
            }
            let mut at = from_ms as f64;
            loop {
                at += exponential(rng, 1000.0 / per_second);
                if at >= to_ms as f64 {
                    break;
                }
                out.push(at as u64);
            }
        }
        Traffic::Diurnal {
            period_ms,
            low,
            high,
            to_ms,
        } => {
            let peak = high.max(low);
            if peak <= 0.0 {
                return;
            }
            let mut at = 0.0;
            loop {
                at += exponential(rng, 1000.0 / peak);
                if at >= to_ms as f64 {
                    break;
                }
                let phase = std::f64::consts::TAU * at / period_ms.max(1) as f64;
                let rate = low + (high - low) * (1.0 - phase.cos()) / 2.0;
                if uniform(rng) * peak < rate {
                    out.push(at as u64);
                }
            }
        }
        Traffic::Batch {
            at_ms,
            jobs,
            spread_ms,
        } => batch(at_ms, jobs, spread_ms, rng, out),
        Traffic::Ramp {
            from_ms,
            over_ms,
            jobs,
        } => {
            // A density rising linearly over the ramp: the inverse of its CDF
            // `(t / over)²` is `over · √u`.
            for _ in 0..jobs {
                out.push(from_ms + (over_ms as f64 * uniform(rng).sqrt()) as u64);
            }
        }
        Traffic::RandomBatches {
            count,
            jobs,
            spread_ms,
            from_ms,
            to_ms,
        } => {
            for _ in 0..count {
                let span = to_ms.saturating_sub(from_ms) as f64;
                let at_ms = from_ms + (uniform(rng) * span) as u64;
                batch(at_ms, jobs, spread_ms, rng, out);
            }
        }
    }
}

fn batch(at_ms: u64, jobs: u32, spread_ms: u64, rng: &mut ChaCha8Rng, out: &mut Vec<u64>) {
    for _ in 0..jobs {
        out.push(at_ms + (uniform(rng) * spread_ms as f64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_the_same_on_every_call_and_sorted() {
        for scenario in Scenario::all() {
            let jobs = scenario.jobs();
            assert_eq!(jobs, scenario.jobs(), "{}", scenario.name);
            assert!(jobs.windows(2).all(|w| w[0].arrival_ms <= w[1].arrival_ms));
            assert!(jobs.iter().all(|j| j.arrival_ms < scenario.duration_ms));
        }
    }

    #[test]
    fn the_steady_scenario_has_the_rate_and_mean_it_says() {
        let scenario = Scenario::steady();
        let jobs = scenario.jobs();
        let per_second = jobs.len() as f64 / 3600.0;
        assert!((per_second - 10.0).abs() < 0.2, "{per_second}");
        let mean = jobs.iter().map(|j| j.run_ms as f64).sum::<f64>() / jobs.len() as f64;
        assert!((mean - 2_000.0).abs() < 60.0, "{mean}");
    }

    #[test]
    fn log_normal_run_times_have_their_mean() {
        let scenario = Scenario::long_jobs();
        let jobs = scenario.jobs();
        let mean = jobs.iter().map(|j| j.run_ms as f64).sum::<f64>() / jobs.len() as f64;
        assert!((mean - 600_000.0).abs() < 40_000.0, "{mean}");
    }
}
