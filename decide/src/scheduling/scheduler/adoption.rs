//! Runs in flight when the scheduler starts (a restarted CapacityManager, or a new
//! leader): the store holds their jobs as running. Each stays *unconfirmed* until the
//! executor it was leased to reports it, with the same attempt: then the lease goes on
//! under that attempt, as if leased here. Runs no executor reports within the executor
//! timeout re-queue with their attempt counted. No run is both adopted and re-queued.

use marie_protocol::messages::{RunRef, RunningJob};

use super::{Action, Lease, LiveJob, Phase, Scheduler};

impl Scheduler {
    /// Takes the runs the store holds as running at start. They wait, unconfirmed, for
    /// their executors to report them ([`Scheduler::adopt`]) until `executor_timeout_ms`
    /// from `now_ms`, then re-queue (in [`Scheduler::tick`]).
    pub fn recover_running(&mut self, runs: Vec<RunningJob>, now_ms: u64) {
        self.adopt_until_ms = now_ms.saturating_add(self.config.executor_timeout_ms);
        for run in runs {
            if !self.jobs.contains_key(&run.job.id) {
                self.unconfirmed.insert(run.job.id, run);
            }
        }
    }

    /// Runs from before the start still unconfirmed.
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed.len()
    }

    /// The registered `executor` reports the runs it holds: those that match an
    /// unconfirmed run (its job, its attempt, this executor) are adopted, within the
    /// executor's slots; the answer lists them. The others (a stale attempt, another
    /// executor's run, a job not running here) are refused: the executor abandons them.
    pub fn adopt(&mut self, executor: &str, reported: &[RunRef], now_ms: u64) -> Vec<RunRef> {
        reported
            .iter()
            .copied()
            .filter(|run| self.adopt_run(executor, *run, now_ms))
            .collect()
    }

    /// Adopts one reported run if it matches an unconfirmed one and the executor has a
    /// free slot; false otherwise.
    pub(super) fn adopt_run(&mut self, executor: &str, run: RunRef, now_ms: u64) -> bool {
        let matches = self.unconfirmed.get(&run.job).is_some_and(|unconfirmed| {
            unconfirmed.executor == executor && unconfirmed.job.attempts_done == run.attempt
        });
        let Some(entry) = self.executors.get_mut(executor) else {
            return false;
        };
        if !matches || entry.running.len() >= entry.slots as usize {
            return false;
        }
        let Some(RunningJob { job, .. }) = self.unconfirmed.remove(&run.job) else {
            return false;
        };
        entry.running.insert(run.job);
        let pool = self.pools.entry(job.spec.pool.clone()).or_default();
        pool.running += 1;
        self.dirty.insert(job.spec.pool.clone());
        let seq = self.next_seq;
        self.next_seq += 1;
        self.jobs.insert(
            run.job,
            LiveJob {
                job,
                seq,
                phase: Phase::Running(Lease {
                    executor: executor.to_owned(),
                    attempt: run.attempt,
                    deadline_ms: now_ms.saturating_add(self.config.lease_ttl_ms),
                    started_ms: now_ms,
                }),
                ready_since_ms: now_ms,
                last_run_ms: None,
            },
        );
        true
    }

    /// Once the executor timeout has passed since the start, the runs no executor
    /// reported re-queue with their attempt counted (or fail, if it was their last).
    pub(super) fn requeue_unconfirmed(&mut self, now_ms: u64) -> Vec<Action> {
        if self.unconfirmed.is_empty() || now_ms < self.adopt_until_ms {
            return Vec::new();
        }
        let mut runs: Vec<RunningJob> = self.unconfirmed.drain().map(|(_, run)| run).collect();
        runs.sort_by_key(|run| run.job.id);
        let mut actions = Vec::new();
        for RunningJob { job, executor } in runs {
            let (id, attempts_done) = (job.id, job.attempts_done);
            let ended = self.enqueue(job, now_ms);
            if ended.is_empty() {
                actions.push(Action::Requeued {
                    id,
                    attempts_done,
                    error: format!(
                        "executor {executor} did not report its run after the CapacityManager started"
                    ),
                });
            }
            actions.extend(ended);
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduling::{PoolSetup, SchedulerConfig};
    use marie_protocol::messages::QueuedJob;
    use marie_protocol::{JobId, JobSpec, JobState, Outcome};

    const TIMEOUT_MS: u64 = 8_000;

    fn scheduler() -> Scheduler {
        let config = SchedulerConfig {
            executor_timeout_ms: TIMEOUT_MS,
            ..SchedulerConfig::default()
        };
        let pools = [PoolSetup {
            name: "extract".into(),
            target_slots: 0,
        }];
        Scheduler::new(config, &pools)
    }

    fn running(executor: &str, attempt: u32, max_attempts: u32) -> RunningJob {
        RunningJob {
            job: QueuedJob {
                id: JobId::generate(),
                spec: JobSpec::new("extract", "sleep", b"1".to_vec()),
                attempts_done: attempt,
                max_attempts,
                timeout_ms: 60_000,
                created_at_ms: 0,
            },
            executor: executor.into(),
        }
    }

    fn run_of(job: &RunningJob) -> RunRef {
        RunRef {
            job: job.job.id,
            attempt: job.job.attempts_done,
        }
    }

    #[test]
    fn a_reported_run_keeps_its_lease_and_its_result_is_accepted() {
        let mut s = scheduler();
        let job = running("e1", 1, 3);
        s.recover_running(vec![job.clone()], 0);
        s.register("e1", "extract", 2, 100);
        assert_eq!(s.adopt("e1", &[run_of(&job)], 100), [run_of(&job)]);
        assert_eq!(s.unconfirmed(), 0);
        assert!(s.tick(TIMEOUT_MS + 1).is_empty(), "nothing re-queues");
        let ended = s.complete("e1", run_of(&job), Outcome::Succeeded(b"ok".to_vec()), 200);
        assert!(matches!(
            ended.as_slice(),
            [Action::Finished {
                state: JobState::Succeeded,
                ..
            }]
        ));
        s.check_invariants();
    }

    #[test]
    fn a_stale_attempt_or_another_executor_is_refused() {
        let mut s = scheduler();
        let job = running("e1", 2, 3);
        s.recover_running(vec![job.clone()], 0);
        s.register("e1", "extract", 2, 0);
        s.register("e2", "extract", 2, 0);
        let stale = RunRef {
            attempt: 1,
            ..run_of(&job)
        };
        assert!(s.adopt("e1", &[stale], 10).is_empty());
        assert!(s.adopt("e2", &[run_of(&job)], 10).is_empty());
        let stops = s.heartbeat("e1", &[stale], 20).expect("e1 is registered");
        assert_eq!(
            stops,
            [Action::Stop {
                executor: "e1".into(),
                run: stale
            }]
        );
        assert_eq!(s.unconfirmed(), 1, "the run still waits for its executor");
        assert!(
            s.complete("e1", stale, Outcome::Succeeded(Vec::new()), 30)
                .is_empty()
        );
        s.check_invariants();
    }

    #[test]
    fn unreported_runs_requeue_with_the_next_attempt_after_the_executor_timeout() {
        let mut s = scheduler();
        let lost = running("gone", 1, 3);
        let last = running("gone", 3, 3);
        s.recover_running(vec![lost.clone(), last.clone()], 1_000);
        assert!(
            s.tick(1_000 + TIMEOUT_MS - 1).is_empty(),
            "not before the timeout"
        );
        s.register("e1", "extract", 4, 1_000 + TIMEOUT_MS);
        let actions = s.tick(1_000 + TIMEOUT_MS);
        assert!(actions.contains(&Action::Requeued {
            id: lost.job.id,
            attempts_done: 1,
            error: "executor gone did not report its run after the CapacityManager started".into(),
        }));
        assert!(actions.contains(&Action::Start {
            executor: "e1".into(),
            run: RunRef {
                job: lost.job.id,
                attempt: 2
            },
            waited_ms: 0,
        }));
        assert!(actions.iter().any(|a| matches!(a,
            Action::Finished { id, state: JobState::Failed, .. } if *id == last.job.id)));
        assert_eq!(s.unconfirmed(), 0);
        assert!(
            s.adopt("gone", &[run_of(&lost)], 1_000 + TIMEOUT_MS)
                .is_empty()
        );
        s.check_invariants();
    }

    #[test]
    fn adoption_stops_at_the_executors_slots() {
        let mut s = scheduler();
        let jobs: Vec<RunningJob> = (0..3).map(|_| running("e1", 1, 3)).collect();
        s.recover_running(jobs.clone(), 0);
        s.register("e1", "extract", 2, 0);
        let reported: Vec<RunRef> = jobs.iter().map(run_of).collect();
        assert_eq!(s.adopt("e1", &reported, 0), reported[..2]);
        assert_eq!(s.unconfirmed(), 1);
        s.check_invariants();
    }

    #[test]
    fn an_unconfirmed_job_is_cancelled_and_not_queued_twice() {
        let mut s = scheduler();
        let job = running("e1", 1, 3);
        s.recover_running(vec![job.clone()], 0);
        assert!(s.enqueue(job.job.clone(), 0).is_empty());
        assert_eq!(s.live_jobs(), 0, "a late enqueue does not queue it");
        let actions = s.cancel(job.job.id, 10).expect("the job is live here");
        assert_eq!(
            actions[0],
            Action::Stop {
                executor: "e1".into(),
                run: run_of(&job)
            }
        );
        assert!(matches!(
            actions[1],
            Action::Finished {
                state: JobState::Cancelled,
                ..
            }
        ));
        assert!(s.tick(TIMEOUT_MS + 1).is_empty());
        s.check_invariants();
    }
}

#[cfg(test)]
mod properties {
    use std::collections::HashSet;

    use super::*;
    use crate::scheduling::{PoolSetup, SchedulerConfig};
    use marie_protocol::messages::QueuedJob;
    use marie_protocol::{JobId, JobSpec};
    use proptest::prelude::*;

    const EXECUTORS: [&str; 3] = ["e0", "e1", "e2"];
    const TIMEOUT_MS: u64 = 5_000;

    #[derive(Clone, Debug)]
    enum Op {
        Register {
            executor: usize,
            slots: u32,
        },
        Report {
            executor: usize,
            pick: usize,
            attempt_shift: u32,
            by_heartbeat: bool,
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
            1 => (0..3usize, 1..4u32).prop_map(|(executor, slots)| Op::Register { executor, slots }),
            4 => (0..3usize, any::<usize>(), 0..3u32, any::<bool>()).prop_map(
                |(executor, pick, attempt_shift, by_heartbeat)| Op::Report { executor, pick, attempt_shift, by_heartbeat }
            ),
            1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
            2 => (0..3_000u64).prop_map(|ms| Op::Advance { ms }),
        ]
    }

    proptest! {
        #[test]
        fn every_unconfirmed_run_is_adopted_or_requeued_never_both(
            runs in proptest::collection::vec((0..3usize, 1..4u32), 0..12),
            ops in proptest::collection::vec(op(), 0..60),
        ) {
            // Leases of adopted runs outlive the test: only the runs from before are watched.
            let config = SchedulerConfig {
                executor_timeout_ms: TIMEOUT_MS,
                lease_ttl_ms: u64::MAX / 4,
                ..SchedulerConfig::default()
            };
            let pools = [PoolSetup { name: "extract".into(), target_slots: 0 }];
            let mut s = Scheduler::new(config, &pools);
            let runs: Vec<RunningJob> = runs
                .into_iter()
                .map(|(executor, attempt)| RunningJob {
                    job: QueuedJob {
                        id: JobId::generate(),
                        spec: JobSpec::new("extract", "sleep", Vec::new()),
                        attempts_done: attempt,
                        max_attempts: 3,
                        timeout_ms: 600_000,
                        created_at_ms: 0,
                    },
                    executor: EXECUTORS[executor].into(),
                })
                .collect();
            s.recover_running(runs.clone(), 0);
            let (mut adopted, mut requeued, mut cancelled) = (HashSet::new(), HashSet::new(), HashSet::new());
            let mut now = 0;
            // Ends of runs from before the start: re-queued (or failed, out of attempts)
            // because no executor reported them, or cancelled while unconfirmed.
            let note = |actions: Vec<Action>, requeued: &mut HashSet<JobId>| {
                for action in actions {
                    match action {
                        Action::Requeued { id, error, .. } if error.contains("did not report") => {
                            requeued.insert(id);
                        }
                        Action::Finished { id, error: Some(error), .. } if error.contains("the last run was lost") => {
                            requeued.insert(id);
                        }
                        _ => {}
                    }
                }
            };
            for op in ops {
                match op {
                    Op::Register { executor, slots } => {
                        s.register(EXECUTORS[executor], "extract", slots, now);
                    }
                    Op::Report { executor, pick, attempt_shift, by_heartbeat } => {
                        if runs.is_empty() { continue; }
                        let run = &runs[pick % runs.len()];
                        let name = EXECUTORS[executor];
                        let reported = RunRef { job: run.job.id, attempt: run.job.attempts_done + attempt_shift };
                        let was_unconfirmed = !adopted.contains(&run.job.id) && !requeued.contains(&run.job.id) && !cancelled.contains(&run.job.id);
                        let taken = if by_heartbeat {
                            match s.heartbeat(name, &[reported], now) {
                                Some(stops) => stops.is_empty(),
                                None => false,
                            }
                        } else {
                            !s.adopt(name, &[reported], now).is_empty()
                        };
                        if taken && was_unconfirmed {
                            prop_assert_eq!(attempt_shift, 0, "a stale attempt was adopted");
                            prop_assert_eq!(name, run.executor.as_str(), "another executor's run was adopted");
                            adopted.insert(run.job.id);
                        }
                    }
                    Op::Cancel { pick } => {
                        if runs.is_empty() { continue; }
                        let id = runs[pick % runs.len()].job.id;
                        let was_unconfirmed = !adopted.contains(&id) && !requeued.contains(&id) && !cancelled.contains(&id);
                        if s.cancel(id, now).is_some() && was_unconfirmed {
                            cancelled.insert(id);
                        }
                    }
                    Op::Advance { ms } => {
                        now += ms;
                        // Executors stay alive: the property is about the runs from before.
                        for name in EXECUTORS {
                            let _ = s.heartbeat(name, &[], now);
                        }
                        note(s.tick(now), &mut requeued);
                    }
                }
                s.check_invariants();
            }
            now += TIMEOUT_MS;
            for name in EXECUTORS {
                let _ = s.heartbeat(name, &[], now);
            }
            note(s.tick(now), &mut requeued);
            prop_assert_eq!(s.unconfirmed(), 0);
            for run in &runs {
                let id = run.job.id;
                let ends = [adopted.contains(&id), requeued.contains(&id), cancelled.contains(&id)];
                prop_assert_eq!(
                    ends.iter().filter(|e| **e).count(), 1,
                    "job {} ended [adopted, re-queued, cancelled] = {:?}", id, ends
                );
            }
        }
    }
}
