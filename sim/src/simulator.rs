//! A discrete-event simulation of one pool driven by a scaling policy, in simulated
//! milliseconds: jobs arrive, wait in a FIFO queue, run on executor slots; executors
//! start after a cold start, drain and park. Scored on SLO misses (queue wait over the
//! scenario's target), executor-seconds (starting, ready and draining executors all
//! cost) and flaps (direction changes of the policy's desired count).
//!
//! Every policy gets the same jobs and the same backend: a scale-up wakes a draining
//! executor before starting a new one; a scale-down cancels starting executors first,
//! then parks idle ones, then drains the least busy (lossless: no job is cut short).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use marie_decide::autoscale::{
    ArrivalRate, AutoscalePolicy, ExecutorCounts, PoolObservation, RunTime,
};

use crate::hpa::HpaPolicy;
use crate::ray_serve::RayServePolicy;
use crate::scenarios::{Scenario, SimJob};

/// The Supervisor's tick: Marie's policy is asked this often (and at once when a job
/// is queued for a pool with no executor).
pub const SUPERVISOR_TICK_MS: u64 = 250;

/// A policy the simulator can drive.
pub trait ScalingPolicy {
    /// Its name in the table.
    fn name(&self) -> &'static str;
    /// How often it is asked, ms.
    fn period_ms(&self) -> u64;
    /// Whether it is also asked at once when a job is queued for an empty pool.
    fn reacts_to_first_job(&self) -> bool;
    /// The executor count it wants now (ready plus starting).
    fn desired(&mut self, now_ms: u64, observation: &PoolObservation) -> u32;
}

impl ScalingPolicy for AutoscalePolicy {
    fn name(&self) -> &'static str {
        "marie"
    }

    fn period_ms(&self) -> u64 {
        SUPERVISOR_TICK_MS
    }

    fn reacts_to_first_job(&self) -> bool {
        true
    }

    fn desired(&mut self, now_ms: u64, observation: &PoolObservation) -> u32 {
        self.decide(now_ms, observation).desired
    }
}

impl ScalingPolicy for HpaPolicy {
    fn name(&self) -> &'static str {
        if self.settings().keda.is_some() {
            "hpa+keda"
        } else {
            "hpa"
        }
    }

    fn period_ms(&self) -> u64 {
        self.settings().sync_period_ms
    }

    fn reacts_to_first_job(&self) -> bool {
        false
    }

    fn desired(&mut self, now_ms: u64, observation: &PoolObservation) -> u32 {
        HpaPolicy::desired(self, now_ms, observation)
    }
}

impl ScalingPolicy for RayServePolicy {
    fn name(&self) -> &'static str {
        "ray-serve"
    }

    fn period_ms(&self) -> u64 {
        self.settings().control_loop_ms
    }

    fn reacts_to_first_job(&self) -> bool {
        false
    }

    fn desired(&mut self, now_ms: u64, observation: &PoolObservation) -> u32 {
        RayServePolicy::desired(self, now_ms, observation)
    }
}

/// How a policy did on a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// The scenario's name.
    pub scenario: &'static str,
    /// The policy's name.
    pub policy: &'static str,
    /// Jobs in the scenario.
    pub jobs: usize,
    /// Jobs whose wait for a slot exceeded the scenario's target (jobs still queued at
    /// the end count when they have already waited that long).
    pub slo_misses: usize,
    /// Executor time paid for, starting and draining included, in seconds.
    pub executor_seconds: f64,
    /// Changes of direction of the desired count (up then down, or down then up).
    pub flaps: u32,
    /// 95th percentile of the wait for a slot, ms.
    pub p95_wait_ms: u64,
    /// Most executors alive at once.
    pub peak_executors: u32,
    /// Executors started (cold starts paid).
    pub executors_started: u32,
}

/// A simulated executor.
#[derive(Clone, Debug)]
struct SimExecutor {
    id: u64,
    /// When it is ready, while it is starting.
    ready_at: Option<u64>,
    busy: u32,
    draining: bool,
}

impl SimExecutor {
    fn takes_work(&self) -> bool {
        self.ready_at.is_none() && !self.draining
    }
}

