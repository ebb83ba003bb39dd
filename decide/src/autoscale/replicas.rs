//! A declarative pool's replica count as the Supervisor keeps it. The platform (a
//! Kubernetes Deployment) keeps the count and starts executors under names it picks, so
//! the Supervisor counts starts instead of naming them: `applied` is the count it set or
//! adopted last, executors registered are ready or draining, and the rest of `applied`
//! is starting — a crashed pod the platform replaces is one of them, not a reason to ask
//! for another.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use marie_protocol::PoolState;

/// How long the name of an executor no longer registered is remembered, ms: a name is
/// "new" (and its registration ends a measured start) only once.
const FORGET_AFTER_MS: u64 = 3_600_000;

/// A change of a declarative pool's replica count for the backend to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaWrite {
    /// The count the Supervisor set or adopted last: the platform should still be there.
    pub from: u32,
    /// The count to set.
    pub to: u32,
    /// Drained executors whose replicas are the ones to remove.
    pub leaving: Vec<String>,
}

/// What a read of the platform's count means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaRead {
    /// The first read: the count is adopted as it is (a restarted server neither doubles
    /// nor drops the pool).
    Adopted(u32),
    /// The count the Supervisor set (or a write of it that reported a failure took
    /// effect after all).
    Ours,
    /// Somebody else set the count.
    Elsewhere {
        /// The count the Supervisor set last.
        expected: u32,
        /// The count found.
        found: u32,
    },
}

/// The replica count of a declarative pool and the starts it implies.
#[derive(Debug, Default)]
pub(super) struct ReplicaCount {
    /// Set or adopted last; `None` until the platform was read.
    applied: Option<u32>,
    /// When each replica still starting was asked for, oldest first.
    asked: VecDeque<u64>,
    /// Executor names seen registered, with when they were last seen.
    seen: BTreeMap<String, u64>,
    /// Drained executors gone whose replicas are still counted.
    leaving: BTreeSet<String>,
    /// A write that reported a failure and may have taken effect all the same.
    unconfirmed: Option<ReplicaWrite>,
}

impl ReplicaCount {
    /// The count set or adopted last, once the platform was read.
    pub(super) fn applied(&self) -> Option<u32> {
        self.applied
    }

    /// Executors registered for the first time, each with when its replica was asked
    /// for (the oldest ask not yet matched; none for a replica Marie did not ask for).
    pub(super) fn registered(&mut self, state: &PoolState, now_ms: u64) -> Vec<(String, u64)> {
        let mut new = Vec::new();
        for executor in &state.executors {
            if self.seen.insert(executor.name.clone(), now_ms).is_none()
                && let Some(asked) = self.asked.pop_front()
            {
                new.push((executor.name.clone(), asked));
            }
        }
        self.seen
            .retain(|_, seen| now_ms.saturating_sub(*seen) < FORGET_AFTER_MS);
        new
    }

    /// A drained executor left: its replica is removed with the next write.
    pub(super) fn left(&mut self, executor: String) {
        self.leaving.insert(executor);
    }

    /// Replicas asked for and not registered: the count less registered executors and
    /// drained ones still counted, at least 0.
    pub(super) fn starting(&self, registered: u32) -> u32 {
        self.applied.map_or(0, |applied| {
            applied.saturating_sub(registered.saturating_add(self.leaving.len() as u32))
        })
    }

    /// How many registered executors the count leaves to drain for `desired`: those of
    /// the count not leaving, not `drained` (draining on the Supervisor's word) and not
    /// taken off as starting (`down`), above `desired`. Executors registered beyond the count are not the Supervisor's
    /// to drain: somebody else raised it (its next read finds out and pauses the pool)
    /// or the platform runs a surge pod of a rollout, which it removes itself.
    pub(super) fn drainable(&self, desired: u32, drained: u32, down: u32) -> u32 {
        self.applied.map_or(0, |applied| {
            let held = desired
                .saturating_add(drained)
                .saturating_add(down)
                .saturating_add(self.leaving.len() as u32);
            applied.saturating_sub(held)
        })
    }

    /// How long each counted start has been starting, oldest first.
    pub(super) fn starting_for_ms(&self, now_ms: u64) -> Vec<u64> {
        self.asked
            .iter()
            .map(|&asked| now_ms.saturating_sub(asked))
            .collect()
    }

