//! The state machine of queues, slots and leases.
//!
//! Every method takes the current time (`now_ms`, monotonic milliseconds) and returns
//! the [`Action`]s the caller must carry out: start or stop a run on an executor, and
//! persist a re-queue or a terminal state. The scheduler itself never waits, sends or
//! writes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use marie_protocol::messages::{QueuedJob, RunRef, RunningJob};
use marie_protocol::{
    CapacityReport, ExecutorLoad, HandlerErrorKind, JobId, JobState, Outcome, PoolCapacity,
    PoolLoad, PoolState, TraceContext,
};

use serde::{Deserialize, Serialize};

use crate::autoscale::RunTime;

use super::{PlacementCandidate, PoolQueue, RateMeter, backoff_ms, choose_executor};

mod adoption;

/// Timing rules of leases, heartbeats and retries: the `[scheduler]` section of the
/// configuration, read as it is. The scheduler applies the lease, timeout and backoff
/// rules; `tick_ms` paces the CapacityManager that calls it with the time, and
/// `heartbeat_ms` the executors whose heartbeats renew the leases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// How often the CapacityManager applies time (expiry, timeouts, backoff).
    pub tick_ms: u64,
    /// How often executors heartbeat.
    pub heartbeat_ms: u64,
    /// A lease not renewed by a heartbeat for this long expires and its job re-queues.
    pub lease_ttl_ms: u64,
    /// An executor silent for this long is lost; its jobs re-queue.
    pub executor_timeout_ms: u64,
    /// Wait before the first retry; doubles with each further attempt.
    pub backoff_base_ms: u64,
    /// Longest wait between attempts.
    pub backoff_max_ms: u64,
    /// Pause between two reconcile sweeps, which queue any job the store holds as
    /// queued that the CapacityManager was not told of (see [`super::Intake`]).
    pub sweep_ms: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            tick_ms: 100,
            heartbeat_ms: 1000,
            lease_ttl_ms: 10_000,
            executor_timeout_ms: 10_000,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            sweep_ms: 5_000,
        }
    }
}

/// A pool known from configuration, with the slots it should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSetup {
    /// The pool's name.
    pub name: String,
    /// Slots wanted (executors × slots each), shown as `target`.
    pub target_slots: u64,
}

/// Something the caller must do because the scheduler changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Lease the job to the executor for this run (and persist that it runs).
    Start {
        /// The executor.
        executor: String,
        /// The run.
        run: RunRef,
        /// How long the job waited in the queue before this run, in milliseconds.
        waited_ms: u64,
    },
    /// Tell the executor to abandon this run (cancelled, timed out, or no longer its).
    Stop {
        /// The executor.
        executor: String,
        /// The run.
        run: RunRef,
    },
    /// Persist that the job waits for another attempt.
    Requeued {
        /// The job.
        id: JobId,
        /// Runs started so far.
        attempts_done: u32,
        /// Why the last run ended without a result.
        error: String,
    },
    /// Persist the job's terminal state and tell waiters. Emitted once per job.
    Finished {
        /// The job.
        id: JobId,
        /// Its pool.
        pool: String,
        /// How long its last run took, in milliseconds, if it ran.
        ran_ms: Option<u64>,
        /// Its trace context.
        trace: TraceContext,
        /// The terminal state.
        state: JobState,
        /// Why it did not succeed.
        error: Option<String>,
        /// Its output, when it succeeded.
        output: Option<Vec<u8>>,
    },
}

#[derive(Debug)]
enum Phase {
    /// In its pool's queue.
    Ready,
    /// Waiting for its next attempt.
    Backoff { until_ms: u64 },
    /// Leased to an executor.
    Running(Lease),
    /// Its run just ended; the caller of `end_run` decides what comes next.
    Settling,
}

#[derive(Debug)]
struct Lease {
    executor: String,
    attempt: u32,
    deadline_ms: u64,
    started_ms: u64,
}

#[derive(Debug)]
struct LiveJob {
    job: QueuedJob,
    seq: u64,
    phase: Phase,
    /// When it last became ready to run.
    ready_since_ms: u64,
    /// How long its last run took.
    last_run_ms: Option<u64>,
}

