//! Marie's actors — Gateway, CapacityManager, Executor — the pure logic they call
//! (queues, placement, leases, retries), the job store and the built-in handlers.
//!
//! Actors hold state and move messages; every decision is made by plain code in
//! [`scheduling`], with time passed in.

#![warn(missing_docs)]

pub mod admission;
pub mod autoscale;
pub mod capacity_manager;
pub mod clock;
pub mod executor;
pub mod gateway;
pub mod handler;
pub mod handlers;
pub mod lookup;
pub mod scheduling;
pub mod store;
pub mod store_writer;
pub mod supervisor;
pub mod telemetry;
