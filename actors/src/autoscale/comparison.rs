//! Marie's policy against the HPA-like and Ray-Serve-like ones, on every scenario,
//! and the table that goes into `README.md`.

use std::fmt::Write as _;

use super::hpa::{HpaPolicy, HpaSettings};
use super::policy::AutoscalePolicy;
use super::ray_serve::{RayServePolicy, RayServeSettings};
use super::scenarios::{Scenario, SimPool};
use super::settings::{AutoscaleSettings, ScaleToZero};
use super::simulator::{Score, simulate};

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

    #[test]
    fn prints_the_comparison_table() {
        let table = markdown_table(results());
        println!("{table}");
        if std::env::var_os("MARIE_WRITE_AUTOSCALE_TABLE").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/autoscale/README.md");
            let readme = std::fs::read_to_string(path).expect("README.md readable");
            let start = "<!-- comparison table: start -->\n";
            let end = "<!-- comparison table: end -->";
            let from = readme.find(start).expect("start marker") + start.len();
            let to = readme.find(end).expect("end marker");
            let updated = format!("{}{}{}", &readme[..from], table, &readme[to..]);
            std::fs::write(path, updated).expect("README.md writable");
        }
    }
}

#[cfg(test)]
mod trace_debug {
    use super::super::simulator::ScalingPolicy;
    use super::super::PoolObservation;
    use super::*;

    struct Tracing(AutoscalePolicy, u32);

    impl ScalingPolicy for Tracing {
        fn name(&self) -> &'static str {
            "trace"
        }
        fn period_ms(&self) -> u64 {
            250
        }
        fn reacts_to_first_job(&self) -> bool {
            true
        }
        fn desired(&mut self, now_ms: u64, o: &PoolObservation) -> u32 {
            let d = self.0.decide(now_ms, o);
            if d.desired != self.1 {
                println!(
                    "{:>8.1}s q={} r={} rate={:.2} run={:?} ex={:?} | {}",
                    now_ms as f64 / 1000.0,
                    o.queued,
                    o.running,
                    o.arrival_rate,
                    o.mean_run_ms,
                    (o.executors.ready, o.executors.starting, o.executors.draining),
                    d
                );
                self.1 = d.desired;
            }
            d.desired
        }
    }

    #[test]
    #[ignore]
    fn trace() {
        let name = std::env::var("SCENARIO").unwrap_or_else(|_| "steady".into());
        let scenario = Scenario::all()
            .into_iter()
            .find(|s| s.name == name)
            .expect("scenario");
        let jobs = scenario.jobs();
        let score = simulate(
            &scenario,
            &jobs,
            &mut Tracing(marie_for(&scenario.pool), u32::MAX),
        );
        println!("{score:?}");
    }
}

#[cfg(test)]
mod sweep_debug {
    use super::super::scenarios::{RunTimes, Traffic};
    use super::*;

    #[test]
    #[ignore]
    fn sweep() {
        let mut worst = 0;
        for rate in [0.5, 1.0, 2.0, 5.0, 10.0, 20.0] {
            for run in [500.0, 2000.0, 5000.0, 10000.0] {
                for cold in [10_000, 30_000, 60_000] {
                    for slots in [1, 4, 8] {
                        let scenario = Scenario {
                            name: "sweep",
                            about: "",
                            duration_ms: 3_600_000,
                            slo_wait_ms: 30_000,
                            pool: SimPool {
                                slots,
                                min: 1,
                                max: 100,
                                target_utilization: 0.8,
                                cold_start_ms: cold,
                                initial_executors: 1,
                                scale_to_zero: false,
                            },
                            traffic: vec![Traffic::Poisson {
                                from_ms: 0,
                                to_ms: 3_600_000,
                                per_second: rate,
                            }],
                            run_times: RunTimes::Exponential { mean_ms: run },
                            seed: 7,
                        };
                        let jobs = scenario.jobs();
                        let score = simulate(&scenario, &jobs, &mut marie_for(&scenario.pool));
                        worst = worst.max(score.flaps);
                        if score.flaps > 1 {
                            println!(
                                "rate {rate} run {run} cold {cold} slots {slots}: flaps {} peak {} misses {}",
                                score.flaps, score.peak_executors, score.slo_misses
                            );
                        }
                    }
                }
            }
        }
        println!("worst {worst}");
    }
}
