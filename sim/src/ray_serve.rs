//! A Ray-Serve-like policy for comparison, written from Ray Serve's published
//! `replica_queue_length_autoscaling_policy` and its defaults.
//!
//! - The control loop runs every 0.1 s. Replicas record their ongoing requests
//!   (queued at the handle plus running) every 0.5 s and push them every 10 s; the
//!   controller averages what it has over the 30 s look-back.
//! - `error = total / (target_ongoing_requests × running_replicas)`,
//!   `desired = ceil(running × (1 + (error − 1) × factor))` (factor 1 by default), one
//!   less when smoothing would leave it stuck while the load asks for less; clamped to
//!   `min_replicas..=max_replicas`.
//! - A change is made only after the same direction has been decided for more than
//!   `upscale_delay_s / 0.1` (30 s) or `downscale_delay_s / 0.1` (600 s) loops in a row.
//! - With no running replica and requests queued, the fast path goes to one replica at
//!   once (the handle pushes its queue immediately when there is no replica).

use std::collections::VecDeque;

use marie_decide::autoscale::PoolObservation;

/// Ray Serve's `autoscaling_config`, with its defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct RayServeSettings {
    /// `min_replicas`.
    pub min_replicas: u32,
    /// `max_replicas`.
    pub max_replicas: u32,
    /// `target_ongoing_requests` per replica (queued plus running).
    pub target_ongoing_requests: f64,
    /// `upscale_delay_s` (30 s), in milliseconds.
    pub upscale_delay_ms: u64,
    /// `downscale_delay_s` (600 s), in milliseconds.
    pub downscale_delay_ms: u64,
    /// `upscaling_factor` (1).
    pub upscaling_factor: f64,
    /// `downscaling_factor` (1).
    pub downscaling_factor: f64,
    /// The controller's loop (0.1 s), in milliseconds.
    pub control_loop_ms: u64,
    /// `look_back_period_s` (30 s), in milliseconds.
    pub look_back_ms: u64,
    /// How often replicas and handles push their metrics (10 s), in milliseconds.
    pub metrics_push_ms: u64,
    /// How often they record a sample (0.5 s), in milliseconds.
    pub metrics_record_ms: u64,
}

impl RayServeSettings {
    /// Ray Serve's defaults around a pool's bounds and target.
    pub fn ray_defaults(min_replicas: u32, max_replicas: u32, target_ongoing: f64) -> Self {
        RayServeSettings {
            min_replicas,
            max_replicas,
            target_ongoing_requests: target_ongoing,
            upscale_delay_ms: 30_000,
            downscale_delay_ms: 600_000,
            upscaling_factor: 1.0,
            downscaling_factor: 1.0,
            control_loop_ms: 100,
            look_back_ms: 30_000,
            metrics_push_ms: 10_000,
            metrics_record_ms: 500,
        }
    }
}

/// The Ray-Serve-like policy; call [`RayServePolicy::desired`] every control loop.
#[derive(Clone, Debug)]
pub struct RayServePolicy {
    settings: RayServeSettings,
    target: Option<u32>,
    decision_counter: i64,
    samples: VecDeque<(u64, f64)>,
    last_record_ms: Option<u64>,
    next_push_ms: Option<u64>,
    pushed_until_ms: Option<u64>,
}

