//! The Supervisor's bookkeeping of one pool as plain code, with time passed in: which
//! executors are starting, ready or draining, the cold start measured from them, what
//! the policy observes, and what to do to bring the pool to the count the policy wants.
//! The Supervisor actor and the simulator (`marie-sim`) both keep one per pool.
//!
//! A book counts starts one of two ways: by name, when the backend names each executor
//! it starts (local, process); or by replica count, for a declarative backend whose
//! platform keeps a count per pool and names executors itself ([`PoolBook::declarative`]).

use std::collections::BTreeMap;

use marie_protocol::PoolState;

use super::replicas::{ReplicaCount, ReplicaRead, ReplicaWrite};
use super::victims::{Victim, choose_victims};
use super::{ArrivalRate, ExecutorCounts, PoolObservation, RunTime};

/// The first guess of an executor's cold start (`supervisor.cold_start_guess_ms`),
/// used until a start is measured, in milliseconds.
pub const COLD_START_GUESS_MS: u64 = 1_000;

/// Time constant of the Supervisor's smoothing of the pool's mean run time, ms: the
/// scheduler's mean of the first few runs moves fast; this keeps the policy steady.
const RUN_TIME_CONSTANT_MS: u64 = 60_000;

/// How a pool's executors stand, as the Supervisor tracks them.
#[derive(Debug)]
pub struct PoolBook {
    slots: u32,
    /// Executors asked for and not registered yet, with when they were asked for.
    starting: BTreeMap<String, u64>,
    /// A declarative pool's replica count: starts are counted, not named.
    replicas: Option<ReplicaCount>,
    /// Executors told to drain and not gone yet, with when they were told.
    draining: BTreeMap<String, u64>,
    cold_start_ms: u64,
    measured: bool,
    arrivals: ArrivalRate,
    run_time: RunTime,
    arrived_total: Option<u64>,
}

/// What changed in a pool's executors since the last look.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExecutorChanges {
    /// Starting executors that registered, with how long they took.
    pub ready: Vec<(String, u64)>,
    /// Draining executors that are gone: the backend may release them.
    pub drained: Vec<String>,
}

/// What to do to bring a pool to the desired count. The book already counts it done:
/// cancelled starts are no longer starting, drained executors are draining.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScalePlan {
    /// Executors to ask the backend for; report each one it starts with
    /// [`PoolBook::started`].
    pub start: u32,
    /// Executors still starting whose start is cancelled: the backend releases them.
    pub cancel: Vec<String>,
    /// Registered executors to drain (no new leases); the backend releases each once
    /// [`PoolBook::observe`] reports it gone (a declarative pool's next
    /// [`ScalePlan::replicas`] names it among the leaving).
    pub drain: Vec<String>,
    /// Declarative pools: the replica count to set (up by the missing executors, or down
    /// by drained executors gone and replicas not registered yet); report it made with
    /// [`PoolBook::written`]. Until then the book counts the pool as it was.
    pub replicas: Option<ReplicaWrite>,
    /// Slots the pool should have: the CapacityManager's `target`.
    pub target_slots: u64,
}

impl PoolBook {
    /// A book for a pool of executors with `slots` slots, guessing `cold_start_ms`
    /// until one is measured.
    pub fn new(slots: u32, cold_start_ms: u64, now_ms: u64) -> Self {
        PoolBook {
            slots,
            starting: BTreeMap::new(),
            replicas: None,
            draining: BTreeMap::new(),
            cold_start_ms,
            measured: false,
            arrivals: ArrivalRate::new(now_ms),
            run_time: RunTime::with_time_constant(RUN_TIME_CONSTANT_MS),
            arrived_total: None,
        }
    }

    /// A book for a declarative pool: the platform keeps its replica count and names
    /// its executors. Nothing is written until the count was read once
    /// ([`PoolBook::read_replicas`]).
    pub fn declarative(slots: u32, cold_start_ms: u64, now_ms: u64) -> Self {
        PoolBook {
            replicas: Some(ReplicaCount::default()),
            ..PoolBook::new(slots, cold_start_ms, now_ms)
        }
    }

    /// A declarative pool's replica count as set or adopted last; `None` before the
    /// first read, and for a pool whose executors are started by name.
    pub fn applied_replicas(&self) -> Option<u32> {
        self.replicas.as_ref().and_then(ReplicaCount::applied)
    }

