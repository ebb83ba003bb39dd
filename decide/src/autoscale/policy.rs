//! Marie's autoscale policy for one pool: the load's need, then stabilisation windows,
//! rate limits, the running-work floor and the idle rules, with the reason kept.

use super::decision::{Decision, Reason};
use super::demand::load_need;
use super::limits::{ScalingHistory, down_to, up_to};
use super::observation::PoolObservation;
use super::settings::AutoscaleSettings;
use super::window::{Keep, Window};

/// Decides one pool's executor count, tick after tick.
///
/// Holds only the small history its windows and rate limits need; time comes in as
/// monotonic milliseconds. Call [`AutoscalePolicy::decide`] every tick (e.g. 250 ms)
/// and also at once when a job is queued for a pool with no executor: it is cheap.
#[derive(Clone, Debug)]
pub struct AutoscalePolicy {
    settings: AutoscaleSettings,
    up_window: Window,
    down_window: Window,
    changes: ScalingHistory,
    idle_since_ms: Option<u64>,
    started: bool,
}

impl AutoscalePolicy {
    /// A policy with these settings (check them first with
    /// [`AutoscaleSettings::validate`]; the policy clamps what it must to stay sane).
    pub fn new(settings: AutoscaleSettings) -> Self {
        AutoscalePolicy {
            up_window: Window::new(Keep::Lowest, settings.scale_up_window_secs * 1000),
            down_window: Window::new(Keep::Highest, settings.scale_down_window_secs * 1000),
            changes: ScalingHistory::default(),
            idle_since_ms: None,
            started: false,
            settings,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AutoscaleSettings {
        &self.settings
    }

    /// How long the pool has been idle (nothing queued or running) at `now_ms`, as of
    /// the last decision; zero when it is not.
    pub fn idle_ms(&self, now_ms: u64) -> u64 {
        self.idle_since_ms
            .map_or(0, |since| now_ms.saturating_sub(since))
    }

    /// The desired executor count for the pool now, and why.
    ///
    /// `desired` counts ready plus starting executors, like `current`: the backend
    /// starts (or wakes) executors when it is higher, and drains then parks some when
    /// it is lower.
    pub fn decide(&mut self, now_ms: u64, observation: &PoolObservation) -> Decision {
        let current = observation.executors.supply();
        if !self.started {
            // A policy that has just started has watched nothing yet: it keeps what is
            // there for one scale-down window before it takes anything away.
            self.started = true;
            self.down_window.push(now_ms, current);
        }
        let max = self.settings.max.max(1);
        let floor = self.settings.floor();
        let idle_ms = self.track_idle(now_ms, observation);

        let need = load_need(
            observation,
            self.settings.target_utilization,
            self.settings.tolerance,
            self.settings.target_queue_wait_secs.map(|secs| secs * 1000),
        );
        let (target, mut reason) = if need.executors > max {
            (
                max,
                Reason::AtMax {
                    needed: need.executors,
                    max,
                },
            )
        } else if need.executors < floor {
            (
                floor,
                Reason::AtMin {
                    needed: need.executors,
                    min: floor,
                },
            )
        } else {
            (need.executors, need.reason.clone())
        };

        let (mut desired, window_reason) =
            self.stabilise(now_ms, current, target, observation.mean_run_ms);
        if let Some(window_reason) = window_reason {
            reason = window_reason;
        }
        if let Some(limited) = self.limit(now_ms, current, desired) {
            reason = Reason::Limited {
                executors: limited,
                needed: desired,
                up: limited > current,
                period_secs: self.limit_period_secs(limited > current),
            };
            desired = limited;
        }

        let slots = observation.slots_per_executor.max(1);
        let running_active = observation
            .running
            .saturating_sub(observation.executors.draining.saturating_mul(slots));
        let running_floor = running_active.div_ceil(slots).min(max);
        if desired < running_floor {
            desired = running_floor;
            reason = Reason::Running {
                running: running_active,
                executors: running_floor,
            };
        }
        // `min` holds whatever the rate limits say; `max` beats everything.
        desired = desired.max(floor).min(max);

        if let Some((parked_to, idle_reason)) =
            self.idle_rule(current, desired, idle_ms, observation)
        {
            desired = parked_to;
            reason = idle_reason;
        }
        if current == 0 && observation.queued > 0 && desired <= 1 {
            desired = 1;
            reason = Reason::FirstJob;
        }

        self.changes
            .record(now_ms, i64::from(desired) - i64::from(current));
        self.changes.prune(now_ms, self.longest_limit_period_ms());
        Decision {
            desired,
            current,
            need: need.executors,
            reason,
        }
    }

    /// Scale-to-zero: an idle pool at zero stays there; idle long enough, it goes to
    /// one executor, then to none. Returns the count and why, when a rule applies.
    fn idle_rule(
        &self,
        current: u32,
        desired: u32,
        idle_ms: u64,
        observation: &PoolObservation,
    ) -> Option<(u32, Reason)> {
        let zero = &self.settings.scale_to_zero;
        if !zero.enabled || !observation.is_idle() {
            return None;
        }
        let idle_secs = idle_ms / 1000;
        if current == 0 {
            Some((0, Reason::IdleAtZero))
        } else if idle_ms >= zero.last_executor_delay_secs * 1000 {
            Some((0, Reason::IdleToZero { idle_secs }))
        } else if idle_ms >= zero.idle_delay_secs * 1000 && desired > 1 {
            Some((1, Reason::IdleToOne { idle_secs }))
        } else {
            None
        }
    }

    /// Updates the idle clock and returns how long the pool has been idle.
    fn track_idle(&mut self, now_ms: u64, observation: &PoolObservation) -> u64 {
        if observation.is_idle() {
            let since = *self.idle_since_ms.get_or_insert(now_ms);
            now_ms.saturating_sub(since)
        } else {
            self.idle_since_ms = None;
            0
        }
    }

    /// The HPA's stabilisation: never above the lowest target of the scale-up window
    /// when going up, never below the highest of the scale-down window when going
    /// down. The scale-down window spans at least one mean run time: a pool cannot
    /// shrink faster than its jobs finish anyway (draining waits for them), so it does
    /// not try to. Returns the stabilised count and, when a window decided, why.
    fn stabilise(
        &mut self,
        now_ms: u64,
        current: u32,
        target: u32,
        mean_run_ms: Option<u64>,
    ) -> (u32, Option<Reason>) {
        let lowest = self.up_window.push(now_ms, target);
        let down_ms = self.down_window_ms(mean_run_ms);
        let highest = self.down_window.push_within(now_ms, target, down_ms);
        let desired = current.max(lowest).min(highest);
        let reason = if desired > target {
            Some(Reason::Held {
                executors: desired,
                needed: target,
                window_secs: down_ms / 1000,
            })
        } else if desired < target {
            Some(Reason::Waiting {
                executors: desired,
                needed: target,
                window_secs: self.settings.scale_up_window_secs,
            })
        } else {
            None
        };
        (desired, reason)
    }

    /// The scale-down window for a pool whose jobs run `mean_run_ms`.
    fn down_window_ms(&self, mean_run_ms: Option<u64>) -> u64 {
        (self.settings.scale_down_window_secs * 1000).max(mean_run_ms.unwrap_or(0))
    }

    /// The count the rate limits allow instead of `desired`, when they bind.
    fn limit(&self, now_ms: u64, current: u32, desired: u32) -> Option<u32> {
        if desired > current {
            let limit = self.settings.scale_up_limit.as_ref()?;
            let start = self
                .changes
                .period_start(now_ms, current, limit.period_secs * 1000);
            let allowed = up_to(limit, start).max(current);
            (desired > allowed).then_some(allowed)
        } else if desired < current {
            let limit = self.settings.scale_down_limit.as_ref()?;
            let start = self
                .changes
                .period_start(now_ms, current, limit.period_secs * 1000);
            let allowed = down_to(limit, start).min(current);
            (desired < allowed).then_some(allowed)
        } else {
            None
        }
    }

    fn limit_period_secs(&self, up: bool) -> u64 {
        let limit = if up {
            &self.settings.scale_up_limit
        } else {
            &self.settings.scale_down_limit
        };
        limit.as_ref().map_or(0, |limit| limit.period_secs)
    }

    fn longest_limit_period_ms(&self) -> u64 {
        [
            &self.settings.scale_up_limit,
            &self.settings.scale_down_limit,
        ]
        .into_iter()
        .flatten()
        .map(|limit| limit.period_secs * 1000)
        .max()
        .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::observation::ExecutorCounts;
    use super::super::settings::{RateLimit, ScaleToZero};
    use super::*;

    fn pool(ready: u32) -> PoolObservation {
        PoolObservation {
            queued: 0,
            running: 0,
            arrival_rate: 0.0,
            mean_run_ms: Some(1_000),
            slots_per_executor: 4,
            executors: ExecutorCounts {
                ready,
                ..ExecutorCounts::default()
            },
            starting_for_ms: Vec::new(),
            cold_start_ms: 20_000,
        }
    }

    fn to_zero() -> AutoscaleSettings {
        AutoscaleSettings {
            min: 0,
            max: 10,
            scale_to_zero: ScaleToZero {
                enabled: true,
                idle_delay_secs: 60,
                last_executor_delay_secs: 300,
            },
            ..AutoscaleSettings::default()
        }
    }

    #[test]
    fn the_first_job_at_zero_starts_an_executor_at_once() {
        let mut policy = AutoscalePolicy::new(to_zero());
        let idle = pool(0);
        for now in [0, 250, 500] {
            let decision = policy.decide(now, &idle);
            assert_eq!(
                (decision.desired, &decision.reason),
                (0, &Reason::IdleAtZero)
            );
        }
        let mut queued = pool(0);
        queued.queued = 1;
        let decision = policy.decide(600, &queued);
        assert_eq!(decision.desired, 1);
        assert_eq!(decision.reason, Reason::FirstJob);
    }

    #[test]
    fn an_idle_pool_goes_to_one_then_to_zero() {
        let mut policy = AutoscalePolicy::new(AutoscaleSettings {
            scale_down_window_secs: 120,
            ..to_zero()
        });
        let mut busy = pool(3);
        busy.running = 12;
        assert_eq!(policy.decide(0, &busy).desired, 3);
        let mut current = 3;
        let mut at_one = None;
        let mut at_zero = None;
        let mut now = 250;
        while now <= 400_000 {
            let decision = policy.decide(now, &pool(current));
            if decision.desired == 1 && at_one.is_none() {
                at_one = Some((now, decision.reason.clone()));
            }
            if decision.desired == 0 && at_zero.is_none() {
                at_zero = Some((now, decision.reason.clone()));
            }
            current = decision.desired;
            now += 250;
        }
        // Idle from 250 ms: one executor after 60 s (before the 120 s window would
        // let go), none after 300 s.
        assert_eq!(at_one, Some((60_250, Reason::IdleToOne { idle_secs: 60 })));
        assert_eq!(
            at_zero,
            Some((300_250, Reason::IdleToZero { idle_secs: 300 }))
        );
    }

    #[test]
    fn without_scale_to_zero_an_idle_pool_keeps_its_min() {
        let mut policy = AutoscalePolicy::new(AutoscaleSettings {
            min: 2,
            ..AutoscaleSettings::default()
        });
        let mut current = 5;
        for step in 0..4_000u64 {
            current = policy.decide(step * 250, &pool(current)).desired;
        }
        assert_eq!(current, 2);
    }

    #[test]
    fn scale_down_waits_for_the_window_and_says_so() {
        let mut policy = AutoscalePolicy::new(AutoscaleSettings::default());
        let mut busy = pool(2);
        busy.queued = 2_000;
        busy.running = 8;
        let up = policy.decide(0, &busy);
        assert_eq!(up.desired, 10);
        assert!(matches!(up.reason, Reason::AtMax { max: 10, .. }));
        let mut quiet = pool(10);
        quiet.running = 8;
        let held = policy.decide(30_000, &quiet);
        assert_eq!(held.desired, 10);
        assert!(matches!(
            held.reason,
            Reason::Held {
                executors: 10,
                needed: 2,
                window_secs: 60
            }
        ));
        assert_eq!(policy.decide(60_250, &quiet).desired, 2);
    }

    #[test]
    fn running_work_is_never_drained_below() {
        let mut policy = AutoscalePolicy::new(AutoscaleSettings {
            scale_down_window_secs: 0,
            ..AutoscaleSettings::default()
        });
        let mut full = pool(8);
        full.running = 30;
        let decision = policy.decide(0, &full);
        assert_eq!(decision.desired, 8);
        // Two of them draining already hold their own jobs.
        full.executors.ready = 6;
        full.executors.draining = 2;
        assert_eq!(policy.decide(1_000, &full).desired, 6);
    }

    #[test]
    fn rate_limits_spread_a_scale_up() {
        let mut policy = AutoscalePolicy::new(AutoscaleSettings {
            max: 30,
            scale_up_limit: Some(RateLimit {
                executors: 2,
                percent: 0,
                period_secs: 60,
            }),
            ..AutoscaleSettings::default()
        });
        let mut busy = pool(2);
        busy.queued = 2_000;
        busy.running = 8;
        let first = policy.decide(0, &busy);
        assert_eq!(first.desired, 4);
        assert!(matches!(first.reason, Reason::Limited { up: true, .. }));
        busy.executors.starting = 2;
        assert_eq!(policy.decide(30_000, &busy).desired, 4);
        assert_eq!(policy.decide(60_001, &busy).desired, 6);
    }

    #[test]
    fn a_fresh_policy_keeps_what_is_there_for_one_window() {
        let mut policy = AutoscalePolicy::new(AutoscaleSettings::default());
        assert_eq!(policy.decide(5_000, &pool(7)).desired, 7);
        assert_eq!(policy.decide(64_000, &pool(7)).desired, 7);
        assert_eq!(policy.decide(65_250, &pool(7)).desired, 1);
    }
}
