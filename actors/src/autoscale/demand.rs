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

/// The executors the pool's load needs now.
///
/// With `S` the mean run time, `C` the cold start, `λ` the arrival rate, `u` the
/// target utilisation, `Q` the queue, `R` the running jobs, `s` the slots per
/// executor and `p = min(1, S/C)`, the need in slots is the largest of:
///
/// - **arrivals**: `λ·S / u`, the slots that keep up with arrivals at `u` busy —
///   left at the current count while it is within `tolerance` of it;
/// - **running**: the jobs running on executors that are not draining (a floor);
/// - **backlog** (when a job is queued): `(R + Q)·p + λ·min(S, C)`, the slots that finish the work in the
///   pool, and what arrives meanwhile, within one cold start (a job longer than a
///   cold start holds its slot throughout). An executor asked for now is ready in
///   `C`: if the current ones (starting ones included) finish everything by then,
///   this term asks for no more than they are, so no executor is started that would
///   only be ready once the backlog has drained.
pub(crate) fn load_need(
    observation: &PoolObservation,
    target_utilization: f64,
    tolerance: f64,
) -> Need {
    let slots = f64::from(observation.slots_per_executor.max(1));
    let cold_s = (observation.cold_start_ms as f64 / 1000.0).max(0.001);
    let known_run_s = observation
        .mean_run_ms
        .filter(|&ms| ms > 0)
        .map(|ms| ms as f64 / 1000.0);
    // Before any run has finished, every job in the pool gets a slot of its own and
    // the arrival rate (of jobs of unknown length) asks for nothing by itself.
    let run_s = known_run_s.unwrap_or(cold_s);
    let rate = sane(observation.arrival_rate);
    let rate_for = |seconds: f64| known_run_s.map_or(0.0, |_| rate * seconds);
    let utilization = if target_utilization.is_finite() {
        target_utilization.clamp(0.01, 1.0)
    } else {
        1.0
    };
    let tolerance = sane(tolerance).min(0.99);
    let counts = observation.executors;
    let supply = counts.supply();
    let supply_slots = f64::from(supply) * slots;
    let per_job = (run_s / cold_s).min(1.0);

    let mut serve_slots = rate_for(run_s) / utilization;
    if supply_slots > 0.0 && (serve_slots / supply_slots - 1.0).abs() <= tolerance {
        serve_slots = supply_slots;
    }
    let draining_slots = counts
        .draining
        .saturating_mul(observation.slots_per_executor.max(1));
    let running_active = observation.running.saturating_sub(draining_slots);
    let queued = f64::from(observation.queued);
    let in_system = queued + f64::from(observation.running);
    let backlog_slots = if observation.queued > 0 {
        in_system * per_job + rate_for(run_s.min(cold_s))
    } else {
        0.0
    };

    let serve = executors_for(serve_slots, slots);
    let running = executors_for(f64::from(running_active), slots);
    let backlog = executors_for(backlog_slots, slots);

    if backlog > supply && backlog >= serve && backlog >= running {
        return Need {
            executors: backlog,
            reason: Reason::Backlog {
                queued: observation.queued,
                executors: backlog,
            },
        };
    }
    let (executors, reason) = if running > serve {
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
    // A queue that would fill more executors than there are, but that the current
    // ones clear before a new one could be ready: say so.
    let drain_rate = supply_slots / run_s - rate;
    let naive = executors_for(in_system, slots);
    if observation.queued > 0 && naive > supply && drain_rate > 0.0 && executors <= supply {
        let executors = executors.max(backlog);
        return Need {
            executors,
            reason: Reason::DrainsBeforeReady {
                queued: observation.queued,
                drain_secs: (queued / drain_rate).ceil().min(u64::MAX as f64) as u64,
                cold_start_secs: observation.cold_start_ms / 1000,
                executors,
            },
        };
    }
    Need {
        executors: executors.max(backlog),
        reason,
    }
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
            cold_start_ms: 20_000,
        }
    }

    #[test]
    fn arrivals_are_served_at_the_target_utilization() {
        let mut observation = pool(2, 0);
        observation.arrival_rate = 10.0;
        observation.mean_run_ms = Some(2_000);
        // 10/s × 2 s = 20 busy slots; at 0.8 busy that is 25 slots: 7 executors.
        let need = load_need(&observation, 0.8, 0.1);
        assert_eq!(need.executors, 7);
        assert!(matches!(need.reason, Reason::Arrivals { .. }));
    }

    #[test]
    fn arrivals_within_the_tolerance_keep_the_count() {
        let mut observation = pool(7, 0);
        observation.mean_run_ms = Some(2_000);
        // 7 executors are 28 slots; ±10 % is 25.2..=30.8 slots, 10.08..=12.32 jobs/s.
        for rate in [10.1, 11.0, 12.3] {
            observation.arrival_rate = rate;
            assert_eq!(load_need(&observation, 0.8, 0.1).executors, 7, "{rate}");
        }
        observation.arrival_rate = 12.5;
        assert_eq!(load_need(&observation, 0.8, 0.1).executors, 8);
        observation.arrival_rate = 9.5;
        assert_eq!(load_need(&observation, 0.8, 0.1).executors, 6);
    }

    #[test]
    fn a_big_backlog_starts_what_clears_it_within_a_cold_start() {
        let mut observation = pool(2, 0);
        observation.queued = 2_000;
        observation.running = 8;
        // 2008 jobs of 1 s finished within 20 s: 100.4 slots, 26 executors.
        let need = load_need(&observation, 0.8, 0.1);
        assert_eq!(
            need.reason,
            Reason::Backlog {
                queued: 2_000,
                executors: 26
            }
        );
    }

    #[test]
    fn a_backlog_that_drains_before_a_cold_start_starts_nothing() {
        let mut observation = pool(2, 0);
        observation.queued = 100;
        observation.running = 8;
        // 8 slots take 8 jobs/s: 100 jobs are gone in 13 s, before 20 s.
        let need = load_need(&observation, 0.8, 0.1);
        assert_eq!(need.executors, 2);
        assert!(
            matches!(need.reason, Reason::DrainsBeforeReady { drain_secs: 13, .. }),
            "{:?}",
            need.reason
        );
    }

    #[test]
    fn a_backlog_that_outlasts_a_cold_start_adds_what_drains_it() {
        let mut observation = pool(2, 0);
        observation.queued = 200;
        observation.running = 8;
        // 208 jobs of 1 s within 20 s: 10.4 slots, 3 executors.
        let need = load_need(&observation, 0.8, 0.1);
        assert_eq!(need.executors, 3);
        assert!(matches!(need.reason, Reason::Backlog { .. }));
    }

    #[test]
    fn starting_executors_count_as_supply() {
        let mut observation = pool(2, 4);
        observation.queued = 200;
        observation.running = 8;
        // The same 3 executors' worth of backlog, and 6 there or coming: none more.
        let need = load_need(&observation, 0.8, 0.1);
        assert_eq!(need.executors, 3);
        assert!(
            matches!(need.reason, Reason::DrainsBeforeReady { drain_secs: 9, .. }),
            "{:?}",
            need.reason
        );
    }

    #[test]
    fn long_jobs_get_a_slot_each() {
        let mut observation = pool(1, 0);
        observation.mean_run_ms = Some(600_000);
        observation.queued = 10;
        observation.running = 4;
        // 10 jobs of 10 minutes: one slot each (3 executors) besides the busy one.
        let need = load_need(&observation, 0.8, 0.1);
        assert_eq!(need.executors, 4);
    }

    #[test]
    fn an_unknown_run_time_gives_each_job_a_slot() {
        let mut observation = pool(0, 0);
        observation.mean_run_ms = None;
        observation.queued = 1;
        assert_eq!(load_need(&observation, 0.8, 0.1).executors, 1);
        observation.queued = 9;
        assert_eq!(load_need(&observation, 0.8, 0.1).executors, 3);
        observation.arrival_rate = 5.0;
        assert_eq!(load_need(&observation, 0.8, 0.1).executors, 3);
    }

    #[test]
    fn running_work_is_a_floor_but_draining_executors_keep_their_own() {
        let mut observation = pool(3, 0);
        observation.running = 12;
        assert_eq!(load_need(&observation, 0.8, 0.1).executors, 3);
        observation.executors.ready = 2;
        observation.executors.draining = 1;
        assert_eq!(load_need(&observation, 0.8, 0.1).executors, 2);
    }

    #[test]
    fn nonsense_rates_read_as_zero() {
        let mut observation = pool(1, 0);
        observation.arrival_rate = f64::NAN;
        assert_eq!(load_need(&observation, 0.8, 0.1).executors, 0);
        observation.arrival_rate = -3.0;
        assert_eq!(load_need(&observation, f64::NAN, f64::NAN).executors, 0);
    }
}
