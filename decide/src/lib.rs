//! Marie's decisions as plain code: whether a Gateway takes a job ([`admission`]), which
//! executor runs it and what happens when a run ends or is lost ([`scheduling`]), and
//! how many executors a pool should have ([`autoscale`]), and when a server node takes,
//! renews or gives up the leader's lease ([`leadership`]).
//!
//! Nothing here runs, waits, sends or stores: no actor, no runtime, no clock, no I/O.
//! Time comes in as milliseconds on a monotonic axis, the state of the world as plain
//! values, and every decision goes out as a value for an actor to carry out. That is
//! what lets the hard parts be tested exactly — unit tests, property tests, and
//! simulations of hours of traffic in milliseconds (`marie-sim`).
//!
//! May depend on: `marie-protocol` (the job's vocabulary: ids, specs, states, reports),
//! `serde` (the settings are read from the configuration as they are) and `thiserror`.
//! Never on ractor, tokio, rusqlite or another Marie crate; `marie-actors` calls this
//! crate, not the other way round.
//!
//! Named `decide` rather than `policy`: "policy" already names one of its parts (the
//! autoscale policy) and the HPA-like and Ray-Serve-like reference policies of
//! `marie-sim`, while the scheduler here is a state machine of queues and leases as much
//! as a policy. What the crate holds in common is that it decides.

#![warn(missing_docs)]

pub mod admission;
pub mod autoscale;
pub mod leadership;
pub mod scheduling;