#[derive(Debug)]
struct ExecutorEntry {
    pool: String,
    slots: u32,
    running: HashSet<JobId>,
    draining: bool,
    last_seen_ms: u64,
}

#[derive(Debug, Default)]
struct PoolEntry {
    queue: PoolQueue,
    target_slots: u64,
    /// Live jobs not running (ready or backing off).
    waiting: u64,
    running: u64,
    finished: RateMeter,
    /// Jobs queued for a first attempt, ever.
    arrived_total: u64,
    /// Mean run time of finished runs, weighted by how recently they ended.
    run_time: RunTime,
}

/// Queues, executors and leases of every pool.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    jobs: HashMap<JobId, LiveJob>,
    executors: BTreeMap<String, ExecutorEntry>,
    pools: BTreeMap<String, PoolEntry>,
    backoff: BTreeSet<(u64, JobId)>,
    expiry: BTreeSet<(u64, JobId)>,
    dirty: BTreeSet<String>,
    next_seq: u64,
    /// Runs found in the store at start that no executor has reported yet.
    unconfirmed: HashMap<JobId, RunningJob>,
    /// When the unconfirmed runs left re-queue.
    adopt_until_ms: u64,
}

impl Scheduler {
    /// A scheduler with the configured pools and no jobs or executors yet.
    pub fn new(config: SchedulerConfig, pools: &[PoolSetup]) -> Self {
        let pools = pools
            .iter()
            .map(|p| {
                let entry = PoolEntry {
                    target_slots: p.target_slots,
                    ..PoolEntry::default()
                };
                (p.name.clone(), entry)
            })
            .collect();
        Scheduler {
            config,
            jobs: HashMap::new(),
            executors: BTreeMap::new(),
            pools,
            backoff: BTreeSet::new(),
            expiry: BTreeSet::new(),
            dirty: BTreeSet::new(),
            next_seq: 0,
            unconfirmed: HashMap::new(),
            adopt_until_ms: 0,
        }
    }

    /// The live job `id` (queued, backing off or running), with its payload.
    pub fn job(&self, id: &JobId) -> Option<&QueuedJob> {
        self.jobs.get(id).map(|j| &j.job)
    }

    /// Number of live jobs.
    pub fn live_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Sets the slots a pool should have (the `target` of the capacity report).
    pub fn set_target(&mut self, pool: &str, target_slots: u64) {
        self.pools.entry(pool.to_owned()).or_default().target_slots = target_slots;
    }

    /// Queues a durable job. A job already live (or whose run from before the start is
    /// unconfirmed) is left alone, so a duplicate enqueue (a restart replaying the
    /// store) cannot run it twice.
    pub fn enqueue(&mut self, job: QueuedJob, now_ms: u64) -> Vec<Action> {
        if self.jobs.contains_key(&job.id) || self.unconfirmed.contains_key(&job.id) {
            return Vec::new();
        }
        if job.attempts_done >= job.max_attempts {
            return vec![Action::Finished {
                id: job.id,
                pool: job.spec.pool,
                ran_ms: None,
                trace: job.spec.trace,
                state: JobState::Failed,
                error: Some(format!(
                    "gave up after {} attempts; the last run was lost",
                    job.attempts_done
                )),
                output: None,
            }];
        }
        self.insert_ready(job, now_ms);
        Vec::new()
    }

    /// Puts a job in its pool's queue, whatever attempts it has left.
    fn insert_ready(&mut self, job: QueuedJob, now_ms: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let (Some(after), 0) = (job.spec.expire_after_ms, job.attempts_done) {
            self.expiry.insert((now_ms.saturating_add(after), job.id));
        }
        let pool = self.pools.entry(job.spec.pool.clone()).or_default();
        pool.queue.push(job.spec.priority, seq, job.id);
        pool.waiting += 1;
        if job.attempts_done == 0 {
            pool.arrived_total += 1;
        }
        self.dirty.insert(job.spec.pool.clone());
        self.jobs.insert(
            job.id,
            LiveJob {
                job,
                seq,
                phase: Phase::Ready,
                ready_since_ms: now_ms,
                last_run_ms: None,
            },
        );
    }

