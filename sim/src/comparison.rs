//! Marie's policy against the HPA-like and Ray-Serve-like ones, on every scenario,
//! and the table that goes into `README.md` (see [`crate::table`]).

use std::fmt::Write as _;

use marie_decide::autoscale::{AutoscalePolicy, AutoscaleSettings, ScaleToZero};

use crate::hpa::{HpaPolicy, HpaSettings};
use crate::ray_serve::{RayServePolicy, RayServeSettings};
use crate::scenarios::{Scenario, SimPool};
use crate::simulator::{Score, simulate};

/// The three scores of one scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Marie's policy.
    pub marie: Score,
    /// The HPA-like policy (with KEDA in front on scale-to-zero pools).
    pub hpa: Score,
    /// The Ray-Serve-like policy.
    pub ray_serve: Score,
}

impl Comparison {
    /// The three scores, Marie's first.
    pub fn scores(&self) -> [&Score; 3] {
        [&self.marie, &self.hpa, &self.ray_serve]
    }
}

/// Marie's policy for a simulated pool: its defaults, with the pool's bounds, target
/// and scale-to-zero switch.
pub fn marie_for(pool: &SimPool) -> AutoscalePolicy {
    AutoscalePolicy::new(AutoscaleSettings {
        min: pool.min,
        max: pool.max,
        target_utilization: pool.target_utilization,
        scale_to_zero: ScaleToZero {
            enabled: pool.scale_to_zero,
            ..ScaleToZero::default()
        },
        ..AutoscaleSettings::default()
    })
}

/// The HPA-like policy for a simulated pool: Kubernetes defaults, the same target
/// (`slots × target_utilization` jobs per executor), KEDA in front when `min` is 0.
pub fn hpa_for(pool: &SimPool) -> HpaPolicy {
    let target = f64::from(pool.slots) * pool.target_utilization;
    HpaPolicy::new(HpaSettings::kubernetes_defaults(pool.min, pool.max, target))
}

/// The Ray-Serve-like policy for a simulated pool: Ray Serve defaults with
/// `target_ongoing_requests = slots × target_utilization`.
pub fn ray_serve_for(pool: &SimPool) -> RayServePolicy {
    let target = f64::from(pool.slots) * pool.target_utilization;
    RayServePolicy::new(RayServeSettings::ray_defaults(pool.min, pool.max, target))
}

/// Runs the three policies on one scenario.
pub fn compare(scenario: &Scenario) -> Comparison {
    let jobs = scenario.jobs();
    Comparison {
        marie: simulate(scenario, &jobs, &mut marie_for(&scenario.pool)),
        hpa: simulate(scenario, &jobs, &mut hpa_for(&scenario.pool)),
        ray_serve: simulate(scenario, &jobs, &mut ray_serve_for(&scenario.pool)),
    }
}

/// Runs the three policies on every scenario.
pub fn compare_all() -> Vec<Comparison> {
    Scenario::all().iter().map(compare).collect()
}

/// The comparison as a Markdown table, one row per scenario and policy.
pub fn markdown_table(comparisons: &[Comparison]) -> String {
    let mut table = String::from(
        "| scenario | policy | jobs | SLO misses | executor-hours | flaps | p95 wait (s) | peak | cold starts |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for comparison in comparisons {
        for score in comparison.scores() {
            let _ = writeln!(
                table,
                "| {} | {} | {} | {} ({:.1} %) | {:.1} | {} | {:.1} | {} | {} |",
                score.scenario,
                score.policy,
                score.jobs,
                score.slo_misses,
                100.0 * score.slo_misses as f64 / score.jobs.max(1) as f64,
                score.executor_seconds / 3600.0,
                score.flaps,
                score.p95_wait_ms as f64 / 1000.0,
                score.peak_executors,
                score.executors_started,
            );
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;

    /// The whole comparison, run once per test binary.
    fn results() -> &'static [Comparison] {
        static RESULTS: OnceLock<Vec<Comparison>> = OnceLock::new();
        RESULTS.get_or_init(compare_all)
    }

    /// Marie's policy misses no more jobs than either reference, and strictly fewer
    /// wherever a reference misses any; it spends no more executor time than the
    /// cheaper of the two. (Where all three miss nothing, fewer is not possible.)
    #[test]
    fn marie_misses_less_and_spends_no_more_than_the_cheaper_reference() {
        for comparison in results() {
            let marie = &comparison.marie;
            let scenario = marie.scenario;
            let fewest = comparison
                .hpa
                .slo_misses
                .min(comparison.ray_serve.slo_misses);
            if fewest > 0 {
                assert!(
                    marie.slo_misses < fewest,
                    "{scenario}: marie misses {} ≥ {fewest}",
                    marie.slo_misses
                );
            } else {
                assert_eq!(marie.slo_misses, 0, "{scenario}");
            }
            let cheaper = comparison
                .hpa
                .executor_seconds
                .min(comparison.ray_serve.executor_seconds);
            assert!(
                marie.executor_seconds <= cheaper,
                "{scenario}: marie spends {:.0} executor-seconds, the cheaper reference {cheaper:.0}",
                marie.executor_seconds
            );
        }
    }

    /// Under steady load the count does not move at all.
    #[test]
    fn marie_does_not_flap_under_steady_load() {
        let steady = results()
            .iter()
            .find(|c| c.marie.scenario == Scenario::steady().name)
            .expect("the steady scenario");
        assert_eq!(steady.marie.flaps, 0, "{:?}", steady.marie);
    }

    /// Every policy ran every job of every scenario through the same pool.
    #[test]
    fn every_policy_saw_the_same_jobs() {
        for comparison in results() {
            let [marie, hpa, ray] = comparison.scores();
            assert_eq!(marie.jobs, hpa.jobs);
            assert_eq!(marie.jobs, ray.jobs);
            assert!(marie.jobs > 0);
        }
    }

    /// The table committed in `README.md` is the one the simulator gives now.
    #[test]
    fn the_committed_table_is_current() {
        crate::table::COMPARISON.assert_current(&markdown_table(results()));
    }
}