/// Completions and readiness, ordered by time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A run ends: (executor id, job index).
    Done(u64, usize),
    /// An executor is ready: its id.
    Ready(u64),
}

/// The simulated pool.
struct Pool<'a> {
    scenario: &'a Scenario,
    jobs: &'a [SimJob],
    executors: Vec<SimExecutor>,
    next_id: u64,
    queue: VecDeque<usize>,
    running: u32,
    events: BinaryHeap<Reverse<(u64, Event)>>,
    arrivals: ArrivalRate,
    run_times: RunTime,
    rng: ChaCha8Rng,
    clock_ms: u64,
    executor_ms: u128,
    waits: Vec<u64>,
    slo_misses: usize,
    last_desired: Option<u32>,
    last_direction: i8,
    flaps: u32,
    peak: u32,
    started: u32,
}

impl<'a> Pool<'a> {
    fn new(scenario: &'a Scenario, jobs: &'a [SimJob]) -> Self {
        let mut pool = Pool {
            scenario,
            jobs,
            executors: Vec::new(),
            next_id: 0,
            queue: VecDeque::new(),
            running: 0,
            events: BinaryHeap::new(),
            arrivals: ArrivalRate::new(0),
            run_times: RunTime::default(),
            rng: ChaCha8Rng::seed_from_u64(scenario.seed ^ 0xC01D_57A7),
            clock_ms: 0,
            executor_ms: 0,
            waits: Vec::with_capacity(jobs.len()),
            slo_misses: 0,
            last_desired: None,
            last_direction: 0,
            flaps: 0,
            peak: 0,
            started: 0,
        };
        for _ in 0..scenario.pool.initial_executors {
            pool.add_executor(None);
        }
        pool
    }

