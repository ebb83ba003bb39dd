//! Marie's actors: the Gateway, the CapacityManager, the Executor and the Supervisor,
//! the store service that serves Gateways on other nodes, the root that supervises a
//! node's actors, and what they report about themselves (telemetry).
//!
//! Time is tokio's (see [`clock`]), so `tests/` runs these actors in-process on paused
//! time; each file there is its own binary, because actors find each other in the
//! process-global `ractor::pg` registry.
//!
//! Actors hold state and move messages; every decision is made by plain code in
//! `marie-decide` (admission, scheduling, the autoscale policy), with time passed in.
//! Jobs are kept by `marie-store`, and run by the handlers of `marie-handlers`.
//!
//! May depend on: `marie-protocol`, `marie-decide`, `marie-store`, `marie-handlers`,
//! ractor, tokio and the OpenTelemetry API. Never on the node (configuration, HTTP,
//! CLI), on a particular handler or model, or on `marie-sim`.

#![warn(missing_docs)]

pub mod capacity_manager;
pub mod clock;
pub mod executor;
pub mod gateway;
pub mod lookup;
pub mod remote_store;
pub mod root;
pub mod store_service;
pub mod store_writer;
pub mod supervisor;
pub mod telemetry;