    /// A declarative pool's platform reads `found` replicas at `now_ms`: the first read is
    /// adopted; `None` for a pool whose executors are started by name.
    pub fn read_replicas(&mut self, found: u32, now_ms: u64) -> Option<ReplicaRead> {
        Some(self.replicas.as_mut()?.read(found, now_ms))
    }

    /// Takes `found` as a declarative pool's count, whoever set it.
    pub fn adopt_replicas(&mut self, found: u32) {
        if let Some(count) = self.replicas.as_mut() {
            count.adopt(found);
        }
    }

    /// The backend made `write` at `now_ms`: the new replicas are starting from now;
    /// those taken off while starting are cancelled starts (a lower bound of the cold
    /// start).
    pub fn written(&mut self, write: &ReplicaWrite, now_ms: u64) {
        let Some(count) = self.replicas.as_mut() else {
            return;
        };
        for age in count.written(write, now_ms) {
            self.cancelled_after(age);
        }
    }

    /// The backend reported `write` failed; if a later read finds its count, it took
    /// effect after all and counts as Marie's.
    pub fn write_failed(&mut self, write: ReplicaWrite) {
        if let Some(count) = self.replicas.as_mut() {
            count.write_failed(write);
        }
    }

    /// Slots each executor offers.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The cold start: the guess until a start is measured, then the measurements
    /// averaged (each new one counting half). A start cancelled after longer than
    /// this raises it: it is a lower bound of the cold start.
    pub fn cold_start_ms(&self) -> u64 {
        self.cold_start_ms
    }

    /// Reads the CapacityManager's view of the pool: starting executors that showed
    /// up are ready (their cold start is measured), draining ones that left are gone;
    /// arrivals and the scheduler's mean run time feed the estimators.
    pub fn observe(&mut self, state: &PoolState, now_ms: u64) -> ExecutorChanges {
        let registered = |name: &str| state.executors.iter().any(|e| e.name == name);
        let mut changes = ExecutorChanges::default();
        let ready: Vec<(String, u64)> = match self.replicas.as_mut() {
            Some(count) => count.registered(state, now_ms),
            None => {
                let names: Vec<String> = self
                    .starting
                    .keys()
                    .filter(|n| registered(n))
                    .cloned()
                    .collect();
                names
                    .into_iter()
                    .map(|name| {
                        let asked = self.starting.remove(&name).unwrap_or(now_ms);
                        (name, asked)
                    })
                    .collect()
            }
        };
        for (name, asked) in ready {
            let took = now_ms.saturating_sub(asked);
            self.cold_start_ms = match self.measured {
                true => (self.cold_start_ms + took) / 2,
                false => took,
            };
            self.measured = true;
            changes.ready.push((name, took));
        }
        let gone: Vec<String> = self
            .draining
            .keys()
            .filter(|n| !registered(n))
            .cloned()
            .collect();
        for name in gone {
            self.draining.remove(&name);
            if let Some(count) = self.replicas.as_mut() {
                count.left(name.clone());
            }
            changes.drained.push(name);
        }
        let previous = self.arrived_total.replace(state.arrived_total);
        if let Some(previous) = previous {
            self.arrivals
                .record(now_ms, state.arrived_total.saturating_sub(previous));
        }
        if let Some(mean) = state.mean_run_ms {
            self.run_time.record(now_ms, mean);
        }
        changes
    }

    /// The policy's input.
    pub fn observation(&mut self, state: &PoolState, now_ms: u64) -> PoolObservation {
        PoolObservation {
            queued: clamp(state.queued),
            running: clamp(state.running),
            arrival_rate: self.arrivals.per_second(now_ms),
            mean_run_ms: self.run_time.mean_ms(),
            slots_per_executor: self.slots,
            executors: self.counts(state),
            starting_for_ms: match &self.replicas {
                Some(count) => count.starting_for_ms(now_ms),
                None => self
                    .starting
                    .values()
                    .map(|&asked| now_ms.saturating_sub(asked))
                    .collect(),
            },
            cold_start_ms: self.cold_start_ms,
        }
    }

