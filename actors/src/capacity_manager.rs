//! The CapacityManager actor: one per cluster. It owns the queues, slots and leases (in
//! a [`Scheduler`]), leases jobs to executors, and persists every change through the
//! [`StoreWriter`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use marie_decide::scheduling::{Action, PoolSetup, Scheduler, SchedulerConfig};
use marie_protocol::JobId;
use marie_protocol::messages::RunRef;
use marie_protocol::messages::{
    CancelAnswer, CapacityMsg, ExecutorMsg, ExecutorName, GatewayMsg, HeartbeatAck, LeaseGrant,
    LoadReport, PoolName, PoolStates, Registered, SupervisorMsg, Tick,
};
use marie_protocol::names::CAPACITY_GROUP;
use marie_protocol::names::executor_group;
use marie_store::{JobStore, JobUpdate};
use opentelemetry::{Context, KeyValue};
use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent, pg};

use crate::clock::{MonotonicClock, unix_ms};
use crate::lookup;
use crate::store_writer::StoreWriter;
use crate::telemetry::job_trace;
use crate::telemetry::metrics::{JobMetrics, PoolSnapshot};

/// The CapacityManager actor.
pub struct CapacityManager;

/// What the CapacityManager starts with (again, when it is restarted).
#[derive(Clone)]
pub struct CapacityManagerArgs {
    /// The job store it recovers from and writes to.
    pub store: Arc<dyn JobStore>,
    /// Lease, timeout and backoff rules.
    pub scheduler: SchedulerConfig,
    /// The configured pools.
    pub pools: Vec<PoolSetup>,
    /// How often time is applied (leases, timeouts, backoff) and load published.
    pub tick: Duration,
    /// How often executors heartbeat.
    pub heartbeat: Duration,
}

/// The CapacityManager's state.
pub struct CapacityState {
    scheduler: Scheduler,
    writer: Option<StoreWriter>,
    clock: MonotonicClock,
    executors: HashMap<String, ActorRef<ExecutorMsg>>,
    heartbeat_ms: u64,
    metrics: JobMetrics,
    /// The `job.leased` span of every running job.
    runs: HashMap<JobId, Context>,
    /// When the Supervisor was last woken for each pool.
    last_wake_ms: HashMap<String, u64>,
}

