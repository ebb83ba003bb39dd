//! A discrete-event simulation of one pool driven by a scaling policy, in simulated
//! milliseconds, through the code Marie ships: the CapacityManager's [`Scheduler`]
//! queues the jobs and places them (the executor with the most free slots), and the
//! Supervisor's [`PoolBook`] measures the cold start, fills the policy's observation
//! and plans the change — start, cancel a start, drain (starting executors go first,
//! then idle ones, then the least busy; draining executors are never woken) — which
//! the [`SimBackend`] carries out. Scored on SLO misses (queue wait over the
//! scenario's target), executor-seconds (starting, ready and draining executors all
//! cost) and flaps (direction changes of the policy's desired count).
//!
//! Every policy gets the same jobs, the same scheduler, bookkeeping and backend; only
//! who decides the count, and how often, differs. Executors never fail here, so the
//! scheduler's tick (lease expiry, run timeouts, backoff) has nothing to do and is not
//! called.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use marie_decide::autoscale::{
    AutoscalePolicy, PoolBook, PoolObservation, SUPERVISOR_TICK_MS, should_wake,
};
use marie_decide::scheduling::{Action, PoolSetup, Scheduler, SchedulerConfig};
use marie_protocol::messages::{QueuedJob, RunRef};
use marie_protocol::{JobId, JobSpec, Outcome, PoolState};

use crate::backend::SimBackend;
use crate::hpa::HpaPolicy;
use crate::milestones::{MilestoneLog, Milestones};
use crate::ray_serve::RayServePolicy;
use crate::scenarios::{Scenario, SimJob};

/// The simulated pool's name.
const POOL: &str = "sim";

/// A policy the simulator can drive.
pub trait ScalingPolicy {
    /// Its name in the table.
    fn name(&self) -> &'static str;
    /// How often it is asked, ms.
    fn period_ms(&self) -> u64;
    /// Whether it is also asked whenever the CapacityManager wakes the Supervisor
    /// (jobs queued that could not start: `marie_decide::autoscale::should_wake`).
    fn woken_by_the_capacity_manager(&self) -> bool;
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

