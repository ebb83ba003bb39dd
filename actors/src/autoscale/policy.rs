//! Marie's autoscale policy for one pool: the load's need, then stabilisation windows,
//! rate limits, the running-work floor and the idle rules, with the reason kept.

use super::decision::{Decision, Reason};
use super::demand::load_need;
use super::limits::{Changes, down_to, up_to};
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
    changes: Changes,
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
            changes: Changes::default(),
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
        desired = desired.min(max);

        if self.settings.scale_to_zero.enabled && observation.is_idle() {
            let zero = &self.settings.scale_to_zero;
            if current == 0 {
                desired = 0;
                reason = Reason::IdleAtZero;
            } else if idle_ms >= zero.last_executor_delay_secs * 1000 {
                desired = 0;
                reason = Reason::IdleToZero {
                    idle_secs: idle_ms / 1000,
                };
            } else if idle_ms >= zero.idle_delay_secs * 1000 && desired > 1 {
                desired = 1;
                reason = Reason::IdleToOne {
                    idle_secs: idle_ms / 1000,
                };
            }
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
        [&self.settings.scale_up_limit, &self.settings.scale_down_limit]
            .into_iter()
            .flatten()
            .map(|limit| limit.period_secs * 1000)
            .max()
            .unwrap_or(0)
    }
}
