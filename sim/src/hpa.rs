//! An HPA-like policy for comparison, written from the published algorithm of the
//! Kubernetes HorizontalPodAutoscaler (autoscaling/v2) with its default behaviour,
//! and KEDA's activation phase in front of it when the pool may go to zero.
//!
//! - Every `sync_period_ms` (15 s): `ratio = metric / (target × current)`; nothing
//!   moves while `|1 − ratio| ≤ tolerance` (0.1); otherwise the recommendation is
//!   `ceil(metric / target)` (an External metric with an `AverageValue` target).
//! - Stabilisation: up to the lowest recommendation of the scale-up window (0 s),
//!   down to the highest of the scale-down window (300 s).
//! - Rate: up by at most `max(4, 100 %)` per 15 s, down by at most 100 % per 15 s,
//!   measured from the count at the start of the period; then `minReplicas` /
//!   `maxReplicas`.
//! - At zero the HPA does nothing. KEDA polls every 30 s: a metric above the
//!   activation threshold (0) takes the pool 0 → 1; no activity for the cooldown
//!   period (300 s) takes it to 0.
//!
//! The metric is the pool's jobs, queued plus running, read fresh at each sync (a
//! real HPA reads it through a metrics adapter, later).

use marie_decide::autoscale::limits::{ScalingHistory, down_to, up_to};
use marie_decide::autoscale::window::{Keep, Window};
use marie_decide::autoscale::{PoolObservation, RateLimit};

/// KEDA's activation phase, for pools whose `min` is zero.
#[derive(Clone, Debug, PartialEq)]
pub struct KedaSettings {
    /// How often KEDA reads the metric (`pollingInterval`, 30 s).
    pub polling_interval_ms: u64,
    /// Inactivity before going to zero (`cooldownPeriod`, 300 s).
    pub cooldown_ms: u64,
    /// The metric must be strictly above this to activate (`activationThreshold`, 0).
    pub activation_threshold: f64,
}

impl Default for KedaSettings {
    fn default() -> Self {
        KedaSettings {
            polling_interval_ms: 30_000,
            cooldown_ms: 300_000,
            activation_threshold: 0.0,
        }
    }
}

/// The HPA's knobs; [`HpaSettings::kubernetes_defaults`] gives the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaSettings {
    /// `minReplicas` (`0` makes KEDA handle 0 ↔ 1 when `keda` is set).
    pub min: u32,
    /// `maxReplicas`.
    pub max: u32,
    /// `AverageValue` target: jobs (queued + running) per executor.
    pub target_per_executor: f64,
    /// No change while `|1 − ratio|` is at most this (0.1).
    pub tolerance: f64,
    /// Sync period (15 s).
    pub sync_period_ms: u64,
    /// Scale-up stabilisation window (0 s).
    pub scale_up_window_ms: u64,
    /// Scale-down stabilisation window (300 s).
    pub scale_down_window_ms: u64,
    /// Scale-up policies (4 pods or 100 % per 15 s, the larger).
    pub scale_up: RateLimit,
    /// Scale-down policies (100 % per 15 s).
    pub scale_down: RateLimit,
    /// KEDA in front, for 0 ↔ 1.
    pub keda: Option<KedaSettings>,
}

impl HpaSettings {
    /// The Kubernetes defaults around a pool's bounds and target; KEDA with its
    /// defaults in front when `min` is 0.
    pub fn kubernetes_defaults(min: u32, max: u32, target_per_executor: f64) -> Self {
        HpaSettings {
            min,
            max,
            target_per_executor,
            tolerance: 0.1,
            sync_period_ms: 15_000,
            scale_up_window_ms: 0,
            scale_down_window_ms: 300_000,
            scale_up: RateLimit {
                executors: 4,
                percent: 100,
                period_secs: 15,
            },
            scale_down: RateLimit {
                executors: 0,
                percent: 100,
                period_secs: 15,
            },
            keda: (min == 0).then(KedaSettings::default),
        }
    }
}

/// The HPA-like policy; call [`HpaPolicy::desired`] every sync period.
#[derive(Clone, Debug)]
pub struct HpaPolicy {
    settings: HpaSettings,
    up_window: Window,
    down_window: Window,
    changes: ScalingHistory,
    last_poll_ms: Option<u64>,
    last_active_ms: u64,
}