    /// The write that brings the count `up` or `down` (starting replicas only), after
    /// the drained executors still counted are taken off; `None` when nothing changes
    /// or the platform was never read. Going up and removing leaving replicas are never
    /// one write: a count that does not go down removes no replica.
    pub(super) fn write(&self, up: u32, down: u32) -> Option<ReplicaWrite> {
        let from = self.applied?;
        let leaving: Vec<String> = self.leaving.iter().cloned().collect();
        let to = match leaving.is_empty() {
            true => from.saturating_add(up).saturating_sub(down),
            false => from.saturating_sub(leaving.len() as u32 + down),
        };
        (to != from || !leaving.is_empty()).then_some(ReplicaWrite { from, to, leaving })
    }

    /// The backend made `write` at `now_ms`: new replicas are asked for now; replicas
    /// taken off beyond the leaving ones were starting, the newest asks go. Answers the
    /// ages of those cancelled starts.
    pub(super) fn written(&mut self, write: &ReplicaWrite, now_ms: u64) -> Vec<u64> {
        self.applied = Some(write.to);
        self.unconfirmed = None;
        for executor in &write.leaving {
            self.leaving.remove(executor);
        }
        let removed = write.from.saturating_sub(write.to) as usize;
        let cancelled = removed.saturating_sub(write.leaving.len());
        let mut ages = Vec::new();
        for _ in 0..cancelled {
            if let Some(asked) = self.asked.pop_back() {
                ages.push(now_ms.saturating_sub(asked));
            }
        }
        for _ in write.from..write.to {
            self.asked.push_back(now_ms);
        }
        ages
    }

    /// The backend reported `write` failed; a later read may show it took effect.
    pub(super) fn write_failed(&mut self, write: ReplicaWrite) {
        self.unconfirmed = Some(write);
    }

    /// The platform reads `found` at `now_ms`.
    pub(super) fn read(&mut self, found: u32, now_ms: u64) -> ReplicaRead {
        let Some(expected) = self.applied else {
            self.adopt(found);
            return ReplicaRead::Adopted(found);
        };
        if found == expected {
            self.unconfirmed = None;
            return ReplicaRead::Ours;
        }
        if let Some(write) = self.unconfirmed.take_if(|w| w.to == found) {
            self.written(&write, now_ms);
            return ReplicaRead::Ours;
        }
        ReplicaRead::Elsewhere { expected, found }
    }

    /// Takes `found` as the count (a pool scaled by someone else, resumed or paused):
    /// asks no longer match the count, so they are forgotten.
    pub(super) fn adopt(&mut self, found: u32) {
        if self.applied != Some(found) {
            self.asked.clear();
        }
        self.applied = Some(found);
        self.unconfirmed = None;
    }
}

#[cfg(test)]
mod tests {
    use marie_protocol::ExecutorLoad;
    use proptest::prelude::*;

    use super::super::victims::tests::load;
    use super::super::{PoolBook, ScalePlan};
    use super::*;

    fn pool(executors: Vec<ExecutorLoad>) -> PoolState {
        PoolState {
            name: "p".into(),
            executors,
            ..PoolState::default()
        }
    }

    fn book_at(applied: u32, state: &PoolState) -> PoolBook {
        let mut book = PoolBook::declarative(4, 1_000, 0);
        assert_eq!(
            book.read_replicas(applied, 0),
            Some(ReplicaRead::Adopted(applied))
        );
        book.observe(state, 0);
        book
    }

    #[test]
    fn a_restarted_server_adopts_the_count_and_writes_nothing_for_it() {
        let state = pool(vec![load("a", 1, false), load("b", 0, false)]);
        let mut book = PoolBook::declarative(4, 1_000, 0);
        assert_eq!(
            book.plan(3, &state, 0).replicas,
            None,
            "nothing is written before the count is read"
        );
        assert_eq!(book.read_replicas(3, 0), Some(ReplicaRead::Adopted(3)));
        let changes = book.observe(&state, 10);
        assert!(changes.ready.is_empty(), "no start of Marie's was measured");
        let observation = book.observation(&state, 10);
        assert_eq!(
            (observation.executors.ready, observation.executors.starting),
            (2, 1),
            "the third replica is starting"
        );
        assert_eq!(book.plan(3, &state, 10).replicas, None);
    }

