//! Property tests of the autoscale policy: random settings and random pool states
//! over time keep the bounds, start from zero at once, and never drain below running
//! work. That it does not flap under steady traffic is tested through the simulator,
//! in `marie-sim`.

use proptest::prelude::*;

use super::observation::{ExecutorCounts, PoolObservation};
use super::settings::{AutoscaleSettings, RateLimit, ScaleToZero};
use super::{AutoscalePolicy, Reason};

fn rate_limit() -> impl Strategy<Value = Option<RateLimit>> {
    proptest::option::of((0..5u32, 0..200u32, 1..120u64).prop_map(
        |(executors, percent, period_secs)| RateLimit {
            executors: executors.max(u32::from(percent == 0)),
            percent,
            period_secs,
        },
    ))
}

fn settings() -> impl Strategy<Value = AutoscaleSettings> {
    (
        (0..5u32, 0..20u32, 0.3..=1.0f64, 0.0..0.3f64),
        (0..120u64, 0..300u64, rate_limit(), rate_limit()),
        (any::<bool>(), 0..120u64, 0..400u64),
        proptest::option::of(0..300u64),
    )
        .prop_map(
            |(
                (min, extra, target_utilization, tolerance),
                (up_window, down_window, scale_up_limit, scale_down_limit),
                (enabled, idle_delay_secs, later),
                target_queue_wait_secs,
            )| AutoscaleSettings {
                min,
                max: min.max(1) + extra,
                target_utilization,
                tolerance,
                target_queue_wait_secs,
                scale_up_window_secs: up_window,
                scale_down_window_secs: down_window,
                scale_up_limit,
                scale_down_limit,
                scale_to_zero: ScaleToZero {
                    enabled,
                    idle_delay_secs,
                    last_executor_delay_secs: idle_delay_secs + later,
                },
            },
        )
}

fn observation() -> impl Strategy<Value = PoolObservation> {
    (
        (
            prop_oneof![2 => Just(0u32), 3 => 0..3000u32],
            prop_oneof![2 => Just(0u32), 3 => 0..200u32],
            prop_oneof![1 => Just(0.0f64), 3 => 0.0..50.0f64],
            proptest::option::of(1..900_000u64),
            0..400_000u64,
        ),
        (1..9u32, 0..25u32, 0..10u32, 0..5u32, 0..5u32, 0..300_000u64),
    )
        .prop_map(
            |(
                (queued, running, arrival_rate, mean_run_ms, oldest_start_ms),
                (slots, ready, starting, draining, parked, cold_start_ms),
            )| PoolObservation {
                queued,
                running,
                arrival_rate,
                mean_run_ms,
                slots_per_executor: slots,
                executors: ExecutorCounts {
                    ready,
                    starting,
                    draining,
                    parked,
                },
                // Starts asked for evenly over the last `oldest_start_ms`.
                starting_for_ms: (1..=u64::from(starting))
                    .map(|i| oldest_start_ms * i / u64::from(starting))
                    .collect(),
                cold_start_ms,
            },
        )
}

/// Executors the running jobs need on executors that are not draining.
fn running_need(observation: &PoolObservation) -> u32 {
    let slots = observation.slots_per_executor.max(1);
    observation
        .running
        .saturating_sub(observation.executors.draining * slots)
        .div_ceil(slots)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `min ≤ desired ≤ max` (only an idle scale-to-zero pool goes below `min`), never
    /// below the running work, and a job queued for an empty pool starts one at once.
    #[test]
    fn decisions_keep_their_bounds(
        settings in settings(),
        steps in proptest::collection::vec((0..40_000u64, observation()), 1..60),
    ) {
        prop_assert_eq!(settings.validate(), Ok(()));
        let mut policy = AutoscalePolicy::new(settings.clone());
        let mut now = 0;
        for (advance, observation) in steps {
            now += advance;
            let decision = policy.decide(now, &observation);
            let desired = decision.desired;
            prop_assert!(desired <= settings.max, "{decision} over max {}", settings.max);
            let may_park = settings.scale_to_zero.enabled && observation.is_idle();
            if !may_park {
                prop_assert!(desired >= settings.floor(), "{decision} under min");
            }
            prop_assert!(
                desired >= running_need(&observation).min(settings.max),
                "{decision} drains running work: {observation:?}"
            );
            if observation.executors.supply() == 0 && observation.queued > 0 {
                prop_assert!(desired >= 1, "{decision} leaves a job waiting at zero");
            }
            prop_assert_eq!(decision.current, observation.executors.supply());
        }
    }

    /// A scale-to-zero pool at zero goes to one executor on the first queued job,
    /// whatever its windows and rate limits, at the very instant.
    #[test]
    fn the_first_job_starts_an_executor_at_once(
        settings in settings(),
        idle_ms in 0..2_000_000u64,
        mut observation in observation(),
    ) {
        let settings = AutoscaleSettings {
            scale_to_zero: ScaleToZero { enabled: true, ..settings.scale_to_zero.clone() },
            ..settings
        };
        let mut policy = AutoscalePolicy::new(settings);
        observation.executors = ExecutorCounts::default();
        let idle = PoolObservation {
            queued: 0,
            running: 0,
            ..observation.clone()
        };
        prop_assert_eq!(policy.decide(0, &idle).desired, 0);
        prop_assert_eq!(policy.decide(idle_ms, &idle).desired, 0);
        observation.queued = observation.queued.max(1);
        let decision = policy.decide(idle_ms, &observation);
        prop_assert!(decision.desired >= 1);
        if decision.desired == 1 {
            prop_assert_eq!(decision.reason, Reason::FirstJob);
        }
    }

    /// Under a constant load (jobs running, none waiting), with the pool following its
    /// decisions, the count settles in one direction and never turns back.
    #[test]
    fn a_constant_load_never_turns_the_count_back(
        settings in settings(),
        mut observation in observation(),
        start in 0..25u32,
    ) {
        let mut policy = AutoscalePolicy::new(settings);
        observation.queued = 0;
        observation.running = observation.running.max(1);
        observation.executors = ExecutorCounts { ready: start, ..ExecutorCounts::default() };
        let mut direction = 0i64;
        let mut turns = 0;
        for tick in 0..2_000u64 {
            let decision = policy.decide(tick * 250, &observation);
            let delta = decision.delta().signum();
            if delta != 0 {
                if direction != 0 && delta != direction {
                    turns += 1;
                }
                direction = delta;
            }
            observation.executors.ready = decision.desired;
        }
        prop_assert_eq!(turns, 0);
    }
}
