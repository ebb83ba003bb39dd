//! The autoscaling test bench: a discrete-event [`simulator`] of one pool that drives
//! the CapacityManager's scheduler and the Supervisor's bookkeeping through a simulated
//! [`backend`], the
//! [`scenarios`] it replays, the HPA-like and KEDA-like ([`hpa`]) and Ray-Serve-like
//! ([`ray_serve`]) reference policies, the [`comparison`] that scores them against
//! Marie's policy (`marie_decide::autoscale`), and the [`decision_delay`] of each on a
//! burst, timed by the run's [`milestones`]. See `README.md` beside this crate for the
//! model, the scenarios and both tables ([`table`]).
//!
//! Not shipped: `publish = false`, and the node binary does not link it, so the
//! reference policies and `rand` stay out of what ships.
//!
//! May depend on: `marie-decide` (the scheduler, the Supervisor's bookkeeping and the
//! policy under test), `marie-protocol` (the job and pool types they speak), `uuid`
//! (the simulated jobs' ids), and `rand` (the seeded draws). Nothing with actors, a
//! runtime or I/O.

#![warn(missing_docs)]

pub mod backend;
pub mod comparison;
pub mod decision_delay;
pub mod hpa;
pub mod milestones;
pub mod ray_serve;
pub mod scenarios;
pub mod simulator;
pub mod table;

#[cfg(test)]
mod properties;

/// `ready` executors of 4 slots (20 s cold start) with `queued` and `running` jobs: the
/// pool the reference policies' tests look at.
#[cfg(test)]
fn loaded(ready: u32, queued: u32, running: u32) -> marie_decide::autoscale::PoolObservation {
    marie_decide::autoscale::PoolObservation {
        queued,
        running,
        ..marie_decide::autoscale::PoolObservation::idle(ready, 4, 20_000)
    }
}
