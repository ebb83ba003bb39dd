//! The Supervisor: scales executor pools by queue pressure. It ticks (and wakes at once
//! when a job is queued for a pool with no executor), reads every pool from the
//! CapacityManager, asks each pool's [`AutoscalePolicy`] for the desired executor
//! count, sets the pool's `target`, exports it as `marie_supervisor_desired_executors`
//! (with the measured cold start as `marie_supervisor_cold_start_seconds`), logs each
//! change with its reason, and has a [`ScaleBackend`] carry it out.
//!
//! Scale-down is lossless: the executor to go (still starting first, then idle, then
//! least busy) is drained — no new leases, its running jobs finish — and released only
//! once it has left. The bookkeeping behind this (starting, draining, the measured cold
//! start, the plan) is `marie_decide::autoscale::PoolBook`, plain code that the
//! simulator of `marie-sim` drives too; this actor carries its plan out.

mod backend;
mod local;
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
pub use replicas::{ReplicaBackend, ReplicaError, ReplicaFailure};

use crate::clock::MonotonicClock;
use crate::lookup;
use marie_decide::autoscale::{AutoscalePolicy, AutoscaleSettings, PoolBook};

/// How long the Supervisor waits for the CapacityManager.
const MANAGER_TIMEOUT: Duration = Duration::from_secs(2);

/// One pool the Supervisor scales.
#[derive(Clone, Debug)]
pub struct ScaledPool {
    /// The pool's name.
    pub name: String,
    /// Slots of each executor.
    pub slots: u32,
    /// The policy's settings.
    pub settings: AutoscaleSettings,
    /// A first guess of the time from asking for an executor to its first free slot,
    /// until one is measured, in milliseconds.
    pub cold_start_guess_ms: u64,
}

/// What the Supervisor starts with.
pub struct SupervisorArgs {
    /// The pools it scales.
    pub pools: Vec<ScaledPool>,
    /// Who carries decisions out.
    pub backend: Arc<dyn ScaleBackend>,
    /// How often it decides.
    pub tick: Duration,
}

/// The Supervisor actor.
pub struct Supervisor;

struct Scaled {
    policy: AutoscalePolicy,
    book: PoolBook,
    desired: Option<u32>,
}

/// The Supervisor's state.
pub struct SupervisorState {
    pools: BTreeMap<String, Scaled>,
    backend: Arc<dyn ScaleBackend>,
    clock: MonotonicClock,
    exported: Arc<Mutex<BTreeMap<String, Exported>>>,
    _gauges: [ObservableGauge<f64>; 2],
}

/// What the Supervisor exports per pool.
#[derive(Clone, Copy, Debug, Default)]
struct Exported {
    desired: u32,
    cold_start_ms: u64,
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
        let gauge = |name: &'static str, description: &'static str, value: fn(&Exported) -> f64| {
            let read = exported.clone();
            opentelemetry::global::meter("marie")
                .f64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |observer| {
                    for (pool, e) in read.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                        observer.observe(value(e), &[KeyValue::new("executor", pool.clone())]);
                    }
                })
                .build()
        };
        let gauges = [
            gauge(
                "marie_supervisor_desired_executors",
                "Executors the Supervisor wants per pool",
                |e| f64::from(e.desired),
            ),
            gauge(
                "marie_supervisor_cold_start_seconds",
                "Measured time from asking for an executor to its first free slot, per pool",
                |e| e.cold_start_ms as f64 / 1000.0,
            ),
        ];
        let pools = args
            .pools
            .into_iter()
            .map(|p| {
                let scaled = Scaled {
                    policy: AutoscalePolicy::new(p.settings),
                    book: PoolBook::new(p.slots, p.cold_start_guess_ms, 0),
                    desired: None,
                };
                (p.name, scaled)
            })
            .collect();
        myself.send_interval(args.tick, || SupervisorMsg::Tick(Tick));
        myself.cast(SupervisorMsg::Tick(Tick))?;
        Ok(SupervisorState {
            pools,
            backend: args.backend,
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
        state.backend.shutdown().await;
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let only = match msg {
            SupervisorMsg::Wake(pool) => Some(pool.0),
            SupervisorMsg::Tick(_) => None,
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
            state.scale(&manager, &pool_state).await;
        }
        Ok(())
    }
}

impl SupervisorState {
    /// One decision for one pool, carried out.
    async fn scale(&mut self, manager: &ActorRef<CapacityMsg>, pool_state: &PoolState) {
        let now = self.clock.now_ms();
        let Some(scaled) = self.pools.get_mut(&pool_state.name) else {
            return;
        };
        let pool = pool_state.name.as_str();
        let changes = scaled.book.observe(pool_state, now);
        for (executor, took_ms) in changes.ready {
            tracing::info!(pool, %executor, cold_start_ms = took_ms, "executor ready");
        }
        for executor in changes.drained {
            self.backend.release(pool, &executor).await;
        }
        let observation = scaled.book.observation(pool_state, now);
        let decision = scaled.policy.decide(now, &observation);
        if scaled.desired != Some(decision.desired) {
            tracing::info!(
                pool,
                from = observation.executors.supply(),
                to = decision.desired,
                reason = %decision.reason,
                backend = self.backend.name(),
                "scaling"
            );
            scaled.desired = Some(decision.desired);
        }
        let plan = scaled.book.plan(decision.desired, pool_state, now);
        for _ in 0..plan.start {
            match self.backend.start(pool).await {
                Ok(Some(executor)) => scaled.book.started(executor, now),
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
            self.backend.release(pool, &executor).await;
        }
        for executor in plan.drain {
            tracing::info!(pool, %executor, "draining executor to scale down");
            let _ = manager.cast(CapacityMsg::Drain(ExecutorName(executor)));
        }
        let _ = manager.cast(CapacityMsg::SetTarget(PoolTarget {
            pool: pool.to_owned(),
            slots: plan.target_slots,
        }));
        let exported = Exported {
            desired: decision.desired,
            cold_start_ms: scaled.book.cold_start_ms(),
        };
        self.exported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pool.to_owned(), exported);
    }
}
