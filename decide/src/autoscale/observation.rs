//! What the policy reads about one pool at one tick.

/// Executors of one pool by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecutorCounts {
    /// Registered and taking work.
    pub ready: u32,
    /// Asked for and not ready yet (spawning, loading a model).
    pub starting: u32,
    /// Taking no new work, finishing their running jobs before they park.
    pub draining: u32,
    /// Parked: not supply; the backend may wake one instead of starting a new one.
    pub parked: u32,
}

impl ExecutorCounts {
    /// Executors that are or will be taking work: ready plus starting. This is the
    /// count the policy compares its desired count with.
    pub fn supply(&self) -> u32 {
        self.ready.saturating_add(self.starting)
    }
}

/// One pool at one instant, as the CapacityManager sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolObservation {
    /// Jobs waiting for a slot.
    pub queued: u32,
    /// Jobs running, on every executor of the pool (draining ones included).
    pub running: u32,
    /// Jobs arriving per second, smoothed (see [`super::ArrivalRate`]). A batch
    /// submitted at once is backlog, not rate: the estimator keeps it out.
    pub arrival_rate: f64,
    /// Mean run time of a job of this pool, in milliseconds (see [`super::RunTime`],
    /// or Little's law: running ÷ finish rate). `None` before any job has finished:
    /// the policy then gives every queued job a slot.
    pub mean_run_ms: Option<u64>,
    /// Slots each executor offers.
    pub slots_per_executor: u32,
    /// Executors by state.
    pub executors: ExecutorCounts,
    /// How long each starting executor has been starting, in milliseconds (one entry
    /// per starting executor, in any order). A start not listed counts as asked for
    /// just now: it does no work before a whole cold start has passed.
    pub starting_for_ms: Vec<u64>,
    /// Measured time from asking for an executor to its first free slot, in
    /// milliseconds (for a parked executor the backend would wake, its wake time).
    pub cold_start_ms: u64,
}

impl PoolObservation {
    /// An idle pool of `ready` executors with `slots` slots each and the given cold
    /// start: a starting point for building observations.
    pub fn idle(ready: u32, slots: u32, cold_start_ms: u64) -> Self {
        PoolObservation {
            queued: 0,
            running: 0,
            arrival_rate: 0.0,
            mean_run_ms: None,
            slots_per_executor: slots,
            executors: ExecutorCounts {
                ready,
                ..ExecutorCounts::default()
            },
            starting_for_ms: Vec::new(),
            cold_start_ms,
        }
    }

    /// Nothing queued and nothing running.
    pub fn is_idle(&self) -> bool {
        self.queued == 0 && self.running == 0
    }
}
