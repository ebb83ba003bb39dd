//! An HPA-like policy for comparison, written from the published algorithm of the
//! Kubernetes HorizontalPodAutoscaler (autoscaling/v2), and KEDA's activation phase in
//! front of it when the pool may go to zero (a KEDA ScaledObject is exactly that: KEDA
//! takes the pool 0 ↔ 1 and creates an HPA for 1 ↔ N).
//!
//! - Every `sync_period_ms` (15 s), for each External metric with an `AverageValue`
//!   target: `ratio = metric / (target × current)`; nothing moves while
//!   `|1 − ratio| ≤ tolerance` (0.1); otherwise `ceil(metric / target)`. The largest
//!   answer of the metrics is the recommendation.
//! - Stabilisation: up to the lowest recommendation of the scale-up window, down to
//!   the highest of the scale-down window (defaults 0 s and 300 s; the scaling
//!   guide's 60 s and 300 s).
//! - Rate: up by at most `max(4, 100 %)` per 15 s, down by at most 100 % per 15 s by
//!   default (the guide: 2 pods per 60 s up, 10 % per 60 s down), measured from the
//!   count at the start of the period; then `minReplicas` / `maxReplicas`.
//! - At zero the HPA does nothing. KEDA polls every `pollingInterval`: a metric above
//!   the activation threshold (0) takes the pool 0 → 1; no activity for the cooldown
//!   period (300 s) takes it to 0.
//!
//! The metrics are read fresh at each sync and poll: KEDA's metrics server asks the
//! scaler on each of the HPA's queries (`useCachedMetrics` is off by default), and
//! Prometheus's scrape interval is not modelled (a real HPA reads later values).

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

/// What an External metric counts in the pool, as Marie exports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricSource {
    /// `marie_jobs_pending`: jobs waiting for a slot.
    Pending,
    /// `marie_executor_slots_used`: slots running a job.
    SlotsUsed,
    /// The pool's jobs, waiting plus running.
    Jobs,
}

impl MetricSource {
    /// The metric's value in the observed pool.
    fn read(self, observation: &PoolObservation) -> f64 {
        let pending = f64::from(observation.queued);
        let running = f64::from(observation.running);
        match self {
            MetricSource::Pending => pending,
            MetricSource::SlotsUsed => running,
            MetricSource::Jobs => pending + running,
        }
    }
}

/// An External metric with an `AverageValue` target: `average_value` per executor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExternalMetric {
    /// What it counts.
    pub source: MetricSource,
    /// The target per executor.
    pub average_value: f64,
}

/// The HPA's knobs; [`HpaSettings::kubernetes_defaults`] gives the defaults,
/// [`HpaSettings::scaling_guide`] the HPA `marie-deploy` renders and
/// [`HpaSettings::scaled_object`] the one a KEDA ScaledObject makes.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaSettings {
    /// `minReplicas` (`0` makes KEDA handle 0 ↔ 1 when `keda` is set).
    pub min: u32,
    /// `maxReplicas`.
    pub max: u32,
    /// The External metrics; the largest recommendation wins. KEDA is active while
    /// any of them is above its activation threshold.
    pub metrics: Vec<ExternalMetric>,
    /// No change while `|1 − ratio|` is at most this (0.1).
    pub tolerance: f64,
    /// Sync period (15 s).
    pub sync_period_ms: u64,
    /// Scale-up stabilisation window (default 0 s).
    pub scale_up_window_ms: u64,
    /// Scale-down stabilisation window (default 300 s).
    pub scale_down_window_ms: u64,
    /// Scale-up policies (default 4 pods or 100 % per 15 s, the larger).
    pub scale_up: RateLimit,
    /// Scale-down policies (default 100 % per 15 s).
    pub scale_down: RateLimit,
    /// KEDA in front, for 0 ↔ 1.
    pub keda: Option<KedaSettings>,
}

