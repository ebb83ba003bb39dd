//! The Supervisor: scales executor pools by queue pressure. It ticks (and wakes at once
//! when a job is queued for a pool with no executor or left waiting for a slot), reads every pool from the
//! CapacityManager, asks each pool's [`AutoscalePolicy`] for the desired executor
//! count, sets the pool's `target`, exports it as `marie_supervisor_desired_executors`
//! (with the measured cold start as `marie_supervisor_cold_start_seconds`), logs each
//! change with its reason (also kept in the process's [`journal`] for the HTTP API), and has
//! the pool's backend ([`PoolBackend`]) carry it out.
//!
//! Scale-down is lossless: the executor to go (still starting first, then idle, then
//! least busy) is drained — no new leases, its running jobs finish — and released only
//! once it has left. The bookkeeping behind this (starting, draining, the measured cold
//! start, the plan) is `marie_decide::autoscale::PoolBook`, plain code that the
//! simulator of `marie-sim` drives too; this actor carries its plan out.
//!
//! Each pool has its own backend. A [`ScaleBackend`] starts executors by name and
//! releases them (local, process, external). A [`ReplicaBackend`] is a platform that
//! keeps a replica count per pool and names executors itself (a Kubernetes
//! Deployment): the Supervisor adopts the count it finds at start (a restarted server
//! writes nothing for it), counts replicas not registered yet as starting (a crashed
//! pod the platform replaces is one of them), raises the count for a burst at once on
//! the CapacityManager's wake (no read before the write), lowers it first by replicas
//! still starting and otherwise drains executors and then takes their replicas off by
//! name. It reads the count again every resync interval: a count it did not set means
//! somebody else scales the pool, which pauses it (no more writes, gauge
//! `marie_supervisor_scaling_paused` at 1) until [`SupervisorMsg::Resume`]. Failures
//! are logged once per kind, counted in `marie_supervisor_backend_errors_total` and
//! retried with backoff (`replica_pool`).

mod backend;
pub mod journal;
mod local;
mod pool;
mod replica_pool;
mod replicas;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use marie_protocol::PoolState;
use marie_protocol::messages::{
    CapacityMsg, ExecutorName, PoolStatesQuery, PoolTarget, SupervisorMsg, Tick,
};
use marie_protocol::names::SUPERVISOR_GROUP;
use opentelemetry::KeyValue;
use opentelemetry::metrics::ObservableGauge;
use ractor::{Actor, ActorProcessingErr, ActorRef, pg};

pub use backend::{BackendError, ExternalBackend, ScaleBackend};
pub use local::{LocalBackend, LocalPool};
pub use pool::{PoolBackend, REPLICA_RESYNC, ScaledPool};
pub use replicas::{ReplicaBackend, ReplicaError, ReplicaFailure};

use crate::clock::MonotonicClock;
use crate::lookup;
use marie_decide::autoscale::{AutoscalePolicy, PoolBook};
use replica_pool::ReplicaPool;

/// How long the Supervisor waits for the CapacityManager.
const MANAGER_TIMEOUT: Duration = Duration::from_secs(2);

/// What the Supervisor starts with.
pub struct SupervisorArgs {
    /// The pools it scales, each with its backend.
    pub pools: Vec<ScaledPool>,
    /// How often it decides.
    pub tick: Duration,
}

/// The Supervisor actor.
pub struct Supervisor;

struct Scaled {
    policy: AutoscalePolicy,
    book: PoolBook,
    desired: Option<u32>,
    carrier: Carrier,
}

/// Who carries out one pool's plan.
enum Carrier {
    /// Starts and releases executors by name.
    Executors(Arc<dyn ScaleBackend>),
    /// Sets the pool's replica count on a platform.
    Replicas(ReplicaPool),
}

/// The Supervisor's state.
pub struct SupervisorState {
    pools: BTreeMap<String, Scaled>,
    clock: MonotonicClock,
    exported: Arc<Mutex<BTreeMap<String, Exported>>>,
    _gauges: [ObservableGauge<f64>; 3],
}