    /// An executor offers `slots` to `pool`. If an executor of that name was already
    /// known (it restarted), its old runs are lost and re-queue first.
    pub fn register(&mut self, name: &str, pool: &str, slots: u32, now_ms: u64) -> Vec<Action> {
        let actions = self.executor_lost(name, "the executor restarted", now_ms);
        self.executors.insert(
            name.to_owned(),
            ExecutorEntry {
                pool: pool.to_owned(),
                slots,
                running: HashSet::new(),
                draining: false,
                last_seen_ms: now_ms,
            },
        );
        self.pools.entry(pool.to_owned()).or_default();
        self.dirty.insert(pool.to_owned());
        actions
    }

    /// The pool of a registered executor.
    pub fn executor_pool(&self, name: &str) -> Option<&str> {
        self.executors.get(name).map(|e| e.pool.as_str())
    }

    /// A heartbeat: the executor is alive and runs `running`. Its matching leases are
    /// extended, unconfirmed runs it reports are adopted ([`Scheduler::adopt`]); runs it
    /// holds that are no longer its (cancelled, re-leased) are stopped. Returns `None`
    /// for an unknown executor, which must register again.
    pub fn heartbeat(
        &mut self,
        executor: &str,
        running: &[RunRef],
        now_ms: u64,
    ) -> Option<Vec<Action>> {
        let entry = self.executors.get_mut(executor)?;
        entry.last_seen_ms = now_ms;
        let mut actions = Vec::new();
        let ttl_ms = self.config.lease_ttl_ms;
        for run in running {
            if let Some(Phase::Running(lease)) = self.jobs.get_mut(&run.job).map(|j| &mut j.phase)
                && lease.executor == executor
                && lease.attempt == run.attempt
            {
                lease.deadline_ms = now_ms.saturating_add(ttl_ms);
            } else if !self.adopt_run(executor, *run, now_ms) {
                actions.push(Action::Stop {
                    executor: executor.to_owned(),
                    run: *run,
                });
            }
        }
        Some(actions)
    }

    /// A run ended. Accepted only from the executor holding the current lease of that
    /// attempt; anything else is a late answer and changes nothing.
    pub fn complete(
        &mut self,
        executor: &str,
        run: RunRef,
        outcome: Outcome,
        now_ms: u64,
    ) -> Vec<Action> {
        if !self.holds_lease(executor, run) {
            return Vec::new();
        }
        self.end_run(run.job, now_ms);
        match outcome {
            Outcome::Succeeded(output) => {
                self.finish(run.job, JobState::Succeeded, None, Some(output))
            }
            Outcome::Failed(err) if err.kind == HandlerErrorKind::InvalidInput => {
                self.finish(run.job, JobState::Failed, Some(err.message), None)
            }
            Outcome::Failed(err) => self.retry_or_fail(run.job, err.message, now_ms),
        }
    }

    /// Cancels a live job: a queued one ends at once, a running one is stopped on its
    /// executor and ends. `None` if the job is not live here.
    pub fn cancel(&mut self, id: JobId, now_ms: u64) -> Option<Vec<Action>> {
        let mut actions = Vec::new();
        if let Some(run) = self.unconfirmed.remove(&id) {
            actions.push(Action::Stop {
                executor: run.executor,
                run: RunRef {
                    job: id,
                    attempt: run.job.attempts_done,
                },
            });
            self.insert_ready(run.job, now_ms);
        } else if let Some(Phase::Running(lease)) = self.jobs.get(&id).map(|j| &j.phase) {
            actions.push(Action::Stop {
                executor: lease.executor.clone(),
                run: RunRef {
                    job: id,
                    attempt: lease.attempt,
                },
            });
            self.end_run(id, now_ms);
        } else if !self.jobs.contains_key(&id) {
            return None;
        }
        actions.extend(self.finish(
            id,
            JobState::Cancelled,
            Some("cancelled by a client".into()),
            None,
        ));
        Some(actions)
    }

    /// Stops leasing to `executor`; its running jobs go on. False if unknown.
    pub fn drain(&mut self, executor: &str) -> bool {
        match self.executors.get_mut(executor) {
            Some(e) => {
                e.draining = true;
                true
            }
            None => false,
        }
    }

    /// Jobs the executor still runs (0 once a drain is complete).
    pub fn running_on(&self, executor: &str) -> Option<usize> {
        self.executors.get(executor).map(|e| e.running.len())
    }