    fn woken_by_the_capacity_manager(&self) -> bool {
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

    fn woken_by_the_capacity_manager(&self) -> bool {
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

    fn woken_by_the_capacity_manager(&self) -> bool {
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

/// What happens next in the simulation, besides arrivals and the policy's ticks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A run (job, attempt) ends on an executor.
    Done(String, JobId, u32),
    /// A started executor's cold start is over.
    Ready(String),
}

/// The simulated pool: the CapacityManager's scheduler, the Supervisor's bookkeeping
/// and the backend, with the scores kept as it runs.
struct Pool<'a> {
    scenario: &'a Scenario,
    jobs: &'a [SimJob],
    scheduler: Scheduler,
    book: PoolBook,
    backend: SimBackend,
    events: BinaryHeap<Reverse<(u64, Event)>>,
    last_wake_ms: Option<u64>,
    clock_ms: u64,
    executor_ms: u128,
    started_jobs: Vec<bool>,
    waits: Vec<u64>,
    slo_misses: usize,
    last_desired: Option<u32>,
    last_direction: i8,
    flaps: u32,
    /// The executors ready when the run began.
    present: BTreeSet<String>,
    milestones: MilestoneLog,
}

/// The id of the job at `index` of the scenario's list.
fn job_id(index: usize) -> JobId {
    JobId(uuid::Uuid::from_u128(index as u128))
}

/// The index of the job with this id.
fn job_index(id: JobId) -> usize {
    id.0.as_u128() as usize
}

impl<'a> Pool<'a> {
    fn new(scenario: &'a Scenario, jobs: &'a [SimJob]) -> Self {
        let setup = PoolSetup {
            name: POOL.to_owned(),
            target_slots: 0,
        };
        let mut pool = Pool {
            scenario,
            jobs,
            scheduler: Scheduler::new(SchedulerConfig::default(), &[setup]),
            book: PoolBook::new(scenario.pool.slots, scenario.pool.cold_start_guess_ms, 0),
            backend: SimBackend::new(scenario.pool.cold_start_ms, scenario.seed ^ 0xC01D_57A7),
            events: BinaryHeap::new(),
            last_wake_ms: None,
            clock_ms: 0,
            executor_ms: 0,
            started_jobs: vec![false; jobs.len()],
            waits: Vec::with_capacity(jobs.len()),
            slo_misses: 0,
            last_desired: None,
            last_direction: 0,
            flaps: 0,
            present: BTreeSet::new(),
            milestones: MilestoneLog::new(
                jobs.first().map_or(0, |job| job.arrival_ms),
                jobs.len(),
                scenario.pool.max,
            ),
        };
        for _ in 0..scenario.pool.initial_executors {
            let executor = pool.backend.present();
            pool.present.insert(executor.clone());
            pool.register(&executor, 0);
        }
        pool
    }

    /// Moves the clock, paying for every live executor.
    fn advance(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.clock_ms);
        self.executor_ms += u128::from(elapsed) * self.backend.alive() as u128;
        self.clock_ms = self.clock_ms.max(now_ms);
    }

    /// What the CapacityManager tells the Supervisor about the pool.
    fn pool_state(&self) -> PoolState {
        self.scheduler
            .pool_states()
            .into_iter()
            .find(|p| p.name == POOL)
            .unwrap_or_default()
    }

    /// One Supervisor step, as the actor takes it: read the pool, ask the policy,
    /// carry out the book's plan.
    fn supervise(&mut self, now_ms: u64, policy: &mut dyn ScalingPolicy) {
        let state = self.pool_state();
        for executor in self.book.observe(&state, now_ms).drained {
            self.backend.release(&executor);
        }
        let observation = self.book.observation(&state, now_ms);
        let desired = policy.desired(now_ms, &observation);
        self.milestones
            .decided(now_ms, observation.executors.supply(), desired);
        self.count_flap(desired);
        let plan = self.book.plan(desired, &state, now_ms);
        for _ in 0..plan.start {
            let (executor, ready_at) = self.backend.start(now_ms);
            self.book.started(executor.clone(), now_ms);
            self.events
                .push(Reverse((ready_at, Event::Ready(executor))));
        }
        for executor in plan.cancel {
            self.backend.release(&executor);
        }
        for executor in plan.drain {
            self.scheduler.drain(&executor);
            self.backend.drain(&executor);
            self.stop_if_drained(&executor, now_ms);
        }
        self.scheduler.set_target(POOL, plan.target_slots);
    }

    fn count_flap(&mut self, desired: u32) {
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
    }

    /// The executor registers with the CapacityManager and takes queued jobs.
    fn register(&mut self, executor: &str, now_ms: u64) {
        let slots = self.scenario.pool.slots;
        let mut actions = self.scheduler.register(executor, POOL, slots, now_ms);
        actions.extend(self.scheduler.place(now_ms));
        self.carry_out(actions, now_ms);
    }

    /// A draining executor with no run left stops and leaves the pool.
    fn stop_if_drained(&mut self, executor: &str, now_ms: u64) {
        if self.backend.is_draining(executor) && self.scheduler.running_on(executor) == Some(0) {
            self.backend.stop(executor);
            let actions = self.scheduler.executor_lost(executor, "it stopped", now_ms);
            self.carry_out(actions, now_ms);
        }
    }

    /// Runs the jobs the scheduler leased; finished jobs need nothing more (no run
    /// fails or is stopped here).
    fn carry_out(&mut self, actions: Vec<Action>, now_ms: u64) {
        for action in actions {
            if let Action::Start {
                executor,
                run,
                waited_ms,
            } = action
            {
                let index = job_index(run.job);
                self.started_jobs[index] = true;
                if !self.present.contains(&executor) {
                    self.milestones.new_executor_worked(now_ms);
                }
                self.waits.push(waited_ms);
                if waited_ms > self.scenario.slo_wait_ms {
                    self.slo_misses += 1;
                }
                let ends = now_ms + self.jobs[index].run_ms;
                let done = Event::Done(executor, run.job, run.attempt);
                self.events.push(Reverse((ends, done)));
            }
        }
    }

    fn handle(&mut self, now_ms: u64, event: Event) {
        match event {
            Event::Ready(executor) => {
                if self.backend.ready(&executor) {
                    self.register(&executor, now_ms);
                }
            }
            Event::Done(executor, job, attempt) => {
                let run = RunRef { job, attempt };
                let outcome = Outcome::Succeeded(Vec::new());
                self.milestones.job_done(now_ms);
                let mut actions = self.scheduler.complete(&executor, run, outcome, now_ms);
                actions.extend(self.scheduler.place(now_ms));
                self.carry_out(actions, now_ms);
                self.stop_if_drained(&executor, now_ms);
            }
        }
    }

    fn arrive(&mut self, now_ms: u64, index: usize, policy: &mut dyn ScalingPolicy) {
        let job = QueuedJob {
            id: job_id(index),
            spec: JobSpec::new(POOL, "sim", Vec::new()),
            attempts_done: 0,
            max_attempts: 1,
            timeout_ms: u64::MAX,
            created_at_ms: now_ms,
        };
        let mut actions = self.scheduler.enqueue(job, now_ms);
        actions.extend(self.scheduler.place(now_ms));
        self.carry_out(actions, now_ms);
        let since = self.last_wake_ms.map(|at| now_ms.saturating_sub(at));
        let ready = self.scheduler.has_ready_executor(POOL);
        if policy.woken_by_the_capacity_manager()
            && should_wake(ready, self.scheduler.pending(POOL), since)
        {
            self.last_wake_ms = Some(now_ms);
            self.supervise(now_ms, policy);
        }
    }

    fn score(mut self, policy: &dyn ScalingPolicy, arrived: usize) -> Score {
        let end = self.scenario.duration_ms;
        for (job, _) in self.jobs[..arrived]
            .iter()
            .zip(&self.started_jobs)
            .filter(|(_, started)| !**started)
        {
            let wait = end.saturating_sub(job.arrival_ms);
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
            peak_executors: self.backend.peak,
            executors_started: self.backend.started,
        }
    }
}

/// Runs `jobs` of `scenario` through `policy` and scores it.
pub fn simulate(scenario: &Scenario, jobs: &[SimJob], policy: &mut dyn ScalingPolicy) -> Score {
    run(scenario, jobs, policy).0
}

/// Runs `jobs` of `scenario` through `policy`: its score, and the milestones it
/// reached after the first job.
pub fn run(
    scenario: &Scenario,
    jobs: &[SimJob],
    policy: &mut dyn ScalingPolicy,
) -> (Score, Milestones) {
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
            pool.supervise(now, policy);
            next_tick += period;
        }
    }
    let milestones = pool.milestones.milestones();
    (pool.score(policy, next_job), milestones)
}

#[cfg(test)]
mod tests {
    use super::*;
    use marie_decide::autoscale::COLD_START_GUESS_MS;

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
        fn woken_by_the_capacity_manager(&self) -> bool {
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
                cold_start_guess_ms: COLD_START_GUESS_MS,
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
