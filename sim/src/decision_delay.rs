//! How long Marie's Supervisor, the scaling guide's HPA and KEDA take to act on the
//! same burst of short sleep jobs: from the first job to the first scale-up decision,
//! to the decision for the pool's `max`, to the first job on a new executor, and to
//! the end of the burst's last job — with a cold start of 0 s and of 2 s.
//!
//! Every pool idles for five minutes before its burst, so that the references'
//! windows hold an idle history, as a long-running HPA's do. Where the burst falls
//! between two syncs or polls decides how long a reference waits for its next look,
//! so each case runs with the burst at six instants spread evenly over 30 s (a
//! multiple of the HPA's sync and KEDA's polls), each half a Supervisor tick before
//! one of Marie's ticks (its mean wait for a tick); the table gives the mean over the
//! six and, in brackets, the worst.

use std::fmt::Write as _;

use marie_decide::autoscale::{COLD_START_GUESS_MS, SUPERVISOR_TICK_MS};

use crate::comparison::marie_for;
use crate::hpa::{HpaPolicy, HpaSettings};
use crate::milestones::Milestones;
use crate::scenarios::{RunTimes, Scenario, SimPool, Traffic};
use crate::simulator::{ScalingPolicy, run};

/// Jobs in each burst.
pub const BURST_JOBS: u32 = 2_000;
/// Each job sleeps this long, ms.
pub const SLEEP_MS: u64 = 1_000;
/// The cold starts each case runs with, ms.
pub const COLD_STARTS_MS: [u64; 2] = [0, 2_000];
/// How long every pool idles before its burst, ms.
const IDLE_BEFORE_MS: u64 = 300_000;
/// The span over which the burst's instant is moved, ms: the references' look
/// instants repeat with this period.
pub const PHASE_SPAN_MS: u64 = 30_000;
/// Burst instants per case, spread evenly over [`PHASE_SPAN_MS`].
pub const PHASES: u64 = 6;
/// Most executors in every pool.
const MAX_EXECUTORS: u32 = 20;
/// Slots per executor.
const SLOTS: u32 = 4;

/// How the burst's jobs arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// All at the same instant.
    AtOnce,
    /// At a rate rising linearly from zero over this long, ms.
    Ramp(u64),
}

/// A pool and how its burst arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// Its name in the table.
    pub name: &'static str,
    /// Executors ready before the burst, and the pool's `min` (0: scale to zero).
    pub executors: u32,
    /// How the burst arrives.
    pub arrival: Arrival,
    /// Seed of the arrivals and cold starts.
    pub seed: u64,
}

/// The cases of the table.
pub fn cases() -> [Case; 3] {
    [
        Case {
            name: "2,000 at once, pool at 1",
            executors: 1,
            arrival: Arrival::AtOnce,
            seed: 11,
        },
        Case {
            name: "2,000 at once, pool at 0",
            executors: 0,
            arrival: Arrival::AtOnce,
            seed: 12,
        },
        Case {
            name: "2,000 ramped over 60 s, pool at 1",
            executors: 1,
            arrival: Arrival::Ramp(60_000),
            seed: 13,
        },
    ]
}

impl Case {
    /// The case's scenario with this cold start and the burst's first job at
    /// `burst_at_ms`: a pool of 4-slot executors, at most 20, target 75 %, the
    /// Supervisor's shipped cold-start guess; 1 s sleep jobs.
    pub fn scenario(&self, cold_start_ms: u64, burst_at_ms: u64) -> Scenario {
        let traffic = match self.arrival {
            Arrival::AtOnce => Traffic::Batch {
                at_ms: burst_at_ms,
                jobs: BURST_JOBS,
                spread_ms: 0,
            },
            Arrival::Ramp(over_ms) => Traffic::Ramp {
                from_ms: burst_at_ms,
                over_ms,
                jobs: BURST_JOBS,
            },
        };
        Scenario {
            name: self.name,
            about: "an idle pool, then a burst of 1 s sleep jobs",
            duration_ms: burst_at_ms + 1_800_000,
            slo_wait_ms: 30_000,
            pool: SimPool {
                slots: SLOTS,
                min: self.executors,
                max: MAX_EXECUTORS,
                target_utilization: 0.75,
                cold_start_ms,
                cold_start_guess_ms: COLD_START_GUESS_MS,
                initial_executors: self.executors,
                scale_to_zero: self.executors == 0,
            },
            traffic: vec![traffic],
            run_times: RunTimes::Fixed { ms: SLEEP_MS },
            seed: self.seed,
        }
    }
}

