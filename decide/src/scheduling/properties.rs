//! Property tests of the scheduler: random interleavings of submits, executors coming
//! and going, completions (current and stale), cancels, heartbeats and time.

use std::collections::{HashMap, HashSet};

use marie_protocol::messages::{QueuedJob, RunRef};
use marie_protocol::{HandlerError, JobId, JobSpec, JobState, Outcome};
use proptest::prelude::*;

use super::{Action, PoolSetup, Scheduler, SchedulerConfig};

const POOLS: [&str; 2] = ["extract", "ocr"];
const EXECUTORS: [&str; 4] = ["e0", "e1", "e2", "e3"];

#[derive(Clone, Debug)]
enum Op {
    Submit {
        pool: usize,
        priority: i32,
        max_attempts: u32,
        expire: bool,
    },
    Register {
        executor: usize,
        pool: usize,
        slots: u32,
    },
    Lost {
        executor: usize,
    },
    Drain {
        executor: usize,
    },
    Complete {
        pick: usize,
        outcome: u8,
    },
    StaleComplete {
        pick: usize,
        executor: usize,
        attempt_shift: u32,
    },
    Heartbeat {
        executor: usize,
    },
    Cancel {
        pick: usize,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, -2..3i32, 1..4u32, proptest::bool::weighted(0.1)).prop_map(
            |(pool, priority, max_attempts, expire)| Op::Submit { pool, priority, max_attempts, expire }
        ),
        1 => (0..4usize, 0..2usize, 1..4u32)
            .prop_map(|(executor, pool, slots)| Op::Register { executor, pool, slots }),
        1 => (0..4usize).prop_map(|executor| Op::Lost { executor }),
        1 => (0..4usize).prop_map(|executor| Op::Drain { executor }),
        4 => (any::<usize>(), 0..3u8).prop_map(|(pick, outcome)| Op::Complete { pick, outcome }),
        2 => (any::<usize>(), 0..4usize, 0..3u32)
            .prop_map(|(pick, executor, attempt_shift)| Op::StaleComplete { pick, executor, attempt_shift }),
        1 => (0..4usize).prop_map(|executor| Op::Heartbeat { executor }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        2 => (0..15_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn config() -> SchedulerConfig {
    SchedulerConfig {
        lease_ttl_ms: 5_000,
        executor_timeout_ms: 8_000,
        backoff_base_ms: 100,
        backoff_max_ms: 2_000,
        ..SchedulerConfig::default()
    }
}

/// What the test sees of the scheduler through its actions alone.
#[derive(Default)]
struct Observer {
    submitted: Vec<JobId>,
    leases: HashMap<JobId, (String, u32)>,
    finished: HashMap<JobId, JobState>,
}

impl Observer {
    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Start { executor, run, .. } => {
                    let before = self.leases.insert(run.job, (executor, run.attempt));
                    assert!(
                        before.is_none(),
                        "job {} leased while its lease {before:?} is live",
                        run.job
                    );
                    assert!(
                        !self.finished.contains_key(&run.job),
                        "a finished job was leased"
                    );
                }
                Action::Stop { run, .. } => {
                    if self
                        .leases
                        .get(&run.job)
                        .is_some_and(|(_, a)| *a == run.attempt)
                    {
                        self.leases.remove(&run.job);
                    }
                }
                Action::Requeued { id, .. } => {
                    self.leases.remove(&id);
                }
                Action::Finished { id, state, .. } => {
                    assert!(state.is_terminal());
                    assert!(
                        self.submitted.contains(&id),
                        "finished a job never submitted"
                    );
                    let before = self.finished.insert(id, state);
                    assert!(before.is_none(), "job {id} finished twice");
                    self.leases.remove(&id);
                }
            }
        }
    }

    fn pick_lease(&self, pick: usize) -> Option<(JobId, String, u32)> {
        let mut leases: Vec<_> = self.leases.iter().collect();
        leases.sort_by_key(|(id, _)| **id);
        leases
            .get(pick % leases.len().max(1))
            .map(|(id, (e, a))| (**id, e.clone(), *a))
    }
}