impl HpaSettings {
    /// The Kubernetes defaults around a pool's bounds, on one External metric: the
    /// pool's jobs, `target_per_executor` per executor; KEDA with its defaults in
    /// front when `min` is 0.
    pub fn kubernetes_defaults(min: u32, max: u32, target_per_executor: f64) -> Self {
        HpaSettings {
            min,
            max,
            metrics: vec![ExternalMetric {
                source: MetricSource::Jobs,
                average_value: target_per_executor,
            }],
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

    /// The HPA of the scaling guide, as `marie-deploy` renders it for a pool of
    /// `slots` slots per executor: `marie_jobs_pending` at 10 per pod and
    /// `marie_executor_slots_used` at three quarters of the slots (rounded up) per
    /// pod, `minReplicas` at least 1, and the guide's behaviour.
    pub fn scaling_guide(min: u32, max: u32, slots: u32) -> Self {
        let slots_used = (f64::from(slots) * 0.75).ceil();
        HpaSettings {
            metrics: vec![
                ExternalMetric {
                    source: MetricSource::Pending,
                    average_value: 10.0,
                },
                ExternalMetric {
                    source: MetricSource::SlotsUsed,
                    average_value: slots_used,
                },
            ],
            keda: None,
            ..HpaSettings::kubernetes_defaults(min.max(1), max, 1.0)
        }
        .with_guide_behaviour()
    }

    /// What a KEDA ScaledObject with one prometheus trigger on
    /// `sum(marie_jobs_pending)` makes: KEDA in front (polling every
    /// `polling_interval_ms`, its default cooldown) when `min_replica_count` is 0, and
    /// an HPA on the pending jobs at `threshold` per pod with the Kubernetes default
    /// behaviour (the ScaledObject sets none).
    pub fn scaled_object(
        min_replica_count: u32,
        max: u32,
        threshold: f64,
        polling_interval_ms: u64,
    ) -> Self {
        HpaSettings {
            metrics: vec![ExternalMetric {
                source: MetricSource::Pending,
                average_value: threshold,
            }],
            keda: (min_replica_count == 0).then(|| KedaSettings {
                polling_interval_ms,
                ..KedaSettings::default()
            }),
            ..HpaSettings::kubernetes_defaults(min_replica_count, max, threshold)
        }
    }

    /// These settings with the scaling guide's `behavior`: up after a 60 s window by
    /// at most 2 pods per 60 s, down after a 300 s window by at most 10 % per 60 s.
    pub fn with_guide_behaviour(self) -> Self {
        HpaSettings {
            scale_up_window_ms: 60_000,
            scale_down_window_ms: 300_000,
            scale_up: RateLimit {
                executors: 2,
                percent: 0,
                period_secs: 60,
            },
            scale_down: RateLimit {
                executors: 0,
                percent: 10,
                period_secs: 60,
            },
            ..self
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
        if let Some(replicas) = self.keda(now_ms, current, observation) {
            return replicas;
        }
        if current == 0 {
            // The HPA does not act on a target scaled to zero.
            return 0;
        }
        let desired = self.hpa(now_ms, current, observation);
        self.changes
            .record(now_ms, i64::from(desired) - i64::from(current));
        self.changes.prune(now_ms, self.longest_period_ms());
        desired
    }

    /// KEDA's part: 0 → 1 on activation, N → 0 after the cooldown.
    fn keda(&mut self, now_ms: u64, current: u32, observation: &PoolObservation) -> Option<u32> {
        let keda = self.settings.keda.as_ref()?;
        let due = self
            .last_poll_ms
            .is_none_or(|last| now_ms >= last + keda.polling_interval_ms);
        if !due {
            return (current == 0).then_some(0);
        }
        self.last_poll_ms = Some(now_ms);
        let active = self
            .settings
            .metrics
            .iter()
            .any(|metric| metric.source.read(observation) > keda.activation_threshold);
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
    fn hpa(&mut self, now_ms: u64, current: u32, observation: &PoolObservation) -> u32 {
        let recommendation = self
            .settings
            .metrics
            .iter()
            .map(|metric| self.replicas_for(metric, current, observation))
            .max()
            .unwrap_or(current);
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

    /// One metric's recommendation: the count that brings it to its target, or the
    /// current one within the tolerance.
    fn replicas_for(
        &self,
        metric: &ExternalMetric,
        current: u32,
        observation: &PoolObservation,
    ) -> u32 {
        let value = metric.source.read(observation);
        let target = metric.average_value.max(f64::MIN_POSITIVE);
        let ratio = value / (target * f64::from(current));
        if (1.0 - ratio).abs() <= self.settings.tolerance {
            current
        } else {
            (value / target).ceil().clamp(0.0, f64::from(u32::MAX)) as u32
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
    fn the_largest_answer_of_the_metrics_wins() {
        let limit_free = || HpaSettings {
            scale_up_window_ms: 0,
            scale_up: RateLimit {
                executors: 100,
                percent: 0,
                period_secs: 60,
            },
            ..HpaSettings::scaling_guide(1, 20, 4)
        };
        let mut hpa = HpaPolicy::new(limit_free());
        // 5 executors: 12 busy slots ask for ceil(12 / 3) = 4 (within no tolerance),
        // 70 pending for ceil(70 / 10) = 7.
        assert_eq!(hpa.desired(0, &observation(5, 70, 12)), 7);
        // 8 executors: 24 busy slots ask for 8, exactly on target; 5 pending for 1.
        let mut hpa = HpaPolicy::new(limit_free());
        assert_eq!(hpa.desired(0, &observation(8, 5, 24)), 8);
    }

    #[test]
    fn the_guides_behaviour_waits_a_minute_then_adds_two_pods_a_minute() {
        let mut hpa = HpaPolicy::new(HpaSettings::scaling_guide(1, 20, 4));
        let mut now = 15_000;
        while now <= 300_000 {
            assert_eq!(hpa.desired(now, &observation(1, 0, 0)), 1, "idle at {now}");
            now += 15_000;
        }
        // A backlog from 315 s: the idle recommendation of 300 s leaves the 60 s
        // window at 360 s.
        while now < 360_000 {
            assert_eq!(hpa.desired(now, &observation(1, 500, 4)), 1, "at {now}");
            now += 15_000;
        }
        assert_eq!(hpa.desired(360_000, &observation(1, 500, 4)), 3);
        // At most 2 pods per 60 s: no more until 420 s.
        for now in [375_000, 390_000, 405_000] {
            assert_eq!(hpa.desired(now, &observation(3, 500, 12)), 3, "at {now}");
        }
        assert_eq!(hpa.desired(420_000, &observation(3, 500, 12)), 5);
    }

    #[test]
    fn a_scaled_object_activates_on_pending_jobs_only() {
        let mut keda = HpaPolicy::new(HpaSettings::scaled_object(0, 20, 4.0, 30_000));
        assert_eq!(keda.settings().min, 0);
        assert_eq!(keda.desired(15_000, &observation(0, 0, 0)), 0);
        // Pending jobs, but the next poll is at 45 s.
        assert_eq!(keda.desired(30_000, &observation(0, 9, 0)), 0);
        assert_eq!(keda.desired(45_000, &observation(0, 9, 0)), 1);
        // Then the HPA on pending ÷ 4, Kubernetes' default behaviour.
        assert_eq!(keda.desired(60_000, &observation(1, 40, 4)), 5);
        // Running jobs alone keep no executor active: cooldown 300 s after the last
        // poll that saw a job pending (45 s).
        let mut now = 75_000;
        while now < 345_000 {
            assert!(keda.desired(now, &observation(1, 0, 4)) >= 1, "at {now}");
            now += 15_000;
        }
        assert_eq!(keda.desired(345_000, &observation(1, 0, 4)), 0);
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