    #[test]
    fn a_crashed_executor_the_platform_replaces_is_starting_not_a_reason_to_ask_again() {
        let mut state = pool(vec![load("a", 0, false), load("b", 0, false)]);
        let mut book = book_at(2, &state);
        state.executors.pop();
        book.observe(&state, 100);
        assert_eq!(book.observation(&state, 100).executors.starting, 1);
        assert_eq!(book.plan(2, &state, 100).replicas, None);
        state.executors.push(load("c", 0, false));
        let changes = book.observe(&state, 5_000);
        assert!(
            changes.ready.is_empty(),
            "Marie asked for no replica: nothing measured"
        );
        assert_eq!(book.cold_start_ms(), 1_000);
        assert_eq!(book.observation(&state, 5_000).executors.starting, 0);
    }

    #[test]
    fn a_deleted_pod_draining_on_its_own_is_replaced_by_the_platform_not_asked_again() {
        let two = pool(vec![load("a", 0, false), load("b", 1, false)]);
        let mut book = book_at(2, &two);
        // b's pod was deleted: it drains on SIGTERM while its replacement starts.
        let deleted = pool(vec![load("a", 0, false), load("b", 1, true)]);
        book.observe(&deleted, 100);
        let observation = book.observation(&deleted, 100);
        assert_eq!(
            (observation.executors.ready, observation.executors.starting),
            (1, 1),
            "the replacement is starting"
        );
        assert_eq!(book.plan(2, &deleted, 100).replicas, None);
        let replaced = pool(vec![
            load("a", 0, false),
            load("b", 1, true),
            load("c", 0, false),
        ]);
        book.observe(&replaced, 200);
        assert_eq!(book.observation(&replaced, 200).executors.starting, 0);
        assert_eq!(book.plan(2, &replaced, 200).replicas, None);
    }

    #[test]
    fn going_up_measures_each_new_name_against_the_oldest_ask() {
        let state = pool(vec![load("a", 4, false)]);
        let mut book = book_at(1, &state);
        let write = book.plan(3, &state, 100).replicas.expect("two more");
        assert_eq!(
            write,
            ReplicaWrite {
                from: 1,
                to: 3,
                leaving: vec![]
            }
        );
        book.written(&write, 100);
        let observation = book.observation(&state, 300);
        assert_eq!(observation.executors.starting, 2);
        assert_eq!(observation.starting_for_ms, vec![200, 200]);
        assert_eq!(book.plan(3, &state, 300).replicas, None, "asked once");
        let state = pool(vec![load("a", 4, false), load("x-7f", 0, false)]);
        assert_eq!(
            book.observe(&state, 600).ready,
            vec![("x-7f".to_string(), 500)]
        );
        assert_eq!(book.cold_start_ms(), 500);
        assert!(book.observe(&state, 700).ready.is_empty(), "seen once");
    }

    #[test]
    fn going_down_lowers_starting_replicas_first_then_drains_and_removes_the_drained() {
        let state = pool(vec![
            load("a", 3, false),
            load("b", 0, false),
            load("c", 1, false),
        ]);
        let mut book = book_at(5, &state);
        let plan = book.plan(1, &state, 1_000);
        assert_eq!(
            plan.replicas,
            Some(ReplicaWrite {
                from: 5,
                to: 3,
                leaving: vec![]
            }),
            "the two not registered go first"
        );
        assert_eq!(plan.drain, vec!["b".to_string(), "c".to_string()]);
        book.written(&plan.replicas.expect("a write"), 1_000);
        let draining = pool(vec![
            load("a", 3, false),
            load("b", 0, true),
            load("c", 1, true),
        ]);
        book.observe(&draining, 1_100);
        assert_eq!(
            book.plan(1, &draining, 1_100),
            ScalePlan {
                target_slots: 4,
                ..ScalePlan::default()
            },
            "nothing more while they drain"
        );
        let one_gone = pool(vec![load("a", 3, false), load("c", 1, true)]);
        assert_eq!(
            book.observe(&one_gone, 1_200).drained,
            vec!["b".to_string()]
        );
        assert_eq!(
            book.observation(&one_gone, 1_200).executors.starting,
            0,
            "a drained executor gone is not starting"
        );
        let plan = book.plan(1, &one_gone, 1_200);
        let write = plan.replicas.expect("b's replica goes");
        assert_eq!(
            write,
            ReplicaWrite {
                from: 3,
                to: 2,
                leaving: vec!["b".into()]
            }
        );
        book.written(&write, 1_200);
        assert_eq!(book.plan(1, &one_gone, 1_300).replicas, None);
    }

