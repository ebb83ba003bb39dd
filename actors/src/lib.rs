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
//!
//! # The life of a job
//!
//! Each hop names the file and function, and what you hold there.
//!
//! 1. **Submit.** A client (`marie-client`, `Client::submit`; or the node's HTTP API)
//!    sends `GatewayMsg::Submit(JobSpec)`. `gateway.rs`, `GatewayState::submit`: the
//!    spec is admitted (`marie_decide::admission::admit`) into a `NewJob`, then
//!    `accept` → `store_and_queue` writes it to the store (`GatewayStore::insert`; on
//!    another node through `remote_store.rs` and `store_service.rs`, unless the store
//!    is Postgres, which every node writes itself). Once durable the client is
//!    answered `Submitted` and the Gateway casts `CapacityMsg::Enqueue` with a
//!    `QueuedJob`. A job whose cast is lost, or that another node committed to a
//!    shared store, reaches the CapacityManager from the store (`intake.rs`: the
//!    store's announcements, and a reconcile sweep on `CapacityMsg::Tick`).
//! 2. **Queue and place.** `capacity_manager.rs`, `CapacityState::enqueue` hands the
//!    `QueuedJob` to the `Scheduler` (`marie_decide::scheduling`); after every message
//!    `Scheduler::place` picks an executor with a free slot and answers
//!    `Action::Start`. `CapacityState::wake_supervisor` wakes the Supervisor for a pool
//!    that cannot start its jobs at once.
//! 3. **Lease.** `CapacityState::carry_out` → `start_run` → `lease_grant` builds a
//!    `LeaseGrant` (the job's `RunRef`: id and attempt) and casts
//!    `ExecutorMsg::Lease`; the `JobUpdate::Started` goes to the `StoreWriter`.
//! 4. **Run.** `executor.rs`, `ExecutorState::start` runs the handler
//!    (`marie_handlers::Handler::run`) in a task with the `JobInput`; its end comes back
//!    to the executor as `ExecutorMsg::RunEnded(Completion)`, forwarded to the
//!    CapacityManager as `CapacityMsg::Completed`.
//! 5. **End.** `Scheduler::complete` answers `Action::Finished` (or `Action::Requeued`
//!    for another attempt); `CapacityState::carry_out` records metrics and spans
//!    (`record_end`) and hands a `JobUpdate::Finished` to the `StoreWriter`.
//! 6. **Answer.** `store_writer.rs`, `run`: once the end is durable, the writer casts
//!    `GatewayMsg::JobsFinished(FinishedJobs)` to every Gateway; `gateway.rs`,
//!    `answer_waiters` reads the final `JobStatus` from the store and answers each
//!    client waiting in `GatewayMsg::Wait`. A write the store refuses for good is
//!    answered to nobody: the CapacityManager fails and the root restarts it.
//!
//! Meanwhile executors heartbeat (`CapacityMsg::Heartbeat`), and `CapacityMsg::Tick`
//! expires leases and timeouts (`Scheduler::tick`); the Supervisor (`supervisor/`)
//! reads `CapacityMsg::PoolStates` and starts or drains executors.

#![warn(missing_docs)]

pub mod capacity_manager;
pub mod clock;
pub mod executor;
pub mod gateway;
pub mod intake;
pub mod lookup;
pub mod remote_store;
pub mod root;
pub mod store_service;
pub mod store_writer;
pub mod supervisor;
pub mod telemetry;
pub mod wait_check;