    /// Moves the clock, paying for every live executor.
    fn advance(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.clock_ms);
        self.executor_ms += u128::from(elapsed) * self.executors.len() as u128;
        self.clock_ms = self.clock_ms.max(now_ms);
    }

    fn add_executor(&mut self, ready_at: Option<u64>) {
        let id = self.next_id;
        self.next_id += 1;
        self.executors.push(SimExecutor {
            id,
            ready_at,
            busy: 0,
            draining: false,
        });
        if let Some(at) = ready_at {
            self.events.push(Reverse((at, Event::Ready(id))));
            self.started += 1;
        }
        self.peak = self.peak.max(self.executors.len() as u32);
    }

    fn counts(&self) -> ExecutorCounts {
        let mut counts = ExecutorCounts::default();
        for executor in &self.executors {
            if executor.ready_at.is_some() {
                counts.starting += 1;
            } else if executor.draining {
                counts.draining += 1;
            } else {
                counts.ready += 1;
            }
        }
        counts
    }

    fn observe(&mut self, now_ms: u64) -> PoolObservation {
        PoolObservation {
            queued: self.queue.len() as u32,
            running: self.running,
            arrival_rate: self.arrivals.per_second(now_ms),
            mean_run_ms: self.run_times.mean_ms(),
            slots_per_executor: self.scenario.pool.slots,
            executors: self.counts(),
            cold_start_ms: self.scenario.pool.cold_start_ms,
        }
    }

    /// Asks the policy and carries its answer out.
    fn decide(&mut self, now_ms: u64, policy: &mut dyn ScalingPolicy) {
        let observation = self.observe(now_ms);
        let desired = policy.desired(now_ms, &observation);
        if let Some(last) = self.last_desired
            && desired != last
        {
            let direction = if desired > last { 1 } else { -1 };
            if self.last_direction != 0 && direction != self.last_direction {
                self.flaps += 1;
            }
            self.last_direction = direction;
        }
        self.last_desired = Some(desired);
        self.scale_to(now_ms, desired);
        self.dispatch(now_ms);
    }

    /// The backend: wake draining executors, then start new ones; or cancel starting
    /// ones, park idle ones, drain the least busy.
    fn scale_to(&mut self, now_ms: u64, desired: u32) {
        let supply = self.counts().supply();
        if desired > supply {
            let mut missing = desired - supply;
            for executor in self.executors.iter_mut().filter(|e| e.draining) {
                if missing == 0 {
                    break;
                }
                executor.draining = false;
                missing -= 1;
            }
            for _ in 0..missing {
                let cold = self.scenario.pool.cold_start_ms as f64;
                let drawn = cold * (0.8 + 0.4 * self.rng.random::<f64>());
                self.add_executor(Some(now_ms + drawn.round() as u64));
            }
        } else {
            let mut surplus = supply - desired;
            while surplus > 0 {
                let starting = self
                    .executors
                    .iter()
                    .enumerate()
                    .filter_map(|(i, e)| e.ready_at.map(|at| (at, i)))
                    .max();
                let Some((_, index)) = starting else { break };
                self.executors.swap_remove(index);
                surplus -= 1;
            }
            while surplus > 0 {
                let least_busy = self
                    .executors
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.takes_work())
                    .min_by_key(|(_, e)| (e.busy, Reverse(e.id)))
                    .map(|(i, _)| i);
                let Some(index) = least_busy else { break };
                if self.executors[index].busy == 0 {
                    self.executors.swap_remove(index);
                } else {
                    self.executors[index].draining = true;
                }
                surplus -= 1;
            }
        }
    }

    /// Gives queued jobs to free slots, most free slots first.
    fn dispatch(&mut self, now_ms: u64) {
        let slots = self.scenario.pool.slots;
        while !self.queue.is_empty() {
            let best = self
                .executors
                .iter_mut()
                .filter(|e| e.takes_work() && e.busy < slots)
                .min_by_key(|e| (e.busy, e.id));
            let Some(executor) = best else { break };
            let Some(job_index) = self.queue.pop_front() else {
                break;
            };
            executor.busy += 1;
            let id = executor.id;
            self.running += 1;
            let job = self.jobs[job_index];
            let wait = now_ms.saturating_sub(job.arrival_ms);
            self.waits.push(wait);
            if wait > self.scenario.slo_wait_ms {
                self.slo_misses += 1;
            }
            self.events
                .push(Reverse((now_ms + job.run_ms, Event::Done(id, job_index))));
        }
    }

    fn handle(&mut self, now_ms: u64, event: Event) {
        match event {
            Event::Ready(id) => {
                if let Some(executor) = self.executors.iter_mut().find(|e| e.id == id) {
                    executor.ready_at = None;
                }
            }
            Event::Done(id, job_index) => {
                self.running = self.running.saturating_sub(1);
                self.run_times.record(now_ms, self.jobs[job_index].run_ms);
                if let Some(index) = self.executors.iter().position(|e| e.id == id) {
                    let executor = &mut self.executors[index];
                    executor.busy = executor.busy.saturating_sub(1);
                    if executor.draining && executor.busy == 0 {
                        self.executors.swap_remove(index);
                    }
                }
            }
        }
        self.dispatch(now_ms);
    }

    fn arrive(&mut self, now_ms: u64, job_index: usize, policy: &mut dyn ScalingPolicy) {
        self.queue.push_back(job_index);
        self.arrivals.record(now_ms, 1);
        self.dispatch(now_ms);
        if policy.reacts_to_first_job() && self.counts().supply() == 0 {
            self.decide(now_ms, policy);
        }
    }

    fn score(mut self, policy: &dyn ScalingPolicy) -> Score {
        let end = self.scenario.duration_ms;
        for &job_index in &self.queue {
            let wait = end.saturating_sub(self.jobs[job_index].arrival_ms);
            self.waits.push(wait);
            if wait > self.scenario.slo_wait_ms {
                self.slo_misses += 1;
            }
        }
        self.waits.sort_unstable();
        let p95_wait_ms = if self.waits.is_empty() {
            0
        } else {
            self.waits[(self.waits.len() - 1) * 95 / 100]
        };
        Score {
            scenario: self.scenario.name,
            policy: policy.name(),
            jobs: self.jobs.len(),
            slo_misses: self.slo_misses,
            executor_seconds: self.executor_ms as f64 / 1000.0,
            flaps: self.flaps,
            p95_wait_ms,
            peak_executors: self.peak,
            executors_started: self.started,
        }
    }
}

