//! The decisions of the CapacityManager as plain code: queues, placement, leases and
//! retries. No actor, clock or I/O inside: time comes in as milliseconds on a monotonic
//! axis, and every change comes out as an [`Action`] for the actor to carry out.
//!
//! See `README.md` beside this file for the rules and the properties they keep.

mod backoff;
mod intake;
mod placement;
mod queue;
mod rate;
mod scheduler;

#[cfg(test)]
mod properties;

pub use backoff::backoff_ms;
pub use intake::Intake;
pub use placement::{PlacementCandidate, choose_executor};
pub use queue::PoolQueue;
pub use rate::RateMeter;
pub use scheduler::{Action, PoolSetup, Scheduler, SchedulerConfig};
