//! The simulated backend: what the Supervisor's `ScaleBackend` and the executors it
//! starts do, in simulated time. An executor it starts registers with the
//! CapacityManager's scheduler after a cold start drawn uniformly within ±20 % of the
//! pool's; one released before that never registers. A draining executor stops itself
//! once its last run has ended, as a real one does. Every executor is paid for from its
//! start to its stop or release.

use std::collections::BTreeSet;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// Starts, drains and releases the simulated executors of one pool.
#[derive(Debug)]
pub struct SimBackend {
    cold_start_ms: u64,
    rng: ChaCha8Rng,
    next: u64,
    /// Started and not registered yet.
    starting: BTreeSet<String>,
    /// Told to drain and not stopped yet.
    draining: BTreeSet<String>,
    /// Starting, registered or draining: what is paid for.
    alive: BTreeSet<String>,
    /// Executors started (cold starts paid).
    pub started: u32,
    /// Most executors alive at once.
    pub peak: u32,
}

impl SimBackend {
    /// A backend whose starts take `cold_start_ms` ± 20 %, drawn from `seed`.
    pub fn new(cold_start_ms: u64, seed: u64) -> Self {
        SimBackend {
            cold_start_ms,
            rng: ChaCha8Rng::seed_from_u64(seed),
            next: 0,
            starting: BTreeSet::new(),
            draining: BTreeSet::new(),
            alive: BTreeSet::new(),
            started: 0,
            peak: 0,
        }
    }

    /// An executor already running when the simulation begins; register it at once.
    pub fn present(&mut self) -> String {
        self.add()
    }

    /// Asks for one more executor: its name, and when it will register.
    pub fn start(&mut self, now_ms: u64) -> (String, u64) {
        let name = self.add();
        self.starting.insert(name.clone());
        self.started += 1;
        let drawn = self.cold_start_ms as f64 * (0.8 + 0.4 * self.rng.random::<f64>());
        (name, now_ms + drawn.round() as u64)
    }

    /// The executor's cold start is over: true if it should register (its start was
    /// not cancelled).
    pub fn ready(&mut self, executor: &str) -> bool {
        self.starting.remove(executor)
    }

    /// The Supervisor drains the executor: it stops once its runs have ended.
    pub fn drain(&mut self, executor: &str) {
        self.draining.insert(executor.to_owned());
    }

    /// Whether the executor was told to drain and has not stopped yet.
    pub fn is_draining(&self, executor: &str) -> bool {
        self.draining.contains(executor)
    }

    /// The drained executor stops: no longer paid for.
    pub fn stop(&mut self, executor: &str) {
        self.draining.remove(executor);
        self.alive.remove(executor);
    }

    /// The Supervisor lets go of an executor whose start is cancelled, or that has
    /// drained and stopped.
    pub fn release(&mut self, executor: &str) {
        self.starting.remove(executor);
        self.stop(executor);
    }

    /// Executors paid for now.
    pub fn alive(&self) -> usize {
        self.alive.len()
    }

    /// A new executor, named so that names sort in the order executors were made (the
    /// newest goes first when the pool shrinks).
    fn add(&mut self) -> String {
        let name = format!("sim-{:06}", self.next);
        self.next += 1;
        self.alive.insert(name.clone());
        self.peak = self.peak.max(self.alive.len() as u32);
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_registers_after_the_drawn_cold_start_unless_released() {
        let mut backend = SimBackend::new(10_000, 1);
        let (first, at) = backend.start(5_000);
        assert!((13_000..=17_000).contains(&at), "{at}");
        let (second, _) = backend.start(5_000);
        assert!(first < second, "names sort by age");
        assert_eq!((backend.alive(), backend.started, backend.peak), (2, 2, 2));
        backend.release(&second);
        assert!(backend.ready(&first));
        assert!(!backend.ready(&second), "a cancelled start never registers");
        assert_eq!(backend.alive(), 1);
        backend.drain(&first);
        assert!(backend.is_draining(&first));
        backend.stop(&first);
        assert_eq!(backend.alive(), 0);
    }
}