impl RayServePolicy {
    /// A policy with these settings.
    pub fn new(settings: RayServeSettings) -> Self {
        RayServePolicy {
            settings,
            target: None,
            decision_counter: 0,
            samples: VecDeque::new(),
            last_record_ms: None,
            next_push_ms: None,
            pushed_until_ms: None,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &RayServeSettings {
        &self.settings
    }

    /// The target replica count after this loop (ready plus starting executors).
    pub fn desired(&mut self, now_ms: u64, observation: &PoolObservation) -> u32 {
        self.record(now_ms, observation);
        let current_target = *self.target.get_or_insert(observation.executors.supply());
        let running = observation.executors.ready;
        let decided = if running == 0 {
            let live = f64::from(observation.queued) + f64::from(observation.running);
            if live > 0.0 {
                let first = (self.settings.upscaling_factor).ceil().max(1.0) as u32;
                first.max(current_target)
            } else {
                current_target
            }
        } else {
            self.delayed(current_target, self.calculate(running))
        };
        self.target = Some(decided);
        decided
    }

    /// Samples the load and moves the push horizon.
    fn record(&mut self, now_ms: u64, observation: &PoolObservation) {
        let due = self
            .last_record_ms
            .is_none_or(|last| now_ms >= last + self.settings.metrics_record_ms);
        if due {
            let ongoing = f64::from(observation.queued) + f64::from(observation.running);
            self.samples.push_back((now_ms, ongoing));
            self.last_record_ms = Some(now_ms);
        }
        let next_push = *self
            .next_push_ms
            .get_or_insert(now_ms + self.settings.metrics_push_ms);
        if now_ms >= next_push {
            self.pushed_until_ms = Some(now_ms);
            self.next_push_ms = Some(now_ms + self.settings.metrics_push_ms);
        }
        let keep_from =
            now_ms.saturating_sub(self.settings.look_back_ms + self.settings.metrics_push_ms);
        while self.samples.front().is_some_and(|&(at, _)| at < keep_from) {
            self.samples.pop_front();
        }
    }

    /// The controller's view: the mean of pushed samples over the look-back.
    fn total_requests(&self) -> f64 {
        let Some(pushed_until) = self.pushed_until_ms else {
            return 0.0;
        };
        let from = look_back_start(pushed_until, self.settings.look_back_ms);
        let (sum, count) = self
            .samples
            .iter()
            .filter(|&&(at, _)| at >= from && at <= pushed_until)
            .fold((0.0, 0u32), |(sum, count), &(_, v)| (sum + v, count + 1));
        if count == 0 {
            0.0
        } else {
            sum / f64::from(count)
        }
    }

    /// `_calculate_desired_num_replicas`.
    fn calculate(&self, running: u32) -> u32 {
        let settings = &self.settings;
        let running_f = f64::from(running);
        let target = settings.target_ongoing_requests.max(f64::MIN_POSITIVE);
        let error = self.total_requests() / running_f / target;
        let factor = if error >= 1.0 {
            settings.upscaling_factor
        } else {
            settings.downscaling_factor
        };
        let smoothed = 1.0 + (error - 1.0) * factor;
        let mut desired = (running_f * smoothed).ceil().max(0.0) as u32;
        if ((running_f * error).ceil() as u32) < running && desired == running {
            desired -= 1;
        }
        desired.clamp(
            settings.min_replicas,
            settings.max_replicas.max(settings.min_replicas),
        )
    }

    /// The consecutive-decisions delay of `replica_queue_length_autoscaling_policy`.
    fn delayed(&mut self, current_target: u32, desired: u32) -> u32 {
        let settings = &self.settings;
        let loop_ms = settings.control_loop_ms.max(1);
        if desired > current_target {
            if self.decision_counter < 0 {
                self.decision_counter = 0;
            }
            self.decision_counter += 1;
            if self.decision_counter > (settings.upscale_delay_ms / loop_ms) as i64 {
                self.decision_counter = 0;
                return desired;
            }
        } else if desired < current_target {
            if self.decision_counter > 0 {
                self.decision_counter = 0;
            }
            self.decision_counter -= 1;
            if self.decision_counter < -((settings.downscale_delay_ms / loop_ms) as i64) {
                self.decision_counter = 0;
                return desired;
            }
        } else {
            self.decision_counter = 0;
        }
        current_target
    }
}

/// The start of a look-back of `length_ms` ending at `end_ms`.
fn look_back_start(end_ms: u64, length_ms: u64) -> u64 {
    end_ms.saturating_sub(length_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(ready: u32, queued: u32, running: u32) -> PoolObservation {
        crate::loaded(ready, queued, running)
    }

    #[test]
    fn scales_up_after_the_upscale_delay() {
        let mut ray = RayServePolicy::new(RayServeSettings::ray_defaults(1, 30, 3.0));
        let busy = observation(2, 24, 8);
        let mut now = 0;
        let mut first_up = None;
        while now <= 60_000 {
            if ray.desired(now, &busy) > 2 && first_up.is_none() {
                first_up = Some(now);
            }
            now += 100;
        }
        // Seen at the first push (10 s), then 30 s of consistent decisions.
        let first_up = first_up.unwrap_or(u64::MAX);
        assert!((40_000..=41_000).contains(&first_up), "{first_up}");
        assert_eq!(ray.desired(now, &busy), 11);
    }

    #[test]
    fn the_first_request_at_zero_takes_the_fast_path() {
        let mut ray = RayServePolicy::new(RayServeSettings::ray_defaults(0, 30, 3.0));
        assert_eq!(ray.desired(0, &observation(0, 0, 0)), 0);
        assert_eq!(ray.desired(100, &observation(0, 1, 0)), 1);
    }

    #[test]
    fn scales_down_only_after_the_downscale_delay() {
        let mut ray = RayServePolicy::new(RayServeSettings::ray_defaults(1, 30, 3.0));
        let quiet = observation(10, 0, 3);
        let mut now = 0;
        while now < 600_000 {
            assert_eq!(ray.desired(now, &quiet), 10, "at {now}");
            now += 100;
        }
        let mut later = 10;
        while now < 700_000 && later == 10 {
            later = ray.desired(now, &quiet);
            now += 100;
        }
        assert_eq!(later, 1);
    }
}
