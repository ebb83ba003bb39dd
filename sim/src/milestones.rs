//! When a run reached the milestones of its traffic: the first scale-up decision, the
//! decision for the pool's `max`, the first job on an executor started during the run,
//! and the end of the last job — each in ms after the first job arrived.

/// The milestones of one run, ms after the first job's arrival; `None` when the run
/// never got there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Milestones {
    /// The first decision for more executors than the pool had.
    pub first_scale_up_ms: Option<u64>,
    /// The first decision for the pool's `max`.
    pub at_max_ms: Option<u64>,
    /// The first job that started on an executor started during the run.
    pub first_new_executor_work_ms: Option<u64>,
    /// The end of the last job (every job has run).
    pub drained_ms: Option<u64>,
}

/// Keeps a run's [`Milestones`] as the simulation goes.
#[derive(Clone, Debug)]
pub struct MilestoneLog {
    first_job_ms: u64,
    max: u32,
    jobs_left: usize,
    milestones: Milestones,
}

impl MilestoneLog {
    /// A log for `jobs` jobs, the first arriving at `first_job_ms`, on a pool of at
    /// most `max` executors.
    pub fn new(first_job_ms: u64, jobs: usize, max: u32) -> Self {
        MilestoneLog {
            first_job_ms,
            max,
            jobs_left: jobs,
            milestones: Milestones {
                drained_ms: (jobs == 0).then_some(0),
                ..Milestones::default()
            },
        }
    }

    /// The policy wants `desired` executors where the pool has `supply`.
    pub fn decided(&mut self, now_ms: u64, supply: u32, desired: u32) {
        if now_ms < self.first_job_ms {
            return;
        }
        let since = now_ms - self.first_job_ms;
        if desired > supply {
            self.milestones.first_scale_up_ms.get_or_insert(since);
        }
        if desired >= self.max {
            self.milestones.at_max_ms.get_or_insert(since);
        }
    }

    /// A job started on an executor that was started during the run.
    pub fn new_executor_worked(&mut self, now_ms: u64) {
        let since = now_ms.saturating_sub(self.first_job_ms);
        self.milestones
            .first_new_executor_work_ms
            .get_or_insert(since);
    }

    /// A job ended.
    pub fn job_done(&mut self, now_ms: u64) {
        self.jobs_left = self.jobs_left.saturating_sub(1);
        if self.jobs_left == 0 {
            let since = now_ms.saturating_sub(self.first_job_ms);
            self.milestones.drained_ms.get_or_insert(since);
        }
    }

    /// What the run reached.
    pub fn milestones(&self) -> Milestones {
        self.milestones
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_count_from_the_first_job_and_keep_the_first_time() {
        let mut log = MilestoneLog::new(10_000, 2, 5);
        log.decided(5_000, 1, 3);
        assert_eq!(
            log.milestones(),
            Milestones::default(),
            "before the first job"
        );
        log.decided(10_250, 1, 1);
        log.decided(10_500, 1, 3);
        log.decided(10_750, 3, 5);
        log.decided(11_000, 3, 5);
        log.new_executor_worked(12_000);
        log.new_executor_worked(13_000);
        log.job_done(14_000);
        assert_eq!(log.milestones().drained_ms, None, "one job left");
        log.job_done(15_000);
        assert_eq!(
            log.milestones(),
            Milestones {
                first_scale_up_ms: Some(500),
                at_max_ms: Some(750),
                first_new_executor_work_ms: Some(2_000),
                drained_ms: Some(5_000),
            }
        );
    }
}