fn job(pool: &str, priority: i32, max_attempts: u32, expire: bool) -> QueuedJob {
    let mut spec = JobSpec::new(pool, "echo", b"x".to_vec());
    spec.priority = priority;
    spec.expire_after_ms = expire.then_some(3_000);
    QueuedJob {
        id: JobId::generate(),
        spec,
        attempts_done: 0,
        max_attempts,
        timeout_ms: 20_000,
        created_at_ms: 0,
    }
}

fn outcome(kind: u8) -> Outcome {
    match kind {
        0 => Outcome::Succeeded(b"ok".to_vec()),
        1 => Outcome::Failed(HandlerError::transient("flaky")),
        _ => Outcome::Failed(HandlerError::invalid_input("bad document")),
    }
}

fn run_ops(ops: &[Op]) -> (Scheduler, Observer, u64) {
    let pools: Vec<PoolSetup> = POOLS
        .iter()
        .map(|p| PoolSetup {
            name: (*p).into(),
            target_slots: 4,
        })
        .collect();
    let mut s = Scheduler::new(config(), &pools);
    let mut obs = Observer::default();
    let mut now = 0u64;
    for op in ops {
        let actions = match op.clone() {
            Op::Submit {
                pool,
                priority,
                max_attempts,
                expire,
            } => {
                let j = job(POOLS[pool], priority, max_attempts, expire);
                obs.submitted.push(j.id);
                let mut a = s.enqueue(j, now);
                a.extend(s.place(now));
                a
            }
            Op::Register {
                executor,
                pool,
                slots,
            } => {
                let mut a = s.register(EXECUTORS[executor], POOLS[pool], slots, now);
                a.extend(s.place(now));
                a
            }
            Op::Lost { executor } => {
                let mut a = s.executor_lost(EXECUTORS[executor], "killed", now);
                a.extend(s.place(now));
                a
            }
            Op::Drain { executor } => {
                s.drain(EXECUTORS[executor]);
                Vec::new()
            }
            Op::Complete {
                pick,
                outcome: kind,
            } => match obs.pick_lease(pick) {
                Some((id, executor, attempt)) => {
                    let mut a =
                        s.complete(&executor, RunRef { job: id, attempt }, outcome(kind), now);
                    a.extend(s.place(now));
                    a
                }
                None => Vec::new(),
            },
            Op::StaleComplete {
                pick,
                executor,
                attempt_shift,
            } => {
                let Some(&id) = obs.submitted.get(pick % obs.submitted.len().max(1)) else {
                    continue;
                };
                let current = obs.leases.get(&id).cloned();
                let attempt = current.as_ref().map_or(1, |(_, a)| *a) + attempt_shift;
                let name = EXECUTORS[executor];
                let is_current = current
                    .as_ref()
                    .is_some_and(|(e, a)| e == name && *a == attempt);
                if is_current {
                    Vec::new()
                } else {
                    let before = format!("{:?}", s.capacity());
                    let live = s.live_jobs();
                    let a = s.complete(name, RunRef { job: id, attempt }, outcome(0), now);
                    assert!(a.is_empty(), "a stale completion changed something: {a:?}");
                    assert_eq!(before, format!("{:?}", s.capacity()));
                    assert_eq!(live, s.live_jobs());
                    a
                }
            }
            Op::Heartbeat { executor } => {
                let name = EXECUTORS[executor];
                let running: Vec<RunRef> = obs
                    .leases
                    .iter()
                    .filter(|(_, (e, _))| e == name)
                    .map(|(id, (_, a))| RunRef {
                        job: *id,
                        attempt: *a,
                    })
                    .collect();
                s.heartbeat(name, &running, now).unwrap_or_default()
            }
            Op::Cancel { pick } => {
                let Some(&id) = obs.submitted.get(pick % obs.submitted.len().max(1)) else {
                    continue;
                };
                let was_live = s.job(&id).is_some();
                let a = s.cancel(id, now);
                assert_eq!(a.is_some(), was_live);
                a.unwrap_or_default()
            }
            Op::Advance { ms } => {
                now += ms;
                s.tick(now)
            }
        };
        obs.apply(actions);
        s.check_invariants();
    }
    (s, obs, now)
}