/// What the Supervisor exports per pool.
#[derive(Clone, Copy, Debug, Default)]
struct Exported {
    desired: u32,
    cold_start_ms: u64,
    /// Declarative pools: whether somebody else's count paused the pool.
    paused: Option<bool>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        pg::join(SUPERVISOR_GROUP.to_string(), vec![myself.get_cell()]);
        let clock = MonotonicClock::start();
        let exported: Arc<Mutex<BTreeMap<String, Exported>>> = Arc::default();
        let gauge = |name: &'static str,
                     description: &'static str,
                     value: fn(&Exported) -> Option<f64>| {
            let read = exported.clone();
            opentelemetry::global::meter("marie")
                .f64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |observer| {
                    for (pool, e) in read.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                        if let Some(value) = value(e) {
                            observer.observe(value, &[KeyValue::new("executor", pool.clone())]);
                        }
                    }
                })
                .build()
        };
        let gauges = [
            gauge(
                "marie_supervisor_desired_executors",
                "Executors the Supervisor wants per pool",
                |e| Some(f64::from(e.desired)),
            ),
            gauge(
                "marie_supervisor_cold_start_seconds",
                "Measured time from asking for an executor to its first free slot, per pool",
                |e| Some(e.cold_start_ms as f64 / 1000.0),
            ),
            gauge(
                "marie_supervisor_scaling_paused",
                "1 while somebody else sets a declarative pool's replica count and the Supervisor stands back",
                |e| e.paused.map(|paused| f64::from(u8::from(paused))),
            ),
        ];
        let errors = opentelemetry::global::meter("marie")
            .u64_counter("marie_supervisor_backend_errors_total")
            .with_description(
                "Failed reads and writes of a declarative pool's replica count, by kind",
            )
            .build();
        let pools = args
            .pools
            .into_iter()
            .map(|p| {
                let (book, carrier) = match p.backend {
                    PoolBackend::Executors(backend) => (
                        PoolBook::new(p.slots, p.cold_start_guess_ms, 0),
                        Carrier::Executors(backend),
                    ),
                    PoolBackend::Replicas { backend, resync } => (
                        PoolBook::declarative(p.slots, p.cold_start_guess_ms, 0),
                        Carrier::Replicas(ReplicaPool::new(backend, resync, errors.clone())),
                    ),
                };
                let scaled = Scaled {
                    policy: AutoscalePolicy::new(p.settings),
                    book,
                    desired: None,
                    carrier,
                };
                (p.name, scaled)
            })
            .collect();
        myself.send_interval(args.tick, || SupervisorMsg::Tick(Tick));
        myself.cast(SupervisorMsg::Tick(Tick))?;
        Ok(SupervisorState {
            pools,
            clock,
            exported,
            _gauges: gauges,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // OpenTelemetry keeps the gauges' callbacks for the life of the process: a
        // stopped Supervisor (a leader that stepped down) exports nothing.
        state
            .exported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        journal::forget_pools();
        let mut stopped: Vec<&Arc<dyn ScaleBackend>> = Vec::new();
        for scaled in state.pools.values() {
            if let Carrier::Executors(backend) = &scaled.carrier
                && !stopped.iter().any(|b| Arc::ptr_eq(b, backend))
            {
                backend.shutdown().await;
                stopped.push(backend);
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (only, tick) = match msg {
            SupervisorMsg::Wake(pool) => (Some(pool.0), false),
            SupervisorMsg::Tick(_) => (None, true),
            SupervisorMsg::Resume(pool) => {
                state.resume(&pool.0);
                (Some(pool.0), false)
            }
        };
        let Some(manager) = lookup::capacity_manager() else {
            return Ok(());
        };
        let states = match manager
            .call(
                |reply| CapacityMsg::PoolStates(PoolStatesQuery, reply),
                Some(MANAGER_TIMEOUT),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(states)) => states.0,
            _ => return Ok(()),
        };
        for pool_state in states {
            if only.as_ref().is_some_and(|p| *p != pool_state.name) {
                continue;
            }
            state.scale(&manager, &pool_state, tick).await;
        }
        Ok(())
    }
}

impl SupervisorState {
    /// An operator gives a paused declarative pool back to the Supervisor.
    fn resume(&mut self, pool: &str) {
        match self.pools.get_mut(pool).map(|scaled| &mut scaled.carrier) {
            Some(Carrier::Replicas(replicas)) => replicas.resume(pool),
            Some(Carrier::Executors(_)) => {
                tracing::warn!(
                    pool,
                    "nothing to resume: the pool is not scaled through a replica count"
                );
            }
            None => tracing::warn!(
                pool,
                "nothing to resume: the Supervisor does not scale this pool"
            ),
        }
    }

    /// One decision for one pool, carried out (`tick`: on the timer, not a wake).
    async fn scale(&mut self, manager: &ActorRef<CapacityMsg>, pool_state: &PoolState, tick: bool) {
        let now = self.clock.now_ms();
        let Some(scaled) = self.pools.get_mut(&pool_state.name) else {
            return;
        };
        let pool = pool_state.name.as_str();
        let Scaled {
            policy,
            book,
            desired,
            carrier,
        } = scaled;
        if let Carrier::Replicas(replicas) = carrier {
            replicas.read(pool, book, now, tick).await;
        }
        let changes = book.observe(pool_state, now);
        for (executor, took_ms) in changes.ready {
            tracing::info!(pool, %executor, cold_start_ms = took_ms, "executor ready");
        }
        for executor in changes.drained {
            match carrier {
                Carrier::Executors(backend) => backend.release(pool, &executor).await,
                Carrier::Replicas(_) => {
                    tracing::info!(pool, %executor, "drained executor left; its replica goes with the next write");
                }
            }
        }
        let observation = book.observation(pool_state, now);
        let decision = policy.decide(now, &observation);
        if *desired != Some(decision.desired) {
            let backend = match carrier {
                Carrier::Executors(backend) => backend.name(),
                Carrier::Replicas(replicas) => replicas.name(),
            };
            tracing::info!(
                pool,
                from = observation.executors.supply(),
                to = decision.desired,
                reason = %decision.reason,
                backend,
                "scaling"
            );
            journal::record(journal::DecisionRecord {
                at_ms: journal::unix_ms(),
                pool: pool.to_owned(),
                from: observation.executors.supply(),
                to: decision.desired,
                reason: decision.reason.to_string(),
            });
            *desired = Some(decision.desired);
        }
        let paused = match carrier {
            Carrier::Executors(backend) => {
                carry_out(
                    backend.as_ref(),
                    book,
                    decision.desired,
                    pool_state,
                    now,
                    manager,
                )
                .await;
                None
            }
            Carrier::Replicas(replicas) => {
                replicas
                    .carry_out(pool, book, decision.desired, pool_state, now, manager)
                    .await;
                Some(replicas.paused())
            }
        };
        let _ = manager.cast(CapacityMsg::SetTarget(PoolTarget {
            pool: pool.to_owned(),
            slots: u64::from(decision.desired) * u64::from(book.slots()),
        }));
        let exported = Exported {
            desired: decision.desired,
            cold_start_ms: book.cold_start_ms(),
            paused,
        };
        journal::settle(
            pool,
            journal::PoolScaling {
                desired: exported.desired,
                cold_start_ms: exported.cold_start_ms,
            },
        );
        self.exported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pool.to_owned(), exported);
    }
}

/// Brings a pool whose executors are started by name to `desired`: starts the missing
/// ones, cancels starts, drains the executors to go.
async fn carry_out(
    backend: &dyn ScaleBackend,
    book: &mut PoolBook,
    desired: u32,
    pool_state: &PoolState,
    now: u64,
    manager: &ActorRef<CapacityMsg>,
) {
    let pool = pool_state.name.as_str();
    let plan = book.plan(desired, pool_state, now);
    for _ in 0..plan.start {
        match backend.start(pool).await {
            Ok(Some(executor)) => book.started(executor, now),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(
                    pool,
                    error = &e as &dyn std::error::Error,
                    "cannot start an executor"
                );
                break;
            }
        }
    }
    for executor in plan.cancel {
        backend.release(pool, &executor).await;
    }
    for executor in plan.drain {
        tracing::info!(pool, %executor, "draining executor to scale down");
        let _ = manager.cast(CapacityMsg::Drain(ExecutorName(executor)));
    }
}