impl Actor for CapacityManager {
    type Msg = CapacityMsg;
    type State = CapacityState;
    type Arguments = CapacityManagerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CapacityMsg>,
        args: CapacityManagerArgs,
    ) -> Result<CapacityState, ActorProcessingErr> {
        let recovered = args.store.recover(unix_ms()).await?;
        tracing::info!(jobs = recovered.len(), "recovered live jobs from the store");
        let mut state = CapacityState {
            scheduler: Scheduler::new(args.scheduler, &args.pools),
            writer: Some(StoreWriter::spawn(args.store)),
            clock: MonotonicClock::start(),
            executors: HashMap::new(),
            heartbeat_ms: args.heartbeat.as_millis() as u64,
            metrics: JobMetrics::register(),
            runs: HashMap::new(),
            last_wake_ms: HashMap::new(),
        };
        let mut actions = Vec::new();
        for job in recovered {
            actions.extend(state.scheduler.enqueue(job, 0));
        }
        let updates = state.carry_out(actions);
        state.writer().write(updates);
        pg::join(CAPACITY_GROUP.to_string(), vec![myself.get_cell()]);
        // An executor whose node left the cluster (connection closed, or cut for
        // silence) leaves its pool's group: that is the fastest sign it is lost.
        for pool in &args.pools {
            pg::monitor(executor_group(&pool.name), myself.get_cell());
        }
        myself.send_interval(args.tick, || CapacityMsg::Tick(Tick));
        Ok(state)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<CapacityMsg>,
        event: SupervisionEvent,
        _state: &mut CapacityState,
    ) -> Result<(), ActorProcessingErr> {
        // Group changes overtake messages: the executor's last completions (and its own
        // Leave) may still be on their way, over the link or through the mailbox. The
        // loss is handled after a grace period, behind them.
        if let SupervisionEvent::ProcessGroupChanged(GroupChangeMessage::Leave(_, _, cells)) = event
        {
            for name in cells.iter().filter_map(|cell| cell.get_name()) {
                myself.send_after(LOST_GRACE, move || CapacityMsg::Lost(ExecutorName(name)));
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CapacityMsg>,
        state: &mut CapacityState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(writer) = state.writer.take() {
            writer.close().await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<CapacityMsg>,
        msg: CapacityMsg,
        state: &mut CapacityState,
    ) -> Result<(), ActorProcessingErr> {
        let now = state.clock.now_ms();
        let s = &mut state.scheduler;
        let mut touched: Vec<String> = Vec::new();
        let mut actions = match msg {
            CapacityMsg::Enqueue(batch) => {
                let mut actions = Vec::new();
                for job in batch.0 {
                    if !touched.contains(&job.spec.pool) {
                        touched.push(job.spec.pool.clone());
                    }
                    actions.extend(s.enqueue(job, now));
                }
                actions
            }
            CapacityMsg::Register(info, reply) => {
                tracing::info!(executor = %info.name, pool = %info.pool, slots = info.slots, "executor registered");
                state.executors.remove(&info.name);
                let actions = s.register(&info.name, &info.pool, info.slots, now);
                let _ = reply.send(Registered {
                    heartbeat_ms: state.heartbeat_ms,
                });
                actions
            }
            CapacityMsg::Heartbeat(hb, reply) => {
                let actions = s.heartbeat(&hb.executor, &hb.running, now);
                let _ = reply.send(HeartbeatAck {
                    known: actions.is_some(),
                });
                actions.unwrap_or_default()
            }
            CapacityMsg::Completed(c) => s.complete(&c.executor, c.run, c.outcome, now),
            CapacityMsg::Cancel(id, reply) => match s.cancel(id, now) {
                Some(actions) => {
                    let updates = state.carry_out(actions);
                    let durable = state.writer().write_acked(updates);
                    tokio::spawn(async move {
                        let _ = durable.await;
                        let _ = reply.send(CancelAnswer::Cancelled);
                    });
                    Vec::new()
                }
                None => {
                    let _ = reply.send(CancelAnswer::NotLive);
                    Vec::new()
                }
            },
            CapacityMsg::Drain(name) => {
                if s.drain(&name.0) {
                    tracing::info!(executor = %name.0, "draining executor");
                    if let Some(executor) = state.executor_ref(&name.0) {
                        let _ = executor.cast(ExecutorMsg::Drain(Tick));
                    }
                }
                Vec::new()
            }
            CapacityMsg::Lost(name) => {
                // When two sessions to its node opened at once, ractor_cluster closed one
                // and the executor is in its group again through the other: not lost.
                state.executors.remove(&name.0);
                let pool = s.executor_pool(&name.0);
                if pool.is_some_and(|pool| lookup::executor(pool, &name.0).is_some()) {
                    tracing::info!(executor = %name.0, "executor still reachable over another connection to its node");
                    Vec::new()
                } else {
                    if pool.is_some() {
                        tracing::warn!(executor = %name.0, "executor lost: its node left the cluster");
                    }
                    s.executor_lost(&name.0, "its node left the cluster", now)
                }
            }
            CapacityMsg::Leave(name) => {
                tracing::info!(executor = %name.0, "executor left");
                state.executors.remove(&name.0);
                s.executor_lost(&name.0, "it stopped", now)
            }
            CapacityMsg::PoolStates(_, reply) => {
                let _ = reply.send(PoolStates(s.pool_states()));
                Vec::new()
            }
            CapacityMsg::SetTarget(target) => {
                s.set_target(&target.pool, target.slots);
                Vec::new()
            }
            CapacityMsg::Capacity(_, reply) => {
                let _ = reply.send(s.capacity());
                Vec::new()
            }
            CapacityMsg::Tick(_) => {
                let actions = s.tick(now);
                let loads = s.loads();
                for gateway in lookup::gateways() {
                    let _ = gateway.cast(GatewayMsg::Load(LoadReport(loads.clone())));
                }
                state.metrics.set_snapshot(PoolSnapshot {
                    capacity: s.capacity(),
                    loads,
                });
                actions
            }
        };
        actions.extend(state.scheduler.place(now));
        let updates = state.carry_out(actions);
        state.writer().write(updates);
        state.wake_supervisor(&touched, now);
        Ok(())
    }
}

/// How long an executor that left its pool's group without saying so keeps its leases,
/// so that what it sent before leaving is handled first.
const LOST_GRACE: Duration = Duration::from_millis(500);

/// Shortest time between two wake-ups of the Supervisor for one pool.
const WAKE_EVERY_MS: u64 = 50;

/// Whether new jobs for a pool should wake the Supervisor now rather than at its next
/// tick: the pool has no executor taking work, or jobs are left waiting for a slot — and
/// it was not woken for this pool in the last [`WAKE_EVERY_MS`].
fn should_wake(has_ready_executor: bool, pending: u64, since_last_wake_ms: Option<u64>) -> bool {
    (!has_ready_executor || pending > 0) && since_last_wake_ms.is_none_or(|ms| ms >= WAKE_EVERY_MS)
}

impl CapacityState {
    /// Wakes the Supervisor for pools that just got jobs they cannot start at once.
    fn wake_supervisor(&mut self, pools: &[String], now: u64) {
        for pool in pools {
            let since = self
                .last_wake_ms
                .get(pool)
                .map(|at| now.saturating_sub(*at));
            let ready = self.scheduler.has_ready_executor(pool);
            if should_wake(ready, self.scheduler.pending(pool), since) {
                self.last_wake_ms.insert(pool.clone(), now);
                for supervisor in lookup::supervisors() {
                    let _ = supervisor.cast(SupervisorMsg::Wake(PoolName(pool.clone())));
                }
            }
        }
    }

    fn writer(&self) -> &StoreWriter {
        self.writer
            .as_ref()
            .expect("the writer lives until post_stop")
    }

    /// Sends what the scheduler decided and returns the store updates it implies. An
    /// executor that cannot be reached is declared lost, which may decide more.
    fn carry_out(&mut self, mut actions: Vec<Action>) -> Vec<JobUpdate> {
        let mut updates = Vec::new();
        let at_ms = unix_ms();
        while !actions.is_empty() {
            let mut more = Vec::new();
            for action in actions {
                match action {
                    Action::Start {
                        executor,
                        run,
                        waited_ms,
                    } => {
                        let grant = self.lease_grant(&executor, run, waited_ms);
                        let sent = match (grant, self.executor_ref(&executor)) {
                            (Some(grant), Some(target)) => {
                                target.cast(ExecutorMsg::Lease(grant)).is_ok()
                            }
                            _ => false,
                        };
                        if sent {
                            updates.push(JobUpdate::Started {
                                run,
                                executor,
                                at_ms,
                            });
                        } else {
                            tracing::warn!(%executor, "executor unreachable; declaring it lost");
                            self.executors.remove(&executor);
                            let now = self.clock.now_ms();
                            more.extend(self.scheduler.executor_lost(
                                &executor,
                                "unreachable",
                                now,
                            ));
                            more.extend(self.scheduler.place(now));
                        }
                    }
                    Action::Stop { executor, run } => {
                        if let Some(target) = self.executor_ref(&executor) {
                            let _ = target.cast(ExecutorMsg::CancelRun(run));
                        }
                    }
                    Action::Requeued {
                        id,
                        attempts_done,
                        error,
                    } => {
                        tracing::info!(job = %id, attempts_done, %error, "job re-queued");
                        if let Some(leased) = self.runs.remove(&id) {
                            job_trace::end(&leased, || format!("requeued: {error}"));
                        }
                        updates.push(JobUpdate::Requeued {
                            id,
                            attempts_done,
                            error,
                            at_ms,
                        });
                    }
                    Action::Finished {
                        id,
                        pool,
                        ran_ms,
                        trace,
                        state,
                        error,
                        output,
                    } => {
                        self.metrics.ended(&pool, state, ran_ms);
                        if let Some(leased) = self.runs.remove(&id) {
                            job_trace::end(&leased, || state.to_string());
                        }
                        let attributes = || {
                            vec![
                                KeyValue::new("job.id", id.to_string()),
                                KeyValue::new("pool", pool),
                                KeyValue::new("outcome", state.to_string()),
                            ]
                        };
                        let job_cx = job_trace::context_of(&trace);
                        job_trace::record_past("job.complete", &job_cx, Duration::ZERO, attributes);
                        updates.push(JobUpdate::Finished {
                            id,
                            state,
                            error,
                            output,
                            at_ms,
                        });
                    }
                }
            }
            actions = more;
        }
        updates
    }

    /// The lease of `run` for `executor`, with its metrics and spans recorded: the wait
    /// in the queue (`job.queued`) and the attempt (`job.leased`, open until the run
    /// ends; its context travels with the lease).
    fn lease_grant(&mut self, executor: &str, run: RunRef, waited_ms: u64) -> Option<LeaseGrant> {
        let job = self.scheduler.job(&run.job)?;
        let (pool, handler) = (&job.spec.pool, &job.spec.handler);
        self.metrics.started(pool, waited_ms);
        let job_cx = job_trace::context_of(&job.spec.trace);
        let waited = Duration::from_millis(waited_ms);
        job_trace::record_past("job.queued", &job_cx, waited, || {
            job_attributes(run, pool, handler)
        });
        let leased = job_trace::start("job.leased", &job_cx, || {
            let mut attributes = job_attributes(run, pool, handler);
            attributes.push(KeyValue::new("executor", executor.to_owned()));
            attributes
        });
        let grant = LeaseGrant {
            run,
            handler: handler.clone(),
            payload: job.spec.payload.clone(),
            metadata: job.spec.metadata.clone(),
            timeout_ms: job.timeout_ms,
            trace: job_trace::carrier_of(&leased),
        };
        if job_trace::enabled() {
            self.runs.insert(run.job, leased);
        }
        Some(grant)
    }

    /// The executor's actor, looked up in its pool's group and cached while it lives
    /// (a closed session stops the actors it reached its node's executors through).
    fn executor_ref(&mut self, name: &str) -> Option<ActorRef<ExecutorMsg>> {
        if let Some(actor) = self.executors.get(name) {
            if !matches!(
                actor.get_status(),
                ActorStatus::Stopping | ActorStatus::Stopped
            ) {
                return Some(actor.clone());
            }
            self.executors.remove(name);
        }
        let pool = self.scheduler.executor_pool(name)?;
        let actor = lookup::executor(pool, name)?;
        self.executors.insert(name.to_owned(), actor.clone());
        Some(actor)
    }
}

/// The attributes every span of a run carries.
pub(crate) fn job_attributes(run: RunRef, pool: &str, handler: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("job.id", run.job.to_string()),
        KeyValue::new("pool", pool.to_owned()),
        KeyValue::new("handler", handler.to_owned()),
        KeyValue::new("attempt", i64::from(run.attempt)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supervisor_is_woken_for_an_empty_pool_or_a_backlog_at_most_every_50_ms() {
        assert!(should_wake(false, 0, None), "a pool at zero");
        assert!(should_wake(true, 3, None), "jobs left waiting");
        assert!(!should_wake(true, 0, None), "every job found a slot");
        assert!(!should_wake(true, 3, Some(10)), "woken 10 ms ago");
        assert!(should_wake(true, 3, Some(50)));
    }
}