/// Brings every pool a healthy executor and completes every run until no job is live.
fn drive_to_the_end(s: &mut Scheduler, obs: &mut Observer, mut now: u64) {
    for (i, pool) in POOLS.iter().enumerate() {
        let actions = s.register(&format!("fresh{i}"), pool, 4, now);
        obs.apply(actions);
    }
    for _ in 0..10_000 {
        if s.live_jobs() == 0 {
            return;
        }
        let leases: Vec<(JobId, String, u32)> = obs
            .leases
            .iter()
            .map(|(id, (e, a))| (*id, e.clone(), *a))
            .collect();
        for (id, executor, attempt) in leases {
            let a = s.complete(&executor, RunRef { job: id, attempt }, outcome(0), now);
            obs.apply(a);
        }
        now += 1_000;
        for i in 0..POOLS.len() {
            let name = format!("fresh{i}");
            let running: Vec<RunRef> = obs
                .leases
                .iter()
                .filter(|(_, (e, _))| *e == name)
                .map(|(id, (_, a))| RunRef {
                    job: *id,
                    attempt: *a,
                })
                .collect();
            obs.apply(s.heartbeat(&name, &running, now).unwrap_or_default());
        }
        obs.apply(s.tick(now));
        s.check_invariants();
    }
    panic!("jobs still live after driving: {}", s.live_jobs());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn every_accepted_job_ends_in_exactly_one_terminal_state(ops in proptest::collection::vec(op(), 1..120)) {
        let (mut s, mut obs, now) = run_ops(&ops);
        drive_to_the_end(&mut s, &mut obs, now);
        let submitted: HashSet<JobId> = obs.submitted.iter().copied().collect();
        let finished: HashSet<JobId> = obs.finished.keys().copied().collect();
        prop_assert_eq!(submitted, finished);
    }
}

#[test]
fn a_lost_executor_requeues_its_jobs_with_the_next_attempt() {
    let ops = [
        Op::Register {
            executor: 0,
            pool: 0,
            slots: 2,
        },
        Op::Submit {
            pool: 0,
            priority: 0,
            max_attempts: 3,
            expire: false,
        },
        Op::Lost { executor: 0 },
        Op::Register {
            executor: 1,
            pool: 0,
            slots: 2,
        },
        Op::Advance { ms: 1_000 },
    ];
    let (s, obs, _) = run_ops(&ops);
    let id = obs.submitted[0];
    assert_eq!(obs.leases.get(&id), Some(&("e1".to_string(), 2)));
    assert_eq!(s.job(&id).map(|j| j.attempts_done), Some(2));
}

#[test]
fn a_job_over_its_attempts_fails_with_the_reason() {
    let ops = [
        Op::Register {
            executor: 0,
            pool: 0,
            slots: 1,
        },
        Op::Submit {
            pool: 0,
            priority: 0,
            max_attempts: 1,
            expire: false,
        },
        Op::Complete {
            pick: 0,
            outcome: 1,
        },
    ];
    let (_, obs, _) = run_ops(&ops);
    assert_eq!(obs.finished.get(&obs.submitted[0]), Some(&JobState::Failed));
}

