//! Which jobs the CapacityManager takes in besides those it recovers at start: the
//! Gateways' casts, jobs the store announces (committed by any node), and those a slow
//! reconcile sweep finds queued in the store but not held. A lost cast or notification
//! then costs a delay, never a stuck job.
//!
//! The same job may come in several ways, and late: a Gateway's cast after the
//! notification of the same commit, or a store read made before the job's end was
//! written. A job held by the scheduler is not queued twice (the scheduler sees to
//! that); a job that already ended here must not be queued again either, or it would
//! run twice. So [`Intake`] remembers every job ended here until its end is durable
//! (a read made after that sees it ended), and then for [`Intake::MARGIN_MS`] more, to
//! cover reads and casts still on their way; a read answered later than that margin
//! after it started is dropped ([`Intake::fresh`]) and the next sweep tries again.
//!
//! Time comes in as milliseconds on the caller's monotonic axis.

use std::collections::{HashSet, VecDeque};

use marie_protocol::JobId;

/// What the CapacityManager may take in, and when it sweeps the store.
#[derive(Clone, Debug)]
pub struct Intake {
    /// Pause between two sweeps.
    sweep_ms: u64,
    /// When the next sweep is due.
    next_sweep_ms: u64,
    /// When the sweep in flight started, if one is.
    sweeping_since: Option<u64>,
    /// Jobs ended here whose end is not yet durable.
    ending: HashSet<JobId>,
    /// Jobs whose end is durable and that are still remembered.
    stored: HashSet<JobId>,
    /// [`Intake::stored`] in the order their ends became durable, with when.
    stored_at: VecDeque<(u64, JobId)>,
}

impl Intake {
    /// How long a job stays remembered once its end is durable, and how long a store
    /// read may take before its answer is dropped.
    pub const MARGIN_MS: u64 = 30_000;

    /// An intake whose first sweep is due `sweep_ms` after `now_ms` (the queues were
    /// just recovered from the store).
    pub fn new(sweep_ms: u64, now_ms: u64) -> Self {
        let sweep_ms = sweep_ms.max(1);
        Intake {
            sweep_ms,
            next_sweep_ms: now_ms.saturating_add(sweep_ms),
            sweeping_since: None,
            ending: HashSet::new(),
            stored: HashSet::new(),
            stored_at: VecDeque::new(),
        }
    }

    /// A job ended here; its end is being written.
    pub fn ended(&mut self, id: JobId) {
        self.ending.insert(id);
    }

    /// The ends of `ids` are durable (jobs never ended here are ignored).
    pub fn ends_stored(&mut self, ids: impl IntoIterator<Item = JobId>, now_ms: u64) {
        for id in ids {
            if self.ending.remove(&id) && self.stored.insert(id) {
                self.stored_at.push_back((now_ms, id));
            }
        }
    }

    /// Whether a job that came in may be queued: not one that ended here.
    pub fn admits(&self, id: &JobId) -> bool {
        !self.ending.contains(id) && !self.stored.contains(id)
    }

    /// Whether the answer of a store read started at `read_at_ms` may still be used.
    pub fn fresh(&self, read_at_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(read_at_ms) < Self::MARGIN_MS
    }

    /// Of `ids`, which the store holds as queued, those to load: neither held (`held`)
    /// nor ended here.
    pub fn missing(&self, ids: Vec<JobId>, held: impl Fn(&JobId) -> bool) -> Vec<JobId> {
        ids.into_iter()
            .filter(|id| !held(id) && self.admits(id))
            .collect()
    }

    /// The timer: forgets the ends past the margin; answers whether a sweep starts now
    /// (none is in flight, or the one in flight was lost, and one is due).
    pub fn sweep_due(&mut self, now_ms: u64) -> bool {
        while let Some(&(at, id)) = self.stored_at.front() {
            if now_ms.saturating_sub(at) < Self::MARGIN_MS {
                break;
            }
            self.stored_at.pop_front();
            self.stored.remove(&id);
        }
        let in_flight = self
            .sweeping_since
            .is_some_and(|since| self.fresh(since, now_ms));
        if in_flight || now_ms < self.next_sweep_ms {
            return false;
        }
        self.sweeping_since = Some(now_ms);
        true
    }

    /// The sweep in flight answered (or failed): the next one is due a pause later.
    pub fn swept(&mut self, now_ms: u64) {
        self.sweeping_since = None;
        self.next_sweep_ms = now_ms.saturating_add(self.sweep_ms);
    }

    /// How many jobs are remembered as ended.
    pub fn remembered(&self) -> usize {
        self.ending.len() + self.stored.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWEEP: u64 = 5_000;

    fn ids(n: usize) -> Vec<JobId> {
        (0..n).map(|_| JobId::generate()).collect()
    }

    #[test]
    fn sweeps_are_paced_and_one_at_a_time() {
        let mut intake = Intake::new(SWEEP, 1_000);
        assert!(!intake.sweep_due(1_000));
        assert!(!intake.sweep_due(5_999));
        assert!(intake.sweep_due(6_000));
        // In flight: no second one, however late the timer fires.
        assert!(!intake.sweep_due(7_000));
        assert!(!intake.sweep_due(20_000));
        intake.swept(20_500);
        assert!(!intake.sweep_due(25_499));
        assert!(intake.sweep_due(25_500));
    }

    #[test]
    fn a_sweep_that_never_answers_is_started_again_after_the_margin() {
        let mut intake = Intake::new(SWEEP, 0);
        assert!(intake.sweep_due(SWEEP));
        assert!(!intake.sweep_due(SWEEP + Intake::MARGIN_MS - 1));
        assert!(intake.sweep_due(SWEEP + Intake::MARGIN_MS));
    }

    #[test]
    fn a_job_ended_here_is_refused_until_the_margin_after_its_end_is_stored() {
        let mut intake = Intake::new(SWEEP, 0);
        let [done, other] = [JobId::generate(), JobId::generate()];
        intake.ended(done);
        assert!(!intake.admits(&done));
        assert!(intake.admits(&other));
        // However long the write takes, the job stays refused.
        intake.sweep_due(10 * Intake::MARGIN_MS);
        assert!(!intake.admits(&done));
        intake.ends_stored([done, other], 400_000);
        assert!(!intake.admits(&done));
        assert!(
            intake.admits(&other),
            "a job never ended here is not remembered"
        );
        intake.sweep_due(400_000 + Intake::MARGIN_MS - 1);
        assert!(!intake.admits(&done));
        intake.sweep_due(400_000 + Intake::MARGIN_MS);
        assert!(intake.admits(&done));
        assert_eq!(intake.remembered(), 0);
    }

    #[test]
    fn missing_keeps_only_jobs_neither_held_nor_ended() {
        let mut intake = Intake::new(SWEEP, 0);
        let all = ids(6);
        let held: HashSet<JobId> = all[..2].iter().copied().collect();
        intake.ended(all[2]);
        intake.ended(all[3]);
        intake.ends_stored([all[3]], 10);
        let missing = intake.missing(all.clone(), |id| held.contains(id));
        assert_eq!(missing, all[4..].to_vec());
        // The same ids again (a duplicate notification): the same answer, nothing kept.
        assert_eq!(intake.missing(all.clone(), |id| held.contains(id)), missing);
    }

    #[test]
    fn a_read_answered_after_the_margin_is_stale() {
        let intake = Intake::new(SWEEP, 0);
        assert!(intake.fresh(1_000, 1_000));
        assert!(intake.fresh(1_000, 1_000 + Intake::MARGIN_MS - 1));
        assert!(!intake.fresh(1_000, 1_000 + Intake::MARGIN_MS));
    }
}