    /// What to do to bring the pool to `desired` executors (ready plus starting):
    /// start the missing ones, or take away the surplus — those still starting first
    /// (cancelled), then idle, then least busy registered ones (drained, so no job is
    /// cut short). Draining executors are never woken: they are already leaving.
    ///
    /// A declarative pool's starts and cancels are one [`ScalePlan::replicas`] write:
    /// the count goes up by the missing executors, or down by the surplus still starting
    /// (the platform removes replicas not registered first) and by drained executors
    /// gone; the rest of the surplus is drained as above, as far as the count holds it
    /// (executors registered beyond the count are somebody else's).
    pub fn plan(&mut self, desired: u32, state: &PoolState, now_ms: u64) -> ScalePlan {
        let counts = self.counts(state);
        let supply = counts.supply();
        let missing = desired.saturating_sub(supply);
        let mut plan = ScalePlan {
            start: missing,
            target_slots: u64::from(desired) * u64::from(self.slots),
            ..ScalePlan::default()
        };
        let mut surplus = supply.saturating_sub(desired) as usize;
        if let Some(count) = &self.replicas {
            if count.applied().is_none() {
                return plan;
            }
            let down = counts.starting.min(surplus as u32);
            plan.start = 0;
            plan.replicas = count.write(missing, down);
            surplus -= down as usize;
            let drained = state
                .executors
                .iter()
                .filter(|e| e.draining && self.draining.contains_key(&e.name))
                .count() as u32;
            surplus = surplus.min(count.drainable(desired, drained, down) as usize);
        }
        if surplus == 0 {
            return plan;
        }
        for victim in choose_victims(&self.starting, &state.executors, surplus) {
            match victim {
                Victim::Starting(executor) => {
                    if let Some(asked) = self.starting.remove(&executor) {
                        self.cancelled_after(now_ms.saturating_sub(asked));
                    }
                    plan.cancel.push(executor);
                }
                Victim::Ready(executor) => {
                    self.draining.insert(executor.clone(), now_ms);
                    plan.drain.push(executor);
                }
            }
        }
        plan
    }

    /// A start cancelled `elapsed_ms` after it was asked for measured no cold start,
    /// but a lower bound of one: the start would have taken longer. An estimate below
    /// it rises to it (the guess is replaced, a measured value averaged with it), so
    /// a guess too low is not repeated start after cancelled start.
    fn cancelled_after(&mut self, elapsed_ms: u64) {
        if elapsed_ms <= self.cold_start_ms {
            return;
        }
        self.cold_start_ms = match self.measured {
            true => (self.cold_start_ms + elapsed_ms) / 2,
            false => elapsed_ms,
        };
    }

    /// The backend started `executor` (asked for at `now_ms`): it is starting until it
    /// registers.
    pub fn started(&mut self, executor: String, now_ms: u64) {
        self.starting.insert(executor, now_ms);
    }