/// The instants of a case's bursts: after the idle period, at the middle of each
/// of [`PHASES`] equal parts of [`PHASE_SPAN_MS`], less half a Supervisor tick.
pub fn burst_instants_ms() -> impl Iterator<Item = u64> {
    let step = PHASE_SPAN_MS / PHASES;
    (0..PHASES).map(move |i| IDLE_BEFORE_MS + i * step + step / 2 - SUPERVISOR_TICK_MS / 2)
}

/// Who decides the pool's count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    /// Marie's Supervisor, with the policy's defaults.
    Marie,
    /// The HPA `marie-deploy` renders from the scaling guide: `marie_jobs_pending`
    /// at 10 and `marie_executor_slots_used` at 3 per pod, the guide's behaviour.
    Hpa,
    /// A ScaledObject on `sum(marie_jobs_pending)` with the guide's threshold of 1,
    /// KEDA's default `pollingInterval` of 30 s, and the guide's behaviour on its HPA.
    KedaGuide,
    /// The ScaledObject `marie-deploy` renders: threshold the pool's slots,
    /// `pollingInterval` 15 s, no behaviour (the HPA's defaults).
    KedaRendered,
}

impl Contender {
    /// Every contender, in table order.
    pub const ALL: [Contender; 4] = [
        Contender::Marie,
        Contender::Hpa,
        Contender::KedaGuide,
        Contender::KedaRendered,
    ];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Contender::Marie => "marie",
            Contender::Hpa => "hpa (guide)",
            Contender::KedaGuide => "keda (30 s poll, guide behaviour)",
            Contender::KedaRendered => "keda (as rendered: 15 s poll, default behaviour)",
        }
    }

    /// The reference's HPA and KEDA settings for `pool`, or `None` for Marie's and
    /// where it cannot run the pool (an HPA's `minReplicas` is at least 1: it does
    /// not scale from zero).
    pub fn hpa_settings(self, pool: &SimPool) -> Option<HpaSettings> {
        match self {
            Contender::Marie => None,
            Contender::Hpa => {
                (pool.min > 0).then(|| HpaSettings::scaling_guide(pool.min, pool.max, pool.slots))
            }
            Contender::KedaGuide => Some(
                HpaSettings::scaled_object(pool.min, pool.max, 1.0, 30_000).with_guide_behaviour(),
            ),
            Contender::KedaRendered => Some(HpaSettings::scaled_object(
                pool.min,
                pool.max,
                f64::from(pool.slots),
                15_000,
            )),
        }
    }

    /// The policy for `pool`, or `None` where it cannot run it.
    pub fn policy(self, pool: &SimPool) -> Option<Box<dyn ScalingPolicy>> {
        match self {
            Contender::Marie => Some(Box::new(marie_for(pool))),
            _ => self
                .hpa_settings(pool)
                .map(|settings| Box::new(HpaPolicy::new(settings)) as Box<dyn ScalingPolicy>),
        }
    }
}

/// One contender on one case with one cold start: the milestones of each burst
/// instant of [`burst_instants_ms`], in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Delays {
    /// The case.
    pub case: Case,
    /// Who decided.
    pub contender: Contender,
    /// The pool's cold start, ms.
    pub cold_start_ms: u64,
    /// The milestones, one per burst instant.
    pub phases: Vec<Milestones>,
}

/// Runs `contender` on `case` with `cold_start_ms` at every burst instant, or `None`
/// where it cannot run the pool.
pub fn delays(case: &Case, contender: Contender, cold_start_ms: u64) -> Option<Delays> {
    let mut phases = Vec::new();
    for burst_at_ms in burst_instants_ms() {
        let scenario = case.scenario(cold_start_ms, burst_at_ms);
        let mut policy = contender.policy(&scenario.pool)?;
        let jobs = scenario.jobs();
        phases.push(run(&scenario, &jobs, policy.as_mut()).1);
    }
    Some(Delays {
        case: *case,
        contender,
        cold_start_ms,
        phases,
    })
}