impl HpaPolicy {
    /// A policy with these settings.
    pub fn new(settings: HpaSettings) -> Self {
        HpaPolicy {
            up_window: Window::new(Keep::Lowest, settings.scale_up_window_ms),
            down_window: Window::new(Keep::Highest, settings.scale_down_window_ms),
            changes: ScalingHistory::default(),
            last_poll_ms: None,
            last_active_ms: 0,
            settings,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &HpaSettings {
        &self.settings
    }

    /// The replica count after this sync (ready plus starting executors).
    pub fn desired(&mut self, now_ms: u64, observation: &PoolObservation) -> u32 {
        let current = observation.executors.supply();
        let metric = f64::from(observation.queued) + f64::from(observation.running);
        if let Some(replicas) = self.keda(now_ms, current, metric) {
            return replicas;
        }
        if current == 0 {
            // The HPA does not act on a target scaled to zero.
            return 0;
        }
        let desired = self.hpa(now_ms, current, metric);
        self.changes
            .record(now_ms, i64::from(desired) - i64::from(current));
        self.changes.prune(now_ms, self.longest_period_ms());
        desired
    }

    /// KEDA's part: 0 → 1 on activation, N → 0 after the cooldown.
    fn keda(&mut self, now_ms: u64, current: u32, metric: f64) -> Option<u32> {
        let keda = self.settings.keda.as_ref()?;
        let due = self
            .last_poll_ms
            .is_none_or(|last| now_ms >= last + keda.polling_interval_ms);
        if !due {
            return (current == 0).then_some(0);
        }
        self.last_poll_ms = Some(now_ms);
        let active = metric > keda.activation_threshold;
        if active {
            self.last_active_ms = now_ms;
            if current == 0 {
                return Some(1);
            }
        } else if current > 0 && now_ms >= self.last_active_ms + keda.cooldown_ms {
            return Some(0);
        }
        (current == 0).then_some(0)
    }

    /// The HPA's part: recommendation, stabilisation, rate limits, bounds.
    fn hpa(&mut self, now_ms: u64, current: u32, metric: f64) -> u32 {
        let target = self.settings.target_per_executor.max(f64::MIN_POSITIVE);
        let ratio = metric / (target * f64::from(current));
        let recommendation = if (1.0 - ratio).abs() <= self.settings.tolerance {
            current
        } else {
            let replicas = (metric / target).ceil();
            replicas.clamp(0.0, f64::from(u32::MAX)) as u32
        };
        let lowest = self.up_window.push(now_ms, recommendation);
        let highest = self.down_window.push(now_ms, recommendation);
        let stabilised = current.max(lowest).min(highest);

        let min = if self.settings.keda.is_some() {
            self.settings.min.max(1)
        } else {
            self.settings.min
        };
        let max = self.settings.max;
        if stabilised > current {
            let limit = &self.settings.scale_up;
            let start = self
                .changes
                .period_start(now_ms, current, limit.period_secs * 1000);
            let allowed = up_to(limit, start).max(current).min(max);
            stabilised.min(allowed)
        } else if stabilised < current {
            let limit = &self.settings.scale_down;
            let start = self
                .changes
                .period_start(now_ms, current, limit.period_secs * 1000);
            let allowed = down_to(limit, start).min(current).max(min);
            stabilised.max(allowed)
        } else {
            stabilised.clamp(min, max.max(min))
        }
    }

    fn longest_period_ms(&self) -> u64 {
        (self.settings.scale_up.period_secs).max(self.settings.scale_down.period_secs) * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(ready: u32, queued: u32, running: u32) -> PoolObservation {
        crate::loaded(ready, queued, running)
    }

    #[test]
    fn scales_by_the_ratio_within_the_rate_limit() {
        let mut hpa = HpaPolicy::new(HpaSettings::kubernetes_defaults(1, 30, 3.0));
        // 2 executors, 60 jobs: ceil(60 / 3) = 20, limited to max(2 + 4, 2 × 2) = 6.
        assert_eq!(hpa.desired(0, &observation(2, 52, 8)), 6);
        // Next sync: from 6, up to 12.
        assert_eq!(hpa.desired(15_000, &observation(6, 40, 20)), 12);
    }

    #[test]
    fn a_small_deviation_is_tolerated() {
        let mut hpa = HpaPolicy::new(HpaSettings::kubernetes_defaults(1, 30, 3.0));
        // 10 executors, 31.5 expected: ratio 1.05.
        assert_eq!(hpa.desired(0, &observation(10, 0, 31)), 10);
    }

    #[test]
    fn scale_down_waits_for_the_window() {
        let mut hpa = HpaPolicy::new(HpaSettings::kubernetes_defaults(1, 30, 3.0));
        assert_eq!(hpa.desired(0, &observation(10, 0, 30)), 10);
        let mut now = 15_000;
        while now < 300_000 {
            assert_eq!(hpa.desired(now, &observation(10, 0, 3)), 10, "at {now}");
            now += 15_000;
        }
        assert_eq!(hpa.desired(now, &observation(10, 0, 3)), 1);
    }

    #[test]
    fn keda_activates_at_its_poll_and_cools_down() {
        let mut hpa = HpaPolicy::new(HpaSettings::kubernetes_defaults(0, 30, 3.0));
        assert_eq!(hpa.desired(0, &observation(0, 0, 0)), 0);
        // A job arrives at 5 s; KEDA sees it at its next poll, 30 s.
        assert_eq!(hpa.desired(15_000, &observation(0, 1, 0)), 0);
        assert_eq!(hpa.desired(30_000, &observation(0, 1, 0)), 1);
        // Idle from then on: zero 300 s after the last active poll.
        let mut now = 45_000;
        while now < 330_000 {
            assert!(hpa.desired(now, &observation(1, 0, 0)) >= 1, "at {now}");
            now += 15_000;
        }
        assert_eq!(hpa.desired(330_000, &observation(1, 0, 0)), 0);
    }
}
