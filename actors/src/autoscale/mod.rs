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
//! The [`simulator`] replays [`scenarios`] through this policy and through the
//! HPA-like ([`hpa`]) and Ray-Serve-like ([`ray_serve`]) ones; [`comparison`] scores
//! them side by side. See `README.md` beside this file for the algorithm, the
//! properties it keeps and the comparison table.

pub mod comparison;
mod decision;
mod demand;
mod estimate;
pub mod hpa;
mod limits;
mod observation;
mod policy;
pub mod ray_serve;
pub mod scenarios;
mod settings;
pub mod simulator;
mod window;

#[cfg(test)]
mod properties;

pub use decision::{Decision, Reason};
pub use estimate::{ArrivalRate, RunTime};
pub use observation::{ExecutorCounts, PoolObservation};
pub use policy::AutoscalePolicy;
pub use settings::{AutoscaleSettings, RateLimit, ScaleToZero, SettingsError};
