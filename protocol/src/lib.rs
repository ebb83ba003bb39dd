//! Wire types of Marie: the job model, the capacity report, the actor messages and the
//! codec that carries them between nodes.
//!
//! Everything here can cross a process boundary: no actor references, no clocks, no
//! runtime. Actors and nodes build on these types; this crate knows neither.
//!
//! May depend on: serde, bincode and ractor's message traits (types only). Every other
//! Marie crate depends on this one, and this one on none of them.

#![warn(missing_docs)]

pub mod capacity;
pub mod codec;
pub mod error;
pub mod job;
pub mod membership;
pub mod messages;
pub mod names;
pub mod store;

pub use capacity::{
    CapacityReport, CapacityTotals, ExecutorLoad, PoolCapacity, PoolLoad, PoolState,
};
pub use codec::MAX_FRAME_PAYLOAD;
pub use error::{GatewayError, HandlerError, HandlerErrorKind};
pub use job::{
    DedupPolicy, JobId, JobMetadata, JobSpec, JobState, JobStatus, Outcome, TraceContext,
};