    /// The executor is gone (stopped, crashed, cut off): its runs re-queue with the
    /// attempt counted, or fail if it was their last.
    pub fn executor_lost(&mut self, name: &str, reason: &str, now_ms: u64) -> Vec<Action> {
        let Some(entry) = self.executors.remove(name) else {
            return Vec::new();
        };
        self.dirty.insert(entry.pool.clone());
        let mut lost: Vec<JobId> = entry.running.into_iter().collect();
        lost.sort();
        let mut actions = Vec::new();
        for id in lost {
            self.end_run(id, now_ms);
            actions.extend(self.retry_or_fail(
                id,
                format!("executor {name} was lost: {reason}"),
                now_ms,
            ));
        }
        actions
    }

    /// Applies the passage of time: silent executors are lost, unrenewed leases and
    /// overlong runs end as failed attempts, backoffs end, queued jobs past their
    /// expiry end `expired`. Then places what it can.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let timeout = self.config.executor_timeout_ms;
        let silent: Vec<String> = self
            .executors
            .iter()
            .filter(|(_, e)| now_ms.saturating_sub(e.last_seen_ms) > timeout)
            .map(|(name, _)| name.clone())
            .collect();
        for name in silent {
            let reason = format!("no heartbeat for {timeout} ms");
            actions.extend(self.executor_lost(&name, &reason, now_ms));
        }
        actions.extend(self.end_overdue_runs(now_ms));
        actions.extend(self.requeue_unconfirmed(now_ms));
        while let Some(&(until, id)) = self.backoff.first() {
            if until > now_ms {
                break;
            }
            self.backoff.pop_first();
            self.make_ready(id, now_ms);
        }
        while let Some(&(at, id)) = self.expiry.first() {
            if at > now_ms {
                break;
            }
            self.expiry.pop_first();
            if matches!(self.jobs.get(&id), Some(j) if matches!(j.phase, Phase::Ready) && j.job.attempts_done == 0)
            {
                let error = Some("waited in the queue past its expire_after_ms".into());
                actions.extend(self.finish(id, JobState::Expired, error, None));
            }
        }
        for pool in self.pools.values_mut() {
            pool.finished.roll(now_ms);
        }
        actions.extend(self.place(now_ms));
        actions
    }

    /// Leases queued jobs to executors with free slots, in pools that changed since the
    /// last call. Never more leases on an executor than its slots.
    pub fn place(&mut self, now_ms: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        for pool_name in std::mem::take(&mut self.dirty) {
            while self
                .pools
                .get(&pool_name)
                .is_some_and(|p| !p.queue.is_empty())
            {
                let loads = self
                    .executors
                    .iter()
                    .filter(|(_, e)| e.pool == pool_name)
                    .map(|(name, e)| PlacementCandidate {
                        name,
                        slots: e.slots,
                        used: e.running.len() as u32,
                        draining: e.draining,
                    });
                let Some(executor) = choose_executor(loads).map(str::to_owned) else {
                    break;
                };
                let Some(id) = self.pop_ready(&pool_name) else {
                    break;
                };
                actions.push(self.lease(id, executor, now_ms));
            }
        }
        actions
    }

    /// The capacity report of every pool.
    pub fn capacity(&self) -> CapacityReport {
        let slots = self
            .pools
            .iter()
            .map(|(name, pool)| {
                let mut entry = PoolCapacity {
                    name: name.clone(),
                    target: pool.target_slots,
                    ..PoolCapacity::default()
                };
                for (exec_name, e) in self.executors.iter().filter(|(_, e)| &e.pool == name) {
                    let used = e.running.len() as u64;
                    entry.capacity += u64::from(e.slots);
                    entry.used += used;
                    if !e.draining {
                        entry.available += u64::from(e.slots).saturating_sub(used);
                    }
                    entry.holders.push(exec_name.clone());
                }
                entry
            })
            .collect();
        CapacityReport::from_pools(slots)
    }

    /// Queue pressure of every pool.
    pub fn loads(&self) -> Vec<PoolLoad> {
        self.pools
            .iter()
            .map(|(name, p)| PoolLoad {
                name: name.clone(),
                pending: p.waiting,
                running: p.running,
                finish_rate: p.finished.per_second(),
            })
            .collect()
    }

    /// What the autoscaler reads about every pool.
    pub fn pool_states(&self) -> Vec<PoolState> {
        self.pools
            .iter()
            .map(|(name, p)| PoolState {
                name: name.clone(),
                queued: p.waiting,
                running: p.running,
                arrived_total: p.arrived_total,
                mean_run_ms: p.run_time.mean_ms(),
                executors: self
                    .executors
                    .iter()
                    .filter(|(_, e)| &e.pool == name)
                    .map(|(executor, e)| ExecutorLoad {
                        name: executor.clone(),
                        slots: e.slots,
                        used: e.running.len() as u32,
                        draining: e.draining,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Jobs of `pool` waiting for a slot.
    pub fn pending(&self, pool: &str) -> u64 {
        self.pools.get(pool).map_or(0, |p| p.waiting)
    }

    /// Whether `pool` has an executor that takes work.
    pub fn has_ready_executor(&self, pool: &str) -> bool {
        self.executors
            .values()
            .any(|e| e.pool == pool && !e.draining)
    }

    /// Checks the invariants every operation keeps; panics with the broken one.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut leased = HashSet::new();
        for (name, e) in &self.executors {
            assert!(
                e.running.len() <= e.slots as usize,
                "{name} runs more jobs than its slots"
            );
            for id in &e.running {
                assert!(leased.insert(*id), "job {id} is leased to two executors");
                match self.jobs.get(id).map(|j| &j.phase) {
                    Some(Phase::Running(lease)) => assert_eq!(&lease.executor, name),
                    other => panic!("{name} holds {id}, which is {other:?}"),
                }
            }
        }
        for (id, job) in &self.jobs {
            assert!(
                !matches!(job.phase, Phase::Settling),
                "job {id} left settling"
            );
            if let Phase::Running(lease) = &job.phase {
                assert!(
                    leased.contains(id),
                    "job {id} runs on {} without a slot",
                    lease.executor
                );
                assert_eq!(lease.attempt, job.job.attempts_done);
            }
        }
        for (name, pool) in &self.pools {
            let live: Vec<&LiveJob> = self
                .jobs
                .values()
                .filter(|j| &j.job.spec.pool == name)
                .collect();
            let running = live
                .iter()
                .filter(|j| matches!(j.phase, Phase::Running(_)))
                .count() as u64;
            assert_eq!(pool.running, running, "running count of {name}");
            assert_eq!(
                pool.waiting,
                live.len() as u64 - running,
                "waiting count of {name}"
            );
        }
        for p in self.capacity().slots {
            assert!(
                p.used <= p.capacity,
                "pool {} uses more than its capacity",
                p.name
            );
            assert!(p.available <= p.capacity - p.used);
        }
    }

    fn holds_lease(&self, executor: &str, run: RunRef) -> bool {
        matches!(
            self.jobs.get(&run.job).map(|j| &j.phase),
            Some(Phase::Running(lease)) if lease.executor == executor && lease.attempt == run.attempt
        )
    }

    fn pop_ready(&mut self, pool: &str) -> Option<JobId> {
        let entry = self.pools.get_mut(pool)?;
        while let Some(id) = entry.queue.pop() {
            if matches!(self.jobs.get(&id), Some(j) if matches!(j.phase, Phase::Ready)) {
                return Some(id);
            }
        }
        None
    }

    fn lease(&mut self, id: JobId, executor: String, now_ms: u64) -> Action {
        let job = self.jobs.get_mut(&id).expect("popped jobs are live");
        job.job.attempts_done += 1;
        let attempt = job.job.attempts_done;
        let waited_ms = now_ms.saturating_sub(job.ready_since_ms);
        job.phase = Phase::Running(Lease {
            executor: executor.clone(),
            attempt,
            deadline_ms: now_ms.saturating_add(self.config.lease_ttl_ms),
            started_ms: now_ms,
        });
        let pool = self
            .pools
            .get_mut(&job.job.spec.pool)
            .expect("pools of live jobs exist");
        pool.waiting -= 1;
        pool.running += 1;
        self.executors
            .get_mut(&executor)
            .expect("placement picks registered executors")
            .running
            .insert(id);
        Action::Start {
            executor,
            run: RunRef { job: id, attempt },
            waited_ms,
        }
    }

    /// Frees the slot of a running job; the job stays live with no phase change yet.
    fn end_run(&mut self, id: JobId, now_ms: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let Phase::Running(lease) = std::mem::replace(&mut job.phase, Phase::Settling) else {
            return;
        };
        let ran_ms = now_ms.saturating_sub(lease.started_ms);
        job.last_run_ms = Some(ran_ms);
        let pool = self
            .pools
            .get_mut(&job.job.spec.pool)
            .expect("pools of live jobs exist");
        pool.running -= 1;
        pool.waiting += 1;
        pool.run_time.record(now_ms, ran_ms);
        if let Some(e) = self.executors.get_mut(&lease.executor) {
            e.running.remove(&id);
            self.dirty.insert(e.pool.clone());
        }
    }

    fn retry_or_fail(&mut self, id: JobId, error: String, now_ms: u64) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Vec::new();
        };
        let done = job.job.attempts_done;
        if done >= job.job.max_attempts {
            let error = format!("gave up after {done} attempts; last error: {error}");
            return self.finish(id, JobState::Failed, Some(error), None);
        }
        let until_ms = now_ms.saturating_add(backoff_ms(
            done,
            self.config.backoff_base_ms,
            self.config.backoff_max_ms,
        ));
        job.phase = Phase::Backoff { until_ms };
        self.backoff.insert((until_ms, id));
        vec![Action::Requeued {
            id,
            attempts_done: done,
            error,
        }]
    }

    fn make_ready(&mut self, id: JobId, now_ms: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if !matches!(job.phase, Phase::Backoff { .. }) {
            return;
        }
        job.phase = Phase::Ready;
        job.ready_since_ms = now_ms;
        let pool = &job.job.spec.pool;
        self.pools
            .get_mut(pool)
            .expect("pools of live jobs exist")
            .queue
            .push(job.job.spec.priority, job.seq, id);
        self.dirty.insert(pool.clone());
    }

    fn end_overdue_runs(&mut self, now_ms: u64) -> Vec<Action> {
        let mut overdue: Vec<(JobId, String, u32, String)> = self
            .jobs
            .iter()
            .filter_map(|(id, j)| match &j.phase {
                Phase::Running(lease) if lease.deadline_ms < now_ms => Some((
                    *id,
                    lease.executor.clone(),
                    lease.attempt,
                    format!(
                        "lease expired: executor {} stopped renewing it",
                        lease.executor
                    ),
                )),
                Phase::Running(lease)
                    if now_ms.saturating_sub(lease.started_ms) > j.job.timeout_ms =>
                {
                    Some((
                        *id,
                        lease.executor.clone(),
                        lease.attempt,
                        format!("timed out after {} ms", j.job.timeout_ms),
                    ))
                }
                _ => None,
            })
            .collect();
        overdue.sort_by_key(|(id, ..)| *id);
        let mut actions = Vec::new();
        for (id, executor, attempt, reason) in overdue {
            actions.push(Action::Stop {
                executor,
                run: RunRef { job: id, attempt },
            });
            self.end_run(id, now_ms);
            actions.extend(self.retry_or_fail(id, reason, now_ms));
        }
        actions
    }

    fn finish(
        &mut self,
        id: JobId,
        state: JobState,
        error: Option<String>,
        output: Option<Vec<u8>>,
    ) -> Vec<Action> {
        let Some(job) = self.jobs.remove(&id) else {
            return Vec::new();
        };
        let pool = self
            .pools
            .get_mut(&job.job.spec.pool)
            .expect("pools of live jobs exist");
        match job.phase {
            Phase::Running(_) => pool.running -= 1,
            Phase::Ready | Phase::Backoff { .. } | Phase::Settling => pool.waiting -= 1,
        }
        if let Phase::Backoff { until_ms } = job.phase {
            self.backoff.remove(&(until_ms, id));
        }
        pool.finished.record(1);
        vec![Action::Finished {
            id,
            pool: job.job.spec.pool,
            ran_ms: job.last_run_ms,
            trace: job.job.spec.trace,
            state,
            error,
            output,
        }]
    }
}
