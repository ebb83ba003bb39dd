//! The Supervisor's bookkeeping as plain code: which executors of a pool are starting,
//! ready or draining, what the policy observes, and which executors go first when the
//! pool shrinks.

use std::collections::BTreeMap;

use marie_decide::autoscale::{ArrivalRate, ExecutorCounts, PoolObservation, RunTime};
use marie_protocol::{ExecutorLoad, PoolState};

/// How a pool's executors stand, as the Supervisor tracks them.
#[derive(Debug)]
pub struct PoolBook {
    /// Slots each executor offers.
    pub slots: u32,
    /// Executors asked for and not registered yet, with when they were asked for.
    pub starting: BTreeMap<String, u64>,
    /// Executors told to drain and not gone yet.
    pub draining: BTreeMap<String, u64>,
    /// Measured time from asking for an executor to its registration (the guess until
    /// the first measurement replaces it).
    pub cold_start_ms: u64,
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

impl PoolBook {
    /// A book for a pool of executors with `slots` slots, guessing `cold_start_ms`
    /// until one is measured.
    pub fn new(slots: u32, cold_start_ms: u64, now_ms: u64) -> Self {
        PoolBook {
            slots,
            starting: BTreeMap::new(),
            draining: BTreeMap::new(),
            cold_start_ms,
            measured: false,
            arrivals: ArrivalRate::new(now_ms),
            run_time: RunTime::with_time_constant(60_000),
            arrived_total: None,
        }
    }

    /// Reads the CapacityManager's view of the pool: starting executors that showed
    /// up are ready (their cold start is measured), draining ones that left are gone.
    pub fn observe(&mut self, state: &PoolState, now_ms: u64) -> ExecutorChanges {
        let registered = |name: &str| state.executors.iter().any(|e| e.name == name);
        let mut changes = ExecutorChanges::default();
        let ready: Vec<String> = self
            .starting
            .keys()
            .filter(|n| registered(n))
            .cloned()
            .collect();
        for name in ready {
            let asked = self.starting.remove(&name).unwrap_or(now_ms);
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
        let draining = state.executors.iter().filter(|e| e.draining).count() as u32;
        let ready = state.executors.len() as u32 - draining;
        PoolObservation {
            queued: clamp(state.queued),
            running: clamp(state.running),
            arrival_rate: self.arrivals.per_second(now_ms),
            mean_run_ms: self.run_time.mean_ms(),
            slots_per_executor: self.slots,
            executors: ExecutorCounts {
                ready,
                starting: self.starting.len() as u32,
                draining,
                parked: 0,
            },
            cold_start_ms: self.cold_start_ms,
        }
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One executor to take away when a pool shrinks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Victim {
    /// Not registered yet: cancel its start.
    Starting(String),
    /// Registered: drain it, then release it.
    Ready(String),
}

/// Picks `count` executors to take away: those still starting first (they run
/// nothing), then idle ones, then the least busy; ties go to the newest name, so
/// long-lived executors stay.
pub fn choose_victims(
    starting: &BTreeMap<String, u64>,
    executors: &[ExecutorLoad],
    count: usize,
) -> Vec<Victim> {
    let mut victims: Vec<Victim> = starting
        .keys()
        .rev()
        .take(count)
        .cloned()
        .map(Victim::Starting)
        .collect();
    let mut ready: Vec<&ExecutorLoad> = executors.iter().filter(|e| !e.draining).collect();
    ready.sort_by(|a, b| a.used.cmp(&b.used).then_with(|| b.name.cmp(&a.name)));
    victims.extend(
        ready
            .into_iter()
            .take(count - victims.len())
            .map(|e| Victim::Ready(e.name.clone())),
    );
    victims
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, used: u32, draining: bool) -> ExecutorLoad {
        ExecutorLoad {
            name: name.into(),
            slots: 4,
            used,
            draining,
        }
    }

    #[test]
    fn starting_executors_go_first_then_idle_then_least_busy() {
        let starting = BTreeMap::from([("s1".to_string(), 0)]);
        let executors = [
            load("a", 3, false),
            load("b", 0, false),
            load("c", 1, false),
            load("d", 0, true),
        ];
        let victims = choose_victims(&starting, &executors, 3);
        assert_eq!(
            victims,
            vec![
                Victim::Starting("s1".into()),
                Victim::Ready("b".into()),
                Victim::Ready("c".into())
            ]
        );
    }

    #[test]
    fn a_registered_starter_is_ready_with_its_cold_start_measured_and_a_drained_one_is_released() {
        let mut book = PoolBook::new(4, 1000, 0);
        book.starting.insert("e1".into(), 100);
        book.draining.insert("e0".into(), 50);
        let state = PoolState {
            name: "p".into(),
            executors: vec![load("e1", 0, false)],
            ..PoolState::default()
        };
        let changes = book.observe(&state, 400);
        assert_eq!(changes.ready, vec![("e1".to_string(), 300)]);
        assert_eq!(changes.drained, vec!["e0".to_string()]);
        assert_eq!(
            book.cold_start_ms, 300,
            "the first measurement replaces the guess"
        );
        let obs = book.observation(&state, 400);
        assert_eq!((obs.executors.ready, obs.executors.starting), (1, 0));
        book.starting.insert("e2".into(), 400);
        let state = PoolState {
            executors: vec![load("e1", 0, false), load("e2", 0, false)],
            ..state
        };
        book.observe(&state, 500);
        assert_eq!(book.cold_start_ms, 200, "later ones are averaged in");
    }
}