    fn counts(&self, state: &PoolState) -> ExecutorCounts {
        let draining = state.executors.iter().filter(|e| e.draining).count() as u32;
        let registered = state.executors.len() as u32;
        let starting = match &self.replicas {
            // An executor draining on its own (its pod was deleted) holds no replica of
            // the count: the platform starts its replacement at once.
            Some(count) => count.starting(
                state
                    .executors
                    .iter()
                    .filter(|e| !e.draining || self.draining.contains_key(&e.name))
                    .count() as u32,
            ),
            None => self.starting.len() as u32,
        };
        ExecutorCounts {
            ready: registered - draining,
            starting,
            draining,
            parked: 0,
        }
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use marie_protocol::ExecutorLoad;
    use proptest::prelude::*;

    use super::super::victims::tests::load;
    use super::*;

    fn pool(executors: Vec<ExecutorLoad>) -> PoolState {
        PoolState {
            name: "p".into(),
            executors,
            ..PoolState::default()
        }
    }

    #[test]
    fn a_registered_starter_is_ready_with_its_cold_start_measured_and_a_drained_one_is_released() {
        let mut book = PoolBook::new(4, 1000, 0);
        book.started("e1".into(), 100);
        book.draining.insert("e0".into(), 50);
        let state = pool(vec![load("e1", 0, false)]);
        let changes = book.observe(&state, 400);
        assert_eq!(changes.ready, vec![("e1".to_string(), 300)]);
        assert_eq!(changes.drained, vec!["e0".to_string()]);
        assert_eq!(
            book.cold_start_ms(),
            300,
            "the first measurement replaces the guess"
        );
        let obs = book.observation(&state, 400);
        assert_eq!((obs.executors.ready, obs.executors.starting), (1, 0));
        book.started("e2".into(), 400);
        let starting = book.observation(&state, 450);
        assert_eq!(starting.executors.starting, 1);
        assert_eq!(starting.starting_for_ms, vec![50], "starting for 50 ms");
        let state = pool(vec![load("e1", 0, false), load("e2", 0, false)]);
        book.observe(&state, 500);
        assert_eq!(book.cold_start_ms(), 200, "later ones are averaged in");
    }

    #[test]
    fn a_cancelled_start_raises_a_lower_cold_start_estimate() {
        let mut book = PoolBook::new(4, 1000, 0);
        let state = pool(vec![load("a", 0, false)]);
        book.started("s1".into(), 0);
        assert_eq!(book.plan(1, &state, 500).cancel, vec!["s1".to_string()]);
        assert_eq!(book.cold_start_ms(), 1000, "half a second says nothing new");
        book.started("s2".into(), 1000);
        book.plan(1, &state, 31_000);
        assert_eq!(
            book.cold_start_ms(),
            30_000,
            "a start cancelled after 30 s took at least that long"
        );
        book.started("s3".into(), 40_000);
        book.observe(
            &pool(vec![load("a", 0, false), load("s3", 0, false)]),
            60_000,
        );
        assert_eq!(
            book.cold_start_ms(),
            20_000,
            "a measurement replaces the bound"
        );
        book.started("s4".into(), 60_000);
        let state = pool(vec![load("a", 0, false), load("s3", 0, false)]);
        book.plan(2, &state, 100_000);
        assert_eq!(
            book.cold_start_ms(),
            30_000,
            "and is averaged with a later bound"
        );
    }

    proptest! {
        /// However starts are cancelled, the estimate never falls, and a guess
        /// below the longest cancelled start has risen to at least it.
        #[test]
        fn cancelled_starts_only_raise_the_cold_start(
            guess in 1..5_000u64,
            elapsed in proptest::collection::vec(0..120_000u64, 1..20),
        ) {
            let state = pool(vec![load("a", 0, false)]);
            let mut book = PoolBook::new(4, guess, 0);
            let mut now = 0;
            for (i, took) in elapsed.iter().enumerate() {
                let before = book.cold_start_ms();
                book.started(format!("s{i}"), now);
                now += took;
                prop_assert_eq!(book.plan(1, &state, now).cancel.len(), 1);
                prop_assert!(book.cold_start_ms() >= before);
            }
            let longest = elapsed.iter().copied().max().unwrap_or(0);
            prop_assert_eq!(book.cold_start_ms(), guess.max(longest));
        }
    }

    #[test]
    fn growing_starts_the_missing_executors_and_sets_the_target() {
        let mut book = PoolBook::new(4, 1000, 0);
        book.started("s1".into(), 0);
        let state = pool(vec![load("a", 4, false), load("d", 1, true)]);
        let plan = book.plan(5, &state, 10);
        assert_eq!(
            plan,
            ScalePlan {
                start: 3,
                target_slots: 20,
                ..ScalePlan::default()
            },
            "one ready and one starting count; the draining one is not woken"
        );
    }

    #[test]
    fn shrinking_cancels_starts_then_drains_and_the_book_counts_it_done() {
        let mut book = PoolBook::new(4, 1000, 0);
        book.started("s1".into(), 0);
        let state = pool(vec![load("a", 3, false), load("b", 0, false)]);
        let plan = book.plan(1, &state, 10);
        assert_eq!(plan.start, 0);
        assert_eq!(plan.cancel, vec!["s1".to_string()]);
        assert_eq!(plan.drain, vec!["b".to_string()]);
        assert_eq!(plan.target_slots, 4);
        let state = pool(vec![load("a", 3, false), load("b", 0, true)]);
        assert_eq!(
            book.plan(1, &state, 20),
            ScalePlan {
                target_slots: 4,
                ..ScalePlan::default()
            }
        );
        let changes = book.observe(&pool(vec![load("a", 3, false)]), 30);
        assert_eq!(changes.drained, vec!["b".to_string()]);
    }
}