/// Every case, cold start and contender that can run it, in table order.
pub fn delays_all() -> Vec<Delays> {
    let mut all = Vec::new();
    for case in cases() {
        for contender in Contender::ALL {
            for cold_start_ms in COLD_STARTS_MS {
                all.extend(delays(&case, contender, cold_start_ms));
            }
        }
    }
    all
}

/// "mean (worst)" of one milestone over the phases, in seconds; "—" when some
/// phase did not reach it.
fn mean_and_worst(phases: &[Milestones], milestone: fn(&Milestones) -> Option<u64>) -> String {
    let reached: Option<Vec<u64>> = phases.iter().map(milestone).collect();
    match reached {
        Some(ms) if !ms.is_empty() => {
            let mean = ms.iter().sum::<u64>() as f64 / ms.len() as f64 / 1000.0;
            let worst = ms.iter().max().copied().unwrap_or_default() as f64 / 1000.0;
            format!("{mean:.1} ({worst:.1})")
        }
        _ => "—".to_owned(),
    }
}

/// The delays as a Markdown table, one row per case, contender and cold start.
pub fn markdown_table(all: &[Delays]) -> String {
    let mut table = String::from(
        "| burst | policy | cold start (s) | first scale-up (s) | max decided (s) | first new executor working (s) | drained (s) |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for delays in all {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} |",
            delays.case.name,
            delays.contender.name(),
            delays.cold_start_ms / 1000,
            mean_and_worst(&delays.phases, |m| m.first_scale_up_ms),
            mean_and_worst(&delays.phases, |m| m.at_max_ms),
            mean_and_worst(&delays.phases, |m| m.first_new_executor_work_ms),
            mean_and_worst(&delays.phases, |m| m.drained_ms),
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use marie_decide::autoscale::SUPERVISOR_TICK_MS;

    use super::*;

    /// Every row, run once per test binary.
    fn results() -> &'static [Delays] {
        static RESULTS: OnceLock<Vec<Delays>> = OnceLock::new();
        RESULTS.get_or_init(delays_all)
    }

    /// Each burst's first scale-up decision, ms after its first job.
    fn first_decisions(delays: &Delays) -> impl Iterator<Item = u64> + '_ {
        delays.phases.iter().map(move |m| {
            m.first_scale_up_ms.unwrap_or_else(|| {
                panic!(
                    "{} on {} never scaled up",
                    delays.contender.name(),
                    delays.case.name
                )
            })
        })
    }

    /// The first job of the case's burst at `burst_at_ms`.
    fn first_job_ms(delays: &Delays, burst_at_ms: u64) -> u64 {
        let scenario = delays.case.scenario(delays.cold_start_ms, burst_at_ms);
        scenario
            .jobs()
            .first()
            .expect("a burst has jobs")
            .arrival_ms
    }

    /// The first instant at or after `at_ms` of a clock that ticks at `first_ms` and
    /// every `every_ms` after.
    fn next_look_ms(at_ms: u64, first_ms: u64, every_ms: u64) -> u64 {
        if at_ms <= first_ms {
            return first_ms;
        }
        first_ms + (at_ms - first_ms).div_ceil(every_ms) * every_ms
    }

    #[test]
    fn every_case_runs_every_contender_that_can_run_its_pool() {
        // 4 contenders on the pools at 1, 3 on the pool at 0 (no HPA from zero).
        assert_eq!(results().len(), (4 + 3 + 4) * COLD_STARTS_MS.len());
        for delays in results() {
            assert_eq!(delays.phases.len() as u64, PHASES);
            for m in &delays.phases {
                assert!(m.drained_ms.is_some(), "{delays:?} did not drain");
            }
        }
    }

    /// Marie decides on a wake (a job queued without a free slot) or at the latest on
    /// its next tick: on a burst that arrives at once, within one tick of the first
    /// job. (On a ramp the first jobs find free slots: there is nothing to decide
    /// until the backlog outgrows the pool.)
    #[test]
    fn marie_decides_within_a_tick_of_the_first_job() {
        for delays in results()
            .iter()
            .filter(|d| d.contender == Contender::Marie && d.case.arrival == Arrival::AtOnce)
        {
            for first in first_decisions(delays) {
                assert!(
                    first <= SUPERVISOR_TICK_MS,
                    "{}: {first} ms",
                    delays.case.name
                );
                if delays.case.executors == 0 {
                    // No executor to take the first job: it wakes the Supervisor.
                    assert_eq!(first, 0, "{}", delays.case.name);
                }
            }
        }
    }

    /// An HPA decides at a sync, not before the first sync after the first job; with
    /// the guide's 60 s scale-up window, not before the window has held only
    /// recommendations made since the burst — never within its sync period.
    #[test]
    fn the_hpa_decides_at_a_sync_and_not_before_its_window_allows() {
        for delays in results().iter().filter(|d| d.case.executors > 0) {
            let pool = delays.case.scenario(delays.cold_start_ms, 0).pool;
            let Some(settings) = delays.contender.hpa_settings(&pool) else {
                continue;
            };
            let sync = settings.sync_period_ms;
            for (first, burst_at_ms) in first_decisions(delays).zip(burst_instants_ms()) {
                let first_job = first_job_ms(delays, burst_at_ms);
                let decided_at = first_job + first;
                assert_eq!(decided_at % sync, 0, "{delays:?}: not at a sync");
                let next_sync = next_look_ms(first_job, sync, sync);
                let window_after = settings.scale_up_window_ms.saturating_sub(sync);
                assert!(
                    decided_at >= next_sync + window_after,
                    "{}, {}: decided {first} ms after the first job",
                    delays.case.name,
                    delays.contender.name()
                );
                if matches!(delays.contender, Contender::Hpa | Contender::KedaGuide) {
                    // The guide's 60 s window and 15 s sync: never within the sync
                    // period, and not before the window has forgotten the idle syncs.
                    assert!(first >= 15_000, "{delays:?}");
                    assert!(decided_at >= next_sync + 45_000, "{delays:?}");
                }
            }
        }
    }

    /// KEDA takes a pool at zero to one at its first poll that sees a job pending: not
    /// before it, and so, with the burst spread evenly between two polls, nearly a
    /// whole polling interval later at worst.
    #[test]
    fn keda_activates_from_zero_at_its_next_poll() {
        for delays in results().iter().filter(|d| d.case.executors == 0) {
            let pool = delays.case.scenario(delays.cold_start_ms, 0).pool;
            let Some(settings) = delays.contender.hpa_settings(&pool) else {
                continue;
            };
            let keda = settings
                .keda
                .as_ref()
                .expect("KEDA in front of a pool at 0");
            let interval = keda.polling_interval_ms;
            for (first, burst_at_ms) in first_decisions(delays).zip(burst_instants_ms()) {
                let first_job = first_job_ms(delays, burst_at_ms);
                // KEDA polls at its first look, one sync in, and every interval after.
                let poll = next_look_ms(first_job, settings.sync_period_ms, interval);
                assert_eq!(first_job + first, poll, "{delays:?}");
            }
            let worst = first_decisions(delays).max().unwrap_or_default();
            assert!(worst >= interval - PHASE_SPAN_MS / PHASES, "{delays:?}");
        }
    }

    /// Marie decides before every reference, at every burst instant, and has a new
    /// executor working no later than any of them.
    #[test]
    fn marie_acts_first() {
        for marie in results().iter().filter(|d| d.contender == Contender::Marie) {
            let references = results().iter().filter(|d| {
                d.contender != Contender::Marie
                    && d.case == marie.case
                    && d.cold_start_ms == marie.cold_start_ms
            });
            for reference in references {
                for (ours, theirs) in marie.phases.iter().zip(&reference.phases) {
                    assert!(ours.first_scale_up_ms.is_some(), "{marie:?}");
                    assert!(ours.first_new_executor_work_ms.is_some(), "{marie:?}");
                    assert!(
                        ours.first_scale_up_ms < theirs.first_scale_up_ms
                            || theirs.first_scale_up_ms.is_none(),
                        "{ours:?} against {theirs:?} of {}",
                        reference.contender.name()
                    );
                    assert!(
                        ours.first_new_executor_work_ms <= theirs.first_new_executor_work_ms
                            || theirs.first_new_executor_work_ms.is_none(),
                        "{ours:?} against {theirs:?} of {}",
                        reference.contender.name()
                    );
                }
            }
        }
    }

    /// The table committed in `README.md` is the one the simulator gives now.
    #[test]
    fn the_committed_table_is_current() {
        crate::table::DECISION_DELAY.assert_current(&markdown_table(results()));
    }
}
