//! What the load of one pool needs right now, in executors, before any window, limit
//! or idle rule: the heart of the policy, as one pure function.

use super::decision::Reason;
use super::observation::PoolObservation;

/// The executors the load needs and the term that decided it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Need {
    /// Executors needed.
    pub(crate) executors: u32,
    /// The deciding term.
    pub(crate) reason: Reason,
}

/// Executors needed for `slots` busy slots, `per_executor` slots each.
fn executors_for(slots: f64, per_executor: f64) -> u32 {
    let executors = (slots / per_executor - 1e-9).ceil();
    if executors.is_finite() && executors > 0.0 {
        executors.min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

/// A rate or count from outside, made safe: negative or not a number reads as zero.
fn sane(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

/// How many standard deviations of the pool's own randomness a queue must exceed
/// before it counts as backlog.
const NOISE_SIGMAS: f64 = 1.0;

/// The executors the pool's load needs now.
///
/// With `S` the mean run time, `C` the cold start, `D` the drain time (the target
/// queue wait less `C`; by default `C/2`), `λ` the arrival rate, `u` the target
/// utilisation, `Q` the queue, `R` the running jobs, `s` the slots per executor, `W`
/// the slots working before `C` (ready, plus starting ones for what is left of `C`
/// once they are ready: a start asked for `a` ago for `min(a, C)`) and
/// `p = min(1, S/D)`, the need is the largest of:
///
/// - **arrivals**: `λ·S / (u·s)` executors keep up with arrivals at `u` busy. With
///   hysteresis: the count moves up only when this exceeds it by more than the
///   tolerance, and down only when the load fits in one executor fewer with the
///   tolerance to spare, so a measured rate that wobbles moves nothing.
/// - **running**: the jobs running on executors that are not draining (a floor).
/// - **backlog**: an executor asked for now is ready in `C`. By then the working
///   slots have taken `W·C/S` jobs and `λ·C` more have come: `B = Q + λ·C − W·C/S`
///   are still waiting, less what the pool's own randomness explains (one standard
///   deviation of arrivals and completions over `C`). Only if `B > 0` can a new
///   executor find work, and then the pool needs the slots that clear `B` within
///   `D` (`B·p`), serve the arrivals meanwhile (`λ·min(S, C)`) and hold the runs
///   still going at `C` (`R·max(0, 1 − C/S)`). So nothing is started that would
///   only be ready once the backlog has drained, and starting executors count as
///   supply.
pub(crate) fn load_need(
    observation: &PoolObservation,
    target_utilization: f64,
    tolerance: f64,
    target_wait_ms: Option<u64>,
) -> Need {
    let slots = f64::from(observation.slots_per_executor.max(1));
    let cold_s = (observation.cold_start_ms as f64 / 1000.0).max(0.001);
    let known_run_s = observation
        .mean_run_ms
        .filter(|&ms| ms > 0)
        .map(|ms| ms as f64 / 1000.0);
    // Before any run has finished, a job counts as one cold start of work, and the
    // arrival rate (of jobs of unknown length) asks for nothing by itself.
    let run_s = known_run_s.unwrap_or(cold_s);
    let rate = sane(observation.arrival_rate);
    let sized_rate = known_run_s.map_or(0.0, |_| rate);
    let utilization = if target_utilization.is_finite() {
        target_utilization.clamp(0.01, 1.0)
    } else {
        1.0
    };
    let tolerance = sane(tolerance).min(0.99);
    let counts = observation.executors;
    let supply = counts.supply();
    // A backlog left when new executors are ready is cleared within `drain_s`, so
    // that its last job waits about the target: a cold start, then the drain.
    let drain_s = target_wait_ms.map_or(cold_s / 2.0, |ms| ms as f64 / 1000.0 - cold_s);
    let per_job = if drain_s > 0.0 {
        (run_s / drain_s).min(1.0)
    } else {
        1.0
    };
    let serve = with_hysteresis(sized_rate * run_s / utilization / slots, supply, tolerance);

    let draining_slots = counts
        .draining
        .saturating_mul(observation.slots_per_executor.max(1));
    let running_active = observation.running.saturating_sub(draining_slots);
    let running = executors_for(f64::from(running_active), slots);

    let queued = f64::from(observation.queued);
    let working_slots = (f64::from(counts.ready) + starting_share(observation)) * slots;
    let completions = working_slots * cold_s / run_s;
    let arrivals = sized_rate * cold_s;
    let noise = NOISE_SIGMAS * (arrivals + completions).sqrt();
    let left_at_ready = queued + arrivals - completions - noise;
    let backlog = if observation.queued > 0 && left_at_ready > 0.0 {
        let still_running = f64::from(running_active) * (1.0 - cold_s / run_s).max(0.0);
        let flow = sized_rate * run_s.min(cold_s);
        executors_for(still_running + left_at_ready * per_job + flow, slots)
    } else {
        0
    };

    let (mut executors, mut reason) = if running > serve {
        (
            running,
            Reason::Running {
                running: running_active,
                executors: running,
            },
        )
    } else {
        (
            serve,
            Reason::Arrivals {
                per_second: rate,
                executors: serve,
            },
        )
    };
    if backlog > executors {
        executors = backlog;
        reason = Reason::Backlog {
            queued: observation.queued,
            executors: backlog,
        };
    }
    // A queue longer than the free slots, which the executors there clear without a
    // new one: say so.
    let free_slots = f64::from(supply) * slots - f64::from(running_active);
    if queued > free_slots.max(0.0) && executors <= supply {
        reason = Reason::DrainsBeforeReady {
            queued: observation.queued,
            cold_start_secs: observation.cold_start_ms / 1000,
            executors: supply,
        };
    }
    Need { executors, reason }
}

/// The starting executors' work before a cold start from now has passed, in
/// executors working throughout: one asked for `a` ago is ready in `C − a` and works
/// the remaining `min(a, C)`, so a start asked for just now adds nothing and one about
/// to register almost a whole executor. Starts without a listed age count as just
/// asked for.
fn starting_share(observation: &PoolObservation) -> f64 {
    let cold_ms = observation.cold_start_ms.max(1) as f64;
    observation
        .starting_for_ms
        .iter()
        .take(observation.executors.starting as usize)
        .map(|&age_ms| (age_ms as f64 / cold_ms).min(1.0))
        .sum()
}

/// Executors for `exact` executors' worth of arrivals, `current` being there: up only
/// beyond `current × (1 + tolerance)`, down only when `current − 1` would be at most
/// `1 − tolerance` full, and then to a count with the tolerance to spare.
fn with_hysteresis(exact: f64, current: u32, tolerance: f64) -> u32 {
    if !exact.is_finite() || exact <= 0.0 {
        return 0;
    }
    let current_f = f64::from(current);
    if current == 0 || exact > current_f * (1.0 + tolerance) {
        return executors_for(exact, 1.0);
    }
    if exact <= (current_f - 1.0) * (1.0 - tolerance) {
        return executors_for(exact / (1.0 - tolerance), 1.0);
    }
    current
}

#[cfg(test)]
mod tests {
    use super::super::observation::ExecutorCounts;
    use super::*;

    fn pool(ready: u32, starting: u32) -> PoolObservation {
        PoolObservation {
            queued: 0,
            running: 0,
            arrival_rate: 0.0,
            mean_run_ms: Some(1_000),
            slots_per_executor: 4,
            executors: ExecutorCounts {
                ready,
                starting,
                ..ExecutorCounts::default()
            },
            starting_for_ms: Vec::new(),
            cold_start_ms: 20_000,
        }
    }

    #[test]
    fn arrivals_are_served_at_the_target_utilization() {
        let mut observation = pool(2, 0);
        observation.arrival_rate = 10.0;
        observation.mean_run_ms = Some(2_000);
        // 10/s × 2 s = 20 busy slots; at 0.8 busy that is 25 slots: 7 executors.
        let need = load_need(&observation, 0.8, 0.1, None);
        assert_eq!(need.executors, 7);
        assert!(matches!(need.reason, Reason::Arrivals { .. }));
    }

    #[test]
    fn arrivals_within_the_tolerance_keep_the_count() {
        let mut observation = pool(7, 0);
        observation.mean_run_ms = Some(2_000);
        // λ jobs/s need λ × 2 / 0.8 / 4 executors. From 7: up beyond 7.7 (λ > 12.32),
        // down only when 6 would be at most 90 % full (λ ≤ 8.64).
        for rate in [9.0, 11.0, 12.3] {
            observation.arrival_rate = rate;
            assert_eq!(
                load_need(&observation, 0.8, 0.1, None).executors,
                7,
                "{rate}"
            );
        }
        observation.arrival_rate = 12.5;
        assert_eq!(load_need(&observation, 0.8, 0.1, None).executors, 8);
        // Down to 5 executors' worth: 6 keep the tolerance to spare.
        observation.arrival_rate = 8.0;
        assert_eq!(load_need(&observation, 0.8, 0.1, None).executors, 6);
    }

    #[test]
    fn a_big_backlog_starts_what_clears_it_soon_after_a_cold_start() {
        let mut observation = pool(2, 0);
        observation.queued = 2_000;
        observation.running = 8;
        // When a new executor is ready (20 s) the 8 slots have taken 160 jobs: 1840
        // are left, 1827 less one standard deviation. Cleared within half a cold
        // start (10 s) at 1 s each: 183 slots, 46 executors.
        let need = load_need(&observation, 0.8, 0.1, None);
        assert_eq!(
            need.reason,
            Reason::Backlog {
                queued: 2_000,
                executors: 46
            }
        );
    }

    #[test]
    fn a_backlog_that_drains_before_a_cold_start_starts_nothing() {
        for queued in [100, 200] {
            let mut observation = pool(2, 0);
            observation.queued = queued;
            observation.running = 8;
            // 8 slots take 160 jobs in 20 s; what is left of 200 they clear in 4 s.
            let need = load_need(&observation, 0.8, 0.1, None);
            assert_eq!(need.executors, 2, "{queued}");
            assert!(
                matches!(need.reason, Reason::DrainsBeforeReady { executors: 2, .. }),
                "{:?}",
                need.reason
            );
        }
    }

    #[test]
    fn a_backlog_that_outlasts_a_cold_start_adds_what_drains_it() {
        let mut observation = pool(2, 0);
        observation.queued = 300;
        observation.running = 8;
        // 127 jobs left when a new executor is ready: 12.7 slots clear them in 10 s.
        let need = load_need(&observation, 0.8, 0.1, None);
        assert_eq!(need.executors, 4);
        assert!(matches!(need.reason, Reason::Backlog { .. }));
    }

    #[test]
    fn starting_executors_count_as_supply() {
        let mut observation = pool(2, 4);
        observation.queued = 300;
        observation.running = 8;
        observation.starting_for_ms = vec![10_000; 4];
        // The same backlog with four executors half way through their start: they
        // take their share before a new one could be ready, so nothing more is asked
        // for.
        let need = load_need(&observation, 0.8, 0.1, None);
        assert!(need.executors <= 6, "{need:?}");
        assert!(
            matches!(need.reason, Reason::DrainsBeforeReady { executors: 6, .. }),
            "{:?}",
            need.reason
        );
    }

    #[test]
    fn a_start_asked_for_just_now_does_no_work_before_a_cold_start() {
        // A spike at a pool of eight executors all asked for a moment ago: none is
        // ready before a cold start, so they clear nothing of the queue by then.
        let mut observation = pool(0, 8);
        observation.queued = 600;
        observation.starting_for_ms = vec![250; 8];
        let just_asked = load_need(&observation, 0.8, 0.1, None);
        // 600 jobs of 1 s left less what 8 × 4 slots take in 250 ms: cleared within
        // 10 s that is about 58 slots, 15 executors — not 8, as if they had been
        // working half the cold start already.
        assert_eq!(
            just_asked.reason,
            Reason::Backlog {
                queued: 600,
                executors: 15
            }
        );
        // The same executors about to register take almost a cold start's work each:
        // 8 × 4 slots × 20 s clear the queue, and nothing more is asked for.
        observation.starting_for_ms = vec![19_750; 8];
        let about_ready = load_need(&observation, 0.8, 0.1, None);
        assert!(
            matches!(
                about_ready.reason,
                Reason::DrainsBeforeReady { executors: 8, .. }
            ),
            "{about_ready:?}"
        );
    }

    #[test]
    fn the_target_wait_sets_how_fast_a_backlog_drains() {
        let mut observation = pool(2, 0);
        observation.queued = 300;
        observation.running = 8;
        // Target = the cold start: every job left waiting gets a slot.
        assert_eq!(
            load_need(&observation, 0.8, 0.1, Some(20_000)).executors,
            32
        );
        // Target = three cold starts: 40 s to drain 127 jobs of 1 s needs 4 slots.
        assert_eq!(load_need(&observation, 0.8, 0.1, Some(60_000)).executors, 2);
    }

    #[test]
    fn long_jobs_get_a_slot_each() {
        let mut observation = pool(1, 0);
        observation.mean_run_ms = Some(600_000);
        observation.queued = 10;
        observation.running = 4;
        // 10 jobs of 10 minutes: one slot each (3 executors) besides the busy one.
        let need = load_need(&observation, 0.8, 0.1, None);
        assert_eq!(need.executors, 4);
    }

    #[test]
    fn an_unknown_run_time_gives_each_job_a_slot() {
        let mut observation = pool(0, 0);
        observation.mean_run_ms = None;
        observation.queued = 1;
        assert_eq!(load_need(&observation, 0.8, 0.1, None).executors, 1);
        observation.queued = 9;
        assert_eq!(load_need(&observation, 0.8, 0.1, None).executors, 3);
        observation.arrival_rate = 5.0;
        assert_eq!(load_need(&observation, 0.8, 0.1, None).executors, 3);
    }

    #[test]
    fn running_work_is_a_floor_but_draining_executors_keep_their_own() {
        let mut observation = pool(3, 0);
        observation.running = 12;
        assert_eq!(load_need(&observation, 0.8, 0.1, None).executors, 3);
        observation.executors.ready = 2;
        observation.executors.draining = 1;
        assert_eq!(load_need(&observation, 0.8, 0.1, None).executors, 2);
    }

    #[test]
    fn nonsense_rates_read_as_zero() {
        let mut observation = pool(1, 0);
        observation.arrival_rate = f64::NAN;
        assert_eq!(load_need(&observation, 0.8, 0.1, None).executors, 0);
        observation.arrival_rate = -3.0;
        assert_eq!(
            load_need(&observation, f64::NAN, f64::NAN, None).executors,
            0
        );
    }
}