/// Runs `jobs` of `scenario` through `policy` and scores it.
pub fn simulate(scenario: &Scenario, jobs: &[SimJob], policy: &mut dyn ScalingPolicy) -> Score {
    let mut pool = Pool::new(scenario, jobs);
    let period = policy.period_ms().max(1);
    // A policy is first asked one period in, when the pool has seen some traffic.
    let mut next_tick = period;
    let mut next_job = 0usize;
    loop {
        let event_at = pool.events.peek().map(|Reverse((at, _))| *at);
        let arrival_at = jobs.get(next_job).map(|job| job.arrival_ms);
        let now = [event_at, arrival_at, Some(next_tick)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_tick);
        if now > scenario.duration_ms {
            pool.advance(scenario.duration_ms);
            break;
        }
        pool.advance(now);
        if event_at == Some(now) {
            if let Some(Reverse((_, event))) = pool.events.pop() {
                pool.handle(now, event);
            }
        } else if arrival_at == Some(now) {
            pool.arrive(now, next_job, policy);
            next_job += 1;
        } else {
            pool.decide(now, policy);
            next_tick += period;
        }
    }
    pool.score(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::{RunTimes, SimPool, Traffic};

    /// A policy that always wants the same count.
    struct Fixed(u32);

    impl ScalingPolicy for Fixed {
        fn name(&self) -> &'static str {
            "fixed"
        }
        fn period_ms(&self) -> u64 {
            1_000
        }
        fn reacts_to_first_job(&self) -> bool {
            false
        }
        fn desired(&mut self, _now_ms: u64, _observation: &PoolObservation) -> u32 {
            self.0
        }
    }

    fn tiny() -> Scenario {
        Scenario {
            name: "tiny",
            about: "ten jobs of 1 s at once",
            duration_ms: 60_000,
            slo_wait_ms: 1_500,
            pool: SimPool {
                slots: 2,
                min: 1,
                max: 4,
                target_utilization: 1.0,
                cold_start_ms: 5_000,
                initial_executors: 1,
                scale_to_zero: false,
            },
            traffic: vec![Traffic::Batch {
                at_ms: 0,
                jobs: 10,
                spread_ms: 0,
            }],
            run_times: RunTimes::Exponential { mean_ms: 1_000.0 },
            seed: 9,
        }
    }

    #[test]
    fn a_fixed_pool_runs_every_job_and_pays_for_its_executors() {
        let scenario = tiny();
        let jobs: Vec<SimJob> = (0..10)
            .map(|_| SimJob {
                arrival_ms: 0,
                run_ms: 1_000,
            })
            .collect();
        let score = simulate(&scenario, &jobs, &mut Fixed(1));
        // Two slots, ten jobs of 1 s: waits 0,0,1,1,2,2,3,3,4,4 s; six over 1.5 s.
        assert_eq!(score.slo_misses, 6);
        assert_eq!(score.p95_wait_ms, 4_000);
        assert_eq!(score.executor_seconds, 60.0);
        assert_eq!(score.flaps, 0);
        assert_eq!(score.executors_started, 0);
    }

    #[test]
    fn new_executors_take_work_after_their_cold_start() {
        let scenario = tiny();
        let jobs: Vec<SimJob> = (0..10)
            .map(|_| SimJob {
                arrival_ms: 0,
                run_ms: 10_000,
            })
            .collect();
        let score = simulate(&scenario, &jobs, &mut Fixed(4));
        assert_eq!(score.executors_started, 3);
        assert_eq!(score.peak_executors, 4);
        // Two jobs start at once, six after 4–6 s of cold start, two after 10 s.
        assert_eq!(score.slo_misses, 8);
    }

    #[test]
    fn the_simulation_is_deterministic() {
        let scenario = Scenario::bursty();
        let jobs = scenario.jobs();
        let settings = marie_decide::autoscale::AutoscaleSettings {
            min: 1,
            max: 30,
            ..Default::default()
        };
        let first = simulate(
            &scenario,
            &jobs,
            &mut AutoscalePolicy::new(settings.clone()),
        );
        let second = simulate(&scenario, &jobs, &mut AutoscalePolicy::new(settings));
        assert_eq!(first, second);
    }
}