#[test]
fn a_run_past_its_timeout_is_stopped_and_retried() {
    let mut s = Scheduler::new(config(), &[]);
    let mut j = job("extract", 0, 2, false);
    j.timeout_ms = 1_000;
    let id = j.id;
    s.register("e0", "extract", 1, 0);
    s.enqueue(j, 0);
    assert!(matches!(s.place(0).as_slice(), [Action::Start { .. }]));
    s.heartbeat(
        "e0",
        &[RunRef {
            job: id,
            attempt: 1,
        }],
        900,
    );
    let actions = s.tick(1_500);
    assert!(matches!(&actions[0], Action::Stop { run, .. } if run.attempt == 1));
    assert!(matches!(&actions[1], Action::Requeued { error, .. } if error.contains("timed out")));
    s.heartbeat("e0", &[], 1_600);
    let actions = s.tick(1_700);
    assert!(matches!(actions.as_slice(), [Action::Start { run, .. }] if run.attempt == 2));
}

#[test]
fn a_draining_executor_gets_no_new_job_but_finishes_its_own() {
    let mut s = Scheduler::new(config(), &[]);
    s.register("e0", "extract", 2, 0);
    let first = job("extract", 0, 1, false);
    let first_id = first.id;
    s.enqueue(first, 0);
    assert_eq!(s.place(0).len(), 1);
    s.drain("e0");
    s.enqueue(job("extract", 0, 1, false), 0);
    assert!(s.place(0).is_empty());
    let done = s.complete(
        "e0",
        RunRef {
            job: first_id,
            attempt: 1,
        },
        outcome(0),
        10,
    );
    assert!(matches!(
        done.as_slice(),
        [Action::Finished {
            state: JobState::Succeeded,
            ..
        }]
    ));
    assert_eq!(s.running_on("e0"), Some(0));
    assert!(s.place(10).is_empty());
}

#[test]
fn higher_priority_runs_first_then_oldest() {
    let mut s = Scheduler::new(config(), &[]);
    let low = job("extract", 0, 1, false);
    let high = job("extract", 5, 1, false);
    let (low_id, high_id) = (low.id, high.id);
    s.enqueue(low, 0);
    s.enqueue(high, 0);
    s.register("e0", "extract", 1, 0);
    let actions = s.place(0);
    assert!(matches!(actions.as_slice(), [Action::Start { run, .. }] if run.job == high_id));
    s.complete(
        "e0",
        RunRef {
            job: high_id,
            attempt: 1,
        },
        outcome(0),
        1,
    );
    let actions = s.place(1);
    assert!(matches!(actions.as_slice(), [Action::Start { run, .. }] if run.job == low_id));
}

#[test]
fn a_queued_job_past_its_expiry_ends_expired() {
    let mut s = Scheduler::new(config(), &[]);
    let j = job("extract", 0, 1, true);
    let id = j.id;
    s.enqueue(j, 0);
    let actions = s.tick(3_001);
    assert!(
        matches!(actions.as_slice(), [Action::Finished { id: f, state: JobState::Expired, .. }] if *f == id)
    );
}

proptest! {
    /// A burst drains on its longest runs: they end last. The pool's mean run time
    /// must still read the burst's mean, not the mean of its last few runs.
    #[test]
    fn a_burst_whose_long_runs_end_last_reads_its_true_mean(
        runs in proptest::collection::vec(100..15_000u64, 20..200),
    ) {
        let mut s = Scheduler::new(config(), &[]);
        s.register("e0", "extract", runs.len() as u32, 0);
        let mut jobs = Vec::new();
        for _ in &runs {
            let j = job("extract", 0, 1, false);
            jobs.push(j.id);
            s.enqueue(j, 0);
        }
        let started = s.place(0);
        prop_assert_eq!(started.len(), runs.len());
        let mut ends: Vec<(u64, JobId)> = runs.iter().copied().zip(jobs).collect();
        ends.sort();
        for (ran, id) in ends {
            s.complete("e0", RunRef { job: id, attempt: 1 }, outcome(0), ran);
        }
        let truth = runs.iter().sum::<u64>() as f64 / runs.len() as f64;
        let read = s.pool_states()[0].mean_run_ms.unwrap_or(0) as f64;
        prop_assert!(
            (read - truth).abs() <= 0.05 * truth,
            "read {} ms for a mean of {} ms", read, truth
        );
    }
}