    #[test]
    fn executors_beyond_the_count_are_not_drained() {
        let one = pool(vec![load("a", 0, false)]);
        let mut book = book_at(1, &one);
        // Somebody else set 3 replicas; their executors register before the next read.
        let three = pool(vec![
            load("a", 0, false),
            load("b", 0, false),
            load("c", 0, false),
        ]);
        book.observe(&three, 100);
        let plan = book.plan(1, &three, 100);
        assert_eq!(
            (plan.drain, plan.replicas),
            (vec![], None),
            "not the Supervisor's replicas to take"
        );
        // Once the count is read (and the pool resumed), the surplus is its own.
        book.adopt_replicas(3);
        assert_eq!(book.plan(1, &three, 200).drain.len(), 2);
    }

    #[test]
    fn a_pool_at_zero_takes_its_first_replica_and_parks_again() {
        let empty = pool(vec![]);
        let mut book = book_at(0, &empty);
        let write = book.plan(1, &empty, 0).replicas.expect("one replica");
        assert_eq!((write.from, write.to), (0, 1));
        book.written(&write, 0);
        let one = pool(vec![load("p-1", 0, false)]);
        book.observe(&one, 3_000);
        assert_eq!(book.plan(0, &one, 4_000).drain, vec!["p-1".to_string()]);
        book.observe(&empty, 5_000);
        let write = book.plan(0, &empty, 5_000).replicas.expect("to zero");
        assert_eq!(
            write,
            ReplicaWrite {
                from: 1,
                to: 0,
                leaving: vec!["p-1".into()]
            }
        );
    }

    fn executors() -> impl Strategy<Value = Vec<ExecutorLoad>> {
        proptest::collection::vec((0..5u32, proptest::bool::weighted(0.2)), 0..12).prop_map(
            |loads| {
                loads
                    .into_iter()
                    .enumerate()
                    .map(|(i, (used, draining))| load(&format!("e{i}"), used, draining))
                    .collect()
            },
        )
    }

    proptest! {
        /// Going down never takes away more than the surplus: replicas lowered (all of
        /// them starting) plus executors drained are exactly supply − desired, only
        /// ready executors are drained, and going up asks for exactly what is missing.
        #[test]
        fn scale_down_never_takes_more_than_the_surplus(
            executors in executors(),
            extra in 0..6u32,
            desired in 0..20u32,
        ) {
            let state = pool(executors);
            let registered = state.executors.len() as u32;
            let mut book = book_at(registered + extra, &state);
            let before = book.observation(&state, 0).executors;
            let plan = book.plan(desired, &state, 0);
            let supply = before.supply();
            let (up, down) = plan.replicas.as_ref().map_or((0, 0), |w| {
                (w.to.saturating_sub(w.from), w.from.saturating_sub(w.to))
            });
            prop_assert_eq!(up, desired.saturating_sub(supply));
            prop_assert!(down <= before.starting);
            prop_assert_eq!(
                down + plan.drain.len() as u32,
                supply.saturating_sub(desired)
            );
            for name in &plan.drain {
                prop_assert!(state.executors.iter().any(|e| &e.name == name && !e.draining));
            }
        }

        /// However executors crash and the platform replaces them under new names, a
        /// pool kept at its count never asks for another replica, and no replacement is
        /// measured as a start.
        #[test]
        fn replaced_crashes_are_counted_once(
            count in 1..8usize,
            crashes in proptest::collection::vec((0..8usize, any::<bool>()), 1..40),
        ) {
            let mut state = pool((0..count).map(|i| load(&format!("e{i}"), 0, false)).collect());
            let mut book = book_at(count as u32, &state);
            let mut replaced = 0;
            let mut waiting = 0;
            for (step, (which, replace)) in crashes.into_iter().enumerate() {
                let now = step as u64 * 100;
                if replace && waiting > 0 {
                    waiting -= 1;
                    replaced += 1;
                    state.executors.push(load(&format!("r{replaced}"), 0, false));
                } else if !state.executors.is_empty() {
                    state.executors.remove(which % state.executors.len());
                    waiting += 1;
                }
                prop_assert!(book.observe(&state, now).ready.is_empty());
                let plan = book.plan(count as u32, &state, now);
                prop_assert_eq!(plan.replicas, None);
                prop_assert!(plan.drain.is_empty());
                prop_assert_eq!(book.observation(&state, now).executors.supply(), count as u32);
            }
        }
    }
}
