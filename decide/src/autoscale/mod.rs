//! The Supervisor's decisions as plain code: how many executors each pool should have,
//! and why. No actor, clock or I/O inside: time comes in as milliseconds on a monotonic
//! axis, the pool's state as a [`PoolObservation`], and the answer goes out as a
//! [`Decision`] with a [`Reason`] to log and export.
//!
//! The Supervisor keeps one [`AutoscalePolicy`] and one [`PoolBook`] per pool. Every
//! tick, and whenever the CapacityManager wakes it ([`should_wake`]), it hands the
//! pool's state to the book ([`PoolBook::observe`], [`PoolBook::observation`]), asks
//! the policy ([`AutoscalePolicy::decide`]), and carries out the book's
//! [`PoolBook::plan`] — start, cancel, drain — through its backend. The simulator of
//! `marie-sim` does the same with a simulated backend, so what it scores is this code.
//!
//! [`limits`] (rate limits over a period) and [`window`] (stabilization windows) are
//! public because the reference policies of `marie-sim` are built from the same parts.
//!
//! See `README.md` beside this file for the algorithm and the properties it keeps; the
//! simulator that compares it with HPA-like and Ray-Serve-like policies is `marie-sim`.

mod book;
mod decision;
mod demand;
mod estimate;
pub mod limits;
mod observation;
mod policy;
mod replica_sync;
mod replicas;
mod retry;
mod settings;
mod victims;
mod wake;
pub mod window;

#[cfg(test)]
mod properties;

pub use book::{COLD_START_GUESS_MS, ExecutorChanges, PoolBook, ScalePlan};
pub use decision::{Decision, Reason};
pub use estimate::{ArrivalRate, RunTime};
pub use observation::{ExecutorCounts, PoolObservation};
pub use policy::AutoscalePolicy;
pub use replica_sync::{REPLICA_RESYNC_MS, ReplicaEvent, ReplicaSync};
pub use replicas::{ReplicaRead, ReplicaWrite};
pub use retry::{RETRY_BASE_MS, RETRY_MAX_MS, Retry};
pub use settings::{AutoscaleSettings, RateLimit, ScaleToZero, SettingsError};
pub use wake::{SUPERVISOR_TICK_MS, WAKE_EVERY_MS, should_wake};
