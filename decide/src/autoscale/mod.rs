//! The Supervisor's decisions as plain code: how many executors each pool should have,
//! and why. No actor, clock or I/O inside: time comes in as milliseconds on a monotonic
//! axis, the pool's state as a [`PoolObservation`], and the answer goes out as a
//! [`Decision`] with a [`Reason`] to log and export.
//!
//! An actor keeps one [`AutoscalePolicy`] per pool (plus, if it likes, an
//! [`ArrivalRate`] and a [`RunTime`] to fill the observation) and calls
//! [`AutoscalePolicy::decide`] every tick and whenever a job is queued for a pool with
//! no executor.
//!
//! [`limits`] (rate limits over a period) and [`window`] (stabilization windows) are
//! public because the reference policies of `marie-sim` are built from the same parts.
//!
//! See `README.md` beside this file for the algorithm and the properties it keeps; the
//! simulator that compares it with HPA-like and Ray-Serve-like policies is `marie-sim`.

mod decision;
mod demand;
mod estimate;
pub mod limits;
mod observation;
mod policy;
mod settings;
pub mod window;

#[cfg(test)]
mod properties;

pub use decision::{Decision, Reason};
pub use estimate::{ArrivalRate, RunTime};
pub use observation::{ExecutorCounts, PoolObservation};
pub use policy::AutoscalePolicy;
pub use settings::{AutoscaleSettings, RateLimit, ScaleToZero, SettingsError};
